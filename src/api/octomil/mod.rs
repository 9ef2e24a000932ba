//! Octomil's Models API (seed 004): a catalog of models with versioned
//! weight files, under `/api/v1/models`.
//!
//! Octomil-only fields (framework, framework_version, accuracy, loss,
//! is_baseline, round_id) live in the model's attrs; a version's format in
//! the version's attrs. A version made here holds exactly one file.
//!
//! Wherever a route takes `{model_id}`, a model's name works too: the
//! Octomil SDK passes names there (`push`, and every call after a name
//! lookup that missed).

mod versions;

pub(crate) mod formats;

use serde_json::{json, Map, Value};

use crate::compute::jobs::Settings;
use crate::http::params::{query_bool, query_int};
use crate::http::{Ctx, Dialect, FileToSend, Request, Response, Router};
use crate::registry::catalogue::models::{TagFilter, MAX_MODEL_NAME};
use crate::registry::catalogue::weight_facts::WEIGHT_FACTS;
use crate::registry::catalogue::weights::{check_description, download_file_name, version_format, FRAMEWORKS};
use crate::registry::fields::{opt_bool, opt_number, opt_string};
use crate::registry::is_uuid;
use crate::registry::{Digest, Error, Model, ModelQuery, NewModel, Origin, PageRequest, Principal, Registry, Result, Version};


pub static OCTOMIL: Dialect = Dialect { name: "octomil", prefix: "/api/v1/", render_error, trailing_slash_optional: false, retry_resends_no_body: false };

pub fn routes(router: &mut Router) {
    router.add(&OCTOMIL, "GET", "/api/v1/models", list_models);
    router.add(&OCTOMIL, "POST", "/api/v1/models", create_model);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}", get_model);
    router.add(&OCTOMIL, "PATCH", "/api/v1/models/{model_id}", update_model);
    // Not in seed 004, but the Octomil SDK's `delete_model` calls it.
    router.add(&OCTOMIL, "DELETE", "/api/v1/models/{model_id}", delete_model);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions/upload", upload_version);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions/{version}/download", download_version);
    versions::routes(router);
    for (method, pattern) in [
        ("GET", "/api/v1/models/{model_id}/rollouts"),
        ("POST", "/api/v1/models/{model_id}/rollouts"),
        ("GET", "/api/v1/models/{model_id}/rollouts/active"),
        ("GET", "/api/v1/models/{model_id}/rollouts/{rollout_id}"),
        ("DELETE", "/api/v1/models/{model_id}/rollouts/{rollout_id}"),
        ("POST", "/api/v1/models/{model_id}/rollouts/{rollout_id}/{action}"),
        ("PATCH", "/api/v1/models/{model_id}/rollouts/{rollout_id}/{action}"),
        ("GET", "/api/v1/models/{model_id}/rollouts/{rollout_id}/{action}"),
        ("POST", "/api/v1/models/{model_id}/optimize"),
        ("GET", "/api/v1/models/{model_id}/compatibility"),
        ("GET", "/api/v1/models/{model_id}/optimized-config/{device_type}"),
    ] {
        router.add(&OCTOMIL, method, pattern, versions::not_a_registry_feature);
    }
    formats::routes(router);
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
        Error::Unavailable(_) => (503, "service_unavailable"),
        Error::Internal(_) => (500, "internal_error"),
    };
    Response::json(status, &json!({"error": code, "message": error.message()}))
}

/// Formats a client may ask a download in (seed 004 lists converted ones;
/// a version's own format always serves its original).
const DOWNLOAD_FORMATS: [&str; 10] =
    ["original", "pytorch", "tensorflow", "onnx", "sklearn", "xgboost", "safetensors", "gguf", "tflite", "coreml"];

/// The model a `{model_id}` names: by id, or else by name.
pub(super) fn resolve_model(registry: &Registry, who: &Principal, handle: &str) -> Result<Model> {
    if handle.is_empty() || handle.chars().count() > 255 {
        return Err(Error::invalid("model_id", "must be a model's id or name"));
    }
    registry.resolve_model(who, handle)
}

fn list_models(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let limit = query_int(req, "limit", 20, 1, 100)?;
    let offset = query_int(req, "offset", 0, 0, i64::MAX)?;
    let page = list_page(ctx.registry, req.who()?, limit, offset, &ListFilters::from_query(req)?)?;
    // serialized straight from the rows: building a `Value` tree first (a
    // map per model) cost as much as the queries
    let body = serde_json::to_vec(&page.view()).map_err(|e| Error::Internal(format!("rendering the list failed: {e}")))?;
    Ok(Response::bytes(200, "application/json", body))
}

/// What `GET /api/v1/models` may filter on: seed 004's `framework` and
/// `is_baseline`, and modelreg's tags (`tag=KEY:VALUE`, repeatable) and
/// name search (`q`), as in modelreg's own model search.
#[derive(Default)]
pub(crate) struct ListFilters {
    pub framework: Option<String>,
    pub is_baseline: Option<bool>,
    pub tags: Vec<TagFilter>,
    pub search: Option<String>,
}

impl ListFilters {
    fn from_query(req: &Request) -> Result<ListFilters> {
        Ok(ListFilters {
            framework: req.query("framework").map(str::to_string),
            is_baseline: query_bool(req, "is_baseline")?,
            tags: crate::api::modelreg_models::tag_filters(req)?,
            search: req.query("q").filter(|q| !q.is_empty()).map(str::to_string),
        })
    }
}

/// `GET /api/v1/models` as JSON; the CLI's `models list` shares it.
pub(crate) fn list_body(registry: &Registry, who: &Principal, limit: i64, offset: i64, filters: &ListFilters) -> Result<Value> {
    let page = list_page(registry, who, limit, offset, filters)?;
    serde_json::to_value(page.view()).map_err(|e| Error::Internal(format!("rendering the list failed: {e}")))
}

/// One page of `GET /api/v1/models`, before rendering.
struct ListPage {
    listed: crate::registry::ModelsPage,
    limit: i64,
    offset: i64,
}

impl ListPage {
    fn view(&self) -> ListView<'_> {
        ListView {
            limit: self.limit,
            models: self.listed.page.items.iter().zip(&self.listed.latest).map(|(m, v)| ModelView::new(m, v.as_ref())).collect(),
            offset: self.offset,
            total: self.listed.page.total.unwrap_or(0),
        }
    }
}

/// The list's JSON. Fields in alphabetical order, as a `Value` map prints
/// them, so the bytes are what `json!` made before.
#[derive(serde::Serialize)]
struct ListView<'a> {
    limit: i64,
    models: Vec<ModelView<'a>>,
    offset: i64,
    total: u64,
}

fn list_page(registry: &Registry, who: &Principal, limit: i64, offset: i64, filters: &ListFilters) -> Result<ListPage> {
    // The route checked these already; the CLI passes its flags unchecked.
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid("limit", format!("must be an integer from 1 to 100, got {limit}")));
    }
    if offset < 0 {
        return Err(Error::invalid("offset", format!("must be 0 or more, got {offset}")));
    }
    let mut query = ModelQuery::newest_first(PageRequest::Offset { offset: offset as u64, limit: limit as u64 });
    query.count_total = true;
    if let Some(framework) = &filters.framework {
        check_framework(framework)?;
        // The registry's rule, as each model is rendered: its own, else its weights'.
        query.framework = Some(framework.clone());
    }
    if let Some(baseline) = filters.is_baseline {
        query.attr_equals.push(("is_baseline".into(), json!(baseline)));
    }
    query.tags = filters.tags.clone();
    query.search = filters.search.clone();
    // one read transaction, the access rule applied once in the page query
    let listed = registry.list_models_with_latest(who, &query, false)?;
    Ok(ListPage { listed, limit, offset })
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
    // Create-or-get by name: the Octomil SDK resolves models by name, so two
    // models of one name would be ambiguous to it, and its `ensure_model`
    // looks for the name on the first page of the list only (20 models)
    // before it POSTs. See docs/octomil.md.
    let (model, created) = ctx.registry.create_or_get_model(req.who()?, new)?;
    let latest = if created { None } else { ctx.registry.latest_version(req.who()?, &model.id)? };
    Ok(Response::json(if created { 201 } else { 200 }, &render_model(&model, latest.as_ref())))
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

fn get_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let model = resolve_model(ctx.registry, req.who()?, req.param("model_id"))?;
    Ok(Response::json(200, &model_detail(ctx.registry, &formats::settings(ctx), req.who()?, &model.id)?))
}

/// The SDK's `update_model`: name, description and the Octomil fields.
/// A name another model of the team has is a 409.
fn update_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = resolve_model(ctx.registry, &who, req.param("model_id"))?;
    let body = req.json_object()?;
    let mut patch = crate::registry::ModelPatch::default();
    if let Some(name) = opt_string(&body, "name")? {
        if name.trim().is_empty() || name.chars().count() > MAX_MODEL_NAME {
            return Err(Error::invalid("name", format!("must be 1 to {MAX_MODEL_NAME} characters")));
        }
        if name != model.name && !ctx.registry.models_named(&who, &name)?.is_empty() {
            return Err(Error::Conflict(format!("a model named {name:?} already exists")));
        }
        patch.name = Some(name);
    }
    if body.contains_key("description") {
        let description = opt_string(&body, "description")?;
        check_description(description.as_deref())?;
        patch.description = Some(description);
    }
    if let Some(framework) = opt_string(&body, "framework")? {
        check_framework(&framework)?;
        patch.attrs.insert("framework".into(), json!(framework));
    }
    for field in ["framework_version", "round_id", "use_case"] {
        if body.contains_key(field) {
            patch.attrs.insert(field.into(), opt_string(&body, field)?.map(Value::from).unwrap_or(Value::Null));
        }
    }
    for field in ["accuracy", "loss"] {
        if body.contains_key(field) {
            patch.attrs.insert(field.into(), opt_number(&body, field)?.map(|n| json!(n)).unwrap_or(Value::Null));
        }
    }
    if let Some(baseline) = opt_bool(&body, "is_baseline")? {
        patch.attrs.insert("is_baseline".into(), json!(baseline));
    }
    ctx.registry.update_model(&who, &model.id, |_| Ok(patch))?;
    Ok(Response::json(200, &model_detail(ctx.registry, &formats::settings(ctx), &who, &model.id)?))
}

/// A model with its whole version history and its aliases (`{"champion":
/// 3}`: a field the seed does not have, which the SDK ignores); `settings`
/// say which conversions this process serves.
pub(crate) fn model_detail(registry: &Registry, settings: &Settings, who: &Principal, id: &str) -> Result<Value> {
    let model = registry.get_model(who, id)?;
    let versions = registry.list_versions(who, id)?;
    let mut body = render_model(&model, versions.last());
    body["aliases"] = json!(registry.model_aliases(who, id)?);
    body["tags"] = json!(registry.model_tags(who, id)?);
    let mut version_tags = registry.version_tags_of_model(who, id)?;
    let mut summaries = Vec::with_capacity(versions.len());
    for v in &versions {
        let mut summary = render_version(&model.id, v);
        formats::add_fields(registry, settings, v, &mut summary)?;
        summary["tags"] = json!(version_tags.remove(&v.id).unwrap_or_default());
        summary["lineage"] = registry.lineage_view(who, v)?;
        summaries.push(summary);
    }
    body["versions"] = Value::Array(summaries);
    Ok(body)
}

fn delete_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let model = resolve_model(ctx.registry, req.who()?, req.param("model_id"))?;
    ctx.registry.delete_model(req.who()?, &model.id)?;
    Ok(Response::json(200, &json!({"id": model.id, "deleted": true})))
}

fn upload_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    // Answer 404 (or 403, 409) before reading a possibly huge body for nothing.
    let id = resolve_model(ctx.registry, &who, req.param("model_id"))?.id;
    ctx.registry.check_can_add_version(&who, &id)?;
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
    let body = commit_upload(ctx.registry, &who, &id, &filename, digest, format, description, None)?;
    drop(guard);
    formats::after_upload(ctx, &who, &id, body["version"].as_i64());
    Ok(Response::json(201, &body))
}

/// Records an uploaded file as the model's next version (see
/// `Registry::commit_weights`) and renders it. Shared with the CLI.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_upload(
    registry: &Registry,
    who: &Principal,
    model_id: &str,
    filename: &str,
    digest: Digest,
    format: Option<String>,
    description: Option<String>,
    label: Option<String>,
) -> Result<Value> {
    let version = registry.commit_weights(who, model_id, filename, digest, format.as_deref(), description, label)?;
    Ok(render_version(model_id, &version))
}

fn download_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = resolve_model(ctx.registry, &who, req.param("model_id"))?;
    let version = ctx.registry.find_version(&who, &model.id, &version_param(req)?)?;
    let wanted = download_format_param(req)?;
    download_response(ctx, req, &who, &version, &wanted)
}

/// What a route's `{version}` names, a version handle: a positive number,
/// a label the client gave a version, an alias (`@champion`) or `latest`.
/// The registry resolves it (`Registry::find_version`); an unknown alias is
/// a 404 in this dialect's body.
pub(super) fn version_param(req: &Request) -> Result<crate::registry::VersionRef> {
    let text = req.param("version");
    match crate::registry::VersionRef::parse(text) {
        crate::registry::VersionRef::Number(n) if n < 1 => {
            Err(Error::invalid("version", format!("must be a positive number, a label, @alias or latest, got {text:?}")))
        }
        by => Ok(by),
    }
}

/// The number of the version a route's `{version}` handle names.
pub(super) fn version_number(registry: &Registry, who: &Principal, model_id: &str, req: &Request) -> Result<i64> {
    match version_param(req)? {
        crate::registry::VersionRef::Number(n) => Ok(n),
        label => Ok(registry.find_version(who, model_id, &label)?.number),
    }
}

/// `?format=`: one seed 004 names, `original` when absent.
pub(super) fn download_format_param(req: &Request) -> Result<String> {
    let wanted = req.query("format").filter(|f| !f.is_empty()).unwrap_or("original").to_string();
    if !DOWNLOAD_FORMATS.contains(&wanted.as_str()) {
        return Err(Error::invalid("format", format!("must be one of {}, got {wanted:?}", DOWNLOAD_FORMATS.join(", "))));
    }
    Ok(wanted)
}

/// The bytes of one version in one format, for the download route and the
/// signed download URL alike.
/// The one stored file a download of `wanted` sends as it is, if that is
/// what it sends (not a conversion, not a folder of many files).
pub(super) fn stored_single_file<'v>(version: &'v Version, wanted: &str) -> Option<&'v crate::registry::catalogue::models::VersionFile> {
    match version.files.as_slice() {
        [file] if wanted == "original" || wanted == version_format(version) => Some(file),
        _ => None,
    }
}

pub(super) fn download_response(ctx: &Ctx, req: &Request, who: &Principal, version: &Version, wanted: &str) -> Result<Response> {
    let stored = version_format(version);
    if wanted != "original" && wanted != stored {
        return formats::download(ctx, req, who, version, wanted);
    }
    // A version made through DataRobot can hold many files (or none);
    // Octomil's download serves exactly one.
    let [file] = version.files.as_slice() else {
        return Err(Error::NotFound(format!(
            "version {} holds {} files, not one weights file; download it through the DataRobot routes",
            version.number,
            version.files.len()
        )));
    };
    let response = req.file_answer(FileToSend {
        file: ctx.registry.open_blob(&file.sha256)?,
        size: file.size,
        sha256: file.sha256.clone(),
        content_type: "application/octet-stream".into(),
    });
    Ok(response
        .with_header("Content-Disposition", format!("attachment; filename=\"{}\"", download_file_name(version)))
        .with_header("X-Model-Hash", file.sha256.clone()))
}

fn model_path(model_id: &str, version: &Version) -> String {
    let file = match version.files.as_slice() {
        [file] => file.path.as_str(),
        _ => "",
    };
    format!("modelreg://{model_id}/v{}/{file}", version.number)
}

/// A version as the Octomil routes show it. Path, size and hash always
/// describe the same thing: the one file of a single-file version, or the
/// whole folder of a DataRobot version of many files (which has no one
/// hash, so `model_hash` is null).
pub(super) fn render_version(model_id: &str, v: &Version) -> Value {
    json!({
        "model_id": model_id,
        "version": v.number,
        "version_label": v.label,
        "status": v.status.as_str(),
        "format": version_format(v),
        "model_path": model_path(model_id, v),
        "model_size_bytes": v.total_size(),
        "model_hash": version_hash(v),
        "file_count": v.files.len(),
        "description": v.description,
        "metrics": v.metrics,
        // modelreg's: what its weights files' headers say, by path.
        "weight_facts": v.attrs.get(WEIGHT_FACTS).cloned().unwrap_or_else(|| json!({})),
        "uploaded_at": v.created_at,
    })
}

fn version_hash(v: &Version) -> Option<String> {
    match v.files.as_slice() {
        [file] => Some(format!("sha256:{}", file.sha256)),
        _ => None,
    }
}

fn render_model(model: &Model, latest: Option<&Version>) -> Value {
    serde_json::to_value(ModelView::new(model, latest)).unwrap_or(Value::Null)
}

/// A model as the Octomil dialect shows it. Fields in alphabetical order, as
/// a `Value` map prints them; attributes are borrowed, not cloned.
#[derive(serde::Serialize)]
struct ModelView<'a> {
    accuracy: &'a Value,
    created_at: &'a str,
    description: &'a Option<String>,
    framework: Value,
    framework_version: &'a Value,
    id: &'a str,
    is_baseline: bool,
    loss: &'a Value,
    model_hash: Option<String>,
    model_path: Option<String>,
    model_size_bytes: Option<u64>,
    name: &'a str,
    round_id: &'a Value,
}

static NULL: Value = Value::Null;

impl<'a> ModelView<'a> {
    fn new(model: &'a Model, latest: Option<&Version>) -> ModelView<'a> {
        let attr = |key: &str| model.attrs.get(key).unwrap_or(&NULL);
        ModelView {
            accuracy: attr("accuracy"),
            created_at: &model.created_at,
            description: &model.description,
            // A model made through another door has no framework of its own:
            // its latest version's weights stand in when they imply one.
            framework: model.framework(latest).map(Value::from).unwrap_or(Value::Null),
            framework_version: attr("framework_version"),
            id: &model.id,
            is_baseline: model.attrs.get("is_baseline").and_then(Value::as_bool).unwrap_or(false),
            loss: attr("loss"),
            model_hash: latest.and_then(version_hash),
            model_path: latest.map(|v| model_path(&model.id, v)),
            model_size_bytes: latest.map(Version::total_size),
            name: &model.name,
            round_id: attr("round_id"),
        }
    }
}
