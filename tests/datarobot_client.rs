//! Runs tests/python/test_datarobot_client.py (the official `datarobot`
//! 3.20.0 client, unpatched) against a started server. The client lives in
//! a venv under target/tmp, created on first use. Skipped, with the reason
//! printed, only when python3 or its venv/pip machinery is unavailable; a
//! failing install or client call fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const CLIENT: &str = "datarobot==3.20.0";

fn venv() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("datarobot-client-venv");
    let python = dir.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import datarobot, sys; sys.exit(datarobot.__version__ != '3.20.0')"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && ready(&python) {
        return Ok(python);
    }
    let created = Command::new("python3").args(["-m", "venv"]).arg(&dir).status();
    if !created.is_ok_and(|s| s.success()) {
        return Err("python3 -m venv is unavailable".into());
    }
    if !Command::new(&python).args(["-m", "pip", "--version"]).status().is_ok_and(|s| s.success()) {
        return Err("pip is unavailable in the venv".into());
    }
    let install = Command::new(&python).args(["-m", "pip", "install", "-q", CLIENT]).status().expect("run pip");
    assert!(install.success(), "pip install {CLIENT} failed");
    assert!(ready(&python), "{CLIENT} installed but not importable");
    Ok(python)
}

#[test]
fn official_datarobot_client_works_unpatched() {
    let python = match venv() {
        Ok(p) => p,
        // CI installs python3-venv (.ci/run), so there a skip is a failure.
        Err(reason) if std::env::var_os("CI").is_some() => panic!("cannot run the DataRobot client: {reason}"),
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return;
        }
    };
    // One compute slot: the script holds it with a slow test to show that a
    // dependency build waits in the queue and can be cancelled there.
    let server = common::Server::start_compute(&["--compute-slots", "1"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_datarobot_client.py");
    let out = Command::new(python)
        .arg(script)
        .env("MODELREG_URL", format!("http://{}", server.addr))
        .env("MODELREG_TOKEN", &server.key)
        .output()
        .expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        server.log.lock().unwrap()
    );
    assert!(stdout.contains("all calls succeeded"), "{stdout}");
}
