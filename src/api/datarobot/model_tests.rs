//! Custom model tests: `/customModelTests/…`. A POST records the test and
//! queues its job (the checks run on DRUM, see src/compute/); the client
//! lists the new test at once and then polls the status route, which
//! answers 303 to the test whatever its verdict.

use serde_json::{json, Map, Value};

use super::models::TARGET_TYPES;
use crate::registry::catalogue::custom_versions::{apply_resource_fields, numbers};
use super::{attachment, opt_str, page_body, paging, status_location};
use crate::compute::checks::{Config, Mode, CHECKS, SEED_CHECKS};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::compute::model_tests::{ModelTest, NewTest};
use crate::registry::{Error, Principal, Registry, Result, Version};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/customModelTests/", list);
    router.add(d, "POST", "/api/v2/customModelTests/", create);
    router.add(d, "GET", "/api/v2/customModelTests/{id}/", get);
    router.add(d, "DELETE", "/api/v2/customModelTests/{id}/", cancel);
    router.add(d, "GET", "/api/v2/customModelTests/{id}/log/", log);
    router.add(d, "GET", "/api/v2/customModelTests/{id}/tail/", tail);
}

fn required(body: &Map<String, Value>, field: &str) -> Result<String> {
    opt_str(body, field, 100)?.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid(field, "is required"))
}

fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let (_, job) = start_test(ctx.registry, &ctx.options.jobs, &who, &body)?;
    crate::jobs::wake();
    Ok(Response::json(202, &json!({"statusId": job.id})).with_header("Location", status_location(req, &job.id)))
}

/// Validates a `CustomModelTests` body and records the test with its job.
/// Shared with the CLI. A server that cannot run models (no runtime, no
/// image builder) answers 422 now rather than queue a test that cannot run.
pub(crate) fn start_test(
    registry: &Registry,
    options: &crate::jobs::JobSettings,
    who: &Principal,
    body: &Map<String, Value>,
) -> Result<(ModelTest, crate::registry::Job)> {
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
    crate::compute::available(&options.compute()).map_err(Error::unprocessable)?;
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

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model_id = req.query("customModelId").filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid("customModelId", "is required"))?.to_string();
    let paging = paging(req)?;
    let page = ctx.registry.list_tests(&who, &model_id, paging.offset, paging.limit)?;
    let data = page.items.iter().map(|t| render_test(ctx.registry, &who, t)).collect::<Result<Vec<_>>>()?;
    Ok(Response::json(200, &page_body(req, paging, data, page.total.unwrap_or(0), page.has_more)))
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let test = ctx.registry.get_test(&who, req.param("id"))?;
    Ok(Response::json(200, &render_test(ctx.registry, &who, &test)?))
}

fn cancel(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    ctx.registry.cancel_test(&who, req.param("id"))?;
    Ok(Response::empty(204))
}

fn log(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let test = ctx.registry.get_test(&who, req.param("id"))?;
    let text = ctx.registry.job_log(&test.job_id)?;
    if text.is_empty() {
        return Err(Error::NotFound(format!("custom model test {} has no log yet", test.id)));
    }
    Ok(Response::bytes(200, "text/plain; charset=utf-8", text.into_bytes())
        .with_header("Content-Disposition", attachment(&format!("testing-{}.log", test.id))))
}

/// `{log}`: the last `lines` lines (1–1000, default 100).
fn tail(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let lines = match req.query("lines") {
        None => 100,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(Error::invalid("query", format!("lines must be an integer from 1 to 1000, got {text:?}"))),
        },
    };
    let test = ctx.registry.get_test(&who, req.param("id"))?;
    let text = ctx.registry.job_log(&test.job_id)?;
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    Ok(Response::json(200, &json!({"log": tail})))
}

/// `CustomModelTestsResponse`, with `imageType`, which the client requires.
pub(crate) fn render_test(registry: &Registry, who: &Principal, test: &ModelTest) -> Result<Value> {
    let model = registry.get_model(who, &test.model_id)?;
    let version = registry.get_version_by_id(who, &test.model_id, &test.version_id)?;
    let (major, minor) = numbers(&version);
    let created_by = registry.find_user(&test.team_id, &test.created_by).map(|u| u.username).unwrap_or_else(|_| test.created_by.clone());
    let environment = |id: &Option<String>| id.clone().unwrap_or_default();
    let env_name = test
        .environment_id
        .as_deref()
        .and_then(|id| registry.get_environment(who, id).ok())
        .map(|e| e.name)
        .unwrap_or_else(|| "unknown environment".into());
    let env_label = match (&test.environment_id, &test.environment_version_id) {
        (Some(env), Some(vid)) => registry.get_env_version(who, env, vid).ok().map(|v| v.label).filter(|l| !l.is_empty()),
        _ => None,
    }
    .unwrap_or_else(|| environment(&test.environment_version_id));
    let setting = |key: &str| test.settings.get(key).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "id": test.id,
        "created": test.created_at,
        "createdBy": created_by,
        "completedAt": test.completed_at.clone().unwrap_or_default(),
        "customModel": {"id": model.id, "name": model.name},
        "customModelVersion": {"id": version.id, "label": format!("v{major}.{minor}")},
        "executionEnvironment": {"id": environment(&test.environment_id), "name": env_name},
        "executionEnvironmentVersion": {"id": environment(&test.environment_version_id), "label": env_label},
        "customModelImageId": test.image_id,
        "imageType": "customModelVersion",
        "datasetId": test.dataset_id,
        "datasetVersionId": test.dataset_version_id,
        "overallStatus": test.overall_status,
        "testingStatus": test.checks,
        "configuration": test.configuration.get("configuration").cloned().unwrap_or(Value::Null),
        "maximumMemory": setting("maximumMemory"),
        "desiredMemory": setting("desiredMemory"),
        "replicas": setting("replicas"),
        "networkEgressPolicy": setting("networkEgressPolicy"),
        "requiresHa": setting("requiresHa"),
        "resourceBundleId": setting("resourceBundleId"),
    }))
}
