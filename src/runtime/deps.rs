//! Dependency environments: a version's requirements.txt installed into a
//! venv layered over the runtime, the local equivalent of DataRobot's
//! dependency image. The venv is created without pip (0.1 s), a `.pth` file
//! puts the runtime's site-packages after its own, and the runtime's pip
//! installs only what the runtime lacks; the venv's own packages win.
//!
//! Environments are keyed by sha256(runtime identity, normalised
//! requirements), so versions with the same requirements share one, built
//! once. A build happens in a scratch directory renamed into place at the
//! end: a directory under `deps/` named by its key is always complete.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::Runtime;
use crate::process::Stopped;

const READY_FILE: &str = "modelreg-environment.json";

fn deps_root(data_dir: &Path) -> PathBuf {
    data_dir.join("runtime").join("deps")
}

/// pip requirement lines from a version's parsed `dependencies` (the
/// DataRobot shape), canonical and sorted, so that comments, spacing and
/// order in requirements.txt do not change the key. Only what the parser
/// accepted can appear here: names, extras and version comparisons; never
/// a URL or a pip option.
pub fn requirement_lines(dependencies: &Value) -> Vec<String> {
    let mut lines: Vec<String> = dependencies
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|dep| {
            let name = dep["packageName"].as_str()?.to_ascii_lowercase().replace('_', "-");
            let extras = dep["extras"].as_str().map(|e| format!("[{e}]")).unwrap_or_default();
            let constraints: Vec<String> = dep["constraints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| Some(format!("{}{}", c["constraintType"].as_str()?, c["version"].as_str()?)))
                .collect();
            Some(format!("{name}{extras}{}", constraints.join(",")))
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// The environment's key: sha256 of the runtime's identity and the lines.
pub fn env_key(runtime_identity: &str, lines: &[String]) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(runtime_identity.as_bytes());
    hasher.update(b"\0");
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    crate::registry::hex(&hasher.finalize())
}

/// The Python of a built environment, if it exists.
pub fn built(data_dir: &Path, key: &str) -> Option<PathBuf> {
    let dir = deps_root(data_dir).join(key);
    dir.join(READY_FILE).exists().then(|| dir.join("bin").join("python"))
}

/// Builds the environment for `lines` over `runtime` (or finds it built).
/// pip's output goes to `log`; `should_stop` is polled and a `Some(reason)`
/// kills pip and fails the build with that reason.
pub fn build(
    data_dir: &Path,
    runtime: &Runtime,
    key: &str,
    lines: &[String],
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<PathBuf, String> {
    if let Some(python) = built(data_dir, key) {
        log(&format!("The environment {key} is already built (same runtime, same requirements): nothing to install."));
        return Ok(python);
    }
    let root = deps_root(data_dir);
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let scratch = root.join(format!("{key}.building-{}", crate::registry::new_id()));
    let result = install_into(&scratch, runtime, lines, log, should_stop);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e);
    }
    let ready = json!({"key": key, "requirements": lines, "runtime": runtime.python, "builtAt": crate::registry::now()});
    std::fs::write(scratch.join(READY_FILE), serde_json::to_vec_pretty(&ready).unwrap_or_default())
        .map_err(|e| format!("cannot mark the environment ready: {e}"))?;
    let dir = root.join(key);
    if std::fs::rename(&scratch, &dir).is_err() {
        // Another build of the same requirements finished first: use it.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    built(data_dir, key).ok_or_else(|| format!("the environment {key} vanished after its build"))
}

fn install_into(
    dir: &Path,
    runtime: &Runtime,
    lines: &[String],
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<(), String> {
    let facts = runtime.check_drum()?;
    let status = Command::new(&runtime.python)
        .args(["-m", "venv", "--without-pip"])
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run {} -m venv: {e}", runtime.python.display()))?;
    if !status.success() {
        return Err(format!("{} -m venv failed ({status})", runtime.python.display()));
    }
    let python = dir.join("bin").join("python");
    let site = Runtime { python: python.clone(), origin: "dependency environment" }.describe()?;
    let own = PathBuf::from(site["purelib"].as_str().ok_or("the new environment reported no site-packages")?);
    let mut base: Vec<&str> = vec![facts["purelib"].as_str().unwrap_or_default()];
    if facts["platlib"] != facts["purelib"] {
        base.push(facts["platlib"].as_str().unwrap_or_default());
    }
    std::fs::write(own.join("_modelreg_base.pth"), format!("{}\n", base.join("\n")))
        .map_err(|e| format!("cannot link the environment to the runtime: {e}"))?;
    let requirements = dir.join("requirements.txt");
    std::fs::write(&requirements, lines.join("\n") + "\n").map_err(|e| format!("cannot write requirements: {e}"))?;
    log(&format!("Installing into an environment over the runtime {}:", runtime.python.display()));
    for line in lines {
        log(&format!("  {line}"));
    }
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--progress-bar", "off", "-r"])
        .arg(&requirements);
    // The deadline of every build (`MODELREG_BUILD_TIMEOUT_SECS` overrides it).
    match crate::process::run_logged(pip, crate::registry::compute::envbuild::build_timeout(), log, should_stop).map_err(|e| format!("cannot run pip: {e}"))? {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("pip install failed ({status}); its error is in the log above")),
        Err(Stopped::Asked(reason)) => Err(reason),
        Err(Stopped::TimedOut(t)) => Err(format!("pip install did not finish within {} s and was killed", t.as_secs())),
    }
}

/// The built environments, for `runtime show`.
pub fn list(data_dir: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(deps_root(data_dir)) else { return Vec::new() };
    let mut out: Vec<Value> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join(READY_FILE)).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    out.sort_by(|a: &Value, b: &Value| a["builtAt"].as_str().cmp(&b["builtAt"].as_str()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_ignores_order_spelling_and_comments() {
        let a = crate::registry::catalogue::requirements::parse("Foo_Bar==1.0\n# pinned\nbaz[x]>=2,<3\n");
        let b = crate::registry::catalogue::requirements::parse("baz[x] >= 2, < 3\nfoo-bar == 1.0\n");
        let json = |p: &crate::registry::catalogue::requirements::Parsed| Value::Array(p.dependencies.iter().map(|d| d.to_json()).collect());
        let (la, lb) = (requirement_lines(&json(&a)), requirement_lines(&json(&b)));
        assert_eq!(la, ["baz[x]>=2,<3", "foo-bar==1.0"]);
        assert_eq!(la, lb);
        assert_eq!(env_key("rt", &la), env_key("rt", &lb));
        assert_ne!(env_key("rt", &la), env_key("other runtime", &la));
    }
}
