//! DataRobot's REST dialect (seed 002), under `/api/v2/`: custom models,
//! their versions and execution environments, served so that the official
//! `datarobot` Python client works unchanged. /work/notes/datarobot-spec.md
//! (summarised in notes/datarobot.md) explains each wire choice.
//!
//! Every path ends in `/`, as the client sends them; the same path without
//! it reaches the same route, as other DataRobot callers send them. Errors are
//! `{"message", "errors"?}` with exactly `Content-Type: application/json`.

pub(crate) mod conversions;
pub(crate) mod datasets;
pub(crate) mod dependencies;
pub(crate) mod environments;
pub(crate) mod insights;
pub(crate) mod model_tests;
pub(crate) mod models;
pub(crate) mod repositories;
pub(crate) mod templates;
pub(crate) mod training;
pub(crate) mod versions;

use serde_json::{json, Map, Value};

pub(crate) use crate::http::params::query_true_false as query_bool;
pub(crate) use crate::http::response::attachment;
pub(crate) use crate::registry::fields::{opt_bool_or_text, opt_int_or_text, opt_str, opt_string_list, pairs_list};
use crate::http::request::percent_encode;
use crate::http::{Ctx, Dialect, Request, Response, Router};
use crate::registry::{Error, JobState, Result};

pub static DATAROBOT: Dialect = Dialect { name: "datarobot", prefix: "/api/v2/", render_error, trailing_slash_optional: true, retry_resends_no_body: true };

pub fn routes(router: &mut Router) {
    router.add(&DATAROBOT, "GET", "/api/v2/version/", version);
    router.add(&DATAROBOT, "GET", "/api/v2/status/{status_id}/", status);
    models::routes(router);
    // Before versions: `versions/withTrainingData/` would otherwise reach
    // `versions/{vid}/`, which also answers PATCH.
    training::routes(router);
    // Before versions too (`versions/fromRepository/`).
    repositories::routes(router);
    versions::routes(router);
    environments::routes(router);
    datasets::routes(router);
    model_tests::routes(router);
    dependencies::routes(router);
    insights::routes(router);
    conversions::routes(router);
    templates::routes(router);
}

/// The absolute URL of a job's status (the 202 Location every async
/// operation answers with; the client polls it verbatim).
pub(crate) fn status_location(req: &Request, job_id: &str) -> String {
    format!("{}/api/v2/status/{job_id}/", req.base_url())
}

/// The `{id}` and `{vid}` of a route under `customModels/{id}/versions/{vid}/`,
/// where `{vid}` may also be an alias (`@champion`) or `latest`.
pub(crate) fn model_version_ids(ctx: &Ctx, req: &Request) -> Result<(String, String)> {
    let model = req.param("id").to_string();
    let version = ctx.registry.resolve_version_id(req.who()?, &model, req.param("vid"))?;
    Ok((model, version))
}

/// Query parameters whose bad values are the seed's "400 Query parameters
/// are invalid"; every other invalid field is a 422.
const QUERY_FIELDS: [&str; 5] = ["offset", "limit", "body", "Content-Type", "query"];

fn render_error(error: &Error) -> Response {
    let status = match error {
        Error::NotFound(_) | Error::NoRoute(_) => 404,
        Error::Conflict(_) => 409,
        Error::Invalid { field, .. } if QUERY_FIELDS.contains(&field.as_str()) => 400,
        Error::Invalid { .. } | Error::Unprocessable { .. } => 422,
        Error::Forbidden(_) => 403,
        Error::TooLarge(_) => 413,
        Error::Unauthorized(_) => 401,
        Error::RateLimited { .. } => 429,
        Error::MethodNotAllowed { .. } => 405,
        // 500, never 502/504: the client retries those ten times.
        Error::InsufficientStorage(_) => 507,
        // only where no body is lost to the client's retry: see `retry_resends_no_body`
        Error::Unavailable(_) => 503,
        Error::Internal(_) => 500,
    };
    let mut body = json!({"message": error.message()});
    match error {
        Error::Invalid { field, message } => body["errors"] = json!({ field.clone(): message }),
        Error::Unprocessable { details: Value::Object(extra), .. } => {
            for (k, v) in extra {
                body[k] = v.clone();
            }
        }
        _ => {}
    }
    // Response::json sets exactly `application/json`, which the client needs.
    Response::json(status, &body)
}

/// The start-up handshake of `dr.Client()` (not in the seed): the client
/// needs `versionString`, refuses a major of 3+, and warns below 2.49.
fn version(_: &Ctx, _: &mut Request) -> Result<Response> {
    Ok(Response::json(200, &json!({"major": 2, "minor": 49, "versionString": "2.49.0"})))
}

/// `GET /api/v2/status/{id}/` over job records, the way the client's
/// waiter reads it: 200 with `status` while pending or failed, 303 with an
/// absolute Location to the finished resource when done.
fn status(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let job = ctx.registry.get_job(req.who()?, req.param("status_id"))?;
    let (state, message) = match job.state {
        JobState::Queued => ("INITIALIZED", "The job is queued".to_string()),
        JobState::Running => ("RUNNING", "The job is running".to_string()),
        JobState::Succeeded => ("COMPLETED", "The job completed".to_string()),
        JobState::Failed => ("ERROR", job.error.clone().unwrap_or_else(|| "The job failed".into())),
        JobState::Cancelled => ("ABORTED", "The job was cancelled".to_string()),
    };
    let body = json!({
        "statusId": job.id,
        "status": state,
        "message": message,
        "code": 0,
        "created": job.created_at,
        "description": job.kind,
        "statusType": job.kind,
    });
    let location = job.result.as_ref().and_then(|r| r.get("location")).and_then(Value::as_str);
    match (job.state, location) {
        (JobState::Succeeded, Some(path)) => {
            Ok(Response::json(303, &body).with_header("Location", format!("{}{path}", req.base_url())))
        }
        _ => Ok(Response::json(200, &body)),
    }
}

// ----------------------------------------------------------------------------
// Shared helpers of the DataRobot routes.

/// offset/limit of a list. The client's first request carries neither.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Paging {
    pub offset: u64,
    pub limit: u64,
}

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub(crate) fn paging(req: &Request) -> Result<Paging> {
    let int = |name: &str| -> Result<Option<u64>> {
        match req.query(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| Error::invalid(name, format!("must be a non-negative integer, got {text:?}"))),
        }
    };
    let offset = int("offset")?.unwrap_or(0);
    let limit = match int("limit")? {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => n.min(MAX_LIMIT),
    };
    Ok(Paging { offset, limit })
}

/// The seed's list envelope. `next` is an absolute URL that repeats every
/// query parameter (the client fetches it verbatim), null on the last page.
pub(crate) fn page_body(req: &Request, paging: Paging, data: Vec<Value>, total: u64, has_more: bool) -> Value {
    let link = |offset: u64| {
        let mut query: Vec<String> = req
            .query_pairs()
            .iter()
            .filter(|(k, _)| k != "offset" && k != "limit")
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        query.push(format!("offset={offset}"));
        query.push(format!("limit={}", paging.limit));
        format!("{}{}?{}", req.base_url(), req.path(), query.join("&"))
    };
    let next = has_more.then(|| link(paging.offset.saturating_add(paging.limit)));
    let previous = (paging.offset > 0).then(|| link(paging.offset.saturating_sub(paging.limit)));
    json!({"count": data.len(), "next": next, "previous": previous, "data": data, "totalCount": total})
}

/// Pages an in-memory list (short lists: versions, access entries).
pub(crate) fn page_of(req: &Request, paging: Paging, all: Vec<Value>) -> Value {
    let total = all.len() as u64;
    let data: Vec<Value> = all.into_iter().skip(paging.offset as usize).take(paging.limit as usize).collect();
    let has_more = paging.offset.saturating_add(data.len() as u64) < total;
    page_body(req, paging, data, total, has_more)
}

/// How long a POST that queued a job waits for it before answering 202.
const JOB_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How often it looks while it waits.
const JOB_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits up to `JOB_WAIT` for a job the request just queued. The client
/// polls the status at once and then every 5 s, so a quick job (a small
/// ingest, a validate-only build) finished here saves it 5 s; a long one is
/// polled as usual.
pub(crate) fn wait_briefly(registry: &crate::registry::Registry, who: &crate::registry::Principal, job_id: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + JOB_WAIT;
    while std::time::Instant::now() < deadline {
        // get_job reads no log: a poll is one small row.
        if registry.get_job(who, job_id)?.state.is_finished() {
            break;
        }
        std::thread::sleep(JOB_POLL);
    }
    Ok(())
}

/// All text parts of one multipart request share this many bytes.
pub(crate) const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// What one multipart request may send besides file bytes: a byte budget
/// shared by every text part (so any number of small fields cannot add up
/// to memory), and a running total of file bytes against the upload limit
/// (the limit is per request, not per file part).
pub(crate) struct PartBudget {
    text_left: usize,
    file_left: u64,
}

impl PartBudget {
    pub fn new(upload_limit: u64) -> PartBudget {
        PartBudget { text_left: MAX_TEXT_BYTES, file_left: upload_limit }
    }

    /// Reads a text part of at most `max` bytes, charged to the budget.
    pub fn text(&mut self, part: &mut dyn std::io::Read, field: &str, max: usize) -> Result<String> {
        use std::io::Read as _;
        let cap = max.min(self.text_left);
        let mut bytes = Vec::new();
        part.take(cap as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::invalid("body", format!("malformed multipart/form-data: {e}")))?;
        if bytes.len() > cap {
            return Err(if cap < max {
                Error::invalid(field, format!("the text fields of one request may hold at most {MAX_TEXT_BYTES} bytes in all"))
            } else {
                Error::invalid(field, format!("must be at most {max} bytes"))
            });
        }
        self.text_left -= bytes.len();
        String::from_utf8(bytes).map_err(|_| Error::invalid(field, "is not valid UTF-8"))
    }

    /// Streams a file part into the blob store, within what is left of the
    /// request's upload limit.
    pub fn file(&mut self, registry: &crate::registry::Registry, part: &mut dyn std::io::Read) -> Result<crate::registry::Digest> {
        let digest = registry.put_blob(part, Some(self.file_left))?;
        self.file_left = self.file_left.saturating_sub(digest.size);
        Ok(digest)
    }
}

/// Reads an access-control PATCH body `{data: [{username, role, canShare?, canUseData?}]}`.
pub(crate) fn access_changes(body: &Map<String, Value>) -> Result<Vec<crate::registry::access::roles::AccessChange>> {
    let Some(Value::Array(items)) = body.get("data") else {
        return Err(Error::invalid("data", "is required: a list of {username, role}"));
    };
    if items.len() > 100 {
        return Err(Error::invalid("data", "must have at most 100 items"));
    }
    items
        .iter()
        .map(|item| {
            let Some(obj) = item.as_object() else { return Err(Error::invalid("data", "items must be objects")) };
            let username = opt_str(obj, "username", 255)?.ok_or_else(|| Error::invalid("username", "is required"))?;
            if !obj.contains_key("role") {
                return Err(Error::invalid("role", "is required (null revokes)"));
            }
            Ok(crate::registry::access::roles::AccessChange {
                username,
                role: opt_str(obj, "role", 64)?,
                can_share: opt_bool_or_text(obj, "canShare")?,
                can_use_data: opt_bool_or_text(obj, "canUseData")?,
            })
        })
        .collect()
}

/// `GET …/accessControl/`: paged entries, filterable by username or userId.
pub(crate) fn access_list(req: &Request, entries: Vec<crate::registry::access::roles::AccessEntry>) -> Result<Value> {
    let paging = paging(req)?;
    let (username, user_id) = (req.query("username"), req.query("userId"));
    if username.is_some() && user_id.is_some() {
        return Err(Error::invalid("query", "Both username and userId were specified"));
    }
    let all = entries
        .into_iter()
        .filter(|e| username.is_none_or(|u| u == e.username) && user_id.is_none_or(|u| u == e.user_id))
        .map(|e| json!({"username": e.username, "userId": e.user_id, "role": e.role, "canShare": e.can_share, "canUseData": e.can_use_data}))
        .collect();
    Ok(page_of(req, paging, all))
}
