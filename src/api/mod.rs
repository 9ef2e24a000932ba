//! The front doors. Each dialect module parses its service's requests, calls
//! the registry, and renders its service's JSON and error bodies. Adapters
//! never touch SQL or the blob directory: everything goes through
//! `crate::registry`.

pub mod admin;
pub mod datarobot;
pub mod octomil;
pub mod paperspace;

use serde_json::{json, Value};

use crate::http::{Ctx, Dialect, Request, Response, Router};
use crate::registry::{Error, Result};

/// Answers paths outside every dialect (and /healthz).
pub static GENERIC: Dialect = Dialect { name: "modelreg", prefix: "/", render_error: render_generic_error, trailing_slash_optional: false };

pub(crate) fn render_generic_error(error: &Error) -> Response {
    let (status, code) = match error {
        Error::NotFound(_) | Error::NoRoute(_) => (404, "not_found"),
        Error::Conflict(_) => (409, "conflict"),
        Error::Invalid { .. } => (400, "bad_request"),
        Error::Forbidden(_) => (403, "forbidden"),
        Error::TooLarge(_) => (413, "payload_too_large"),
        Error::Unauthorized(_) => (401, "unauthorized"),
        Error::RateLimited { .. } => (429, "rate_limited"),
        Error::MethodNotAllowed { .. } => (405, "method_not_allowed"),
        Error::Unprocessable { .. } => (422, "unprocessable"),
        Error::InsufficientStorage(_) => (507, "insufficient_storage"),
        Error::Internal(_) => (500, "internal_error"),
    };
    Response::json(status, &json!({"error": code, "message": error.message()}))
}

/// Every route modelreg serves.
pub fn router() -> Router {
    let mut router = Router::new(&GENERIC);
    router.add_public(&GENERIC, "GET", "/healthz", healthz);
    octomil::routes(&mut router);
    paperspace::routes(&mut router);
    datarobot::routes(&mut router);
    crate::ui::routes(&mut router);
    admin::routes(&mut router);
    router
}

fn healthz(_: &Ctx, _: &mut Request) -> Result<Response> {
    Ok(Response::json(200, &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})))
}

/// Parses an integer query parameter within `min..=max`.
pub fn query_int(req: &Request, name: &str, default: i64, min: i64, max: i64) -> Result<i64> {
    let Some(text) = req.query(name) else { return Ok(default) };
    match text.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::invalid(name, format!("must be an integer from {min} to {max}, got {text:?}"))),
    }
}

/// Parses a boolean query parameter: true/false in any case, or 1/0.
pub fn query_bool(req: &Request, name: &str) -> Result<Option<bool>> {
    let Some(text) = req.query(name) else { return Ok(None) };
    parse_bool(text).map(Some).ok_or_else(|| Error::invalid(name, format!("must be true or false, got {text:?}")))
}

/// true/false in any case, or 1/0 (Octomil and Paperspace query and body
/// text).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// An optional string field of a JSON object: absent or null is None,
/// anything but a string is a 400 naming the field.
pub fn opt_string(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(field, "must be a string")),
    }
}

/// An optional boolean field of a JSON object.
pub fn opt_bool(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(field, "must be true or false")),
    }
}

/// true or false in any case, nothing else (DataRobot's enum `false, False,
/// true, True`); anything else is an error naming `field`.
pub fn parse_true_false(field: &str, text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid(field, format!("must be true or false, got {text:?}"))),
    }
}

/// A query parameter parsed by `parse_true_false`.
pub fn query_true_false(req: &Request, name: &str) -> Result<Option<bool>> {
    req.query(name).map(|t| parse_true_false(name, t)).transpose()
}

/// An optional boolean field that may also come as the text "true" or
/// "false" (multipart fields, clients that stringify).
pub fn opt_bool_or_text(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => parse_true_false(field, s).map(Some),
        Some(_) => Err(Error::invalid(field, "must be true or false")),
    }
}

/// An optional integer field within `min..=max`, given as a number or as
/// its decimal text.
pub fn opt_int_or_text(body: &serde_json::Map<String, Value>, field: &str, min: i64, max: i64) -> Result<Option<i64>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Error::invalid(field, format!("must be an integer from {min} to {max}"))),
        },
    }
}

/// An optional number field of a JSON object.
pub fn opt_number(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<f64>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(Error::invalid(field, "must be a number")),
    }
}

/// Ids are UUIDs; anything else cannot name a row, and the dialects that
/// document UUIDs answer 400 for it.
pub fn is_uuid(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok()
}
