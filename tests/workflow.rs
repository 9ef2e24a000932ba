//! The registry workflow of issue 24, through modelreg's own API, the three
//! doors and the CLI (offline and with `--server`):
//! - aliases and `latest`: `PUT/DELETE /api/modelreg/v1/models/{model}/aliases/{alias}`
//!   set, move and remove an alias; `@alias` and `latest` name a version in
//!   the Octomil door's `{version}` routes, DataRobot's `{versionId}` and
//!   the CLI;
//! - tags on models and versions, and the model search by tag and text;
//! - lineage and metrics, set and shown.
//! Each test speaks HTTP to the real binary.

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

        // `-o -`: the bytes on stdout, what was written on stderr; MODEL@N and MODEL@latest too.
        for (handle, n) in [("cli-model@champion", 2), ("cli-model@1", 1), ("cli-model@latest", 3)] {
            let piped = cli_either(&s, remote, &["versions", "download", handle, "-o", "-"]);
            assert!(piped.status.success(), "{handle}: {}", String::from_utf8_lossy(&piped.stderr));
            assert_eq!(piped.stdout, weights(n).as_bytes(), "remote: {remote}, {handle}");
            let said = String::from_utf8_lossy(&piped.stderr);
            assert!(said.starts_with(&format!("wrote {} B to standard output (sha256 ", weights(n).len())), "{said}");
        }
        let piped = cli_either(&s, remote, &["--json", "versions", "download", "cli-model", "@champion", "-o", "-"]);
        let summary: Value = serde_json::from_slice(&piped.stderr).unwrap();
        assert_eq!((summary["path"].as_str(), summary["size"].as_u64()), (Some("-"), Some(weights(2).len() as u64)), "{summary}");
        assert_eq!(piped.stdout, weights(2).as_bytes());

        // A conversion takes any handle too: it is asked for version 2, which cannot be converted.
        let out = cli_either(&s, remote, &["versions", "convert", "cli-model@champion", "--to", "onnx"]);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && said.contains("version 2"), "remote: {remote}: {said}");
        let out = cli_either(&s, remote, &["versions", "download", "cli-model@nobody", "--format", "onnx", "-o", "-"]);
        assert!(!out.status.success() && out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"), "{}", String::from_utf8_lossy(&out.stderr));

        // `models show` prints the aliases, as text and as JSON.
        assert!(run(remote, &["models", "show", "cli-model"]).contains("@champion=v2"), "remote: {remote}");
        let shown: Value = serde_json::from_str(&run(remote, &["--json", "models", "show", "cli-model"])).unwrap();
        assert_eq!(shown["aliases"], json!({"champion": 2}), "remote: {remote}");
    }
}

/// The CLI offline, or with `--server`.
fn cli_either(s: &Server, remote: bool, args: &[&str]) -> std::process::Output {
    if remote {
        s.cli_remote(args)
    } else {
        s.cli(args)
    }
}

/// Runs the CLI with its stdout on a pseudo-terminal: its exit status,
/// stderr, and what reached the terminal.
fn on_a_terminal(s: &Server, args: &[&str]) -> (bool, String, Vec<u8>) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut terminal, mut stdout) = (0, 0);
    // SAFETY: openpty only writes the two descriptors it opens, which the Files below then own.
    let opened = unsafe { libc::openpty(&mut terminal, &mut stdout, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    let (mut terminal, stdout) = unsafe { (std::fs::File::from_raw_fd(terminal), std::fs::File::from_raw_fd(stdout)) };
    // The command and with it our copy of the terminal's other side are gone once it has run,
    // so reading the terminal ends (EIO) after what it printed.
    let out = s.cli_command().args(args).stdout(stdout).stderr(std::process::Stdio::piped()).output().unwrap();
    let mut printed = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = terminal.read(&mut buf) {
        printed.extend_from_slice(&buf[..n]);
    }
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), printed)
}

#[test]
fn binary_is_not_written_to_a_terminal_unless_forced() {
    let s = Server::start();
    let id = new_model(&s, "terminal");
    assert_eq!(upload(&s, &id, b"text weights"), 1);
    let binary = b"\x80\x02binary\x00weights";
    assert_eq!(upload(&s, &id, binary), 2);
    let url = s.url("");
    for remote in [false, true] {
        let server: &[&str] = if remote { &["--server", &url, "--token", &s.key] } else { &[] };
        let args = |more: &[&'static str]| [server, &["versions", "download", "terminal"], more].concat();

        let (ok, stderr, printed) = on_a_terminal(&s, &args(&["2", "-o", "-"]));
        assert!(!ok && printed.is_empty(), "remote {remote}: {stderr}");
        assert!(stderr.contains("binary and standard output is a terminal") && stderr.contains("--force"), "{stderr}");

        let (ok, stderr, printed) = on_a_terminal(&s, &args(&["2", "-o", "-", "--force"]));
        assert!(ok, "remote {remote}: {stderr}");
        assert_eq!(printed, binary, "remote {remote}");

        // Text needs no --force.
        let (ok, stderr, printed) = on_a_terminal(&s, &args(&["1", "-o", "-"]));
        assert!(ok, "remote {remote}: {stderr}");
        assert_eq!(printed, b"text weights", "remote {remote}");
    }
}

const MODELREG: &str = "/api/modelreg/v1/models";

fn put_tag(server: &Server, path: &str, value: &str) -> Reply {
    server.send_json("PUT", path, &json!({"value": value}))
}

fn search(server: &Server, query: &str) -> Vec<String> {
    let page = ok(&server.get(&format!("{MODELREG}?{query}")), 200);
    page["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

/// modelreg's own error body: `{error, message}`, with the status.
fn assert_modelreg_error(reply: &Reply, status: u16, mentions: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert!(body["error"].is_string(), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(mentions),
        "{body}"
    );
}

#[test]
fn tags_are_set_replaced_removed_and_found_by_search() {
    let s = Server::start();
    model_with_versions(&s, "fraud-xgb", 2);
    model_with_versions(&s, "fraud-lgbm", 1);
    model_with_versions(&s, "churn", 1);
    for (model, key, value) in [
        ("fraud-xgb", "stage", "production"),
        ("fraud-xgb", "owner", "risk"),
        ("fraud-lgbm", "stage", "staging"),
        ("churn", "stage", "production"),
    ] {
        ok(
            &put_tag(&s, &format!("{MODELREG}/{model}/tags/{key}"), value),
            200,
        );
    }
    // Setting a key again replaces its value and answers every tag.
    let replaced = ok(
        &put_tag(
            &s,
            &format!("{MODELREG}/fraud-lgbm/tags/stage"),
            "production",
        ),
        200,
    );
    assert_eq!(replaced, json!({"tags": {"stage": "production"}}));
    let back = ok(
        &put_tag(&s, &format!("{MODELREG}/fraud-lgbm/tags/stage"), "staging"),
        200,
    );
    assert_eq!(back["tags"]["stage"], "staging");

    // Newest first; every tag must match; a bare key matches any value; q narrows by name.
    assert_eq!(search(&s, "tag=stage:production"), ["churn", "fraud-xgb"]);
    assert_eq!(
        search(&s, "tag=stage:production&tag=owner:risk"),
        ["fraud-xgb"]
    );
    assert_eq!(
        search(&s, "tag=stage"),
        ["churn", "fraud-lgbm", "fraud-xgb"]
    );
    assert_eq!(search(&s, "tag=stage:production&q=FRAUD"), ["fraud-xgb"]);
    assert_eq!(search(&s, "q=fraud"), ["fraud-lgbm", "fraud-xgb"]);
    assert!(search(&s, "tag=stage:retired").is_empty());
    // Each hit carries its tags and latest version.
    let page = ok(&s.get(&format!("{MODELREG}?tag=owner:risk")), 200);
    assert_eq!(
        page["models"][0]["tags"],
        json!({"owner": "risk", "stage": "production"})
    );
    assert_eq!(page["models"][0]["latest_version"], 2);

    // Paged by cursor: one model a page, in order, then no next.
    let mut seen = Vec::new();
    let mut next = String::new();
    loop {
        let query = if next.is_empty() {
            "tag=stage&limit=1".to_string()
        } else {
            format!("tag=stage&limit=1&after={next}")
        };
        let page = ok(&s.get(&format!("{MODELREG}?{query}")), 200);
        seen.extend(
            page["models"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(cursor) => next = cursor.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["churn", "fraud-lgbm", "fraud-xgb"]);

    // The Octomil list takes the same filters, and its model shows the tags.
    let listed = ok(
        &s.get(&format!("{MODELS}?tag=stage:production&tag=owner")),
        200,
    );
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["models"][0]["name"], "fraud-xgb");
    assert_eq!(
        ok(&s.get(&format!("{MODELS}/fraud-xgb")), 200)["tags"]["owner"],
        "risk"
    );

    // Removing: the tags that remain; a second removal is a 404.
    let removed = ok(&s.delete(&format!("{MODELREG}/fraud-xgb/tags/owner")), 200);
    assert_eq!(removed, json!({"tags": {"stage": "production"}}));
    assert_modelreg_error(
        &s.delete(&format!("{MODELREG}/fraud-xgb/tags/owner")),
        404,
        "owner",
    );
    assert!(search(&s, "tag=owner").is_empty());

    // Bad keys and values, and a bad filter, are 400s naming the problem.
    assert_modelreg_error(
        &put_tag(&s, &format!("{MODELREG}/churn/tags/a:b"), "x"),
        400,
        "key",
    );
    assert_modelreg_error(
        &put_tag(&s, &format!("{MODELREG}/churn/tags/ok"), "line\nbreak"),
        400,
        "value",
    );
    assert_modelreg_error(
        &s.send_json(
            "PUT",
            &format!("{MODELREG}/churn/tags/ok"),
            &json!({"value": 3}),
        ),
        400,
        "value",
    );
    assert_modelreg_error(&s.get(&format!("{MODELREG}?tag=:x")), 400, "tag");
    let octomil = s.get(&format!("{MODELS}?tag=:x"));
    assert_eq!(
        (octomil.status, octomil.json()["error"].clone()),
        (400, json!("bad_request"))
    );

    // Deleting a model deletes its tags.
    ok(&s.delete(&format!("{MODELS}/churn")), 200);
    assert_eq!(search(&s, "tag=stage:production"), ["fraud-xgb"]);
}

#[test]
fn version_tags_show_on_the_version_and_its_model() {
    let s = Server::start();
    let id = model_with_versions(&s, "tagged", 2);
    ok(&set_alias(&s, &id, "champion", 1), 200);
    ok(
        &put_tag(
            &s,
            &format!("{MODELREG}/tagged/versions/@champion/tags/validated"),
            "yes",
        ),
        200,
    );
    ok(
        &put_tag(
            &s,
            &format!("{MODELREG}/tagged/versions/2/tags/validated"),
            "no",
        ),
        200,
    );

    let one = ok(&s.get(&format!("{MODELREG}/tagged/versions/1")), 200);
    assert_eq!(
        (one["tags"].clone(), one["aliases"].clone()),
        (json!({"validated": "yes"}), json!(["champion"]))
    );
    let model = ok(&s.get(&format!("{MODELREG}/{id}")), 200);
    let numbers: Vec<i64> = model["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1], "newest first");
    assert_eq!(model["versions"][0]["tags"], json!({"validated": "no"}));
    assert_eq!(model["aliases"], json!({"champion": 1}));
    let octomil = ok(&s.get(&format!("{MODELS}/{id}")), 200);
    assert_eq!(octomil["versions"][0]["tags"], json!({"validated": "yes"}));

    assert_modelreg_error(
        &put_tag(&s, &format!("{MODELREG}/tagged/versions/9/tags/x"), "y"),
        404,
        "9",
    );
    // Another team sees none of it and changes nothing.
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    let eve = user_key(&s, "eve", Some("others"));
    let path = format!("{MODELREG}/{id}/versions/1/tags/validated");
    assert_eq!(
        as_user(&s, &eve, "PUT", &path, Some(&json!({"value": "stolen"}))).status,
        404
    );
    assert_eq!(
        as_user(&s, &eve, "GET", &format!("{MODELREG}/{id}"), None).status,
        404
    );
    let theirs = as_user(&s, &eve, "GET", &format!("{MODELREG}?tag=validated"), None);
    assert_eq!(ok(&theirs, 200)["models"], json!([]));
    assert_eq!(
        ok(&s.get(&format!("{MODELREG}/tagged/versions/1")), 200)["tags"]["validated"],
        "yes"
    );
}

#[test]
fn lineage_and_metrics_are_set_and_shown() {
    let s = Server::start();
    let base = model_with_versions(&s, "base-model", 1);
    let id = model_with_versions(&s, "tuned", 2);
    ok(&set_alias(&s, &base, "champion", 1), 200);
    let patch = |version: &str, body: Value| {
        s.send_json(
            "PATCH",
            &format!("{MODELREG}/tuned/versions/{version}"),
            &body,
        )
    };

    let updated = ok(
        &patch(
            "2",
            json!({
                "lineage": {"source_commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "dataset": "s3://data/churn-2026-11.csv",
                            "run_url": "https://ci.example.com/runs/42", "parent_version": {"version": 1}},
                "metrics": {"auc": 0.931, "f1": 0.71}
            }),
        ),
        200,
    );
    let lineage = &updated["lineage"];
    assert_eq!(
        lineage["source_commit"],
        "9fceb02d0ae598e95dc970b74767f19372d61af8"
    );
    assert_eq!(lineage["dataset"], "s3://data/churn-2026-11.csv");
    assert_eq!(lineage["run_url"], "https://ci.example.com/runs/42");
    assert_eq!(lineage["parent_version"]["model"], "tuned");
    assert_eq!(lineage["parent_version"]["version"], 1);
    assert_eq!(updated["metrics"], json!({"auc": 0.931, "f1": 0.71}));

    // A parent in another model, by name and alias; null clears a field; metrics merge.
    let moved = ok(
        &patch(
            "2",
            json!({"lineage": {"parent_version": {"model": "base-model", "version": "@champion"}, "run_url": null},
                                      "metrics": {"f1": null, "precision": 0.8}}),
        ),
        200,
    );
    assert_eq!(
        moved["lineage"]["parent_version"],
        json!({"id": moved["lineage"]["parent_version"]["id"], "model_id": base, "model": "base-model", "version": 1})
    );
    assert_eq!(moved["lineage"]["run_url"], Value::Null);
    assert_eq!(
        moved["lineage"]["dataset"], "s3://data/churn-2026-11.csv",
        "untouched fields stay"
    );
    assert_eq!(moved["metrics"], json!({"auc": 0.931, "precision": 0.8}));

    // The Octomil door shows the same, from the same place.
    let octomil = ok(&s.get(&format!("{MODELS}/{id}")), 200);
    assert_eq!(octomil["versions"][1]["lineage"], moved["lineage"]);
    assert_eq!(octomil["versions"][1]["metrics"], moved["metrics"]);

    // Refused, changing nothing: a run that is not a web URL, a version its own parent,
    // an unknown field, a parent that does not exist, a field that is not ours to change.
    for (body, field) in [
        (
            json!({"lineage": {"run_url": "javascript:alert(1)"}}),
            "run_url",
        ),
        (
            json!({"lineage": {"parent_version": {"version": 2}}}),
            "parent",
        ),
        (json!({"lineage": {"sourceCommit": "x"}}), "sourceCommit"),
        (
            json!({"lineage": {"source_commit": "has spaces"}}),
            "source_commit",
        ),
        (json!({"lineage": {"parent_version": {"version": 7}}}), "7"),
        (json!({"lineage": "x"}), "lineage"),
        (json!({"status": "gone"}), "status"),
        (json!({"files": []}), "files"),
    ] {
        let reply = patch("2", body.clone());
        assert!(
            reply.status == 400 || reply.status == 404,
            "{body}: {}",
            reply.text()
        );
        assert!(reply.text().contains(field), "{body}: {}", reply.text());
    }
    assert_eq!(
        ok(&s.get(&format!("{MODELREG}/tuned/versions/2")), 200)["lineage"],
        moved["lineage"]
    );

    // A deleted parent is shown as such, not as an error.
    ok(&s.delete(&format!("{MODELS}/base-model")), 200);
    let orphan = ok(&s.get(&format!("{MODELREG}/tuned/versions/2")), 200);
    assert_eq!(orphan["lineage"]["parent_version"]["deleted"], true);
}

#[test]
fn datarobot_takes_an_alias_where_it_takes_a_version_id() {
    let s = Server::start();
    let id = model_with_versions(&s, "shared", 3);
    ok(&set_alias(&s, &id, "champion", 2), 200);
    let two = ok(&s.get(&format!("{MODELREG}/{id}/versions/2")), 200)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let got = ok(
        &s.get(&format!("/api/v2/customModels/{id}/versions/@champion/")),
        200,
    );
    assert_eq!(got["id"], two);
    let latest = ok(
        &s.get(&format!("/api/v2/customModels/{id}/versions/latest/")),
        200,
    );
    assert_eq!(latest["isFrozen"].is_boolean(), true);
    let zip = s.get(&format!(
        "/api/v2/customModels/{id}/versions/@champion/download/"
    ));
    assert_eq!(zip.status, 200, "{}", zip.text());
    // The custom model shows its aliases by version id, as its routes name versions.
    let model = ok(&s.get(&format!("/api/v2/customModels/{id}/")), 200);
    assert_eq!(model["aliases"], json!({"champion": two}));
    // An unknown alias is DataRobot's 404 body.
    let missing = s.get(&format!("/api/v2/customModels/{id}/versions/@nobody/"));
    assert_eq!(missing.status, 404);
    assert!(
        missing.json()["message"]
            .as_str()
            .unwrap()
            .contains("nobody"),
        "{}",
        missing.text()
    );
}

#[test]
fn a_filtered_datarobot_list_counts_only_its_matches() {
    let s = Server::start();
    model_with_versions(&s, "made-through-octomil", 1);
    let created = s.post_json(
        "/api/v2/customModels/",
        &json!({"customModelType": "inference", "name": "prices", "targetType": "Regression", "targetName": "price"}),
    );
    ok(&created, 201);
    // Models made through another door show as Unstructured.
    let unstructured = ok(&s.get("/api/v2/customModels/?targetType=Unstructured"), 200);
    assert_eq!(unstructured["data"].as_array().unwrap().len(), 1);
    assert_eq!(unstructured["totalCount"], 1, "{unstructured}");
    let everything = ok(&s.get("/api/v2/customModels/"), 200);
    assert_eq!(everything["totalCount"], 2);
}

#[test]
fn the_cli_sets_and_shows_aliases_tags_lineage_and_status() {
    let s = Server::start();
    model_with_versions(&s, "cli-flow", 4);
    let run = |remote: bool, args: &[&str]| {
        let out = if remote {
            s.cli_remote(args)
        } else {
            s.cli(args)
        };
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json_of = |remote: bool, args: &[&str]| -> Value {
        let all: Vec<&str> = std::iter::once("--json")
            .chain(args.iter().copied())
            .collect();
        serde_json::from_str(&run(remote, &all)).unwrap()
    };
    for remote in [false, true] {
        let alias = if remote { "remote" } else { "offline" };
        let at = format!("cli-flow@{alias}");
        assert_eq!(
            json_of(remote, &["versions", "alias", "cli-flow", alias, "2"])["version"],
            2,
            "remote: {remote}"
        );
        let tags = json_of(
            remote,
            &[
                "models",
                "tag",
                "cli-flow",
                &format!("via={alias}"),
                "stage=prod",
            ],
        );
        assert_eq!(tags["tags"]["via"], alias);
        let version_tags = json_of(
            remote,
            &[
                "versions",
                "tag",
                "cli-flow",
                &format!("@{alias}"),
                "checked=yes",
            ],
        );
        assert_eq!(version_tags["tags"], json!({"checked": "yes"}));
        let updated = json_of(
            remote,
            &[
                "versions",
                "update",
                &at,
                "--source-commit",
                "abc123",
                "--run-url",
                "https://ci.example.com/1",
                "--parent",
                "1",
                "--metric",
                "auc=0.93",
            ],
        );
        assert_eq!(
            (
                updated["number"].clone(),
                updated["lineage"]["source_commit"].clone()
            ),
            (json!(2), json!("abc123"))
        );
        assert_eq!(updated["lineage"]["parent_version"]["version"], 1);
        assert_eq!(updated["metrics"]["auc"], 0.93);

        // What a person reads: the version with its metrics and lineage, the list with its aliases and metrics.
        let shown = run(remote, &["versions", "show", &at]);
        for expected in [
            "abc123",
            "https://ci.example.com/1",
            "cli-flow@1",
            "auc",
            "0.93",
            "checked=yes",
            &format!("@{alias}"),
        ] {
            assert!(
                shown.contains(expected),
                "remote {remote}: {expected:?} missing from\n{shown}"
            );
        }
        let listed = run(remote, &["versions", "list", "cli-flow"]);
        let lines: Vec<&str> = listed.lines().collect();
        assert!(lines[0].starts_with("VERSION"), "{listed}");
        assert!(lines[1].starts_with('4'), "newest first:\n{listed}");
        let two = lines.iter().find(|l| l.starts_with("2 ")).unwrap();
        assert!(
            two.contains(&format!("@{alias}")) && two.contains("auc=0.93"),
            "{listed}"
        );
        assert!(run(
            remote,
            &["models", "list", "--tag", &format!("via:{alias}")]
        )
        .contains("cli-flow"));
        assert!(!run(remote, &["models", "list", "--tag", "via:nobody"]).contains("cli-flow"));

        // Lifecycle: deprecate and publish by alias; the alias moves off, then is removed.
        assert_eq!(
            json_of(remote, &["versions", "deprecate", &at])["status"],
            "deprecated"
        );
        assert_eq!(
            json_of(
                remote,
                &["versions", "publish", "cli-flow", &format!("@{alias}")]
            )["status"],
            "published"
        );
        json_of(
            remote,
            &["versions", "alias", "cli-flow", alias, "--remove"],
        );
        let gone = if remote {
            s.cli_remote(&["versions", "show", &at])
        } else {
            s.cli(&["versions", "show", &at])
        };
        assert!(!gone.status.success());
        assert!(String::from_utf8_lossy(&gone.stderr).contains(alias));
        json_of(remote, &["models", "tag", "cli-flow", "--remove", "via"]);
    }
    // Deleting a version by number, then it is gone from the list.
    run(false, &["versions", "delete", "cli-flow", "4"]);
    run(true, &["versions", "delete", "cli-flow", "3"]);
    let left: Vec<i64> = json_of(false, &["versions", "list", "cli-flow"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(left, [1, 2]);
    // Each new command's help carries an example.
    for command in [
        &["models", "tag"][..],
        &["versions", "alias"],
        &["versions", "tag"],
        &["versions", "update"],
        &["versions", "show"],
    ] {
        let help = run(false, &[command, &["--help"]].concat());
        assert!(help.contains("Example"), "{command:?}:\n{help}");
    }
}
