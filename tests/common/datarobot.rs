//! DataRobot custom models as the compute tests need them: an environment,
//! a model, a version of fixture files, a dataset, and a custom model test
//! run to its verdict through the status route.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{ok, user_key, Part, Server};

pub const API: &str = "/api/v2";

/// How long one DRUM run may take: a cold start is 2–7 s on an idle 2-core
/// machine and several times that while other tests run theirs.
pub const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// How often a poll looks again.
pub const POLL: Duration = Duration::from_millis(100);

// ----------------------------------------------------------------------------
// Setup: environment, model, version, dataset.

/// Every file of fixtures/compute/<name>/, as (path in the version, bytes).
pub fn fixture(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compute").join(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| (entry.file_name().into_string().unwrap(), std::fs::read(entry.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// A fixture with one more file (a requirements.txt…).
pub fn fixture_with(name: &str, path: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = fixture(name);
    files.retain(|(p, _)| p != path);
    files.push((path.to_string(), bytes.to_vec()));
    files
}

/// A gzipped tar of one Dockerfile: an environment's docker context.
pub fn docker_context(dockerfile: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

pub fn id_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_string()
}

/// The path of an absolute URL this server issued.
pub fn path_of<'a>(s: &Server, url: &'a str) -> &'a str {
    url.split_once(&s.addr).unwrap_or_else(|| panic!("{url} is not an absolute URL of {}", s.addr)).1
}

/// Polls `probe` until it returns Ok, failing after `deadline` with the
/// last state it described.
pub fn poll<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + deadline;
    loop {
        match probe() {
            Ok(done) => return done,
            Err(state) => assert!(Instant::now() < until, "{what} did not happen within {} s; last: {state}", deadline.as_secs()),
        }
        std::thread::sleep(POLL);
    }
}

/// An execution environment version sent a docker context (`FROM
/// python:3.11-slim` unless told otherwise), not waiting for its build.
pub fn post_environment_version(s: &Server, env: &str, dockerfile: &str) -> String {
    let context = docker_context(dockerfile);
    let r = s.post_multipart(
        &format!("{API}/executionEnvironments/{env}/versions/"),
        &[Part::Field("label", "v1"), Part::File { name: "docker_context", filename: "context.tar.gz", bytes: &context }],
    );
    id_of(&ok(&r, 202), "id")
}

pub fn environment_build_status(s: &Server, env: &str, version: &str) -> String {
    let v = ok(&s.get(&format!("{API}/executionEnvironments/{env}/versions/{version}/")), 200);
    id_of(&v, "buildStatus")
}

/// An environment whose version built (validated, without docker).
pub fn python_environment(s: &Server) -> String {
    let r = s.post_json(&format!("{API}/executionEnvironments/"), &json!({"name": "Python 3.11", "programmingLanguage": "python"}));
    let env = id_of(&ok(&r, 201), "id");
    let version = post_environment_version(s, &env, "FROM python:3.11-slim\n");
    poll("the environment build", Duration::from_secs(60), || match environment_build_status(s, &env, &version).as_str() {
        "success" => Ok(()),
        "failed" => panic!("the environment build failed"),
        other => Err(other.to_string()),
    });
    env
}

pub fn regression() -> Value {
    json!({"name": "compute test", "targetType": "Regression", "targetName": "y", "language": "python"})
}

/// A new version of `model` on `env` holding `files`, with extra form fields.
pub fn add_version(s: &Server, model: &str, env: &str, files: &[(String, Vec<u8>)], fields: &[(&str, &str)]) -> String {
    let mut parts = vec![Part::Field("baseEnvironmentId", env)];
    for (path, bytes) in files {
        parts.push(Part::File { name: "file", filename: path, bytes });
        parts.push(Part::Field("filePath", path));
    }
    parts.extend(fields.iter().map(|(k, v)| Part::Field(k, v)));
    id_of(&ok(&s.post_multipart(&format!("{API}/customModels/{model}/versions/"), &parts), 201), "id")
}

/// Uploads a CSV as a dataset with `key` (the admin's when None) and
/// waits until it is COMPLETED.
pub fn dataset_as(s: &Server, key: Option<&str>, csv: &str) -> String {
    let auth = key.map(|k| format!("Token {k}")).unwrap_or_else(|| s.auth());
    let (content_type, body) = super::multipart_body(&[Part::File { name: "file", filename: "data.csv", bytes: csv.as_bytes() }]);
    let headers = [("Authorization", auth.as_str()), ("Content-Type", content_type.as_str())];
    let r = s.request("POST", &format!("{API}/datasets/fromFile/"), &headers, Some(body));
    let id = id_of(&ok(&r, 202), "catalogId");
    poll("the dataset ingest", Duration::from_secs(60), || {
        let d = ok(&s.request("GET", &format!("{API}/datasets/{id}/"), &headers[..1], None), 200);
        match d["processingState"].as_str() {
            Some("COMPLETED") => Ok(()),
            Some("ERROR") => panic!("the dataset failed to ingest: {d}"),
            _ => Err(d.to_string()),
        }
    });
    id
}

pub fn dataset(s: &Server, csv: &str) -> String {
    dataset_as(s, None, csv)
}

/// 20 rows of two features and the target `y`; with `expected`, a column
/// `expected` = that factor times x1 (predictions to verify against).
pub fn rows_csv(expected: Option<f64>) -> String {
    let mut csv = String::from("x1,x2,y");
    if expected.is_some() {
        csv.push_str(",expected");
    }
    csv.push('\n');
    for i in 1..=20 {
        let (x1, x2) = (i as f64 * 0.5, (i % 3) as f64);
        csv.push_str(&format!("{x1},{x2},{}", 2.0 * x1 + 0.5 * x2));
        if let Some(factor) = expected {
            csv.push_str(&format!(",{}", factor * x1));
        }
        csv.push('\n');
    }
    csv
}

/// What a custom model test needs, made once per test.
pub struct Setup {
    pub env: String,
    pub model: String,
    pub version: String,
    pub dataset: Option<String>,
}

/// The shared setup: an environment with a built version, a custom model
/// (`model` is its create body), a version holding `files` (plus `fields`)
/// and, when `csv` is given, a COMPLETED dataset.
pub fn setup(s: &Server, model: Value, files: &[(String, Vec<u8>)], fields: &[(&str, &str)], csv: Option<&str>) -> Setup {
    let env = python_environment(s);
    let model = id_of(&ok(&s.post_json(&format!("{API}/customModels/"), &model), 201), "id");
    let version = add_version(s, &model, &env, files, fields);
    let dataset = csv.map(|csv| dataset(s, csv));
    Setup { env, model, version, dataset }
}

/// The usual setup: a Regression model (target y) of one fixture, and the
/// 20-row dataset.
pub fn regression_setup(s: &Server, fixture_name: &str) -> Setup {
    setup(s, regression(), &fixture(fixture_name), &[], Some(&rows_csv(None)))
}

/// The body of `POST customModelTests/` for `setup`, plus `extra` keys.
pub fn test_body(setup: &Setup, version: &str, extra: Value) -> Value {
    let mut body = json!({"customModelId": setup.model, "customModelVersionId": version});
    if let Some(d) = &setup.dataset {
        body["datasetId"] = json!(d);
    }
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// A started test: its id (the model's first listed test right after the
/// POST, as the official client finds it) and the POST's status URL.
pub struct Started {
    pub id: String,
    pub status_url: String,
}

pub fn start_test(s: &Server, body: &Value) -> Started {
    let r = s.post_json(&format!("{API}/customModelTests/"), body);
    let created = ok(&r, 202);
    let status_url = r.header("Location").expect("a Location").to_string();
    assert_eq!(status_url, format!("http://{}{API}/status/{}/", s.addr, id_of(&created, "statusId")));
    let model = body["customModelId"].as_str().unwrap();
    let listed = ok(&s.get(&format!("{API}/customModelTests/?customModelId={model}")), 200);
    Started { id: id_of(&listed["data"][0], "id"), status_url }
}

/// Polls the status route (not following redirects) until its 303, which
/// must point at the test, whatever the verdict.
pub fn wait_status_303(s: &Server, started: &Started) {
    let reply = poll("the test's status redirect", RUN_DEADLINE, || {
        let r = s.get_unfollowed(path_of(s, &started.status_url));
        match r.status {
            303 => Ok(r),
            200 if matches!(r.json()["status"].as_str(), Some("INITIALIZED" | "RUNNING")) => Err(r.json().to_string()),
            _ => panic!("the status route answered {}: {}\n--- test log\n{}", r.status, String::from_utf8_lossy(&r.body), test_log(s, &started.id)),
        }
    });
    assert_eq!(reply.header("Location"), Some(format!("http://{}{API}/customModelTests/{}/", s.addr, started.id).as_str()));
}

pub fn test_log(s: &Server, id: &str) -> String {
    String::from_utf8_lossy(&s.get(&format!("{API}/customModelTests/{id}/log/")).body).into_owned()
}

pub fn get_test(s: &Server, id: &str) -> Value {
    ok(&s.get(&format!("{API}/customModelTests/{id}/")), 200)
}

/// Tests `setup`'s version (with `extra` in the body) to its verdict.
pub fn run_setup(s: &Server, setup: &Setup, extra: Value) -> Value {
    run_test(s, &test_body(setup, &setup.version, extra))
}

/// Runs a test to its verdict (through the status route) and returns it.
pub fn run_test(s: &Server, body: &Value) -> Value {
    let started = start_test(s, body);
    wait_status_303(s, &started);
    let test = get_test(s, &started.id);
    assert!(!matches!(test["overallStatus"].as_str(), Some("in_progress" | "queued")), "the status said done: {test}");
    test
}

/// A check's (status, message).
pub fn check(test: &Value, name: &str) -> (String, String) {
    let entry = &test["testingStatus"][name];
    let status = entry["status"].as_str().unwrap_or_else(|| panic!("no {name} in {test}"));
    (status.to_string(), entry["message"].as_str().unwrap_or_default().to_string())
}

/// The message of a check that must have `status`.
pub fn check_is(test: &Value, name: &str, status: &str) -> String {
    let (actual, message) = check(test, name);
    assert_eq!(actual, status, "{name}: {test}");
    message
}

pub fn statuses(test: &Value, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| check(test, n).0).collect()
}

/// A test that must have ended as `overall`, with its log when it did not.
pub fn assert_overall(s: &Server, test: &Value, overall: &str) {
    assert_eq!(test["overallStatus"], overall, "{test}\n--- log\n{}", test_log(s, test["id"].as_str().unwrap()));
}

/// A second team with its own user and key, made with the CLI.
pub fn other_team_key(s: &Server) -> String {
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    user_key(s, "carol", Some("others"))
}


/// The four checks every test reports (the client requires them).
pub const SEED_CHECKS: [&str; 4] = ["errorCheck", "longRunningService", "nullValueImputation", "sideEffects"];

/// Polls a version's dependency build until it is terminal.
pub fn wait_dependency_build(s: &Server, model: &str, version: &str) -> Value {
    let path = format!("{API}/customModels/{model}/versions/{version}/dependencyBuild/");
    poll("the dependency build", RUN_DEADLINE, || {
        let build = ok(&s.get(&path), 200);
        match build["buildStatus"].as_str() {
            Some("success" | "failed") => Ok(build),
            _ => Err(build.to_string()),
        }
    })
}

pub fn dependency_build_log(s: &Server, model: &str, version: &str) -> String {
    let r = s.get(&format!("{API}/customModels/{model}/versions/{version}/dependencyBuildLog/"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    String::from_utf8(r.body).unwrap()
}
