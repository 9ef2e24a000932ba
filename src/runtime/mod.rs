//! The Python runtime that runs models: DataRobot's own model runner, DRUM
//! (`datarobot-drum`, pinned), in a virtual environment that modelreg
//! manages under `<data>/runtime/`, or an interpreter the operator names with
//! `serve --python`. Model tests run on it, and each version's
//! requirements.txt becomes an environment layered over it (`deps`).
//!
//! An installed runtime never moves: `modelreg runtime install` builds a new
//! venv in `runtime/envs/<stamp>/` and then points `runtime/current` at it
//! (a file replaced by rename), so a server using the old one is never
//! handed a half-installed tree.

pub mod deps;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

/// The DRUM release modelreg runs models with (DataRobot's runner, 1.18.1).
pub const DRUM_REQUIREMENT: &str = "datarobot-drum==1.18.1";

/// The one command that makes compute work available.
pub const INSTALL_HINT: &str = "run `modelreg runtime install` (or start the server with --python PATH to an interpreter that has datarobot-drum)";

/// How long `runtime install` may take (pip resolving DRUM's ~90 packages
/// takes a minute or two on a good connection).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A Python interpreter with DRUM importable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    pub python: PathBuf,
    /// Where it came from: "managed" (under the data directory) or "--python".
    pub origin: &'static str,
}

fn runtime_root(data_dir: &Path) -> PathBuf {
    data_dir.join("runtime")
}

fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The managed runtime's venv, if one was installed.
fn current_managed(data_dir: &Path) -> Option<PathBuf> {
    let root = runtime_root(data_dir);
    let name = std::fs::read_to_string(root.join("current")).ok()?;
    let venv = root.join("envs").join(name.trim());
    python_in(&venv).exists().then_some(venv)
}

/// The runtime jobs use: `python` when the operator gave one, else the
/// managed one. Looked up at each job, so that a runtime installed while a
/// server runs is used at once.
pub fn locate(data_dir: &Path, python: Option<&Path>) -> Result<Runtime, String> {
    match python {
        Some(p) if p.exists() => Ok(Runtime { python: p.to_path_buf(), origin: "--python" }),
        Some(p) => Err(format!("the Python given with --python ({}) does not exist", p.display())),
        None => current_managed(data_dir)
            .map(|venv| Runtime { python: python_in(&venv), origin: "managed" })
            .ok_or_else(|| format!("modelreg has no Python runtime to run models with: {INSTALL_HINT}")),
    }
}

impl Runtime {
    /// Facts about the interpreter, asked of it: its version, where its
    /// packages live, and DRUM's version (null when DRUM is missing).
    pub fn describe(&self) -> Result<Value, String> {
        let script = r#"
import json, sys, sysconfig
try:
    from importlib.metadata import version
    drum = version("datarobot-drum")
except Exception:
    drum = None
print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable,
                  "purelib": sysconfig.get_paths()["purelib"], "platlib": sysconfig.get_paths()["platlib"],
                  "drum": drum}))
"#;
        let out = Command::new(&self.python)
            .args(["-c", script])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed: {}", self.python.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{} answered something unexpected: {e}", self.python.display()))
    }

    /// Checks that DRUM can be imported; the error says what to run.
    pub fn check_drum(&self) -> Result<Value, String> {
        let facts = self.describe()?;
        if facts["drum"].is_null() {
            return Err(format!("{} has no datarobot-drum: {INSTALL_HINT}", self.python.display()));
        }
        Ok(facts)
    }

    /// What identifies this runtime's package set for dependency
    /// environments: the interpreter, its version and DRUM's.
    pub fn identity(&self) -> Result<String, String> {
        let facts = self.check_drum()?;
        Ok(format!("{}|{}|{}", facts["executable"].as_str().unwrap_or(""), facts["python"], facts["drum"]))
    }
}

/// The Core ML converter `--with converters` brings (issue 24), where it has
/// a wheel.
const COREMLTOOLS_REQUIREMENT: &str =
    r#"coremltools==9.0; sys_platform == "linux" and platform_machine == "x86_64" and python_version >= "3.10" and python_version < "3.14""#;

/// `runtime install --with` names that stand for a set of packages rather
/// than one: the format converters (issue 16), pinned to the versions
/// modelreg's tests verify conversions with, and the heavy frameworks that
/// TensorFlow and PyTorch conversions need, each a separate choice (they
/// take hundreds of megabytes to gigabytes).
pub fn expand_options(with: &[String]) -> Vec<String> {
    let mut packages = Vec::new();
    for name in with {
        match name.as_str() {
            // xgboost-cpu: the same xgboost without the 200 MB of NCCL the
            // plain wheel pulls on Linux. coremltools 9.0 publishes Linux
            // wheels only for x86_64 and CPython 3.10 to 3.13 (and no
            // source): the marker leaves it out elsewhere, so the other
            // converters still install, and Core ML says what is missing.
            "converters" => packages.extend(
                [
                    "skl2onnx==1.20.0",
                    "onnxmltools==1.16.0",
                    "onnxruntime==1.32.0",
                    "onnx==1.23.2",
                    "scikit-learn==1.9.1",
                    "xgboost-cpu==3.2.0",
                    COREMLTOOLS_REQUIREMENT,
                ]
                .map(String::from),
            ),
            // Keras 3 models go to ONNX through a traced function (formats.py);
            // these two are the pair that was verified together.
            "tensorflow" => packages.extend(["tensorflow-cpu==2.21.0", "tf2onnx==1.17.0"].map(String::from)),
            // PyPI's default torch wheel pulls gigabytes of CUDA libraries;
            // the CPU index has the same torch without them.
            "torch" => packages.extend(["--extra-index-url", "https://download.pytorch.org/whl/cpu", "torch"].map(String::from)),
            other => packages.push(other.to_string()),
        }
    }
    packages
}

/// What `runtime install` did, also written to `manifest.json` in the venv.
pub fn install(
    data_dir: &Path,
    base_python: &str,
    extra_packages: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<Value, String> {
    let root = runtime_root(data_dir);
    let envs = root.join("envs");
    std::fs::create_dir_all(&envs).map_err(|e| format!("cannot create {}: {e}", envs.display()))?;
    let stamp = crate::registry::now().replace([':', '.'], "-");
    let venv = envs.join(&stamp);
    let options = extra_packages;
    let expanded = expand_options(extra_packages);
    let extra_packages = expanded.as_slice();
    let result = (|| {
        progress(&format!("Creating a virtual environment in {} with {base_python}", venv.display()));
        let mut venv_command = Command::new(base_python);
        venv_command.arg("-m").arg("venv").arg(&venv);
        run(venv_command, "python -m venv", progress)?;
        let python = python_in(&venv);
        let mut pip = Command::new(&python);
        pip.args(["-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--progress-bar", "off", DRUM_REQUIREMENT]);
        pip.args(extra_packages);
        progress(&format!("Installing {DRUM_REQUIREMENT} {}", extra_packages.join(" ")));
        run(pip, "pip install", progress)?;
        let runtime = Runtime { python, origin: "managed" };
        let mut facts = runtime.check_drum()?;
        facts["extraPackages"] = json!(extra_packages);
        facts["options"] = json!(options);
        facts["installedAt"] = json!(crate::registry::now());
        facts["venv"] = json!(venv);
        std::fs::write(venv.join("manifest.json"), serde_json::to_vec_pretty(&facts).unwrap_or_default())
            .map_err(|e| format!("cannot write the manifest: {e}"))?;
        Ok(facts)
    })();
    let facts = match result {
        Ok(facts) => facts,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&venv);
            return Err(e);
        }
    };
    // Point `current` at the new venv in one rename; the old one stays for
    // a server that may be using it (`runtime show` lists them).
    let pointer = root.join("current.tmp");
    std::fs::write(&pointer, &stamp).map_err(|e| format!("cannot write {}: {e}", pointer.display()))?;
    std::fs::rename(&pointer, root.join("current")).map_err(|e| format!("cannot switch to the new runtime: {e}"))?;
    Ok(facts)
}

/// Runs one install step, its output shown as progress; a failure quotes
/// the last lines, where pip says what went wrong.
fn run(command: Command, what: &str, progress: &mut dyn FnMut(&str)) -> Result<(), String> {
    let mut tail: Vec<String> = Vec::new();
    let outcome = crate::process::run_logged(
        command,
        INSTALL_TIMEOUT,
        &mut |line| {
            progress(line);
            tail.push(line.to_string());
            if tail.len() > 20 {
                tail.remove(0);
            }
        },
        &mut || None,
    )
    .map_err(|e| format!("cannot run {what}: {e}"))?;
    match outcome {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{what} failed ({status}):\n{}", tail.join("\n"))),
        Err(_) => Err(format!("{what} did not finish within {} minutes", INSTALL_TIMEOUT.as_secs() / 60)),
    }
}

/// What is installed: the runtime in use and every installed venv.
pub fn show(data_dir: &Path, python: Option<&Path>) -> Value {
    let root = runtime_root(data_dir);
    let current = current_managed(data_dir);
    let mut installed = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root.join("envs")) {
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        for dir in dirs {
            let manifest: Value = std::fs::read(dir.join("manifest.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_else(|| json!({"venv": dir, "note": "incomplete (no manifest)"}));
            installed.push(json!({"current": current.as_deref() == Some(dir.as_path()), "manifest": manifest}));
        }
    }
    let in_use = match locate(data_dir, python) {
        Ok(runtime) => match runtime.check_drum() {
            Ok(facts) => json!({"python": runtime.python, "origin": runtime.origin, "facts": facts}),
            Err(e) => json!({"python": runtime.python, "origin": runtime.origin, "error": e}),
        },
        Err(e) => json!({"error": e}),
    };
    json!({"inUse": in_use, "installed": installed, "dependencyEnvironments": deps::list(data_dir)})
}
