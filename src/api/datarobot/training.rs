//! Training data: the model-level assignment (`PATCH
//! customModels/{id}/trainingData/`), the version-level one (`PATCH
//! customModels/{id}/versions/withTrainingData/`), and the `trainingData` /
//! `holdoutData` fields of version uploads.
//!
//! A model keeps its training data either on itself or, once
//! `isTrainingDataForVersionsPermanentlyEnabled` is set, on each version
//! (seed 002); each route refuses the other kind with a 422. Checking a
//! dataset (COMPLETED, holding the target and partition columns) is quick,
//! so an assignment is done at once, never `assignmentInProgress`; the
//! routes that DataRobot answers with 202 + Location record a job that is
//! already finished, so the client's first status poll gets its 303.

use serde_json::{json, Map, Value};

use super::versions::{commit_version, hide_forbidden, json_field, render_version, Upload};
use super::{opt_bool_or_text, opt_str, status_location};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::access::{Access, EntityKind};
use crate::registry::datasets::{TrainingDataRef, TRAINING_DATA_JOB};
use crate::registry::{Error, Model, Principal, Registry, Result, Version};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "PATCH", "/api/v2/customModels/{id}/trainingData/", assign_to_model);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/versions/withTrainingData/", with_training_data);
}

const VERSIONS_FLAG: &str = "isTrainingDataForVersionsPermanentlyEnabled";

fn versions_hold_training_data(model: &Model) -> bool {
    model.attrs.get(VERSIONS_FLAG).and_then(Value::as_bool) == Some(true)
}

/// `{datasetId, datasetVersionId?, datasetName?, partitionColumn?}` → the
/// model's `trainingDataset…` fields; answers 202 with the Location of a
/// finished status that redirects to the model.
fn assign_to_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    // 404/403 before reading the body.
    ctx.registry.require(&who, EntityKind::Model, &id, Access::Write)?;
    let body = req.json_object()?;
    let dataset_id = opt_str(&body, "datasetId", 100)?.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid("datasetId", "is required"))?;
    // Accepted and checked; the model shows the dataset's own file name.
    opt_str(&body, "datasetName", 255)?;
    let data = TrainingDataRef {
        dataset_id,
        dataset_version_id: opt_str(&body, "datasetVersionId", 100)?.filter(|s| !s.is_empty()),
        partition_column: opt_str(&body, "partitionColumn", 500)?.filter(|s| !s.is_empty()),
    };
    let result = json!({"location": format!("/api/v2/customModels/{id}/")});
    let (_, job) = ctx.registry.assign_training_data(&who, &id, &data, result)?;
    Ok(Response::json(202, &json!({"statusId": job.id})).with_header("Location", status_location(req, &job.id)))
}

/// A new minor version with the latest version's files and settings and
/// the training (and holdout) data sent; 202 with the full version and
/// the Location of a finished status that redirects to it.
fn with_training_data(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    ctx.registry.require(&who, EntityKind::Model, &id, Access::Write).map_err(hide_forbidden)?;
    if !versions_hold_training_data(&ctx.registry.get_model(&who, &id)?) {
        return Err(not_on_versions());
    }
    if ctx.registry.latest_version(&who, &id)?.is_none() {
        return Err(Error::unprocessable("the model has no version yet to derive one with training data from"));
    }
    let body = req.json_object()?;
    if json_field(&body, "trainingData")?.is_none() {
        return Err(Error::invalid("trainingData", "is required"));
    }
    let mut upload = Upload::default();
    upload.fields.insert("isMajorUpdate".into(), json!("False"));
    for key in ["trainingData", "holdoutData", "gitModelVersion"] {
        if let Some(v) = body.get(key) {
            upload.fields.insert(key.into(), v.clone());
        }
    }
    // No files are sent, so no upload guard is needed: the new version
    // reuses blobs the latest version holds.
    let version = commit_version(ctx.registry, &who, &id, upload, true)?;
    let result = json!({"location": format!("/api/v2/customModels/{id}/versions/{}/", version.id)});
    let job = ctx.registry.record_finished_job(&who.team_id, TRAINING_DATA_JOB, Some(&version.id), result)?;
    Ok(Response::json(202, &render_version(&version, true)).with_header("Location", status_location(req, &job.id)))
}

fn not_on_versions() -> Error {
    Error::unprocessable(format!(
        "this model keeps its training data on the model, not on its versions; set {VERSIONS_FLAG} on the model \
         first, or assign the data with PATCH customModels/{{id}}/trainingData/"
    ))
}

/// The `trainingData` and `holdoutData` attrs of a version being created
/// from `fields` (an upload's, or withTrainingData's body): the data sent,
/// checked against the model and its datasets, or else, unless
/// `keepTrainingHoldoutData` is false, the latest version's. Runs inside
/// the version's write transaction.
pub(crate) fn version_training_attrs(
    registry: &Registry,
    who: &Principal,
    model_id: &str,
    fields: &Map<String, Value>,
    latest: Option<&Version>,
) -> Result<Map<String, Value>> {
    let training = json_field(fields, "trainingData")?;
    let holdout = json_field(fields, "holdoutData")?;
    let keep = opt_bool_or_text(fields, "keepTrainingHoldoutData")?.unwrap_or(true);
    let mut attrs = Map::new();
    if training.is_none() && holdout.is_none() {
        for key in ["trainingData", "holdoutData"] {
            if let Some(v) = latest.filter(|_| keep).and_then(|l| l.attrs.get(key)) {
                attrs.insert(key.into(), v.clone());
            }
        }
        return Ok(attrs);
    }
    let model = registry.get_model(who, model_id)?;
    if !versions_hold_training_data(&model) {
        return Err(not_on_versions());
    }
    let Some(training) = training else {
        return Err(Error::invalid("holdoutData", "needs trainingData: holdout data goes with the version's training data"));
    };
    let training = object("trainingData", &training)?;
    let holdout = holdout.as_ref().map(|h| object("holdoutData", h)).transpose()?;
    let partition_column = match holdout {
        Some(h) => opt_str(h, "partitionColumn", 500)?.filter(|s| !s.is_empty()),
        None => None,
    };
    let dataset = registry.training_dataset(
        who,
        &model,
        &TrainingDataRef {
            dataset_id: opt_str(training, "datasetId", 100)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::invalid("trainingData", "needs a datasetId"))?,
            dataset_version_id: opt_str(training, "datasetVersionId", 100)?.filter(|s| !s.is_empty()),
            partition_column: partition_column.clone(),
        },
    )?;
    attrs.insert(
        "trainingData".into(),
        json!({
            "datasetId": dataset.id,
            "datasetVersionId": dataset.version_id,
            "datasetName": opt_str(training, "datasetName", 255)?.unwrap_or(dataset.name),
            // Checked above, so never in progress and never failed.
            "assignmentInProgress": false,
            "assignmentError": null,
        }),
    );
    if let Some(holdout) = holdout {
        // Structured models split by a partition column, unstructured ones
        // hold out a dataset (seed 002; the client refuses both at once).
        let holdout_id = opt_str(holdout, "datasetId", 100)?.filter(|s| !s.is_empty());
        if holdout_id.is_some() && partition_column.is_some() {
            return Err(Error::invalid("holdoutData", "give either a datasetId or a partitionColumn, not both"));
        }
        let held = match holdout_id {
            Some(dataset_id) => {
                let dataset_version_id = opt_str(holdout, "datasetVersionId", 100)?.filter(|s| !s.is_empty());
                Some(registry.training_dataset(who, &model, &TrainingDataRef { dataset_id, dataset_version_id, partition_column: None })?)
            }
            None => None,
        };
        attrs.insert(
            "holdoutData".into(),
            json!({
                "datasetId": held.as_ref().map(|d| d.id.clone()),
                "datasetVersionId": held.as_ref().map(|d| d.version_id.clone()),
                "datasetName": opt_str(holdout, "datasetName", 255)?.or_else(|| held.map(|d| d.name)),
                "partitionColumn": partition_column,
            }),
        );
    }
    Ok(attrs)
}

fn object<'a>(field: &str, value: &'a Value) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| Error::invalid(field, "must be a JSON object such as {\"datasetId\": \"…\"}"))
}
