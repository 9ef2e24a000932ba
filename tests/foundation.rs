//! The foundation as a client sees it: health, auth, routing errors, body
//! limits, the transport's hardening, file responses, multipart edge cases,
//! graceful shutdown, and the verify/gc/keys commands.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{files_under, hash_stream, multipart_body, sha256_hex, Generated, Part, Server, BOUNDARY};
use serde_json::{json, Value};

fn create_model(server: &Server) -> String {
    let reply = server.post_json("/api/v1/models", &json!({"framework": "pytorch"}));
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["id"].as_str().unwrap().to_string()
}

fn upload(server: &Server, model: &str, bytes: &[u8]) -> Value {
    let reply = server.post_multipart(
        &format!("/api/v1/models/{model}/versions/upload"),
        &[Part::File { name: "file", filename: "model.pt", bytes }],
    );
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

fn blob_files(server: &Server) -> Vec<std::path::PathBuf> {
    files_under(&server.data_dir().join("blobs/sha256"))
}

fn temp_files(server: &Server) -> Vec<std::path::PathBuf> {
    files_under(&server.data_dir().join("blobs/tmp"))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn healthz_answers_without_a_key() {
    let server = Server::start();
    let reply = server.request("GET", "/healthz", &[("Authorization", "")], None);
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn missing_unknown_and_foreign_scheme_keys_get_401_with_a_json_body() {
    let server = Server::start();
    for auth in ["", "Bearer nope", "Basic YWRtaW46YWRtaW4="] {
        let reply = server.request("GET", "/api/v1/models", &[("Authorization", auth)], None);
        assert_eq!(reply.status, 401, "{auth:?}");
        assert_eq!(reply.header("Content-Type"), Some("application/json"));
        assert_eq!(reply.json()["error"], "unauthorized");
    }
    // DataRobot's client sends `Token`; it works like Bearer.
    let token = format!("Token {}", server.key);
    assert_eq!(server.request("GET", "/api/v1/models", &[("Authorization", &token)], None).status, 200);
}

#[test]
fn keys_are_created_listed_and_revoked_from_the_cli_while_the_server_runs() {
    let server = Server::start();
    let out = server.cli(&["users", "add", "carol"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = server.cli(&["--json", "keys", "create", "--user", "carol", "--label", "laptop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bearer = format!("Bearer {}", key["secret"].as_str().unwrap());
    assert_eq!(server.request("GET", "/api/v1/models", &[("Authorization", &bearer)], None).status, 200);

    let listed = server.cli(&["keys", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("carol") && listed.contains("laptop"), "{listed}");
    assert!(!listed.contains(key["secret"].as_str().unwrap()), "key list must not show secrets");

    let out = server.cli(&["keys", "revoke", key["id"].as_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(server.request("GET", "/api/v1/models", &[("Authorization", &bearer)], None).status, 401);
}

#[test]
fn init_prints_where_the_key_is_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN).arg("--data-dir").arg(dir.path()).arg("init").output().unwrap();
    assert!(out.status.success());
    let key_file = dir.path().join("admin.key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains(&key_file.display().to_string()), "{printed}");
    assert!(!printed.contains(key.trim()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    // A second init changes nothing.
    let again = std::process::Command::new(common::BIN).arg("--data-dir").arg(dir.path()).arg("init").output().unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
}

#[test]
fn unknown_routes_get_404_and_wrong_methods_405_with_allow() {
    let server = Server::start();
    let reply = server.get("/no/such/route");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not_found");

    for method in ["PUT", "TRACE", "QUERY"] {
        // Raw, because HTTP client libraries refuse some of these methods.
        let raw = format!("{method} /api/v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", server.key);
        let answer = server.raw(raw.as_bytes(), Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 405"), "{method}: {answer}");
        assert!(answer.contains("Allow: GET, HEAD, POST"), "{answer}");
        assert!(answer.contains("\"error\":\"method_not_allowed\""), "{answer}");
    }
}

#[test]
fn oversized_json_gets_413() {
    let server = Server::start_with(&["--max-json-bytes", "1000"]);
    let big = json!({"description": "x".repeat(5000)});
    let reply = server.post_json("/api/v1/models", &big);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"], "payload_too_large");
    // Chunked bodies have no declared length: the cap applies while reading.
    let body = big.to_string();
    let raw = format!(
        "POST /api/v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        server.key,
        body.len()
    );
    let answer = server.raw(raw.as_bytes(), Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[test]
fn a_huge_declared_content_length_is_refused_and_the_server_lives_on() {
    let server = Server::start();
    for auth in [format!("Authorization: Bearer {}\r\n", server.key), String::new()] {
        let raw = format!(
            "POST /api/v1/models HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 100000000000000\r\n\r\n{{"
        );
        let answer = server.raw(raw.as_bytes(), Duration::from_secs(10));
        let expected = if auth.is_empty() { "HTTP/1.1 401" } else { "HTTP/1.1 413" };
        assert!(answer.starts_with(expected), "{answer}");
        assert_eq!(server.get("/healthz").status, 200);
    }
}

#[test]
fn slow_clients_are_cut_off_and_do_not_starve_others() {
    let server = Server::start_with(&["--io-timeout-ms", "300", "--workers", "2"]);
    // More stalled clients than workers.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
            s
        })
        .collect();
    for _ in 0..5 {
        assert_eq!(server.get("/healthz").status, 200);
    }
    for stream in &mut slow {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        // The server closes the connection (possibly after a 408): read ends
        // with EOF rather than our 10 s timeout.
        let started = Instant::now();
        let _ = stream.read_to_end(&mut rest);
        assert!(started.elapsed() < Duration::from_secs(9), "a stalled client was never disconnected");
    }
}

fn download(server: &Server, path: &str, headers: &[(&str, &str)]) -> common::Reply {
    server.request("GET", path, headers, None)
}

#[test]
fn files_support_range_if_none_match_and_head() {
    let server = Server::start();
    let model = create_model(&server);
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    upload(&server, &model, &bytes);
    let path = format!("/api/v1/models/{model}/versions/1/download");

    let whole = download(&server, &path, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, bytes);
    assert_eq!(whole.header("Content-Length"), Some("1000"));
    let etag = whole.header("ETag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&bytes)));

    let part = download(&server, &path, &[("Range", "bytes=10-19")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &bytes[10..20]);
    assert_eq!(part.header("Content-Range"), Some("bytes 10-19/1000"));

    let tail = download(&server, &path, &[("Range", "bytes=-5")]);
    assert_eq!((tail.status, tail.body.as_slice()), (206, &bytes[995..]));

    let beyond = download(&server, &path, &[("Range", "bytes=1000-")]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("Content-Range"), Some("bytes */1000"));

    let cached = download(&server, &path, &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());

    let stale = download(&server, &path, &[("If-None-Match", "\"something-else\"")]);
    assert_eq!(stale.status, 200);

    let head = server.request("HEAD", &path, &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("1000"));
    assert!(head.body.is_empty());
}

/// Sends an HTTP request in small pieces so that multipart boundaries fall
/// across the server's reads, and returns the status line's code.
fn send_in_pieces(server: &Server, path: &str, content_type: &str, body: &[u8], piece: usize) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        server.key,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(piece) {
        stream.write_all(chunk).unwrap();
        stream.flush().unwrap();
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn multipart_with_fields_before_files_boundaries_split_and_crlf_in_content() {
    let server = Server::start();
    let model = create_model(&server);
    // Everything but the full delimiter may appear in content.
    let content = format!("line one\r\n--{}\r\n\r\n--\r\nend\r", &BOUNDARY[..20]).into_bytes();
    let (ct, body) = multipart_body(&[
        Part::Field("description", "fields first"),
        Part::Field("format", "onnx"),
        Part::File { name: "file", filename: "weights.onnx", bytes: &content },
        Part::Field("ignored", "extra field after the file"),
    ]);
    let (status, answer) = send_in_pieces(&server, &format!("/api/v1/models/{model}/versions/upload"), &ct, &body, 7);
    assert_eq!(status, 201, "{answer}");
    let got = download(&server, &format!("/api/v1/models/{model}/versions/1/download"), &[]);
    assert_eq!(got.body, content);
    let detail = server.get(&format!("/api/v1/models/{model}")).json();
    assert_eq!(detail["versions"][0]["format"], "onnx");
    assert_eq!(detail["versions"][0]["description"], "fields first");
}

#[test]
fn multipart_zero_byte_file() {
    let server = Server::start();
    let model = create_model(&server);
    let v = upload(&server, &model, b"");
    assert_eq!(v["model_size_bytes"], 0);
    assert_eq!(v["model_hash"], format!("sha256:{}", sha256_hex(b"")));
    let got = download(&server, &format!("/api/v1/models/{model}/versions/1/download"), &[]);
    assert_eq!((got.status, got.body.len()), (200, 0));
}

#[test]
fn truncated_multipart_gets_400_and_leaves_nothing_behind() {
    let server = Server::start();
    let model = create_model(&server);
    let payload = vec![42u8; 200_000];
    let (ct, body) = multipart_body(&[Part::File { name: "file", filename: "m.pt", bytes: &payload }]);
    // Announce the whole body, send half, then close our side.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/v1/models/{model}/versions/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        server.key,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad_request"), "{answer}");
    assert!(blob_files(&server).is_empty(), "a blob was stored from a truncated upload");
    assert!(temp_files(&server).is_empty(), "a temp file was left behind");
    assert_eq!(server.get(&format!("/api/v1/models/{model}")).json()["versions"], json!([]));
}

#[test]
fn multipart_without_a_boundary_gets_400() {
    let server = Server::start();
    let model = create_model(&server);
    let path = format!("/api/v1/models/{model}/versions/upload");
    let no_param = server.request("POST", &path, &[("Content-Type", "multipart/form-data")], Some(b"--x\r\n".to_vec()));
    assert_eq!(no_param.status, 400);
    // A boundary that never occurs in the body.
    let (_, body) = multipart_body(&[Part::File { name: "file", filename: "m.pt", bytes: b"abc" }]);
    let wrong = server.request("POST", &path, &[("Content-Type", "multipart/form-data; boundary=zzz")], Some(body));
    assert_eq!(wrong.status, 400);
    assert!(wrong.json()["message"].as_str().unwrap().contains("multipart"));
    assert!(blob_files(&server).is_empty());
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let mut server = Server::start();
    let model = create_model(&server);
    // half of it is past what the database keeps, so it streams to a temp file
    let payload = vec![7u8; 1_000_000];
    let (ct, body) = multipart_body(&[Part::File { name: "file", filename: "m.pt", bytes: &payload }]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/v1/models/{model}/versions/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.key,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    // The upload is in a worker now: its temp file exists.
    wait_for("the upload to start", || !temp_files(&server).is_empty());
    server.signal("TERM");
    wait_for("the server to see the signal", || server.log.lock().unwrap().contains("stop signal received"));
    stream.write_all(&body[body.len() / 2..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Weights larger than the database keeps (64 KiB), so that they are a
/// file of their own under blobs/.
fn large(tag: &str) -> Vec<u8> {
    tag.as_bytes().iter().copied().cycle().take(100 * 1024).collect()
}

#[test]
fn verify_reports_a_flipped_byte_and_a_missing_blob() {
    let server = Server::start();
    let model = create_model(&server);
    let v = upload(&server, &model, &large("some weights"));
    let ok = server.cli(&["verify"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));

    let sha = v["model_hash"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let blob = server.data_dir().join("blobs/sha256").join(&sha[..2]).join(&sha[2..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    let corrupt = server.cli(&["verify"]);
    assert_eq!(corrupt.status.code(), Some(1));
    let report = String::from_utf8_lossy(&corrupt.stdout);
    assert!(report.contains(&sha) && report.contains("corrupt"), "{report}");

    std::fs::remove_file(&blob).unwrap();
    let missing = server.cli(&["verify"]);
    assert_eq!(missing.status.code(), Some(1));
    let report = String::from_utf8_lossy(&missing.stdout);
    assert!(report.contains(&sha) && report.contains("missing"), "{report}");
}

fn age(path: &std::path::Path, secs: u64) {
    let when = std::time::SystemTime::now() - Duration::from_secs(secs);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

fn blob_path(server: &Server, version: &Value) -> std::path::PathBuf {
    let sha = version["model_hash"].as_str().unwrap().trim_start_matches("sha256:");
    server.data_dir().join("blobs/sha256").join(&sha[..2]).join(&sha[2..])
}

#[test]
fn gc_removes_only_old_unreferenced_blobs_and_stale_temp_files() {
    let server = Server::start();
    let kept_model = create_model(&server);
    let kept = blob_path(&server, &upload(&server, &kept_model, &large("referenced")));
    let doomed_model = create_model(&server);
    let doomed = blob_path(&server, &upload(&server, &doomed_model, &large("unreferenced and old")));
    let young_model = create_model(&server);
    let young = blob_path(&server, &upload(&server, &young_model, &large("unreferenced but young")));
    assert_eq!(server.delete(&format!("/api/v1/models/{doomed_model}")).status, 200);
    assert_eq!(server.delete(&format!("/api/v1/models/{young_model}")).status, 200);
    let stale_temp = server.data_dir().join("blobs/tmp/crashed-upload.part");
    std::fs::write(&stale_temp, vec![0u8; 1234]).unwrap();
    for path in [&kept, &doomed, &stale_temp] {
        age(path, 7200);
    }

    let dry = server.cli(&["gc", "--dry-run", "--grace-secs", "3600"]);
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would remove 1 blob(s) and 1 temp file(s)"));
    assert!(doomed.exists() && stale_temp.exists(), "a dry run removed something");

    let out = server.cli(&["--json", "gc", "--grace-secs", "3600"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blobs"].as_array().unwrap().len(), 1);
    assert_eq!(report["bytes"], large("unreferenced and old").len() + 1234);
    assert!(kept.exists(), "gc removed a referenced blob");
    assert!(young.exists(), "gc removed a blob younger than the grace period");
    assert!(!doomed.exists() && !stale_temp.exists());
    // The referenced version still downloads, and verify is clean.
    assert_eq!(server.get(&format!("/api/v1/models/{kept_model}/versions/1/download")).body, large("referenced"));
    assert!(server.cli(&["verify"]).status.success());
}

#[test]
fn small_blobs_live_in_the_database_and_read_verify_and_gc_like_any_other() {
    let server = Server::start();
    let kept_model = create_model(&server);
    let kept = upload(&server, &kept_model, b"small and referenced");
    let doomed_model = create_model(&server);
    upload(&server, &doomed_model, b"small and unreferenced");
    assert!(blob_files(&server).is_empty(), "a small blob became a file: {:?}", blob_files(&server));
    let download = server.get(&format!("/api/v1/models/{kept_model}/versions/1/download"));
    assert_eq!(download.body, b"small and referenced");
    assert_eq!(download.header("ETag"), Some(format!("\"{}\"", kept["model_hash"].as_str().unwrap().trim_start_matches("sha256:")).as_str()));
    let range = server.request("GET", &format!("/api/v1/models/{kept_model}/versions/1/download"), &[("Range", "bytes=6-8")], None);
    assert_eq!((range.status, range.body.as_slice()), (206, &b"and"[..]));
    let verify = server.cli(&["verify"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("checked 2 blobs"), "{}", String::from_utf8_lossy(&verify.stdout));

    assert_eq!(server.delete(&format!("/api/v1/models/{doomed_model}")).status, 200);
    let young = server.cli(&["--json", "gc", "--grace-secs", "3600"]);
    let report: Value = serde_json::from_slice(&young.stdout).unwrap();
    assert_eq!(report["blobs"].as_array().unwrap().len(), 0, "gc removed a blob younger than the grace period");
    let out = server.cli(&["--json", "gc", "--grace-secs", "0"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["bytes"], "small and unreferenced".len(), "{report}");
    assert_eq!(server.get(&format!("/api/v1/models/{kept_model}/versions/1/download")).body, b"small and referenced");
    let verify = server.cli(&["verify"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("checked 1 blobs"), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn a_multi_gib_stream_round_trips_with_flat_memory() {
    const SIZE: u64 = 2 * 1024 * 1024 * 1024 + 12345;
    let server = Server::start();
    let model = create_model(&server);
    let (expected_len, expected_sha) = hash_stream(Generated { left: SIZE, state: 0x9E3779B97F4A7C15 });
    assert_eq!(expected_len, SIZE);

    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pt\"\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let len = head.len() as u64 + SIZE + tail.len() as u64;
    let mut body = head.as_bytes().chain(Generated { left: SIZE, state: 0x9E3779B97F4A7C15 }).chain(tail.as_bytes());
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let reply = agent
        .post(server.url(&format!("/api/v1/models/{model}/versions/upload")))
        .header("Authorization", server.auth())
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .header("Content-Length", len.to_string())
        .send(ureq::SendBody::from_reader(&mut body))
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    let answer: Value = serde_json::from_reader(reply.into_body().into_reader()).unwrap();
    assert_eq!(answer["model_hash"], format!("sha256:{expected_sha}"));
    assert_eq!(answer["model_size_bytes"], SIZE);

    let download = agent
        .get(server.url(&format!("/api/v1/models/{model}/versions/1/download")))
        .header("Authorization", server.auth())
        .call()
        .unwrap();
    assert_eq!(download.headers().get("Content-Length").unwrap().to_str().unwrap(), SIZE.to_string());
    let (got_len, got_sha) = hash_stream(download.into_body().into_reader());
    assert_eq!((got_len, got_sha), (SIZE, expected_sha));

    let peak_mib = server.peak_rss_kib() / 1024;
    assert!(peak_mib < 64, "server peak RSS {peak_mib} MiB while moving 2 GiB");
}

#[test]
fn rate_limits_are_per_key_whatever_the_header_spelling() {
    let server = Server::start_with(&["--rate-limit", "0.001/2"]);
    let out = server.cli(&["--json", "keys", "create", "--user", "admin", "--label", "second"]);
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = second["secret"].as_str().unwrap().to_string();
    let status = |auth: String| server.request("GET", "/api/v1/models", &[("Authorization", &auth)], None).status;
    // Two requests of burst for the first key, however the header is spelt.
    assert_eq!(status(format!("Bearer {}", server.key)), 200);
    assert_eq!(status(format!("token  {}", server.key)), 200);
    let refused = server.request("GET", "/api/v1/models", &[("Authorization", &format!("bearer {}", server.key))], None);
    assert_eq!(refused.status, 429);
    assert!(refused.header("Retry-After").is_some());
    // The same user's other key has a bucket of its own.
    assert_eq!(status(format!("Bearer {second}")), 200);
}

#[test]
fn errors_the_transport_answers_itself_are_json() {
    let server = Server::start();
    let answer = server.raw(b"NOT A REQUEST LINE\r\n\r\n", Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Content-Type: application/json"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(body["code"], "BAD_REQUEST");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn if_range_needs_a_strong_etag_match() {
    let server = Server::start();
    let model = create_model(&server);
    let bytes = vec![5u8; 100];
    upload(&server, &model, &bytes);
    let path = format!("/api/v1/models/{model}/versions/1/download");
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let strong = download(&server, &path, &[("Range", "bytes=0-9"), ("If-Range", &etag)]);
    assert_eq!((strong.status, strong.body.len()), (206, 10));
    let weak = download(&server, &path, &[("Range", "bytes=0-9"), ("If-Range", &format!("W/{etag}"))]);
    assert_eq!((weak.status, weak.body.len()), (200, 100));
}
