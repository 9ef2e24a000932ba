//! What a version's model says about its features, computed by running it
//! (src/compute/insights.rs): `…/versions/{vid}/featureImpact/` (and the
//! older `customInferenceImages/{imageId}/featureImpact/`, the image being
//! the `customModelImageId` a test minted), and the initialisation of
//! prediction explanations.

use serde_json::{json, Map, Value};

use super::{model_version_ids, opt_str, status_location};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::compute::insights::InsightKind;
use crate::registry::{Error, Principal, Registry, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/featureImpact/", get_impact);
    router.add(d, "POST", "/api/v2/customModels/{id}/versions/{vid}/featureImpact/", start_impact);
    router.add(d, "GET", "/api/v2/customInferenceImages/{image}/featureImpact/", get_image_impact);
    router.add(d, "POST", "/api/v2/customInferenceImages/{image}/featureImpact/", start_image_impact);
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/featureImpact/log/", impact_log);
    router.add(d, "POST", "/api/v2/customModels/predictionExplanationsInitialization/", start_explanations_by_body);
    router.add(d, "POST", "/api/v2/customModels/{id}/versions/{vid}/predictionExplanationsInitialization/", start_explanations);
}

/// The version a `customInferenceImages/{image}/` route names.
fn image_version(registry: &Registry, who: &Principal, image: &str) -> Result<(String, String)> {
    let test = registry.test_by_image(who, image)?;
    Ok((test.model_id, test.version_id))
}

fn get_impact(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    impact_body(ctx.registry, &who, &model, &version)
}

fn get_image_impact(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = image_version(ctx.registry, &who, req.param("image"))?;
    impact_body(ctx.registry, &who, &model, &version)
}

/// 404 before any run (or after a failed one, saying why), 422 while one runs.
fn impact_body(registry: &Registry, who: &Principal, model: &str, version: &str) -> Result<Response> {
    match registry.get_insight(who, model, version, InsightKind::FeatureImpact)? {
        None => Err(Error::NotFound(format!("no feature impact has been computed for version {version}; POST to compute it"))),
        Some(i) if i.state == "running" => {
            Err(Error::unprocessable(format!("feature impact of version {version} is being computed (job {})", i.job_id)))
        }
        Some(i) if i.state == "failed" => Err(Error::NotFound(format!(
            "the last feature impact run of version {version} failed: {}",
            i.error.unwrap_or_default()
        ))),
        Some(i) => Ok(Response::json(200, &i.result.unwrap_or(Value::Null))),
    }
}

/// The last run's log, as text (a modelreg addition: what was sampled, each
/// scoring request, the model server's output).
fn impact_log(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_version_ids(ctx, req)?;
    let insight = ctx
        .registry
        .get_insight(&who, &model, &version, InsightKind::FeatureImpact)?
        .ok_or_else(|| Error::NotFound(format!("no feature impact has been computed for version {version}")))?;
    Ok(Response::bytes(200, "text/plain; charset=utf-8", ctx.registry.job_log(&insight.job_id)?.into_bytes()))
}

fn start_impact(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (model, version) = model_version_ids(ctx, req)?;
    start(ctx, req, &model, &version, InsightKind::FeatureImpact)
}

fn start_image_impact(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = image_version(ctx.registry, &who, req.param("image"))?;
    start(ctx, req, &model, &version, InsightKind::FeatureImpact)
}

fn start_explanations(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (model, version) = model_version_ids(ctx, req)?;
    start(ctx, req, &model, &version, InsightKind::PredictionExplanations)
}

/// The deprecated form, naming the version in its body.
fn start_explanations_by_body(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let required = |field: &str| opt_str(&body, field, 100)?.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid(field, "is required"));
    let (model, version) = (required("customModelId")?, required("customModelVersionId")?);
    start_checked(ctx, req, &model, &version, InsightKind::PredictionExplanations, Map::new())
}

fn start(ctx: &Ctx, req: &mut Request, model: &str, version: &str, kind: InsightKind) -> Result<Response> {
    // The client posts no body at all (an empty object); `rowCount` is the
    // seed's one field.
    let body = req.json_object()?;
    start_checked(ctx, req, model, version, kind, body)
}

/// What can be refused before any work is queued is a 422 here: a target
/// type the method does not fit, no training data or one not ingested, a
/// `rowCount` out of range, a server that cannot run models.
fn start_checked(ctx: &Ctx, req: &Request, model: &str, version: &str, kind: InsightKind, body: Map<String, Value>) -> Result<Response> {
    let who = req.who()?.clone();
    let row_count = super::opt_int_or_text(&body, "rowCount", 10, 100_000)?;
    let job = crate::compute::requests::start_insight(ctx.registry, &ctx.options.jobs.compute(), &who, model, version, kind, row_count)?;
    crate::jobs::wake();
    let location = status_location(req, &job.id);
    Ok(match kind {
        InsightKind::FeatureImpact => Response::json(202, &json!({"statusId": job.id})),
        InsightKind::PredictionExplanations => Response::empty(202),
    }
    .with_header("Location", location))
}

/// The version's prediction explanations initialisation, for its GET (a
/// modelreg addition: `predictionExplanationsInitialization` on the version).
pub(crate) fn explanations_of(registry: &Registry, who: &Principal, model: &str, version: &str) -> Result<Value> {
    Ok(match registry.get_insight(who, model, version, InsightKind::PredictionExplanations)? {
        None => Value::Null,
        Some(i) => {
            let mut out = json!({"status": i.state, "created": i.created_at, "finished": i.finished_at});
            if let Some(Value::Object(result)) = i.result {
                for (k, v) in result {
                    out[k] = v;
                }
            }
            if let Some(error) = i.error {
                out["error"] = json!(error);
            }
            out
        }
    })
}
