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

use serde_json::json;

use super::versions::render_version;
use super::{opt_str, status_location};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::custom_versions::{commit_version, hide_forbidden, not_on_versions, versions_hold_training_data, Upload};
use crate::registry::compute::datasets::{TrainingDataRef, TRAINING_DATA_JOB};
use crate::registry::fields::json_field;
use crate::registry::{Error, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "PATCH", "/api/v2/customModels/{id}/trainingData/", assign_to_model);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/versions/withTrainingData/", with_training_data);
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

