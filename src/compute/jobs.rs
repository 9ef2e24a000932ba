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

use serde_json::{json, Value};

use super::checks::{self, Config, Event, Plan, Status};
use super::drum::{self, Runner, ServerSpec};
use crate::registry::jobs::JobLog;
use crate::registry::{Job, Principal, Registry, Version};
use crate::runtime::{self, deps};

/// How long a whole test may take. `MODELREG_TEST_TIMEOUT_SECS` overrides.
const TEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// How long DRUM may take to answer its first `GET /` (a cold start of a
/// large model on a loaded host). `MODELREG_DRUM_START_TIMEOUT_SECS`
/// overrides.
const START_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn seconds_from_env(name: &str, default: Duration) -> Duration {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok()).map(Duration::from_secs).unwrap_or(default)
}

/// What a job needs to know about the server it runs in.
pub struct Settings<'a> {
    pub data_dir: &'a Path,
    /// `serve --python`.
    pub python: Option<&'a Path>,
    /// `serve --image-builder`: run models in their environment's image.
    pub image_builder: Option<&'a str>,
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
    let timeout = seconds_from_env("MODELREG_BUILD_TIMEOUT_SECS", crate::registry::envbuild::BUILD_TIMEOUT);
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
    test: &crate::registry::model_tests::ModelTest,
    job_dir: &Path,
    job_log: &JobLog,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), String> {
    let log = &|line: &str| job_log.line(line);
    let model = registry.get_model(who, &test.model_id).map_err(|e| e.message())?;
    let version = registry.get_version_by_id(who, &test.model_id, &test.version_id).map_err(|e| e.message())?;
    let label = |key: &str| model.attrs.get(key).and_then(Value::as_str).map(str::to_string);
    let target_type = label("targetType").unwrap_or_else(|| "Regression".into());
    log(&format!(
        "Testing custom model {} ({}, {target_type}), version {} ({} files).",
        model.id,
        if model.name.is_empty() { "unnamed" } else { &model.name },
        version.id,
        version.files.len()
    ));
    let config = Config::from_json(&test.configuration);
    let modes: Vec<String> = checks::CHECKS.iter().map(|c| format!("{c}={}", config.mode(c).as_str())).collect();
    log(&format!("Checks: {}", modes.join(", ")));

    let mut should_stop = || cancelled().then(|| "the test was cancelled".to_string());
    let (runner, _) = runner_for(registry, settings, &version, job_dir, &mut |l| log(l), &mut should_stop)?;

    let code_dir = std::path::absolute(job_dir.join("code")).map_err(|e| format!("cannot resolve the job folder: {e}"))?;
    std::fs::create_dir_all(&code_dir).map_err(|e| format!("cannot create {}: {e}", code_dir.display()))?;
    drum::materialise(registry, &version, &code_dir)?;
    log(&format!("Materialised {} file(s) read-only for the model server.", version.files.len()));

    // What to read: the test dataset (twice, for the verification check)
    // and the dataset of expected predictions.
    let open_dataset = |id: &str| -> Result<(crate::registry::datasets::Dataset, std::fs::File), String> {
        let dataset = registry.usable_dataset(who, id).map_err(|e| e.message())?;
        let file = registry.open_blob(&dataset.sha256).map_err(|e| e.message())?;
        Ok((dataset, file))
    };
    let boxed = |file: std::fs::File| Box::new(file) as Box<dyn std::io::Read + Send>;
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
    let mut drop_columns: Vec<String> = ["targetName", "trainingDataPartitionColumn"].iter().filter_map(|k| label(k)).collect();
    if verifying && own_dataset.is_none() {
        drop_columns.push(column);
    }

    let setting = |key: &str| {
        test.settings.get(key).filter(|v| !v.is_null()).or_else(|| version.attrs.get(key).filter(|v| !v.is_null())).or_else(|| model.attrs.get(key).filter(|v| !v.is_null())).cloned()
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
    let spec = ServerSpec {
        runner,
        code_dir: code_dir.clone(),
        target_type: target_type.clone(),
        positive_class_label: label("positiveClassLabel"),
        negative_class_label: label("negativeClassLabel"),
        class_labels: model.attrs.get("classLabels").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default(),
        env,
        memory_limit,
        no_network,
        name: job.id.clone(),
        data_dir: std::path::absolute(settings.data_dir).map_err(|e| format!("cannot resolve the data directory: {e}"))?,
    };
    let mut server = drum::Server::start(&spec, &mut |l| log(&format!("drum | {l}")))?;
    if no_network && !server.isolated_network {
        log("WARNING: networkEgressPolicy is NONE but this host could not isolate the model's network; it ran with egress.");
    }
    let plan = Plan {
        target_type,
        positive_class_label: spec.positive_class_label.clone(),
        config,
        dataset,
        drop_columns,
        expected,
        dataset_again,
        start_timeout: seconds_from_env("MODELREG_DRUM_START_TIMEOUT_SECS", START_TIMEOUT),
    };
    supervise(registry, &test.id, &mut server, plan, job_log, cancelled);
    server.drain(&mut |l| log(&format!("drum | {l}")));
    server.stop();
    Ok(())
}

/// Runs the checks on their own thread while this one watches the server,
/// the cancel flag and the deadline.
fn supervise(registry: &Registry, test_id: &str, server: &mut drum::Server, plan: Plan, job_log: &JobLog, cancelled: &dyn Fn() -> bool) {
    let log = |line: &str| job_log.line(line);
    let deadline = Instant::now() + seconds_from_env("MODELREG_TEST_TIMEOUT_SECS", TEST_TIMEOUT);
    let stopped = AtomicBool::new(false);
    let why_down: Mutex<Option<String>> = Mutex::new(None);
    let endpoint = server.endpoint();
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        let (stopped, why_down, endpoint) = (&stopped, &why_down, &endpoint);
        scope.spawn(move || {
            let emit = |event: Event| {
                let _ = tx.send(event);
            };
            checks::run(
                plan,
                endpoint,
                &emit,
                &|| stopped.load(Ordering::SeqCst),
                &|| why_down.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            );
        });
        let mut gave_up = false;
        loop {
            match rx.recv_timeout(crate::process::POLL) {
                Ok(Event::Log(line)) => log(&line),
                Ok(Event::Check { name, status, message }) => {
                    let _ = registry.set_test_check(test_id, name, status.as_str(), &message);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            server.drain(&mut |l| log(&format!("drum | {l}")));
            job_log.tick();
            if gave_up {
                continue;
            }
            let reason = if cancelled() {
                Some("the test was cancelled; the model server was stopped".to_string())
            } else if Instant::now() >= deadline {
                Some("the test did not finish in time; the model server was stopped".to_string())
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
    });
}
