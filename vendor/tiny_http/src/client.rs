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
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// Largest request head (request line and header fields, with line endings) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 100;

/// Size of the buffer through which unread request bodies are discarded.
const DISCARD_BUFFER: usize = 64 * 1024;

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

    // what the previous request left of its body (see `request::Body`)
    leftover: Arc<BodyLeftover>,

    // time allowed to receive a request head once it has started, and to discard the unread
    // rest of a body (each read on the socket is also limited by the socket's read timeout)
    read_timeout: Option<Duration>,
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
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            leftover: Arc::new(BodyLeftover::default()),
            read_timeout,
        }
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

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    ///
    /// `head_left` is how many more bytes the request head may have, and `started` when its
    /// first byte was received: the whole head must arrive within `read_timeout`.
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

            let started = *started.get_or_insert_with(Instant::now);
            if self.read_timeout.map_or(false, |t| started.elapsed() > t) {
                return Err(ReadError::TimedOut);
            }
            if *head_left == 0 {
                return Err(ReadError::HeadTooLarge);
            }
            *head_left -= 1;

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf).map_err(|_| {
                    let err = IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII");
                    ReadError::ReadIoError(err)
                });
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

        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_next_line(&mut head_left, &mut started)?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
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
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

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
            self.leftover.clone(),
            // a small body is read with the head, within the same time
            started
                .zip(self.read_timeout)
                .and_then(|(started, timeout)| started.checked_add(timeout)),
        )
        .map_err(|e| {
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
                    ReadError::WrongHeader(version)
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
            Err(ReadError::WrongRequestLine) => {
                let writer = self.sink.next().unwrap();
                let response = transport_error(400, "BAD_REQUEST", "malformed request line");
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                return None; // we don't know where the next request would start,
                             // se we have to close
            }

            Err(ReadError::WrongHeader(ver)) => {
                let writer = self.sink.next().unwrap();
                let response = transport_error(400, "BAD_REQUEST", "malformed request header");
                response.raw_print(writer, ver, &[], false, None).ok();
                return None; // we don't know where the next request would start,
                             // se we have to close
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
                let writer = self.sink.next().unwrap();
                let response = transport_error(431, "BAD_REQUEST", "the request head is too large");
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
                return None; // closing the connection
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
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
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
    }
}

/// modelreg patch: errors the transport answers itself carry a JSON body with
/// `Content-Type: application/json`, in a shape every front door's clients
/// accept (`code` is a tRPC code for Paperspace's strict parser; DataRobot's
/// client reads `message`, and needs the exact content type).
fn transport_error(status: u16, code: &str, message: &str) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    let body = format!("{{\"code\":\"{code}\",\"message\":\"{message}\"}}");
    crate::Response::from_data(body.into_bytes())
        .with_status_code(crate::StatusCode(status))
        .with_header(
            "Content-Type: application/json"
                .parse::<crate::Header>()
                .expect("a valid header"),
        )
}
