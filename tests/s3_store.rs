//! Issue 22: blobs in S3-compatible storage, against a real Garage node
//! started by the tests on loopback ports (tests/common/garage.rs). What
//! the suites compiled again as tests/s3_*.rs cannot show: where the bytes
//! are, a store that goes away and comes back, kill -9 during uploads, and
//! moving a registry between stores and back.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::datarobot::{add_version, id_of, python_environment, regression, API};
use common::garage::{self, Garage};
use common::{multipart_body, ok, Part, Server, BIN};
use serde_json::{json, Value};

const MODELS: &str = "/api/v1/models";

fn sha256(bytes: &[u8]) -> String {
    common::sha256_hex(bytes)
}

/// Bytes that differ per `seed`.
fn weights(seed: u64, len: usize) -> Vec<u8> {
    common::pseudo_random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), len)
}

fn new_model(server: &Server, name: &str) -> String {
    let reply = server.post_json(MODELS, &json!({"name": name, "framework": "pytorch"}));
    id_of(&ok(&reply, 201), "id")
}

fn upload(server: &Server, model: &str, bytes: &[u8]) -> common::Reply {
    server.post_multipart(&format!("{MODELS}/{model}/versions/upload"), &[Part::File { name: "file", filename: "model.pt", bytes }])
}

/// Objects in `bucket`, as Garage counts them.
fn objects_in(garage: &Garage, bucket: &str) -> u64 {
    let info = garage.cli(&["bucket", "info", bucket]);
    info.lines()
        .find_map(|l| l.trim().strip_prefix("Objects:").map(|n| n.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no object count in {info}"))
}

/// Asserts that `bucket` holds `expected` objects. Garage updates its
/// counters in the background, a moment after the writes they count, so
/// the count is read until it agrees or ten seconds have passed.
fn assert_objects(garage: &Garage, bucket: &str, expected: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = objects_in(garage, bucket);
        if seen == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {seen} objects in {bucket}, expected {expected}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn the_bucket_holds_the_bytes_and_the_data_directory_only_the_database() {
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let server = Server::start_on_bucket(tempfile::tempdir().unwrap(), garage, &bucket, &[]);
    let model = new_model(&server, "resnet");
    let large = weights(1, 3 << 20);
    let small = b"a small file, kept in the database".to_vec();
    assert_eq!(upload(&server, &model, &large).status, 201);
    assert_eq!(upload(&server, &model, &small).status, 201);

    assert_objects(garage, &bucket, 1, "the large file is the bucket's one object; the small one is in the database");
    let unexpected: Vec<String> = entries(server.data_dir())
        .into_iter()
        .filter(|name| !name.starts_with("modelreg.db") && !["admin.key", "serve.lock", "blobs-gc.lock", "cache"].contains(&name.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "the data directory holds more than the database and locks: {unexpected:?}");

    assert_eq!(server.get(&format!("{MODELS}/{model}/versions/1/download")).body, large);
    assert_eq!(server.get(&format!("{MODELS}/{model}/versions/2/download")).body, small);
    let range = server.request("GET", &format!("{MODELS}/{model}/versions/1/download"), &[("Range", "bytes=1000-1999")], None);
    assert_eq!((range.status, &range.body[..]), (206, &large[1000..2000]));

    // download-url sends a client to the store itself, without a key, for the large file
    let signed = server.get(&format!("{MODELS}/{model}/versions/1/download-url")).json();
    let url = signed["url"].as_str().unwrap();
    assert!(url.starts_with(garage.endpoint()), "not a URL of the store: {url}");
    let direct = ureq::get(url).call().unwrap().into_body().read_to_vec().unwrap();
    assert_eq!(sha256(&direct), sha256(&large));
    // the small one has no object of its own: its URL is modelreg's
    let small_url = server.get(&format!("{MODELS}/{model}/versions/2/download-url")).json()["url"].as_str().unwrap().to_string();
    assert!(small_url.starts_with(&server.url("/")), "{small_url}");

    // offline commands use the store the registry recorded
    let out_file = server.data_dir().parent().unwrap().join(format!("{bucket}-download.pt"));
    let out = server.cli(&["versions", "download", &model, "1", "-o", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256(&std::fs::read(&out_file).unwrap()), sha256(&large));
    std::fs::remove_file(&out_file).unwrap();
    let verify = server.cli(&["verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("checked 2 blobs"), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn files_of_several_parts_round_trip_through_every_upload_path() {
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let server = Server::start_on_bucket(tempfile::tempdir().unwrap(), garage, &bucket, &[]);
    let model = new_model(&server, "parts");
    // 16 MiB parts: three and a bit, two and exactly two; uploads at once
    // compete for the spare part buffers, which each sends while it fills
    let sizes = [(3 << 24) + 12345, 2 << 24, (1 << 24) + 1, 5 << 20];
    let files: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &len)| weights(100 + i as u64, len)).collect();
    std::thread::scope(|scope| {
        for bytes in &files {
            let (server, model) = (&server, &model);
            scope.spawn(move || assert_eq!(upload(server, model, bytes).status, 201));
        }
    });
    // the Octomil SDK's path: a signed raw PUT
    let pushed = weights(200, (2 << 24) + 777);
    let body = b"version=9.9.9&filename=model.pt".to_vec();
    let signed = server.request("POST", &format!("{MODELS}/{model}/versions/upload-url"), &[("Content-Type", "application/x-www-form-urlencoded")], Some(body)).json();
    let path = signed["upload_url"].as_str().unwrap().split_once("/api/").map(|(_, p)| format!("/api/{p}")).unwrap();
    let put = server.request("PUT", &path, &[], Some(pushed.clone()));
    assert_eq!(put.status, 200, "{}", put.text());
    let confirm = format!("version=9.9.9&storage_key={}", signed["storage_key"].as_str().unwrap()).into_bytes();
    let made = server.request("POST", &format!("{MODELS}/{model}/versions/confirm-upload"), &[("Content-Type", "application/x-www-form-urlencoded")], Some(confirm));
    assert_eq!(made.status, 201, "{}", made.text());

    let versions = server.get(&format!("{MODELS}/{model}/versions")).json();
    let mut stored: Vec<String> = versions["versions"].as_array().unwrap().iter().map(|v| v["model_hash"].as_str().unwrap().trim_start_matches("sha256:").to_string()).collect();
    let mut sent: Vec<String> = files.iter().chain([&pushed]).map(|b| sha256(b)).collect();
    stored.sort();
    sent.sort();
    assert_eq!(stored, sent);
    for number in 1..=5 {
        let got = server.get(&format!("{MODELS}/{model}/versions/{number}/download"));
        assert!(sent.contains(&sha256(&got.body)), "version {number} reads back bytes nobody sent");
    }
    // nothing of the multipart uploads is left under uploads/
    assert_objects(garage, &bucket, 5, "one object per file");
}

#[test]
fn a_store_that_goes_away_is_a_503_naming_it_and_comes_back_without_a_restart() {
    let Some(mut garage) = Garage::start(false) else { return };
    garage.create_bucket("outage");
    let server = Server::start_on_bucket(tempfile::tempdir().unwrap(), &garage, "outage", &[]);
    let model = new_model(&server, "fraud");
    let before = weights(2, 1 << 20);
    assert_eq!(upload(&server, &model, &before).status, 201);
    let env = python_environment(&server);
    let dr_model = id_of(&ok(&server.post_json(&format!("{API}/customModels/"), &regression()), 201), "id");
    let version = add_version(&server, &dr_model, &env, &[("weights.bin".to_string(), weights(3, 200 * 1024))], &[]);

    garage.stop();
    let answered_within = |started: Instant| assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    let started = Instant::now();
    let refused = upload(&server, &model, &weights(4, 1 << 20));
    answered_within(started);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"], "service_unavailable");
    assert!(refused.json()["message"].as_str().unwrap().contains("s3://outage"), "{}", refused.text());
    assert_eq!(refused.header("Retry-After"), Some("5"));
    let download = server.get(&format!("{MODELS}/{model}/versions/1/download"));
    assert_eq!(download.status, 503, "{}", download.text());
    assert!(download.json()["message"].as_str().unwrap().contains("s3://outage"));
    // DataRobot's own body; a download is a 503 its client may retry
    let zip = server.get(&format!("{API}/customModels/{dr_model}/versions/{version}/download/"));
    assert_eq!(zip.status, 503, "{}", zip.text());
    assert!(zip.json()["message"].as_str().unwrap().contains("s3://outage"), "{}", zip.text());
    // an upload with a body is a 500 there: the DataRobot client retries a 503 without the body
    let parts = [Part::Field("baseEnvironmentId", &env), Part::File { name: "file", filename: "w.bin", bytes: &weights(5, 200 * 1024) }, Part::Field("filePath", "w.bin")];
    let dr_upload = server.post_multipart(&format!("{API}/customModels/{dr_model}/versions/"), &parts);
    assert_eq!(dr_upload.status, 500, "{}", dr_upload.text());
    assert!(dr_upload.json()["message"].as_str().unwrap().contains("s3://outage"), "{}", dr_upload.text());

    // what needs no bytes from the store keeps answering; small files live in the database
    assert_eq!(server.get(&format!("{MODELS}/{model}")).status, 200);
    assert_eq!(server.get(&format!("/v1/models/{model}")).status, 200);
    assert_eq!(upload(&server, &model, b"small weights").status, 201);
    assert_eq!(server.get("/healthz").status, 200);
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text());
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("modelreg_blob_store_up 0"), "{metrics}");
    assert!(metrics.contains("outcome=\"unavailable\""), "{metrics}");

    garage.restart();
    let after = weights(6, 1 << 20);
    let stored = upload(&server, &model, &after);
    assert_eq!(stored.status, 201, "{}", stored.text());
    let number = stored.json()["version"].as_i64().unwrap();
    assert_eq!(server.get(&format!("{MODELS}/{model}/versions/1/download")).body, before);
    assert_eq!(server.get(&format!("{MODELS}/{model}/versions/{number}/download")).body, after);
    assert_eq!(server.get("/readyz").status, 200);
    assert!(server.get("/metrics").text().contains("modelreg_blob_store_up 1"));
    assert!(!server.log.lock().unwrap().contains("\" 500 ") || dr_upload.status == 500);
}

/// One acknowledged upload: what was sent, and where to read it back
/// (`entry`: the file of a DataRobot version's zip).
struct Acked {
    path: String,
    entry: Option<&'static str>,
    sha256: String,
}

fn read_back(server: &Server, upload: &Acked) -> String {
    let got = server.get(&upload.path);
    assert_eq!(got.status, 200, "{}: {}", upload.path, got.text());
    match upload.entry {
        None => sha256(&got.body),
        Some(name) => {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(got.body)).unwrap();
            let mut file = zip.by_name(name).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
            sha256(&bytes)
        }
    }
}

#[test]
fn kill_9_during_uploads_through_every_door_loses_nothing_acknowledged() {
    let Some(garage) = Garage::start(true) else { return };
    garage.create_bucket("crash");
    let mut data = tempfile::tempdir().unwrap();
    let mut acked: Vec<Acked> = Vec::new();
    let mut env = String::new();
    let mut dr_model = String::new();
    let mut octo_model = String::new();
    for round in 0..20u64 {
        let server = Server::start_on_bucket(data, &garage, "crash", &[]);
        if round == 0 {
            env = python_environment(&server);
            dr_model = id_of(&ok(&server.post_json(&format!("{API}/customModels/"), &regression()), 201), "id");
            octo_model = new_model(&server, "crashing");
        }
        let done = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            let (server, done, env, dr_model, octo_model) = (&server, &done, &env, &dr_model, &octo_model);
            // Octomil multipart
            scope.spawn(move || {
                for i in 0.. {
                    let bytes = weights(round * 1000 + i, 300 * 1024 + (i as usize) * 7919);
                    let Some(reply) = try_upload(server, &format!("{MODELS}/{octo_model}/versions/upload"), &[Part::File { name: "file", filename: "m.pt", bytes: &bytes }]) else { return };
                    if reply.status != 201 {
                        return;
                    }
                    let number = reply.json()["version"].as_i64().unwrap();
                    done.lock().unwrap().push(Acked { path: format!("{MODELS}/{octo_model}/versions/{number}/download"), entry: None, sha256: sha256(&bytes) });
                }
            });
            // DataRobot versions of one large and one small file
            scope.spawn(move || {
                for i in 0.. {
                    let bytes = weights(round * 1000 + 500 + i, 200 * 1024);
                    let parts = [Part::Field("baseEnvironmentId", env.as_str()), Part::File { name: "file", filename: "w.bin", bytes: &bytes }, Part::Field("filePath", "w.bin"), Part::File { name: "file", filename: "custom.py", bytes: b"def score(d, m, **k):\n    return d\n" }, Part::Field("filePath", "custom.py")];
                    let Some(reply) = try_upload(server, &format!("{API}/customModels/{dr_model}/versions/"), &parts) else { return };
                    if reply.status != 201 {
                        return;
                    }
                    let version = id_of(&reply.json(), "id");
                    done.lock().unwrap().push(Acked { path: format!("{API}/customModels/{dr_model}/versions/{version}/download/"), entry: Some("w.bin"), sha256: sha256(&bytes) });
                }
            });
            // the CLI, offline on the data directory, as a third writer of the same registry
            scope.spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                for i in 0..3 {
                    let bytes = weights(round * 1000 + 900 + i, 150 * 1024);
                    let file = dir.path().join("w.pt");
                    std::fs::write(&file, &bytes).unwrap();
                    let out = server.cli(&["--json", "versions", "upload", octo_model, file.to_str().unwrap(), "--format", "pytorch"]);
                    if !out.status.success() {
                        return;
                    }
                    let number = serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"].as_i64().unwrap();
                    done.lock().unwrap().push(Acked { path: format!("{MODELS}/{octo_model}/versions/{number}/download"), entry: None, sha256: sha256(&bytes) });
                }
            });
            // kill -9 at a different moment each round
            std::thread::sleep(Duration::from_millis(40 + (round * 37) % 400));
            server.signal("KILL");
        });
        acked.extend(done.into_inner().unwrap());
        data = server.kill();
    }
    assert!(acked.len() >= 40, "too few uploads were acknowledged to mean anything: {}", acked.len());

    let server = Server::start_on_bucket(data, &garage, "crash", &[]);
    for upload in &acked {
        assert_eq!(read_back(&server, upload), upload.sha256, "{} reads back other bytes", upload.path);
    }
    let verify = server.cli(&["verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    // every crash's leftovers go; then each object in the bucket is a blob the registry knows
    let gc = server.cli(&["--json", "gc", "--grace-secs", "0"]);
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let known_large: u64 = {
        let db = rusqlite::Connection::open(server.data_dir().join("modelreg.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM blob_contents)", [], |r| r.get(0)).unwrap()
    };
    assert_objects(&garage, "crash", known_large, "every object in the bucket is a blob the registry knows");
    let again: Value = serde_json::from_slice(&server.cli(&["--json", "gc", "--grace-secs", "0", "--dry-run"]).stdout).unwrap();
    assert_eq!(again["blobs"], json!([]), "{again}");
    for upload in acked.iter().step_by(7) {
        assert_eq!(read_back(&server, upload), upload.sha256);
    }
}

/// A multipart POST that returns None when the server died under it.
fn try_upload(server: &Server, path: &str, parts: &[Part]) -> Option<common::Reply> {
    let (content_type, body) = multipart_body(parts);
    server.try_request("POST", path, &[("Content-Type", &content_type)], Some(body))
}

#[test]
fn a_registry_moves_to_s3_and_back_byte_identical_after_an_interrupted_migration() {
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let server = Server::start_local(tempfile::tempdir().unwrap(), &[]);
    let model = new_model(&server, "moving");
    let files: Vec<Vec<u8>> = (0..6).map(|i| weights(10 + i, (1 << 20) + i as usize * 4099)).chain([b"small".to_vec()]).collect();
    for bytes in &files {
        assert_eq!(upload(&server, &model, bytes).status, 201);
    }
    let data = server.kill();
    let store = format!("s3://{bucket}");
    let cli = |envs: &[(&str, &str)], args: &[&str]| -> std::process::Output {
        Command::new(BIN).arg("--data-dir").arg(data.path()).envs(garage.aws_env()).envs(envs.iter().copied()).args(args).output().unwrap()
    };

    // a registry holding blobs is not switched by a flag
    let refused = cli(&[], &["init", "--blob-store", &store]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("local") && message.contains(&store) && message.contains("blobs migrate"), "{message}");

    // interrupted after its first blob: kill -9 at the gate
    let gates = tempfile::tempdir().unwrap();
    let gate = gates.path().join("migrate");
    let mut first = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .envs(garage.aws_env())
        .env("MODELREG_TEST_MIGRATE_GATE", &gate)
        .args(["blobs", "migrate", "--to", &store])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gate.with_extension("reached").exists() {
        assert!(Instant::now() < deadline, "the migration never reached its first blob");
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_objects(garage, &bucket, 1, "one blob was copied before the kill");
    let still_local = Server::start_local(data, &[]);
    assert_eq!(still_local.get(&format!("{MODELS}/{model}/versions/3/download")).body, files[2], "an unfinished migration switched");
    let data = still_local.kill();

    let again = Command::new(BIN).arg("--data-dir").arg(data.path()).envs(garage.aws_env()).args(["--json", "blobs", "migrate", "--to", &store]).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    // already there: the blob copied before the kill, and the small file the database keeps
    assert_eq!((report["already_there"].as_u64(), report["copied"].as_u64(), report["switched"].as_bool()), (Some(2), Some(5), Some(true)), "{report}");
    // the old copies go: what is read now comes from the bucket
    std::fs::remove_dir_all(data.path().join("blobs")).unwrap();
    let on_s3 = Server::start_on_bucket(data, garage, &bucket, &[]);
    for (i, bytes) in files.iter().enumerate() {
        assert_eq!(on_s3.get(&format!("{MODELS}/{model}/versions/{}/download", i + 1)).body, *bytes, "version {} on S3", i + 1);
    }
    let data = on_s3.kill();

    let back = Command::new(BIN).arg("--data-dir").arg(data.path()).envs(garage.aws_env()).args(["blobs", "migrate", "--to", "local"]).output().unwrap();
    assert!(back.status.success(), "{}", String::from_utf8_lossy(&back.stderr));
    // started without S3 credentials: what it reads comes from the data directory
    let local_again = Server::start_local(data, &[]);
    for (i, bytes) in files.iter().enumerate() {
        assert_eq!(local_again.get(&format!("{MODELS}/{model}/versions/{}/download", i + 1)).body, *bytes, "version {} back on local disk", i + 1);
    }
    assert!(local_again.cli(&["verify"]).status.success());
    assert_eq!(local_again.blob_store, None);
}

/// A signed S3 request straight to Garage (curl's SigV4), as a crashed
/// upload would have left things; answers the body.
fn s3_curl(garage: &Garage, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-f", "--aws-sigv4", &format!("aws:amz:{}:s3", garage.region()), "--user", &format!("{}:{}", garage.key_id(), garage.secret())])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gc_removes_what_crashed_uploads_left_in_the_bucket_once_it_is_old() {
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let server = Server::start_on_bucket(tempfile::tempdir().unwrap(), garage, &bucket, &[]);
    let base = format!("{}/{bucket}", garage.endpoint());
    // a multipart upload never completed, and an upload object never copied to its address
    s3_curl(garage, &["-X", "POST", &format!("{base}/uploads/crashed-multipart?uploads=")]);
    let leftover = server.data_dir().parent().unwrap().join(format!("{bucket}-leftover"));
    std::fs::write(&leftover, weights(300, 100_000)).unwrap();
    s3_curl(garage, &["-T", leftover.to_str().unwrap(), &format!("{base}/uploads/crashed-object")]);
    std::fs::remove_file(&leftover).unwrap();
    let pending = || s3_curl(garage, &[&format!("{base}/?uploads=")]).matches("<Upload>").count();
    assert_eq!(pending(), 1);

    // young: an upload in progress looks the same, so gc leaves it
    let young: Value = serde_json::from_slice(&server.cli(&["--json", "gc"]).stdout).unwrap();
    assert_eq!(young["temp_files"], json!([]), "{young}");
    assert_eq!(pending(), 1);

    let old: Value = serde_json::from_slice(&server.cli(&["--json", "gc", "--grace-secs", "0"]).stdout).unwrap();
    let removed: Vec<&str> = old["temp_files"].as_array().unwrap().iter().map(|t| t["path"].as_str().unwrap()).collect();
    assert_eq!(removed.len(), 2, "{old}");
    assert!(removed.iter().any(|p| p.contains("crashed-object")) && removed.iter().any(|p| p.contains("crashed-multipart")), "{old}");
    assert_eq!(pending(), 0, "the unfinished multipart upload was not aborted");
    assert_objects(garage, &bucket, 0, "the leftover object was not removed");
}

#[test]
fn an_upload_url_for_a_named_sha256_goes_straight_to_the_store_which_refuses_other_bytes() {
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let server = Server::start_on_bucket(tempfile::tempdir().unwrap(), garage, &bucket, &[]);
    let model = new_model(&server, "direct");
    let bytes = weights(400, 300_000);
    let body = format!("version=2.0.0&filename=model.pt&sha256={}", sha256(&bytes)).into_bytes();
    let signed = server.request("POST", &format!("{MODELS}/{model}/versions/upload-url"), &[("Content-Type", "application/x-www-form-urlencoded")], Some(body)).json();
    let url = signed["upload_url"].as_str().unwrap();
    assert!(url.starts_with(garage.endpoint()), "not a URL of the store: {signed}");
    let checksum = signed["headers"]["x-amz-checksum-sha256"].as_str().unwrap().to_string();
    let put = |payload: &[u8]| ureq::put(url).header("x-amz-checksum-sha256", &checksum).config().http_status_as_error(false).build().send(payload).unwrap().status().as_u16();
    let confirm = || {
        let body = format!("version=2.0.0&storage_key={}&file_size={}", signed["storage_key"].as_str().unwrap(), bytes.len()).into_bytes();
        server.request("POST", &format!("{MODELS}/{model}/versions/confirm-upload"), &[("Content-Type", "application/x-www-form-urlencoded")], Some(body))
    };

    // other bytes than the name says: the store refuses them, and there is nothing to confirm
    let mut tampered = bytes.clone();
    tampered[1000] ^= 1;
    assert_eq!(put(&tampered), 400);
    let early = confirm();
    assert_eq!(early.status, 409, "{}", early.text());
    assert!(early.text().contains("PUT the file"), "{}", early.text());

    assert_eq!(put(&bytes), 200);
    let made = confirm();
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.json()["model_hash"], format!("sha256:{}", sha256(&bytes)));
    let number = made.json()["version"].as_i64().unwrap();
    assert_eq!(server.get(&format!("{MODELS}/{model}/versions/{number}/download")).body, bytes);
    assert!(server.cli(&["verify"]).status.success());

    // without a sha256 the URL stays on modelreg, as the Octomil SDK expects
    let plain = server.request("POST", &format!("{MODELS}/{model}/versions/upload-url"), &[("Content-Type", "application/x-www-form-urlencoded")], Some(b"version=3.0.0&filename=model.pt".to_vec())).json();
    assert!(plain["upload_url"].as_str().unwrap().starts_with(&server.url("/api/v1/uploads/")), "{plain}");
}

#[test]
fn an_object_larger_than_one_copy_request_is_copied_to_its_address_in_parts() {
    // AWS copies at most 5 GiB in one request; debug builds lower the limit
    // so that a 40 MiB upload takes the same path
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let limit = (8 << 20).to_string();
    let server = Server::start_on_bucket_with_env(tempfile::tempdir().unwrap(), garage, &bucket, &[("MODELREG_TEST_S3_COPY_IN_ONE_MAX", &limit)], &[]);
    let model = new_model(&server, "big-copy");
    let bytes = weights(500, (40 << 20) + 4321);
    let first = upload(&server, &model, &bytes);
    assert_eq!(first.status, 201, "{}", first.text());
    // the same content again: the stored object is copied onto itself, in parts too
    let again = upload(&server, &model, &bytes);
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(first.json()["model_hash"], again.json()["model_hash"]);
    for number in [1, 2] {
        assert_eq!(sha256(&server.get(&format!("{MODELS}/{model}/versions/{number}/download")).body), sha256(&bytes));
    }
    assert_objects(garage, &bucket, 1, "one object, at its address");
}

#[test]
fn serve_refuses_to_start_on_a_missing_bucket_or_refused_credentials_and_says_which() {
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let serve = |store: &str, env: &[(&str, &str)]| -> String {
        let data = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(["--blob-store", store])
            .envs(garage.aws_env())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "serve started on {store}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = serve("s3://no-such-bucket-here", &[]);
    assert!(missing.contains("s3://no-such-bucket-here") && missing.contains("does not exist"), "{missing}");
    let refused = serve(&format!("s3://{bucket}"), &[("AWS_SECRET_ACCESS_KEY", "0000000000000000000000000000000000000000000000000000000000000000")]);
    assert!(refused.contains(&format!("s3://{bucket}")) && refused.contains("403"), "{refused}");
    let unset = serve(&format!("s3://{bucket}"), &[("AWS_ACCESS_KEY_ID", "")]);
    assert!(unset.contains("AWS_ACCESS_KEY_ID"), "{unset}");
}

#[test]
fn a_backup_of_an_s3_registry_says_where_the_blobs_are_and_with_blobs_takes_them_along() {
    let Some((garage, bucket)) = garage::fresh_bucket() else { return };
    let server = Server::start_on_bucket(tempfile::tempdir().unwrap(), garage, &bucket, &[]);
    let model = new_model(&server, "backed-up");
    let files = [weights(600, 2 << 20), b"small".to_vec()];
    for bytes in &files {
        assert_eq!(upload(&server, &model, bytes).status, 201);
    }
    let parent = tempfile::tempdir().unwrap();
    let (thin, full) = (parent.path().join("thin"), parent.path().join("full"));
    let out = server.cli(&["--json", "backup", thin.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["blob_store"].as_str(), report["blobs"].as_u64()), (Some(format!("s3://{bucket}").as_str()), Some(0)), "{report}");
    assert!(!thin.join("blobs").exists(), "a backup without --with-blobs copied blobs");
    let out = server.cli(&["--json", "backup", "--with-blobs", full.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["blob_store"].as_str(), report["blobs"].as_u64()), (Some("local"), Some(2)), "{report}");

    // restored, the thin backup reads its blobs from the bucket again
    let restored = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("--data-dir").arg(restored.path()).envs(server.store_env()).args(["restore", thin.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let on_s3 = Server::start_on_bucket(restored, garage, &bucket, &[]);
    for (i, bytes) in files.iter().enumerate() {
        assert_eq!(on_s3.get(&format!("{MODELS}/{model}/versions/{}/download", i + 1)).body, *bytes);
    }
    // the full one is a local registry of its own: no S3 credentials needed
    let local = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("--data-dir").arg(local.path()).args(["restore", full.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let local = Server::start_local(local, &[]);
    for (i, bytes) in files.iter().enumerate() {
        assert_eq!(local.get(&format!("{MODELS}/{model}/versions/{}/download", i + 1)).body, *bytes);
    }
    assert!(local.cli(&["verify"]).status.success());
}

#[test]
fn a_store_that_stops_answering_is_a_503_after_the_timeout_not_a_hang() {
    let Some(garage) = Garage::start(false) else { return };
    garage.create_bucket("frozen");
    let server = Server::start_on_bucket(tempfile::tempdir().unwrap(), &garage, "frozen", &["--s3-timeout", "2s"]);
    let model = new_model(&server, "frozen");
    let stored = weights(700, 1 << 20);
    assert_eq!(upload(&server, &model, &stored).status, 201);
    let signal = |which: &str| assert!(Command::new("kill").args([which, &garage.pid().to_string()]).status().unwrap().success());

    // the node still accepts connections (the kernel does) but answers nothing
    signal("-STOP");
    let started = Instant::now();
    let refused = upload(&server, &model, &weights(701, 1 << 20));
    let download = server.get(&format!("{MODELS}/{model}/versions/1/download"));
    let waited = started.elapsed();
    // a route that asked the store would answer 503 after the timeout: a 200
    // while the node is still stopped shows that it never asked
    let metadata = server.get(&format!("{MODELS}/{model}"));
    signal("-CONT");
    assert_eq!(metadata.status, 200, "{}", metadata.text());
    assert_eq!((refused.status, download.status), (503, 503), "{} / {}", refused.text(), download.text());
    assert!(refused.json()["message"].as_str().unwrap().contains("s3://frozen"), "{}", refused.text());
    assert!(waited < Duration::from_secs(12), "two requests took {waited:?} with a 2 s timeout");
    // once it answers again all is well, without a restart
    let after = weights(702, 1 << 20);
    let stored_again = upload(&server, &model, &after);
    assert_eq!(stored_again.status, 201, "{}", stored_again.text());
    assert_eq!(server.get(&format!("{MODELS}/{model}/versions/1/download")).body, stored);
}
