//! Datasets: `/datasets/…` (upload from a file, list, get, patch, delete,
//! and the original file).
//!
//! The upload stores the file and records the dataset, RUNNING; the ingest
//! job (registry::datasets) reads it, and the status route redirects to the
//! dataset once it is done. The client reads only the upload's Location,
//! then the dataset; the Terraform provider polls the dataset itself, so it
//! is readable at once.

use serde_json::{json, Map, Value};

use super::{attachment, opt_str, page_body, paging, query_bool, status_location, wait_briefly, PartBudget, MAX_TEXT_BYTES};
use crate::http::{Ctx, FileToSend, Request, Response, Router};
use crate::registry::compute::datasets::{Dataset, DatasetPatch, DatasetQuery, DatasetState, NewDataset};
use crate::registry::{Error, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "POST", "/api/v2/datasets/fromFile/", create_from_file);
    router.add(d, "GET", "/api/v2/datasets/", list);
    router.add(d, "GET", "/api/v2/datasets/{id}/", get);
    router.add(d, "PATCH", "/api/v2/datasets/{id}/", update);
    router.add(d, "DELETE", "/api/v2/datasets/{id}/", delete);
    router.add(d, "GET", "/api/v2/datasets/{id}/file/", download);
}

/// The name of a dataset uploaded without a file name (the client's own
/// default).
const DEFAULT_NAME: &str = "data.csv";

fn create_from_file(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    if !req.is_multipart() {
        return Err(Error::invalid("file", "send the file as multipart/form-data, in a part named file"));
    }
    let guard = ctx.registry.upload_guard()?;
    let mut budget = PartBudget::new(req.upload_limit());
    let mut file = None;
    let mut multipart = req.multipart()?;
    while let Some(mut part) = multipart.next_part()? {
        let name = part.name().to_string();
        if name == "file" {
            if file.is_some() {
                return Err(Error::invalid("file", "send one file per dataset"));
            }
            let file_name = base_name(part.filename());
            file = Some((budget.file(ctx.registry, &mut part)?, file_name));
        } else {
            // Other fields (useCases…) are read within the budget and
            // ignored: modelreg has nothing they would change.
            budget.text(&mut part, &name, MAX_TEXT_BYTES)?;
        }
    }
    let (digest, file_name) = file.ok_or_else(|| Error::unprocessable("the upload has no part named file"))?;
    let new = NewDataset { name: file_name.clone(), file_name, digest, categories: Vec::new() };
    // The dataset and its ingest job commit together.
    let (dataset, job) = ctx.registry.create_dataset(&who, new)?;
    drop(guard);
    crate::jobs::wake();
    wait_briefly(ctx.registry, &who, &job.id)?;
    let location = status_location(req, &job.id);
    let body = json!({"catalogId": dataset.id, "catalogVersionId": dataset.version_id, "statusId": job.id});
    Ok(Response::json(202, &body).with_header("Location", location))
}

/// The part's file name without any folder a client put in it; the
/// client's default when there is none.
fn base_name(filename: Option<&str>) -> String {
    let name = filename.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = name.chars().filter(|c| !c.is_control()).take(255).collect();
    if name.trim().is_empty() {
        DEFAULT_NAME.to_string()
    } else {
        name
    }
}

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let paging = paging(req)?;
    let oldest_first = match req.query("orderBy") {
        None | Some("-created") => false,
        Some("created") => true,
        Some(other) => return Err(Error::invalid("orderBy", format!("must be created or -created, got {other:?}"))),
    };
    let query = DatasetQuery {
        offset: paging.offset,
        limit: paging.limit,
        category: req.query("category").filter(|c| !c.is_empty()).map(String::from),
        exclude_failed: query_bool(req, "filterFailed")?.unwrap_or(false),
        oldest_first,
    };
    let page = ctx.registry.list_datasets(&who, &query)?;
    let data = page.items.iter().map(render_dataset).collect();
    Ok(Response::json(200, &page_body(req, paging, data, page.total.unwrap_or(0), page.has_more)))
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let dataset = ctx.registry.get_dataset(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_dataset(&dataset)))
}

fn update(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    // 404 before reading the body.
    ctx.registry.get_dataset(&who, &id)?;
    let body = req.json_object()?;
    let dataset = ctx.registry.update_dataset(&who, &id, dataset_patch(&body)?)?;
    Ok(Response::json(200, &render_dataset(&dataset)))
}

/// `{name?, categories?}`, as the client's `modify()` sends it. Shared with
/// the CLI.
pub(crate) fn dataset_patch(body: &Map<String, Value>) -> Result<DatasetPatch> {
    let name = match opt_str(body, "name", 255)? {
        Some(n) if n.trim().is_empty() => return Err(Error::invalid("name", "must not be empty")),
        other => other,
    };
    let categories = match body.get("categories") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() <= 20 => Some(
            items
                .iter()
                .map(|v| match v.as_str() {
                    Some(s) if !s.trim().is_empty() && s.len() <= 100 => Ok(s.to_string()),
                    _ => Err(Error::invalid("categories", "must be a list of category names (TRAINING, PREDICTION…)")),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(_) => return Err(Error::invalid("categories", "must be a list of at most 20 category names")),
    };
    Ok(DatasetPatch { name, categories })
}

fn delete(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    ctx.registry.delete_dataset(req.who()?, req.param("id"))?;
    Ok(Response::empty(204))
}

/// The original bytes, as uploaded.
fn download(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let dataset = ctx.registry.get_dataset(req.who()?, req.param("id"))?;
    let file = ctx.registry.open_blob(&dataset.sha256)?;
    // Only an ingested file is known to be CSV.
    let content_type = if dataset.state == DatasetState::Completed { "text/csv" } else { "application/octet-stream" };
    let response = req.file_answer(FileToSend { file, size: dataset.size, sha256: dataset.sha256.clone(), content_type: content_type.into() });
    Ok(response.with_header("Content-Disposition", attachment(&dataset.file_name)))
}

/// The dataset as `dr.Dataset` reads it: every key it requires, non-blank
/// strings, and `rowCount`/`columnCount` only once they are known.
pub(crate) fn render_dataset(d: &Dataset) -> Value {
    let completed = d.state == DatasetState::Completed;
    json!({
        "datasetId": d.id,
        "versionId": d.version_id,
        "name": if d.name.trim().is_empty() { DEFAULT_NAME } else { d.name.as_str() },
        "categories": d.categories,
        "creationDate": d.created_at,
        "createdBy": d.created_by_name,
        "isDataEngineEligible": false,
        "isLatestVersion": true,
        "isSnapshot": true,
        "isWranglingEligible": false,
        "processingState": d.state.as_str(),
        "dataPersisted": true,
        "datasetSize": d.size,
        "rowCount": if completed { d.row_count.map(Value::from) } else { None },
        "columnCount": if completed { Some(d.columns.len()) } else { None },
        "uri": d.file_name,
        "error": d.error.clone().unwrap_or_default(),
    })
}
