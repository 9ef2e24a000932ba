//! modelreg's own model routes under `/api/modelreg/v1/` (issue 24): the
//! workflow the three services' APIs have no room for.
//!
//! - `GET …/models?tag=KEY:VALUE&q=TEXT&limit=N&after=CURSOR`: models with
//!   every tag given (`tag=KEY` for any value) whose name or description
//!   contains `q`, newest first, a keyset page (`next` is the cursor of the
//!   following page, or null).
//! - `GET …/models/{model}`: a model with its tags, aliases and versions
//!   (newest first); `PATCH` with `{"description": "…"}` (or `null`)
//!   changes its description, within the limit of the door that made it;
//!   `GET …/models/{model}/versions/{version}`: one version,
//!   with its metrics, lineage, tags and aliases.
//! - `PATCH …/models/{model}/versions/{version}` with `{"lineage": {…},
//!   "metrics": {…}, "status": "…"}` changes those fields (a `null` clears
//!   one); `DELETE` deletes the version.
//! - `PUT …/models/{model}/aliases/{alias}` with `{"version": N}` sets or
//!   moves an alias; `DELETE` removes it.
//! - `PUT …/models/{model}/tags/{key}` with `{"value": "…"}` sets a tag;
//!   `DELETE` removes it; the same under `…/versions/{version}/tags/{key}`.
//!
//! `{model}` is an id or a name, `{version}` any version handle (number,
//! label, `@alias`, `latest`). The rules are the registry's
//! (`registry::catalogue::{aliases, tags, lineage}`); this only parses and
//! renders, with modelreg's own error body. The CLI's local path renders
//! with the same functions, so both print the same JSON.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::admin::ADMIN;
use crate::http::params::query_int;
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::catalogue::lineage::LineagePatch;
use crate::registry::catalogue::models::TagFilter;
use crate::registry::catalogue::tags::{parse_tag_filter, Tags};
use crate::registry::catalogue::weight_facts;
use crate::registry::catalogue::weights::check_model_description;
use crate::registry::{
    Cursor, Error, Model, ModelPatch, ModelQuery, PageRequest, Principal, Registry, Result, Version,
    VersionRef, VersionStatus,
};

pub fn routes(router: &mut Router) {
    router.add(&ADMIN, "GET", "/api/modelreg/v1/models", list_models);
    router.add(&ADMIN, "GET", "/api/modelreg/v1/models/{model}", get_model);
    router.add(&ADMIN, "PATCH", "/api/modelreg/v1/models/{model}", update_model);
    router.add(
        &ADMIN,
        "GET",
        "/api/modelreg/v1/models/{model}/versions/{version}",
        get_version,
    );
    router.add(
        &ADMIN,
        "PATCH",
        "/api/modelreg/v1/models/{model}/versions/{version}",
        update_version,
    );
    router.add(
        &ADMIN,
        "DELETE",
        "/api/modelreg/v1/models/{model}/versions/{version}",
        delete_version,
    );
    router.add(
        &ADMIN,
        "PUT",
        "/api/modelreg/v1/models/{model}/aliases/{alias}",
        set_alias,
    );
    router.add(
        &ADMIN,
        "DELETE",
        "/api/modelreg/v1/models/{model}/aliases/{alias}",
        delete_alias,
    );
    router.add(
        &ADMIN,
        "PUT",
        "/api/modelreg/v1/models/{model}/tags/{key}",
        set_model_tag,
    );
    router.add(
        &ADMIN,
        "DELETE",
        "/api/modelreg/v1/models/{model}/tags/{key}",
        delete_model_tag,
    );
    router.add(
        &ADMIN,
        "PUT",
        "/api/modelreg/v1/models/{model}/versions/{version}/tags/{key}",
        set_version_tag,
    );
    router.add(
        &ADMIN,
        "DELETE",
        "/api/modelreg/v1/models/{model}/versions/{version}/tags/{key}",
        delete_version_tag,
    );
}

/// A search as `GET …/models` takes it; the CLI's `models list --tag` too.
pub(crate) struct Search {
    pub tags: Vec<TagFilter>,
    pub text: Option<String>,
    /// The framework by the registry's rule (`Model::framework`).
    pub framework: Option<String>,
    pub limit: u64,
    pub after: Option<Cursor>,
}

/// The `tag=KEY:VALUE` parameters of a model list (repeatable), in this
/// door and the Octomil door alike.
pub(crate) fn tag_filters(req: &Request) -> Result<Vec<TagFilter>> {
    req.query_pairs()
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| parse_tag_filter(v))
        .collect()
}

fn list_models(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let search = Search {
        tags: tag_filters(req)?,
        text: req.query("q").filter(|q| !q.is_empty()).map(str::to_string),
        framework: req.query("framework").filter(|f| !f.is_empty()).map(str::to_string),
        limit: query_int(req, "limit", 20, 1, 100)? as u64,
        after: req
            .query("after")
            .map(|a| Cursor::decode("after", a))
            .transpose()?,
    };
    Ok(Response::json(
        200,
        &search_body(ctx.registry, req.who()?, search)?,
    ))
}

/// One page of a model search as JSON: `{"models": […], "next": cursor}`.
pub(crate) fn search_body(registry: &Registry, who: &Principal, search: Search) -> Result<Value> {
    let mut query = ModelQuery::newest_first(PageRequest::After {
        after: search.after,
        limit: search.limit,
    });
    query.tags = search.tags;
    query.search = search.text;
    query.framework = search.framework;
    let listed = registry.list_models_with_latest(who, &query, false)?;
    let ids: Vec<&str> = listed.page.items.iter().map(|m| m.id.as_str()).collect();
    let mut tags = registry.tags_of_models(who, &ids)?;
    let models: Vec<Value> = listed
        .page
        .items
        .iter()
        .zip(&listed.latest)
        .map(|(model, latest)| {
            let mut view = model_view(model, latest.as_ref());
            view["tags"] = json!(tags.remove(&model.id).unwrap_or_default());
            view
        })
        .collect();
    Ok(json!({"models": models, "next": listed.page.next.map(|c| c.encode())}))
}

/// A model's fields, as every route here renders them.
/// `framework` is the registry's rule (`Model::framework`), as the Octomil
/// door and the web UI show it.
fn model_view(model: &Model, latest: Option<&Version>) -> Value {
    json!({
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "team_id": model.team_id,
        "origin": model.origin.as_str(),
        "created_by": model.created_by,
        "created_at": model.created_at,
        "modified_at": model.modified_at,
        "latest_version": latest.map(|v| v.number),
        "framework": model.framework(latest),
    })
}

fn get_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    Ok(Response::json(
        200,
        &model_detail(ctx.registry, &who, &model)?,
    ))
}

/// `{"description": "…"}` (a `null` clears it): what a model's PATCH may
/// change here; its name and its door's own fields change through its door.
fn update_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    let body = req.json_object()?;
    if let Some(key) = body.keys().find(|k| k.as_str() != "description") {
        return Err(Error::invalid(key, "cannot be changed here (description can)"));
    }
    let mut patch = ModelPatch::default();
    match body.get("description") {
        None => {}
        Some(Value::Null) => patch.description = Some(None),
        Some(Value::String(text)) => {
            check_model_description(model.origin, Some(text))?;
            patch.description = Some(Some(text.clone()));
        }
        Some(_) => return Err(Error::invalid("description", "must be a string or null")),
    }
    let updated = ctx.registry.update_model(&who, &model.id, |_| Ok(patch))?;
    Ok(Response::json(
        200,
        &model_detail(ctx.registry, &who, &updated)?,
    ))
}

/// A model with its tags, aliases and every version, newest first.
pub(crate) fn model_detail(registry: &Registry, who: &Principal, model: &Model) -> Result<Value> {
    let versions = registry.list_versions(who, &model.id)?;
    let latest = registry.latest_version(who, &model.id)?;
    let aliases = registry.model_aliases(who, &model.id)?;
    let mut version_tags = registry.version_tags_of_model(who, &model.id)?;
    let by_number = aliases_by_number(&aliases);
    let mut views = Vec::with_capacity(versions.len());
    for version in versions.iter().rev() {
        let tags = version_tags.remove(&version.id).unwrap_or_default();
        views.push(version_view(
            registry,
            who,
            version,
            tags,
            by_number.get(&version.number).cloned().unwrap_or_default(),
        )?);
    }
    let mut view = model_view(model, latest.as_ref());
    view["tags"] = json!(registry.model_tags(who, &model.id)?);
    view["aliases"] = json!(aliases);
    view["versions"] = Value::Array(views);
    Ok(view)
}

fn aliases_by_number(aliases: &BTreeMap<String, i64>) -> HashMap<i64, Vec<String>> {
    let mut by_number: HashMap<i64, Vec<String>> = HashMap::new();
    for (alias, number) in aliases {
        by_number.entry(*number).or_default().push(alias.clone());
    }
    by_number
}

/// A version's fields, with the tags and aliases the caller looked up.
fn version_view(
    registry: &Registry,
    who: &Principal,
    version: &Version,
    tags: Tags,
    aliases: Vec<String>,
) -> Result<Value> {
    let files: Vec<Value> = version
        .files
        .iter()
        .map(|f| {
            // What a safetensors or GGUF file's header says; null for other files.
            let facts = weight_facts::of_file(&version.attrs, &f.path);
            json!({"path": f.path, "sha256": f.sha256, "size": f.size, "weight_facts": facts})
        })
        .collect();
    Ok(json!({
        "id": version.id,
        "model_id": version.model_id,
        "number": version.number,
        "label": version.label,
        "status": version.status.as_str(),
        "description": version.description,
        "created_by": version.created_by,
        "created_at": version.created_at,
        "size": version.total_size(),
        "files": files,
        "metrics": version.metrics,
        "lineage": registry.lineage_view(who, version)?,
        "tags": tags,
        "aliases": aliases,
    }))
}

/// One version as `GET …/versions/{version}` renders it.
pub(crate) fn version_detail(
    registry: &Registry,
    who: &Principal,
    model: &Model,
    version: &Version,
) -> Result<Value> {
    let tags = registry.version_tags(who, &model.id, &version.id)?;
    let aliases = aliases_by_number(&registry.model_aliases(who, &model.id)?)
        .remove(&version.number)
        .unwrap_or_default();
    version_view(registry, who, version, tags, aliases)
}

/// The model and version a route's `{model}` and `{version}` name.
fn model_and_version(ctx: &Ctx, req: &Request) -> Result<(Model, Version)> {
    let who = req.who()?;
    let model = ctx.registry.resolve_model(who, req.param("model"))?;
    let version =
        ctx.registry
            .find_version(who, &model.id, &VersionRef::parse(req.param("version")))?;
    Ok((model, version))
}

fn get_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let (model, version) = model_and_version(ctx, req)?;
    Ok(Response::json(
        200,
        &version_detail(ctx.registry, req.who()?, &model, &version)?,
    ))
}

fn update_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_and_version(ctx, req)?;
    let body = req.json_object()?;
    let updated = apply_version_update(ctx.registry, &who, &model, &version, &body)?;
    Ok(Response::json(
        200,
        &version_detail(ctx.registry, &who, &model, &updated)?,
    ))
}

/// `{"lineage": {…}, "metrics": {…}, "status": "…"}`: what a version's
/// PATCH may change.
pub(crate) fn apply_version_update(
    registry: &Registry,
    who: &Principal,
    model: &Model,
    version: &Version,
    body: &Map<String, Value>,
) -> Result<Version> {
    if let Some(key) = body
        .keys()
        .find(|k| !["lineage", "metrics", "status"].contains(&k.as_str()))
    {
        return Err(Error::invalid(
            key,
            "cannot be changed here (lineage, metrics and status can)",
        ));
    }
    // Every field is checked before the first is written: lineage is
    // checked by the registry as it is applied, so it goes first.
    let status =
        match body.get("status") {
            None => None,
            Some(status) => Some(status.as_str().and_then(VersionStatus::parse).ok_or_else(
                || {
                    Error::invalid(
                        "status",
                        format!(
                            "must be one of {}",
                            VersionStatus::ALL.map(VersionStatus::as_str).join(", ")
                        ),
                    )
                },
            )?),
        };
    let by = VersionRef::Number(version.number);
    let mut updated = version.clone();
    match body.get("lineage") {
        None => {}
        Some(Value::Object(fields)) => {
            updated =
                registry.update_lineage(who, &model.id, &by, LineagePatch::from_json(fields)?)?
        }
        Some(_) => return Err(Error::invalid("lineage", "must be an object")),
    }
    match body.get("metrics") {
        None => {}
        Some(Value::Object(metrics)) => {
            updated = registry.update_version_metrics(who, &model.id, &by, metrics.clone())?
        }
        Some(_) => {
            return Err(Error::invalid(
                "metrics",
                "must be an object of metric names to values",
            ))
        }
    }
    if let Some(status) = status {
        updated = registry.set_version_status(who, &model.id, &by, status)?;
    }
    Ok(updated)
}

fn delete_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let (model, version) = model_and_version(ctx, req)?;
    ctx.registry
        .delete_version(&who, &model.id, &VersionRef::Number(version.number))?;
    Ok(Response::empty(204))
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
    ctx.registry
        .delete_alias(&who, &model.id, req.param("alias"))?;
    Ok(Response::empty(204))
}

/// `{"value": "…"}`, the body of a tag's PUT.
fn tag_value(req: &mut Request) -> Result<String> {
    match req.json_object()?.get("value") {
        Some(Value::String(value)) => Ok(value.clone()),
        _ => Err(Error::invalid("value", "is required: a string")),
    }
}

fn set_model_tag(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    let value = tag_value(req)?;
    let tags = ctx
        .registry
        .set_model_tag(&who, &model.id, req.param("key"), &value)?;
    Ok(Response::json(200, &json!({"tags": tags})))
}

fn delete_model_tag(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    let tags = ctx
        .registry
        .delete_model_tag(&who, &model.id, req.param("key"))?;
    Ok(Response::json(200, &json!({"tags": tags})))
}

fn set_version_tag(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    let value = tag_value(req)?;
    let by = VersionRef::parse(req.param("version"));
    let tags = ctx
        .registry
        .set_version_tag(&who, &model.id, &by, req.param("key"), &value)?;
    Ok(Response::json(200, &json!({"tags": tags})))
}

fn delete_version_tag(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let model = ctx.registry.resolve_model(&who, req.param("model"))?;
    let by = VersionRef::parse(req.param("version"));
    let tags = ctx
        .registry
        .delete_version_tag(&who, &model.id, &by, req.param("key"))?;
    Ok(Response::json(200, &json!({"tags": tags})))
}
