//! What the harnesses of real servers (garage.rs, postgres.rs) share about
//! their child processes. A server a test starts must not outlive the test
//! binary, however it ends: a leftover keeps its port, its memory and its
//! directory, and on CI it keeps the job from finishing. Three things see
//! to it: the death signal a server gets when the binary dies
//! (`spawn_for_life`), an exit handler for the servers a binary shares
//! (`end_at_exit`), and `Drop` for the rest (in each harness).
//!
//! The second half is for the tests of those harnesses (tests/s3_harness.rs,
//! tests/pg_harness.rs): a test of this binary run as a child process
//! (`probe`), which they kill or let exit to see what becomes of its server.

use std::io::{Read, Seek};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the exit handler gives a server to end on its signal before it
/// kills it: a clean end leaves nothing behind (PostgreSQL's shared memory
/// segment), but the binary must exit.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Spawns `command` so that its process gets `death_signal` when this
/// process dies (PR_SET_PDEATHSIG), even by SIGKILL, when no exit handler
/// runs. The spawn happens on a thread that lives as long as the process,
/// because the signal fires when the *thread* that forked the child ends,
/// not the process: spawned from a test's thread, a shared server would die
/// with the first test, and one restarted from a helper thread with it.
///
/// The signal is set in the child after `Command::uid`/`gid` take effect
/// (std runs `pre_exec` closures after switching user): a change of
/// credentials clears it, so set before it would be lost.
pub fn spawn_for_life(mut command: Command, death_signal: libc::c_int) -> std::io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated
    // after fork.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl, and then no signal comes.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        // Never ends: the static holds the sender.
        std::thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .unwrap();
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner.lock().unwrap().send((command, tx)).unwrap();
    rx.recv().unwrap()
}

/// Ends child `pid` with `signal` when this process exits, waits for it
/// (killing it after `EXIT_GRACE`), and deletes `dir`. For the servers a
/// test binary shares: they live in statics, which are never dropped, so
/// without this a server would live until its death signal, and its
/// directory forever.
pub fn end_at_exit(pid: u32, signal: libc::c_int, dir: PathBuf) {
    static ENDS: Mutex<Vec<(libc::pid_t, libc::c_int, PathBuf)>> = Mutex::new(Vec::new());
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    ENDS.lock().unwrap().push((pid as libc::pid_t, signal, dir));
    AT_EXIT.call_once(|| {
        extern "C" fn end_all() {
            // try_lock: a thread that held it when exit began never lets go.
            let Ok(ends) = ENDS.try_lock() else { return };
            for (pid, signal, dir) in ends.iter() {
                // SAFETY: the pids are our own unreaped children's.
                unsafe {
                    libc::kill(*pid, *signal);
                    let until = Instant::now() + EXIT_GRACE;
                    while libc::waitpid(*pid, std::ptr::null_mut(), libc::WNOHANG) == 0 {
                        if Instant::now() >= until {
                            libc::kill(*pid, libc::SIGKILL);
                            libc::waitpid(*pid, std::ptr::null_mut(), 0);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registers a function that neither panics nor unwinds.
        unsafe { libc::atexit(end_all) };
    });
}

/// Runs `command` to its end and returns its output, or None (having
/// killed it) when it did not end within `deadline`: a client waits
/// forever for a server that stopped answering mid-call. The output goes
/// to files rather than pipes, so nothing has to read while it runs.
pub fn output_within(command: &mut Command, deadline: Duration) -> Option<Output> {
    let (mut stdout, mut stderr) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child = command.stdout(stdout.try_clone().unwrap()).stderr(stderr.try_clone().unwrap()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait()));
    let Ok(status) = rx.recv_timeout(deadline) else {
        // SAFETY: the waiter has not reaped it (it would have sent).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return None;
    };
    let read = |file: &mut std::fs::File| {
        let mut bytes = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    };
    Some(Output { status: status.unwrap(), stdout: read(&mut stdout), stderr: read(&mut stderr) })
}

/// How many of `ports` process `pid` listens on at 127.0.0.1: the listening
/// sockets of /proc/net/tcp whose inodes are among the process's open
/// files. Its own sockets, not whoever answers on the port: only then is an
/// answer there the server's.
pub fn listening(pid: u32, ports: &[u16]) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    let sockets: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(String::from))
        .collect();
    // The address as the kernel prints it: the network-order bytes read as
    // a native integer.
    let loopback = format!("{:08X}", u32::from_ne_bytes([127, 0, 0, 1]));
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    ports
        .iter()
        .filter(|port| {
            let local = format!("{loopback}:{port:04X}");
            table.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // Field 3 is the state, 0A LISTEN; field 9 the inode.
                fields.len() > 9 && fields[1] == local && fields[3] == "0A" && sockets.iter().any(|s| s == fields[9])
            })
        })
        .count()
}

/// `N` distinct loopback ports that were free a moment ago (held together
/// while chosen, so the kernel gives different ones). Another process can
/// take one before the server binds it: the harnesses try again.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners = [(); N].map(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap().port())
}

/// `bytes` random bytes from the kernel, as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a probe reports, and how it ends (`exit`, or else wait to be killed).
const PROBE_FILE: &str = "MODELREG_PROBE_FILE";
const PROBE_END: &str = "MODELREG_PROBE_END";

/// The child test binary of a lifetime test, killed if the test fails
/// before it ends.
pub struct Probe(pub Child);

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this binary's ignored test `test` in a child process, ending as
/// `end` says (`exit`: return, so that its exit handlers run; `kill`: wait
/// to be killed), and returns it with the pid and directory of the server
/// it reported through `probe_report`.
pub fn probe(test: &str, end: &str) -> (Probe, u32, PathBuf) {
    let report = tempfile::tempdir().unwrap();
    let file = report.path().join("probe");
    let output = report.path().join("output");
    let log = std::fs::File::create(&output).unwrap();
    let mut child = Probe(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--ignored", "--nocapture"])
            .env(PROBE_FILE, &file)
            .env(PROBE_END, end)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let until = Instant::now() + Duration::from_secs(60);
    let text = loop {
        // Written at once by the child; a partial read lacks its newline.
        match std::fs::read_to_string(&file) {
            Ok(text) if text.contains('\n') => break text,
            _ => {
                if let Some(status) = child.0.try_wait().unwrap() {
                    panic!("the child test binary ended ({status}) before it reported:\n{}", std::fs::read_to_string(&output).unwrap());
                }
                assert!(Instant::now() < until, "the child test binary reported no server within 60 s");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (pid, dir) = text.split_once('\n').unwrap();
    (child, pid.parse().unwrap(), PathBuf::from(dir))
}

/// In the child test binary: where `probe` wants the report, or None when
/// `probe` did not start it (a plain `--ignored` run, which has nothing to do).
pub fn probe_file() -> Option<PathBuf> {
    std::env::var_os(PROBE_FILE).map(PathBuf::from)
}

/// In the child test binary: reports the server's `pid` and `dir` to
/// `file`, then returns (`exit`) or waits until killed, or until the test
/// that started it is gone.
pub fn probe_report(file: &Path, pid: u32, dir: &Path) {
    std::fs::write(file, format!("{pid}\n{}", dir.display())).unwrap();
    if std::env::var(PROBE_END).as_deref() != Ok("exit") {
        // SAFETY: getppid cannot fail.
        let parent = unsafe { libc::getppid() };
        while unsafe { libc::getppid() } == parent {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `pid` is a process that has not ended (a zombie has: where PID 1
/// does not reap, an orphan's zombie stays).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])))
}

/// The name of the program `pid` runs (`/proc/<pid>/exe`).
pub fn program(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()?.file_name()?.to_str().map(String::from)
}

/// Makes this process the reaper of its orphaned descendants, so that a
/// test can wait for a server whose test binary it killed. Orphaned, the
/// server would go to PID 1, which in some containers never reaps it; as
/// its subreaper the test reaps it, and learns how it ended.
pub fn become_subreaper() {
    // SAFETY: a process attribute, no memory involved.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
}

/// Waits until `pid`, adopted through `become_subreaper`, ends, and returns
/// its wait status; None when it still ran after `within`, and was then
/// killed (not left running for ever).
pub fn wait_adopted(pid: u32, within: Duration) -> Option<libc::c_int> {
    let until = Instant::now() + within;
    let mut status = 0;
    // SAFETY: waits for our own (adopted) child.
    while unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) } != pid as libc::pid_t {
        if Instant::now() >= until {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(status)
}

/// Starts the server a whole test binary shares, once: the first caller
/// runs `start`, and `started` then registers it (its exit handler). A
/// failed start is remembered, so that every later test fails at once with
/// its reason instead of trying again for 30 s.
pub fn start_shared<T: Send + Sync>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &str,
    start: impl FnOnce() -> T + std::panic::UnwindSafe,
    started: impl FnOnce(&T),
) -> &'static T {
    let shared = cell.get_or_init(|| {
        let result = std::panic::catch_unwind(start).map_err(|panic| {
            panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
        });
        if let Ok(server) = &result {
            started(server);
        }
        result
    });
    match shared {
        Ok(server) => server,
        Err(reason) => panic!("the shared {what} did not start: {reason}"),
    }
}

/// A name for what a test makes on a shared server (a bucket, a database),
/// after the test, for reading the server's log: lower-case letters and
/// digits with `separator` between words, at most 50 of them, then a number
/// of this process's own.
pub fn named_after_test(separator: char) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let test = std::thread::current().name().unwrap_or("test").rsplit("::").next().unwrap_or("test").to_string();
    let mut name = String::new();
    for c in test.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { separator };
        if !(c == separator && (name.is_empty() || name.ends_with(separator))) {
            name.push(c);
        }
    }
    name.truncate(50);
    format!("{}{separator}{}", name.trim_end_matches(separator), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The last 40 lines of a server's log file, for a failure message.
pub fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!("--- last lines of {} ---\n{tail}", path.display())
}

/// How long a log file is now: where to look from for what comes next.
pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether `text` was logged to `path` since byte `from`.
pub fn logged_since(path: &Path, from: u64, text: &str) -> bool {
    let mut log = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(std::io::SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_end(&mut log);
        }
    }
    String::from_utf8_lossy(&log).contains(text)
}
