//! Remote repositories and versions pulled from them:
//! `/remoteRepositories/…` in the shape DataRobot's Terraform provider uses
//! (`{id, name, description, location, sourceType, credentialId}`), and
//! `customModels/{id}/versions/fromRepository/` (seed 002).
//!
//! A pull is a job in the compute lane (`run_pull`): the POST checks what
//! it can (the body, the repository, the paths, the environment), queues
//! it and answers 202 with the status's Location; the status then answers
//! 303 to the new version, or ERROR with what went wrong and no version.
//! The job commits through `versions::commit_version`, so a pulled version
//! follows every rule of an uploaded one (numbering, environment,
//! requirements.txt, the file cap).

use serde_json::{json, Map, Value};

use super::versions::{commit_version, hide_forbidden, resolve_environment, Upload};
use super::{opt_bool_or_text, opt_str, page_body, paging, pairs_list, status_location, wait_briefly};
use crate::http::{Ctx, Request, Response, Router, ServerOptions};
use crate::registry::access::{Access, EntityKind};
use crate::registry::jobs::JobLog;
use crate::registry::repositories::{
    fetch_location, normalize_source_path, validate_ref, NewRepository, Repository, RepositoryPatch, SourceType, PULL_JOB,
};
use crate::registry::{Error, Job, Principal, Registry, Result};

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
    let repository = ctx.registry.create_repository(&who, new_repository(&body)?, &ctx.options.git_paths)?;
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
    let repository = ctx.registry.update_repository(&who, &id, repository_patch(&body)?, &ctx.options.git_paths)?;
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
    let job = start_pull(ctx.registry, ctx.options, &who, &id, &body, from_previous)?;
    crate::jobs::wake();
    wait_briefly(ctx.registry, &who, &job.id)?;
    Ok(Response::json(202, &json!({"statusId": job.id})).with_header("Location", status_location(req, &job.id)))
}

/// The most `sourcePath` values one request may name (seed).
const MAX_SOURCE_PATHS: usize = 100;

/// Checks a fromRepository request and queues its pull. Everything that
/// can be known before git runs is a 422 here: the body's fields, an
/// unknown repository (another team's included), a ref or sourcePath that
/// is not a plain name, the base environment. Shared with the CLI, which
/// then runs the job itself (its subject is a fresh id, so only this job).
pub(crate) fn start_pull(
    registry: &Registry,
    options: &ServerOptions,
    who: &Principal,
    model_id: &str,
    body: &Map<String, Value>,
    from_previous: bool,
) -> Result<Job> {
    registry.require(who, EntityKind::Model, model_id, Access::Write).map_err(hide_forbidden)?;
    let repository_id = opt_str(body, "repositoryId", 100)?.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid("repositoryId", "is required"))?;
    let repository = registry.get_repository(who, &repository_id).map_err(|e| match e {
        Error::NotFound(_) => Error::invalid("repositoryId", format!("remote repository {repository_id} not found")),
        other => other,
    })?;
    let git_ref = opt_str(body, "ref", 255)?.filter(|r| !r.is_empty());
    if let Some(r) = &git_ref {
        validate_ref(r)?;
    }
    let source_paths: Vec<String> = match body.get("sourcePath") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![normalize_source_path(s)?],
        Some(Value::Array(items)) if items.len() <= MAX_SOURCE_PATHS => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| Error::invalid("sourcePath", "must be a string or a list of strings")).and_then(normalize_source_path))
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::invalid("sourcePath", format!("must be a string or a list of at most {MAX_SOURCE_PATHS} strings"))),
    };
    // What commit_version reads, checked now so that a bad value is a 422
    // rather than a failed job.
    let mut fields = Map::new();
    if let Some(major) = opt_bool_or_text(body, "isMajorUpdate")? {
        fields.insert("isMajorUpdate".into(), json!(major));
    }
    if let Some(keep) = opt_bool_or_text(body, "keepTrainingHoldoutData")? {
        fields.insert("keepTrainingHoldoutData".into(), json!(keep));
    }
    for key in ["baseEnvironmentId", "baseEnvironmentVersionId"] {
        if let Some(v) = opt_str(body, key, 100)?.filter(|s| !s.is_empty()) {
            fields.insert(key.into(), json!(v));
        }
    }
    if let Some(values) = body.get("requiredMetadataValues").filter(|v| !v.is_null()) {
        fields.insert("requiredMetadataValues".into(), pairs_list("requiredMetadataValues", values, "value", 100)?);
    }
    let latest = registry.latest_version(who, model_id)?;
    resolve_environment(registry, who, &fields, latest.as_ref(), from_previous)?;
    // An unreachable repository, or a branch or tag it does not have.
    let token = registry.repository_token(who, &repository.id)?;
    let location = fetch_location(&repository, &options.git_paths).map_err(|e| Error::invalid("repositoryId", e))?;
    crate::git::probe(registry, &source_of(&repository, &location, token.as_deref()), git_ref.as_deref())
        .map_err(|e| Error::invalid(if git_ref.is_some() { "ref" } else { "repositoryId" }, e))?;
    let input = json!({
        "modelId": model_id,
        "userId": who.user_id,
        "repositoryId": repository.id,
        "ref": git_ref,
        "sourcePaths": source_paths,
        "fromPrevious": from_previous,
        "fields": fields,
    });
    registry.enqueue_job(&who.team_id, PULL_JOB, Some(&crate::registry::new_id()), input, None)
}

/// The job of `fromRepository/`: pulls the files (`crate::git`), then
/// commits the version as an upload of them would be. Any failure leaves
/// no version and says why.
pub fn run_pull(registry: &Registry, options: &ServerOptions, job: &Job) -> std::result::Result<Value, String> {
    let input = &job.input;
    let text = |key: &str| input[key].as_str().map(String::from).ok_or_else(|| format!("the pull job has no {key}"));
    let (model_id, repository_id) = (text("modelId")?, text("repositoryId")?);
    let who = registry.principal_of(&text("userId")?).map_err(|e| e.message())?;
    let job_log = JobLog::new(registry, &job.id);
    let log = |line: &str| job_log.line(line);
    let outcome = pull_and_commit(registry, options, &who, &model_id, &repository_id, input, &log, &|| {
        registry.job_cancel_requested(&job.id).unwrap_or(true).then(|| "the pull was cancelled".to_string())
    });
    match &outcome {
        Ok(version_id) => log(&format!("Created version {version_id} of custom model {model_id}.")),
        Err(message) => log(&format!("ERROR: {message}")),
    }
    job_log.flush();
    let version_id = outcome?;
    Ok(json!({"location": format!("/api/v2/customModels/{model_id}/versions/{version_id}/"), "versionId": version_id}))
}

#[allow(clippy::too_many_arguments)]
fn pull_and_commit(
    registry: &Registry,
    options: &ServerOptions,
    who: &Principal,
    model_id: &str,
    repository_id: &str,
    input: &Value,
    log: &dyn Fn(&str),
    should_stop: &dyn Fn() -> Option<String>,
) -> std::result::Result<String, String> {
    let repository = registry.get_repository(who, repository_id).map_err(|e| e.message())?;
    // Before any git call: the model may have gone, or the caller's rights.
    registry.require(who, EntityKind::Model, model_id, Access::Write).map_err(|e| hide_forbidden(e).message())?;
    let token = registry.repository_token(who, repository_id).map_err(|e| e.message())?;
    let location = fetch_location(&repository, &options.git_paths)?;
    let source_paths: Vec<String> = input["sourcePaths"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
    let git_ref = input["ref"].as_str();
    let source = source_of(&repository, &location, token.as_deref());
    // The offline CLI has no upload limit (0).
    let max_bytes = Some(options.upload_limit).filter(|l| *l > 0);
    let selection = crate::git::Selection { git_ref, paths: &source_paths, max_bytes };
    let crate::git::Pulled { git_ref, commit, files, guard } = crate::git::pull(registry, &source, &selection, log, should_stop)?;
    let mut upload = Upload { fields: input["fields"].as_object().cloned().unwrap_or_default(), ..Default::default() };
    for file in files {
        let origin = json!({
            "fileSource": repository.source_type.as_str(),
            "repositoryLocation": repository.location,
            "repositoryName": repository.name,
            "repositoryFilePath": file.repository_path,
            "ref": git_ref,
            "commitSha": commit,
        });
        upload.origins.insert(file.path.clone(), origin);
        upload.paths.push(file.path);
        upload.files.push(file.digest);
    }
    let from_previous = input["fromPrevious"].as_bool().unwrap_or(false);
    let version = commit_version(registry, who, model_id, upload, from_previous).map_err(|e| describe(&e))?;
    drop(guard);
    Ok(version.id)
}

/// Where git pulls a registered repository from.
fn source_of<'a>(repository: &'a Repository, location: &'a str, token: Option<&'a str>) -> crate::git::Source<'a> {
    crate::git::Source {
        id: &repository.id,
        name: &repository.name,
        location,
        local: repository.source_type == SourceType::Git,
        credentials: token.map(|t| (repository.source_type.token_username(), t)),
    }
}

/// An error as one line, with the details a 422 would carry in its body
/// (the lines of a requirements.txt that cannot be parsed).
fn describe(error: &Error) -> String {
    let mut text = format!("the version cannot be created: {}", error.message());
    if let Error::Unprocessable { details, .. } = error {
        for invalid in details["invalidDependencies"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "; requirements.txt line {}: {:?}: {}",
                invalid["lineNumber"],
                invalid["line"].as_str().unwrap_or(""),
                invalid["message"].as_str().unwrap_or("")
            ));
        }
    }
    text
}
