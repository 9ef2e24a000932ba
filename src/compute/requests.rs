//! Starting work on a model: what a request to test a custom model version
//! or compute its insights must pass before its job is queued (the version,
//! its target type, its datasets, a runtime that can run it). The DataRobot
//! door and the offline CLI both start work here, so both refuse the same
//! requests with the same errors.

use serde_json::{json, Map, Value};

use super::checks::{Config, Mode, CHECKS, SEED_CHECKS};
use super::insights::SUPPORTED_TARGETS;
use super::jobs::Settings;
use crate::registry::catalogue::custom_models::TARGET_TYPES;
use crate::registry::catalogue::custom_versions::apply_resource_fields;
use crate::registry::compute::insights::InsightKind;
use crate::registry::compute::model_tests::{ModelTest, NewTest};
use crate::registry::fields::opt_str;
use crate::registry::{Error, Job, Principal, Registry, Result, Version};

fn required(body: &Map<String, Value>, field: &str) -> Result<String> {
    opt_str(body, field, 100)?.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid(field, "is required"))
}

/// Validates a `CustomModelTests` body and records the test with its job.
/// Shared with the CLI. A server that cannot run models (no runtime, no
/// image builder) answers 422 now rather than queue a test that cannot run.
pub fn start_test(
    registry: &Registry,
    settings: &Settings,
    who: &Principal,
    body: &Map<String, Value>,
) -> Result<(ModelTest, Job)> {
    let model_id = required(body, "customModelId")?;
    let version_id = required(body, "customModelVersionId")?;
    let model = registry.get_model(who, &model_id)?;
    let version = registry.get_version_by_id(who, &model_id, &version_id)?;
    let target_type = model.target_type();
    if !TARGET_TYPES.contains(&target_type) {
        return Err(Error::unprocessable(format!("custom model {model_id} has target type {target_type:?}, which DataRobot cannot test")));
    }
    let config = Config::parse(body.get("configuration"), body.get("parameters")).map_err(|(field, message)| Error::invalid(&field, message))?;
    let dataset_id = opt_str(body, "datasetId", 100)?.filter(|s| !s.is_empty());
    let dataset_version_id = match &dataset_id {
        Some(id) => {
            let dataset = registry.usable_dataset(who, id)?;
            match opt_str(body, "datasetVersionId", 100)?.filter(|s| !s.is_empty()) {
                Some(v) if v != dataset.version_id => return Err(Error::NotFound(format!("dataset {id} has no version {v}"))),
                _ => Some(dataset.version_id),
            }
        }
        None if target_type == "Unstructured" => None,
        None => return Err(Error::invalid("datasetId", format!("is required to test a {target_type} model"))),
    };
    if let Some(id) = config.parameter("predictionVerificationCheck", "datasetId").and_then(Value::as_str) {
        if config.mode("predictionVerificationCheck") != Mode::Skip {
            registry.usable_dataset(who, id)?;
        }
    }
    // No runtime: a clear 422 now rather than a test that cannot run.
    super::available(settings).map_err(Error::unprocessable)?;
    let mut settings = Map::new();
    apply_resource_fields(body, &mut settings)?;
    for deprecated in ["environmentId", "environmentVersionId"] {
        if let Some(v) = opt_str(body, deprecated, 100)? {
            settings.insert(deprecated.into(), json!(v));
        }
    }
    // testingStatus holds the seed's four checks, and the newer ones the
    // request named (the client knows only the four).
    let named = |check: &str| body.get("configuration").and_then(|c| c.get(check)).is_some();
    let checks: Map<String, Value> = CHECKS
        .iter()
        .filter(|c| SEED_CHECKS.contains(c) || named(c))
        .map(|c| {
            let skipped = config.mode(c) == Mode::Skip;
            let status = if skipped { "skipped" } else { "queued" };
            let message = if skipped { "skipped by the test's configuration" } else { "" };
            (c.to_string(), json!({"status": status, "message": message}))
        })
        .collect();
    let attr = |key: &str| version.attrs.get(key).and_then(Value::as_str).map(String::from);
    let new = NewTest {
        model_id,
        version_id: version.id.clone(),
        dataset_id,
        dataset_version_id,
        environment_id: attr("baseEnvironmentId"),
        environment_version_id: attr("baseEnvironmentVersionId"),
        image_id: image_id(&version),
        checks,
        configuration: config.to_json(),
        settings,
    };
    registry.create_test(who, new)
}

/// DataRobot's `customModelImageId`: what a test ran, named by the version,
/// its environment version and its dependencies (the client requires one
/// on every test, so it is minted up front).
fn image_id(version: &Version) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(version.id.as_bytes());
    hasher.update(b"\0");
    hasher.update(version.attrs.get("baseEnvironmentVersionId").and_then(Value::as_str).unwrap_or("").as_bytes());
    hasher.update(b"\0");
    let deps = version.attrs.get("dependencies").cloned().unwrap_or_else(|| json!([]));
    hasher.update(crate::runtime::deps::requirement_lines(&deps).join("\n").as_bytes());
    crate::registry::hex(&hasher.finalize())[..24].to_string()
}
/// Checks what can be refused before queueing, and queues the run. Shared
/// with the CLI.
pub fn start_insight(
    registry: &Registry,
    settings: &Settings,
    who: &Principal,
    model: &str,
    version: &str,
    kind: InsightKind,
    row_count: Option<i64>,
) -> Result<Job> {
    let found = registry.get_model(who, model)?;
    registry.get_version_by_id(who, model, version)?;
    let target = found.target_type();
    if !SUPPORTED_TARGETS.contains(&target) {
        return Err(Error::unprocessable(format!(
            "custom model {model} is {} and not valid for {}: it needs a Regression, Binary or Multiclass target",
            if target.is_empty() { "untyped" } else { target },
            kind.describe()
        )));
    }
    let (dataset, _) = registry.training_dataset_for(who, model, version)?.ok_or_else(|| {
        Error::unprocessable(format!("version {version} has no training data; assign some (trainingData/) first"))
    })?;
    registry.usable_dataset(who, &dataset.id)?;
    super::available(settings).map_err(Error::unprocessable)?;
    let (_, job) = registry.start_insight(who, model, version, kind, json!({"rowCount": row_count}))?;
    Ok(job)
}

