//! Model cards (issue 24): `GET/PUT/DELETE
//! /api/modelreg/v1/models/{model}/versions/{version}/card`. A version's
//! README.md is its card until one is set through the API; the HTML served
//! is sanitised, so a hostile card keeps none of its tricks. Each test
//! speaks HTTP to the real binary.

mod common;

use common::datarobot::{self as dr, API};
use common::{as_user, ok, user_key, Part, Reply, Server};
use serde_json::{json, Value};

/// The cap on a card, as docs/administration.md states it.
const MAX_CARD_BYTES: usize = 256 * 1024;

fn card_path(model: &str, version: &str) -> String {
    format!("/api/modelreg/v1/models/{model}/versions/{version}/card")
}

fn put_card(s: &Server, model: &str, version: &str, markdown: &str) -> Reply {
    s.send_json("PUT", &card_path(model, version), &json!({ "markdown": markdown }))
}

/// modelreg's own 404: `{error: "not_found", message}` naming `mentions`.
fn assert_not_found(reply: &Reply, mentions: &str) {
    assert_eq!(reply.status, 404, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], "not_found", "{body}");
    assert!(body["message"].as_str().unwrap().contains(mentions), "{body}");
}

/// An Octomil model with one version holding `model.pt` only (no README).
fn octomil_model(s: &Server, name: &str) -> String {
    let id = ok(&s.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch"})), 201)["id"].as_str().unwrap().to_string();
    let parts = [Part::File { name: "file", filename: "model.pt", bytes: b"weights" }];
    ok(&s.post_multipart(&format!("/api/v1/models/{id}/versions/upload"), &parts), 201);
    id
}

const README: &str = "---\nlicense: mit\n---\n# House prices\n\nPredicts a price from `rooms` and `area`.\n\n\
                      | metric | value |\n|---|---|\n| RMSE | 0.31 |\n\nData: [the survey](https://example.org/survey).\n";

#[test]
fn a_readme_is_the_card_until_one_is_set_through_the_api() {
    let s = Server::start();
    let env = dr::python_environment(&s);
    let created = s.post_json(&format!("{API}/customModels/"), &json!({"name": "houses", "targetType": "Regression", "targetName": "y"}));
    let model = ok(&created, 201)["id"].as_str().unwrap().to_string();
    let files = [
        ("custom.py".to_string(), b"def score(data, model, **kw):\n    return data\n".to_vec()),
        ("README.md".to_string(), README.as_bytes().to_vec()),
        // Only a top-level README is the card.
        ("docs/readme.md".to_string(), b"# Not the card\n".to_vec()),
    ];
    dr::add_version(&s, &model, &env, &files, &[]);

    // The README, by the model's name and the version's number, and by `latest` and an alias.
    let card = ok(&s.get(&card_path("houses", "1")), 200);
    assert_eq!((card["source"].clone(), card["path"].clone(), card["version"].clone()), (json!("readme"), json!("README.md"), json!(1)));
    assert_eq!(card["model"], model.as_str());
    assert_eq!(card["markdown"], README);
    assert_eq!((card["note"].clone(), card["updatedAt"].clone()), (Value::Null, Value::Null));
    let html = card["html"].as_str().unwrap();
    assert!(html.contains("<h1>House prices</h1>") && html.contains("<td>RMSE</td>"), "{html}");
    assert!(html.contains("<a href=\"https://example.org/survey\" rel=\"noopener noreferrer nofollow\">the survey</a>"), "{html}");
    assert!(!html.contains("license: mit") && !html.contains("Not the card"), "{html}");
    assert_eq!(ok(&s.get(&card_path(&model, "latest")), 200), card);
    ok(&s.send_json("PUT", &format!("/api/modelreg/v1/models/{model}/aliases/champion"), &json!({"version": 1})), 200);
    assert_eq!(ok(&s.get(&card_path(&model, "@champion")), 200), card);

    // A card set through the API wins over the README; PUT answers it as GET will.
    let set = ok(&put_card(&s, &model, "@champion", "# Set through the API\n\nReviewed by the team.\n"), 200);
    assert_eq!((set["source"].clone(), set["path"].clone()), (json!("api"), Value::Null));
    assert_eq!(set["html"], "<h1>Set through the API</h1>\n<p>Reviewed by the team.</p>\n");
    assert!(
        set["updatedAt"].as_str().is_some_and(|t| t.ends_with('Z')) && set["updatedBy"].as_str().is_some_and(|u| !u.is_empty()),
        "{set}"
    );
    assert_eq!(ok(&s.get(&card_path(&model, "1")), 200), set);
    // Setting it again replaces it.
    let again = ok(&put_card(&s, &model, "1", "# Second thoughts\n"), 200);
    assert_eq!(ok(&s.get(&card_path(&model, "1")), 200)["markdown"], "# Second thoughts\n");

    // A copy of the model carries the card with its version.
    let copy = ok(&s.post_json(&format!("{API}/customModels/fromCustomModel/"), &json!({"customModelId": model})), 201);
    let copied = ok(&s.get(&card_path(copy["id"].as_str().unwrap(), "1")), 200);
    assert_eq!((copied["source"].clone(), copied["markdown"].clone()), (json!("api"), again["markdown"].clone()));

    // DELETE falls back to the README; deleting again is a 404 saying what is missing.
    let removed = s.delete(&card_path(&model, "1"));
    assert_eq!(removed.status, 204, "{}", removed.text());
    assert_eq!(ok(&s.get(&card_path(&model, "1")), 200), card);
    assert_not_found(&s.delete(&card_path(&model, "1")), "no card set through the API");

    // Unknown versions, aliases and models are 404 in modelreg's body.
    assert_not_found(&s.get(&card_path(&model, "9")), "no version 9");
    assert_not_found(&s.get(&card_path(&model, "@nobody")), "nobody");
    assert_not_found(&put_card(&s, &model, "@nobody", "# x"), "nobody");
    assert_not_found(&s.get(&card_path("no-such-model", "1")), "no-such-model");
}

#[test]
fn a_version_without_a_readme_has_no_card_until_one_is_set() {
    let s = Server::start();
    let model = octomil_model(&s, "plain");
    assert_not_found(&s.get(&card_path(&model, "1")), "no card");
    ok(&put_card(&s, &model, "1", "# Plain\n"), 200);
    assert_eq!(ok(&s.get(&card_path("plain", "latest")), 200)["html"], "<h1>Plain</h1>\n");
    ok(&s.delete(&card_path(&model, "1")), 204);
    assert_not_found(&s.get(&card_path(&model, "1")), "no card");

    // Deleting the version, or the model, removes its card.
    ok(&put_card(&s, &model, "1", "# Plain\n"), 200);
    let count = || s.database_text("SELECT CAST(COUNT(*) AS TEXT) FROM version_cards");
    assert_eq!(count(), "1");
    ok(&s.delete(&format!("/api/v1/models/{model}/versions/1")), 200);
    assert_eq!(count(), "0");
}

/// Everything a hostile card might try, beside harmless Markdown that must
/// survive. None of the hostile parts holds the word "alert" in its text,
/// so any "alert(" in the output is a trick that survived.
const HOSTILE: &str = "# Harmless heading\n\n\
    | a | b |\n|---|---|\n| 1 | 2 |\n\n\
    [a safe link](https://example.org/docs)\n\n\
    <script>alert(1)</script>\n\n\
    <img src=x onerror=alert(2)>\n\n\
    [click](javascript:alert(3))\n\n\
    <a href=\"JaVaScRiPt:alert(4)\">mixed case</a>\n\n\
    <iframe src=\"https://evil.example/frame\"></iframe>\n\n\
    <svg onload=alert(5)><circle r=\"1\"/></svg>\n\n\
    [data](data:text/html;base64,PHNjcmlwdD5hbGVydCg2KTwvc2NyaXB0Pg==)\n\n\
    <div style=\"position:fixed\" onclick=\"alert(7)\">styled</div>\n";

#[test]
fn a_hostile_card_is_rendered_without_any_of_its_tricks() {
    let s = Server::start();
    let model = octomil_model(&s, "hostile");
    let set = ok(&put_card(&s, &model, "1", HOSTILE), 200);
    let got = ok(&s.get(&card_path(&model, "1")), 200);
    assert_eq!(got, set);
    // The Markdown is kept as written: it is the source, not something to insert.
    assert_eq!(got["markdown"], HOSTILE);
    let html = got["html"].as_str().unwrap();
    let lower = html.to_lowercase();
    for trick in ["<script", "onerror", "javascript:", "<iframe", "<svg", "onload", "data:", "<img", "style=", "onclick", "alert("] {
        assert!(!lower.contains(trick), "the card kept {trick:?}: {html}");
    }
    assert!(html.contains("<h1>Harmless heading</h1>"), "{html}");
    assert!(html.contains("<table>") && html.contains("<td>2</td>"), "{html}");
    assert!(html.contains("<a href=\"https://example.org/docs\" rel=\"noopener noreferrer nofollow\">a safe link</a>"), "{html}");
    assert!(html.contains("mixed case") && html.contains("styled"), "the text of a stripped tag stays: {html}");
}

#[test]
fn cards_need_write_access_and_a_size_under_the_cap() {
    let s = Server::start();
    let model = octomil_model(&s, "guarded");

    // Over the cap: 413 naming it; nothing is stored.
    let large = put_card(&s, &model, "1", &"x".repeat(MAX_CARD_BYTES + 1));
    assert_eq!(large.status, 413, "{}", large.text());
    assert!(large.json()["message"].as_str().unwrap().contains(&MAX_CARD_BYTES.to_string()), "{}", large.text());
    assert_not_found(&s.get(&card_path(&model, "1")), "no card");
    ok(&put_card(&s, &model, "1", &"x".repeat(MAX_CARD_BYTES)), 200);
    for body in [json!({}), json!({"markdown": 3}), json!({"markdown": null})] {
        let reply = s.send_json("PUT", &card_path(&model, "1"), &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert!(reply.json()["message"].as_str().unwrap().starts_with("markdown:"), "{body}: {}", reply.text());
    }
    let nul = put_card(&s, &model, "1", "a\0b");
    assert_eq!(nul.status, 400, "{}", nul.text());

    // Another team sees no card and cannot set one.
    assert!(s.cli(&["teams", "add", "others"]).status.success());
    let eve = user_key(&s, "eve", Some("others"));
    assert_eq!(as_user(&s, &eve, "GET", &card_path(&model, "1"), None).status, 404);
    assert_eq!(as_user(&s, &eve, "PUT", &card_path(&model, "1"), Some(&json!({"markdown": "# eve"}))).status, 404);
    assert_eq!(as_user(&s, &eve, "DELETE", &card_path(&model, "1"), None).status, 404);

    // A reader of the model reads the card but may not change it; an editor may.
    let bob = user_key(&s, "bob", None);
    let grant = |role: &str| {
        let body = json!({"data": [{"username": "bob", "role": role}]});
        assert_eq!(s.send_json("PATCH", &format!("{API}/customModels/{model}/accessControl/"), &body).status, 204);
    };
    grant("CONSUMER");
    assert_eq!(as_user(&s, &bob, "GET", &card_path(&model, "1"), None).status, 200);
    let refused = as_user(&s, &bob, "PUT", &card_path(&model, "1"), Some(&json!({"markdown": "# bob"})));
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(as_user(&s, &bob, "DELETE", &card_path(&model, "1"), None).status, 403);
    grant("EDITOR");
    let edited = as_user(&s, &bob, "PUT", &card_path(&model, "1"), Some(&json!({"markdown": "# bob"})));
    assert_eq!((ok(&edited, 200)["markdown"].clone(), edited.json()["updatedBy"].clone()), (json!("# bob"), json!("bob")));
}

#[test]
fn a_readme_over_the_cap_or_not_utf8_comes_with_a_note_not_an_error() {
    let s = Server::start();
    let env = dr::python_environment(&s);
    let created = s.post_json(&format!("{API}/customModels/"), &json!({"name": "verbose", "targetType": "Regression", "targetName": "y"}));
    let model = ok(&created, 201)["id"].as_str().unwrap().to_string();
    let long = format!("# Long\n\n{}", "word ".repeat(MAX_CARD_BYTES / 5 + 1));
    let files = [("custom.py".to_string(), b"x = 1\n".to_vec()), ("readme.MD".to_string(), long.clone().into_bytes())];
    dr::add_version(&s, &model, &env, &files, &[]);
    let card = ok(&s.get(&card_path(&model, "1")), 200);
    assert_eq!((card["source"].clone(), card["path"].clone()), (json!("readme"), json!("readme.MD")));
    assert_eq!((card["markdown"].clone(), card["html"].clone()), (Value::Null, Value::Null));
    let note = card["note"].as_str().unwrap();
    assert!(note.contains("readme.MD") && note.contains(&long.len().to_string()) && note.contains(&MAX_CARD_BYTES.to_string()), "{note}");

    // Latin-1, not UTF-8: shown, the odd byte replaced, and said so.
    let files = [("custom.py".to_string(), b"x = 1\n".to_vec()), ("README.md".to_string(), b"# Caf\xe9 model\n".to_vec())];
    dr::add_version(&s, &model, &env, &files, &[]);
    let card = ok(&s.get(&card_path(&model, "2")), 200);
    assert_eq!(card["html"], "<h1>Caf\u{FFFD} model</h1>\n");
    assert!(card["note"].as_str().unwrap().contains("README.md is not UTF-8"), "{card}");
}
