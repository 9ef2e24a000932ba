//! Remote repositories and versions pulled from them:
//! `/remoteRepositories/…` in the shape DataRobot's Terraform provider uses
//! (`{id, name, description, location, sourceType, credentialId}`), and
//! `customModels/{id}/versions/fromRepository/` (seed 002).
//!
//! A pull is a job in the compute lane (`crate::git::pull`): the POST
//! checks what it can (the body, the repository, the paths, the
//! environment), queues it and answers 202 with the status's Location; the
//! status then answers 303 to the new version, or ERROR with what went
//! wrong and no version.

use serde_json::{json, Map, Value};

use super::{opt_str, page_body, paging, status_location, wait_briefly};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::custom_versions::hide_forbidden;
use crate::registry::catalogue::repositories::{NewRepository, Repository, RepositoryPatch, SourceType};
use crate::registry::{Error, Principal, Registry, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/remoteRepositories/", list);
    router.add(d, "POST", "/api/v2/remoteRepositories/", create);
    router.add(d, "GET", "/api/v2/remoteRepositories/{id}/", get);
    router.add(d, "PATCH", "/api/v2/remoteRepositories/{id}/", update);
    router.add(d, "DELETE", "/api/v2/remoteRepositories/{id}/", delete);
    // Before versions::routes: `versions/{vid}/` also answers PATCH.
    router.add(d, "POST", "/api/v2/customModels/{id}/versions/fromRepository/", pull_clean);
    router.add(d, "PATCH", "/api/v2/customModels/{id}/versions/fromRepository/", pull_from_previous);
}

/// The Terraform provider's shape, plus `hasToken` and `created`. The
/// token itself is never rendered.
pub(crate) fn render_repository(r: &Repository) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "location": r.location,
        "sourceType": r.source_type.as_str(),
        "credentialId": r.credential_id,
        "hasToken": r.has_token,
        "created": r.created_at,
        "creatorId": r.created_by,
    })
}

/// A token field: absent leaves it, null or "" clears it.
fn token_field(body: &Map<String, Value>) -> Result<Option<Option<String>>> {
    match body.get("token") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(Error::invalid("token", "must be a string")),
    }
}

fn source_type_field(body: &Map<String, Value>) -> Result<Option<SourceType>> {
    opt_str(body, "sourceType", 64)?.map(|s| SourceType::parse(&s)).transpose()
}

/// `POST remoteRepositories/`'s body. Shared with the CLI.
pub(crate) fn new_repository(body: &Map<String, Value>) -> Result<NewRepository> {
    Ok(NewRepository {
        name: opt_str(body, "name", 255)?.ok_or_else(|| Error::invalid("name", "is required"))?,
        description: opt_str(body, "description", 10_000)?.unwrap_or_default(),
        location: opt_str(body, "location", 2048)?.ok_or_else(|| Error::invalid("location", "is required"))?,
        source_type: source_type_field(body)?,
        credential_id: opt_str(body, "credentialId", 255)?.filter(|c| !c.is_empty()),
        token: token_field(body)?.flatten(),
    })
}

/// `PATCH remoteRepositories/{id}/`'s body (`credentialId: null` clears it).
pub(crate) fn repository_patch(body: &Map<String, Value>) -> Result<RepositoryPatch> {
    Ok(RepositoryPatch {
        name: opt_str(body, "name", 255)?,
        description: opt_str(body, "description", 10_000)?,
        location: opt_str(body, "location", 2048)?,
        source_type: source_type_field(body)?,
        credential_id: match body.get("credentialId") {
            None => None,
            Some(_) => Some(opt_str(body, "credentialId", 255)?.filter(|c| !c.is_empty())),
        },
        token: token_field(body)?,
    })
}

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let paging = paging(req)?;
    let page = ctx.registry.list_repositories(&who, paging.offset, paging.limit)?;
    let data = page.items.iter().map(render_repository).collect();
    Ok(Response::json(200, &page_body(req, paging, data, page.total.unwrap_or(0), page.has_more)))
}

fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let repository = ctx.registry.create_repository(&who, new_repository(&body)?, &ctx.options.jobs.git_paths)?;
    Ok(Response::json(201, &render_repository(&repository)))
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let repository = ctx.registry.get_repository(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_repository(&repository)))
}

fn update(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    ctx.registry.get_repository(&who, &id)?;
    let body = req.json_object()?;
    let repository = ctx.registry.update_repository(&who, &id, repository_patch(&body)?, &ctx.options.jobs.git_paths)?;
    Ok(Response::json(200, &render_repository(&repository)))
}

fn delete(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    remove_repository(ctx.registry, &who, &id)?;
    Ok(Response::empty(204))
}

/// Deletes a repository and its cache. Shared with the CLI.
pub(crate) fn remove_repository(registry: &Registry, who: &Principal, id: &str) -> Result<()> {
    registry.delete_repository(who, id)?;
    crate::git::remove_cache(registry.data_dir(), id);
    Ok(())
}

fn pull_clean(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    pull(ctx, req, false)
}

fn pull_from_previous(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    pull(ctx, req, true)
}

/// 202 + Location of the status (`http://host/api/v2/status/<id>/`: the
/// Terraform provider reads the id from the 7th `/`-segment).
fn pull(ctx: &Ctx, req: &mut Request, from_previous: bool) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    ctx.registry.require(&who, EntityKind::Model, &id, Access::Write).map_err(hide_forbidden)?;
    let body = req.json_object()?;
    let job = crate::git::pull::start_pull(ctx.registry, &ctx.options.jobs.git_paths, &who, &id, &body, from_previous)?;
    crate::jobs::wake();
    wait_briefly(ctx.registry, &who, &job.id)?;
    Ok(Response::json(202, &json!({"statusId": job.id})).with_header("Location", status_location(req, &job.id)))
}
