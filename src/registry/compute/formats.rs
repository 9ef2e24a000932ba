//! Format artifacts: a version's weights converted into another format
//! (ONNX, TFLite) and verified against the original, or (Core ML) served
//! unverified and saying so (the job is `crate::compute::formats::run`).
//! One row per version and format, made
//! when a conversion is first asked for (on upload, on a download of a
//! missing format, or explicitly): queued → running → ready (the artifact is
//! a blob the row owns; the version never changes) or failed (with a
//! reason). A failed row is queued again only by an explicit request, so a
//! client retrying its download does not restart a doomed conversion. The
//! log is the job's.

use serde_json::{json, Value};

use crate::registry::access::roles::Access;
use crate::registry::compute::jobs::enqueue_job_in;
use crate::registry::webhooks::{emit, EventSubject};
use crate::registry::{new_id, now, Digest, Error, Job, Principal, Registry, Result, Version};
use crate::store::sql::{self, params, OptionalExtension};

/// The job that converts and verifies (`crate::compute::formats::run`).
pub const FORMAT_JOB: &str = "format-conversion";

#[derive(Clone, Debug, PartialEq)]
pub struct FormatArtifact {
    pub id: String,
    pub team_id: String,
    pub model_id: String,
    pub version_id: String,
    pub format: String,
    /// queued, running, ready or failed.
    pub state: String,
    pub source_sha256: String,
    /// The input shape a TorchScript export was asked with.
    pub input_shape: Option<Vec<i64>>,
    /// Why it failed.
    pub reason: Option<String>,
    pub job_id: String,
    /// The converted file, once ready.
    pub artifact: Option<Digest>,
    pub provenance: Value,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl FormatArtifact {
    pub fn is_ready(&self) -> bool {
        self.state == "ready"
    }

    /// Whether the artifact was checked against the original (the same
    /// inputs gave the same outputs): None until it is ready. The job
    /// records it in the provenance with the other facts of how the file
    /// was made (nothing filters on it, so it needs no column); a ready row
    /// without it predates Core ML, when every artifact served was checked.
    pub fn verified(&self) -> Option<bool> {
        self.is_ready().then(|| self.provenance.get("verified").and_then(Value::as_bool).unwrap_or(true))
    }

    /// Why a ready artifact was not verified.
    pub fn unverified_reason(&self) -> Option<&str> {
        match self.verified() {
            Some(false) => self.provenance.get("unverifiedReason").and_then(Value::as_str),
            _ => None,
        }
    }
}

const COLUMNS: &str = "id, team_id, model_id, version_id, format, state, source_sha256, input_shape, reason, job_id, sha256, size, \
    provenance, created_by, created_at, finished_at";

fn from_row(r: &sql::Row) -> sql::Result<FormatArtifact> {
    let json_of = |text: Option<String>| text.and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let sha256: Option<String> = r.get(10)?;
    let size: Option<i64> = r.get(11)?;
    Ok(FormatArtifact {
        id: r.get(0)?,
        team_id: r.get(1)?,
        model_id: r.get(2)?,
        version_id: r.get(3)?,
        format: r.get(4)?,
        state: r.get(5)?,
        source_sha256: r.get(6)?,
        input_shape: json_of(r.get(7)?).and_then(|v| serde_json::from_value(v).ok()),
        reason: r.get(8)?,
        job_id: r.get(9)?,
        artifact: sha256.map(|sha256| Digest { sha256, size: size.unwrap_or(0) as u64 }),
        provenance: json_of(r.get(12)?).unwrap_or(Value::Null),
        created_by: r.get(13)?,
        created_at: r.get(14)?,
        finished_at: r.get(15)?,
    })
}

/// What a request for a format does to an existing row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// A download or an upload: a failed row stays failed.
    Never,
    /// An explicit request: a failed one is queued again.
    Failed,
}

impl Registry {
    fn format_row(&self, id: &str) -> Result<Option<FormatArtifact>> {
        Ok(self.conn.prepare_cached(&format!("SELECT {COLUMNS} FROM format_artifacts WHERE id = ?1"))?.query_row([id], from_row).optional()?)
    }

    /// The artifact of `format` for a version the caller has already read
    /// (through `get_version`, which applies the team and role rules).
    pub fn format_artifact(&self, version: &Version, format: &str) -> Result<Option<FormatArtifact>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM format_artifacts WHERE version_id = ?1 AND format = ?2"))?
            .query_row([&version.id, format], from_row)
            .optional()?)
    }

    /// Every format artifact of a version the caller has already read,
    /// by format.
    pub fn format_artifacts(&self, version: &Version) -> Result<Vec<FormatArtifact>> {
        let rows = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM format_artifacts WHERE version_id = ?1 ORDER BY format"))?
            .query_map([&version.id], from_row)?
            .collect::<sql::Result<_>>()?;
        Ok(rows)
    }

    /// Asks for `format` of a version (the caller checked that a converter
    /// exists for it): records a queued row and its job in one transaction,
    /// or returns the row there is (with no job). Call `crate::jobs::wake()`
    /// after. A download is a read, and the artifact
    /// is derived from what the caller may already read, so read access is
    /// enough; another team's version is NotFound (`model_for`).
    pub fn request_format(
        &self,
        who: &Principal,
        version: &Version,
        format: &str,
        input_shape: Option<&[i64]>,
        retry: Retry,
    ) -> Result<(FormatArtifact, Option<Job>)> {
        let source = version.files.first().ok_or_else(|| Error::NotFound(format!("version {} has no file", version.number)))?;
        let tx = self.write()?;
        self.model_for(who, &version.model_id, Access::Read)?;
        let existing = self.format_artifact(version, format)?;
        let shape_json = input_shape.map(|s| json!(s).to_string());
        let at = now();
        let row = match existing {
            Some(row) if !(retry == Retry::Failed && row.state == "failed") => return Ok((row, None)),
            Some(row) => {
                let job = enqueue_job_in(&tx, &who.team_id, FORMAT_JOB, Some(&row.id), json!({}), None)?;
                tx.execute(
                    "UPDATE format_artifacts SET state = 'queued', reason = NULL, job_id = ?2, input_shape = COALESCE(?3, input_shape),
                     created_by = ?4, created_at = ?5, finished_at = NULL WHERE id = ?1",
                    params![row.id, job.id, shape_json, who.user_id, at],
                )?;
                (row.id, job)
            }
            None => {
                let id = new_id();
                let job = enqueue_job_in(&tx, &who.team_id, FORMAT_JOB, Some(&id), json!({}), None)?;
                tx.execute(
                    &format!(
                        "INSERT INTO format_artifacts ({COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, NULL, ?8, NULL, NULL, NULL, ?9, ?10, NULL)"
                    ),
                    params![id, who.team_id, version.model_id, version.id, format, source.sha256, shape_json, job.id, who.user_id, at],
                )?;
                (id, job)
            }
        };
        tx.commit()?;
        let (id, job) = row;
        Ok((self.format_row(&id)?.ok_or_else(|| Error::not_found("format artifact", &id))?, Some(job)))
    }

    /// A row by id for the job that converts it (no caller to check).
    pub fn format_artifact_by_id(&self, id: &str) -> Result<FormatArtifact> {
        self.format_row(id)?.ok_or_else(|| Error::not_found("format artifact", id))
    }

    /// The job took the row: queued → running. False when it is gone (its
    /// model deleted) or already finished.
    pub fn start_format(&self, id: &str) -> Result<bool> {
        let changed = self
            .conn
            .execute("UPDATE format_artifacts SET state = 'running' WHERE id = ?1 AND state IN ('queued', 'running')", [id])?;
        Ok(changed > 0)
    }

    /// The job's verdict: the stored artifact and its provenance (the
    /// caller holds an upload guard until this returns), or the reason it
    /// failed. False when the row is gone or finished meanwhile.
    pub fn finish_format(&self, id: &str, outcome: std::result::Result<(&Digest, &Value), &str>) -> Result<bool> {
        let tx = self.write()?;
        let at = now();
        let changed = match outcome {
            Ok((digest, provenance)) => {
                tx.execute(
                    "INSERT INTO blobs (sha256, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![digest.sha256, digest.size as i64, at],
                )?;
                tx.execute(
                    "UPDATE format_artifacts SET state = 'ready', sha256 = ?2, size = ?3, provenance = ?4, reason = NULL, finished_at = ?5
                     WHERE id = ?1 AND state IN ('queued', 'running')",
                    params![id, digest.sha256, digest.size as i64, provenance.to_string(), at],
                )?
            }
            Err(reason) => tx.execute(
                "UPDATE format_artifacts SET state = 'failed', reason = ?2, finished_at = ?3 WHERE id = ?1 AND state IN ('queued', 'running')",
                params![id, reason, at],
            )?,
        };
        if changed == 0 {
            // Rolled back: no blob row for an artifact nobody owns.
            return Ok(false);
        }
        let artifact = self.format_artifact_by_id(id)?; // this connection: inside the transaction
        let subject = EventSubject { team_id: &artifact.team_id, model_id: &artifact.model_id, version_id: Some(&artifact.version_id) };
        let data = json!({"format": artifact.format, "state": artifact.state, "reason": artifact.reason, "verified": artifact.verified()});
        emit(&tx, "conversion.finished", subject, data)?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, provenance: Value) -> FormatArtifact {
        FormatArtifact {
            id: "a".into(),
            team_id: "t".into(),
            model_id: "m".into(),
            version_id: "v".into(),
            format: "onnx".into(),
            state: state.into(),
            source_sha256: "0".repeat(64),
            input_shape: None,
            reason: None,
            job_id: "j".into(),
            artifact: None,
            provenance,
            created_by: "u".into(),
            created_at: now(),
            finished_at: None,
        }
    }

    #[test]
    fn a_ready_artifact_is_verified_unless_its_provenance_says_otherwise() {
        // Made before Core ML: every artifact served had been checked.
        let older = row("ready", json!({"converter": "skl2onnx", "checks": []}));
        assert_eq!((older.verified(), older.unverified_reason()), (Some(true), None));
        let coreml = row("ready", json!({"verified": false, "unverifiedReason": "it cannot run on Linux"}));
        assert_eq!((coreml.verified(), coreml.unverified_reason()), (Some(false), Some("it cannot run on Linux")));
        let checked = row("ready", json!({"verified": true, "unverifiedReason": null}));
        assert_eq!((checked.verified(), checked.unverified_reason()), (Some(true), None));
        assert_eq!(row("running", Value::Null).verified(), None);
    }
}
