//! Custom model tests: `/customModelTests/…`. A POST records the test and
//! queues its job (the checks run on DRUM, see src/compute/); the client
//! lists the new test at once and then polls the status route, which
//! answers 303 to the test whatever its verdict.

use serde_json::{json, Value};

use super::{attachment, page_body, paging, status_location};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::catalogue::custom_versions::numbers;
use crate::registry::compute::model_tests::ModelTest;
use crate::registry::{Error, Principal, Registry, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/customModelTests/", list);
    router.add(d, "POST", "/api/v2/customModelTests/", create);
    router.add(d, "GET", "/api/v2/customModelTests/{id}/", get);
    router.add(d, "DELETE", "/api/v2/customModelTests/{id}/", cancel);
    router.add(d, "GET", "/api/v2/customModelTests/{id}/log/", log);
    router.add(d, "GET", "/api/v2/customModelTests/{id}/tail/", tail);
}

fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let (_, job) = crate::compute::requests::start_test(ctx.registry, &ctx.options.jobs.compute(), &who, &body)?;
    crate::jobs::wake();
    Ok(Response::json(202, &json!({"statusId": job.id})).with_header("Location", status_location(req, &job.id)))
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
