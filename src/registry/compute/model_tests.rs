//! Custom model tests: one row per run of the checks against a version and
//! a dataset. The row is written before the job that runs the checks is
//! queued (DataRobot's client lists the new test straight after its POST),
//! and the job records each check's status on it as it goes. The log is the
//! job's log.
//!
//! A cancelled or finished test is terminal: later writes from a job that
//! has not noticed yet are ignored, so a cancel can never be overwritten.

use serde_json::{json, Map, Value};

use crate::registry::access::roles::Access;
use crate::registry::compute::jobs::enqueue_job_in;
use crate::registry::page::Page;
use crate::registry::webhooks::{emit, EventSubject};
use crate::registry::{new_id, now, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

/// The job that runs a test (`crate::compute::jobs::run_model_test`).
pub const TEST_JOB: &str = "custom-model-test";

/// Statuses after which nothing changes, as an SQL list.
const TERMINAL: &str = "('failed', 'canceled', 'succeeded', 'aborted', 'warning', 'skipped')";

#[derive(Clone, Debug, PartialEq)]
pub struct ModelTest {
    pub id: String,
    pub team_id: String,
    pub model_id: String,
    pub version_id: String,
    pub dataset_id: Option<String>,
    pub dataset_version_id: Option<String>,
    pub environment_id: Option<String>,
    pub environment_version_id: Option<String>,
    /// DataRobot's `customModelImageId`: what was run (version, environment
    /// version and dependencies), minted when the test is created.
    pub image_id: String,
    pub job_id: String,
    pub overall_status: String,
    /// `{checkName: {status, message}}`.
    pub checks: Map<String, Value>,
    /// `{configuration: {check: mode}, parameters: {...}}`.
    pub configuration: Value,
    /// Resource settings the run used (maximumMemory, networkEgressPolicy…).
    pub settings: Map<String, Value>,
    pub created_by: String,
    pub created_at: String,
    pub completed_at: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct NewTest {
    pub model_id: String,
    pub version_id: String,
    pub dataset_id: Option<String>,
    pub dataset_version_id: Option<String>,
    pub environment_id: Option<String>,
    pub environment_version_id: Option<String>,
    pub image_id: String,
    pub checks: Map<String, Value>,
    pub configuration: Value,
    pub settings: Map<String, Value>,
}

const COLUMNS: &str = "id, team_id, model_id, version_id, dataset_id, dataset_version_id, environment_id, environment_version_id, \
    image_id, job_id, overall_status, checks, configuration, settings, created_by, created_at, completed_at";

fn from_row(r: &sql::Row) -> sql::Result<ModelTest> {
    let object = |i: usize| -> sql::Result<Map<String, Value>> { crate::registry::parse_attrs(&r.get::<_, String>(i)?) };
    Ok(ModelTest {
        id: r.get(0)?,
        team_id: r.get(1)?,
        model_id: r.get(2)?,
        version_id: r.get(3)?,
        dataset_id: r.get(4)?,
        dataset_version_id: r.get(5)?,
        environment_id: r.get(6)?,
        environment_version_id: r.get(7)?,
        image_id: r.get(8)?,
        job_id: r.get(9)?,
        overall_status: r.get(10)?,
        checks: object(11)?,
        configuration: Value::Object(object(12)?),
        settings: object(13)?,
        created_by: r.get(14)?,
        created_at: r.get(15)?,
        completed_at: r.get(16)?,
    })
}

impl Registry {
    /// Records a test and queues its job, in one transaction. One test at a
    /// time per model: another running test is a 422, as DataRobot answers.
    pub fn create_test(&self, who: &Principal, new: NewTest) -> Result<(ModelTest, crate::registry::Job)> {
        let tx = self.write()?;
        self.model_for(who, &new.model_id, Access::Write)?;
        let version_exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM model_versions WHERE id = ?1 AND model_id = ?2)",
            [&new.version_id, &new.model_id],
            |r| r.get(0),
        )?;
        if !version_exists {
            return Err(Error::not_found("custom model version", &new.version_id));
        }
        // In the write transaction, so two POSTs cannot both pass.
        let running: Option<String> = tx
            .query_row(
                &format!("SELECT id FROM model_tests WHERE model_id = ?1 AND overall_status NOT IN {TERMINAL} LIMIT 1"),
                [&new.model_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(running) = running {
            return Err(Error::unprocessable(format!(
                "testing is already in progress for custom model {} (test {running}); wait for it or cancel it",
                new.model_id
            )));
        }
        let id = new_id();
        let job = enqueue_job_in(&tx, &who.team_id, TEST_JOB, Some(&id), json!({}), None)?;
        let test = ModelTest {
            id,
            team_id: who.team_id.clone(),
            model_id: new.model_id,
            version_id: new.version_id,
            dataset_id: new.dataset_id,
            dataset_version_id: new.dataset_version_id,
            environment_id: new.environment_id,
            environment_version_id: new.environment_version_id,
            image_id: new.image_id,
            job_id: job.id.clone(),
            overall_status: "in_progress".into(),
            checks: new.checks,
            configuration: new.configuration,
            settings: new.settings,
            created_by: who.user_id.clone(),
            created_at: now(),
            completed_at: None,
        };
        tx.execute(
            &format!("INSERT INTO model_tests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
            params![
                test.id,
                test.team_id,
                test.model_id,
                test.version_id,
                test.dataset_id,
                test.dataset_version_id,
                test.environment_id,
                test.environment_version_id,
                test.image_id,
                test.job_id,
                test.overall_status,
                Value::Object(test.checks.clone()).to_string(),
                test.configuration.to_string(),
                Value::Object(test.settings.clone()).to_string(),
                test.created_by,
                test.created_at,
                test.completed_at,
            ],
        )?;
        tx.commit()?;
        Ok((test, job))
    }

    pub(in crate::registry) fn model_under_test(&self, model_id: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM model_tests WHERE model_id = ?1 AND overall_status NOT IN {TERMINAL})"),
            [model_id],
            |r| r.get(0),
        )?)
    }

    /// A test the caller may see: of their team, of a model they can read.
    pub fn get_test(&self, who: &Principal, id: &str) -> Result<ModelTest> {
        let test = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM model_tests WHERE id = ?1 AND team_id = ?2"))?
            .query_row([id, &who.team_id], from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("custom model test", id))?;
        self.model_for(who, &test.model_id, Access::Read).map_err(|_| Error::not_found("custom model test", id))?;
        Ok(test)
    }

    /// A test by id for the job that runs it (no caller to check).
    pub fn test_by_id(&self, id: &str) -> Result<ModelTest> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM model_tests WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("custom model test", id))
    }

    /// The model's tests, newest first.
    pub fn list_tests(&self, who: &Principal, model_id: &str, offset: u64, limit: u64) -> Result<Page<ModelTest>> {
        self.model_for(who, model_id, Access::Read)?;
        let total: i64 = self.conn.query_row("SELECT COUNT(*) FROM model_tests WHERE model_id = ?1", [model_id], |r| r.get(0))?;
        let items: Vec<ModelTest> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM model_tests WHERE model_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3"
            ))?
            .query_map(params![model_id, crate::registry::page::clamp_i64(limit), crate::registry::page::clamp_i64(offset)], from_row)?
            .collect::<sql::Result<_>>()?;
        let has_more = offset.saturating_add(items.len() as u64) < total as u64;
        Ok(Page { items, total: Some(total as u64), has_more, next: None })
    }

    /// The newest test that minted `image_id` (DataRobot's
    /// `customInferenceImages/{imageId}/` routes name a version this way).
    pub fn test_by_image(&self, who: &Principal, image_id: &str) -> Result<ModelTest> {
        let id: Option<String> = self
            .conn
            .prepare_cached("SELECT id FROM model_tests WHERE image_id = ?1 AND team_id = ?2 ORDER BY created_at DESC LIMIT 1")?
            .query_row([image_id, &who.team_id], |r| r.get(0))
            .optional()?;
        let id = id.ok_or_else(|| Error::not_found("custom inference image", image_id))?;
        self.get_test(who, &id).map_err(|_| Error::not_found("custom inference image", image_id))
    }

    /// Records one check's status; ignored once the test is finished, and
    /// for a check the test does not report (a newer check it was not asked
    /// to run).
    pub fn set_test_check(&self, id: &str, check: &str, status: &str, message: &str) -> Result<()> {
        let tx = self.write()?;
        let Some(mut test) = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM model_tests WHERE id = ?1 AND overall_status NOT IN {TERMINAL}"))?
            .query_row([id], from_row)
            .optional()?
        else {
            return Ok(());
        };
        let Some(entry) = test.checks.get_mut(check) else { return Ok(()) };
        *entry = json!({"status": status, "message": message});
        tx.execute("UPDATE model_tests SET checks = ?2 WHERE id = ?1", params![id, Value::Object(test.checks).to_string()])?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a test with its overall status; checks still pending become
    /// `pending_as` (aborted when the run stopped early). Ignored once the
    /// test is finished (a cancel got there first).
    pub fn finish_test(&self, id: &str, overall: &str, pending_as: &str) -> Result<()> {
        let tx = self.write()?;
        let Some(test) = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM model_tests WHERE id = ?1 AND overall_status NOT IN {TERMINAL}"))?
            .query_row([id], from_row)
            .optional()?
        else {
            return Ok(());
        };
        let checks = settle(test.checks, pending_as, "the test ended before this check ran");
        tx.execute(
            "UPDATE model_tests SET overall_status = ?2, checks = ?3, completed_at = ?4 WHERE id = ?1",
            params![id, overall, Value::Object(checks).to_string(), now()],
        )?;
        let subject = EventSubject { team_id: &test.team_id, model_id: &test.model_id, version_id: Some(&test.version_id) };
        emit(&tx, "test.finished", subject, json!({"test_id": id, "status": overall}))?;
        tx.commit()?;
        Ok(())
    }

    /// Cancels a running test (DELETE): 409 once it has finished. Its
    /// pending checks become `canceled` and its job is asked to stop; the
    /// job kills the model server when it next looks.
    pub fn cancel_test(&self, who: &Principal, id: &str) -> Result<()> {
        let test = self.get_test(who, id)?;
        self.model_for(who, &test.model_id, Access::Write)?;
        let tx = self.write()?;
        let Some(test) = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM model_tests WHERE id = ?1 AND overall_status NOT IN {TERMINAL}"))?
            .query_row([id], from_row)
            .optional()?
        else {
            return Err(Error::Conflict(format!("custom model test {id} has already finished")));
        };
        let checks = settle(test.checks, "canceled", "the test was cancelled");
        tx.execute(
            "UPDATE model_tests SET overall_status = 'canceled', checks = ?2, completed_at = ?3 WHERE id = ?1",
            params![id, Value::Object(checks).to_string(), now()],
        )?;
        Registry::request_cancel_in(&tx, &test.job_id)?;
        let subject = EventSubject { team_id: &test.team_id, model_id: &test.model_id, version_id: Some(&test.version_id) };
        emit(&tx, "test.finished", subject, json!({"test_id": id, "status": "canceled"}))?;
        tx.commit()?;
        Ok(())
    }
}

/// Checks still queued or running become `status`, with `message`.
fn settle(mut checks: Map<String, Value>, status: &str, message: &str) -> Map<String, Value> {
    for entry in checks.values_mut() {
        if matches!(entry["status"].as_str(), Some("queued" | "in_progress" | "not_tested")) {
            *entry = json!({"status": status, "message": message});
        }
    }
    checks
}
