//! Versions pulled from a remote repository (DataRobot's
//! `customModels/{id}/versions/fromRepository/`), a job in the compute lane:
//! `start_pull` checks what can be known before git runs and queues the job;
//! `run_pull` pulls the files (this module's parent) and commits them through
//! `registry::custom_versions`, so a pulled version follows every rule of an
//! uploaded one (numbering, environment, requirements.txt, the file cap).

use serde_json::{json, Map, Value};

use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::custom_versions::{commit_version, hide_forbidden, resolve_environment, Upload};
use crate::registry::fields::{opt_bool_or_text, opt_str, pairs_list};
use crate::registry::compute::jobs::JobLog;
use crate::registry::catalogue::repositories::{fetch_location, GitPaths, normalize_source_path, validate_ref, Repository, SourceType, PULL_JOB};
use crate::registry::{Error, Job, Principal, Registry, Result};

/// The most `sourcePath` values one request may name (seed).
const MAX_SOURCE_PATHS: usize = 100;

/// Checks a fromRepository request and queues its pull. Everything that
/// can be known before git runs is a 422 here: the body's fields, an
/// unknown repository (another team's included), a ref or sourcePath that
/// is not a plain name, the base environment. Shared with the CLI, which
/// then runs the job itself (its subject is a fresh id, so only this job).
pub fn start_pull(
    registry: &Registry,
    git_paths: &GitPaths,
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
    let location = fetch_location(&repository, git_paths).map_err(|e| Error::invalid("repositoryId", e))?;
    super::probe(registry, &source_of(&repository, &location, token.as_deref()), git_ref.as_deref())
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

/// Where a pull may fetch from, and the most bytes it may bring (0: no cap),
/// as `serve` was told.
pub struct PullLimits<'a> {
    pub git_paths: &'a GitPaths,
    pub max_bytes: u64,
}

/// The job of `fromRepository/`: pulls the files (`crate::git`), then
/// commits the version as an upload of them would be. Any failure leaves
/// no version and says why.
pub fn run_pull(registry: &Registry, limits: &PullLimits, job: &Job) -> std::result::Result<Value, String> {
    let input = &job.input;
    let text = |key: &str| input[key].as_str().map(String::from).ok_or_else(|| format!("the pull job has no {key}"));
    let (model_id, repository_id) = (text("modelId")?, text("repositoryId")?);
    let who = registry.principal_of(&text("userId")?).map_err(|e| e.message())?;
    let job_log = JobLog::new(registry, &job.id);
    let log = |line: &str| job_log.line(line);
    let outcome = pull_and_commit(registry, limits, &who, &model_id, &repository_id, input, &log, &|| {
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
    limits: &PullLimits,
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
    let location = fetch_location(&repository, limits.git_paths)?;
    let source_paths: Vec<String> = input["sourcePaths"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
    let git_ref = input["ref"].as_str();
    let source = source_of(&repository, &location, token.as_deref());
    let max_bytes = Some(limits.max_bytes).filter(|l| *l > 0);
    let selection = super::Selection { git_ref, paths: &source_paths, max_bytes };
    let super::Pulled { git_ref, commit, files, guard } = super::pull(registry, &source, &selection, log, should_stop)?;
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
fn source_of<'a>(repository: &'a Repository, location: &'a str, token: Option<&'a str>) -> super::Source<'a> {
    super::Source {
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
