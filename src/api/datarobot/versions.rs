//! Custom model versions: `/customModels/{id}/versions/…`.
//!
//! A version is a shared registry version (an immutable set of path ->
//! blob); DataRobot's numbering, base environment, resources and parsed
//! dependencies live in its attrs. Uploads stream each `file` part
//! straight into the blob store; the i-th `file` pairs with the i-th
//! `filePath`.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Map, Value};

use super::models::apply_resource_fields;
use super::training::version_training_attrs;
use super::{opt_bool_or_text, opt_str, paging, page_of, pairs_list, query_bool, PartBudget, MAX_TEXT_BYTES};
use crate::http::{Body, Ctx, Request, Response, Router};
use crate::registry::access::{Access, EntityKind};
use crate::registry::{requirements, validate_file_path, Digest, Error, NewFile, NewVersion, Principal, Registry, Result, Version};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/", list);
    router.add(d, "POST", "/api/v2/customModels/{id}/versions/", create_clean);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/versions/", create_from_previous);
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/", get);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/versions/{vid}/", update);
    router.add(d, "GET", "/api/v2/customModels/{id}/versions/{vid}/download/", download);
}

/// The seed's response schema says 100 items, but issue 5 requires 1,000-file
/// versions (the client does not check the count); uploads allow 1000 paths.
const MAX_ITEMS: usize = 1000;
/// The seed's request schema allows 1000 filePath values per upload; the
/// same cap applies to file parts and to filesToDelete.
const MAX_UPLOAD_PATHS: usize = 1000;
/// requirements.txt is parsed in memory: at most this many bytes.
const MAX_REQUIREMENTS_BYTES: u64 = 1024 * 1024;

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
    let (id, vid) = (req.param("id").to_string(), req.param("vid").to_string());
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
    let (id, vid) = (req.param("id").to_string(), req.param("vid").to_string());
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
    let (id, vid) = (req.param("id").to_string(), req.param("vid").to_string());
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

/// The seed's 404 "…or user does not have edit permissions" for uploads.
pub(crate) fn hide_forbidden(e: Error) -> Error {
    match e {
        Error::Forbidden(m) => Error::NotFound(format!("custom model not found or you do not have edit permissions ({m})")),
        other => other,
    }
}

fn create_clean(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    create(ctx, req, false)
}

fn create_from_previous(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    create(ctx, req, true)
}

/// What a version upload sent, once its files are in the blob store.
#[derive(Default)]
pub(crate) struct Upload {
    pub files: Vec<Digest>,
    pub paths: Vec<String>,
    pub delete: Vec<String>,
    /// Text fields (multipart) or JSON values, by name.
    pub fields: Map<String, Value>,
    /// Where uploaded files came from, by path, when not from the client
    /// (a pull from a repository: `repository_origin`).
    pub origins: Map<String, Value>,
}

/// The version attr that records, per path, the repository a file was
/// pulled from (`render_version` shows it on the file's item).
pub(crate) const REPOSITORY_FILES: &str = "repositoryFiles";

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

/// A JSON-text multipart field (or a JSON value, from a JSON body).
pub(crate) fn json_field(fields: &Map<String, Value>, name: &str) -> Result<Option<Value>> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Null) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(Error::invalid(name, format!("is not valid JSON: {e}"))),
        },
        Some(v) => Ok(Some(v.clone())),
    }
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

/// Records an upload as the model's next version: a clean one, or one
/// derived from the latest (`from_previous`). The blobs must be stored
/// already, under an upload guard the caller still holds. Shared with the
/// CLI.
pub(crate) fn commit_version(registry: &Registry, who: &Principal, id: &str, upload: Upload, from_previous: bool) -> Result<Version> {
    registry.require(who, EntityKind::Model, id, Access::Write).map_err(hide_forbidden)?;
    let who = who.clone();
    let fields = &upload.fields;
    if upload.files.len() != upload.paths.len() {
        return Err(Error::invalid(
            "filePath",
            format!("every file needs a filePath: got {} files and {} paths", upload.files.len(), upload.paths.len()),
        ));
    }
    for path in &upload.paths {
        validate_file_path(path)?;
    }
    if upload.delete.len() > MAX_UPLOAD_PATHS {
        return Err(Error::invalid("filesToDelete", format!("at most {MAX_UPLOAD_PATHS} may be sent at once")));
    }
    let major = opt_bool_or_text(fields, "isMajorUpdate")?.unwrap_or(true);
    let mut sent = Map::new();
    apply_resource_fields(fields, &mut sent)?;
    if let Some(values) = json_field(fields, "requiredMetadataValues")? {
        sent.insert("requiredMetadataValues".into(), pairs_list("requiredMetadataValues", &values, "value", 100)?);
    }
    if let Some(git) = json_field(fields, "gitModelVersion")? {
        sent.insert("gitModelVersion".into(), git_model_version(&git)?);
    }
    let uploaded: BTreeMap<String, Digest> = upload.paths.iter().cloned().zip(upload.files.iter().cloned()).collect();
    // Everything that depends on the latest version (inherited settings and
    // environment, the files, the number) is computed inside the write
    // transaction, from the latest version as it is when this one commits.
    registry.create_version_with(&who, id, |latest| {
        let mut attrs = Map::new();
        // Resource settings: a derived version inherits them unless re-sent.
        if from_previous {
            if let Some(l) = latest {
                for key in ["networkEgressPolicy", "maximumMemory", "desiredMemory", "replicas", "requiresHa", "resourceBundleId", "requiredMetadataValues"] {
                    if let Some(v) = l.attrs.get(key) {
                        attrs.insert(key.into(), v.clone());
                    }
                }
            }
        }
        attrs.extend(sent.clone());
        // Checked against the model and its datasets as they are when this
        // version commits.
        attrs.extend(version_training_attrs(registry, &who, id, fields, latest)?);
        let (env_id, env_version_id) = resolve_environment(registry, &who, fields, latest, from_previous)?;
        attrs.insert("baseEnvironmentId".into(), json!(env_id));
        attrs.insert("baseEnvironmentVersionId".into(), json!(env_version_id));
        // The basis: the latest version's files for PATCH, nothing for POST.
        let mut files: BTreeMap<String, Digest> = BTreeMap::new();
        if from_previous {
            if let Some(l) = latest {
                for f in &l.files {
                    files.insert(f.path.clone(), Digest { sha256: f.sha256.clone(), size: f.size });
                }
                for item in &upload.delete {
                    let Some(f) = l.files.iter().find(|f| &f.id == item) else {
                        return Err(Error::invalid("filesToDelete", format!("{item:?} is not the id of a file of the latest version")));
                    };
                    files.remove(&f.path);
                }
            } else if !upload.delete.is_empty() {
                return Err(Error::invalid("filesToDelete", "the model has no version to delete files from"));
            }
        }
        // Uploaded files replace files at the same path (seed).
        files.extend(uploaded.clone());
        // Kept files keep the record of the repository they came from;
        // replaced ones lose it (or get the new one).
        let mut origins = Map::new();
        if let (true, Some(Value::Object(kept))) = (from_previous, latest.and_then(|l| l.attrs.get(REPOSITORY_FILES))) {
            origins.extend(kept.iter().filter(|(path, _)| files.contains_key(*path) && !uploaded.contains_key(*path)).map(|(p, o)| (p.clone(), o.clone())));
        }
        origins.extend(upload.origins.clone());
        if !origins.is_empty() {
            attrs.insert(REPOSITORY_FILES.into(), Value::Object(origins));
        }
        if files.len() > MAX_ITEMS {
            return Err(Error::unprocessable(format!("a version may hold at most {MAX_ITEMS} files; this one would hold {}", files.len())));
        }
        let (vmaj, vmin) = match latest.map(numbers) {
            None if major => (1, 0),
            None => (0, 1),
            Some((a, _)) if major => (a + 1, 0),
            Some((a, b)) => (a, b + 1),
        };
        attrs.insert("versionMajor".into(), json!(vmaj));
        attrs.insert("versionMinor".into(), json!(vmin));
        attrs.insert("dependencies".into(), dependencies(registry, files.get("requirements.txt"))?);
        let files = files.into_iter().map(|(path, digest)| NewFile { path, digest }).collect();
        Ok(NewVersion { description: Some(String::new()), attrs, files, label: None })
    })
}

/// `{commitUrl, mainBranchCommitSha, pullRequestCommitSha, refName}`: the
/// commit a CI run built the version from (seed 002's GitModelVersion).
fn git_model_version(value: &Value) -> Result<Value> {
    let bad = |why: &str| Error::invalid("gitModelVersion", why.to_string());
    let Some(git) = value.as_object() else { return Err(bad("must be an object")) };
    let sha = |key: &str, required: bool| -> Result<Value> {
        match git.get(key) {
            Some(Value::String(s)) if s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()) => Ok(json!(s)),
            None | Some(Value::Null) if !required => Ok(Value::Null),
            _ => Err(bad(&format!("{key} must be a 40-character commit SHA-1"))),
        }
    };
    let text = |key: &str| -> Result<Value> {
        match git.get(key) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 2000 => Ok(json!(s)),
            _ => Err(bad(&format!("{key} is required"))),
        }
    };
    Ok(json!({
        "commitUrl": text("commitUrl")?,
        "mainBranchCommitSha": sha("mainBranchCommitSha", true)?,
        "pullRequestCommitSha": sha("pullRequestCommitSha", false)?,
        "refName": text("refName")?,
    }))
}

/// The version's parsed requirements.txt; an invalid line fails the upload
/// with the seed's 422 fields `dependencies` and `invalidDependencies`.
fn dependencies(registry: &Registry, requirements: Option<&Digest>) -> Result<Value> {
    let Some(digest) = requirements else { return Ok(json!([])) };
    // Read one byte more than allowed: a longer file is refused, never
    // silently cut.
    let mut bytes = Vec::new();
    registry.open_blob(&digest.sha256)?.take(MAX_REQUIREMENTS_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_REQUIREMENTS_BYTES {
        return Err(Error::unprocessable(format!("requirements.txt is larger than {MAX_REQUIREMENTS_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::unprocessable("requirements.txt must be UTF-8 text"))?;
    let parsed = requirements::parse(&text);
    let deps: Vec<Value> = parsed.dependencies.iter().map(|d| d.to_json()).collect();
    if !parsed.invalid.is_empty() {
        return Err(Error::Unprocessable {
            message: "Invalid requirements.txt: some lines cannot be parsed".into(),
            details: json!({
                "dependencies": deps,
                "invalidDependencies": parsed.invalid.iter().map(|i| i.to_json()).collect::<Vec<_>>(),
            }),
        });
    }
    if deps.len() > 1000 {
        return Err(Error::unprocessable("requirements.txt may list at most 1000 dependencies"));
    }
    Ok(Value::Array(deps))
}

/// The seed's base environment rules: at least one of the two ids (a
/// derived version inherits both); a version id must belong to the
/// environment; a missing version id is the latest model version's when
/// it used the same environment, else the environment's latest successful
/// build.
pub(super) fn resolve_environment(
    registry: &Registry,
    who: &Principal,
    fields: &Map<String, Value>,
    latest: Option<&Version>,
    from_previous: bool,
) -> Result<(String, String)> {
    let env_id = opt_str(fields, "baseEnvironmentId", 100)?.filter(|s| !s.is_empty());
    let env_version_id = opt_str(fields, "baseEnvironmentVersionId", 100)?.filter(|s| !s.is_empty());
    let inherited = |key: &str| latest.and_then(|l| l.attrs.get(key)).and_then(Value::as_str).map(String::from);
    let (env_id, env_version_id) = match (env_id, env_version_id) {
        (None, None) if from_previous && inherited("baseEnvironmentId").is_some() => {
            (inherited("baseEnvironmentId"), inherited("baseEnvironmentVersionId"))
        }
        (None, None) => {
            return Err(Error::invalid("baseEnvironmentId", "at least one of baseEnvironmentId and baseEnvironmentVersionId must be provided"))
        }
        pair => pair,
    };
    let not_usable = |e: Error| match e {
        Error::NotFound(m) => Error::invalid("baseEnvironmentId", m),
        other => other,
    };
    match (env_id, env_version_id) {
        (env, Some(vid)) => {
            // One team- and access-filtered lookup, one message: another
            // team's or an invisible version is "not found", naming only
            // the id the caller sent.
            let version = registry.usable_env_version(who, &vid).map_err(|e| match e {
                Error::NotFound(_) => Error::invalid("baseEnvironmentVersionId", format!("environment version {vid} not found")),
                other => other,
            })?;
            if let Some(env) = env.filter(|e| *e != version.environment_id) {
                return Err(Error::invalid("baseEnvironmentVersionId", format!("version {vid} does not belong to environment {env}")));
            }
            Ok((version.environment_id, vid))
        }
        (Some(env), None) => {
            registry.get_environment(who, &env).map_err(not_usable)?;
            if inherited("baseEnvironmentId").as_deref() == Some(env.as_str()) {
                if let Some(vid) = inherited("baseEnvironmentVersionId") {
                    return Ok((env, vid));
                }
            }
            let built = registry.latest_env_version(&env, true)?.ok_or_else(|| {
                Error::invalid("baseEnvironmentId", format!("environment {env} has no successfully built version"))
            })?;
            Ok((env, built.id))
        }
        (None, None) => Err(Error::invalid("baseEnvironmentId", "is required")),
    }
}

/// (versionMajor, versionMinor); a version made by another dialect counts
/// as `number.0`.
pub(crate) fn numbers(v: &Version) -> (i64, i64) {
    let get = |k: &str| v.attrs.get(k).and_then(Value::as_i64);
    match (get("versionMajor"), get("versionMinor")) {
        (Some(a), Some(b)) => (a, b),
        _ => (v.number, 0),
    }
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
            json!({
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
            })
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
