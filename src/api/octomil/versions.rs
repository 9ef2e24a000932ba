//! The Octomil SDK's version workflow, beyond seed 004's upload and
//! download: list, get and latest; publish, deprecate and metrics; delete;
//! and the presigned flow (`upload-url` → PUT → `confirm-upload`,
//! `download-url` → GET) that `OctomilClient.push` and `pull` use.
//!
//! Signed URLs point at modelreg itself (`/api/v1/uploads/{token}` and
//! `/api/v1/downloads/{token}`); the registry keeps their tokens
//! (`registry::signed_urls`). Statuses, labels and "latest" are the
//! registry's, so every door sees the same ones.

use serde_json::{json, Map, Value};

use super::{commit_upload, download_response, render_version, resolve_model, version_param, OCTOMIL};
use crate::http::params::query_int;
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::{Error, Result, VersionStatus};

pub fn routes(router: &mut Router) {
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions", list_versions);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions", create_version_by_reference);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions/latest", latest_version);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions/upload-url", upload_url);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions/confirm-upload", confirm_upload);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions/{version}", get_version);
    router.add(&OCTOMIL, "DELETE", "/api/v1/models/{model_id}/versions/{version}", delete_version);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions/{version}/publish", publish);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions/{version}/deprecate", deprecate);
    router.add(&OCTOMIL, "PATCH", "/api/v1/models/{model_id}/versions/{version}/metrics", update_metrics);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions/{version}/download-url", download_url);
    // The signed URLs carry their own authority: no key.
    router.add_public(&OCTOMIL, "PUT", "/api/v1/uploads/{token}", put_upload);
    router.add_public(&OCTOMIL, "GET", "/api/v1/downloads/{token}", signed_download);
}

/// Newest first, paged like the model list; `status` filters.
fn list_versions(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?;
    let model = resolve_model(ctx.registry, who, req.param("model_id"))?;
    let limit = query_int(req, "limit", 20, 1, 100)?;
    let offset = query_int(req, "offset", 0, 0, i64::MAX)?;
    let status = match req.query("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(VersionStatus::parse(s).ok_or_else(|| {
            Error::invalid("status", format!("must be one of active, published, deprecated; got {s:?}"))
        })?),
    };
    let (versions, total) = ctx.registry.list_versions_page(who, &model.id, status, limit, offset)?;
    let page: Vec<Value> = versions.iter().map(|v| render_version(&model.id, v)).collect();
    Ok(Response::json(200, &json!({"versions": page, "total": total, "limit": limit, "offset": offset})))
}

fn create_version_by_reference(_: &Ctx, _: &mut Request) -> Result<Response> {
    Err(Error::invalid(
        "storage_path",
        "modelreg stores the bytes of every version itself and cannot register a file kept elsewhere: \
         upload it with POST …/versions/upload (multipart) or …/versions/upload-url then confirm-upload",
    ))
}

fn latest_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?;
    let model = resolve_model(ctx.registry, who, req.param("model_id"))?;
    let latest = ctx.registry.latest_version(who, &model.id)?.ok_or_else(|| {
        Error::NotFound(format!("model {} has no version that is not deprecated", model.id))
    })?;
    Ok(Response::json(200, &render_version(&model.id, &latest)))
}

fn get_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?;
    let model = resolve_model(ctx.registry, who, req.param("model_id"))?;
    let version = ctx.registry.find_version(who, &model.id, &version_param(req)?)?;
    Ok(Response::json(200, &render_version(&model.id, &version)))
}

fn delete_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?;
    let model = resolve_model(ctx.registry, who, req.param("model_id"))?;
    let deleted = ctx.registry.delete_version(who, &model.id, &version_param(req)?)?;
    Ok(Response::json(
        200,
        &json!({
            "model_id": model.id,
            "version": deleted.number,
            "deleted": true,
            // Released now, removed from disk by the next gc; the number is
            // never given to another version.
            "freed_bytes": deleted.freed_bytes,
        }),
    ))
}

fn publish(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    set_status(ctx, req, VersionStatus::Published)
}

fn deprecate(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    set_status(ctx, req, VersionStatus::Deprecated)
}

fn set_status(ctx: &Ctx, req: &mut Request, status: VersionStatus) -> Result<Response> {
    let who = req.who()?.clone();
    let model = resolve_model(ctx.registry, &who, req.param("model_id"))?;
    let by = version_param(req)?;
    // The SDK sends `{}`; read it so the connection stays in step.
    req.json_value()?;
    let version = ctx.registry.set_version_status(&who, &model.id, &by, status)?;
    Ok(Response::json(200, &render_version(&model.id, &version)))
}

fn update_metrics(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = resolve_model(ctx.registry, &who, req.param("model_id"))?;
    let by = version_param(req)?;
    let body = req.json_object()?;
    let metrics = match body.get("metrics") {
        Some(Value::Object(m)) => m.clone(),
        _ => return Err(Error::invalid("metrics", "is required: an object of metric names to values")),
    };
    if metrics.len() > 100 {
        return Err(Error::invalid("metrics", "may name at most 100 metrics per request"));
    }
    let version = ctx.registry.update_version_metrics(&who, &model.id, &by, metrics)?;
    Ok(Response::json(200, &render_version(&model.id, &version)))
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Step 1 of `push`: a single-use URL to PUT the file to. The SDK passes
/// the model's *name* as its id; a name no model has yet is created when
/// the upload is confirmed, as Octomil's server does.
fn upload_url(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let handle = req.param("model_id").to_string();
    let fields = req.form_fields()?;
    let version = field(&fields, "version").ok_or_else(|| Error::invalid("version", "is required"))?.to_string();
    let filename = field(&fields, "filename").unwrap_or("model.bin").to_string();
    // Refuse now what confirm-upload would refuse, before any bytes move.
    crate::registry::catalogue::weights::resolve_format(&filename, None)?;
    let model_ref = match resolve_model(ctx.registry, &who, &handle) {
        Ok(model) => {
            ctx.registry.check_can_add_version(&who, &model.id)?;
            model.id
        }
        Err(Error::NotFound(_)) if !super::is_uuid(&handle) => handle,
        Err(e) => return Err(e),
    };
    let ttl = ctx.options.signed_url_ttl;
    // A client that says what it will upload can send it straight to an
    // object store, which refuses other bytes (modelreg's own field; the
    // Octomil SDK sends no sha256, and uploads through modelreg).
    let sha256 = field(&fields, "sha256").map(|s| s.trim_start_matches("sha256:").to_ascii_lowercase());
    if let Some(sha256) = &sha256 {
        if !crate::registry::is_sha256_hex(sha256) {
            return Err(Error::invalid("sha256", "must be the file's sha256 as 64 hex digits"));
        }
    }
    if let Some((sha256, direct)) = sha256.as_deref().and_then(|sha| Some((sha, ctx.registry.presigned_blob_put(sha, ttl)?))) {
        let signed = ctx.registry.sign_direct_upload(&who, &model_ref, &version, &filename, sha256, ttl)?;
        let headers: serde_json::Map<String, Value> = direct.headers.into_iter().map(|(k, v)| (k, json!(v))).collect();
        return Ok(Response::json(
            200,
            &json!({"upload_url": direct.url, "storage_key": signed.token, "method": "PUT", "headers": headers, "expires_at": signed.expires_at}),
        ));
    }
    let signed = ctx.registry.sign_upload(&who, &model_ref, &version, &filename, ttl)?;
    Ok(Response::json(
        200,
        &json!({
            "upload_url": format!("{}/api/v1/uploads/{}", req.base_url(), signed.token),
            "storage_key": signed.token,
            "method": "PUT",
            "expires_at": signed.expires_at,
        }),
    ))
}

/// Step 2: the file's bytes, streamed into the blob store and durable
/// before the answer; the URL is then spent.
fn put_upload(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let token = req.param("token").to_string();
    ctx.registry.claim_upload(&token)?;
    let limit = req.upload_limit();
    let guard = ctx.registry.upload_guard()?;
    let digest = ctx.registry.put_blob(req.body()?, Some(limit))?;
    ctx.registry.finish_upload(&token, &digest)?;
    drop(guard);
    Ok(Response::json(200, &json!({"size": digest.size, "sha256": digest.sha256}))
        .with_header("ETag", format!("\"{}\"", digest.sha256)))
}

/// Step 3: the uploaded file becomes the model's next version, labelled
/// with the client's version string.
fn confirm_upload(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let handle = req.param("model_id").to_string();
    let fields = req.form_fields()?;
    let key = field(&fields, "storage_key").ok_or_else(|| Error::invalid("storage_key", "is required"))?.to_string();
    let declared_size = match field(&fields, "file_size") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| Error::invalid("file_size", format!("must be a byte count, got {text:?}")))?),
    };
    let description = field(&fields, "description").map(str::to_string);
    let guard = ctx.registry.upload_guard()?;
    let (grant, digest) = ctx.registry.confirm_upload(&who, &key)?;
    let made = (|| {
        if declared_size.is_some_and(|n| n != digest.size) {
            return Err(Error::invalid(
                "file_size",
                format!("says {} bytes, but {} bytes were uploaded", declared_size.unwrap_or(0), digest.size),
            ));
        }
        let model = match resolve_model(ctx.registry, &who, &grant.model_ref) {
            Ok(model) => model,
            Err(Error::NotFound(_)) if !super::is_uuid(&grant.model_ref) => {
                let mut attrs = Map::new();
                let format = crate::registry::catalogue::weights::resolve_format(&grant.filename, None)?;
                // A safetensors file's framework is in its header: the model
                // then shows its latest version's (`version_framework`).
                if let Some(framework) = crate::registry::catalogue::weights::format_framework(&format) {
                    attrs.insert("framework".into(), json!(framework));
                }
                attrs.insert("is_baseline".into(), json!(false));
                let new = crate::registry::NewModel {
                    name: grant.model_ref.clone(),
                    description: None,
                    attrs,
                    origin: crate::registry::Origin::Octomil,
                };
                ctx.registry.create_model_named(&who, new)?.0
            }
            Err(e) => return Err(e),
        };
        // The URL named this model (or name); confirming into another is a
        // client mix-up, not a rename.
        if handle != grant.model_ref && handle != model.id && handle != model.name {
            return Err(Error::invalid("storage_key", format!("was issued for model {:?}, not {handle:?}", grant.model_ref)));
        }
        commit_upload(ctx.registry, &who, &model.id, &grant.filename, digest.clone(), None, description, Some(grant.version.clone()))
    })();
    drop(guard);
    match made {
        Ok(body) => {
            if let Some(model_id) = body["model_id"].as_str() {
                super::formats::after_upload(ctx, &who, model_id, body["version"].as_i64());
            }
            Ok(Response::json(201, &body))
        }
        Err(e) => {
            // The file is still there: the client may fix the request and confirm again.
            ctx.registry.unconfirm_upload(&key)?;
            Err(e)
        }
    }
}

/// A short-lived URL that downloads one version in one format without a
/// key, for `pull`.
fn download_url(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?;
    let model = resolve_model(ctx.registry, who, req.param("model_id"))?;
    let version = ctx.registry.find_version(who, &model.id, &version_param(req)?)?;
    let format = super::download_format_param(req)?;
    // Where the bytes are in an object store, the client reads them there.
    // A converted format is made on demand, so it always comes through us.
    let stored = super::stored_single_file(&version, &format);
    let ttl = ctx.options.signed_url_ttl;
    let file_name = crate::registry::catalogue::weights::download_file_name(&version);
    if let Some(url) = stored.and_then(|file| ctx.registry.presigned_blob_url(&file.sha256, &file_name, ttl)) {
        let expires_at = crate::registry::format_time(time::OffsetDateTime::now_utc() + ttl);
        return Ok(Response::json(200, &json!({"url": url, "expires_at": expires_at, "format": format, "version": version.number})));
    }
    let signed = ctx.registry.sign_download(who, &model.id, version.number, &format, ctx.options.signed_url_ttl)?;
    Ok(Response::json(
        200,
        &json!({
            "url": format!("{}/api/v1/downloads/{}", req.base_url(), signed.token),
            "expires_at": signed.expires_at,
            "format": format,
            "version": version.number,
        }),
    ))
}

fn signed_download(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let grant = ctx.registry.redeem_download(req.param("token"))?;
    let version = ctx.registry.get_version(&grant.who, &grant.model_id, grant.number)?;
    download_response(ctx, req, &grant.who, &version, &grant.format)
}

/// Octomil's deployment features, which a registry does not have. Their
/// 404 says so in words, not with the `{"detail":"Not Found"}` body the SDK
/// retries as a cold start.
pub fn not_a_registry_feature(_: &Ctx, req: &mut Request) -> Result<Response> {
    Err(Error::NotFound(format!(
        "{} is a deployment feature of Octomil's cloud (rollouts, optimisation, device compatibility); \
         modelreg is a registry and does not have it",
        req.path()
    )))
}
