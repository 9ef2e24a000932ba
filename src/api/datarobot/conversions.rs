//! Conversions: `…/versions/{vid}/conversions/`, `…/conversions/{cid}/`,
//! and modelreg's own `…/conversions/{cid}/jar/` (the JAR). A POST checks
//! the main program and records the conversion with its job
//! (`compute::convert::start`); the job compiles it with the host's JDK.
//! The client reads the POST's Location when it waits, so it is sent,
//! although the seed documents none.

use serde_json::{json, Map, Value};

use super::{attachment, model_version_ids, opt_str, page_body, page_of, paging, query_bool, status_location, wait_briefly};
use crate::http::response::FileToSend;
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::compute::conversions::Conversion;
use crate::registry::{Digest, Error, Registry, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    let list_path = "/api/v2/customModels/{id}/versions/{vid}/conversions/";
    let item = "/api/v2/customModels/{id}/versions/{vid}/conversions/{cid}/";
    router.add(d, "GET", list_path, list);
    router.add(d, "POST", list_path, create);
    router.add(d, "GET", item, get);
    router.add(d, "DELETE", item, stop);
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/conversions/{cid}/jar/", jar);
}

/// The item id of the main program, from a `{mainProgramItemId}` body.
pub(crate) fn main_program_item(body: &Map<String, Value>) -> Result<String> {
    opt_str(body, "mainProgramItemId", 100)?.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid("mainProgramItemId", "is required"))
}

/// 202 `{conversionId, statusId}` + Location of the status, after waiting
/// briefly: a small program compiles within it, so the client's first
/// poll is the 303 to the conversion.
fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    let item = main_program_item(&req.json_object()?)?;
    let (conversion, job) = crate::compute::convert::start(ctx.registry, &who, &model, &version, &item)?;
    crate::jobs::wake();
    wait_briefly(ctx.registry, &who, &job.id)?;
    Ok(Response::json(202, &json!({"conversionId": conversion.id, "statusId": job.id}))
        .with_header("Location", status_location(req, &job.id)))
}

/// Newest first; `isLatest=true` is a page of the latest one alone (the
/// client's `get_latest` takes its first item).
fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    let paging = paging(req)?;
    let base = req.base_url();
    if query_bool(req, "isLatest")? == Some(true) {
        let page = ctx.registry.list_conversions(&who, &model, &version, 0, 1)?;
        let latest = page.items.iter().map(|c| render(ctx.registry, &base, c)).collect::<Result<Vec<_>>>()?;
        return Ok(Response::json(200, &page_of(req, paging, latest)));
    }
    let page = ctx.registry.list_conversions(&who, &model, &version, paging.offset, paging.limit)?;
    let data = page.items.iter().map(|c| render(ctx.registry, &base, c)).collect::<Result<Vec<_>>>()?;
    Ok(Response::json(200, &page_body(req, paging, data, page.total.unwrap_or(0), page.has_more)))
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    let conversion = ctx.registry.get_conversion(&who, &model, &version, req.param("cid"))?;
    Ok(Response::json(200, &render(ctx.registry, &req.base_url(), &conversion)?))
}

/// Stops a running conversion: 204; 422 "not active" once it has ended.
fn stop(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    ctx.registry.stop_conversion(&who, &model, &version, req.param("cid"))?;
    Ok(Response::empty(204))
}

/// The JAR of a succeeded conversion (modelreg's extension); 404 before.
fn jar(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    let (conversion, jar, file) = open_jar(ctx.registry, &who, &model, &version, req.param("cid"))?;
    let response = req.file_answer(FileToSend { file, size: jar.size, sha256: jar.sha256, content_type: "application/java-archive".into() });
    Ok(response.with_header("Content-Disposition", attachment(&jar_name(&conversion))))
}

/// A succeeded conversion, its JAR's digest and the JAR, open; 404 for one without a JAR.
pub(crate) fn open_jar(
    registry: &Registry,
    who: &crate::registry::Principal,
    model: &str,
    version: &str,
    id: &str,
) -> Result<(Conversion, Digest, crate::registry::Blob)> {
    let conversion = registry.get_conversion(who, model, version, id)?;
    let Some(jar) = conversion.jar.clone() else {
        let state = if conversion.is_running() { "is still running".to_string() } else { format!("{} without one", conversion.state) };
        return Err(Error::NotFound(format!("conversion {id} has no JAR: it {state}")));
    };
    let file = registry.open_blob(&jar.sha256)?;
    Ok((conversion, jar, file))
}

/// `Main.jar` for `com.example.Main`.
pub(crate) fn jar_name(conversion: &Conversion) -> String {
    format!("{}.jar", conversion.main_class.rsplit('.').next().unwrap_or("conversion"))
}

/// The seed's conversion, which client 3.20 reads: `generatedMetadata` is
/// left out (modelreg generates no output datasets, and the client needs
/// at least one column list inside it). `logMessage` is the job's log so
/// far. `mainClass`, `jarLocation` and `jarSize` are modelreg's. `base` is
/// the server's origin ("" for the offline CLI: paths).
pub(crate) fn render(registry: &Registry, base: &str, c: &Conversion) -> Result<Value> {
    let running = c.is_running();
    let jar_location = c.jar.as_ref().map(|_| format!("{base}{}jar/", crate::compute::convert::conversion_path(c)));
    Ok(json!({
        "id": c.id,
        "customModelVersionId": c.version_id,
        "created": c.created_at,
        "conversionInProgress": running,
        "conversionSucceeded": if running { Value::Null } else { Value::Bool(c.state == "succeeded") },
        "logMessage": registry.job_log(&c.job_id)?,
        "mainProgramItemId": c.main_program_item_id,
        "shouldStop": c.state == "stopped",
        "mainClass": c.main_class,
        "jarLocation": jar_location,
        "jarSize": c.jar.as_ref().map(|j| j.size),
    }))
}
