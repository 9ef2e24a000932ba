//! The web UI's names in URLs, its chart of metrics over versions and its
//! compare view (issue 25), in a real headless Chromium against the real
//! binary: `#/models/NAME`, `…/versions/@alias`, a name two models share,
//! one chart per numeric metric two versions report, two versions side by
//! side, and hostile names and metrics staying text. Screenshots go to
//! target/ui-screenshots/ (compare-1400, compare-390, chart-1400).
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).

mod common;

use common::browser::Browser;
use common::datarobot::API;
use common::{ok, sha256_hex, weights, Part, Server};
use serde_json::{json, Value};

fn octomil_model(s: &Server, name: &str) -> String {
    let r = s.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch", "description": "fraud scores"}));
    ok(&r, 201)["id"].as_str().unwrap().to_string()
}

fn upload(s: &Server, model: &str, filename: &str, bytes: &[u8]) {
    let parts = [Part::File { name: "file", filename, bytes }];
    ok(&s.post_multipart(&format!("/api/v1/models/{model}/versions/upload"), &parts), 201);
}

fn modelreg(s: &Server, method: &str, path: &str, body: Value) -> Value {
    ok(&s.send_json(method, &format!("/api/modelreg/v1/models/{path}"), &body), 200)
}

fn hash(b: &Browser) -> String {
    b.js("return location.hash", json!([])).as_str().unwrap().to_string()
}

/// Opens a fragment the way a pasted link does (a fresh load of the page).
fn open(b: &Browser, s: &Server, fragment: &str) {
    b.goto(&s.url(&format!("/{fragment}")));
}

#[test]
fn names_and_version_handles_in_urls_open_the_right_model_and_version_and_a_shared_name_offers_each() {
    let s = Server::start();
    let model = octomil_model(&s, "fraud-xgb");
    for n in 1..=3 {
        upload(&s, &model, &format!("v{n}.pt"), format!("weights {n}").as_bytes());
    }
    // The alias names neither the first nor the latest version.
    modelreg(&s, "PUT", "fraud-xgb/aliases/champion", json!({"version": 2}));
    let champion = ok(&s.get("/api/modelreg/v1/models/fraud-xgb/versions/@champion"), 200)["number"].as_i64().unwrap();
    assert_eq!(champion, 2);

    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");

    // The list links the model by its name.
    let link = b.find(&format!("#models tr[data-id='{model}'] a"));
    assert_eq!(b.attribute(&link, "href"), json!("#/models/fraud-xgb"));

    // By name: the model, its latest version chosen, every link by name.
    open(&b, &s, "#/models/fraud-xgb");
    b.wait_text("#model-name", "the model by its name", |t| t == "fraud-xgb");
    assert_eq!(b.attribute(&b.find("#model"), "data-id"), json!(model));
    assert_eq!(b.wait_text("#version-info-h", "the latest version", |t| !t.is_empty()), "Version 3");
    let hrefs = b.js("return [...document.querySelectorAll('#versions tbody a')].map((a) => a.getAttribute('href'))", json!([]));
    assert_eq!(hrefs, json!(["#/models/fraud-xgb/versions/3", "#/models/fraud-xgb/versions/2", "#/models/fraud-xgb/versions/1"]));
    assert_eq!(b.attribute(&b.find("#model-aliases a[data-alias='champion']"), "href"), json!("#/models/fraud-xgb/versions/@champion"));

    // By alias: the version the API says the alias names.
    open(&b, &s, "#/models/fraud-xgb/versions/@champion");
    let heading = b.wait_text("#version-info-h", "the champion's version", |t| t != "Version 3" && !t.is_empty());
    assert_eq!(heading, format!("Version {champion}"));
    assert_eq!(b.attribute(&b.find("#versions tr.current"), "data-number"), json!(champion.to_string()));
    b.wait_text("#files", "the champion's file", |t| t.contains("v2.pt"));

    // `latest`, a number, and the id still work.
    open(&b, &s, "#/models/fraud-xgb/versions/latest");
    b.wait_text("#files", "the latest version's file", |t| t.contains("v3.pt"));
    open(&b, &s, &format!("#/models/{model}/versions/1"));
    b.wait_text("#files", "version 1 by the model's id", |t| t.contains("v1.pt"));
    assert_eq!(b.text(&b.find("#version-info-h")), "Version 1");

    // An alias nobody set: the latest, and why.
    open(&b, &s, "#/models/fraud-xgb/versions/@nobody");
    let error = b.wait_text("#no-such-version", "the missing alias", |t| !t.is_empty());
    assert!(error.contains("no version @nobody"), "{error}");
    // A name nobody has: not found, said so.
    open(&b, &s, "#/models/no-such-model");
    let error = b.wait_text("main p.error:not([hidden])", "the missing name", |t| t.contains("No model"));
    assert!(error.contains("No model no-such-model"), "{error}");
    assert_eq!(s.get("/ui/api/models/no-such-model").status, 404);

    // A name two models share (DataRobot allows it): the page says so and
    // links each candidate by its id, keeping the rest of the URL.
    let twins: Vec<String> = (0..2)
        .map(|i| {
            let body = json!({"name": "twin", "targetType": "Regression", "targetName": "y", "description": format!("twin {i}")});
            ok(&s.post_json(&format!("{API}/customModels/"), &body), 201)["id"].as_str().unwrap().to_string()
        })
        .collect();
    let reply = s.get("/ui/api/models/twin");
    assert_eq!(reply.status, 409, "{}", reply.text());
    let mut listed: Vec<String> = reply.json()["candidates"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().into()).collect();
    listed.sort();
    let mut expected = twins.clone();
    expected.sort();
    assert_eq!(listed, expected);

    open(&b, &s, "#/models/twin/versions/latest");
    b.wait_count("#ambiguous li", 2);
    let message = b.text(&b.find("#ambiguous .error"));
    assert!(message.contains("2 models are named \"twin\""), "{message}");
    for id in &twins {
        let a = b.find(&format!("#ambiguous li[data-id='{id}'] a"));
        assert_eq!(b.attribute(&a, "href"), json!(format!("#/models/{id}/versions/latest")));
    }
    b.click(&b.find(&format!("#ambiguous li[data-id='{}'] a", twins[1])));
    b.wait_text("#model-name", "the chosen twin", |t| t == "twin");
    assert_eq!(b.attribute(&b.find("#model"), "data-id"), json!(twins[1]));
    // A shared name cannot name the model in links: they carry its id.
    assert_eq!(hash(&b), format!("#/models/{}/versions/latest", twins[1]));
}

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// Four versions: v1 and v2 the metrics and the same path with other
/// bytes, v3 a GGUF file, v4 v1's bytes again. Returns the model's id.
fn four_versions(s: &Server, name: &str) -> String {
    let model = octomil_model(s, name);
    upload(s, &model, "model.pt", b"first weights");
    upload(s, &model, "model.pt", b"second weights, longer");
    upload(s, &model, "tiny.gguf", &weights::gguf());
    upload(s, &model, "model.pt", b"first weights");
    let path = |v: u32| format!("{model}/versions/{v}");
    modelreg(s, "PATCH", &path(1), json!({"metrics": {"auc": 0.902, "f1": 0.66, "notes": "baseline run", HOSTILE: 1.5}}));
    let lineage = json!({"source_commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "dataset": "s3://data/churn.csv",
        "run_url": "https://ci.example.com/runs/42", "parent_version": {"version": 1}});
    modelreg(s, "PATCH", &path(2), json!({"metrics": {"auc": 0.931, "f1": 0.71, "recall": 0.5, HOSTILE: 2.5, "comment": HOSTILE}, "lineage": lineage}));
    modelreg(s, "PUT", &format!("{model}/aliases/baseline"), json!({"version": 1}));
    modelreg(s, "PUT", &format!("{model}/aliases/champion"), json!({"version": 2}));
    model
}

fn nothing_ran(b: &Browser) {
    assert_eq!(b.js("return document.querySelectorAll('main img, main script, main svg:not(.spark)').length", json!([])), 0, "text became elements");
    assert!(!b.alert_open(), "a dialog opened");
}

#[test]
fn a_chart_shows_each_metric_two_versions_report_and_the_compare_view_shows_two_versions_side_by_side() {
    let s = Server::start();
    let model = four_versions(&s, "fraud-xgb");
    let b = Browser::start();
    b.set_size(1400, 900);
    b.sign_in(&s, &s.key);
    b.find("#models");

    // The chart: auc, f1 and the hostile name (numbers in v1 and v2; the
    // registry keeps metrics by name, so "<" comes first); not recall (v2
    // only), nor notes or comment (text).
    open(&b, &s, "#/models/fraud-xgb");
    b.wait_count("#metric-charts figure", 3);
    let charted = b.js("return [...document.querySelectorAll('#metric-charts figure')].map((f) => f.dataset.metric)", json!([]));
    assert_eq!(charted, json!([HOSTILE, "auc", "f1"]));
    let points = |metric: &str| {
        b.js(
            "return [...[...document.querySelectorAll('#metric-charts figure')].find((f) => f.dataset.metric === arguments[0])\
             .querySelectorAll('circle title')].map((t) => t.textContent)",
            json!([metric]),
        )
    };
    assert_eq!(points("auc"), json!(["v1: auc = 0.902", "v2: auc = 0.931"]));
    assert_eq!(points("f1"), json!(["v1: f1 = 0.66", "v2: f1 = 0.71"]));
    assert_eq!(points(HOSTILE), json!([format!("v1: {HOSTILE} = 1.5"), format!("v2: {HOSTILE} = 2.5")]));
    let captions = b.js("return [...document.querySelectorAll('#metric-charts figcaption')].map((c) => c.textContent)", json!([]));
    assert_eq!(captions, json!([HOSTILE, "auc", "f1"]));
    // The same numbers in a table, oldest first.
    let table = b.js("return [...document.querySelectorAll('#metric-values tr')].map((r) => [...r.cells].map((c) => c.textContent))", json!([]));
    assert_eq!(table, json!([["Version", HOSTILE, "auc", "f1"], ["v1", "1.5", "0.902", "0.66"], ["v2", "2.5", "0.931", "0.71"]]));
    nothing_ran(&b);
    b.js("document.getElementById('versions-h').scrollIntoView()", json!([]));
    b.screenshot("chart-1400");

    // From a version, "Compare with previous".
    open(&b, &s, "#/models/fraud-xgb/versions/2");
    b.wait_text("#version-info-h", "version 2", |t| t == "Version 2");
    b.click(&b.find("#compare-previous"));
    b.wait_text("#compare-h", "the compare view", |t| t.ends_with("v1 and v2"));
    assert_eq!(hash(&b), "#/models/fraud-xgb/compare/1/2");

    // Metrics: every metric of either, both values, B − A for numbers.
    let api = |v: u32| ok(&s.get(&format!("/api/modelreg/v1/models/{model}/versions/{v}")), 200);
    let (one, two) = (api(1), api(2));
    let rows = b.js(
        "return Object.fromEntries([...document.querySelectorAll('#compare-metrics tbody tr')]\
         .map((r) => [r.dataset.metric, [...r.querySelectorAll('td')].map((c) => c.textContent)]))",
        json!([]),
    );
    assert_eq!(rows["auc"], json!([one["metrics"]["auc"].to_string(), two["metrics"]["auc"].to_string(), "+0.029"]));
    assert_eq!(rows["f1"], json!(["0.66", "0.71", "+0.05"]));
    assert_eq!(rows[HOSTILE], json!(["1.5", "2.5", "+1.0"]));
    assert_eq!(rows["recall"], json!(["not reported", "0.5", "only in v2"]));
    assert_eq!(rows["notes"], json!(["baseline run", "not reported", "only in v1"]));
    assert_eq!(rows["comment"], json!(["not reported", HOSTILE, "only in v2"]));

    // Files: sizes, hashes (whole in the title and the row), changed.
    let file = |v: &Value| v["files"][0].clone();
    let cells = b.js(
        "return [...document.querySelectorAll('#compare-files tr[data-path=\"model.pt\"] td')]\
         .map((c) => [c.dataset.sha256 || '', c.querySelector('code') ? c.querySelector('code').title : '', c.textContent])",
        json!([]),
    );
    for (i, v) in [&one, &two].into_iter().enumerate() {
        let sha = file(v)["sha256"].as_str().unwrap().to_string();
        assert_eq!(cells[i][0], json!(sha));
        assert_eq!(cells[i][1], json!(sha));
        let text = cells[i][2].as_str().unwrap();
        assert!(text.starts_with(&format!("{} B {}…", file(v)["size"], &sha[..12])), "{text}");
    }
    assert_eq!(b.text(&b.find("#compare-files tr[data-path='model.pt'] .same")), "changed");
    assert_eq!(sha256_hex(b"first weights"), file(&one)["sha256"].as_str().unwrap());

    // Lineage, from modelreg's version route, and aliases.
    let lineage = b.wait_text("#compare-lineage-table", "the lineage", |t| t.contains("Parent version"));
    for expected in ["9fceb02d0ae598e95dc970b74767f19372d61af8", "s3://data/churn.csv", "https://ci.example.com/runs/42"] {
        assert!(lineage.contains(expected), "{lineage}");
    }
    let parent = b.find("#compare-lineage-table a[href='#/models/fraud-xgb/versions/1']");
    assert_eq!(b.text(&parent), "v1");
    let aliases = b.js("return [...document.querySelectorAll('#compare-fields tr[data-field=\"aliases\"] td')].map((c) => c.textContent)", json!([]));
    assert_eq!(aliases, json!(["@baseline ", "@champion "]));
    assert_eq!(two["aliases"], json!(["champion"]));
    nothing_ran(&b);
    b.screenshot("compare-1400");

    b.set_size(390, 844);
    b.wait_text("#compare-lineage-table", "the lineage at 390 px", |t| t.contains("Parent version"));
    b.assert_no_sideways_scroll("the compare view");
    b.screenshot("compare-390");
    // The model page with its chart and the compare controls fits a phone too.
    open(&b, &s, "#/models/fraud-xgb");
    b.wait_count("#metric-charts figure", 3);
    b.assert_no_sideways_scroll("the model page with its chart");
    b.set_size(1400, 900);

    // Two versions picked on the page: a file only in each, and the GGUF file's facts.
    open(&b, &s, "#/models/fraud-xgb");
    b.wait_text("#version-info-h", "the latest version", |t| t == "Version 4");
    b.js("document.getElementById('compare-a').value = '1'; document.getElementById('compare-b').value = '3'", json!([]));
    b.click(&b.find("#compare-go"));
    b.wait_text("#compare-h", "v1 and v3", |t| t.ends_with("v1 and v3"));
    assert_eq!(hash(&b), "#/models/fraud-xgb/compare/1/3");
    assert_eq!(b.text(&b.find("#compare-files tr[data-path='model.pt'] .same")), "only in v1");
    assert_eq!(b.text(&b.find("#compare-files tr[data-path='tiny.gguf'] .same")), "only in v3");
    assert_eq!(b.text(&b.find("#compare-files tr[data-path='tiny.gguf'] .weights")), weights::GGUF_SUMMARY);

    // Any handles: an alias and a number; the same bytes are "identical".
    open(&b, &s, "#/models/fraud-xgb/compare/@baseline/4");
    b.wait_text("#compare-h", "v1 and v4", |t| t.ends_with("v1 and v4"));
    assert_eq!(b.text(&b.find("#compare-files tr[data-path='model.pt'] .same")), "identical");
    let metrics = b.text(&b.find("#compare-metrics tr[data-metric='auc']"));
    assert!(metrics.contains("0.902") && metrics.contains("only in v1"), "{metrics}");
    // A handle that names nothing says so.
    open(&b, &s, "#/models/fraud-xgb/compare/1/@nobody");
    let error = b.wait_text("main p.error:not([hidden])", "the missing version", |t| t.contains("@nobody"));
    assert!(error.contains("@nobody"), "{error}");
}

#[test]
fn a_hostile_model_name_and_hostile_metrics_stay_text_in_the_chart_and_the_compare_view() {
    let s = Server::start();
    let name = "<svg onload=alert(2)><img src=x onerror=alert(1)>";
    let model = four_versions(&s, name);
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    let link = b.find(&format!("#models tr[data-id='{model}'] a"));
    b.click(&link);
    b.wait_text("#model-name", "the hostile name", |t| t == name);
    b.wait_count("#metric-charts figure", 3);
    nothing_ran(&b);
    b.click(&b.find("#compare-go"));
    b.wait_text("#compare-h", "the compare view", |t| t == format!("{name}: v3 and v4"));
    assert_eq!(b.text(&b.find("#compare-model")), name);
    // The name went into the URL as text too, and reads back as the model.
    let fragment = hash(&b);
    assert!(fragment.starts_with("#/models/%3Csvg") && fragment.ends_with("/compare/3/4"), "{fragment}");
    assert_eq!(b.attribute(&b.find("#compare"), "data-b"), json!("4"));
    open(&b, &s, &format!("#/models/{}/compare/1/2", fragment.split('/').nth(2).unwrap()));
    b.wait_text("#compare-metrics", "the hostile metrics", |t| t.contains(HOSTILE));
    let comment = b.text(&b.find("#compare-metrics tr[data-metric='comment']"));
    assert!(comment.contains(HOSTILE), "{comment}");
    nothing_ran(&b);
    assert_eq!(ok(&s.get(&format!("/api/modelreg/v1/models/{model}")), 200)["name"], json!(name));
}

#[test]
fn a_datarobot_versions_major_minor_label_names_it_in_the_url() {
    let s = Server::start();
    let env = common::datarobot::python_environment(&s);
    let body = json!({"name": "house prices", "targetType": "Regression", "targetName": "y", "language": "python"});
    let model = ok(&s.post_json(&format!("{API}/customModels/"), &body), 201)["id"].as_str().unwrap().to_string();
    for n in 0..2 {
        let files = [("custom.py".to_string(), format!("# version {n}\n").into_bytes())];
        common::datarobot::add_version(&s, &model, &env, &files, &[]);
    }
    let page = ok(&s.get("/ui/api/models/house%20prices"), 200);
    let first = page["versions"][1].clone();
    let label = first["label"].as_str().unwrap().to_string();
    assert!(label.contains('.') && first["number"] == 1, "{first}");
    // The route resolves the label the page shows, and the handles the API takes.
    let resolved = ok(&s.get(&format!("/ui/api/models/{model}?version={label}&version=latest&version=9")), 200)["handles"].clone();
    assert_eq!(resolved[0], json!({"handle": label, "number": 1}));
    assert_eq!(resolved[1], json!({"handle": "latest", "number": 2}));
    assert!(resolved[2]["error"].as_str().unwrap().contains("no version 9"), "{resolved}");

    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    open(&b, &s, &format!("#/models/house%20prices/versions/{label}"));
    assert_eq!(b.wait_text("#version-info-h", "the labelled version", |t| !t.is_empty()), format!("Version {label}"));
    assert_eq!(b.attribute(&b.find("#model"), "data-id"), json!(model));
}
