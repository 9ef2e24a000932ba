//! The Octomil SDK's registry workflow beyond seed 004 (issue 10): version
//! lists and lifecycle, deletion, metrics, model PATCH, the signed
//! upload-url/download-url flow, deployment routes that say they are not
//! here, and absolute URLs behind a proxy. Each test speaks HTTP to the
//! real binary as the SDK does; the last runs the SDK itself.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{sha256_hex, Part, Reply, Server};
use serde_json::{json, Value};

const MODELS: &str = "/api/v1/models";
const NO_KEY: &[(&str, &str)] = &[("Authorization", "")];

fn new_model(server: &Server, name: &str) -> String {
    let reply = server.post_json(MODELS, &json!({"name": name, "framework": "pytorch"}));
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()["id"].as_str().unwrap().to_string()
}

fn upload(server: &Server, model: &str, bytes: &[u8]) -> Value {
    let reply = server.post_multipart(
        &format!("{MODELS}/{model}/versions/upload"),
        &[Part::File { name: "file", filename: "model.pt", bytes }],
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

fn form(server: &Server, path: &str, fields: &[(&str, &str)]) -> Reply {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", v.replace(' ', "+"))).collect();
    server.request("POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], Some(body.join("&").into_bytes()))
}

/// The path of an absolute URL the server handed out, checked to point at it.
fn local_path(server: &Server, url: &str) -> String {
    let prefix = format!("http://{}", server.addr);
    url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{url} does not point at {prefix}")).to_string()
}

fn versions_of(reply: &Reply) -> Vec<i64> {
    reply.json()["versions"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect()
}

#[test]
fn versions_are_listed_newest_first_with_their_status_and_latest_skips_deprecated() {
    let server = Server::start();
    let id = new_model(&server, "lifecycle");
    for n in 1..=3 {
        upload(&server, &id, format!("weights {n}").as_bytes());
    }
    let page = server.get(&format!("{MODELS}/{id}/versions?limit=2"));
    assert_eq!((versions_of(&page), page.json()["total"].clone()), (vec![3, 2], json!(3)));
    assert_eq!(versions_of(&server.get(&format!("{MODELS}/{id}/versions?limit=2&offset=2"))), vec![1]);

    let published = server.post_json(&format!("{MODELS}/{id}/versions/2/publish"), &json!({}));
    assert_eq!(published.json()["status"], "published", "{}", published.text());
    let deprecated = server.post_json(&format!("{MODELS}/{id}/versions/3/deprecate"), &json!({}));
    assert_eq!(deprecated.json()["status"], "deprecated");
    assert_eq!(versions_of(&server.get(&format!("{MODELS}/{id}/versions?status=deprecated"))), vec![3]);
    assert_eq!(versions_of(&server.get(&format!("{MODELS}/{id}/versions?status=active"))), vec![1]);

    // Latest is the newest version that is not deprecated, through every door.
    assert_eq!(server.get(&format!("{MODELS}/{id}/versions/latest")).json()["version"], 2);
    let dr = server.get(&format!("/api/v2/customModels/{id}/"));
    assert_eq!(dr.json()["latestVersion"]["versionMajor"], 2, "{}", dr.text());
    // A deprecated version is still downloadable.
    assert_eq!(server.get(&format!("{MODELS}/{id}/versions/3/download")).body, b"weights 3");
    // Deprecating every version leaves no latest: a 404 that says so.
    for n in [1, 2] {
        server.post_json(&format!("{MODELS}/{id}/versions/{n}/deprecate"), &json!({}));
    }
    let none = server.get(&format!("{MODELS}/{id}/versions/latest"));
    assert_eq!(none.status, 404);
    assert!(none.json()["message"].as_str().unwrap().contains("deprecated"), "{}", none.text());
    let bad = server.get(&format!("{MODELS}/{id}/versions?status=retired"));
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn deleting_a_version_reports_what_it_frees_and_its_number_is_never_given_again() {
    let server = Server::start();
    let id = new_model(&server, "deletions");
    upload(&server, &id, b"shared bytes");
    upload(&server, &id, b"only in version two");
    upload(&server, &id, b"shared bytes");

    let gone = server.delete(&format!("{MODELS}/{id}/versions/2"));
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert_eq!(gone.json()["freed_bytes"], b"only in version two".len());
    // Its bytes are still in version 3: deleting version 1 frees nothing.
    assert_eq!(server.delete(&format!("{MODELS}/{id}/versions/1")).json()["freed_bytes"], 0);
    assert_eq!(server.get(&format!("{MODELS}/{id}/versions/2")).status, 404);

    // Even the highest number is not reused after its version is deleted.
    server.delete(&format!("{MODELS}/{id}/versions/3"));
    assert_eq!(upload(&server, &id, b"after the deletions")["version"], 4);
    assert_eq!(versions_of(&server.get(&format!("{MODELS}/{id}/versions"))), vec![4]);
}

#[test]
fn metrics_merge_and_model_fields_patch() {
    let server = Server::start();
    let id = new_model(&server, "patched");
    new_model(&server, "taken");
    upload(&server, &id, b"w");
    let path = format!("{MODELS}/{id}/versions/1/metrics");
    server.send_json("PATCH", &path, &json!({"metrics": {"accuracy": 0.91, "loss": 0.3}}));
    let merged = server.send_json("PATCH", &path, &json!({"metrics": {"loss": null, "f1": 0.8}}));
    assert_eq!(merged.json()["metrics"], json!({"accuracy": 0.91, "f1": 0.8}), "{}", merged.text());
    assert_eq!(server.send_json("PATCH", &path, &json!({"accuracy": 1})).status, 400);

    let patched = server.send_json("PATCH", &format!("{MODELS}/{id}"), &json!({"name": "renamed", "description": "now described", "framework": "onnx"}));
    assert_eq!(patched.status, 400, "onnx is a format, not a framework: {}", patched.text());
    let patched = server.send_json("PATCH", &format!("{MODELS}/{id}"), &json!({"name": "renamed", "description": "now described", "accuracy": 0.9}));
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!((patched.json()["name"].clone(), patched.json()["accuracy"].clone()), (json!("renamed"), json!(0.9)));
    assert_eq!(server.get(&format!("/v1/models/{id}")).json()["description"], "now described");
    let taken = server.send_json("PATCH", &format!("{MODELS}/{id}"), &json!({"name": "taken"}));
    assert_eq!(taken.status, 409, "{}", taken.text());
}

#[test]
fn a_signed_upload_needs_no_key_works_once_and_becomes_a_labelled_version() {
    let server = Server::start();
    let weights: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    // The SDK's push names the model, which does not exist yet.
    let url = form(&server, &format!("{MODELS}/pushed/versions/upload-url"), &[("version", "1.0.0"), ("filename", "model.onnx"), ("content_type", "application/octet-stream")]);
    assert_eq!(url.status, 200, "{}", url.text());
    let (upload_url, key) = (url.json()["upload_url"].as_str().unwrap().to_string(), url.json()["storage_key"].as_str().unwrap().to_string());
    let put_path = local_path(&server, &upload_url);
    let put = server.request("PUT", &put_path, &[("Authorization", ""), ("Content-Type", "application/octet-stream")], Some(weights.clone()));
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["sha256"], sha256_hex(&weights));
    let again = server.request("PUT", &put_path, NO_KEY, Some(b"replaced".to_vec()));
    assert_eq!(again.status, 403, "a signed upload URL must work once: {}", again.text());

    // Another user of the team cannot confirm it.
    assert!(server.cli(&["users", "add", "mallory"]).status.success());
    let other = String::from_utf8(server.cli(&["keys", "create", "--user", "mallory"]).stdout).unwrap().trim().to_string();
    let body = format!("version=1.0.0&storage_key={key}&file_size={}", weights.len());
    let theirs = server.request(
        "POST",
        &format!("{MODELS}/pushed/versions/confirm-upload"),
        &[("Authorization", &format!("Bearer {other}")), ("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.clone().into_bytes()),
    );
    assert_eq!(theirs.status, 404, "{}", theirs.text());
    let wrong_size = form(&server, &format!("{MODELS}/pushed/versions/confirm-upload"), &[("version", "1.0.0"), ("storage_key", &key), ("file_size", "7")]);
    assert_eq!(wrong_size.status, 400, "{}", wrong_size.text());

    let confirmed = form(&server, &format!("{MODELS}/pushed/versions/confirm-upload"), &[("version", "1.0.0"), ("storage_key", &key), ("file_size", &weights.len().to_string())]);
    assert_eq!(confirmed.status, 201, "{}", confirmed.text());
    let version = confirmed.json();
    assert_eq!((version["version"].clone(), version["version_label"].clone()), (json!(1), json!("1.0.0")));
    assert_eq!(version["model_hash"], format!("sha256:{}", sha256_hex(&weights)));
    assert_eq!(version["format"], "onnx");
    // The model was created under the name the SDK used, and the label
    // addresses the version like its number.
    let model = server.get(&format!("{MODELS}/pushed"));
    assert_eq!(model.json()["name"], "pushed");
    assert_eq!(server.get(&format!("{MODELS}/pushed/versions/1.0.0/download")).body, weights);
    let twice = form(&server, &format!("{MODELS}/pushed/versions/confirm-upload"), &[("version", "1.0.0"), ("storage_key", &key)]);
    assert_eq!(twice.status, 409, "{}", twice.text());

    // A label is unique, and a number-like label must be the number it gets.
    for (label, status) in [("1.0.0", 409), ("7", 409), ("2", 201)] {
        let url = form(&server, &format!("{MODELS}/pushed/versions/upload-url"), &[("version", label), ("filename", "model.onnx")]);
        let key = url.json()["storage_key"].as_str().unwrap().to_string();
        server.request("PUT", &local_path(&server, url.json()["upload_url"].as_str().unwrap()), NO_KEY, Some(label.as_bytes().to_vec()));
        let reply = form(&server, &format!("{MODELS}/pushed/versions/confirm-upload"), &[("version", label), ("storage_key", &key)]);
        assert_eq!(reply.status, status, "label {label}: {}", reply.text());
    }
}

#[test]
fn expired_signed_urls_are_403_and_gc_sweeps_unconfirmed_uploads() {
    let server = Server::start_with(&["--signed-url-ttl-secs", "1"]);
    let id = new_model(&server, "expiring");
    upload(&server, &id, b"the original");
    let download = server.get(&format!("{MODELS}/{id}/versions/1/download-url?format=pytorch"));
    let download_path = local_path(&server, download.json()["url"].as_str().unwrap());
    let fetched = server.request("GET", &download_path, NO_KEY, None);
    assert_eq!((fetched.status, fetched.body.as_slice()), (200, &b"the original"[..]));
    assert_eq!(fetched.header("X-Model-Hash"), Some(sha256_hex(b"the original").as_str()));

    let url = form(&server, &format!("{MODELS}/{id}/versions/upload-url"), &[("version", "2.0.0"), ("filename", "model.pt")]);
    let key = url.json()["storage_key"].as_str().unwrap().to_string();
    let put = server.request("PUT", &local_path(&server, url.json()["upload_url"].as_str().unwrap()), NO_KEY, Some(b"never confirmed".to_vec()));
    assert_eq!(put.status, 200, "{}", put.text());
    // Waiting out the one-second lifetime is what is under test here.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(server.request("GET", &download_path, NO_KEY, None).status, 403);
    let late = form(&server, &format!("{MODELS}/{id}/versions/confirm-upload"), &[("version", "2.0.0"), ("storage_key", &key)]);
    assert_eq!(late.status, 403, "{}", late.text());

    let out = server.cli(&["--json", "gc", "--grace-secs", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blobs"], json!([{"sha256": sha256_hex(b"never confirmed"), "size": 15}]), "{report}");
    assert_eq!(server.get(&format!("{MODELS}/{id}/versions/1/download")).body, b"the original");
}

#[test]
fn deployment_features_answer_404_saying_modelreg_does_not_have_them() {
    let server = Server::start();
    let id = new_model(&server, "deploy-me");
    for (method, path) in [("POST", format!("{MODELS}/{id}/optimize")), ("GET", format!("{MODELS}/{id}/rollouts")), ("POST", format!("{MODELS}/{id}/rollouts/r1/start")), ("GET", format!("{MODELS}/{id}/compatibility?devices=pixel_8"))] {
        let reply = server.request(method, &path, &[("Content-Type", "application/json")], Some(b"{}".to_vec()));
        assert_eq!(reply.status, 404, "{path}");
        // Not the cold-start body the SDK retries.
        assert_ne!(reply.json(), json!({"detail": "Not Found"}));
        assert!(reply.json()["message"].as_str().unwrap().contains("deployment feature"), "{}", reply.text());
    }
}

#[test]
fn absolute_urls_follow_a_trusted_proxy_and_ignore_anyone_else() {
    let forwarded = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "models.example.com"), ("X-Forwarded-For", "203.0.113.9")];
    let ask = |server: &Server| {
        let id = new_model(server, "proxied");
        upload(server, &id, b"w");
        let reply = server.request("GET", &format!("{MODELS}/{id}/versions/1/download-url"), &forwarded, None);
        let url = reply.json()["url"].as_str().unwrap().to_string();
        let page = server.request("GET", "/api/v2/customModels/?limit=1", &forwarded, None);
        (url, page.json()["next"].as_str().map(str::to_string))
    };
    let trusting = Server::start_with(&["--trusted-proxy", "127.0.0.1/32"]);
    new_model(&trusting, "another");
    let (url, next) = ask(&trusting);
    assert!(url.starts_with("https://models.example.com/api/v1/downloads/"), "{url}");
    assert!(next.unwrap().starts_with("https://models.example.com/api/v2/customModels/"));
    trusting.wait_for_log(" 203.0.113.9 ", "the access log names the client behind the proxy");

    let stranger = Server::start();
    let (url, _) = ask(&stranger);
    assert!(url.starts_with(&format!("http://{}/", stranger.addr)), "forwarded headers from an untrusted peer were used: {url}");

    let public = Server::start_with(&["--public-url", "https://registry.example.org/"]);
    let (url, _) = ask(&public);
    assert!(url.starts_with("https://registry.example.org/api/v1/downloads/"), "{url}");
}

/// `OctomilClient.push` then `pull` of a 200 MB file through the real SDK:
/// byte-identical, with the server's memory flat.
#[test]
fn the_octomil_sdk_pushes_and_pulls_200_mb_byte_identical_with_flat_memory() {
    let Some(python) = common::client_python_or_skip() else { return };
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("big.onnx");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..200 {
        for b in chunk.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/octomil_push_pull.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&source)
        .arg(work.path().join("pulled"))
        .env("MODELREG_URL", format!("http://{}", server.addr))
        .env("MODELREG_TOKEN", &server.key)
        .env("OCTOMIL_CACHE_DIR", work.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK script failed\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log.lock().unwrap()
    );
    let pulled = work.path().join("pulled/model.onnx");
    let digest = |p: &Path| common::hash_stream(std::fs::File::open(p).unwrap());
    assert_eq!(digest(&pulled), digest(&source), "pull returned other bytes");
    let peak = server.peak_rss_kib();
    println!("server peak RSS after a 200 MB push and pull: {peak} KiB");
    assert!(peak < 64 * 1024, "server peak RSS {peak} KiB moving 200 MB each way");
}
