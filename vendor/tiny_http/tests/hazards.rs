//! Tests for the patches listed in PATCHES.md: unread bodies, timeouts, the connection
//! bound, and methods unknown to tiny_http.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{ConnectionLimits, Method, Request, Response, Server};

/// Starts a server whose requests are answered by `handler` on a background thread.
fn start(limits: ConnectionLimits, handler: fn(Request)) -> (Arc<Server>, SocketAddr) {
    let server = Arc::new(Server::http_with_limits("127.0.0.1:0", limits).unwrap());
    let addr = server.server_addr().to_ip().unwrap();
    let inner = server.clone();
    thread::spawn(move || {
        for rq in inner.incoming_requests() {
            handler(rq);
        }
    });
    (server, addr)
}

/// Answers 413 without reading the body.
fn reject_body(rq: Request) {
    rq.respond(Response::from_string("too large").with_status_code(413))
        .unwrap();
}

/// Answers 200 with the method and path, without reading the body.
fn echo_method(rq: Request) {
    let text = format!("{} {}", rq.method(), rq.url());
    let status = match rq.method() {
        Method::Get | Method::Post => 200,
        _ => 405,
    };
    rq.respond(Response::from_string(text).with_status_code(status))
        .unwrap();
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // a reset after the response counts as closed too
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection not closed: {} (read so far: {:?})", e, out),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response that has a `Content-Length`.
fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8];
    while !out.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed: {:?}", out);
        out.push(byte[0]);
    }
    let head = String::from_utf8(out).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("no Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    head + &String::from_utf8(body).unwrap()
}

fn get(addr: SocketAddr) -> String {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    read_to_close(&mut stream)
}

#[test]
fn huge_content_length_is_not_drained() {
    let (_server, addr) = start(ConnectionLimits::default(), reject_body);

    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut stream = connect(addr);
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\n{}Content-Length: 100000000000000\r\n\r\nsome body bytes",
            expect
        );
        stream.write_all(request.as_bytes()).unwrap();
        let started = Instant::now();
        let response = read_to_close(&mut stream);
        assert!(response.starts_with("HTTP/1.1 413"), "{}", response);
        assert!(
            response.contains("\r\nConnection: close\r\n"),
            "{}",
            response
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    // the server is still alive and answering
    assert!(get(addr).starts_with("HTTP/1.1 413"));
}

#[test]
fn huge_content_length_with_dropped_request() {
    // the handler drops the request: tiny_http answers 500 and closes
    let (_server, addr) = start(ConnectionLimits::default(), drop);
    let mut stream = connect(addr);
    stream
        .write_all(b"PUT /x HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nabc")
        .unwrap();
    let response = read_to_close(&mut stream);
    assert!(response.starts_with("HTTP/1.1 500"), "{}", response);
    assert!(
        response.contains("\r\nConnection: close\r\n"),
        "{}",
        response
    );
    assert!(get(addr).starts_with("HTTP/1.1 500"));
}

#[test]
fn small_unread_body_is_discarded_and_connection_kept() {
    let (_server, addr) = start(ConnectionLimits::default(), echo_method);
    let mut stream = connect(addr);

    // 200 kB (streamed, not buffered) that the handler does not read
    let body = vec![b'x'; 200_000];
    let head = format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let first = read_response(&mut stream);
    assert!(first.starts_with("HTTP/1.1 200"), "{}", first);
    assert!(!first.contains("Connection: close"), "{}", first);
    assert!(first.ends_with("POST /a"), "{}", first);

    // the same connection serves the next request
    stream.write_all(b"GET /b HTTP/1.1\r\n\r\n").unwrap();
    let second = read_response(&mut stream);
    assert!(second.ends_with("GET /b"), "{}", second);
}

#[test]
fn unread_chunked_body_closes_the_connection() {
    let (_server, addr) = start(ConnectionLimits::default(), echo_method);
    let mut stream = connect(addr);
    stream
        .write_all(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .unwrap();
    let response = read_to_close(&mut stream);
    assert!(response.starts_with("HTTP/1.1 200"), "{}", response);
    assert!(
        response.contains("\r\nConnection: close\r\n"),
        "{}",
        response
    );
}

#[test]
fn chunked_body_is_read_by_the_handler() {
    fn read_body(mut rq: Request) {
        let mut body = String::new();
        rq.as_reader().read_to_string(&mut body).unwrap();
        rq.respond(Response::from_string(body)).unwrap();
    }
    let (_server, addr) = start(ConnectionLimits::default(), read_body);
    let mut stream = connect(addr);
    stream
        .write_all(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .unwrap();
    let response = read_response(&mut stream);
    assert!(response.ends_with("\r\n\r\nhello world"), "{}", response);
    assert!(!response.contains("Connection: close"), "{}", response);
    // and the connection goes on
    stream
        .write_all(b"POST /d HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
        .unwrap();
    assert!(read_response(&mut stream).ends_with("ok"));
}

#[test]
fn invalid_content_length_is_rejected() {
    let (_server, addr) = start(ConnectionLimits::default(), echo_method);
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
        .unwrap();
    assert!(read_to_close(&mut stream).starts_with("HTTP/1.1 400"));
}

fn short_timeouts() -> ConnectionLimits {
    ConnectionLimits {
        read_timeout: Some(Duration::from_millis(200)),
        write_timeout: Some(Duration::from_millis(200)),
        ..ConnectionLimits::default()
    }
}

#[test]
fn slow_client_is_disconnected() {
    let (_server, addr) = start(short_timeouts(), echo_method);
    let mut stream = connect(addr);
    stream.write_all(b"GET /slow HT").unwrap();
    let started = Instant::now();
    let response = read_to_close(&mut stream);
    let elapsed = started.elapsed();
    assert!(response.starts_with("HTTP/1.1 408"), "{}", response);
    assert!(elapsed >= Duration::from_millis(150), "{:?}", elapsed);
    assert!(elapsed < Duration::from_secs(3), "{:?}", elapsed);
}

/// Short read timeouts and a head deadline well under the trickle below: a
/// client that sends a byte every 50 ms never lets a 200 ms read time out, so
/// only the head deadline can end it while it still sends.
fn short_head_deadline() -> ConnectionLimits {
    ConnectionLimits {
        head_timeout: Some(HEAD_DEADLINE),
        ..short_timeouts()
    }
}

const HEAD_DEADLINE: Duration = Duration::from_millis(500);
/// How long the trickling clients keep sending.
const TRICKLE_FOR: Duration = Duration::from_secs(2);

/// Sends `bytes` one every 50 ms for up to `TRICKLE_FOR`, watching the
/// connection after each: when the server answered or closed it while the
/// client was still sending, how long after the start (None: it did not).
fn trickle(stream: &mut TcpStream, bytes: impl Iterator<Item = u8>) -> Option<Duration> {
    let started = Instant::now();
    stream.set_nonblocking(true).unwrap();
    let mut ended = None;
    for byte in bytes {
        if stream.write_all(&[byte]).is_err() {
            ended = Some(started.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(50));
        match stream.peek(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // an answer, a close or a reset
            _ => {
                ended = Some(started.elapsed());
                break;
            }
        }
        if started.elapsed() > TRICKLE_FOR {
            break;
        }
    }
    stream.set_nonblocking(false).unwrap();
    ended
}

#[test]
fn trickling_client_is_disconnected() {
    // each byte arrives within the read timeout, but the head as a whole does
    // not: the head deadline fires while the client is still sending (the read
    // timeout could only fire once it stops, after TRICKLE_FOR)
    let (_server, addr) = start(short_head_deadline(), echo_method);
    let mut stream = connect(addr);
    let head = b"GET / HTTP/1.1\r\nX-Slow: ".iter().copied().cycle();
    let ended = trickle(&mut stream, head);
    let response = read_to_close(&mut stream);
    let ended = ended.unwrap_or_else(|| panic!("still open after {:?} of trickling: not the head deadline ({:?})", TRICKLE_FOR, response));
    assert!(ended >= HEAD_DEADLINE && ended < HEAD_DEADLINE * 2, "ended after {:?}, head deadline {:?}", ended, HEAD_DEADLINE);
    assert!(response.starts_with("HTTP/1.1 408"), "{}", response);
}

#[test]
fn idle_connection_is_closed_without_response() {
    let (_server, addr) = start(short_timeouts(), echo_method);
    let mut stream = connect(addr);
    let started = Instant::now();
    assert_eq!(read_to_close(&mut stream), "");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn connections_over_the_bound_wait_for_a_free_slot() {
    let limits = ConnectionLimits {
        max_connections: 2,
        ..ConnectionLimits::default()
    };
    let (server, addr) = start(limits, echo_method);

    // two idle connections take both slots
    let first = connect(addr);
    let second = connect(addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.num_connections() < 2 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(10));
    }

    // the third waits in the backlog: no answer yet
    let mut third = connect(addr);
    third
        .write_all(b"GET /third HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = third.read(&mut buf).unwrap_err();
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    assert_eq!(server.num_connections(), 2);

    // a slot frees up: the third is served
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let response = read_to_close(&mut third);
    assert!(response.ends_with("GET /third"), "{}", response);
    drop(second);
}

#[test]
fn unknown_methods_reach_the_handler() {
    let (_server, addr) = start(ConnectionLimits::default(), echo_method);
    for method in ["QUERY", "TRACE", "PROPFIND", "BREW"] {
        let mut stream = connect(addr);
        let request = format!("{} /m HTTP/1.1\r\nConnection: close\r\n\r\n", method);
        stream.write_all(request.as_bytes()).unwrap();
        let response = read_to_close(&mut stream);
        assert!(response.starts_with("HTTP/1.1 405"), "{}", response);
        assert!(
            response.ends_with(&format!("{} /m", method)),
            "{}",
            response
        );
    }
}

#[test]
fn http2_request_line_gets_505_and_releases_the_connection() {
    let limits = ConnectionLimits {
        max_connections: 1,
        ..ConnectionLimits::default()
    };
    let (_server, addr) = start(limits, echo_method);
    let mut stream = connect(addr);
    stream.write_all(b"GET / HTTP/2.0\r\n\r\n").unwrap();
    let response = read_to_close(&mut stream);
    assert!(response.starts_with("HTTP/1.1 505"), "{}", response);
    // the only slot is free again
    assert!(get(addr).ends_with("GET /ping"));
}

#[test]
fn oversized_request_heads_are_rejected() {
    let (_server, addr) = start(ConnectionLimits::default(), echo_method);

    let mut stream = connect(addr);
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100_000));
    let _ = stream.write_all(long_line.as_bytes());
    assert!(read_to_close(&mut stream).starts_with("HTTP/1.1 431"));

    let mut stream = connect(addr);
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-{}: y\r\n", i));
    }
    many.push_str("\r\n");
    let _ = stream.write_all(many.as_bytes());
    assert!(read_to_close(&mut stream).starts_with("HTTP/1.1 431"));

    assert!(get(addr).ends_with("GET /ping"));
}

#[test]
fn unblock_and_recv_timeout() {
    let server = Arc::new(Server::http("127.0.0.1:0").unwrap());

    let started = Instant::now();
    assert!(server
        .recv_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{:?}", elapsed);
    assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);

    let inner = server.clone();
    let waiter = thread::spawn(move || inner.recv().is_err());
    thread::sleep(Duration::from_millis(100));
    server.unblock();
    assert!(waiter.join().unwrap());
}

#[test]
fn zero_timeouts_are_refused() {
    let limits = ConnectionLimits {
        read_timeout: Some(Duration::ZERO),
        ..ConnectionLimits::default()
    };
    assert!(Server::http_with_limits("127.0.0.1:0", limits).is_err());
}

#[test]
fn trickled_small_body_is_cut_off() {
    // a small body is read together with the head, within the head deadline:
    // it fires while the client still sends (see trickling_client_is_disconnected)
    let (_server, addr) = start(short_head_deadline(), echo_method);
    let mut stream = connect(addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 500\r\n\r\n")
        .unwrap();
    let ended = trickle(&mut stream, std::iter::repeat(b'x').take(100));
    let response = read_to_close(&mut stream);
    let ended = ended.unwrap_or_else(|| panic!("still open after {:?} of trickling: not the head deadline ({:?})", TRICKLE_FOR, response));
    assert!(ended >= HEAD_DEADLINE && ended < HEAD_DEADLINE * 2, "ended after {:?}, head deadline {:?}", ended, HEAD_DEADLINE);
    assert!(response.starts_with("HTTP/1.1 408"), "{}", response);
}
