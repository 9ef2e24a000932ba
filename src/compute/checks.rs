//! The checks of a custom model test, run against one warm DRUM server:
//! the seed's four (longRunningService, errorCheck, nullValueImputation,
//! sideEffects) and the three newer ones that DataRobot's CI tooling asks
//! for (predictionVerificationCheck, performanceCheck, stabilityCheck).
//!
//! This module decides pass or fail and writes the log a person reads; it
//! knows nothing of the registry. It reports through `Event`s, which the
//! job's thread records, and it runs on a thread of its own (that thread
//! may have joined the model's network namespace).
//!
//! Rules, each check in order (a `Failed` check aborts the ones after it):
//! - longRunningService: `GET /` answers within the start-up timeout, and
//!   still answers after the other checks.
//! - errorCheck: the whole dataset, in chunks, scores with HTTP 200 and one
//!   prediction per row.
//! - nullValueImputation: the first rows with each feature blanked in turn
//!   score like the originals (200, one prediction per row). All variants
//!   go in one request; only if that fails is each feature tried alone, to
//!   name the ones that break.
//! - sideEffects: the first rows scored as a batch equal the same rows
//!   scored one at a time, within a relative 1e-6 (absolute 1e-9).
//! - predictionVerificationCheck: the predictions match a column of
//!   expected values within `comparisonPrecision` for at least
//!   `matchingRate` of the rows.
//! - performanceCheck: single-row requests from `numParallelUsers` users
//!   each answer within `maxResponseTime`, all within `maxExecutionTime`.
//! - stabilityCheck: `numPredictions` requests of random sizes between
//!   `minPayloadSize` and `maxPayloadSize` rows succeed at `passingRate`.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::drum::{truncate, CallError, Client, Endpoint};
use super::table::{Row, Table};

/// Every check, in the order they run.
pub const CHECKS: [&str; 7] = [
    "longRunningService",
    "errorCheck",
    "nullValueImputation",
    "sideEffects",
    "predictionVerificationCheck",
    "performanceCheck",
    "stabilityCheck",
];

/// The seed's four: always present in `testingStatus` (the client requires them).
pub const SEED_CHECKS: [&str; 4] = ["errorCheck", "longRunningService", "nullValueImputation", "sideEffects"];

/// Rows per errorCheck request.
const CHUNK_ROWS: usize = 5_000;
/// Rows of the sample the other checks use.
const SAMPLE_ROWS: usize = 100;
/// Rows scored one by one by sideEffects (each is a request).
const SIDE_EFFECT_ROWS: usize = 50;
/// At most this many rows in one nullValueImputation request.
const VARIANT_ROWS_PER_REQUEST: usize = 20_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Fail,
    Warn,
    Skip,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        match text {
            "fail" => Some(Mode::Fail),
            "warn" => Some(Mode::Warn),
            "skip" => Some(Mode::Skip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fail => "fail",
            Mode::Warn => "warn",
            Mode::Skip => "skip",
        }
    }
}

/// The seed's status enum, for each check and overall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    NotTested,
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Warning,
    Skipped,
    Aborted,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotTested => "not_tested",
            Status::Queued => "queued",
            Status::InProgress => "in_progress",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Warning => "warning",
            Status::Skipped => "skipped",
            Status::Aborted => "aborted",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Status {
        match text {
            "queued" => Status::Queued,
            "in_progress" => Status::InProgress,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "warning" => Status::Warning,
            "skipped" => Status::Skipped,
            "aborted" => Status::Aborted,
            "canceled" => Status::Canceled,
            _ => Status::NotTested,
        }
    }
}

/// `overallStatus` from the checks' statuses: failed > warning > succeeded.
pub fn overall(statuses: &[Status]) -> Status {
    if statuses.contains(&Status::Failed) {
        Status::Failed
    } else if statuses.contains(&Status::Warning) {
        Status::Warning
    } else {
        Status::Succeeded
    }
}

/// What the request asked of each check, and the newer checks' parameters.
#[derive(Clone, Debug)]
pub struct Config {
    modes: BTreeMap<&'static str, Mode>,
    parameters: Map<String, Value>,
}

impl Config {
    /// The seed's `configuration` (values as its enums allow) and CMA's
    /// `parameters`. Err names the field and says what is allowed.
    pub fn parse(configuration: Option<&Value>, parameters: Option<&Value>) -> Result<Config, (String, String)> {
        let mut modes = BTreeMap::new();
        for check in CHECKS {
            let default = match check {
                "errorCheck" | "longRunningService" => Mode::Fail,
                "nullValueImputation" | "sideEffects" => Mode::Warn,
                _ => Mode::Skip,
            };
            modes.insert(check, default);
        }
        match configuration {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (key, value) in given {
                    let Some(check) = CHECKS.iter().find(|c| **c == key) else {
                        return Err(("configuration".into(), format!("{key:?} is not a check; the checks are {}", CHECKS.join(", "))));
                    };
                    let allowed: &[Mode] = match *check {
                        "longRunningService" => &[Mode::Fail],
                        "errorCheck" => &[Mode::Fail, Mode::Skip],
                        _ => &[Mode::Fail, Mode::Warn, Mode::Skip],
                    };
                    let mode = value.as_str().and_then(Mode::parse).filter(|m| allowed.contains(m)).ok_or_else(|| {
                        let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                        (format!("configuration.{key}"), format!("must be one of {}", names.join(", ")))
                    })?;
                    modes.insert(check, mode);
                }
            }
            Some(_) => return Err(("configuration".into(), "must be an object of check names to fail, warn or skip".into())),
        }
        let parameters = match parameters {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(("parameters".into(), "must be an object of check names to their parameters".into())),
        };
        let config = Config { modes, parameters };
        config.validate_parameters()?;
        Ok(config)
    }

    fn validate_parameters(&self) -> Result<(), (String, String)> {
        let number = |check: &str, key: &str, min: f64, max: f64| -> Result<(), (String, String)> {
            match self.parameters.get(check).and_then(|p| p.get(key)) {
                None | Some(Value::Null) => Ok(()),
                Some(v) => match v.as_f64() {
                    Some(n) if (min..=max).contains(&n) => Ok(()),
                    _ => Err((format!("parameters.{check}.{key}"), format!("must be a number from {min} to {max}"))),
                },
            }
        };
        number("predictionVerificationCheck", "matchingRate", 0.0, 1.0)?;
        number("predictionVerificationCheck", "comparisonPrecision", 0.0, f64::MAX)?;
        number("performanceCheck", "maxResponseTime", 0.0, 86_400.0)?;
        number("performanceCheck", "maxExecutionTime", 0.0, 86_400.0)?;
        number("performanceCheck", "numParallelUsers", 1.0, 4.0)?;
        number("stabilityCheck", "numPredictions", 1.0, 10_000.0)?;
        number("stabilityCheck", "passingRate", 0.0, 1.0)?;
        number("stabilityCheck", "numParallelUsers", 1.0, 4.0)?;
        number("stabilityCheck", "minPayloadSize", 1.0, 100_000.0)?;
        number("stabilityCheck", "maxPayloadSize", 1.0, 100_000.0)?;
        if self.mode("predictionVerificationCheck") != Mode::Skip {
            let column = self.parameters.get("predictionVerificationCheck").and_then(|p| p.get("predictionsColumn"));
            if column.and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err((
                    "parameters.predictionVerificationCheck.predictionsColumn".into(),
                    "is required when predictionVerificationCheck is not skipped".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn mode(&self, check: &str) -> Mode {
        self.modes.get(check).copied().unwrap_or(Mode::Skip)
    }

    pub fn parameter(&self, check: &str, key: &str) -> Option<&Value> {
        self.parameters.get(check).and_then(|p| p.get(key)).filter(|v| !v.is_null())
    }

    fn number(&self, check: &str, key: &str, default: f64) -> f64 {
        self.parameter(check, key).and_then(Value::as_f64).unwrap_or(default)
    }

    /// As stored and echoed: every check's mode, and the parameters.
    pub fn to_json(&self) -> Value {
        let modes: Map<String, Value> = self.modes.iter().map(|(k, m)| (k.to_string(), json!(m.as_str()))).collect();
        json!({"configuration": modes, "parameters": self.parameters})
    }

    pub fn from_json(value: &Value) -> Config {
        Config::parse(value.get("configuration"), value.get("parameters")).unwrap_or_else(|_| {
            Config::parse(None, None).expect("the defaults are valid")
        })
    }
}

/// What a check run reports to the job.
#[derive(Debug)]
pub enum Event {
    Log(String),
    Check { name: &'static str, status: Status, message: String },
}

/// Everything the checks need besides the server.
pub struct Plan {
    /// DataRobot's target type.
    pub target_type: String,
    pub positive_class_label: Option<String>,
    pub config: Config,
    /// The test dataset (None only for unstructured models).
    pub dataset: Option<Box<dyn Read + Send>>,
    /// Columns the model must not see: the target and partition columns.
    pub drop_columns: Vec<String>,
    /// Expected predictions for predictionVerificationCheck, row-aligned
    /// with the dataset, and the column that holds them.
    pub expected: Option<(Box<dyn Read + Send>, String)>,
    /// The dataset read again from its start, for predictionVerificationCheck
    /// (the first reader is past the rows by then).
    pub dataset_again: Option<Box<dyn Read + Send>>,
    pub start_timeout: Duration,
}

/// Runs the checks in order, reporting through `emit`. `stopped` is true
/// once the job gave up on the server (cancel, timeout, the server died).
/// `why_down` says why the server stopped answering, when the job knows.
pub fn run(plan: Plan, endpoint: &Endpoint, emit: &dyn Fn(Event), stopped: &(dyn Fn() -> bool + Sync), why_down: &(dyn Fn() -> Option<String> + Sync)) {
    let mut run = Run { plan, emit, why_down, statuses: BTreeMap::new() };
    for check in CHECKS {
        let status = if run.plan.config.mode(check) == Mode::Skip { Status::Skipped } else { Status::Queued };
        let message = if status == Status::Skipped { "skipped by the test's configuration".to_string() } else { String::new() };
        run.set(check, status, message);
    }
    let client = match endpoint.connect() {
        Ok(c) => c,
        Err(e) => return run.fail_from("longRunningService", e),
    };
    run.set("longRunningService", Status::InProgress, String::new());
    let started = Instant::now();
    match client.wait_ready(run.plan.start_timeout, stopped) {
        Ok(took) => run.log(&format!("longRunningService: the model server answered GET / after {:.1} s.", took.as_secs_f64())),
        Err(e) => {
            let why = why_down().map(|w| format!("{e}: {w}")).unwrap_or(e);
            return run.fail_from("longRunningService", why);
        }
    }
    let unstructured = run.plan.target_type == "Unstructured";
    let outcome = if unstructured { run.unstructured(&client) } else { run.structured(&client, endpoint) };
    if let Err((check, message)) = outcome {
        run.fail_from(check, message);
    }
    // longRunningService ends last: the server must still answer.
    match client.ping() {
        Ok(()) => run.set(
            "longRunningService",
            Status::Succeeded,
            format!("The model server started and kept answering for {:.1} s.", started.elapsed().as_secs_f64()),
        ),
        Err(e) => {
            let why = why_down().unwrap_or(e);
            run.set("longRunningService", Status::Failed, format!("The model server stopped answering: {why}"));
        }
    }
}

/// A check that failed under `fail`: its name and message.
type Abort = (&'static str, String);

struct Run<'a> {
    plan: Plan,
    emit: &'a dyn Fn(Event),
    why_down: &'a (dyn Fn() -> Option<String> + Sync),
    statuses: BTreeMap<&'static str, Status>,
}

impl Run<'_> {
    fn log(&self, line: &str) {
        (self.emit)(Event::Log(line.to_string()));
    }

    fn set(&mut self, name: &'static str, status: Status, message: String) {
        self.statuses.insert(name, status);
        (self.emit)(Event::Check { name, status, message });
    }

    fn mode(&self, check: &str) -> Mode {
        self.plan.config.mode(check)
    }

    fn pending(&self, check: &str) -> bool {
        matches!(self.statuses.get(check), Some(Status::Queued | Status::InProgress))
    }

    /// `check` failed (or could not run): it fails and every check not yet
    /// done is aborted, as DataRobot does.
    fn fail_from(&mut self, check: &'static str, message: String) {
        self.log(&format!("{check} FAILED: {message}"));
        self.set(check, Status::Failed, message);
        for other in CHECKS {
            if other != check && other != "longRunningService" && self.pending(other) {
                self.set(other, Status::Aborted, format!("not run: {check} failed"));
            }
        }
    }

    /// The verdict of a check that found problems: failed under `fail`
    /// (which aborts the rest), a warning under `warn`.
    fn verdict(&mut self, check: &'static str, problem: Option<String>, success: String) -> Result<(), Abort> {
        match problem {
            None => {
                self.log(&format!("{check} passed: {success}"));
                self.set(check, Status::Succeeded, success);
                Ok(())
            }
            Some(message) if self.mode(check) == Mode::Fail => Err((check, message)),
            Some(message) => {
                self.log(&format!("{check} WARNING: {message}"));
                self.set(check, Status::Warning, message);
                Ok(())
            }
        }
    }

    /// A call failure in words, with the reason the server went down when
    /// the job knows it (a model killed for memory).
    fn call_failure(&self, e: &CallError) -> String {
        if e.status.is_none() {
            // The job notices a dead server within its poll interval.
            for _ in 0..40 {
                if let Some(why) = (self.why_down)() {
                    return format!("{e} ({why})");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        e.to_string()
    }

    fn unstructured(&mut self, client: &Client) -> Result<(), Abort> {
        for check in ["nullValueImputation", "sideEffects", "predictionVerificationCheck", "performanceCheck", "stabilityCheck"] {
            if self.pending(check) {
                self.set(check, Status::Skipped, "not applicable to unstructured models".into());
            }
        }
        if self.mode("errorCheck") == Mode::Skip {
            return Ok(());
        }
        self.set("errorCheck", Status::InProgress, String::new());
        let mut body = Vec::new();
        if let Some(dataset) = self.plan.dataset.as_mut() {
            // One call with the dataset as its body, at most 10 MiB of it.
            dataset.take(10 * 1024 * 1024).read_to_end(&mut body).map_err(|e| ("errorCheck", format!("cannot read the dataset: {e}")))?;
        }
        let started = Instant::now();
        match client.predict_unstructured(&body, "text/plain; charset=UTF-8") {
            Ok((status, answer)) if (200..300).contains(&status) => self.verdict(
                "errorCheck",
                None,
                format!("predictUnstructured answered HTTP {status} with {} bytes in {} ms.", answer.len(), started.elapsed().as_millis()),
            ),
            Ok((status, answer)) => Err(("errorCheck", format!("predictUnstructured answered HTTP {status}: {}", truncate(&String::from_utf8_lossy(&answer), 1000)))),
            Err(e) => Err(("errorCheck", self.call_failure(&e))),
        }
    }

    fn structured(&mut self, client: &Client, endpoint: &Endpoint) -> Result<(), Abort> {
        let Some(source) = self.plan.dataset.take() else {
            return Err(("errorCheck", "a structured model needs a dataset to be tested".into()));
        };
        let mut table = Table::open(source, &self.plan.drop_columns).map_err(|e| ("errorCheck", e))?;
        let dropped: Vec<&String> = self.plan.drop_columns.iter().filter(|c| table.column(c).is_some()).collect();
        self.log(&format!(
            "Dataset: {} columns; {} features sent to the model{}.",
            table.header.len(),
            table.feature_names().len(),
            if dropped.is_empty() { String::new() } else { format!(" (dropped: {})", dropped.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
        ));
        let (sample, batch) = self.error_check(client, &mut table)?;
        if sample.is_empty() {
            return Err(("errorCheck", "the dataset has no rows".into()));
        }
        self.null_imputation(client, &table, &sample)?;
        self.side_effects(client, &table, &sample, &batch)?;
        self.prediction_verification(client)?;
        self.performance(endpoint, &table, &sample)?;
        self.stability(endpoint, &table, &sample)?;
        Ok(())
    }

    /// Scores the whole dataset in chunks. Returns the first rows and their
    /// batch predictions, which the later checks reuse.
    fn error_check<R: Read>(&mut self, client: &Client, table: &mut Table<R>) -> Result<(Vec<Row>, Vec<Value>), Abort> {
        if self.mode("errorCheck") == Mode::Skip {
            let sample = table.next_rows(SAMPLE_ROWS).map_err(|e| ("errorCheck", e))?;
            let batch = client.predict(&table.encode(&sample, None)).map_err(|e| ("nullValueImputation", self.call_failure(&e)))?;
            return Ok((sample, batch));
        }
        self.set("errorCheck", Status::InProgress, String::new());
        let (mut rows_total, mut requests, mut slowest) = (0usize, 0usize, Duration::ZERO);
        let mut sample = Vec::new();
        let mut batch = Vec::new();
        loop {
            let rows = table.next_rows(CHUNK_ROWS).map_err(|e| ("errorCheck", e))?;
            if rows.is_empty() {
                break;
            }
            let started = Instant::now();
            let predictions = client.predict(&table.encode(&rows, None)).map_err(|e| {
                ("errorCheck", format!("rows {}–{} could not be scored: {}", rows_total + 1, rows_total + rows.len(), self.call_failure(&e)))
            })?;
            slowest = slowest.max(started.elapsed());
            if predictions.len() != rows.len() {
                return Err((
                    "errorCheck",
                    format!("rows {}–{}: {} rows sent, {} predictions returned", rows_total + 1, rows_total + rows.len(), rows.len(), predictions.len()),
                ));
            }
            if sample.is_empty() {
                let keep = rows.len().min(SAMPLE_ROWS);
                sample = rows[..keep].to_vec();
                batch = predictions[..keep].to_vec();
            }
            rows_total += rows.len();
            requests += 1;
        }
        if rows_total == 0 {
            return Err(("errorCheck", "the dataset has no rows".into()));
        }
        self.verdict(
            "errorCheck",
            None,
            format!("{rows_total} rows scored in {requests} request(s), one prediction per row (slowest request {} ms).", slowest.as_millis()),
        )?;
        Ok((sample, batch))
    }

    fn null_imputation<R: Read>(&mut self, client: &Client, table: &Table<R>, sample: &[Row]) -> Result<(), Abort> {
        if !self.pending("nullValueImputation") {
            return Ok(());
        }
        self.set("nullValueImputation", Status::InProgress, String::new());
        let features: Vec<usize> = (0..table.feature_names().len()).collect();
        let names = table.feature_names();
        // Fast path: every variant in as few requests as the row cap allows.
        let per_request = (VARIANT_ROWS_PER_REQUEST / sample.len()).max(1);
        let mut all_ok = true;
        for group in features.chunks(per_request) {
            match client.predict(&table.encode_variants(sample, group)) {
                Ok(p) if p.len() == sample.len() * group.len() => {}
                _ => {
                    all_ok = false;
                    break;
                }
            }
        }
        if all_ok {
            return self.verdict(
                "nullValueImputation",
                None,
                format!("each of {} features was blanked in {} rows; every variant scored.", features.len(), sample.len()),
            );
        }
        // Find the features that break, one request each.
        let mut broken = Vec::new();
        for f in &features {
            let outcome = client.predict(&table.encode(sample, Some(*f)));
            let problem = match outcome {
                Ok(p) if p.len() == sample.len() => None,
                Ok(p) => Some(format!("{} rows sent, {} predictions returned", sample.len(), p.len())),
                Err(e) => Some(self.call_failure(&e)),
            };
            if let Some(problem) = problem {
                broken.push((names[*f].to_string(), problem));
            }
        }
        self.log("nullValueImputation: features whose blank values the model cannot score:");
        self.log("  feature | error");
        for (name, problem) in &broken {
            self.log(&format!("  {name} | {}", truncate(problem, 2000)));
        }
        let problem = if broken.is_empty() {
            // The combined request failed but every feature alone passed.
            "the model failed on a request combining every blanked feature, though each feature alone scored".to_string()
        } else {
            let list: Vec<String> = broken.iter().map(|(n, p)| format!("{n} ({})", truncate(p, 200))).collect();
            format!("the model cannot score rows with a blank value in {} feature(s): {}", broken.len(), list.join("; "))
        };
        self.verdict("nullValueImputation", Some(problem), String::new())
    }

    fn side_effects<R: Read>(&mut self, client: &Client, table: &Table<R>, sample: &[Row], batch: &[Value]) -> Result<(), Abort> {
        if !self.pending("sideEffects") {
            return Ok(());
        }
        self.set("sideEffects", Status::InProgress, String::new());
        let n = sample.len().min(SIDE_EFFECT_ROWS);
        let mut differences = Vec::new();
        for i in 0..n {
            let single = client.predict(&table.encode(&sample[i..=i], None)).map_err(|e| ("sideEffects", format!("row {} alone could not be scored: {}", i + 1, self.call_failure(&e))))?;
            let Some(alone) = single.first() else {
                return Err(("sideEffects", format!("row {} alone returned no prediction", i + 1)));
            };
            if let Some(diff) = difference(&batch[i], alone) {
                differences.push(format!("row {}: in a batch {} but alone {} ({diff})", i + 1, batch[i], alone));
            }
        }
        if differences.is_empty() {
            return self.verdict("sideEffects", None, format!("{n} rows scored alone match their batch predictions."));
        }
        self.log("sideEffects: rows whose prediction depends on the rest of the batch:");
        for d in &differences {
            self.log(&format!("  {d}"));
        }
        let first: Vec<&str> = differences.iter().take(3).map(String::as_str).collect();
        self.verdict(
            "sideEffects",
            Some(format!("{} of {n} rows differ when scored alone; {}", differences.len(), first.join("; "))),
            String::new(),
        )
    }

    fn prediction_verification(&mut self, client: &Client) -> Result<(), Abort> {
        const CHECK: &str = "predictionVerificationCheck";
        if !self.pending(CHECK) {
            return Ok(());
        }
        self.set(CHECK, Status::InProgress, String::new());
        let precision = self.plan.config.number(CHECK, "comparisonPrecision", 1e-3);
        let rate = self.plan.config.number(CHECK, "matchingRate", 1.0);
        let Some((source, column)) = self.plan.expected.take() else {
            return Err((CHECK, "no dataset with expected predictions was given".into()));
        };
        let mut expected_table = Table::open(source, &[]).map_err(|e| (CHECK, e))?;
        let Some(expected_column) = expected_table.column(&column) else {
            return Err((CHECK, format!("the predictions dataset has no column {column:?}")));
        };
        let expected_rows = expected_table.next_rows(usize::MAX).map_err(|e| (CHECK, e))?;
        let positive = self.plan.positive_class_label.clone();
        let scored = self.rescore_for_verification(client, expected_rows.len())?;
        let compared = scored.len().min(expected_rows.len());
        if compared == 0 {
            return Err((CHECK, "there are no rows to compare".into()));
        }
        let mut matches = 0usize;
        let mut misses = Vec::new();
        for i in 0..compared {
            let expected = expected_rows[i].get(expected_column).unwrap_or("");
            if prediction_matches(&scored[i], expected, precision, positive.as_deref()) {
                matches += 1;
            } else if misses.len() < 20 {
                misses.push(format!("row {}: expected {expected}, predicted {}", i + 1, scored[i]));
            }
        }
        let share = matches as f64 / compared as f64;
        for m in &misses {
            self.log(&format!("  {m}"));
        }
        let summary = format!("{matches} of {compared} predictions ({:.1} %) match within {precision}; required {:.1} %", share * 100.0, rate * 100.0);
        self.verdict(CHECK, (share + 1e-12 < rate).then(|| summary.clone()), summary)
    }

    /// The predictions of the first `n` dataset rows, scored afresh from
    /// the plan's second reader of the dataset.
    fn rescore_for_verification(&mut self, client: &Client, n: usize) -> Result<Vec<Value>, Abort> {
        const CHECK: &str = "predictionVerificationCheck";
        let Some(source) = self.plan.dataset_again.take() else {
            return Err((CHECK, "the dataset could not be read again".into()));
        };
        let mut table = Table::open(source, &self.plan.drop_columns).map_err(|e| (CHECK, e))?;
        let mut out = Vec::new();
        while out.len() < n {
            let rows = table.next_rows(CHUNK_ROWS.min(n - out.len())).map_err(|e| (CHECK, e))?;
            if rows.is_empty() {
                break;
            }
            out.extend(client.predict(&table.encode(&rows, None)).map_err(|e| (CHECK, self.call_failure(&e)))?);
        }
        Ok(out)
    }

    fn performance<R: Read>(&mut self, endpoint: &Endpoint, table: &Table<R>, sample: &[Row]) -> Result<(), Abort> {
        const CHECK: &str = "performanceCheck";
        if !self.pending(CHECK) {
            return Ok(());
        }
        self.set(CHECK, Status::InProgress, String::new());
        let max_response = Duration::from_secs_f64(self.plan.config.number(CHECK, "maxResponseTime", 30.0));
        let max_execution = Duration::from_secs_f64(self.plan.config.number(CHECK, "maxExecutionTime", 300.0));
        let users = self.plan.config.number(CHECK, "numParallelUsers", 1.0) as usize;
        let bodies: Vec<Vec<u8>> = sample.iter().take(20).map(|row| table.encode(std::slice::from_ref(row), None)).collect();
        let started = Instant::now();
        let results = parallel(endpoint, users, |client, _user| {
            bodies.iter().map(|body| {
                let t = Instant::now();
                client.predict(body).map(|_| t.elapsed())
            }).collect::<Vec<_>>()
        });
        let elapsed = started.elapsed();
        let mut slowest = Duration::ZERO;
        for outcome in results.into_iter().flatten() {
            match outcome {
                Ok(took) => slowest = slowest.max(took),
                Err(e) => return Err((CHECK, format!("a request failed: {}", self.call_failure(&e)))),
            }
        }
        let summary = format!(
            "{} single-row requests from {users} user(s): slowest {} ms (limit {} ms), all in {} ms (limit {} ms)",
            bodies.len() * users,
            slowest.as_millis(),
            max_response.as_millis(),
            elapsed.as_millis(),
            max_execution.as_millis()
        );
        let too_slow = slowest > max_response || elapsed > max_execution;
        self.verdict(CHECK, too_slow.then(|| summary.clone()), summary)
    }

    fn stability<R: Read>(&mut self, endpoint: &Endpoint, table: &Table<R>, sample: &[Row]) -> Result<(), Abort> {
        const CHECK: &str = "stabilityCheck";
        if !self.pending(CHECK) {
            return Ok(());
        }
        self.set(CHECK, Status::InProgress, String::new());
        let total = self.plan.config.number(CHECK, "numPredictions", 100.0) as usize;
        let users = self.plan.config.number(CHECK, "numParallelUsers", 1.0) as usize;
        let passing = self.plan.config.number(CHECK, "passingRate", 0.95);
        let min = self.plan.config.number(CHECK, "minPayloadSize", 1.0) as usize;
        let max = (self.plan.config.number(CHECK, "maxPayloadSize", sample.len() as f64) as usize).max(min);
        let seed = 0x5eed_u64 ^ total as u64;
        self.log(&format!("stabilityCheck: {total} requests of {min}–{max} rows from {users} user(s), seed {seed}."));
        // Payload sizes from a fixed seed, so a failing run can be replayed.
        let mut state = seed;
        let sizes: Vec<usize> = (0..total)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                min + (state >> 33) as usize % (max - min + 1)
            })
            .collect();
        let bodies: Vec<(usize, Vec<u8>)> = sizes
            .iter()
            .map(|&size| {
                let rows: Vec<Row> = (0..size).map(|i| sample[i % sample.len()].clone()).collect();
                (size, table.encode(&rows, None))
            })
            .collect();
        let results = parallel(endpoint, users, |client, user| {
            bodies
                .iter()
                .enumerate()
                .filter(|(i, _)| i % users == user)
                .map(|(_, (size, body))| matches!(client.predict(body), Ok(p) if p.len() == *size))
                .collect::<Vec<bool>>()
        });
        let succeeded = results.iter().flatten().filter(|ok| **ok).count();
        let share = succeeded as f64 / total.max(1) as f64;
        let summary = format!("{succeeded} of {total} requests succeeded ({:.1} %); required {:.1} %", share * 100.0, passing * 100.0);
        self.verdict(CHECK, (share + 1e-12 < passing).then(|| summary.clone()), summary)
    }
}

/// Runs `work` on `users` threads, each with its own client (joined to the
/// server's namespace like the caller's).
fn parallel<T: Send>(endpoint: &Endpoint, users: usize, work: impl Fn(&Client, usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..users.max(1))
            .map(|user| {
                let work = &work;
                scope.spawn(move || endpoint.connect().ok().map(|client| work(&client, user)))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok().flatten()).collect()
    })
}

/// Why two predictions of the same row differ, or None when they agree:
/// numbers within a relative 1e-6 (absolute 1e-9), class probabilities
/// label by label, anything else exactly.
pub fn difference(a: &Value, b: &Value) -> Option<String> {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 + 1e-6 * x.abs().max(y.abs());
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            (!close(x, y)).then(|| format!("differs by {:.3e}", (x - y).abs()))
        }
        (Value::Object(x), Value::Object(y)) => {
            for (label, px) in x {
                match (px.as_f64(), y.get(label).and_then(Value::as_f64)) {
                    (Some(p), Some(q)) if close(p, q) => {}
                    (Some(p), Some(q)) => return Some(format!("label {label}: {p} vs {q}")),
                    _ if y.get(label) == Some(px) => {}
                    _ => return Some(format!("label {label} differs")),
                }
            }
            (x.len() != y.len()).then(|| "different labels".to_string())
        }
        _ => (a != b).then(|| "differs".to_string()),
    }
}

/// Whether a prediction matches an expected value from a CSV field: a
/// number within `precision` (for class probabilities, the positive
/// label's), or a class label equal to the most probable one.
fn prediction_matches(prediction: &Value, expected: &str, precision: f64, positive: Option<&str>) -> bool {
    let expected = expected.trim();
    match (expected.parse::<f64>(), prediction) {
        (Ok(e), Value::Number(p)) => p.as_f64().is_some_and(|p| (p - e).abs() <= precision),
        (Ok(e), Value::Object(probs)) => {
            let p = positive.and_then(|l| probs.get(l)).and_then(Value::as_f64);
            p.is_some_and(|p| (p - e).abs() <= precision)
        }
        (_, Value::Object(probs)) => probs
            .iter()
            .filter_map(|(label, p)| p.as_f64().map(|p| (label, p)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .is_some_and(|(label, _)| label == expected),
        (_, Value::String(s)) => s == expected,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_defaults_and_enums() {
        let c = Config::parse(None, None).unwrap();
        assert_eq!(c.mode("errorCheck"), Mode::Fail);
        assert_eq!(c.mode("nullValueImputation"), Mode::Warn);
        assert_eq!(c.mode("stabilityCheck"), Mode::Skip);
        let c = Config::parse(Some(&json!({"nullValueImputation": "fail", "errorCheck": "skip"})), None).unwrap();
        assert_eq!((c.mode("nullValueImputation"), c.mode("errorCheck")), (Mode::Fail, Mode::Skip));
        assert_eq!(Config::parse(Some(&json!({"errorCheck": "warn"})), None).unwrap_err().0, "configuration.errorCheck");
        assert_eq!(Config::parse(Some(&json!({"longRunningService": "skip"})), None).unwrap_err().0, "configuration.longRunningService");
        assert!(Config::parse(Some(&json!({"speed": "fail"})), None).unwrap_err().1.contains("not a check"));
        let err = Config::parse(Some(&json!({"predictionVerificationCheck": "warn"})), None).unwrap_err();
        assert!(err.0.ends_with("predictionsColumn"), "{err:?}");
        let err = Config::parse(None, Some(&json!({"stabilityCheck": {"passingRate": 2}}))).unwrap_err();
        assert_eq!(err.0, "parameters.stabilityCheck.passingRate");
        let round = Config::from_json(&Config::parse(Some(&json!({"sideEffects": "skip"})), None).unwrap().to_json());
        assert_eq!(round.mode("sideEffects"), Mode::Skip);
    }

    #[test]
    fn overall_is_the_worst() {
        use Status::*;
        assert_eq!(overall(&[Succeeded, Skipped, Warning]), Warning);
        assert_eq!(overall(&[Succeeded, Failed, Warning, Aborted]), Failed);
        assert_eq!(overall(&[Succeeded, Skipped]), Succeeded);
    }

    #[test]
    fn predictions_compare_with_tolerance() {
        assert!(difference(&json!(1.0), &json!(1.0000000001)).is_none());
        assert!(difference(&json!(1.0), &json!(1.01)).is_some());
        assert!(difference(&json!({"yes": 0.3, "no": 0.7}), &json!({"yes": 0.3, "no": 0.7})).is_none());
        assert!(difference(&json!({"yes": 0.3, "no": 0.7}), &json!({"yes": 0.4, "no": 0.6})).unwrap().starts_with("label "));
        assert!(prediction_matches(&json!(2.0004), "2", 1e-3, None));
        assert!(!prediction_matches(&json!(2.1), "2", 1e-3, None));
        assert!(prediction_matches(&json!({"yes": 0.8, "no": 0.2}), "0.8", 1e-3, Some("yes")));
        assert!(prediction_matches(&json!({"cat": 0.8, "dog": 0.2}), "cat", 1e-3, None));
    }
}
