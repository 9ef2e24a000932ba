use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::request::BodyLeftover;
use crate::util::refined_tcp_stream::ReadDeadline;
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// Largest request head (request line and header fields, with line endings) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 100;

/// Size of the buffer through which unread request bodies are discarded.
const DISCARD_BUFFER: usize = 64 * 1024;

/// Empty lines accepted before a request line (RFC 9112 §2.2: some clients send a CRLF after
/// a POST body).
const MAX_LEADING_EMPTY_LINES: usize = 4;

/// When the connection is closed after an error answer, how long and how much of what the
/// client is still sending is read and thrown away first. Closing a socket with unread data
/// makes the kernel send a reset, which can destroy the answer before the client reads it.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 1024 * 1024;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,
    // modelreg patch: the socket file bodies may be sendfile(2)d to, if plain TCP
    sendfile_socket: Option<crate::response::RawSocket>,

    // what the previous request left of its body (see `request::Body`)
    leftover: Arc<BodyLeftover>,

    // time allowed to discard the unread rest of a body (each read on the socket is also
    // limited by the socket's read timeout)
    read_timeout: Option<Duration>,

    // time allowed to receive a whole request head: from the connection's start for its
    // first request, from the head's first byte for later ones
    head_timeout: Option<Duration>,

    // the head deadline, shared with the read half of the socket
    deadline: ReadDeadline,

    // when the connection was accepted; `None` once its first request head has arrived
    accepted: Option<Instant>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    /// the request head exceeds `MAX_HEAD_BYTES` or `MAX_HEADERS`
    HeadTooLarge,
    /// the client started a request but did not send its head in time
    TimedOut,
    /// the request head breaks a framing rule of RFC 9112: 400, and close
    BadRequest(&'static str),
    /// a transfer coding other than `chunked`: 501, and close
    NotImplemented(&'static str),
    ReadIoError(IoError),
}

fn is_timeout(err: &IoError) -> bool {
    // a socket read timeout is `WouldBlock` on Unix, `TimedOut` on Windows
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        read_timeout: Option<Duration>,
        head_timeout: Option<Duration>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        #[cfg(unix)]
        let sendfile_socket = write_socket.sendfile_socket();
        #[cfg(not(unix))]
        let sendfile_socket = None;
        let secure = read_socket.secure();
        let deadline = ReadDeadline::default();
        read_socket.follow_deadline(deadline.clone(), read_timeout);

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            sendfile_socket,
            leftover: Arc::new(BodyLeftover::default()),
            read_timeout,
            head_timeout,
            deadline,
            accepted: Some(Instant::now()),
        }
    }

    /// Answers a request the connection cannot read with `response`, then closes the
    /// connection. The answer gets `Connection: close`; what the client still sends is read
    /// for a moment first (see `LINGER_TIME`).
    fn answer_and_close(
        &mut self,
        response: crate::Response<std::io::Cursor<Vec<u8>>>,
        version: HTTPVersion,
    ) {
        use std::io::Write;
        let mut writer = self.sink.next().unwrap();
        let response = response.with_connection_close();
        let written = response
            .raw_print(&mut writer, version, &[], false, None)
            .and_then(|()| writer.flush());
        drop(writer);
        if written.is_ok() {
            self.linger();
        }
    }

    /// Sends FIN, then reads and throws away what the client still sends, for at most
    /// `LINGER_TIME` and `LINGER_BYTES`, so that its unread bytes do not make the kernel reset
    /// the connection before the client has read the answer.
    fn linger(&mut self) {
        use std::io::Write;
        {
            let mut writer = self.sink.lock();
            if writer.flush().is_err() || writer.get_mut().shutdown_write().is_err() {
                return;
            }
        }
        self.deadline.set(Some(Instant::now() + LINGER_TIME));
        let mut buf = [0u8; 16 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match self.next_header_source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n as u64),
            }
        }
        self.deadline.set(None);
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Waits until the previous request is done with the stream, then reads and throws away
    /// what it left unread of its body. Fails if the connection must be closed instead.
    fn finish_previous_body(&mut self) -> IoResult<()> {
        self.next_header_source.wait_turn();

        if self.leftover.close.load(Ordering::SeqCst) {
            // the answer has been written: let the client read it before the socket closes
            self.linger();
            let msg = "request body left unread";
            return Err(IoError::new(ErrorKind::ConnectionAborted, msg));
        }

        // at most `request::MAX_DISCARD`
        let mut left = self.leftover.discard.swap(0, Ordering::SeqCst);
        if left == 0 {
            return Ok(());
        }

        let started = Instant::now();
        let mut buf = vec![0u8; DISCARD_BUFFER];
        while left > 0 {
            let want = (buf.len() as u64).min(left) as usize;
            let n = self.next_header_source.read(&mut buf[..want])?;
            if n == 0 {
                return Err(IoError::new(ErrorKind::UnexpectedEof, "body cut short"));
            }
            left -= n as u64;
            if self.read_timeout.map_or(false, |t| started.elapsed() > t) {
                return Err(IoError::new(ErrorKind::TimedOut, "body too slow"));
            }
        }
        Ok(())
    }

    /// Reads the next line of a request head from self.next_header_source.
    ///
    /// Lines end with CRLF; a bare LF or a bare CR is a framing error (RFC 9112 §2.2 allows
    /// rejecting them, and a parser in front of us may split lines differently).
    ///
    /// `head_left` is how many more bytes the request head may have, and `started` when its
    /// first byte was received; the head deadline starts then, unless it already runs.
    fn read_next_line(
        &mut self,
        head_left: &mut usize,
        started: &mut Option<Instant>,
    ) -> Result<AsciiString, ReadError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(Ok(b)) => b,
                Some(Err(e)) if started.is_some() && is_timeout(&e) => {
                    return Err(ReadError::TimedOut)
                }
                Some(Err(e)) => return Err(ReadError::ReadIoError(e)),
                None => {
                    let err = IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF");
                    return Err(ReadError::ReadIoError(err));
                }
            };

            if started.is_none() {
                *started = Some(Instant::now());
                if self.deadline.get().is_none() {
                    self.deadline
                        .set(self.head_timeout.map(|t| Instant::now() + t));
                }
            }
            if self.deadline.get().map_or(false, |d| Instant::now() > d) {
                return Err(ReadError::TimedOut);
            }
            if *head_left == 0 {
                return Err(ReadError::HeadTooLarge);
            }
            *head_left -= 1;

            if byte == b'\n' {
                if !prev_byte_was_cr {
                    return Err(ReadError::BadRequest("a line of the request head ends in a bare LF"));
                }
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf)
                    .map_err(|_| ReadError::BadRequest("the request head is not ASCII"));
            }
            if prev_byte_was_cr {
                return Err(ReadError::BadRequest("the request head has a bare CR"));
            }

            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        self.finish_previous_body()
            .map_err(ReadError::ReadIoError)?;

        let mut head_left = MAX_HEAD_BYTES;
        let mut started = None;
        // the first head is due within `head_timeout` of the connection's start, so that a
        // client that connects and sends nothing holds its slot no longer than that
        self.deadline.set(
            self.accepted
                .take()
                .zip(self.head_timeout)
                .map(|(at, timeout)| at + timeout),
        );

        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let mut line = self.read_next_line(&mut head_left, &mut started)?;
                let mut empty = 0;
                while line.is_empty() && empty < MAX_LEADING_EMPTY_LINES {
                    empty += 1;
                    line = self.read_next_line(&mut head_left, &mut started)?;
                }

                parse_request_line(line.as_str())?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line(&mut head_left, &mut started)?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::HeadTooLarge);
                    }
                    headers.push(parse_header_line(line.as_str()).map_err(ReadError::BadRequest)?);
                }

                headers
            };

            (method, path, version, headers)
        };

        check_framing(&headers, &version)?;

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            // `None` if the peer was already gone when the connection was accepted
            self.remote_addr.as_ref().ok().and_then(|addr| *addr),
            data_source,
            writer,
            self.sendfile_socket,
            self.leftover.clone(),
            // a small body is read with the head, within the same time
            self.deadline.get(),
        );
        // the body (if any) is read at the pace the socket's read timeout allows
        self.deadline.set(None);
        let request = request.map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) if is_timeout(&e) => {
                    ReadError::TimedOut
                }
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::InvalidContentLength => {
                    ReadError::BadRequest("Content-Length must be a decimal number")
                }
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        let rq = match self.read() {
            // after each of these we don't know where the next request would start, so the
            // connection is closed
            Err(ReadError::WrongRequestLine) => {
                let response = transport_error(400, "BAD_REQUEST", "malformed request line");
                self.answer_and_close(response, HTTPVersion(1, 1));
                return None;
            }

            Err(ReadError::WrongHeader(ver)) => {
                let response = transport_error(400, "BAD_REQUEST", "malformed request header");
                self.answer_and_close(response, ver);
                return None;
            }

            Err(ReadError::BadRequest(message)) => {
                let response = transport_error(400, "BAD_REQUEST", message);
                self.answer_and_close(response, HTTPVersion(1, 1));
                return None;
            }

            Err(ReadError::NotImplemented(message)) => {
                let response = transport_error(501, "NOT_IMPLEMENTED", message);
                self.answer_and_close(response, HTTPVersion(1, 1));
                return None;
            }

            Err(ReadError::TimedOut) => {
                // request timeout (an idle connection is closed without a response)
                let writer = self.sink.next().unwrap();
                let response = transport_error(408, "TIMEOUT", "the request was not received in time");
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                return None; // closing the connection
            }

            Err(ReadError::HeadTooLarge) => {
                let response = transport_error(431, "BAD_REQUEST", "the request head is too large");
                self.answer_and_close(response, HTTPVersion(1, 1));
                return None;
            }

            Err(ReadError::ExpectationFailed(ver)) => {
                let writer = self.sink.next().unwrap();
                let response = transport_error(417, "PRECONDITION_FAILED", "unsupported Expect header");
                response.raw_print(writer, ver, &[], true, None).ok();
                return None; // TODO: should be recoverable, but needs handling in case of body
            }

            Err(ReadError::ReadIoError(err)) => {
                log::debug!("Closing client connection: {}", err);
                return None;
            }

            Ok(rq) => rq,
        };

        // checking HTTP version
        if *rq.http_version() > (1, 1) {
            // answered through the request's own writer: a writer taken from `self.sink`
            // would wait for this request's writer to be dropped, forever
            let writer = rq.into_writer();
            let response = transport_error(
                505,
                "NOT_IMPLEMENTED",
                "This server only supports HTTP versions 1.0 and 1.1",
            )
            .with_connection_close();
            response
                .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                .ok();
            return None; // we don't know how the client frames further requests
        }

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // returning the request
        Some(rq)
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
///
/// Exactly `method SP target SP version` (RFC 9112 §3): no other whitespace, no empty part.
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts
        .next()
        .filter(|w| !w.is_empty() && w.bytes().all(is_tchar))
        .and_then(|w| w.parse().ok());
    let path = parts
        .next()
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_graphic()))
        .map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());
    if parts.next().is_some() {
        return Err(ReadError::WrongRequestLine);
    }

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

/// `tchar` of RFC 9110 §5.6.2: what a method or a field name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One field line, `name ":" OWS value OWS` (RFC 9112 §5).
fn parse_header_line(line: &str) -> Result<crate::Header, &'static str> {
    if line.starts_with([' ', '\t']) {
        // RFC 9112 §5.2: obs-fold is rejected (a server may not pass it on as a new field)
        return Err("a header line starts with whitespace (obsolete line folding)");
    }
    let (name, value) = line
        .split_once(':')
        .ok_or("a header line has no colon")?;
    if name.ends_with([' ', '\t']) {
        // RFC 9112 §5.1: MUST be rejected with 400
        return Err("whitespace between a header name and its colon");
    }
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err("a header name has a character that is not allowed");
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("a header value has a control character");
    }
    crate::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .map_err(|_| "a header line is not ASCII")
}

/// The body's framing must be unambiguous (RFC 9112 §6): whatever a proxy in front of us
/// made of the same bytes must be what we make of them, or a request can be smuggled.
fn check_framing(headers: &[crate::Header], version: &HTTPVersion) -> Result<(), ReadError> {
    fn values<'h>(headers: &'h [crate::Header], name: &'static str) -> Vec<&'h str> {
        headers
            .iter()
            .filter(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
            .collect()
    }
    let transfer_encodings = values(headers, "Transfer-Encoding");
    let content_lengths = values(headers, "Content-Length");

    if !transfer_encodings.is_empty() {
        if !content_lengths.is_empty() {
            // §6.1: may be processed and closed, or rejected; rejected
            return Err(ReadError::BadRequest(
                "a request may not have both Content-Length and Transfer-Encoding",
            ));
        }
        if *version < HTTPVersion(1, 1) {
            // §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty
            return Err(ReadError::BadRequest("Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<String> = transfer_encodings
            .iter()
            .flat_map(|v| v.split(','))
            .map(|c| c.trim_matches([' ', '\t']).to_ascii_lowercase())
            .collect();
        let chunked = |c: &String| c == "chunked";
        if codings.iter().any(|c| c.is_empty()) {
            return Err(ReadError::BadRequest("an empty transfer coding"));
        }
        if codings.iter().any(chunked) && !codings.last().map_or(false, chunked) {
            // §6.3: the length cannot be determined
            return Err(ReadError::BadRequest("chunked must be the last transfer coding"));
        }
        if codings.len() != 1 || !chunked(&codings[0]) {
            return Err(ReadError::NotImplemented(
                "chunked is the only transfer coding supported",
            ));
        }
    }

    match content_lengths[..] {
        [] => (),
        // a list ("5, 5") fails the digits check: duplicates are refused, not merged
        [value] => {
            if value.is_empty()
                || !value.bytes().all(|b| b.is_ascii_digit())
                || value.parse::<u64>().is_err()
            {
                return Err(ReadError::BadRequest("Content-Length must be a decimal number"));
            }
        }
        _ => return Err(ReadError::BadRequest("more than one Content-Length")),
    }

    if values(headers, "Host").len() > 1 {
        // RFC 9112 §3.2
        return Err(ReadError::BadRequest("more than one Host header"));
    }
    Ok(())
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
        assert!(super::parse_request_line("GET  /hello HTTP/1.1").is_err());
        assert!(super::parse_request_line("GET /hello HTTP/1.1 x").is_err());
    }

    #[test]
    fn header_lines_follow_rfc_9112() {
        let h = super::parse_header_line("X-A:   b c \t").unwrap();
        assert_eq!(h.value.as_str(), "b c");
        assert!(super::parse_header_line(" X-A: b").is_err());
        assert!(super::parse_header_line("\tX-A: b").is_err());
        assert!(super::parse_header_line("X-A : b").is_err());
        assert!(super::parse_header_line("X A: b").is_err());
        assert!(super::parse_header_line(": b").is_err());
        assert!(super::parse_header_line("X-A: a\u{1}b").is_err());
        assert!(super::parse_header_line("no colon").is_err());
    }

    #[test]
    fn framing_must_be_unambiguous() {
        use super::{check_framing, ReadError};
        use crate::common::HTTPVersion;
        let headers = |lines: &[&str]| -> Vec<crate::Header> {
            lines.iter().map(|l| super::parse_header_line(l).unwrap()).collect()
        };
        let v11 = HTTPVersion(1, 1);
        let bad = |lines: &[&str]| matches!(check_framing(&headers(lines), &v11), Err(ReadError::BadRequest(_)));
        let unsupported =
            |lines: &[&str]| matches!(check_framing(&headers(lines), &v11), Err(ReadError::NotImplemented(_)));
        assert!(check_framing(&headers(&["Content-Length: 10"]), &v11).is_ok());
        assert!(check_framing(&headers(&["Transfer-Encoding: Chunked"]), &v11).is_ok());
        assert!(bad(&["Content-Length: 1", "Transfer-Encoding: chunked"]));
        assert!(bad(&["Content-Length: 1", "Content-Length: 1"]));
        assert!(bad(&["Content-Length: 1, 1"]));
        assert!(bad(&["Content-Length: +1"]));
        assert!(bad(&["Content-Length: 1 0"]));
        assert!(bad(&["Content-Length: 99999999999999999999999"]));
        assert!(bad(&["Transfer-Encoding: chunked, gzip"]));
        assert!(bad(&["Transfer-Encoding: chunked", "Transfer-Encoding: gzip"]));
        assert!(bad(&["Transfer-Encoding: ,chunked"]));
        assert!(bad(&["Host: a", "Host: b"]));
        assert!(unsupported(&["Transfer-Encoding: gzip"]));
        assert!(unsupported(&["Transfer-Encoding: gzip, chunked"]));
        assert!(matches!(
            check_framing(&headers(&["Transfer-Encoding: chunked"]), &HTTPVersion(1, 0)),
            Err(ReadError::BadRequest(_))
        ));
    }
}

/// modelreg patch: errors the transport answers itself carry a JSON body with
/// `Content-Type: application/json`, in a shape every front door's clients
/// accept (`code` is a tRPC code for Paperspace's strict parser; DataRobot's
/// client reads `message`, and needs the exact content type).
pub(crate) fn transport_error(status: u16, code: &str, message: &str) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    let body = format!("{{\"code\":\"{code}\",\"message\":\"{message}\"}}");
    crate::Response::from_data(body.into_bytes())
        .with_status_code(crate::StatusCode(status))
        .with_header(
            "Content-Type: application/json"
                .parse::<crate::Header>()
                .expect("a valid header"),
        )
}
