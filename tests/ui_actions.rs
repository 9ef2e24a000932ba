//! Acting on a model from its page (issue 25), in a real headless Chromium
//! against the real binary: editing the description, setting, moving and
//! removing aliases, adding and removing tags, a version's status, deleting
//! a version behind an in-page confirmation, uploading a version with a
//! progress bar through Octomil's and DataRobot's routes, and a read-only
//! user who is offered none of it (and whom the API refuses). Every action
//! taken through the page is checked through the API afterwards.
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).

mod common;

use common::browser::Browser;
use common::datarobot::{self as dr, API};
use common::{as_user, ok, sha256_hex, Part, Server};
use serde_json::{json, Value};

const MODELREG: &str = "/api/modelreg/v1/models";

fn octomil_model(s: &Server, name: &str) -> String {
    let r = s.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch", "description": "first words"}));
    ok(&r, 201)["id"].as_str().unwrap().to_string()
}

fn upload(s: &Server, model: &str, filename: &str, bytes: &[u8]) {
    let parts = [Part::File { name: "file", filename, bytes }, Part::Field("format", "pytorch")];
    ok(&s.post_multipart(&format!("/api/v1/models/{model}/versions/upload"), &parts), 201);
}

fn model_of(s: &Server, model: &str) -> Value {
    ok(&s.get(&format!("{MODELREG}/{model}")), 200)
}

fn version_of(s: &Server, model: &str, number: i64) -> Value {
    ok(&s.get(&format!("{MODELREG}/{model}/versions/{number}")), 200)
}

/// Opens a model's page (or one version of it) once signed in.
fn open(b: &Browser, s: &Server, model: &str, version: Option<i64>) {
    let path = match version {
        Some(n) => format!("/#/models/{model}/versions/{n}"),
        None => format!("/#/models/{model}"),
    };
    b.goto(&s.url(&path));
    b.find("#model-name");
}

fn fill(b: &Browser, css: &str, text: &str) {
    let input = b.find(css);
    b.clear(&input);
    b.type_into(&input, text);
}

#[test]
fn the_description_tags_and_aliases_change_in_place() {
    let s = Server::start();
    let model = octomil_model(&s, "fraud-xgb");
    upload(&s, &model, "a.pt", &[1u8; 1000]);
    upload(&s, &model, "b.pt", &[2u8; 2000]);
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    open(&b, &s, &model, None);

    // The description: Cancel keeps it, Save changes it.
    b.click(&b.find("#edit-description"));
    fill(&b, "#description-input", "not saved");
    b.click(&b.find("#cancel-description"));
    assert!(b.find_all("#description-input").is_empty());
    assert_eq!(model_of(&s, &model)["description"], "first words");
    b.click(&b.find("#edit-description"));
    fill(&b, "#description-input", "Scores card payments <b>live</b>");
    b.click(&b.find("#save-description"));
    b.wait_text("p.lead", "the new description", |t| t.contains("Scores card payments <b>live</b>"));
    assert_eq!(model_of(&s, &model)["description"], "Scores card payments <b>live</b>");
    // Too long for an Octomil model: the server's message, in place.
    b.click(&b.find("#edit-description"));
    let long = "x".repeat(1001);
    b.js("document.getElementById('description-input').value = arguments[0]", json!([long]));
    b.click(&b.find("#save-description"));
    let error = b.wait_text("#description-error", "the length rule", |t| !t.is_empty());
    assert_eq!(error, "description: must be at most 1000 characters");
    b.click(&b.find("#cancel-description"));

    // A model tag, added and removed (the removal asks first).
    fill(&b, "#model-tag-key", "stage");
    fill(&b, "#model-tag-value", "prod");
    b.click(&b.find("#model-tag-add"));
    b.wait_text("#model-tags", "the new tag", |t| t.contains("stage: prod"));
    // The page drawn again keeps the keyboard in the form that was used.
    assert_eq!(b.js("return document.activeElement.id", json!([])), "model-tag-key");
    assert_eq!(model_of(&s, &model)["tags"], json!({"stage": "prod"}));
    b.click(&b.find("#model-tags button.remove[data-key='stage']"));
    b.wait_text(".confirm", "the question", |t| t.contains("Remove tag stage?"));
    b.click(&b.find(".confirm .confirm-yes"));
    b.wait_text("#model-tags", "no tags", |t| t == "none");
    assert_eq!(model_of(&s, &model)["tags"], json!({}));

    // A key the registry refuses: its message, under the form.
    fill(&b, "#model-tag-key", "no spaces");
    fill(&b, "#model-tag-value", "x");
    b.click(&b.find("#model-tag-add"));
    let shown = b.wait_text("#model-tag-error", "the server's message", |t| !t.is_empty());
    let refused = s.send_json("PUT", &format!("{MODELREG}/{model}/tags/no%20spaces"), &json!({"value": "x"}));
    assert_eq!((refused.status, shown.as_str()), (400, refused.json()["message"].as_str().unwrap()));
    assert_eq!(model_of(&s, &model)["tags"], json!({}));

    // A tag on the version shown (the latest, v2).
    fill(&b, "#version-tag-key", "reviewed");
    fill(&b, "#version-tag-value", "yes");
    b.click(&b.find("#version-tag-add"));
    b.wait_text("#version-tags", "the version's tag", |t| t.contains("reviewed: yes"));
    assert_eq!(version_of(&s, &model, 2)["tags"], json!({"reviewed": "yes"}));
    assert_eq!(version_of(&s, &model, 1)["tags"], json!({}));
    b.click(&b.find("#version-tags button.remove[data-key='reviewed']"));
    b.click(&b.find(".confirm .confirm-yes"));
    b.wait_text("#version-tags", "no tags", |t| t == "none");
    assert_eq!(version_of(&s, &model, 2)["tags"], json!({}));

    // An alias, set on v2, moved to v1, then removed.
    fill(&b, "#alias-name", "champion");
    b.click(&b.find("#alias-set"));
    b.wait_text("#model-aliases", "the alias on v2", |t| t.contains("@champion → v2"));
    assert_eq!(model_of(&s, &model)["aliases"], json!({"champion": 2}));
    open(&b, &s, &model, Some(1));
    b.wait_text("#alias-set", "the button naming v1", |t| t == "Set on v1");
    fill(&b, "#alias-name", "champion");
    b.click(&b.find("#alias-set"));
    b.wait_text("#model-aliases", "the alias moved to v1", |t| t.contains("@champion → v1"));
    assert_eq!(model_of(&s, &model)["aliases"], json!({"champion": 1}));
    // An invalid name: the server's own message, where it was typed.
    fill(&b, "#alias-name", "Bad Name");
    b.click(&b.find("#alias-set"));
    let shown = b.wait_text("#alias-error", "the server's message", |t| !t.is_empty());
    let refused = s.send_json("PUT", &format!("{MODELREG}/{model}/aliases/Bad%20Name"), &json!({"version": 1}));
    assert_eq!(refused.status, 400);
    assert_eq!(shown, refused.json()["message"].as_str().unwrap());
    assert!(shown.contains("lowercase letter"), "{shown}");
    assert_eq!(model_of(&s, &model)["aliases"], json!({"champion": 1}));
    // Removing asks first; Cancel keeps the alias.
    b.click(&b.find("#model-aliases button.remove[data-alias='champion']"));
    b.click(&b.find(".confirm .confirm-no"));
    assert!(b.find_all(".confirm").is_empty());
    assert_eq!(model_of(&s, &model)["aliases"], json!({"champion": 1}));
    b.click(&b.find("#model-aliases button.remove[data-alias='champion']"));
    b.wait_text(".confirm", "the question", |t| t.contains("Remove @champion?"));
    b.click(&b.find(".confirm .confirm-yes"));
    b.wait_text("#model-aliases", "no aliases", |t| t == "none");
    assert_eq!(model_of(&s, &model)["aliases"], json!({}));
}

#[test]
fn the_model_patch_takes_a_description_and_nothing_else() {
    let s = Server::start();
    let model = octomil_model(&s, "patched");
    let path = format!("{MODELREG}/patched");
    let r = ok(&s.send_json("PATCH", &path, &json!({"description": "by name"})), 200);
    assert_eq!((r["id"].as_str().unwrap(), &r["description"]), (model.as_str(), &json!("by name")));
    let r = s.send_json("PATCH", &path, &json!({"description": "x", "name": "renamed"}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().starts_with("name: cannot be changed here"), "{}", r.text());
    assert_eq!(s.send_json("PATCH", &path, &json!({"description": 3})).status, 400);
    assert_eq!(s.send_json("PATCH", &path, &json!({"description": "y".repeat(1001)})).status, 400);
    assert_eq!(model_of(&s, &model)["description"], "by name");
    ok(&s.send_json("PATCH", &path, &json!({"description": null})), 200);
    assert_eq!(model_of(&s, &model)["description"], Value::Null);
    // A DataRobot model takes its own door's longer limit.
    let robot = ok(&s.post_json(&format!("{API}/customModels/"), &json!({"name": "long", "targetType": "Regression", "targetName": "y"})), 201);
    let robot = robot["id"].as_str().unwrap();
    ok(&s.send_json("PATCH", &format!("{MODELREG}/{robot}"), &json!({"description": "z".repeat(5000)})), 200);
    assert_eq!(s.send_json("PATCH", &format!("{MODELREG}/{robot}"), &json!({"description": "z".repeat(10_001)})).status, 400);
}

#[test]
fn a_version_is_deprecated_published_and_deleted_after_a_confirmation() {
    let s = Server::start();
    let model = octomil_model(&s, "lifecycle");
    upload(&s, &model, "a.pt", &[1u8; 1000]);
    upload(&s, &model, "b.pt", &[2u8; 2000]);
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    open(&b, &s, &model, Some(1));

    b.click(&b.find("#version-actions button[data-status='deprecated']"));
    b.wait_text("#version-fields", "the new status", |t| t.contains("deprecated"));
    assert_eq!(version_of(&s, &model, 1)["status"], "deprecated");
    b.click(&b.find("#version-actions button[data-status='published']"));
    b.wait_text("#version-fields", "the new status", |t| t.contains("published"));
    assert_eq!(version_of(&s, &model, 1)["status"], "published");
    assert_eq!(version_of(&s, &model, 2)["status"], "active");

    // The confirmation names the version; Cancel keeps it.
    b.click(&b.find("#delete-version"));
    let question = b.wait_text(".confirm", "the confirmation", |t| !t.is_empty());
    assert!(question.contains("Delete version v1 (1 file, 1000 B)?"), "{question}");
    b.screenshot("actions-confirm");
    assert_eq!(version_of(&s, &model, 1)["number"], 1, "nothing is deleted before the confirmation");
    b.click(&b.find(".confirm .confirm-no"));
    assert!(b.find_all(".confirm").is_empty());
    assert_eq!(b.find_all("#delete-version").len(), 1);
    assert_eq!(version_of(&s, &model, 1)["number"], 1);
    b.click(&b.find("#delete-version"));
    b.click(&b.find(".confirm .confirm-yes"));
    b.wait_count("#versions tbody tr", 1);
    assert_eq!(b.js("return location.hash", json!([])), format!("#/models/{model}"));
    b.wait_text("#version-h", "the remaining version", |t| t.contains("Version 2"));
    assert_eq!(s.get(&format!("{MODELREG}/{model}/versions/1")).status, 404);
    let numbers: Vec<Value> = model_of(&s, &model)["versions"].as_array().unwrap().iter().map(|v| v["number"].clone()).collect();
    assert_eq!(numbers, [json!(2)]);
}

#[test]
fn an_uploaded_version_streams_with_a_progress_bar_and_keeps_its_bytes() {
    let s = Server::start();
    let model = octomil_model(&s, "resnet-upload");
    upload(&s, &model, "first.pt", &[3u8; 4096]);
    ok(&s.send_json("PUT", &format!("{MODELREG}/{model}/tags/team"), &json!({"value": "vision"})), 200);
    ok(&s.send_json("PUT", &format!("{MODELREG}/{model}/aliases/champion"), &json!({"version": 1})), 200);
    // Big enough that a copy in JavaScript would show in the heap.
    let bytes = common::pseudo_random(25, 40 * 1024 * 1024 + 123);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weights-v2.pt");
    std::fs::write(&file, &bytes).unwrap();

    let b = Browser::start();
    b.set_size(1400, 900);
    b.sign_in(&s, &s.key);
    b.find("#models");
    open(&b, &s, &model, None);
    b.type_into(&b.find("#upload input[type=file]"), file.to_str().unwrap());
    // The JS heap, sampled while the browser sends the file: it streams it
    // from disk, so the heap stays far below the file's 40 MiB.
    b.js("window.heapPeak = 0; window.heapSampler = setInterval(() => { window.heapPeak = Math.max(window.heapPeak, performance.memory.usedJSHeapSize); }, 5)", json!([]));
    b.click(&b.find("#upload-start"));
    b.wait_count("#versions tbody tr", 2);
    let peak = b.js("clearInterval(window.heapSampler); return window.heapPeak", json!([])).as_f64().unwrap();
    eprintln!("JS heap peak during a {} byte upload: {peak} bytes", bytes.len());
    assert!(peak > 0.0 && peak < 20e6, "the upload went through JavaScript memory: {peak} bytes of heap");
    // The new version's URL names the model as people do, by its name.
    assert_eq!(b.js("return location.hash", json!([])), "#/models/resnet-upload/versions/2");
    let status = b.wait_text("#upload-status", "the finished upload", |t| t.contains("uploaded"));
    assert!(status.starts_with("100% · "), "{status}");
    let progress = b.js("const p = document.getElementById('upload-progress'); return [p.value, p.max, Number(p.dataset.events)]", json!([]));
    assert_eq!((progress[0].as_f64(), progress[1].as_f64()), (Some(100.0), Some(100.0)), "{progress}");
    assert!(progress[2].as_i64().unwrap() >= 1, "the bar moved on the browser's progress events: {progress}");
    eprintln!("progress events during the upload: {}", progress[2]);
    b.wait_text("#files", "the new file", |t| t.contains("weights-v2.pt"));
    let v2 = version_of(&s, &model, 2);
    assert_eq!(v2["files"][0]["size"], bytes.len() as i64);
    assert_eq!(v2["files"][0]["sha256"], sha256_hex(&bytes));
    assert_eq!(v2["size"], bytes.len() as i64);

    b.js("window.scrollTo(0, 0)", json!([]));
    b.screenshot("actions-1400");
    b.set_size(390, 844);
    open(&b, &s, &model, None);
    b.find("#upload-start");
    b.assert_no_sideways_scroll("the model page with its controls");
    b.screenshot("actions-390");
    b.js("document.getElementById('upload').scrollIntoView()", json!([]));
    b.screenshot("actions-390-upload");
    b.js("document.getElementById('version-info').scrollIntoView()", json!([]));
    b.screenshot("actions-390-version");
}

/// Paperspace's door has no upload: the page says how versions are made.
#[test]
fn a_paperspace_model_says_how_versions_are_made_instead_of_offering_an_upload() {
    let s = Server::start();
    let paper = ok(&s.post_json("/v1/models", &json!({"name": "paper-resnet", "modelType": "ONNX"})), 200);
    let id = paper["id"].as_str().unwrap();
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    open(&b, &s, id, None);
    let howto = b.wait_text("#upload-howto", "how versions are made", |t| !t.is_empty());
    assert!(howto.contains("Paperspace's API has no version upload"), "{howto}");
    assert!(b.text(&b.find("#upload")).contains(&format!("versions upload {id} model.pt")));
    assert!(b.find_all("#upload input[type=file]").is_empty());
}

/// A DataRobot version uploaded from the page keeps the environment of the
/// one before; a CONSUMER of the model is offered no control, and the API
/// refuses them; an EDITOR may change but not delete.
#[test]
fn a_datarobot_upload_keeps_its_environment_and_a_consumer_may_only_read() {
    let s = Server::start();
    let env = dr::python_environment(&s);
    let created = s.post_json(&format!("{API}/customModels/"), &json!({"name": "houses", "targetType": "Regression", "targetName": "y"}));
    let model = ok(&created, 201)["id"].as_str().unwrap().to_string();
    let files = [("custom.py".to_string(), b"def score(data, model, **kw):\n    return data\n".to_vec())];
    dr::add_version(&s, &model, &env, &files, &[]);
    let bytes = common::pseudo_random(7, 300_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.pkl");
    std::fs::write(&file, &bytes).unwrap();

    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    open(&b, &s, &model, None);
    b.type_into(&b.find("#upload input[type=file]"), file.to_str().unwrap());
    b.find("#upload-path");
    let path = || b.js("return document.getElementById('upload-path').value", json!([]));
    b.wait_for("the path to follow the file's name", || (path() == "model.pkl").then_some(()));
    b.click(&b.find("#upload-start"));
    b.wait_count("#versions tbody tr", 2);
    b.wait_text("#upload-status", "the finished upload", |t| t.starts_with("100% · ") && t.contains("uploaded"));
    let latest = ok(&s.get(&format!("{API}/customModels/{model}/versions/")), 200)["data"][0].clone();
    assert_eq!(latest["baseEnvironmentId"], env.as_str());
    let items = latest["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "a new version from the one file: {latest}");
    assert_eq!(items[0]["filePath"], "model.pkl");
    let ours = model_of(&s, &model)["versions"][0]["files"][0].clone();
    assert_eq!((ours["size"].as_u64(), ours["sha256"].as_str()), (Some(bytes.len() as u64), Some(sha256_hex(&bytes).as_str())));

    // Bob, of the same team, as a CONSUMER of the model.
    let bob = common::user_key(&s, "bob", None);
    let grant = |role: &str| {
        let body = json!({"data": [{"username": "bob", "role": role, "canShare": false}]});
        assert_eq!(s.send_json("PATCH", &format!("{API}/customModels/{model}/accessControl/"), &body).status, 204);
    };
    grant("CONSUMER");
    b.click(&b.find("#sign-out"));
    b.sign_in(&s, &bob);
    b.find("#models");
    open(&b, &s, &model, None);
    b.wait_text("#read-only", "the read-only notice", |t| t.contains("may read this model but not change it"));
    b.find("#files");
    for control in ["#edit-description", "#model-tag-form", "#version-tag-form", "#alias-form", "#version-actions", "#delete-version", "#upload", "button.remove"] {
        assert!(b.find_all(control).is_empty(), "a consumer is offered {control}");
    }
    assert_eq!(ok(&as_user(&s, &bob, "GET", &format!("/ui/api/models/{model}"), None), 200)["may"], json!({"change": false, "delete": false}));
    let refused = [
        as_user(&s, &bob, "PATCH", &format!("{MODELREG}/{model}"), Some(&json!({"description": "mine now"}))),
        as_user(&s, &bob, "PUT", &format!("{MODELREG}/{model}/aliases/champion"), Some(&json!({"version": 1}))),
        as_user(&s, &bob, "PUT", &format!("{MODELREG}/{model}/tags/stage"), Some(&json!({"value": "prod"}))),
        as_user(&s, &bob, "PATCH", &format!("{MODELREG}/{model}/versions/1"), Some(&json!({"status": "deprecated"}))),
        as_user(&s, &bob, "DELETE", &format!("{MODELREG}/{model}/versions/1"), None),
    ];
    for r in refused {
        assert_eq!(r.status, 403, "{}", r.text());
    }
    assert_eq!(model_of(&s, &model)["versions"].as_array().unwrap().len(), 2);

    // As an EDITOR: changes, but no deletion.
    grant("EDITOR");
    open(&b, &s, &model, Some(1));
    b.find("#edit-description");
    b.find("#version-actions button[data-status='deprecated']");
    assert!(b.find_all("#delete-version").is_empty(), "an editor may not delete a version");
    assert_eq!(ok(&as_user(&s, &bob, "GET", &format!("/ui/api/models/{model}"), None), 200)["may"], json!({"change": true, "delete": false}));
}
