//! One warm DRUM server per job. Starting DRUM costs seconds (2–7 s here)
//! while a warm request costs milliseconds, so a job starts one server,
//! sends it every request it needs, and stops it.
//!
//! The server runs under `modelreg contain` (src/compute/contain.rs). The
//! job's thread owns the process (`Server`); requests go out from another
//! thread (`Endpoint::connect`), which joins the server's network namespace
//! when the model has no egress.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::contain::{MemoryCgroup, REPORT_PREFIX};
use crate::process::Supervised;

/// How long a single prediction request may take: DRUM's own worker
/// timeout (its gunicorn config says 600 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest prediction answer read: 5,000 rows of a 1,000-class model's
/// probabilities fit; a model answering more is refused, not buffered.
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

/// Where DRUM comes from.
#[derive(Clone, Debug)]
pub enum Runner {
    /// A Python on this host with DRUM (the runtime, or a dependency
    /// environment over it), under `modelreg contain`.
    Local { python: PathBuf },
    /// The version's image (its environment's, or its dependency image),
    /// run with a docker-compatible CLI (`serve --image-builder`).
    Docker { builder: String, image: String },
}

/// What to run and how to contain it.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub runner: Runner,
    pub code_dir: PathBuf,
    /// DataRobot's target type (Regression, Binary…).
    pub target_type: String,
    pub positive_class_label: Option<String>,
    pub negative_class_label: Option<String>,
    pub class_labels: Vec<String>,
    /// Environment variables for the model (requiredMetadataValues…).
    pub env: Vec<(String, String)>,
    pub memory_limit: Option<u64>,
    pub no_network: bool,
    /// Names the memory cgroup or the container (a job id).
    pub name: String,
    /// The data directory, which a local model server must not see but for
    /// its own job's folder and the runtime.
    pub data_dir: PathBuf,
}

/// The docker network of containers without egress: internal, so the
/// host reaches them but they reach nothing beyond it.
pub const NO_EGRESS_NETWORK: &str = "modelreg-no-egress";

/// DRUM's `--target-type` for a DataRobot target type.
pub fn drum_target_type(target_type: &str) -> String {
    target_type.to_ascii_lowercase()
}

/// `drum server`'s arguments for the spec, its code at `code_dir` as the
/// server sees it.
fn drum_server_args(spec: &ServerSpec, code_dir: &str, address: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "server".into(),
        "--code-dir".into(),
        code_dir.into(),
        "--address".into(),
        address.into(),
        "--target-type".into(),
        drum_target_type(&spec.target_type),
    ];
    match spec.target_type.as_str() {
        "Binary" => {
            let positive = spec.positive_class_label.clone().unwrap_or_else(|| "1".into());
            let negative = spec.negative_class_label.clone().unwrap_or_else(|| "0".into());
            args.extend(["--positive-class-label".into(), positive, "--negative-class-label".into(), negative]);
        }
        "Multiclass" | "Multilabel" if !spec.class_labels.is_empty() => {
            args.push("--class-labels".into());
            args.extend(spec.class_labels.iter().cloned());
        }
        _ => {}
    }
    args
}

/// A started DRUM server. Dropping it kills every process it started.
pub struct Server {
    process: Supervised,
    cgroup: Option<MemoryCgroup>,
    /// The docker CLI and the container's name, for a server in a container.
    container: Option<(String, String)>,
    /// Where the server listens: loopback, or the container's address.
    host: String,
    pub port: u16,
    /// The containment report (`pid namespace yes; network none; …`).
    pub report: String,
    pub isolated_network: bool,
    pub memory_limit: Option<u64>,
    /// The last lines the server wrote, quoted when it exits.
    tail: std::collections::VecDeque<String>,
}

/// How many of the server's last lines an exit message quotes.
const TAIL_LINES: usize = 8;

/// Where requests reach the server; cheap to clone into other threads.
#[derive(Clone, Debug)]
pub struct Endpoint {
    host: String,
    pub port: u16,
    /// The process whose network namespace the server listens in.
    netns_of: Option<u32>,
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free loopback port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl Server {
    /// Starts the server: under `modelreg contain` (returning once it has
    /// reported, so its namespaces exist) or in a container. Readiness is
    /// `Client::wait_ready`'s business.
    pub fn start(spec: &ServerSpec, log: &mut dyn FnMut(&str)) -> Result<Server, String> {
        match &spec.runner {
            Runner::Local { python } => Server::start_local(spec, python, log),
            Runner::Docker { builder, image } => Server::start_docker(spec, builder, image, log),
        }
    }

    fn new(process: Supervised, port: u16, spec: &ServerSpec) -> Server {
        Server {
            process,
            cgroup: None,
            container: None,
            host: "127.0.0.1".into(),
            port,
            report: String::new(),
            isolated_network: false,
            memory_limit: spec.memory_limit,
            tail: Default::default(),
        }
    }

    fn start_local(spec: &ServerSpec, python: &Path, log: &mut dyn FnMut(&str)) -> Result<Server, String> {
        let port = free_port()?;
        // /proc/self/exe runs this binary even after an upgrade replaced
        // the file on disk.
        let mut command = Command::new("/proc/self/exe");
        command.arg("contain");
        if spec.no_network {
            command.arg("--no-network");
        }
        let mut cgroup = None;
        if let Some(limit) = spec.memory_limit {
            match MemoryCgroup::create(&spec.name, limit) {
                Ok(c) => {
                    command.arg("--cgroup").arg(c.dir());
                    cgroup = Some(c);
                }
                Err(e) => {
                    log(&format!("{e}; the data segment is capped with setrlimit instead, which only approximates memory use"));
                    command.arg("--rlimit-data").arg(limit.to_string());
                }
            }
        }
        // HOME is the job's own: gunicorn puts its control socket there, and
        // two servers must not share one.
        let home = spec.code_dir.parent().unwrap_or(&spec.code_dir).join("home");
        std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        command.arg("--hide").arg(&spec.data_dir).arg("--expose").arg(&spec.code_dir).arg("--expose-writable").arg(&home);
        let runtime = spec.data_dir.join("runtime");
        if runtime.is_dir() {
            command.arg("--expose").arg(runtime);
        }
        let drum_args = drum_server_args(spec, &spec.code_dir.display().to_string(), &format!("127.0.0.1:{port}"));
        command.arg("--").arg(python).args(["-m", "datarobot_drum.drum.entry_point"]).args(&drum_args);
        command
            .current_dir(&spec.code_dir)
            .env("HOME", &home)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        log(&format!("Starting: {} -m datarobot_drum.drum.entry_point {}", python.display(), drum_args.join(" ")));
        let process = crate::process::spawn(command).map_err(|e| format!("cannot start the model server: {e}"))?;
        let mut server = Server::new(process, port, spec);
        server.cgroup = cgroup;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.process.lines().expect("piped").recv_timeout(left) {
                Ok(line) => {
                    if let Some(report) = line.strip_prefix(REPORT_PREFIX) {
                        server.report = report.trim().to_string();
                        server.isolated_network = spec.no_network && server.report.contains("network none");
                        log(&format!("Containment: {}", server.report));
                        return Ok(server);
                    }
                    log(&line);
                }
                Err(RecvTimeoutError::Timeout) => return Err("the model server's supervisor did not start within 30 s".into()),
                Err(RecvTimeoutError::Disconnected) => return Err("the model server's supervisor exited at once".into()),
            }
        }
    }

    /// `<builder> run` of the image with the code mounted read-only, as
    /// DataRobot runs a custom model in its environment. Without egress the
    /// container joins an internal network and is reached at its address;
    /// otherwise its port is published on loopback.
    fn start_docker(spec: &ServerSpec, builder: &str, image: &str, log: &mut dyn FnMut(&str)) -> Result<Server, String> {
        let port = free_port()?;
        let name = format!("modelreg-{}", spec.name);
        let mut command = Command::new(builder);
        command.args(["run", "--name", &name, "-e", "PYTHONUNBUFFERED=1"]);
        if spec.no_network {
            // Fails harmlessly when the network exists.
            let _ = Command::new(builder)
                .args(["network", "create", "--internal", NO_EGRESS_NETWORK])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            command.args(["--network", NO_EGRESS_NETWORK]);
        } else {
            command.arg("-p").arg(format!("127.0.0.1:{port}:{port}"));
        }
        if let Some(limit) = spec.memory_limit {
            command.arg("--memory").arg(limit.to_string()).arg("--memory-swap").arg(limit.to_string());
        }
        command.arg("-v").arg(format!("{}:/opt/code:ro", spec.code_dir.display()));
        for (k, v) in &spec.env {
            command.arg("-e").arg(format!("{k}={v}"));
        }
        let drum_args = drum_server_args(spec, "/opt/code", &format!("0.0.0.0:{port}"));
        command.arg(image).arg("drum").args(&drum_args).stdout(Stdio::piped()).stderr(Stdio::piped());
        log(&format!("Starting: {builder} run --name {name} … {image} drum {}", drum_args.join(" ")));
        let process = crate::process::spawn(command).map_err(|e| format!("cannot run {builder}: {e}"))?;
        let mut server = Server::new(process, port, spec);
        server.container = Some((builder.to_string(), name.clone()));
        server.isolated_network = spec.no_network;
        if spec.no_network {
            server.host = server.container_address(Duration::from_secs(60), log)?;
        }
        server.report = format!(
            "container {name} of {image}; network {}; memory {}",
            if spec.no_network { format!("none ({NO_EGRESS_NETWORK}, at {})", server.host) } else { format!("published on 127.0.0.1:{port}") },
            spec.memory_limit.map(|m| format!("limited to {m} bytes")).unwrap_or_else(|| "unlimited".into())
        );
        log(&format!("Containment: {}", server.report));
        Ok(server)
    }

    /// The container's address on its network, once it has one.
    fn container_address(&mut self, timeout: Duration, log: &mut dyn FnMut(&str)) -> Result<String, String> {
        let (builder, name) = self.container.clone().expect("a container");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let out = Command::new(&builder)
                .args(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &name])
                .output()
                .map_err(|e| format!("cannot run {builder} inspect: {e}"))?;
            let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !address.is_empty() {
                return Ok(address);
            }
            if let Some(why) = self.exited(log) {
                return Err(why);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("the container {name} got no network address within {} s", timeout.as_secs()))
    }

    pub fn endpoint(&self) -> Endpoint {
        // A container's network is docker's business; contain's namespace
        // is joined from the requesting thread.
        let netns_of = (self.isolated_network && self.container.is_none()).then(|| self.process.id());
        Endpoint { host: self.host.clone(), port: self.port, netns_of }
    }

    /// Hands the server's output lines written so far to `log`.
    pub fn drain(&mut self, log: &mut dyn FnMut(&str)) {
        if let Some(lines) = self.process.lines() {
            while let Ok(line) = lines.try_recv() {
                log(&line);
                if self.tail.len() == TAIL_LINES {
                    self.tail.pop_front();
                }
                self.tail.push_back(line);
            }
        }
    }

    /// None while the server runs; once it exited, or once the kernel killed
    /// any of its processes for memory, why, in words a person can act on.
    /// The memory kill is checked first and whether or not the server
    /// exited: the OOM killer picks gunicorn's worker (the process that
    /// scores), and the master survives it and boots a new one, so the
    /// server itself never exits.
    pub fn exited(&mut self, log: &mut dyn FnMut(&str)) -> Option<String> {
        let memory_kill = || {
            format!("the model was killed for exceeding its memory limit (maximumMemory {} bytes)", self.memory_limit.unwrap_or_default())
        };
        if self.cgroup.as_ref().is_some_and(MemoryCgroup::oom_killed) {
            return Some(memory_kill());
        }
        let status = self.process.try_wait().ok().flatten()?;
        // A container's memory kill is docker's to tell, once it exited.
        if self.container_oom_killed() {
            return Some(memory_kill());
        }
        self.drain(log);
        let last: Vec<&str> = self.tail.iter().map(String::as_str).collect();
        Some(format!("the model server exited ({status}); its last output:\n{}", last.join("\n")))
    }

    fn container_oom_killed(&self) -> bool {
        let Some((builder, name)) = &self.container else { return false };
        Command::new(builder)
            .args(["inspect", "-f", "{{.State.OOMKilled}}", name])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "true")
    }

    /// Kills every process of the server (and removes its container); `exited`
    /// then reports it.
    pub fn kill(&mut self) {
        self.process.kill();
        if let Some((builder, name)) = self.container.take() {
            let _ = Command::new(builder).args(["rm", "-f", &name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }

    pub fn stop(mut self) {
        self.kill();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A container outlives the docker CLI that started it.
        self.kill();
    }
}

/// A failed prediction request: DRUM's status and message, or the reason
/// no answer came.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Requests to one DRUM server, from the thread that made it.
pub struct Client {
    agent: ureq::Agent,
    quick: ureq::Agent,
    base: String,
}

impl Endpoint {
    /// A client for this thread. When the server has no network egress,
    /// this thread joins its network namespace for good, so call it from a
    /// thread that only talks to the server.
    pub fn connect(&self) -> Result<Client, String> {
        if let Some(pid) = self.netns_of {
            super::contain::enter_netns(pid)?;
        }
        let agent = |timeout: Duration| {
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().new_agent()
        };
        Ok(Client { agent: agent(REQUEST_TIMEOUT), quick: agent(Duration::from_secs(2)), base: format!("http://{}:{}", self.host, self.port) })
    }
}

impl Client {
    /// `GET /`: DRUM answers 200 once the model is loaded.
    pub fn ping(&self) -> Result<(), String> {
        match self.quick.get(format!("{}/", self.base)).call() {
            Ok(r) if r.status().as_u16() == 200 => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Polls `ping` until it answers, `give_up` says so, or `timeout`.
    pub fn wait_ready(&self, timeout: Duration, give_up: &dyn Fn() -> bool) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            let last = match self.ping() {
                Ok(()) => return Ok(started.elapsed()),
                Err(e) => e,
            };
            if give_up() {
                return Err("the model server stopped before it answered".into());
            }
            if started.elapsed() >= timeout {
                return Err(format!("the model server did not answer GET / within {} s (last: {last})", timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POSTs a CSV to `/predict/` and returns DRUM's `predictions`.
    pub fn predict(&self, csv: &[u8]) -> Result<Vec<Value>, CallError> {
        let response = self
            .agent
            .post(format!("{}/predict/", self.base))
            .header("Content-Type", "text/csv")
            .send(csv)
            .map_err(|e| CallError { status: None, message: format!("no answer from the model server: {e}") })?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| CallError { status: Some(status), message: format!("the answer could not be read (at most {MAX_ANSWER_BYTES} bytes): {e}") })?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            let message = body["message"].as_str().map(str::to_string).unwrap_or_else(|| truncate(&text, 2000));
            return Err(CallError { status: Some(status), message });
        }
        match body.get("predictions") {
            Some(Value::Array(p)) => Ok(p.clone()),
            _ => Err(CallError { status: Some(status), message: format!("the answer has no predictions list: {}", truncate(&text, 500)) }),
        }
    }

    /// POSTs a body to `/predictUnstructured/`; the status and the answer.
    pub fn predict_unstructured(&self, body: &[u8], content_type: &str) -> Result<(u16, Vec<u8>), CallError> {
        let response = self
            .agent
            .post(format!("{}/predictUnstructured/", self.base))
            .header("Content-Type", content_type)
            .send(body)
            .map_err(|e| CallError { status: None, message: format!("no answer from the model server: {e}") })?;
        let status = response.status().as_u16();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(response.into_body().into_reader(), MAX_ANSWER_BYTES), &mut out)
            .map_err(|e| CallError { status: Some(status), message: format!("reading the answer failed: {e}") })?;
        Ok((status, out))
    }
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// The version's files, written read-only under `dir` for the model server.
pub fn materialise(registry: &crate::registry::Registry, version: &crate::registry::Version, dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for file in &version.files {
        // Paths were validated when the version was stored; check again,
        // since they become file system paths here.
        crate::registry::validate_file_path(&file.path).map_err(|e| e.message())?;
        let target = dir.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create the folder of {}: {e}", file.path))?;
        }
        registry.materialise_blob(&file.sha256, &target).map_err(|e| format!("cannot write {}: {e}", file.path))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444)).map_err(|e| e.to_string())?;
    }
    Ok(())
}
