//! Aliases and `latest` (issue 24): `PUT/DELETE
//! /api/modelreg/v1/models/{model}/aliases/{alias}` set, move and remove an
//! alias; `@alias` and `latest` name a version in the Octomil door's
//! `{version}` routes and in the CLI, offline and with `--server`. Each test
//! speaks HTTP to the real binary.

mod common;

use common::{as_user, ok, user_key, Part, Reply, Server};
use serde_json::{json, Value};

const MODELS: &str = "/api/v1/models";

fn new_model(server: &Server, name: &str) -> String {
    let reply = server.post_json(MODELS, &json!({"name": name, "framework": "pytorch"}));
    ok(&reply, 201)["id"].as_str().unwrap().to_string()
}

fn upload(server: &Server, model: &str, bytes: &[u8]) -> i64 {
    let reply = server.post_multipart(
        &format!("{MODELS}/{model}/versions/upload"),
        &[Part::File { name: "file", filename: "model.pt", bytes }],
    );
    ok(&reply, 201)["version"].as_i64().unwrap()
}

/// A model named `name` with versions 1..=n holding `weights <n>`.
fn model_with_versions(server: &Server, name: &str, n: i64) -> String {
    let id = new_model(server, name);
    for k in 1..=n {
        assert_eq!(upload(server, &id, weights(k).as_bytes()), k);
    }
    id
}

fn weights(n: i64) -> String {
    format!("weights of version {n}")
}

fn alias_path(model: &str, alias: &str) -> String {
    format!("/api/modelreg/v1/models/{model}/aliases/{alias}")
}

fn set_alias(server: &Server, model: &str, alias: &str, version: i64) -> Reply {
    server.send_json("PUT", &alias_path(model, alias), &json!({"version": version}))
}

fn download(server: &Server, model: &str, handle: &str) -> Reply {
    server.get(&format!("{MODELS}/{model}/versions/{handle}/download"))
}

fn aliases_of(server: &Server, model: &str) -> Value {
    ok(&server.get(&format!("{MODELS}/{model}")), 200)["aliases"].clone()
}

/// An Octomil 404: its own body, `{error: "not_found", message}`.
fn assert_octomil_not_found(reply: &Reply, mentions: &str) {
    assert_eq!(reply.status, 404, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], "not_found", "{body}");
    assert!(body["message"].as_str().unwrap().contains(mentions), "{body}");
}

#[test]
fn an_alias_is_set_read_moved_and_removed() {
    let s = Server::start();
    let id = model_with_versions(&s, "aliased", 3);

    // Set, by the model's name.
    let set = ok(&set_alias(&s, "aliased", "champion", 1), 200);
    assert_eq!(set, json!({"model": id, "alias": "champion", "version": 1}));
    let got = download(&s, &id, "@champion");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, weights(1).as_bytes());
    assert_eq!(ok(&s.get(&format!("{MODELS}/{id}/versions/@champion")), 200)["version"], 1);
    // The model's name works in the Octomil route too, and the alias shows on the model.
    assert_eq!(download(&s, "aliased", "@champion").body, weights(1).as_bytes());
    assert_eq!(aliases_of(&s, &id), json!({"champion": 1}));

    // Move, by the model's id: the same alias now names version 2.
    assert_eq!(ok(&set_alias(&s, &id, "champion", 2), 200)["version"], 2);
    ok(&set_alias(&s, &id, "shadow", 3), 200);
    assert_eq!(download(&s, &id, "@champion").body, weights(2).as_bytes());
    assert_eq!(download(&s, &id, "@shadow").body, weights(3).as_bytes());
    assert_eq!(aliases_of(&s, &id), json!({"champion": 2, "shadow": 3}));

    // Remove: 204, then the alias is gone, and removing it again is a 404.
    let removed = s.delete(&alias_path(&id, "champion"));
    assert_eq!(removed.status, 204, "{}", removed.text());
    assert_octomil_not_found(&download(&s, &id, "@champion"), "champion");
    assert_eq!(aliases_of(&s, &id), json!({"shadow": 3}));
    let again = s.delete(&alias_path(&id, "champion"));
    assert_eq!(again.status, 404, "{}", again.text());
    assert!(again.json()["message"].as_str().unwrap().contains("champion"), "{}", again.text());
}

#[test]
fn latest_names_the_highest_version_that_is_not_deprecated() {
    let s = Server::start();
    let id = model_with_versions(&s, "newest", 3);
    assert_eq!(download(&s, &id, "latest").body, weights(3).as_bytes());
    let deprecated = s.post_json(&format!("{MODELS}/{id}/versions/3/deprecate"), &json!({}));
    assert_eq!(ok(&deprecated, 200)["status"], "deprecated");
    assert_eq!(download(&s, &id, "latest").body, weights(2).as_bytes());
    assert_eq!(ok(&s.get(&format!("{MODELS}/{id}/versions/latest")), 200)["version"], 2);
    // The deprecated version is still there by number.
    assert_eq!(download(&s, &id, "3").body, weights(3).as_bytes());
}

#[test]
fn unknown_aliases_bad_names_and_missing_versions_are_refused() {
    let s = Server::start();
    let id = model_with_versions(&s, "strict", 2);

    assert_octomil_not_found(&download(&s, &id, "@nobody"), "nobody");
    assert_octomil_not_found(&s.get(&format!("{MODELS}/{id}/versions/@nobody")), "nobody");

    for bad in ["Champion", "latest", "1st", "has.dot", "-x", &"a".repeat(64)] {
        let reply = set_alias(&s, &id, bad, 1);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        assert!(reply.json()["message"].as_str().unwrap().starts_with("alias:"), "{bad}: {}", reply.text());
    }
    for body in [json!({}), json!({"version": "1"}), json!({"version": 0}), json!({"version": 1.5})] {
        let reply = s.send_json("PUT", &alias_path(&id, "champion"), &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert!(reply.json()["message"].as_str().unwrap().starts_with("version:"), "{body}: {}", reply.text());
    }
    let missing = set_alias(&s, &id, "champion", 9);
    assert_eq!(missing.status, 404, "{}", missing.text());
    let unknown_model = set_alias(&s, "no-such-model", "champion", 1);
    assert_eq!(unknown_model.status, 404, "{}", unknown_model.text());
    assert_eq!(aliases_of(&s, &id), json!({}));
}

#[test]
fn another_team_sees_no_alias_and_cannot_set_one() {
    let s = Server::start();
    let id = model_with_versions(&s, "ours", 2);
    ok(&set_alias(&s, &id, "champion", 1), 200);
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    let eve = user_key(&s, "eve", Some("others"));

    let put = as_user(&s, &eve, "PUT", &alias_path(&id, "champion"), Some(&json!({"version": 2})));
    assert_eq!(put.status, 404, "{}", put.text());
    let delete = as_user(&s, &eve, "DELETE", &alias_path(&id, "champion"), None);
    assert_eq!(delete.status, 404, "{}", delete.text());
    let read = as_user(&s, &eve, "GET", &format!("{MODELS}/{id}/versions/@champion/download"), None);
    assert_octomil_not_found(&read, &id);
    // Nothing moved.
    assert_eq!(aliases_of(&s, &id), json!({"champion": 1}));

    // A member of the same team may (the model has no roles: the team's).
    let bob = user_key(&s, "bob", None);
    let moved = as_user(&s, &bob, "PUT", &alias_path(&id, "champion"), Some(&json!({"version": 2})));
    assert_eq!(ok(&moved, 200)["version"], 2);
}

#[test]
fn deleting_a_version_or_the_model_drops_its_aliases() {
    let s = Server::start();
    let id = model_with_versions(&s, "pruned", 2);
    ok(&set_alias(&s, &id, "old", 1), 200);
    ok(&set_alias(&s, &id, "new", 2), 200);
    ok(&s.delete(&format!("{MODELS}/{id}/versions/1")), 200);
    assert_eq!(aliases_of(&s, &id), json!({"new": 2}));
    assert_octomil_not_found(&download(&s, &id, "@old"), "old");
    let count = |s: &Server| s.database_text("SELECT CAST(COUNT(*) AS TEXT) FROM model_aliases");
    assert_eq!(count(&s), "1");
    ok(&s.delete(&format!("{MODELS}/{id}")), 200);
    assert_eq!(count(&s), "0");
}

#[test]
fn the_cli_downloads_by_alias_and_latest_offline_and_over_http() {
    let s = Server::start();
    let id = model_with_versions(&s, "cli-model", 3);
    ok(&set_alias(&s, &id, "champion", 2), 200);
    let out_dir = tempfile::tempdir().unwrap();
    let run = |remote: bool, args: &[&str]| {
        let out = if remote { s.cli_remote(args) } else { s.cli(args) };
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    for remote in [false, true] {
        let file = out_dir.path().join(format!("champion-{remote}.pt"));
        run(remote, &["versions", "download", "cli-model@champion", "-o", file.to_str().unwrap()]);
        assert_eq!(std::fs::read(&file).unwrap(), weights(2).as_bytes(), "remote: {remote}");

        let file = out_dir.path().join(format!("latest-{remote}.pt"));
        run(remote, &["versions", "download", "cli-model", "latest", "-o", file.to_str().unwrap()]);
        assert_eq!(std::fs::read(&file).unwrap(), weights(3).as_bytes(), "remote: {remote}");

        let file = out_dir.path().join(format!("at-{remote}.pt"));
        run(remote, &["versions", "download", &id, "@champion", "-o", file.to_str().unwrap()]);
        assert_eq!(std::fs::read(&file).unwrap(), weights(2).as_bytes(), "remote: {remote}");

        // An unknown alias fails, naming it, and writes nothing.
        let file = out_dir.path().join(format!("none-{remote}.pt"));
        let args = ["versions", "download", "cli-model@nobody", "-o", file.to_str().unwrap()];
        let out = if remote { s.cli_remote(&args) } else { s.cli(&args) };
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!file.exists());

        // `models show` prints the aliases, as text and as JSON.
        assert!(run(remote, &["models", "show", "cli-model"]).contains("@champion=v2"), "remote: {remote}");
        let shown: Value = serde_json::from_str(&run(remote, &["--json", "models", "show", "cli-model"])).unwrap();
        assert_eq!(shown["aliases"], json!({"champion": 2}), "remote: {remote}");
    }
}
