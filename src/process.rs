//! Child processes of long work (pip, DRUM, docker): each runs in a process
//! group of its own, so that killing it kills whatever it started too; each
//! dies with the thread that started it (`PR_SET_PDEATHSIG`), so that a
//! modelreg killed with SIGKILL leaves nothing behind; and every live group is
//! known, so that a stopping server can kill them all (`kill_all`).
//!
//! A process group is not enough for DRUM: gunicorn's worker outlives a
//! killed master. Model servers therefore start under `modelreg contain`
//! (src/compute/contain.rs), which puts them in a PID namespace of their own.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Output lines buffered between a child and whoever logs them.
const LINES_IN_FLIGHT: usize = 1024;
/// A longer line (a model printing a megabyte without a newline) is cut
/// into pieces of this size.
const MAX_LINE: u64 = 64 * 1024;

/// The next line (without its newline), at most `MAX_LINE` bytes; None at
/// the end or on a read error.
fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut buf = Vec::new();
    match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            Some(String::from_utf8_lossy(&buf).into_owned())
        }
    }
}

/// Process groups started here and not yet reaped.
static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<i32>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running child and its process group. Dropping it kills the group.
pub struct Supervised {
    child: Child,
    pgid: i32,
    lines: Option<Receiver<String>>,
    /// The group was killed and the child reaped: the group's number may
    /// belong to someone else now, so it is never signalled again.
    killed: bool,
}

/// Starts `command` in a new process group that dies with this thread. Its
/// stdout and stderr, when piped, are read line by line into `lines()`.
pub fn spawn(command: Command) -> std::io::Result<Supervised> {
    spawn_with(command, true)
}

/// `spawn`, leaving a piped stdout to the caller unless `stdout_lines`.
fn spawn_with(mut command: Command, stdout_lines: bool) -> std::io::Result<Supervised> {
    command.process_group(0).stdin(Stdio::null());
    // SAFETY: prctl is async-signal-safe; nothing is allocated after fork.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pgid = child.id() as i32;
    live().push(pgid);
    let stdout = if stdout_lines { child.stdout.take() } else { None };
    let pipes: Vec<Box<dyn Read + Send>> = [
        stdout.map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    let lines = (!pipes.is_empty()).then(|| {
        // Bounded: a child that writes faster than its output is logged
        // waits on its pipe, rather than filling our memory.
        let (tx, rx) = std::sync::mpsc::sync_channel(LINES_IN_FLIGHT);
        for pipe in pipes {
            let tx = tx.clone();
            // Not joined: a grandchild that keeps a pipe open must not hold
            // up whoever waits for the child.
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                while let Some(line) = read_line(&mut reader) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        rx
    });
    Ok(Supervised { child, pgid, lines, killed: false })
}

impl Supervised {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Output lines (stdout and stderr interleaved) as they are written.
    pub fn lines(&self) -> Option<&Receiver<String>> {
        self.lines.as_ref()
    }

    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Kills the whole group and reaps the child, once; later calls (a
    /// drop after an explicit kill) do nothing.
    pub fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        // SAFETY: a plain kill(2) of a group we created.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        live().retain(|g| *g != self.pgid);
    }

}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills every process group still running (a stopping server).
pub fn kill_all() {
    for pgid in live().drain(..) {
        // SAFETY: a plain kill(2) of groups we created.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// A deadline an operator may override with an environment variable that
/// holds seconds (tests and slow hosts use them); `default` otherwise.
pub fn timeout_from_env(name: &str, default: Duration) -> Duration {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok()).map(Duration::from_secs).unwrap_or(default)
}

/// Why a supervised command did not run to its end.
#[derive(Debug)]
pub enum Stopped {
    /// `should_stop` said so, with this reason (a cancel).
    Asked(String),
    /// The deadline passed.
    TimedOut(Duration),
}

/// How often a supervising loop looks at its stop condition.
pub const POLL: Duration = Duration::from_millis(200);

/// Runs `command` to its end with stdout and stderr piped, handing every
/// output line to `log`. Every `POLL` it asks `should_stop`; a `Some(reason)`
/// kills the group, as does passing `timeout`.
pub fn run_logged(
    mut command: Command,
    timeout: Duration,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<Result<ExitStatus, Stopped>, std::io::Error> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = spawn(command)?;
    let lines = child.lines.take().expect("piped output");
    supervise_to_end(child, &lines, started + timeout, timeout, log, should_stop)
}

/// Runs `command` to its end like `run_logged`, but hands its stdout to
/// `consume` as a byte stream (binary output: a blob, a listing parsed as it
/// comes) on this thread; only stderr lines go to `log`. While `consume`
/// reads, the stop condition and the deadline are still minded (at most
/// every `POLL`): a stop kills the group and the read fails. Once `consume`
/// returns, the pipe is closed, so a child whose output was not read to the
/// end exits rather than blocking.
pub fn run_reading<T>(
    mut command: Command,
    timeout: Duration,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
    consume: &mut dyn FnMut(&mut dyn Read) -> T,
) -> Result<Result<(ExitStatus, T), Stopped>, std::io::Error> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let deadline = started + timeout;
    let mut child = spawn_with(command, false)?;
    let lines = child.lines.take().expect("piped stderr");
    let pipe = child.child.stdout.take().expect("piped stdout");
    let (value, stopped) = {
        let mut reader = Watched { pipe, lines: &lines, log: &mut *log, should_stop: &mut *should_stop, deadline, timeout, checked: started, stopped: None };
        let value = consume(&mut reader);
        (value, reader.stopped.take())
    };
    if let Some(why) = stopped {
        child.kill();
        return Ok(Err(why));
    }
    Ok(supervise_to_end(child, &lines, deadline, timeout, log, should_stop)?.map(|status| (status, value)))
}

/// A child's stdout that minds the stop condition and the deadline while it
/// is read, and passes the child's stderr lines on meanwhile (a child
/// blocked on a full stderr pipe would otherwise never finish its stdout).
struct Watched<'a> {
    pipe: std::process::ChildStdout,
    lines: &'a Receiver<String>,
    log: &'a mut dyn FnMut(&str),
    should_stop: &'a mut dyn FnMut() -> Option<String>,
    deadline: Instant,
    timeout: Duration,
    /// When `should_stop` was last asked (it may cost a query).
    checked: Instant,
    stopped: Option<Stopped>,
}

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                (self.log)(&line);
            }
            if self.stopped.is_none() && self.checked.elapsed() >= POLL {
                self.checked = Instant::now();
                if let Some(reason) = (self.should_stop)() {
                    self.stopped = Some(Stopped::Asked(reason));
                }
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if self.stopped.is_none() && left.is_zero() {
                self.stopped = Some(Stopped::TimedOut(self.timeout));
            }
            if self.stopped.is_some() {
                return Err(std::io::Error::other("the command was stopped"));
            }
            let mut fd = libc::pollfd { fd: self.pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let wait = left.min(POLL).as_millis() as libc::c_int;
            // SAFETY: poll(2) on one descriptor we own, with a valid struct.
            let ready = unsafe { libc::poll(&mut fd, 1, wait) };
            if ready < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready > 0 {
                // Data, or the end (POLLHUP): read answers either at once.
                return self.pipe.read(buf);
            }
        }
    }
}

/// Passes a child's output lines to `log` until its pipes close, then waits
/// for it to exit; all the while a `should_stop` reason or the deadline
/// kills the group.
fn supervise_to_end(
    mut child: Supervised,
    lines: &Receiver<String>,
    deadline: Instant,
    timeout: Duration,
    log: &mut dyn FnMut(&str),
    should_stop: &mut dyn FnMut() -> Option<String>,
) -> Result<Result<ExitStatus, Stopped>, std::io::Error> {
    let stop = |child: &mut Supervised, why: Stopped| {
        child.kill();
        // Whatever was written before the kill still belongs in the log.
        Ok(Err(why))
    };
    loop {
        if let Some(reason) = should_stop() {
            while let Ok(line) = lines.try_recv() {
                log(&line);
            }
            return stop(&mut child, Stopped::Asked(reason));
        }
        if Instant::now() >= deadline {
            return stop(&mut child, Stopped::TimedOut(timeout));
        }
        match lines.recv_timeout(POLL) {
            Ok(line) => log(&line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Output is closed: the child is exiting (or left something behind that
    // closed its pipes). Wait, still minding the stop condition.
    loop {
        if let Some(status) = child.try_wait()? {
            child.kill();
            return Ok(Ok(status));
        }
        if let Some(reason) = should_stop() {
            return stop(&mut child, Stopped::Asked(reason));
        }
        if Instant::now() >= deadline {
            return stop(&mut child, Stopped::TimedOut(timeout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn output_is_logged_and_the_status_returned() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo one; echo two >&2; exit 3"]);
        let mut lines = Vec::new();
        let status = run_logged(command, Duration::from_secs(20), &mut |l| lines.push(l.to_string()), &mut || None).unwrap().unwrap();
        assert_eq!(status.code(), Some(3));
        lines.sort();
        assert_eq!(lines, ["one", "two"]);
    }

    #[test]
    fn a_stop_kills_the_whole_group() {
        let pidfile = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new("sh");
        // A grandchild that would outlive a plain kill of its parent.
        command.arg("-c").arg(format!("sleep 60 & echo $! > {}; echo started; wait", pidfile.path().display()));
        let started = std::cell::Cell::new(false);
        let outcome = run_logged(
            command,
            Duration::from_secs(30),
            &mut |l| started.set(started.get() || l == "started"),
            &mut || started.get().then(|| "cancelled".to_string()),
        )
        .unwrap();
        assert!(matches!(outcome, Err(Stopped::Asked(ref r)) if r == "cancelled"), "{outcome:?}");
        let grandchild: i32 = std::fs::read_to_string(pidfile.path()).unwrap().trim().parse().unwrap();
        // The kill is delivered before kill() returns; reaping by init may lag.
        let gone = (0..100).any(|_| {
            let status = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            let state = status.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("X").to_string();
            if !alive(grandchild) || state == "Z" || state == "X" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
            false
        });
        assert!(gone, "the grandchild {grandchild} survived");
    }

    #[test]
    fn long_lines_are_cut_and_memory_stays_bounded() {
        let mut input = std::io::Cursor::new([vec![b'x'; 200_000], b"\nshort\n".to_vec()].concat());
        let lines: Vec<String> = std::iter::from_fn(|| read_line(&mut input)).collect();
        assert_eq!(lines.iter().map(String::len).collect::<Vec<_>>(), [65536, 65536, 65536, 3392, 5]);
        assert_eq!(lines[4], "short");
    }

    #[test]
    fn binary_output_is_read_as_a_stream_and_stderr_logged() {
        let mut command = Command::new("sh");
        command.args(["-c", "printf 'a\\000b\\377'; echo warning >&2"]);
        let mut lines = Vec::new();
        let (status, bytes) = run_reading(command, Duration::from_secs(20), &mut |l| lines.push(l.to_string()), &mut || None, &mut |r| {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes).map(|_| bytes)
        })
        .unwrap()
        .unwrap();
        assert!(status.success());
        assert_eq!(bytes.unwrap(), b"a\0b\xff");
        assert_eq!(lines, ["warning"]);
    }

    #[test]
    fn a_reader_is_stopped_while_the_child_is_silent() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; sleep 60"]);
        let started = Instant::now();
        let asked = std::cell::Cell::new(0);
        let outcome = run_reading(command, Duration::from_secs(30), &mut |_| {}, &mut || {
            asked.set(asked.get() + 1);
            (asked.get() > 2).then(|| "cancelled".to_string())
        }, &mut |r| {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes)
        })
        .unwrap();
        assert!(matches!(outcome, Err(Stopped::Asked(ref why)) if why == "cancelled"), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // A consumer that stops reading early does not wait for the child.
        let mut command = Command::new("sh");
        command.args(["-c", "yes"]);
        let outcome = run_reading(command, Duration::from_secs(30), &mut |_| {}, &mut || None, &mut |r| {
            let mut first = [0u8; 4];
            r.read_exact(&mut first).map(|_| first)
        })
        .unwrap();
        assert!(matches!(outcome, Ok((_, Ok(ref first))) if first == b"y\ny\n"), "{outcome:?}");
    }

    #[test]
    fn a_deadline_kills_the_command() {
        let mut command = Command::new("sleep");
        command.arg("60");
        let started = Instant::now();
        let outcome = run_logged(command, Duration::from_millis(300), &mut |_| {}, &mut || None).unwrap();
        assert!(matches!(outcome, Err(Stopped::TimedOut(_))));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
