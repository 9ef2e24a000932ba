//! Weight formats of today (issue 24): safetensors and GGUF files, made by
//! hand from their published formats (`common::weights`), are recognised
//! through every door (Octomil's upload and push, DataRobot's versions, the
//! CLI), their facts shown by each (and by the web UI's API; tests/ui.rs
//! checks the page); a file that claims a format and is not one is stored
//! all the same, with a note saying why. Each test speaks HTTP to the real
//! binary.

mod common;

use common::datarobot::{add_version, python_environment, API};
use common::weights::{gguf, gguf_facts, safetensors, safetensors_facts, GGUF_SUMMARY};
use common::{multipart_body, ok, Part, Reply, Server};
use serde_json::{json, Value};

const MODELS: &str = "/api/v1/models";

fn new_model(s: &Server, name: &str) -> String {
    ok(&s.post_json(MODELS, &json!({"name": name})), 201)["id"].as_str().unwrap().to_string()
}

fn upload(s: &Server, model: &str, filename: &str, bytes: &[u8], format: Option<&str>) -> Value {
    let mut parts = vec![Part::File { name: "file", filename, bytes }];
    parts.extend(format.map(|f| Part::Field("format", f)));
    ok(&s.post_multipart(&format!("{MODELS}/{model}/versions/upload"), &parts), 201)
}

fn form(s: &Server, path: &str, fields: &[(&str, &str)]) -> Value {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let reply = s.request("POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], Some(body.join("&").into_bytes()));
    ok(&reply, if path.ends_with("confirm-upload") { 201 } else { 200 })
}

/// The Octomil SDK's `push`: upload-url, PUT, confirm-upload.
fn push(s: &Server, model: &str, filename: &str, bytes: &[u8]) -> Value {
    let url = form(s, &format!("{MODELS}/{model}/versions/upload-url"), &[("version", "1.0.0"), ("filename", filename)]);
    let put_path = url["upload_url"].as_str().unwrap().strip_prefix(&format!("http://{}", s.addr)).unwrap().to_string();
    ok(&s.request("PUT", &put_path, &[("Authorization", "")], Some(bytes.to_vec())), 200);
    let key = url["storage_key"].as_str().unwrap();
    form(s, &format!("{MODELS}/{model}/versions/confirm-upload"), &[("version", "1.0.0"), ("storage_key", key), ("file_size", &bytes.len().to_string())])
}

fn download(s: &Server, model: &str, version: i64, format: &str) -> Reply {
    s.get(&format!("{MODELS}/{model}/versions/{version}/download?format={format}"))
}

#[test]
fn octomil_uploads_show_their_facts_and_imply_a_framework() {
    let s = Server::start();
    let id = new_model(&s, "weights-of-today");
    let st = safetensors();
    let uploaded = upload(&s, &id, "model.safetensors", &st, None);
    assert_eq!(uploaded["format"], "safetensors", "inferred from the extension");
    assert_eq!(uploaded["weight_facts"], json!({"model.safetensors": safetensors_facts()}));

    let model = ok(&s.get(&format!("{MODELS}/{id}")), 200);
    assert_eq!(model["framework"], "pytorch", "a model without a framework shows the one its weights imply: {model}");
    assert_eq!(model["versions"][0]["weight_facts"], json!({"model.safetensors": safetensors_facts()}));
    let got = download(&s, &id, 1, "safetensors");
    assert_eq!((got.status, got.body == st), (200, true), "its own format serves the original: {}", got.text());
    assert_eq!(got.header("Content-Disposition"), Some("attachment; filename=\"model_v1.safetensors\""));

    // The SDK's push of a GGUF file under a name no model has yet.
    let file = gguf();
    let pushed = push(&s, "pushed-llm", "tiny.gguf", &file);
    assert_eq!((&pushed["format"], &pushed["weight_facts"]), (&json!("gguf"), &json!({"tiny.gguf": gguf_facts()})));
    let model = ok(&s.get(&format!("{MODELS}/pushed-llm")), 200);
    assert_eq!(model["framework"], "pytorch", "the model the push made: {model}");
    let latest = ok(&s.get(&format!("{MODELS}/pushed-llm/versions/latest")), 200);
    assert_eq!(latest["weight_facts"]["tiny.gguf"], gguf_facts());
    assert_eq!(download(&s, "pushed-llm", 1, "gguf").body, file);

    // Neither converts into ONNX, and both say why rather than failing.
    let onnx = download(&s, "pushed-llm", 1, "onnx");
    assert_eq!((onnx.status, onnx.json()["error"].as_str()), (404, Some("not_found")), "{}", onnx.text());
    assert!(onnx.json()["message"].as_str().unwrap().contains("GGUF is llama.cpp's format"), "{}", onnx.text());
    let asked = ok(&s.request("POST", &format!("{MODELS}/{id}/versions/1/formats/onnx"), &[], None), 400);
    assert!(asked["message"].as_str().unwrap().contains("cannot be converted into onnx: a safetensors file holds tensors without"), "{asked}");
}

#[test]
fn a_file_that_claims_a_format_and_is_not_one_is_stored_with_a_note() {
    let s = Server::start();
    let id = new_model(&s, "impostors");

    // A header length of 9e18: read as a length, never allocated.
    let mut lying = 9_000_000_000_000_000_000u64.to_le_bytes().to_vec();
    lying.extend(b"{}");
    let stored = upload(&s, &id, "weights.safetensors", &lying, None);
    assert_eq!(
        stored["weight_facts"]["weights.safetensors"],
        json!({"format": "safetensors",
               "error": "not a readable safetensors file: header length 9000000000000000000 exceeds the 2 bytes that follow it in the file"})
    );
    assert_eq!(download(&s, &id, 1, "original").body, lying, "stored as it came");

    // Declared GGUF, but a zip.
    let zip = b"PK\x03\x04 and the rest of a zip".to_vec();
    let stored = upload(&s, &id, "model.bin", &zip, Some("gguf"));
    assert_eq!(stored["format"], "gguf");
    let note = stored["weight_facts"]["model.bin"]["error"].as_str().unwrap();
    assert_eq!(note, "not a readable gguf file: the file does not start with GGUF's magic bytes \"GGUF\" but with \"PK\\x03\\x04\"");

    // A GGUF file cut short in its tensors' data.
    let whole = gguf();
    let stored = upload(&s, &id, "cut.gguf", &whole[..whole.len() - 300], None);
    let note = stored["weight_facts"]["cut.gguf"]["error"].as_str().unwrap();
    assert!(note.contains("tensor \"output.weight\" ends at byte") && note.contains("past the end of the file"), "{note}");

    // Every version is there, each with its note.
    let model = ok(&s.get(&format!("{MODELS}/{id}")), 200);
    let notes: Vec<bool> = model["versions"].as_array().unwrap().iter().map(|v| v["weight_facts"].to_string().contains("\"error\"")).collect();
    assert_eq!(notes, [true, true, true], "{model}");
}

fn patch_version(s: &Server, model: &str, files: &[(&str, &[u8])]) -> Value {
    let mut parts = Vec::new();
    for (path, bytes) in files {
        parts.push(Part::File { name: "file", filename: path, bytes });
        parts.push(Part::Field("filePath", path));
    }
    let (content_type, body) = multipart_body(&parts);
    ok(&s.request("PATCH", &format!("{API}/customModels/{model}/versions/"), &[("Content-Type", &content_type)], Some(body)), 201)
}

/// The version's items by path.
fn items(version: &Value) -> serde_json::Map<String, Value> {
    version["items"].as_array().unwrap().iter().map(|i| (i["filePath"].as_str().unwrap().to_string(), i.clone())).collect()
}

#[test]
fn datarobot_versions_and_the_web_ui_show_each_weights_files_facts() {
    let s = Server::start();
    let env = python_environment(&s);
    let created = ok(&s.post_json(&format!("{API}/customModels/"), &json!({"name": "llm", "targetType": "Anomaly"})), 201);
    let id = created["id"].as_str().unwrap().to_string();
    let files = [
        ("weights/model.safetensors".to_string(), safetensors()),
        ("model.gguf".to_string(), gguf()),
        ("custom.py".to_string(), b"def load_model(path):\n    return None\n".to_vec()),
    ];
    let first = add_version(&s, &id, &env, &files, &[]);
    let version = ok(&s.get(&format!("{API}/customModels/{id}/versions/{first}/")), 200);
    let by_path = items(&version);
    assert_eq!(by_path["weights/model.safetensors"]["weightFacts"], safetensors_facts());
    assert_eq!(by_path["model.gguf"]["weightFacts"], gguf_facts());
    assert!(by_path["custom.py"].get("weightFacts").is_none(), "only weights files have facts: {version}");

    // A version derived from it keeps the facts of the files it keeps.
    let derived = patch_version(&s, &id, &[("notes.txt", b"derived")]);
    let by_path = items(&derived);
    assert_eq!((by_path.len(), &by_path["model.gguf"]["weightFacts"]), (4, &gguf_facts()));
    assert_eq!(by_path["weights/model.safetensors"]["weightFacts"], safetensors_facts());

    // The same facts through the Octomil door and the web UI's API.
    let octomil = ok(&s.get(&format!("{MODELS}/{id}")), 200);
    let newest = octomil["versions"].as_array().unwrap().last().unwrap();
    assert_eq!(newest["weight_facts"], json!({"model.gguf": gguf_facts(), "weights/model.safetensors": safetensors_facts()}));
    let ui = ok(&s.get(&format!("/ui/api/models/{id}")), 200);
    let ui_files = ui["versions"][0]["files"].as_array().unwrap();
    let gguf_file = ui_files.iter().find(|f| f["path"] == "model.gguf").unwrap();
    assert_eq!((&gguf_file["weightFacts"], gguf_file["weightFactsSummary"].as_str()), (&gguf_facts(), Some(GGUF_SUMMARY)));
    let script = ui_files.iter().find(|f| f["path"] == "custom.py").unwrap();
    assert_eq!((&script["weightFacts"], &script["weightFactsSummary"]), (&Value::Null, &Value::Null));
}

#[test]
fn the_cli_uploads_and_lists_facts_offline_and_over_http() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::write(&path, gguf()).unwrap();
    let run = |remote: bool, args: &[&str]| {
        let out = if remote { s.cli_remote(args) } else { s.cli(args) };
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(false, &["models", "create", "--name", "cli-llm"]);
    run(false, &["versions", "upload", "cli-llm", path.to_str().unwrap()]);
    run(true, &["versions", "upload", "cli-llm", path.to_str().unwrap()]);
    for remote in [false, true] {
        // `versions list`: a row per weights file under the versions' table.
        let listed = run(remote, &["versions", "list", "cli-llm"]);
        let rows: Vec<&str> = listed.lines().filter(|l| l.contains("tiny.gguf") && l.trim_end().ends_with(GGUF_SUMMARY)).collect();
        assert_eq!(rows.len(), 2, "remote: {remote}\n{listed}");
        let json: Value = serde_json::from_str(&run(remote, &["--json", "versions", "list", "cli-llm"])).unwrap();
        assert_eq!(json[1]["weight_facts"]["tiny.gguf"], gguf_facts(), "remote: {remote}");
        // `versions show` (modelreg's own version view): a WEIGHTS column of the files' table.
        let shown = run(remote, &["versions", "show", "cli-llm", "2"]);
        assert!(shown.lines().any(|l| l.starts_with("tiny.gguf") && l.trim_end().ends_with(GGUF_SUMMARY)), "remote: {remote}\n{shown}");
        let json: Value = serde_json::from_str(&run(remote, &["--json", "versions", "show", "cli-llm", "2"])).unwrap();
        assert_eq!(json["files"][0]["weight_facts"], gguf_facts(), "remote: {remote}");
    }
}
