//! Custom models: `/customModels/…` (list, create, get, patch, delete,
//! copy, template, limits, access control, latest-version download).
//!
//! A custom model is a shared registry model; the DataRobot-only fields
//! (targetType, labels, resources…) live in its attrs under their wire
//! names, so rendering is "attrs plus the seed's defaults". What a create
//! or PATCH may set is decided in `registry::catalogue::custom_models`.

use serde_json::{json, Value};

use super::versions::{render_version, zip_response};
use super::{access_changes, access_list, opt_str, page_body, paging, query_bool};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::custom_models::{new_model, TARGET_TYPES};
use crate::registry::catalogue::custom_versions::MAX_MEMORY;
use crate::registry::{Error, Model, ModelOrder, ModelQuery, PageRequest, Principal, Registry, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/customModels/", list);
    router.add(d, "POST", "/api/v2/customModels/", create);
    router.add(d, "POST", "/api/v2/customModels/fromCustomModel/", copy);
    router.add(d, "GET", "/api/v2/customModelLimits/", limits);
    router.add(d, "GET", "/api/v2/customModels/{id}/", get);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/", update);
    router.add(d, "DELETE", "/api/v2/customModels/{id}/", delete);
    router.add(d, "GET", "/api/v2/customModels/{id}/download/", download_latest);
    router.add(d, "GET", "/api/v2/customModels/{id}/accessControl/", get_access);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/accessControl/", patch_access);
}

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let paging = paging(req)?;
    let mut query = ModelQuery::newest_first(PageRequest::Offset { offset: paging.offset, limit: paging.limit });
    query.count_total = true;
    match req.query("orderBy") {
        None | Some("-created") => {}
        Some("created") => query.descending = false,
        Some("updated") => (query.order, query.descending) = (ModelOrder::Modified, false),
        Some("-updated") => query.order = ModelOrder::Modified,
        Some(other) => return Err(Error::invalid("orderBy", format!("must be created, -created, updated or -updated, got {other:?}"))),
    }
    match req.query("customModelType") {
        None | Some("inference") => {}
        // modelreg has only inference models.
        Some("training") => query.only_ids = Some(Vec::new()),
        Some(other) => return Err(Error::invalid("customModelType", format!("must be training or inference, got {other:?}"))),
    }
    if let Some(target) = req.query("targetType") {
        if !TARGET_TYPES.contains(&target) {
            return Err(Error::invalid("targetType", format!("must be one of {}", TARGET_TYPES.join(", "))));
        }
        // Models made through other doors show as Unstructured.
        let filters = if target == "Unstructured" { &mut query.attr_equals_or_missing } else { &mut query.attr_equals };
        filters.push(("targetType".into(), json!(target)));
    }
    // No deployments exist in modelreg: "deployed" matches nothing.
    if query_bool(req, "isDeployed")? == Some(true) {
        query.only_ids = Some(Vec::new());
    }
    query.search = req.query("searchFor").filter(|s| !s.is_empty()).map(String::from);
    // The registry applies the access rule (roles) to the list itself.
    // searchFor matches name and description (the shared query's search);
    // the seed also lists `language`, which is not searched (see notes).
    // One read transaction for the page, its latest versions and creators;
    // no per-row access check (the list query applied the rule).
    let listed = ctx.registry.list_models_with_latest(&who, &query, true)?;
    let page = listed.page;
    let data: Vec<Value> = page
        .items
        .iter()
        .zip(&listed.latest)
        .map(|(model, latest)| {
            let created_by = listed.creators.get(&model.created_by).cloned().unwrap_or_else(|| model.created_by.clone());
            render_model_as(model, created_by, latest.as_ref())
        })
        .collect();
    Ok(Response::json(200, &page_body(req, paging, data, page.total.unwrap_or(0), page.has_more)))
}

fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let new = new_model(&body)?;
    let model = ctx.registry.create_owned_model(&who, new)?;
    Ok(Response::json(201, &render_model(ctx.registry, &who, &model)?))
}

fn model_id(req: &Request) -> String {
    req.param("id").to_string()
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = model_id(req);
    let model = ctx.registry.get_model(&who, &id)?;
    Ok(Response::json(200, &render_model_detail(ctx.registry, &who, &model)?))
}

fn update(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = model_id(req);
    // 404/403 before reading the body.
    ctx.registry.require(&who, EntityKind::Model, &id, Access::Write)?;
    let body = req.json_object()?;
    let model = ctx.registry.update_custom_model(&who, &id, &body)?;
    // The seed documents 201 for this PATCH; the client re-reads the body.
    Ok(Response::json(201, &render_model(ctx.registry, &who, &model)?))
}

fn delete(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = model_id(req);
    ctx.registry.delete_model(&who, &id)?;
    Ok(Response::empty(204))
}

fn copy(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let source = opt_str(&body, "customModelId", 100)?.ok_or_else(|| Error::invalid("customModelId", "is required"))?;
    let copy = ctx.registry.copy_model(&who, &source)?;
    Ok(Response::json(201, &render_model(ctx.registry, &who, &copy)?))
}

fn limits(_: &Ctx, _: &mut Request) -> Result<Response> {
    Ok(Response::json(
        200,
        &json!({
            "maxCustomModelTestingParallelUsers": 1,
            "maxCustomModelContainerSize": MAX_MEMORY,
            "desiredCustomModelContainerSize": null,
            "maxCustomModelReplicasPerDeployment": 8,
        }),
    ))
}

fn download_latest(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = model_id(req);
    ctx.registry.access(&who, EntityKind::Model, &id)?;
    query_bool(req, "pps")?; // accepted, ignored: no install script is generated
    let version = ctx
        .registry
        .latest_version(&who, &id)?
        .ok_or_else(|| Error::NotFound(format!("custom model {id} has no versions to download")))?;
    zip_response(ctx.registry, &version)
}

fn get_access(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let entries = ctx.registry.list_access(&who, EntityKind::Model, &model_id(req))?;
    Ok(Response::json(200, &access_list(req, entries)?))
}

fn patch_access(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = model_id(req);
    ctx.registry.access(&who, EntityKind::Model, &id)?;
    let body = req.json_object()?;
    ctx.registry.update_access(&who, EntityKind::Model, &id, &access_changes(&body)?)?;
    Ok(Response::empty(204))
}

/// `CustomModelResponse`: every key the client requires, nulls (not "")
/// for unset optional strings.
pub(crate) fn render_model(registry: &Registry, who: &Principal, model: &Model) -> Result<Value> {
    let created_by = registry.find_user(&who.team_id, &model.created_by).map(|u| u.username).unwrap_or_else(|_| model.created_by.clone());
    let latest = registry.latest_version(who, &model.id)?;
    Ok(render_model_as(model, created_by, latest.as_ref()))
}

/// A model as its GET shows it: `render_model` with modelreg's additions
/// (issue 24), which the client ignores: its aliases, naming versions by id
/// as every version route here does, and its tags.
pub(crate) fn render_model_detail(registry: &Registry, who: &Principal, model: &Model) -> Result<Value> {
    let mut body = render_model(registry, who, model)?;
    body["aliases"] = json!(registry.model_alias_ids(who, &model.id)?);
    body["tags"] = json!(registry.model_tags(who, &model.id)?);
    Ok(body)
}

/// `render_model` with the creator's name and the latest version already
/// looked up (a list page looks them up for the whole page at once).
fn render_model_as(model: &Model, created_by: String, latest: Option<&crate::registry::Version>) -> Value {
    let attr = |key: &str| model.attrs.get(key).cloned().unwrap_or(Value::Null);
    let target_type = Some(model.target_type());
    let binary = target_type == Some("Binary");
    let or_default = |key: &str, default: Value| {
        let v = attr(key);
        if v.is_null() && binary { default } else if binary { v } else { Value::Null }
    };
    let multiclass = matches!(target_type, Some("Multiclass" | "Multilabel"));
    json!({
        "id": model.id,
        "name": model.name,
        "description": model.description.clone().unwrap_or_default(),
        "language": attr("language").as_str().unwrap_or(""),
        "createdBy": created_by,
        "created": model.created_at,
        "updated": model.modified_at,
        "customModelType": "inference",
        "trainingDataAssignmentInProgress": false,
        "targetType": target_type,
        "targetName": attr("targetName"),
        "supportsBinaryClassification": binary,
        "supportsRegression": target_type == Some("Regression"),
        "supportsAnomalyDetection": target_type == Some("Anomaly"),
        "positiveClassLabel": or_default("positiveClassLabel", json!("1")),
        "negativeClassLabel": or_default("negativeClassLabel", json!("0")),
        "predictionThreshold": or_default("predictionThreshold", json!(0.5)),
        "classLabels": if multiclass { attr("classLabels") } else { Value::Null },
        "deploymentsCount": 0,
        "latestVersion": latest.map(|v| render_version(v, true)),
        // Set by fromModelTemplate (`{templateId, modelType}`); null otherwise.
        "template": attr("template"),
        "networkEgressPolicy": attr("networkEgressPolicy"),
        "maximumMemory": attr("maximumMemory"),
        "desiredMemory": attr("desiredMemory"),
        "replicas": attr("replicas"),
        "requiresHa": attr("requiresHa"),
        "resourceBundleId": attr("resourceBundleId"),
        "userProvidedId": attr("userProvidedId"),
        "playgroundId": attr("playgroundId"),
        "calibratePredictions": attr("calibratePredictions").as_bool().unwrap_or(true),
        "isTrainingDataForVersionsPermanentlyEnabled": attr("isTrainingDataForVersionsPermanentlyEnabled").as_bool().unwrap_or(false),
        // Set by a model-level assignment (registry::datasets); null until one.
        "trainingDatasetId": attr("trainingDatasetId"),
        "trainingDatasetVersionId": attr("trainingDatasetVersionId"),
        "trainingDataFileName": attr("trainingDataFileName"),
        "trainingDataPartitionColumn": attr("trainingDataPartitionColumn"),
    })
}
