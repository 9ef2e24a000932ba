//! Job records: long work (environment builds, machine lifecycles…) whose
//! state lives in the database so that it survives a restart and every
//! dialect can report it. `crate::jobs` runs them.

use serde_json::Value;

use crate::registry::{new_id, now, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

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
    /// The job's log. Empty in `get_job` (polled often); `latest_job_for`
    /// and `job_log` read it.
    pub log: String,
    pub created_at: String,
    pub started_at: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, team_id, kind, state, subject_id, input, result, error, log, run_after, created_at, started_at, finished_at";
/// JOB_COLUMNS without reading the log (an empty text in its place).
const JOB_COLUMNS_NO_LOG: &str =
    "id, team_id, kind, state, subject_id, input, result, error, '', run_after, created_at, started_at, finished_at";

/// A job log stops growing at this size; a last line says it was cut.
pub const MAX_JOB_LOG_BYTES: usize = 10 * 1024 * 1024;
/// `JobLog` writes its buffered lines when they reach this size (or at
/// `LOG_FLUSH_INTERVAL`, or when dropped): appending rewrites the row, so
/// few large appends rather than one per line.
const LOG_FLUSH_BYTES: usize = 64 * 1024;
const LOG_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Queues a job on `conn`, inside the caller's write transaction when it
/// holds one, so that the job commits with the row it is about.
pub(in crate::registry) fn enqueue_job_in(
    conn: &sql::Connection,
    team_id: &str,
    kind: &str,
    subject_id: Option<&str>,
    input: Value,
    run_after: Option<String>,
) -> Result<Job> {
    let at = now();
    let id = new_id();
    let run_after = run_after.unwrap_or_else(|| at.clone());
    conn.execute(
        &format!("INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, NULL, NULL, '', ?6, ?7, NULL, NULL)"),
        params![id, team_id, kind, subject_id, input.to_string(), run_after, at],
    )?;
    Ok(Job {
        id,
        team_id: team_id.to_string(),
        kind: kind.to_string(),
        state: JobState::Queued,
        subject_id: subject_id.map(String::from),
        input,
        result: None,
        error: None,
        log: String::new(),
        created_at: at,
        started_at: None,
    })
}

/// Records a job that is already over, succeeded with `result`: work done
/// synchronously (a training-data assignment) that clients still poll
/// through a status. Inside the caller's write transaction, so the record
/// commits with the work (and is never seen queued: no runner handles these
/// kinds anyway).
pub(in crate::registry) fn finished_job_in(
    conn: &sql::Connection,
    team_id: &str,
    kind: &str,
    subject_id: Option<&str>,
    result: Value,
) -> Result<Job> {
    let mut job = enqueue_job_in(conn, team_id, kind, subject_id, Value::Object(Default::default()), None)?;
    conn.execute(
        "UPDATE jobs SET state = 'succeeded', result = ?2, started_at = created_at, finished_at = created_at WHERE id = ?1",
        params![job.id, result.to_string()],
    )?;
    job.state = JobState::Succeeded;
    job.result = Some(result);
    job.started_at = Some(job.created_at.clone());
    Ok(job)
}

/// A job's log as it is written: lines are buffered and appended in
/// batches, and the log is capped at `MAX_JOB_LOG_BYTES` with a note.
/// Dropping it flushes what is left.
pub struct JobLog<'a> {
    registry: &'a Registry,
    job_id: String,
    buffer: std::cell::RefCell<String>,
    written: std::cell::Cell<usize>,
    truncated: std::cell::Cell<bool>,
    last_flush: std::cell::Cell<std::time::Instant>,
}

impl<'a> JobLog<'a> {
    pub fn new(registry: &'a Registry, job_id: &str) -> JobLog<'a> {
        JobLog {
            registry,
            job_id: job_id.to_string(),
            buffer: Default::default(),
            written: Default::default(),
            truncated: Default::default(),
            last_flush: std::cell::Cell::new(std::time::Instant::now()),
        }
    }

    /// Adds one line (a newline is appended).
    pub fn line(&self, line: &str) {
        if self.truncated.get() {
            return;
        }
        {
            let mut buffer = self.buffer.borrow_mut();
            let room = MAX_JOB_LOG_BYTES.saturating_sub(self.written.get() + buffer.len());
            if line.len() + 1 > room {
                let mut cut = room.min(line.len());
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                buffer.push_str(&line[..cut]);
                buffer.push_str(&format!(
                    "\n[modelreg: the log was truncated at {} MiB; later output was dropped]\n",
                    MAX_JOB_LOG_BYTES / (1024 * 1024)
                ));
                self.truncated.set(true);
            } else {
                buffer.push_str(line);
                buffer.push('\n');
            }
        }
        if self.truncated.get()
            || self.buffer.borrow().len() >= LOG_FLUSH_BYTES
            || self.last_flush.get().elapsed() >= LOG_FLUSH_INTERVAL
        {
            self.flush();
        }
    }

    /// Writes out what is buffered once the flush interval has passed, so a
    /// job whose output has gone quiet still shows its last lines. Called
    /// by runners as they wait.
    pub fn tick(&self) {
        if self.last_flush.get().elapsed() >= LOG_FLUSH_INTERVAL {
            self.flush();
        }
    }

    /// Appends the buffered lines to the job's row.
    pub fn flush(&self) {
        let text = std::mem::take(&mut *self.buffer.borrow_mut());
        self.last_flush.set(std::time::Instant::now());
        if text.is_empty() {
            return;
        }
        self.written.set(self.written.get() + text.len());
        // A log line that cannot be written is not worth failing a build.
        let _ = self.registry.append_job_log(&self.job_id, &text);
    }
}

impl Drop for JobLog<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

fn job_from_row(r: &sql::Row) -> sql::Result<Job> {
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
        enqueue_job_in(&self.conn, team_id, kind, subject_id, input, run_after)
    }

    /// Records a finished job (see `finished_job_in`) in a transaction of
    /// its own.
    pub fn record_finished_job(&self, team_id: &str, kind: &str, subject_id: Option<&str>, result: Value) -> Result<Job> {
        let tx = self.write()?;
        let job = finished_job_in(&tx, team_id, kind, subject_id, result)?;
        tx.commit()?;
        Ok(job)
    }

    /// A job without its log.
    fn job(&self, id: &str) -> Result<Job> {
        self.conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS_NO_LOG} FROM jobs WHERE id = ?1"))?
            .query_row([id], job_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("job", id))
    }

    /// A job of the caller's team, without its log (cheap to poll).
    pub fn get_job(&self, who: &Principal, id: &str) -> Result<Job> {
        match self.job(id) {
            Ok(job) if job.team_id == who.team_id => Ok(job),
            Ok(_) => Err(Error::not_found("job", id)),
            Err(e) => Err(e),
        }
    }

    /// A job's whole log.
    pub fn job_log(&self, id: &str) -> Result<String> {
        // one snapshot, so a chunk appended meanwhile is read whole or not at all
        let _snapshot = self.read_snapshot()?;
        // what the job logged before logs were chunks (schema version 12)
        let mut log: String =
            self.conn.prepare_cached("SELECT log FROM jobs WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?.unwrap_or_default();
        let mut chunks = self.conn.prepare_cached("SELECT text FROM job_log_chunks WHERE job_id = ?1 ORDER BY seq")?;
        for chunk in chunks.query_map([id], |r| r.get::<_, String>(0))? {
            log.push_str(&chunk?);
        }
        Ok(log)
    }

    /// The newest job about `subject_id`, if any.
    pub fn latest_job_for(&self, subject_id: &str) -> Result<Option<Job>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE subject_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row([subject_id], job_from_row)
            .optional()?
            .map(|mut job| -> Result<Job> {
                job.log = self.job_log(&job.id)?;
                Ok(job)
            })
            .transpose()?)
    }

    /// Takes the next due job of one of `kinds` and marks it running, held
    /// by `lease` (see `Lease`). Two workers can never take the same job:
    /// the select and the update share one write transaction.
    pub fn claim_job(&self, kinds: &[&str], lease: &Lease) -> Result<Option<Job>> {
        self.claim(kinds, None, lease)
    }

    /// Like `claim_job`, but only a job about `subject_id`: the offline CLI
    /// finishes the work it queued itself and leaves everyone else's alone.
    pub fn claim_job_about(&self, kinds: &[&str], subject_id: &str, lease: &Lease) -> Result<Option<Job>> {
        self.claim(kinds, Some(subject_id), lease)
    }

    /// Fair across teams: among due jobs, the oldest of the team with the
    /// fewest jobs of these kinds running goes first, so one team's burst
    /// of builds cannot hold every slot while another team waits.
    ///
    /// The work does not grow with the backlog: per kind, the teams with
    /// queued jobs are found by skipping through `jobs_queue` (one seek per
    /// team) and each team's oldest due job is one more seek; the running
    /// jobs counted are at most the lanes' slots.
    fn claim(&self, kinds: &[&str], subject_id: Option<&str>, lease: &Lease) -> Result<Option<Job>> {
        // An idle runner asks twice a second: one index seek per kind
        // without the writer's lock first, so that idle runners on every
        // machine do not queue behind (and hold up) the registry's writes.
        if subject_id.is_none() && self.next_job_due(kinds)?.is_none_or(|due| due > now()) {
            return Ok(None);
        }
        let tx = self.write()?;
        let at = now();
        let chosen = match subject_id {
            Some(subject) => oldest_due_about(&tx, kinds, subject, &at)?,
            None => fairest_due(&tx, kinds, &at)?,
        };
        let Some(id) = chosen else { return Ok(None) };
        tx.execute(
            "UPDATE jobs SET state = 'running', started_at = ?2, lease_owner = ?3, lease_expires_at = ?4 WHERE id = ?1",
            params![id, at, lease.owner, lease.expiry()],
        )?;
        let mut job = tx
            .prepare_cached(&format!("SELECT {JOB_COLUMNS_NO_LOG} FROM jobs WHERE id = ?1"))?
            .query_row([&id], job_from_row)?;
        tx.commit()?;
        job.state = JobState::Running;
        job.started_at = Some(at);
        Ok(Some(job))
    }

    /// When the next queued job of `kinds` is due, if any.
    pub fn next_job_due(&self, kinds: &[&str]) -> Result<Option<String>> {
        let mut first: Option<String> = None;
        let mut due = self.conn.prepare_cached("SELECT MIN(run_after) FROM jobs WHERE state = 'queued' AND kind = ?1")?;
        for kind in kinds {
            let at: Option<String> = due.query_row([kind], |r| r.get(0))?;
            first = match (first, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(first)
    }

    /// Appends to a job's log: one new chunk, the log's text is never
    /// rewritten. Only the job's runner appends, so the next number cannot
    /// be taken twice.
    pub fn append_job_log(&self, id: &str, text: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO job_log_chunks (job_id, seq, text)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_log_chunks WHERE job_id = ?1), ?2)",
            params![id, text],
        )?;
        Ok(())
    }

    /// Records a job's end, if `lease` still holds it (a runner whose lease
    /// ran out while it was cut off from the database finds its job taken
    /// by another, and leaves that one's record alone). A job whose cancel
    /// was asked for ends `cancelled`, whatever it returned.
    pub fn finish_job(&self, id: &str, lease: &Lease, outcome: std::result::Result<Value, String>) -> Result<()> {
        let (state, result, error) = match outcome {
            Ok(result) => (JobState::Succeeded, Some(result.to_string()), None),
            Err(error) => (JobState::Failed, None, Some(error)),
        };
        self.conn.execute(
            "UPDATE jobs SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE ?2 END,
                             result = ?3, error = ?4, finished_at = ?5, lease_expires_at = NULL
             WHERE id = ?1 AND state = 'running' AND lease_owner = ?6",
            params![id, state.as_str(), result, error, now(), lease.owner],
        )?;
        Ok(())
    }

    /// Extends the leases of every job `lease`'s owner runs: its heartbeat.
    pub fn renew_job_leases(&self, lease: &Lease) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE jobs SET lease_expires_at = ?2 WHERE state = 'running' AND lease_owner = ?1",
            params![lease.owner, lease.expiry()],
        )?)
    }

    /// Asks a job to stop. A queued job is cancelled at once; a running one
    /// is flagged, and its runner kills its processes when it next looks
    /// (`cancel_requested`). Runs on the caller's connection, so inside the
    /// caller's write transaction when it holds one.
    pub(in crate::registry) fn request_cancel_in(conn: &sql::Connection, id: &str) -> Result<()> {
        conn.execute(
            "UPDATE jobs SET cancel_requested = 1,
                             state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
                             finished_at = CASE WHEN state = 'queued' THEN ?2 ELSE finished_at END
             WHERE id = ?1 AND state IN ('queued', 'running')",
            params![id, now()],
        )?;
        Ok(())
    }

    /// Whether someone asked this job to stop. Polled by runners while their
    /// child processes run.
    pub fn job_cancel_requested(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT cancel_requested FROM jobs WHERE id = ?1")?
            .query_row([id], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(true))
    }

    /// Running jobs whose runner is gone go back to the queue (those whose
    /// cancel was asked for end cancelled instead): a job whose lease ran
    /// out, one claimed before leases existed, and one whose owner
    /// `owner_is_gone` knows to be dead (a process of this machine that
    /// exited: no need to wait out its lease). A live runner's job is never
    /// taken from it. Returns how many were queued again.
    pub fn requeue_abandoned_jobs(&self, owner_is_gone: &dyn Fn(&str) -> bool) -> Result<usize> {
        let at = now();
        let tx = self.write()?;
        let mut abandoned = Vec::new();
        {
            let mut running = tx.prepare_cached("SELECT id, lease_owner, lease_expires_at FROM jobs WHERE state = 'running'")?;
            let rows = running.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?)))?;
            for row in rows {
                let (id, owner, expires) = row?;
                let gone = match (owner, expires) {
                    (Some(owner), Some(expires)) => expires <= at || owner_is_gone(&owner),
                    _ => true,
                };
                if gone {
                    abandoned.push(id);
                }
            }
        }
        let mut requeued = 0;
        for id in &abandoned {
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1 AND state = 'running' AND cancel_requested = 1",
                params![id, at],
            )?;
            requeued += tx.execute(
                "UPDATE jobs SET state = 'queued', started_at = NULL, lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = ?1 AND state = 'running'",
                [id],
            )?;
        }
        tx.commit()?;
        Ok(requeued)
    }
}

/// Who holds the jobs a runner claims, and for how long at a time: the
/// runner's process (an opaque name the runner makes: see `jobs::Runner`)
/// and the time a claim or a heartbeat holds a job before another runner
/// may take it.
#[derive(Clone, Debug)]
pub struct Lease {
    pub owner: String,
    pub length: std::time::Duration,
}

impl Lease {
    /// When a lease taken or renewed now runs out.
    fn expiry(&self) -> String {
        let length = time::Duration::try_from(self.length).unwrap_or(time::Duration::MAX);
        crate::registry::format_time(time::OffsetDateTime::now_utc().saturating_add(length))
    }
}

/// The job of `kinds` to claim next, fairly across teams (see `claim`).
fn fairest_due(conn: &sql::Connection, kinds: &[&str], now: &str) -> Result<Option<String>> {
    let mut running: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut count = conn.prepare_cached("SELECT team_id, COUNT(*) FROM jobs WHERE state = 'running' AND kind = ?1 GROUP BY team_id")?;
    for kind in kinds {
        for row in count.query_map([kind], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (team, n) = row?;
            *running.entry(team).or_default() += n;
        }
    }
    // The teams with queued jobs of a kind, without reading those jobs: the
    // next team after each is one seek in jobs_queue.
    let mut teams = conn.prepare_cached(
        "WITH RECURSIVE queued(team_id) AS (
             SELECT MIN(team_id) FROM jobs WHERE state = 'queued' AND kind = ?1
             UNION ALL
             SELECT (SELECT MIN(team_id) FROM jobs WHERE state = 'queued' AND kind = ?1 AND team_id > queued.team_id)
             FROM queued WHERE queued.team_id IS NOT NULL
         )
         SELECT team_id FROM queued WHERE team_id IS NOT NULL",
    )?;
    let mut oldest = conn.prepare_cached(
        "SELECT id, run_after, created_at FROM jobs
         WHERE state = 'queued' AND kind = ?1 AND team_id = ?2 AND run_after <= ?3
         ORDER BY run_after, created_at LIMIT 1",
    )?;
    let mut best: Option<((i64, String, String), String)> = None;
    for kind in kinds {
        let with_queued: Vec<String> = teams.query_map([kind], |r| r.get(0))?.collect::<sql::Result<_>>()?;
        for team in with_queued {
            let Some((id, run_after, created_at)) = oldest
                .query_row(params![kind, team, now], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                .optional()?
            else {
                continue;
            };
            let rank = (running.get(&team).copied().unwrap_or(0), run_after, created_at);
            if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                best = Some((rank, id));
            }
        }
    }
    Ok(best.map(|(_, id)| id))
}

/// The oldest due job of `kinds` about `subject` (the offline CLI's own work).
fn oldest_due_about(conn: &sql::Connection, kinds: &[&str], subject: &str, now: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM jobs WHERE subject_id = ?1 AND state = 'queued' AND run_after <= ?2
             AND kind IN (SELECT value FROM json_each(?3))
             ORDER BY run_after, created_at LIMIT 1",
        )?
        .query_row(params![subject, now, Value::from(kinds.to_vec()).to_string()], |r| r.get(0))
        .optional()?)
}

#[cfg(test)]
pub(in crate::registry) mod tests {
    use super::*;

    /// A lease held by `owner` for a minute.
    pub(in crate::registry) fn lease(owner: &str) -> Lease {
        Lease { owner: owner.to_string(), length: std::time::Duration::from_secs(60) }
    }

    fn registry() -> (tempfile::TempDir, Registry, Principal) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let who = registry.operator().unwrap();
        (dir, registry, who)
    }

    #[test]
    fn logs_are_capped_and_polling_skips_them() {
        let (_dir, registry, who) = registry();
        let job = registry.enqueue_job(&who.team_id, "test", None, Value::Null, None).unwrap();
        {
            let log = JobLog::new(&registry, &job.id);
            let line = "x".repeat(999);
            // 12 MiB of output, 1 KiB a line.
            for _ in 0..12 * 1024 {
                log.line(&line);
            }
        }
        let stored = registry.job_log(&job.id).unwrap();
        assert!(stored.len() <= MAX_JOB_LOG_BYTES + 200, "{} bytes", stored.len());
        assert!(stored.len() >= MAX_JOB_LOG_BYTES - 1024, "{} bytes", stored.len());
        assert!(stored.ends_with("later output was dropped]\n"), "{}", &stored[stored.len() - 200..]);
        // The polled read does not carry the log.
        assert_eq!(registry.get_job(&who, &job.id).unwrap().log, "");
    }

    #[test]
    fn claims_are_fair_across_teams() {
        let (_dir, registry, who) = registry();
        let other = registry.create_team("other").unwrap();
        // Team A queues three jobs before team B queues one.
        for _ in 0..3 {
            registry.enqueue_job(&who.team_id, "work", None, Value::Null, None).unwrap();
        }
        registry.enqueue_job(&other.id, "work", None, Value::Null, None).unwrap();
        let first = registry.claim_job(&["work"], &lease("a")).unwrap().unwrap();
        assert_eq!(first.team_id, who.team_id, "the oldest job goes first while nobody runs");
        let second = registry.claim_job(&["work"], &lease("a")).unwrap().unwrap();
        assert_eq!(second.team_id, other.id, "then the team with nothing running, before A's backlog");
    }

    #[test]
    fn cancelling_a_queued_job_ends_it_and_a_running_one_is_flagged() {
        let (_dir, registry, who) = registry();
        let queued = registry.enqueue_job(&who.team_id, "work", None, Value::Null, None).unwrap();
        Registry::request_cancel_in(&registry.conn, &queued.id).unwrap();
        assert_eq!(registry.get_job(&who, &queued.id).unwrap().state, JobState::Cancelled);
        assert!(registry.claim_job(&["work"], &lease("a")).unwrap().is_none());
        let running = registry.enqueue_job(&who.team_id, "work", None, Value::Null, None).unwrap();
        registry.claim_job(&["work"], &lease("a")).unwrap().unwrap();
        assert!(!registry.job_cancel_requested(&running.id).unwrap());
        Registry::request_cancel_in(&registry.conn, &running.id).unwrap();
        assert!(registry.job_cancel_requested(&running.id).unwrap());
        registry.finish_job(&running.id, &lease("a"), Ok(Value::Null)).unwrap();
        assert_eq!(registry.get_job(&who, &running.id).unwrap().state, JobState::Cancelled);
    }

    #[test]
    fn a_job_goes_back_to_the_queue_only_when_its_runner_is_gone() {
        let (_dir, registry, who) = registry();
        let job = registry.enqueue_job(&who.team_id, "work", None, Value::Null, None).unwrap();
        let alive = lease("alive");
        registry.claim_job(&["work"], &alive).unwrap().unwrap();
        assert_eq!(registry.requeue_abandoned_jobs(&|_| false).unwrap(), 0, "a live runner's lease holds");
        assert_eq!(registry.requeue_abandoned_jobs(&|owner| owner == "alive").unwrap(), 1, "a runner known to be gone loses it");
        let short = Lease { owner: "slow".into(), length: std::time::Duration::ZERO };
        let claimed = registry.claim_job(&["work"], &short).unwrap().unwrap();
        assert_eq!(claimed.id, job.id);
        assert_eq!(registry.requeue_abandoned_jobs(&|_| false).unwrap(), 1, "a lease that ran out is taken back");
        let taker = lease("taker");
        registry.claim_job(&["work"], &taker).unwrap().unwrap();
        registry.finish_job(&job.id, &short, Err("too late".into())).unwrap();
        assert_eq!(registry.get_job(&who, &job.id).unwrap().state, JobState::Running, "the old runner's end is not recorded");
        registry.renew_job_leases(&taker).unwrap();
        registry.finish_job(&job.id, &taker, Ok(Value::Null)).unwrap();
        assert_eq!(registry.get_job(&who, &job.id).unwrap().state, JobState::Succeeded);
    }

    #[test]
    fn a_job_queued_in_a_transaction_commits_with_it() {
        let (_dir, registry, who) = registry();
        {
            let tx = registry.write().unwrap();
            enqueue_job_in(&tx, &who.team_id, "test", Some("rolled-back"), Value::Null, None).unwrap();
            // Dropped without commit: the job goes too.
        }
        assert!(registry.latest_job_for("rolled-back").unwrap().is_none());
    }
}
