//! Runs tests/python/test_datarobot_client.py (the official `datarobot`
//! 3.20.0 client, unpatched) against a started server. The client lives in
//! a venv under target/tmp, created on first use (`common::client_python`). Skipped, with the reason
//! printed, only when python3 or its venv/pip machinery is unavailable; a
//! failing install or client call fails the test.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn official_datarobot_client_works_unpatched() {
    let Some(python) = common::client_python_or_skip() else { return };
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
