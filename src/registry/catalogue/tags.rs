//! Tags (issue 24): keys with text values on a model or on one of its
//! versions (`stage: production`, `owner: fraud-team`). Setting a key again
//! replaces its value. Models are found by their tags through
//! `ModelQuery::tags` (`GET /api/modelreg/v1/models?tag=stage:production`).
//!
//! Changing a tag needs write access to the model; reading them, that the
//! caller can see it. Deleting a model or version deletes its tags (the
//! foreign keys cascade, migration 0014).

use std::collections::{BTreeMap, HashMap};

use super::models::{TagFilter, VersionRef};
use crate::registry::access::roles::Access;
use crate::registry::{now, Error, Principal, Registry, Result};
use crate::store::sql::{self, params};

/// A model's or a version's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// At most this many tags on one model or one version: tags label things,
/// they are not a key-value store.
pub const MAX_TAGS: usize = 64;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 1024;

/// A key is 1 to 128 letters, digits, `_`, `-`, `.` or `/`. No `:`, which
/// separates key from value in a search (`tag=stage:production`), and no
/// spaces, so that a key is the same word in a URL, a shell and a table.
pub fn check_tag_key(key: &str) -> Result<()> {
    let well_formed = !key.is_empty()
        && key.len() <= MAX_KEY
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
    if !well_formed {
        return Err(Error::invalid(
            "key",
            format!("must be 1 to {MAX_KEY} letters, digits, '_', '-', '.' or '/'; got {key:?}"),
        ));
    }
    Ok(())
}

/// A value is up to 1,024 characters without control characters.
pub fn check_tag_value(value: &str) -> Result<()> {
    if value.chars().count() > MAX_VALUE || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "value",
            format!("must be at most {MAX_VALUE} characters without control characters"),
        ));
    }
    Ok(())
}

/// One `tag=` of a model search: `key:value` matches that value, a bare
/// `key` any value of that key.
pub fn parse_tag_filter(text: &str) -> Result<TagFilter> {
    let (key, value) = match text.split_once(':') {
        Some((key, value)) => (key, Some(value.to_string())),
        None => (text, None),
    };
    check_tag_key(key).map_err(|_| {
        Error::invalid("tag", format!("must be KEY:VALUE or KEY, with a key of letters, digits, '_', '-', '.' or '/'; got {text:?}"))
    })?;
    Ok(TagFilter {
        key: key.to_string(),
        value,
    })
}

/// What a tag is on: a model, or one version (by its id).
#[derive(Clone, Copy)]
enum Subject<'a> {
    Model(&'a str),
    Version(&'a str),
}

impl Subject<'_> {
    /// The table and its id column; constants, never caller text.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Subject::Model(_) => ("model_tags", "model_id"),
            Subject::Version(_) => ("version_tags", "version_id"),
        }
    }

    fn id(&self) -> &str {
        match self {
            Subject::Model(id) | Subject::Version(id) => id,
        }
    }
}

impl Registry {
    /// Sets a model's tag; returns all its tags.
    pub fn set_model_tag(
        &self,
        who: &Principal,
        model_id: &str,
        key: &str,
        value: &str,
    ) -> Result<Tags> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let tags = set_tag(&tx, Subject::Model(model_id), key, value)?;
        tx.commit()?;
        Ok(tags)
    }

    /// Removes a model's tag; NotFound when it has no such key.
    pub fn delete_model_tag(&self, who: &Principal, model_id: &str, key: &str) -> Result<Tags> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let tags = delete_tag(&tx, Subject::Model(model_id), key)?;
        tx.commit()?;
        Ok(tags)
    }

    /// Sets a version's tag; returns all its tags.
    pub fn set_version_tag(
        &self,
        who: &Principal,
        model_id: &str,
        by: &VersionRef,
        key: &str,
        value: &str,
    ) -> Result<Tags> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let version = self.find_version(who, model_id, by)?;
        let tags = set_tag(&tx, Subject::Version(&version.id), key, value)?;
        tx.commit()?;
        Ok(tags)
    }

    /// Removes a version's tag; NotFound when it has no such key.
    pub fn delete_version_tag(
        &self,
        who: &Principal,
        model_id: &str,
        by: &VersionRef,
        key: &str,
    ) -> Result<Tags> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let version = self.find_version(who, model_id, by)?;
        let tags = delete_tag(&tx, Subject::Version(&version.id), key)?;
        tx.commit()?;
        Ok(tags)
    }

    pub fn model_tags(&self, who: &Principal, model_id: &str) -> Result<Tags> {
        self.get_model(who, model_id)?;
        tags_of(&self.conn, Subject::Model(model_id))
    }

    /// One version's tags (none when the version is not the model's).
    pub fn version_tags(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<Tags> {
        self.get_model(who, model_id)?;
        let rows = self
            .conn
            .prepare_cached(
                "SELECT t.key, t.value FROM version_tags t JOIN model_versions v ON v.id = t.version_id
                 WHERE v.model_id = ?1 AND t.version_id = ?2 ORDER BY t.key",
            )?
            .query_map([model_id, version_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(rows.into_iter().collect())
    }

    /// The tags of each of these models (of the caller's team; ones without
    /// tags are absent), by model id: one query for a page of a list, whose
    /// query applied the access rule already.
    pub fn tags_of_models(
        &self,
        who: &Principal,
        model_ids: &[&str],
    ) -> Result<HashMap<String, Tags>> {
        if model_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = serde_json::to_string(model_ids).expect("strings serialize");
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.model_id, t.key, t.value FROM model_tags t JOIN models m ON m.id = t.model_id
             WHERE m.team_id = ?1 AND t.model_id IN (SELECT value FROM json_each(?2)) ORDER BY t.model_id, t.key",
        )?;
        let by_model = grouped(stmt.query_map(params![who.team_id, ids], owner_key_value)?);
        by_model
    }

    /// The tags of every version of a model, by version id (versions without
    /// tags are absent): one query for a whole version list.
    pub fn version_tags_of_model(
        &self,
        who: &Principal,
        model_id: &str,
    ) -> Result<HashMap<String, Tags>> {
        self.get_model(who, model_id)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.version_id, t.key, t.value FROM version_tags t JOIN model_versions v ON v.id = t.version_id
             WHERE v.model_id = ?1 ORDER BY t.version_id, t.key",
        )?;
        let by_version = grouped(stmt.query_map([model_id], owner_key_value)?);
        by_version
    }
}

fn owner_key_value(r: &sql::Row) -> sql::Result<(String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// Rows of (owner id, key, value) as each owner's tags.
fn grouped(rows: impl Iterator<Item = sql::Result<(String, String, String)>>) -> Result<HashMap<String, Tags>> {
    let mut by_owner: HashMap<String, Tags> = HashMap::new();
    for row in rows {
        let (owner, key, value) = row?;
        by_owner.entry(owner).or_default().insert(key, value);
    }
    Ok(by_owner)
}

fn set_tag(tx: &sql::Connection, subject: Subject, key: &str, value: &str) -> Result<Tags> {
    check_tag_key(key)?;
    check_tag_value(value)?;
    let mut tags = tags_of(tx, subject)?;
    if !tags.contains_key(key) && tags.len() >= MAX_TAGS {
        return Err(Error::invalid(
            "key",
            format!("at most {MAX_TAGS} tags; remove one first"),
        ));
    }
    let (table, column) = subject.table();
    tx.execute(
        &format!(
            "INSERT INTO {table} ({column}, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT ({column}, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        ),
        params![subject.id(), key, value, now()],
    )?;
    tags.insert(key.to_string(), value.to_string());
    Ok(tags)
}

fn delete_tag(tx: &sql::Connection, subject: Subject, key: &str) -> Result<Tags> {
    let (table, column) = subject.table();
    let removed = tx.execute(
        &format!("DELETE FROM {table} WHERE {column} = ?1 AND key = ?2"),
        [subject.id(), key],
    )?;
    if removed == 0 {
        return Err(Error::NotFound(format!("no tag {key:?}")));
    }
    tags_of(tx, subject)
}

fn tags_of(conn: &sql::Connection, subject: Subject) -> Result<Tags> {
    let (table, column) = subject.table();
    let rows = conn
        .prepare_cached(&format!(
            "SELECT key, value FROM {table} WHERE {column} = ?1 ORDER BY key"
        ))?
        .query_map([subject.id()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<sql::Result<Vec<_>>>()?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_words_without_colons() {
        for ok in [
            "stage",
            "team/owner",
            "mlflow.run_id",
            "a-b",
            &"k".repeat(128),
        ] {
            assert!(check_tag_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a:b", "a b", "é", &"k".repeat(129)] {
            assert!(check_tag_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_tag_value("").is_ok());
        assert!(check_tag_value("line\nbreak").is_err());
    }

    #[test]
    fn filters_split_at_the_first_colon() {
        assert_eq!(
            parse_tag_filter("stage:prod").unwrap(),
            TagFilter {
                key: "stage".into(),
                value: Some("prod".into())
            }
        );
        assert_eq!(
            parse_tag_filter("url:http://x").unwrap().value.as_deref(),
            Some("http://x")
        );
        assert_eq!(parse_tag_filter("stage").unwrap().value, None);
        assert!(parse_tag_filter(":prod").is_err());
    }
}
