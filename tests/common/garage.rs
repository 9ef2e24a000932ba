//! A real Garage node (https://garagehq.deuxfleurs.fr, 2.5.0) for the S3
//! blob store's tests: Garage refuses a bad signature and a payload that
//! does not match its signed checksum, as AWS does, where a lenient
//! stand-in (s3rver accepts both) would let those bugs pass.
//!
//! Each node is one `garage server` on loopback ports, with its metadata,
//! data, configuration and log in a directory of its own under
//! `CARGO_TARGET_TMPDIR` (on the disk the build uses, not a tmpfs: blob
//! tests write hundreds of megabytes, and `fsync` must mean something).
//! Most tests need only a bucket of their own and share one node per test
//! binary (`fresh_bucket`); a test that stops or restarts Garage starts its
//! own (`Garage::start`).
//!
//! Garage 2.5.0 is installed by .ci/run; elsewhere a test without it skips
//! through `skip_outside_ci`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::child::{self, free_ports, listening, random_hex};
use super::skip_outside_ci;

/// How long Garage may take to answer after it is started: a cold start is
/// well under a second on an idle machine, but a busy CI machine compiles
/// and runs other test binaries meanwhile.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);
/// Whole starts tried before giving up on finding free ports.
const PORT_ATTEMPTS: u32 = 4;
/// What Garage logs when its RPC or S3 port is taken (the RPC one makes it
/// exit; the S3 one only ends that API's task).
const PORT_TAKEN: &str = "Address already in use";
/// Garage binds its three ports within milliseconds of each other: one
/// still missing this long after another is held by another process. A
/// taken admin port is the case that needs this: Garage logs its error only
/// once the S3 API has stopped, and runs on without it.
const PARTLY_BOUND: Duration = Duration::from_millis(500);

/// A running Garage node with one access key allowed on every bucket the
/// harness creates. Dropping it kills the server and deletes its directory.
pub struct Garage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
    s3_port: u16,
    rpc_port: u16,
    admin_port: u16,
    endpoint: String,
    key_id: String,
    secret: String,
}

impl Garage {
    /// A node of this test's own (for a test that stops or restarts it), or
    /// None where this host has no Garage (the test then returns; under CI
    /// this panics instead). `fsync` sets Garage's `metadata_fsync` and
    /// `data_fsync`: off, as Garage ships, a write is acknowledged before
    /// it reaches the disk.
    pub fn start(fsync: bool) -> Option<Garage> {
        let binary = binary_or_skip()?;
        Some(Garage::start_with(binary, fsync))
    }

    fn start_with(binary: PathBuf, fsync: bool) -> Garage {
        // The ports are free when chosen and taken by Garage a moment
        // later; another process can take one in between.
        for _ in 0..PORT_ATTEMPTS {
            if let Some(garage) = Garage::try_start(&binary, fsync) {
                return garage;
            }
        }
        panic!("Garage found its ports taken {PORT_ATTEMPTS} times in a row");
    }

    /// None when a port was taken before Garage bound it.
    fn try_start(binary: &Path, fsync: bool) -> Option<Garage> {
        let dir = tempfile::Builder::new().prefix("garage-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let [s3_port, rpc_port, admin_port] = free_ports();
        let path = dir.path().to_str().expect("a UTF-8 temporary directory");
        // TOML literal strings take the path as it is, without escapes.
        assert!(!path.contains('\''), "{path} cannot be a TOML literal string");
        let config = format!(
            "metadata_dir = '{path}/meta'\n\
             data_dir = '{path}/data'\n\
             db_engine = \"sqlite\"\n\
             metadata_fsync = {fsync}\n\
             data_fsync = {fsync}\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_secret = \"{rpc_secret}\"\n\
             \n\
             [s3_api]\n\
             s3_region = \"garage\"\n\
             api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
             root_domain = \".s3.garage.localhost\"\n\
             \n\
             [admin]\n\
             api_bind_addr = \"127.0.0.1:{admin_port}\"\n\
             admin_token = \"{admin_token}\"\n",
            rpc_secret = random_hex(32),
            admin_token = random_hex(32),
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let child = spawn_server(binary, dir.path());
        let mut garage = Garage {
            binary: binary.to_path_buf(),
            dir,
            child,
            s3_port,
            rpc_port,
            admin_port,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            key_id: String::new(),
            secret: String::new(),
        };
        // The CLI needs the RPC port only; before a layout, /health
        // answers 503 (no quorum).
        if !garage.wait_for("listen on its ports", 0, |g| g.health().is_some()) {
            return None;
        }
        garage.configure();
        if !garage.wait_for("be healthy", 0, |g| g.serving()) {
            return None;
        }
        Some(garage)
    }

    /// The one-node layout and the access key: what `garage server
    /// --single-node --default-access-key` would do, spelled out as an
    /// operator's first steps are in Garage's quick start.
    fn configure(&mut self) {
        // `node id -q` prints `<64 hex>@127.0.0.1:<rpc port>`; `layout
        // assign` wants the part before the `@`.
        let node = self.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        self.cli(&["layout", "apply", "--version", "1"]);
        // Imported rather than created: the key is known without reading it
        // back from `key create`'s report, and `key import` prints the
        // secret as "(redacted)" anyway. The Key ID line says Garage took it.
        let key_id = format!("GK{}", random_hex(12));
        let secret = random_hex(32);
        let report = self.cli(&["key", "import", "--yes", "-n", "modelreg-tests", &key_id, &secret]);
        let reported = report.lines().find_map(|l| l.strip_prefix("Key ID:")).map(str::trim);
        assert_eq!(reported, Some(key_id.as_str()), "garage key import reported:\n{report}");
        self.key_id = key_id;
        self.secret = secret;
    }

    /// The S3 endpoint, `http://127.0.0.1:<port>` (path-style requests).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region Garage signs and checks (`s3_region`).
    pub fn region(&self) -> &str {
        "garage"
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its garage.toml, garage.log, metadata and data are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The standard AWS variables that point an S3 client at this node, for
    /// `Server::start_with_env`.
    pub fn aws_env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", self.region()),
            ("AWS_ACCESS_KEY_ID", self.key_id()),
            ("AWS_SECRET_ACCESS_KEY", self.secret()),
        ]
    }

    /// Creates bucket `name` and allows this node's key to read, write and
    /// own it. A name Garage refuses (S3's rules: 3–63 characters of
    /// lowercase letters, digits, `-` and `.`) panics.
    pub fn create_bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name]);
        self.cli(&["bucket", "allow", "--read", "--write", "--owner", name, "--key", &self.key_id]);
    }

    /// Runs `garage -c <its garage.toml> <args>` against this node and
    /// returns what it printed; a failure panics with the node's log. For
    /// what the harness does not wrap (`bucket deny`, `key delete`…).
    pub fn cli(&self, args: &[&str]) -> String {
        // The CLI waits forever for a node that stopped answering mid-call.
        let mut command = garage_command(&self.binary, self.dir.path());
        command.args(args).stdin(Stdio::null());
        let Some(output) = child::output_within(&mut command, START_DEADLINE) else {
            panic!("garage {} did not finish within {} s:\n{}", args.join(" "), START_DEADLINE.as_secs(), self.log_tail());
        };
        let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "garage {} failed ({}):\n{out}{err}\n{}", args.join(" "), output.status, self.log_tail());
        out.into_owned()
    }

    /// Kills the server and waits for it: an outage as abrupt as a crash.
    /// SIGKILL rather than SIGTERM, because a stopping Garage waits up to
    /// 10 s for open connections (an S3 client's idle pooled ones
    /// included). Nothing acknowledged is lost: its writes are in the
    /// kernel's page cache, which outlives the process.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again (stopping it first if it runs) on the same
    /// ports, configuration and data, and waits until it serves. Between a
    /// stop and a restart another process may hold one of the ports for a
    /// while (a client's outgoing connection takes ports from the same
    /// range); it is tried again until the start deadline.
    pub fn restart(&mut self) {
        self.stop();
        let until = Instant::now() + START_DEADLINE;
        loop {
            let log_from = self.log_len();
            self.child = spawn_server(&self.binary, self.dir.path());
            if self.wait_for("serve again", log_from, |g| g.serving()) {
                return;
            }
            self.stop();
            assert!(Instant::now() < until, "Garage's ports stayed taken for {} s:\n{}", START_DEADLINE.as_secs(), self.log_tail());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines Garage logged, for a failure message.
    pub fn log_tail(&self) -> String {
        child::log_tail(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    fn log_len(&self) -> u64 {
        child::log_len(&self.log_path())
    }

    /// Whether Garage logged a taken port since byte `from` of its log.
    fn port_taken_since(&self, from: u64) -> bool {
        child::logged_since(&self.log_path(), from, PORT_TAKEN)
    }

    /// Waits until Garage listens on all its ports and `ready` holds;
    /// false (the server killed) when a port turns out to be another
    /// process's (see `PORT_TAKEN`, `PARTLY_BOUND`), looking at the log
    /// from byte `log_from`. An exit or the deadline panics with the log.
    fn wait_for(&mut self, what: &str, log_from: u64, ready: impl Fn(&Garage) -> bool) -> bool {
        let until = Instant::now() + START_DEADLINE;
        let mut partly_since = None;
        loop {
            if self.port_taken_since(log_from) {
                self.stop();
                return false;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // A taken RPC port makes Garage panic and exit.
                if self.port_taken_since(log_from) {
                    return false;
                }
                panic!("Garage exited ({status}) before it would {what}:\n{}", self.log_tail());
            }
            // Its own sockets, not whoever answers on the port: only then
            // is the answer to `ready` Garage's.
            let bound = listening(self.child.id(), &[self.s3_port, self.rpc_port, self.admin_port]);
            if bound == 3 && ready(self) {
                return true;
            }
            if bound == 0 || bound == 3 {
                partly_since = None;
            } else if partly_since.get_or_insert_with(Instant::now).elapsed() > PARTLY_BOUND {
                self.stop();
                return false;
            }
            assert!(Instant::now() < until, "Garage did not {what} within {} s:\n{}", START_DEADLINE.as_secs(), self.log_tail());
            std::thread::sleep(POLL);
        }
    }

    /// Serving S3: the admin API's health check says every partition has
    /// its quorum.
    fn serving(&self) -> bool {
        self.health() == Some(200)
    }

    /// The status of `GET /health` on the admin API (no token needed), or
    /// None while nothing answers there.
    fn health(&self) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.admin_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        reply.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The node that tests needing only a bucket share, started by the first
/// of them (without fsync), or None where this host has no Garage. It runs
/// until the test binary exits: an exit handler kills it and deletes its
/// directory, and PR_SET_PDEATHSIG kills it if the binary is killed.
pub fn shared() -> Option<&'static Garage> {
    static SHARED: OnceLock<Result<Garage, String>> = OnceLock::new();
    let binary = binary_or_skip()?;
    Some(child::start_shared(&SHARED, "Garage", move || Garage::start_with(binary, false), |garage| {
        // Killed at once, as `stop` does.
        child::end_at_exit(garage.pid(), libc::SIGKILL, garage.dir().to_path_buf());
    }))
}

/// A new, empty bucket on the shared node, named after the test (for
/// reading Garage's log), or None where this host has no Garage.
pub fn fresh_bucket() -> Option<(&'static Garage, String)> {
    let garage = shared()?;
    let name = child::named_after_test('-');
    let name = if name.len() < 3 { format!("bucket{name}") } else { name };
    garage.create_bucket(&name);
    Some((garage, name))
}

/// The Garage binary: `MODELREG_GARAGE`, else `garage` on PATH, else where
/// `cargo install` puts it, else where a CI cache keeps it. None when there
/// is none (a `MODELREG_GARAGE` naming nothing is a mistake, and panics).
pub fn binary() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os("MODELREG_GARAGE") {
        let named = PathBuf::from(named);
        assert!(named.is_file(), "MODELREG_GARAGE={} is not a file", named.display());
        return Some(named);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".cargo")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("garage"))
        .chain(cargo_home.map(|c| c.join("bin/garage")))
        .chain(home.map(|h| h.join(".cache/modelreg-ci/garage/bin/garage")))
        .find(|candidate| is_executable(candidate))
}

/// `binary`, for a test that can do nothing without Garage: None (saying
/// so) where this host has none, and a panic under CI, whose .ci/run
/// installs it.
pub fn binary_or_skip() -> Option<PathBuf> {
    let binary = binary();
    if binary.is_none() {
        skip_outside_ci(
            "a Garage node",
            "no garage binary (MODELREG_GARAGE, PATH, $CARGO_HOME/bin, ~/.cache/modelreg-ci/garage/bin); .ci/run installs Garage 2.5.0",
        );
    }
    binary
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `garage -c <dir>/garage.toml` with an environment of our own: Garage
/// reads GARAGE_* variables (an RPC host, secrets, a log format) that would
/// point it elsewhere, and colours its log unless told not to.
fn garage_command(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command.arg("-c").arg(dir.join("garage.toml"));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("GARAGE_")) {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG").env("NO_COLOR", "1");
    command
}

/// Starts `garage server` with its output appended to `<dir>/garage.log`.
fn spawn_server(binary: &Path, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("garage.log")).unwrap();
    let mut command = garage_command(binary, dir);
    command.arg("server").stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
    // SIGKILL: see `stop`.
    child::spawn_for_life(command, libc::SIGKILL).unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}
