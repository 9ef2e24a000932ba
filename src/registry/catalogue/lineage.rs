//! Lineage (issue 24): where a version came from. Four fields, the same
//! through every door and the CLI: the source commit it was built from, the
//! dataset it was trained on, the URL of the run that made it, and the
//! version it derives from (of this model or another one the caller can
//! see). They are kept in the version's `lineage` column (migration 0014),
//! beside its metrics, read with the version (`models::Lineage`), and
//! changed only here.

use serde_json::{json, Map, Value};

use super::models::{Version, VersionRef};
use crate::registry::access::roles::Access;
use crate::registry::fields::opt_string;
use crate::registry::{is_uuid, Error, Principal, Registry, Result};
use crate::store::sql::{params, OptionalExtension};

/// The version a lineage's parent names: a model (id or name; None for the
/// version's own model) and a version handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentRef {
    pub model: Option<String>,
    pub version: VersionRef,
}

/// A change to a version's lineage: `None` leaves a field as it is,
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineagePatch {
    pub source_commit: Option<Option<String>>,
    pub dataset: Option<Option<String>>,
    pub run_url: Option<Option<String>>,
    pub parent_version: Option<Option<ParentRef>>,
}

impl LineagePatch {
    /// Reads the JSON object modelreg's API takes: each field a string or
    /// `null` (to clear it); `parent_version` is `{"model": …, "version": …}`
    /// (model optional: this one) or a version's id. Unknown keys are an
    /// error, so a misspelt field is not silently dropped.
    pub fn from_json(body: &Map<String, Value>) -> Result<LineagePatch> {
        let mut patch = LineagePatch::default();
        for key in body.keys() {
            if !["source_commit", "dataset", "run_url", "parent_version"].contains(&key.as_str()) {
                return Err(Error::invalid(
                    &format!("lineage.{key}"),
                    "is not a lineage field (source_commit, dataset, run_url, parent_version)",
                ));
            }
        }
        let text = |field: &str| -> Result<Option<Option<String>>> {
            body.contains_key(field)
                .then(|| opt_string(body, field))
                .transpose()
        };
        patch.source_commit = text("source_commit")?;
        patch.dataset = text("dataset")?;
        patch.run_url = text("run_url")?;
        patch.parent_version = match body.get("parent_version") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(handle)) => Some(Some(ParentRef {
                model: None,
                version: VersionRef::parse(handle),
            })),
            Some(Value::Object(parent)) => {
                let model = opt_string(parent, "model")?;
                let version = match parent.get("version") {
                    Some(Value::Number(n)) => n.as_i64().map(VersionRef::Number),
                    Some(Value::String(s)) => Some(VersionRef::parse(s)),
                    _ => None,
                }
                .ok_or_else(|| {
                    Error::invalid(
                        "lineage.parent_version.version",
                        "is required: a version number or handle",
                    )
                })?;
                Some(Some(ParentRef { model, version }))
            }
            Some(_) => {
                return Err(Error::invalid(
                    "lineage.parent_version",
                    "must be {\"model\": …, \"version\": …}, a version id, or null",
                ))
            }
        };
        Ok(patch)
    }
}

/// Printable text without control characters, at most `max` characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            &format!("lineage.{field}"),
            format!("must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

fn check_source_commit(value: &str) -> Result<()> {
    check_text("source_commit", value, 256)?;
    if value.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            "lineage.source_commit",
            "must be a commit (a hash, or a repository URL and a hash) without spaces",
        ));
    }
    Ok(())
}

/// An http(s) URL: a run is something a person opens in a browser, and the
/// UI turns it into a link.
fn check_run_url(value: &str) -> Result<()> {
    check_text("run_url", value, 2048)?;
    let lower = value.to_ascii_lowercase();
    let has_host = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty());
    if !has_host || value.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            "lineage.run_url",
            format!("must be an http:// or https:// URL, got {value:?}"),
        ));
    }
    Ok(())
}

impl Registry {
    /// Applies a lineage change to a version in one write transaction.
    /// Needs write access to the model; the parent must be a version the
    /// caller can see, and not the version itself.
    pub fn update_lineage(
        &self,
        who: &Principal,
        model_id: &str,
        by: &VersionRef,
        patch: LineagePatch,
    ) -> Result<Version> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let mut version = self.find_version(who, model_id, by)?;
        let lineage = &mut version.lineage;
        if let Some(value) = patch.source_commit {
            value.as_deref().map(check_source_commit).transpose()?;
            lineage.source_commit = value;
        }
        if let Some(value) = patch.dataset {
            value
                .as_deref()
                .map(|v| check_text("dataset", v, 1024))
                .transpose()?;
            lineage.dataset = value;
        }
        if let Some(value) = patch.run_url {
            value.as_deref().map(check_run_url).transpose()?;
            lineage.run_url = value;
        }
        if let Some(parent) = patch.parent_version {
            lineage.parent_version = match parent {
                None => None,
                Some(parent) => {
                    let id = self.resolve_parent(who, model_id, &parent)?;
                    if id == version.id {
                        return Err(Error::invalid(
                            "lineage.parent_version",
                            "a version cannot be its own parent",
                        ));
                    }
                    Some(id)
                }
            };
        }
        tx.execute(
            "UPDATE model_versions SET lineage = ?2 WHERE id = ?1",
            params![version.id, version.lineage.to_column()],
        )?;
        tx.commit()?;
        Ok(version)
    }

    /// The id of the version a parent reference names.
    fn resolve_parent(
        &self,
        who: &Principal,
        model_id: &str,
        parent: &ParentRef,
    ) -> Result<String> {
        let model_id = match &parent.model {
            Some(handle) => self.resolve_model(who, handle)?.id,
            None => model_id.to_string(),
        };
        // A version id names a version of any model the caller can see.
        if let (None, VersionRef::Label(text)) = (&parent.model, &parent.version) {
            if is_uuid(text) {
                return self
                    .visible_version_by_id(who, text)?
                    .map(|v| v.id)
                    .ok_or_else(|| Error::not_found("version", text));
            }
        }
        Ok(self.find_version(who, &model_id, &parent.version)?.id)
    }

    /// A version's lineage as the doors show it: the stored fields, with the
    /// parent as `{"id", "model_id", "model", "version"}` when the caller can
    /// still see it, else `{"id", "deleted": true}` (or hidden from them).
    pub fn lineage_view(&self, who: &Principal, version: &Version) -> Result<Value> {
        let lineage = &version.lineage;
        let mut view = json!({
            "source_commit": lineage.source_commit,
            "dataset": lineage.dataset,
            "run_url": lineage.run_url,
            "parent_version": Value::Null,
        });
        if let Some(parent_id) = &lineage.parent_version {
            view["parent_version"] = match self.visible_version_by_id(who, parent_id)? {
                Some(parent) => {
                    let model = self.get_model(who, &parent.model_id)?;
                    json!({"id": parent.id, "model_id": model.id, "model": model.name, "version": parent.number})
                }
                None => json!({"id": parent_id, "deleted": true}),
            };
        }
        Ok(view)
    }

    /// A version of any model the caller can see, by the version's id.
    fn visible_version_by_id(&self, who: &Principal, version_id: &str) -> Result<Option<Version>> {
        let model_id: Option<String> = self
            .conn
            .prepare_cached("SELECT model_id FROM model_versions WHERE id = ?1")?
            .query_row([version_id], |r| r.get(0))
            .optional()?;
        let Some(model_id) = model_id else {
            return Ok(None);
        };
        match self.get_version_by_id(who, &model_id, version_id) {
            Ok(version) => Ok(Some(version)),
            Err(Error::NotFound(_)) | Err(Error::Forbidden(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::models::Lineage;

    #[test]
    fn run_urls_must_be_http() {
        assert!(check_run_url("https://ci.example.com/runs/42").is_ok());
        assert!(check_run_url("HTTP://mlflow:5000/#/runs/1").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://x",
            "https://",
            "https://a b",
            "data:text/html,x",
        ] {
            assert!(check_run_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_names_its_fields_and_rejects_others() {
        let body = json!({"source_commit": "abc123", "dataset": null, "parent_version": {"version": "@champion"}});
        let patch = LineagePatch::from_json(body.as_object().unwrap()).unwrap();
        assert_eq!(patch.source_commit, Some(Some("abc123".into())));
        assert_eq!(patch.dataset, Some(None));
        assert_eq!(patch.run_url, None);
        assert_eq!(
            patch.parent_version,
            Some(Some(ParentRef {
                model: None,
                version: VersionRef::Alias("champion".into())
            }))
        );
        assert!(
            LineagePatch::from_json(json!({"sourceCommit": "x"}).as_object().unwrap()).is_err()
        );
    }

    #[test]
    fn stored_lineage_ignores_unknown_keys() {
        let l = Lineage::from_column(r#"{"dataset":"d","later_field":1}"#);
        assert_eq!(l.dataset.as_deref(), Some("d"));
        assert_eq!(Lineage::from_column(&l.to_column()), l);
    }
}
