//! Format conversions: an Octomil version's weights converted into ONNX (or
//! TFLite) by the converter its ecosystem uses, and verified against the
//! original before the artifact is served; or into Core ML, which nothing on
//! Linux can run, so it is served unverified and says so (`unverifiable`),
//! unless the operator turned it off (`turned_off`).
//!
//! - `plan` decides, from the version's format and its file alone, what a
//!   target takes: which converter and which `runtime install --with`
//!   option, or why it is impossible (a PyTorch state_dict carries no
//!   architecture; no maintained converter makes TFLite from scikit-learn).
//! - `probe` asks the runtime's Python which converter packages it has
//!   (cached briefly: uploads ask it).
//! - `run` is the job (compute lane): it copies the original into the job's
//!   folder and runs `formats.py` (compiled in) with the runtime's Python
//!   under `modelreg contain` (no network, the data directory hidden but for
//!   the job's folder and the runtime), because loading a pickle runs the
//!   uploader's code. The script converts, runs original and converted on
//!   the same generated inputs, and exits non-zero with the largest
//!   difference when they disagree beyond its stated tolerance (a Core ML
//!   model is only read back and compared with the original's inputs,
//!   outputs and classes). The artifact is then stored as a blob the format
//!   row owns, under an upload guard until the row commits, its provenance
//!   saying whether it was verified.
//!
//! `MODELREG_FORMAT_TIMEOUT_SECS` overrides the deadline of one conversion.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jobs::Settings;
use crate::process::{self, Stopped};
use crate::registry::compute::formats::FormatArtifact;
use crate::registry::compute::jobs::JobLog;
use crate::registry::{Job, Registry, Version};

/// The script the jobs run (see its header).
pub const SCRIPT: &str = include_str!("formats.py");

/// How long one conversion, verification included, may take.
const FORMAT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Formats a download may ask for that modelreg makes by converting.
pub const TARGETS: [&str; 3] = ["onnx", "tflite", "coreml"];

/// Packages a conversion needs, by the `runtime install --with` option that
/// brings them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// skl2onnx, onnxmltools, onnxruntime, scikit-learn, xgboost.
    Converters,
    /// tensorflow-cpu and tf2onnx, besides the converters.
    TensorFlow,
    /// torch (CPU wheels), besides the converters.
    Torch,
    /// coremltools, which `--with converters` brings since issue 24: a
    /// runtime installed before lacks it, and still converts to ONNX.
    CoreML,
}

impl Need {
    /// The packages `probe` must find.
    fn modules(self) -> &'static [&'static str] {
        match self {
            Need::Converters => &["skl2onnx", "onnxmltools", "onnxruntime", "onnx", "scikit-learn", "xgboost"],
            Need::TensorFlow => &["tensorflow", "tf2onnx", "onnxruntime", "onnx"],
            Need::Torch => &["torch", "onnxruntime", "onnx"],
            Need::CoreML => &["coremltools"],
        }
    }

    /// The `runtime install --with` option beyond `converters` it takes.
    fn option(self) -> Option<&'static str> {
        match self {
            Need::Converters | Need::CoreML => None,
            Need::TensorFlow => Some("tensorflow"),
            Need::Torch => Some("torch"),
        }
    }
}

/// What to run to get every package of `needs`.
pub fn install_command(needs: &[Need]) -> String {
    let mut command = "modelreg runtime install --with converters".to_string();
    for option in needs.iter().filter_map(|n| n.option()) {
        command.push_str(" --with ");
        command.push_str(option);
    }
    command
}

/// Why artifacts of `target` are served unverified, for a target whose are.
pub fn unverifiable(target: &str) -> Option<&'static str> {
    (target == "coreml").then_some(
        "a Core ML model runs only on Apple's platforms (coremltools cannot run one on Linux), so modelreg could not compare \
         its outputs with the original's; it checked only that the file reads back as a Core ML model with the original's \
         inputs, outputs and classes",
    )
}

/// Why this process refuses `target`, when its operator turned it off
/// (`serve --no-coreml`, `worker --no-coreml`, MODELREG_NO_COREML). The
/// doors refuse to make or serve it, and a worker fails a job that asks it.
pub fn turned_off(settings: &Settings, target: &str) -> Option<String> {
    (target == "coreml" && !settings.coreml).then(|| {
        "the operator of this server turned Core ML conversions off (--no-coreml), because a Core ML model cannot be \
         checked against the original on Linux; download the version as ONNX, or ask the operator"
            .to_string()
    })
}

/// What it takes to make `target` from a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The version is stored in that format: the original is served.
    Original,
    /// `converter` makes it, with the packages of `needs`.
    Convert { converter: &'static str, needs: &'static [Need] },
    /// No honest conversion exists; the reason says why.
    Impossible(String),
}

/// The format a version was uploaded as (Octomil's `format` attr).
pub fn source_format(version: &Version) -> String {
    version.attrs.get("format").and_then(Value::as_str).unwrap_or("original").to_string()
}

/// Whether a conversion from what `needs` names needs the model's input
/// shape: a TorchScript export does (to ONNX and Core ML alike).
pub fn needs_input_shape(needs: &[Need]) -> bool {
    needs.contains(&Need::Torch)
}

/// Decides how `target` is made from `version`. Reads the file only for
/// PyTorch (to tell TorchScript from a state_dict by its archive's layout).
pub fn plan(registry: &Registry, version: &Version, target: &str) -> Plan {
    let source = source_format(version);
    if target == source || target == "original" {
        return Plan::Original;
    }
    if !TARGETS.contains(&target) {
        return Plan::Impossible(format!(
            "modelreg does not convert into {target}: a version uploaded as {source} is served as {source} (or converted into ONNX where its converter exists)"
        ));
    }
    match (source.as_str(), target) {
        ("sklearn", "onnx") => Plan::Convert { converter: "skl2onnx", needs: &[Need::Converters] },
        ("xgboost", "onnx") => Plan::Convert { converter: "onnxmltools", needs: &[Need::Converters] },
        ("tensorflow", "onnx") => Plan::Convert { converter: "tf2onnx", needs: &[Need::TensorFlow] },
        ("tensorflow", "tflite") => Plan::Convert { converter: "tf.lite.TFLiteConverter", needs: &[Need::TensorFlow] },
        ("pytorch", "onnx") => match torchscript(registry, version, "ONNX") {
            Ok(()) => Plan::Convert { converter: "torch.onnx.export", needs: &[Need::Torch] },
            Err(reason) => Plan::Impossible(reason),
        },
        ("sklearn", "coreml") => {
            Plan::Convert { converter: "coremltools.converters.sklearn", needs: &[Need::Converters, Need::CoreML] }
        }
        ("tensorflow", "coreml") => Plan::Convert { converter: "coremltools.convert", needs: &[Need::TensorFlow, Need::CoreML] },
        ("pytorch", "coreml") => match torchscript(registry, version, "Core ML") {
            Ok(()) => Plan::Convert { converter: "coremltools.convert", needs: &[Need::Torch, Need::CoreML] },
            Err(reason) => Plan::Impossible(reason),
        },
        ("xgboost", "coreml") => Plan::Impossible(
            "coremltools' XGBoost converter reads models of xgboost 1.x (it is tested up to 1.4.2), not those of the xgboost \
             modelreg's runtime loads; download it as ONNX instead"
                .into(),
        ),
        ("onnx", "coreml") => Plan::Impossible(
            "no maintained converter makes Core ML from ONNX (coremltools dropped its ONNX converter in version 6, and \
             onnx-coreml is archived); modelreg serves this version as ONNX only"
                .into(),
        ),
        ("sklearn" | "xgboost", "tflite") => Plan::Impossible(format!(
            "no maintained converter makes TFLite from a {source} model (TFLite runs TensorFlow graphs); download it as ONNX instead"
        )),
        ("onnx", "tflite") => Plan::Impossible(
            "no maintained converter makes TFLite from ONNX (onnx-tf is archived); modelreg serves this version as ONNX only".into(),
        ),
        ("pytorch", "tflite") => Plan::Impossible(
            "modelreg does not make TFLite from PyTorch (that needs ai-edge-torch and the model's Python code); download it as ONNX from a TorchScript upload instead".into(),
        ),
        ("safetensors", _) => Plan::Impossible(format!(
            "a safetensors file holds tensors without the model's architecture, which lives in the Python code of the library that saved it, \
             so modelreg cannot make {target} from it; export {target} from the model's code and upload that"
        )),
        ("gguf", _) => Plan::Impossible(format!(
            "GGUF is llama.cpp's format and no maintained converter makes {target} from it; run it with llama.cpp (or another GGUF runtime), \
             or convert the checkpoint it was made from"
        )),
        _ => Plan::Impossible(format!("modelreg has no converter from {source} to {target}")),
    }
}

/// Ok when the version's file is a TorchScript archive; Err says why it
/// cannot be exported (to `target`, as the reason names it) otherwise.
/// `torch.jit.save` writes a zip with a `code/` folder (the model's compiled
/// program); `torch.save` of a state_dict or of a module writes only pickled
/// data, whose architecture is Python code modelreg does not have.
fn torchscript(registry: &Registry, version: &Version, target: &str) -> Result<(), String> {
    let state_dict = || {
        format!(
            "this PyTorch file is not TorchScript: a state_dict (or a pickled module) holds weights without the model's \
             architecture, which lives in Python code that was not uploaded, so it cannot be exported to {target}. Upload a \
             TorchScript file (torch.jit.script or torch.jit.trace, then torch.jit.save) instead"
        )
    };
    let file = version.files.first().ok_or("the version has no file")?;
    let mut blob = registry.open_blob(&file.sha256).map_err(|e| e.message())?;
    if !has_zip_end(&mut blob) {
        return Err(state_dict());
    }
    let Ok(archive) = zip::ZipArchive::new(blob) else {
        return Err(state_dict());
    };
    let scripted = archive.file_names().any(|name| name.split('/').nth(1) == Some("code"));
    if scripted {
        Ok(())
    } else {
        Err(state_dict())
    }
}

/// Whether the file ends as a zip does: with an end-of-central-directory
/// record in its last 22 + 65,535 bytes (the longest comment). The zip crate
/// looks for that record through the whole file, so a 1 GiB upload that is
/// not a zip (a state_dict, random weights) was read back in full before its
/// 201: 13% of the upload's CPU.
fn has_zip_end(file: &mut crate::registry::Blob) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 22 + 65_535;
    let Ok(len) = file.len() else { return false };
    let mut tail = Vec::new();
    let read = file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).is_ok()
        && file.by_ref().take(TAIL).read_to_end(&mut tail).is_ok()
        && file.seek(SeekFrom::Start(0)).is_ok();
    read && memchr::memmem::rfind(&tail, b"PK\x05\x06").is_some()
}

/// Versions of the converter packages the runtime has (null when missing).
pub fn probe(settings: &Settings) -> Result<Value, String> {
    // Uploads ask this; a Python start per upload is too dear, and a
    // runtime installed meanwhile changes the interpreter's path anyway.
    static CACHE: Mutex<Option<(PathBuf, Instant, Value)>> = Mutex::new(None);
    const FRESH: Duration = Duration::from_secs(10);
    let runtime = crate::runtime::locate(settings.data_dir, settings.python)?;
    if let Some((python, at, facts)) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if *python == runtime.python && at.elapsed() < FRESH {
            return Ok(facts.clone());
        }
    }
    let out = Command::new(&runtime.python)
        .args(["-c", SCRIPT, "probe"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", runtime.python.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", runtime.python.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    let facts: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("the converter probe answered something unexpected: {e}"))?;
    *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some((runtime.python, Instant::now(), facts.clone()));
    Ok(facts)
}

/// Ok when the runtime has every package of `needs`; Err says which option
/// of `runtime install` would bring them. A server that runs no jobs (`serve
/// --no-jobs`) cannot see its workers' runtimes, so it does not ask its own
/// (as `compute::available`): a worker without the converters fails the job
/// saying which `runtime install` is missing.
pub fn check_installed(settings: &Settings, needs: &[Need], what: &str) -> Result<(), String> {
    if !settings.runs_jobs {
        return Ok(());
    }
    let command = install_command(needs);
    let facts = probe(settings).map_err(|e| format!("this server cannot convert {what}: {e}. The converters come with `{command}`"))?;
    let missing: Vec<&str> = needs.iter().flat_map(|n| n.modules().iter().copied()).filter(|m| facts[*m].is_null()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    // coremltools 9.0 publishes Linux wheels for x86_64 and CPython 3.10 to
    // 3.13 only; elsewhere `runtime install` leaves it out (see
    // `runtime::expand_options`), and running it again would not help.
    let wheels = if missing.contains(&"coremltools") {
        " (on Linux, coremltools has wheels for x86_64 and Python 3.10 to 3.13 only)"
    } else {
        ""
    };
    Err(format!("this server cannot convert {what}: its Python runtime lacks {}; `{command}` installs them{wheels}", missing.join(", ")))
}

/// Parses `1,3,224,224` (or `[1, 3, 224, 224]`): positive dimensions, at
/// most 8 of them.
pub fn parse_shape(text: &str) -> Result<Vec<i64>, String> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let dims: Result<Vec<i64>, _> = inner.split(',').map(|d| d.trim().parse::<i64>()).collect();
    match dims {
        Ok(dims) if !dims.is_empty() && dims.len() <= 8 && dims.iter().all(|d| (1..=1 << 20).contains(d)) => Ok(dims),
        _ => Err(format!("must be 1 to 8 positive integers separated by commas (e.g. 1,3,224,224), got {text:?}")),
    }
}

/// The extension of a file in `format`: a Core ML model is an `.mlmodel`
/// (coremltools and Xcode go by it), the others are named as their format.
fn extension(format: &str) -> &str {
    if format == "coreml" {
        "mlmodel"
    } else {
        format
    }
}

/// The file name a converted artifact is offered under.
pub fn file_name(number: i64, format: &str) -> String {
    format!("model_v{number}.{}", extension(format))
}

/// The job: converts, verifies, stores. A conversion that fails (the
/// converter refuses, the file does not load, the check disagrees) fails
/// the job with the same reason the row records.
pub fn run(registry: &Registry, settings: &Settings, job: &Job) -> Result<Value, String> {
    let id = job.subject_id.clone().ok_or("the format conversion job names no artifact")?;
    let row = registry.format_artifact_by_id(&id).map_err(|e| e.message())?;
    let result = json!({"formatArtifact": id, "format": row.format});
    if !registry.start_format(&id).map_err(|e| e.message())? {
        return Ok(result);
    }
    let job_log = JobLog::new(registry, &job.id);
    let mut log = |line: &str| job_log.line(line);
    let mut should_stop =
        || registry.job_cancel_requested(&job.id).unwrap_or(true).then(|| "the conversion was stopped on request".to_string());
    let job_dir = settings.data_dir.join("jobs").join(&job.id);
    // A job run again after a restart starts from a clean folder.
    let _ = std::fs::remove_dir_all(&job_dir);
    let outcome = convert(registry, settings, &row, &job_dir, &mut log, &mut should_stop);
    let verdict = match outcome {
        Ok((artifact, provenance)) => store(registry, &row, &artifact, provenance, &job_log),
        Err(reason) => {
            log(&format!("Conversion failed: {reason}"));
            job_log.flush();
            registry.finish_format(&id, Err(&reason)).map_err(|e| e.message())?;
            Err(reason)
        }
    };
    let _ = std::fs::remove_dir_all(&job_dir);
    verdict.map(|()| result)
}

/// Stores the artifact and records it: the log is complete before the row
/// says it is ready.
fn store(registry: &Registry, row: &FormatArtifact, artifact: &Path, provenance: Value, job_log: &JobLog) -> Result<(), String> {
    let guard = registry.upload_guard().map_err(|e| e.message())?;
    let mut file = std::fs::File::open(artifact).map_err(|e| format!("cannot read the converted file: {e}"))?;
    let digest = registry.put_blob(&mut file, None).map_err(|e| e.message())?;
    job_log.line(&format!("Stored the {} artifact: {} bytes, sha256 {}.", row.format, digest.size, digest.sha256));
    job_log.flush();
    registry.finish_format(&row.id, Ok((&digest, &provenance))).map_err(|e| e.message())?;
    drop(guard);
    Ok(())
}

fn convert(
    registry: &Registry,
    settings: &Settings,
    row: &FormatArtifact,
    job_dir: &Path,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<(PathBuf, Value), String> {
    let who = registry.principal_of(&row.created_by).map_err(|e| e.message())?;
    let version = registry.get_version_by_id(&who, &row.model_id, &row.version_id).map_err(|e| e.message())?;
    let source = version.files.first().ok_or("the version has no file")?;
    let from = source_format(&version);
    let Plan::Convert { converter, needs } = plan(registry, &version, &row.format) else {
        return Err(format!("modelreg cannot convert {from} into {}", row.format));
    };
    // A server that allows it may have queued what this worker's operator
    // turned off.
    if let Some(refusal) = turned_off(settings, &row.format) {
        return Err(refusal);
    }
    check_installed(settings, needs, &format!("{from} into {}", row.format))?;
    let runtime = crate::runtime::locate(settings.data_dir, settings.python)?;
    let job_dir = std::path::absolute(job_dir).map_err(|e| format!("cannot resolve the job folder: {e}"))?;
    let home = job_dir.join("home");
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    // Keras picks its loader by the extension: keep the uploaded name.
    crate::registry::validate_file_path(&source.path).map_err(|e| e.message())?;
    let base = source.path.rsplit('/').next().unwrap_or("model");
    let input = job_dir.join(format!("source-{base}"));
    registry.materialise_blob(&source.sha256, &input).map_err(|e| format!("cannot copy the original to {}: {e}", input.display()))?;
    let output = job_dir.join(format!("converted.{}", extension(&row.format)));
    let result = job_dir.join("result.json");
    log(&format!(
        "Converting version {} ({from}, {} bytes, sha256 {}) into {} with {converter}, on {}.",
        version.number,
        source.size,
        source.sha256,
        row.format,
        runtime.python.display()
    ));

    // /proc/self/exe runs this binary even after an upgrade replaced it.
    let mut command = Command::new("/proc/self/exe");
    command.arg("contain").arg("--no-network").arg("--hide").arg(settings.data_dir).arg("--expose-writable").arg(&job_dir);
    let managed = settings.data_dir.join("runtime");
    if managed.is_dir() {
        command.arg("--expose").arg(managed);
    }
    // The child starts in the job's folder: a relative `--python` must not
    // change meaning there.
    let python = std::path::absolute(&runtime.python).map_err(|e| format!("cannot resolve {}: {e}", runtime.python.display()))?;
    command.arg("--").arg(&python).args(["-c", SCRIPT, "convert", &from, &row.format]).arg(&input).arg(&output).arg(&result);
    if let Some(shape) = &row.input_shape {
        command.arg("--input-shape").arg(shape.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    }
    command
        .current_dir(&job_dir)
        .env("HOME", &home)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("TF_CPP_MIN_LOG_LEVEL", "2");
    let mut last_error = None;
    let timeout = process::timeout_from_env("MODELREG_FORMAT_TIMEOUT_SECS", FORMAT_TIMEOUT);
    let outcome = process::run_logged(
        command,
        timeout,
        &mut |line| {
            if let Some(report) = line.strip_prefix(super::contain::REPORT_PREFIX) {
                log(&format!("Containment: {}", report.trim()));
                return;
            }
            if let Some(message) = line.strip_prefix("ERROR: ") {
                last_error = Some(message.to_string());
            }
            log(line);
        },
        should_stop,
    )
    .map_err(|e| format!("cannot run the converter: {e}"))?;
    match outcome {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return Err(last_error.unwrap_or_else(|| format!("the converter exited with {status}; its output is in the log")));
        }
        Err(Stopped::Asked(reason)) => return Err(reason),
        Err(Stopped::TimedOut(t)) => return Err(format!("the conversion did not finish within {} s and was killed", t.as_secs())),
    }
    let mut facts: Value = std::fs::read(&result)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the converter finished without writing its result")?;
    if !output.is_file() {
        return Err("the converter finished without writing the converted file".into());
    }
    facts["sourceFormat"] = json!(from);
    facts["sourceSha256"] = json!(source.sha256);
    facts["format"] = json!(row.format);
    facts["convertedAt"] = json!(crate::registry::now());
    facts["inputShape"] = json!(row.input_shape);
    // Decided here, not by the script, which runs beside the uploader's code.
    let unverified = unverifiable(&row.format);
    facts["verified"] = json!(unverified.is_none());
    facts["unverifiedReason"] = json!(unverified);
    Ok((output, facts))
}

/// Reads at most `limit` bytes of a job log's tail (the status route shows
/// it; logs are capped at 10 MiB, a status answer need not be).
pub fn log_tail(log: &str, limit: usize) -> &str {
    if log.len() <= limit {
        return log;
    }
    let mut start = log.len() - limit;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_positive_integers() {
        assert_eq!(parse_shape("1,3,224,224").unwrap(), vec![1, 3, 224, 224]);
        assert_eq!(parse_shape("[1, 4]").unwrap(), vec![1, 4]);
        for bad in ["", "1,,2", "0,3", "-1", "a", "1,2,3,4,5,6,7,8,9"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_install_command_names_every_option_its_packages_need() {
        assert_eq!(install_command(&[Need::Converters, Need::CoreML]), "modelreg runtime install --with converters");
        assert_eq!(install_command(&[Need::TensorFlow, Need::CoreML]), "modelreg runtime install --with converters --with tensorflow");
        assert_eq!(install_command(&[Need::Torch]), "modelreg runtime install --with converters --with torch");
    }

    #[test]
    fn core_ml_is_an_mlmodel_unverified_and_the_operator_may_turn_it_off() {
        assert_eq!(file_name(3, "coreml"), "model_v3.mlmodel");
        assert_eq!(file_name(3, "onnx"), "model_v3.onnx");
        assert!(unverifiable("coreml").is_some());
        assert!(unverifiable("onnx").is_none() && unverifiable("tflite").is_none());
        let dir = std::path::Path::new("/nonexistent");
        let mut settings = Settings { data_dir: dir, python: None, image_builder: None, runs_jobs: true, coreml: true };
        assert_eq!(turned_off(&settings, "coreml"), None);
        settings.coreml = false;
        assert!(turned_off(&settings, "coreml").is_some_and(|why| why.contains("--no-coreml")));
        assert_eq!(turned_off(&settings, "onnx"), None);
    }

    #[test]
    fn a_log_tail_cuts_on_a_character_boundary() {
        assert_eq!(log_tail("abc", 10), "abc");
        assert_eq!(log_tail("aé", 1), "");
        assert_eq!(log_tail("abcdef", 3), "def");
    }
}
