//! Execution environments (DataRobot): named series of docker contexts.
//! An environment version stores its context (and optionally an image tar)
//! as blobs; its build is a job (`environments::BUILD_JOB`, run by
//! `envbuild::run_build`) that moves `build_status` from submitted through
//! processing to success or failed.

use rusqlite::{params, params_from_iter, OptionalExtension};
use serde_json::Value;

use super::access::EntityKind;
use super::page::{Page, PageRequest};
use super::{new_id, now, Digest, Error, Principal, Registry, Result};

pub const BUILD_JOB: &str = "environment_build";

pub const LANGUAGES: [&str; 6] = ["python", "r", "java", "julia", "legacy", "other"];
pub const USE_CASES: [&str; 6] = ["customModel", "notebook", "gpu", "customApplication", "sparkApplication", "customJob"];
pub const BUILD_STATUSES: [&str; 4] = ["submitted", "processing", "failed", "success"];

#[derive(Clone, Debug, PartialEq)]
pub struct Environment {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub description: String,
    pub programming_language: String,
    pub is_public: bool,
    pub use_cases: Vec<String>,
    /// `[{fieldName, displayName}]`, exactly as the client sent it.
    pub required_metadata_keys: Value,
    pub created_by: String,
    pub username: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Default)]
pub struct NewEnvironment {
    /// A caller-chosen id (admins only; checked by the caller).
    pub id: Option<String>,
    pub name: String,
    pub description: String,
    pub programming_language: String,
    pub is_public: bool,
    pub use_cases: Vec<String>,
    pub required_metadata_keys: Value,
}

#[derive(Clone, Debug, Default)]
pub struct EnvironmentPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub programming_language: Option<String>,
    pub is_public: Option<bool>,
    pub use_cases: Option<Vec<String>>,
    pub required_metadata_keys: Option<Value>,
}

#[derive(Clone, Debug, Default)]
pub struct EnvironmentQuery {
    pub search: Option<String>,
    pub use_case: Option<String>,
    pub only_own: bool,
    pub is_public: Option<bool>,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EnvVersion {
    pub id: String,
    pub environment_id: String,
    pub label: String,
    pub description: String,
    pub context: Option<StoredFile>,
    pub image: Option<StoredFile>,
    pub docker_image_uri: Option<String>,
    pub build_status: String,
    pub image_id: Option<String>,
    pub base_image: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredFile {
    pub sha256: String,
    pub size: u64,
    pub filename: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct NewEnvVersion {
    pub id: Option<String>,
    pub label: String,
    pub description: String,
    /// The context blob (already stored under an upload guard) and its
    /// upload file name.
    pub context: Option<(Digest, String)>,
    pub image: Option<Digest>,
    pub docker_image_uri: Option<String>,
}

const ENV_COLUMNS: &str = "e.id, e.team_id, e.name, e.description, e.programming_language, e.is_public, e.use_cases,
    e.required_metadata_keys, e.created_by, u.username, e.created_at";

fn env_from_row(r: &rusqlite::Row) -> rusqlite::Result<Environment> {
    let json = |i: usize| -> rusqlite::Result<Value> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    };
    let use_cases = json(6)?.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
    Ok(Environment {
        id: r.get(0)?,
        team_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        programming_language: r.get(4)?,
        is_public: r.get(5)?,
        use_cases,
        required_metadata_keys: json(7)?,
        created_by: r.get(8)?,
        username: r.get(9)?,
        created_at: r.get(10)?,
    })
}

const VERSION_COLUMNS: &str = "id, environment_id, label, description, context_sha256, context_size, context_filename,
    image_sha256, image_size, docker_image_uri, build_status, image_id, base_image, created_at";

fn version_from_row(r: &rusqlite::Row) -> rusqlite::Result<EnvVersion> {
    let context = r
        .get::<_, Option<String>>(4)?
        .map(|sha256| -> rusqlite::Result<StoredFile> {
            Ok(StoredFile { sha256, size: r.get::<_, i64>(5)? as u64, filename: r.get(6)? })
        })
        .transpose()?;
    let image = r
        .get::<_, Option<String>>(7)?
        .map(|sha256| -> rusqlite::Result<StoredFile> { Ok(StoredFile { sha256, size: r.get::<_, i64>(8)? as u64, filename: None }) })
        .transpose()?;
    Ok(EnvVersion {
        id: r.get(0)?,
        environment_id: r.get(1)?,
        label: r.get(2)?,
        description: r.get(3)?,
        context,
        image,
        docker_image_uri: r.get(9)?,
        build_status: r.get(10)?,
        image_id: r.get(11)?,
        base_image: r.get(12)?,
        created_at: r.get(13)?,
    })
}

impl Registry {
    pub fn create_environment(&self, who: &Principal, new: NewEnvironment) -> Result<Environment> {
        let tx = self.write()?;
        let id = new.id.unwrap_or_else(new_id);
        let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM environments WHERE id = ?1)", [&id], |r| r.get(0))?;
        if taken {
            return Err(Error::Conflict(format!("an environment with the id {id} already exists")));
        }
        tx.execute(
            "INSERT INTO environments (id, team_id, name, description, programming_language, is_public, use_cases,
             required_metadata_keys, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                who.team_id,
                new.name,
                new.description,
                new.programming_language,
                new.is_public,
                Value::from(new.use_cases).to_string(),
                new.required_metadata_keys.to_string(),
                who.user_id,
                now()
            ],
        )?;
        tx.execute(
            "INSERT INTO access_roles (kind, entity_id, user_id, role) VALUES ('environment', ?1, ?2, 'OWNER')",
            params![id, who.user_id],
        )?;
        tx.commit()?;
        self.get_environment(who, &id)
    }

    /// A live (not soft-deleted) environment the caller may see.
    pub fn get_environment(&self, who: &Principal, id: &str) -> Result<Environment> {
        self.access(who, EntityKind::Environment, id)?;
        self.load_environment(id)?.ok_or_else(|| Error::not_found("execution environment", id))
    }

    fn load_environment(&self, id: &str) -> Result<Option<Environment>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENV_COLUMNS} FROM environments e JOIN users u ON u.id = e.created_by WHERE e.id = ?1 AND e.deleted_at IS NULL"
            ))?
            .query_row([id], env_from_row)
            .optional()?)
    }

    /// Newest first, with the total count.
    pub fn list_environments(&self, who: &Principal, q: &EnvironmentQuery) -> Result<Page<Environment>> {
        let mut filter = String::from("e.team_id = ? AND e.deleted_at IS NULL");
        let mut args: Vec<rusqlite::types::Value> = vec![who.team_id.clone().into()];
        if let Some(ids) = self.visible_ids(who, EntityKind::Environment)? {
            filter.push_str(" AND e.id IN (SELECT value FROM json_each(?))");
            args.push(Value::from(ids).to_string().into());
        }
        if let Some(text) = &q.search {
            filter.push_str(" AND (instr(lower(e.name), lower(?)) > 0 OR instr(lower(e.description), lower(?)) > 0)");
            args.push(text.clone().into());
            args.push(text.clone().into());
        }
        if let Some(use_case) = &q.use_case {
            filter.push_str(" AND EXISTS (SELECT 1 FROM json_each(e.use_cases) WHERE value = ?)");
            args.push(use_case.clone().into());
        }
        if q.only_own {
            filter.push_str(" AND e.created_by = ?");
            args.push(who.user_id.clone().into());
        }
        if let Some(public) = q.is_public {
            filter.push_str(" AND e.is_public = ?");
            args.push((public as i64).into());
        }
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM environments e WHERE {filter}"))?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
        args.push((q.limit as i64 + 1).into());
        args.push((q.offset as i64).into());
        let mut items = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENV_COLUMNS} FROM environments e JOIN users u ON u.id = e.created_by WHERE {filter}
                 ORDER BY e.created_at DESC, e.id DESC LIMIT ? OFFSET ?"
            ))?
            .query_map(params_from_iter(args.iter()), env_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let has_more = items.len() as u64 > q.limit;
        items.truncate(q.limit as usize);
        Ok(Page { items, total: Some(total as u64), has_more, next: None })
    }

    pub fn update_environment(&self, who: &Principal, id: &str, patch: EnvironmentPatch) -> Result<Environment> {
        self.require(who, EntityKind::Environment, id, super::access::Access::Write)?;
        let mut env = self.get_environment(who, id)?;
        if let Some(v) = patch.name {
            env.name = v;
        }
        if let Some(v) = patch.description {
            env.description = v;
        }
        if let Some(v) = patch.programming_language {
            env.programming_language = v;
        }
        if let Some(v) = patch.is_public {
            env.is_public = v;
        }
        if let Some(v) = patch.use_cases {
            env.use_cases = v;
        }
        if let Some(v) = patch.required_metadata_keys {
            env.required_metadata_keys = v;
        }
        self.conn.execute(
            "UPDATE environments SET name = ?2, description = ?3, programming_language = ?4, is_public = ?5,
             use_cases = ?6, required_metadata_keys = ?7 WHERE id = ?1",
            params![
                id,
                env.name,
                env.description,
                env.programming_language,
                env.is_public,
                Value::from(env.use_cases.clone()).to_string(),
                env.required_metadata_keys.to_string()
            ],
        )?;
        Ok(env)
    }

    /// Marks an environment deleted: it disappears from every route, its
    /// rows and blobs stay until `permadelete_environments`.
    pub fn soft_delete_environment(&self, who: &Principal, id: &str) -> Result<()> {
        self.require(who, EntityKind::Environment, id, super::access::Access::Own)?;
        self.conn.execute("UPDATE environments SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL", params![id, now()])?;
        Ok(())
    }

    /// Removes soft-deleted environments of the caller's team for good, all
    /// or none: NotFound if one is unknown, Conflict if one is still live.
    pub fn permadelete_environments(&self, who: &Principal, ids: &[String]) -> Result<()> {
        let tx = self.write()?;
        for id in ids {
            let deleted: Option<Option<String>> = tx
                .query_row("SELECT deleted_at FROM environments WHERE id = ?1 AND team_id = ?2", [id, &who.team_id], |r| r.get(0))
                .optional()?;
            match deleted {
                None => return Err(Error::NotFound(format!("at least one environment was not found: {id}"))),
                Some(None) => return Err(Error::Conflict(format!("at least one environment has not been soft deleted: {id}"))),
                Some(Some(_)) => {}
            }
        }
        for id in ids {
            tx.execute("DELETE FROM environment_versions WHERE environment_id = ?1", [id])?;
            tx.execute("DELETE FROM environments WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a new version in `submitted` state; the caller enqueues its
    /// build. The blobs must be stored under an upload guard still held.
    pub fn create_env_version(&self, who: &Principal, env_id: &str, new: NewEnvVersion) -> Result<EnvVersion> {
        self.require(who, EntityKind::Environment, env_id, super::access::Access::Write)?;
        let tx = self.write()?;
        let id = new.id.unwrap_or_else(new_id);
        let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM environment_versions WHERE id = ?1)", [&id], |r| r.get(0))?;
        if taken {
            return Err(Error::Conflict(format!("an environment version with the id {id} already exists")));
        }
        let at = now();
        for digest in new.context.as_ref().map(|(d, _)| d).into_iter().chain(new.image.as_ref()) {
            tx.execute(
                "INSERT INTO blobs (sha256, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![digest.sha256, digest.size, at],
            )?;
        }
        tx.execute(
            "INSERT INTO environment_versions (id, environment_id, label, description, context_sha256, context_size,
             context_filename, image_sha256, image_size, docker_image_uri, build_status, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'submitted', ?11, ?12)",
            params![
                id,
                env_id,
                new.label,
                new.description,
                new.context.as_ref().map(|(d, _)| d.sha256.clone()),
                new.context.as_ref().map(|(d, _)| d.size as i64),
                new.context.as_ref().map(|(_, name)| name.clone()),
                new.image.as_ref().map(|d| d.sha256.clone()),
                new.image.as_ref().map(|d| d.size as i64),
                new.docker_image_uri,
                who.user_id,
                at
            ],
        )?;
        tx.commit()?;
        self.get_env_version(who, env_id, &id)
    }

    pub fn get_env_version(&self, who: &Principal, env_id: &str, id: &str) -> Result<EnvVersion> {
        self.get_environment(who, env_id)?;
        self.conn
            .prepare_cached(&format!("SELECT {VERSION_COLUMNS} FROM environment_versions WHERE id = ?1 AND environment_id = ?2"))?
            .query_row([id, env_id], version_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("execution environment version", id))
    }

    /// For the build job, which acts for no user.
    pub fn env_version_by_id(&self, id: &str) -> Result<EnvVersion> {
        self.conn
            .prepare_cached(&format!("SELECT {VERSION_COLUMNS} FROM environment_versions WHERE id = ?1"))?
            .query_row([id], version_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("execution environment version", id))
    }

    /// Newest first; `search` matches id, image id, label and description.
    pub fn list_env_versions(
        &self,
        who: &Principal,
        env_id: &str,
        build_status: Option<&str>,
        search: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<EnvVersion>> {
        self.get_environment(who, env_id)?;
        let PageRequest::Offset { offset, limit } = page else {
            return Err(Error::Internal("environment versions are paged by offset".into()));
        };
        let mut filter = String::from("environment_id = ?");
        let mut args: Vec<rusqlite::types::Value> = vec![env_id.to_string().into()];
        if let Some(status) = build_status {
            filter.push_str(" AND build_status = ?");
            args.push(status.to_string().into());
        }
        if let Some(text) = search {
            filter.push_str(
                " AND (instr(lower(id), lower(?)) > 0 OR instr(lower(coalesce(image_id, '')), lower(?)) > 0
                  OR instr(lower(label), lower(?)) > 0 OR instr(lower(description), lower(?)) > 0)",
            );
            // Positional parameters: one copy of the text per use.
            for _ in 0..4 {
                args.push(text.to_string().into());
            }
        }
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM environment_versions WHERE {filter}"))?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
        args.push((limit as i64 + 1).into());
        args.push((offset as i64).into());
        let mut items = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM environment_versions WHERE {filter} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
            ))?
            .query_map(params_from_iter(args.iter()), version_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let has_more = items.len() as u64 > limit;
        items.truncate(limit as usize);
        Ok(Page { items, total: Some(total as u64), has_more, next: None })
    }

    /// The newest version of an environment (optionally: the newest that
    /// built successfully).
    pub fn latest_env_version(&self, env_id: &str, successful: bool) -> Result<Option<EnvVersion>> {
        let extra = if successful { " AND build_status = 'success'" } else { "" };
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM environment_versions WHERE environment_id = ?1{extra}
                 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row([env_id], version_from_row)
            .optional()?)
    }

    /// Moves a build along; only the build job calls this.
    pub fn set_env_build(&self, id: &str, status: &str, image_id: Option<&str>, base_image: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE environment_versions SET build_status = ?2, image_id = coalesce(?3, image_id),
             base_image = coalesce(?4, base_image) WHERE id = ?1",
            params![id, status, image_id, base_image],
        )?;
        Ok(())
    }
}
