//! `modelreg custom-models …` and `modelreg environments …`: the DataRobot
//! objects, offline on the data directory. The JSON printed is the
//! DataRobot dialect's, because these commands call the same functions its
//! routes do. (`--server` is not supported for these commands yet: the
//! DataRobot client itself is the remote tool.)

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::api::datarobot::{environments as env_api, models as model_api, versions as version_api};
use crate::registry::access::EntityKind;
use crate::registry::environments::{NewEnvVersion, NewEnvironment, BUILD_JOB};
use crate::registry::{Error, ModelQuery, PageRequest, Principal, Registry};

#[derive(Subcommand)]
pub enum CustomModelsCommand {
    /// Create a custom inference model.
    Create {
        #[arg(long)]
        name: String,
        /// Binary, Regression, Multiclass, Anomaly, Unstructured, TextGeneration…
        #[arg(long)]
        target_type: String,
        #[arg(long)]
        target_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        language: Option<String>,
    },
    /// List custom models, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show a custom model (with its latest version).
    Show { id: String },
    /// Delete a custom model and its versions.
    Delete { id: String },
    /// Versions of a custom model.
    #[command(subcommand)]
    Versions(VersionsCommand),
}

#[derive(Subcommand)]
pub enum VersionsCommand {
    /// Create a version from every file under a folder (paths relative to it).
    Create {
        model: String,
        folder: PathBuf,
        #[arg(long)]
        base_environment_id: Option<String>,
        #[arg(long)]
        base_environment_version_id: Option<String>,
        /// Derive from the latest version (keep its other files) instead of a clean version.
        #[arg(long)]
        from_previous: bool,
        /// A minor version (default: major).
        #[arg(long)]
        minor: bool,
    },
    /// List a custom model's versions, newest first.
    List { model: String },
    /// Write a version's files under a folder.
    Download {
        model: String,
        version: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum EnvironmentsCommand {
    /// Create an execution environment.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// python, r, java, julia, legacy or other.
        #[arg(long, default_value = "other")]
        programming_language: String,
    },
    /// List execution environments, newest first.
    List,
    /// Show an environment.
    Show { id: String },
    /// Soft-delete an environment.
    Delete { id: String },
    /// Add a version from a docker context (.tar.gz or .zip) and build it.
    AddVersion {
        environment: String,
        context: PathBuf,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Print a version's build log.
    BuildLog { environment: String, version: String },
}

fn open(data_dir: &Path, server: Option<&str>) -> Result<(Registry, Principal), Error> {
    if server.is_some() {
        return Err(Error::invalid("--server", "custom-models and environments work on the data directory only; drop --server"));
    }
    let registry = Registry::open(data_dir)?;
    registry.bootstrap()?;
    let who = registry.operator()?;
    Ok((registry, who))
}

fn print(value: &Value, as_json: bool, line: impl Fn(&Value) -> String) {
    if as_json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else if let Some(items) = value.as_array() {
        for item in items {
            println!("{}", line(item));
        }
    } else {
        println!("{}", line(value));
    }
}

fn model_line(m: &Value) -> String {
    let latest = m["latestVersion"]["label"].as_str().unwrap_or("no versions");
    format!("{}  {}  {}  {}", m["id"].as_str().unwrap_or(""), m["targetType"].as_str().unwrap_or(""), latest, m["name"].as_str().unwrap_or(""))
}

fn version_line(v: &Value) -> String {
    format!("{}  {}  {} files", v["id"].as_str().unwrap_or(""), v["label"].as_str().unwrap_or(""), v["items"].as_array().map_or(0, Vec::len))
}

pub fn custom_models(data_dir: &Path, server: Option<&str>, cmd: CustomModelsCommand, as_json: bool) -> Result<i32, Error> {
    let (registry, who) = open(data_dir, server)?;
    match cmd {
        CustomModelsCommand::Create { name, target_type, target_name, description, language } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("targetType".into(), json!(target_type));
            for (key, value) in [("targetName", target_name), ("description", description), ("language", language)] {
                if let Some(v) = value {
                    body.insert(key.into(), json!(v));
                }
            }
            let model = registry.create_owned_model(&who, model_api::new_model(&body)?)?;
            print(&model_api::render_model(&registry, &who, &model)?, as_json, model_line);
        }
        CustomModelsCommand::List { limit, offset } => {
            let mut query = ModelQuery::newest_first(PageRequest::Offset { offset, limit });
            query.only_ids = registry.visible_ids(&who, EntityKind::Model)?;
            let page = registry.list_models(&who, &query)?;
            let items = page.items.iter().map(|m| model_api::render_model(&registry, &who, m)).collect::<Result<Vec<_>, _>>()?;
            print(&Value::Array(items), as_json, model_line);
        }
        CustomModelsCommand::Show { id } => {
            registry.access(&who, EntityKind::Model, &id)?;
            let model = registry.get_model(&who, &id)?;
            print(&model_api::render_model(&registry, &who, &model)?, as_json, model_line);
        }
        CustomModelsCommand::Delete { id } => {
            registry.require(&who, EntityKind::Model, &id, crate::registry::access::Access::Own)?;
            registry.delete_model(&who, &id)?;
            eprintln!("deleted custom model {id}");
        }
        CustomModelsCommand::Versions(cmd) => return versions(&registry, &who, cmd, as_json),
    }
    Ok(0)
}

fn versions(registry: &Registry, who: &Principal, cmd: VersionsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        VersionsCommand::Create { model, folder, base_environment_id, base_environment_version_id, from_previous, minor } => {
            let guard = registry.upload_guard()?;
            let mut upload = version_api::Upload::default();
            for entry in walkdir::WalkDir::new(&folder).sort_by_file_name() {
                let entry = entry.map_err(|e| Error::invalid("folder", e.to_string()))?;
                if !entry.file_type().is_file() {
                    continue;
                }
                let relative = entry.path().strip_prefix(&folder).map_err(|e| Error::Internal(e.to_string()))?;
                let path = relative.to_str().ok_or_else(|| Error::invalid("folder", format!("{} is not UTF-8", relative.display())))?;
                let mut file = File::open(entry.path())?;
                upload.files.push(registry.put_blob(&mut file, None)?);
                upload.paths.push(path.to_string());
            }
            upload.fields.insert("isMajorUpdate".into(), json!(if minor { "False" } else { "True" }));
            for (key, value) in [("baseEnvironmentId", base_environment_id), ("baseEnvironmentVersionId", base_environment_version_id)] {
                if let Some(v) = value {
                    upload.fields.insert(key.into(), json!(v));
                }
            }
            let version = version_api::commit_version(registry, who, &model, upload, from_previous)?;
            drop(guard);
            print(&version_api::render_version(&version, true), as_json, version_line);
        }
        VersionsCommand::List { model } => {
            registry.access(who, EntityKind::Model, &model)?;
            let all = registry.list_versions(who, &model)?;
            let latest = all.last().map(|v| v.id.clone());
            let items: Vec<Value> = all.iter().rev().map(|v| version_api::render_version(v, Some(&v.id) == latest.as_ref())).collect();
            print(&Value::Array(items), as_json, version_line);
        }
        VersionsCommand::Download { model, version, output } => {
            registry.access(who, EntityKind::Model, &model)?;
            let version = registry.get_version_by_id(who, &model, &version)?;
            for f in &version.files {
                // Paths were validated on upload; check again before writing.
                crate::registry::validate_file_path(&f.path)?;
                let target = output.join(&f.path);
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut out = File::create(&target)?;
                std::io::copy(&mut registry.open_blob(&f.sha256)?, &mut out)?;
            }
            eprintln!("wrote {} files under {}", version.files.len(), output.display());
        }
    }
    Ok(0)
}

pub fn environments(data_dir: &Path, server: Option<&str>, cmd: EnvironmentsCommand, as_json: bool) -> Result<i32, Error> {
    let (registry, who) = open(data_dir, server)?;
    let env_line = |e: &Value| {
        let latest = e["latestVersion"]["buildStatus"].as_str().unwrap_or("no versions");
        format!("{}  {}  {}  {}", e["id"].as_str().unwrap_or(""), e["programmingLanguage"].as_str().unwrap_or(""), latest, e["name"].as_str().unwrap_or(""))
    };
    match cmd {
        EnvironmentsCommand::Create { name, description, programming_language } => {
            if !crate::registry::environments::LANGUAGES.contains(&programming_language.as_str()) {
                return Err(Error::invalid("programming-language", "must be python, r, java, julia, legacy or other"));
            }
            let env = registry.create_environment(
                &who,
                NewEnvironment {
                    name,
                    description,
                    programming_language,
                    use_cases: vec!["customModel".into()],
                    required_metadata_keys: json!([]),
                    ..Default::default()
                },
            )?;
            print(&env_api::render_environment(&registry, "", &env)?, as_json, env_line);
        }
        EnvironmentsCommand::List => {
            let query = crate::registry::environments::EnvironmentQuery { limit: 1000, ..Default::default() };
            let page = registry.list_environments(&who, &query)?;
            let items = page.items.iter().map(|e| env_api::render_environment(&registry, "", e)).collect::<Result<Vec<_>, _>>()?;
            print(&Value::Array(items), as_json, env_line);
        }
        EnvironmentsCommand::Show { id } => {
            let env = registry.get_environment(&who, &id)?;
            print(&env_api::render_environment(&registry, "", &env)?, as_json, env_line);
        }
        EnvironmentsCommand::Delete { id } => {
            registry.soft_delete_environment(&who, &id)?;
            eprintln!("deleted environment {id}");
        }
        EnvironmentsCommand::AddVersion { environment, context, label, description } => {
            let guard = registry.upload_guard()?;
            let digest = registry.put_blob(&mut File::open(&context)?, None)?;
            let filename = context.file_name().and_then(|n| n.to_str()).unwrap_or("context").to_string();
            let new = NewEnvVersion { label, description, context: Some((digest, filename)), ..Default::default() };
            let version = registry.create_env_version(&who, &environment, new)?;
            drop(guard);
            let job = registry.enqueue_job(&who.team_id, BUILD_JOB, Some(&version.id), json!({"environmentId": environment}), None)?;
            // Offline there is no runner: build here (validate only; images are
            // built by `serve --image-builder`).
            while !registry.get_job(&who, &job.id)?.state.is_finished() {
                let Some(next) = registry.claim_job(&[BUILD_JOB])? else { break };
                let outcome = crate::registry::envbuild::run_build(&registry, None, &next);
                registry.finish_job(&next.id, outcome)?;
            }
            let version = registry.get_env_version(&who, &environment, &version.id)?;
            print(&env_api::render_version("", &version), as_json, |v| {
                format!("{}  {}  {}", v["id"].as_str().unwrap_or(""), v["buildStatus"].as_str().unwrap_or(""), v["imageId"].as_str().unwrap_or(""))
            });
            return Ok(if version.build_status == "success" { 0 } else { 1 });
        }
        EnvironmentsCommand::BuildLog { environment, version } => {
            let version = registry.get_env_version(&who, &environment, &version)?;
            match registry.latest_job_for(&version.id)? {
                Some(job) => print!("{}", job.log),
                None => eprintln!("no build has run for this version"),
            }
        }
    }
    Ok(0)
}
