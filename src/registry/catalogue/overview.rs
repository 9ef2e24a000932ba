//! What the web UI's model list shows beside each model: how many versions
//! it has and what the latest one is. No dialect's list carries this for
//! every door at once, and loading whole versions (with their files) per row
//! would make a page's cost grow with the files of its models.

use crate::registry::catalogue::models::{Attrs, Model};
use crate::registry::{parse_attrs, Principal, Registry, Result};
use crate::store::sql::OptionalExtension;

#[derive(Clone, Debug, PartialEq)]
pub struct VersionSummary {
    pub count: i64,
    pub latest_number: i64,
    pub latest_created_at: String,
    pub latest_attrs: Attrs,
}

impl Registry {
    /// The version summary of each of `models`, in order (None: no
    /// versions yet). The models must come from a read the access rule
    /// already applied to (`list_models`); one of another team is skipped
    /// as if it had no versions, so a caller cannot use this as a probe.
    /// Two index lookups per model on `UNIQUE (model_id, number)`.
    pub fn version_summaries(&self, who: &Principal, models: &[Model]) -> Result<Vec<Option<VersionSummary>>> {
        let mut latest = self.conn.prepare_cached(
            // Latest as every door means it: the newest version not deprecated.
            "SELECT number, created_at, attrs FROM model_versions WHERE model_id = ?1 AND status <> 'deprecated'
             ORDER BY number DESC LIMIT 1",
        )?;
        let mut count = self.conn.prepare_cached("SELECT COUNT(*) FROM model_versions WHERE model_id = ?1")?;
        let mut out = Vec::with_capacity(models.len());
        for model in models {
            if model.team_id != who.team_id {
                out.push(None);
                continue;
            }
            let row = latest
                .query_row([&model.id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                .optional()?;
            let Some((number, created_at, attrs)) = row else {
                out.push(None);
                continue;
            };
            let n: i64 = count.query_row([&model.id], |r| r.get(0))?;
            out.push(Some(VersionSummary {
                count: n,
                latest_number: number,
                latest_created_at: created_at,
                latest_attrs: parse_attrs(&attrs)?,
            }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::{ModelQuery, NewModel, NewVersion, Origin, PageRequest};
    use super::*;

    #[test]
    fn summaries_count_versions_and_name_the_latest_and_origin_filters_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let who = registry.operator().unwrap();
        let octo = registry.create_model(&who, NewModel { name: "o".into(), ..Default::default() }).unwrap();
        let paper =
            registry.create_model(&who, NewModel { name: "p".into(), origin: Origin::Paperspace, ..Default::default() }).unwrap();
        for minor in 0..2 {
            let mut attrs = Attrs::new();
            attrs.insert("versionMinor".into(), minor.into());
            registry.create_version(&who, &octo.id, NewVersion { attrs, ..Default::default() }).unwrap();
        }
        let mut stranger = paper.clone();
        stranger.team_id = "another team".into();
        let got = registry.version_summaries(&who, &[octo.clone(), paper.clone(), stranger]).unwrap();
        let latest = got[0].as_ref().expect("the first model has versions");
        assert_eq!((latest.count, latest.latest_number), (2, 2));
        assert_eq!(latest.latest_attrs.get("versionMinor"), Some(&1.into()));
        assert_eq!((got[1].as_ref(), got[2].as_ref()), (None, None), "no versions; another team's");

        let mut query = ModelQuery::newest_first(PageRequest::After { after: None, limit: 10 });
        query.origin = Some(Origin::Paperspace);
        query.count_total = true;
        let page = registry.list_models(&who, &query).unwrap();
        assert_eq!(page.items.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [paper.id.as_str()]);
        assert_eq!(page.total, Some(1), "a filtered count, not the team's counter");
    }
}
