//! Converted formats of Octomil versions (seed 004's `format` query:
//! "requests a converted artifact (ONNX, TFLite, CoreML)"). The download
//! route's branch for a format other than the stored one lands here, and so
//! do modelreg's own routes under `…/versions/{version}/formats`:
//!
//! - `GET …/formats`: every format of the version and its state;
//! - `GET …/formats/{format}`: one, with the conversion's log;
//! - `POST …/formats/{format}` (optional JSON `{"input_shape": [1, 3, 224, 224]}`,
//!   which a TorchScript export needs): asks for the conversion, and asks
//!   again after a failure.
//!
//! Until an artifact is ready, the download is a 404 in Octomil's error body
//! (`{"error": "not_found", message}`, the seed's code for every 404) whose
//! message says whether the conversion is queued, running, failed (with the
//! reason), impossible (and why), or needs a runtime option or an input
//! shape, and what to do. Never the body `{"detail":"Not Found"}`: the
//! Octomil SDK retries that one as a cold start. A format the operator
//! turned off (`--no-coreml`) is a 403 (`forbidden`) saying so, to a
//! download and a POST alike. A served artifact says whether it was
//! verified against the original: `X-Modelreg-Verified: true` (ONNX,
//! TFLite) or `false` (Core ML), and `verified` in every JSON that shows
//! it. The conversions themselves are `crate::compute::formats`.

use serde_json::{json, Map, Value};

use super::OCTOMIL;
use crate::compute::formats::{self as convert, Need, Plan};
use crate::compute::jobs::Settings;
use crate::http::{Ctx, FileToSend, Request, Response, Router};
use crate::registry::compute::formats::{FormatArtifact, Retry};
use crate::registry::{Error, Principal, Registry, Result, Version};

pub fn routes(router: &mut Router) {
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions/{version}/formats", list_formats);
    router.add(&OCTOMIL, "GET", "/api/v1/models/{model_id}/versions/{version}/formats/{format}", get_format);
    router.add(&OCTOMIL, "POST", "/api/v1/models/{model_id}/versions/{version}/formats/{format}", request_format);
}

/// Where a format of a version stands.
#[derive(Debug)]
pub(crate) enum Availability {
    /// The version is stored in it.
    Original,
    Ready(FormatArtifact),
    /// Queued or running.
    Pending(FormatArtifact),
    Failed(FormatArtifact),
    Impossible(String),
    /// This server's runtime lacks the converter; says which option brings it.
    NotInstalled(String),
    /// A TorchScript export needs an input shape nobody gave yet.
    NeedsShape,
    /// Convertible here, not asked for yet.
    NotRequested,
    /// The operator turned the format off here; says so.
    TurnedOff(String),
}

impl Availability {
    fn state(&self) -> &str {
        match self {
            Availability::Original => "original",
            Availability::Ready(_) => "ready",
            Availability::Pending(row) => row.state.as_str(),
            Availability::Failed(_) => "failed",
            Availability::Impossible(_) => "impossible",
            Availability::NotInstalled(_) => "not_installed",
            Availability::NeedsShape => "input_shape_required",
            Availability::NotRequested => "not_requested",
            Availability::TurnedOff(_) => "disabled",
        }
    }
}

pub(crate) fn settings<'a>(ctx: &Ctx<'a>) -> Settings<'a> {
    ctx.options.jobs.compute()
}

/// The settings the offline CLI converts under: its own runtime (`python`,
/// else the managed one), every format allowed (its user is the operator).
pub(crate) fn offline_settings<'a>(registry: &'a Registry, python: Option<&'a std::path::Path>) -> Settings<'a> {
    Settings { data_dir: registry.data_dir(), python, image_builder: None, runs_jobs: true, coreml: true }
}

/// Whether the runtime that will convert has the converters `needs` names
/// (see `convert::check_installed`).
fn converters_installed(settings: &Settings, needs: &[Need], version: &Version, format: &str) -> std::result::Result<(), String> {
    let from = convert::source_format(version);
    convert::check_installed(settings, needs, &format!("{from} into {format}"))
}

fn row_availability(row: FormatArtifact) -> Availability {
    match row.state.as_str() {
        "ready" => Availability::Ready(row),
        "failed" => Availability::Failed(row),
        _ => Availability::Pending(row),
    }
}

/// What it takes to make `format` of `version` here: the packages, or
/// where it stands without a conversion (the original, impossible, or
/// turned off, which covers an artifact made before it was).
fn plan_here(registry: &Registry, settings: &Settings, version: &Version, format: &str) -> std::result::Result<&'static [Need], Box<Availability>> {
    match convert::plan(registry, version, format) {
        Plan::Original => Err(Box::new(Availability::Original)),
        Plan::Impossible(reason) => Err(Box::new(Availability::Impossible(reason))),
        Plan::Convert { needs, .. } => match convert::turned_off(settings, format) {
            Some(refusal) => Err(Box::new(Availability::TurnedOff(refusal))),
            None => Ok(needs),
        },
    }
}

/// Where `format` of `version` stands, asking for nothing.
pub(crate) fn availability(registry: &Registry, settings: &Settings, version: &Version, format: &str) -> Result<Availability> {
    let needs = match plan_here(registry, settings, version, format) {
        Ok(needs) => needs,
        Err(availability) => return Ok(*availability),
    };
    if let Some(row) = registry.format_artifact(version, format)? {
        return Ok(row_availability(row));
    }
    if let Err(reason) = converters_installed(settings, needs, version, format) {
        return Ok(Availability::NotInstalled(reason));
    }
    Ok(if convert::needs_input_shape(needs) { Availability::NeedsShape } else { Availability::NotRequested })
}

/// Asks for `format` of `version`: queues its conversion when it is
/// possible here and not yet asked for (or failed, on an explicit `retry`).
/// The route's, the download's and the CLI's one way in.
pub(crate) fn request(
    registry: &Registry,
    settings: &Settings,
    who: &Principal,
    version: &Version,
    format: &str,
    input_shape: Option<&[i64]>,
    retry: Retry,
) -> Result<Availability> {
    let needs = match plan_here(registry, settings, version, format) {
        Ok(needs) => needs,
        Err(availability) => return Ok(*availability),
    };
    let existing = registry.format_artifact(version, format)?;
    if let Some(row) = &existing {
        if !(retry == Retry::Failed && row.state == "failed") {
            return Ok(row_availability(row.clone()));
        }
    }
    let has_shape = input_shape.is_some() || existing.as_ref().is_some_and(|r| r.input_shape.is_some());
    if convert::needs_input_shape(needs) && !has_shape {
        return Ok(Availability::NeedsShape);
    }
    if let Err(reason) = converters_installed(settings, needs, version, format) {
        return Ok(Availability::NotInstalled(reason));
    }
    let (row, job) = registry.request_format(who, version, format, input_shape, retry)?;
    if job.is_some() {
        crate::jobs::wake();
    }
    Ok(row_availability(row))
}

/// After an upload: queue the ONNX conversion when the server converts on
/// upload and the runtime can. Never fails the upload (it is stored).
pub(super) fn after_upload(ctx: &Ctx, who: &Principal, model_id: &str, number: Option<i64>) {
    if !ctx.options.convert_on_upload {
        return;
    }
    let Some(number) = number else { return };
    let Ok(version) = ctx.registry.get_version(who, model_id, number) else { return };
    if !matches!(convert::plan(ctx.registry, &version, "onnx"), Plan::Convert { needs: [Need::Converters], .. }) {
        return;
    }
    // Without the converters this is a quiet no-op: the download says
    // which option would enable the conversion.
    if let Err(e) = request(ctx.registry, &settings(ctx), who, &version, "onnx", None, Retry::Never) {
        eprintln!("modelreg: queueing the ONNX conversion of model {model_id} version {number} failed: {e}");
    }
}

/// The model (by id or name) and version (by number or label) a route names.
fn model_and_number(ctx: &Ctx, req: &Request) -> Result<(String, i64)> {
    let who = req.who()?;
    let model = super::resolve_model(ctx.registry, who, req.param("model_id"))?;
    let number = super::version_number(ctx.registry, who, &model.id, req)?;
    Ok((model.id, number))
}

fn format_param(req: &Request) -> Result<String> {
    let format = req.param("format").to_ascii_lowercase();
    if !convert::TARGETS.contains(&format.as_str()) && !crate::registry::catalogue::weights::FORMATS.contains(&format.as_str()) {
        return Err(Error::invalid(
            "format",
            format!("must be one of {}, {}, got {format:?}", crate::registry::catalogue::weights::FORMATS.join(", "), convert::TARGETS.join(", ")),
        ));
    }
    Ok(format)
}

/// Octomil's 404 for a format that cannot be downloaded yet (or ever): the
/// seed's error table has one code for a 404, so the message carries the
/// state (`GET …/formats/{format}` has it as a field). A format the
/// operator turned off is a refusal, not an absence: 403.
fn not_available(version: &Version, format: &str, availability: &Availability) -> Result<Response> {
    if let Availability::TurnedOff(refusal) = availability {
        return Err(Error::Forbidden(refusal.clone()));
    }
    Ok(Response::json(404, &json!({"error": "not_found", "message": why(version, format, availability)})))
}

/// Why a format cannot be downloaded now, and what to do about it.
fn why(version: &Version, format: &str, availability: &Availability) -> String {
    let n = version.number;
    let from = convert::source_format(version);
    let status_path = format!("/api/v1/models/{}/versions/{n}/formats/{format}", version.model_id);
    match availability {
        Availability::Pending(row) if row.state == "running" => {
            format!("the {format} conversion of version {n} ({from}) is running; try again shortly (its progress: GET {status_path})")
        }
        Availability::Pending(_) => {
            format!("the {format} conversion of version {n} ({from}) is queued; try again shortly (its progress: GET {status_path})")
        }
        Availability::Failed(row) => format!(
            "the {format} conversion of version {n} ({from}) failed: {}. Its log: GET {status_path}; to try again: POST {status_path}",
            row.reason.as_deref().unwrap_or("no reason was recorded")
        ),
        Availability::Impossible(reason) => format!("version {n} ({from}) cannot be converted into {format}: {reason}"),
        Availability::TurnedOff(refusal) => refusal.clone(),
        Availability::NotInstalled(reason) => format!("no {format} artifact exists for version {n}: {reason}"),
        Availability::NeedsShape => format!(
            "version {n} is TorchScript, and exporting it to {format} needs its input shape: POST {status_path} with \
             {{\"input_shape\": [1, 3, 224, 224]}} (its real shape), or run `modelreg versions convert {} {n} --to {format} --input-shape …`",
            version.model_id
        ),
        // Not reached from a download (it asks); kept honest for callers.
        Availability::NotRequested | Availability::Ready(_) | Availability::Original => {
            format!("no {format} artifact exists for version {n} yet: POST {status_path} to make one")
        }
    }
}

/// The download of a format other than the stored one: the artifact when
/// ready, else the 404 saying why (and the conversion queued, if it can be).
pub(super) fn download(ctx: &Ctx, req: &Request, who: &Principal, version: &Version, format: &str) -> Result<Response> {
    if version.files.len() != 1 {
        return Err(Error::NotFound(format!(
            "version {} holds {} files, not one weights file; it cannot be converted",
            version.number,
            version.files.len()
        )));
    }
    let availability = request(ctx.registry, &settings(ctx), who, version, format, None, Retry::Never)?;
    let Availability::Ready(row) = &availability else {
        return not_available(version, format, &availability);
    };
    let artifact = row.artifact.as_ref().ok_or_else(|| Error::Internal(format!("the {format} artifact is ready but has no file")))?;
    let response = req.file_answer(FileToSend {
        file: ctx.registry.open_blob(&artifact.sha256)?,
        size: artifact.size,
        sha256: artifact.sha256.clone(),
        content_type: "application/octet-stream".into(),
    });
    Ok(response
        .with_header("Content-Disposition", format!("attachment; filename=\"{}\"", convert::file_name(version.number, format)))
        .with_header("X-Model-Hash", artifact.sha256.clone())
        .with_header(VERIFIED_HEADER, row.verified().unwrap_or(false).to_string()))
}

/// On the download of a converted artifact: `true` when it was run against
/// the original and agreed (ONNX, TFLite), `false` when it could not be
/// (Core ML). Absent on an original's download, which is not a conversion.
pub(crate) const VERIFIED_HEADER: &str = "X-Modelreg-Verified";

/// One format's state as JSON; `log` is the conversion's (tail).
pub(crate) fn render(version: &Version, format: &str, availability: &Availability, log: Option<&str>) -> Value {
    let mut body = json!({
        "version": version.number,
        "format": format,
        "source_format": convert::source_format(version),
        "state": availability.state(),
    });
    let reason = match availability {
        Availability::Failed(row) => row.reason.clone(),
        Availability::Impossible(r) | Availability::NotInstalled(r) | Availability::TurnedOff(r) => Some(r.clone()),
        Availability::NeedsShape => Some("a TorchScript export needs the model's input shape (input_shape)".into()),
        _ => None,
    };
    body["reason"] = json!(reason);
    match availability {
        Availability::Original => {
            if let Some(file) = version.files.first() {
                body["model_hash"] = json!(format!("sha256:{}", file.sha256));
                body["model_size_bytes"] = json!(file.size);
            }
        }
        Availability::Ready(row) | Availability::Pending(row) | Availability::Failed(row) => {
            body["model_hash"] = json!(row.artifact.as_ref().map(|a| format!("sha256:{}", a.sha256)));
            body["model_size_bytes"] = json!(row.artifact.as_ref().map(|a| a.size));
            body["verified"] = json!(row.verified());
            body["unverified_reason"] = json!(row.unverified_reason());
            body["provenance"] = row.provenance.clone();
            body["input_shape"] = json!(row.input_shape);
            body["requested_at"] = json!(row.created_at);
            body["finished_at"] = json!(row.finished_at);
        }
        _ => {}
    }
    if let Some(log) = log {
        body["log"] = json!(log);
    }
    body
}

fn log_of(registry: &Registry, availability: &Availability) -> Result<Option<String>> {
    match availability {
        Availability::Ready(row) | Availability::Pending(row) | Availability::Failed(row) => {
            let log = registry.job_log(&row.job_id)?;
            Ok(Some(convert::log_tail(&log, 256 * 1024).to_string()))
        }
        _ => Ok(None),
    }
}

/// `GET …/formats/{format}` as JSON; the CLI's offline path shares it.
pub(crate) fn status_body(registry: &Registry, settings: &Settings, who: &Principal, model_id: &str, number: i64, format: &str) -> Result<Value> {
    let version = registry.get_version(who, model_id, number)?;
    let availability = availability(registry, settings, &version, format)?;
    let log = log_of(registry, &availability)?;
    Ok(render(&version, format, &availability, log.as_deref()))
}

/// `POST …/formats/{format}` as JSON; the CLI's offline path shares it.
pub(crate) fn request_body(
    registry: &Registry,
    settings: &Settings,
    who: &Principal,
    model_id: &str,
    number: i64,
    format: &str,
    input_shape: Option<&[i64]>,
) -> Result<(Value, Option<String>)> {
    let version = registry.get_version(who, model_id, number)?;
    let availability = request(registry, settings, who, &version, format, input_shape, Retry::Failed)?;
    match &availability {
        Availability::TurnedOff(refusal) => return Err(Error::Forbidden(refusal.clone())),
        Availability::Impossible(_) | Availability::NotInstalled(_) | Availability::NeedsShape => {
            return Err(Error::unprocessable(why(&version, format, &availability)));
        }
        _ => {}
    }
    let row_id = match &availability {
        Availability::Pending(row) => Some(row.id.clone()),
        _ => None,
    };
    Ok((render(&version, format, &availability, None), row_id))
}

/// The `available_formats` (downloadable now: the stored one, then every
/// ready conversion not turned off) and `format_conversions` (every
/// conversion asked for, by format, with whether it was verified) fields of
/// a version in the model GET.
pub(super) fn add_fields(registry: &Registry, settings: &Settings, version: &Version, summary: &mut Value) -> Result<()> {
    let mut available = vec![json!(convert::source_format(version))];
    let mut conversions = Map::new();
    for row in registry.format_artifacts(version)? {
        let refusal = convert::turned_off(settings, &row.format);
        if row.is_ready() && refusal.is_none() {
            available.push(json!(row.format));
        }
        let (state, reason) = match refusal {
            Some(refusal) => ("disabled", Some(refusal)),
            None => (row.state.as_str(), row.reason.clone()),
        };
        conversions.insert(
            row.format.clone(),
            json!({
                "state": state,
                "reason": reason,
                "verified": row.verified(),
                "unverified_reason": row.unverified_reason(),
                "model_hash": row.artifact.as_ref().map(|a| format!("sha256:{}", a.sha256)),
                "model_size_bytes": row.artifact.as_ref().map(|a| a.size),
            }),
        );
    }
    summary["available_formats"] = Value::Array(available);
    summary["format_conversions"] = Value::Object(conversions);
    Ok(())
}

fn list_formats(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (id, number) = model_and_number(ctx, req)?;
    let version = ctx.registry.get_version(req.who()?, &id, number)?;
    let settings = settings(ctx);
    let mut formats = vec![render(&version, &convert::source_format(&version), &Availability::Original, None)];
    for target in convert::TARGETS {
        if target != convert::source_format(&version) {
            formats.push(render(&version, target, &availability(ctx.registry, &settings, &version, target)?, None));
        }
    }
    Ok(Response::json(200, &json!({"model_id": id, "version": number, "formats": formats})))
}

fn get_format(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (id, number) = model_and_number(ctx, req)?;
    let format = format_param(req)?;
    Ok(Response::json(200, &status_body(ctx.registry, &settings(ctx), req.who()?, &id, number, &format)?))
}

fn request_format(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (id, number) = model_and_number(ctx, req)?;
    let format = format_param(req)?;
    let body = if req.header("Content-Length").is_some_and(|l| l.trim() != "0") { req.json_object()? } else { Map::new() };
    let shape = match body.get("input_shape") {
        None | Some(Value::Null) => None,
        Some(Value::Array(dims)) => {
            let text = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
            Some(convert::parse_shape(&text).map_err(|e| Error::invalid("input_shape", e))?)
        }
        Some(_) => return Err(Error::invalid("input_shape", "must be an array of positive integers, e.g. [1, 3, 224, 224]")),
    };
    let (body, pending) = request_body(ctx.registry, &settings(ctx), req.who()?, &id, number, &format, shape.as_deref())?;
    Ok(Response::json(if pending.is_some() { 202 } else { 200 }, &body))
}

/// The offline CLI's download of a converted format: it asks for the
/// conversion and, when that queued it, runs it in this process before
/// answering (a server on the same data directory may have taken the job
/// first; then the answer is that it is running). None for the stored
/// format; NotFound with the download route's message otherwise. With the
/// file, whether it was verified.
pub(crate) fn offline_artifact(
    registry: &Registry,
    python: Option<&std::path::Path>,
    who: &Principal,
    model_id: &str,
    number: i64,
    format: &str,
) -> Result<Option<(Version, crate::registry::Digest, bool)>> {
    let settings = offline_settings(registry, python);
    let version = registry.get_version(who, model_id, number)?;
    let mut availability = request(registry, &settings, who, &version, format, None, Retry::Never)?;
    if let Availability::Pending(row) = &availability {
        let options = crate::jobs::JobSettings::offline(registry.data_dir(), python.map(std::path::Path::to_path_buf));
        crate::jobs::run_jobs_about(registry, &options, &row.id)?;
        availability = wait_for_verdict(registry, &settings, &version, format)?;
    }
    match availability {
        Availability::Original => Ok(None),
        Availability::Ready(row) => {
            let verified = row.verified().unwrap_or(false);
            let digest = row.artifact.ok_or_else(|| Error::Internal(format!("the {format} artifact is ready but has no file")))?;
            Ok(Some((version, digest, verified)))
        }
        other => Err(Error::NotFound(why(&version, format, &other))),
    }
}

/// The offline CLI's `versions convert`: asks (again, after a failure) and
/// runs the conversion here; answers the format's state with its log.
pub(crate) fn offline_convert(
    registry: &Registry,
    python: Option<&std::path::Path>,
    who: &Principal,
    model_id: &str,
    number: i64,
    format: &str,
    input_shape: Option<&[i64]>,
) -> Result<Value> {
    let settings = offline_settings(registry, python);
    let (_, pending) = request_body(registry, &settings, who, model_id, number, format, input_shape)?;
    if let Some(row_id) = pending {
        let options = crate::jobs::JobSettings::offline(registry.data_dir(), python.map(std::path::Path::to_path_buf));
        crate::jobs::run_jobs_about(registry, &options, &row_id)?;
        let version = registry.get_version(who, model_id, number)?;
        wait_for_verdict(registry, &settings, &version, format)?;
    }
    status_body(registry, &settings, who, model_id, number, format)
}

/// A server on the same data directory may have claimed the job before the
/// offline CLI could: then the CLI waits for its verdict.
fn wait_for_verdict(registry: &Registry, settings: &Settings, version: &Version, format: &str) -> Result<Availability> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40 * 60);
    loop {
        let availability = availability(registry, settings, version, format)?;
        if !matches!(availability, Availability::Pending(_)) || std::time::Instant::now() > deadline {
            return Ok(availability);
        }
        std::thread::sleep(crate::process::POLL);
    }
}
