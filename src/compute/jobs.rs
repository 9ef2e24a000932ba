//! The compute lane's jobs: dependency builds and custom model tests.
//!
//! A test job owns its DRUM server and its log; the checks run on a thread
//! of their own (`checks::run`) and report back through a channel. The
//! job's thread meanwhile copies the server's output into the log and
//! watches three things every `process::POLL`: a cancel (the server is
//! killed and the test stays `canceled`), the server dying (the reason, a
//! memory kill included, goes to the checks and the log), and the test's
//! deadline.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::checks::{self, Config, Event, Plan, Status};
use super::drum::{self, Runner, ServerSpec};
use super::insights;
use crate::registry::compute::insights::InsightKind;
use crate::registry::compute::jobs::JobLog;
use crate::registry::{Job, Model, Principal, Registry, Version};
use crate::runtime::{self, deps};

/// How long a whole test may take. `MODELREG_TEST_TIMEOUT_SECS` overrides.
const TEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// How long DRUM may take to answer its first `GET /` (a cold start of a
/// large model on a loaded host). `MODELREG_DRUM_START_TIMEOUT_SECS`
/// overrides.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// What a job needs to know about the server it runs in.
pub struct Settings<'a> {
    pub data_dir: &'a Path,
    /// `serve --python`.
    pub python: Option<&'a Path>,
    /// `serve --image-builder`: run models in their environment's image.
    pub image_builder: Option<&'a str>,
    /// Whether this process runs jobs (not `serve --no-jobs`): only then is
    /// its own runtime the one a request's job will use, and worth asking.
    pub runs_jobs: bool,
    /// False for `--no-coreml`: Core ML is neither made nor served here
    /// (`formats::turned_off`).
    pub coreml: bool,
}

/// Where a version runs: on the runtime (in its dependency environment,
/// built here first when missing), or, with an image builder, in its
/// environment's image (with its dependencies layered on, likewise).
/// Also returns the dependency environment's key, if it has one.
fn runner_for(
    registry: &Registry,
    settings: &Settings,
    version: &Version,
    job_dir: &Path,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<(Runner, Option<String>), String> {
    let dependencies = version.attrs.get("dependencies").cloned().unwrap_or_else(|| json!([]));
    let lines = deps::requirement_lines(&dependencies);
    if let Some(builder) = settings.image_builder {
        let image = environment_image(registry, version)?;
        if lines.is_empty() {
            return Ok((Runner::Docker { builder: builder.into(), image }, None));
        }
        let key = deps::env_key(&format!("image|{image}"), &lines);
        let tag = format!("modelreg-deps:{}", &key[..32]);
        build_dependency_image(builder, &image, &tag, &lines, job_dir, log, should_stop)?;
        return Ok((Runner::Docker { builder: builder.into(), image: tag }, Some(key)));
    }
    let runtime = runtime::locate(settings.data_dir, settings.python)?;
    if lines.is_empty() {
        runtime.check_drum()?;
        return Ok((Runner::Local { python: runtime.python }, None));
    }
    let key = deps::env_key(&runtime.identity()?, &lines);
    if let Some(python) = deps::built(settings.data_dir, &key) {
        log(&format!("Dependencies: the environment {key} is built."));
        return Ok((Runner::Local { python }, Some(key)));
    }
    log(&format!("Dependencies: building the environment {key}."));
    let python = deps::build(settings.data_dir, &runtime, &key, &lines, log, should_stop)?;
    Ok((Runner::Local { python }, Some(key)))
}

/// The image of the version's base environment version: its image URI, or
/// the image `serve --image-builder` built from its context.
fn environment_image(registry: &Registry, version: &Version) -> Result<String, String> {
    let vid = version.attrs.get("baseEnvironmentVersionId").and_then(Value::as_str).ok_or("the version names no environment version")?;
    let env = registry.env_version_by_id(vid).map_err(|e| e.message())?;
    if let Some(uri) = &env.docker_image_uri {
        return Ok(uri.clone());
    }
    let built = env.build_status == "success"
        && env.context.as_ref().is_some_and(|c| env.image_id.as_deref() != Some(format!("sha256:{}", c.sha256).as_str()));
    if !built {
        return Err(format!(
            "environment version {vid} has no image (it was validated without an image builder); add a version while the server runs with --image-builder"
        ));
    }
    Ok(format!("modelreg-env:{vid}"))
}

/// `FROM <image>` plus `pip install` of the requirements, as DRUM's own
/// `--docker` does; an image already built for the same key is reused.
fn build_dependency_image(
    builder: &str,
    image: &str,
    tag: &str,
    lines: &[String],
    job_dir: &Path,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<(), String> {
    let exists = std::process::Command::new(builder)
        .args(["image", "inspect", tag])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if exists {
        log(&format!("Dependencies: the image {tag} is built."));
        return Ok(());
    }
    let context = job_dir.join("dependency-image");
    std::fs::create_dir_all(&context).map_err(|e| format!("cannot create {}: {e}", context.display()))?;
    std::fs::write(context.join("requirements.txt"), lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {image}\nCOPY requirements.txt /tmp/modelreg-requirements.txt\nRUN pip install --no-input -r /tmp/modelreg-requirements.txt\n"),
    )
    .map_err(|e| e.to_string())?;
    log(&format!("Dependencies: {builder} build -t {tag} (FROM {image}, pip install {})", lines.join(" ")));
    let mut command = std::process::Command::new(builder);
    command.args(["build", "-t", tag]).arg(&context);
    let timeout = crate::registry::compute::envbuild::build_timeout();
    match crate::process::run_logged(command, timeout, log, should_stop).map_err(|e| format!("cannot run {builder}: {e}"))? {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{builder} build of the dependency image failed ({status}); its output is in the log above")),
        Err(crate::process::Stopped::Asked(reason)) => Err(reason),
        Err(crate::process::Stopped::TimedOut(t)) => Err(format!("{builder} build did not finish within {} s and was killed", t.as_secs())),
    }
}

/// The job of `POST …/dependencyBuild/`.
pub fn run_dependency_build(registry: &Registry, settings: &Settings, job: &Job) -> Result<Value, String> {
    let version_id = job.subject_id.clone().ok_or("the build job names no version")?;
    let model_id = job.input["modelId"].as_str().ok_or("the build job names no model")?;
    let who = registry.principal_of(job.input["userId"].as_str().unwrap_or_default()).map_err(|e| e.message())?;
    let job_log = JobLog::new(registry, &job.id);
    let mut log = |line: &str| job_log.line(line);
    let version = registry.get_version_by_id(&who, model_id, &version_id).map_err(|e| e.message())?;
    registry.set_dependency_build(&version_id, &job.id, "processing", None).map_err(|e| e.message())?;
    let mut should_stop = || registry.job_cancel_requested(&job.id).unwrap_or(true).then(|| "the build was cancelled".to_string());
    let job_dir = settings.data_dir.join("jobs").join(&job.id);
    let outcome = runner_for(registry, settings, &version, &job_dir, &mut log, &mut should_stop);
    let _ = std::fs::remove_dir_all(&job_dir);
    let (status, result) = match outcome {
        Ok((_, key)) => {
            log("Build succeeded.");
            registry.set_dependency_build(&version_id, &job.id, "success", key.as_deref()).map_err(|e| e.message())?;
            ("success", Ok(json!({"environment": key})))
        }
        Err(message) => {
            log(&format!("ERROR: {message}"));
            log("Build failed.");
            ("failed", Err(message))
        }
    };
    job_log.flush();
    if status == "failed" {
        registry.set_dependency_build(&version_id, &job.id, "failed", None).map_err(|e| e.message())?;
    }
    result
}

/// The job of `POST /customModelTests/`. It succeeds whenever the checks
/// reached a verdict, failed checks included (the status route then
/// answers 303 to the test); it fails only when the test could not run.
pub fn run_model_test(registry: &Registry, settings: &Settings, job: &Job) -> Result<Value, String> {
    let test_id = job.subject_id.clone().ok_or("the test job names no test")?;
    let test = registry.test_by_id(&test_id).map_err(|e| e.message())?;
    let location = json!({"location": format!("/api/v2/customModelTests/{test_id}/")});
    let job_log = JobLog::new(registry, &job.id);
    let log = |line: &str| job_log.line(line);
    let cancelled = || registry.job_cancel_requested(&job.id).unwrap_or(true);
    let who = registry.principal_of(&test.created_by).map_err(|e| e.message())?;
    let job_dir = settings.data_dir.join("jobs").join(&job.id);
    let _ = std::fs::remove_dir_all(&job_dir);
    let outcome = prepare_and_run(registry, settings, job, &who, &test, &job_dir, &job_log, &cancelled);
    let _ = std::fs::remove_dir_all(&job_dir);
    match outcome {
        Ok(()) => {}
        Err(message) => {
            // Nothing could be run: the first check fails and the rest are
            // aborted, with the reason where the person will look.
            log(&format!("ERROR: {message}"));
            let _ = registry.set_test_check(&test_id, "longRunningService", Status::Failed.as_str(), &message);
        }
    }
    let test = registry.test_by_id(&test_id).map_err(|e| e.message())?;
    let statuses: Vec<Status> =
        test.checks.values().filter_map(|c| c["status"].as_str()).map(Status::parse).collect();
    // A cancel already ended the test (its checks are all `canceled`, which
    // `overall` would call a success); the log says what the test says.
    let overall = if Status::parse(&test.overall_status) == Status::Canceled { Status::Canceled } else { checks::overall(&statuses) };
    log(&format!("Overall: {}", overall.as_str()));
    job_log.flush();
    registry.finish_test(&test_id, overall.as_str(), Status::Aborted.as_str()).map_err(|e| e.message())?;
    Ok(location)
}

#[allow(clippy::too_many_arguments)]
fn prepare_and_run(
    registry: &Registry,
    settings: &Settings,
    job: &Job,
    who: &Principal,
    test: &crate::registry::compute::model_tests::ModelTest,
    job_dir: &Path,
    job_log: &JobLog,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), String> {
    let log = &|line: &str| job_log.line(line);
    let model = registry.get_model(who, &test.model_id).map_err(|e| e.message())?;
    let version = registry.get_version_by_id(who, &test.model_id, &test.version_id).map_err(|e| e.message())?;
    log(&format!(
        "Testing custom model {} ({}, {}), version {} ({} files).",
        model.id,
        model.name,
        target_type(&model),
        version.id,
        version.files.len()
    ));
    let config = Config::from_json(&test.configuration);
    let modes: Vec<String> = checks::CHECKS.iter().map(|c| format!("{c}={}", config.mode(c).as_str())).collect();
    log(&format!("Checks: {}", modes.join(", ")));

    // What to read: the test dataset (twice, for the verification check)
    // and the dataset of expected predictions.
    let open_dataset = |id: &str| -> Result<(crate::registry::compute::datasets::Dataset, crate::registry::Blob), String> {
        let dataset = registry.usable_dataset(who, id).map_err(|e| e.message())?;
        let file = registry.open_blob(&dataset.sha256).map_err(|e| e.message())?;
        Ok((dataset, file))
    };
    let boxed = |file: crate::registry::Blob| Box::new(file) as Box<dyn std::io::Read + Send>;
    let (dataset, dataset_again) = match &test.dataset_id {
        Some(id) => {
            let (d, file) = open_dataset(id)?;
            log(&format!("Dataset {} ({}): {} rows, {} columns.", d.id, d.name, d.row_count.unwrap_or(0), d.columns.len()));
            let again = registry.open_blob(&d.sha256).map_err(|e| e.message())?;
            (Some(boxed(file)), Some(boxed(again)))
        }
        None => (None, None),
    };
    // predictionVerificationCheck's expected values: a column of its own
    // dataset, or of the test dataset (which the model must then not see).
    const VERIFY: &str = "predictionVerificationCheck";
    let verifying = config.mode(VERIFY) != checks::Mode::Skip;
    let column = config.parameter(VERIFY, "predictionsColumn").and_then(Value::as_str).unwrap_or_default().to_string();
    let own_dataset = config.parameter(VERIFY, "datasetId").and_then(Value::as_str);
    let expected = match own_dataset.or(test.dataset_id.as_deref()) {
        Some(id) if verifying => Some((boxed(open_dataset(id)?.1), column.clone())),
        _ => None,
    };
    let mut drop_columns = hidden_columns(&model);
    if verifying && own_dataset.is_none() {
        drop_columns.push(column);
    }

    let (mut server, spec) = start_version_server(registry, settings, job, &model, &version, &test.settings, job_dir, job_log, cancelled)?;
    let plan = Plan {
        target_type: spec.target_type.clone(),
        positive_class_label: spec.positive_class_label.clone(),
        config,
        dataset,
        drop_columns,
        expected,
        dataset_again,
        start_timeout: start_timeout(),
    };
    let mut record = |event: Event| {
        if let Event::Check { name, status, message } = event {
            let _ = registry.set_test_check(&test.id, name, status.as_str(), &message);
        }
    };
    supervise(&mut server, job_log, cancelled, "test", &mut record, |watch| {
        checks::run(plan, watch.endpoint, watch.emit, watch.stopped, watch.why_down)
    });
    server.drain(&mut |l| log(&format!("drum | {l}")));
    server.stop();
    Ok(())
}

/// As DataRobot's door shows it: a model made through another door, with
/// no target type of its own, runs as Unstructured
/// (`Model::target_type` is the rule's other reader).
fn target_type(model: &Model) -> String {
    model.attrs.get("targetType").and_then(Value::as_str).unwrap_or("Unstructured").to_string()
}

/// Columns a model never sees: its target and its training partition column.
fn hidden_columns(model: &Model) -> Vec<String> {
    ["targetName", "trainingDataPartitionColumn"].iter().filter_map(|k| model.attrs.get(*k).and_then(Value::as_str).map(str::to_string)).collect()
}

fn start_timeout() -> Duration {
    crate::process::timeout_from_env("MODELREG_DRUM_START_TIMEOUT_SECS", START_TIMEOUT)
}

/// Starts a version's model server for a job: the runner chosen (its
/// dependencies built first when missing), its files written read-only,
/// and its resource settings applied (`overrides` first, then the
/// version's, then the model's).
#[allow(clippy::too_many_arguments)]
fn start_version_server(
    registry: &Registry,
    settings: &Settings,
    job: &Job,
    model: &Model,
    version: &Version,
    overrides: &Map<String, Value>,
    job_dir: &Path,
    job_log: &JobLog,
    cancelled: &dyn Fn() -> bool,
) -> Result<(drum::Server, ServerSpec), String> {
    let log = &|line: &str| job_log.line(line);
    let mut should_stop = || cancelled().then(|| "the job was cancelled".to_string());
    let (runner, _) = runner_for(registry, settings, version, job_dir, &mut |l| log(l), &mut should_stop)?;
    let code_dir = std::path::absolute(job_dir.join("code")).map_err(|e| format!("cannot resolve the job folder: {e}"))?;
    std::fs::create_dir_all(&code_dir).map_err(|e| format!("cannot create {}: {e}", code_dir.display()))?;
    drum::materialise(registry, version, &code_dir)?;
    log(&format!("Materialised {} file(s) read-only for the model server.", version.files.len()));
    let setting = |key: &str| {
        [overrides.get(key), version.attrs.get(key), model.attrs.get(key)].into_iter().flatten().find(|v| !v.is_null()).cloned()
    };
    let memory_limit = setting("maximumMemory").and_then(|v| v.as_u64());
    let no_network = setting("networkEgressPolicy").and_then(|v| v.as_str().map(str::to_string)).as_deref() == Some("NONE");
    let env: Vec<(String, String)> = version
        .attrs
        .get("requiredMetadataValues")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|pair| Some((pair["fieldName"].as_str()?.to_string(), pair["value"].as_str()?.to_string())))
        .collect();
    log(&format!(
        "Resources: maximumMemory {}; networkEgressPolicy {}; {} requiredMetadataValues as environment variables.",
        memory_limit.map(|m| format!("{m} bytes")).unwrap_or_else(|| "unlimited".into()),
        if no_network { "NONE" } else { "PUBLIC" },
        env.len()
    ));
    let label = |key: &str| model.attrs.get(key).and_then(Value::as_str).map(str::to_string);
    let spec = ServerSpec {
        runner,
        code_dir,
        target_type: target_type(model),
        positive_class_label: label("positiveClassLabel"),
        negative_class_label: label("negativeClassLabel"),
        class_labels: model
            .attrs
            .get("classLabels")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default(),
        env,
        memory_limit,
        no_network,
        name: job.id.clone(),
        data_dir: std::path::absolute(settings.data_dir).map_err(|e| format!("cannot resolve the data directory: {e}"))?,
    };
    let server = drum::Server::start(&spec, &mut |l| log(&format!("drum | {l}")))?;
    if no_network && !server.isolated_network {
        log("WARNING: networkEgressPolicy is NONE but this host could not isolate the model's network; it ran with egress.");
    }
    Ok((server, spec))
}

/// What work on the server's side of a job gets: where the server listens,
/// how to report, and how to tell that the job gave up on the server.
pub struct Watch<'a> {
    pub endpoint: &'a drum::Endpoint,
    pub emit: &'a dyn Fn(Event),
    pub stopped: &'a (dyn Fn() -> bool + Sync),
    pub why_down: &'a (dyn Fn() -> Option<String> + Sync),
}

/// Runs `work` on a thread of its own (it may join the server's network
/// namespace) while this thread copies the server's output into the log,
/// hands `work`'s events to `on_event`, and stops the server on a cancel,
/// its death or the deadline (telling `work` why).
fn supervise<T: Send>(
    server: &mut drum::Server,
    job_log: &JobLog,
    cancelled: &dyn Fn() -> bool,
    what: &str,
    on_event: &mut dyn FnMut(Event),
    work: impl FnOnce(&Watch) -> T + Send,
) -> Option<T> {
    let log = |line: &str| job_log.line(line);
    let deadline = Instant::now() + crate::process::timeout_from_env("MODELREG_TEST_TIMEOUT_SECS", TEST_TIMEOUT);
    let stopped = AtomicBool::new(false);
    let why_down: Mutex<Option<String>> = Mutex::new(None);
    let endpoint = server.endpoint();
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        let (stopped, why_down, endpoint) = (&stopped, &why_down, &endpoint);
        let worker = scope.spawn(move || {
            let emit = |event: Event| {
                let _ = tx.send(event);
            };
            work(&Watch {
                endpoint,
                emit: &emit,
                stopped: &|| stopped.load(Ordering::SeqCst),
                why_down: &|| why_down.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            })
        });
        let mut gave_up = false;
        loop {
            match rx.recv_timeout(crate::process::POLL) {
                Ok(Event::Log(line)) => log(&line),
                Ok(event) => on_event(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            server.drain(&mut |l| log(&format!("drum | {l}")));
            job_log.tick();
            if gave_up {
                continue;
            }
            let reason = if cancelled() {
                Some(format!("the {what} was cancelled; the model server was stopped"))
            } else if Instant::now() >= deadline {
                Some(format!("the {what} did not finish in time; the model server was stopped"))
            } else {
                server.exited(&mut |l| log(&format!("drum | {l}")))
            };
            if let Some(reason) = reason {
                log(&format!("modelreg: {reason}"));
                *why_down.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                stopped.store(true, Ordering::SeqCst);
                server.kill();
                gave_up = true;
            }
        }
        worker.join().ok()
    })
}

/// The job of `POST …/featureImpact/` and `…/predictionExplanationsInitialization/`:
/// one DRUM server for the version, the training data sampled once, and
/// either feature impact, or explanations' initialisation (with feature
/// impact first when the version has none).
pub fn run_insight(registry: &Registry, settings: &Settings, job: &Job) -> Result<Value, String> {
    let version_id = job.subject_id.clone().ok_or("the job names no version")?;
    let model_id = job.input["modelId"].as_str().ok_or("the job names no model")?.to_string();
    let kind = job.input["kind"].as_str().and_then(InsightKind::parse).ok_or("the job names no insight")?;
    let params = job.input["params"].clone();
    let who = registry.principal_of(job.input["userId"].as_str().unwrap_or_default()).map_err(|e| e.message())?;
    let job_log = JobLog::new(registry, &job.id);
    let cancelled = || registry.job_cancel_requested(&job.id).unwrap_or(true);
    let job_dir = settings.data_dir.join("jobs").join(&job.id);
    let _ = std::fs::remove_dir_all(&job_dir);
    let outcome = compute_insight(registry, settings, job, &who, &model_id, &version_id, kind, &params, &job_dir, &job_log, &cancelled);
    let _ = std::fs::remove_dir_all(&job_dir);
    match &outcome {
        Ok(_) => job_log.line("Done."),
        Err(message) => job_log.line(&format!("ERROR: {message}")),
    }
    job_log.flush();
    registry.finish_insight(&version_id, kind, &job.id, outcome.as_ref().map_err(String::as_str)).map_err(|e| e.message())?;
    outcome?;
    let location = match kind {
        InsightKind::FeatureImpact => format!("/api/v2/customModels/{model_id}/versions/{version_id}/featureImpact/"),
        InsightKind::PredictionExplanations => format!("/api/v2/customModels/{model_id}/versions/{version_id}/"),
    };
    Ok(json!({"location": location}))
}

#[allow(clippy::too_many_arguments)]
fn compute_insight(
    registry: &Registry,
    settings: &Settings,
    job: &Job,
    who: &Principal,
    model_id: &str,
    version_id: &str,
    kind: InsightKind,
    params: &Value,
    job_dir: &Path,
    job_log: &JobLog,
    cancelled: &dyn Fn() -> bool,
) -> Result<Value, String> {
    let log = |line: &str| job_log.line(line);
    let model = registry.get_model(who, model_id).map_err(|e| e.message())?;
    let version = registry.get_version_by_id(who, model_id, version_id).map_err(|e| e.message())?;
    let kind_of_target = target_type(&model);
    if !insights::SUPPORTED_TARGETS.contains(&kind_of_target.as_str()) {
        return Err(format!("{kind_of_target} models have no permutation feature impact here (Regression, Binary and Multiclass do)"));
    }
    let target_name = model.attrs.get("targetName").and_then(Value::as_str).ok_or("the model has no targetName")?.to_string();
    let (dataset, partition) =
        registry.training_dataset_for(who, model_id, version_id).map_err(|e| e.message())?.ok_or("the version has no training data")?;
    let mut hidden = hidden_columns(&model);
    hidden.extend(partition);
    let size = params["rowCount"].as_u64().map_or(insights::DEFAULT_SAMPLE_ROWS, |n| n as usize);
    // A seed of its own per run, recorded with the result so that a run can
    // be repeated.
    let seed = {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(job.id.as_bytes());
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) >> 11
    };
    log(&format!("Training data: dataset {} ({}), target {target_name:?}.", dataset.id, dataset.name));
    let file = registry.open_blob(&dataset.sha256).map_err(|e| e.message())?;
    let sample = insights::sample(file, &target_name, &hidden, size, seed)?;
    let existing = match kind {
        InsightKind::PredictionExplanations => registry
            .get_insight(who, model_id, version_id, InsightKind::FeatureImpact)
            .map_err(|e| e.message())?
            .filter(|i| i.state == "done")
            .and_then(|i| i.result),
        InsightKind::FeatureImpact => None,
    };
    let (mut server, spec) = start_version_server(registry, settings, job, &model, &version, &Map::new(), job_dir, job_log, cancelled)?;
    let positive = spec.positive_class_label.clone().unwrap_or_else(|| "1".into());
    let target = insights::Target { kind: &kind_of_target, positive: Some(&positive) };
    let work = |watch: &Watch| -> Result<(Option<Value>, Option<Value>), String> {
        let client = watch.endpoint.connect()?;
        client.wait_ready(start_timeout(), watch.stopped)?;
        let emit = |line: &str| (watch.emit)(Event::Log(line.to_string()));
        let (impact, base) = match &existing {
            Some(impact) => {
                emit("Feature impact: using the version's existing result.");
                (impact.clone(), insights::base_predictions(&sample, &client, &emit)?)
            }
            None => {
                let computed = insights::feature_impact(&sample, &target, &client, &emit)?;
                (computed.body, computed.base_predictions)
            }
        };
        let explained = match kind {
            InsightKind::PredictionExplanations => Some(insights::explanations(&sample, &impact, &base, &target, &client, &emit)?),
            InsightKind::FeatureImpact => None,
        };
        Ok((existing.is_none().then_some(impact), explained))
    };
    let outcome = supervise(&mut server, job_log, cancelled, kind.as_str(), &mut |_| {}, |watch| {
        work(watch).map_err(|e| (watch.why_down)().map(|why| format!("{e} ({why})")).unwrap_or(e))
    });
    server.drain(&mut |l| log(&format!("drum | {l}")));
    server.stop();
    let (impact, explained) = outcome.unwrap_or_else(|| Err("the computation stopped unexpectedly".into()))?;
    let row_count = json!({"rowCount": params["rowCount"]});
    let with_row_count = |mut body: Value| {
        body["rowCount"] = params["rowCount"].clone();
        body
    };
    match kind {
        InsightKind::FeatureImpact => Ok(with_row_count(impact.ok_or("feature impact produced nothing")?)),
        InsightKind::PredictionExplanations => {
            if let Some(impact) = impact {
                // Computed on the way: it is the version's feature impact now.
                registry
                    .record_insight(who, version_id, InsightKind::FeatureImpact, &job.id, &row_count, &with_row_count(impact))
                    .map_err(|e| e.message())?;
            }
            explained.ok_or_else(|| "explanations produced nothing".to_string())
        }
    }
}
