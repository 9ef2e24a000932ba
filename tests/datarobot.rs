//! The DataRobot dialect (seed 002) against the real binary: custom models,
//! versions, execution environments, access control and the status route.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{as_user, hash_stream, ok, user_key, Generated, Part, Reply, Server};
use serde_json::{json, Value};

const API: &str = "/api/v2";

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Raw name: set_path would refuse the hostile ones these tests need.
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, *bytes).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn tar_gz_with_symlink() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(11);
    header.set_mode(0o644);
    builder.append_data(&mut header, "Dockerfile", &b"FROM alpine"[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder.append_link(&mut link, "escape", "/etc/passwd").unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut cursor);
        for (path, bytes) in entries {
            w.start_file(*path, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap();
    }
    cursor.into_inner()
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        out.push((f.name().to_string(), data));
    }
    out.sort();
    out
}

fn patch_json(s: &Server, path: &str, body: &Value) -> Reply {
    s.send_json("PATCH", path, body)
}

fn patch_multipart(s: &Server, path: &str, parts: &[Part]) -> Reply {
    let (content_type, body) = common::multipart_body(parts);
    s.request("PATCH", path, &[("Content-Type", &content_type)], Some(body))
}

/// Polls an environment version until its build is terminal.
fn wait_built(s: &Server, env: &str, vid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/")), 200);
        if v["buildStatus"] == "success" || v["buildStatus"] == "failed" {
            return v;
        }
        assert!(Instant::now() < deadline, "build did not finish: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_env(s: &Server, name: &str) -> String {
    let r = s.post_json(&format!("{API}/executionEnvironments/"), &json!({"name": name, "programmingLanguage": "python"}));
    let body = ok(&r, 201);
    assert!(r.header("Location").unwrap().starts_with("http://"));
    body["id"].as_str().unwrap().to_string()
}

/// An environment with one successful version; returns (env, version).
fn built_env(s: &Server) -> (String, String) {
    let env = create_env(s, "Python 3.11 env");
    let context = tar_gz(&[("Dockerfile", b"FROM python:3.11-slim\nRUN pip install flask\n")]);
    let r = s.post_multipart(
        &format!("{API}/executionEnvironments/{env}/versions/"),
        &[Part::Field("label", "v1"), Part::File { name: "docker_context", filename: "ctx.tar.gz", bytes: &context }],
    );
    let vid = ok(&r, 202)["id"].as_str().unwrap().to_string();
    assert_eq!(wait_built(s, &env, &vid)["buildStatus"], "success");
    (env, vid)
}

fn create_model(s: &Server, body: Value) -> Value {
    ok(&s.post_json(&format!("{API}/customModels/"), &body), 201)
}

fn regression_model(s: &Server) -> String {
    let m = create_model(
        s,
        json!({"customModelType": "inference", "name": "House prices", "targetType": "Regression", "targetName": "price",
               "supportsRegression": true, "language": "python"}),
    );
    m["id"].as_str().unwrap().to_string()
}

#[test]
fn handshake_auth_and_error_shape() {
    let s = Server::start();
    let v = ok(&s.request("GET", &format!("{API}/version/"), &[("Authorization", &format!("Token {}", s.key))], None), 200);
    assert_eq!(v["versionString"], "2.49.0");
    let r = s.request("GET", &format!("{API}/version/"), &[("Authorization", "Token nope")], None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(r.json()["message"].is_string());
    let r = s.get(&format!("{API}/customModels/nope/"));
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let r = s.get(&format!("{API}/customModels/?offset=-1"));
    assert_eq!(r.status, 400);
    let limits = ok(&s.get(&format!("{API}/customModelLimits/")), 200);
    assert_eq!(limits["maxCustomModelTestingParallelUsers"], 1);
}

#[test]
fn custom_models_crud_list_and_pagination() {
    let s = Server::start();
    // The seed's create examples (regression and binary).
    let reg = create_model(
        &s,
        json!({"customModelType": "inference", "name": "House prices", "targetType": "Regression", "targetName": "price",
               "supportsRegression": true, "description": "a regression model"}),
    );
    assert_eq!(reg["customModelType"], "inference");
    assert_eq!(reg["supportsRegression"], true);
    assert_eq!(reg["latestVersion"], Value::Null);
    assert_eq!(reg["createdBy"], "admin");
    assert_eq!(reg["positiveClassLabel"], Value::Null);
    assert_eq!(reg["trainingDataAssignmentInProgress"], false);
    let bin = create_model(
        &s,
        json!({"customModelType": "inference", "name": "Churn", "targetType": "Binary", "targetName": "churned",
               "supportsBinaryClassification": true}),
    );
    assert_eq!((bin["positiveClassLabel"].clone(), bin["negativeClassLabel"].clone()), (json!("1"), json!("0")));
    assert_eq!(bin["predictionThreshold"], 0.5);
    // Validation: no target type, both flags, missing target name, half a label pair, DR_API_ACCESS.
    for bad in [
        json!({"name": "x"}),
        json!({"name": "x", "supportsRegression": true, "supportsBinaryClassification": true}),
        json!({"name": "x", "targetType": "Binary"}),
        json!({"name": "x", "targetType": "Binary", "targetName": "y", "positiveClassLabel": "a"}),
        json!({"name": "x", "targetType": "Regression", "targetName": "y", "networkEgressPolicy": "DR_API_ACCESS"}),
        json!({"name": "x", "targetType": "Multiclass", "targetName": "y"}),
        json!({"name": "x", "targetType": "Nope", "targetName": "y"}),
    ] {
        let r = s.post_json(&format!("{API}/customModels/"), &bad);
        assert_eq!(r.status, 422, "{bad}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["message"].is_string());
    }
    for i in 0..3 {
        create_model(&s, json!({"name": format!("anomaly {i}"), "targetType": "Anomaly"}));
    }
    // Filters and the absolute `next` that repeats them.
    let page = ok(&s.get(&format!("{API}/customModels/?customModelType=inference&isDeployed=False&limit=2&targetType=Anomaly")), 200);
    assert_eq!((page["count"].clone(), page["totalCount"].clone()), (json!(2), json!(3)));
    let next = page["next"].as_str().unwrap();
    assert!(next.starts_with("http://") && next.contains("targetType=Anomaly") && next.contains("isDeployed=False"), "{next}");
    let path = next.split_once(&s.addr).unwrap().1;
    let page2 = ok(&s.get(path), 200);
    assert_eq!(page2["count"], 1);
    assert_eq!(page2["next"], Value::Null);
    assert!(page2["previous"].is_string());
    let found = ok(&s.get(&format!("{API}/customModels/?searchFor=CHURN")), 200);
    assert_eq!(found["totalCount"], 1);
    assert_eq!(ok(&s.get(&format!("{API}/customModels/?isDeployed=True")), 200)["count"], 0);
    let oldest = ok(&s.get(&format!("{API}/customModels/?orderBy=created")), 200);
    assert_eq!(oldest["data"][0]["id"], reg["id"]);
    // Get, patch (201 with the full model), delete.
    let id = reg["id"].as_str().unwrap();
    assert_eq!(ok(&s.get(&format!("{API}/customModels/{id}/")), 200)["name"], "House prices");
    let patched = ok(&patch_json(&s, &format!("{API}/customModels/{id}/"), &json!({"name": "Prices", "description": "new"})), 201);
    assert_eq!((patched["name"].clone(), patched["description"].clone()), (json!("Prices"), json!("new")));
    assert_eq!(patch_json(&s, &format!("{API}/customModels/{id}/"), &json!({"targetType": "Binary"})).status, 422);
    let bid = bin["id"].as_str().unwrap();
    let relabel = ok(&patch_json(&s, &format!("{API}/customModels/{bid}/"), &json!({"positiveClassLabel": "yes", "negativeClassLabel": "no"})), 201);
    assert_eq!(relabel["positiveClassLabel"], "yes");
    let reset = ok(&patch_json(&s, &format!("{API}/customModels/{bid}/"), &json!({"positiveClassLabel": null, "negativeClassLabel": null})), 201);
    assert_eq!(reset["positiveClassLabel"], "1");
    assert_eq!(s.delete(&format!("{API}/customModels/{id}/")).status, 204);
    assert_eq!(s.get(&format!("{API}/customModels/{id}/")).status, 404);
    // An unknown template is the seed's 422 (tests/templates.rs covers templates).
    let r = s.post_json(&format!("{API}/customModels/fromModelTemplate/"), &json!({"templateId": "t", "resourceBundleId": "r", "secretConfigId": "s"}));
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("Invalid template data"));
    assert_eq!(s.post_json(&format!("{API}/customModels/fromModelTemplate/"), &json!({})).status, 422);
}

#[test]
fn versions_create_derive_download_and_copy() {
    let s = Server::start();
    let (env, env_version) = built_env(&s);
    let id = regression_model(&s);
    let base = format!("{API}/customModels/{id}/versions/");
    let model_py = b"import pickle\n".to_vec();
    let weights: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let reqs = b"# deps\npandas==1.5.3\nrequests[security]>=2.0,<3\nnumpy\n";
    let v1 = ok(
        &s.post_multipart(
            &base,
            &[
                Part::Field("isMajorUpdate", "True"),
                Part::Field("baseEnvironmentId", &env),
                Part::File { name: "file", filename: "custom.py", bytes: &model_py },
                Part::Field("filePath", "custom.py"),
                Part::File { name: "file", filename: "model.pkl", bytes: &weights },
                Part::Field("filePath", "artifacts/model.pkl"),
                Part::File { name: "file", filename: "requirements.txt", bytes: reqs },
                Part::Field("filePath", "requirements.txt"),
                Part::File { name: "file", filename: "empty.txt", bytes: b"" },
                Part::Field("filePath", "empty.txt"),
                Part::Field("requiredMetadataValues", r#"[{"fieldName": "team", "value": "ml"}]"#),
            ],
        ),
        201,
    );
    assert_eq!((v1["versionMajor"].clone(), v1["versionMinor"].clone(), v1["label"].clone()), (json!(1), json!(0), json!("v1.0")));
    assert_eq!(v1["isFrozen"], false);
    assert_eq!(v1["baseEnvironmentVersionId"], env_version.as_str());
    assert_eq!(v1["items"].as_array().unwrap().len(), 4);
    let item = v1["items"].as_array().unwrap().iter().find(|i| i["filePath"] == "artifacts/model.pkl").unwrap().clone();
    assert_eq!((item["fileName"].clone(), item["fileSource"].clone()), (json!("model.pkl"), json!("local")));
    let deps = v1["dependencies"].as_array().unwrap();
    assert_eq!(deps.len(), 3);
    assert_eq!(deps[1]["packageName"], "requests");
    assert_eq!(deps[1]["extras"], "security");
    assert_eq!(deps[1]["constraints"], json!([{"constraintType": ">=", "version": "2.0"}, {"constraintType": "<", "version": "3"}]));
    assert_eq!(deps[0]["lineNumber"], 2);
    assert_eq!(v1["requiredMetadataValues"], json!([{"fieldName": "team", "value": "ml"}]));
    // Derive: add a file, replace one, delete one by item id; a minor bump.
    let empty_item = v1["items"].as_array().unwrap().iter().find(|i| i["filePath"] == "empty.txt").unwrap()["id"].as_str().unwrap().to_string();
    let v2 = ok(
        &patch_multipart(
            &s,
            &base,
            &[
                Part::Field("isMajorUpdate", "False"),
                Part::File { name: "file", filename: "helpers.py", bytes: b"def f(): pass\n" },
                Part::Field("filePath", "src/helpers.py"),
                Part::File { name: "file", filename: "custom.py", bytes: b"# v2\n" },
                Part::Field("filePath", "custom.py"),
                Part::Field("filesToDelete", &empty_item),
            ],
        ),
        201,
    );
    assert_eq!((v2["versionMajor"].clone(), v2["versionMinor"].clone()), (json!(1), json!(1)));
    assert_eq!(v2["baseEnvironmentId"], env.as_str());
    let paths: Vec<&str> = v2["items"].as_array().unwrap().iter().map(|i| i["filePath"].as_str().unwrap()).collect();
    assert_eq!(paths, vec!["artifacts/model.pkl", "custom.py", "requirements.txt", "src/helpers.py"]);
    // An empty derive copies the previous files; "None" for isMajorUpdate is a 422.
    assert_eq!(patch_multipart(&s, &base, &[Part::Field("isMajorUpdate", "None")]).status, 422);
    let bad_delete = patch_multipart(&s, &base, &[Part::Field("filesToDelete", "no-such-item")]);
    assert_eq!(bad_delete.status, 422);
    // List (newest first) and get; the older version is frozen.
    let list = ok(&s.get(&base), 200);
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["data"][0]["id"], v2["id"]);
    let v1_id = v1["id"].as_str().unwrap();
    let got = ok(&s.get(&format!("{base}{v1_id}/")), 200);
    assert_eq!(got["isFrozen"], true);
    // Metadata patch, including the client's body-less update().
    let upd = ok(&patch_json(&s, &format!("{base}{v1_id}/"), &json!({"description": "first"})), 200);
    assert_eq!(upd["description"], "first");
    let same = ok(&s.request("PATCH", &format!("{base}{v1_id}/"), &[], None), 200);
    assert_eq!(same["description"], "first");
    // Downloads: the version's zip and the latest version's zip.
    let r = s.get(&format!("{base}{v1_id}/download/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/zip"));
    assert!(r.header("Content-Disposition").unwrap().starts_with("attachment;filename=model-"));
    let files = unzip(&r.body);
    assert_eq!(files.len(), 4);
    assert_eq!(files.iter().find(|(p, _)| p == "artifacts/model.pkl").unwrap().1, weights);
    assert_eq!(files.iter().find(|(p, _)| p == "empty.txt").unwrap().1, b"");
    let latest = unzip(&s.get(&format!("{API}/customModels/{id}/download/?pps=False")).body);
    assert_eq!(latest.iter().find(|(p, _)| p == "custom.py").unwrap().1, b"# v2\n");
    // The model now shows its latest version.
    let model = ok(&s.get(&format!("{API}/customModels/{id}/")), 200);
    assert_eq!(model["latestVersion"]["id"], v2["id"]);
    // Copy: all versions, same numbers, same blobs (no new bytes stored).
    let blobs_before = common::files_under(&s.data_dir().join("blobs")).len();
    let copy = ok(&s.post_json(&format!("{API}/customModels/fromCustomModel/"), &json!({"customModelId": id})), 201);
    assert_ne!(copy["id"], model["id"]);
    assert_eq!(copy["latestVersion"]["label"], "v1.1");
    assert_ne!(copy["latestVersion"]["id"], v2["id"]);
    assert_eq!(common::files_under(&s.data_dir().join("blobs")).len(), blobs_before);
    let copy_id = copy["id"].as_str().unwrap();
    assert_eq!(ok(&s.get(&format!("{API}/customModels/{copy_id}/versions/")), 200)["totalCount"], 2);
    assert_eq!(s.post_json(&format!("{API}/customModels/fromCustomModel/"), &json!({"customModelId": "nope"})).status, 404);
}

#[test]
fn bad_version_uploads_are_422() {
    let s = Server::start();
    let (env, _) = built_env(&s);
    let id = regression_model(&s);
    let base = format!("{API}/customModels/{id}/versions/");
    for bad in ["../evil.py", "/etc/passwd", "a/../../b", "a\0b", "a//b", ""] {
        let r = s.post_multipart(
            &base,
            &[Part::Field("baseEnvironmentId", &env), Part::File { name: "file", filename: "x", bytes: b"x" }, Part::Field("filePath", bad)],
        );
        assert_eq!(r.status, 422, "{bad:?}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }
    // A file without its path; no base environment; an unknown environment.
    let r = s.post_multipart(&base, &[Part::Field("baseEnvironmentId", &env), Part::File { name: "file", filename: "x", bytes: b"x" }]);
    assert_eq!(r.status, 422);
    assert_eq!(s.post_multipart(&base, &[Part::Field("isMajorUpdate", "True")]).status, 422);
    assert_eq!(s.post_multipart(&base, &[Part::Field("baseEnvironmentId", "nope")]).status, 422);
    // An invalid requirements.txt: 422 with dependencies and invalidDependencies.
    let r = s.post_multipart(
        &base,
        &[
            Part::Field("baseEnvironmentId", &env),
            Part::File { name: "file", filename: "requirements.txt", bytes: b"pandas==1.0\nfoo~=1.2\n-e git+https://x\n" },
            Part::Field("filePath", "requirements.txt"),
        ],
    );
    assert_eq!(r.status, 422);
    let body = r.json();
    assert_eq!(body["dependencies"][0]["packageName"], "pandas");
    let invalid = body["invalidDependencies"].as_array().unwrap();
    assert_eq!(invalid.len(), 2);
    assert_eq!(invalid[0]["lineNumber"], 2);
    assert_eq!(invalid[0]["line"], "foo~=1.2");
    // Nothing half-written: the model still has no versions.
    assert_eq!(ok(&s.get(&base), 200)["totalCount"], 0);
}

#[test]
fn thousand_file_version_round_trips_through_the_zip() {
    let s = Server::start();
    let (env, _) = built_env(&s);
    let id = regression_model(&s);
    let contents: Vec<(String, Vec<u8>)> =
        (0..1000).map(|i| (format!("dir{}/file{i:04}.txt", i % 10), format!("file {i} {}", "x".repeat(i % 37)).into_bytes())).collect();
    let mut parts = vec![Part::Field("baseEnvironmentId", &env)];
    for (path, bytes) in &contents {
        parts.push(Part::File { name: "file", filename: path.rsplit('/').next().unwrap(), bytes });
        parts.push(Part::Field("filePath", path));
    }
    let v = ok(&s.post_multipart(&format!("{API}/customModels/{id}/versions/"), &parts), 201);
    assert_eq!(v["items"].as_array().unwrap().len(), 1000);
    let vid = v["id"].as_str().unwrap();
    let zip = s.get(&format!("{API}/customModels/{id}/versions/{vid}/download/"));
    let mut expected = contents.clone();
    expected.sort();
    assert_eq!(unzip(&zip.body), expected);
}

#[test]
fn environments_versions_builds_and_downloads() {
    let s = Server::start();
    let env = create_env(&s, "R env");
    let got = ok(&s.get(&format!("{API}/executionEnvironments/{env}/")), 200);
    assert_eq!((got["latestVersion"].clone(), got["username"].clone()), (Value::Null, json!("admin")));
    assert_eq!(got["requiredMetadataKeys"], json!([]));
    let upd = ok(
        &patch_json(&s, &format!("{API}/executionEnvironments/{env}/"), &json!({"description": "d", "requiredMetadataKeys": [{"fieldName": "a", "displayName": "A"}]})),
        200,
    );
    assert_eq!(upd["requiredMetadataKeys"], json!([{"fieldName": "a", "displayName": "A"}]));
    // A good context under the seed's name, as a zip.
    let context = zip_of(&[("Dockerfile", b"FROM rocker/r-ver:4.3\n"), ("install.R", b"1")]);
    let r = s.post_multipart(
        &format!("{API}/executionEnvironments/{env}/versions/"),
        &[Part::Field("label", "first"), Part::File { name: "dockerContext", filename: "ctx.zip", bytes: &context }],
    );
    let accepted = ok(&r, 202);
    assert!(r.header("Location").unwrap().starts_with("http://"));
    let vid = accepted["id"].as_str().unwrap();
    let v = wait_built(&s, &env, vid);
    assert_eq!(v["buildStatus"], "success");
    assert_eq!(v["baseImage"], "rocker/r-ver:4.3");
    assert!(!v["imageId"].as_str().unwrap().is_empty());
    assert_eq!(v["dockerContextSize"], context.len());
    let log = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/buildLog/")), 200);
    assert_eq!(log["error"], "");
    let text = log["log"].as_str().unwrap();
    assert!(text.contains("no image was built") && text.contains("rocker/r-ver:4.3"), "{text}");
    let dl = s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/download/"));
    assert_eq!(dl.body, context);
    assert_eq!(dl.header("Content-Type"), Some("application/zip"));
    assert_eq!(s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/download/?imageFile=true")).status, 404);
    // The status route leads to the finished version with a 303.
    // Raw HTTP: the harness's agent would follow the redirect (like the
    // client's waiter must not).
    let raw = s.raw(
        format!(
            "GET {API}/status/{}/ HTTP/1.1\r\nHost: {}\r\nAuthorization: Token {}\r\nConnection: close\r\n\r\n",
            accepted["statusId"].as_str().unwrap(),
            s.addr,
            s.key
        )
        .as_bytes(),
        Duration::from_secs(10),
    );
    assert!(raw.starts_with("HTTP/1.1 303"), "{raw}");
    let location = format!("location: http://{}{API}/executionEnvironments/{env}/versions/{vid}/", s.addr);
    assert!(raw.to_ascii_lowercase().contains(&location.to_ascii_lowercase()), "{raw}");
    assert_eq!(s.get(&format!("{API}/status/nope/")).status, 404);
    // A JSON body with only dockerImageUri (the client's create without a context).
    let uri = ok(&s.post_json(&format!("{API}/executionEnvironments/{env}/versions/"), &json!({"dockerImageUri": "python:3.12", "label": "uri"})), 202);
    let uv = wait_built(&s, &env, uri["id"].as_str().unwrap());
    assert_eq!((uv["buildStatus"].clone(), uv["sourceDockerImageUri"].clone()), (json!("success"), json!("python:3.12")));
    // Not an archive: refused at once. Nothing at all: 422.
    let r = s.post_multipart(&format!("{API}/executionEnvironments/{env}/versions/"), &[Part::File { name: "docker_context", filename: "x.zip", bytes: b"hello" }]);
    assert_eq!(r.status, 422);
    assert_eq!(s.post_json(&format!("{API}/executionEnvironments/{env}/versions/"), &json!({"label": "x"})).status, 422);
    // Lists: versions filtered by status, environments searchable; latest versions follow.
    let list = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/?buildStatus=success")), 200);
    assert_eq!(list["totalCount"], 2);
    let searched = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/?search=URI")), 200);
    assert_eq!(searched["totalCount"], 1);
    assert_eq!(s.get(&format!("{API}/executionEnvironments/{env}/versions/?buildStatus=bogus")).status, 422);
    let envs = ok(&s.get(&format!("{API}/executionEnvironments/?searchFor=r%20env&isOwn=True")), 200);
    assert_eq!(envs["totalCount"], 1);
    assert_eq!(envs["data"][0]["latestSuccessfulVersion"]["id"], uri["id"]);
    // Soft delete, then permadelete (409 before the soft delete).
    let permadelete = format!("{API}/executionEnvironmentsPermadelete/");
    assert_eq!(s.post_json(&permadelete, &json!({"executionEnvironmentIds": [env]})).status, 409);
    assert_eq!(s.delete(&format!("{API}/executionEnvironments/{env}/")).status, 204);
    assert_eq!(s.get(&format!("{API}/executionEnvironments/{env}/")).status, 404);
    assert_eq!(ok(&s.get(&format!("{API}/executionEnvironments/")), 200)["totalCount"], 0);
    assert_eq!(s.post_json(&permadelete, &json!({"executionEnvironmentIds": [env]})).status, 204);
    assert_eq!(s.post_json(&permadelete, &json!({"executionEnvironmentIds": [env]})).status, 404);
    assert_eq!(s.post_json(&permadelete, &json!({"executionEnvironmentIds": []})).status, 422);
}

#[test]
fn hostile_contexts_fail_the_build_with_a_clear_log() {
    let s = Server::start();
    let env = create_env(&s, "hostile");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("zip-slip.zip", zip_of(&[("Dockerfile", b"FROM alpine"), ("../../escaped.txt", b"pwned")]), "escapes the context root"),
        ("tar-slip.tar.gz", tar_gz(&[("Dockerfile", b"FROM alpine"), ("a/../../escaped.txt", b"pwned")]), "escapes the context root"),
        ("abs.tar.gz", tar_gz(&[("Dockerfile", b"FROM alpine"), ("/tmp/escaped.txt", b"pwned")]), "absolute path"),
        ("link.tar.gz", tar_gz_with_symlink(), "is a link"),
        ("nodocker.zip", zip_of(&[("sub/Dockerfile", b"FROM alpine")]), "no file named Dockerfile"),
        ("nofrom.zip", zip_of(&[("Dockerfile", b"RUN true")]), "no FROM"),
    ];
    for (name, bytes, expected) in cases {
        let r = s.post_multipart(&format!("{API}/executionEnvironments/{env}/versions/"), &[Part::File { name: "docker_context", filename: name, bytes: &bytes }]);
        let vid = ok(&r, 202)["id"].as_str().unwrap().to_string();
        let v = wait_built(&s, &env, &vid);
        assert_eq!(v["buildStatus"], "failed", "{name}");
        let log = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/buildLog/")), 200);
        assert!(log["error"].as_str().unwrap().contains(expected), "{name}: {log}");
        assert!(log["log"].as_str().unwrap().contains("Build failed"), "{name}: {log}");
    }
    assert!(!s.data_dir().parent().unwrap().join("escaped.txt").exists());
    assert!(common::files_under(s.data_dir()).iter().all(|p| !p.ends_with("escaped.txt")));
    let env_json = ok(&s.get(&format!("{API}/executionEnvironments/{env}/")), 200);
    assert_eq!(env_json["latestSuccessfulVersion"], Value::Null);
    assert_eq!(env_json["latestVersion"]["buildStatus"], "failed");
}

#[test]
fn image_builder_runs_and_streams_its_output() {
    let dir = tempfile::tempdir().unwrap();
    // Stands in for `docker`: checks the extracted context, prints to both
    // streams, and writes the image id where --iidfile says.
    let fake = common::write_script(
        &dir.path().join("fake-docker"),
        "[ \"$1\" = build ] || exit 2\niid=\"$3\"\nctx=\"$6\"\n[ -f \"$ctx/Dockerfile\" ] || { echo no Dockerfile >&2; exit 1; }\n\
         echo \"Step 1/1 : $(head -n1 \"$ctx/Dockerfile\")\"\necho 'warning: fake builder' >&2\nprintf 'sha256:feedbeef' > \"$iid\"\n",
    );
    let s = Server::start_with(&["--image-builder", &fake]);
    let env = create_env(&s, "docker env");
    let context = tar_gz(&[("./Dockerfile", b"FROM python:3.11\n"), ("./app/main.py", b"print(1)\n")]);
    let r = s.post_multipart(&format!("{API}/executionEnvironments/{env}/versions/"), &[Part::File { name: "docker_context", filename: "c.tar.gz", bytes: &context }]);
    let vid = ok(&r, 202)["id"].as_str().unwrap().to_string();
    let v = wait_built(&s, &env, &vid);
    assert_eq!(v["buildStatus"], "success", "{v}");
    assert_eq!(v["imageId"], "sha256:feedbeef");
    let log = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/{vid}/buildLog/")), 200)["log"].as_str().unwrap().to_string();
    assert!(log.contains("Step 1/1 : FROM python:3.11") && log.contains("warning: fake builder"), "{log}");
    // The job directory is removed afterwards.
    assert!(!s.data_dir().join("jobs").join(&vid).exists());
}

#[test]
fn access_control_is_enforced() {
    let s = Server::start();
    for user in ["alice", "bob"] {
        assert!(s.cli(&["users", "add", user]).status.success());
    }
    let key = |user: &str| String::from_utf8(s.cli(&["keys", "create", "--user", user]).stdout).unwrap().trim().to_string();
    let (alice, bob) = (key("alice"), key("bob"));
    let created = as_user(&s, &alice, "POST", &format!("{API}/customModels/"), Some(&json!({"name": "a", "targetType": "Anomaly"})));
    let id = ok(&created, 201)["id"].as_str().unwrap().to_string();
    let model = format!("{API}/customModels/{id}/");
    let acl = format!("{model}accessControl/");
    // Bob has no role: invisible.
    assert_eq!(as_user(&s, &bob, "GET", &model, None).status, 404);
    assert_eq!(ok(&as_user(&s, &bob, "GET", &format!("{API}/customModels/"), None), 200)["totalCount"], 0);
    let list = ok(&as_user(&s, &alice, "GET", &acl, None), 200);
    assert_eq!(list["data"], json!([{"username": "alice", "userId": list["data"][0]["userId"], "role": "OWNER", "canShare": true, "canUseData": true}]));
    // Consumer: may read, not change.
    let grant = json!({"data": [{"username": "bob", "role": "CONSUMER", "canShare": false}]});
    assert_eq!(as_user(&s, &alice, "PATCH", &acl, Some(&grant)).status, 204);
    assert_eq!(as_user(&s, &bob, "GET", &model, None).status, 200);
    assert_eq!(as_user(&s, &bob, "PATCH", &model, Some(&json!({"name": "b"}))).status, 403);
    assert_eq!(as_user(&s, &bob, "DELETE", &model, None).status, 403);
    assert_eq!(as_user(&s, &bob, "PATCH", &acl, Some(&json!({"data": [{"username": "bob", "role": "OWNER"}]}))).status, 403);
    // Editor: may change, not delete.
    let editor = json!({"data": [{"username": "bob", "role": "EDITOR"}]});
    assert_eq!(as_user(&s, &alice, "PATCH", &acl, Some(&editor)).status, 204);
    assert_eq!(as_user(&s, &bob, "PATCH", &model, Some(&json!({"name": "b"}))).status, 201);
    assert_eq!(as_user(&s, &bob, "DELETE", &model, None).status, 403);
    // The only owner cannot be removed or demoted; unknown users and roles are 422.
    for body in [json!({"data": [{"username": "alice", "role": null}]}), json!({"data": [{"username": "alice", "role": "EDITOR"}]})] {
        let r = as_user(&s, &alice, "PATCH", &acl, Some(&body));
        assert_eq!(r.status, 409, "{body}");
    }
    assert_eq!(as_user(&s, &alice, "PATCH", &acl, Some(&json!({"data": [{"username": "nobody", "role": "USER"}]}))).status, 422);
    assert_eq!(as_user(&s, &alice, "PATCH", &acl, Some(&json!({"data": [{"username": "bob", "role": "KING"}]}))).status, 422);
    // Revoke: invisible again.
    assert_eq!(as_user(&s, &alice, "PATCH", &acl, Some(&json!({"data": [{"username": "bob", "role": null}]}))).status, 204);
    assert_eq!(as_user(&s, &bob, "GET", &model, None).status, 404);
    assert_eq!(as_user(&s, &alice, "GET", &format!("{acl}?username=alice&userId=x"), None).status, 400);
    // Environments follow the same rules.
    let env = ok(&as_user(&s, &alice, "POST", &format!("{API}/executionEnvironments/"), Some(&json!({"name": "e"}))), 201)["id"].as_str().unwrap().to_string();
    let env_url = format!("{API}/executionEnvironments/{env}/");
    assert_eq!(as_user(&s, &bob, "GET", &env_url, None).status, 404);
    assert_eq!(as_user(&s, &alice, "PATCH", &format!("{env_url}accessControl/"), Some(&json!({"data": [{"username": "bob", "role": "USER"}]}))).status, 204);
    assert_eq!(as_user(&s, &bob, "GET", &env_url, None).status, 200);
    assert_eq!(as_user(&s, &bob, "DELETE", &env_url, None).status, 403);
    assert_eq!(as_user(&s, &alice, "PATCH", &format!("{env_url}accessControl/"), Some(&json!({"data": [{"username": "alice", "role": null}]}))).status, 409);
    // Only admins may make an environment public.
    assert_eq!(as_user(&s, &alice, "PATCH", &env_url, Some(&json!({"isPublic": true}))).status, 403);
}

#[test]
fn cli_works_offline_on_the_data_directory() {
    let s = Server::start();
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx.zip");
    std::fs::write(&ctx, zip_of(&[("Dockerfile", b"FROM python:3.11\n")])).unwrap();
    let run = |args: &[&str]| -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = s.cli(&all);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let env = run(&["environments", "create", "--name", "cli env", "--programming-language", "python"]);
    let env_id = env["id"].as_str().unwrap().to_string();
    let v = run(&["environments", "add-version", &env_id, ctx.to_str().unwrap(), "--label", "one"]);
    assert_eq!(v["buildStatus"], "success");
    let model = run(&["custom-models", "create", "--name", "cli model", "--target-type", "Regression", "--target-name", "y"]);
    let model_id = model["id"].as_str().unwrap().to_string();
    let folder = work.path().join("model");
    std::fs::create_dir_all(folder.join("src")).unwrap();
    std::fs::write(folder.join("custom.py"), b"print(1)\n").unwrap();
    std::fs::write(folder.join("src/util.py"), b"x = 2\n").unwrap();
    let version = run(&["custom-models", "versions", "create", &model_id, folder.to_str().unwrap(), "--base-environment-id", &env_id]);
    assert_eq!(version["label"], "v1.0");
    assert_eq!(run(&["custom-models", "versions", "list", &model_id]).as_array().unwrap().len(), 1);
    let out = work.path().join("out");
    run(&["custom-models", "versions", "download", &model_id, version["id"].as_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("src/util.py")).unwrap(), b"x = 2\n");
    // The server sees what the CLI made.
    assert_eq!(ok(&s.get(&format!("{API}/customModels/{model_id}/")), 200)["latestVersion"]["id"], version["id"]);
    assert!(!s.cli(&["--server", "http://x", "environments", "list"]).status.success());
}

/// A 1 GiB file goes through upload, zip and download with flat server
/// memory. The test streams both ways too: the body is generated as it is
/// sent, and the zip is written to a temp file and read back entry by entry.
#[test]
fn a_1_gib_file_in_a_version_keeps_server_memory_flat() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    const SEED: u64 = 0x5DEECE66D;
    let s = Server::start();
    let (env, _) = built_env(&s);
    let id = regression_model(&s);
    let (_, expected_sha) = hash_stream(Generated::new(SIZE, SEED));

    let boundary = common::BOUNDARY;
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"baseEnvironmentId\"\r\n\r\n{env}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"w.bin\"\r\n\r\n"
    );
    let tail = format!(
        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"filePath\"\r\n\r\nweights/w.bin\r\n--{boundary}--\r\n"
    );
    let len = head.len() as u64 + SIZE + tail.len() as u64;
    let mut body = head.as_bytes().chain(Generated::new(SIZE, SEED)).chain(tail.as_bytes());
    let reply = s.post_stream(
        &format!("{API}/customModels/{id}/versions/"),
        &format!("multipart/form-data; boundary={boundary}"),
        &mut body,
        len,
    );
    let v = ok(&reply, 201);
    assert_eq!(v["items"][0]["filePath"], "weights/w.bin");
    let vid = v["id"].as_str().unwrap();

    let (status, mut zip_stream) = s.get_stream(&format!("{API}/customModels/{id}/versions/{vid}/download/"));
    assert_eq!(status, 200);
    let mut zip_file = tempfile::tempfile().unwrap();
    std::io::copy(&mut zip_stream, &mut zip_file).unwrap();
    let mut archive = zip::ZipArchive::new(zip_file).unwrap();
    assert_eq!(archive.len(), 1);
    let entry = archive.by_index(0).unwrap();
    assert_eq!(entry.name(), "weights/w.bin");
    assert_eq!(hash_stream(entry), (SIZE, expected_sha));

    let peak_mib = s.peak_rss_kib() / 1024;
    assert!(peak_mib < 64, "server peak RSS {peak_mib} MiB for a 1 GiB file");
}

/// Octomil's download serves one weights file; a DataRobot version of
/// several files is found through the Octomil routes but not served by them.
#[test]
fn octomil_download_refuses_a_multi_file_version() {
    let s = Server::start();
    let (env, _) = built_env(&s);
    let id = regression_model(&s);
    ok(
        &s.post_multipart(
            &format!("{API}/customModels/{id}/versions/"),
            &[
                Part::Field("baseEnvironmentId", &env),
                Part::File { name: "file", filename: "custom.py", bytes: b"def score(): pass\n" },
                Part::Field("filePath", "custom.py"),
                Part::File { name: "file", filename: "model.pkl", bytes: b"pickle" },
                Part::Field("filePath", "model.pkl"),
            ],
        ),
        201,
    );
    let detail = ok(&s.get(&format!("/api/v1/models/{id}")), 200);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 1);
    let download = s.get(&format!("/api/v1/models/{id}/versions/1/download"));
    assert_eq!(download.status, 404);
    let body = download.json();
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("2 files"), "{body}");
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// DataRobot roles bind every dialect: a team member without a role can
/// neither see, list, upload to nor delete a private custom model through
/// the Paperspace or Octomil routes; a read-only role reads but may not
/// write or delete.
#[test]
fn roles_bind_the_paperspace_and_octomil_routes_too() {
    let s = Server::start();
    let alice = user_key(&s, "alice", None);
    let bob = user_key(&s, "bob", None);
    let created = as_user(&s, &alice, "POST", &format!("{API}/customModels/"), Some(&json!({"name": "private", "targetType": "Anomaly"})));
    let id = ok(&created, 201)["id"].as_str().unwrap().to_string();
    let bob_auth = bearer(&bob);
    let as_bob = |method: &str, path: &str| s.request(method, path, &[("Authorization", &bob_auth)], None);
    let upload = |auth: &str| {
        let (content_type, body) = common::multipart_body(&[Part::File { name: "file", filename: "model.pt", bytes: b"weights" }]);
        s.request("POST", &format!("/api/v1/models/{id}/versions/upload"), &[("Authorization", auth), ("Content-Type", &content_type)], Some(body))
    };
    // No role: invisible everywhere, and nothing changes.
    assert_eq!(as_bob("GET", &format!("/v1/models/{id}")).status, 404);
    assert_eq!(as_bob("GET", &format!("/api/v1/models/{id}")).status, 404);
    assert_eq!(as_bob("DELETE", &format!("/v1/models/{id}")).status, 404);
    assert_eq!(as_bob("DELETE", &format!("/api/v1/models/{id}")).status, 404);
    assert_eq!(upload(&bob_auth).status, 404);
    let listed = as_bob("GET", "/v1/models").json();
    assert!(!listed.to_string().contains(&id), "{listed}");
    let listed = as_bob("GET", "/api/v1/models").json();
    assert!(!listed.to_string().contains(&id), "{listed}");
    assert_eq!(listed["total"], 0, "{listed}");
    // Read-only: visible, but uploads and deletes are refused.
    let grant = json!({"data": [{"username": "bob", "role": "CONSUMER", "canShare": false}]});
    assert_eq!(as_user(&s, &alice, "PATCH", &format!("{API}/customModels/{id}/accessControl/"), Some(&grant)).status, 204);
    assert_eq!(as_bob("GET", &format!("/v1/models/{id}")).status, 200);
    assert_eq!(as_bob("GET", &format!("/api/v1/models/{id}")).status, 200);
    assert!(as_bob("GET", "/v1/models").json().to_string().contains(&id));
    assert_eq!(as_bob("DELETE", &format!("/v1/models/{id}")).status, 403);
    assert_eq!(as_bob("DELETE", &format!("/api/v1/models/{id}")).status, 403);
    assert_eq!(upload(&bob_auth).status, 403);
    assert_eq!(ok(&as_user(&s, &alice, "GET", &format!("{API}/customModels/{id}/"), None), 200)["latestVersion"], Value::Null);
    // Editor: may upload, still not delete; the owner may delete.
    let grant = json!({"data": [{"username": "bob", "role": "EDITOR"}]});
    assert_eq!(as_user(&s, &alice, "PATCH", &format!("{API}/customModels/{id}/accessControl/"), Some(&grant)).status, 204);
    assert_eq!(upload(&bob_auth).status, 201);
    assert_eq!(as_bob("DELETE", &format!("/api/v1/models/{id}")).status, 403);
    assert_eq!(s.request("DELETE", &format!("/v1/models/{id}"), &[("Authorization", &bearer(&alice))], None).status, 200);
    // A model with no roles (made by another dialect) stays the team's: bob
    // sees it and writes to it, only its creator (or an admin) deletes it.
    let made = s.request(
        "POST",
        "/v1/models",
        &[("Authorization", &bearer(&alice)), ("Content-Type", "application/json")],
        Some(json!({"name": "shared"}).to_string().into_bytes()),
    );
    let shared = made.json()["id"].as_str().unwrap().to_string();
    assert_eq!(as_bob("GET", &format!("/v1/models/{shared}")).status, 200);
    assert_eq!(as_bob("DELETE", &format!("/v1/models/{shared}")).status, 403);
    assert_eq!(s.delete(&format!("/v1/models/{shared}")).status, 200);
}

/// A baseEnvironmentVersionId of another team's (or an invisible)
/// environment is "not found", with one message that names no other id.
#[test]
fn base_environment_versions_do_not_leak_across_teams() {
    let s = Server::start();
    let (env, vid) = built_env(&s);
    assert!(s.cli(&["teams", "add", "other"]).status.success());
    let carol = user_key(&s, "carol", Some("other"));
    let bob = user_key(&s, "bob", None);
    let mut messages = Vec::new();
    for key in [&carol, &bob] {
        let m = as_user(&s, key, "POST", &format!("{API}/customModels/"), Some(&json!({"name": "m", "targetType": "Anomaly"})));
        let model = ok(&m, 201)["id"].as_str().unwrap().to_string();
        let (content_type, body) = common::multipart_body(&[
            Part::Field("baseEnvironmentVersionId", &vid),
            Part::File { name: "file", filename: "custom.py", bytes: b"x = 1\n" },
            Part::Field("filePath", "custom.py"),
        ]);
        let r = s.request(
            "POST",
            &format!("{API}/customModels/{model}/versions/"),
            &[("Authorization", &format!("Token {key}")), ("Content-Type", &content_type)],
            Some(body),
        );
        assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(!text.contains(&env), "the error names the real environment: {text}");
        messages.push(r.json()["message"].clone());
    }
    assert_eq!(messages[0], messages[1]);
    assert_eq!(messages[0], json!(format!("baseEnvironmentVersionId: environment version {vid} not found")));
}

/// Sends `parts` text fields of `part_bytes` each as one streamed
/// multipart request on a raw connection (the server may answer and close
/// before the body is sent); returns the status.
fn post_many_text_parts(s: &Server, path: &str, parts: usize, part_bytes: usize) -> u16 {
    let filler = vec![b'a'; part_bytes];
    let mut body_len = 0usize;
    let head = |i: usize| format!("--{}\r\nContent-Disposition: form-data; name=\"field{i}\"\r\n\r\n", common::BOUNDARY);
    for i in 0..parts {
        body_len += head(i).len() + part_bytes + 2;
    }
    let tail = format!("--{}--\r\n", common::BOUNDARY);
    body_len += tail.len();
    let mut stream = std::net::TcpStream::connect(&s.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={}\r\nContent-Length: {body_len}\r\n\r\n",
        s.addr,
        s.key,
        common::BOUNDARY
    );
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(request.as_bytes())?;
        for i in 0..parts {
            writer.write_all(head(i).as_bytes())?;
            writer.write_all(&filler)?;
            writer.write_all(b"\r\n")?;
        }
        writer.write_all(tail.as_bytes())
    });
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&reply);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status line: {text:?}"))
}

/// Text parts share one budget per request: a hundred fields of almost
/// 1 MiB each are refused early, and the server does not hold them.
#[test]
fn text_parts_share_one_budget_and_paths_are_counted() {
    let s = Server::start();
    let model = regression_model(&s);
    let status = post_many_text_parts(&s, &format!("{API}/customModels/{model}/versions/"), 100, 1024 * 1024 - 1024);
    assert!((400..500).contains(&status), "status {status}");
    let env = create_env(&s, "budget env");
    let status = post_many_text_parts(&s, &format!("{API}/executionEnvironments/{env}/versions/"), 100, 60 * 1024);
    assert!((400..500).contains(&status), "status {status}");
    let peak_mib = s.peak_rss_kib() / 1024;
    assert!(peak_mib < 64, "server peak RSS {peak_mib} MiB after ~100 MiB of text fields");
    // 1,001 filesToDelete (or filePath) values are refused, however small.
    let ids: Vec<String> = (0..1001).map(|i| format!("id{i}")).collect();
    let parts: Vec<Part> = ids.iter().map(|id| Part::Field("filesToDelete", id)).collect();
    let r = patch_multipart(&s, &format!("{API}/customModels/{model}/versions/"), &parts);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().unwrap().contains("filesToDelete"));
}

/// A requirements.txt over 1 MiB is refused, not cut at 1 MiB (which here
/// would drop the last, valid line and store a version without it).
#[test]
fn oversized_requirements_are_refused_not_truncated() {
    let s = Server::start();
    let (env, _) = built_env(&s);
    let model = regression_model(&s);
    let mut requirements = Vec::new();
    let comment = format!("#{}\n", "x".repeat(1022));
    for _ in 0..1024 {
        requirements.extend_from_slice(comment.as_bytes());
    }
    assert_eq!(requirements.len(), 1024 * 1024);
    requirements.extend_from_slice(b"numpy==1.26.0\n");
    let r = s.post_multipart(
        &format!("{API}/customModels/{model}/versions/"),
        &[
            Part::Field("baseEnvironmentId", &env),
            Part::File { name: "file", filename: "requirements.txt", bytes: &requirements },
            Part::Field("filePath", "requirements.txt"),
        ],
    );
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().unwrap().contains("requirements.txt"));
}

/// `a` and `a/b` cannot both be files of one version (no zip or folder
/// can hold them): 422, on POST and on a PATCH that adds one to the other.
#[test]
fn a_file_cannot_also_be_a_folder() {
    let s = Server::start();
    let (env, _) = built_env(&s);
    let model = regression_model(&s);
    let url = format!("{API}/customModels/{model}/versions/");
    let r = s.post_multipart(
        &url,
        &[
            Part::Field("baseEnvironmentId", &env),
            Part::File { name: "file", filename: "a", bytes: b"1" },
            Part::Field("filePath", "a"),
            Part::File { name: "file", filename: "b", bytes: b"2" },
            Part::Field("filePath", "a/b"),
        ],
    );
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let r = s.post_multipart(
        &url,
        &[Part::Field("baseEnvironmentId", &env), Part::File { name: "file", filename: "a", bytes: b"1" }, Part::Field("filePath", "src")],
    );
    ok(&r, 201);
    let r = patch_multipart(&s, &url, &[Part::File { name: "file", filename: "u.py", bytes: b"2" }, Part::Field("filePath", "src/u.py")]);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    // Siblings that merely share a prefix are fine.
    let r = patch_multipart(&s, &url, &[Part::File { name: "file", filename: "s", bytes: b"3" }, Part::Field("filePath", "src2/x.py")]);
    ok(&r, 201);
}

/// Below owner rank, sharing cannot touch anyone at or above one's own
/// rank; ADMIN counts as an owner for "the last owner" rule.
#[test]
fn sharing_cannot_demote_or_revoke_higher_ranks() {
    let s = Server::start();
    let alice = user_key(&s, "alice", None);
    let bob = user_key(&s, "bob", None);
    let carol = user_key(&s, "carol", None);
    for u in ["dave", "erin"] {
        user_key(&s, u, None);
    }
    let created = as_user(&s, &alice, "POST", &format!("{API}/customModels/"), Some(&json!({"name": "m", "targetType": "Anomaly"})));
    let id = ok(&created, 201)["id"].as_str().unwrap().to_string();
    let acl = format!("{API}/customModels/{id}/accessControl/");
    let patch = |key: &str, body: Value| as_user(&s, key, "PATCH", &acl, Some(&body)).status;
    // Two owners, so that the last-owner rule does not hide the rank rule.
    assert_eq!(
        patch(&alice, json!({"data": [
            {"username": "erin", "role": "OWNER"},
            {"username": "bob", "role": "CONSUMER", "canShare": true},
            {"username": "carol", "role": "EDITOR", "canShare": true},
        ]})),
        204
    );
    // A sharing CONSUMER may not revoke or demote an owner, nor an EDITOR, nor itself up.
    assert_eq!(patch(&bob, json!({"data": [{"username": "alice", "role": null}]})), 403);
    assert_eq!(patch(&bob, json!({"data": [{"username": "alice", "role": "CONSUMER"}]})), 403);
    assert_eq!(patch(&bob, json!({"data": [{"username": "carol", "role": "CONSUMER"}]})), 403);
    // A sharing EDITOR may change a CONSUMER, but not an owner.
    assert_eq!(patch(&carol, json!({"data": [{"username": "alice", "role": "EDITOR"}]})), 403);
    assert_eq!(patch(&carol, json!({"data": [{"username": "bob", "role": "EDITOR", "canShare": false}]})), 204);
    let list = ok(&as_user(&s, &alice, "GET", &acl, None), 200);
    let role_of = |name: &str| list["data"].as_array().unwrap().iter().find(|e| e["username"] == name).map(|e| e["role"].clone());
    assert_eq!(role_of("alice"), Some(json!("OWNER")));
    assert_eq!(role_of("erin"), Some(json!("OWNER")));
    assert_eq!(role_of("bob"), Some(json!("EDITOR")));
    // ADMIN is owner rank: with dave as ADMIN, both OWNERs may leave.
    assert_eq!(patch(&alice, json!({"data": [{"username": "dave", "role": "ADMIN"}, {"username": "erin", "role": null}]})), 204);
    assert_eq!(patch(&alice, json!({"data": [{"username": "alice", "role": null}]})), 204);
    assert_eq!(as_user(&s, &alice, "GET", &format!("{API}/customModels/{id}/"), None).status, 404);
}
