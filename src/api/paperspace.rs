//! Paperspace's API under `/v1/`: Gradient models (seeds 001 and 000, 001
//! winning conflicts; see shared/clients/paperspace-000-vs-001.md), and
//! machines and templates (seed 003).
//!
//! Paperspace-only model fields (isPublic, projectId, storageProviderId, and
//! seed 000's modelType and url) live in the model's attrs. Machines are
//! records with an emulated lifecycle (see `registry::machines`).

use serde_json::{json, Map, Value};

use crate::http::params::{query_bool, query_int};
use crate::registry::fields::{opt_bool, opt_string, parse_bool};
use crate::registry::catalogue::models::MAX_MODEL_NAME;
use crate::http::{Ctx, Dialect, Request, Response, Router};
use crate::registry::{
    machine_type, Assignee, Cursor, Error, Machine, MachineAction, MachineEvent, MachineOrder, MachinePatch, Model,
    ModelOrder, ModelQuery, NewMachine, NewModel, NewTemplate, Origin, Page, PageRequest, Result, Template, TemplateSource,
};

pub static PAPERSPACE: Dialect = Dialect { name: "paperspace", prefix: "/v1/", render_error, trailing_slash_optional: false, retry_resends_no_body: false };

pub fn routes(router: &mut Router) {
    router.add(&PAPERSPACE, "GET", "/v1/models", list_models);
    router.add(&PAPERSPACE, "POST", "/v1/models", create_model);
    router.add(&PAPERSPACE, "GET", "/v1/models/{id}", get_model);
    router.add(&PAPERSPACE, "DELETE", "/v1/models/{id}", delete_model);
    // Seed 003's route, and the two the live API split it into later.
    router.add(&PAPERSPACE, "GET", "/v1/templates", list_templates);
    router.add(&PAPERSPACE, "POST", "/v1/templates", create_template);
    router.add(&PAPERSPACE, "GET", "/v1/templates/{id}", get_template);
    router.add(&PAPERSPACE, "GET", "/v1/custom-templates", list_custom_templates);
    router.add(&PAPERSPACE, "POST", "/v1/custom-templates", create_template);
    router.add(&PAPERSPACE, "GET", "/v1/custom-templates/{id}", get_template);
    router.add(&PAPERSPACE, "GET", "/v1/os-templates", list_os_templates);
    router.add(&PAPERSPACE, "GET", "/v1/os-templates/{id}", get_template);
    router.add(&PAPERSPACE, "GET", "/v1/machines", list_machines);
    router.add(&PAPERSPACE, "POST", "/v1/machines", create_machine);
    router.add(&PAPERSPACE, "GET", "/v1/machines/{id}", get_machine);
    router.add(&PAPERSPACE, "PUT", "/v1/machines/{id}", update_machine);
    router.add(&PAPERSPACE, "DELETE", "/v1/machines/{id}", delete_machine);
    router.add(&PAPERSPACE, "PATCH", "/v1/machines/{id}/stop", stop_machine);
    router.add(&PAPERSPACE, "PATCH", "/v1/machines/{id}/start", start_machine);
    router.add(&PAPERSPACE, "PATCH", "/v1/machines/{id}/restart", restart_machine);
    router.add(&PAPERSPACE, "GET", "/v1/machines/{id}/events", list_machine_events);
}

/// Exactly `{code, message}` plus `issues` on a validation error: the
/// official CLI parses error bodies with a strict schema and throws on any
/// other key (such as `details`). `code` is the tRPC code for the status.
fn render_error(error: &Error) -> Response {
    let (status, code) = match error {
        Error::Invalid { .. } | Error::Unprocessable { .. } => (400, "BAD_REQUEST"),
        Error::Unauthorized(_) => (401, "UNAUTHORIZED"),
        Error::Forbidden(_) => (403, "FORBIDDEN"),
        Error::NotFound(_) | Error::NoRoute(_) => (404, "NOT_FOUND"),
        Error::MethodNotAllowed { .. } => (405, "METHOD_NOT_SUPPORTED"),
        Error::Conflict(_) => (409, "CONFLICT"),
        Error::TooLarge(_) => (413, "PAYLOAD_TOO_LARGE"),
        Error::RateLimited { .. } => (429, "TOO_MANY_REQUESTS"),
        // tRPC has no code of its own for a full disk
        Error::InsufficientStorage(_) => (507, "INTERNAL_SERVER_ERROR"),
        // a tRPC code, which the official client requires
        Error::Unavailable(_) => (503, "SERVICE_UNAVAILABLE"),
        Error::Internal(_) => (500, "INTERNAL_SERVER_ERROR"),
    };
    let mut body = json!({"code": code, "message": error.message()});
    if let Error::Invalid { .. } = error {
        body["issues"] = json!([{"message": error.message()}]);
    }
    Response::json(status, &body)
}

// ---------------------------------------------------------------------------
// Request helpers

/// The largest page any list serves (seed 001), and the default when the
/// client sends no `limit` (seed 001 gives none; 20 is what the CLI shows).
const MAX_LIMIT: i64 = 120;
const DEFAULT_LIMIT: i64 = 20;

/// `after`, `limit`, `orderBy` and `order` of a list. `order_fields` are the
/// accepted `orderBy` values, the default first.
struct ListParams {
    after: Option<Cursor>,
    limit: u64,
    order_by: &'static str,
    descending: bool,
}

fn list_params(req: &Request, order_fields: &[&'static str]) -> Result<ListParams> {
    let limit = query_int(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)? as u64;
    let order_by = match req.query("orderBy") {
        None => order_fields[0],
        Some(text) => order_fields.iter().copied().find(|f| *f == text).ok_or_else(|| {
            Error::invalid("orderBy", format!("must be one of {}, got {text:?}", order_fields.join(", ")))
        })?,
    };
    let descending = match req.query("order") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(Error::invalid("order", format!("must be asc or desc, got {other:?}"))),
    };
    // An empty `after` is what some clients send for "first page".
    let after = match req.query("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(text) => {
            let cursor = Cursor::decode("after", text)?;
            // A time-ordered list seeks on a timestamp: anything else is not
            // a cursor of this list.
            // (The OS templates' cursors have an empty key: a static list.)
            let timed = order_by.starts_with("dt") && !cursor.key.is_empty();
            if timed && time::OffsetDateTime::parse(&cursor.key, &time::format_description::well_known::Rfc3339).is_err() {
                return Err(Error::invalid("after", "is not a cursor of this list and order"));
            }
            Some(cursor)
        }
    };
    Ok(ListParams { after, limit, order_by, descending })
}

pub(crate) fn render_page<T>(page: Page<T>, render: impl Fn(&T) -> Value) -> Value {
    json!({
        "hasMore": page.has_more,
        "items": page.items.iter().map(render).collect::<Vec<_>>(),
        "nextPage": page.next.map(|c| c.encode()),
    })
}

fn required_string(body: &Map<String, Value>, field: &str) -> Result<String> {
    opt_string(body, field)?.ok_or_else(|| Error::invalid(field, "is required"))
}

/// A boolean, or its string form (seed 003 sends `"autoShutdownEnabled": "true"`).
fn flex_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match body.get(field) {
        Some(Value::String(s)) => {
            parse_bool(s).map(Some).ok_or_else(|| Error::invalid(field, format!("must be true or false, got {s:?}")))
        }
        _ => opt_bool(body, field),
    }
}

/// An integer, or its string form (seed 003 sends `"autoShutdownTimeout": "6"`).
fn flex_int(body: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    let bad = || Error::invalid(field, "must be a whole number");
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| Some(f as i64)).ok_or_else(bad),
        },
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

// ---------------------------------------------------------------------------
// Models

const MODEL_TYPES: [&str; 3] = ["Custom", "Tensorflow", "ONNX"];

fn render_model(m: &Model) -> Value {
    let attr = |key: &str| m.attrs.get(key).cloned().unwrap_or(Value::Null);
    let mut body = json!({
        "description": m.description,
        "dtCreated": m.created_at,
        "dtModified": m.modified_at,
        "id": m.id,
        "isPublic": m.attrs.get("isPublic").and_then(Value::as_bool).unwrap_or(false),
        "name": m.name,
        "projectId": attr("projectId"),
        "storageProviderId": attr("storageProviderId"),
        "teamId": m.team_id,
    });
    // Seed 000 declares these as plain strings: render them only when set.
    for key in ["modelType", "url"] {
        if let Some(Value::String(s)) = m.attrs.get(key) {
            body[key] = json!(s);
        }
    }
    body
}

fn list_models(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let params = list_params(req, &["dtCreated", "dtModified", "name"])?;
    let order = match params.order_by {
        "dtModified" => ModelOrder::Modified,
        "name" => ModelOrder::Name,
        _ => ModelOrder::Created,
    };
    let mut query = ModelQuery::newest_first(PageRequest::After { after: params.after, limit: params.limit });
    query.order = order;
    query.descending = params.descending;
    if let Some(project) = req.query("projectId") {
        query.attr_equals.push(("projectId".into(), json!(project)));
    }
    let page = ctx.registry.list_models(req.who()?, &query)?;
    Ok(Response::json(200, &render_page(page, render_model)))
}

/// Seed 001's create body plus seed 000's modelType and url. Only `name` is
/// required: seed 000 clients never send `isPublic`. Unknown keys are ignored.
pub(crate) fn new_model_from_json(body: &Map<String, Value>) -> Result<NewModel> {
    let name = required_string(body, "name")?;
    if name.trim().is_empty() || name.chars().count() > MAX_MODEL_NAME {
        return Err(Error::invalid("name", format!("must be 1 to {MAX_MODEL_NAME} characters")));
    }
    let description = match body.get("description") {
        // The CLI's spec types description as `{} | string | null`.
        Some(Value::Object(o)) if o.is_empty() => None,
        _ => opt_string(body, "description")?,
    };
    let mut attrs = Map::new();
    attrs.insert("isPublic".into(), json!(opt_bool(body, "isPublic")?.unwrap_or(false)));
    for field in ["projectId", "storageProviderId", "url"] {
        if let Some(value) = opt_string(body, field)? {
            attrs.insert(field.into(), json!(value));
        }
    }
    if let Some(kind) = opt_string(body, "modelType")? {
        if !MODEL_TYPES.contains(&kind.as_str()) {
            return Err(Error::invalid("modelType", format!("must be one of {}, got {kind:?}", MODEL_TYPES.join(", "))));
        }
        attrs.insert("modelType".into(), json!(kind));
    }
    Ok(NewModel { name, description, attrs, origin: Origin::Paperspace })
}

fn create_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let model = ctx.registry.create_model(req.who()?, new_model_from_json(&body)?)?;
    Ok(Response::json(200, &render_model(&model)))
}

fn get_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let model = ctx.registry.get_model(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_model(&model)))
}

fn delete_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let id = req.param("id").to_string();
    ctx.registry.delete_model(req.who()?, &id)?;
    Ok(Response::json(200, &json!({"id": id})))
}

// ---------------------------------------------------------------------------
// Templates

pub(crate) fn render_template(t: &Template) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "isPublic": t.is_public(),
        "agentType": t.agent_type,
        "operatingSystemLabel": t.os_label,
        "region": t.region,
        "defaultSizeGb": t.default_size_gb,
        "availableMachineTypes": t.machine_types.iter()
            .map(|label| json!({"machineTypeLabel": label, "isAvailable": true}))
            .collect::<Vec<_>>(),
    })
}

fn templates_page(ctx: &Ctx, req: &Request, public: bool) -> Result<Response> {
    let params = list_params(req, &["dtCreated"])?;
    let page = ctx.registry.list_templates(req.who()?, public, params.after.as_ref(), params.limit)?;
    Ok(Response::json(200, &render_page(page, render_template)))
}

/// Seed 003: the team's custom templates; `?isPublic=true` the OS templates.
fn list_templates(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let public = query_bool(req, "isPublic")?.unwrap_or(false);
    templates_page(ctx, req, public)
}

fn list_custom_templates(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    templates_page(ctx, req, false)
}

fn list_os_templates(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    templates_page(ctx, req, true)
}

fn get_template(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let template = ctx.registry.get_template(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_template(&template)))
}

/// `{name, machineId}` (the live API's shape: a template from a machine) or
/// `{name, templateId}`; optional `region` and `defaultSizeGb`.
fn create_template(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let source = match (opt_string(&body, "machineId")?, opt_string(&body, "templateId")?) {
        (Some(machine), None) => TemplateSource::Machine(machine),
        (None, Some(template)) => TemplateSource::Template(template),
        _ => return Err(Error::invalid("machineId", "give exactly one of machineId or templateId")),
    };
    let new = NewTemplate {
        name: required_string(&body, "name")?,
        source,
        region: opt_string(&body, "region")?,
        default_size_gb: flex_int(&body, "defaultSizeGb")?,
    };
    let template = ctx.registry.create_template(req.who()?, new)?;
    Ok(Response::json(200, &render_template(&template)))
}

// ---------------------------------------------------------------------------
// Machines

const GIB: u64 = 1 << 30;

/// Seed 003's machine object. Sizes are strings of bytes as in the seed's
/// example. The emulation has no network: the addresses are null.
pub(crate) fn render_machine(m: &Machine) -> Value {
    let kind = machine_type(&m.machine_type);
    let accelerators: Vec<Value> = kind
        .as_ref()
        .and_then(|k| k.accelerator.as_ref())
        .map(|a| json!({"name": a.name, "memory": a.memory_bytes.to_string(), "count": a.count}))
        .into_iter()
        .collect();
    json!({
        "id": m.id,
        "name": m.name,
        "state": m.state,
        "os": m.os,
        "machineType": m.machine_type,
        "agentType": m.agent_type,
        "cpus": kind.as_ref().map_or(0, |k| k.cpus),
        "ram": kind.as_ref().map_or(0, |k| k.ram_bytes).to_string(),
        "storageTotal": (m.disk_size_gb.max(0) as u64 * GIB).to_string(),
        "storageUsed": "0",
        "accelerators": accelerators,
        "region": m.region,
        "privateIp": null,
        "networkId": null,
        "publicIp": null,
        "publicIpType": m.public_ip_type,
        "autoShutdownEnabled": m.auto_shutdown_enabled,
        "autoShutdownTimeout": m.auto_shutdown_timeout,
        "autoShutdownForce": false,
        "autoSnapshotEnabled": false,
        "autoSnapshotFrequency": null,
        "autoSnapshotSaveCount": null,
        "restorePointEnabled": false,
        "restorePointFrequency": null,
        "updatesPending": false,
        "templateId": m.template_id,
        "userId": m.user_id,
        "teamId": m.team_id,
        "dtCreated": m.created_at,
        "dtModified": m.modified_at,
    })
}

pub(crate) fn render_event(e: &MachineEvent) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "state": e.state,
        "machineId": e.machine_id,
        "dtCreated": e.created_at,
        "dtStarted": e.started_at,
        "dtFinished": e.finished_at,
        "error": e.error,
    })
}

/// Answers a state change. The registry queued the change's job in the same
/// transaction; the runner is told now so that it does not wait for its poll.
fn queued_change_response((event, machine): (MachineEvent, Machine)) -> Response {
    crate::jobs::wake();
    Response::json(200, &json!({"event": render_event(&event), "data": render_machine(&machine)}))
}

/// Seed 003's create body. The live API's other optional fields (networkId,
/// startupScriptId, snapshots…) are accepted and ignored: the emulation
/// cannot honour them.
pub(crate) fn new_machine_from_json(body: &Map<String, Value>) -> Result<NewMachine> {
    let assignee = match (opt_string(body, "userId")?, opt_string(body, "email")?) {
        (Some(_), Some(_)) => return Err(Error::invalid("userId", "give either userId or email, not both")),
        (Some(id), None) => Assignee::User(id),
        (None, Some(email)) => {
            // The password is required as in the hosted API, but modelreg
            // has no password logins, so it is not stored.
            required_string(body, "password")
                .map_err(|_| Error::invalid("password", "is required with email to create a user"))?;
            let name = |field: &str| {
                required_string(body, field).map_err(|_| Error::invalid(field, "is required with email to create a user"))
            };
            Assignee::NewUser { email, first_name: name("firstName")?, last_name: name("lastName")? }
        }
        (None, None) => Assignee::Caller,
    };
    Ok(NewMachine {
        name: required_string(body, "name")?,
        machine_type: required_string(body, "machineType")?,
        template_id: required_string(body, "templateId")?,
        disk_size_gb: flex_int(body, "diskSize")?.ok_or_else(|| Error::invalid("diskSize", "is required"))?,
        region: required_string(body, "region")?,
        auto_shutdown_enabled: flex_bool(body, "autoShutdownEnabled")?.unwrap_or(false),
        auto_shutdown_timeout: flex_int(body, "autoShutdownTimeout")?,
        public_ip_type: opt_string(body, "publicIpType")?.unwrap_or_else(|| "none".into()),
        assignee,
    })
}

fn create_machine(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let new = new_machine_from_json(&body)?;
    Ok(queued_change_response(ctx.registry.create_machine(req.who()?, new)?))
}

fn list_machines(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let params = list_params(req, &["dtCreated", "name"])?;
    let order = if params.order_by == "name" { MachineOrder::Name } else { MachineOrder::Created };
    let page = ctx.registry.list_machines(req.who()?, order, params.descending, params.after.as_ref(), params.limit)?;
    Ok(Response::json(200, &render_page(page, render_machine)))
}

fn get_machine(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let machine = ctx.registry.get_machine(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_machine(&machine)))
}

/// Rename and auto-shutdown settings; `autoShutdownTimeout: null` clears it.
fn update_machine(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let patch = MachinePatch {
        name: opt_string(&body, "name")?,
        auto_shutdown_enabled: flex_bool(&body, "autoShutdownEnabled")?,
        auto_shutdown_timeout: match body.get("autoShutdownTimeout") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => Some(flex_int(&body, "autoShutdownTimeout")?),
        },
    };
    let machine = ctx.registry.update_machine(req.who()?, req.param("id"), patch)?;
    Ok(Response::json(200, &render_machine(&machine)))
}

fn delete_machine(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let machine = ctx.registry.delete_machine(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_machine(&machine)))
}

fn machine_action(ctx: &Ctx, req: &Request, action: MachineAction) -> Result<Response> {
    Ok(queued_change_response(ctx.registry.machine_action(req.who()?, req.param("id"), action)?))
}

fn stop_machine(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    machine_action(ctx, req, MachineAction::Stop)
}

fn start_machine(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    machine_action(ctx, req, MachineAction::Start)
}

fn restart_machine(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    machine_action(ctx, req, MachineAction::Restart)
}

fn list_machine_events(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let params = list_params(req, &["dtCreated"])?;
    let page = ctx.registry.list_machine_events(req.who()?, req.param("id"), params.after.as_ref(), params.limit)?;
    Ok(Response::json(200, &render_page(page, render_event)))
}
