//! Octomil's Models API (seed 004): a catalog of models with versioned
//! weight files, under `/api/v1/models`.
//!
//! Octomil-only fields (framework, framework_version, accuracy, loss,
//! is_baseline, round_id) live in the model's attrs; a version's format in
//! the version's attrs. A version holds exactly one file.

use serde_json::{json, Map, Value};

use super::{is_uuid, opt_bool, opt_number, opt_string, query_bool, query_int};
use crate::http::{Ctx, Dialect, FileToSend, Request, Response, Router};
use crate::registry::{
    Digest, Error, Model, Origin, ModelQuery, NewFile, NewModel, NewVersion, PageRequest, Principal, Registry, Result, Version,
};


pub static OCTOMIL: Dialect = Dialect { name: "octomil", prefix: "/api/v1/", render_error, trailing_slash_optional: false };

pub fn routes(router: &mut Router) {
    router.add(&OCTOMIL, "GET", "/api/v1/models", list_models);
    router.add(&OCTOMIL, "POST", "/api/v1/models", create_model);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}", get_model);
    // Not in seed 004, but the Octomil SDK's `delete_model` calls it.
    router.add(&OCTOMIL, "DELETE", "/api/v1/models/{model_id}", delete_model);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions/upload", upload_version);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions/{version}/download", download_version);
}

/// Seed 004's error table: one body shape, `{error, message}`.
fn render_error(error: &Error) -> Response {
    let (status, code) = match error {
        Error::Invalid { .. } | Error::Unprocessable { .. } => (400, "bad_request"),
        Error::Unauthorized(_) => (401, "unauthorized"),
        Error::Forbidden(_) => (403, "forbidden"),
        Error::NotFound(_) | Error::NoRoute(_) => (404, "not_found"),
        Error::MethodNotAllowed { .. } => (405, "method_not_allowed"),
        Error::Conflict(_) => (409, "conflict"),
        Error::TooLarge(_) => (413, "payload_too_large"),
        Error::RateLimited { .. } => (429, "rate_limited"),
        Error::InsufficientStorage(_) => (507, "insufficient_storage"),
        Error::Internal(_) => (500, "internal_error"),
    };
    Response::json(status, &json!({"error": code, "message": error.message()}))
}

const FRAMEWORKS: [&str; 4] = ["pytorch", "tensorflow", "xgboost", "sklearn"];
const FORMATS: [&str; 5] = ["pytorch", "tensorflow", "onnx", "sklearn", "xgboost"];
/// Formats a client may ask a download in (seed 004 lists converted ones).
const DOWNLOAD_FORMATS: [&str; 8] = ["original", "pytorch", "tensorflow", "onnx", "sklearn", "xgboost", "tflite", "coreml"];
const MAX_DESCRIPTION: usize = 1000;

fn model_id_param(req: &Request) -> Result<String> {
    let id = req.param("model_id");
    if !is_uuid(id) {
        return Err(Error::invalid("model_id", format!("must be a UUID, got {id:?}")));
    }
    Ok(id.to_string())
}

fn list_models(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let limit = query_int(req, "limit", 20, 1, 100)?;
    let offset = query_int(req, "offset", 0, 0, i64::MAX)?;
    let framework = req.query("framework").map(str::to_string);
    let baseline = query_bool(req, "is_baseline")?;
    let body = list_body(ctx.registry, req.who()?, limit, offset, framework.as_deref(), baseline)?;
    Ok(Response::json(200, &body))
}

/// `GET /api/v1/models` as JSON; the CLI's `models list` shares it.
pub(crate) fn list_body(
    registry: &Registry,
    who: &Principal,
    limit: i64,
    offset: i64,
    framework: Option<&str>,
    is_baseline: Option<bool>,
) -> Result<Value> {
    // The route checked these already; the CLI passes its flags unchecked.
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid("limit", format!("must be an integer from 1 to 100, got {limit}")));
    }
    if offset < 0 {
        return Err(Error::invalid("offset", format!("must be 0 or more, got {offset}")));
    }
    let mut query = ModelQuery::newest_first(PageRequest::Offset { offset: offset as u64, limit: limit as u64 });
    query.count_total = true;
    if let Some(framework) = framework {
        check_framework(framework)?;
        query.attr_equals.push(("framework".into(), json!(framework)));
    }
    if let Some(baseline) = is_baseline {
        query.attr_equals.push(("is_baseline".into(), json!(baseline)));
    }
    let page = registry.list_models(who, &query)?;
    let mut models = Vec::with_capacity(page.items.len());
    for model in &page.items {
        let latest = registry.latest_version(who, &model.id)?;
        models.push(render_model(model, latest.as_ref()));
    }
    Ok(json!({"models": models, "total": page.total.unwrap_or(0), "limit": limit, "offset": offset}))
}

fn check_framework(framework: &str) -> Result<()> {
    if !FRAMEWORKS.contains(&framework) {
        return Err(Error::invalid("framework", format!("must be one of {}, got {framework:?}", FRAMEWORKS.join(", "))));
    }
    Ok(())
}

fn create_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let new = new_model_from_json(&body)?;
    // Seed 004's 409 "resource already exists": the Octomil SDK resolves
    // models by name, so two models of one name would be ambiguous to it.
    let model = ctx.registry.create_model_with_unique_name(req.who()?, new)?;
    Ok(Response::json(201, &render_model(&model, None)))
}

/// Validates a create body (seed 004's fields, plus what the Octomil SDK
/// sends); unknown keys are ignored.
pub(crate) fn new_model_from_json(body: &Map<String, Value>) -> Result<NewModel> {
    let mut attrs = Map::new();
    if let Some(framework) = opt_string(body, "framework")? {
        check_framework(&framework)?;
        attrs.insert("framework".into(), json!(framework));
    }
    if let Some(version) = opt_string(body, "framework_version")? {
        attrs.insert("framework_version".into(), json!(version));
    }
    attrs.insert("is_baseline".into(), json!(opt_bool(body, "is_baseline")?.unwrap_or(false)));
    for field in ["accuracy", "loss"] {
        if let Some(n) = opt_number(body, field)? {
            attrs.insert(field.into(), json!(n));
        }
    }
    if let Some(round) = opt_string(body, "round_id")? {
        attrs.insert("round_id".into(), json!(round));
    }
    // The Octomil SDK's ensure_model sends this; keep it so it echoes.
    if let Some(use_case) = opt_string(body, "use_case")? {
        attrs.insert("use_case".into(), json!(use_case));
    }
    let description = opt_string(body, "description")?;
    check_description(description.as_deref())?;
    let name = opt_string(body, "name")?.unwrap_or_default();
    Ok(NewModel { name, description, attrs, origin: Origin::Octomil })
}

fn check_description(description: Option<&str>) -> Result<()> {
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(Error::invalid("description", format!("must be at most {MAX_DESCRIPTION} characters")));
    }
    Ok(())
}

fn get_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let id = model_id_param(req)?;
    Ok(Response::json(200, &model_detail(ctx.registry, req.who()?, &id)?))
}

/// A model with its whole version history.
pub(crate) fn model_detail(registry: &Registry, who: &Principal, id: &str) -> Result<Value> {
    let model = registry.get_model(who, id)?;
    let versions = registry.list_versions(who, id)?;
    let mut body = render_model(&model, versions.last());
    body["versions"] = versions.iter().map(|v| render_version_summary(&model.id, v)).collect();
    Ok(body)
}

fn delete_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let id = model_id_param(req)?;
    ctx.registry.delete_model(req.who()?, &id)?;
    Ok(Response::json(200, &json!({"id": id, "deleted": true})))
}

fn upload_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let id = model_id_param(req)?;
    let who = req.who()?.clone();
    // Answer 404 before reading a possibly huge body for nothing.
    ctx.registry.get_model(&who, &id)?;
    if !req.is_multipart() {
        return Err(Error::invalid("file", "must be sent as multipart/form-data with a `file` part"));
    }
    let limit = req.upload_limit();
    let guard = ctx.registry.upload_guard()?;
    let mut multipart = req.multipart()?;
    let (mut file, mut format, mut description) = (None, None, None);
    while let Some(mut part) = multipart.next_part()? {
        match part.name() {
            "file" if file.is_some() => return Err(Error::invalid("file", "only one file may be uploaded per version")),
            "file" => {
                let filename = part.filename().unwrap_or("").to_string();
                let digest = ctx.registry.put_blob(&mut part, Some(limit))?;
                file = Some((filename, digest));
            }
            "format" => format = Some(part.text(64)?),
            "description" => description = Some(part.text(64 * 1024)?),
            _ => {}
        }
    }
    let (filename, digest) = file.ok_or_else(|| Error::invalid("file", "is required: send the weights as a `file` part"))?;
    let body = commit_upload(ctx.registry, &who, &id, &filename, digest, format, description)?;
    drop(guard);
    Ok(Response::json(201, &body))
}

/// The format a version is stored as: the one given, or else the one the
/// file name's extension implies. The CLI calls it before sending any bytes.
pub(crate) fn resolve_format(filename: &str, format: Option<&str>) -> Result<String> {
    match format.filter(|f| !f.is_empty()) {
        Some(f) if FORMATS.contains(&f) => Ok(f.to_string()),
        Some(f) => Err(Error::invalid("format", format!("must be one of {}, got {f:?}", FORMATS.join(", ")))),
        None => infer_format(filename).ok_or_else(|| {
            Error::invalid("format", format!("is required: it cannot be inferred from the file name {filename:?}"))
        }),
    }
}

/// Records an uploaded file as the model's next version. The blob must be
/// stored already, under an upload guard the caller still holds.
pub(crate) fn commit_upload(
    registry: &Registry,
    who: &Principal,
    model_id: &str,
    filename: &str,
    digest: Digest,
    format: Option<String>,
    description: Option<String>,
) -> Result<Value> {
    let format = resolve_format(filename, format.as_deref())?;
    check_description(description.as_deref())?;
    let path = stored_file_name(filename, &format);
    let mut attrs = Map::new();
    attrs.insert("format".into(), json!(format));
    let version =
        registry.create_version(who, model_id, NewVersion { description, attrs, files: vec![NewFile { path, digest }] })?;
    let file = &version.files[0];
    Ok(json!({
        "model_id": model_id,
        "version": version.number,
        "format": format,
        "model_path": model_path(model_id, &version),
        "model_size_bytes": file.size,
        "model_hash": format!("sha256:{}", file.sha256),
        "description": version.description,
        "uploaded_at": version.created_at,
    }))
}

fn download_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let id = model_id_param(req)?;
    let number = req
        .param("version")
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Error::invalid("version", "must be a positive integer"))?;
    let wanted = req.query("format").unwrap_or("original").to_string();
    if !DOWNLOAD_FORMATS.contains(&wanted.as_str()) {
        return Err(Error::invalid("format", format!("must be one of {}, got {wanted:?}", DOWNLOAD_FORMATS.join(", "))));
    }
    let version = ctx.registry.get_version(req.who()?, &id, number)?;
    let stored = version_format(&version);
    if wanted != "original" && wanted != stored {
        return Err(Error::NotFound(format!(
            "no {wanted} artifact exists for version {number}: it was uploaded as {stored}, and modelreg \
             serves the uploaded file only (it does not convert between formats)"
        )));
    }
    // A version made through DataRobot can hold many files (or none);
    // Octomil's download serves exactly one.
    let [file] = version.files.as_slice() else {
        return Err(Error::NotFound(format!(
            "version {number} holds {} files, not one weights file; download it through the DataRobot routes",
            version.files.len()
        )));
    };
    let response = crate::http::response::file_response(
        req.header("If-None-Match"),
        req.header("Range"),
        req.header("If-Range"),
        FileToSend {
            file: ctx.registry.open_blob(&file.sha256)?,
            size: file.size,
            sha256: file.sha256.clone(),
            content_type: "application/octet-stream".into(),
        },
    );
    Ok(response
        .with_header("Content-Disposition", format!("attachment; filename=\"{}\"", download_file_name(&version)))
        .with_header("X-Model-Hash", file.sha256.clone()))
}

fn infer_format(filename: &str) -> Option<String> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    let format = match ext.as_str() {
        "pt" | "pth" => "pytorch",
        "h5" | "keras" => "tensorflow",
        "pkl" | "joblib" => "sklearn",
        "onnx" => "onnx",
        "json" | "ubj" => "xgboost",
        _ => return None,
    };
    Some(format.to_string())
}

fn default_extension(format: &str) -> &'static str {
    match format {
        "pytorch" => "pt",
        "tensorflow" => "h5",
        "sklearn" => "pkl",
        "onnx" => "onnx",
        "xgboost" => "json",
        _ => "bin",
    }
}

/// The uploaded file's base name when it is a safe one, else `model.<ext>`.
fn stored_file_name(filename: &str, format: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or("");
    let safe = !base.is_empty()
        && base != "."
        && base != ".."
        && base.len() <= 255
        && base.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if safe {
        base.to_string()
    } else {
        format!("model.{}", default_extension(format))
    }
}

/// `model_v{N}.{ext}`: the name a download is offered under (the
/// extension of the uploaded file, else the format's usual one). The CLI
/// writes downloads under the same name by default.
pub(crate) fn download_file_name(version: &Version) -> String {
    // The extension goes into a quoted header: only a short alphanumeric one
    // is taken from the stored path (which another dialect may have named).
    let ext = match version.files.first().and_then(|f| f.path.rsplit_once('.')) {
        Some((_, ext)) if (1..=16).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric()) => ext.to_string(),
        _ => default_extension(&version_format(version)).to_string(),
    };
    format!("model_v{}.{ext}", version.number)
}

fn version_format(version: &Version) -> String {
    version.attrs.get("format").and_then(Value::as_str).unwrap_or("original").to_string()
}

fn model_path(model_id: &str, version: &Version) -> String {
    let file = version.files.first().map(|f| f.path.as_str()).unwrap_or("");
    format!("modelreg://{model_id}/v{}/{file}", version.number)
}

fn render_version_summary(model_id: &str, v: &Version) -> Value {
    let file = v.files.first();
    json!({
        "version": v.number,
        "format": version_format(v),
        "model_path": model_path(model_id, v),
        "model_size_bytes": v.total_size(),
        "model_hash": file.map(|f| format!("sha256:{}", f.sha256)),
        "description": v.description,
        "uploaded_at": v.created_at,
    })
}

fn render_model(model: &Model, latest: Option<&Version>) -> Value {
    let attr = |key: &str| model.attrs.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "id": model.id,
        "name": model.name,
        "round_id": attr("round_id"),
        "model_path": latest.map(|v| model_path(&model.id, v)),
        "model_size_bytes": latest.map(Version::total_size),
        "model_hash": latest.and_then(|v| v.files.first()).map(|f| format!("sha256:{}", f.sha256)),
        "framework": attr("framework"),
        "framework_version": attr("framework_version"),
        "accuracy": attr("accuracy"),
        "loss": attr("loss"),
        "is_baseline": model.attrs.get("is_baseline").and_then(Value::as_bool).unwrap_or(false),
        "description": model.description,
        "created_at": model.created_at,
    })
}
