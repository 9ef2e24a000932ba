//! One registry, every client (issue 10): tests/python/test_cross_dialect.py
//! makes a model through each front door (the Octomil SDK's push, a
//! Paperspace seed-001 call, the official DataRobot client, and here the
//! offline CLI) and reads and writes each through every other door with its
//! real client: `datarobot` 3.20.0 and `octomil` 4.17.42, unpatched.

mod common;


use serde_json::Value;

#[test]
fn every_client_reads_and_writes_models_made_through_every_door() {
    let Some(python) = common::client_python_or_skip() else { return };
    let server = common::Server::start();
    // The offline CLI writes into the data directory the server is using.
    common::run_every_client(&python, &server, &format!("http://{}", server.addr), &server.key, &|| server.log.lock().unwrap().clone());
}

#[test]
fn the_cli_takes_a_models_name_wherever_it_takes_an_id() {
    let server = common::Server::start();
    let create = |name: &str| {
        let reply = server.post_json("/api/v2/customModels/", &serde_json::json!({"name": name, "targetType": "Unstructured"}));
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()["id"].as_str().unwrap().to_string()
    };
    let id = create("churn");
    for out in [server.cli(&["--json", "custom-models", "show", "churn"]), server.cli_remote(&["--json", "custom-models", "show", "churn"])] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["id"], id.as_str());
    }
    let out = server.cli(&["--json", "models", "show", "churn"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // DataRobot allows two models of one name; the name is then ambiguous,
    // and the error lists both ids.
    let twin = create("churn");
    for out in [server.cli(&["custom-models", "show", "churn"]), server.cli_remote(&["custom-models", "show", "churn"])] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(&id) && stderr.contains(&twin), "{stderr}");
    }
    // The id always works.
    assert!(server.cli(&["custom-models", "delete", &twin]).status.success());
    assert!(server.cli_remote(&["custom-models", "delete", "churn"]).status.success());
    assert_eq!(server.get(&format!("/api/v2/customModels/{id}/")).status, 404);
}
