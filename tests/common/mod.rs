//! Test harness: starts the real `modelreg` binary on an ephemeral port with
//! a temporary data directory, and speaks HTTP to it as a client would.

#![allow(dead_code)]

pub mod browser;
pub mod child;
pub mod cluster;
pub mod datarobot;
pub mod garage;
pub mod postgres;
pub mod weights;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_modelreg");

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub key: String,
    pub data: tempfile::TempDir,
    /// Everything the server printed to stderr so far (access log included).
    pub log: Arc<Mutex<String>>,
    /// `s3://bucket` when this server keeps its blobs on Garage (`on_s3`).
    pub blob_store: Option<String>,
    /// The environment that reaches that bucket, which offline commands
    /// on the data directory need too.
    store_env: Vec<(String, String)>,
    /// The PostgreSQL database this server keeps its records in (`on_postgres`).
    pub database: Option<String>,
    agent: ureq::Agent,
}

/// `len` bytes that differ per `seed` and do not compress (xorshift).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn read_reply(response: ureq::http::Response<ureq::Body>) -> std::io::Result<Reply> {
    let status = response.status().as_u16();
    let headers = response.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let mut body = Vec::new();
    response.into_body().into_reader().read_to_end(&mut body)?;
    Ok(Reply { status, headers, body })
}

/// Whether this test binary's servers keep their blobs in a bucket of a
/// real Garage node: binaries named `s3_*` (tests/s3_*.rs compile a suite
/// again under that name) and any run with `MODELREG_TEST_BLOB_STORE=s3`.
pub fn on_s3() -> bool {
    if std::env::var("MODELREG_TEST_BLOB_STORE").is_ok_and(|v| v == "s3") {
        return true;
    }
    let exe = std::env::current_exe().ok();
    exe.as_deref().and_then(Path::file_name).and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("s3_"))
}

/// Whether this test binary's servers keep their records in a database of
/// a real PostgreSQL server (`--database`): binaries named `pg_*` (tests/
/// pg_*.rs compile a suite again under that name) and any run with
/// `MODELREG_TEST_DATABASE=postgres`.
pub fn on_postgres() -> bool {
    if std::env::var("MODELREG_TEST_DATABASE").is_ok_and(|v| v == "postgres") {
        return true;
    }
    let exe = std::env::current_exe().ok();
    exe.as_deref().and_then(Path::file_name).and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("pg_"))
}

/// The file in a test's data directory that remembers which PostgreSQL
/// database its server was given, so that a restart on the same directory
/// finds the same records.
const TEST_DATABASE_FILE: &str = "test-database-url";

/// `MODELREG_DATABASE_URL` for a server on `data` when `on_postgres`: the
/// database it had before, else a fresh one on the shared cluster.
fn test_database(data: &Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    if let Ok(url) = std::fs::read_to_string(data.join(TEST_DATABASE_FILE)) {
        return Some(url);
    }
    let (_, url) = postgres::fresh_database()?;
    std::fs::write(data.join(TEST_DATABASE_FILE), &url).unwrap();
    Some(url)
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text, for failure messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        Server::start_in(data, args)
    }

    /// Starts a server on an existing data directory (for restart tests).
    pub fn start_in(data: tempfile::TempDir, args: &[&str]) -> Server {
        Server::start_in_env(data, &[], args)
    }

    /// Starts a server with extra environment variables (MODELREG_JAVAC…).
    pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_in_env(tempfile::tempdir().unwrap(), env, args)
    }

    fn start_in_env(data: tempfile::TempDir, env: &[(&str, &str)], args: &[&str]) -> Server {
        let store = on_s3().then(garage::fresh_bucket).flatten();
        Server::launch(data, env, args, store)
    }

    /// Starts a server on the local blob store, whatever `on_s3` says.
    pub fn start_local(data: tempfile::TempDir, args: &[&str]) -> Server {
        Server::launch(data, &[], args, None)
    }

    /// Starts a server whose blobs are in `bucket` of `garage` (a node of
    /// the test's own, which it may stop and restart).
    pub fn start_on_bucket(data: tempfile::TempDir, garage: &garage::Garage, bucket: &str, args: &[&str]) -> Server {
        Server::launch(data, &[], args, Some((garage, bucket.to_string())))
    }

    /// `start_on_bucket` with extra environment variables.
    pub fn start_on_bucket_with_env(data: tempfile::TempDir, garage: &garage::Garage, bucket: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::launch(data, env, args, Some((garage, bucket.to_string())))
    }

    fn launch(data: tempfile::TempDir, env: &[(&str, &str)], args: &[&str], store: Option<(&garage::Garage, String)>) -> Server {
        let database = test_database(data.path());
        Server::launch_with(data, env, args, store, database, None)
    }

    /// One of several servers on the same records (tests/common/cluster.rs):
    /// PostgreSQL database `database` and `bucket` of `garage`, whatever
    /// `on_postgres` and `on_s3` say. `key` is the admin key when given: a
    /// server on a database whose team exists writes no admin.key.
    pub fn launch_on(data: tempfile::TempDir, database: &str, garage: &garage::Garage, bucket: &str, key: Option<&str>, args: &[&str]) -> Server {
        Server::launch_with(data, &[], args, Some((garage, bucket.to_string())), Some(database.to_string()), key.map(str::to_string))
    }

    fn launch_with(
        data: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
        store: Option<(&garage::Garage, String)>,
        database: Option<String>,
        key: Option<String>,
    ) -> Server {
        // a data directory that already records its store (a restart) keeps it
        let fresh = !data.path().join("admin.key").exists();
        let (blob_store, mut store_env): (_, Vec<(String, String)>) = match store {
            Some((garage, bucket)) => (
                Some(format!("s3://{bucket}")),
                garage.aws_env().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ),
            None => (None, Vec::new()),
        };
        if let Some(url) = &database {
            store_env.push(("MODELREG_DATABASE_URL".into(), url.clone()));
        }
        let store_args: Vec<String> = match &blob_store {
            Some(store) if fresh => vec!["--blob-store".into(), store.clone()],
            _ => Vec::new(),
        };
        let mut child = Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--machine-delay-ms", "0", "--data-dir"])
            .arg(data.path())
            .args(&store_args)
            .args(args)
            .envs(store_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start modelreg");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on http://") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.clone());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let listening = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("server did not start ({e}); it said:\n{}", log.lock().unwrap()));
        // `listening on http://ADDR (data directory DIR, blobs STORE)`
        let addr = listening.split("listening on http://").nth(1).and_then(|a| a.split_whitespace().next()).unwrap_or("").to_string();
        if let (Some(store), true) = (&blob_store, fresh) {
            assert!(listening.contains(&format!("blobs {store})")), "the server does not keep its blobs in {store}: {listening}");
        }
        if database.is_some() {
            assert!(listening.contains("database postgres://"), "the server does not keep its records in PostgreSQL: {listening}");
        }
        let key = key.unwrap_or_else(|| std::fs::read_to_string(data.path().join("admin.key")).unwrap().trim().to_string());
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Server { child, addr, key, data, log, blob_store, store_env, database, agent }
    }

    /// Waits (up to 20 s) until the server's stderr holds `needle`: the
    /// access log line of a request is written after its answer is sent, so
    /// a client that has its answer may look before the line is there.
    pub fn wait_for_log(&self, needle: &str, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.log.lock().unwrap().contains(needle) {
            assert!(std::time::Instant::now() < deadline, "{what}: {needle:?} never reached the log:\n{}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Runs the CLI against this server's data directory (offline mode).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_command().args(args).output().unwrap()
    }

    /// The first column of the first row of `query`, as text, read from the
    /// server's database itself (SQLite's file, or PostgreSQL through psql):
    /// for what no route shows.
    pub fn database_text(&self, query: &str) -> String {
        match &self.database {
            Some(url) => postgres::shared().expect("a PostgreSQL server").try_psql(url, query).unwrap_or_else(|e| panic!("{query}: {e}")),
            None => rusqlite::Connection::open(self.data_dir().join("modelreg.db"))
                .unwrap()
                .query_row(query, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{query}: {e}")),
        }
    }

    /// The variables that reach this server's blob store and its database
    /// (none for a local store and SQLite).
    pub fn store_env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.store_env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The CLI on this server's data directory, with what reaches its blob
    /// store and its database.
    pub fn cli_command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.arg("--data-dir").arg(self.data_dir());
        command.envs(self.store_env());
        command
    }

    /// Runs the CLI against this server over HTTP (`--server`, admin key).
    pub fn cli_remote(&self, args: &[&str]) -> std::process::Output {
        let url = format!("http://{}", self.addr);
        let mut all = vec!["--server", url.as_str(), "--token", self.key.as_str()];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    fn finish(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        read_reply(result.expect("request failed at the transport level")).expect("reading the answer failed")
    }

    pub fn auth(&self) -> String {
        format!("Bearer {}", self.key)
    }

    /// `request`, but None when the exchange failed at the transport level
    /// (a server killed under it).
    pub fn try_request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Option<Reply> {
        let mut builder = ureq::http::Request::builder().method(method).uri(self.url(path)).header("Authorization", self.auth());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        read_reply(self.agent.run(builder.body(body.unwrap_or_default()).unwrap()).ok()?).ok()
    }

    /// A request with the admin key; `headers` are added as given.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        let mut builder = ureq::http::Request::builder().method(method).uri(self.url(path));
        let has_auth = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if !has_auth {
            builder = builder.header("Authorization", self.auth());
        }
        for (k, v) in headers {
            if !v.is_empty() {
                builder = builder.header(*k, *v);
            }
        }
        let request = builder.body(body.unwrap_or_default()).unwrap();
        self.finish(self.agent.run(request))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    /// A GET with the admin key that does not follow a redirect (a status
    /// route's 303), as the DataRobot client's waiter reads it.
    pub fn get_unfollowed(&self, path: &str) -> Reply {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .build()
            .new_agent();
        self.finish(agent.get(self.url(path)).header("Authorization", self.auth()).call())
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, &[], None)
    }

    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.request(method, path, &[("Content-Type", "application/json")], Some(body.to_string().into_bytes()))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send_json("POST", path, body)
    }

    /// Posts multipart/form-data built from `parts`.
    pub fn post_multipart(&self, path: &str, parts: &[Part]) -> Reply {
        let (content_type, body) = multipart_body(parts);
        self.request("POST", path, &[("Content-Type", &content_type)], Some(body))
    }

    /// Sends raw bytes on a fresh connection and returns what came back
    /// before the server closed it or `timeout` passed.
    pub fn raw(&self, bytes: &[u8], timeout: Duration) -> String {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Kills the server at once and returns its data directory for a restart.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.data, data)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON of a reply that must have `status` (null for an empty body).
pub fn ok(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(&reply.body));
    if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    }
}

/// A request with another user's key, in the `Token` scheme the DataRobot
/// client sends; a JSON body when one is given.
pub fn as_user(s: &Server, key: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let auth = format!("Token {key}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    s.request(method, path, &headers, body.map(|b| b.to_string().into_bytes()))
}

/// Creates `user` (in `team`, or the first team) with the CLI and returns
/// an API key.
pub fn user_key(s: &Server, user: &str, team: Option<&str>) -> String {
    let mut args = vec!["users", "add", user];
    if let Some(team) = team {
        args.extend(["--team", team]);
    }
    let out = s.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.cli(&["keys", "create", "--user", user]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub enum Part<'a> {
    Field(&'a str, &'a str),
    File { name: &'a str, filename: &'a str, bytes: &'a [u8] },
}

pub const BOUNDARY: &str = "----modelregtestboundary7MA4YWxkTrZu0gW";

pub fn multipart_body(parts: &[Part]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Field(name, value) => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
            }
            Part::File { name, filename, bytes } => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Files under `dir` (recursively), for checking what the blob store holds.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// `len` pseudo-random bytes, generated as they are read: large bodies
/// without holding them in memory. The same seed gives the same bytes.
pub struct Generated {
    pub left: u64,
    pub state: u64,
}

impl Generated {
    pub fn new(len: u64, seed: u64) -> Generated {
        Generated { left: len, state: seed | 1 }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads a stream to its end: its length and sha256.
pub fn hash_stream(mut reader: impl Read) -> (u64, String) {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    (total, hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Server {
    /// POSTs a body streamed from `body` (`len` bytes) with the admin key.
    pub fn post_stream(&self, path: &str, content_type: &str, body: &mut dyn Read, len: u64) -> Reply {
        self.finish(
            self.agent
                .post(self.url(path))
                .header("Authorization", self.auth())
                .header("Content-Type", content_type)
                .header("Content-Length", len.to_string())
                .send(ureq::SendBody::from_reader(body)),
        )
    }

    /// GETs `path` and returns the status and the body as a stream.
    pub fn get_stream(&self, path: &str) -> (u16, Box<dyn Read + Send>) {
        let response = self.agent.get(self.url(path)).header("Authorization", self.auth()).call().unwrap();
        (response.status().as_u16(), Box::new(response.into_body().into_reader()))
    }
}

/// The Python runtime (DRUM) the compute tests share: installed once with
/// `modelreg runtime install` into a data directory under target/tmp, and
/// reused by every later run (about 500 MB, a minute or two the first time).
/// A lock file serialises the install between test threads and binaries.
/// Panics if it cannot be installed: these tests never skip.
pub fn drum_python() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("drum-runtime");
            std::fs::create_dir_all(&root).unwrap();
            let lock = std::fs::File::create(root.with_extension("lock")).unwrap();
            // SAFETY: flock on a file we hold open; released when it closes.
            assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
            let show = || {
                let out = Command::new(BIN).arg("--data-dir").arg(&root).args(["--json", "runtime", "show"]).output().unwrap();
                let shown: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                shown["inUse"]["facts"]["drum"].as_str().map(|_| PathBuf::from(shown["inUse"]["python"].as_str().unwrap()))
            };
            if let Some(python) = show() {
                return python;
            }
            let out = Command::new(BIN).arg("--data-dir").arg(&root).args(["runtime", "install"]).output().unwrap();
            assert!(
                out.status.success(),
                "modelreg runtime install failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            show().expect("the runtime was installed but does not show DRUM")
        })
        .clone()
}

/// The clients people already have, pinned: the official `datarobot` 3.20.0
/// and the `octomil` SDK 4.17.42, in one venv under target/tmp made on
/// first use (flock-serialised like `drum_python`). Err says why it cannot
/// be made (no python3 venv or pip); a failing install panics.
pub fn client_python() -> Result<PathBuf, String> {
    const CLIENTS: [&str; 2] = ["datarobot==3.20.0", "octomil==4.17.42"];
    static READY: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("client-venv");
            let lock = std::fs::File::create(dir.with_extension("lock")).unwrap();
            // SAFETY: flock on a file we hold open; released when it closes.
            assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
            let python = dir.join("bin/python");
            let check = "import importlib.metadata as m, sys; sys.exit(m.version('datarobot') != '3.20.0' or m.version('octomil') != '4.17.42')";
            let ready = |p: &Path| Command::new(p).args(["-c", check]).status().is_ok_and(|s| s.success());
            if python.exists() && ready(&python) {
                return Ok(python);
            }
            if !Command::new("python3").args(["-m", "venv"]).arg(&dir).status().is_ok_and(|s| s.success()) {
                return Err("python3 -m venv is unavailable".into());
            }
            if !Command::new(&python).args(["-m", "pip", "--version"]).status().is_ok_and(|s| s.success()) {
                return Err("pip is unavailable in the venv".into());
            }
            let install = Command::new(&python).args(["-m", "pip", "install", "-q"]).args(CLIENTS).status().expect("run pip");
            assert!(install.success(), "pip install {CLIENTS:?} failed");
            assert!(ready(&python), "{CLIENTS:?} installed but not importable");
            Ok(python)
        })
        .clone()
}

/// `client_python`, for a test that can do nothing without the clients:
/// None (printing why) where python3's venv or pip is missing, and a panic
/// under CI, whose .ci/run installs them.
pub fn client_python_or_skip() -> Option<PathBuf> {
    match client_python() {
        Ok(python) => Some(python),
        Err(reason) => {
            skip_outside_ci("the Python clients", &reason);
            None
        }
    }
}

/// For a test whose host lacks `what` (for `reason`): under `CI` a failure,
/// since .ci/run provides what the tests need; elsewhere the caller skips,
/// and this says so on the terminal (see `host_note`).
pub fn skip_outside_ci(what: &str, reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    if under_ci() {
        panic!("CI is set and {test} cannot have {what}: {reason}");
    }
    host_note(&test, &format!("SKIPPED: this host cannot give it {what} ({reason}); under CI this fails"));
}

impl Server {
    /// A server whose compute jobs run on the shared DRUM runtime.
    pub fn start_compute(args: &[&str]) -> Server {
        let python = drum_python();
        let mut all = vec!["--python", python.to_str().unwrap()];
        all.extend_from_slice(args);
        Server::start_with(&all)
    }
}

/// Writes a `#!/bin/sh` script with `body` to `path`, executable (a fake
/// image builder…), and returns its path as a string for a flag.
pub fn write_script(path: &Path, body: &str) -> String {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

/// A stand-in for the docker CLI, for `serve --image-builder`: no engine
/// runs here, so `build` prints its Dockerfile and records the tag (slowly
/// when the Dockerfile says SLOW), and `run` starts DRUM from the shared
/// runtime on this host, the container's paths and address mapped to the
/// host's. Every call is appended to `<state>/calls`; `rm -f` kills the
/// "container". Returns the script's path.
pub fn fake_docker(state: &Path) -> String {
    std::fs::create_dir_all(state).unwrap();
    let python = drum_python();
    let body = format!(
        r#"state={state}
echo "$*" >> "$state/calls"
tagfile() {{ echo "$state/image-$(echo "$1" | tr ':/' '__')"; }}
cmd="$1"; shift
case "$cmd" in
build)
    iid=""; tag=""
    while [ $# -gt 1 ]; do case "$1" in --iidfile) iid="$2"; shift 2;; -t) tag="$2"; shift 2;; *) shift;; esac; done
    echo "fake build of $tag from $1:"; cat "$1/Dockerfile"
    if grep -q SLOW "$1/Dockerfile"; then sleep 30; fi
    touch "$(tagfile "$tag")"
    [ -z "$iid" ] || printf 'sha256:feedbeef' > "$iid"
    ;;
image) [ -e "$(tagfile "$2")" ] ;;
network) ;;
inspect) case "$2" in *OOMKilled*) echo false;; *) echo 127.0.0.1;; esac ;;
rm) kill -9 "$(cat "$state/$2.pid")" 2>/dev/null; true ;;
run)
    name=""; code=""
    while [ $# -gt 0 ]; do case "$1" in
        --name) name="$2"; shift 2;;
        -e) export "$2"; shift 2;;
        -v) code="${{2%%:*}}"; shift 2;;
        -p|--network|--memory|--memory-swap) shift 2;;
        *) break;;
    esac; done
    echo "$1" > "$state/$name.image"
    shift 2
    echo $$ > "$state/$name.pid"
    mkdir -p "$state/home-$name"; export HOME="$state/home-$name"
    args=$(echo "$@" | sed "s#/opt/code#$code#; s#0.0.0.0:#127.0.0.1:#")
    exec {python} -m datarobot_drum.drum.entry_point $args
    ;;
*) echo "fake docker: no $cmd" >&2; exit 2 ;;
esac
"#,
        state = state.display(),
        python = python.display()
    );
    write_script(&state.join("docker"), &body)
}

/// Whether this is a CI run (`CI` set), where a host that allows the
/// stronger branch of a host-dependent test must take it.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Says which branch of a host-dependent test ran, where a person sees it:
/// libtest captures `print!`/`eprint!` of a passing test, so the line is
/// written to the process's stderr handle itself, which it does not capture
/// (it reaches a terminal and a CI log alike).
pub fn host_note(test: &str, note: &str) {
    let _ = writeln!(std::io::stderr(), "NOTE {test}: {note}");
}

/// The runtime with the format converters (tests/formats.rs, tests/cluster.rs):
/// installed once with `modelreg runtime install --with converters --with
/// tensorflow` into a data directory under target/tmp and reused by later
/// runs; it has DRUM too, as every runtime does. One made before the
/// converters grew a package (coremltools, issue 24) lacks a module below
/// and is installed again; the venvs it replaces are removed, so that a
/// machine whose CI keeps target/ does not gather a 2 GB venv per change. A
/// lock file serialises the install between test threads and binaries.
/// Panics if it cannot be installed: the tests that need it never skip.
pub fn converters_python() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("converters-runtime");
            std::fs::create_dir_all(&root).unwrap();
            let lock = std::fs::File::create(root.with_extension("lock")).unwrap();
            // SAFETY: flock on a file we hold open; released when it closes.
            assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
            let ready = || {
                let out = Command::new(BIN).arg("--data-dir").arg(&root).args(["--json", "runtime", "show"]).output().unwrap();
                let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
                shown["inUse"]["facts"]["drum"].as_str()?;
                let python = PathBuf::from(shown["inUse"]["python"].as_str()?);
                let modules = "skl2onnx onnxmltools onnxruntime onnx sklearn xgboost tensorflow tf2onnx coremltools";
                let check = format!("import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in {modules:?}.split()))");
                Command::new(&python).args(["-c", &check]).status().is_ok_and(|s| s.success()).then_some(python)
            };
            if let Some(python) = ready() {
                return python;
            }
            let out = Command::new(BIN)
                .arg("--data-dir")
                .arg(&root)
                .args(["runtime", "install", "--with", "converters", "--with", "tensorflow"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "modelreg runtime install --with converters --with tensorflow failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let python = ready().expect("the runtime was installed but lacks the converters or DRUM");
            // `runtime install` keeps the venvs it replaced for servers still
            // using them; no server of this checkout uses them now.
            let envs = root.join("runtime").join("envs");
            for old in std::fs::read_dir(&envs).unwrap().map(|e| e.unwrap().path()) {
                if !python.starts_with(&old) {
                    std::fs::remove_dir_all(&old).unwrap_or_else(|e| panic!("cannot remove the replaced runtime {}: {e}", old.display()));
                }
            }
            python
        })
        .clone()
}

/// tests/python/test_cross_dialect.py, every door with its real client, at
/// `url` with `key`: the offline CLI on `cli`'s data directory (and
/// database) first makes the model the script starts from. Panics with what
/// the script printed and `logs()` when it fails.
pub fn run_every_client(python: &Path, cli: &Server, url: &str, key: &str, logs: &dyn Fn() -> String) {
    let out = cli.cli(&["--json", "models", "create", "--name", "from-the-cli", "--framework", "sklearn"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_model: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The clients must read a model that carries the registry workflow's
    // fields too (issue 24): a version with an alias, tags, metrics and lineage.
    let weights = tempfile::Builder::new().suffix(".pkl").tempfile().unwrap();
    std::fs::write(weights.path(), b"not really a pickle").unwrap();
    for args in [
        &["versions", "upload", "from-the-cli", weights.path().to_str().unwrap()][..],
        &["versions", "alias", "from-the-cli", "champion", "1"],
        &["models", "tag", "from-the-cli", "stage=production", "owner=clients"],
        &["versions", "tag", "from-the-cli", "1", "validated=yes"],
        &["versions", "update", "from-the-cli", "1", "--metric", "auc=0.9", "--source-commit", "9fceb02", "--run-url", "https://ci.example.com/1"],
    ] {
        let out = cli.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_cross_dialect.py");
    let out = Command::new(python)
        .arg(script)
        .env("MODELREG_URL", url)
        .env("MODELREG_TOKEN", key)
        .env("CLI_MODEL_ID", cli_model["id"].as_str().unwrap())
        .output()
        .expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all calls succeeded"),
        "client script failed at {url}\n--- stdout\n{stdout}\n--- stderr\n{}\n--- logs\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
}
