//! The Garage harness itself (tests/common/garage.rs), checked by speaking
//! S3 to the node it starts: the S3 blob store's tests trust that a bucket
//! is fresh, that an outage is an outage, and that a node does not outlive
//! its test binary, so each of those is shown here rather than assumed.
//!
//! There is no S3 client among the test dependencies; curl signs the
//! requests (`--aws-sigv4`, curl 7.75 and later).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::garage::{self, Garage};

/// What came back from an S3 request: the HTTP status and the body.
struct S3Reply {
    status: u16,
    body: Vec<u8>,
}

impl S3Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A path-style S3 request (`/<bucket>/<key>…`) signed with `secret` as the
/// node's key; `body` is sent as the payload. Err is curl's exit code when
/// no HTTP reply came (7: the connection was refused).
fn s3_as(g: &Garage, secret: &str, method: &str, path: &str, body: &[u8]) -> Result<S3Reply, i32> {
    // Garage requires x-amz-content-sha256 and checks the payload against
    // it; curl 7.88 does not send it by itself. It is signed with the rest.
    let mut child = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "%{stderr}%{http_code}", "-X", method, "--aws-sigv4", "aws:amz:garage:s3"])
        .arg("--user")
        .arg(format!("{}:{secret}", g.key_id()))
        .arg("-H")
        .arg(format!("x-amz-content-sha256: {}", common::sha256_hex(body)))
        .args(if body.is_empty() { &[][..] } else { &["-H", "Content-Type: application/octet-stream", "--data-binary", "@-"][..] })
        .arg(format!("{}{path}", g.endpoint()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    // curl reads all of `@-` before it sends, so this cannot block on its output.
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = stderr.trim().parse().unwrap_or_else(|_| panic!("curl's status line: {stderr}"));
    Ok(S3Reply { status, body: out.stdout })
}

/// Whether curl is here to speak S3 (`skip_outside_ci` when not).
fn curl_or_skip() -> bool {
    match Command::new("curl").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!("curl --version: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => {
            common::skip_outside_ci("curl (.ci/run installs it)", &e.to_string());
            false
        }
    }
}

/// `s3_as` with the node's own secret, where any curl failure is one.
fn s3(g: &Garage, method: &str, path: &str, body: &[u8]) -> S3Reply {
    s3_as(g, g.secret(), method, path, body).unwrap_or_else(|code| panic!("curl {method} {path} exited {code}\n{}", g.log_tail()))
}

/// 1 MiB that no compression shrinks, and every byte value at least once.
fn payload(seed: u64) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255).collect();
    common::Generated::new(1 << 20, seed).read_to_end(&mut bytes).unwrap();
    bytes
}

/// S3's bucket naming rules, as AWS documents them (the ones a name made
/// from a test's name could break).
fn assert_valid_bucket_name(name: &str) {
    assert!((3..=63).contains(&name.len()), "{name}: 3 to 63 characters");
    assert!(
        name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
        "{name}: lowercase letters, digits, - and ."
    );
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    assert!(alnum(name.bytes().next()) && alnum(name.bytes().last()), "{name}: begins and ends with a letter or digit");
}

#[test]
fn a_fresh_bucket_gives_back_what_was_put_into_it_byte_for_byte() {
    if !curl_or_skip() {
        return;
    }
    let Some((g, bucket)) = garage::fresh_bucket() else { return };
    assert_valid_bucket_name(&bucket);
    assert_eq!(g.region(), "garage");
    let bytes = payload(1);
    let put = s3(g, "PUT", &format!("/{bucket}/a/blob"), &bytes);
    assert_eq!(put.status, 200, "{}", put.text());
    let got = s3(g, "GET", &format!("/{bucket}/a/blob"), b"");
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(
        got.body == bytes,
        "GET gave {} bytes (sha256 {}), PUT sent {} (sha256 {})",
        got.body.len(),
        common::sha256_hex(&got.body),
        bytes.len(),
        common::sha256_hex(&bytes)
    );
    // A store that checks no signature would pass the rest of this file too.
    let forged = s3_as(g, &"0".repeat(64), "GET", &format!("/{bucket}/a/blob"), b"").unwrap();
    assert_eq!(forged.status, 403, "a wrong secret: {}", forged.text());
}

#[test]
fn fresh_buckets_are_distinct_empty_and_on_one_node() {
    if !curl_or_skip() {
        return;
    }
    let Some((g, first)) = garage::fresh_bucket() else { return };
    let Some((again, second)) = garage::fresh_bucket() else { return };
    assert!(std::ptr::eq(g, again), "one shared node per test binary");
    assert_ne!(first, second);
    assert_valid_bucket_name(&second);
    let put = s3(g, "PUT", &format!("/{first}/only-here"), b"first");
    assert_eq!(put.status, 200, "{}", put.text());
    let listed = s3(g, "GET", &format!("/{first}?list-type=2"), b"");
    assert!(listed.status == 200 && listed.text().contains("<Key>only-here</Key>"), "{}: {}", listed.status, listed.text());
    let other = s3(g, "GET", &format!("/{second}/only-here"), b"");
    assert_eq!(other.status, 404, "{}", other.text());
    let empty = s3(g, "GET", &format!("/{second}?list-type=2"), b"");
    assert!(empty.status == 200 && empty.text().contains("<KeyCount>0</KeyCount>"), "{}: {}", empty.status, empty.text());
}

#[test]
fn stop_refuses_connections_and_restart_brings_the_objects_back() {
    if !curl_or_skip() {
        return;
    }
    // fsync on: the configuration the durability tests will use.
    let Some(mut g) = Garage::start(true) else { return };
    g.create_bucket("outage");
    let bytes = payload(2);
    let put = s3(&g, "PUT", "/outage/before", &bytes);
    assert_eq!(put.status, 200, "{}", put.text());
    let endpoint = g.endpoint().to_string();
    let port = endpoint.rsplit(':').next().unwrap();

    g.stop();
    let refused = TcpStream::connect(format!("127.0.0.1:{port}"));
    assert!(refused.is_err(), "the S3 port still accepts connections after stop()");
    assert_eq!(s3_as(&g, g.secret(), "GET", "/outage/before", b"").err(), Some(7), "curl: connection refused");

    g.restart();
    assert_eq!(g.endpoint(), endpoint);
    let got = s3(&g, "GET", "/outage/before", b"");
    assert!(got.status == 200 && got.body == bytes, "after restart: {} with {} bytes", got.status, got.body.len());
    let put = s3(&g, "PUT", "/outage/after", b"after");
    assert_eq!(put.status, 200, "{}", put.text());

    // Restarting a running node stops it first.
    let before = g.pid();
    g.restart();
    assert_ne!(g.pid(), before);
    let got = s3(&g, "GET", "/outage/after", b"");
    assert!(got.status == 200 && got.body == b"after", "{}: {}", got.status, got.text());
}

/// Where `shared_node_in_a_child_process` reports, and how it ends.
const PROBE_FILE: &str = "S3_HARNESS_PROBE_FILE";
const PROBE_END: &str = "S3_HARNESS_PROBE_END";

/// The other half of the two tests below, in a test binary of its own that
/// they start: it starts the shared node from a thread that then ends (as a
/// test's thread does), shows the node outlived that thread, writes its pid
/// and directory to `PROBE_FILE`, and then returns (`PROBE_END=exit`) or
/// waits to be killed.
#[test]
#[ignore = "a child process of the shared-node lifetime tests, which run it"]
fn shared_node_in_a_child_process() {
    let Some(file) = std::env::var_os(PROBE_FILE) else { return };
    let Some((g, bucket)) = std::thread::spawn(garage::fresh_bucket).join().unwrap() else { return };
    // A node that died with the thread fails here: the CLI finds no one.
    g.create_bucket(&format!("{bucket}-later"));
    std::fs::write(&file, format!("{}\n{}", g.pid(), g.dir().display())).unwrap();
    if std::env::var(PROBE_END).as_deref() != Ok("exit") {
        // Until killed, or until the test that started it is gone.
        // SAFETY: getppid cannot fail.
        let parent = unsafe { libc::getppid() };
        while unsafe { libc::getppid() } == parent {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The child test binary, killed if a test fails before it ends.
struct Probe(std::process::Child);

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this binary's `shared_node_in_a_child_process`, ending as `end`
/// says, and returns it with the pid and directory of its shared node.
fn probe(end: &str) -> (Probe, u32, PathBuf) {
    let report = tempfile::tempdir().unwrap();
    let file = report.path().join("probe");
    let output = report.path().join("output");
    let log = std::fs::File::create(&output).unwrap();
    let mut child = Probe(Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shared_node_in_a_child_process", "--ignored", "--nocapture"])
        .env(PROBE_FILE, &file)
        .env(PROBE_END, end)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap());
    let until = Instant::now() + Duration::from_secs(60);
    let text = loop {
        // Written at once by the child; a partial read lacks its newline.
        match std::fs::read_to_string(&file) {
            Ok(text) if text.contains('\n') => break text,
            _ => {
                if let Some(status) = child.0.try_wait().unwrap() {
                    panic!("the child test binary ended ({status}) before it reported:\n{}", std::fs::read_to_string(&output).unwrap());
                }
                assert!(Instant::now() < until, "the child test binary reported no shared node within 60 s");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (pid, dir) = text.split_once('\n').unwrap();
    (child, pid.parse().unwrap(), PathBuf::from(dir))
}

/// Whether `pid` is a process that has not ended (a zombie has: where PID 1
/// does not reap, an orphan's zombie stays).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])))
}

fn is_garage(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "garage"))
}

#[test]
fn the_shared_node_dies_with_a_killed_test_binary() {
    if garage::binary_or_skip().is_none() {
        return;
    }
    // Orphaned by the kill, Garage would go to PID 1, which in some
    // containers never reaps it; as its subreaper this test reaps it, and
    // learns how it ended. (No other test here leaves an orphan.)
    // SAFETY: a process attribute, no memory involved.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
    let (mut child, pid, dir) = probe("kill");
    assert!(alive(pid) && is_garage(pid), "{pid} is not a running garage");
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    // SAFETY: waits for our own (adopted) child.
    while unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) } != pid as libc::pid_t {
        if Instant::now() >= until {
            // SAFETY: as above; not leaving it running for ever.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, &mut status, 0);
            }
            panic!("garage {pid} outlived its SIGKILLed test binary by 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "garage ended with wait status {status:#x}, not by PR_SET_PDEATHSIG's SIGKILL"
    );
    // Nothing ran at exit to delete it.
    assert!(dir.join("garage.toml").is_file(), "{}", dir.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_shared_node_and_its_directory_go_when_the_test_binary_exits() {
    if garage::binary_or_skip().is_none() {
        return;
    }
    let (mut child, pid, dir) = probe("exit");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "the child test binary: {status}");
    if alive(pid) {
        // SAFETY: a signal to the garage the child reported, not left running.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        panic!("garage {pid} outlived its test binary");
    }
    assert!(!dir.exists(), "{} outlived its test binary", dir.display());
}
