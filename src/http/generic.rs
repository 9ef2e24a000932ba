//! modelreg's own door: the error body of every path no dialect owns (and
//! of the routes modelreg adds for itself), and `/healthz`.

use serde_json::json;

use super::{Ctx, Dialect, Request, Response};
use crate::registry::{Error, Result};

/// Answers paths outside every dialect (and /healthz).
pub static GENERIC: Dialect = Dialect { name: "modelreg", prefix: "/", render_error: render_generic_error, trailing_slash_optional: false, retry_resends_no_body: false };

pub fn render_generic_error(error: &Error) -> Response {
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
        Error::Unavailable(_) => (503, "service_unavailable"),
        Error::Internal(_) => (500, "internal_error"),
    };
    Response::json(status, &json!({"error": code, "message": error.message()}))
}

/// Whether this server can serve uploads and downloads now: its blob store
/// answers (one cheap request). For a balancer's health check; needs no key.
pub fn readyz(ctx: &Ctx, _: &mut Request) -> Result<Response> {
    let store = ctx.registry.ping_blob_store()?;
    Ok(Response::json(200, &json!({"status": "ready", "blob_store": store})))
}

/// Whether the process is up; needs no key.
pub fn healthz(_: &Ctx, _: &mut Request) -> Result<Response> {
    Ok(Response::json(200, &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})))
}

