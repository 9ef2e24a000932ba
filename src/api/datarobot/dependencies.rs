//! Dependency builds: `…/versions/{vid}/dependencyBuild/` and
//! `…/dependencyBuildLog/`. The build is a job (src/compute/jobs.rs) that
//! installs the version's requirements.txt into an environment layered over
//! the Python runtime; the version's tests then run in it.

use serde_json::{json, Value};

use super::{model_version_ids, wait_briefly};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::compute::dependency_builds::DependencyBuild;
use crate::registry::{Error, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    let build = "/api/v2/customModels/{id}/versions/{vid}/dependencyBuild/";
    router.add(d, "POST", build, start);
    router.add(d, "GET", build, get);
    router.add(d, "DELETE", build, cancel);
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/dependencyBuildLog/", log);
}

/// 202 with the build (no Location: the client polls `dependencyBuild/`).
/// A build whose environment exists already ends within the brief wait,
/// so the client's first poll sees `success`.
fn start(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    crate::compute::available(&ctx.options.jobs.compute()).map_err(Error::unprocessable)?;
    let build = ctx.registry.start_dependency_build(&who, &model, &version)?;
    crate::jobs::wake();
    wait_briefly(ctx.registry, &who, &build.job_id)?;
    let build = ctx.registry.get_dependency_build(&who, &model, &version)?;
    Ok(Response::json(202, &render(&req.base_url(), &model, &build)))
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    let build = ctx.registry.get_dependency_build(&who, &model, &version)?;
    Ok(Response::json(200, &render(&req.base_url(), &model, &build)))
}

fn cancel(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    ctx.registry.cancel_dependency_build(&who, &model, &version)?;
    Ok(Response::empty(204))
}

/// The log as text: both real clients read the body as text, although the
/// seed describes a JSON wrapper.
fn log(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    let text = ctx.registry.dependency_build_log(&who, &model, &version)?;
    Ok(Response::bytes(200, "text/plain; charset=utf-8", text.into_bytes()))
}

/// The seed's build object; `buildLogLocation` once there is a log to
/// read. `base` is the server's origin ("" for the offline CLI: paths).
pub(crate) fn render(base: &str, model_id: &str, build: &DependencyBuild) -> Value {
    let log = build
        .is_finished()
        .then(|| format!("{base}/api/v2/customModels/{model_id}/versions/{}/dependencyBuildLog/", build.version_id));
    json!({
        "buildStatus": build.status,
        "buildStart": build.build_start,
        "buildEnd": build.build_end,
        "buildLogLocation": log,
    })
}
