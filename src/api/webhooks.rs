//! modelreg's webhook routes under `/api/modelreg/v1/` (issue 24), for a
//! team admin: `POST …/webhooks` with `{"url", "secret", "events": […]}`
//! (201, the webhook without its secret), `GET …/webhooks`, `DELETE
//! …/webhooks/{id}` (204), and `GET …/webhooks/{id}/deliveries?limit=N`,
//! the newest deliveries with every attempt. The rules, and what is sent,
//! are the registry's (`registry::webhooks`).

use serde_json::json;

use super::admin::ADMIN;
use crate::http::params::query_int;
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::fields::{opt_string, opt_string_list};
use crate::registry::webhooks::EVENTS;
use crate::registry::{Error, Result};

pub fn routes(router: &mut Router) {
    router.add(&ADMIN, "POST", "/api/modelreg/v1/webhooks", create);
    router.add(&ADMIN, "GET", "/api/modelreg/v1/webhooks", list);
    router.add(&ADMIN, "DELETE", "/api/modelreg/v1/webhooks/{id}", delete);
    router.add(&ADMIN, "GET", "/api/modelreg/v1/webhooks/{id}/deliveries", deliveries);
}

fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let url = opt_string(&body, "url")?.ok_or_else(|| Error::invalid("url", "is required"))?;
    let secret = opt_string(&body, "secret")?.ok_or_else(|| Error::invalid("secret", "is required: deliveries are signed with it"))?;
    let events = opt_string_list(&body, "events", EVENTS.len() * 2)?
        .ok_or_else(|| Error::invalid("events", format!("is required: a list of {}", EVENTS.join(", "))))?;
    let hook = ctx.registry.create_webhook(&who, &url, &secret, events)?;
    Ok(Response::json(201, &json!(hook)))
}

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    Ok(Response::json(200, &json!(ctx.registry.list_webhooks(req.who()?)?)))
}

fn delete(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    ctx.registry.delete_webhook(req.who()?, req.param("id"))?;
    Ok(Response::empty(204))
}

fn deliveries(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let limit = query_int(req, "limit", 50, 1, 1000)? as u64;
    Ok(Response::json(200, &json!(ctx.registry.webhook_deliveries(req.who()?, req.param("id"), limit)?)))
}
