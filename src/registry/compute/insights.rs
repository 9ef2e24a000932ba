//! What modelreg learns about a version by running it: feature impact and
//! the initialisation of prediction explanations. One row per version and
//! kind, replaced by each new run; a run is a job in the compute lane
//! (`crate::compute::jobs::run_insight`), and the row holds its result.

use serde_json::Value;

use crate::registry::access::roles::Access;
use crate::registry::compute::jobs::enqueue_job_in;
use crate::registry::{now, Error, Job, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

/// The job that computes an insight; its input names the kind.
pub const INSIGHT_JOB: &str = "version-insight";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsightKind {
    FeatureImpact,
    PredictionExplanations,
}

impl InsightKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InsightKind::FeatureImpact => "featureImpact",
            InsightKind::PredictionExplanations => "predictionExplanations",
        }
    }

    pub fn parse(text: &str) -> Option<InsightKind> {
        match text {
            "featureImpact" => Some(InsightKind::FeatureImpact),
            "predictionExplanations" => Some(InsightKind::PredictionExplanations),
            _ => None,
        }
    }

    /// In words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            InsightKind::FeatureImpact => "feature impact",
            InsightKind::PredictionExplanations => "prediction explanations initialization",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Insight {
    pub version_id: String,
    pub kind: InsightKind,
    /// running, done or failed.
    pub state: String,
    pub job_id: String,
    /// What the run was asked (rowCount…).
    pub params: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const COLUMNS: &str = "version_id, kind, state, job_id, params, result, error, created_at, finished_at";

fn from_row(r: &sql::Row) -> sql::Result<Insight> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(Insight {
        version_id: r.get(0)?,
        kind: InsightKind::parse(&r.get::<_, String>(1)?).unwrap_or(InsightKind::FeatureImpact),
        state: r.get(2)?,
        job_id: r.get(3)?,
        params: json(r.get(4)?).unwrap_or(Value::Null),
        result: json(r.get(5)?),
        error: r.get(6)?,
        created_at: r.get(7)?,
        finished_at: r.get(8)?,
    })
}

impl Registry {
    fn insight_row(&self, version_id: &str, kind: InsightKind) -> Result<Option<Insight>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM version_insights WHERE version_id = ?1 AND kind = ?2"))?
            .query_row([version_id, kind.as_str()], from_row)
            .optional()?)
    }

    /// Starts a run (replacing the last one's row). 422 while one runs.
    pub fn start_insight(&self, who: &Principal, model_id: &str, version_id: &str, kind: InsightKind, params: Value) -> Result<(Insight, Job)> {
        self.get_version_by_id(who, model_id, version_id)?;
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        if let Some(running) = self.insight_row(version_id, kind)?.filter(|i| i.state == "running") {
            return Err(Error::unprocessable(format!(
                "{} of version {version_id} is already being computed (job {})",
                kind.describe(),
                running.job_id
            )));
        }
        let input = serde_json::json!({"modelId": model_id, "userId": who.user_id, "kind": kind.as_str(), "params": params});
        let job = enqueue_job_in(&tx, &who.team_id, INSIGHT_JOB, Some(version_id), input, None)?;
        let insight = Insight {
            version_id: version_id.to_string(),
            kind,
            state: "running".into(),
            job_id: job.id.clone(),
            params,
            result: None,
            error: None,
            created_at: now(),
            finished_at: None,
        };
        tx.execute(
            "INSERT INTO version_insights (version_id, team_id, kind, state, job_id, params, result, error, created_at, finished_at)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, NULL, NULL, ?6, NULL)
             ON CONFLICT (version_id, kind) DO UPDATE SET state = 'running', job_id = excluded.job_id, params = excluded.params,
                 result = NULL, error = NULL, created_at = excluded.created_at, finished_at = NULL",
            params![version_id, who.team_id, kind.as_str(), insight.job_id, insight.params.to_string(), insight.created_at],
        )?;
        tx.commit()?;
        Ok((insight, job))
    }

    /// The version's last run of `kind`, if any (the caller must be able to
    /// read the version).
    pub fn get_insight(&self, who: &Principal, model_id: &str, version_id: &str, kind: InsightKind) -> Result<Option<Insight>> {
        self.get_version_by_id(who, model_id, version_id)?;
        self.insight_row(version_id, kind)
    }

    /// Records a result computed by another run (feature impact computed on
    /// the way to explanations), unless a run of its own is under way.
    pub fn record_insight(&self, who: &Principal, version_id: &str, kind: InsightKind, job_id: &str, params: &Value, result: &Value) -> Result<()> {
        let at = now();
        self.conn.execute(
            "INSERT INTO version_insights (version_id, team_id, kind, state, job_id, params, result, error, created_at, finished_at)
             VALUES (?1, ?2, ?3, 'done', ?4, ?5, ?6, NULL, ?7, ?7)
             ON CONFLICT (version_id, kind) DO UPDATE SET state = 'done', job_id = excluded.job_id, params = excluded.params,
                 result = excluded.result, error = NULL, created_at = excluded.created_at, finished_at = excluded.finished_at
             WHERE version_insights.state != 'running'",
            params![version_id, who.team_id, kind.as_str(), job_id, params.to_string(), result.to_string(), at],
        )?;
        Ok(())
    }

    /// Records a run's end; ignored when a newer run replaced it.
    pub fn finish_insight(&self, version_id: &str, kind: InsightKind, job_id: &str, outcome: std::result::Result<&Value, &str>) -> Result<()> {
        let (state, result, error) = match outcome {
            Ok(result) => ("done", Some(result.to_string()), None),
            Err(error) => ("failed", None, Some(error.to_string())),
        };
        self.conn.execute(
            "UPDATE version_insights SET state = ?4, result = ?5, error = ?6, finished_at = ?7
             WHERE version_id = ?1 AND kind = ?2 AND job_id = ?3",
            params![version_id, kind.as_str(), job_id, state, result, error, now()],
        )?;
        Ok(())
    }
}
