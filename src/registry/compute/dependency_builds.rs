//! Dependency builds: a version's requirements.txt turned into an
//! environment its model runs in (`crate::runtime::deps` builds it; the job
//! is `crate::compute::jobs::run_dependency_build`). One row per version:
//! submitted → processing → success or failed. Starting again after a
//! failure rebuilds; while one runs or after a success, starting returns
//! the build there is. Cancelling fails it, saying so.

use serde_json::{json, Value};

use crate::registry::access::roles::Access;
use crate::registry::compute::jobs::enqueue_job_in;
use crate::registry::{now, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

pub const DEPENDENCY_BUILD_JOB: &str = "dependency-build";

#[derive(Clone, Debug, PartialEq)]
pub struct DependencyBuild {
    pub version_id: String,
    pub team_id: String,
    /// submitted, processing, success or failed.
    pub status: String,
    pub env_key: Option<String>,
    pub job_id: String,
    pub build_start: String,
    pub build_end: Option<String>,
}

impl DependencyBuild {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "success" | "failed")
    }
}

const COLUMNS: &str = "version_id, team_id, status, env_key, job_id, build_start, build_end";

fn from_row(r: &sql::Row) -> sql::Result<DependencyBuild> {
    Ok(DependencyBuild {
        version_id: r.get(0)?,
        team_id: r.get(1)?,
        status: r.get(2)?,
        env_key: r.get(3)?,
        job_id: r.get(4)?,
        build_start: r.get(5)?,
        build_end: r.get(6)?,
    })
}

impl Registry {
    fn dependency_build_row(&self, version_id: &str) -> Result<Option<DependencyBuild>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM dependency_builds WHERE version_id = ?1"))?
            .query_row([version_id], from_row)
            .optional()?)
    }

    /// The version of `model_id` the caller may see, and its dependencies.
    fn version_dependencies(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<Value> {
        let version = self.get_version_by_id(who, model_id, version_id)?;
        Ok(version.attrs.get("dependencies").cloned().unwrap_or_else(|| json!([])))
    }

    /// Starts a build (or returns the one running or done). 422 for a
    /// version with no dependencies.
    pub fn start_dependency_build(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<DependencyBuild> {
        let deps = self.version_dependencies(who, model_id, version_id)?;
        if deps.as_array().is_none_or(Vec::is_empty) {
            return Err(Error::unprocessable(format!(
                "custom model version {version_id} has no dependencies (no requirements.txt at its root), so there is nothing to build"
            )));
        }
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        if let Some(build) = self.dependency_build_row(version_id)? {
            if build.status != "failed" {
                return Ok(build);
            }
        }
        let job = enqueue_job_in(&tx, &who.team_id, DEPENDENCY_BUILD_JOB, Some(version_id), json!({"modelId": model_id, "userId": who.user_id}), None)?;
        let build = DependencyBuild {
            version_id: version_id.to_string(),
            team_id: who.team_id.clone(),
            status: "submitted".into(),
            env_key: None,
            job_id: job.id,
            build_start: now(),
            build_end: None,
        };
        tx.execute(
            &format!(
                "INSERT INTO dependency_builds ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (version_id) DO UPDATE SET status = excluded.status, env_key = NULL, job_id = excluded.job_id,
                     build_start = excluded.build_start, build_end = NULL"
            ),
            params![build.version_id, build.team_id, build.status, build.env_key, build.job_id, build.build_start, build.build_end],
        )?;
        tx.commit()?;
        Ok(build)
    }

    /// The version's build; 422 when none was started.
    pub fn get_dependency_build(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<DependencyBuild> {
        self.get_version_by_id(who, model_id, version_id)?;
        self.dependency_build_row(version_id)?.ok_or_else(|| {
            Error::unprocessable(format!("no dependency build was started for custom model version {version_id}"))
        })
    }

    /// The build's log (the job's), once the build has finished.
    pub fn dependency_build_log(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<String> {
        let build = self.get_dependency_build(who, model_id, version_id)?;
        if !build.is_finished() {
            return Err(Error::NotFound(format!("the dependency build of version {version_id} is still in progress; its log is ready when it ends")));
        }
        self.job_log(&build.job_id)
    }

    /// Cancels a running build: it fails, and its job kills pip.
    pub fn cancel_dependency_build(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<()> {
        self.get_dependency_build(who, model_id, version_id)?;
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let build = self.dependency_build_row(version_id)?.ok_or_else(|| Error::unprocessable("no dependency build was started"))?;
        if build.is_finished() {
            return Err(Error::Conflict(format!("the dependency build of version {version_id} has already finished ({})", build.status)));
        }
        tx.execute(
            "UPDATE dependency_builds SET status = 'failed', build_end = ?2 WHERE version_id = ?1",
            params![version_id, now()],
        )?;
        Registry::request_cancel_in(&tx, &build.job_id)?;
        tx.commit()?;
        Ok(())
    }

    /// The job's progress. A build that was cancelled (already failed) stays
    /// as it is; `env_key` is recorded once known.
    pub fn set_dependency_build(&self, version_id: &str, job_id: &str, status: &str, env_key: Option<&str>) -> Result<()> {
        let end = matches!(status, "success" | "failed").then(now);
        self.conn.execute(
            "UPDATE dependency_builds SET status = ?3, env_key = COALESCE(?4, env_key), build_end = COALESCE(?5, build_end)
             WHERE version_id = ?1 AND job_id = ?2 AND status IN ('submitted', 'processing')",
            params![version_id, job_id, status, env_key, end],
        )?;
        Ok(())
    }
}
