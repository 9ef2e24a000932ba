//! Several modelreg processes on one set of records (issue 23): two `serve
//! --no-jobs` on one PostgreSQL database and one Garage bucket, each with a
//! data directory of its own, behind a real nginx balancing between them
//! round-robin, and `modelreg worker` processes that run the jobs. Every
//! process is real and listens on loopback; each dies with the test (the
//! servers and workers are killed by `Drop`, and the workers and nginx also
//! get SIGKILL when the test binary dies: `child::spawn_for_life`).
//!
//! The nginx configuration is docs/nginx.conf without TLS, with both
//! servers in its upstream block and `proxy_next_upstream error timeout`,
//! so that a request that never reached a dead server goes to the other.
//! Its access log names, for each request, the upstream that answered and
//! the request's `X-Test-Tag` header, so that a test can tell which server
//! took a given request.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::child::{self, free_ports};
use super::garage::{self, Garage};
use super::{skip_outside_ci, Reply, Server, BIN};

/// How long a server, a worker or nginx may take to start on a busy machine.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a request through nginx may take before the client gives up:
/// far above anything modelreg waits for itself (a pool checkout 30 s, a
/// connect to PostgreSQL 5 s, the S3 store 30 s), so that a hang fails a
/// test instead of stalling it, and no honest wait is cut short.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// The header whose value nginx logs beside the upstream that answered.
pub const TAG_HEADER: &str = "X-Test-Tag";

/// Where nginx is, or None (having said so, or panicked under CI).
pub fn nginx_or_skip() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join("nginx")))
        .find(|p| p.is_file());
    if found.is_none() {
        skip_outside_ci("nginx (.ci/run installs it)", "no nginx in /usr/sbin or on PATH");
    }
    found
}

/// Two servers, their nginx, and the workers started so far.
pub struct Cluster {
    /// The PostgreSQL database every process keeps its records in.
    pub database: String,
    pub garage: &'static Garage,
    pub bucket: String,
    /// The admin key of the team the first server made.
    pub key: String,
    /// Arguments every server and worker is given besides the shared ones.
    server_args: Vec<String>,
    /// Servers by index; None once killed.
    servers: Vec<Option<Server>>,
    /// The addresses the servers listened on, killed ones included.
    pub server_addrs: Vec<String>,
    /// What each killed server had printed.
    killed_logs: Vec<String>,
    workers: Vec<Option<Worker>>,
    nginx: Nginx,
    client: Client,
}

impl Cluster {
    /// Two `serve --no-jobs --trusted-proxy 127.0.0.1` (plus `args`) on
    /// `database` and a fresh bucket of the shared Garage node, and nginx in
    /// front of both. None where Garage or nginx is missing (having said so;
    /// under CI that panics instead).
    pub fn start(database: &str, args: &[&str]) -> Option<Cluster> {
        let nginx_bin = nginx_or_skip()?;
        let (garage, bucket) = garage::fresh_bucket()?;
        let mut server_args = vec!["--no-jobs".to_string(), "--trusted-proxy".to_string(), "127.0.0.1".to_string()];
        server_args.extend(args.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = server_args.iter().map(String::as_str).collect();
        // The first makes the team and writes its admin key; the second
        // finds the team and writes none.
        let first = Server::launch_on(tempfile::tempdir().unwrap(), database, garage, &bucket, None, &argv);
        let key = first.key.clone();
        let second = Server::launch_on(tempfile::tempdir().unwrap(), database, garage, &bucket, Some(&key), &argv);
        assert!(
            !second.data_dir().join("admin.key").exists(),
            "a second server on a database whose team exists wrote an admin key:\n{}",
            second.log.lock().unwrap()
        );
        let server_addrs = vec![first.addr.clone(), second.addr.clone()];
        let nginx = Nginx::start(&nginx_bin, &server_addrs);
        let client = Client::new(format!("http://127.0.0.1:{}", nginx.port), key.clone());
        Some(Cluster {
            database: database.to_string(),
            garage,
            bucket,
            key,
            server_args,
            servers: vec![Some(first), Some(second)],
            server_addrs,
            killed_logs: Vec::new(),
            workers: Vec::new(),
            nginx,
            client,
        })
    }

    /// Server `n`, while it runs.
    pub fn server(&self, n: usize) -> &Server {
        self.servers[n].as_ref().unwrap_or_else(|| panic!("server {n} was killed"))
    }

    /// `kill -9` server `n` and wait for it; its address stays in
    /// nginx's upstream block, where it now refuses connections.
    pub fn kill_server(&mut self, n: usize) {
        let server = self.servers[n].take().unwrap_or_else(|| panic!("server {n} was already killed"));
        let log = Arc::clone(&server.log);
        drop(server.kill());
        self.killed_logs.push(log.lock().unwrap().clone());
    }

    /// Everything server `n` printed so far (its access log included).
    pub fn server_log(&self, n: usize) -> String {
        self.server(n).log.lock().unwrap().clone()
    }

    /// Starts a `modelreg worker` on the cluster's database and bucket,
    /// with a data directory of its own and `args` (`--python`,
    /// `--job-lease`…), waits until it says it is claiming, and returns its
    /// index.
    pub fn start_worker(&mut self, args: &[&str]) -> usize {
        let worker = Worker::start(&self.database, self.garage, &self.bucket, args);
        self.workers.push(Some(worker));
        self.workers.len() - 1
    }

    pub fn worker(&self, n: usize) -> &Worker {
        self.workers[n].as_ref().unwrap_or_else(|| panic!("worker {n} was killed"))
    }

    /// `kill -9` worker `n` and wait for it.
    pub fn kill_worker(&mut self, n: usize) {
        let mut worker = self.workers[n].take().unwrap_or_else(|| panic!("worker {n} was already killed"));
        worker.kill();
    }

    /// The nginx address clients use, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx.port)
    }

    /// nginx's access log so far: `METHOD URI STATUS upstream=ADDR[, ADDR]
    /// upstream_status=S tag=TAG` a line.
    pub fn nginx_log(&self) -> String {
        std::fs::read_to_string(self.nginx.dir.path().join("access.log")).unwrap_or_default()
    }

    /// nginx's error log, for failure messages.
    pub fn nginx_errors(&self) -> String {
        std::fs::read_to_string(self.nginx.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Every answer with status 500 that a server logged (killed servers
    /// included) or nginx passed on: a server that cannot do something
    /// says why with another status, never "internal error".
    pub fn answers_500(&self) -> Vec<String> {
        let live = self.servers.iter().flatten().map(|s| s.log.lock().unwrap().clone());
        let servers: Vec<String> = self.killed_logs.iter().cloned().chain(live).collect();
        let from_servers = servers.iter().flat_map(|log| log.lines().filter(|l| l.contains(" rid=") && l.contains("\" 500 ")).map(String::from).collect::<Vec<_>>());
        let nginx = self.nginx_log();
        let from_nginx = nginx.lines().filter(|l| l.contains(" 500 upstream=") || l.contains("upstream_status=500")).map(String::from).collect::<Vec<_>>();
        from_servers.chain(from_nginx).collect()
    }

    /// Every server's and worker's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (n, s) in self.servers.iter().enumerate() {
            if let Some(s) = s {
                out.push_str(&format!("--- server {n} ({})\n{}\n", s.addr, s.log.lock().unwrap()));
            }
        }
        for (n, w) in self.workers.iter().enumerate() {
            if let Some(w) = w {
                out.push_str(&format!("--- worker {n} (pid {})\n{}\n", w.pid(), w.log()));
            }
        }
        out.push_str(&format!("--- nginx errors\n{}", self.nginx_errors()));
        out
    }

    /// A client of the nginx address with the admin key, for other threads.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// See `Client::try_request`.
    pub fn try_request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Result<Reply, String> {
        self.client.try_request(method, path, headers, body)
    }

    /// `try_request` that must reach a server.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        self.try_request(method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path} through nginx failed: {e}\n{}", self.logs()))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.request("POST", path, &[("Content-Type", "application/json")], Some(body.to_string().into_bytes()))
    }

    /// The arguments every server was started with.
    pub fn server_args(&self) -> &[String] {
        &self.server_args
    }
}

/// Requests to one base URL with the admin key, which any thread may
/// clone: redirects are not followed, and an answer that takes longer than
/// `CLIENT_TIMEOUT` is a transport error.
#[derive(Clone)]
pub struct Client {
    pub url: String,
    pub key: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: String, key: String) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(CLIENT_TIMEOUT))
            .build()
            .new_agent();
        Client { url, key, agent }
    }

    /// A request with the admin key (unless `headers` carry an
    /// Authorization); Err says how it failed at the transport level.
    pub fn try_request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Result<Reply, String> {
        let mut builder = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.url));
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            builder = builder.header("Authorization", format!("Bearer {}", self.key));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = self.agent.run(builder.body(body.unwrap_or_default()).unwrap()).map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
        let mut body = Vec::new();
        response.into_body().into_reader().read_to_end(&mut body).map_err(|e| e.to_string())?;
        Ok(Reply { status, headers, body })
    }
}

/// A `modelreg worker` process and what it printed.
pub struct Worker {
    child: Child,
    pub data: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl Worker {
    fn start(database: &str, garage: &Garage, bucket: &str, args: &[&str]) -> Worker {
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(data.path())
            .args(["--database", database, "worker", "--blob-store", &format!("s3://{bucket}")])
            .args(args)
            .envs(garage.aws_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = child::spawn_for_life(command, libc::SIGKILL).expect("start modelreg worker");
        let (log, ready) = follow(&mut child, "worker running jobs");
        let line = ready.recv_timeout(START_DEADLINE).unwrap_or_else(|e| panic!("the worker did not start ({e}); it said:\n{}", log.lock().unwrap()));
        assert!(line.contains("database postgres://") && line.contains(&format!("blobs s3://{bucket}")), "{line}");
        Worker { child, data, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies `child`'s stderr into a log as it comes, and sends the first line
/// containing `ready` on the channel.
fn follow(child: &mut Child, ready: &'static str) -> (Arc<Mutex<String>>, mpsc::Receiver<String>) {
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(ready) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line.clone());
                }
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (log, rx)
}

/// The lease owner a worker or server writes into `jobs.lease_owner`
/// (`boot/pid namespace/pid/start time`): its pid.
pub fn owner_pid(owner: &str) -> Option<u32> {
    owner.split('/').nth(2)?.parse().ok()
}

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    /// nginx in the foreground as this user, on a free loopback port,
    /// balancing round-robin between `upstreams`; everything it writes
    /// goes under a temporary directory.
    fn start(binary: &Path, upstreams: &[String]) -> Nginx {
        // The port is free when chosen and taken by nginx a moment later;
        // another process can take it in between.
        for _ in 0..4 {
            if let Some(nginx) = Nginx::try_start(binary, upstreams) {
                return nginx;
            }
        }
        panic!("nginx found its port taken 4 times in a row");
    }

    /// None when nginx exited because its port was taken.
    fn try_start(binary: &Path, upstreams: &[String]) -> Option<Nginx> {
        let dir = tempfile::tempdir().unwrap();
        let [port] = free_ports();
        let site = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx.conf")).unwrap();
        let servers: String = upstreams.iter().map(|a| format!("server {a};\n    ")).collect();
        assert!(site.contains("listen 443 ssl;") && site.contains("server 127.0.0.1:8420;"), "docs/nginx.conf changed shape");
        let site: String = site
            .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port};\n    proxy_next_upstream error timeout;"))
            .replace("server 127.0.0.1:8420;", servers.trim_end())
            .lines()
            .filter(|l| !l.trim_start().starts_with("ssl_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
             log_format cluster '$request_method $request_uri $status upstream=$upstream_addr upstream_status=$upstream_status tag=$http_x_test_tag';\n\
             access_log {d}/access.log cluster;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut command = Command::new(binary);
        command.arg("-c").arg(&conf_path).arg("-p").arg(dir.path()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = child::spawn_for_life(command, libc::SIGKILL).expect("start nginx");
        let until = Instant::now() + START_DEADLINE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let errors = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                if errors.contains("Address already in use") {
                    return None;
                }
                panic!("nginx exited ({status}):\n{errors}");
            }
            assert!(Instant::now() < until, "nginx did not listen on {port}:\n{errors}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx { child, dir, port })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
