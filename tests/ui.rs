//! The web UI (issue 13) in a real headless Chromium, driven over
//! chromedriver's W3C WebDriver HTTP API, against the real binary: signing
//! in, the list of every door's models, search, the model page and its
//! signed download, hostile names as text, a wrong key, DataRobot tests and
//! feature impact, Paperspace machines. Screenshots (1280×800) go to
//! target/ui-screenshots/.
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).

mod common;

use common::browser::{wait_for, Browser, WAIT};
use common::datarobot::{self as dr, API};
use common::{ok, sha256_hex, weights, Part, Server};
use serde_json::{json, Value};

fn octomil_model(s: &Server, name: &str, description: &str) -> String {
    let r = s.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch", "description": description}));
    ok(&r, 201)["id"].as_str().unwrap().to_string()
}

fn upload(s: &Server, model: &str, filename: &str, bytes: &[u8]) {
    let parts = [Part::File { name: "file", filename, bytes }, Part::Field("format", "pytorch")];
    ok(&s.post_multipart(&format!("/api/v1/models/{model}/versions/upload"), &parts), 201);
}

fn one_model_per_door(s: &Server) -> (String, String, String) {
    let octo = octomil_model(s, "mnist-cnn", "handwritten digits");
    upload(s, &octo, "mnist.pt", &[7u8; 4096]);
    let paper = ok(&s.post_json("/v1/models", &json!({"name": "paper-resnet", "modelType": "ONNX", "isPublic": true})), 200);
    let robot = ok(&s.post_json(&format!("{API}/customModels/"), &json!({"name": "house prices", "targetType": "Regression", "targetName": "y", "description": "a regression"})), 201);
    (octo, paper["id"].as_str().unwrap().to_string(), robot["id"].as_str().unwrap().to_string())
}

fn origins(b: &Browser) -> Vec<String> {
    let rows = b.find_all("#models tbody tr");
    let mut got: Vec<String> = rows
        .iter()
        .map(|r| b.attribute(r, "data-origin").as_str().unwrap().to_string())
        .collect();
    got.sort();
    got
}

#[test]
fn signing_in_lists_every_doors_models_and_search_and_filters_narrow_it() {
    let s = Server::start();
    let (octo, _, robot) = one_model_per_door(&s);
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.wait_count("#models tbody tr", 3);
    assert_eq!(origins(&b), ["datarobot", "octomil", "paperspace"]);
    let row = b.text(&b.find(&format!("#models tr[data-id='{octo}']")));
    assert!(row.contains("mnist-cnn") && row.contains("pytorch") && row.contains("v1 "), "{row}");
    assert_eq!(b.js("return [innerWidth, innerHeight]", json!([])), json!([1280, 800]));
    b.screenshot("list");

    // Search covers descriptions as well as names.
    let search = b.find("#search");
    b.type_into(&search, "DIGITS");
    assert_eq!(b.wait_count("#models tbody tr", 1)[0].lines().next(), Some("mnist-cnn"));
    // The URL names the search, so it can be shared and reloaded.
    let hash = b.js("return location.hash", json!([]));
    assert_eq!(hash, "#/?q=DIGITS");
    b.goto(&s.url("/#/?q=house"));
    b.wait_text("#models tbody", "the DataRobot model", |t| t.contains("house prices") && !t.contains("mnist"));
    assert_eq!(b.find_all(&format!("#models tr[data-id='{robot}']")).len(), 1);

    b.goto(&s.url("/#/?origin=paperspace"));
    b.wait_text("#models tbody", "only the Paperspace model", |t| t.contains("paper-resnet") && !t.contains("house"));
    b.goto(&s.url("/#/?type=framework:pytorch"));
    b.wait_text("#models tbody", "only the pytorch model", |t| t.contains("mnist-cnn") && !t.contains("paper"));
    b.goto(&s.url("/#/?q=nothing-like-this"));
    b.wait_text("#no-match", "the no-match notice", |t| t.contains("No model matches"));

    // A link names the model by its name (shareable); following it by keyboard opens its page.
    b.goto(&s.url("/#/"));
    let link = b.find(&format!("#models tr[data-id='{octo}'] a"));
    b.cmd("POST", &format!("/element/{link}/value"), Some(json!({"text": "\u{E007}"})));
    b.wait_text("#model-name", "the model's name", |t| t == "mnist-cnn");
    assert_eq!(b.js("return location.hash", json!([])), "#/models/mnist-cnn");
    assert_eq!(b.attribute(&b.find("#model"), "data-id"), json!(octo));

    // A phone's width: nothing overflows sideways.
    b.set_size(390, 844);
    b.goto(&s.url("/#/"));
    b.wait_count("#models tbody tr", 3);
    b.assert_no_sideways_scroll("the list");
}

#[test]
fn the_model_page_lists_versions_newest_first_and_its_download_matches_the_sha256() {
    let s = Server::start();
    let model = octomil_model(&s, "weights", "two versions");
    let first: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let second: Vec<u8> = (0..90_000u32).map(|i| (i * 7 % 253) as u8).collect();
    upload(&s, &model, "model-a.pt", &first);
    upload(&s, &model, "model-b.pt", &second);
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    b.goto(&s.url(&format!("/#/models/{model}")));
    let rows = b.wait_count("#versions tbody tr", 2);
    assert!(rows[0].starts_with("v2") && rows[1].starts_with("v1"), "newest first: {rows:?}");
    let files = b.wait_text("#files", "the latest version's file", |t| t.contains("model-b.pt"));
    assert!(files.contains(&sha256_hex(&second)), "{files}");
    let snippets = b.text(&b.find("#version"));
    assert!(snippets.contains(&format!("versions download {model} 2 -o model-b.pt")), "{snippets}");
    assert!(snippets.contains(&format!("/api/v1/models/{model}/versions/2/download")), "{snippets}");
    b.screenshot("model");

    // Download is a signed link the browser follows itself; the page shows
    // the sha256 to expect and the command that checks it.
    b.click(&b.find("#files a.download"));
    let result = b.wait_text("#download-result", "the expected sha256", |t| t.contains("sha256sum"));
    assert!(result.contains(&format!("echo \"{}  model-b.pt\" | sha256sum -c", sha256_hex(&second))), "{result}");
    // The browser saved the bytes the registry holds.
    let saved = b.downloads.path().join("model-b.pt");
    wait_for("the saved download", || std::fs::read(&saved).ok().filter(|bytes| bytes.len() == second.len()));
    assert_eq!(sha256_hex(&std::fs::read(&saved).unwrap()), sha256_hex(&second));

    // The URL names the version; an older one is shown with its own file.
    b.goto(&s.url(&format!("/#/models/{model}/versions/1")));
    b.wait_text("#files", "version 1's file", |t| t.contains("model-a.pt") && t.contains(&sha256_hex(&first)));
    let current = b.text(&b.find("#versions tr.current"));
    assert!(current.starts_with("v1"), "{current}");
}

#[test]
fn a_weights_files_facts_show_under_its_path_and_an_impostors_note_as_text() {
    let s = Server::start();
    let model = octomil_model(&s, "llm", "today's formats");
    for (filename, bytes) in [("fake.gguf", b"<img src=x onerror=alert(1)>".to_vec()), ("tiny.gguf", weights::gguf())] {
        let parts = [Part::File { name: "file", filename, bytes: &bytes }];
        ok(&s.post_multipart(&format!("/api/v1/models/{model}/versions/upload"), &parts), 201);
    }
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    b.goto(&s.url(&format!("/#/models/{model}")));
    let facts = b.wait_text("#files .weights", "the GGUF file's facts", |t| !t.is_empty());
    assert_eq!(facts, weights::GGUF_SUMMARY);
    b.goto(&s.url(&format!("/#/models/{model}/versions/1")));
    let note = b.wait_text("#files .weights.unreadable", "the impostor's note", |t| t.contains("fake") || t.contains("not a readable"));
    assert!(note.starts_with("not a readable gguf file: the file does not start with GGUF's magic bytes"), "{note}");
    let injected = b.js("return document.querySelectorAll('main img').length", json!([]));
    assert_eq!(injected, 0, "the file's bytes became elements");
    assert!(!b.alert_open(), "a script ran");
}

#[test]
fn a_hostile_model_name_renders_as_text_and_runs_no_script() {
    let s = Server::start();
    let name = "<img src=x onerror=alert(1)>";
    let description = "<script>alert(2)</script><b>bold</b>";
    let model = octomil_model(&s, name, description);
    // A version's description is user input too.
    let parts = [Part::File { name: "file", filename: "m.pt", bytes: b"weights" }, Part::Field("description", "<svg onload=alert(3)>")];
    ok(&s.post_multipart(&format!("/api/v1/models/{model}/versions/upload"), &parts), 201);
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    let row = b.wait_count("#models tbody tr", 1);
    assert_eq!(row[0].lines().next(), Some(name));
    assert!(row[0].contains(description), "{row:?}");
    b.goto(&s.url(&format!("/#/models/{model}")));
    assert_eq!(b.wait_text("#model-name", "the name", |t| !t.is_empty()), name);
    b.wait_text("#versions", "the version's description as text", |t| t.contains("<svg onload=alert(3)>"));
    let injected = b.js("return document.querySelectorAll('main img, main script, main b, main svg:not(.chart)').length", json!([]));
    assert_eq!(injected, 0, "registry text became elements");
    assert!(!b.alert_open(), "a script ran");
}

/// A card that, were any of it to run, would set `window.cardRan` and the
/// page's title.
const HOSTILE_CARD: &str = "# Card heading\n\nWhat this model is for.\n\n\
    <script>window.cardRan = true; document.title = 'pwned'</script>\n\n\
    <img src=x onerror=\"window.cardRan = true; document.title = 'pwned'\">\n\n\
    [click me](javascript:window.cardRan=true)\n\n\
    <a href=\"JaVaScRiPt:window.cardRan=true\">mixed case</a>\n\n\
    <svg onload=\"window.cardRan = true\"><circle r=\"1\"/></svg>\n\n\
    <iframe srcdoc=\"<script>parent.cardRan = true</script>\"></iframe>\n\n\
    <div style=\"position:fixed;inset:0\" onmouseover=\"window.cardRan = true\">covering</div>\n";

#[test]
fn a_hostile_model_card_shows_its_heading_and_runs_no_script() {
    let s = Server::start();
    let model = octomil_model(&s, "carded", "a model with a card");
    upload(&s, &model, "m.pt", b"weights");
    let card = s.send_json("PUT", &format!("/api/modelreg/v1/models/{model}/versions/1/card"), &json!({"markdown": HOSTILE_CARD}));
    ok(&card, 200);
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    // Anything the sanitiser let through would meet the page's policy, which
    // reports what it blocks: record that from here on (the page stays the
    // same document, as the UI routes in the URL's fragment).
    b.js(
        "window.violations = []; \
         document.addEventListener('securitypolicyviolation', (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`))",
        json!([]),
    );
    b.js("location.hash = arguments[0]", json!([format!("#/models/{model}/versions/1")]));
    assert_eq!(b.wait_text("#card-body h1", "the card's heading", |t| !t.is_empty()), "Card heading");
    assert_eq!(b.js("return document.querySelector('#card-body h1').checkVisibility()", json!([])), true);
    b.wait_text("#card-body", "the text of stripped tags", |t| t.contains("mixed case") && t.contains("covering"));
    b.screenshot("card");

    // Nothing that could run reached the page: no element, attribute or URL of the tricks.
    let kept = b.js(
        "return [...document.querySelectorAll('#card script, #card img, #card svg, #card iframe, #card [style], \
         #card [onerror], #card [onload], #card [onmouseover], #card a[href]')]\
         .filter((e) => e.tagName !== 'A' || !/^https?:/.test(e.getAttribute('href'))).map((e) => e.outerHTML)",
        json!([]),
    );
    assert_eq!(kept, json!([]), "the card kept elements that could run");
    // And nothing ran: the global is unset, the title is the page's own,
    // no alert is open, and the policy blocked nothing (the sanitiser held
    // on its own).
    assert_eq!(b.js("return typeof window.cardRan", json!([])), "undefined");
    assert_eq!(b.js("return document.title", json!([])), "carded · modelreg");
    assert!(!b.alert_open(), "a dialog opened");
    assert_eq!(b.js("return window.violations", json!([])), json!([]));
}

/// A tag value that, were it ever parsed as HTML, would set `window.pwned`.
const HOSTILE_TAG: &str = "<img src=x onerror=window.pwned=1>";

#[test]
fn a_models_tags_aliases_metrics_and_lineage_show_as_text_and_links_lead_to_their_versions() {
    let s = Server::start();
    let model = octomil_model(&s, "fraud-xgb", "fraud scores");
    upload(&s, &model, "v1.pt", b"first");
    upload(&s, &model, "v2.pt", b"second");
    let set = |method: &str, path: &str, body: Value| ok(&s.send_json(method, &format!("/api/modelreg/v1/models/{path}"), &body), 200);
    let long_value = "a-very-long-owner-name-".repeat(20);
    set("PUT", &format!("{model}/tags/stage"), json!({"value": "production"}));
    set("PUT", &format!("{model}/tags/note"), json!({"value": HOSTILE_TAG}));
    set("PUT", &format!("{model}/tags/owner"), json!({"value": long_value}));
    set("PUT", &format!("{model}/versions/2/tags/validated"), json!({"value": "yes"}));
    // The alias names the older version, so following it is not the page's default (the latest).
    set("PUT", &format!("{model}/aliases/champion"), json!({"version": 1}));
    set("PATCH", &format!("{model}/versions/1"), json!({"metrics": {"auc": 0.902, "f1": 0.66}}));
    let run_url = "https://ci.example.com/runs/42?tab=metrics";
    let dataset = "s3://data/<b>churn</b>.csv";
    let lineage = json!({"source_commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "dataset": dataset, "run_url": run_url, "parent_version": {"version": 1}});
    set("PATCH", &format!("{model}/versions/2"), json!({"metrics": {"auc": 0.931, "f1": 0.71}, "lineage": lineage}));
    // Version 1 derives from another model's version, deleted since.
    let scratch = octomil_model(&s, "scratch", "");
    upload(&s, &scratch, "s.pt", b"scratch");
    set("PATCH", &format!("{model}/versions/1"), json!({"lineage": {"parent_version": {"model": scratch, "version": 1}}}));
    ok(&s.delete(&format!("/api/modelreg/v1/models/{scratch}/versions/1")), 204);

    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    b.goto(&s.url(&format!("/#/models/{model}")));

    // The model: its tags as chips, by key, and its alias with the version it names.
    assert_eq!(b.wait_count("#model-tags li", 3), [format!("note: {HOSTILE_TAG}"), format!("owner: {long_value}"), "stage: production".into()]);
    assert_eq!(b.text(&b.find("#model-aliases")), "@champion → v1");
    // The versions table: each version's aliases, its metrics in short and its tags.
    let v2 = b.text(&b.find("#versions tr[data-number='2']"));
    assert!(v2.contains("auc 0.931 · f1 0.71") && v2.contains("validated: yes") && !v2.contains("@champion"), "{v2}");
    let v1 = b.text(&b.find("#versions tr[data-number='1']"));
    assert!(v1.contains("@champion") && v1.contains("auc 0.902 · f1 0.66"), "{v1}");

    // The latest version's view: aliases, tags, metrics as a table, lineage.
    assert_eq!(b.wait_text("#version-info-h", "the version's heading", |t| !t.is_empty()), "Version 2");
    assert_eq!(b.text(&b.find("#version-tags")), "validated: yes");
    assert_eq!(b.text(&b.find("#version-aliases")), "none");
    assert_eq!(b.wait_count("#metrics tbody th", 2), ["auc", "f1"]);
    assert_eq!(b.wait_count("#metrics tbody td", 2), ["0.931", "0.71"]);
    b.wait_text("#lineage", "the lineage", |t| t.contains("Parent version"));
    let fields = b.text(&b.find("#lineage-fields"));
    assert!(fields.contains("9fceb02d0ae598e95dc970b74767f19372d61af8") && fields.contains(dataset), "{fields}");
    let run = b.find("#lineage a.run-url");
    assert_eq!((b.text(&run), b.attribute(&run, "href")), (run_url.to_string(), json!(run_url)));
    // A run URL that is not http(s) would stay text, whatever the registry let through.
    let kinds = b.js_async(
        "const done = arguments[0]; import('/ui/facts.js').then((m) => \
         done(['javascript:window.pwned=1', 'data:text/html,x', 'https://x/'].map((u) => m.runLink(u).tagName)))",
        json!([]),
    );
    assert_eq!(kinds, json!(["SPAN", "SPAN", "A"]));
    b.js("document.getElementById('versions-h').scrollIntoView()", json!([]));
    b.screenshot("version");

    // Nothing a client stored became markup or ran.
    assert_eq!(b.js("return document.querySelectorAll('main img, main b').length", json!([])), 0, "registry text became elements");
    assert_eq!(b.js("return typeof window.pwned", json!([])), "undefined");
    assert!(!b.alert_open(), "a dialog opened");

    // A phone: the long tag is cut short (whole in its title), nothing scrolls sideways.
    b.set_size(390, 844);
    b.wait_text("#lineage", "the lineage again", |t| t.contains("Parent version"));
    b.assert_no_sideways_scroll("the version view");
    let owner = b.find("#model-tags li[data-key='owner']");
    assert_eq!(b.attribute(&owner, "title"), json!(format!("owner: {long_value}")));
    b.screenshot("version-narrow");
    b.set_size(1280, 800);

    // The parent is a link to its version's view.
    let parent = b.find("#parent-link");
    assert_eq!(b.text(&parent), "v1");
    b.click(&parent);
    assert_eq!(b.wait_text("#version-info-h", "version 1's view", |t| t == "Version 1"), "Version 1");
    assert_eq!(b.js("return location.hash", json!([])), "#/models/fraud-xgb/versions/1");

    // Back on the model's page, the alias leads to the version it names,
    // whose own parent is gone.
    b.goto(&s.url(&format!("/#/models/{model}")));
    b.wait_text("#version-info-h", "the latest version's view", |t| t == "Version 2");
    b.click(&b.find("#model-aliases a[data-alias='champion']"));
    b.wait_text("#version-info-h", "the champion's view", |t| t == "Version 1");
    assert_eq!(b.js("return location.hash", json!([])), "#/models/fraud-xgb/versions/@champion");
    assert_eq!(b.text(&b.find("#version-aliases")), "@champion");
    assert_eq!(b.wait_count("#metrics tbody td", 2), ["0.902", "0.66"]);
    assert_eq!(b.wait_text("#parent-deleted", "the deleted parent", |t| !t.is_empty()), "deleted");
    assert_eq!(b.text(&b.find("#versions tr.current a[aria-current]")), "v1");
}

#[test]
fn a_wrong_key_shows_a_clear_message_and_a_new_registry_teaches_its_first_commands() {
    let s = Server::start();
    let b = Browser::start();
    b.sign_in(&s, "not-a-key");
    let message = b.wait_text("#signin-error", "the refusal", |t| !t.is_empty());
    assert!(message.contains("not accepted") && message.contains("401"), "{message}");
    assert_eq!(b.js("return sessionStorage.getItem('modelreg.key')", json!([])), Value::Null);

    // The right key: an empty registry says how to make a first model.
    let input = b.find("#key");
    b.clear(&input);
    b.type_into(&input, &s.key);
    b.click(&b.find("#signin-form button[type=submit]"));
    let empty = b.wait_text("#empty", "the first-model commands", |t| t.contains("models create"));
    assert!(empty.contains("versions upload") && empty.contains("versions download"), "{empty}");
    assert!(b.find_all("#signin-error").is_empty());

    // A key revoked while signed in sends the page back to the form.
    b.js("sessionStorage.setItem('modelreg.key', 'revoked')", json!([]));
    b.goto(&s.url("/#/?q=x"));
    b.wait_text("main .error", "the revoked key's message", |t| t.contains("no longer accepts"));
}

#[test]
fn every_ui_response_is_hardened_and_the_ui_routes_check_their_input() {
    let s = Server::start();
    let checks = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        let r = s.request("GET", path, &headers, None);
        let csp = r.header("Content-Security-Policy").unwrap_or_else(|| panic!("no CSP on {path}"));
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"), "{path}");
        r
    };
    let index = checks("/", Some(""));
    assert_eq!(index.status, 200);
    let html = String::from_utf8(index.body).unwrap();
    assert!(!html.contains("<script>") && html.contains("<script type=\"module\" src=\"/ui/app.js\""), "no inline script");
    assert_eq!(checks("/ui/app.js", Some("")).header("Content-Type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(checks("/ui/app.css", Some("")).status, 200);
    assert_eq!(checks("/ui/api/models", Some("")).status, 401, "the JSON routes need the key");
    assert_eq!(checks("/ui/api/models", Some("Bearer wrong")).status, 401);
    assert_eq!(checks("/ui/missing", None).status, 404);
    // app.js imports the other modules; each is served, hardened, as script.
    let app = String::from_utf8(s.get("/ui/app.js").body).unwrap();
    let modules: Vec<&str> = app.lines().filter_map(|l| l.strip_prefix("import ")?.rsplit("from './").next()?.strip_suffix("';")).collect();
    assert!(modules.contains(&"model.js") && modules.contains(&"signin.js"), "{modules:?}");
    for module in modules {
        let r = checks(&format!("/ui/{module}"), None);
        assert_eq!(r.header("Content-Type"), Some("text/javascript; charset=utf-8"), "{module}");
        let body = String::from_utf8(r.body).unwrap();
        assert!(!body.contains("innerHTML") && !body.contains("insertAdjacentHTML") && !body.contains("eval("), "{module}");
    }

    for bad in ["limit=0", "limit=101", "origin=nowhere", "after=zz", "public=maybe", "q=a%00b"] {
        let r = checks(&format!("/ui/api/models?{bad}"), None);
        assert_eq!(r.status, 400, "{bad}: {}", String::from_utf8_lossy(&r.body));
    }
    // A model is named by its id or its name: a name nobody has is not found.
    assert_eq!(checks("/ui/api/models/not-a-uuid", None).status, 404);
    assert_eq!(checks("/ui/api/models/00000000-0000-4000-8000-000000000000", None).status, 404);

    // Keyset paging walks every model once, and another team sees none.
    for i in 0..5 {
        octomil_model(&s, &format!("paged-{i}"), "");
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(c) => format!("/ui/api/models?limit=2&after={c}"),
            None => "/ui/api/models?limit=2".to_string(),
        };
        let page = ok(&s.get(&path), 200);
        seen.extend(page["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["paged-4", "paged-3", "paged-2", "paged-1", "paged-0"]);
    let model = ok(&s.get("/ui/api/models?limit=1"), 200)["items"][0]["id"].as_str().unwrap().to_string();
    assert!(s.cli(&["teams", "add", "elsewhere"]).status.success());
    let stranger = common::user_key(&s, "stranger", Some("elsewhere"));
    let theirs = common::as_user(&s, &stranger, "GET", "/ui/api/models", None);
    assert_eq!(ok(&theirs, 200)["items"], json!([]));
    assert_eq!(common::as_user(&s, &stranger, "GET", &format!("/ui/api/models/{model}"), None).status, 404);
}

#[test]
fn paperspace_machines_show_their_state_and_event_timeline() {
    let s = Server::start();
    let body = json!({"name": "trainer", "machineType": "P4000", "templateId": "tz0ireoj", "diskSize": 50, "region": "East Coast (NY2)"});
    let machine = ok(&s.post_json("/v1/machines", &body), 200)["data"]["id"].as_str().unwrap().to_string();
    dr::poll("the machine to be ready", WAIT, || {
        let m = ok(&s.get(&format!("/v1/machines/{machine}")), 200);
        if m["state"] == "ready" { Ok(()) } else { Err(m["state"].to_string()) }
    });
    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#main h1");
    b.goto(&s.url("/#/machines"));
    let row = b.wait_count("#machines tbody tr", 1);
    assert!(row[0].contains("trainer") && row[0].contains("ready") && row[0].contains("P4000"), "{row:?}");
    b.goto(&s.url(&format!("/#/machines/{machine}")));
    let events = b.wait_text("#events", "the create event", |t| t.contains("create"));
    assert!(events.contains("done"), "{events}");
    let fields = b.text(&b.find("#machine dl"));
    assert!(fields.contains("East Coast (NY2)") && fields.contains("tz0ireoj"), "{fields}");
}

/// 400 rows: y = 3·x1 + 0.5·x2; x3 is noise the model ignores (the same
/// data tests/insights.rs ranks).
fn impact_csv() -> String {
    let mut csv = String::from("x1,x2,x3,y\n");
    for i in 0..400u64 {
        let (x1, x2, x3) = ((i * 37 % 101) as f64 / 10.0, (i * 53 % 97) as f64 / 10.0, (i * 71 % 89) as f64 / 10.0);
        csv.push_str(&format!("{x1},{x2},{x3},{}\n", 3.0 * x1 + 0.5 * x2));
    }
    csv
}

#[test]
fn a_datarobot_model_page_shows_test_badges_feature_impact_datasets_environment_and_access() {
    let s = Server::start_compute(&[]);
    let setup = dr::setup(&s, dr::regression(), &dr::fixture("impact"), &[], Some(&impact_csv()));
    let dataset = setup.dataset.clone().unwrap();
    ok(&s.send_json("PATCH", &format!("{API}/customModels/{}/trainingData/", setup.model), &json!({"datasetId": dataset})), 202);
    let test = dr::run_setup(&s, &setup, json!({}));
    assert_eq!(test["overallStatus"], "succeeded", "{test}");
    let impact = s.request("POST", &format!("{API}/customModels/{}/versions/{}/featureImpact/", setup.model, setup.version), &[], None);
    let status = impact.header("Location").unwrap().to_string();
    ok(&impact, 202);
    dr::poll("feature impact", dr::RUN_DEADLINE, || {
        let r = s.get_unfollowed(dr::path_of(&s, &status));
        if r.status == 303 { Ok(()) } else { Err(String::from_utf8_lossy(&r.body).into_owned()) }
    });

    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    b.goto(&s.url(&format!("/#/models/{}", setup.model)));
    // Feature impact: one bar per feature, the strongest (x1) full width,
    // x3 (ignored by the model) empty.
    b.wait_count("#impact-chart rect.bar", 3);
    let widths = b.js(
        "return [...document.querySelectorAll('#impact-chart rect.bar')].map(r => [r.dataset.feature, Number(r.getAttribute('width'))])",
        json!([]),
    );
    let widths = widths.as_array().unwrap();
    assert_eq!(widths[0][0], "x1", "sorted strongest first: {widths:?}");
    assert!(widths[0][1].as_f64().unwrap() > 400.0 && widths[2][1].as_f64().unwrap() < 1.0, "{widths:?}");
    // The test's checks as badges, coloured by status.
    let badge = b.find(".test .check[data-check='errorCheck']");
    assert!(b.text(&badge).contains("succeeded"));
    let class = b.cmd("GET", &format!("/element/{badge}/attribute/class"), None);
    assert!(class.as_str().unwrap().contains("st-succeeded"), "{class}");
    assert_eq!(b.find_all(".test .check").len(), test["testingStatus"].as_object().unwrap().len());
    b.click(&b.find(".test button"));
    b.wait_text(".test pre.log", "the test's log", |t| t.contains("errorCheck"));
    // The training data with its columns and rows; the environment's build.
    let datasets = b.wait_text("#datasets", "the training dataset", |t| t.contains("400 rows"));
    assert!(["x1", "x2", "x3", "y"].iter().all(|c| datasets.contains(c)), "{datasets}");
    b.wait_text("#environment", "the build status", |t| t.contains("build: success"));
    b.wait_text("#access", "the access section", |t| !t.contains("Loading"));
    // modelreg's own version route answers for a DataRobot version too.
    b.wait_text("#lineage", "the version's (empty) lineage", |t| t.contains("No lineage recorded"));
    b.js("document.getElementById('tests').scrollIntoView()", json!([]));
    b.screenshot("datarobot-model");
}
