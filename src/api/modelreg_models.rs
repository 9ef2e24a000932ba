//! modelreg's own model routes under `/api/modelreg/v1/`: aliases
//! (issue 24). `PUT …/models/{model}/aliases/{alias}` with `{"version": N}`
//! sets or moves an alias; `DELETE` the same path removes it. `{model}` is
//! an id or a name. The rules (names, access, the version existing) are the
//! registry's (`registry::catalogue::aliases`); this only parses and renders,
//! with modelreg's own error body.

use serde_json::{json, Value};

use super::admin::ADMIN;
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::{Error, Result};

pub fn routes(router: &mut Router) {
    router.add(&ADMIN, "PUT", "/api/modelreg/v1/models/{model}/aliases/{alias}", set_alias);
    router.add(&ADMIN, "DELETE", "/api/modelreg/v1/models/{model}/aliases/{alias}", delete_alias);
}

fn set_alias(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    let alias = req.param("alias").to_string();
    let body = req.json_object()?;
    let version = match body.get("version") {
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 1),
        _ => None,
    }
    .ok_or_else(|| Error::invalid("version", "is required: a version number (1 or more)"))?;
    let set = ctx.registry.set_alias(&who, &model.id, &alias, version)?;
    Ok(Response::json(200, &json!(set)))
}

fn delete_alias(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    ctx.registry.delete_alias(&who, &model.id, req.param("alias"))?;
    Ok(Response::empty(204))
}
