//! Aliases (issue 24): a name a model gives one of its versions
//! (`champion` -> version 3), moved by setting it again. A version handle
//! `@champion` names that version wherever a version is named, and `latest`
//! names the model's latest version (the highest-numbered one that is not
//! deprecated): see `VersionRef::parse` and `Registry::find_version`, the
//! one resolution every door and the CLI share.
//!
//! Setting or removing an alias needs write access to the model; another
//! team's model is NotFound. Deleting the version or the model removes its
//! aliases (the foreign keys cascade, migration 0013).

use std::collections::BTreeMap;

use crate::registry::access::roles::Access;
use serde_json::json;

use crate::registry::webhooks::{emit, EventSubject};
use crate::registry::{now, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

/// The word that names a model's latest version; never an alias.
pub const LATEST: &str = "latest";

/// An alias as set: the model, its name and the version number it names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Alias {
    pub model: String,
    pub alias: String,
    pub version: i64,
}

/// `^[a-z][a-z0-9_-]{0,62}$`, and not `latest`.
pub fn check_alias_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let well_formed = name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !well_formed {
        return Err(Error::invalid(
            "alias",
            format!("must be 1 to 63 characters: a lowercase letter, then lowercase letters, digits, '_' or '-'; got {name:?}"),
        ));
    }
    if name == LATEST {
        return Err(Error::invalid("alias", "\"latest\" always names the latest version; choose another name"));
    }
    Ok(())
}

/// The id of the version `alias` names in the model, if it names one.
pub(in crate::registry) fn alias_version_id(conn: &sql::Connection, model_id: &str, alias: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT version_id FROM model_aliases WHERE model_id = ?1 AND alias = ?2")?
        .query_row([model_id, alias], |r| r.get(0))
        .optional()?)
}

impl Registry {
    /// Sets `alias` to the model's version `number`, or moves it there: one
    /// write transaction. Needs write access to the model.
    pub fn set_alias(&self, who: &Principal, model_id: &str, alias: &str, number: i64) -> Result<Alias> {
        check_alias_name(alias)?;
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let version_id: String = tx
            .prepare_cached("SELECT id FROM model_versions WHERE model_id = ?1 AND number = ?2")?
            .query_row(params![model_id, number], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("model {model_id} has no version {number}")))?;
        let previous = alias_version_id(&tx, model_id, alias)?;
        if previous.as_deref() != Some(version_id.as_str()) {
            let subject = EventSubject { team_id: &who.team_id, model_id, version_id: Some(&version_id) };
            emit(&tx, "alias.moved", subject, json!({"alias": alias, "previous_version_id": previous}))?;
        }
        tx.execute(
            "INSERT INTO model_aliases (model_id, alias, version_id, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id, updated_at = excluded.updated_at",
            params![model_id, alias, version_id, now()],
        )?;
        tx.commit()?;
        Ok(Alias { model: model_id.to_string(), alias: alias.to_string(), version: number })
    }

    /// Removes `alias`; NotFound when the model has no such alias. Needs
    /// write access to the model.
    pub fn delete_alias(&self, who: &Principal, model_id: &str, alias: &str) -> Result<()> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let previous = alias_version_id(&tx, model_id, alias)?
            .ok_or_else(|| Error::NotFound(format!("model {model_id} has no alias {alias:?}")))?;
        let subject = EventSubject { team_id: &who.team_id, model_id, version_id: None };
        emit(&tx, "alias.moved", subject, json!({"alias": alias, "previous_version_id": previous, "removed": true}))?;
        tx.execute("DELETE FROM model_aliases WHERE model_id = ?1 AND alias = ?2", [model_id, alias])?;
        tx.commit()?;
        Ok(())
    }

    /// The model's aliases and the version number each names, by name.
    pub fn model_aliases(&self, who: &Principal, model_id: &str) -> Result<BTreeMap<String, i64>> {
        Ok(self.aliased_versions(who, model_id)?.into_iter().map(|(alias, (number, _))| (alias, number)).collect())
    }

    /// The model's aliases and the id of the version each names, by name:
    /// for the doors that name versions by id (DataRobot).
    pub fn model_alias_ids(&self, who: &Principal, model_id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.aliased_versions(who, model_id)?.into_iter().map(|(alias, (_, id))| (alias, id)).collect())
    }

    fn aliased_versions(&self, who: &Principal, model_id: &str) -> Result<BTreeMap<String, (i64, String)>> {
        self.get_model(who, model_id)?;
        let rows = self
            .conn
            .prepare_cached(
                "SELECT a.alias, v.number, v.id FROM model_aliases a JOIN model_versions v ON v.id = a.version_id
                 WHERE a.model_id = ?1 ORDER BY a.alias",
            )?
            .query_map([model_id], |r| Ok((r.get::<_, String>(0)?, (r.get::<_, i64>(1)?, r.get::<_, String>(2)?))))?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::check_alias_name;
    use crate::registry::VersionRef;

    #[test]
    fn alias_names_follow_the_pattern_and_are_not_latest() {
        for ok in ["champion", "a", "prod-2", "shadow_b", &format!("a{}", "b".repeat(62))] {
            assert!(check_alias_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Champion", "1st", "-a", "_a", "a b", "a.b", "latest", "é", &format!("a{}", "b".repeat(63))] {
            assert!(check_alias_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn handles_parse_to_numbers_labels_aliases_and_latest() {
        assert_eq!(VersionRef::parse("3"), VersionRef::Number(3));
        assert_eq!(VersionRef::parse("1.0.0"), VersionRef::Label("1.0.0".into()));
        assert_eq!(VersionRef::parse("@champion"), VersionRef::Alias("champion".into()));
        assert_eq!(VersionRef::parse("latest"), VersionRef::Latest);
    }
}
