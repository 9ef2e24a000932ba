//! The web UI's "who you are" and "your own keys" (issue 25), and its
//! downloads as signed links the browser streams to disk: in real headless
//! Chromium against the real binary, every action checked through the API.
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::browser::{wait_for, Browser};
use common::{hash_stream, ok, sha256_hex, Generated, Part, Server};
use serde_json::{json, Value};

const ME: &str = "/api/modelreg/v1/me";

/// A request with `key` (None: no Authorization at all).
fn with_key(s: &Server, key: Option<&str>, method: &str, path: &str, body: Option<&Value>) -> common::Reply {
    let auth = key.map(|k| format!("Bearer {k}")).unwrap_or_default();
    let mut headers = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    s.request(method, path, &headers, body.map(|b| b.to_string().into_bytes()))
}

/// A member made with the admin API, and a key for them.
fn member(s: &Server, username: &str, label: &str) -> (String, String) {
    ok(&s.post_json("/api/modelreg/v1/users", &json!({"username": username})), 201);
    let key = ok(&s.post_json("/api/modelreg/v1/keys", &json!({"user": username, "label": label})), 201);
    (key["id"].as_str().unwrap().to_string(), key["secret"].as_str().unwrap().to_string())
}

fn octomil_model(s: &Server, name: &str) -> String {
    let r = s.post_json("/api/v1/models", &json!({"name": name, "framework": "pytorch", "description": "downloads"}));
    ok(&r, 201)["id"].as_str().unwrap().to_string()
}

fn upload(s: &Server, model: &str, filename: &str, bytes: &[u8]) {
    let parts = [Part::File { name: "file", filename, bytes }, Part::Field("format", "pytorch")];
    ok(&s.post_multipart(&format!("/api/v1/models/{model}/versions/upload"), &parts), 201);
}

/// The id of the one file of version `number`, from the UI's model route.
fn file_id(s: &Server, model: &str, number: i64) -> String {
    let page = ok(&s.get(&format!("/ui/api/models/{model}")), 200);
    let v = page["versions"].as_array().unwrap().iter().find(|v| v["number"] == number).unwrap().clone();
    v["files"][0]["id"].as_str().unwrap().to_string()
}

#[test]
fn the_header_names_the_user_and_a_member_creates_lists_and_revokes_their_own_keys() {
    let s = Server::start();
    // /me says whose key it is.
    let me = ok(&s.get(ME), 200);
    assert_eq!((me["user"]["username"].as_str(), me["team"]["name"].as_str(), &me["user"]["admin"]), (Some("admin"), Some("default"), &json!(true)));
    assert_eq!(me["key"]["label"], "first key");
    let (mia_key_id, mia_key) = member(&s, "mia", "first");
    let (otto_key_id, otto_key) = member(&s, "otto", "otto-laptop");

    let b = Browser::start();
    b.sign_in(&s, &mia_key);
    b.wait_text("#who", "who is signed in", |t| t == "mia · default");

    b.click(&b.find("#nav-keys"));
    let rows = b.wait_count("#keys tbody tr", 1);
    assert!(rows[0].contains("first") && rows[0].contains("this tab"), "{rows:?}");
    assert!(!b.text(&b.find("main")).contains("otto"), "a member sees no one else's key");
    assert_eq!(b.attribute(&b.find("#nav-keys"), "aria-current"), "page");

    // A new key: its secret is shown once, and works.
    b.type_into(&b.find("#key-label"), "laptop");
    b.click(&b.find("#key-form button[type=submit]"));
    let shown = b.wait_text("#new-key", "the new key's secret", |t| t.contains("you will not see it again"));
    let secret = b.text(&b.find("#new-key pre code"));
    assert!(secret.starts_with("mr_") && shown.contains(&secret), "{shown}");
    let as_new = ok(&with_key(&s, Some(&secret), "GET", ME, None), 200);
    assert_eq!(as_new["user"]["username"], "mia");
    assert_eq!(as_new["key"]["label"], "laptop");
    let new_id = as_new["key"]["id"].as_str().unwrap().to_string();
    let rows = b.wait_count("#keys tbody tr", 2);
    assert!(rows[0].contains("laptop") && rows[0].contains("active"), "newest first: {rows:?}");
    // The API lists the same two keys, both mia's.
    let listed = ok(&with_key(&s, Some(&mia_key), "GET", "/api/modelreg/v1/keys", None), 200);
    let mut ids: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![mia_key_id.as_str(), new_id.as_str()];
    want.sort();
    assert_eq!(ids, want);

    b.set_size(1400, 900);
    b.screenshot("keys-1400");
    b.set_size(390, 844);
    b.assert_no_sideways_scroll("the keys page");
    // A phone still says who is signed in (WebDriver's text of a hidden element is empty).
    assert_eq!(b.text(&b.find("#who")), "mia · default");
    b.screenshot("keys-390");
    b.set_size(1280, 800);

    // Revoking asks first; Cancel leaves the key alone.
    b.click(&b.find(&format!("#keys tr[data-id='{new_id}'] button.revoke")));
    let question = b.wait_text(&format!("#keys tr[data-id='{new_id}'] .confirm"), "the confirmation", |t| t.contains("Revoke laptop?"));
    assert!(!question.contains("signs you out"), "{question}");
    b.click(&b.find(&format!("#keys tr[data-id='{new_id}'] button.cancel-revoke")));
    b.find(&format!("#keys tr[data-id='{new_id}'] button.revoke"));
    ok(&with_key(&s, Some(&secret), "GET", ME, None), 200);
    b.click(&b.find(&format!("#keys tr[data-id='{new_id}'] button.revoke")));
    b.click(&b.find(&format!("#keys tr[data-id='{new_id}'] button.confirm-revoke")));
    b.wait_text(&format!("#keys tr[data-id='{new_id}']"), "the key revoked", |t| t.contains("revoked"));
    assert_eq!(with_key(&s, Some(&secret), "GET", ME, None).status, 401);

    // A member cannot see, revoke or make another user's key.
    assert_eq!(with_key(&s, Some(&mia_key), "DELETE", &format!("/api/modelreg/v1/keys/{otto_key_id}"), None).status, 404);
    assert_eq!(with_key(&s, Some(&mia_key), "POST", "/api/modelreg/v1/keys", Some(&json!({"user": "otto"}))).status, 403);
    assert_eq!(with_key(&s, Some(&mia_key), "GET", "/api/modelreg/v1/users", None).status, 403);
    ok(&with_key(&s, Some(&otto_key), "GET", ME, None), 200);
    let otto_sees = ok(&with_key(&s, Some(&otto_key), "GET", "/api/modelreg/v1/keys", None), 200);
    assert_eq!(otto_sees.as_array().unwrap().len(), 1, "{otto_sees}");

    // Revoking the key this tab uses says it signs you out, and does.
    b.click(&b.find(&format!("#keys tr[data-id='{mia_key_id}'] button.revoke")));
    b.wait_text(&format!("#keys tr[data-id='{mia_key_id}'] .confirm"), "the sign-out warning", |t| t.contains("signs you out"));
    b.click(&b.find(&format!("#keys tr[data-id='{mia_key_id}'] button.confirm-revoke")));
    b.wait_text("#signin-status", "the signed-out notice", |t| t.contains("revoked the key this tab"));
    assert_eq!(with_key(&s, Some(&mia_key), "GET", ME, None).status, 401);
    assert_eq!(b.text(&b.find("#who")), "");

    // An admin sees the team's keys, and is named so.
    b.sign_in(&s, &s.key);
    b.wait_text("#who", "the admin", |t| t == "admin · default · admin");
    b.goto(&s.url("/#/keys"));
    // Its own, mia's two (revoked) and otto's.
    let all = b.wait_count("#keys tbody tr", 4).join("\n");
    assert!(all.contains("otto-laptop") && all.contains("mia"), "{all}");
}

#[test]
fn a_signed_file_link_works_without_a_key_names_one_file_and_expires() {
    let s = Server::start_with(&["--signed-url-ttl-secs", "3", "--no-convert-on-upload"]);
    let a = octomil_model(&s, "alpha");
    let z = octomil_model(&s, "zulu");
    let alpha: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    upload(&s, &a, "alpha.pt", &alpha);
    upload(&s, &z, "zulu.pt", b"zulu weights");
    let (fa, fz) = (file_id(&s, &a, 1), file_id(&s, &z, 1));
    let link = |model: &str, file: &str| s.post_json(&format!("/ui/api/models/{model}/versions/1/files/{file}/link"), &json!({}));

    let signed = ok(&link(&a, &fa), 200);
    let url = signed["url"].as_str().unwrap();
    assert!(url.starts_with("/ui/downloads/"), "{signed}");
    assert_eq!((signed["sha256"].as_str(), signed["fileName"].as_str()), (Some(sha256_hex(&alpha).as_str()), Some("alpha.pt")));
    // No key: the token is the credential.
    let got = with_key(&s, None, "GET", url, None);
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, alpha);
    assert_eq!(got.header("content-disposition"), Some("attachment; filename=\"alpha.pt\""));
    assert!(got.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    // The token is a credential: the access log names the route, not it.
    let token = url.rsplit('/').next().unwrap();
    wait_for("the download in the access log", || s.log.lock().unwrap().contains("/ui/downloads/{token}").then_some(()));
    assert!(!s.log.lock().unwrap().contains(token), "the token reached the log");

    // A link names one file: another model's file under this model is 404,
    // a made-up token is 403, and the link is not an Octomil download token
    // (nor is an Octomil token a file link).
    assert_eq!(link(&a, &fz).status, 404);
    assert_eq!(link(&a, "not-a-file").status, 404);
    assert_eq!(with_key(&s, None, "GET", "/ui/downloads/mr_forged", None).status, 403);
    assert_eq!(with_key(&s, None, "GET", &format!("/api/v1/downloads/{token}"), None).status, 403);
    let octomil = ok(&s.get(&format!("/api/v1/models/{a}/versions/1/download-url")), 200);
    let octomil_token = octomil["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!(with_key(&s, None, "GET", &format!("/ui/downloads/{octomil_token}"), None).status, 403);
    // Without a key, no link is minted; the old keyed file route is gone.
    assert_eq!(with_key(&s, None, "POST", &format!("/ui/api/models/{a}/versions/1/files/{fa}/link"), None).status, 401);
    assert!(matches!(s.get(&format!("/ui/api/models/{a}/versions/1/files/{fa}")).status, 404 | 405));

    // It expires (3 s here).
    let started = Instant::now();
    wait_for("the link to expire", || (with_key(&s, None, "GET", url, None).status == 403).then_some(()));
    assert!(started.elapsed() < Duration::from_secs(10));

    // And it dies with the key that asked for it.
    let (_, mia) = member(&s, "mia", "laptop");
    let reply = with_key(&s, Some(&mia), "POST", &format!("/ui/api/models/{a}/versions/1/files/{fa}/link"), Some(&json!({})));
    let url = ok(&reply, 200)["url"].as_str().unwrap().to_string();
    let mia_id = ok(&with_key(&s, Some(&mia), "GET", ME, None), 200)["key"]["id"].as_str().unwrap().to_string();
    ok(&with_key(&s, Some(&mia), "DELETE", &format!("/api/modelreg/v1/keys/{mia_id}"), None), 204);
    assert_eq!(with_key(&s, None, "GET", &url, None).status, 403);
}

/// Bytes of JS heap the page uses now, from the DevTools protocol.
fn heap_used(b: &Browser) -> u64 {
    let usage = b.cmd("POST", "/goog/cdp/execute", Some(json!({"cmd": "Runtime.getHeapUsage", "params": {}})));
    usage["usedSize"].as_f64().expect("usedSize") as u64
}

/// The acceptance test of issue 25: a 1 GiB download through the UI lands on
/// disk with the registry's sha256 while the page's JS heap stays small.
#[test]
fn a_1_gib_download_streams_to_disk_with_a_small_js_heap() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    const SEED: u64 = 0x25_1618;
    const LIMIT: u64 = 20 * 1000 * 1000;
    let s = Server::start_with(&["--no-convert-on-upload"]);
    let model = octomil_model(&s, "big");
    let (_, expected) = hash_stream(Generated::new(SIZE, SEED));

    // Streamed as it is generated: the test never holds the file.
    let boundary = common::BOUNDARY;
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\npytorch\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pt\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let len = head.len() as u64 + SIZE + tail.len() as u64;
    let mut body = head.as_bytes().chain(Generated::new(SIZE, SEED)).chain(tail.as_bytes());
    let reply = s.post_stream(&format!("/api/v1/models/{model}/versions/upload"), &format!("multipart/form-data; boundary={boundary}"), &mut body, len);
    ok(&reply, 201);

    let b = Browser::start();
    b.sign_in(&s, &s.key);
    b.find("#models");
    b.goto(&s.url(&format!("/#/models/{model}")));
    b.wait_text("#files", "the big file", |t| t.contains("big.pt") && t.contains(&expected));
    let before = heap_used(&b);

    let saved = b.downloads.path().join("big.pt");
    let started = Instant::now();
    b.click(&b.find("#files a.download"));
    let result = b.wait_text("#download-result", "the expected sha256", |t| t.contains(&expected));
    assert!(result.contains("sha256sum -c"), "{result}");
    b.js("document.getElementById('files').scrollIntoView()", json!([]));
    b.screenshot("download");
    let mut peak = before;
    let deadline = started + Duration::from_secs(600);
    loop {
        peak = peak.max(heap_used(&b));
        if std::fs::metadata(&saved).is_ok_and(|m| m.len() == SIZE) {
            break;
        }
        assert!(Instant::now() < deadline, "the download did not finish in 10 minutes");
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = started.elapsed();
    let after = heap_used(&b);
    peak = peak.max(after);
    let (size, sha) = hash_stream(std::fs::File::open(&saved).unwrap());
    std::fs::remove_file(&saved).unwrap();
    assert_eq!((size, sha.as_str()), (SIZE, expected.as_str()));
    let note = format!("JS heap used: before {before} B, peak {peak} B, after {after} B; 1 GiB downloaded in {:.1} s", took.as_secs_f64());
    eprintln!("{note}");
    common::host_note("ui_keys::a_1_gib_download", &note);
    assert!(peak < LIMIT, "{note}");
}
