//! DataRobot datasets and training data against the real binary: upload,
//! ingest, the status route, list, patch, download, delete, team isolation,
//! training data on models and on versions, and the `datasets` CLI offline
//! and with `--server`.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{as_user, ok, user_key, Part, Reply, Server};
use serde_json::{json, Value};

const API: &str = "/api/v2";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/datasets").join(name)).unwrap()
}

/// The path of an absolute URL this server issued.
fn path_of<'a>(s: &Server, url: &'a str) -> &'a str {
    url.split_once(&s.addr).unwrap_or_else(|| panic!("{url} is not an absolute URL of {}", s.addr)).1
}

/// Polls a status URL (absolute) until it stops saying "keep polling";
/// returns the final reply.
fn poll_status(s: &Server, url: &str) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.get_unfollowed(path_of(s, url));
        if r.status != 200 || !matches!(r.json()["status"].as_str(), Some("INITIALIZED" | "RUNNING")) {
            return r;
        }
        assert!(Instant::now() < deadline, "status never ended: {}", String::from_utf8_lossy(&r.body));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Uploads `bytes` as `filename` the way the client does (one `file`
/// part); returns the 202's body and its status Location.
fn upload(s: &Server, filename: &str, bytes: &[u8]) -> (Value, String) {
    let r = s.post_multipart(&format!("{API}/datasets/fromFile/"), &[Part::File { name: "file", filename, bytes }]);
    let body = ok(&r, 202);
    let location = r.header("Location").unwrap().to_string();
    (body, location)
}

/// Uploads and waits for the ingest to end; returns the dataset.
fn ingested(s: &Server, filename: &str, bytes: &[u8]) -> Value {
    let (body, location) = upload(s, filename, bytes);
    poll_status(s, &location);
    ok(&s.get(&format!("{API}/datasets/{}/", body["catalogId"].as_str().unwrap())), 200)
}

fn id_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_string()
}

fn patch_json(s: &Server, path: &str, body: &Value) -> Reply {
    s.send_json("PATCH", path, body)
}

#[test]
fn upload_ingest_status_and_every_route() {
    let s = Server::start();
    let houses = fixture("houses.csv");
    // The client's upload: one `file` part; an unknown text part is ignored.
    let r = s.post_multipart(
        &format!("{API}/datasets/fromFile/"),
        &[Part::Field("useCases", "[]"), Part::File { name: "file", filename: "houses.csv", bytes: &houses }],
    );
    let created = ok(&r, 202);
    let id = id_of(&created, "catalogId");
    let location = r.header("Location").unwrap();
    assert_eq!(location, format!("http://{}{API}/status/{}/", s.addr, id_of(&created, "statusId")));
    // The POST waits for a small ingest, so the first poll is the 303.
    let status = s.get_unfollowed(path_of(&s, location));
    assert_eq!(status.status, 303, "{}", String::from_utf8_lossy(&status.body));
    let dataset_url = status.header("Location").unwrap().to_string();
    assert_eq!(dataset_url, format!("http://{}{API}/datasets/{id}/", s.addr));
    let d = ok(&s.get(path_of(&s, &dataset_url)), 200);
    assert_eq!(d["datasetId"], json!(id));
    assert_eq!(d["versionId"], created["catalogVersionId"]);
    assert_eq!(d["processingState"], "COMPLETED");
    assert_eq!(d["rowCount"], 4, "a quoted comma, a quoted line break and doubled quotes are one row each: {d}");
    assert_eq!(d["columnCount"], 5);
    assert_eq!(d["datasetSize"], houses.len());
    assert_eq!(d["name"], "houses.csv");
    assert_eq!(d["createdBy"], "admin");
    assert_eq!(d["categories"], json!([]));
    assert_eq!(d["error"], "");
    for (key, value) in [("isDataEngineEligible", false), ("isLatestVersion", true), ("isSnapshot", true), ("dataPersisted", true)] {
        assert_eq!(d[key], value, "{key}");
    }
    assert!(d["creationDate"].as_str().unwrap().ends_with('Z'));

    // Every route also answers without the trailing slash.
    let plain = s.post_multipart(&format!("{API}/datasets/fromFile"), &[Part::File { name: "file", filename: "dir/second.csv", bytes: b"a,b\n1,2\n" }]);
    let second = id_of(&ok(&plain, 202), "catalogId");
    assert_eq!(ok(&s.get(&format!("{API}/datasets/{second}")), 200)["name"], "second.csv", "the folder is dropped from the name");
    assert_eq!(s.get(&format!("{API}/datasets")).status, 200);
    assert_eq!(s.get(&format!("{API}/datasets/{second}/file")).body, b"a,b\n1,2\n");

    // PATCH name and categories, as the client's modify() sends them.
    let patched = ok(&patch_json(&s, &format!("{API}/datasets/{id}/"), &json!({"name": "Houses", "categories": ["TRAINING"]})), 200);
    assert_eq!((patched["name"].clone(), patched["categories"].clone()), (json!("Houses"), json!(["TRAINING"])));
    let patched = ok(&patch_json(&s, &format!("{API}/datasets/{id}"), &json!({"categories": []})), 200);
    assert_eq!((patched["name"].clone(), patched["categories"].clone()), (json!("Houses"), json!([])));
    assert_eq!(patch_json(&s, &format!("{API}/datasets/{id}/"), &json!({"name": " "})).status, 422);
    assert_eq!(patch_json(&s, &format!("{API}/datasets/{id}/"), &json!({"categories": "TRAINING"})).status, 422);
    ok(&patch_json(&s, &format!("{API}/datasets/{id}/"), &json!({"categories": ["TRAINING"]})), 200);

    // The original bytes, with a file name and a length.
    let file = s.get(&format!("{API}/datasets/{id}/file/"));
    assert_eq!(file.status, 200);
    assert_eq!(file.body, houses);
    assert_eq!(file.header("Content-Length"), Some(houses.len().to_string().as_str()));
    assert_eq!(file.header("Content-Disposition"), Some("attachment; filename=\"houses.csv\""));

    // A list, newest first, paged with absolute next links that keep the filters.
    let third = ingested(&s, "third.csv", b"x\n1\n");
    let page = ok(&s.get(&format!("{API}/datasets/?limit=2")), 200);
    assert_eq!((page["count"].clone(), page["totalCount"].clone()), (json!(2), json!(3)));
    assert_eq!(page["data"][0]["datasetId"], third["datasetId"]);
    assert_eq!(page["data"][1]["datasetId"], json!(second));
    let rest = ok(&s.get(path_of(&s, page["next"].as_str().unwrap())), 200);
    assert_eq!(rest["data"][0]["datasetId"], json!(id));
    assert_eq!(rest["next"], Value::Null);
    let oldest = ok(&s.get(&format!("{API}/datasets/?orderBy=created&limit=1")), 200);
    assert_eq!(oldest["data"][0]["datasetId"], json!(id));
    let training = ok(&s.get(&format!("{API}/datasets/?category=TRAINING")), 200);
    assert_eq!((training["totalCount"].clone(), training["data"][0]["datasetId"].clone()), (json!(1), json!(id)));
    assert_eq!(s.get(&format!("{API}/datasets/?orderBy=name")).status, 422);
    assert_eq!(s.get(&format!("{API}/datasets/?limit=x")).status, 400);

    // Delete, then it is gone everywhere.
    assert_eq!(s.delete(&format!("{API}/datasets/{id}/")).status, 204);
    for path in [format!("{API}/datasets/{id}/"), format!("{API}/datasets/{id}/file/")] {
        let r = s.get(&path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }
    assert_eq!(s.delete(&format!("{API}/datasets/{id}/")).status, 404);
    assert_eq!(patch_json(&s, &format!("{API}/datasets/{id}/"), &json!({"name": "x"})).status, 404);
    assert_eq!(ok(&s.get(&format!("{API}/datasets/")), 200)["totalCount"], 2);
}

#[test]
fn bad_files_end_in_error_with_a_reason() {
    let s = Server::start();
    // A ragged row: the ingest fails naming its line (5, after a quoted line break).
    let (body, location) = upload(&s, "ragged.csv", &fixture("ragged.csv"));
    let status = poll_status(&s, &location);
    assert_eq!(status.status, 200);
    let status = status.json();
    assert_eq!(status["status"], "ERROR");
    let message = status["message"].as_str().unwrap();
    assert!(message.starts_with("line 5 has 2 fields, but the header has 3"), "{message}");
    let d = ok(&s.get(&format!("{API}/datasets/{}/", id_of(&body, "catalogId"))), 200);
    assert_eq!(d["processingState"], "ERROR");
    assert_eq!(d["error"], json!(message));
    assert_eq!(d["rowCount"], Value::Null);
    assert_eq!(d["columnCount"], Value::Null);

    // Not text at all.
    let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], &[0xff; 64]].concat();
    let d = ingested(&s, "picture.csv", &png);
    assert_eq!(d["processingState"], "ERROR");
    assert!(d["error"].as_str().unwrap().contains("not UTF-8"), "{d}");
    // Empty, a blank header column, a duplicate column.
    for (bytes, says) in [(&b""[..], "empty"), (b"a,,c\n1,2,3\n", "column 2"), (b"a,b,a\n1,2,3\n", "\"a\" twice")] {
        let d = ingested(&s, "x.csv", bytes);
        assert_eq!(d["processingState"], "ERROR");
        assert!(d["error"].as_str().unwrap().contains(says), "{says}: {d}");
    }
    // Failed ingests can be left out of the list.
    let listed = ok(&s.get(&format!("{API}/datasets/?filterFailed=true")), 200);
    assert_eq!(listed["totalCount"], 0, "{listed}");
    assert_eq!(ok(&s.get(&format!("{API}/datasets/?filterFailed=False")), 200)["totalCount"], 5);

    // No file part, or not multipart at all: 422.
    let r = s.post_multipart(&format!("{API}/datasets/fromFile/"), &[Part::Field("name", "x")]);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().unwrap().contains("file"));
    assert_eq!(s.post_json(&format!("{API}/datasets/fromFile/"), &json!({})).status, 422);
    let two = [Part::File { name: "file", filename: "a.csv", bytes: b"a\n" }, Part::File { name: "file", filename: "b.csv", bytes: b"b\n" }];
    assert_eq!(s.post_multipart(&format!("{API}/datasets/fromFile/"), &two).status, 422);
}

#[test]
fn another_teams_dataset_is_not_found() {
    let s = Server::start();
    let d = ingested(&s, "houses.csv", &fixture("houses.csv"));
    let id = id_of(&d, "datasetId");
    assert!(s.cli(&["teams", "add", "other"]).status.success());
    let carol = user_key(&s, "carol", Some("other"));
    for (method, path) in [("GET", format!("{API}/datasets/{id}/")), ("GET", format!("{API}/datasets/{id}/file/")), ("DELETE", format!("{API}/datasets/{id}/"))] {
        assert_eq!(as_user(&s, &carol, method, &path, None).status, 404, "{method} {path}");
    }
    assert_eq!(as_user(&s, &carol, "PATCH", &format!("{API}/datasets/{id}/"), Some(&json!({"name": "mine"}))).status, 404);
    let listed = ok(&as_user(&s, &carol, "GET", &format!("{API}/datasets/"), None), 200);
    assert_eq!((listed["totalCount"].clone(), listed["data"].clone()), (json!(0), json!([])));
    // Nor can it be anyone's training data there.
    let m = as_user(&s, &carol, "POST", &format!("{API}/customModels/"), Some(&json!({"name": "m", "targetType": "Regression", "targetName": "price"})));
    let model = id_of(&ok(&m, 201), "id");
    let r = as_user(&s, &carol, "PATCH", &format!("{API}/customModels/{model}/trainingData/"), Some(&json!({"datasetId": id})));
    assert_eq!(r.status, 404);
    // In the same team, a member may read and rename, only its creator or an admin delete.
    let bob = user_key(&s, "bob", None);
    assert_eq!(as_user(&s, &bob, "GET", &format!("{API}/datasets/{id}/"), None).status, 200);
    assert_eq!(as_user(&s, &bob, "PATCH", &format!("{API}/datasets/{id}/"), Some(&json!({"name": "renamed"}))).status, 200);
    assert_eq!(as_user(&s, &bob, "DELETE", &format!("{API}/datasets/{id}/"), None).status, 403);
    assert_eq!(s.get(&format!("{API}/datasets/{id}/")).json()["name"], "renamed");
}

fn create_model(s: &Server, body: Value) -> String {
    id_of(&ok(&s.post_json(&format!("{API}/customModels/"), &body), 201), "id")
}

fn regression(s: &Server, on_versions: bool) -> String {
    create_model(
        s,
        json!({"name": "House prices", "targetType": "Regression", "targetName": "price",
               "isTrainingDataForVersionsPermanentlyEnabled": on_versions}),
    )
}

#[test]
fn training_data_on_the_model() {
    let s = Server::start();
    let houses = ingested(&s, "houses.csv", &fixture("houses.csv"));
    let ds = id_of(&houses, "datasetId");
    let model = regression(&s, false);
    let before = ok(&s.get(&format!("{API}/customModels/{model}/")), 200);
    assert_eq!(before["trainingDatasetId"], Value::Null);

    // What the client's assign_training_data sends; then it polls and re-reads.
    let r = patch_json(&s, &format!("{API}/customModels/{model}/trainingData/"), &json!({"datasetId": ds, "partitionColumn": "partition"}));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let status = s.get_unfollowed(path_of(&s, r.header("Location").unwrap()));
    assert_eq!(status.status, 303, "done on the first poll: {}", String::from_utf8_lossy(&status.body));
    assert_eq!(status.header("Location").unwrap(), format!("http://{}{API}/customModels/{model}/", s.addr));
    let m = ok(&s.get(&format!("{API}/customModels/{model}/")), 200);
    assert_eq!(m["trainingDatasetId"], json!(ds));
    assert_eq!(m["trainingDatasetVersionId"], houses["versionId"]);
    assert_eq!(m["trainingDataFileName"], "houses.csv");
    assert_eq!(m["trainingDataPartitionColumn"], "partition");
    assert_eq!(m["trainingDataAssignmentInProgress"], false);
    // Without the trailing slash, with the dataset version, without a partition column.
    let r = patch_json(&s, &format!("{API}/customModels/{model}/trainingData"), &json!({"datasetId": ds, "datasetVersionId": houses["versionId"]}));
    assert_eq!(r.status, 202);
    assert_eq!(ok(&s.get(&format!("{API}/customModels/{model}/")), 200)["trainingDataPartitionColumn"], Value::Null);

    // Refusals, and the model keeps its data through all of them.
    let no_target = id_of(&ingested(&s, "no_target.csv", &fixture("no_target.csv")), "datasetId");
    let ragged = id_of(&ingested(&s, "ragged.csv", &fixture("ragged.csv")), "datasetId");
    let path = format!("{API}/customModels/{model}/trainingData/");
    let r = patch_json(&s, &path, &json!({"datasetId": no_target}));
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("\"price\""), "names the missing target");
    let r = patch_json(&s, &path, &json!({"datasetId": ragged}));
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("failed to ingest"));
    assert_eq!(patch_json(&s, &path, &json!({"datasetId": ds, "partitionColumn": "fold"})).status, 422);
    assert_eq!(patch_json(&s, &path, &json!({"datasetId": "nope"})).status, 404);
    assert_eq!(patch_json(&s, &path, &json!({"datasetId": ds, "datasetVersionId": "nope"})).status, 404);
    assert_eq!(patch_json(&s, &path, &json!({})).status, 422);
    assert_eq!(patch_json(&s, &format!("{API}/customModels/nope/trainingData/"), &json!({"datasetId": ds})).status, 404);
    assert_eq!(ok(&s.get(&format!("{API}/customModels/{model}/")), 200)["trainingDatasetId"], json!(ds));
    // A model without a target name takes any dataset.
    let anomaly = create_model(&s, json!({"name": "odd", "targetType": "Anomaly"}));
    assert_eq!(patch_json(&s, &format!("{API}/customModels/{anomaly}/trainingData/"), &json!({"datasetId": no_target})).status, 202);
    // A model whose versions hold the training data refuses it here.
    let on_versions = regression(&s, true);
    let r = patch_json(&s, &format!("{API}/customModels/{on_versions}/trainingData/"), &json!({"datasetId": ds}));
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("isTrainingDataForVersionsPermanentlyEnabled"));
}

/// An environment with one successful build; returns its id.
fn built_env(s: &Server) -> String {
    let env = id_of(&ok(&s.post_json(&format!("{API}/executionEnvironments/"), &json!({"name": "py"})), 201), "id");
    let mut zip = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut zip);
        w.start_file("Dockerfile", zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(b"FROM python:3.11-slim\n").unwrap();
        w.finish().unwrap();
    }
    let zip = zip.into_inner();
    let r = s.post_multipart(&format!("{API}/executionEnvironments/{env}/versions/"), &[Part::File { name: "docker_context", filename: "ctx.zip", bytes: &zip }]);
    let vid = id_of(&ok(&r, 202), "id");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/")), 200)["buildStatus"] != "success" {
        assert!(Instant::now() < deadline, "the environment did not build");
        std::thread::sleep(Duration::from_millis(50));
    }
    env
}

fn send_multipart(s: &Server, method: &str, path: &str, parts: &[Part]) -> Reply {
    let (content_type, body) = common::multipart_body(parts);
    s.request(method, path, &[("Content-Type", &content_type)], Some(body))
}

#[test]
fn training_data_on_versions() {
    let s = Server::start();
    let env = built_env(&s);
    let houses = ingested(&s, "houses.csv", &fixture("houses.csv"));
    let ds = id_of(&houses, "datasetId");
    let model = regression(&s, true);
    let versions = format!("{API}/customModels/{model}/versions/");
    let code = Part::File { name: "file", filename: "custom.py", bytes: b"def score(data, model, **kw):\n    return data\n" };
    let training = json!({"datasetId": ds}).to_string();
    let holdout = json!({"partitionColumn": "partition"}).to_string();

    // What create_clean(training_dataset_id=…, partition_column=…) sends: JSON text parts.
    let r = s.post_multipart(
        &versions,
        &[
            Part::Field("isMajorUpdate", "True"),
            Part::Field("baseEnvironmentId", &env),
            code,
            Part::Field("filePath", "custom.py"),
            Part::Field("trainingData", &training),
            Part::Field("holdoutData", &holdout),
            Part::Field("keepTrainingHoldoutData", "False"),
        ],
    );
    let v1 = ok(&r, 201);
    assert_eq!(
        v1["trainingData"],
        json!({"datasetId": ds, "datasetVersionId": houses["versionId"], "datasetName": "houses.csv",
               "assignmentInProgress": false, "assignmentError": null})
    );
    assert_eq!(v1["holdoutData"]["partitionColumn"], "partition");
    assert_eq!(v1["holdoutData"]["datasetId"], Value::Null);
    // The client re-reads the version while the assignment is in progress: it never is.
    let again = ok(&s.get(&format!("{versions}{}/", id_of(&v1, "id"))), 200);
    assert_eq!(again["trainingData"]["assignmentInProgress"], false);

    // A derived version inherits both, unless told not to keep them.
    let v2 = ok(&send_multipart(&s, "PATCH", &versions, &[Part::Field("isMajorUpdate", "False")]), 201);
    assert_eq!((v2["trainingData"].clone(), v2["holdoutData"].clone()), (v1["trainingData"].clone(), v1["holdoutData"].clone()));
    let v3 = ok(
        &send_multipart(&s, "PATCH", &versions, &[Part::Field("isMajorUpdate", "False"), Part::Field("keepTrainingHoldoutData", "False")]),
        201,
    );
    assert_eq!((v3["trainingData"].clone(), v3["holdoutData"].clone()), (Value::Null, Value::Null));
    assert_eq!((v3["versionMajor"].clone(), v3["versionMinor"].clone()), (json!(1), json!(2)));

    // withTrainingData: a new minor version with the same files and the data sent.
    let git = json!({"commitUrl": "https://example.com/c/1", "mainBranchCommitSha": "a".repeat(40), "pullRequestCommitSha": null, "refName": "main"});
    let r = patch_json(&s, &format!("{versions}withTrainingData"), &json!({"trainingData": {"datasetId": ds}, "gitModelVersion": git}));
    let v4 = ok(&r, 202);
    assert_eq!((v4["versionMajor"].clone(), v4["versionMinor"].clone()), (json!(1), json!(3)));
    assert_eq!(v4["items"].as_array().unwrap().len(), 1);
    assert_eq!(v4["items"][0]["filePath"], "custom.py");
    assert_eq!(v4["trainingData"]["datasetId"], json!(ds));
    assert_eq!(v4["holdoutData"], Value::Null);
    assert_eq!(v4["gitModelVersion"]["refName"], "main");
    assert_eq!(v4["baseEnvironmentId"], json!(env));
    let status = s.get_unfollowed(path_of(&s, r.header("Location").unwrap()));
    assert_eq!(status.status, 303);
    assert_eq!(status.header("Location").unwrap(), format!("http://{}{versions}{}/", s.addr, id_of(&v4, "id")));
    assert_eq!(ok(&s.get(&format!("{API}/customModels/{model}/")), 200)["latestVersion"]["id"], v4["id"]);

    // Refusals leave no version behind.
    let no_target = id_of(&ingested(&s, "no_target.csv", &fixture("no_target.csv")), "datasetId");
    let bad_sends = [
        json!({"trainingData": {"datasetId": no_target}}),
        json!({"trainingData": {"datasetId": ds}, "holdoutData": {"partitionColumn": "fold"}}),
        json!({"trainingData": {"datasetId": "nope"}}),
        json!({"trainingData": {}}),
        json!({"holdoutData": {"partitionColumn": "partition"}}),
        json!({"trainingData": {"datasetId": ds}, "gitModelVersion": {"refName": "main"}}),
    ];
    for bad in &bad_sends {
        let r = patch_json(&s, &format!("{versions}withTrainingData/"), bad);
        assert!(r.status == 422 || r.status == 404, "{bad}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    }
    let r = s.post_multipart(
        &versions,
        &[Part::Field("baseEnvironmentId", &env), Part::Field("trainingData", &json!({"datasetId": no_target}).to_string())],
    );
    assert_eq!(r.status, 422);
    assert_eq!(ok(&s.get(&versions), 200)["totalCount"], 4);

    // A model that keeps its training data on itself refuses it on versions.
    let plain = regression(&s, false);
    let r = patch_json(&s, &format!("{API}/customModels/{plain}/versions/withTrainingData/"), &json!({"trainingData": {"datasetId": ds}}));
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("isTrainingDataForVersionsPermanentlyEnabled"));
    let r = s.post_multipart(
        &format!("{API}/customModels/{plain}/versions/"),
        &[Part::Field("baseEnvironmentId", &env), Part::Field("trainingData", &training)],
    );
    assert_eq!(r.status, 422);
    // The version PATCH route is still the version PATCH route.
    let v1_id = id_of(&v1, "id");
    assert_eq!(ok(&patch_json(&s, &format!("{versions}{v1_id}/"), &json!({"description": "first"})), 200)["description"], "first");
}

// ---------------------------------------------------------------------------
// The CLI

fn cli(s: &Server, remote: bool, args: &[&str]) -> std::process::Output {
    if remote {
        s.cli_remote(args)
    } else {
        s.cli(args)
    }
}

fn cli_json(s: &Server, remote: bool, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cli(s, remote, &all);
    assert!(out.status.success(), "{args:?} (remote {remote}): {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One sequence of `datasets` commands; returns what it printed, with the
/// values that differ between registries blanked out.
fn cli_sequence(s: &Server, remote: bool, work: &Path) -> Vec<Value> {
    let houses = work.join("houses.csv");
    std::fs::write(&houses, fixture("houses.csv")).unwrap();
    let ragged = work.join("ragged.csv");
    std::fs::write(&ragged, fixture("ragged.csv")).unwrap();
    let mut printed = Vec::new();

    let d = cli_json(s, remote, &["datasets", "upload", houses.to_str().unwrap(), "--name", "Houses"]);
    assert_eq!((d["processingState"].clone(), d["rowCount"].clone(), d["name"].clone()), (json!("COMPLETED"), json!(4), json!("Houses")));
    let id = id_of(&d, "datasetId");
    printed.push(d);
    // A failed ingest prints the dataset with its reason and exits 1.
    let out = cli(s, remote, &["--json", "datasets", "upload", ragged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let bad: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(bad["error"].as_str().unwrap().starts_with("line 5 has 2 fields"), "{bad}");
    printed.push(bad);
    let human = cli(s, remote, &["datasets", "upload", ragged.to_str().unwrap()]);
    assert_eq!(human.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&human.stderr).contains("the ingest failed: line 5"));

    let listed = cli_json(s, remote, &["datasets", "list", "--limit", "2"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    printed.push(listed);
    // A table, newest first: the failed ragged.csv twice, then Houses with its shape and size.
    let lines = String::from_utf8(cli(s, remote, &["datasets", "list"]).stdout).unwrap();
    assert_eq!(lines.lines().count(), 4, "{lines}");
    let header: Vec<&str> = lines.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "ROWS", "COLUMNS", "SIZE", "CREATED", "ID"], "{lines}");
    let houses = lines.lines().last().unwrap();
    assert_eq!(houses.split_whitespace().take(4).collect::<Vec<_>>(), ["Houses", "COMPLETED", "4", "5"], "{lines}");
    assert!(houses.contains(&format!("  {} B  ", fixture("houses.csv").len())), "the file's size: {lines}");
    assert!(lines.lines().nth(1).unwrap().starts_with("ragged.csv  ERROR"), "{lines}");
    printed.push(cli_json(s, remote, &["datasets", "show", &id]));

    let out = work.join("copy.csv");
    let wrote = cli_json(s, remote, &["datasets", "download", &id, "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), fixture("houses.csv"));
    assert_eq!(wrote["size"], fixture("houses.csv").len());
    // `-o -`: the bytes on stdout, what was written on stderr.
    let piped = cli(s, remote, &["datasets", "download", &id, "-o", "-"]);
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert_eq!(piped.stdout, fixture("houses.csv"));
    assert!(String::from_utf8_lossy(&piped.stderr).starts_with("wrote "), "{}", String::from_utf8_lossy(&piped.stderr));
    // An existing file is never replaced.
    std::fs::write(&out, b"mine").unwrap();
    let again = cli(s, remote, &["datasets", "download", &id, "-o", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");

    printed.push(cli_json(s, remote, &["datasets", "delete", &id]));
    let gone = cli(s, remote, &["datasets", "show", &id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
    printed.iter().map(blank_volatile).collect()
}

fn blank_volatile(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let volatile = ["datasetId", "versionId", "creationDate", "id"].contains(&k.as_str());
                    (k.clone(), if volatile { json!("<volatile>") } else { blank_volatile(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(blank_volatile).collect()),
        other => other.clone(),
    }
}

#[test]
fn cli_offline_and_remote_print_the_same() {
    let offline = Server::start();
    let remote = Server::start();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let printed_offline = cli_sequence(&offline, false, &a);
    let printed_remote = cli_sequence(&remote, true, &b);
    assert_eq!(printed_offline, printed_remote);
    // What the offline CLI made, the server serves.
    let d = ingested(&offline, "x.csv", b"a\n1\n");
    let out = offline.cli(&["--json", "datasets", "show", d["datasetId"].as_str().unwrap()]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), d);
}

/// A dataset's file is a referenced blob: gc keeps it while the dataset
/// lives and sweeps it once the dataset is deleted; verify checks it.
#[test]
fn gc_keeps_a_datasets_file_until_it_is_deleted() {
    let s = Server::start();
    let houses = fixture("houses.csv");
    let d = ingested(&s, "houses.csv", &houses);
    let id = id_of(&d, "datasetId");
    let gc = |s: &Server| -> Value {
        let out = s.cli(&["--json", "gc", "--grace-secs", "0"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(gc(&s)["blobs"], json!([]));
    assert!(s.cli(&["verify"]).status.success());
    assert_eq!(s.get(&format!("{API}/datasets/{id}/file/")).body, houses);
    assert_eq!(s.delete(&format!("{API}/datasets/{id}/")).status, 204);
    assert_eq!(gc(&s)["blobs"][0]["sha256"], json!(common::sha256_hex(&houses)));
}

/// Rows of CSV generated as they are read: `rows` lines of
/// `n,"text, with a comma",n*2`, after a header.
struct CsvRows {
    next: u64,
    rows: u64,
    pending: Vec<u8>,
}

impl std::io::Read for CsvRows {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.len() < buf.len() && self.next < self.rows {
            let n = self.next;
            self.pending.extend_from_slice(format!("{n},\"row {n}, quoted\",{}\n", n * 2).as_bytes());
            self.next += 1;
        }
        let take = self.pending.len().min(buf.len());
        buf[..take].copy_from_slice(&self.pending[..take]);
        self.pending.drain(..take);
        Ok(take)
    }
}

/// A 128 MiB CSV goes through upload and ingest with flat server memory.
#[test]
fn a_large_csv_is_ingested_with_flat_memory() {
    use std::io::Read;
    let s = Server::start();
    const ROWS: u64 = 4_500_000;
    let header = "id,text,double\n";
    let csv_len = {
        let mut counted = 0u64;
        let mut rows = CsvRows { next: 0, rows: ROWS, pending: Vec::new() };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = rows.read(&mut buf).unwrap();
            if n == 0 {
                break counted + header.len() as u64;
            }
            counted += n as u64;
        }
    };
    assert!(csv_len > 128 * 1024 * 1024, "{csv_len}");
    let boundary = common::BOUNDARY;
    let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n{header}");
    let tail = format!("\r\n--{boundary}--\r\n");
    let len = head.len() as u64 + (csv_len - header.len() as u64) + tail.len() as u64;
    let mut body = head.as_bytes().chain(CsvRows { next: 0, rows: ROWS, pending: Vec::new() }).chain(tail.as_bytes());
    let r = s.post_stream(&format!("{API}/datasets/fromFile/"), &format!("multipart/form-data; boundary={boundary}"), &mut body, len);
    let created = ok(&r, 202);
    let status = poll_status(&s, r.header("Location").unwrap());
    assert_eq!(status.status, 303, "{}", String::from_utf8_lossy(&status.body));
    let d = ok(&s.get(&format!("{API}/datasets/{}/", id_of(&created, "catalogId"))), 200);
    assert_eq!((d["rowCount"].clone(), d["columnCount"].clone(), d["datasetSize"].clone()), (json!(ROWS), json!(3), json!(csv_len)));
    let peak_mib = s.peak_rss_kib() / 1024;
    assert!(peak_mib < 64, "server peak RSS {peak_mib} MiB for a {} MiB CSV", csv_len >> 20);
}
