//! `modelreg models …` and `modelreg versions …`: offline on the data
//! directory, or over HTTP with `--server`. Both paths produce the same JSON
//! (the Octomil dialect's model and version shapes), because the local path
//! calls the same functions the Octomil routes do.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{json, Value};

use super::local::Local;
use super::progress::open_with_progress;
use super::remote::{enc, Download, Remote};
use super::download;
use super::table::{cell, pairs, size, Table};
use super::version_handle::{self, model_and_version};
use super::workflow::{self, Workflow};
use crate::api::octomil::{self, ListFilters};
use crate::registry::catalogue::tags::parse_tag_filter;
use crate::registry::catalogue::{weight_facts, weights};
use crate::registry::{Error, VersionRef, VersionStatus};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Register a model.
    #[command(after_help = "Example:\n  modelreg models create --name fraud-xgb --framework xgboost --description \"Card fraud scorer\"")]
    Create {
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// pytorch, tensorflow, xgboost or sklearn.
        #[arg(long)]
        framework: Option<String>,
        #[arg(long)]
        framework_version: Option<String>,
        #[arg(long)]
        baseline: bool,
    },
    /// List models, newest first.
    #[command(after_help = "Examples:\n  modelreg models list --tag stage:production\n  modelreg models list --search fraud --limit 50")]
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long)]
        framework: Option<String>,
        /// Only models with this tag: KEY:VALUE, or KEY for any value (repeatable: all must match).
        #[arg(long = "tag", value_name = "KEY[:VALUE]")]
        tags: Vec<String>,
        /// Only models whose name or description contains this text.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a model, its tags, aliases and versions.
    #[command(after_help = "Example:\n  modelreg models show fraud-xgb")]
    Show { model: String },
    /// Delete a model and its versions.
    #[command(after_help = "Example:\n  modelreg models delete fraud-xgb")]
    Delete { model: String },
    /// Set or remove a model's tags.
    #[command(after_help = "Examples:\n  modelreg models tag fraud-xgb stage=production owner=risk\n  modelreg models tag fraud-xgb --remove stage")]
    Tag {
        model: String,
        /// KEY=VALUE to set (a key of letters, digits, '_', '-', '.' or '/').
        #[arg(value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A key to remove (repeatable).
        #[arg(long, value_name = "KEY")]
        remove: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum VersionsCommand {
    /// Upload a weights file as the model's next version.
    #[command(after_help = "Examples:\n  \
        modelreg versions upload fraud-xgb model.json --description \"retrained on November's data\"\n  \
        modelreg versions upload llama-7b llama-7b.Q4_K_M.gguf")]
    Upload {
        model: String,
        file: PathBuf,
        /// pytorch, tensorflow, onnx, sklearn, xgboost, safetensors or gguf (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List a model's versions, newest first, with their aliases and metrics.
    #[command(after_help = "Example:\n  modelreg versions list fraud-xgb")]
    List { model: String },
    /// Show one version: its metrics, lineage, tags, aliases and files.
    #[command(after_help = "Examples:\n  modelreg versions show fraud-xgb 3\n  modelreg versions show fraud-xgb@champion")]
    Show {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// Its number, label, id, `@alias` or `latest`.
        version: Option<String>,
    },
    /// Point an alias at a version (moving it if it exists), or remove it.
    #[command(after_help = "Examples:\n  modelreg versions alias fraud-xgb champion 3\n  modelreg versions alias fraud-xgb champion --remove")]
    Alias {
        model: String,
        /// A lowercase letter, then lowercase letters, digits, '_' or '-'.
        alias: String,
        /// The version it names (required unless --remove).
        version: Option<String>,
        #[arg(long, conflicts_with = "version")]
        remove: bool,
    },
    /// Set or remove a version's tags.
    #[command(after_help = "Examples:\n  modelreg versions tag fraud-xgb 3 validated=yes\n  modelreg versions tag fraud-xgb 3 --remove validated")]
    Tag {
        model: String,
        version: String,
        #[arg(value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, value_name = "KEY")]
        remove: Vec<String>,
    },
    /// Record where a version came from (lineage) and its metrics.
    #[command(after_help = "Examples:\n  modelreg versions update fraud-xgb 3 --source-commit 9fceb02 --dataset s3://data/churn-2026-11.csv \\\n      --run-url https://ci.example.com/runs/42 --parent 2 --metric auc=0.931\n  modelreg versions update fraud-xgb@champion --parent base-model@3\n  modelreg versions update fraud-xgb 3 --clear run-url")]
    Update {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        version: Option<String>,
        /// The commit it was built from.
        #[arg(long)]
        source_commit: Option<String>,
        /// The dataset it was trained on (a name, id or URI).
        #[arg(long)]
        dataset: Option<String>,
        /// The http(s) URL of the run that made it.
        #[arg(long)]
        run_url: Option<String>,
        /// The version it derives from: a version of this model, or MODEL@VERSION.
        #[arg(long)]
        parent: Option<String>,
        /// A lineage field to clear: source-commit, dataset, run-url or parent (repeatable).
        #[arg(long, value_name = "FIELD")]
        clear: Vec<String>,
        /// A metric to set, NAME=VALUE (repeatable).
        #[arg(long = "metric", value_name = "NAME=VALUE")]
        metrics: Vec<String>,
    },
    /// Mark a version published.
    #[command(after_help = "Example:\n  modelreg versions publish fraud-xgb 3")]
    Publish {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        version: Option<String>,
    },
    /// Mark a version deprecated: still downloadable, never `latest`.
    #[command(after_help = "Example:\n  modelreg versions deprecate fraud-xgb 2")]
    Deprecate {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        version: Option<String>,
    },
    /// Delete a version (its number is never given again).
    #[command(after_help = "Example:\n  modelreg versions delete fraud-xgb 1")]
    Delete {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        version: Option<String>,
    },
    /// Download a version's file, verifying its sha256 as it is written.
    #[command(after_help = "Examples:\n  \
        modelreg versions download fraud-xgb@champion -o model.json\n  \
        modelreg versions download fraud-xgb latest -o - | sha256sum\n  \
        modelreg versions download mnist 3 --format onnx -o mnist.onnx")]
    Download {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// The version: its number (`3`), label (`1.0.0`, `2.1`), id, `@alias` or `latest`.
        version: Option<String>,
        /// Where to write it (default: model_v<N>.<ext> in the current directory); `-` writes
        /// it to standard output, and what was written to stderr.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// A converted format (onnx, tflite, coreml): offline it is converted here first when
        /// missing; a server answers 404 saying whether its conversion is queued, running, failed
        /// or impossible. Core ML is served unverified (it cannot run on Linux), and says so.
        #[arg(long)]
        format: Option<String>,
        /// Offline: the Python that converts (default: the managed runtime).
        #[arg(long, env = "MODELREG_PYTHON")]
        python: Option<PathBuf>,
        /// Replace the output file if it exists (without it, an existing file is never touched);
        /// with `-o -`, write binary to a terminal.
        #[arg(long)]
        force: bool,
    },
    /// Convert a version into another format (onnx; tflite from TensorFlow), verified against
    /// the original, or coreml (from scikit-learn, Keras or TorchScript), which cannot be run on
    /// Linux and is marked unverified; waits for the verdict and prints it with the converter's
    /// log. Asking again after a failure converts again.
    #[command(after_help = "Examples:\n  \
        modelreg versions convert mnist 3 --to onnx\n  \
        modelreg versions convert resnet@champion --to onnx --input-shape 1,3,224,224\n  \
        modelreg versions convert churn 2 --to coreml")]
    Convert {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// Its number, label, id, `@alias` or `latest`.
        version: Option<String>,
        /// The format to make: onnx, tflite or coreml.
        #[arg(long)]
        to: String,
        /// A TorchScript model's input shape, e.g. 1,3,224,224 (its export needs one).
        #[arg(long)]
        input_shape: Option<String>,
        /// Offline: the Python that converts (default: the managed runtime).
        #[arg(long, env = "MODELREG_PYTHON")]
        python: Option<PathBuf>,
    },
}

pub trait Backend: Workflow {
    fn create_model(&self, body: Value) -> Result<Value, Error>;
    fn list_models(&self, limit: i64, offset: i64, filters: &ListFilters) -> Result<Value, Error>;
    fn show_model(&self, id: &str) -> Result<Value, Error>;
    fn delete_model(&self, id: &str) -> Result<(), Error>;
    fn upload(&self, model: &str, file: &Path, format: Option<String>, description: Option<String>) -> Result<Value, Error>;
    fn download(&self, model: &str, version: &str) -> Result<Download, Error>;
    /// The number of the version any handle names (conversions are kept by number).
    fn version_number(&self, model: &str, version: &str) -> Result<i64, Error>;
    /// A converted format's artifact (None: the format is the stored one).
    fn download_format(&self, model: &str, version: i64, format: &str, python: Option<&Path>) -> Result<Option<Download>, Error>;
    /// Asks for a conversion and waits for its verdict.
    fn convert(&self, model: &str, version: i64, format: &str, input_shape: Option<&[i64]>, python: Option<&Path>) -> Result<Value, Error>;
}

pub fn backend(data_dir: &Path, server: Option<&str>, token: Option<&str>) -> Result<Box<dyn Backend>, Error> {
    match server {
        Some(url) => Ok(Box::new(super::remote::connect(data_dir, url, token)?)),
        None => Ok(Box::new(Local::open(data_dir)?)),
    }
}

impl Backend for Local {
    fn create_model(&self, body: Value) -> Result<Value, Error> {
        let body = body.as_object().cloned().unwrap_or_default();
        let (model, _) = self.registry.create_or_get_model(&self.who, octomil::new_model_from_json(&body)?)?;
        octomil::model_detail(&self.registry, &octomil::formats::offline_settings(&self.registry, None), &self.who, &model.id)
    }

    fn list_models(&self, limit: i64, offset: i64, filters: &ListFilters) -> Result<Value, Error> {
        octomil::list_body(&self.registry, &self.who, limit, offset, filters)
    }

    fn show_model(&self, handle: &str) -> Result<Value, Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        octomil::model_detail(&self.registry, &octomil::formats::offline_settings(&self.registry, None), &self.who, &model.id)
    }

    fn delete_model(&self, handle: &str) -> Result<(), Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        self.registry.delete_model(&self.who, &model.id)
    }

    fn upload(&self, handle: &str, file: &Path, format: Option<String>, description: Option<String>) -> Result<Value, Error> {
        let model = &self.registry.resolve_model(&self.who, handle)?.id;
        let filename = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        weights::resolve_format(filename, format.as_deref())?;
        let (mut reader, _) = open_with_progress(file)?;
        let guard = self.registry.upload_guard()?;
        let digest = self.registry.put_blob(&mut reader, None)?;
        let body = octomil::commit_upload(&self.registry, &self.who, model, filename, digest, format, description, None)?;
        drop(guard);
        Ok(body)
    }

    fn download(&self, handle: &str, version: &str) -> Result<Download, Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        let version = version_handle::find_local(&self.registry, &self.who, &model.id, version)?;
        let file = version.files.first().ok_or_else(|| Error::Internal(format!("version {} has no file", version.id)))?;
        Ok(Download {
            reader: Box::new(self.registry.open_blob(&file.sha256)?),
            len: Some(file.size),
            sha256: Some(file.sha256.clone()),
            file_name: Some(weights::download_file_name(&version)),
            verified: None,
        })
    }

    fn version_number(&self, handle: &str, version: &str) -> Result<i64, Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        Ok(version_handle::find_local(&self.registry, &self.who, &model.id, version)?.number)
    }

    fn download_format(&self, handle: &str, version: i64, format: &str, python: Option<&Path>) -> Result<Option<Download>, Error> {
        let model = &self.registry.resolve_model(&self.who, handle)?.id;
        let Some((version, digest, verified)) = octomil::formats::offline_artifact(&self.registry, python, &self.who, model, version, format)?
        else {
            return Ok(None);
        };
        Ok(Some(Download {
            reader: Box::new(self.registry.open_blob(&digest.sha256)?),
            len: Some(digest.size),
            sha256: Some(digest.sha256),
            file_name: Some(crate::compute::formats::file_name(version.number, format)),
            verified: Some(verified),
        }))
    }

    fn convert(&self, handle: &str, version: i64, format: &str, input_shape: Option<&[i64]>, python: Option<&Path>) -> Result<Value, Error> {
        let model = &self.registry.resolve_model(&self.who, handle)?.id;
        octomil::formats::offline_convert(&self.registry, python, &self.who, model, version, format, input_shape)
    }
}

impl Backend for Remote {
    fn create_model(&self, body: Value) -> Result<Value, Error> {
        self.post_json("/api/v1/models", &body)
    }

    fn list_models(&self, limit: i64, offset: i64, filters: &ListFilters) -> Result<Value, Error> {
        let mut path = format!("/api/v1/models?limit={limit}&offset={offset}");
        if let Some(f) = &filters.framework {
            path.push_str(&format!("&framework={}", enc(f)));
        }
        for tag in &filters.tags {
            let text = match &tag.value {
                Some(value) => format!("{}:{value}", tag.key),
                None => tag.key.clone(),
            };
            path.push_str(&format!("&tag={}", enc(&text)));
        }
        if let Some(q) = &filters.search {
            path.push_str(&format!("&q={}", enc(q)));
        }
        self.get_json(&path)
    }

    // The Octomil routes take a model's name wherever they take its id.
    fn show_model(&self, handle: &str) -> Result<Value, Error> {
        self.get_json(&format!("/api/v1/models/{}", enc(handle)))
    }

    fn delete_model(&self, handle: &str) -> Result<(), Error> {
        self.delete(&format!("/api/v1/models/{}", enc(handle))).map(|_| ())
    }

    fn upload(&self, model: &str, file: &Path, format: Option<String>, description: Option<String>) -> Result<Value, Error> {
        let filename = file.file_name().and_then(|n| n.to_str()).unwrap_or("model.bin");
        // Fail before sending any bytes when the server would refuse them
        // anyway: an unknown model (or key), or a format it cannot tell.
        weights::resolve_format(filename, format.as_deref())?;
        self.show_model(model)?;
        let (mut reader, len) = open_with_progress(file)?;
        let mut fields = Vec::new();
        if let Some(f) = format {
            fields.push(("format", f));
        }
        if let Some(d) = description {
            fields.push(("description", d));
        }
        let path = format!("/api/v1/models/{}/versions/upload", enc(model));
        Remote::upload(self, &path, &fields, "file", filename, &mut reader, len)
    }

    fn download(&self, model: &str, version: &str) -> Result<Download, Error> {
        // The route takes a number, a client's label, an alias or `latest`;
        // anything else (an id, a DataRobot label) is looked up first.
        let version = if version.trim().bytes().all(|b| b.is_ascii_digit()) {
            version.trim().to_string()
        } else if VersionRef::is_alias_or_latest(version.trim()) {
            enc(version.trim())
        } else {
            version_handle::find_remote(self, &self.model_id(model)?, version)?.1.to_string()
        };
        Remote::download(self, &format!("/api/v1/models/{}/versions/{version}/download", enc(model)))
    }

    fn version_number(&self, model: &str, version: &str) -> Result<i64, Error> {
        match VersionRef::parse(version.trim()) {
            VersionRef::Number(n) => Ok(n),
            _ => Ok(version_handle::find_remote(self, &self.model_id(model)?, version)?.1),
        }
    }

    fn download_format(&self, model: &str, version: i64, format: &str, _python: Option<&Path>) -> Result<Option<Download>, Error> {
        let path = format!("/api/v1/models/{}/versions/{version}/download?format={}", enc(model), enc(format));
        Remote::download(self, &path).map(Some)
    }

    fn convert(&self, model: &str, version: i64, format: &str, input_shape: Option<&[i64]>, _python: Option<&Path>) -> Result<Value, Error> {
        let path = format!("/api/v1/models/{}/versions/{version}/formats/{}", enc(model), enc(format));
        let mut state = self.post_json(&path, &json!({"input_shape": input_shape}))?;
        // The server converts in its compute lane: wait for the verdict.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40 * 60);
        while matches!(state["state"].as_str(), Some("queued" | "running")) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(500));
            state = self.get_json(&path)?;
        }
        Ok(state)
    }
}

pub(super) fn print(value: &Value, as_json: bool, human: impl FnOnce(&Value)) {
    if as_json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        human(value);
    }
}

pub fn models(backend: &dyn Backend, cmd: ModelsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        ModelsCommand::Create { name, description, framework, framework_version, baseline } => {
            let body = json!({
                "name": name,
                "description": description,
                "framework": framework,
                "framework_version": framework_version,
                "is_baseline": baseline,
            });
            let model = backend.create_model(body)?;
            print(&model, as_json, |m| println!("created model {}", cell(&m["id"])));
        }
        ModelsCommand::List { limit, offset, framework, tags, search } => {
            let filters = ListFilters {
                framework,
                is_baseline: None,
                tags: tags.iter().map(|t| parse_tag_filter(t)).collect::<Result<_, _>>()?,
                search,
            };
            let page = backend.list_models(limit, offset, &filters)?;
            print(&page, as_json, |p| {
                let mut table = Table::new(&["NAME", "FRAMEWORK", "SIZE", "CREATED", "ID", "DESCRIPTION"]);
                for m in p["models"].as_array().into_iter().flatten() {
                    table.row(vec![cell(&m["name"]), cell(&m["framework"]), size(&m["model_size_bytes"]), cell(&m["created_at"]), cell(&m["id"]), cell(&m["description"])]);
                }
                table.print();
                println!("{} of {} model(s)", p["models"].as_array().map_or(0, Vec::len), cell(&p["total"]));
            });
        }
        ModelsCommand::Show { model } => {
            let m = backend.show_model(&model)?;
            print(&m, as_json, |m| {
                for key in ["id", "name", "description", "framework", "framework_version", "is_baseline", "created_at"] {
                    println!("{key:<18} {}", cell(&m[key]));
                }
                println!("{:<18} {}", "tags", pairs(&m["tags"]));
                if let Some(aliases) = m["aliases"].as_object().filter(|a| !a.is_empty()) {
                    let list: Vec<String> = aliases.iter().map(|(name, v)| format!("@{name}=v{}", cell(v))).collect();
                    println!("{:<18} {}", "aliases", list.join(", "));
                }
                println!();
                print_versions(m);
            });
        }
        ModelsCommand::Delete { model } => {
            backend.delete_model(&model)?;
            print(&json!({"id": model, "deleted": true}), as_json, |_| println!("deleted model {model}"));
        }
        ModelsCommand::Tag { model, set, remove } => {
            let tags = workflow::retag(backend, &model, None, &set, &remove)?;
            print(&tags, as_json, |t| println!("{model}: {}", pairs(&t["tags"])));
        }
    }
    Ok(0)
}

/// A model's versions (as the Octomil model view lists them), newest first,
/// with the aliases that name each.
fn print_versions(model: &Value) {
    let mut aliases: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    for (alias, number) in model["aliases"].as_object().into_iter().flatten() {
        aliases.entry(number.as_i64().unwrap_or_default()).or_default().push(format!("@{alias}"));
    }
    let mut table = Table::new(&["VERSION", "LABEL", "STATUS", "FORMAT", "SIZE", "ALIASES", "METRICS", "UPLOADED", "SHA256"]);
    for v in model["versions"].as_array().into_iter().flatten().rev() {
        let number = v["version"].as_i64().unwrap_or_default();
        table.row(vec![
            number.to_string(),
            cell(&v["version_label"]),
            cell(&v["status"]),
            cell(&v["format"]),
            size(&v["model_size_bytes"]),
            aliases.get(&number).map_or_else(|| "-".into(), |a| a.join(" ")),
            pairs(&v["metrics"]),
            cell(&v["uploaded_at"]),
            v["model_hash"].as_str().map_or_else(|| "-".into(), |h| h.trim_start_matches("sha256:").to_string()),
        ]);
    }
    if table.is_empty() {
        println!("no versions yet");
    } else {
        table.print();
        print_weight_facts(model);
    }
}

/// What each safetensors or GGUF file's header says, a row per file under
/// the versions (nothing when no version has such a file).
fn print_weight_facts(model: &Value) {
    let mut table = Table::new(&["VERSION", "FILE", "WEIGHTS"]);
    for v in model["versions"].as_array().into_iter().flatten().rev() {
        for (path, facts) in v["weight_facts"].as_object().into_iter().flatten() {
            table.row(vec![cell(&v["version"]), path.clone(), weight_facts::summary(facts)]);
        }
    }
    if !table.is_empty() {
        println!();
        table.print();
    }
}

pub fn versions(backend: &dyn Backend, cmd: VersionsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        VersionsCommand::Upload { model, file, format, description } => {
            let v = backend.upload(&model, &file, format, description)?;
            print(&v, as_json, |v| {
                println!("uploaded version {} ({}, {})", cell(&v["version"]), size(&v["model_size_bytes"]), cell(&v["model_hash"]))
            });
        }
        VersionsCommand::Convert { model, version, to, input_shape, python } => {
            let (model, version) = model_and_version(model, version)?;
            let version = backend.version_number(&model, &version)?;
            let shape = input_shape.as_deref().map(crate::compute::formats::parse_shape).transpose().map_err(|e| Error::invalid("input-shape", e))?;
            let state = backend.convert(&model, version, &to.to_ascii_lowercase(), shape.as_deref(), python.as_deref())?;
            let failed = state["state"] != "ready" && state["state"] != "original";
            print(&state, as_json, |s| {
                if let Some(log) = s["log"].as_str() {
                    eprint!("{log}");
                }
                match s["state"].as_str() {
                    Some("ready") => println!(
                        "version {version} is available as {to}: {}, {}; {}",
                        size(&s["model_size_bytes"]),
                        cell(&s["model_hash"]),
                        match s["unverified_reason"].as_str() {
                            Some(why) => format!("NOT verified against the original: {why}"),
                            None => "verified against the original".into(),
                        }
                    ),
                    Some("original") => println!("version {version} is stored as {to}: nothing to convert"),
                    other => println!("the {to} conversion of version {version} is {}: {}", other.unwrap_or("unknown"), cell(&s["reason"])),
                }
            });
            if failed {
                return Ok(1);
            }
        }
        VersionsCommand::List { model } => {
            let m = backend.show_model(&model)?;
            print(&m["versions"], as_json, |_| print_versions(&m));
        }
        VersionsCommand::Show { model, version } => {
            let (model, version) = model_and_version(model, version)?;
            print(&backend.version_detail(&model, &version)?, as_json, workflow::print_version);
        }
        VersionsCommand::Alias { model, alias, version, remove } => {
            if remove {
                backend.delete_alias(&model, &alias)?;
                print(&json!({"alias": alias, "removed": true}), as_json, |_| println!("removed @{alias} from {model}"));
            } else {
                let version = version.ok_or_else(|| Error::invalid("version", "is required: the version the alias names (or --remove)"))?;
                let set = backend.set_alias(&model, &alias, &version)?;
                print(&set, as_json, |s| println!("@{alias} of {model} now names version {}", cell(&s["version"])));
            }
        }
        VersionsCommand::Tag { model, version, set, remove } => {
            let tags = workflow::retag(backend, &model, Some(&version), &set, &remove)?;
            print(&tags, as_json, |t| println!("{model} {version}: {}", pairs(&t["tags"])));
        }
        VersionsCommand::Update { model, version, source_commit, dataset, run_url, parent, clear, metrics } => {
            let (model, version) = model_and_version(model, version)?;
            let body = workflow::VersionUpdate { source_commit, dataset, run_url, parent, clear, metrics }.body()?;
            print(&backend.update_version(&model, &version, body)?, as_json, workflow::print_version);
        }
        VersionsCommand::Publish { model, version } => {
            let (model, version) = model_and_version(model, version)?;
            let v = backend.update_version(&model, &version, workflow::status_body(VersionStatus::Published))?;
            print(&v, as_json, |v| println!("version {} of {model} is published", cell(&v["number"])));
        }
        VersionsCommand::Deprecate { model, version } => {
            let (model, version) = model_and_version(model, version)?;
            let v = backend.update_version(&model, &version, workflow::status_body(VersionStatus::Deprecated))?;
            print(&v, as_json, |v| println!("version {} of {model} is deprecated", cell(&v["number"])));
        }
        VersionsCommand::Delete { model, version } => {
            let (model, version) = model_and_version(model, version)?;
            backend.delete_version(&model, &version)?;
            print(&json!({"model": model, "version": version, "deleted": true}), as_json, |_| {
                println!("deleted version {version} of {model}")
            });
        }
        VersionsCommand::Download { model, version, output, force, format, python } => {
            let (model, version) = model_and_version(model, version)?;
            let converted = match format.as_deref() {
                Some(format) => {
                    let number = backend.version_number(&model, &version)?;
                    backend.download_format(&model, number, &format.to_ascii_lowercase(), python.as_deref())?
                }
                None => None,
            };
            let download = match converted {
                Some(download) => download,
                None => backend.download(&model, &version)?,
            };
            let output = output.unwrap_or_else(|| {
                PathBuf::from(download.file_name.clone().unwrap_or_else(|| format!("model_v{version}.bin")))
            });
            download::save(download, &output, force, as_json)?;
        }
    }
    Ok(0)
}
