//! The rules of a DataRobot custom model version, whichever way it arrives:
//! an upload (POST or PATCH `…/versions/`), a pull from a repository (a
//! job), a model made from a template, or the offline CLI. Numbering
//! (major.minor), the base environment, resource settings, training data,
//! requirements.txt and the file cap are decided here, inside the version's
//! write transaction; the dialect only reads the request and renders the
//! answer.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Map, Value};

use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::compute::datasets::TrainingDataRef;
use crate::registry::fields::{insert_some, json_field, opt_bool_or_text, opt_int_or_text, opt_str, pairs_list};
use crate::registry::catalogue::requirements;
use crate::registry::{validate_file_path, Digest, Error, Model, NewFile, NewVersion, Principal, Registry, Result, Version};

/// The seed's response schema says 100 items, but issue 5 requires 1,000-file
/// versions (the client does not check the count); uploads allow 1000 paths.
pub const MAX_ITEMS: usize = 1000;
/// The seed's request schema allows 1000 filePath values per upload; the
/// same cap applies to file parts and to filesToDelete.
pub const MAX_UPLOAD_PATHS: usize = 1000;
/// requirements.txt is parsed in memory: at most this many bytes.
pub const MAX_REQUIREMENTS_BYTES: u64 = 1024 * 1024;

pub const MIN_MEMORY: i64 = 134_217_728;
pub const MAX_MEMORY: i64 = 15_032_385_536;

/// The seed's 404 "…or user does not have edit permissions" for uploads.
pub fn hide_forbidden(e: Error) -> Error {
    match e {
        Error::Forbidden(m) => Error::NotFound(format!("custom model not found or you do not have edit permissions ({m})")),
        other => other,
    }
}

/// What a version upload sent, once its files are in the blob store.
#[derive(Default)]
pub struct Upload {
    pub files: Vec<Digest>,
    pub paths: Vec<String>,
    pub delete: Vec<String>,
    /// Text fields (multipart) or JSON values, by name.
    pub fields: Map<String, Value>,
    /// Where uploaded files came from, by path, when not from the client
    /// (a pull from a repository: `repository_origin`).
    pub origins: Map<String, Value>,
}

/// The version attr that records, per path, the repository a file was
/// pulled from (`render_version` shows it on the file's item).
pub const REPOSITORY_FILES: &str = "repositoryFiles";

/// Records an upload as the model's next version: a clean one, or one
/// derived from the latest (`from_previous`). The blobs must be stored
/// already, under an upload guard the caller still holds. Shared with the
/// CLI.
pub fn commit_version(registry: &Registry, who: &Principal, id: &str, upload: Upload, from_previous: bool) -> Result<Version> {
    registry.require(who, EntityKind::Model, id, Access::Write).map_err(hide_forbidden)?;
    let who = who.clone();
    let fields = &upload.fields;
    if upload.files.len() != upload.paths.len() {
        return Err(Error::invalid(
            "filePath",
            format!("every file needs a filePath: got {} files and {} paths", upload.files.len(), upload.paths.len()),
        ));
    }
    for path in &upload.paths {
        validate_file_path(path)?;
    }
    if upload.delete.len() > MAX_UPLOAD_PATHS {
        return Err(Error::invalid("filesToDelete", format!("at most {MAX_UPLOAD_PATHS} may be sent at once")));
    }
    let major = opt_bool_or_text(fields, "isMajorUpdate")?.unwrap_or(true);
    let mut sent = Map::new();
    apply_resource_fields(fields, &mut sent)?;
    if let Some(values) = json_field(fields, "requiredMetadataValues")? {
        sent.insert("requiredMetadataValues".into(), pairs_list("requiredMetadataValues", &values, "value", 100)?);
    }
    if let Some(git) = json_field(fields, "gitModelVersion")? {
        sent.insert("gitModelVersion".into(), git_model_version(&git)?);
    }
    let uploaded: BTreeMap<String, Digest> = upload.paths.iter().cloned().zip(upload.files.iter().cloned()).collect();
    // Everything that depends on the latest version (inherited settings and
    // environment, the files, the number) is computed inside the write
    // transaction, from the latest version as it is when this one commits.
    registry.create_version_with(&who, id, |latest| {
        let mut attrs = Map::new();
        // Resource settings: a derived version inherits them unless re-sent.
        if from_previous {
            if let Some(l) = latest {
                for key in ["networkEgressPolicy", "maximumMemory", "desiredMemory", "replicas", "requiresHa", "resourceBundleId", "requiredMetadataValues"] {
                    if let Some(v) = l.attrs.get(key) {
                        attrs.insert(key.into(), v.clone());
                    }
                }
            }
        }
        attrs.extend(sent.clone());
        // Checked against the model and its datasets as they are when this
        // version commits.
        attrs.extend(version_training_attrs(registry, &who, id, fields, latest)?);
        let (env_id, env_version_id) = resolve_environment(registry, &who, fields, latest, from_previous)?;
        attrs.insert("baseEnvironmentId".into(), json!(env_id));
        attrs.insert("baseEnvironmentVersionId".into(), json!(env_version_id));
        // The basis: the latest version's files for PATCH, nothing for POST.
        let mut files: BTreeMap<String, Digest> = BTreeMap::new();
        if from_previous {
            if let Some(l) = latest {
                for f in &l.files {
                    files.insert(f.path.clone(), Digest { sha256: f.sha256.clone(), size: f.size });
                }
                for item in &upload.delete {
                    let Some(f) = l.files.iter().find(|f| &f.id == item) else {
                        return Err(Error::invalid("filesToDelete", format!("{item:?} is not the id of a file of the latest version")));
                    };
                    files.remove(&f.path);
                }
            } else if !upload.delete.is_empty() {
                return Err(Error::invalid("filesToDelete", "the model has no version to delete files from"));
            }
        }
        // Uploaded files replace files at the same path (seed).
        files.extend(uploaded.clone());
        // Kept files keep the record of the repository they came from;
        // replaced ones lose it (or get the new one).
        let mut origins = Map::new();
        if let (true, Some(Value::Object(kept))) = (from_previous, latest.and_then(|l| l.attrs.get(REPOSITORY_FILES))) {
            origins.extend(kept.iter().filter(|(path, _)| files.contains_key(*path) && !uploaded.contains_key(*path)).map(|(p, o)| (p.clone(), o.clone())));
        }
        origins.extend(upload.origins.clone());
        if !origins.is_empty() {
            attrs.insert(REPOSITORY_FILES.into(), Value::Object(origins));
        }
        if files.len() > MAX_ITEMS {
            return Err(Error::unprocessable(format!("a version may hold at most {MAX_ITEMS} files; this one would hold {}", files.len())));
        }
        let (vmaj, vmin) = match latest.map(numbers) {
            None if major => (1, 0),
            None => (0, 1),
            Some((a, _)) if major => (a + 1, 0),
            Some((a, b)) => (a, b + 1),
        };
        attrs.insert("versionMajor".into(), json!(vmaj));
        attrs.insert("versionMinor".into(), json!(vmin));
        attrs.insert("dependencies".into(), dependencies(registry, files.get("requirements.txt"))?);
        let files = files.into_iter().map(|(path, digest)| NewFile { path, digest }).collect();
        Ok(NewVersion { description: Some(String::new()), attrs, files, label: None })
    })
}

/// `{commitUrl, mainBranchCommitSha, pullRequestCommitSha, refName}`: the
/// commit a CI run built the version from (seed 002's GitModelVersion).
fn git_model_version(value: &Value) -> Result<Value> {
    let bad = |why: &str| Error::invalid("gitModelVersion", why.to_string());
    let Some(git) = value.as_object() else { return Err(bad("must be an object")) };
    let sha = |key: &str, required: bool| -> Result<Value> {
        match git.get(key) {
            Some(Value::String(s)) if s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()) => Ok(json!(s)),
            None | Some(Value::Null) if !required => Ok(Value::Null),
            _ => Err(bad(&format!("{key} must be a 40-character commit SHA-1"))),
        }
    };
    let text = |key: &str| -> Result<Value> {
        match git.get(key) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 2000 => Ok(json!(s)),
            _ => Err(bad(&format!("{key} is required"))),
        }
    };
    Ok(json!({
        "commitUrl": text("commitUrl")?,
        "mainBranchCommitSha": sha("mainBranchCommitSha", true)?,
        "pullRequestCommitSha": sha("pullRequestCommitSha", false)?,
        "refName": text("refName")?,
    }))
}

/// The version's parsed requirements.txt; an invalid line fails the upload
/// with the seed's 422 fields `dependencies` and `invalidDependencies`.
fn dependencies(registry: &Registry, requirements: Option<&Digest>) -> Result<Value> {
    let Some(digest) = requirements else { return Ok(json!([])) };
    // Read one byte more than allowed: a longer file is refused, never
    // silently cut.
    let mut bytes = Vec::new();
    registry.open_blob(&digest.sha256)?.take(MAX_REQUIREMENTS_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_REQUIREMENTS_BYTES {
        return Err(Error::unprocessable(format!("requirements.txt is larger than {MAX_REQUIREMENTS_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::unprocessable("requirements.txt must be UTF-8 text"))?;
    let parsed = requirements::parse(&text);
    let deps: Vec<Value> = parsed.dependencies.iter().map(|d| d.to_json()).collect();
    if !parsed.invalid.is_empty() {
        return Err(Error::Unprocessable {
            message: "Invalid requirements.txt: some lines cannot be parsed".into(),
            details: json!({
                "dependencies": deps,
                "invalidDependencies": parsed.invalid.iter().map(|i| i.to_json()).collect::<Vec<_>>(),
            }),
        });
    }
    if deps.len() > 1000 {
        return Err(Error::unprocessable("requirements.txt may list at most 1000 dependencies"));
    }
    Ok(Value::Array(deps))
}

/// The seed's base environment rules: at least one of the two ids (a
/// derived version inherits both); a version id must belong to the
/// environment; a missing version id is the latest model version's when
/// it used the same environment, else the environment's latest successful
/// build.
pub fn resolve_environment(
    registry: &Registry,
    who: &Principal,
    fields: &Map<String, Value>,
    latest: Option<&Version>,
    from_previous: bool,
) -> Result<(String, String)> {
    let env_id = opt_str(fields, "baseEnvironmentId", 100)?.filter(|s| !s.is_empty());
    let env_version_id = opt_str(fields, "baseEnvironmentVersionId", 100)?.filter(|s| !s.is_empty());
    let inherited = |key: &str| latest.and_then(|l| l.attrs.get(key)).and_then(Value::as_str).map(String::from);
    let (env_id, env_version_id) = match (env_id, env_version_id) {
        (None, None) if from_previous && inherited("baseEnvironmentId").is_some() => {
            (inherited("baseEnvironmentId"), inherited("baseEnvironmentVersionId"))
        }
        (None, None) => {
            return Err(Error::invalid("baseEnvironmentId", "at least one of baseEnvironmentId and baseEnvironmentVersionId must be provided"))
        }
        pair => pair,
    };
    let not_usable = |e: Error| match e {
        Error::NotFound(m) => Error::invalid("baseEnvironmentId", m),
        other => other,
    };
    match (env_id, env_version_id) {
        (env, Some(vid)) => {
            // One team- and access-filtered lookup, one message: another
            // team's or an invisible version is "not found", naming only
            // the id the caller sent.
            let version = registry.usable_env_version(who, &vid).map_err(|e| match e {
                Error::NotFound(_) => Error::invalid("baseEnvironmentVersionId", format!("environment version {vid} not found")),
                other => other,
            })?;
            if let Some(env) = env.filter(|e| *e != version.environment_id) {
                return Err(Error::invalid("baseEnvironmentVersionId", format!("version {vid} does not belong to environment {env}")));
            }
            Ok((version.environment_id, vid))
        }
        (Some(env), None) => {
            registry.get_environment(who, &env).map_err(not_usable)?;
            if inherited("baseEnvironmentId").as_deref() == Some(env.as_str()) {
                if let Some(vid) = inherited("baseEnvironmentVersionId") {
                    return Ok((env, vid));
                }
            }
            let built = registry.latest_env_version(&env, true)?.ok_or_else(|| {
                Error::invalid("baseEnvironmentId", format!("environment {env} has no successfully built version"))
            })?;
            Ok((env, built.id))
        }
        (None, None) => Err(Error::invalid("baseEnvironmentId", "is required")),
    }
}

/// (versionMajor, versionMinor); a version made by another dialect counts
/// as `number.0`.
pub fn numbers(v: &Version) -> (i64, i64) {
    let get = |k: &str| v.attrs.get(k).and_then(Value::as_i64);
    match (get("versionMajor"), get("versionMinor")) {
        (Some(a), Some(b)) => (a, b),
        _ => (v.number, 0),
    }
}

/// Memory, replicas and egress: shared by models and versions.
pub fn apply_resource_fields(body: &Map<String, Value>, attrs: &mut Map<String, Value>) -> Result<()> {
    match opt_str(body, "networkEgressPolicy", 20)?.as_deref() {
        None => {}
        Some(p @ ("NONE" | "PUBLIC")) => {
            attrs.insert("networkEgressPolicy".into(), json!(p));
        }
        // The seed allows DR_API_ACCESS here, but client 3.20 crashes on
        // reading it back; refusing it is the honest choice.
        Some(other) => return Err(Error::invalid("networkEgressPolicy", format!("must be NONE or PUBLIC, got {other:?}"))),
    }
    insert_some(attrs, "maximumMemory", opt_int_or_text(body, "maximumMemory", MIN_MEMORY, MAX_MEMORY)?.map(Value::from));
    insert_some(attrs, "desiredMemory", opt_int_or_text(body, "desiredMemory", MIN_MEMORY, MAX_MEMORY)?.map(Value::from));
    insert_some(attrs, "replicas", opt_int_or_text(body, "replicas", 1, 8)?.map(Value::from));
    insert_some(attrs, "requiresHa", opt_bool_or_text(body, "requiresHa")?.map(Value::from));
    insert_some(attrs, "resourceBundleId", opt_str(body, "resourceBundleId", 100)?.map(Value::from));
    Ok(())
}

pub const VERSIONS_FLAG: &str = "isTrainingDataForVersionsPermanentlyEnabled";

pub fn versions_hold_training_data(model: &Model) -> bool {
    model.attrs.get(VERSIONS_FLAG).and_then(Value::as_bool) == Some(true)
}

pub fn not_on_versions() -> Error {
    Error::unprocessable(format!(
        "this model keeps its training data on the model, not on its versions; set {VERSIONS_FLAG} on the model \
         first, or assign the data with PATCH customModels/{{id}}/trainingData/"
    ))
}

/// The `trainingData` and `holdoutData` attrs of a version being created
/// from `fields` (an upload's, or withTrainingData's body): the data sent,
/// checked against the model and its datasets, or else, unless
/// `keepTrainingHoldoutData` is false, the latest version's. Runs inside
/// the version's write transaction.
pub fn version_training_attrs(
    registry: &Registry,
    who: &Principal,
    model_id: &str,
    fields: &Map<String, Value>,
    latest: Option<&Version>,
) -> Result<Map<String, Value>> {
    let training = json_field(fields, "trainingData")?;
    let holdout = json_field(fields, "holdoutData")?;
    let keep = opt_bool_or_text(fields, "keepTrainingHoldoutData")?.unwrap_or(true);
    let mut attrs = Map::new();
    if training.is_none() && holdout.is_none() {
        for key in ["trainingData", "holdoutData"] {
            if let Some(v) = latest.filter(|_| keep).and_then(|l| l.attrs.get(key)) {
                attrs.insert(key.into(), v.clone());
            }
        }
        return Ok(attrs);
    }
    let model = registry.get_model(who, model_id)?;
    if !versions_hold_training_data(&model) {
        return Err(not_on_versions());
    }
    let Some(training) = training else {
        return Err(Error::invalid("holdoutData", "needs trainingData: holdout data goes with the version's training data"));
    };
    let training = object("trainingData", &training)?;
    let holdout = holdout.as_ref().map(|h| object("holdoutData", h)).transpose()?;
    let partition_column = match holdout {
        Some(h) => opt_str(h, "partitionColumn", 500)?.filter(|s| !s.is_empty()),
        None => None,
    };
    let dataset = registry.training_dataset(
        who,
        &model,
        &TrainingDataRef {
            dataset_id: opt_str(training, "datasetId", 100)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::invalid("trainingData", "needs a datasetId"))?,
            dataset_version_id: opt_str(training, "datasetVersionId", 100)?.filter(|s| !s.is_empty()),
            partition_column: partition_column.clone(),
        },
    )?;
    attrs.insert(
        "trainingData".into(),
        json!({
            "datasetId": dataset.id,
            "datasetVersionId": dataset.version_id,
            "datasetName": opt_str(training, "datasetName", 255)?.unwrap_or(dataset.name),
            // Checked above, so never in progress and never failed.
            "assignmentInProgress": false,
            "assignmentError": null,
        }),
    );
    if let Some(holdout) = holdout {
        // Structured models split by a partition column, unstructured ones
        // hold out a dataset (seed 002; the client refuses both at once).
        let holdout_id = opt_str(holdout, "datasetId", 100)?.filter(|s| !s.is_empty());
        if holdout_id.is_some() && partition_column.is_some() {
            return Err(Error::invalid("holdoutData", "give either a datasetId or a partitionColumn, not both"));
        }
        let held = match holdout_id {
            Some(dataset_id) => {
                let dataset_version_id = opt_str(holdout, "datasetVersionId", 100)?.filter(|s| !s.is_empty());
                Some(registry.training_dataset(who, &model, &TrainingDataRef { dataset_id, dataset_version_id, partition_column: None })?)
            }
            None => None,
        };
        attrs.insert(
            "holdoutData".into(),
            json!({
                "datasetId": held.as_ref().map(|d| d.id.clone()),
                "datasetVersionId": held.as_ref().map(|d| d.version_id.clone()),
                "datasetName": opt_str(holdout, "datasetName", 255)?.or_else(|| held.map(|d| d.name)),
                "partitionColumn": partition_column,
            }),
        );
    }
    Ok(attrs)
}

fn object<'a>(field: &str, value: &'a Value) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| Error::invalid(field, "must be a JSON object such as {\"datasetId\": \"…\"}"))
}
