//! What the web UI's model list shows beside each model: how many versions
//! it has and what the latest one is. No dialect's list carries this for
//! every door at once, and loading whole versions (with their files) per row
//! would make a page's cost grow with the files of its models.

use rusqlite::OptionalExtension;

use super::models::{Attrs, Model};
use super::{parse_attrs, Principal, Registry, Result};

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
            "SELECT number, created_at, attrs FROM model_versions WHERE model_id = ?1 ORDER BY number DESC LIMIT 1",
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
