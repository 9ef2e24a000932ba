//! Issue 11: hostile and slow clients. Every test speaks raw HTTP over real
//! sockets to the real binary. Slow clients are slow on purpose, against
//! timeouts shortened through serve flags, so that each test stays short.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use common::{multipart_body, Part, Server};
use serde_json::json;

const MODELS: &str = "/api/v1/models";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// What came back on one connection: the bytes, and whether the server closed
/// the connection (rather than `timeout` passing with it still open).
struct Exchange {
    text: String,
    closed: bool,
}

impl Exchange {
    fn responses(&self) -> usize {
        self.text.matches("HTTP/1.1 ").count()
    }

    fn status(&self) -> u16 {
        self.text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

fn read_all(stream: &mut TcpStream, timeout: Duration) -> Exchange {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
            // a reset after the answer still closes the connection
            Err(_) => break true,
        }
    };
    Exchange { text: String::from_utf8_lossy(&out).into_owned(), closed }
}

fn exchange(server: &Server, bytes: &[u8]) -> Exchange {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(bytes).unwrap();
    read_all(&mut stream, Duration::from_secs(10))
}

/// A connection from another loopback address (the whole of 127/8 is local on
/// Linux), to stand for a second client machine.
fn connect_from(source: [u8; 4], to: &str) -> TcpStream {
    let to: SocketAddr = to.parse().unwrap();
    let SocketAddr::V4(to) = to else { panic!("IPv4 expected") };
    // SAFETY: plain socket calls on a descriptor this function owns until it
    // hands it to TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        local.sin_family = libc::AF_INET as libc::sa_family_t;
        local.sin_addr.s_addr = u32::from_ne_bytes(source);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, &local as *const _ as *const libc::sockaddr, len), 0, "bind {source:?}");
        let mut remote: libc::sockaddr_in = std::mem::zeroed();
        remote.sin_family = libc::AF_INET as libc::sa_family_t;
        remote.sin_port = to.port().to_be();
        remote.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
        let rc = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// One GET with the admin key on a fresh connection; the status, or None if
/// no full answer came within `timeout`.
fn get_on_fresh(server: &Server, stream: Option<TcpStream>, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = stream.unwrap_or_else(|| TcpStream::connect(&server.addr).unwrap());
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", server.key);
    stream.write_all(head.as_bytes()).ok()?;
    let got = read_all(&mut stream, timeout);
    (got.closed && got.responses() == 1).then(|| got.status())
}

fn new_model(server: &Server) -> String {
    let reply = server.post_json(MODELS, &json!({"framework": "pytorch"}));
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["id"].as_str().unwrap().to_string()
}

/// An Octomil upload of `size` bytes whose head and first `first` body bytes
/// are sent; the caller sends the rest (see `Upload::send`).
struct Upload {
    stream: TcpStream,
    body: Vec<u8>,
    sent: usize,
}

/// A first piece of an upload past the 64 KiB the database keeps: the
/// upload then streams into a temp file of its own, which tests wait for.
const PAST_INLINE: usize = 80 * 1024;

impl Upload {
    fn start(server: &Server, model: &str, size: usize, first: usize) -> Upload {
        let file: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let (content_type, body) = multipart_body(&[Part::File { name: "file", filename: "m.pt", bytes: &file }]);
        let head = format!(
            "POST {MODELS}/{model}/versions/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            server.key,
            body.len()
        );
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut upload = Upload { stream, body, sent: 0 };
        upload.send(first);
        upload
    }

    fn send(&mut self, n: usize) {
        let end = self.sent.saturating_add(n).min(self.body.len());
        let _ = self.stream.write_all(&self.body[self.sent..end]);
        self.sent = end;
    }

    fn finish(mut self) -> Exchange {
        self.send(usize::MAX);
        read_all(&mut self.stream, Duration::from_secs(10))
    }
}

fn log_of(server: &Server) -> String {
    server.log.lock().unwrap().clone()
}

/// Polls `check` until it holds or `within` passes.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// 1. CL + TE, and transfer codings
// ---------------------------------------------------------------------------

#[test]
fn content_length_with_transfer_encoding_is_rejected_and_closed() {
    let server = Server::start();
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let body = format!("0\r\n\r\n{smuggled}");
    let request = format!(
        "POST {MODELS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        server.key
    );
    let got = exchange(&server, request.as_bytes());
    assert_eq!(got.status(), 400, "{}", got.text);
    assert_eq!(got.responses(), 1, "the leftover ran as a second request: {}", got.text);
    assert!(got.closed, "the connection must be closed");
    assert!(got.text.contains("Content-Length and Transfer-Encoding"), "{}", got.text);
    // the server is fine, and never saw the smuggled request
    assert_eq!(server.get("/healthz").status, 200);
    assert!(!log_of(&server).contains("/smuggled"), "{}", log_of(&server));
}

#[test]
fn transfer_codings_other_than_chunked_are_refused_and_closed() {
    let server = Server::start();
    let cases = [
        ("Transfer-Encoding: gzip", 501),
        ("Transfer-Encoding: gzip, chunked", 501),
        ("Transfer-Encoding: chunked, gzip", 400),
        ("Transfer-Encoding: identity", 501),
        ("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip", 400),
    ];
    for (header, status) in cases {
        let request = format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        let got = exchange(&server, request.as_bytes());
        assert_eq!(got.status(), status, "{header}: {}", got.text);
        assert_eq!(got.responses(), 1, "{header}: {}", got.text);
        assert!(got.closed, "{header}: connection left open");
    }
    // HTTP/1.0 has no chunked coding: its framing is faulty (RFC 9112 §6.1)
    let got = exchange(&server, b"POST /api/v1/models HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(got.status(), 400, "{}", got.text);
    assert!(got.closed);
    // chunked alone still works, on a connection that stays usable
    let request = format!(
        "POST {MODELS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n18\r\n{{\"framework\": \"pytorch\"}}\r\n0\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        server.key
    );
    let got = exchange(&server, request.as_bytes());
    assert_eq!(got.status(), 201, "{}", got.text);
    assert_eq!(got.responses(), 2, "{}", got.text);
    assert!(!log_of(&server).contains("/next"));
}

// ---------------------------------------------------------------------------
// 2. Content-Length and head syntax traps
// ---------------------------------------------------------------------------

#[test]
fn framing_traps_are_400_and_close() {
    let server = Server::start();
    // each would let part of a body run as a request, or be read differently
    // by a proxy in front of us
    let tail = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        ("two different lengths", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 37\r\n\r\n{{}}{tail}")),
        ("two equal lengths", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{{}}{tail}")),
        ("a list", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n{{}}{tail}")),
        ("a plus sign", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{{}}{tail}")),
        ("a minus sign", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: -2\r\n\r\n{{}}{tail}")),
        ("a space inside", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n{{}}{tail}")),
        ("hex", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: 0x2\r\n\r\n{{}}{tail}")),
        ("overflow", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{tail}")),
        ("obs-fold", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Content-Length: 37\r\n\r\n{tail}")),
        ("obs-fold with a tab", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\tTransfer-Encoding: chunked\r\n\r\n{tail}")),
        ("a bare LF", format!("POST {MODELS} HTTP/1.1\r\nHost: x\nContent-Length: 37\r\n\r\n{tail}")),
        ("a bare CR", format!("POST {MODELS} HTTP/1.1\r\nHost: x\rContent-Length: 37\r\n\r\n{tail}")),
        ("space before colon", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nContent-Length : 37\r\n\r\n{tail}")),
        ("tab before colon", format!("POST {MODELS} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n{tail}")),
        ("two Host headers", format!("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n{tail}")),
        ("a control character", format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n{tail}")),
        ("extra request-line part", format!("GET /healthz HTTP/1.1 x\r\nHost: x\r\n\r\n{tail}")),
        ("double space in request line", format!("GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n{tail}")),
    ];
    for (name, request) in &cases {
        let got = exchange(&server, request.as_bytes());
        assert_eq!(got.status(), 400, "{name}: {}", got.text);
        assert_eq!(got.responses(), 1, "{name}: {}", got.text);
        assert!(got.closed, "{name}: connection left open");
        assert!(got.text.contains("application/json"), "{name}: the answer has a JSON body: {}", got.text);
    }
    assert!(!log_of(&server).contains("/smuggled"), "{}", log_of(&server));
    // what RFC 9112 allows is still accepted: OWS around a value, and an
    // empty line before the request line
    let got = exchange(&server, b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nX-A:   b  \r\nConnection: close\r\n\r\n");
    assert_eq!(got.status(), 200, "{}", got.text);
}

// ---------------------------------------------------------------------------
// 4. Slowloris
// ---------------------------------------------------------------------------

#[test]
fn a_request_head_must_arrive_within_the_head_timeout() {
    let server = Server::start_with(&["--head-timeout-ms", "800", "--io-timeout-ms", "60000"]);
    // a header line every 200 ms: each read is well within the io timeout,
    // the head as a whole is not
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut lines = 0;
    while stream.write_all(b"X-Slow: 1\r\n").is_ok() && lines < 100 {
        lines += 1;
        std::thread::sleep(Duration::from_millis(200));
        stream.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        let answered = !matches!(stream.peek(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        if answered {
            break;
        }
    }
    let got = read_all(&mut stream, Duration::from_secs(10));
    assert_eq!(got.status(), 408, "{}", got.text);
    assert!(got.closed);
    // cut long before the io timeout (60 s) would have
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());

    // a connection that sends nothing is closed too, without an answer
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    let got = read_all(&mut idle, Duration::from_secs(20));
    assert!(got.closed && got.text.is_empty(), "{}", got.text);

    // a keep-alive connection may idle between requests for the io timeout:
    // the head deadline starts at its next request's first byte
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    std::thread::sleep(Duration::from_millis(1500));
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let got = read_all(&mut stream, Duration::from_secs(10));
    assert!(got.text.contains("HTTP/1.1 200"), "{}", got.text);
}

#[test]
fn a_trusted_proxy_is_not_held_to_the_per_address_limit() {
    // Behind a reverse proxy every client arrives from the proxy's address.
    let server = Server::start_with(&["--max-connections-per-address", "2", "--trusted-proxy", "127.0.0.5"]);
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut s = connect_from([127, 0, 0, 5], &server.addr);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        held.push(s);
    }
    for s in &mut held {
        let _ = s.write_all(b"\r\n");
        let got = read_all(s, Duration::from_millis(2000));
        assert_eq!(got.status(), 200, "{}", got.text);
    }
    // Anyone else still is.
    let mut others: Vec<_> = (0..3).map(|_| connect_from([127, 0, 0, 6], &server.addr)).collect();
    let refused = others.iter_mut().map(|s| read_all(s, Duration::from_millis(300)).closed).filter(|closed| *closed).count();
    assert_eq!(refused, 1, "the third connection from an untrusted address is refused");
}

#[test]
fn a_flood_from_one_address_does_not_lock_out_others() {
    // the flood's heads never finish within the test
    let server = Server::start_with(&[
        "--max-connections",
        "24",
        "--max-connections-per-address",
        "8",
        "--head-timeout-ms",
        "60000",
        "--io-timeout-ms",
        "60000",
    ]);
    let flooder = [127, 0, 0, 3];
    let mut flood = Vec::new();
    for _ in 0..40 {
        let mut s = connect_from(flooder, &server.addr);
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        flood.push(s);
    }
    // the connections over the address's limit are answered 503 and closed
    let mut refused = 0;
    let mut served = Vec::new();
    for mut s in flood {
        let got = read_all(&mut s, Duration::from_millis(300));
        if got.closed {
            assert_eq!(got.status(), 503, "{}", got.text);
            refused += 1;
        } else {
            assert_eq!(got.text, "", "a flood connection within the limit was answered");
            served.push(s);
        }
    }
    assert_eq!(refused, 32, "8 of 40 connections from one address are served");
    // other addresses are answered at once (nothing here waits for the
    // flood's 60 s timeouts)
    for source in [[127, 0, 0, 1], [127, 0, 0, 4]] {
        for _ in 0..10 {
            let stream = connect_from(source, &server.addr);
            let status = get_on_fresh(&server, Some(stream), "/healthz", Duration::from_secs(10));
            assert_eq!(status, Some(200), "from {source:?}");
        }
    }
    // the flood's own connections are still open (not answered, not closed):
    // each takes more of its head and the server neither answers nor closes
    for (i, s) in served.iter_mut().enumerate() {
        s.write_all(b"x").unwrap_or_else(|e| panic!("flood connection {i}: {e}"));
        let got = read_all(s, Duration::from_millis(200));
        assert!(!got.closed && got.text.is_empty(), "flood connection {i} was closed or answered: {:?}", got.text);
    }
    drop(served);
}

// ---------------------------------------------------------------------------
// 3. Slow uploads do not hold threads that short requests need
// ---------------------------------------------------------------------------

#[test]
fn slow_uploads_do_not_freeze_short_requests() {
    // `--workers 2` was the pool every request shared: two crawling uploads
    // (or two clients not reading their downloads) held all of it
    let server = Server::start_with(&["--workers", "2", "--io-timeout-ms", "30000"]);
    let model = new_model(&server);
    let stored = common::multipart_body(&[Part::File { name: "file", filename: "m.pt", bytes: b"weights" }]);
    let reply = server.request(
        "POST",
        &format!("{MODELS}/{model}/versions/upload"),
        &[("Content-Type", &stored.0)],
        Some(stored.1),
    );
    assert_eq!(reply.status, 201);
    // readers that ask for an 8 MiB download and then read nothing: the server
    // is stuck writing to each until its socket buffers drain
    let (big_type, big_body) = common::multipart_body(&[Part::File { name: "file", filename: "big.pt", bytes: &vec![5u8; 8 << 20] }]);
    let reply = server.request("POST", &format!("{MODELS}/{model}/versions/upload"), &[("Content-Type", &big_type)], Some(big_body));
    assert_eq!(reply.status, 201);
    let stalled_readers: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            let head = format!("GET {MODELS}/{model}/versions/2/download HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", server.key);
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    let mut crawling: Vec<Upload> = (0..6).map(|_| Upload::start(&server, &model, 256 * 1024, PAST_INLINE)).collect();
    // once a handler reads an upload's body it has a temp file: wait for the
    // six (on the old pool only two get that far), then keep them crawling at
    // about 1 KiB per 100 ms while short requests are made
    let tmp = server.data_dir().join("blobs/tmp");
    let parts = || std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert!(eventually(Duration::from_secs(3), || parts() >= 6), "{} of 6 uploads reached a handler", parts());
    let paths = ["/healthz".to_string(), MODELS.to_string(), format!("{MODELS}/{model}/versions/1/download")];
    for round in 0..3 {
        for upload in &mut crawling {
            upload.send(1024);
        }
        for path in &paths {
            let status = get_on_fresh(&server, None, path, Duration::from_secs(5));
            assert_eq!(status, Some(200), "round {round}: {path} while uploads crawl");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stalled_readers);
    // the crawling uploads themselves still succeed when they finish
    for upload in &mut crawling {
        upload.send(usize::MAX);
    }
    for upload in crawling {
        let got = upload.finish();
        assert_eq!(got.status(), 201, "{}\n{}", got.text, log_of(&server));
    }
}

// ---------------------------------------------------------------------------
// 5. SIGTERM
// ---------------------------------------------------------------------------

#[test]
fn sigterm_closes_the_listener_and_lets_requests_in_flight_finish() {
    let mut server = Server::start_with(&["--shutdown-grace", "3s", "--io-timeout-ms", "60000"]);
    let model = new_model(&server);
    // one upload that will finish after the signal, one that never will
    let finishing = Upload::start(&server, &model, 256 * 1024, PAST_INLINE);
    let _stalled = Upload::start(&server, &model, 256 * 1024, PAST_INLINE);
    // both are in a handler once each has its temp file
    let tmp = server.data_dir().join("blobs/tmp");
    assert!(eventually(Duration::from_secs(5), || std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) >= 2));
    let signalled = Instant::now();
    server.signal("TERM");
    // the listening socket closes at once: new clients are refused, not left waiting
    assert!(
        eventually(Duration::from_secs(2), || TcpStream::connect(&server.addr).is_err()),
        "the listener still accepts after SIGTERM"
    );
    // the upload in flight finishes, and is told the connection ends
    let got = finishing.finish();
    assert_eq!(got.status(), 201, "{}", got.text);
    assert!(got.text.to_ascii_lowercase().contains("connection: close"), "{}", got.text);
    // the stalled one is cut when the grace runs out, and the exit is clean
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(20), "still running after the grace");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() >= Duration::from_secs(2), "the grace was not given");
    let log = log_of(&server);
    assert!(log.contains("cut off"), "{log}");
}

// ---------------------------------------------------------------------------
// 7. Client-chosen ids
// ---------------------------------------------------------------------------

#[test]
fn a_chosen_environment_id_reveals_nothing_about_other_teams() {
    let server = Server::start();
    let api = "/api/v2/executionEnvironments/";
    let theirs = server.post_json(api, &json!({"name": "secret", "programmingLanguage": "python"}));
    assert_eq!(theirs.status, 201, "{}", String::from_utf8_lossy(&theirs.body));
    let their_id = theirs.json()["id"].as_str().unwrap().to_string();

    assert!(server.cli(&["teams", "add", "others"]).status.success());
    assert!(server.cli(&["users", "add", "boss", "--team", "others", "--admin"]).status.success());
    let out = server.cli(&["keys", "create", "--user", "boss"]);
    let boss = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let auth = format!("Bearer {boss}");
    let post = |id: &str| {
        let body = json!({"name": "mine", "programmingLanguage": "python", "environmentId": id});
        server.request("POST", api, &[("Authorization", &auth), ("Content-Type", "application/json")], Some(body.to_string().into_bytes()))
    };
    let taken = post(&their_id);
    let free = post("65f0c0ffee0000000000abcd");
    // the same answer whether or not another team has the id
    assert_eq!(taken.status, free.status);
    assert_eq!(taken.body, free.body);
    assert_ne!(taken.status, 409);
    assert_ne!(taken.status, 201);
    // and the other team's environment is untouched and still theirs alone
    assert_eq!(server.get(&format!("{api}{their_id}/")).json()["name"], "secret");
    let seen = server.request("GET", &format!("{api}{their_id}/"), &[("Authorization", &auth)], None);
    assert_eq!(seen.status, 404);
    // without a chosen id the admin creates environments as before
    let body = json!({"name": "mine", "programmingLanguage": "python"});
    let made = server.request("POST", api, &[("Authorization", &auth), ("Content-Type", "application/json")], Some(body.to_string().into_bytes()));
    assert_eq!(made.status, 201);
}

// ---------------------------------------------------------------------------
// Streamed zips
// ---------------------------------------------------------------------------

/// Files the server has open under `dir` (an unlinked temp file included).
fn open_files_under(server: &Server, dir: &std::path::Path) -> usize {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with(&prefix))
        .count()
}

#[test]
fn version_zips_stream_without_a_temp_file() {
    let server = Server::start();
    let api = "/api/v2";
    let env = common::datarobot::python_environment(&server);
    let model = common::datarobot::id_of(&common::ok(&server.post_json(&format!("{api}/customModels/"), &common::datarobot::regression()), 201), "id");
    let big: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let files = vec![("custom.py".to_string(), b"def score(data, model, **kw):\n    return data\n".to_vec()), ("weights/model.bin".to_string(), big.clone())];
    let vid = common::datarobot::add_version(&server, &model, &env, &files, &[]);
    // start a download and stop reading after its head: the server is
    // then mid-stream, blocked on a full socket
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!("GET {api}/customModels/{model}/versions/{vid}/download/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", server.key);
    stream.write_all(head.as_bytes()).unwrap();
    let mut first = vec![0u8; 4096];
    stream.read_exact(&mut first).unwrap();
    let text = String::from_utf8_lossy(&first).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let length: u64 = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("a Content-Length");
    // no file under the data directory is open but blobs (a temp zip would be)
    let data = server.data_dir().to_path_buf();
    let open = open_files_under(&server, &data)
        - open_files_under(&server, &data.join("blobs"))
        - open_files_under(&server, &data.join("modelreg.db"))
        - open_files_under(&server, &data.join("serve.lock"));
    assert_eq!(open, 0, "a file other than a blob or the database is open during the download");
    // the rest arrives, as long as announced, and unzips to what was uploaded
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    let mut all = first;
    all.extend_from_slice(&rest);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &all[split..];
    assert_eq!(body.len() as u64, length);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body.to_vec())).unwrap();
    let mut got = Vec::new();
    {
        let mut entry = archive.by_name("weights/model.bin").unwrap();
        assert_eq!(entry.compression(), zip::CompressionMethod::Stored);
        entry.read_to_end(&mut got).unwrap();
    }
    assert!(got == big, "the big file differs");
    let mut code = String::new();
    archive.by_name("custom.py").unwrap().read_to_string(&mut code).unwrap();
    assert!(code.starts_with("def score"));
}

// ---------------------------------------------------------------------------
// Disk full
// ---------------------------------------------------------------------------

/// A server whose data directory is a tmpfs of `size` in a mount namespace of
/// its own (`unshare -rm`), so that its disk can fill up.
struct TinyDisk {
    child: std::process::Child,
    addr: String,
    key: String,
    root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Whether this host lets an unprivileged process mount a tmpfs in a user and
/// mount namespace of its own, asked alone (no server in it), so that a host
/// that refuses is told apart from a server that does not start. Err says why.
fn tmpfs_namespace() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$1\"", "sh"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!("`unshare -rm sh -c 'mount -t tmpfs …'` {}: {}", probe.status, String::from_utf8_lossy(&probe.stderr).trim()))
    }
}

impl TinyDisk {
    /// None (said on the terminal) where the host cannot make the namespace,
    /// outside CI; under CI that fails. A server that does not come up in a
    /// namespace the host can make fails, with what it printed.
    fn start(size: &str) -> Option<TinyDisk> {
        use std::io::BufRead;
        if let Err(reason) = tmpfs_namespace() {
            common::skip_outside_ci("a tmpfs in a user namespace", &reason);
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let script = format!(
            "mount -t tmpfs -o size={size} tmpfs '{d}' && exec '{bin}' serve --bind 127.0.0.1:0 --data-dir '{d}'",
            d = data.display(),
            bin = common::BIN
        );
        let mut child = std::process::Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("unshare ran for the probe but not now");
        let stderr = child.stderr.take().unwrap();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log = printed.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.is_some() {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                }
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                    }
                }
            }
        });
        // Disconnected: the server exited (its stderr closed) before listening
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(why) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "modelreg serve on a tmpfs did not come up ({why:?}, {status}) where the namespace works; it printed:\n{}",
                    printed.lock().unwrap()
                );
            }
        };
        // the server's own view of its data directory, mount included
        let root = std::path::PathBuf::from(format!("/proc/{}/root{}", child.id(), data.display()));
        let key = std::fs::read_to_string(root.join("admin.key")).unwrap().trim().to_string();
        Some(TinyDisk { child, addr, key, root, _dir: dir })
    }

    fn send(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Exchange {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.key,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(body);
        read_all(&mut stream, Duration::from_secs(20))
    }

    fn json_of(got: &Exchange) -> serde_json::Value {
        let body = got.text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {}", got.text))
    }

    fn temp_files(&self) -> usize {
        std::fs::read_dir(self.root.join("blobs/tmp")).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_full_disk_is_507_in_each_dialect_and_leaves_nothing() {
    let Some(disk) = TinyDisk::start("6m") else { return };
    let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();

    // Octomil: an upload larger than the disk
    let made = disk.send("POST", MODELS, "application/json", br#"{"framework": "pytorch"}"#);
    assert_eq!(made.status(), 201, "{}", made.text);
    let model = TinyDisk::json_of(&made)["id"].as_str().unwrap().to_string();
    let (ct, body) = multipart_body(&[Part::File { name: "file", filename: "m.pt", bytes: &big }]);
    let got = disk.send("POST", &format!("{MODELS}/{model}/versions/upload"), &ct, &body);
    assert_eq!(got.status(), 507, "{}", got.text);
    assert_eq!(TinyDisk::json_of(&got)["error"], "insufficient_storage");
    assert_eq!(disk.temp_files(), 0, "a temp file was left behind");

    // DataRobot: a dataset file larger than the disk
    let (ct, body) = multipart_body(&[Part::File { name: "file", filename: "d.csv", bytes: &big }]);
    let got = disk.send("POST", "/api/v2/datasets/fromFile/", &ct, &body);
    assert_eq!(got.status(), 507, "{}", got.text);
    assert!(TinyDisk::json_of(&got)["message"].as_str().unwrap().contains("out of storage"), "{}", got.text);
    assert_eq!(disk.temp_files(), 0, "a temp file was left behind");

    // once space is there again, the next upload is version 1: nothing half-written
    let (ct, body) = multipart_body(&[Part::File { name: "file", filename: "m.pt", bytes: b"small" }]);
    let got = disk.send("POST", &format!("{MODELS}/{model}/versions/upload"), &ct, &body);
    assert_eq!(got.status(), 201, "{}", got.text);
    assert_eq!(TinyDisk::json_of(&got)["version"], 1);

    // Paperspace: fill what is left, so that the database cannot grow
    let filler = disk.root.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let mut status = 0;
    for i in 0..200 {
        let body = json!({"name": format!("m{i}-{}", "x".repeat(200)), "modelType": "Tensorflow", "url": "s3://b/m", "projectId": "x".repeat(2000)}).to_string();
        let got = disk.send("POST", "/v1/models", "application/json", body.as_bytes());
        status = got.status();
        if status != 200 {
            assert_eq!(status, 507, "{}", got.text);
            assert_eq!(TinyDisk::json_of(&got)["code"], "INTERNAL_SERVER_ERROR");
            break;
        }
    }
    assert_eq!(status, 507, "the database never filled up");
}

// ---------------------------------------------------------------------------
// Temp files of dead uploads, and the gc schedule
// ---------------------------------------------------------------------------

#[test]
fn serve_sweeps_temp_files_no_live_upload_owns() {
    // a kill -9 left a temp file behind, minutes old at most
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("blobs/tmp")).unwrap();
    let left = data.path().join("blobs/tmp/0000-dead-at-start.part");
    std::fs::write(&left, vec![1u8; 4096]).unwrap();
    let server = Server::start_in(data, &["--gc-interval", "1s", "--io-timeout-ms", "60000"]);
    assert!(!left.exists(), "swept at start");
    assert!(log_of(&server).contains("removed 1 temp file(s)"), "{}", log_of(&server));

    // while serving: an orphan goes at the next sweep, a live upload's file stays
    let model = new_model(&server);
    let live = Upload::start(&server, &model, 256 * 1024, PAST_INLINE);
    let tmp = server.data_dir().join("blobs/tmp");
    let parts = || -> Vec<std::path::PathBuf> { std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect() };
    assert!(eventually(Duration::from_secs(5), || parts().len() == 1), "the upload has its temp file");
    let live_part = parts().remove(0);
    let orphan = tmp.join("1111-dead-while-serving.part");
    std::fs::write(&orphan, b"orphan").unwrap();
    assert!(eventually(Duration::from_secs(8), || !orphan.exists()), "the orphan was not swept");
    assert!(live_part.exists(), "a live upload's temp file was swept");
    let got = live.finish();
    assert_eq!(got.status(), 201, "{}", got.text);
    // and gc ran on its schedule
    assert!(eventually(Duration::from_secs(8), || log_of(&server).contains("gc removed")), "{}", log_of(&server));
}

#[test]
fn gc_interval_takes_off_and_durations() {
    for bad in ["0", "soon", "5y"] {
        let out = std::process::Command::new(common::BIN).args(["serve", "--gc-interval", bad]).output().unwrap();
        assert!(!out.status.success(), "--gc-interval {bad} was accepted");
    }
    let server = Server::start_with(&["--gc-interval", "off", "--shutdown-grace", "500ms"]);
    assert_eq!(server.get("/healthz").status, 200);
}
