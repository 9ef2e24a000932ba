//! Conversions: a version's Java main program compiled and packaged as a
//! runnable JAR (`crate::compute::convert` checks the request and runs the
//! job). One row per conversion: running → succeeded (the JAR is a blob the
//! row owns; the version is never changed), failed, or stopped (DELETE
//! while running, final at once: the job's later writes are guarded by
//! "still running", as for dependency builds). The log is the job's.

use serde_json::json;

use crate::registry::access::roles::Access;
use crate::registry::compute::jobs::enqueue_job_in;
use crate::registry::page::Page;
use crate::registry::webhooks::{emit, EventSubject};
use crate::registry::{new_id, now, Digest, Error, Job, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

/// The job that compiles and packages (`crate::compute::convert::run`).
pub const CONVERSION_JOB: &str = "custom-model-conversion";

#[derive(Clone, Debug, PartialEq)]
pub struct Conversion {
    pub id: String,
    pub team_id: String,
    pub model_id: String,
    pub version_id: String,
    pub main_program_item_id: String,
    /// The JAR's `Main-Class`.
    pub main_class: String,
    /// running, succeeded, failed or stopped.
    pub state: String,
    pub job_id: String,
    /// The JAR's blob, once succeeded.
    pub jar: Option<Digest>,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl Conversion {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

const COLUMNS: &str = "id, team_id, model_id, version_id, main_program_item_id, main_class, state, job_id, jar_sha256, jar_size, \
    created_by, created_at, finished_at";

fn from_row(r: &sql::Row) -> sql::Result<Conversion> {
    let sha256: Option<String> = r.get(8)?;
    let size: Option<i64> = r.get(9)?;
    Ok(Conversion {
        id: r.get(0)?,
        team_id: r.get(1)?,
        model_id: r.get(2)?,
        version_id: r.get(3)?,
        main_program_item_id: r.get(4)?,
        main_class: r.get(5)?,
        state: r.get(6)?,
        job_id: r.get(7)?,
        jar: sha256.map(|sha256| Digest { sha256, size: size.unwrap_or(0) as u64 }),
        created_by: r.get(10)?,
        created_at: r.get(11)?,
        finished_at: r.get(12)?,
    })
}

impl Registry {
    fn conversion_row(&self, id: &str) -> Result<Option<Conversion>> {
        Ok(self.conn.prepare_cached(&format!("SELECT {COLUMNS} FROM conversions WHERE id = ?1"))?.query_row([id], from_row).optional()?)
    }

    /// Records a conversion of `item_id` (already checked by the caller:
    /// an item of the version, a program it can compile) and queues its
    /// job, in one transaction. Needs write rank on the model.
    pub fn create_conversion(
        &self,
        who: &Principal,
        model_id: &str,
        version_id: &str,
        item_id: &str,
        main_class: &str,
    ) -> Result<(Conversion, Job)> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let version_exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM model_versions WHERE id = ?1 AND model_id = ?2)",
            [version_id, model_id],
            |r| r.get(0),
        )?;
        if !version_exists {
            return Err(Error::not_found("custom model version", version_id));
        }
        let id = new_id();
        let job = enqueue_job_in(&tx, &who.team_id, CONVERSION_JOB, Some(&id), json!({}), None)?;
        let conversion = Conversion {
            id,
            team_id: who.team_id.clone(),
            model_id: model_id.to_string(),
            version_id: version_id.to_string(),
            main_program_item_id: item_id.to_string(),
            main_class: main_class.to_string(),
            state: "running".into(),
            job_id: job.id.clone(),
            jar: None,
            created_by: who.user_id.clone(),
            created_at: now(),
            finished_at: None,
        };
        tx.execute(
            &format!("INSERT INTO conversions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, ?9, ?10, NULL)"),
            params![
                conversion.id,
                conversion.team_id,
                conversion.model_id,
                conversion.version_id,
                conversion.main_program_item_id,
                conversion.main_class,
                conversion.state,
                conversion.job_id,
                conversion.created_by,
                conversion.created_at,
            ],
        )?;
        tx.commit()?;
        Ok((conversion, job))
    }

    /// A conversion of a version the caller may read; another team's, or
    /// another version's, is not found.
    pub fn get_conversion(&self, who: &Principal, model_id: &str, version_id: &str, id: &str) -> Result<Conversion> {
        self.get_version_by_id(who, model_id, version_id)?;
        self.conversion_row(id)?
            .filter(|c| c.team_id == who.team_id && c.model_id == model_id && c.version_id == version_id)
            .ok_or_else(|| Error::not_found("conversion", id))
    }

    /// A conversion by id for the job that runs it (no caller to check).
    pub fn conversion_by_id(&self, id: &str) -> Result<Conversion> {
        self.conversion_row(id)?.ok_or_else(|| Error::not_found("conversion", id))
    }

    /// The version's conversions, newest first.
    pub fn list_conversions(&self, who: &Principal, model_id: &str, version_id: &str, offset: u64, limit: u64) -> Result<Page<Conversion>> {
        self.get_version_by_id(who, model_id, version_id)?;
        let total: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM conversions WHERE version_id = ?1 AND team_id = ?2",
            [version_id, &who.team_id],
            |r| r.get(0),
        )?;
        let items: Vec<Conversion> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM conversions WHERE version_id = ?1 AND team_id = ?2
                 ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4"
            ))?
            .query_map(params![version_id, who.team_id, crate::registry::page::clamp_i64(limit), crate::registry::page::clamp_i64(offset)], from_row)?
            .collect::<sql::Result<_>>()?;
        let has_more = offset.saturating_add(items.len() as u64) < total as u64;
        Ok(Page { items, total: Some(total as u64), has_more, next: None })
    }

    /// Stops a running conversion (DELETE): it is `stopped` at once and its
    /// job is asked to stop, which kills javac or jar within
    /// `process::POLL`. 422 once it has finished ("not active", the seed's).
    pub fn stop_conversion(&self, who: &Principal, model_id: &str, version_id: &str, id: &str) -> Result<()> {
        self.get_conversion(who, model_id, version_id, id)?;
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let conversion = self.conversion_row(id)?.ok_or_else(|| Error::not_found("conversion", id))?;
        if !conversion.is_running() {
            return Err(Error::unprocessable(format!("conversion {id} is not active: it has already {}", conversion.state)));
        }
        tx.execute("UPDATE conversions SET state = 'stopped', finished_at = ?2 WHERE id = ?1", params![id, now()])?;
        Registry::request_cancel_in(&tx, &conversion.job_id)?;
        tx.commit()?;
        Ok(())
    }

    /// The job's verdict: `Some(jar)` succeeded (the blob is stored; the
    /// caller holds an upload guard until this returns), `None` failed.
    /// Ignored, and false, once the conversion is no longer running (it
    /// was stopped, or its model deleted).
    pub fn finish_conversion(&self, id: &str, jar: Option<&Digest>) -> Result<bool> {
        let tx = self.write()?;
        let at = now();
        if let Some(jar) = jar {
            tx.execute(
                "INSERT INTO blobs (sha256, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![jar.sha256, jar.size as i64, at],
            )?;
        }
        let changed = tx.execute(
            "UPDATE conversions SET state = ?2, jar_sha256 = ?3, jar_size = ?4, finished_at = ?5 WHERE id = ?1 AND state = 'running'",
            params![
                id,
                if jar.is_some() { "succeeded" } else { "failed" },
                jar.map(|j| j.sha256.clone()),
                jar.map(|j| j.size as i64),
                at
            ],
        )?;
        if changed == 0 {
            // Rolled back: no blob row for a JAR nobody owns.
            return Ok(false);
        }
        let conversion = self.conversion_by_id(id)?; // this connection: inside the transaction
        let subject = EventSubject { team_id: &conversion.team_id, model_id: &conversion.model_id, version_id: Some(&conversion.version_id) };
        emit(&tx, "conversion.finished", subject, json!({"conversion_id": id, "format": "jar", "state": conversion.state}))?;
        tx.commit()?;
        Ok(true)
    }
}
