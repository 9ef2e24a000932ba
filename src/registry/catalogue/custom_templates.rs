//! DataRobot custom templates: a small built-in catalogue compiled into the
//! binary, which every team sees and nobody changes, and the templates a
//! team's admins add (tables `custom_templates` and
//! `custom_template_files`, migration 0005). A template is metadata plus a
//! set of files (path -> blob, like a version's); a custom model template
//! is what `POST customModels/fromModelTemplate/` makes a model and its
//! first version from. What a template's fields may be, and how a model is
//! made from one, are `custom_template_rules`.
//!
//! The built-ins live under `templates/<id>/` at the repository top: a
//! `template.json` manifest (the same fields a create request sends) and
//! the files, embedded with `include_str!`.

use std::io::Read;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::registry::catalogue::models::{validate_version_paths, NewFile};
use crate::registry::{new_id, now, parse_attrs, Digest, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

/// A team may hold this many templates (lists are paged in memory).
pub const MAX_TEAM_TEMPLATES: usize = 1000;
/// A template may hold this many files, as a version may.
pub const MAX_TEMPLATE_FILES: usize = 1000;
/// What the built-ins name as their default environment: not an environment
/// row but "a python environment of the caller's team" (see
/// `template_environment` in `custom_template_rules`). An admin may
/// create an environment with this id to pin it.
pub const RUNTIME_ENVIRONMENT_ID: &str = "modelreg-python";
pub const RUNTIME_ENVIRONMENT_VERSION_ID: &str = "modelreg-python-latest";

/// What a template says, apart from its id, owner and files.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateFields {
    pub name: String,
    pub description: String,
    pub template_type: String,
    pub template_sub_type: String,
    pub template_metadata: Map<String, Value>,
    /// `{environmentId, environmentVersionId}`.
    pub default_environment: Value,
    pub default_resource_bundle_id: Option<String>,
    pub enabled: bool,
    pub is_hidden: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FileContent {
    /// Compiled into the binary.
    Builtin(&'static str),
    /// A stored blob.
    Blob(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TemplateFile {
    pub id: String,
    pub path: String,
    pub size: u64,
    pub content: FileContent,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CustomTemplate {
    pub id: String,
    /// None for a built-in.
    pub team_id: Option<String>,
    pub fields: TemplateFields,
    /// The creator's username ("modelreg" for a built-in).
    pub created_by: String,
    /// None for a built-in.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub files: Vec<TemplateFile>,
}

impl CustomTemplate {
    pub fn is_builtin(&self) -> bool {
        self.team_id.is_none()
    }
}

/// A change to a template: every field (computed from the template as it is
/// inside the write transaction), and its files when they are replaced.
pub struct TemplateUpdate {
    pub fields: TemplateFields,
    pub files: Option<Vec<NewFile>>,
}

// ----------------------------------------------------------------------------
// The built-in catalogue.

struct Builtin {
    id: &'static str,
    manifest: &'static str,
    files: &'static [(&'static str, &'static str)],
}

/// `builtin!("id", ["file", …])`: templates/<id>/template.json and the files.
macro_rules! builtin {
    ($id:literal, [$($path:literal),* $(,)?]) => {
        Builtin {
            id: $id,
            manifest: include_str!(concat!("../../../templates/", $id, "/template.json")),
            files: &[$(($path, include_str!(concat!("../../../templates/", $id, "/", $path)))),*],
        }
    };
}

const BUILTINS: &[Builtin] = &[
    builtin!("python3-regression", ["README.md", "coefficients.json", "custom.py"]),
    builtin!("python3-binary", ["README.md", "coefficients.json", "custom.py"]),
    builtin!("python3-unstructured-echo", ["README.md", "custom.py"]),
    builtin!("python3-sklearn-regression", ["README.md", "custom.py", "requirements.txt", "train.csv"]),
];

/// The built-in templates, parsed once. A manifest that does not parse is a
/// bug caught by this module's tests, never a user's input.
pub fn builtins() -> &'static [CustomTemplate] {
    static PARSED: OnceLock<Vec<CustomTemplate>> = OnceLock::new();
    PARSED.get_or_init(|| BUILTINS.iter().map(|b| parse_builtin(b).unwrap_or_else(|e| panic!("built-in template {}: {e}", b.id))).collect())
}

fn parse_builtin(b: &Builtin) -> std::result::Result<CustomTemplate, String> {
    let manifest: Map<String, Value> = serde_json::from_str(b.manifest).map_err(|e| format!("template.json: {e}"))?;
    let text = |key: &str| manifest.get(key).and_then(Value::as_str).map(String::from).ok_or(format!("template.json has no {key}"));
    let mut metadata = manifest.get("templateMetadata").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some((_, readme)) = b.files.iter().find(|(path, _)| *path == "README.md") {
        metadata.entry("readme").or_insert_with(|| json!(readme));
    }
    Ok(CustomTemplate {
        id: b.id.to_string(),
        team_id: None,
        fields: TemplateFields {
            name: text("name")?,
            description: text("description")?,
            template_type: text("templateType")?,
            template_sub_type: text("templateSubType")?,
            template_metadata: metadata,
            default_environment: manifest.get("defaultEnvironment").cloned().unwrap_or_else(runtime_environment),
            default_resource_bundle_id: manifest.get("defaultResourceBundleId").and_then(Value::as_str).map(String::from),
            enabled: true,
            is_hidden: false,
        },
        created_by: "modelreg".into(),
        created_at: None,
        updated_at: None,
        files: b
            .files
            .iter()
            .enumerate()
            .map(|(i, (path, text))| TemplateFile {
                id: format!("{}.{}", b.id, i + 1),
                path: path.to_string(),
                size: text.len() as u64,
                content: FileContent::Builtin(text),
            })
            .collect(),
    })
}

/// The default environment of a template that names none.
pub fn runtime_environment() -> Value {
    json!({"environmentId": RUNTIME_ENVIRONMENT_ID, "environmentVersionId": RUNTIME_ENVIRONMENT_VERSION_ID})
}

// ----------------------------------------------------------------------------
// Rows.

const COLUMNS: &str = "t.id, t.team_id, t.name, t.description, t.template_type, t.template_sub_type, t.template_metadata,
    t.default_environment, t.default_resource_bundle_id, t.enabled, t.is_hidden, u.username, t.created_at, t.updated_at";

fn from_row(r: &sql::Row) -> sql::Result<CustomTemplate> {
    let environment: String = r.get(7)?;
    Ok(CustomTemplate {
        id: r.get(0)?,
        team_id: Some(r.get(1)?),
        fields: TemplateFields {
            name: r.get(2)?,
            description: r.get(3)?,
            template_type: r.get(4)?,
            template_sub_type: r.get(5)?,
            template_metadata: parse_attrs(&r.get::<_, String>(6)?)?,
            default_environment: Value::Object(parse_attrs(&environment)?),
            default_resource_bundle_id: r.get(8)?,
            enabled: r.get(9)?,
            is_hidden: r.get(10)?,
        },
        created_by: r.get(11)?,
        created_at: Some(r.get(12)?),
        updated_at: Some(r.get(13)?),
        files: Vec::new(),
    })
}

/// Forbidden unless the caller is a team admin (who alone add, change and
/// delete templates).
pub fn admin_only(who: &Principal) -> Result<()> {
    if who.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden("only team admins may add, change or delete custom templates".into()))
    }
}

fn check_files(files: &[NewFile]) -> Result<()> {
    if files.len() > MAX_TEMPLATE_FILES {
        return Err(Error::invalid("file", format!("a template may hold at most {MAX_TEMPLATE_FILES} files; this one would hold {}", files.len())));
    }
    validate_version_paths(files.iter().map(|f| f.path.as_str()))
}

impl Registry {
    /// Every template the caller sees: the built-ins, then the team's
    /// (oldest first).
    pub fn custom_templates(&self, who: &Principal) -> Result<Vec<CustomTemplate>> {
        let mut all = builtins().to_vec();
        let ids: Vec<String> = self
            .conn
            .prepare_cached("SELECT id FROM custom_templates WHERE team_id = ?1 ORDER BY created_at, id")?
            .query_map([&who.team_id], |r| r.get(0))?
            .collect::<sql::Result<_>>()?;
        for id in ids {
            all.push(self.load_custom_template(&who.team_id, &id)?.ok_or_else(|| Error::not_found("custom template", &id))?);
        }
        Ok(all)
    }

    /// A built-in, or a template of the caller's team; another team's is
    /// NotFound, as an unknown id is.
    pub fn get_custom_template(&self, who: &Principal, id: &str) -> Result<CustomTemplate> {
        if let Some(b) = builtins().iter().find(|b| b.id == id) {
            return Ok(b.clone());
        }
        self.load_custom_template(&who.team_id, id)?.ok_or_else(|| Error::not_found("custom template", id))
    }

    fn load_custom_template(&self, team_id: &str, id: &str) -> Result<Option<CustomTemplate>> {
        let Some(mut template) = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM custom_templates t JOIN users u ON u.id = t.created_by WHERE t.id = ?1 AND t.team_id = ?2"
            ))?
            .query_row([id, team_id], from_row)
            .optional()?
        else {
            return Ok(None);
        };
        template.files = self
            .conn
            .prepare_cached("SELECT id, path, size, sha256 FROM custom_template_files WHERE template_id = ?1 ORDER BY position")?
            .query_map([id], |r| {
                Ok(TemplateFile { id: r.get(0)?, path: r.get(1)?, size: r.get::<_, i64>(2)? as u64, content: FileContent::Blob(r.get(3)?) })
            })?
            .collect::<sql::Result<_>>()?;
        Ok(Some(template))
    }

    /// A team admin adds a template. Its blobs must be stored already,
    /// under an upload guard the caller still holds.
    pub fn create_custom_template(&self, who: &Principal, fields: TemplateFields, files: Vec<NewFile>) -> Result<CustomTemplate> {
        admin_only(who)?;
        check_files(&files)?;
        let tx = self.write()?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM custom_templates WHERE team_id = ?1", [&who.team_id], |r| r.get(0))?;
        if count as usize >= MAX_TEAM_TEMPLATES {
            return Err(Error::unprocessable(format!("a team may hold at most {MAX_TEAM_TEMPLATES} custom templates; delete one first")));
        }
        let id = new_id();
        let at = now();
        // The row, then its fields as an update writes them.
        tx.execute(
            "INSERT INTO custom_templates (id, team_id, name, description, template_type, template_sub_type,
             default_environment, created_by, created_at, updated_at) VALUES (?1, ?2, '', '', '', '', '{}', ?3, ?4, ?4)",
            params![id, who.team_id, who.user_id, at],
        )?;
        write_fields(&tx, &id, fields, &at)?;
        insert_files(&tx, &id, files, &at)?;
        tx.commit()?;
        self.get_custom_template(who, &id)
    }

    /// Changes a template of the caller's team: `build` gets the template as
    /// it is inside the write transaction and returns all of its fields
    /// (and its files, when they are replaced). Built-ins are read-only.
    pub fn update_custom_template(
        &self,
        who: &Principal,
        id: &str,
        build: impl FnOnce(&CustomTemplate) -> Result<TemplateUpdate>,
    ) -> Result<CustomTemplate> {
        let tx = self.write()?;
        let current = self.writable_template(who, id)?;
        let update = build(&current)?;
        if let Some(files) = &update.files {
            check_files(files)?;
        }
        let at = now();
        write_fields(&tx, id, update.fields, &at)?;
        if let Some(files) = update.files {
            tx.execute("DELETE FROM custom_template_files WHERE template_id = ?1", [id])?;
            insert_files(&tx, id, files, &at)?;
        }
        tx.commit()?;
        self.get_custom_template(who, id)
    }

    pub fn delete_custom_template(&self, who: &Principal, id: &str) -> Result<()> {
        let tx = self.write()?;
        self.writable_template(who, id)?;
        // The files go with it (ON DELETE CASCADE); gc sweeps their blobs
        // once nothing else holds them.
        tx.execute("DELETE FROM custom_templates WHERE id = ?1 AND team_id = ?2", [id, &who.team_id])?;
        tx.commit()?;
        Ok(())
    }

    /// NotFound for another team's or an unknown id, Forbidden for a
    /// built-in or a caller who is not a team admin.
    pub fn writable_template(&self, who: &Principal, id: &str) -> Result<CustomTemplate> {
        let template = self.get_custom_template(who, id)?;
        if template.is_builtin() {
            return Err(Error::Forbidden(format!("{id} is a built-in template: built-in templates are read-only")));
        }
        admin_only(who)?;
        Ok(template)
    }

    /// The template's files as stored blobs: a built-in's text is put into
    /// the blob store (content-addressed, so once per content). The caller
    /// holds an upload guard until the rows that use them commit.
    pub fn template_file_digests(&self, template: &CustomTemplate) -> Result<Vec<(String, Digest)>> {
        template
            .files
            .iter()
            .map(|f| {
                let digest = match &f.content {
                    FileContent::Builtin(text) => self.put_blob(&mut text.as_bytes(), None)?,
                    FileContent::Blob(sha256) => Digest { sha256: sha256.clone(), size: f.size },
                };
                Ok((f.path.clone(), digest))
            })
            .collect()
    }

    /// A template file's bytes, if it holds at most `max` of them.
    pub fn template_file_bytes(&self, file: &TemplateFile, max: u64) -> Result<Vec<u8>> {
        if file.size > max {
            return Err(Error::unprocessable(format!("{} is {} bytes; only files of at most {max} bytes are shown", file.path, file.size)));
        }
        match &file.content {
            FileContent::Builtin(text) => Ok(text.as_bytes().to_vec()),
            FileContent::Blob(sha256) => {
                let mut bytes = Vec::with_capacity(file.size as usize);
                self.open_blob(sha256)?.take(max).read_to_end(&mut bytes)?;
                Ok(bytes)
            }
        }
    }
}

/// Writes every field of a template and its update time.
fn write_fields(tx: &sql::Connection, id: &str, f: TemplateFields, at: &str) -> Result<()> {
    tx.execute(
        "UPDATE custom_templates SET name = ?2, description = ?3, template_type = ?4, template_sub_type = ?5,
         template_metadata = ?6, default_environment = ?7, default_resource_bundle_id = ?8, enabled = ?9,
         is_hidden = ?10, updated_at = ?11 WHERE id = ?1",
        params![
            id,
            f.name,
            f.description,
            f.template_type,
            f.template_sub_type,
            Value::Object(f.template_metadata).to_string(),
            f.default_environment.to_string(),
            f.default_resource_bundle_id,
            f.enabled,
            f.is_hidden,
            at
        ],
    )?;
    Ok(())
}

fn insert_files(tx: &sql::Connection, template_id: &str, files: Vec<NewFile>, at: &str) -> Result<()> {
    for (position, file) in files.into_iter().enumerate() {
        tx.execute(
            "INSERT INTO blobs (sha256, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![file.digest.sha256, file.digest.size, at],
        )?;
        tx.execute(
            "INSERT INTO custom_template_files (id, template_id, position, path, sha256, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![new_id(), template_id, position as i64, file.path, file.digest.sha256, file.digest.size],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_with_distinct_ids_and_its_readme() {
        let all = builtins();
        assert_eq!(all.len(), BUILTINS.len());
        let mut ids: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        for t in all {
            assert!(t.files.iter().any(|f| f.path == "custom.py"), "{}", t.id);
            assert!(t.fields.template_metadata["readme"].as_str().is_some_and(|r| !r.is_empty()), "{}", t.id);
            assert_eq!(t.fields.template_type, "customModel");
        }
    }

    #[test]
    fn builtins_are_read_only_and_team_templates_stay_in_their_team() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let admin = registry.operator().unwrap();
        assert!(matches!(registry.delete_custom_template(&admin, "python3-regression"), Err(Error::Forbidden(_))));
        let mut fields = builtins()[0].fields.clone();
        fields.name = "ours".into();
        let guard = registry.upload_guard().unwrap();
        let digest = registry.put_blob(&mut &b"print(1)\n"[..], None).unwrap();
        let made = registry.create_custom_template(&admin, fields, vec![NewFile { path: "custom.py".into(), digest }]).unwrap();
        drop(guard);
        assert_eq!(made.files.len(), 1);
        let team = registry.create_team("others").unwrap();
        let other = Principal { team_id: team.id, ..admin.clone() };
        assert!(matches!(registry.get_custom_template(&other, &made.id), Err(Error::NotFound(_))));
        assert!(matches!(registry.delete_custom_template(&other, &made.id), Err(Error::NotFound(_))));
        registry.delete_custom_template(&admin, &made.id).unwrap();
        assert!(matches!(registry.get_custom_template(&admin, &made.id), Err(Error::NotFound(_))));
    }
}
