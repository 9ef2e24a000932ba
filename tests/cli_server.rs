//! The CLI's command families run the same way offline (on the data
//! directory) and against a server (`--server`): each test runs one sequence
//! both ways, on two fresh servers, and compares what was printed. Ids,
//! timestamps and the team and user ids differ between the two registries;
//! everything else must agree.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

/// How a sequence runs its commands: offline or with `--server`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Offline,
    Remote,
}

fn run(server: &Server, mode: Mode, args: &[&str]) -> Output {
    match mode {
        Mode::Offline => server.cli(args),
        Mode::Remote => server.cli_remote(args),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `--json ARGS`, asserts success and parses the output.
fn json_ok(server: &Server, mode: Mode, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(server, mode, &all);
    assert!(out.status.success(), "{mode:?} {args:?}: exit {:?}; stderr: {}", out.status, stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{mode:?} {args:?}: not JSON ({e}): {}", stdout(&out)))
}

/// Runs ARGS, asserts failure, and returns stderr.
fn fails(server: &Server, mode: Mode, args: &[&str]) -> String {
    let out = run(server, mode, args);
    assert!(!out.status.success(), "{mode:?} {args:?} should fail; stdout: {}", stdout(&out));
    stderr(&out)
}

/// Keys whose values differ between two registries by nature.
const VOLATILE: [&str; 18] = [
    "customModelId",
    "id", "machineId", "teamId", "userId", "dtCreated", "dtModified", "dtStarted", "dtFinished", "nextPage", "created",
    "updated", "environmentId", "workspaceId", "baseEnvironmentId", "baseEnvironmentVersionId", "dockerContext", "statusId",
];

/// `value` with the volatile keys' values replaced by a placeholder
/// (null stays null, so a missing timestamp still shows).
fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if VOLATILE.contains(&k.as_str()) && !v.is_null() { json!("<volatile>") } else { normalize(v) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// What one sequence printed, step by step, normalised.
#[derive(Default)]
struct Transcript {
    steps: Vec<(String, Value)>,
}

impl Transcript {
    fn record(&mut self, step: &str, value: &Value) {
        self.steps.push((step.to_string(), normalize(value)));
    }

    fn note(&mut self, step: &str, text: String) {
        self.steps.push((step.to_string(), Value::String(text)));
    }
}

fn assert_same(offline: &Transcript, remote: &Transcript) {
    assert_eq!(offline.steps.len(), remote.steps.len());
    for ((step, a), (step_b, b)) in offline.steps.iter().zip(&remote.steps) {
        assert_eq!(step, step_b);
        assert_eq!(a, b, "step {step:?} differs:\noffline: {a:#}\nremote:  {b:#}");
    }
}

/// `text` with every id in `ids` replaced, for comparing messages and
/// human output.
fn without_ids(text: &str, ids: &[&str]) -> String {
    ids.iter().fold(text.to_string(), |t, id| t.replace(id, "<id>"))
}

/// Human output with ids and timestamps replaced: a table, compared
/// between two registries that made the same things at other times.
fn human(text: &str, ids: &[&str]) -> String {
    without_times(&without_ids(text, ids))
}

/// `text` with every RFC 3339 UTC timestamp (`2025-01-31T09:00:00.123Z`)
/// replaced by `<time>`.
fn without_times(text: &str) -> String {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() >= i + SHAPE.len()
            && SHAPE.iter().zip(&bytes[i..]).all(|(shape, b)| if *shape == b'd' { b.is_ascii_digit() } else { shape == b });
        if !fits {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let mut end = i + SHAPE.len();
        if bytes.get(end) == Some(&b'.') {
            end += 1;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
        }
        if bytes.get(end) == Some(&b'Z') {
            end += 1;
        }
        out.push_str("<time>");
        i = end;
    }
    out
}

#[test]
fn timestamps_are_blanked_in_human_output() {
    assert_eq!(without_times("a 2025-01-31T09:00:00.123Z b 2025-01-31T09:00:00Z é"), "a <time> b <time> é");
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

// ---------------------------------------------------------------------------
// Machines and templates

fn wait_state(server: &Server, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = server.get(&format!("/v1/machines/{id}")).json();
        if m["state"] == state {
            return;
        }
        assert!(Instant::now() < deadline, "machine {id} stuck in {} (waiting for {state})", m["state"]);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A state change: offline it has completed; with --server the answer shows
/// the transitional state, and the sequence waits for the end state. The
/// state is then taken out of the comparison.
fn change(server: &Server, mode: Mode, args: &[&str], transitional: &str, end: &str) -> Value {
    let mut body = json_ok(server, mode, args);
    let id = str_of(&body["data"], "id").to_string();
    match mode {
        Mode::Offline => assert_eq!(body["data"]["state"], end, "{args:?}"),
        Mode::Remote => {
            assert_eq!(body["data"]["state"], transitional, "{args:?}");
            wait_state(server, &id, end);
        }
    }
    assert_eq!(body["event"]["machineId"], json!(id));
    body["data"]["state"] = json!("<changed>");
    body
}

fn machines_sequence(server: &Server, mode: Mode) -> Transcript {
    let mut t = Transcript::default();
    let created = change(
        server,
        mode,
        &["machines", "create", "--name", "box", "--machine-type", "A4000", "--template", "t0nspur5", "--auto-shutdown-timeout", "6"],
        "provisioning",
        "ready",
    );
    t.record("create", &created);
    let id = str_of(&created["data"], "id").to_string();
    let other = change(server, mode, &["machines", "create", "--name", "other", "--machine-type", "C5", "--template", "tz0ireoj"], "provisioning", "ready");
    let other_id = str_of(&other["data"], "id").to_string();
    let ids = [id.as_str(), other_id.as_str()];

    t.record("list", &json_ok(server, mode, &["machines", "list"]));
    let first = json_ok(server, mode, &["machines", "list", "--limit", "1"]);
    assert_eq!(first["hasMore"], true);
    t.record("list --limit 1", &first);
    let second = json_ok(server, mode, &["machines", "list", "--limit", "1", "--after", str_of(&first, "nextPage")]);
    assert_eq!(second["items"][0]["id"], json!(id));
    t.record("list --after", &second);
    let listed = human(&stdout(&run(server, mode, &["machines", "list"])), &ids);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("NAME ") && lines[1].starts_with("other ") && lines[2].starts_with("box "), "a table, newest first:\n{listed}");
    t.note("list (human)", listed);
    t.note("list --limit 0", fails(server, mode, &["machines", "list", "--limit", "0"]));

    t.record("show", &json_ok(server, mode, &["machines", "show", &id]));
    t.record("update", &json_ok(server, mode, &["machines", "update", &id, "--name", "renamed", "--no-auto-shutdown"]));
    t.record("update timeout", &json_ok(server, mode, &["machines", "update", &id, "--auto-shutdown-timeout", "3"]));
    t.record("stop", &change(server, mode, &["machines", "stop", &id], "stopping", "off"));
    t.note("stop again", without_ids(&fails(server, mode, &["machines", "stop", &id]), &ids));
    t.record("start", &change(server, mode, &["machines", "start", &id], "starting", "ready"));
    t.record("restart", &change(server, mode, &["machines", "restart", &id], "restarting", "ready"));
    let shown = json_ok(server, mode, &["machines", "show", &id]);
    assert_eq!(shown["events"].as_array().unwrap().len(), 4, "{shown}");
    t.record("show after changes", &shown);
    let shown = human(&stdout(&run(server, mode, &["machines", "show", &id])), &ids);
    assert!(shown.contains("\nEVENT ") && shown.contains("\nrestart "), "the machine, then its events:\n{shown}");
    t.note("show (human)", shown);

    let template = json_ok(server, mode, &["templates", "create", "--name", "golden", "--machine", &id]);
    t.record("templates create --machine", &template);
    let tid = str_of(&template, "id").to_string();
    t.record("templates create --from", &json_ok(server, mode, &["templates", "create", "--name", "copy", "--from", &tid, "--size", "80"]));
    t.record("templates list", &json_ok(server, mode, &["templates", "list"]));
    t.record("templates list --public --limit 2", &json_ok(server, mode, &["templates", "list", "--public", "--limit", "2"]));
    t.record("templates show", &json_ok(server, mode, &["templates", "show", "tz0ireoj"]));
    t.note("templates show (human)", stdout(&run(server, mode, &["templates", "show", "tz0ireoj"])));
    t.note("templates show unknown", fails(server, mode, &["templates", "show", "nope"]));
    t.note("templates create from unknown machine", fails(server, mode, &["templates", "create", "--name", "x", "--machine", "nope"]));

    t.record("delete", &json_ok(server, mode, &["machines", "delete", &other_id]));
    t.note("show deleted", without_ids(&fails(server, mode, &["machines", "show", &other_id]), &ids));
    t.note("create with an unknown template", fails(server, mode, &["machines", "create", "--name", "x", "--machine-type", "A4000", "--template", "nope"]));
    t.note("create in an unknown region", fails(server, mode, &["machines", "create", "--name", "x", "--machine-type", "A4000", "--template", "t0nspur5", "--region", "Mars"]));
    t
}

#[test]
fn machines_and_templates_agree_offline_and_with_server() {
    let offline_server = Server::start();
    let remote_server = Server::start();
    let offline = machines_sequence(&offline_server, Mode::Offline);
    let remote = machines_sequence(&remote_server, Mode::Remote);
    assert_same(&offline, &remote);
    // The remote sequence really went through the server's routes.
    let log = remote_server.log.lock().unwrap().clone();
    for route in ["POST /v1/machines", "PATCH /v1/machines/", "PUT /v1/machines/", "DELETE /v1/machines/", "GET /v1/os-templates", "POST /v1/templates"] {
        assert!(log.contains(route), "the server never saw {route}: {log}");
    }
}

#[test]
fn machines_errors_carry_the_servers_message() {
    let server = Server::start();
    // Unknown id: the message the route answers, offline and remote alike.
    let answer = server.get("/v1/machines/nope");
    assert_eq!(answer.status, 404);
    let message = answer.json()["message"].as_str().unwrap().to_string();
    for mode in [Mode::Offline, Mode::Remote] {
        for args in [&["machines", "show", "nope"][..], &["machines", "stop", "nope"], &["machines", "delete", "nope"]] {
            assert_eq!(fails(&server, mode, args).trim(), format!("error: {message}"), "{mode:?} {args:?}");
        }
    }
    // A wrong token: the server's 401 message.
    let answer = server.request("GET", "/v1/machines", &[("Authorization", "Bearer wrong")], None);
    assert_eq!(answer.status, 401);
    let message = answer.json()["message"].as_str().unwrap().to_string();
    let url = format!("http://{}", server.addr);
    for args in [&["machines", "list"][..], &["templates", "list", "--public"], &["machines", "create", "--name", "x", "--machine-type", "C5", "--template", "tz0ireoj"]] {
        let mut all = vec!["--server", url.as_str(), "--token", "wrong"];
        all.extend_from_slice(args);
        let out = server.cli(&all);
        assert!(!out.status.success());
        assert_eq!(stderr(&out).trim(), format!("error: {message}"), "{args:?}");
    }
    // Nothing was created by the refused create.
    assert_eq!(server.get("/v1/machines").json()["items"], json!([]));
}

// ---------------------------------------------------------------------------
// DataRobot custom models and environments

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut cursor);
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }
    cursor.into_inner()
}

fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (path, bytes) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(root).unwrap().to_str().unwrap().to_string(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

fn datarobot_sequence(server: &Server, mode: Mode) -> Transcript {
    let mut t = Transcript::default();
    let work = tempfile::tempdir().unwrap();
    let w = |p: &str| work.path().join(p).to_str().unwrap().to_string();
    std::fs::write(w("ctx.zip"), zip_of(&[("Dockerfile", b"FROM python:3.11\n"), ("app/run.sh", b"#!/bin/sh\n")])).unwrap();
    std::fs::write(w("nodocker.zip"), zip_of(&[("README", b"no Dockerfile here\n")])).unwrap();
    std::fs::write(w("plain.txt"), b"not an archive").unwrap();
    write_tree(&work.path().join("v1"), &[("custom.py", b"print(1)\n"), ("src/util.py", b"x = 2\n"), ("requirements.txt", b"numpy>=1.20\n")]);
    write_tree(&work.path().join("v2"), &[("src/util.py", b"x = 3\n"), ("extra/data.bin", &[0u8, 1, 2, 255])]);
    write_tree(&work.path().join("badreq"), &[("requirements.txt", b"numpy ~= 1.2\n")]);
    // A folder with many files goes up as many file/filePath pairs.
    let many: Vec<(String, Vec<u8>)> = (0..60).map(|i| (format!("many/f{i:03}.txt"), format!("file {i}\n").into_bytes())).collect();
    write_tree(&work.path().join("v3"), &many.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect::<Vec<_>>());

    // Environments.
    let env = json_ok(server, mode, &["environments", "create", "--name", "py", "--description", "python env", "--programming-language", "python"]);
    t.record("environments create", &env);
    let env_id = str_of(&env, "id").to_string();
    t.note("environments create bad language", fails(server, mode, &["environments", "create", "--name", "x", "--programming-language", "cobol"]));
    let version = json_ok(server, mode, &["environments", "add-version", &env_id, &w("ctx.zip"), "--label", "one", "--description", "first"]);
    assert_eq!(version["buildStatus"], "success");
    t.record("add-version", &version);
    let vid = str_of(&version, "id").to_string();
    t.record("build-log", &json_ok(server, mode, &["environments", "build-log", &env_id, &vid]));
    t.note("build-log (human)", stdout(&run(server, mode, &["environments", "build-log", &env_id, &vid])));
    let failed = run(server, mode, &["--json", "environments", "add-version", &env_id, &w("nodocker.zip"), "--label", "two"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let failed: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(failed["buildStatus"], "failed");
    t.record("add-version without a Dockerfile", &failed);
    t.record("build-log of the failed build", &json_ok(server, mode, &["environments", "build-log", &env_id, str_of(&failed, "id")]));
    t.note("add-version of a non-archive", fails(server, mode, &["environments", "add-version", &env_id, &w("plain.txt")]));
    t.record("environments show", &json_ok(server, mode, &["environments", "show", &env_id]));
    t.record("environments list", &json_ok(server, mode, &["environments", "list"]));
    t.note("environments list (human)", human(&stdout(&run(server, mode, &["environments", "list"])), &[&env_id]));

    // Custom models and versions.
    let model = json_ok(server, mode, &["custom-models", "create", "--name", "reg", "--target-type", "Regression", "--target-name", "y", "--language", "python"]);
    t.record("custom-models create", &model);
    let model_id = str_of(&model, "id").to_string();
    t.note("custom-models create invalid", fails(server, mode, &["custom-models", "create", "--name", "b", "--target-type", "Binary"]));
    let binary = json_ok(server, mode, &["custom-models", "create", "--name", "bin", "--target-type", "Binary", "--target-name", "t", "--description", "d"]);
    t.record("custom-models create binary", &binary);
    let v1 = json_ok(server, mode, &["custom-models", "versions", "create", &model_id, &w("v1"), "--base-environment-id", &env_id]);
    assert_eq!(v1["label"], "v1.0");
    t.record("versions create", &v1);
    let v2 = json_ok(server, mode, &["custom-models", "versions", "create", &model_id, &w("v2"), "--from-previous", "--minor"]);
    assert_eq!(v2["label"], "v1.1");
    assert_eq!(v2["items"].as_array().unwrap().len(), 4, "{v2}");
    t.record("versions create --from-previous --minor", &v2);
    let v3 = json_ok(server, mode, &["custom-models", "versions", "create", &model_id, &w("v3"), "--base-environment-version-id", &vid]);
    assert_eq!(v3["items"].as_array().unwrap().len(), 60);
    t.record("versions create (60 files)", &v3);
    t.note(
        "versions create with a bad requirements.txt",
        fails(server, mode, &["custom-models", "versions", "create", &model_id, &w("badreq"), "--base-environment-id", &env_id]),
    );
    t.note(
        "versions create without an environment",
        fails(server, mode, &["custom-models", "versions", "create", &model_id, &w("v1")]),
    );
    t.record("versions list", &json_ok(server, mode, &["custom-models", "versions", "list", &model_id]));
    t.note(
        "versions list (human)",
        human(&stdout(&run(server, mode, &["custom-models", "versions", "list", &model_id])), &[str_of(&v1, "id"), str_of(&v2, "id"), str_of(&v3, "id")]),
    );
    t.record("custom-models show", &json_ok(server, mode, &["custom-models", "show", &model_id]));
    t.record("custom-models list", &json_ok(server, mode, &["custom-models", "list"]));
    t.record("custom-models list --limit 1 --offset 1", &json_ok(server, mode, &["custom-models", "list", "--limit", "1", "--offset", "1"]));

    // Download: the files come back byte for byte.
    let out = work.path().join("out");
    let report = json_ok(server, mode, &["custom-models", "versions", "download", &model_id, str_of(&v2, "id"), "-o", out.to_str().unwrap()]);
    assert_eq!(report["files"].as_array().unwrap().len(), 4);
    let mut expected = vec![
        ("custom.py".to_string(), b"print(1)\n".to_vec()),
        ("extra/data.bin".to_string(), vec![0u8, 1, 2, 255]),
        ("requirements.txt".to_string(), b"numpy>=1.20\n".to_vec()),
        ("src/util.py".to_string(), b"x = 3\n".to_vec()),
    ];
    expected.sort();
    assert_eq!(read_tree(&out), expected);
    t.record("versions download", &json!({"files": report["files"]}));
    let out3 = work.path().join("out3");
    json_ok(server, mode, &["custom-models", "versions", "download", &model_id, str_of(&v3, "id"), "-o", out3.to_str().unwrap()]);
    assert_eq!(read_tree(&out3), many);
    t.note("versions download unknown", fails(server, mode, &["custom-models", "versions", "download", &model_id, "nope", "-o", out.to_str().unwrap()]));
    // `-o -`: the version's zip on stdout, the same bytes offline (made here) and from the server; the summary on stderr.
    let piped = run(server, mode, &["--json", "custom-models", "versions", "download", &model_id, "v1.1", "-o", "-"]);
    assert!(piped.status.success(), "{mode:?}: {}", stderr(&piped));
    let summary: Value = serde_json::from_str(&stderr(&piped)).unwrap_or_else(|e| panic!("{mode:?}: {e}: {}", stderr(&piped)));
    assert_eq!((summary["path"].as_str(), summary["size"].as_u64()), (Some("-"), Some(piped.stdout.len() as u64)), "{summary}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&piped.stdout)).unwrap();
    let unzipped: Vec<(String, Vec<u8>)> = (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().to_string(), bytes)
        })
        .collect();
    assert_eq!(unzipped, expected, "{mode:?}");
    t.record("versions download -o -", &json!({"sha256": summary["sha256"], "size": summary["size"]}));

    // Deletes, and what is left.
    t.record("custom-models delete", &json_ok(server, mode, &["custom-models", "delete", str_of(&binary, "id")]));
    t.note("custom-models show deleted", without_ids(&fails(server, mode, &["custom-models", "show", str_of(&binary, "id")]), &[str_of(&binary, "id")]));
    t.record("environments delete", &json_ok(server, mode, &["environments", "delete", &env_id]));
    t.record("environments list after delete", &json_ok(server, mode, &["environments", "list"]));
    t
}

#[test]
fn custom_models_and_environments_agree_offline_and_with_server() {
    let offline_server = Server::start();
    let remote_server = Server::start();
    let offline = datarobot_sequence(&offline_server, Mode::Offline);
    let remote = datarobot_sequence(&remote_server, Mode::Remote);
    assert_same(&offline, &remote);
    let log = remote_server.log.lock().unwrap().clone();
    for route in ["POST /api/v2/customModels/", "PATCH /api/v2/customModels/", "POST /api/v2/executionEnvironments/", "/download/", "/buildLog/"] {
        assert!(log.contains(route), "the server never saw {route}: {log}");
    }
}

#[test]
fn datarobot_errors_carry_the_servers_message() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let answer = server.get("/api/v2/customModels/nope/");
    assert_eq!(answer.status, 404);
    let model_message = answer.json()["message"].as_str().unwrap().to_string();
    let answer = server.get("/api/v2/executionEnvironments/nope/");
    assert_eq!(answer.status, 404);
    let env_message = answer.json()["message"].as_str().unwrap().to_string();
    let dir = work.path().to_str().unwrap();
    for mode in [Mode::Offline, Mode::Remote] {
        for (args, message) in [
            (&["custom-models", "show", "nope"][..], &model_message),
            (&["custom-models", "delete", "nope"], &model_message),
            (&["custom-models", "versions", "list", "nope"], &model_message),
            (&["custom-models", "versions", "create", "nope", dir, "--base-environment-id", "e"], &model_message),
            (&["custom-models", "versions", "download", "nope", "v", "-o", dir], &model_message),
            (&["environments", "show", "nope"], &env_message),
            (&["environments", "delete", "nope"], &env_message),
            (&["environments", "build-log", "nope", "v"], &env_message),
        ] {
            assert_eq!(fails(&server, mode, args).trim(), format!("error: {message}"), "{mode:?} {args:?}");
        }
    }
    let answer = server.request("GET", "/api/v2/customModels/", &[("Authorization", "Bearer wrong")], None);
    assert_eq!(answer.status, 401);
    let message = answer.json()["message"].as_str().unwrap().to_string();
    let url = format!("http://{}", server.addr);
    for args in [&["custom-models", "list"][..], &["environments", "list"], &["environments", "create", "--name", "x"]] {
        let mut all = vec!["--server", url.as_str(), "--token", "wrong"];
        all.extend_from_slice(args);
        let out = server.cli(&all);
        assert!(!out.status.success());
        assert_eq!(stderr(&out).trim(), format!("error: {message}"), "{args:?}");
    }
    // MODELREG_TOKEN is read as --token is.
    let out = std::process::Command::new(common::BIN)
        .args(["--data-dir", server.data_dir().to_str().unwrap(), "--server", &url, "--json", "environments", "list"])
        .env("MODELREG_TOKEN", "wrong")
        .output()
        .unwrap();
    // With --json the error is JSON too.
    let error: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(error, json!({"error": "unauthorized", "message": message}));
}

/// A model id for servers that answer whatever is asked.
const MODEL_ID: &str = "0190f5c2-0000-7000-8000-000000000000";
/// A version id, so that the CLI asks the fake server for the zip and nothing else.
const VERSION_ID: &str = "0190f5c2-0000-7000-8000-000000000001";

/// A one-shot HTTP server that answers any request with `body` as a zip.
fn serve_once(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_downloaded_zip_cannot_write_outside_the_output_folder() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", zip_of(&[("ok.txt", b"fine"), ("../escaped.txt", b"evil")])),
        ("nested dotdot", zip_of(&[("ok.txt", b"fine"), ("a/../../escaped.txt", b"evil")])),
        ("absolute", zip_of(&[("ok.txt", b"fine"), ("/tmp/escaped.txt", b"evil")])),
        ("backslash", zip_of(&[("ok.txt", b"fine"), ("..\\escaped.txt", b"evil")])),
        ("symlink", {
            let mut cursor = std::io::Cursor::new(Vec::new());
            {
                let mut zip = zip::ZipWriter::new(&mut cursor);
                zip.start_file("ok.txt", zip::write::SimpleFileOptions::default()).unwrap();
                zip.write_all(b"fine").unwrap();
                zip.add_symlink("link", "/etc", zip::write::SimpleFileOptions::default()).unwrap();
                zip.finish().unwrap();
            }
            cursor.into_inner()
        }),
    ];
    for (what, zip) in cases {
        let url = serve_once(zip);
        let out_dir = work.path().join(what.replace(' ', "_")).join("out");
        let out = server.cli(&["--server", &url, "--token", "k", "custom-models", "versions", "download", MODEL_ID, VERSION_ID, "-o", out_dir.to_str().unwrap()]);
        assert!(!out.status.success(), "{what}: {}", stdout(&out));
        assert!(stderr(&out).contains("nothing was written"), "{what}: {}", stderr(&out));
        // Nothing at all was written: not the good entry, not the bad one.
        assert_eq!(read_tree(out_dir.parent().unwrap()), vec![], "{what}");
    }
    // A well-formed zip from the same kind of server unpacks.
    let url = serve_once(zip_of(&[("a/b.txt", b"b"), ("c.txt", b"c")]));
    let out_dir = work.path().join("good");
    let out = server.cli(&["--server", &url, "--token", "k", "custom-models", "versions", "download", MODEL_ID, VERSION_ID, "-o", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_tree(&out_dir), vec![("a/b.txt".to_string(), b"b".to_vec()), ("c.txt".to_string(), b"c".to_vec())]);
}

/// A folder upload and a version download with --server stream: the CLI
/// moves a 300 MiB file while its address space is capped far below that.
#[test]
fn remote_version_upload_and_download_stream_under_a_memory_cap() {
    const SIZE: u64 = 300 * 1024 * 1024;
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("model");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("custom.py"), b"print(1)\n").unwrap();
    // Sparse: no disk for the source, real bytes on the wire.
    std::fs::File::create(folder.join("weights.bin")).unwrap().set_len(SIZE).unwrap();
    let ctx = work.path().join("ctx.zip");
    std::fs::write(&ctx, zip_of(&[("Dockerfile", b"FROM python:3.11\n")])).unwrap();
    let env = json_ok(&server, Mode::Remote, &["environments", "create", "--name", "e"]);
    let env_id = str_of(&env, "id").to_string();
    json_ok(&server, Mode::Remote, &["environments", "add-version", &env_id, ctx.to_str().unwrap()]);
    let model = json_ok(&server, Mode::Remote, &["custom-models", "create", "--name", "big", "--target-type", "Anomaly"]);
    let model_id = str_of(&model, "id").to_string();

    // The CLI under `ulimit -v` (KiB): well under the file's size.
    let capped_command = |args: &[&str]| -> String {
        let url = format!("http://{}", server.addr);
        let mut command = format!(
            "ulimit -v 160000; exec '{}' --data-dir '{}' --server '{url}' --token '{}' --json",
            common::BIN,
            server.data_dir().display(),
            server.key
        );
        for a in args {
            command.push_str(&format!(" '{a}'"));
        }
        command
    };
    let capped = |args: &[&str]| -> Value {
        let out = std::process::Command::new("sh").args(["-c", &capped_command(args)]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let version = capped(&["custom-models", "versions", "create", &model_id, folder.to_str().unwrap(), "--base-environment-id", &env_id]);
    let items = version["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let (_, zeros_sha) = common::hash_stream(std::io::repeat(0).take(SIZE));
    assert_eq!(items[1]["storagePath"], json!(format!("sha256:{zeros_sha}")));
    let out = work.path().join("out");
    let report = capped(&["custom-models", "versions", "download", &model_id, str_of(&version, "id"), "-o", out.to_str().unwrap()]);
    assert_eq!(report["files"][1], json!({"path": "weights.bin", "size": SIZE}));
    assert_eq!(common::hash_stream(std::fs::File::open(out.join("weights.bin")).unwrap()), (SIZE, zeros_sha.clone()));
    assert_eq!(std::fs::read(out.join("custom.py")).unwrap(), b"print(1)\n");

    // `-o -` streams the version's zip to stdout under the same cap, the summary to stderr.
    let zip_path = work.path().join("big.zip");
    let command = capped_command(&["custom-models", "versions", "download", &model_id, str_of(&version, "id"), "-o", "-"]);
    let out = std::process::Command::new("sh").args(["-c", &format!("{command} > '{}'", zip_path.display())]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(summary["size"].as_u64(), Some(std::fs::metadata(&zip_path).unwrap().len()), "{summary}");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    assert_eq!(common::hash_stream(zip.by_name("weights.bin").unwrap()), (SIZE, zeros_sha));
}
