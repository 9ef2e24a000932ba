//! `modelreg custom-models …` and `modelreg environments …`: the DataRobot
//! objects, offline on the data directory or against a server with
//! `--server` (the `/api/v2/customModels/` and `/api/v2/executionEnvironments/`
//! routes). Both paths print the DataRobot dialect's JSON: offline through
//! the functions its routes call, remotely as the server answers it. Lists
//! print the page's `data` (the envelope's `next`/`previous` are server
//! URLs), and the links an environment version carries (`dockerContext`,
//! `dockerImage`) and a conversion's `jarLocation` are printed as paths,
//! without the server's origin.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::progress::progress;
use super::remote::{enc, Download, FormPart, Remote};
use super::table::{cell, print, size, Columns};
use super::version_handle::model_and_version;
use super::Target;
use crate::api::datarobot::{
    conversions as conversion_api, dependencies as deps_api, environments as env_api, model_tests as test_api,
    models as model_api, versions as version_api,
};
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::custom_models::new_model;
use crate::registry::compute::envbuild::sniff;
use crate::registry::compute::environments::{NewEnvVersion, NewEnvironment, BUILD_JOB, LANGUAGES};
use crate::registry::{validate_file_path, Error, ModelQuery, PageRequest, Registry};

#[derive(Subcommand)]
pub enum CustomModelsCommand {
    /// Create a custom inference model, or a model and its first version from a template.
    ///
    /// With --from-template ID (see `custom-templates list`) the model is named and typed as
    /// the template says and its first version holds the template's files, on
    /// --base-environment-id when given, else on the template's default environment or the
    /// team's newest python environment with a successful build. --resource-bundle-id and
    /// --secret-config-id are required then, as the route requires them (stored, not enforced).
    #[command(after_help = "Examples:\n  \
        modelreg custom-models create --name churn --target-type Binary --target-name churned --language python\n  \
        modelreg custom-models create --from-template python3-binary --resource-bundle-id cpu.small --secret-config-id none")]
    Create {
        #[arg(long, required_unless_present = "from_template")]
        name: Option<String>,
        /// Binary, Regression, Multiclass, Anomaly, Unstructured, TextGeneration…
        #[arg(long, required_unless_present = "from_template")]
        target_type: Option<String>,
        #[arg(long)]
        target_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        language: Option<String>,
        /// Make the model and its first version from this custom template.
        #[arg(long, conflicts_with_all = ["name", "target_type", "target_name", "description", "language"])]
        from_template: Option<String>,
        #[arg(long, requires = "from_template")]
        resource_bundle_id: Option<String>,
        #[arg(long, requires = "from_template")]
        secret_config_id: Option<String>,
        #[arg(long, requires = "from_template")]
        base_environment_id: Option<String>,
        #[arg(long, requires = "from_template")]
        base_environment_version_id: Option<String>,
    },
    /// List custom models, newest first.
    #[command(after_help = "Example:\n  modelreg custom-models list --limit 20 --offset 20")]
    List {
        #[command(flatten)]
        page: ListPage,
    },
    /// Show a custom model (with its latest version).
    #[command(after_help = "Example:\n  modelreg custom-models show churn")]
    Show { id: String },
    /// Delete a custom model and its versions.
    #[command(after_help = "Example:\n  modelreg custom-models delete churn")]
    Delete { id: String },
    /// Versions of a custom model.
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg custom-models versions list churn\n  \
        modelreg custom-models versions download churn v1.2 -o ./churn")]
    Versions(VersionsCommand),
    /// Test a version on DRUM against a dataset, as DataRobot's custom model testing does.
    ///
    /// Prints each check as it ends and waits for the verdict; exits 1 unless the test
    /// succeeded or only warned. Offline the test runs in this process (on the runtime from
    /// `modelreg runtime install`, or --python); with --server the server runs it.
    #[command(after_help = "Example:\n  modelreg custom-models test churn latest --dataset 0192f3c1-… --check nullValueImputation=fail")]
    Test {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// The version: its id, number (`3`), label (`2.1`, `v2.1`), `@alias` or `latest`.
        version: Option<String>,
        /// The dataset to score (required except for Unstructured models).
        #[arg(long)]
        dataset: Option<String>,
        /// A check's setting, CHECK=fail|warn|skip (e.g. nullValueImputation=fail). Repeatable.
        #[arg(long = "check", value_name = "CHECK=MODE")]
        checks: Vec<String>,
        /// The Python that runs the model, offline (default: the managed runtime).
        #[arg(long, env = "MODELREG_PYTHON")]
        python: Option<PathBuf>,
    },
    /// Compute a version's feature impact (permutation importance on its training data) and
    /// print the ranking.
    ///
    /// The version needs training data (assigned to the model or the version). Offline the
    /// computation runs in this process; with --server the server runs it.
    #[command(after_help = "Examples:\n  \
        modelreg custom-models feature-impact churn 1.2 --row-count 1000\n  \
        modelreg custom-models feature-impact churn @champion --existing")]
    FeatureImpact {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// The version: its id, number (`3`), label (`2.1`, `v2.1`), `@alias` or `latest`.
        version: Option<String>,
        /// Rows of the training data to sample (10 to 100,000; default min(rows, 2,500)).
        #[arg(long)]
        row_count: Option<i64>,
        /// Print the last result instead of computing a new one.
        #[arg(long)]
        existing: bool,
        /// The Python that runs the model, offline (default: the managed runtime).
        #[arg(long, env = "MODELREG_PYTHON")]
        python: Option<PathBuf>,
    },
    /// Build a version's dependencies (its requirements.txt) into the environment its tests use.
    ///
    /// Waits for the build; exits 1 if it failed, printing pip's log.
    #[command(after_help = "Example:\n  modelreg custom-models build-deps churn latest")]
    BuildDeps {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// The version: its id, number (`3`), label (`2.1`, `v2.1`), `@alias` or `latest`.
        version: Option<String>,
        /// The Python runtime to build over, offline (default: the managed runtime).
        #[arg(long, env = "MODELREG_PYTHON")]
        python: Option<PathBuf>,
    },
    /// Conversions of a version's Java main program into a runnable JAR (with the host's JDK).
    #[command(subcommand, after_help = "Examples:\n  \
        modelreg custom-models conversions create scorer v1.0 --main 0192f3c1-…\n  \
        modelreg custom-models conversions list scorer v1.0")]
    Conversions(ConversionsCommand),
}

#[derive(Subcommand)]
pub enum ConversionsCommand {
    /// Compile a version's Java main program (an item id of the version's files) and its other
    /// .java files into a runnable JAR.
    ///
    /// Waits for the conversion; exits 1 if it failed, printing javac's output. Offline the
    /// conversion runs in this process; with --server the server runs it. A SAS program, or any
    /// program but Java, is refused: modelreg has no compiler for it.
    #[command(after_help = "Example:\n  modelreg custom-models conversions create scorer v1.0 --main 0192f3c1-…")]
    Create {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// The version: its id, number (`3`), label (`2.1`, `v2.1`), `@alias` or `latest`.
        version: Option<String>,
        /// The item id of the main program (a .java file of the version).
        #[arg(long = "main", value_name = "ITEM_ID")]
        main: String,
    },
    /// List a version's conversions, newest first.
    #[command(after_help = "Example:\n  modelreg custom-models conversions list scorer latest")]
    List {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// The version: its id, number (`3`), label (`2.1`, `v2.1`), `@alias` or `latest`.
        version: Option<String>,
        #[command(flatten)]
        page: ListPage,
    },
    /// Show a conversion (its log is `logMessage` with --json).
    #[command(after_help = "Example:\n  modelreg custom-models conversions show scorer v1.0 0192f3c1-…")]
    Show { model: String, version: String, id: String },
    /// Write a succeeded conversion's JAR to FILE (never replacing it unless --force; size and
    /// sha256 checked).
    #[command(after_help = "Example:\n  modelreg custom-models conversions download scorer v1.0 0192f3c1-… -o Main.jar")]
    Download {
        model: String,
        /// The version: its id, number (`3`), label (`2.1`, `v2.1`), `@alias` or `latest`.
        version: String,
        id: String,
        /// The file to write; `-` writes to standard output (and what was written to stderr).
        #[arg(short, long)]
        output: PathBuf,
        /// Replace FILE if it exists; with `-o -`, write binary to a terminal.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum VersionsCommand {
    /// Create a version from every file under a folder (paths relative to it), or from a
    /// remote repository (--from-repository).
    ///
    /// With --server the files are sent as multipart `file`/`filePath` pairs, streamed from disk.
    /// From a repository, the files at --ref (default: its HEAD) under each --path (a file goes
    /// to the version's root, a folder's files relative to it; none: the whole tree) are pulled
    /// by a job: offline in this process, with --server by the server, whose status is polled.
    #[command(after_help = "Examples:\n  \
        modelreg custom-models versions create churn ./model --base-environment-id 0192f3c1-…\n  \
        modelreg custom-models versions create churn ./fix --from-previous --minor\n  \
        modelreg custom-models versions create churn --from-repository 0192f3c1-… --ref v2 --path churn/")]
    Create {
        model: String,
        #[arg(required_unless_present = "from_repository", conflicts_with = "from_repository")]
        folder: Option<PathBuf>,
        /// A registered repository's id (`modelreg repositories list`).
        #[arg(long)]
        from_repository: Option<String>,
        /// A branch, tag or commit sha of the repository.
        #[arg(long = "ref", requires = "from_repository")]
        git_ref: Option<String>,
        /// A file or folder of the repository to pull. Repeatable.
        #[arg(long = "path", requires = "from_repository")]
        paths: Vec<String>,
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
    #[command(after_help = "Example:\n  modelreg custom-models versions list churn")]
    List { model: String },
    /// Write a version's files under a folder, or its zip to standard output (`-o -`).
    ///
    /// With --server the version is downloaded as a zip and unpacked; an entry whose path
    /// would leave the folder (absolute, `..`, backslashes) or that is a link is refused.
    #[command(after_help = "Examples:\n  \
        modelreg custom-models versions download churn v1.2 -o ./churn-1.2\n  \
        modelreg custom-models versions download churn @champion -o - > churn.zip")]
    Download {
        /// The model's id or name; `MODEL@alias` names a version by its alias (then omit VERSION).
        model: String,
        /// The version: its id, number (`3`), label (`2.1`, `v2.1`), `@alias` or `latest`.
        version: Option<String>,
        /// The folder to write under; `-` writes the version's zip to standard output (and
        /// what was written to stderr).
        #[arg(short, long)]
        output: PathBuf,
        /// With `-o -`, write the zip to a terminal.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum EnvironmentsCommand {
    /// Create an execution environment.
    #[command(after_help = "Example:\n  \
        modelreg environments create --name py311 --programming-language python --description \"Python 3.11 with DRUM\"")]
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// python, r, java, julia, legacy or other.
        #[arg(long, default_value = "other")]
        programming_language: String,
    },
    /// List execution environments, newest first (the first 1000).
    #[command(after_help = "Example:\n  modelreg environments list")]
    List,
    /// Show an environment.
    #[command(after_help = "Example:\n  modelreg environments show 0192f3c1-…")]
    Show { id: String },
    /// Soft-delete an environment.
    #[command(after_help = "Example:\n  modelreg environments delete 0192f3c1-…")]
    Delete { id: String },
    /// Add a version from a docker context (.tar.gz or .zip) and build it.
    ///
    /// Waits for the build (offline it runs in this process; with --server the command polls
    /// the version until its build succeeds or fails). Exits 1 if the build failed.
    #[command(after_help = "Example:\n  modelreg environments add-version 0192f3c1-… context.tar.gz --label 3.11.7")]
    AddVersion {
        environment: String,
        context: PathBuf,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Print a version's build log (`{log, error}` with --json).
    #[command(after_help = "Example:\n  modelreg environments build-log 0192f3c1-… 0192f3c2-…")]
    BuildLog { environment: String, version: String },
}

/// Custom models, as lists and single models print.
const MODELS: Columns = Columns {
    headers: &["NAME", "TARGET TYPE", "LATEST VERSION", "CREATED", "ID"],
    cells: |m| vec![cell(&m["name"]), cell(&m["targetType"]), cell(&m["latestVersion"]["label"]), cell(&m["created"]), cell(&m["id"])],
};

/// A custom model's versions.
const VERSIONS: Columns = Columns {
    headers: &["VERSION", "FILES", "CREATED", "ID", "DESCRIPTION"],
    cells: |v| {
        let files = v["items"].as_array().map_or(0, Vec::len).to_string();
        vec![cell(&v["label"]), files, cell(&v["created"]), cell(&v["id"]), cell(&v["description"])]
    },
};

/// One page of a DataRobot list, as `--limit` and `--offset`.
#[derive(clap::Args)]
pub struct ListPage {
    /// Page size (0 means the default, 100; at most 1000).
    #[arg(long, default_value_t = 100)]
    limit: u64,
    #[arg(long, default_value_t = 0)]
    offset: u64,
}

impl ListPage {
    /// (offset, limit) as the DataRobot routes take them: a limit of 0 is
    /// the default (100), and at most 1000.
    pub(super) fn offset_limit(&self) -> (u64, u64) {
        let limit = match self.limit {
            0 => 100,
            n => n.min(1000),
        };
        (self.offset, limit)
    }
}

fn model_path(id: &str) -> String {
    format!("/api/v2/customModels/{}/", enc(id))
}

fn env_path(id: &str) -> String {
    format!("/api/v2/executionEnvironments/{}/", enc(id))
}

impl CustomModelsCommand {
    /// The model this command is about, as the user typed it.
    fn model_handle(&mut self) -> Option<&mut String> {
        match self {
            CustomModelsCommand::Show { id } | CustomModelsCommand::Delete { id } => Some(id),
            CustomModelsCommand::Test { model, .. }
            | CustomModelsCommand::FeatureImpact { model, .. }
            | CustomModelsCommand::BuildDeps { model, .. } => Some(model),
            CustomModelsCommand::Versions(
                VersionsCommand::Create { model, .. } | VersionsCommand::List { model } | VersionsCommand::Download { model, .. },
            ) => Some(model),
            CustomModelsCommand::Conversions(
                ConversionsCommand::Create { model, .. }
                | ConversionsCommand::List { model, .. }
                | ConversionsCommand::Show { model, .. }
                | ConversionsCommand::Download { model, .. },
            ) => Some(model),
            CustomModelsCommand::Create { .. } | CustomModelsCommand::List { .. } => None,
        }
    }
}

impl CustomModelsCommand {
    /// The model and version of a command whose VERSION may be left out
    /// for a `MODEL@alias`.
    fn optional_version(&mut self) -> Option<(&mut String, &mut Option<String>)> {
        match self {
            CustomModelsCommand::Test { model, version, .. }
            | CustomModelsCommand::FeatureImpact { model, version, .. }
            | CustomModelsCommand::BuildDeps { model, version, .. }
            | CustomModelsCommand::Versions(VersionsCommand::Download { model, version, .. })
            | CustomModelsCommand::Conversions(ConversionsCommand::Create { model, version, .. } | ConversionsCommand::List { model, version, .. }) => {
                Some((model, version))
            }
            _ => None,
        }
    }

    /// The version this command is about, as the user typed it.
    fn version_handle(&mut self) -> Option<(String, &mut String)> {
        match self {
            CustomModelsCommand::Test { model, version: Some(version), .. }
            | CustomModelsCommand::FeatureImpact { model, version: Some(version), .. }
            | CustomModelsCommand::BuildDeps { model, version: Some(version), .. }
            | CustomModelsCommand::Versions(VersionsCommand::Download { model, version: Some(version), .. })
            | CustomModelsCommand::Conversions(
                ConversionsCommand::Create { model, version: Some(version), .. }
                | ConversionsCommand::List { model, version: Some(version), .. }
                | ConversionsCommand::Show { model, version, .. }
                | ConversionsCommand::Download { model, version, .. },
            ) => Some((model.clone(), version)),
            _ => None,
        }
    }
}

/// A VERSION that a `MODEL@alias` stood in for: `custom_models` fills it in
/// before any command runs.
fn resolved(version: Option<String>) -> String {
    version.unwrap_or_default()
}

/// A version's id from its id, number, label, `@alias` or `latest` (`super::version_handle`).
fn resolve_version_id(target: &Target, model_id: &str, handle: &str) -> Result<String, Error> {
    if crate::registry::is_uuid(handle) {
        return Ok(handle.to_string());
    }
    match target {
        Target::Local { registry, who } => Ok(super::version_handle::find_local(registry, who, model_id, handle)?.id),
        Target::Remote(remote) => Ok(super::version_handle::find_remote(remote, model_id, handle)?.0),
    }
}

/// A model's id from what the user typed: its id, or its name (one that
/// two models share is an error listing both).
pub(crate) fn resolve_model_id(target: &Target, handle: &str) -> Result<String, Error> {
    // Model ids are UUIDs, and names rarely are: an id goes as it is,
    // without a round trip.
    if crate::registry::is_uuid(handle) {
        return Ok(handle.to_string());
    }
    match target {
        Target::Local { registry, who } => Ok(registry.resolve_model(who, handle)?.id),
        Target::Remote(remote) => remote.model_id(handle),
    }
}

pub fn custom_models(target: &Target, mut cmd: CustomModelsCommand, as_json: bool) -> Result<i32, Error> {
    if let Some((model, version)) = cmd.optional_version() {
        let (name, handle) = model_and_version(std::mem::take(model), version.take())?;
        (*model, *version) = (name, Some(handle));
    }
    if let Some(handle) = cmd.model_handle() {
        *handle = resolve_model_id(target, handle)?;
    }
    if let Some((model, handle)) = cmd.version_handle() {
        *handle = resolve_version_id(target, &model, handle)?;
    }
    match cmd {
        CustomModelsCommand::Create {
            from_template: Some(template),
            resource_bundle_id,
            secret_config_id,
            base_environment_id,
            base_environment_version_id,
            ..
        } => {
            let mut body = Map::new();
            body.insert("templateId".into(), json!(template));
            for (key, value) in [
                ("resourceBundleId", resource_bundle_id),
                ("secretConfigId", secret_config_id),
                ("baseEnvironmentId", base_environment_id),
                ("baseEnvironmentVersionId", base_environment_version_id),
            ] {
                if let Some(v) = value {
                    body.insert(key.into(), json!(v));
                }
            }
            let model = match target {
                Target::Local { registry, who } => {
                    let (model, _) = registry.model_from_template(who, &body)?;
                    model_api::render_model(registry, who, &model)?
                }
                Target::Remote(remote) => {
                    let created = remote.post_json("/api/v2/customModels/fromModelTemplate/", &Value::Object(body))?;
                    let id = created["customModelId"].as_str().ok_or_else(|| Error::Internal(format!("the server answered no customModelId: {created}")))?;
                    remote.get_json(&model_path(id))?
                }
            };
            print(&model, as_json, &MODELS);
        }
        CustomModelsCommand::Create { name, target_type, target_name, description, language, .. } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("targetType".into(), json!(target_type));
            for (key, value) in [("targetName", target_name), ("description", description), ("language", language)] {
                if let Some(v) = value {
                    body.insert(key.into(), json!(v));
                }
            }
            let model = match target {
                Target::Local { registry, who } => {
                    let model = registry.create_owned_model(who, new_model(&body)?)?;
                    model_api::render_model(registry, who, &model)?
                }
                Target::Remote(remote) => remote.post_json("/api/v2/customModels/", &Value::Object(body))?,
            };
            print(&model, as_json, &MODELS);
        }
        CustomModelsCommand::List { page } => {
            let (offset, limit) = page.offset_limit();
            let items = match target {
                Target::Local { registry, who } => {
                    let query = ModelQuery::newest_first(PageRequest::Offset { offset, limit });
                    let page = registry.list_models(who, &query)?;
                    let items = page.items.iter().map(|m| model_api::render_model(registry, who, m)).collect::<Result<Vec<_>, _>>()?;
                    Value::Array(items)
                }
                Target::Remote(remote) => remote.get_json(&format!("/api/v2/customModels/?offset={offset}&limit={limit}"))?["data"].take(),
            };
            print(&items, as_json, &MODELS);
        }
        CustomModelsCommand::Show { id } => {
            let model = match target {
                Target::Local { registry, who } => {
                    model_api::render_model_detail(registry, who, &registry.get_model(who, &id)?)?
                }
                Target::Remote(remote) => remote.get_json(&model_path(&id))?,
            };
            print(&model, as_json, &MODELS);
        }
        CustomModelsCommand::Delete { id } => {
            match target {
                Target::Local { registry, who } => {
                    // The registry checks owner rank itself, as for the route.
                    registry.delete_model(who, &id)?;
                }
                Target::Remote(remote) => {
                    remote.delete(&model_path(&id))?;
                }
            }
            deleted("custom model", &id, as_json);
        }
        CustomModelsCommand::Versions(cmd) => return versions(target, cmd, as_json),
        CustomModelsCommand::Test { model, version, dataset, checks, python } => {
            return test(target, &model, &resolved(version), dataset, &checks, python, as_json)
        }
        CustomModelsCommand::BuildDeps { model, version, python } => return build_deps(target, &model, &resolved(version), python, as_json),
        CustomModelsCommand::FeatureImpact { model, version, row_count, existing, python } => {
            return feature_impact(target, &model, &resolved(version), row_count, existing, python, as_json)
        }
        CustomModelsCommand::Conversions(cmd) => return conversions(target, cmd, as_json),
    }
    Ok(0)
}

/// How often the CLI looks at a test or build it waits for.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Runs the jobs this command queued about `subject`, in a thread with its
/// own registry handle, so that the caller can report progress meanwhile.
fn run_in_background(data_dir: &Path, python: Option<PathBuf>, subject: String) -> std::thread::JoinHandle<Result<(), Error>> {
    let data_dir = data_dir.to_path_buf();
    std::thread::spawn(move || {
        let registry = Registry::open(&data_dir)?;
        crate::jobs::run_jobs_about(&registry, &crate::jobs::JobSettings::offline(&data_dir, python), &subject)
    })
}

fn test(
    target: &Target,
    model: &str,
    version: &str,
    dataset: Option<String>,
    checks: &[String],
    python: Option<PathBuf>,
    as_json: bool,
) -> Result<i32, Error> {
    let mut configuration = Map::new();
    for setting in checks {
        let (check, mode) = setting.split_once('=').ok_or_else(|| Error::invalid("check", format!("{setting:?} is not CHECK=MODE")))?;
        configuration.insert(check.to_string(), json!(mode));
    }
    let mut body = json!({"customModelId": model, "customModelVersionId": version, "configuration": configuration});
    if let Some(d) = dataset {
        body["datasetId"] = json!(d);
    }
    let mut printed: BTreeMap<String, String> = BTreeMap::new();
    let mut show = |test: &Value| {
        if as_json {
            return;
        }
        for check in crate::compute::checks::CHECKS {
            let Some(state) = test["testingStatus"].get(check) else { continue };
            let check = check.to_string();
            let status = state["status"].as_str().unwrap_or("").to_string();
            if matches!(status.as_str(), "queued" | "in_progress") || printed.get(&check) == Some(&status) {
                continue;
            }
            println!("{check:<28} {status:<10} {}", state["message"].as_str().unwrap_or(""));
            printed.insert(check, status);
        }
    };
    let finished = |test: &Value| !matches!(test["overallStatus"].as_str(), Some("in_progress" | "queued"));
    let test = match target {
        Target::Local { registry, who } => {
            let body = body.as_object().cloned().unwrap_or_default();
            let options = crate::jobs::JobSettings::offline(registry.data_dir(), python.clone());
            let (test, _) = crate::compute::requests::start_test(registry, &options.compute(), who, &body)?;
            let worker = run_in_background(registry.data_dir(), python, test.id.clone());
            loop {
                let current = test_api::render_test(registry, who, &registry.get_test(who, &test.id)?)?;
                show(&current);
                if finished(&current) || worker.is_finished() {
                    worker.join().map_err(|_| Error::Internal("the test runner panicked".into()))??;
                    break test_api::render_test(registry, who, &registry.get_test(who, &test.id)?)?;
                }
                std::thread::sleep(WAIT_POLL);
            }
        }
        Target::Remote(remote) => {
            remote.post_json("/api/v2/customModelTests/", &body)?;
            // The newest test of the model is this one (as the official client finds it).
            let listed = remote.get_json(&format!("/api/v2/customModelTests/?customModelId={}&limit=1", enc(model)))?;
            let id = listed["data"][0]["id"].as_str().ok_or_else(|| Error::Internal(format!("the server listed no test: {listed}")))?.to_string();
            loop {
                let current = remote.get_json(&format!("/api/v2/customModelTests/{}/", enc(&id)))?;
                show(&current);
                if finished(&current) {
                    break current;
                }
                std::thread::sleep(WAIT_POLL);
            }
        }
    };
    let overall = test["overallStatus"].as_str().unwrap_or("").to_string();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&test).unwrap_or_default());
    } else {
        println!("overall: {overall}  (test {}; `--json` for the whole record)", test["id"].as_str().unwrap_or(""));
    }
    Ok(if matches!(overall.as_str(), "succeeded" | "warning") { 0 } else { 1 })
}

fn feature_impact(
    target: &Target,
    model: &str,
    version: &str,
    row_count: Option<i64>,
    existing: bool,
    python: Option<PathBuf>,
    as_json: bool,
) -> Result<i32, Error> {
    use crate::registry::compute::insights::InsightKind;
    let path = format!("{}versions/{}/featureImpact/", model_path(model), enc(version));
    let body = match target {
        Target::Local { registry, who } => {
            if !existing {
                let options = crate::jobs::JobSettings::offline(registry.data_dir(), python.clone());
                crate::compute::requests::start_insight(registry, &options.compute(), who, model, version, InsightKind::FeatureImpact, row_count)?;
                run_in_background(registry.data_dir(), python, version.to_string())
                    .join()
                    .map_err(|_| Error::Internal("the feature impact runner panicked".into()))??;
            }
            match registry.get_insight(who, model, version, InsightKind::FeatureImpact)? {
                Some(i) if i.state == "done" => i.result.unwrap_or(Value::Null),
                Some(i) => return Err(Error::Internal(format!("feature impact {}: {}", i.state, i.error.unwrap_or_default()))),
                None => return Err(Error::NotFound(format!("no feature impact has been computed for version {version}"))),
            }
        }
        Target::Remote(remote) => {
            if !existing {
                let body = row_count.map(|n| json!({"rowCount": n})).unwrap_or_else(|| json!({}));
                remote.post_json(&path, &body)?;
            }
            // 422 while the run is under way; 404 says why a run failed.
            loop {
                match remote.get_json(&path) {
                    Err(Error::Unprocessable { .. }) => std::thread::sleep(WAIT_POLL),
                    other => break other?,
                }
            }
        }
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
    } else {
        for f in body["featureImpacts"].as_array().into_iter().flatten() {
            let impact = f["impactNormalized"].as_f64().unwrap_or(0.0);
            let bar = "#".repeat((impact.clamp(0.0, 1.0) * 40.0).round() as usize);
            let redundant = f["redundantWith"].as_str().map(|r| format!("  (redundant with {r})")).unwrap_or_default();
            println!("{:<30} {impact:>7.4}  {bar}{redundant}", f["featureName"].as_str().unwrap_or(""));
        }
    }
    Ok(0)
}

fn build_deps(target: &Target, model: &str, version: &str, python: Option<PathBuf>, as_json: bool) -> Result<i32, Error> {
    let path = format!("{}versions/{}/dependencyBuild/", model_path(model), enc(version));
    let (build, log) = match target {
        Target::Local { registry, who } => {
            crate::compute::available(&crate::jobs::JobSettings::offline(registry.data_dir(), python.clone()).compute()).map_err(Error::unprocessable)?;
            registry.start_dependency_build(who, model, version)?;
            run_in_background(registry.data_dir(), python, version.to_string())
                .join()
                .map_err(|_| Error::Internal("the build runner panicked".into()))??;
            let build = registry.get_dependency_build(who, model, version)?;
            let log = if build.is_finished() { registry.dependency_build_log(who, model, version)? } else { String::new() };
            (deps_api::render("", model, &build), log)
        }
        Target::Remote(remote) => {
            let mut build = remote.post_json(&path, &json!({}))?;
            while !matches!(build["buildStatus"].as_str(), Some("success" | "failed")) {
                std::thread::sleep(WAIT_POLL);
                build = remote.get_json(&path)?;
            }
            let log = remote.get_text(&format!("{}versions/{}/dependencyBuildLog/", model_path(model), enc(version)))?;
            (build, log)
        }
    };
    let ok = build["buildStatus"] == "success";
    if as_json {
        println!("{}", serde_json::to_string_pretty(&build).unwrap_or_default());
    } else {
        if !ok {
            eprint!("{log}");
        }
        println!("dependency build: {}", build["buildStatus"].as_str().unwrap_or(""));
    }
    Ok(if ok { 0 } else { 1 })
}

fn conversions_path(model: &str, version: &str) -> String {
    format!("{}versions/{}/conversions/", model_path(model), enc(version))
}

/// A conversion's state in a word.
fn conversion_state(c: &Value) -> &'static str {
    if c["conversionInProgress"] == true {
        "running"
    } else if c["shouldStop"] == true {
        "stopped"
    } else if c["conversionSucceeded"] == true {
        "succeeded"
    } else {
        "failed"
    }
}

/// A version's conversions, newest first.
const CONVERSIONS: Columns = Columns {
    headers: &["ID", "STATE", "MAIN CLASS", "JAR SIZE", "CREATED"],
    cells: |c| vec![cell(&c["id"]), conversion_state(c).into(), cell(&c["mainClass"]), size(&c["jarSize"]), cell(&c["created"])],
};

/// A conversion as the server answered it, its JAR's link as a path.
fn remote_conversion(remote: &Remote, path: &str) -> Result<Value, Error> {
    let mut conversion = remote.get_json(path)?;
    relative_links(&mut conversion);
    Ok(conversion)
}

fn conversions(target: &Target, cmd: ConversionsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        ConversionsCommand::Create { model, version, main } => {
            let version = resolved(version);
            let conversion = match target {
                Target::Local { registry, who } => {
                    let (conversion, _) = crate::compute::convert::start(registry, who, &model, &version, &main)?;
                    crate::jobs::run_jobs_about(registry, &crate::jobs::JobSettings::offline(registry.data_dir(), None), &conversion.id)?;
                    // A server on the same data directory may have claimed the job first.
                    loop {
                        let current = registry.get_conversion(who, &model, &version, &conversion.id)?;
                        if !current.is_running() {
                            break conversion_api::render(registry, "", &current)?;
                        }
                        std::thread::sleep(WAIT_POLL);
                    }
                }
                Target::Remote(remote) => {
                    let path = conversions_path(&model, &version);
                    let created = remote.post_json(&path, &json!({"mainProgramItemId": main}))?;
                    let id = created["conversionId"].as_str().ok_or_else(|| Error::Internal(format!("the server answered no conversionId: {created}")))?;
                    loop {
                        let current = remote_conversion(remote, &format!("{path}{}/", enc(id)))?;
                        if current["conversionInProgress"] != true {
                            break current;
                        }
                        std::thread::sleep(WAIT_POLL);
                    }
                }
            };
            let ok = conversion["conversionSucceeded"] == true;
            if as_json {
                println!("{}", serde_json::to_string_pretty(&conversion).unwrap_or_default());
            } else {
                if !ok {
                    eprint!("{}", conversion["logMessage"].as_str().unwrap_or(""));
                }
                CONVERSIONS.table(&conversion).print();
            }
            return Ok(if ok { 0 } else { 1 });
        }
        ConversionsCommand::List { model, version, page } => {
            let version = resolved(version);
            let (offset, limit) = page.offset_limit();
            let items = match target {
                Target::Local { registry, who } => {
                    let page = registry.list_conversions(who, &model, &version, offset, limit)?;
                    let items = page.items.iter().map(|c| conversion_api::render(registry, "", c)).collect::<Result<Vec<_>, _>>()?;
                    Value::Array(items)
                }
                Target::Remote(remote) => {
                    let mut data = remote.get_json(&format!("{}?offset={offset}&limit={limit}", conversions_path(&model, &version)))?["data"].take();
                    data.as_array_mut().into_iter().flatten().for_each(relative_links);
                    data
                }
            };
            print(&items, as_json, &CONVERSIONS);
        }
        ConversionsCommand::Show { model, version, id } => {
            let conversion = match target {
                Target::Local { registry, who } => conversion_api::render(registry, "", &registry.get_conversion(who, &model, &version, &id)?)?,
                Target::Remote(remote) => remote_conversion(remote, &format!("{}{}/", conversions_path(&model, &version), enc(&id)))?,
            };
            print(&conversion, as_json, &CONVERSIONS);
        }
        ConversionsCommand::Download { model, version, id, output, force } => {
            let download = match target {
                Target::Local { registry, who } => {
                    let (conversion, jar, file) = conversion_api::open_jar(registry, who, &model, &version, &id)?;
                    Download {
                        reader: Box::new(file),
                        len: Some(jar.size),
                        sha256: Some(jar.sha256),
                        file_name: Some(conversion_api::jar_name(&conversion)),
                        verified: None,
                    }
                }
                Target::Remote(remote) => remote.download(&format!("{}{}/jar/", conversions_path(&model, &version), enc(&id)))?,
            };
            super::download::save(download, &output, force, as_json)?;
        }
    }
    Ok(0)
}

pub(super) fn deleted(what: &str, id: &str, as_json: bool) {
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({"id": id, "deleted": true})).unwrap_or_default());
    } else {
        eprintln!("deleted {what} {id}");
    }
}

/// The regular files under `folder` with their paths relative to it (in
/// file name order), each path checked as the server checks it.
pub(super) fn folder_files(folder: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(folder).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::invalid("folder", e.to_string()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(folder).map_err(|e| Error::Internal(e.to_string()))?;
        let path = relative.to_str().ok_or_else(|| Error::invalid("folder", format!("{} is not UTF-8", relative.display())))?;
        validate_file_path(path)?;
        files.push((path.to_string(), entry.path().to_path_buf()));
    }
    Ok(files)
}

fn versions(target: &Target, cmd: VersionsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        VersionsCommand::Create {
            model,
            folder,
            from_repository,
            git_ref,
            paths,
            base_environment_id,
            base_environment_version_id,
            from_previous,
            minor,
        } => {
            let major = if minor { "False" } else { "True" };
            let environment = [("baseEnvironmentId", base_environment_id), ("baseEnvironmentVersionId", base_environment_version_id)];
            if let Some(repository) = from_repository {
                let mut body = json!({"repositoryId": repository, "isMajorUpdate": !minor, "sourcePath": paths});
                for (key, value) in environment.into_iter().chain([("ref", git_ref)]) {
                    if let Some(v) = value {
                        body[key] = json!(v);
                    }
                }
                let version = version_from_repository(target, &model, body, from_previous)?;
                print(&version, as_json, &VERSIONS);
                return Ok(0);
            }
            let folder = folder.ok_or_else(|| Error::invalid("folder", "is required (or --from-repository)"))?;
            let files = folder_files(&folder)?;
            let version = match target {
                Target::Local { registry, who } => {
                    // Before storing any file, as the route does before reading the body.
                    registry.access(who, EntityKind::Model, &model)?;
                    let guard = registry.upload_guard()?;
                    let mut upload = crate::registry::catalogue::custom_versions::Upload::default();
                    for (path, file) in &files {
                        upload.files.push(registry.put_blob(&mut File::open(file)?, None)?);
                        upload.paths.push(path.clone());
                    }
                    upload.fields.insert("isMajorUpdate".into(), json!(major));
                    for (key, value) in environment {
                        if let Some(v) = value {
                            upload.fields.insert(key.into(), json!(v));
                        }
                    }
                    let version = crate::registry::catalogue::custom_versions::commit_version(registry, who, &model, upload, from_previous)?;
                    drop(guard);
                    version_api::render_version(&version, true)
                }
                Target::Remote(remote) => {
                    // Fail before sending any bytes when the model is unknown (or the key is).
                    remote.get_json(&model_path(&model))?;
                    let mut parts = vec![FormPart::text("isMajorUpdate", major)];
                    for (key, value) in environment {
                        if let Some(v) = value {
                            parts.push(FormPart::text(key, v));
                        }
                    }
                    for (path, file) in &files {
                        parts.push(FormPart::file("file", file));
                        parts.push(FormPart::text("filePath", path.as_str()));
                    }
                    let method = if from_previous { "PATCH" } else { "POST" };
                    remote.send_form(method, &format!("{}versions/", model_path(&model)), &parts, |r, len| progress(r, Some(len)))?
                }
            };
            print(&version, as_json, &VERSIONS);
        }
        VersionsCommand::List { model } => {
            let items = match target {
                Target::Local { registry, who } => {
                    registry.access(who, EntityKind::Model, &model)?;
                    let all = registry.list_versions(who, &model)?;
                    let latest = all.last().map(|v| v.id.clone());
                    Value::Array(all.iter().rev().map(|v| version_api::render_version(v, Some(&v.id) == latest.as_ref())).collect())
                }
                Target::Remote(remote) => {
                    // Every version, page by page.
                    let mut items = Vec::new();
                    loop {
                        let path = format!("{}versions/?offset={}&limit=1000", model_path(&model), items.len());
                        let mut page = remote.get_json(&path)?;
                        let data = page["data"].take();
                        let data = data.as_array().cloned().unwrap_or_default();
                        let more = !page["next"].is_null() && !data.is_empty();
                        items.extend(data);
                        if !more {
                            break;
                        }
                    }
                    Value::Array(items)
                }
            };
            print(&items, as_json, &VERSIONS);
        }
        VersionsCommand::Download { model, version, output, force } if super::download::is_stdout(&output) => {
            let version = resolved(version);
            // The zip the route serves, made here offline the same way (stored entries, streamed).
            let download = match target {
                Target::Local { registry, who } => {
                    registry.access(who, EntityKind::Model, &model)?;
                    let (zip, len) = registry.version_zip(&registry.get_version_by_id(who, &model, &version)?)?;
                    Download { reader: Box::new(zip), len: Some(len), sha256: None, file_name: None, verified: None }
                }
                Target::Remote(remote) => remote.download(&version_zip_path(&model, &version))?,
            };
            super::download::save(download, &output, force, as_json)?;
        }
        VersionsCommand::Download { model, version, output, .. } => {
            let version = resolved(version);
            let mut written = match target {
                Target::Local { registry, who } => {
                    registry.access(who, EntityKind::Model, &model)?;
                    let version = registry.get_version_by_id(who, &model, &version)?;
                    fs::create_dir_all(&output)?;
                    let mut written = Vec::new();
                    for f in &version.files {
                        let mut blob = registry.open_blob(&f.sha256)?;
                        written.push(write_under(&output, &f.path, &mut blob)?);
                    }
                    written
                }
                Target::Remote(remote) => download_zip(remote, &model, &version, &output)?,
            };
            written.sort();
            let files: Vec<Value> = written.iter().map(|(path, size)| json!({"path": path, "size": size})).collect();
            if as_json {
                println!("{}", serde_json::to_string_pretty(&json!({"path": output, "files": files})).unwrap_or_default());
            } else {
                eprintln!("wrote {} files under {}", files.len(), output.display());
            }
        }
    }
    Ok(0)
}

/// How long `versions create --from-repository --server` waits for the pull.
const PULL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Pulls a version from a repository: offline, the job runs here; with
/// --server, the server runs it and its status is polled until it
/// redirects to the version or reports the error.
fn version_from_repository(target: &Target, model: &str, body: Value, from_previous: bool) -> Result<Value, Error> {
    let body = body.as_object().cloned().unwrap_or_default();
    match target {
        Target::Local { registry, who } => {
            let options = crate::jobs::JobSettings::offline(registry.data_dir(), None);
            let job = crate::git::pull::start_pull(registry, &options.git_paths, who, model, &body, from_previous)?;
            let subject = job.subject_id.clone().unwrap_or_default();
            crate::jobs::run_jobs_about(registry, &options, &subject)?;
            let job = registry.get_job(who, &job.id)?;
            let version_id = match (job.state, job.result.as_ref().and_then(|r| r["versionId"].as_str())) {
                (crate::registry::JobState::Succeeded, Some(id)) => id.to_string(),
                _ => return Err(Error::unprocessable(job.error.unwrap_or_else(|| "the pull did not finish".into()))),
            };
            Ok(version_api::render_version(&registry.get_version_by_id(who, model, &version_id)?, true))
        }
        Target::Remote(remote) => {
            let method = if from_previous { "PATCH" } else { "POST" };
            let queued = remote.json_request(method, &format!("{}versions/fromRepository/", model_path(model)), Some(&Value::Object(body)))?;
            let id = queued["statusId"].as_str().ok_or_else(|| Error::Internal(format!("the server answered no statusId: {queued}")))?;
            let deadline = Instant::now() + PULL_TIMEOUT;
            loop {
                let (status, done) = remote.status(&format!("/api/v2/status/{}/", enc(id)))?;
                if let Some(path) = done {
                    return remote.get_json(&path);
                }
                if matches!(status["status"].as_str(), Some("ERROR" | "ABORTED")) {
                    return Err(Error::unprocessable(status["message"].as_str().unwrap_or("the pull failed").to_string()));
                }
                if Instant::now() > deadline {
                    return Err(Error::Internal(format!("the pull (status {id}) did not end within an hour")));
                }
                std::thread::sleep(WAIT_POLL);
            }
        }
    }
}

fn version_zip_path(model: &str, version: &str) -> String {
    format!("{}versions/{}/download/", model_path(model), enc(version))
}

/// Downloads a version's zip into an anonymous temp file under `output`
/// (streamed, checked against its Content-Length) and unpacks it there.
fn download_zip(remote: &Remote, model: &str, version: &str, output: &Path) -> Result<Vec<(String, u64)>, Error> {
    let download = remote.download(&version_zip_path(model, version))?;
    fs::create_dir_all(output)?;
    let mut zip = tempfile::tempfile_in(output)
        .map_err(|e| Error::invalid("output", format!("cannot write in {}: {e}", output.display())))?;
    let mut reader = progress(download.reader, download.len);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Internal(format!("the download was interrupted: {e}"))),
        };
        zip.write_all(&buf[..n])?;
        size += n as u64;
    }
    if let Some(len) = download.len.filter(|len| *len != size) {
        return Err(Error::Internal(format!("the download was cut short: {size} of {len} bytes; nothing was written")));
    }
    unpack(zip, output)
}

/// Unpacks a version zip under `output`. Every entry is checked before
/// anything is written: a path the registry would not store (absolute,
/// `..`, empty segments, backslashes, control characters) or a link ends
/// the unpacking with an error and no file written.
fn unpack(file: File, output: &Path) -> Result<Vec<(String, u64)>, Error> {
    let bad = |e: zip::result::ZipError| Error::Internal(format!("the server's zip is unreadable: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    let mut names = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(bad)?;
        let name = entry.name().to_string();
        if entry.is_symlink() {
            return Err(Error::Internal(format!("the server's zip holds a link ({name:?}); nothing was written")));
        }
        let path = if entry.is_dir() { name.trim_end_matches('/') } else { name.as_str() };
        validate_file_path(path).map_err(|e| Error::Internal(format!("the server's zip holds an unsafe entry: {e}; nothing was written")))?;
        names.push((!entry.is_dir()).then(|| path.to_string()));
    }
    let mut written = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let Some(path) = name else { continue };
        let mut entry = archive.by_index(i).map_err(bad)?;
        written.push(write_under(output, &path, &mut entry)?);
    }
    Ok(written)
}

/// Writes `reader` to `output/path`. The path is checked again, and no
/// existing link on the way is followed, so nothing lands outside `output`.
fn write_under(output: &Path, path: &str, reader: &mut dyn Read) -> Result<(String, u64), Error> {
    validate_file_path(path)?;
    let mut target = output.to_path_buf();
    for segment in path.split('/') {
        target.push(segment);
        if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::invalid("output", format!("{} is a link; refusing to write through it", target.display())));
        }
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut out = File::create(&target)?;
    let size = io::copy(reader, &mut out).map_err(|e| Error::Internal(format!("writing {} failed: {e}", target.display())))?;
    Ok((path.to_string(), size))
}

/// Server links (`http://host:port/api/v2/…`) as paths, which is what the
/// offline path renders.
fn relative_links(value: &mut Value) {
    for key in ["dockerContext", "dockerImage", "jarLocation"] {
        if let Some(Value::String(link)) = value.get_mut(key) {
            if let Some(rest) = link.strip_prefix("http://").or_else(|| link.strip_prefix("https://")) {
                *link = rest.find('/').map_or_else(String::new, |i| rest[i..].to_string());
            }
        }
    }
    for key in ["latestVersion", "latestSuccessfulVersion"] {
        if let Some(v) = value.get_mut(key).filter(|v| v.is_object()) {
            relative_links(v);
        }
    }
}

/// Execution environments, newest first, with their latest version's build.
const ENVIRONMENTS: Columns = Columns {
    headers: &["NAME", "LANGUAGE", "LATEST BUILD", "CREATED", "ID"],
    cells: |e| {
        let latest = cell(&e["latestVersion"]["buildStatus"]);
        vec![cell(&e["name"]), cell(&e["programmingLanguage"]), latest, cell(&e["created"]), cell(&e["id"])]
    },
};

/// An environment's version and its build.
const ENVIRONMENT_VERSIONS: Columns = Columns {
    headers: &["VERSION", "BUILD", "CONTEXT SIZE", "CREATED", "ID", "IMAGE"],
    cells: |v| {
        vec![cell(&v["label"]), cell(&v["buildStatus"]), size(&v["dockerContextSize"]), cell(&v["created"]), cell(&v["id"]), cell(&v["imageId"])]
    },
};

const BUILD_POLL: Duration = Duration::from_millis(250);
/// How long `add-version --server` waits for a build to end.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn environments(target: &Target, cmd: EnvironmentsCommand, as_json: bool) -> Result<i32, Error> {
    let remote_env = |remote: &Remote, id: &str| -> Result<Value, Error> {
        let mut env = remote.get_json(&env_path(id))?;
        relative_links(&mut env);
        Ok(env)
    };
    match cmd {
        EnvironmentsCommand::Create { name, description, programming_language } => {
            if !LANGUAGES.contains(&programming_language.as_str()) {
                return Err(Error::invalid("programming-language", "must be python, r, java, julia, legacy or other"));
            }
            let env = match target {
                Target::Local { registry, who } => {
                    let env = registry.create_environment(
                        who,
                        NewEnvironment {
                            name,
                            description,
                            programming_language,
                            use_cases: vec!["customModel".into()],
                            required_metadata_keys: json!([]),
                            ..Default::default()
                        },
                    )?;
                    env_api::render_environment(registry, "", &env)?
                }
                Target::Remote(remote) => {
                    // The route answers `{id}`; the environment is read back to print it whole.
                    let body = json!({"name": name, "description": description, "programmingLanguage": programming_language});
                    let created = remote.post_json("/api/v2/executionEnvironments/", &body)?;
                    let id = created["id"].as_str().ok_or_else(|| Error::Internal(format!("the server answered no id: {created}")))?;
                    remote_env(remote, id)?
                }
            };
            print(&env, as_json, &ENVIRONMENTS);
        }
        EnvironmentsCommand::List => {
            let items = match target {
                Target::Local { registry, who } => {
                    let query = crate::registry::compute::environments::EnvironmentQuery { limit: 1000, ..Default::default() };
                    let page = registry.list_environments(who, &query)?;
                    let items = page.items.iter().map(|e| env_api::render_environment(registry, "", e)).collect::<Result<Vec<_>, _>>()?;
                    Value::Array(items)
                }
                Target::Remote(remote) => {
                    let mut data = remote.get_json("/api/v2/executionEnvironments/?offset=0&limit=1000")?["data"].take();
                    data.as_array_mut().into_iter().flatten().for_each(relative_links);
                    data
                }
            };
            print(&items, as_json, &ENVIRONMENTS);
        }
        EnvironmentsCommand::Show { id } => {
            let env = match target {
                Target::Local { registry, who } => env_api::render_environment(registry, "", &registry.get_environment(who, &id)?)?,
                Target::Remote(remote) => remote_env(remote, &id)?,
            };
            print(&env, as_json, &ENVIRONMENTS);
        }
        EnvironmentsCommand::Delete { id } => {
            match target {
                Target::Local { registry, who } => registry.soft_delete_environment(who, &id)?,
                Target::Remote(remote) => {
                    remote.delete(&env_path(&id))?;
                }
            }
            deleted("environment", &id, as_json);
        }
        EnvironmentsCommand::AddVersion { environment, context, label, description } => {
            fs::metadata(&context).map_err(|e| Error::invalid("context", format!("cannot read {}: {e}", context.display())))?;
            let version = match target {
                Target::Local { registry, who } => add_version_offline(registry, who, &environment, &context, label, description)?,
                Target::Remote(remote) => {
                    let parts = [FormPart::text("label", label), FormPart::text("description", description), FormPart::file("docker_context", &context)];
                    let path = format!("{}versions/", env_path(&environment));
                    let created = remote.send_form("POST", &path, &parts, |r, len| progress(r, Some(len)))?;
                    let id = created["id"].as_str().ok_or_else(|| Error::Internal(format!("the server answered no id: {created}")))?;
                    let deadline = Instant::now() + BUILD_TIMEOUT;
                    loop {
                        let mut version = remote.get_json(&format!("{path}{}/", enc(id)))?;
                        if matches!(version["buildStatus"].as_str(), Some("success" | "failed")) {
                            relative_links(&mut version);
                            break version;
                        }
                        if Instant::now() > deadline {
                            return Err(Error::Internal(format!("the build of version {id} did not end within an hour; see `environments build-log`")));
                        }
                        std::thread::sleep(BUILD_POLL);
                    }
                }
            };
            print(&version, as_json, &ENVIRONMENT_VERSIONS);
            return Ok(if version["buildStatus"] == "success" { 0 } else { 1 });
        }
        EnvironmentsCommand::BuildLog { environment, version } => {
            let body = match target {
                Target::Local { registry, who } => env_api::build_log_body(registry, &registry.get_env_version(who, &environment, &version)?)?,
                Target::Remote(remote) => {
                    remote.get_json(&format!("{}versions/{}/buildLog/", env_path(&environment), enc(&version)))?
                }
            };
            if as_json {
                println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            } else {
                let (log, error) = (body["log"].as_str().unwrap_or(""), body["error"].as_str().unwrap_or(""));
                if log.is_empty() && error.is_empty() {
                    eprintln!("no build log yet: the build has not finished");
                }
                print!("{log}");
                if !error.is_empty() {
                    eprintln!("the build failed: {error}");
                }
            }
        }
    }
    Ok(0)
}

/// Stores the context, records the version and runs its build here (validate
/// only; images are built by `serve --image-builder`). The context must be
/// a zip or gzip by its magic bytes, as the route requires.
fn add_version_offline(
    registry: &Registry,
    who: &crate::registry::Principal,
    environment: &str,
    context: &Path,
    label: String,
    description: String,
) -> Result<Value, Error> {
    registry.require(who, EntityKind::Environment, environment, Access::Write)?;
    let guard = registry.upload_guard()?;
    let digest = registry.put_blob(&mut File::open(context)?, None)?;
    if sniff(&mut registry.open_blob(&digest.sha256)?)?.is_none() {
        return Err(Error::invalid("dockerContext", "must be a .tar.gz or .zip archive"));
    }
    let filename = context.file_name().and_then(|n| n.to_str()).unwrap_or("context").to_string();
    let new = NewEnvVersion { label, description, context: Some((digest, filename)), ..Default::default() };
    let version = registry.create_env_version(who, environment, new)?;
    drop(guard);
    registry.enqueue_job(&who.team_id, BUILD_JOB, Some(&version.id), json!({"environmentId": environment}), None)?;
    // Only this version's build: another's belongs to whoever queued it.
    crate::jobs::run_jobs_about(registry, &crate::jobs::JobSettings::offline(registry.data_dir(), None), &version.id)?;
    let version = registry.get_env_version(who, environment, &version.id)?;
    Ok(env_api::render_version("", &version))
}
