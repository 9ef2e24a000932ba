//! Custom models: `/customModels/…` (list, create, get, patch, delete,
//! copy, template, limits, access control, latest-version download).
//!
//! A custom model is a shared registry model; the DataRobot-only fields
//! (targetType, labels, resources…) live in its attrs under their wire
//! names, so rendering is "attrs plus the seed's defaults".

use serde_json::{json, Map, Value};

use super::versions::{render_version, zip_response};
use super::{access_changes, access_list, opt_bool_or_text, opt_str, opt_string_list, page_body, paging, query_bool};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::custom_versions::{apply_resource_fields, MAX_MEMORY, TARGET_TYPES};
use crate::registry::fields::insert_some;
use crate::registry::{Error, Model, ModelOrder, ModelPatch, ModelQuery, NewModel, Origin, PageRequest, Principal, Registry, Result};

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

/// Types the client insists on a targetName for.
const NEEDS_TARGET_NAME: [&str; 6] = ["Binary", "Multiclass", "Multilabel", "Regression", "TextGeneration", "AgenticWorkflow"];


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

/// Validates `CustomModelCreate` (seed 002) into a shared model.
pub(crate) fn new_model(body: &Map<String, Value>) -> Result<NewModel> {
    let name = opt_str(body, "name", 255)?.filter(|n| !n.trim().is_empty()).ok_or_else(|| Error::invalid("name", "is required"))?;
    match opt_str(body, "customModelType", 20)?.as_deref() {
        None | Some("inference") => {}
        Some("training") => return Err(Error::invalid("customModelType", "training custom models are not supported by modelreg")),
        Some(other) => return Err(Error::invalid("customModelType", format!("must be inference, got {other:?}"))),
    }
    let binary = opt_bool_or_text(body, "supportsBinaryClassification")?.unwrap_or(false);
    let regression = opt_bool_or_text(body, "supportsRegression")?.unwrap_or(false);
    if binary && regression {
        return Err(Error::unprocessable("Custom inference models can only support a single target type"));
    }
    let legacy = if binary { Some("Binary") } else if regression { Some("Regression") } else { None };
    let target_type = match (opt_str(body, "targetType", 50)?, legacy) {
        (Some(t), Some(l)) if t != l => {
            return Err(Error::unprocessable(format!("targetType {t} contradicts the legacy flag for {l}; custom inference models can only support a single target type")))
        }
        (Some(t), _) => t,
        (None, Some(l)) => l.to_string(),
        (None, None) => return Err(Error::unprocessable("All custom models must support at least one target type")),
    };
    if !TARGET_TYPES.contains(&target_type.as_str()) {
        return Err(Error::invalid("targetType", format!("must be one of {}", TARGET_TYPES.join(", "))));
    }
    let mut attrs = Map::new();
    attrs.insert("targetType".into(), json!(target_type));
    let target_name = opt_str(body, "targetName", 500)?.filter(|s| !s.is_empty());
    if target_name.is_none() && NEEDS_TARGET_NAME.contains(&target_type.as_str()) {
        return Err(Error::invalid("targetName", format!("is required for {target_type} models")));
    }
    insert_some(&mut attrs, "targetName", target_name.map(Value::from));
    insert_some(&mut attrs, "language", opt_str(body, "language", 500)?.map(Value::from));
    apply_label_fields(body, &target_type, &mut attrs, true)?;
    apply_resource_fields(body, &mut attrs)?;
    if let Some(v) = opt_bool_or_text(body, "isTrainingDataForVersionsPermanentlyEnabled")? {
        attrs.insert("isTrainingDataForVersionsPermanentlyEnabled".into(), json!(v));
    }
    insert_some(&mut attrs, "calibratePredictions", opt_bool_or_text(body, "calibratePredictions")?.map(Value::from));
    insert_some(&mut attrs, "userProvidedId", opt_str(body, "userProvidedId", 100)?.map(Value::from));
    insert_some(&mut attrs, "playgroundId", opt_str(body, "playgroundId", 100)?.map(Value::from));
    let description = opt_str(body, "description", 10_000)?;
    Ok(NewModel { name, description, attrs, origin: Origin::DataRobot })
}

/// Labels, threshold and class labels, for create (`fresh`) and update.
/// An explicit null label pair resets to the defaults (seed).
fn apply_label_fields(body: &Map<String, Value>, target_type: &str, attrs: &mut Map<String, Value>, fresh: bool) -> Result<()> {
    let pos_given = body.contains_key("positiveClassLabel");
    let neg_given = body.contains_key("negativeClassLabel");
    let pos = opt_str(body, "positiveClassLabel", 500)?.filter(|s| !s.is_empty());
    let neg = opt_str(body, "negativeClassLabel", 500)?.filter(|s| !s.is_empty());
    if pos.is_some() != neg.is_some() {
        return Err(Error::unprocessable("positiveClassLabel and negativeClassLabel must be given together"));
    }
    if let (Some(p), Some(n)) = (&pos, &neg) {
        if p == n {
            return Err(Error::unprocessable("positiveClassLabel and negativeClassLabel must differ"));
        }
        attrs.insert("positiveClassLabel".into(), json!(p));
        attrs.insert("negativeClassLabel".into(), json!(n));
    } else if pos_given && neg_given && !fresh {
        // null, null: back to the defaults, rendered as "1"/"0".
        attrs.insert("positiveClassLabel".into(), Value::Null);
        attrs.insert("negativeClassLabel".into(), Value::Null);
    }
    match body.get("predictionThreshold") {
        None => {}
        Some(Value::Null) if !fresh => {
            attrs.insert("predictionThreshold".into(), Value::Null);
        }
        Some(Value::Null) => {}
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => {
                attrs.insert("predictionThreshold".into(), json!(t));
            }
            _ => return Err(Error::invalid("predictionThreshold", "must be a number from 0 to 1")),
        },
    }
    if let Some(labels) = opt_string_list(body, "classLabels", 100)? {
        attrs.insert("classLabels".into(), json!(labels));
    } else if fresh && matches!(target_type, "Multiclass" | "Multilabel") {
        return Err(Error::invalid("classLabels", format!("is required for {target_type} models")));
    }
    Ok(())
}

fn model_id(req: &Request) -> String {
    req.param("id").to_string()
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = model_id(req);
    let model = ctx.registry.get_model(&who, &id)?;
    Ok(Response::json(200, &render_model(ctx.registry, &who, &model)?))
}

fn update(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = model_id(req);
    // 404/403 before reading the body.
    ctx.registry.require(&who, EntityKind::Model, &id, Access::Write)?;
    let body = req.json_object()?;
    if body.get("customModelType").is_some_and(|t| t != "inference") {
        return Err(Error::invalid("customModelType", "cannot be changed after the model is created"));
    }
    // The patch is computed from the model as it is inside the write
    // transaction: the one-way isTrainingData… flag cannot be raced.
    let model = ctx.registry.update_model(&who, &id, |model| {
        let mut attrs = Map::new();
        let stored = model.attrs.get("targetType").and_then(Value::as_str);
        // A model made through another door has no target type until a
        // DataRobot user sets one, once; after that it is fixed, as in
        // DataRobot.
        let target_type = match (opt_str(&body, "targetType", 50)?, stored) {
            (Some(new), Some(old)) if new != old => {
                return Err(Error::invalid("targetType", "cannot be changed after it is set"));
            }
            (Some(new), None) => {
                if !TARGET_TYPES.contains(&new.as_str()) {
                    return Err(Error::invalid("targetType", format!("must be one of {}", TARGET_TYPES.join(", "))));
                }
                let named = opt_str(&body, "targetName", 500)?.filter(|s| !s.is_empty()).is_some()
                    || model.attrs.get("targetName").is_some_and(|t| !t.is_null());
                if !named && NEEDS_TARGET_NAME.contains(&new.as_str()) {
                    return Err(Error::invalid("targetName", format!("is required for {new} models")));
                }
                attrs.insert("targetType".into(), json!(new));
                new
            }
            _ => model.target_type().to_string(),
        };
        apply_label_fields(&body, &target_type, &mut attrs, false)?;
        apply_resource_fields(&body, &mut attrs)?;
        if body.contains_key("targetName") {
            attrs.insert("targetName".into(), opt_str(&body, "targetName", 500)?.filter(|s| !s.is_empty()).map(Value::from).unwrap_or(Value::Null));
        }
        if let Some(language) = opt_str(&body, "language", 500)? {
            attrs.insert("language".into(), json!(language));
        }
        if let Some(enabled) = opt_bool_or_text(&body, "isTrainingDataForVersionsPermanentlyEnabled")? {
            let was = model.attrs.get("isTrainingDataForVersionsPermanentlyEnabled").and_then(Value::as_bool).unwrap_or(false);
            if was && !enabled {
                return Err(Error::invalid("isTrainingDataForVersionsPermanentlyEnabled", "cannot be disabled once enabled"));
            }
            attrs.insert("isTrainingDataForVersionsPermanentlyEnabled".into(), json!(enabled));
        }
        let name = match opt_str(&body, "name", 255)? {
            Some(n) if n.trim().is_empty() => return Err(Error::invalid("name", "must not be empty")),
            other => other,
        };
        let description = opt_str(&body, "description", 10_000)?.map(Some);
        Ok(ModelPatch { name, description, attrs })
    })?;
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
