//! A real headless Chromium driven over chromedriver's W3C WebDriver HTTP
//! API, for the UI's tests: a fresh profile per browser, one browser at a
//! time, screenshots to target/ui-screenshots/.
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Server;

/// One Chromium at a time: the machine has two cores, and parallel
/// browsers only make every wait longer.
static BROWSER: Mutex<()> = Mutex::new(());

pub const WAIT: Duration = Duration::from_secs(20);
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver plus one session in a fresh profile; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
    pub downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Browser {
    pub fn start() -> Browser {
        let serial = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed (Debian: apt-get install chromium chromium-driver)");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            agent,
            downloads,
            _profile: profile,
            _serial: serial,
        };
        wait_for("chromedriver to listen", || browser.call("GET", "/status", None).ok().filter(|v| v["ready"] == true));
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": args,
                "prefs": {
                    "download.default_directory": browser.downloads.path(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let session = browser.call("POST", "/session", Some(caps)).expect("a WebDriver session");
        let id = session["sessionId"].as_str().expect("a session id").to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        browser.set_size(1280, 800);
        browser
    }

    /// One WebDriver command; a W3C error is Err(its error code and message).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Content-Type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default().into_bytes())
            .unwrap();
        let response = self.agent.run(request).map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        let value = value.get("value").cloned().unwrap_or(value);
        if status >= 400 {
            return Err(format!("{}: {}", value["error"].as_str().unwrap_or("?"), value["message"].as_str().unwrap_or(&text)));
        }
        Ok(value)
    }

    pub fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Sizes the viewport (what a screenshot shows), not the window: the
    /// window's frame takes some of its height even headless.
    pub fn set_size(&self, width: i64, height: i64) {
        self.cmd("POST", "/window/rect", Some(json!({"width": width, "height": height})));
        let inner = self.js("return [window.innerWidth, window.innerHeight]", json!([]));
        let (w, h) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
        if (w, h) != (width, height) {
            self.cmd("POST", "/window/rect", Some(json!({"width": 2 * width - w, "height": 2 * height - h})));
        }
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn js(&self, script: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// A script that answers by calling its last argument (for example
    /// once a module it imports has loaded).
    pub fn js_async(&self, script: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/async", Some(json!({"script": script, "args": args})))
    }

    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found.as_array().unwrap().iter().map(|e| e[ELEMENT].as_str().unwrap().to_string()).collect()
    }

    /// Waits until `css` matches something.
    pub fn find(&self, css: &str) -> String {
        self.wait_for(&format!("an element matching {css:?}"), || self.find_all(css).into_iter().next())
    }

    /// `wait_for`, saying what the page showed when it gave up.
    pub fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if Instant::now() > deadline {
                let shown = self.call("POST", "/execute/sync", Some(json!({"script": "return document.body.innerText", "args": []})));
                panic!("gave up waiting for {what}; the page showed:\n{}", shown.map(|v| v.to_string()).unwrap_or_else(|e| e));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn text(&self, element: &str) -> String {
        self.cmd("GET", &format!("/element/{element}/text"), None).as_str().unwrap().to_string()
    }

    pub fn click(&self, element: &str) {
        self.cmd("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.cmd("POST", &format!("/element/{element}/value"), Some(json!({"text": text})));
    }

    pub fn clear(&self, element: &str) {
        self.cmd("POST", &format!("/element/{element}/clear"), Some(json!({})));
    }

    /// Waits until the text of `css` satisfies `test`; returns it.
    pub fn wait_text(&self, css: &str, what: &str, test: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(e) = self.find_all(css).into_iter().next() {
                if let Ok(t) = self.call("GET", &format!("/element/{e}/text"), None) {
                    last = t.as_str().unwrap_or("").to_string();
                    if test(&last) {
                        return last;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let page = self.call("POST", "/execute/sync", Some(json!({"script": "return document.body.innerText", "args": []})));
        panic!("{css} never showed {what}; last text: {last:?}; the page showed:\n{}", page.map(|v| v.to_string()).unwrap_or_else(|e| e));
    }

    /// The texts of every element matching `css`, once their count is `n`.
    pub fn wait_count(&self, css: &str, n: usize) -> Vec<String> {
        let found = self.wait_for(&format!("{n} elements matching {css:?}"), || {
            let all = self.find_all(css);
            (all.len() == n).then_some(all)
        });
        found.iter().map(|e| self.text(e)).collect()
    }

    pub fn attribute(&self, element: &str, name: &str) -> Value {
        self.cmd("GET", &format!("/element/{element}/attribute/{name}"), None)
    }

    /// A phone's width must not make the page scroll sideways: wide tables
    /// scroll inside their own box, long values wrap or are cut short.
    pub fn assert_no_sideways_scroll(&self, what: &str) {
        let overflow = self.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth", json!([]));
        assert!(overflow.as_i64().unwrap() <= 0, "{what} is wider than the window: {overflow}");
    }

    pub fn alert_open(&self) -> bool {
        self.call("GET", "/alert/text", None).is_ok()
    }

    pub fn screenshot(&self, name: &str) {
        let png = decode_base64(self.cmd("GET", "/screenshot", None).as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Opens the UI and signs in through the form, as a person would.
    pub fn sign_in(&self, s: &Server, key: &str) {
        self.goto(&s.url("/"));
        let input = self.find("#key");
        self.type_into(&input, key);
        self.click(&self.find("#signin-form button[type=submit]"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("chromium")
}

/// Polls `probe` until it returns Some, for at most `WAIT`.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= (value(*c) as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
