//! A real PostgreSQL server for the tests of modelreg's PostgreSQL
//! database (`--database postgres://…`): what modelreg must cope with
//! there (a password to authenticate with, a server that goes away and
//! comes back, transactions that conflict) is the server's own behaviour,
//! which no stand-in reproduces.
//!
//! Each cluster is one `postgres` process on a loopback port, with its data
//! directory (from `initdb`), its unix socket and its log in a directory of
//! its own, under `CARGO_TARGET_TMPDIR` where the user it runs as can reach
//! it (on the disk the build uses, where `fsync` means something), else
//! under the system's temporary directory. Most tests need only a database
//! of their own and share one cluster per test binary (`fresh_database`); a
//! test that stops, kills or restarts PostgreSQL starts its own
//! (`Postgres::start`).
//!
//! PostgreSQL refuses to run as root, and CI runs the tests as root: there
//! every program of the cluster runs as the unprivileged system user
//! `modelreg-pg`, created on first use (see `account`). Elsewhere they run
//! as whoever runs the tests.
//!
//! Debian's `postgresql` package is installed by .ci/run; elsewhere a test
//! without PostgreSQL skips through `skip_outside_ci`.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::child::{self, free_ports, listening, random_hex};
use super::skip_outside_ci;

/// How long PostgreSQL may take to accept connections after it is started
/// (or to stop, or a psql to finish): a cold start takes a tenth of a
/// second on an idle machine and crash recovery little more, but a busy CI
/// machine compiles and runs other test binaries meanwhile.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);
/// Whole starts tried before giving up on finding a free port.
const PORT_ATTEMPTS: u32 = 4;
/// What PostgreSQL logs, before it exits, when its port is taken.
const PORT_TAKEN: &str = "Address already in use";
/// The system user the cluster runs as when the tests run as root.
const OS_USER: &str = "modelreg-pg";
/// The cluster's superuser, whose name and password are in every URL.
const ROLE: &str = "modelreg";
/// The database `url` names, created at start.
const DATABASE: &str = "modelreg";
/// Attempts at creating `OS_USER`: a useradd that finds another one
/// holding the password files' lock gives up after a while.
const USERADD_ATTEMPTS: u32 = 10;
/// The longest path under the base directory, which must fit a unix
/// socket's address (107 bytes on Linux): the tempdir's name, the socket
/// directory and the socket's name with the highest port.
const LONGEST_SOCKET: &str = "/postgres-XXXXXX/socket/.s.PGSQL.65535";

/// A running PostgreSQL cluster whose superuser has a password, with one
/// database made at start. Dropping it stops the server and deletes its
/// directory.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    password: String,
    account: Option<Account>,
}

/// The user the cluster's programs run as, when not the current one.
#[derive(Clone, Copy)]
struct Account {
    uid: u32,
    gid: u32,
}

impl Postgres {
    /// A cluster of this test's own (for a test that stops, kills or
    /// restarts it), with PostgreSQL's default durability: a commit waits
    /// for its WAL to reach the disk, as it does where modelreg is
    /// deployed, so that the timing of an outage is a real server's. None
    /// where this host has no PostgreSQL (the test then returns; under CI
    /// this panics instead).
    pub fn start() -> Option<Postgres> {
        let bin = bin_dir_or_skip()?;
        Some(Postgres::start_with(bin, true))
    }

    /// `start` with `fsync` off: nothing waits for the disk. A killed
    /// server loses nothing by it, because a commit still writes its WAL
    /// into the kernel's page cache, which outlives the server; only a
    /// crash of the machine would, which the test would not survive either.
    /// `synchronous_commit` and `full_page_writes` stay on: off, a killed
    /// server would lose its last commits (still in its own memory), or
    /// could leave a page half written. The shared cluster runs so.
    pub fn start_fast() -> Option<Postgres> {
        let bin = bin_dir_or_skip()?;
        Some(Postgres::start_with(bin, false))
    }

    fn start_with(bin: PathBuf, durable: bool) -> Postgres {
        let account = account();
        let dir = tempfile::Builder::new().prefix("postgres-").tempdir_in(base_dir(account)).unwrap();
        let path = dir.path().to_str().expect("a UTF-8 temporary directory");
        // Configuration strings are single-quoted; a quote would need escaping.
        assert!(!path.contains('\''), "{path} cannot be a PostgreSQL configuration string");
        let password = random_hex(16);
        std::fs::write(dir.path().join("password"), &password).unwrap();
        std::fs::create_dir(dir.path().join("socket")).unwrap();
        // Only the cluster's user, and root, may use the unix socket.
        std::fs::set_permissions(dir.path().join("socket"), std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some(account) = account {
            for path in [dir.path(), &dir.path().join("password"), &dir.path().join("socket")] {
                std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid)).unwrap();
            }
        }
        // Password authentication everywhere (`scram-sha-256`, local and
        // TCP): a URL with a password is what modelreg's users will write.
        // UTF-8 and the C locale whatever the host's: sorting and messages
        // do not change with the machine. Nothing is synced: a machine
        // crash during initdb ends the test anyway.
        let mut initdb = pg_command(&bin, "initdb", dir.path(), account);
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", ROLE, "-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"])
            .arg(format!("--pwfile={path}/password"))
            .stdin(Stdio::null());
        let Some(output) = child::output_within(&mut initdb, START_DEADLINE) else {
            panic!("initdb did not finish within {} s", START_DEADLINE.as_secs());
        };
        assert!(
            output.status.success(),
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::remove_file(dir.path().join("password")).unwrap();
        // Loopback only, and a socket of its own rather than the system's
        // /var/run/postgresql, which another cluster uses or nobody may
        // write. The port is given at each start (`-p`).
        let fsync = if durable { "on" } else { "off" };
        let settings = format!(
            "\n# modelreg's test harness (tests/common/postgres.rs)\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{path}/socket'\n\
             fsync = {fsync}\n"
        );
        let conf = dir.path().join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();

        // The port is free when chosen and taken by PostgreSQL a moment
        // later; another process can take it in between.
        let [port] = free_ports();
        let child = spawn_server(&bin, dir.path(), port, account);
        let mut postgres = Postgres { bin, dir, child, port, password, account };
        let mut attempt = 1;
        let mut log_from = 0;
        while !postgres.wait_ready("accept connections", log_from) {
            assert!(attempt < PORT_ATTEMPTS, "PostgreSQL found its port taken {PORT_ATTEMPTS} times in a row:\n{}", postgres.log_tail());
            attempt += 1;
            [postgres.port] = free_ports();
            log_from = postgres.log_len();
            postgres.child = postgres.spawn();
        }
        postgres.create_database(DATABASE);
        postgres
    }

    /// `postgres://modelreg:<password>@127.0.0.1:<port>/modelreg`: the
    /// database made at start, as modelreg's `--database` takes it.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    /// The URL of database `db` of this cluster, as the superuser.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://{ROLE}:{}@127.0.0.1:{}/{db}", self.password, self.port)
    }

    /// The TCP port, the same after a `restart`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's (postmaster's) process id, while it runs.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its data directory (`data`), unix socket (`socket`) and log
    /// (`postgres.log`) are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates database `name` (owned by the superuser) and returns its
    /// URL. A name PostgreSQL refuses, or one that exists, panics.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")));
        self.url_for(name)
    }

    /// Runs `sql` with psql in database `db`, connecting over TCP with the
    /// password as modelreg does, and returns what it printed: one row a
    /// line, columns separated by `|`, without headers, command tags or the
    /// last newline. A failure panics with psql's message and the server's
    /// log.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(&self.url_for(db), sql).unwrap_or_else(|e| panic!("psql in {db} failed: {e}\n{sql}\n{}", self.log_tail()))
    }

    /// psql with `sql` at any `url` (a wrong password, a stopped server…):
    /// Err is what psql said. It never prompts for a password (`-w`), and
    /// stops at the first error. A psql that hangs past the start deadline
    /// panics.
    pub fn try_psql(&self, url: &str, sql: &str) -> Result<String, String> {
        // From a file rather than `-c`: every statement's rows are printed,
        // on any psql version.
        let mut script = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut script, sql.as_bytes()).unwrap();
        std::io::Seek::rewind(&mut script).unwrap();
        let mut command = self.command("psql");
        command.args(["-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-f", "-", "-d", url]).stdin(script);
        let Some(output) = child::output_within(&mut command, START_DEADLINE) else {
            panic!("psql did not finish within {} s:\n{sql}\n{}", START_DEADLINE.as_secs(), self.log_tail());
        };
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim_end_matches('\n').to_string())
        } else {
            Err(format!("{} ({})", String::from_utf8_lossy(&output.stderr).trim_end(), output.status))
        }
    }

    /// Stops the server as an operator's fast shutdown does (SIGINT): open
    /// connections are cut and their transactions rolled back, and a
    /// checkpoint is written. Waits until it has exited, so that its port
    /// refuses connections when this returns. Nothing when it is not
    /// running.
    pub fn stop(&mut self) {
        assert!(self.end(libc::SIGINT), "PostgreSQL did not stop within {} s (killed):\n{}", START_DEADLINE.as_secs(), self.log_tail());
    }

    /// Kills the server and all its processes at once (SIGKILL) and waits
    /// for them: a crash, from which `restart` recovers with the WAL.
    /// Nothing committed is lost, with `fsync` or without: the writes are
    /// in the kernel's page cache, which outlives the processes.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Each backend leads a process group of its own and notices its
        // postmaster's death in its own time; until the last has gone (and
        // detached from the shared memory), a new postmaster refuses the
        // data directory.
        let until = Instant::now() + START_DEADLINE;
        loop {
            let left = processes(self.dir());
            if left.is_empty() {
                return;
            }
            for pid in left {
                // SAFETY: a signal to a process of this cluster, found by its directory.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            assert!(Instant::now() < until, "processes of the killed PostgreSQL stayed for {} s", START_DEADLINE.as_secs());
            std::thread::sleep(POLL);
        }
    }

    /// Starts the server again (stopping it first if it runs) on the same
    /// port, data and password, and waits until it accepts connections.
    /// Between a stop and a restart another process may hold the port for
    /// a while (a client's outgoing connection takes ports from the same
    /// range); it is tried again until the start deadline.
    pub fn restart(&mut self) {
        self.stop();
        let until = Instant::now() + START_DEADLINE;
        loop {
            let log_from = self.log_len();
            self.child = self.spawn();
            if self.wait_ready("accept connections again", log_from) {
                return;
            }
            assert!(Instant::now() < until, "PostgreSQL's port stayed taken for {} s:\n{}", START_DEADLINE.as_secs(), self.log_tail());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines PostgreSQL logged, for a failure message.
    pub fn log_tail(&self) -> String {
        child::log_tail(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn log_len(&self) -> u64 {
        child::log_len(&self.log_path())
    }

    /// Whether PostgreSQL logged a taken port since byte `from` of its log.
    fn port_taken_since(&self, from: u64) -> bool {
        child::logged_since(&self.log_path(), from, PORT_TAKEN)
    }

    fn command(&self, program: &str) -> Command {
        pg_command(&self.bin, program, self.dir.path(), self.account)
    }

    fn spawn(&self) -> Child {
        spawn_server(&self.bin, self.dir.path(), self.port, self.account)
    }

    /// Waits until the server accepts connections; false when it exited
    /// because its port turned out to be another process's (looking at the
    /// log from byte `log_from`). Another exit or the deadline panics with
    /// the log.
    fn wait_ready(&mut self, what: &str, log_from: u64) -> bool {
        let until = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if self.port_taken_since(log_from) {
                    return false;
                }
                panic!("PostgreSQL exited ({status}) before it would {what}:\n{}", self.log_tail());
            }
            if self.ready() {
                return true;
            }
            assert!(Instant::now() < until, "PostgreSQL did not {what} within {} s:\n{}", START_DEADLINE.as_secs(), self.log_tail());
            std::thread::sleep(POLL);
        }
    }

    /// Ready in the server's own words rather than whoever answers on the
    /// port (pg_isready would say yes for another cluster there): its
    /// postmaster.pid names this process and says `ready` (PostgreSQL 10
    /// and later write it once they accept connections), and the process
    /// listens on the port itself.
    fn ready(&self) -> bool {
        let pid = self.child.id();
        let lock = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).unwrap_or_default();
        let lines: Vec<&str> = lock.lines().collect();
        lines.first() == Some(&pid.to_string().as_str())
            && lines.get(7).is_some_and(|status| status.trim() == "ready")
            && listening(pid, &[self.port]) == 1
    }

    /// Sends `signal` unless it has ended, and waits for it; false when it
    /// was still running after the deadline (it is then killed). Never
    /// panics: `Drop` uses it.
    fn end(&mut self, signal: libc::c_int) -> bool {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return true;
        }
        // SAFETY: our own child, not reaped (try_wait said it runs).
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        let until = Instant::now() + START_DEADLINE;
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(POLL);
        }
        true
    }
}

impl Drop for Postgres {
    /// An immediate shutdown (SIGQUIT): its data is deleted next, so the
    /// checkpoint of a fast one would only cost time.
    fn drop(&mut self) {
        self.end(libc::SIGQUIT);
    }
}

/// The processes of the cluster in `dir` (a `Postgres::dir`), found by
/// their working directory: every PostgreSQL process works in its data
/// directory, whatever its parent.
pub fn processes(dir: &Path) -> Vec<u32> {
    let data = dir.join("data");
    let data = data.canonicalize().unwrap_or(data);
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data))
        .collect()
}

/// The cluster that tests needing only a database share, started by the
/// first of them (`start_fast`), or None where this host has no
/// PostgreSQL. It runs until the test binary exits: an exit handler shuts
/// it down and deletes its directory, and PR_SET_PDEATHSIG does the first
/// if the binary is killed.
pub fn shared() -> Option<&'static Postgres> {
    static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
    let bin = bin_dir_or_skip()?;
    Some(child::start_shared(&SHARED, "PostgreSQL", move || Postgres::start_with(bin, false), |postgres| {
        // An immediate shutdown, as its death signal (see `spawn_server`).
        child::end_at_exit(postgres.pid(), libc::SIGQUIT, postgres.dir().to_path_buf());
    }))
}

/// A new, empty database on the shared cluster, named after the test (for
/// reading PostgreSQL's log), and its URL; None where this host has no
/// PostgreSQL.
pub fn fresh_database() -> Option<(&'static Postgres, String)> {
    let postgres = shared()?;
    // PostgreSQL cuts names at 63 bytes; the number must survive (50 + the number)
    let name = child::named_after_test('_');
    let url = postgres.create_database(&name);
    Some((postgres, url))
}

/// The directory of PostgreSQL's programs (`postgres`, `initdb`, `psql`):
/// `MODELREG_PG_BIN`, else what `pg_config --bindir` says, else the newest
/// /usr/lib/postgresql/<version>/bin (Debian's layout, where PATH has at
/// most wrappers), else where a `postgres` on PATH really is. None when
/// none has all three (a `MODELREG_PG_BIN` without them is a mistake, and
/// panics).
pub fn bin_dir() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(find_bin_dir).clone()
}

fn find_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| ["postgres", "initdb", "psql"].iter().all(|p| is_executable(&dir.join(p)));
    if let Some(named) = std::env::var_os("MODELREG_PG_BIN") {
        let named = PathBuf::from(named);
        assert!(complete(&named), "MODELREG_PG_BIN={} lacks postgres, initdb or psql", named.display());
        return Some(named);
    }
    // libpq's development package has pg_config without the server.
    let pg_config = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output().ok();
    let configured = pg_config.filter(|o| o.status.success()).map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut debian: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.split('.').map(|n| n.parse().ok()).collect::<Option<Vec<u32>>>()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    debian.sort();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .map(|dir| dir.join("postgres"))
        .filter(|p| is_executable(p))
        .flat_map(|p| [p.canonicalize().ok().and_then(|p| Some(p.parent()?.to_path_buf())), p.parent().map(Path::to_path_buf)])
        .flatten();
    configured.into_iter().chain(debian.into_iter().rev().map(|(_, bin)| bin)).chain(on_path).find(|dir| complete(dir))
}

/// `bin_dir`, for a test that can do nothing without PostgreSQL: None
/// (saying so) where this host has none, and a panic under CI, whose
/// .ci/run installs it.
pub fn bin_dir_or_skip() -> Option<PathBuf> {
    let bin = bin_dir();
    if bin.is_none() {
        skip_outside_ci(
            "a PostgreSQL server",
            "no directory with postgres, initdb and psql (MODELREG_PG_BIN, pg_config --bindir, /usr/lib/postgresql/*/bin, PATH); \
             .ci/run installs Debian's postgresql",
        );
    }
    bin
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `<bin>/<program>` as the cluster's user, working in `dir`, with an
/// environment of our own: libpq and the server read PG* variables (a host,
/// a password, options, SSL settings) that would point them elsewhere, and
/// psql reads `~/.pgpass` and `~/.psqlrc`, so HOME is the cluster's
/// directory, where there are none. LC_ALL=C keeps messages in English for
/// the tests that read them.
fn pg_command(bin: &Path, program: &str, dir: &Path, account: Option<Account>) -> Command {
    let mut command = Command::new(bin.join(program));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("PG")) {
            command.env_remove(name);
        }
    }
    command.env("HOME", dir).env("LC_ALL", "C").current_dir(dir);
    if let Some(account) = account {
        // Set by the child itself between fork and exec, and with no
        // supplementary groups (std drops root's), so the pid we hold is
        // PostgreSQL's own: runuser or su would stay between as its parent
        // (for a PAM session), and our SIGINT would reach them instead.
        command.uid(account.uid).gid(account.gid);
    }
    command
}

/// Starts `postgres` on `port` with its output appended to
/// `<dir>/postgres.log`. Its death signal is SIGQUIT, PostgreSQL's
/// immediate shutdown: it ends its backends and removes its shared memory
/// segment, where a SIGKILL would leave both behind (the System V segment
/// until the machine reboots).
fn spawn_server(bin: &Path, dir: &Path, port: u16, account: Option<Account>) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("postgres.log")).unwrap();
    let mut command = pg_command(bin, "postgres", dir, account);
    command
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    child::spawn_for_life(command, libc::SIGQUIT).unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.join("postgres").display()))
}

/// Where the cluster's directory goes: `CARGO_TARGET_TMPDIR` when the
/// cluster's user can reach it (every directory on the way searchable by
/// others) and a socket there fits its address, else the system's
/// temporary directory.
fn base_dir(account: Option<Account>) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let reachable = account.is_none()
        || target.ancestors().all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if reachable && target.as_os_str().len() + LONGEST_SOCKET.len() <= 107 {
        target.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Who the cluster's programs run as: None (the current user) unless the
/// tests run as root, which PostgreSQL refuses; then `OS_USER`, created
/// once for the machine. Two test binaries may both find it missing and
/// both run useradd: useradd serialises them with its lock on the password
/// files, and the later one finds the user made (exit 9) or gives up on the
/// lock; either way the user is looked up again, and made again if need be.
fn account() -> Option<Account> {
    static ACCOUNT: OnceLock<Option<Account>> = OnceLock::new();
    *ACCOUNT.get_or_init(|| {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let mut said = String::new();
        for _ in 0..USERADD_ATTEMPTS {
            if let Some(account) = lookup(OS_USER) {
                return Some(account);
            }
            // A system account: no home, no login, a group of its own.
            let useradd = ["/usr/sbin/useradd", "/sbin/useradd"].into_iter().find(|p| is_executable(Path::new(p))).unwrap_or("useradd");
            let output = Command::new(useradd)
                .args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
                .args(["--comment", "modelreg test PostgreSQL clusters", OS_USER])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {useradd} ({e}); PostgreSQL refuses to run as root (.ci/run installs Debian's passwd)"));
            // 0: made; 9: made by another meanwhile.
            if !matches!(output.status.code(), Some(0 | 9)) {
                said = String::from_utf8_lossy(&output.stderr).into_owned();
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Some(lookup(OS_USER).unwrap_or_else(|| panic!("useradd did not make {OS_USER} in {USERADD_ATTEMPTS} attempts: {said}")))
    })
}

/// The uid and primary gid of user `name` (getpwnam_r: the rest of the
/// test binary runs on other threads).
fn lookup(name: &str) -> Option<Account> {
    let name = CString::new(name).unwrap();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a plain C struct, filled in by getpwnam_r.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is to memory of ours that outlives the call.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    (rc == 0 && !found.is_null()).then_some(Account { uid: entry.pw_uid, gid: entry.pw_gid })
}
