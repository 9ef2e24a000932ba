//! Execution environments (DataRobot): named series of docker contexts.
//! An environment version stores its context (and optionally an image tar)
//! as blobs; its build is a job (`environments::BUILD_JOB`, run by
//! `envbuild::run_build`) that moves `build_status` from submitted through
//! processing to success or failed.

use serde_json::Value;

use crate::registry::access::roles::{visible_sql, Access, EntityKind};
use crate::registry::compute::jobs::{enqueue_job_in, Job};
use crate::registry::page::{offset_page, offset_tail, Page, PageRequest};
use crate::registry::{new_id, now, Digest, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, params_from_iter, OptionalExtension};

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
    /// A caller-chosen id, for tests and the operator's tools only: environment ids are
    /// global, so no request may choose one (a collision would reveal another team's row).
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

fn env_from_row(r: &sql::Row) -> sql::Result<Environment> {
    let json = |i: usize| -> sql::Result<Value> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| sql::Error::conversion(i, e))
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

fn version_from_row(r: &sql::Row) -> sql::Result<EnvVersion> {
    let context = r
        .get::<_, Option<String>>(4)?
        .map(|sha256| -> sql::Result<StoredFile> {
            Ok(StoredFile { sha256, size: r.get::<_, i64>(5)? as u64, filename: r.get(6)? })
        })
        .transpose()?;
    let image = r
        .get::<_, Option<String>>(7)?
        .map(|sha256| -> sql::Result<StoredFile> { Ok(StoredFile { sha256, size: r.get::<_, i64>(8)? as u64, filename: None }) })
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
        let mut args: Vec<sql::Value> = vec![who.team_id.clone().into()];
        // The access rule, as index-backed EXISTS probes (no id list).
        filter.push_str(&visible_sql(who, EntityKind::Environment, "e", &mut args));
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
        let tail = offset_tail(q.offset, q.limit, &mut args);
        let items = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENV_COLUMNS} FROM environments e JOIN users u ON u.id = e.created_by WHERE {filter}
                 ORDER BY e.created_at DESC, e.id DESC{tail}"
            ))?
            .query_map(params_from_iter(args.iter()), env_from_row)?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(offset_page(items, q.limit, total))
    }

    /// Read, merge and write in one write transaction, so two concurrent
    /// PATCHes of different fields both land.
    pub fn update_environment(&self, who: &Principal, id: &str, patch: EnvironmentPatch) -> Result<Environment> {
        let tx = self.write()?;
        self.require(who, EntityKind::Environment, id, Access::Write)?;
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
        tx.execute(
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
        tx.commit()?;
        Ok(env)
    }

    /// Marks an environment deleted: it disappears from every route, its
    /// rows and blobs stay until `permadelete_environments`.
    pub fn soft_delete_environment(&self, who: &Principal, id: &str) -> Result<()> {
        self.require(who, EntityKind::Environment, id, Access::Own)?;
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

    /// Records a new version in `submitted` state and queues its build job
    /// (`BUILD_JOB`, input `{"environmentId"}`) in the same transaction, so
    /// no version is ever left without a build. The blobs must be stored
    /// under an upload guard still held. Call `crate::jobs::wake()` after.
    pub fn create_env_version_and_build(&self, who: &Principal, env_id: &str, new: NewEnvVersion) -> Result<(EnvVersion, Job)> {
        let tx = self.write()?;
        let id = self.insert_env_version(&tx, who, env_id, new)?;
        let job = enqueue_job_in(&tx, &who.team_id, BUILD_JOB, Some(&id), serde_json::json!({"environmentId": env_id}), None)?;
        tx.commit()?;
        Ok((self.get_env_version(who, env_id, &id)?, job))
    }

    /// Records a new version in `submitted` state without queueing its
    /// build. Prefer `create_env_version_and_build`; the offline CLI still
    /// queues its build itself.
    pub fn create_env_version(&self, who: &Principal, env_id: &str, new: NewEnvVersion) -> Result<EnvVersion> {
        let tx = self.write()?;
        let id = self.insert_env_version(&tx, who, env_id, new)?;
        tx.commit()?;
        self.get_env_version(who, env_id, &id)
    }

    fn insert_env_version(&self, tx: &sql::Connection, who: &Principal, env_id: &str, new: NewEnvVersion) -> Result<String> {
        self.require(who, EntityKind::Environment, env_id, Access::Write)?;
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
        Ok(id)
    }

    pub fn get_env_version(&self, who: &Principal, env_id: &str, id: &str) -> Result<EnvVersion> {
        self.get_environment(who, env_id)?;
        self.conn
            .prepare_cached(&format!("SELECT {VERSION_COLUMNS} FROM environment_versions WHERE id = ?1 AND environment_id = ?2"))?
            .query_row([id, env_id], version_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("execution environment version", id))
    }

    /// An environment version by its id alone, if the caller may use its
    /// environment (same team, not deleted, readable by the access rule).
    /// Unknown, another team's and invisible are one and the same NotFound,
    /// which names only the id the caller sent.
    pub fn usable_env_version(&self, who: &Principal, id: &str) -> Result<EnvVersion> {
        let not_found = || Error::not_found("execution environment version", id);
        let version = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM environment_versions WHERE id = ?1 AND environment_id IN
                 (SELECT e.id FROM environments e WHERE e.team_id = ?2 AND e.deleted_at IS NULL)"
            ))?
            .query_row([id, &who.team_id], version_from_row)
            .optional()?
            .ok_or_else(not_found)?;
        match self.access(who, EntityKind::Environment, &version.environment_id) {
            Ok(_) => Ok(version),
            Err(Error::NotFound(_)) => Err(not_found()),
            Err(other) => Err(other),
        }
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
        let mut args: Vec<sql::Value> = vec![env_id.to_string().into()];
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
        let tail = offset_tail(offset, limit, &mut args);
        let items = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM environment_versions WHERE {filter} ORDER BY created_at DESC, rowid DESC{tail}"
            ))?
            .query_map(params_from_iter(args.iter()), version_from_row)?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(offset_page(items, limit, total))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_version_and_its_build_job_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let who = registry.operator().unwrap();
        let env = registry.create_environment(&who, NewEnvironment { name: "e".into(), ..Default::default() }).unwrap();
        let new = NewEnvVersion { docker_image_uri: Some("alpine:3".into()), ..Default::default() };
        let (version, job) = registry.create_env_version_and_build(&who, &env.id, new).unwrap();
        let queued = registry.latest_job_for(&version.id).unwrap().expect("the build job is queued with the version");
        assert_eq!((queued.id.as_str(), queued.kind.as_str(), queued.state), (job.id.as_str(), BUILD_JOB, crate::registry::JobState::Queued));
        // An unknown environment leaves neither a version nor a job.
        let new = NewEnvVersion { id: Some("v2".into()), docker_image_uri: Some("alpine:3".into()), ..Default::default() };
        assert!(registry.create_env_version_and_build(&who, "nope", new).is_err());
        assert!(registry.latest_job_for("v2").unwrap().is_none());
    }
}
