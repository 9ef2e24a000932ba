//! Issue 3: the Octomil Models API (seed 004) and the `models` / `versions`
//! CLI, tested against the real binary over HTTP.
//!
//! Every expected value here comes from the seed, the issue, or what the test
//! itself uploaded: hashes are computed from the bytes the test sent, counts
//! from the models the test created.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{files_under, hash_stream, multipart_body, sha256_hex, Part, Reply, Server, BOUNDARY};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const MODELS: &str = "/api/v1/models";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn body_text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// Creates a model from a JSON body and returns the 201 record.
fn create(server: &Server, body: Value) -> Value {
    let reply = server.post_json(MODELS, &body);
    assert_eq!(reply.status, 201, "create {body}: {}", body_text(&reply));
    reply.json()
}

/// Creates a model of a framework and returns its id.
fn new_model(server: &Server, framework: &str) -> String {
    create(server, json!({"framework": framework}))["id"].as_str().unwrap().to_string()
}

fn upload_path(model: &str) -> String {
    format!("{MODELS}/{model}/versions/upload")
}

fn download_path(model: &str, version: impl std::fmt::Display) -> String {
    format!("{MODELS}/{model}/versions/{version}/download")
}

/// Uploads `bytes` as `filename`, with optional format and description parts
/// (in curl's `-F` order: file first).
fn upload(server: &Server, model: &str, filename: &str, bytes: &[u8], format: Option<&str>, description: Option<&str>) -> Reply {
    let mut parts = vec![Part::File { name: "file", filename, bytes }];
    if let Some(f) = format {
        parts.push(Part::Field("format", f));
    }
    if let Some(d) = description {
        parts.push(Part::Field("description", d));
    }
    server.post_multipart(&upload_path(model), &parts)
}

/// Uploads and asserts 201; returns the version record.
fn upload_ok(server: &Server, model: &str, filename: &str, bytes: &[u8]) -> Value {
    let reply = upload(server, model, filename, bytes, None, None);
    assert_eq!(reply.status, 201, "upload {filename}: {}", body_text(&reply));
    reply.json()
}

fn get_model(server: &Server, model: &str) -> Value {
    let reply = server.get(&format!("{MODELS}/{model}"));
    assert_eq!(reply.status, 200, "{}", body_text(&reply));
    reply.json()
}

/// Asserts seed 004's error shape: the status, `{"error": code, "message":
/// non-empty text}`, as JSON. Returns the message.
fn expect_error(reply: &Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "expected {status} {code}, got: {}", body_text(reply));
    assert!(
        reply.header("Content-Type").is_some_and(|ct| ct.starts_with("application/json")),
        "error bodies are JSON: {:?}",
        reply.header("Content-Type")
    );
    let body = reply.json();
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_else(|| panic!("message must be a string: {body}"));
    assert!(!message.trim().is_empty(), "{body}");
    message.to_string()
}

/// Asserts a 400 bad_request whose message names `field`.
fn expect_bad_request(reply: &Reply, field: &str) {
    let message = expect_error(reply, 400, "bad_request");
    assert!(message.contains(field), "the message should name {field:?}: {message:?}");
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok())
}

fn is_uuid(value: &Value) -> bool {
    value.as_str().is_some_and(|s| uuid::Uuid::try_parse(s).is_ok())
}

fn blob_dir(server: &Server) -> PathBuf {
    server.data_dir().join("blobs/sha256")
}

fn temp_dir(server: &Server) -> PathBuf {
    server.data_dir().join("blobs/tmp")
}

/// Where the blob store keeps content with this sha256: `sha256/ab/cdef…`.
fn blob_path(server: &Server, sha256: &str) -> PathBuf {
    blob_dir(server).join(&sha256[..2]).join(&sha256[2..])
}

/// The hex digest out of a `sha256:<hex>` model_hash.
fn hex_of(model_hash: &Value) -> String {
    let text = model_hash.as_str().unwrap_or_else(|| panic!("model_hash must be a string: {model_hash}"));
    text.strip_prefix("sha256:").unwrap_or_else(|| panic!("model_hash must start with sha256: {text}")).to_string()
}

fn ids(page: &Value) -> Vec<String> {
    page["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

/// Polls `done` until it holds, failing after `secs` seconds.
fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deterministic pseudo-random bytes made as they are read (so that hundreds
/// of megabytes never sit in the test's memory), hashed on the way out.
struct Noise {
    left: u64,
    pos: u64,
    word: u64,
    sent: Sha256,
}

impl Noise {
    fn new(len: u64) -> Noise {
        Noise { left: len, pos: 0, word: 0, sent: Sha256::new() }
    }

    /// The sha256 of everything read so far.
    fn sha256(self) -> String {
        hex(&self.sent.finalize())
    }
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for byte in &mut buf[..n] {
            if self.pos % 8 == 0 {
                // splitmix64 of the word index: independent of read sizes.
                let mut z = (self.pos / 8).wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                self.word = z ^ (z >> 31);
            }
            *byte = (self.word >> ((self.pos % 8) * 8)) as u8;
            self.pos += 1;
        }
        self.sent.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The multipart text before a file part's bytes, and after them.
fn multipart_frame(filename: &str) -> (String, String) {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    (head, tail)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the command succeeded and parses its `--json` output.
fn cli_json(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}; stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {}", stdout(out)))
}

fn assert_failed(out: &Output, stderr_contains: &str) {
    assert!(!out.status.success(), "should have failed; stdout: {}", stdout(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains(stderr_contains), "stderr should mention {stderr_contains:?}: {stderr}");
}

// ---------------------------------------------------------------------------
// The seed's examples, replayed
// ---------------------------------------------------------------------------

const SEED_CREATE: &str = r#"{
  "framework": "pytorch",
  "framework_version": "2.1.0",
  "description": "MNIST digit classifier - 3-layer CNN",
  "is_baseline": true
}"#;

#[test]
fn seed_create_example_answers_201_with_the_seed_fields_and_types() {
    let server = Server::start();
    let reply = server.request(
        "POST",
        MODELS,
        &[("Content-Type", "application/json")],
        Some(SEED_CREATE.as_bytes().to_vec()),
    );
    assert_eq!(reply.status, 201, "{}", body_text(&reply));
    let model = reply.json();
    assert!(is_uuid(&model["id"]), "{model}");
    assert_eq!(model["framework"], "pytorch");
    assert_eq!(model["framework_version"], "2.1.0");
    assert_eq!(model["is_baseline"], true);
    assert_eq!(model["description"], "MNIST digit classifier - 3-layer CNN");
    assert!(is_rfc3339(&model["created_at"]), "{model}");

    // The record is stored: it reads back the same.
    let read = get_model(&server, model["id"].as_str().unwrap());
    for key in ["id", "framework", "framework_version", "is_baseline", "description", "created_at"] {
        assert_eq!(read[key], model[key], "{key}");
    }
}

#[test]
fn create_defaults_is_baseline_to_false_and_keeps_accuracy_loss_and_round_id() {
    let server = Server::start();
    let plain = create(&server, json!({"framework": "sklearn"}));
    assert_eq!(plain["is_baseline"], false);

    let round = "c0ffee00-0000-4000-8000-000000000001";
    let model = create(&server, json!({"framework": "xgboost", "accuracy": 0.82, "loss": 0.53, "round_id": round}));
    let id = model["id"].as_str().unwrap();
    let read = get_model(&server, id);
    assert_eq!(read["accuracy"].as_f64(), Some(0.82));
    assert_eq!(read["loss"].as_f64(), Some(0.53));
    assert_eq!(read["round_id"], round);
    let listed = server.get(&format!("{MODELS}?framework=xgboost")).json();
    let item = &listed["models"][0];
    assert_eq!(item["id"], id);
    assert_eq!(item["accuracy"].as_f64(), Some(0.82));
    assert_eq!(item["round_id"], round);
}

#[test]
fn seed_list_example_returns_pytorch_models_with_the_seed_item_fields() {
    let server = Server::start();
    let with_versions = create(&server, serde_json::from_str(SEED_CREATE).unwrap());
    let with_versions = with_versions["id"].as_str().unwrap();
    let bare = new_model(&server, "pytorch");
    new_model(&server, "tensorflow");
    upload_ok(&server, with_versions, "model.pt", b"first weights");
    let latest = b"second, larger weights";
    let v2 = upload_ok(&server, with_versions, "model.pt", latest);

    let reply = server.get(&format!("{MODELS}?framework=pytorch&limit=10"));
    assert_eq!(reply.status, 200, "{}", body_text(&reply));
    let page = reply.json();
    assert_eq!(page["total"], 2);
    assert_eq!(page["limit"], 10);
    assert_eq!(page["offset"], 0);
    let models = page["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for item in models {
        assert!(is_uuid(&item["id"]), "{item}");
        assert_eq!(item["framework"], "pytorch");
        assert!(item["is_baseline"].is_boolean(), "{item}");
        assert!(is_rfc3339(&item["created_at"]), "{item}");
        for key in ["round_id", "model_path", "model_size_bytes", "model_hash", "framework_version", "accuracy", "loss", "description"] {
            assert!(item.get(key).is_some(), "list items carry {key}: {item}");
        }
    }
    // The size, hash and path are the latest version's; null without one.
    let item = |id: &str| models.iter().find(|m| m["id"] == id).unwrap().clone();
    let full = item(with_versions);
    assert_eq!(full["model_size_bytes"], latest.len());
    assert_eq!(full["model_hash"], format!("sha256:{}", sha256_hex(latest)));
    assert_eq!(full["model_path"], v2["model_path"]);
    assert!(full["model_path"].is_string());
    assert_eq!(full["framework_version"], "2.1.0");
    assert_eq!(full["description"], "MNIST digit classifier - 3-layer CNN");
    let empty = item(&bare);
    for key in ["model_path", "model_size_bytes", "model_hash"] {
        assert!(empty[key].is_null(), "{key} is null without a version: {empty}");
    }
}

#[test]
fn seed_get_example_includes_the_full_version_history() {
    let server = Server::start();
    let model = create(&server, serde_json::from_str(SEED_CREATE).unwrap());
    let id = model["id"].as_str().unwrap();
    assert_eq!(get_model(&server, id)["versions"], json!([]));

    let first = b"pytorch weights".to_vec();
    let second = b"onnx export of the same".to_vec();
    upload_ok(&server, id, "model.pt", &first);
    upload_ok(&server, id, "model.onnx", &second);

    let read = get_model(&server, id);
    for key in ["id", "framework", "framework_version", "is_baseline", "description", "created_at"] {
        assert_eq!(read[key], model[key], "{key}");
    }
    for key in ["accuracy", "loss"] {
        assert!(read.get(key).is_some(), "{key}: {read}");
    }
    let versions = read["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{read}");
    for (n, (v, (format, bytes))) in versions.iter().zip([("pytorch", &first), ("onnx", &second)]).enumerate() {
        assert_eq!(v["version"], n + 1);
        assert_eq!(v["format"], format);
        assert_eq!(v["model_size_bytes"], bytes.len());
        assert_eq!(hex_of(&v["model_hash"]), sha256_hex(bytes));
        assert!(is_rfc3339(&v["uploaded_at"]), "{v}");
    }
}

#[test]
fn seed_upload_example_answers_201_with_the_version_record() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    upload_ok(&server, &id, "model.pt", b"v1");
    upload_ok(&server, &id, "model.pt", b"v2");
    let weights: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let reply = upload(&server, &id, "model.pt", &weights, Some("pytorch"), Some("After round 18 aggregation"));
    assert_eq!(reply.status, 201, "{}", body_text(&reply));
    let v = reply.json();
    assert_eq!(v["model_id"], id.as_str());
    assert_eq!(v["version"], 3);
    assert_eq!(v["format"], "pytorch");
    assert!(v["model_path"].as_str().is_some_and(|p| !p.is_empty()), "{v}");
    assert_eq!(v["model_size_bytes"], weights.len());
    assert_eq!(v["model_hash"], format!("sha256:{}", sha256_hex(&weights)));
    assert_eq!(v["description"], "After round 18 aggregation");
    assert!(is_rfc3339(&v["uploaded_at"]), "{v}");
}

#[test]
fn seed_download_sends_disposition_length_and_model_hash() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    upload_ok(&server, &id, "first.pt", b"one");
    let weights = b"the weights of version two".to_vec();
    upload_ok(&server, &id, "model.pt", &weights);

    let reply = server.get(&download_path(&id, 2));
    assert_eq!(reply.status, 200, "{}", body_text(&reply));
    assert_eq!(reply.body, weights);
    assert_eq!(reply.header("Content-Disposition"), Some("attachment; filename=\"model_v2.pt\""));
    assert_eq!(reply.header("Content-Length"), Some(weights.len().to_string().as_str()));
    assert_eq!(reply.header("X-Model-Hash"), Some(sha256_hex(&weights).as_str()));
}

#[test]
fn seed_download_as_onnx_returns_an_onnx_version() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    upload_ok(&server, &id, "model.pt", b"torch");
    upload_ok(&server, &id, "model.pt", b"torch again");
    let onnx = b"an onnx graph".to_vec();
    upload_ok(&server, &id, "exported.onnx", &onnx);

    let reply = server.get(&format!("{}?format=onnx", download_path(&id, 3)));
    assert_eq!(reply.status, 200, "{}", body_text(&reply));
    assert_eq!(reply.body, onnx);
    assert_eq!(reply.header("Content-Disposition"), Some("attachment; filename=\"model_v3.onnx\""));
}

#[test]
fn download_with_the_versions_own_format_or_original_returns_the_file() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let weights = b"pull_model always sends format".to_vec();
    upload_ok(&server, &id, "model.pth", &weights);
    for query in ["?format=pytorch", "?format=original", ""] {
        let reply = server.get(&format!("{}{query}", download_path(&id, 1)));
        assert_eq!(reply.status, 200, "{query}: {}", body_text(&reply));
        assert_eq!(reply.body, weights, "{query}");
        assert_eq!(reply.header("X-Model-Hash"), Some(sha256_hex(&weights).as_str()), "{query}");
    }
}

#[test]
fn download_in_another_format_is_404_saying_there_is_no_conversion() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    upload_ok(&server, &id, "model.pt", b"torch only");
    for format in ["onnx", "tflite", "coreml"] {
        let reply = server.get(&format!("{}?format={format}", download_path(&id, 1)));
        let message = expect_error(&reply, 404, "not_found");
        assert!(message.contains(format), "{message}");
        assert!(message.to_lowercase().contains("convert"), "the message should say modelreg does not convert: {message}");
    }
}

#[test]
fn download_supports_etag_and_range() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let weights: Vec<u8> = (0..=255u8).collect();
    upload_ok(&server, &id, "model.pt", &weights);
    let path = download_path(&id, 1);

    let whole = server.get(&path);
    let etag = whole.header("ETag").expect("an ETag").to_string();
    let not_modified = server.request("GET", &path, &[("If-None-Match", &etag)], None);
    assert_eq!(not_modified.status, 304);

    let part = server.request("GET", &path, &[("Range", "bytes=10-19")], None);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &weights[10..20]);
    assert_eq!(part.header("Content-Range"), Some("bytes 10-19/256"));
}

#[test]
fn sdk_style_requests_are_accepted() {
    // What the octomil SDK sends (see shared/clients/octomil-sdk.md): extra
    // keys on create, org_id/use_case on list, limit=100.
    let server = Server::start();
    let reply = server.post_json(
        &format!("{MODELS}?org_id=default"),
        &json!({"name": "mnist", "description": "", "framework": "pytorch", "use_case": "vision", "model_contract": {"x": 1}}),
    );
    assert_eq!(reply.status, 201, "{}", body_text(&reply));
    let id = reply.json()["id"].as_str().unwrap().to_string();
    let page = server.get(&format!("{MODELS}?org_id=default&limit=100&offset=0&use_case=vision"));
    assert_eq!(page.status, 200, "{}", body_text(&page));
    let page = page.json();
    let item = page["models"].as_array().unwrap().iter().find(|m| m["id"] == id.as_str()).cloned().expect("listed");
    assert_eq!(item["name"], "mnist");
}

// ---------------------------------------------------------------------------
// Round trips, memory, concurrency, dedup
// ---------------------------------------------------------------------------

#[test]
fn empty_and_one_byte_files_round_trip_byte_identical() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    for (n, bytes) in [&b""[..], &b"\x00"[..]].into_iter().enumerate() {
        let v = upload_ok(&server, &id, "model.pt", bytes);
        assert_eq!(v["version"], n + 1);
        assert_eq!(v["model_size_bytes"], bytes.len());
        assert_eq!(hex_of(&v["model_hash"]), sha256_hex(bytes));
        let reply = server.get(&download_path(&id, n + 1));
        assert_eq!(reply.status, 200, "{}", body_text(&reply));
        assert_eq!(reply.body, bytes);
        assert_eq!(reply.header("Content-Length"), Some(bytes.len().to_string().as_str()));
        assert_eq!(reply.header("X-Model-Hash"), Some(sha256_hex(bytes).as_str()));
    }
}

#[test]
fn a_300_mb_file_round_trips_with_server_rss_under_64_mib() {
    const SIZE: u64 = 300 * 1000 * 1000;
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let agent = agent();

    let (head, tail) = multipart_frame("big.pt");
    let mut noise = Noise::new(SIZE);
    let length = head.len() as u64 + SIZE + tail.len() as u64;
    let response = {
        let mut body = head.as_bytes().chain(&mut noise).chain(tail.as_bytes());
        agent
            .post(server.url(&upload_path(&id)))
            .header("Authorization", server.auth())
            .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .header("Content-Length", length.to_string())
            .send(ureq::SendBody::from_reader(&mut body))
            .expect("upload")
    };
    let sent = noise.sha256();
    let status = response.status().as_u16();
    let v: Value = serde_json::from_reader(response.into_body().into_reader()).unwrap();
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["model_size_bytes"], SIZE);
    assert_eq!(v["model_hash"], format!("sha256:{sent}"));

    let response = agent.get(server.url(&download_path(&id, 1))).header("Authorization", server.auth()).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(header("Content-Length"), Some(SIZE.to_string()));
    assert_eq!(header("X-Model-Hash"), Some(sent.clone()));
    let (size, received) = hash_stream(response.into_body().into_reader());
    assert_eq!(size, SIZE);
    assert_eq!(received, sent, "the download differs from the upload");

    let peak = server.peak_rss_kib();
    eprintln!("server peak RSS after a 300 MB upload and download: {peak} KiB");
    assert!(peak < 64 * 1024, "server peak RSS was {peak} KiB after moving 300 MB");
}

#[test]
fn twenty_concurrent_uploads_get_versions_1_to_20_once_each() {
    const UPLOADS: usize = 20;
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let bodies: Vec<Vec<u8>> = (0..UPLOADS).map(|i| format!("weights of upload {i} ").repeat(2000 + i).into_bytes()).collect();
    let start = Barrier::new(UPLOADS);
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|bytes| {
                let (server, id, start) = (&server, &id, &start);
                scope.spawn(move || {
                    start.wait();
                    upload_ok(server, id, "model.pt", bytes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut numbers: Vec<i64> = results.iter().map(|v| v["version"].as_i64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=UPLOADS as i64).collect::<Vec<_>>());

    // Each number holds the bytes of the upload that was told that number.
    let history = get_model(&server, &id)["versions"].as_array().unwrap().clone();
    assert_eq!(history.len(), UPLOADS);
    for (bytes, v) in bodies.iter().zip(&results) {
        let n = v["version"].as_i64().unwrap();
        assert_eq!(hex_of(&v["model_hash"]), sha256_hex(bytes));
        let listed = history.iter().find(|h| h["version"] == n).unwrap();
        assert_eq!(listed["model_hash"], v["model_hash"], "version {n}");
        assert_eq!(server.get(&download_path(&id, n)).body, *bytes, "version {n}");
    }
}

#[test]
fn the_same_bytes_in_two_models_are_stored_once() {
    // looks at the blob files of the data directory: the local store's layout
    let server = Server::start_local(tempfile::tempdir().unwrap(), &[]);
    let a = new_model(&server, "pytorch");
    let b = new_model(&server, "sklearn");
    let weights: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let va = upload_ok(&server, &a, "model.pt", &weights);
    let vb = upload_ok(&server, &b, "model.pkl", &weights);
    assert_eq!(va["model_hash"], vb["model_hash"]);

    let sha = sha256_hex(&weights);
    assert_eq!(files_under(&blob_dir(&server)), vec![blob_path(&server, &sha)], "one blob file, named by its sha256");
    assert!(files_under(&temp_dir(&server)).is_empty());
    for model in [&a, &b] {
        assert_eq!(server.get(&download_path(model, 1)).body, weights);
    }
}

// ---------------------------------------------------------------------------
// Listing: filters, pagination, ordering
// ---------------------------------------------------------------------------

#[test]
fn list_filters_by_framework_and_is_baseline_and_total_counts_all_matches() {
    let server = Server::start();
    let made = [
        ("pytorch", true),
        ("pytorch", false),
        ("pytorch", false),
        ("pytorch", true),
        ("pytorch", false),
        ("tensorflow", true),
        ("tensorflow", false),
        ("sklearn", false),
        ("xgboost", true),
    ];
    let mut created = Vec::new();
    for (framework, baseline) in made {
        let m = create(&server, json!({"framework": framework, "is_baseline": baseline}));
        created.push((m["id"].as_str().unwrap().to_string(), framework, baseline));
    }
    let expect = |query: &str, keep: &dyn Fn(&str, bool) -> bool| {
        let mut wanted: Vec<String> = created.iter().filter(|(_, f, b)| keep(f, *b)).map(|(id, ..)| id.clone()).collect();
        let reply = server.get(&format!("{MODELS}?{query}"));
        assert_eq!(reply.status, 200, "{query}: {}", body_text(&reply));
        let page = reply.json();
        assert_eq!(page["total"], wanted.len(), "{query}");
        let mut got = ids(&page);
        got.sort();
        wanted.sort();
        assert_eq!(got, wanted, "{query}");

        // `total` counts every match, not the page.
        let reply = server.get(&format!("{MODELS}?{query}&limit=1"));
        let page = reply.json();
        assert_eq!(page["total"], wanted.len(), "{query}&limit=1");
        assert_eq!(page["models"].as_array().unwrap().len(), wanted.len().min(1), "{query}&limit=1");
    };
    expect("", &|_, _| true);
    for framework in ["pytorch", "tensorflow", "sklearn", "xgboost"] {
        expect(&format!("framework={framework}"), &|f, _| f == framework);
    }
    expect("is_baseline=true", &|_, b| b);
    expect("is_baseline=false", &|_, b| !b);
    expect("framework=pytorch&is_baseline=true", &|f, b| f == "pytorch" && b);
    expect("framework=tensorflow&is_baseline=false", &|f, b| f == "tensorflow" && !b);
}

#[test]
fn list_is_newest_first_and_pages_by_limit_and_offset() {
    // Created one after another, as fast as the server goes: several land in
    // the same millisecond, which must not blur their order.
    const COUNT: usize = 40;
    let server = Server::start();
    let mut created: Vec<String> = (0..COUNT).map(|_| new_model(&server, "pytorch")).collect();
    created.reverse(); // newest first

    let all = server.get(&format!("{MODELS}?limit=100")).json();
    assert_eq!(ids(&all), created, "newest first");
    assert_eq!(all["total"], COUNT);

    let default = server.get(MODELS).json();
    assert_eq!(default["limit"], 20, "default limit");
    assert_eq!(default["offset"], 0, "default offset");
    assert_eq!(ids(&default), created[..20]);

    let mut paged = Vec::new();
    for offset in [0, 15, 30] {
        let page = server.get(&format!("{MODELS}?limit=15&offset={offset}")).json();
        assert_eq!(page["limit"], 15);
        assert_eq!(page["offset"], offset);
        assert_eq!(page["total"], COUNT);
        paged.extend(ids(&page));
    }
    assert_eq!(paged, created);

    let past_the_end = server.get(&format!("{MODELS}?limit=10&offset={COUNT}")).json();
    assert_eq!(past_the_end["models"], json!([]));
    assert_eq!(past_the_end["total"], COUNT);
}

#[test]
fn list_accepts_limit_1_to_100_and_offset_0_up() {
    let server = Server::start();
    for query in ["limit=1", "limit=100", "offset=0", "offset=1000000"] {
        let reply = server.get(&format!("{MODELS}?{query}"));
        assert_eq!(reply.status, 200, "{query}: {}", body_text(&reply));
    }
}

#[test]
fn list_rejects_out_of_range_or_malformed_query_values_with_400() {
    let server = Server::start();
    let cases = [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("framework=caffe", "framework"),
        ("framework=onnx", "framework"),
        ("is_baseline=maybe", "is_baseline"),
    ];
    for (query, field) in cases {
        expect_bad_request(&server.get(&format!("{MODELS}?{query}")), field);
    }
}

// ---------------------------------------------------------------------------
// Uploads: formats and bad requests
// ---------------------------------------------------------------------------

#[test]
fn upload_infers_the_format_from_the_file_extension() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let cases = [
        ("model.pt", "pytorch", "pt"),
        ("model.pth", "pytorch", "pth"),
        ("model.h5", "tensorflow", "h5"),
        ("model.keras", "tensorflow", "keras"),
        ("model.pkl", "sklearn", "pkl"),
        ("model.joblib", "sklearn", "joblib"),
        ("model.onnx", "onnx", "onnx"),
        ("booster.json", "xgboost", "json"),
        ("booster.ubj", "xgboost", "ubj"),
        ("UPPER.PT", "pytorch", "PT"),
    ];
    for (n, (filename, format, ext)) in cases.into_iter().enumerate() {
        let bytes = format!("weights in {filename}").into_bytes();
        let v = upload_ok(&server, &id, filename, &bytes);
        assert_eq!(v["format"], format, "{filename}");
        let reply = server.get(&download_path(&id, n + 1));
        assert_eq!(reply.body, bytes);
        assert_eq!(
            reply.header("Content-Disposition"),
            Some(format!("attachment; filename=\"model_v{}.{ext}\"", n + 1).as_str()),
            "{filename}"
        );
    }
}

#[test]
fn an_explicit_format_wins_over_the_extension() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let reply = upload(&server, &id, "weights.bin", b"no telling extension", Some("onnx"), None);
    assert_eq!(reply.status, 201, "{}", body_text(&reply));
    assert_eq!(reply.json()["format"], "onnx");
    let reply = upload(&server, &id, "model.pt", b"declared", Some("tensorflow"), None);
    assert_eq!(reply.json()["format"], "tensorflow");
    assert_eq!(get_model(&server, &id)["versions"][1]["format"], "tensorflow");
}

#[test]
fn upload_with_an_unknown_or_uninferrable_format_is_400_and_makes_no_version() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    expect_bad_request(&upload(&server, &id, "model.pt", b"x", Some("caffe"), None), "format");
    expect_bad_request(&upload(&server, &id, "model.bin", b"x", None, None), "format");
    expect_bad_request(&upload(&server, &id, "no_extension", b"x", None, None), "format");
    assert_eq!(get_model(&server, &id)["versions"], json!([]));
    // The next good upload is still version 1.
    assert_eq!(upload_ok(&server, &id, "model.pt", b"ok")["version"], 1);
}

#[test]
fn upload_without_a_file_part_is_400_naming_file() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let reply = server.post_multipart(&upload_path(&id), &[Part::Field("format", "pytorch"), Part::Field("description", "x")]);
    expect_bad_request(&reply, "file");
    // A file under another field name is not the `file` part either.
    let reply = server.post_multipart(&upload_path(&id), &[Part::File { name: "weights", filename: "model.pt", bytes: b"x" }]);
    expect_bad_request(&reply, "file");
    assert_eq!(get_model(&server, &id)["versions"], json!([]));
}

#[test]
fn a_non_multipart_upload_is_400() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let raw = server.request("POST", &upload_path(&id), &[("Content-Type", "application/octet-stream")], Some(b"raw".to_vec()));
    expect_bad_request(&raw, "file");
    let json = server.post_json(&upload_path(&id), &json!({"file": "model.pt"}));
    expect_bad_request(&json, "file");
    assert_eq!(get_model(&server, &id)["versions"], json!([]));
}

#[test]
fn create_rejects_bad_fields_with_400_naming_them() {
    let server = Server::start();
    let cases = [
        (json!({"framework": "caffe"}), "framework"),
        (json!({"framework": 3}), "framework"),
        (json!({"is_baseline": "yes"}), "is_baseline"),
        (json!({"description": "d".repeat(1001)}), "description"),
        (json!({"accuracy": "high"}), "accuracy"),
    ];
    for (body, field) in cases {
        expect_bad_request(&server.post_json(MODELS, &body), field);
    }
    let not_json = server.request("POST", MODELS, &[("Content-Type", "application/json")], Some(b"{nope".to_vec()));
    expect_error(&not_json, 400, "bad_request");
    // 1000 characters is the documented maximum, and allowed.
    create(&server, json!({"description": "d".repeat(1000)}));
    assert_eq!(server.get(MODELS).json()["total"], 1);
}

// ---------------------------------------------------------------------------
// The error table
// ---------------------------------------------------------------------------

#[test]
fn unknown_ids_and_names_are_404() {
    let server = Server::start();
    let paths = [format!("{MODELS}/no-such-model"), download_path("no-such-model", 1), format!("{MODELS}/{}", uuid_like())];
    for path in &paths {
        expect_error(&server.get(path), 404, "not_found");
    }
    let reply = upload(&server, "no-such-model", "model.pt", b"x", None, None);
    expect_error(&reply, 404, "not_found");
}

fn uuid_like() -> &'static str {
    "0190f5c2-0000-7000-8000-000000000000"
}

#[test]
fn a_models_name_works_wherever_its_id_does() {
    let server = Server::start();
    let id = create(&server, json!({"name": "resnet", "framework": "pytorch"}))["id"].as_str().unwrap().to_string();
    let weights = b"weights by name".to_vec();
    let reply = upload(&server, "resnet", "model.pt", &weights, None, None);
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["model_id"], id.as_str());
    assert_eq!(server.get(&download_path("resnet", 1)).body, weights);
    assert_eq!(server.get(&format!("{MODELS}/resnet")).json()["id"], id.as_str());
}

#[test]
fn a_version_that_is_not_a_positive_integer_is_400() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    upload_ok(&server, &id, "model.pt", b"x");
    for version in ["0", "-1"] {
        expect_bad_request(&server.get(&download_path(&id, version)), "version");
    }
    // Anything else names a label, which these versions do not have, or an
    // alias the model does not have.
    for version in ["1.0.0", "1.5", "@nobody"] {
        expect_error(&server.get(&download_path(&id, version)), 404, "not_found");
    }
    // `latest` names the latest version (issue 24), no longer a label.
    assert_eq!(server.get(&download_path(&id, "latest")).status, 200);
}

#[test]
fn an_unknown_download_format_is_400() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    upload_ok(&server, &id, "model.pt", b"x");
    expect_bad_request(&server.get(&format!("{}?format=tensorrt", download_path(&id, 1))), "format");
}

#[test]
fn missing_and_unknown_keys_are_401_on_every_route() {
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    upload_ok(&server, &id, "model.pt", b"x");
    let (content_type, multipart) = multipart_body(&[Part::File { name: "file", filename: "model.pt", bytes: b"y" }]);
    let routes: [(&str, String, Option<(&str, Vec<u8>)>); 5] = [
        ("GET", MODELS.to_string(), None),
        ("POST", MODELS.to_string(), Some(("application/json", b"{}".to_vec()))),
        ("GET", format!("{MODELS}/{id}"), None),
        ("POST", upload_path(&id), Some((content_type.as_str(), multipart))),
        ("GET", download_path(&id, 1), None),
    ];
    for auth in ["", "Bearer not-a-real-key"] {
        for (method, path, body) in &routes {
            let mut headers = vec![("Authorization", auth)];
            if let Some((ct, _)) = body {
                headers.push(("Content-Type", ct));
            }
            let reply = server.request(method, path, &headers, body.as_ref().map(|(_, b)| b.clone()));
            expect_error(&reply, 401, "unauthorized");
        }
    }
    // Nothing was created or uploaded by the refused requests.
    assert_eq!(server.get(MODELS).json()["total"], 1);
    assert_eq!(get_model(&server, &id)["versions"].as_array().unwrap().len(), 1);
}

#[test]
fn unknown_models_and_versions_are_404() {
    let server = Server::start();
    let missing = uuid::Uuid::new_v4().to_string();
    expect_error(&server.get(&format!("{MODELS}/{missing}")), 404, "not_found");
    expect_error(&upload(&server, &missing, "model.pt", b"x", None, None), 404, "not_found");
    expect_error(&server.get(&download_path(&missing, 1)), 404, "not_found");

    let id = new_model(&server, "pytorch");
    expect_error(&server.get(&download_path(&id, 1)), 404, "not_found");
    upload_ok(&server, &id, "model.pt", b"x");
    expect_error(&server.get(&download_path(&id, 2)), 404, "not_found");
    // Not the body the SDK retries as a cold start.
    let reply = server.get(&download_path(&id, 2));
    assert_ne!(reply.json(), json!({"detail": "Not Found"}));
}

#[test]
fn creating_a_name_that_exists_returns_that_model_unless_it_conflicts() {
    let server = Server::start();
    let first = create(&server, json!({"name": "mnist", "framework": "pytorch"}));
    // The Octomil SDK's ensure_model POSTs when the name is not on the
    // first page of the list: it gets the model that has it.
    let again = server.post_json(MODELS, &json!({"name": "mnist", "framework": "pytorch", "use_case": "other"}));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], first["id"]);
    let reply = server.post_json(MODELS, &json!({"name": "mnist", "framework": "tensorflow"}));
    let message = expect_error(&reply, 409, "conflict");
    assert!(message.contains("mnist") && message.contains("pytorch"), "{message}");
    assert_eq!(server.get(MODELS).json()["total"], 1);
    // Models created without a name (the seed's create has none) are named
    // after their ids, so they never collide (ARCHITECTURE.md, "One
    // registry, three doors": the name carries the id's random tail, and
    // the registry gives it, so every door reads the same one). Checked as
    // those properties, not as the exact text the code makes.
    let unnamed: Vec<Value> = (0..4).map(|_| create(&server, json!({"framework": "pytorch"}))).collect();
    let mut names = std::collections::BTreeSet::new();
    for model in &unnamed {
        let id = model["id"].as_str().unwrap();
        let name = model["name"].as_str().unwrap_or_else(|| panic!("a model without a name: {model}"));
        assert!(!name.trim().is_empty() && name != "mnist", "{model}");
        assert!(name.contains(&id[id.len() - 8..]), "{name:?} is not made from the id {id}");
        // Stable: the same on a second read, through each door.
        assert_eq!(common::ok(&server.get(&format!("{MODELS}/{id}")), 200)["name"], name, "Octomil door");
        assert_eq!(common::ok(&server.get(&format!("/api/v2/customModels/{id}/")), 200)["name"], name, "DataRobot door");
        assert!(names.insert(name.to_string()), "two models share the default name {name:?}");
    }
    assert_eq!(server.get(MODELS).json()["total"], 5, "a nameless create returned an existing model");
}

#[test]
fn concurrent_creates_with_one_name_make_one_model() {
    const CLIENTS: usize = 8;
    let server = Server::start();
    let start = Barrier::new(CLIENTS);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (server, start) = (&server, &start);
                scope.spawn(move || {
                    start.wait();
                    server.post_json(MODELS, &json!({"name": "race", "framework": "pytorch"})).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), CLIENTS - 1, "{statuses:?}");
    assert_eq!(server.get(MODELS).json()["total"], 1);
}

#[test]
fn exceeding_the_rate_limit_is_429_with_retry_after() {
    let server = Server::start_with(&["--rate-limit", "1/2"]);
    let mut refused = None;
    for _ in 0..10 {
        let reply = server.get(MODELS);
        if reply.status != 200 {
            refused = Some(reply);
            break;
        }
    }
    let reply = refused.expect("a burst of 2 at 1/s must run out within 10 quick requests");
    expect_error(&reply, 429, "rate_limited");
    let retry_after: u64 = reply.header("Retry-After").expect("Retry-After").parse().expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{retry_after}");

    // The bucket refills: within the announced wait (plus slack) a request passes.
    let mut last = 0;
    wait_for("the rate limit to refill", retry_after + 5, || {
        last = server.get(MODELS).status;
        last == 200
    });
}

#[test]
fn a_missing_blob_file_is_500_internal_error() {
    // removes a blob file of the data directory: the local store's layout
    let server = Server::start_local(tempfile::tempdir().unwrap(), &[]);
    let id = new_model(&server, "pytorch");
    // past the 64 KiB the database keeps, so that it is a file of its own
    let weights = b"soon gone".repeat(10_000);
    upload_ok(&server, &id, "model.pt", &weights);
    std::fs::remove_file(blob_path(&server, &sha256_hex(&weights))).unwrap();
    expect_error(&server.get(&download_path(&id, 1)), 500, "internal_error");
    // The server lives on.
    assert_eq!(server.get(MODELS).status, 200);
}

#[test]
fn an_over_cap_json_body_is_413() {
    // Sent in full, within what the transport drains.
    let server = Server::start_with(&["--max-json-bytes", "4096"]);
    let body = json!({"framework": "pytorch", "description": "x".repeat(5000)});
    expect_error(&server.post_json(MODELS, &body), 413, "payload_too_large");
    assert_eq!(server.get(MODELS).json()["total"], 0);

    // Declared over the default 1 MiB cap: refused before the body is read.
    let server = Server::start();
    let head = format!(
        "POST {MODELS} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        server.addr,
        server.auth(),
        1024 * 1024 + 1
    );
    let answer = server.raw(head.as_bytes(), Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"payload_too_large\""), "{answer}");
}

// ---------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------

#[test]
fn a_server_killed_mid_upload_restarts_clean() {
    const DECLARED: u64 = 1 << 30;
    // watches the data directory's temp files: the local store's layout
    let server = Server::start_local(tempfile::tempdir().unwrap(), &[]);
    let id = new_model(&server, "pytorch");

    let (head, _) = multipart_frame("big.pt");
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    write!(
        stream,
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {}\r\n\r\n{head}",
        upload_path(&id),
        server.addr,
        server.auth(),
        DECLARED
    )
    .unwrap();
    // Feed the body until the server's temp file exists and is growing.
    let mut noise = Noise::new(DECLARED);
    let mut chunk = vec![0u8; 1 << 20];
    let temp_size = |server: &Server| files_under(&temp_dir(server)).iter().map(|p| p.metadata().map_or(0, |m| m.len())).max();
    let mut first_seen = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the upload never showed up in {}", temp_dir(&server).display());
        noise.read_exact(&mut chunk).unwrap();
        stream.write_all(&chunk).unwrap();
        match (first_seen, temp_size(&server)) {
            (None, Some(size)) if size > 0 => first_seen = Some(size),
            (Some(before), Some(now)) if now > before => break,
            _ => {}
        }
    }
    let data = server.kill();
    drop(stream);

    let server = Server::start_in(data, &[]);
    // issue 11: serve sweeps temp files no live upload owns when it starts
    assert!(files_under(&temp_dir(&server)).is_empty(), "the partial temp file was not swept at start");
    let model = get_model(&server, &id);
    assert_eq!(model["versions"], json!([]), "the partial upload left no version");
    assert!(model["model_hash"].is_null());
    let verify = server.cli(&["verify"]);
    assert!(verify.status.success(), "verify: {}{}", stdout(&verify), String::from_utf8_lossy(&verify.stderr));

    let weights = b"after the crash".to_vec();
    let v = upload_ok(&server, &id, "model.pt", &weights);
    assert_eq!(v["version"], 1);
    assert_eq!(server.get(&download_path(&id, 1)).body, weights);

    // gc keeps the referenced blob (the crash's temp file went at start).
    let gc = cli_json(&server.cli(&["--json", "gc", "--grace-secs", "0"]));
    assert_eq!(gc["temp_files"].as_array().map(Vec::len), Some(0), "{gc}");
    assert!(files_under(&temp_dir(&server)).is_empty());
    assert_eq!(server.get(&download_path(&id, 1)).body, weights);
    assert!(server.cli(&["verify"]).status.success());
}

// ---------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------

/// Exercises models create|list|show and versions upload|list|download
/// through `cli` (offline or with --server), checking what the server sees.
fn cli_walkthrough(server: &Server, cli: &dyn Fn(&[&str]) -> Output) {
    let work = tempfile::tempdir().unwrap();
    let weights: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let file = work.path().join("weights.pth");
    std::fs::write(&file, &weights).unwrap();
    let file = file.to_str().unwrap();

    let created = cli_json(&cli(&[
        "--json", "models", "create", "--name", "cli-model", "--framework", "pytorch", "--framework-version", "2.1.0",
        "--description", "made by the CLI", "--baseline",
    ]));
    let id = created["id"].as_str().unwrap().to_string();
    let over_http = get_model(server, &id);
    assert_eq!(over_http["name"], "cli-model");
    assert_eq!(over_http["framework"], "pytorch");
    assert_eq!(over_http["framework_version"], "2.1.0");
    assert_eq!(over_http["description"], "made by the CLI");
    assert_eq!(over_http["is_baseline"], true);

    let listed = cli_json(&cli(&["--json", "models", "list", "--framework", "pytorch"]));
    assert!(ids(&listed).contains(&id), "{listed}");
    let human = stdout(&cli(&["models", "list"]));
    assert!(human.contains(&id), "{human}");

    let uploaded = cli_json(&cli(&["--json", "versions", "upload", &id, file, "--description", "first"]));
    assert_eq!(uploaded["version"], 1);
    assert_eq!(uploaded["format"], "pytorch", "inferred from .pth");
    assert_eq!(uploaded["model_hash"], format!("sha256:{}", sha256_hex(&weights)));
    let second = cli_json(&cli(&["--json", "versions", "upload", &id, file, "--format", "onnx"]));
    assert_eq!(second["version"], 2);
    assert_eq!(second["format"], "onnx");
    assert_eq!(server.get(&download_path(&id, 1)).body, weights, "the server serves what the CLI uploaded");

    let versions = cli_json(&cli(&["--json", "versions", "list", &id]));
    let numbers: Vec<i64> = versions.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 2]);
    let shown = cli_json(&cli(&["--json", "models", "show", &id]));
    assert_eq!(shown["versions"], versions);
    assert!(stdout(&cli(&["models", "show", &id])).contains(&sha256_hex(&weights)));

    let out = work.path().join("downloaded.pth");
    let report = cli_json(&cli(&["--json", "versions", "download", &id, "1", "-o", out.to_str().unwrap()]));
    assert_eq!(std::fs::read(&out).unwrap(), weights);
    assert_eq!(report["sha256"], sha256_hex(&weights));
    assert_eq!(report["size"], weights.len());
    let out2 = work.path().join("again.pth");
    let human = stdout(&cli(&["versions", "download", &id, "1", "-o", out2.to_str().unwrap()]));
    assert!(human.contains(&sha256_hex(&weights)), "the human output reports the sha256: {human}");

    let deleted = cli_json(&cli(&["--json", "models", "delete", &id]));
    assert_eq!(deleted["deleted"], true);
    expect_error(&server.get(&format!("{MODELS}/{id}")), 404, "not_found");
    assert_failed(&cli(&["models", "show", &id]), "not found");
}

#[test]
fn cli_offline_creates_lists_shows_uploads_downloads_and_deletes() {
    let server = Server::start();
    cli_walkthrough(&server, &|args| server.cli(args));
}

#[test]
fn cli_with_server_creates_lists_shows_uploads_downloads_and_deletes() {
    let server = Server::start();
    cli_walkthrough(&server, &|args| server.cli_remote(args));
}

#[test]
fn cli_with_a_wrong_token_fails_unauthorized() {
    let server = Server::start();
    let url = format!("http://{}", server.addr);
    let out = server.cli(&["--server", &url, "--token", "wrong", "models", "list"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("key") || stderr.contains("unauthorized"), "{stderr}");
}

#[test]
fn cli_create_of_a_taken_name_returns_that_model_like_the_server() {
    let server = Server::start();
    let id = create(&server, json!({"name": "taken", "framework": "sklearn"}))["id"].clone();
    for out in [server.cli(&["--json", "models", "create", "--name", "taken"]), server.cli_remote(&["--json", "models", "create", "--name", "taken"])] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["id"], id);
    }
    assert_failed(&server.cli(&["models", "create", "--name", "taken", "--framework", "xgboost"]), "taken");
    assert_failed(&server.cli_remote(&["models", "create", "--name", "taken", "--framework", "xgboost"]), "taken");
    assert_eq!(server.get(MODELS).json()["total"], 1);
}

/// Runs the CLI in `dir` as its working directory.
fn cli_in(server: &Server, dir: &Path, args: &[&str]) -> Output {
    server.cli_command().current_dir(dir).args(args).output().unwrap()
}

#[test]
fn cli_download_defaults_to_the_servers_file_name() {
    let server = Server::start();
    let id = new_model(&server, "tensorflow");
    let weights = b"keras weights".to_vec();
    upload_ok(&server, &id, "model.h5", &weights);
    let url = format!("http://{}", server.addr);
    let offline = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let runs = [
        (offline.path(), vec!["versions", "download", &id, "1"]),
        (remote.path(), vec!["--server", &url, "--token", &server.key, "versions", "download", &id, "1"]),
    ];
    for (dir, args) in runs {
        let out = cli_in(&server, dir, &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // The name the server's Content-Disposition announces.
        assert_eq!(std::fs::read(dir.join("model_v1.h5")).unwrap(), weights, "in {}", dir.display());
        // No download replaces a file, whether the server or -o named it, unless --force.
        std::fs::write(dir.join("model_v1.h5"), b"mine").unwrap();
        let again = cli_in(&server, dir, &args);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
        assert_eq!(std::fs::read(dir.join("model_v1.h5")).unwrap(), b"mine");
        let mut named = args.clone();
        named.extend(["-o", "model_v1.h5"]);
        assert!(!cli_in(&server, dir, &named).status.success());
        assert_eq!(std::fs::read(dir.join("model_v1.h5")).unwrap(), b"mine");
        let mut forced = named.clone();
        forced.push("--force");
        assert!(cli_in(&server, dir, &forced).status.success());
        assert_eq!(std::fs::read(dir.join("model_v1.h5")).unwrap(), weights);
    }
}

/// Flips one byte of a stored blob, as disk corruption would.
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cli_download_of_corrupt_bytes_leaves_no_file() {
    // corrupts a blob file of the data directory: the local store's layout
    let server = Server::start_local(tempfile::tempdir().unwrap(), &[]);
    let id = new_model(&server, "pytorch");
    let weights = vec![42u8; 100_000];
    upload_ok(&server, &id, "model.pt", &weights);
    corrupt(&blob_path(&server, &sha256_hex(&weights)));

    let offline = tempfile::tempdir().unwrap();
    let out = offline.path().join("model.pt");
    assert_failed(&server.cli(&["versions", "download", &id, "1", "-o", out.to_str().unwrap()]), "corrupt");
    assert!(files_under(offline.path()).is_empty(), "nothing is left: {:?}", files_under(offline.path()));

    let remote = tempfile::tempdir().unwrap();
    let out = remote.path().join("model.pt");
    assert_failed(&server.cli_remote(&["versions", "download", &id, "1", "-o", out.to_str().unwrap()]), "corrupt");
    assert!(files_under(remote.path()).is_empty(), "nothing is left: {:?}", files_under(remote.path()));
}

#[test]
fn cli_upload_errors_are_reported_with_the_servers_message() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    // Large enough that the server answers before reading it all.
    let big = work.path().join("big.pt");
    std::fs::write(&big, vec![0u8; 8 << 20]).unwrap();
    let missing = uuid::Uuid::new_v4().to_string();
    assert_failed(&server.cli(&["versions", "upload", &missing, big.to_str().unwrap()]), "not found");
    assert_failed(&server.cli_remote(&["versions", "upload", &missing, big.to_str().unwrap()]), "not found");

    let id = new_model(&server, "pytorch");
    let unknown = work.path().join("weights.bin");
    std::fs::write(&unknown, b"x").unwrap();
    assert_failed(&server.cli(&["versions", "upload", &id, unknown.to_str().unwrap()]), "format");
    assert_failed(&server.cli_remote(&["versions", "upload", &id, unknown.to_str().unwrap()]), "format");
    assert_eq!(get_model(&server, &id)["versions"], json!([]));
}

#[test]
fn cli_list_refuses_limits_and_offsets_the_api_refuses() {
    let server = Server::start();
    new_model(&server, "pytorch");
    for (flag, field) in [("--limit=0", "limit"), ("--limit=101", "limit"), ("--limit=-1", "limit"), ("--offset=-1", "offset")] {
        assert_failed(&server.cli(&["models", "list", flag]), field);
        assert_failed(&server.cli_remote(&["models", "list", flag]), field);
    }
    let page = cli_json(&server.cli(&["--json", "models", "list", "--limit=100"]));
    assert_eq!(page["total"], 1);
}

/// Runs the CLI offline under a pseudo-terminal (util-linux `script`), so
/// that its stderr is a terminal; returns everything it printed.
fn cli_on_a_terminal(server: &Server, dir: &Path, args: &[&str]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut command = format!("{} --data-dir {}", quote(common::BIN), quote(server.data_dir().to_str().unwrap()));
    for arg in args {
        command.push(' ');
        command.push_str(&quote(arg));
    }
    let out = std::process::Command::new("script")
        .envs(server.store_env())
        .current_dir(dir)
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("util-linux `script` runs commands on a pseudo-terminal");
    assert!(out.status.success(), "{command}: {}", stdout(&out));
    stdout(&out)
}

#[test]
fn cli_shows_progress_bars_only_when_stderr_is_a_terminal() {
    const BAR: char = '\u{2588}'; // indicatif's filled block
    let server = Server::start();
    let id = new_model(&server, "pytorch");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("weights.pt");
    std::fs::write(&file, vec![7u8; 20 << 20]).unwrap();
    let file = file.to_str().unwrap();

    let piped = server.cli(&["versions", "upload", &id, file]);
    assert!(piped.status.success());
    assert!(!String::from_utf8_lossy(&piped.stderr).contains(BAR), "no bar on a pipe");
    let piped = server.cli(&["versions", "download", &id, "1", "-o", work.path().join("piped.pt").to_str().unwrap()]);
    assert!(piped.status.success());
    assert!(!String::from_utf8_lossy(&piped.stderr).contains(BAR), "no bar on a pipe");

    let upload = cli_on_a_terminal(&server, work.path(), &["versions", "upload", &id, file]);
    assert!(upload.contains(BAR), "an upload bar on a terminal: {upload:?}");
    let download = cli_on_a_terminal(&server, work.path(), &["versions", "download", &id, "2"]);
    assert!(download.contains(BAR), "a download bar on a terminal: {download:?}");
    assert_eq!(std::fs::read(work.path().join("model_v2.pt")).unwrap().len(), 20 << 20);
}
