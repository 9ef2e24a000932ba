//! DataRobot custom templates against the real binary (issue 15's "Model
//! templates"): the built-in catalogue every team reads; a team admin's own
//! templates (create from an archive or file/filePath pairs, patch, delete;
//! 403 for a non-admin and for built-ins, 404 across teams; gc keeps their
//! files); `customModels/fromModelTemplate/` making a model and a version
//! that passes a custom model test on DRUM (the regression, binary and
//! unstructured templates as they are, the scikit-learn one after its
//! dependency build); its environment rules and errors; and the CLI,
//! offline and with `--server`.

mod common;

use std::io::Write;

use common::datarobot::*;
use common::{as_user, ok, user_key, Part, Server};
use serde_json::{json, Value};

const BUILTINS: [&str; 4] = ["python3-regression", "python3-binary", "python3-unstructured-echo", "python3-sklearn-regression"];

/// Keys `dr.CustomTemplate` requires, which must be present and not null;
/// its strings must not be blank.
fn assert_client_shape(t: &Value) {
    for key in ["id", "name", "description", "templateSubType", "templateType"] {
        assert!(t[key].as_str().is_some_and(|s| !s.trim().is_empty()), "{key} in {t}");
    }
    assert!(t["enabled"].is_boolean(), "{t}");
    assert!(t["items"].is_array() && t["templateMetadata"].is_object(), "{t}");
    for key in ["environmentId", "environmentVersionId"] {
        assert!(t["defaultEnvironment"][key].as_str().is_some_and(|s| !s.is_empty()), "{t}");
    }
    for item in t["items"].as_array().unwrap() {
        assert!(item["id"].is_string() && item["name"].is_string(), "{item}");
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|t| id_of(t, "id")).collect()
}

/// A team admin (or not) in a team of its own making, with a key.
fn key_in(s: &Server, team: &str, user: &str, admin: bool) -> String {
    if team != "default" {
        let _ = s.cli(&["teams", "add", team]);
    }
    let mut args = vec!["users", "add", user, "--team", team];
    if admin {
        args.push("--admin");
    }
    let out = s.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.cli(&["keys", "create", "--user", user]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A zip of (path, text) files, as the client sends a template folder.
fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, text) in files {
        zip.start_file(*path, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

const REGRESSION_META: &str = r#"{"tags": ["ours"], "templateTypeSpecificResources": {"targetType": "Regression", "targetName": "y"}}"#;

/// The client's create: multipart fields, JSON as text, and the folder as
/// one zip in `file` named template-content, posted to `customTemplates//`.
fn create_parts<'a>(name: &'a str, zip: &'a [u8], metadata: &'a str) -> Vec<Part<'a>> {
    vec![
        Part::Field("name", name),
        Part::Field("description", "a template of our own"),
        Part::Field("templateType", "customModel"),
        Part::Field("templateSubType", "Regression"),
        Part::Field("templateMetadata", metadata),
        Part::Field("defaultEnvironment", r#"{"environmentId": "e1", "environmentVersionId": "v1"}"#),
        Part::Field("enabled", "true"),
        Part::File { name: "file", filename: "template-content", bytes: zip },
    ]
}

fn post_multipart_as(s: &Server, key: &str, method: &str, path: &str, parts: &[Part]) -> common::Reply {
    let (content_type, body) = common::multipart_body(parts);
    let auth = format!("Token {key}");
    s.request(method, path, &[("Authorization", auth.as_str()), ("Content-Type", content_type.as_str())], Some(body))
}

fn from_template(s: &Server, body: Value) -> common::Reply {
    s.post_json(&format!("{API}/customModels/fromModelTemplate/"), &body)
}

fn template_body(id: &str) -> Value {
    json!({"templateId": id, "resourceBundleId": "cpu.small", "secretConfigId": "secret-1"})
}

/// Regression/binary test data: the features the templates' coefficients
/// name, and their target.
fn features_csv() -> String {
    let mut csv = String::from("x1,x2,target\n");
    for i in 1..=20 {
        let (x1, x2) = (i as f64 * 0.5, (i % 3) as f64);
        csv.push_str(&format!("{x1},{x2},{}\n", 2.0 * x1 + 0.5 * x2));
    }
    csv
}

// ----------------------------------------------------------------------------
// The catalogue.

#[test]
fn every_team_lists_and_reads_the_builtins() {
    let s = Server::start();
    let page = ok(&s.get(&format!("{API}/customTemplates/")), 200);
    assert_eq!(ids(&page), BUILTINS, "{page}");
    assert!(page["next"].is_null());
    for t in page["data"].as_array().unwrap() {
        assert_client_shape(t);
        assert_eq!(t["isBuiltIn"], true);
        assert_eq!(t["templateType"], "customModel");
        assert!(t["items"].as_array().unwrap().iter().any(|i| i["name"] == "custom.py"), "{t}");
        assert!(t["templateMetadata"]["readme"].as_str().is_some_and(|r| r.starts_with("# ")), "{t}");
    }
    let sklearn = ok(&s.get(&format!("{API}/customTemplates/python3-sklearn-regression/")), 200);
    let files: Vec<&str> = sklearn["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(files, ["README.md", "custom.py", "requirements.txt", "train.csv"]);

    // Filters, order and pages; the client's snake_case orderBy too.
    let binary = ok(&s.get(&format!("{API}/customTemplates/?templateSubType=Binary")), 200);
    assert_eq!(ids(&binary), ["python3-binary"]);
    assert_eq!(ids(&ok(&s.get(&format!("{API}/customTemplates/?search=SCIKIT")), 200)), ["python3-sklearn-regression"]);
    assert_eq!(ids(&ok(&s.get(&format!("{API}/customTemplates/?tag=unstructured")), 200)), ["python3-unstructured-echo"]);
    assert_eq!(ids(&ok(&s.get(&format!("{API}/customTemplates/?templateType=customMetric")), 200)), Vec::<String>::new());
    let by_name = ids(&ok(&s.get(&format!("{API}/customTemplates/?orderBy=-name")), 200));
    let mut sorted = by_name.clone();
    sorted.sort_by_key(|id| std::cmp::Reverse(ok(&s.get(&format!("{API}/customTemplates/{id}/")), 200)["name"].as_str().unwrap().to_lowercase()));
    assert_eq!(by_name, sorted);
    assert_eq!(ids(&ok(&s.get(&format!("{API}/customTemplates/?orderBy=template_sub_type")), 200))[0], "python3-binary");
    assert_eq!(s.get(&format!("{API}/customTemplates/?orderBy=size")).status, 422);
    let first = ok(&s.get(&format!("{API}/customTemplates/?limit=3&templateType=customModel")), 200);
    assert_eq!(ids(&first).len(), 3);
    let next = first["next"].as_str().expect("a next page");
    assert!(next.contains("templateType=customModel") && next.contains("offset=3"), "{next}");
    assert_eq!(ids(&ok(&s.get(path_of(&s, next)), 200)), ["python3-sklearn-regression"]);

    // One file's text, as the client's download_content reads it.
    let regression = ok(&s.get(&format!("{API}/customTemplates/python3-regression")), 200);
    let item = regression["items"].as_array().unwrap().iter().find(|i| i["name"] == "custom.py").unwrap();
    let content = ok(&s.get(&format!("{API}/customTemplates/python3-regression/files/{}/", id_of(item, "id"))), 200);
    assert!(content["content"].as_str().unwrap().contains("def score(data, model"), "{content}");
    assert_eq!(s.get(&format!("{API}/customTemplates/python3-regression/files/nope/")).status, 404);
    assert_eq!(s.get(&format!("{API}/customTemplates/nope/")).status, 404);

    // Another team, and a user who is not an admin, read them all the same.
    let carol = key_in(&s, "others", "carol", false);
    let theirs = ok(&as_user(&s, &carol, "GET", &format!("{API}/customTemplates/"), None), 200);
    assert_eq!(ids(&theirs), BUILTINS);
}

// ----------------------------------------------------------------------------
// A team's own templates.

#[test]
fn team_admins_create_patch_and_delete_their_own_templates() {
    let s = Server::start();
    let archive = zip_of(&[("custom.py", "def load_model(d):\n    return 1\n"), ("src/helpers.py", "X = 1\n")]);
    // The client's path: `customTemplates//`.
    let r = s.post_multipart(&format!("{API}/customTemplates//"), &create_parts("Ours", &archive, REGRESSION_META));
    let created = ok(&r, 201);
    let id = id_of(&created, "customTemplateId");
    assert_eq!(created["id"], id.as_str());
    let got = ok(&s.get(&format!("{API}/customTemplates/{id}/")), 200);
    assert_client_shape(&got);
    assert_eq!(got["isBuiltIn"], false);
    assert_eq!(got["createdBy"], "admin");
    assert_eq!(got["defaultEnvironment"], json!({"environmentId": "e1", "environmentVersionId": "v1"}));
    let paths: Vec<&str> = got["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(paths, ["custom.py", "src/helpers.py"]);
    assert_eq!(ids(&ok(&s.get(&format!("{API}/customTemplates/")), 200)).last(), Some(&id));
    assert_eq!(ids(&ok(&s.get(&format!("{API}/customTemplates/?tag=ours")), 200)), std::slice::from_ref(&id));

    // gc keeps a template's files (the blob_references view lists them).
    let gc = s.cli(&["gc", "--grace-secs", "0"]);
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let helpers = got["items"].as_array().unwrap().iter().find(|i| i["name"] == "src/helpers.py").unwrap();
    let content = ok(&s.get(&format!("{API}/customTemplates/{id}/files/{}/", id_of(helpers, "id"))), 200);
    assert_eq!(content["content"], "X = 1\n");

    // PATCH as the client sends it without files: JSON, metadata as JSON text.
    let patch = json!({"name": "Ours, renamed", "templateMetadata": r#"{"tags": ["renamed"], "templateTypeSpecificResources": {"targetType": "Regression", "targetName": "z"}}"#, "isHidden": "true"});
    let patched = ok(&s.send_json("PATCH", &format!("{API}/customTemplates/{id}/"), &patch), 200);
    assert_eq!((patched["name"].as_str(), patched["isHidden"].as_bool()), (Some("Ours, renamed"), Some(true)));
    assert_eq!(patched["templateMetadata"]["tags"], json!(["renamed"]));
    assert_eq!(patched["description"], "a template of our own", "unsent fields stay");
    assert_eq!(patched["items"].as_array().unwrap().len(), 2, "no files sent: the files stay");
    // Hidden: listed only with showHidden.
    assert!(!ids(&ok(&s.get(&format!("{API}/customTemplates/")), 200)).contains(&id));
    assert!(ids(&ok(&s.get(&format!("{API}/customTemplates/?showHidden=True")), 200)).contains(&id));
    // PATCH with file/filePath pairs replaces every file.
    let parts = [Part::Field("description", "new files"), Part::File { name: "file", filename: "m.py", bytes: b"def load_model(d):\n    return 2\n" }, Part::Field("filePath", "custom.py")];
    let replaced = ok(&post_multipart_as(&s, &s.key, "PATCH", &format!("{API}/customTemplates/{id}/"), &parts), 200);
    assert_eq!(replaced["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect::<Vec<_>>(), ["custom.py"]);
    assert_eq!(replaced["description"], "new files");

    // What a create or PATCH may not be.
    let bad_meta = r#"{"templateTypeSpecificResources": {"targetName": "y"}}"#;
    let r = s.post_multipart(&format!("{API}/customTemplates/"), &create_parts("No type", &archive, bad_meta));
    assert_eq!(r.status, 422, "a customModel template must say its target type");
    assert!(String::from_utf8_lossy(&r.body).contains("templateTypeSpecificResources"), "{}", String::from_utf8_lossy(&r.body));
    let r = s.post_multipart(&format!("{API}/customTemplates/"), &create_parts("Tags", &archive, r#"{"tags": "x"}"#));
    assert_eq!(r.status, 422, "tags the client cannot read");
    let plain = create_parts("Plain file", b"print(1)\n", REGRESSION_META);
    assert_eq!(s.post_multipart(&format!("{API}/customTemplates/"), &plain).status, 422, "one file without filePath must be an archive");
    let escaping = zip_of(&[("../custom.py", "x")]);
    assert_eq!(s.post_multipart(&format!("{API}/customTemplates/"), &create_parts("Escaping", &escaping, REGRESSION_META)).status, 422);
    assert_eq!(s.send_json("PATCH", &format!("{API}/customTemplates/{id}/"), &json!({"description": " "})).status, 422);
    assert_eq!(s.send_json("PATCH", &format!("{API}/customTemplates/{id}/"), &json!({"defaultEnvironment": {"environmentId": "e"}})).status, 422);

    // A member who is not an admin reads but cannot write: 403.
    let bob = user_key(&s, "bob", None);
    assert_eq!(as_user(&s, &bob, "GET", &format!("{API}/customTemplates/{id}/"), None).status, 200);
    assert_eq!(post_multipart_as(&s, &bob, "POST", &format!("{API}/customTemplates/"), &create_parts("Bob's", &archive, REGRESSION_META)).status, 403);
    assert_eq!(as_user(&s, &bob, "PATCH", &format!("{API}/customTemplates/{id}/"), Some(&json!({"name": "mine"}))).status, 403);
    assert_eq!(as_user(&s, &bob, "DELETE", &format!("{API}/customTemplates/{id}/"), None).status, 403);

    // Built-ins are read-only, for admins too.
    assert_eq!(s.delete(&format!("{API}/customTemplates/python3-regression/")).status, 403);
    assert_eq!(s.send_json("PATCH", &format!("{API}/customTemplates/python3-binary/"), &json!({"name": "x"})).status, 403);

    // Another team's admin: the template does not exist for them.
    let dave = key_in(&s, "others", "dave", true);
    for method in ["GET", "DELETE"] {
        assert_eq!(as_user(&s, &dave, method, &format!("{API}/customTemplates/{id}/"), None).status, 404, "{method}");
    }
    assert_eq!(as_user(&s, &dave, "PATCH", &format!("{API}/customTemplates/{id}/"), Some(&json!({"name": "x"}))).status, 404);
    assert!(!ids(&ok(&as_user(&s, &dave, "GET", &format!("{API}/customTemplates/?showHidden=true"), None), 200)).contains(&id));
    let r = as_user(&s, &dave, "POST", &format!("{API}/customModels/fromModelTemplate/"), Some(&template_body(&id)));
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"].as_str().unwrap().starts_with("Invalid template data"), "{}", r.json());

    assert_eq!(s.delete(&format!("{API}/customTemplates/{id}/")).status, 204);
    assert_eq!(s.get(&format!("{API}/customTemplates/{id}/")).status, 404);
    assert_eq!(s.delete(&format!("{API}/customTemplates/{id}/")).status, 404);
}

// ----------------------------------------------------------------------------
// Models from templates.

/// Makes a model from `template` (on the team's python environment), checks
/// what the template gave it, and runs a custom model test of its version.
fn model_from(s: &Server, template: &str, env: &str) -> (String, String, Value) {
    let made = ok(&from_template(s, template_body(template)), 201);
    let (model, version) = (id_of(&made, "customModelId"), id_of(&made, "customModelVersionId"));
    let m = ok(&s.get(&format!("{API}/customModels/{model}/")), 200);
    assert_eq!(m["template"], json!({"templateId": template, "modelType": "invalid"}), "{m}");
    assert_eq!(m["resourceBundleId"], "cpu.small");
    assert_eq!(m["latestVersion"]["id"], version.as_str());
    assert_eq!(m["latestVersion"]["baseEnvironmentId"], env);
    assert_eq!(m["latestVersion"]["label"], "v1.0");
    let t = ok(&s.get(&format!("{API}/customTemplates/{template}/")), 200);
    let mut want: Vec<&str> = t["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    let mut have: Vec<&str> = m["latestVersion"]["items"].as_array().unwrap().iter().map(|i| i["filePath"].as_str().unwrap()).collect();
    want.sort();
    have.sort();
    assert_eq!(have, want);
    (model, version, m)
}

/// A compute server with a python environment, a model made from
/// `template` on it (checked by `model_from`), and, for structured
/// templates, a dataset of the features the templates name.
struct Made {
    s: Server,
    model: String,
    version: String,
    m: Value,
    data: Option<String>,
}

fn made_from(template: &str, structured: bool) -> Made {
    let s = Server::start_compute(&[]);
    let env = python_environment(&s);
    let data = structured.then(|| dataset(&s, &features_csv()));
    let (model, version, m) = model_from(&s, template, &env);
    Made { s, model, version, m, data }
}

/// Runs a custom model test of the made version; it must succeed.
fn test_version(made: &Made) -> Value {
    let mut body = json!({"customModelId": made.model, "customModelVersionId": made.version});
    if let Some(d) = &made.data {
        body["datasetId"] = json!(d);
    }
    let test = run_test(&made.s, &body);
    assert_overall(&made.s, &test, "succeeded");
    test
}

#[test]
fn the_regression_template_makes_a_model_that_passes_its_test() {
    let made = made_from("python3-regression", true);
    let m = &made.m;
    assert_eq!((m["targetType"].as_str(), m["targetName"].as_str(), m["language"].as_str()), (Some("Regression"), Some("target"), Some("python")));
    let test = test_version(&made);
    assert_eq!(statuses(&test, &SEED_CHECKS), ["succeeded"; 4], "{test}");
}

#[test]
fn the_binary_template_makes_a_model_that_passes_its_test_with_its_labels() {
    let made = made_from("python3-binary", true);
    let m = &made.m;
    assert_eq!((m["targetType"].as_str(), m["positiveClassLabel"].as_str(), m["negativeClassLabel"].as_str()), (Some("Binary"), Some("yes"), Some("no")));
    let test = test_version(&made);
    assert_eq!(statuses(&test, &SEED_CHECKS), ["succeeded"; 4], "{test}");
    let log = test_log(&made.s, &id_of(&test, "id"));
    assert!(log.contains("--positive-class-label yes --negative-class-label no"), "{log}");
}

#[test]
fn the_unstructured_template_makes_a_model_that_passes_its_test() {
    let made = made_from("python3-unstructured-echo", false);
    assert_eq!(made.m["targetType"], "Unstructured");
    assert!(made.m["targetName"].is_null());
    let test = test_version(&made);
    assert_eq!(statuses(&test, &["longRunningService", "errorCheck"]), ["succeeded"; 2], "{test}");
}

#[test]
fn the_scikit_learn_template_passes_after_its_dependency_build() {
    let made = made_from("python3-sklearn-regression", true);
    let (s, model, version) = (&made.s, &made.model, &made.version);
    let deps: Vec<&str> = made.m["latestVersion"]["dependencies"].as_array().unwrap().iter().map(|d| d["packageName"].as_str().unwrap()).collect();
    assert_eq!(deps, ["scikit-learn"]);
    let r = s.request("POST", &format!("{API}/customModels/{model}/versions/{version}/dependencyBuild/"), &[], None);
    ok(&r, 202);
    let build = wait_dependency_build(s, model, version);
    let log = dependency_build_log(s, model, version);
    assert_eq!(build["buildStatus"], "success", "{build}\n--- log\n{log}");
    assert!(log.contains("scikit-learn") || log.contains("scikit_learn"), "{log}");
    let test = test_version(&made);
    assert_eq!(statuses(&test, &SEED_CHECKS), ["succeeded"; 4], "{test}");
}

/// The request's rules and the environment a model lands on, without DRUM.
#[test]
fn from_model_template_checks_its_request_and_picks_an_environment() {
    let s = Server::start();
    let path = format!("{API}/customModels/fromModelTemplate/");
    // The seed's three fields are required.
    for missing in ["templateId", "resourceBundleId", "secretConfigId"] {
        let mut body = template_body("python3-regression");
        body.as_object_mut().unwrap().remove(missing);
        let r = s.post_json(&path, &body);
        assert_eq!(r.status, 422, "{missing}");
        assert!(r.json()["errors"][missing].is_string(), "{}", r.json());
    }
    // An unknown template: the seed's 422 "Invalid template data".
    let r = from_template(&s, template_body("no-such-template"));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["message"], "Invalid template data: there is no template no-such-template");
    assert!(r.json()["errors"]["templateId"].is_string());

    // No python environment in the team: a 422 that says what to pass, and no model.
    let r = from_template(&s, template_body("python3-regression"));
    assert_eq!(r.status, 422);
    assert!(r.json()["errors"]["baseEnvironmentId"].as_str().unwrap().contains("pass baseEnvironmentId"), "{}", r.json());
    assert_eq!(ok(&s.get(&format!("{API}/customModels/")), 200)["totalCount"], 0);

    // An environment named in the request is used, python or not.
    let r = s.post_json(&format!("{API}/executionEnvironments/"), &json!({"name": "R", "programmingLanguage": "r"}));
    let r_env = id_of(&ok(&r, 201), "id");
    let r_version = post_environment_version(&s, &r_env, "FROM r-base:4\n");
    poll("the R environment build", std::time::Duration::from_secs(60), || match environment_build_status(&s, &r_env, &r_version).as_str() {
        "success" => Ok(()),
        other => Err(other.to_string()),
    });
    let mut body = template_body("python3-regression");
    body["baseEnvironmentId"] = json!(r_env);
    let made = ok(&from_template(&s, body), 201);
    let version = ok(&s.get(&format!("{API}/customModels/{}/versions/{}/", id_of(&made, "customModelId"), id_of(&made, "customModelVersionId"))), 200);
    assert_eq!((version["baseEnvironmentId"].as_str(), version["baseEnvironmentVersionId"].as_str()), (Some(r_env.as_str()), Some(r_version.as_str())));
    // An unknown one is a 422 and leaves no model behind.
    let models = ok(&s.get(&format!("{API}/customModels/")), 200)["totalCount"].clone();
    let mut body = template_body("python3-regression");
    body["baseEnvironmentId"] = json!("no-such-environment");
    assert_eq!(from_template(&s, body).status, 422);
    assert_eq!(ok(&s.get(&format!("{API}/customModels/")), 200)["totalCount"], models);

    // Without one, the team's newest python environment with a build.
    let py = python_environment(&s);
    let made = ok(&from_template(&s, template_body("python3-regression")), 201);
    let m = ok(&s.get(&format!("{API}/customModels/{}/", id_of(&made, "customModelId"))), 200);
    assert_eq!(m["latestVersion"]["baseEnvironmentId"], py.as_str());

    // A team template's defaultEnvironment, when the team has it, wins.
    let archive = zip_of(&[("custom.py", "def load_model(d):\n    return 1\n")]);
    let environment = json!({"environmentId": r_env, "environmentVersionId": r_version}).to_string();
    let mut parts = create_parts("On R", &archive, REGRESSION_META);
    parts.retain(|p| !matches!(p, Part::Field("defaultEnvironment", _)));
    parts.push(Part::Field("defaultEnvironment", &environment));
    let template = id_of(&ok(&s.post_multipart(&format!("{API}/customTemplates/"), &parts), 201), "id");
    let made = ok(&from_template(&s, template_body(&template)), 201);
    let m = ok(&s.get(&format!("{API}/customModels/{}/", id_of(&made, "customModelId"))), 200);
    assert_eq!((m["latestVersion"]["baseEnvironmentId"].as_str(), m["targetName"].as_str()), (Some(r_env.as_str()), Some("y")));

    // A disabled template, or one that is not a customModel template, makes nothing.
    ok(&s.send_json("PATCH", &format!("{API}/customTemplates/{template}/"), &json!({"enabled": false})), 200);
    let r = from_template(&s, template_body(&template));
    assert_eq!((r.status, r.json()["message"].as_str().unwrap().contains("disabled")), (422, true), "{}", r.json());
    ok(&s.send_json("PATCH", &format!("{API}/customTemplates/{template}/"), &json!({"enabled": true, "templateType": "customMetric"})), 200);
    let r = from_template(&s, template_body(&template));
    assert_eq!((r.status, r.json()["message"].as_str().unwrap().contains("customMetric")), (422, true), "{}", r.json());
}

// ----------------------------------------------------------------------------
// The CLI.

fn stdout_json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_cli_manages_templates_and_makes_models_offline_and_with_a_server() {
    let s = Server::start();
    let env = python_environment(&s);
    let builtin_folder = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/python3-binary");
    for remote in [false, true] {
        let cli = |args: &[&str]| {
            let mut all = vec!["--json"];
            all.extend_from_slice(args);
            if remote { s.cli_remote(&all) } else { s.cli(&all) }
        };
        let listed = stdout_json(&cli(&["custom-templates", "list", "--template-sub-type", "Binary"]));
        assert_eq!(listed.as_array().unwrap().iter().map(|t| id_of(t, "id")).collect::<Vec<_>>(), ["python3-binary"], "remote {remote}");
        assert_eq!(id_of(&stdout_json(&cli(&["custom-templates", "show", "python3-regression"])), "id"), "python3-regression");

        // A folder with a template.json (a built-in's) becomes the team's template.
        let name = format!("binary, remote {remote}");
        let created = stdout_json(&cli(&["custom-templates", "create", builtin_folder, "--name", &name]));
        assert_eq!((created["name"].as_str(), created["isBuiltIn"].as_bool()), (Some(name.as_str()), Some(false)));
        assert_eq!(created["templateMetadata"]["templateTypeSpecificResources"]["positiveClassLabel"], "yes");
        let files: Vec<&str> = created["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(files, ["README.md", "coefficients.json", "custom.py"], "template.json is not a file of the template");
        let template = id_of(&created, "id");

        let model = stdout_json(&cli(&[
            "custom-models", "create", "--from-template", &template, "--resource-bundle-id", "cpu.small", "--secret-config-id", "s",
        ]));
        assert_eq!((model["targetType"].as_str(), model["name"].as_str()), (Some("Binary"), Some(name.as_str())));
        assert_eq!(model["latestVersion"]["baseEnvironmentId"], env.as_str());
        let missing = cli(&["custom-models", "create", "--from-template", &template]);
        assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("resourceBundleId"), "{missing:?}");

        let deleted = cli(&["custom-templates", "delete", &template]);
        assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
        assert_eq!(s.get(&format!("{API}/customTemplates/{template}/")).status, 404);
        let builtin = cli(&["custom-templates", "delete", "python3-binary"]);
        assert!(!builtin.status.success() && String::from_utf8_lossy(&builtin.stderr).contains("read-only"), "{builtin:?}");
    }
}
