//! Execution environments: `/executionEnvironments/…` and
//! `/executionEnvironmentsPermadelete/`.
//!
//! A version's build is a job (see registry::envbuild). The POST waits a
//! moment for it (`wait_briefly`), so that a validate-only build is already
//! terminal when the client first polls (each non-terminal poll costs it
//! 5 s); a real docker build is polled as usual.

use serde_json::{json, Map, Value};

use super::{
    access_changes, access_list, attachment, opt_bool_or_text, opt_str, opt_string_list, page_body, paging, pairs_list, query_bool,
    wait_briefly, PartBudget,
};
use crate::http::{Ctx, FileToSend, Request, Response, Router};
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::compute::environments::{
    EnvVersion, Environment, EnvironmentPatch, EnvironmentQuery, NewEnvVersion, NewEnvironment, BUILD_STATUSES,
    LANGUAGES, USE_CASES,
};
use crate::registry::compute::envbuild::{sniff, ArchiveFormat};
use crate::registry::{Error, PageRequest, Registry, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/executionEnvironments/", list);
    router.add(d, "POST", "/api/v2/executionEnvironments/", create);
    router.add(d, "POST", "/api/v2/executionEnvironmentsPermadelete/", permadelete);
    router.add(d, "GET", "/api/v2/executionEnvironments/{id}/", get);
    router.add(d, "PATCH", "/api/v2/executionEnvironments/{id}/", update);
    router.add(d, "DELETE", "/api/v2/executionEnvironments/{id}/", delete);
    router.add(d, "GET", "/api/v2/executionEnvironments/{id}/accessControl/", get_access);
    router.add(d, "PATCH", "/api/v2/executionEnvironments/{id}/accessControl/", patch_access);
    router.add(d, "GET", "/api/v2/executionEnvironments/{id}/versions/", list_versions);
    router.add(d, "POST", "/api/v2/executionEnvironments/{id}/versions/", create_version);
    router.add(d, "GET", "/api/v2/executionEnvironments/{id}/versions/{vid}/", get_version);
    router.add(d, "GET", "/api/v2/executionEnvironments/{id}/versions/{vid}/buildLog/", build_log);
    router.add(d, "GET", "/api/v2/executionEnvironments/{id}/versions/{vid}/download/", download);
}

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let paging = paging(req)?;
    let use_case = req.query("useCases").filter(|s| !s.is_empty()).map(String::from);
    if let Some(u) = &use_case {
        check_enum("useCases", u, &USE_CASES)?;
    }
    let query = EnvironmentQuery {
        search: req.query("searchFor").filter(|s| !s.is_empty()).map(String::from),
        use_case,
        only_own: query_bool(req, "isOwn")?.unwrap_or(false),
        is_public: query_bool(req, "isPublic")?,
        offset: paging.offset,
        limit: paging.limit,
    };
    let page = ctx.registry.list_environments(&who, &query)?;
    let data = page.items.iter().map(|e| render_environment(ctx.registry, &req.base_url(), e)).collect::<Result<Vec<_>>>()?;
    Ok(Response::json(200, &page_body(req, paging, data, page.total.unwrap_or(0), page.has_more)))
}

fn check_enum(field: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("must be one of {}, got {value:?}", allowed.join(", "))))
    }
}

fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let name = opt_str(&body, "name", 255)?.filter(|n| !n.trim().is_empty()).ok_or_else(|| Error::invalid("name", "is required"))?;
    let language = opt_str(&body, "programmingLanguage", 20)?.unwrap_or_else(|| "other".into());
    check_enum("programmingLanguage", &language, &LANGUAGES)?;
    if language == "legacy" && !who.is_admin {
        return Err(Error::unprocessable("User does not have permission to create legacy conversion environment"));
    }
    let is_public = opt_bool_or_text(&body, "isPublic")?.unwrap_or(false);
    if is_public && !who.is_admin {
        return Err(Error::Forbidden("Public access to environments can only be added by an admin".into()));
    }
    // Environment ids are one space across teams, so a chosen id would either collide with
    // another team's environment or, answered 409, reveal that it exists (issue 11). The
    // id is always minted; the field is refused whatever its value, so the answer says
    // nothing about other teams.
    if opt_str(&body, "environmentId", 100)?.is_some() {
        if !who.is_admin {
            return Err(Error::Forbidden("only admins may choose an environment id".into()));
        }
        return Err(Error::invalid(
            "environmentId",
            "modelreg assigns environment ids; create the environment without environmentId and use the id in the answer",
        ));
    }
    let id = None;
    let env = ctx.registry.create_environment(
        &who,
        NewEnvironment {
            id,
            name,
            description: opt_str(&body, "description", 10_000)?.unwrap_or_default(),
            programming_language: language,
            is_public,
            use_cases: use_cases(&body)?.unwrap_or_else(|| vec!["customModel".into()]),
            required_metadata_keys: metadata_keys(&body)?.unwrap_or_else(|| json!([])),
        },
    )?;
    let location = format!("{}/api/v2/executionEnvironments/{}/", req.base_url(), env.id);
    Ok(Response::json(201, &json!({"id": env.id})).with_header("Location", location))
}

fn use_cases(body: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let list = opt_string_list(body, "useCases", 100)?;
    for u in list.iter().flatten() {
        check_enum("useCases", u, &USE_CASES)?;
    }
    Ok(list)
}

fn metadata_keys(body: &Map<String, Value>) -> Result<Option<Value>> {
    match body.get("requiredMetadataKeys") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => pairs_list("requiredMetadataKeys", v, "displayName", 10_000).map(Some),
    }
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let env = ctx.registry.get_environment(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_environment(ctx.registry, &req.base_url(), &env)?))
}

fn update(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    ctx.registry.require(&who, EntityKind::Environment, &id, Access::Write)?;
    let body = req.json_object()?;
    let programming_language = opt_str(&body, "programmingLanguage", 20)?;
    if let Some(l) = &programming_language {
        check_enum("programmingLanguage", l, &LANGUAGES)?;
    }
    let is_public = opt_bool_or_text(&body, "isPublic")?;
    if is_public == Some(true) && !who.is_admin {
        return Err(Error::Forbidden("Public access to environments can only be added by an admin".into()));
    }
    let name = match opt_str(&body, "name", 255)? {
        Some(n) if n.trim().is_empty() => return Err(Error::invalid("name", "must not be empty")),
        other => other,
    };
    let patch = EnvironmentPatch {
        name,
        description: opt_str(&body, "description", 10_000)?,
        programming_language,
        is_public,
        use_cases: use_cases(&body)?,
        required_metadata_keys: metadata_keys(&body)?,
    };
    let env = ctx.registry.update_environment(&who, &id, patch)?;
    Ok(Response::json(200, &render_environment(ctx.registry, &req.base_url(), &env)?))
}

fn delete(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    ctx.registry.soft_delete_environment(req.who()?, req.param("id"))?;
    Ok(Response::empty(204))
}

fn permadelete(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    if !who.is_admin {
        return Err(Error::Forbidden("User does not have access to this functionality".into()));
    }
    let body = req.json_object()?;
    let ids = opt_string_list(&body, "executionEnvironmentIds", 10)?
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| Error::invalid("executionEnvironmentIds", "is required: 1 to 10 environment ids"))?;
    ctx.registry.permadelete_environments(&who, &ids)?;
    Ok(Response::empty(204))
}

fn get_access(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let entries = ctx.registry.list_access(&who, EntityKind::Environment, req.param("id"))?;
    Ok(Response::json(200, &access_list(req, entries)?))
}

fn patch_access(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    ctx.registry.access(&who, EntityKind::Environment, &id)?;
    let body = req.json_object()?;
    ctx.registry.update_access(&who, EntityKind::Environment, &id, &access_changes(&body)?)?;
    Ok(Response::empty(204))
}

fn list_versions(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let paging = paging(req)?;
    let status = req.query("buildStatus").filter(|s| !s.is_empty()).map(String::from);
    if let Some(s) = &status {
        check_enum("buildStatus", s, &BUILD_STATUSES)?;
    }
    let search = req.query("search").filter(|s| !s.is_empty()).map(String::from);
    let page = ctx.registry.list_env_versions(
        &who,
        req.param("id"),
        status.as_deref(),
        search.as_deref(),
        PageRequest::Offset { offset: paging.offset, limit: paging.limit },
    )?;
    let data = page.items.iter().map(|v| render_version(&req.base_url(), v)).collect();
    Ok(Response::json(200, &page_body(req, paging, data, page.total.unwrap_or(0), page.has_more)))
}

fn create_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let env_id = req.param("id").to_string();
    // 404 before reading a possibly large body.
    ctx.registry.require(&who, EntityKind::Environment, &env_id, Access::Write)?;
    let guard = ctx.registry.upload_guard()?;
    let mut new = NewEnvVersion::default();
    let mut fields = Map::new();
    if req.is_multipart() {
        let mut budget = PartBudget::new(req.upload_limit());
        let mut multipart = req.multipart()?;
        while let Some(mut part) = multipart.next_part()? {
            let name = part.name().to_string();
            match name.as_str() {
                // `docker_context` is what client 3.20's create() sends;
                // `dockerContext` is the seed's (and upload()'s) name.
                "dockerContext" | "docker_context" => {
                    if new.context.is_some() {
                        return Err(Error::invalid("dockerContext", "send one docker context (dockerContext or docker_context, not both)"));
                    }
                    let filename = part.filename().unwrap_or("context").to_string();
                    let digest = budget.file(ctx.registry, &mut part)?;
                    new.context = Some((digest, filename));
                }
                "dockerImage" => {
                    if new.image.is_some() {
                        return Err(Error::invalid("dockerImage", "send one image archive"));
                    }
                    new.image = Some(budget.file(ctx.registry, &mut part)?);
                }
                _ => {
                    let text = budget.text(&mut part, &name, 64 * 1024)?;
                    fields.insert(name, Value::String(text));
                }
            }
        }
    } else {
        fields = req.json_object()?;
    }
    new.label = opt_str(&fields, "label", 50)?.unwrap_or_default();
    new.description = opt_str(&fields, "description", 10_000)?.unwrap_or_default();
    new.docker_image_uri = opt_str(&fields, "dockerImageUri", 2000)?.filter(|s| !s.is_empty());
    new.id = opt_str(&fields, "environmentVersionId", 100)?;
    if new.id.is_some() && !who.is_admin {
        return Err(Error::Forbidden("only admins may choose an environment version id".into()));
    }
    if new.context.is_none() && new.image.is_none() && new.docker_image_uri.is_none() {
        return Err(Error::invalid("dockerContext", "one of dockerContext, dockerImage or dockerImageUri is required"));
    }
    // An unreadable upload is refused at once (422); a readable archive
    // whose content is wrong becomes a failed build with a clear log.
    if let Some((digest, _)) = &new.context {
        let mut file = ctx.registry.open_blob(&digest.sha256)?;
        if sniff(&mut file)?.is_none() {
            return Err(Error::invalid("dockerContext", "must be a .tar.gz or .zip archive"));
        }
    }
    // The version and its build job commit together.
    let (version, job) = ctx.registry.create_env_version_and_build(&who, &env_id, new)?;
    drop(guard);
    crate::jobs::wake();
    wait_briefly(ctx.registry, &who, &job.id)?;
    let location = format!("{}/api/v2/executionEnvironments/{env_id}/versions/{}/", req.base_url(), version.id);
    Ok(Response::json(202, &json!({"id": version.id, "statusId": job.id})).with_header("Location", location))
}

fn get_version(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let version = ctx.registry.get_env_version(req.who()?, req.param("id"), req.param("vid"))?;
    Ok(Response::json(200, &render_version(&req.base_url(), &version)))
}

fn build_log(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let version = ctx.registry.get_env_version(req.who()?, req.param("id"), req.param("vid"))?;
    Ok(Response::json(200, &build_log_body(ctx.registry, &version)?))
}

/// `{log, error}` of a version's build. Shared with the CLI.
pub(crate) fn build_log_body(registry: &Registry, version: &EnvVersion) -> Result<Value> {
    let job = registry.latest_job_for(&version.id)?;
    // The seed: `log` is empty until the build finishes; `error` is empty
    // on success.
    let (log, error) = match (&job, version.build_status.as_str()) {
        (Some(job), "success") => (job.log.clone(), String::new()),
        (Some(job), "failed") => (job.log.clone(), job.error.clone().unwrap_or_else(|| "the build failed".into())),
        _ => (String::new(), String::new()),
    };
    Ok(json!({"log": log, "error": error}))
}

fn download(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let version = ctx.registry.get_env_version(req.who()?, req.param("id"), req.param("vid"))?;
    let want_image = query_bool(req, "imageFile")?.unwrap_or(false);
    let (stored, filename) = if want_image {
        let image = version.image.as_ref().ok_or_else(|| Error::NotFound("this version has no uploaded image archive".into()))?;
        (image, format!("image-{}.tar", version.id))
    } else {
        let context = version.context.as_ref().ok_or_else(|| Error::NotFound("this version has no docker context".into()))?;
        (context, context.filename.clone().unwrap_or_else(|| format!("context-{}", version.id)))
    };
    let mut file = ctx.registry.open_blob(&stored.sha256)?;
    let content_type = match sniff(&mut file)? {
        Some(ArchiveFormat::Zip) => "application/zip",
        Some(ArchiveFormat::TarGz) => "application/gzip",
        None => "application/x-tar",
    };
    let response = req.file_answer(FileToSend { file, size: stored.size, sha256: stored.sha256.clone(), content_type: content_type.into() });
    Ok(response.with_header("Content-Disposition", attachment(&filename)))
}

/// `ExecutionEnvironmentResponse`.
pub(crate) fn render_environment(registry: &Registry, base_url: &str, env: &Environment) -> Result<Value> {
    let latest = registry.latest_env_version(&env.id, false)?;
    let latest_ok = registry.latest_env_version(&env.id, true)?;
    Ok(json!({
        "id": env.id,
        "name": env.name,
        "description": env.description,
        "programmingLanguage": env.programming_language,
        "isPublic": env.is_public,
        "created": env.created_at,
        "username": env.username,
        "useCases": env.use_cases,
        "deploymentsCount": 0,
        "requiredMetadataKeys": env.required_metadata_keys,
        "latestVersion": latest.as_ref().map(|v| render_version(base_url, v)),
        "latestSuccessfulVersion": latest_ok.as_ref().map(|v| render_version(base_url, v)),
    }))
}

/// `ExecutionEnvironmentVersionResponse`. `imageId` must be non-blank for
/// the client: until a build records one, it is the context's digest.
pub(crate) fn render_version(base_url: &str, v: &EnvVersion) -> Value {
    let base = format!("{base_url}/api/v2/executionEnvironments/{}/versions/{}/download/", v.environment_id, v.id);
    let image_id = v
        .image_id
        .clone()
        .or_else(|| v.context.as_ref().map(|c| format!("sha256:{}", c.sha256)))
        .or_else(|| v.image.as_ref().map(|c| format!("sha256:{}", c.sha256)))
        .unwrap_or_else(|| format!("pending:{}", v.id));
    json!({
        "id": v.id,
        "environmentId": v.environment_id,
        "buildStatus": v.build_status,
        "imageId": image_id,
        "label": v.label,
        "description": v.description,
        "created": v.created_at,
        "dockerContext": v.context.as_ref().map(|_| base.clone()),
        "dockerContextSize": v.context.as_ref().map(|c| c.size),
        "dockerImage": v.image.as_ref().map(|_| format!("{base}?imageFile=true")),
        "dockerImageSize": v.image.as_ref().map(|c| c.size),
        "sourceDockerImageUri": v.docker_image_uri,
        "baseImage": v.base_image,
        "buildId": null,
    })
}
