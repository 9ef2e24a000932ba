//! Job records: long work (environment builds, machine lifecycles…) whose
//! state lives in the database so that it survives a restart and every
//! dialect can report it. `crate::jobs` runs them.

use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use super::{new_id, now, Error, Principal, Registry, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub team_id: String,
    pub kind: String,
    pub state: JobState,
    /// The row the job works on (an environment version, a machine…).
    pub subject_id: Option<String>,
    pub input: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub log: String,
    pub created_at: String,
    pub started_at: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, team_id, kind, state, subject_id, input, result, error, log, run_after, created_at, started_at, finished_at";

fn job_from_row(r: &rusqlite::Row) -> rusqlite::Result<Job> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(Job {
        id: r.get(0)?,
        team_id: r.get(1)?,
        kind: r.get(2)?,
        state: JobState::parse(&r.get::<_, String>(3)?),
        subject_id: r.get(4)?,
        input: json(r.get(5)?).unwrap_or(Value::Null),
        result: json(r.get(6)?),
        error: r.get(7)?,
        log: r.get(8)?,
        created_at: r.get(10)?,
        started_at: r.get(11)?,
    })
}

impl Registry {
    /// Queues a job to run no earlier than `run_after` (RFC 3339; None = now).
    pub fn enqueue_job(
        &self,
        team_id: &str,
        kind: &str,
        subject_id: Option<&str>,
        input: Value,
        run_after: Option<String>,
    ) -> Result<Job> {
        let at = now();
        let id = new_id();
        self.conn.execute(
            &format!("INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, NULL, NULL, '', ?6, ?7, NULL, NULL)"),
            params![id, team_id, kind, subject_id, input.to_string(), run_after.unwrap_or_else(|| at.clone()), at],
        )?;
        self.job(&id)
    }

    fn job(&self, id: &str) -> Result<Job> {
        self.conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
            .query_row([id], job_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("job", id))
    }

    /// A job of the caller's team.
    pub fn get_job(&self, who: &Principal, id: &str) -> Result<Job> {
        match self.job(id) {
            Ok(job) if job.team_id == who.team_id => Ok(job),
            Ok(_) => Err(Error::not_found("job", id)),
            Err(e) => Err(e),
        }
    }

    /// The newest job about `subject_id`, if any.
    pub fn latest_job_for(&self, subject_id: &str) -> Result<Option<Job>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE subject_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row([subject_id], job_from_row)
            .optional()?)
    }

    /// Takes the next due job of one of `kinds` and marks it running. Two
    /// workers can never take the same job: the select and the update share
    /// one write transaction.
    pub fn claim_job(&self, kinds: &[&str]) -> Result<Option<Job>> {
        let tx = self.write()?;
        let kinds_json = Value::from(kinds.to_vec()).to_string();
        let job = tx
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'queued' AND run_after <= ?1
                 AND kind IN (SELECT value FROM json_each(?2)) ORDER BY run_after, created_at LIMIT 1"
            ))?
            .query_row(params![now(), kinds_json], job_from_row)
            .optional()?;
        let Some(mut job) = job else { return Ok(None) };
        let at = now();
        tx.execute("UPDATE jobs SET state = 'running', started_at = ?2 WHERE id = ?1", params![job.id, at])?;
        tx.commit()?;
        job.state = JobState::Running;
        job.started_at = Some(at);
        Ok(Some(job))
    }

    /// When the next queued job of `kinds` is due, if any.
    pub fn next_job_due(&self, kinds: &[&str]) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MIN(run_after) FROM jobs WHERE state = 'queued' AND kind IN (SELECT value FROM json_each(?1))",
            )?
            .query_row([Value::from(kinds.to_vec()).to_string()], |r| r.get(0))?)
    }

    pub fn append_job_log(&self, id: &str, text: &str) -> Result<()> {
        self.conn.execute("UPDATE jobs SET log = log || ?2 WHERE id = ?1", params![id, text])?;
        Ok(())
    }

    pub fn finish_job(&self, id: &str, outcome: std::result::Result<Value, String>) -> Result<()> {
        let (state, result, error) = match outcome {
            Ok(result) => (JobState::Succeeded, Some(result.to_string()), None),
            Err(error) => (JobState::Failed, None, Some(error)),
        };
        self.conn.execute(
            "UPDATE jobs SET state = ?2, result = ?3, error = ?4, finished_at = ?5 WHERE id = ?1 AND state = 'running'",
            params![id, state.as_str(), result, error, now()],
        )?;
        Ok(())
    }

    /// Jobs that were running when the process stopped go back to the queue.
    pub fn requeue_interrupted_jobs(&self) -> Result<usize> {
        Ok(self.conn.execute("UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'", [])?)
    }
}
