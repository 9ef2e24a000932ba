//! Running modelreg for a team on one machine (issue 12): backups taken
//! while it serves, the schema guard, private files, /metrics, the access
//! log, remote administration, and the CLI's edges. Everything runs the
//! real binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{sha256_hex, Part, Server, BIN};
use serde_json::{json, Value};

fn cli(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(data_dir).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn new_model(server: &Server, name: &str) -> String {
    let reply = server.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch"}));
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()["id"].as_str().unwrap().to_string()
}

/// Uploads `bytes` as the model's next version; returns its number.
fn upload(server: &Server, model: &str, bytes: &[u8]) -> i64 {
    let reply = server.post_multipart(
        &format!("/api/v1/models/{model}/versions/upload"),
        &[Part::File { name: "file", filename: "weights.pt", bytes }],
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()["version"].as_i64().unwrap()
}

/// Distinct content per (writer, n), a few hundred KiB each.
fn weights(writer: u64, n: u64) -> Vec<u8> {
    // past the 64 KiB the database keeps: each upload is a blob file of its own
    let len = 64 * 1024 + 1 + ((writer * 7919 + n * 104_729) % (384 * 1024)) as usize;
    common::pseudo_random(writer.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_add(1), len)
}

fn poll<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The versions a restored registry holds for `model`: number → sha256.
fn hashes_of(server: &Server, model: &str) -> std::collections::HashMap<i64, String> {
    // Every version, page by page: a list stops at 100 (20 by default), and a
    // busy writer makes more than that.
    let mut hashes = std::collections::HashMap::new();
    loop {
        let reply = server.get(&format!("/api/v1/models/{model}/versions?limit=100&offset={}", hashes.len()));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        let page = body["versions"].as_array().cloned().unwrap_or_default();
        for v in &page {
            let hash = v["model_hash"].as_str().unwrap().trim_start_matches("sha256:").to_string();
            hashes.insert(v["version"].as_i64().unwrap(), hash);
        }
        if page.is_empty() || hashes.len() as u64 >= body["total"].as_u64().unwrap() {
            return hashes;
        }
    }
}

#[test]
fn a_backup_during_concurrent_uploads_restores_clean_with_every_acknowledged_upload() {
    let server = Server::start();
    let model = new_model(&server, "busy");
    // (acknowledged at, version number, sha256) of every upload.
    let acknowledged: Mutex<Vec<(Instant, i64, String)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("backup");
    let (began, report) = std::thread::scope(|scope| {
        for writer in 0..3u64 {
            let (server, model, acknowledged, stop) = (&server, &model, &acknowledged, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let bytes = weights(writer, n);
                    let number = upload(server, model, &bytes);
                    acknowledged.lock().unwrap().push((Instant::now(), number, sha256_hex(&bytes)));
                    n += 1;
                }
            });
        }
        // The writers stop when this scope ends, however it ends: a failed
        // assertion below must fail the test, not leave it waiting on them.
        struct StopOnExit<'a>(&'a AtomicBool);
        impl Drop for StopOnExit<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _writers_stop = StopOnExit(&stop);
        poll("uploads to get going", Duration::from_secs(60), || (acknowledged.lock().unwrap().len() >= 9).then_some(()));
        let began = Instant::now();
        let out = cli(server.data_dir(), &["--json", "backup", dest.to_str().unwrap()]);
        let report = stdout_json(&out);
        // Uploads carry on after the backup too; they are simply not in it.
        let count = acknowledged.lock().unwrap().len();
        poll("uploads after the backup", Duration::from_secs(60), || (acknowledged.lock().unwrap().len() >= count + 3).then_some(()));
        (began, report)
    });
    let before: Vec<(i64, String)> =
        acknowledged.lock().unwrap().iter().filter(|(at, _, _)| *at < began).map(|(_, n, sha)| (*n, sha.clone())).collect();
    assert!(before.len() >= 9);
    assert!(report["blobs"].as_u64().unwrap() >= before.len() as u64, "{report}");
    assert_eq!(report["linked"], report["blobs"], "same file system: every blob is a hard link: {report}");
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(mode(&dest.join("modelreg.db")), 0o600);

    let restored = tempfile::tempdir().unwrap();
    let out = cli(restored.path(), &["restore", dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(restored.path(), &["--json", "verify"]);
    let verified = stdout_json(&out);
    assert_eq!(verified["problems"], json!([]), "{verified}");
    assert!(verified["blobs_checked"].as_u64().unwrap() >= before.len() as u64);

    let restored = Server::start_in(restored, &[]);
    let held = hashes_of(&restored, &model);
    for (number, sha) in &before {
        assert_eq!(held.get(number), Some(sha), "version {number}, acknowledged before the backup began, is in it");
    }
}

#[test]
fn gc_waits_for_a_backup_to_copy_what_its_snapshot_names() {
    // the backup gate is compiled into debug builds only (backup.rs)
    assert!(cfg!(debug_assertions), "MODELREG_TEST_BACKUP_GATE exists only in debug builds: run this test without --release");
    let server = Server::start();
    let model = new_model(&server, "short-lived");
    let bytes = weights(9, 9);
    upload(&server, &model, &bytes);
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("backup");
    let gate = parent.path().join("gate");
    let backup = Command::new(BIN)
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["backup", dest.to_str().unwrap()])
        .env("MODELREG_TEST_BACKUP_GATE", &gate)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    poll("the backup's snapshot", Duration::from_secs(30), || gate.with_extension("reached").exists().then_some(()));
    // The snapshot names the version; now nothing does, and gc may take its
    // blob at once (no grace period)…
    assert_eq!(server.delete(&format!("/api/v1/models/{model}")).status, 200);
    let mut gc = Command::new(BIN)
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["--json", "gc", "--grace-secs", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // …but not before the backup has copied it. A gc that did not wait
    // would be done well within this time, and the backup would lack the
    // blob; this one must still be waiting when the backup goes on.
    let waited_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < waited_until {
        assert!(gc.try_wait().unwrap().is_none(), "gc ran while a backup was copying");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&gate, b"").unwrap();
    let backup = backup.wait_with_output().unwrap();
    assert!(backup.status.success(), "{}", stderr(&backup));
    let gc = gc.wait_with_output().unwrap();
    let swept = stdout_json(&gc);
    assert_eq!(swept["blobs"][0]["sha256"], sha256_hex(&bytes), "after the backup, gc removes the blob: {swept}");

    let restored = tempfile::tempdir().unwrap();
    assert!(cli(restored.path(), &["restore", dest.to_str().unwrap()]).status.success());
    let verified = stdout_json(&cli(restored.path(), &["--json", "verify"]));
    assert_eq!(verified["problems"], json!([]), "{verified}");
    let restored = Server::start_in(restored, &[]);
    assert_eq!(hashes_of(&restored, &model).get(&1), Some(&sha256_hex(&bytes)));
}

#[test]
fn a_backup_refuses_a_destination_in_use_and_restore_an_occupied_data_directory() {
    let server = Server::start();
    let occupied = tempfile::tempdir().unwrap();
    std::fs::write(occupied.path().join("keep.txt"), b"mine").unwrap();
    let out = cli(server.data_dir(), &["backup", occupied.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    let out = cli(occupied.path(), &["restore", server.data_dir().to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(occupied.path()).unwrap().count(), 1, "nothing was added");
}

#[test]
fn a_database_from_a_newer_modelreg_refuses_to_start_naming_both_versions() {
    let data = tempfile::tempdir().unwrap();
    assert!(cli(data.path(), &["init"]).status.success());
    let db = data.path().join("modelreg.db");
    let current: i64 = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        conn.pragma_update(None, "user_version", current + 3).unwrap();
        current
    };
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(message.contains(&format!("schema version {}", current + 3)), "{message}");
    assert!(message.contains(&format!("schema version {current}")), "{message}");
    assert!(!message.contains("listening"), "{message}");
    // Offline commands refuse it too, and nothing was changed.
    assert!(!cli(data.path(), &["teams", "list"]).status.success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).unwrap(), current + 3);
}

fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "{}", data.display());
    for file in ["modelreg.db", "admin.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    for entry in walk(&data.join("blobs")) {
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&entry), want, "{}", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

#[test]
fn files_are_private_after_init_and_serve_fixes_an_existing_directory() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let out = cli(&data, &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("created the data directory"), "{}", stderr(&out));
    assert_private(&data);

    let server = Server::start_in(tempfile::TempDir::new_in(parent.path()).unwrap(), &[]);
    let model = new_model(&server, "m");
    upload(&server, &model, b"private weights");
    assert_private(server.data_dir());
    let data = server.kill();
    // As an older modelreg (or a careless copy) left it.
    for path in walk(data.path()).into_iter().chain([data.path().to_path_buf()]) {
        let loose = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let server = Server::start_in(data, &[]);
    assert_private(server.data_dir());
    assert!(server.log.lock().unwrap().contains("private (mode 0600/0700"), "serve says it fixed modes: {}", server.log.lock().unwrap());
}

fn scrape(server: &Server, token: &str) -> String {
    let reply = server.request("GET", "/metrics", &[("Authorization", &format!("Bearer {token}"))], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("Content-Type").unwrap().starts_with("text/plain; version=0.0.4"));
    reply.text()
}

/// The value of the sample whose name and labels start with `prefix`
/// (summed over the matches), 0 when there is none.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn metrics_expose_every_family_and_move_with_traffic() {
    let parent = tempfile::tempdir().unwrap();
    let token_file = parent.path().join("scrape-token");
    std::fs::write(&token_file, "scrape-0123456789abcdef\n").unwrap();
    let server = Server::start_with(&["--rate-limit", "1000/3", "--metrics-token-file", token_file.to_str().unwrap()]);
    let before = scrape(&server, "scrape-0123456789abcdef");
    for family in [
        "modelreg_http_requests_total",
        "modelreg_http_request_duration_seconds",
        "modelreg_http_request_bytes_total",
        "modelreg_http_response_bytes_total",
        "modelreg_http_rate_limited_total",
        "modelreg_http_requests_in_flight",
        "modelreg_uploads_in_flight",
        "modelreg_blobs",
        "modelreg_blob_bytes",
        "modelreg_jobs",
        "modelreg_job_duration_seconds",
    ] {
        assert!(before.contains(&format!("# TYPE {family} ")), "{family} missing:\n{before}");
    }

    let model = new_model(&server, "counted");
    let bytes = weights(1, 1);
    upload(&server, &model, &bytes);
    assert_eq!(server.get("/api/v1/models/not-a-model-anywhere").status, 404);
    // A machine's state change is a job: its duration is recorded.
    let machine = server.post_json("/v1/machines", &json!({"name": "m", "machineType": "P4000", "templateId": "tz0ireoj", "region": "East Coast (NY2)", "diskSize": 50}));
    assert!(machine.status < 300, "{}", machine.text());
    poll("the machine's job to run", Duration::from_secs(30), || {
        (sample(&scrape(&server, &server.key), "modelreg_job_duration_seconds_count{kind=\"machine-event\"") >= 1.0).then_some(())
    });
    // Past the burst of 3, with no time to refill, a quick fourth request is refused.
    let limited = (0..20).map(|_| server.get("/api/v1/models").status).filter(|s| *s == 429).count();
    assert!(limited > 0);

    let after = scrape(&server, &server.key);
    let moved = |prefix: &str| sample(&after, prefix) - sample(&before, prefix);
    assert_eq!(moved("modelreg_http_requests_total{dialect=\"octomil\",route=\"/api/v1/models\",method=\"POST\",status=\"201\"}"), 1.0);
    assert_eq!(moved("modelreg_http_requests_total{dialect=\"octomil\",route=\"/api/v1/models/{model_id}/versions/upload\",method=\"POST\",status=\"201\"}"), 1.0);
    assert_eq!(moved("modelreg_http_requests_total{dialect=\"octomil\",route=\"/api/v1/models/{model_id}\",method=\"GET\",status=\"404\"}"), 1.0);
    assert!(moved("modelreg_http_request_bytes_total{dialect=\"octomil\"}") >= bytes.len() as f64);
    assert!(moved("modelreg_http_response_bytes_total{dialect=\"octomil\"}") > 0.0);
    assert_eq!(moved("modelreg_http_rate_limited_total{dialect=\"octomil\"}"), limited as f64);
    assert!(moved("modelreg_http_request_duration_seconds_count{dialect=\"octomil\",route=\"/api/v1/models/{model_id}/versions/upload\"") >= 1.0);
    assert_eq!(moved("modelreg_blobs "), 1.0);
    assert_eq!(moved("modelreg_blob_bytes "), bytes.len() as f64);
    assert!(!after.contains("not-a-model-anywhere"), "paths never become labels");

    // Who may read it: the scrape token or an operator's key; a member's key
    // is 403, no key 401.
    let member = common::user_key(&server, "member", None);
    assert_eq!(server.request("GET", "/metrics", &[("Authorization", &format!("Bearer {member}"))], None).status, 403);
    assert_eq!(server.request("GET", "/metrics", &[("Authorization", "")], None).status, 401);
    assert_eq!(server.request("GET", "/metrics", &[("Authorization", "Bearer scrape-wrong")], None).status, 401);
}

#[test]
fn a_json_access_log_line_carries_request_id_key_user_and_status() {
    let server = Server::start_with_env(&[("MODELREG_LOG_FORMAT", "json")], &[]);
    let keys = stdout_json(&server.cli(&["--json", "keys", "list"]));
    let admin_key_id = keys[0]["id"].as_str().unwrap().to_string();
    let model = new_model(&server, "logged");
    let reply = server.request("DELETE", &format!("/api/v1/models/{model}"), &[("X-Request-Id", "trace-42")], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-Request-Id"), Some("trace-42"), "a plain incoming id is kept");
    let minted = server.get("/api/v1/models");
    let minted_id = minted.header("X-Request-Id").unwrap().to_string();
    assert!(minted_id.len() >= 16);

    let line_of = |id: &str| -> Value {
        poll("the access log line", Duration::from_secs(10), || {
            server
                .log
                .lock()
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["request_id"] == id)
        })
    };
    let deleted = line_of("trace-42");
    assert_eq!(deleted["key_id"], admin_key_id.as_str());
    assert_eq!(deleted["user"], "admin");
    assert_eq!(deleted["status"], 200);
    assert_eq!(deleted["method"], "DELETE");
    assert_eq!(deleted["dialect"], "octomil");
    assert_eq!(deleted["route"], "/api/v1/models/{model_id}");
    assert_eq!(deleted["audit"], true);
    let listed = line_of(&minted_id);
    assert_eq!((listed["status"].as_u64(), listed["audit"].as_bool()), (Some(200), Some(false)));

    // Moving an alias is audited: who pointed production at which version.
    let aliased = new_model(&server, "aliased");
    let file = Part::File { name: "file", filename: "model.pt", bytes: b"weights" };
    assert_eq!(server.post_multipart(&format!("/api/v1/models/{aliased}/versions/upload"), &[file]).status, 201);
    let body = serde_json::to_vec(&json!({"version": 1})).unwrap();
    let headers = [("X-Request-Id", "alias-7"), ("Content-Type", "application/json")];
    let moved = server.request("PUT", &format!("/api/modelreg/v1/models/{aliased}/aliases/champion"), &headers, Some(body));
    assert_eq!(moved.status, 200, "{}", moved.text());
    let line = line_of("alias-7");
    assert_eq!((line["route"].as_str(), line["user"].as_str(), line["audit"].as_bool()),
               (Some("/api/modelreg/v1/models/{model}/aliases/{alias}"), Some("admin"), Some(true)));
}

fn remote(server: &Server, key: &str, args: &[&str]) -> Output {
    let url = format!("http://{}", server.addr);
    // An empty data directory of its own: --server must not need (or touch) one.
    let nowhere = tempfile::tempdir().unwrap();
    let mut all = vec!["--server", url.as_str(), "--token", key];
    all.extend_from_slice(args);
    let out = cli(&nowhere.path().join("unused"), &all);
    assert!(!nowhere.path().join("unused").exists(), "--server created a local data directory");
    out
}

fn bearer_status(server: &Server, key: &str) -> u16 {
    server.request("GET", "/api/v1/models", &[("Authorization", &format!("Bearer {key}"))], None).status
}

#[test]
fn a_team_admin_manages_keys_over_http_and_a_member_only_their_own() {
    let server = Server::start();
    let op = server.key.clone();
    assert!(remote(&server, &op, &["teams", "add", "research"]).status.success());
    let lead = stdout_json(&remote(&server, &op, &["--json", "users", "add", "lead", "--team", "research", "--admin"]));
    assert_eq!(lead["is_admin"], true);
    let lead_key = stdout_json(&remote(&server, &op, &["--json", "keys", "create", "--user", "lead"]))["secret"].as_str().unwrap().to_string();

    // The team admin adds a member and makes and revokes keys in the team.
    assert!(remote(&server, &lead_key, &["users", "add", "bob"]).status.success());
    let created = stdout_json(&remote(&server, &lead_key, &["--json", "keys", "create", "--user", "bob", "--label", "laptop"]));
    let bob_key = created["secret"].as_str().unwrap().to_string();
    assert_eq!(bearer_status(&server, &bob_key), 200);
    let listed = stdout_json(&remote(&server, &lead_key, &["--json", "keys", "list"]));
    let users: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["username"].as_str().unwrap()).collect();
    assert!(users.contains(&"bob") && !users.contains(&"admin"), "a team admin sees only the team's keys: {users:?}");
    let out = remote(&server, &lead_key, &["keys", "revoke", created["id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(bearer_status(&server, &bob_key), 401);

    // Another team's key is not the team admin's to revoke, nor a team to make.
    let admin_key_id = stdout_json(&server.cli(&["--json", "keys", "list"]))[0]["id"].as_str().unwrap().to_string();
    let out = remote(&server, &lead_key, &["--json", "keys", "revoke", &admin_key_id]);
    assert!(!out.status.success());
    assert_eq!(serde_json::from_str::<Value>(stderr(&out).trim()).unwrap()["error"], "not_found");
    assert!(!remote(&server, &lead_key, &["teams", "add", "coup"]).status.success());
    assert_eq!(bearer_status(&server, &op), 200);

    // A member's key manages its own keys only: it lists and makes its own
    // (the CLI as well), and is 403 for anyone else's and for users.
    let bob_key = stdout_json(&remote(&server, &lead_key, &["--json", "keys", "create", "--user", "bob"]))["secret"].as_str().unwrap().to_string();
    let own = stdout_json(&remote(&server, &bob_key, &["--json", "keys", "create", "--user", "bob", "--label", "own"]));
    assert_eq!(bearer_status(&server, own["secret"].as_str().unwrap()), 200);
    let unnamed = stdout_json(&remote(&server, &bob_key, &["--json", "keys", "create", "--label", "no --user"]));
    assert_eq!(unnamed["user"], "bob", "without --user, a key for the caller: {unnamed}");
    assert!(!server.cli(&["keys", "create", "--label", "offline"]).status.success(), "offline, --user is needed");
    let listed = stdout_json(&remote(&server, &bob_key, &["--json", "keys", "list"]));
    assert!(listed.as_array().unwrap().iter().all(|k| k["username"] == "bob"), "a member sees only their own keys: {listed}");
    for args in [vec!["--json", "keys", "create", "--user", "lead"], vec!["--json", "users", "add", "eve"]] {
        let out = remote(&server, &bob_key, &args);
        assert!(!out.status.success(), "{args:?}");
        let error: Value = serde_json::from_str(stderr(&out).trim()).unwrap_or_else(|_| panic!("--json error is JSON: {}", stderr(&out)));
        assert_eq!(error["error"], "forbidden", "{args:?}: {error}");
    }
    let reply = server.request("POST", "/api/modelreg/v1/keys", &[("Authorization", &format!("Bearer {bob_key}")), ("Content-Type", "application/json")], Some(br#"{"user":"lead"}"#.to_vec()));
    assert_eq!(reply.status, 403);
    let out = remote(&server, &bob_key, &["--json", "keys", "revoke", &admin_key_id]);
    assert_eq!(serde_json::from_str::<Value>(stderr(&out).trim()).unwrap()["error"], "not_found");
    assert!(remote(&server, &bob_key, &["keys", "revoke", own["id"].as_str().unwrap()]).status.success());
    assert_eq!(bearer_status(&server, own["secret"].as_str().unwrap()), 401);
}

#[test]
fn remote_administration_fails_clearly_and_local_commands_create_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("never");
    let with_home = |args: &[&str]| {
        Command::new(BIN).env("HOME", parent.path()).env_remove("MODELREG_DATA_DIR").env_remove("MODELREG_SERVER").args(args).output().unwrap()
    };
    // A server that is not there.
    let out = with_home(&["--server", "http://dead.invalid", "--token", "k", "teams", "list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("dead.invalid"), "{}", stderr(&out));
    // A server without a scheme.
    let out = with_home(&["--server", "127.0.0.1:8420", "--token", "k", "teams", "list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--server http://127.0.0.1:8420"), "{}", stderr(&out));
    // Commands that only work on the data directory refuse --server.
    for command in [vec!["init"], vec!["gc"], vec!["verify"], vec!["backup", "/tmp/x"]] {
        let mut args = vec!["--server", "http://127.0.0.1:1", "--data-dir", missing.to_str().unwrap()];
        args.extend(command.iter().copied());
        let out = with_home(&args);
        assert!(!out.status.success(), "{command:?}");
        assert!(stderr(&out).contains("cannot run against a server"), "{command:?}: {}", stderr(&out));
    }
    // No command but init and serve makes a data directory.
    for command in [vec!["users", "add", "bob"], vec!["models", "list"], vec!["keys", "list"], vec!["gc"], vec!["custom-models", "list"], vec!["runtime", "show"]] {
        let mut args = vec!["--data-dir", missing.to_str().unwrap()];
        args.extend(command.iter().copied());
        let out = with_home(&args);
        assert!(!out.status.success(), "{command:?}");
        assert!(stderr(&out).contains("modelreg init"), "{command:?}: {}", stderr(&out));
    }
    assert!(!missing.exists());
    let out = with_home(&["users", "list"]);
    assert!(!out.status.success());
    assert!(!parent.path().join(".local").exists(), "the default data directory was not created");
}

/// stdout whose reader is already gone, as with `modelreg … | head -1`
/// once head has its line.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two descriptors; closing the read end leaves a
    // write end whose writes fail with EPIPE.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}
use std::os::fd::FromRawFd;

#[test]
fn cli_edges_broken_pipes_json_errors_and_downloads() {
    let server = Server::start();
    let model = new_model(&server, "edges");
    upload(&server, &model, b"weights v1");
    // A reader that goes away: the command ends without a panic.
    for args in [vec!["--json", "models", "list"], vec!["teams", "list"]] {
        let out = Command::new(BIN).arg("--data-dir").arg(server.data_dir()).args(&args).stdout(closed_pipe()).output().unwrap();
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
    // --json errors are one JSON object on stderr.
    let out = server.cli(&["--json", "models", "show", "no-such-model"]);
    assert!(!out.status.success());
    let error: Value = serde_json::from_str(stderr(&out).trim()).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    assert_eq!(error["error"], "not_found");
    assert!(error["message"].as_str().unwrap().contains("no-such-model"));

    // A download gets a new file's usual mode, and replaces nothing without --force.
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("w.pt");
    let download = |extra: &[&str]| {
        let mut args = vec!["versions".to_string(), "download".into(), model.clone(), "1".into(), "-o".into(), target.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new("sh")
            .arg("-c")
            .arg("umask 022; exec \"$0\" \"$@\"")
            .arg(BIN)
            .arg("--data-dir")
            .arg(server.data_dir())
            .args(&args)
            .output()
            .unwrap()
    };
    assert!(download(&[]).status.success());
    assert_eq!(mode(&target), 0o644);
    std::fs::write(&target, b"mine").unwrap();
    let out = download(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&target).unwrap(), b"mine");
    assert!(download(&["--force"]).status.success());
    assert_eq!(std::fs::read(&target).unwrap(), b"weights v1");

    // One way to name a version in every family: its id, number or label,
    // offline and over HTTP.
    let version_id = server.get(&format!("/ui/api/models/{model}")).json()["versions"][0]["id"].as_str().unwrap().to_string();
    for (i, args) in [
        vec!["versions", "download", &model, &version_id],
        vec!["custom-models", "versions", "download", &model, "1"],
        vec!["custom-models", "versions", "download", &model, "v1.0"],
    ]
    .into_iter()
    .enumerate()
    {
        for how in ["offline", "remote"] {
            let run = |a: &[&str]| if how == "offline" { server.cli(a) } else { server.cli_remote(a) };
            let out_path = work.path().join(format!("{how}-{i}"));
            let mut all = args.clone();
            all.extend(["-o", out_path.to_str().unwrap()]);
            let out = run(&all);
            assert!(out.status.success(), "{how} {args:?}: {}", stderr(&out));
            let written = if out_path.is_dir() { out_path.join("weights.pt") } else { out_path };
            assert_eq!(std::fs::read(&written).unwrap(), b"weights v1", "{how} {args:?}");
        }
    }
    let out = server.cli(&["custom-models", "versions", "download", &model, "7", "-o", work.path().join("none").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn serve_reads_its_settings_from_the_environment() {
    let help = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for var in ["MODELREG_BIND", "MODELREG_HEAD_TIMEOUT_MS", "MODELREG_GC_INTERVAL", "MODELREG_PUBLIC_URL", "MODELREG_MAX_UPLOAD_BYTES", "MODELREG_RATE_LIMIT", "MODELREG_LOG_FORMAT", "MODELREG_TRUSTED_PROXIES", "MODELREG_COMPUTE_SLOTS"] {
        assert!(help.contains(&format!("env: {var}")), "{var} is not in serve --help:\n{help}");
    }
    assert!(!help.contains("harness"), "{help}");
    let server = Server::start_with_env(&[("MODELREG_MAX_JSON_BYTES", "64")], &[]);
    let reply = server.post_json("/api/v1/models", &json!({"name": "x".repeat(100), "framework": "pytorch"}));
    assert_eq!(reply.status, 413, "MODELREG_MAX_JSON_BYTES applies: {}", reply.text());
}

#[test]
fn the_systemd_unit_verifies_and_keeps_its_hardening() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/modelreg.service")).unwrap();
    for line in ["User=modelreg", "StateDirectory=modelreg", "ProtectSystem=strict", "NoNewPrivileges=yes", "Restart=on-failure", "ExecStart=/usr/local/bin/modelreg serve"] {
        assert!(unit.lines().any(|l| l.trim() == line), "the unit lacks {line}");
    }
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.map(|o| !o.status.success()).unwrap_or(true) {
        common::skip_outside_ci("systemd-analyze (.ci/run installs systemd)", "not installed; the unit was checked textually only");
        return;
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("modelreg.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/modelreg", BIN)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let complaints = stderr(&out);
    assert!(out.status.success(), "{complaints}");
    // verify exits 0 on unknown keys and bad values, which it only reports.
    let about_unit: Vec<&str> = complaints.lines().filter(|l| l.contains("modelreg.service")).collect();
    assert!(about_unit.is_empty(), "{complaints}");
}
