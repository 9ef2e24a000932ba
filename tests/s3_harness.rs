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
use std::process::{Command, Stdio};
use std::time::Duration;

use common::child;
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

/// The other half of the two tests below, in a test binary of its own that
/// they start (`child::probe`): it starts the shared node from a thread
/// that then ends (as a test's thread does), shows the node outlived that
/// thread, reports its pid and directory, and then returns or waits to be
/// killed.
#[test]
#[ignore = "a child process of the shared-node lifetime tests, which run it"]
fn shared_node_in_a_child_process() {
    let Some(file) = child::probe_file() else { return };
    let Some((g, bucket)) = std::thread::spawn(garage::fresh_bucket).join().unwrap() else { return };
    // A node that died with the thread fails here: the CLI finds no one.
    g.create_bucket(&format!("{bucket}-later"));
    child::probe_report(&file, g.pid(), g.dir());
}

#[test]
fn the_shared_node_dies_with_a_killed_test_binary() {
    if garage::binary_or_skip().is_none() {
        return;
    }
    // (No other test here leaves an orphan.)
    child::become_subreaper();
    let (mut probe, pid, dir) = child::probe("shared_node_in_a_child_process", "kill");
    assert!(child::alive(pid) && child::program(pid).as_deref() == Some("garage"), "{pid} is not a running garage");
    probe.0.kill().unwrap();
    probe.0.wait().unwrap();
    let Some(status) = child::wait_adopted(pid, Duration::from_secs(10)) else {
        panic!("garage {pid} outlived its SIGKILLed test binary by 10 s");
    };
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
    let (mut probe, pid, dir) = child::probe("shared_node_in_a_child_process", "exit");
    let status = probe.0.wait().unwrap();
    assert!(status.success(), "the child test binary: {status}");
    if child::alive(pid) {
        // SAFETY: a signal to the garage the child reported, not left running.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        panic!("garage {pid} outlived its test binary");
    }
    assert!(!dir.exists(), "{} outlived its test binary", dir.display());
}
