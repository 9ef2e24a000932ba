//! Model cards through modelreg's own API (issue 24):
//! `GET /api/modelreg/v1/models/{model}/versions/{version}/card` answers a
//! version's card, Markdown and sanitised HTML; `PUT` with
//! `{"markdown": "…"}` sets one, which wins over the version's README.md;
//! `DELETE` removes it. `{model}` is an id or a name, `{version}` any
//! version handle (number, label, `@alias`, `latest`). Where a card comes
//! from, its size cap, rendering and sanitising are the registry's
//! (`registry::catalogue::cards`); this only parses and renders, with
//! modelreg's own error body.

use serde_json::{json, Value};

use super::admin::ADMIN;
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::catalogue::cards::{Card, CardSource};
use crate::registry::{Error, Model, Result, VersionRef};

const CARD: &str = "/api/modelreg/v1/models/{model}/versions/{version}/card";

pub fn routes(router: &mut Router) {
    router.add(&ADMIN, "GET", CARD, get_card);
    router.add(&ADMIN, "PUT", CARD, set_card);
    router.add(&ADMIN, "DELETE", CARD, delete_card);
}

/// The model and version handle a card route names.
fn target(ctx: &Ctx, req: &Request) -> Result<(Model, VersionRef)> {
    let model = ctx.registry.resolve_model(req.who()?, req.param("model"))?;
    Ok((model, VersionRef::parse(req.param("version"))))
}

fn get_card(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (model, version) = target(ctx, req)?;
    let card = ctx.registry.card(req.who()?, &model.id, &version)?;
    Ok(Response::json(200, &render_card(&card)))
}

fn set_card(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (model, version) = target(ctx, req)?;
    let body = req.json_object()?;
    let markdown = match body.get("markdown") {
        Some(Value::String(text)) => text,
        _ => return Err(Error::invalid("markdown", "is required: the card's Markdown, as a string")),
    };
    let card = ctx.registry.set_card(req.who()?, &model.id, &version, markdown)?;
    Ok(Response::json(200, &render_card(&card)))
}

fn delete_card(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (model, version) = target(ctx, req)?;
    ctx.registry.delete_card(req.who()?, &model.id, &version)?;
    Ok(Response::empty(204))
}

/// `{model, version, source, path, markdown, html, note, updatedAt,
/// updatedBy}`: `path` for a README, the last two for a card set through
/// the API, null otherwise.
fn render_card(card: &Card) -> Value {
    let (path, updated_at, updated_by) = match &card.source {
        CardSource::Readme { path } => (Some(path), None, None),
        CardSource::Api { updated_at, updated_by } => (None, Some(updated_at), Some(updated_by)),
    };
    json!({
        "model": card.model_id,
        "version": card.version,
        "source": card.source.as_str(),
        "path": path,
        "markdown": card.markdown,
        "html": card.html,
        "note": card.note,
        "updatedAt": updated_at,
        "updatedBy": updated_by,
    })
}
