//! Custom model versions: `/customModels/{id}/versions/…`.
//!
//! A version is a shared registry version (an immutable set of path ->
//! blob); DataRobot's numbering, base environment, resources and parsed
//! dependencies live in its attrs. Uploads stream each `file` part
//! straight into the blob store; the i-th `file` pairs with the i-th
//! `filePath`.

use serde_json::{json, Map, Value};

use super::{model_version_ids, opt_str, paging, page_of, pairs_list, query_bool, PartBudget, MAX_TEXT_BYTES};
use crate::http::{Body, Ctx, Request, Response, Router};
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::custom_versions::{commit_version, hide_forbidden, numbers, Upload, MAX_UPLOAD_PATHS, REPOSITORY_FILES};
use crate::registry::catalogue::weight_facts;
use crate::registry::{Error, Principal, Registry, Result, Version};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/", list);
    router.add(d, "POST", "/api/v2/customModels/{id}/versions/", create_clean);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/versions/", create_from_previous);
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/", get);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/versions/{vid}/", update);
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/download/", download);
}

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    ctx.registry.access(&who, EntityKind::Model, &id)?;
    let paging = paging(req)?;
    let versions = ctx.registry.list_versions(&who, &id)?;
    let latest = versions.last().map(|v| v.id.clone());
    // Newest first, like every other list.
    let all = versions.iter().rev().map(|v| render_version(v, Some(&v.id) == latest.as_ref())).collect();
    Ok(Response::json(200, &page_of(req, paging, all)))
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (id, vid) = model_version_ids(ctx, req)?;
    ctx.registry.access(&who, EntityKind::Model, &id)?;
    let version = ctx.registry.get_version_by_id(&who, &id, &vid)?;
    let mut body = render_version(&version, is_latest(ctx.registry, &who, &version)?);
    // modelreg's addition: what `predictionExplanationsInitialization/` stored.
    body["predictionExplanationsInitialization"] = super::insights::explanations_of(ctx.registry, &who, &id, &vid)?;
    Ok(Response::json(200, &body))
}

fn is_latest(registry: &Registry, who: &Principal, v: &Version) -> Result<bool> {
    Ok(registry.latest_version(who, &v.model_id)?.is_some_and(|l| l.id == v.id))
}

/// Metadata only (description, requiredMetadataValues); allowed on frozen
/// versions. No body at all (the client's `update()`) changes nothing.
fn update(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (id, vid) = model_version_ids(ctx, req)?;
    ctx.registry.require(&who, EntityKind::Model, &id, Access::Write).map_err(hide_forbidden)?;
    let body = req.json_object()?;
    let description = opt_str(&body, "description", 10_000)?.map(Some);
    let mut attrs = Map::new();
    if let Some(values) = body.get("requiredMetadataValues").filter(|v| !v.is_null()) {
        attrs.insert("requiredMetadataValues".into(), pairs_list("requiredMetadataValues", values, "value", 100)?);
    }
    let version = ctx.registry.update_version(&who, &id, &vid, description, attrs)?;
    Ok(Response::json(200, &render_version(&version, is_latest(ctx.registry, &who, &version)?)))
}

fn download(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (id, vid) = model_version_ids(ctx, req)?;
    ctx.registry.access(&who, EntityKind::Model, &id)?;
    query_bool(req, "pps")?; // accepted, ignored: no install script is generated
    let version = ctx.registry.get_version_by_id(&who, &id, &vid)?;
    zip_response(ctx.registry, &version)
}

/// A zip of the version's files at their paths, produced as it is sent
/// (memory flat, no temp file; see `Registry::version_zip`).
pub(crate) fn zip_response(registry: &Registry, version: &Version) -> Result<Response> {
    let (file, size) = registry.version_zip(version)?;
    let (major, minor) = numbers(version);
    let mut response = Response::empty(200)
        .with_header("Content-Type", "application/zip")
        .with_header("Content-Disposition", format!("attachment;filename=model-{}-v{major}.{minor}.zip", version.model_id));
    response.body = Body::Stream { reader: Box::new(file), len: size };
    Ok(response)
}

fn create_clean(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    create(ctx, req, false)
}

fn create_from_previous(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    create(ctx, req, true)
}

pub(crate) fn read_upload(ctx: &Ctx, req: &mut Request) -> Result<Upload> {
    let mut upload = Upload::default();
    if !req.is_multipart() {
        // A body-less PATCH (no files, nothing to delete) is legal.
        let body = req.json_object()?;
        upload.fields = body;
        return Ok(upload);
    }
    let mut budget = PartBudget::new(req.upload_limit());
    let mut multipart = req.multipart()?;
    let too_many = |field: &str| Error::invalid(field, format!("at most {MAX_UPLOAD_PATHS} may be sent at once"));
    // The files are made durable together once the body is read (one
    // journal commit for many small files instead of one each); dropped
    // unsettled on an error, which removes them.
    let mut pending = crate::registry::PendingBlobs::default();
    while let Some(mut part) = multipart.next_part()? {
        let name = part.name().to_string();
        match name.as_str() {
            "file" => {
                if upload.files.len() >= MAX_UPLOAD_PATHS {
                    return Err(too_many("file"));
                }
                upload.files.push(budget.file_pending(ctx.registry, &mut part, &mut pending)?);
            }
            "filePath" => {
                if upload.paths.len() >= MAX_UPLOAD_PATHS {
                    return Err(too_many("filePath"));
                }
                upload.paths.push(budget.text(&mut part, "filePath", 4096)?);
            }
            "filesToDelete" => {
                if upload.delete.len() >= MAX_UPLOAD_PATHS {
                    return Err(too_many("filesToDelete"));
                }
                upload.delete.push(budget.text(&mut part, "filesToDelete", 256)?);
            }
            _ => {
                let text = budget.text(&mut part, &name, MAX_TEXT_BYTES)?;
                upload.fields.insert(name, Value::String(text));
            }
        }
    }
    ctx.registry.settle_blobs(&mut pending)?;
    Ok(upload)
}

fn create(ctx: &Ctx, req: &mut Request, from_previous: bool) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    // Before reading a possibly large body: 404 for unknown or read-only.
    ctx.registry.require(&who, EntityKind::Model, &id, Access::Write).map_err(hide_forbidden)?;
    let guard = ctx.registry.upload_guard()?;
    let upload = read_upload(ctx, req)?;
    let version = commit_version(ctx.registry, &who, &id, upload, from_previous)?;
    drop(guard);
    Ok(Response::json(201, &render_version(&version, true)))
}

/// `CustomModelVersionResponse`. Earlier versions are frozen: a newer one
/// was yielded from them.
pub(crate) fn render_version(v: &Version, latest: bool) -> Value {
    let (major, minor) = numbers(v);
    let attr = |key: &str| v.attrs.get(key).cloned().unwrap_or(Value::Null);
    let mut files: Vec<_> = v.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let items: Vec<Value> = files
        .iter()
        .map(|f| {
            // A file pulled from a repository says which, at what commit.
            let origin = v.attrs.get(REPOSITORY_FILES).and_then(|m| m.get(&f.path));
            let from = |key: &str| origin.and_then(|o| o.get(key)).cloned().unwrap_or(Value::Null);
            let mut item = json!({
                "id": f.id,
                "fileName": f.path.rsplit('/').next().unwrap_or(&f.path),
                "filePath": f.path,
                "fileSource": origin.and_then(|o| o.get("fileSource")).cloned().unwrap_or_else(|| json!("local")),
                "created": f.created_at,
                "storagePath": format!("sha256:{}", f.sha256),
                "workspaceId": v.model_id,
                "commitSha": from("commitSha"),
                // The seed: "master" when a pull named no ref.
                "ref": origin.map(|o| o.get("ref").filter(|r| r.is_string()).cloned().unwrap_or_else(|| json!("master"))).unwrap_or(Value::Null),
                "repositoryFilePath": from("repositoryFilePath"),
                "repositoryLocation": from("repositoryLocation"),
                "repositoryName": from("repositoryName"),
            });
            // modelreg's: what a safetensors or GGUF file's header says (the
            // client ignores keys it does not know).
            if let Some(facts) = weight_facts::of_file(&v.attrs, &f.path) {
                item["weightFacts"] = facts.clone();
            }
            item
        })
        .collect();
    json!({
        "id": v.id,
        "customModelId": v.model_id,
        "versionMajor": major,
        "versionMinor": minor,
        "label": format!("v{major}.{minor}"),
        "description": v.description.clone().unwrap_or_default(),
        "created": v.created_at,
        "isFrozen": !latest,
        "items": items,
        "baseEnvironmentId": attr("baseEnvironmentId"),
        "baseEnvironmentVersionId": attr("baseEnvironmentVersionId"),
        "dependencies": v.attrs.get("dependencies").cloned().unwrap_or_else(|| json!([])),
        "networkEgressPolicy": attr("networkEgressPolicy"),
        "maximumMemory": attr("maximumMemory"),
        "desiredMemory": attr("desiredMemory"),
        "replicas": attr("replicas"),
        "requiresHa": attr("requiresHa"),
        "resourceBundleId": attr("resourceBundleId"),
        "requiredMetadataValues": v.attrs.get("requiredMetadataValues").cloned().unwrap_or_else(|| json!([])),
        "trainingData": attr("trainingData"),
        "holdoutData": attr("holdoutData"),
        "gitModelVersion": attr("gitModelVersion"),
    })
}

impl super::PartBudget {
    /// `file`, with the blob left in `pending` until `Registry::settle_blobs`.
    fn file_pending(
        &mut self,
        registry: &crate::registry::Registry,
        part: &mut dyn std::io::Read,
        pending: &mut crate::registry::PendingBlobs,
    ) -> Result<crate::registry::Digest> {
        let digest = registry.put_blob_pending(part, Some(self.file_left), pending)?;
        self.file_left = self.file_left.saturating_sub(digest.size);
        Ok(digest)
    }
}
