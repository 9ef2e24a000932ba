//! A model's name is at most 255 characters through every door (issue 25):
//! the registry checks it once, on create and on rename
//! (`registry::catalogue::models::check_model_name`), and each door answers
//! its own 4xx in its own error body. A longer name stored before the rule
//! stays readable everywhere, and other changes to its model still work.

mod common;

use common::datarobot::API;
use common::{ok, Server};
use serde_json::{json, Value};

const LIMIT: usize = 255;

fn name(n: usize) -> String {
    // Words and one long run, as a pasted name would be.
    let mut s = String::from("fraud scorer ");
    while s.chars().count() < n {
        s.push('é');
    }
    s.chars().take(n).collect()
}

fn refused(reply: &common::Reply, status: u16, what: &str) -> Value {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    let body = reply.json();
    assert!(body.to_string().contains("255 characters"), "{what} names the limit: {body}");
    body
}

#[test]
fn octomil_refuses_a_name_over_the_limit_on_create_and_rename_with_its_400() {
    let s = Server::start();
    let long = name(LIMIT + 1);
    let body = refused(&s.post_json("/api/v1/models", &json!({"name": long, "framework": "pytorch"})), 400, "create");
    assert_eq!(body["error"], "bad_request", "Octomil's error body: {body}");
    let made = ok(&s.post_json("/api/v1/models", &json!({"name": name(LIMIT), "framework": "pytorch"})), 201);
    assert_eq!(made["name"].as_str().unwrap().chars().count(), LIMIT);
    let id = made["id"].as_str().unwrap();
    refused(&s.send_json("PATCH", &format!("/api/v1/models/{id}"), &json!({"name": long})), 400, "rename");
    assert_eq!(ok(&s.get(&format!("/api/v1/models/{id}")), 200)["name"], made["name"], "unchanged");
}

#[test]
fn datarobot_refuses_a_name_over_the_limit_on_create_and_rename_with_its_422() {
    let s = Server::start();
    let long = name(LIMIT + 1);
    let create = json!({"name": long, "targetType": "Regression", "targetName": "y"});
    let body = refused(&s.post_json(&format!("{API}/customModels/"), &create), 422, "create");
    assert!(body["errors"]["name"].is_string(), "DataRobot's error body names the field: {body}");
    let made = ok(&s.post_json(&format!("{API}/customModels/"), &json!({"name": name(LIMIT), "targetType": "Regression", "targetName": "y"})), 201);
    let id = made["id"].as_str().unwrap();
    refused(&s.send_json("PATCH", &format!("{API}/customModels/{id}/"), &json!({"name": long})), 422, "rename");
}

#[test]
fn paperspace_refuses_a_name_over_the_limit_with_its_400() {
    let s = Server::start();
    let body = refused(&s.post_json("/v1/models", &json!({"name": name(LIMIT + 1), "modelType": "ONNX"})), 400, "create");
    assert_eq!(body["code"], "BAD_REQUEST", "Paperspace's tRPC-style error body: {body}");
    let made = ok(&s.post_json("/v1/models", &json!({"name": name(LIMIT), "modelType": "ONNX"})), 200);
    assert_eq!(made["name"].as_str().unwrap().chars().count(), LIMIT);
}

#[test]
fn the_cli_refuses_a_name_over_the_limit_through_the_registry() {
    let s = Server::start();
    let long = name(LIMIT + 1);
    let out = s.cli(&["models", "create", "--name", &long, "--framework", "pytorch"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("255 characters"), "{stderr}");
    let out = s.cli_remote(&["models", "create", "--name", &long, "--framework", "pytorch"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("255 characters"), "over HTTP: {stderr}");
    // Nothing was made either way.
    assert_eq!(ok(&s.get("/api/modelreg/v1/models"), 200)["models"], json!([]));
}

#[test]
fn a_longer_name_stored_before_the_rule_stays_readable_and_its_model_editable() {
    let s = Server::start();
    let made = ok(&s.post_json("/api/v1/models", &json!({"name": "short", "framework": "sklearn"})), 201);
    let id = made["id"].as_str().unwrap().to_string();
    let old = "x".repeat(5000);
    let updated = s.database_text(&format!("UPDATE models SET name = '{old}' WHERE id = '{id}' RETURNING id"));
    assert_eq!(updated, id);
    assert_eq!(ok(&s.get(&format!("/api/v1/models/{id}")), 200)["name"], json!(old));
    assert_eq!(ok(&s.get(&format!("/api/modelreg/v1/models/{id}")), 200)["name"], json!(old));
    assert_eq!(ok(&s.get(&format!("/ui/api/models/{id}")), 200)["model"]["name"], json!(old));
    // A change that does not rename it is not refused for its old name.
    let patched = ok(&s.send_json("PATCH", &format!("/api/v1/models/{id}"), &json!({"description": "kept its name"})), 200);
    assert_eq!((patched["name"].as_str().map(str::len), patched["description"].as_str()), (Some(5000), Some("kept its name")));
}
