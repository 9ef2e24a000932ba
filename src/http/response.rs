//! What a handler returns, and file responses with ETag, Range and
//! If-None-Match.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use serde_json::Value;

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// Streamed to the client in chunks; `len` becomes the Content-Length.
    Stream { reader: Box<dyn Read + Send>, len: u64 },
    /// `len` bytes of a stored file from `start`. Sent with sendfile(2) when
    /// the connection is plain TCP and the body is over 64 KiB (no copy
    /// through user space, a fraction of the CPU); otherwise read through a
    /// buffer like a `Stream` (TLS, a Unix socket, small bodies).
    File { file: File, start: u64, len: u64 },
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            // Exactly `application/json`: the DataRobot client only parses
            // error bodies whose Content-Type is that string, no charset.
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Bytes(value.to_string().into_bytes()),
        }
    }

    /// A body that is not JSON (logs, plain text), with its Content-Type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response { status, headers: vec![("Content-Type".into(), content_type.into())], body: Body::Bytes(body) }
    }

    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Body::Empty }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Stream { len, .. } | Body::File { len, .. } => *len,
        }
    }
}

/// A stored file to send: its bytes, size and sha256 (the ETag).
pub struct FileToSend {
    pub file: crate::registry::Blob,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
}

/// Answers a GET or HEAD for a stored file, honouring If-None-Match (304)
/// and a single `bytes=` Range (206, or 416 when unsatisfiable). A request
/// for several ranges gets the whole file, which RFC 9110 allows.
pub fn file_response(if_none_match: Option<&str>, range: Option<&str>, if_range: Option<&str>, f: FileToSend) -> Response {
    let etag = format!("\"{}\"", f.sha256);
    let base = |status| {
        Response::empty(status).with_header("ETag", etag.clone()).with_header("Accept-Ranges", "bytes")
    };
    if let Some(inm) = if_none_match {
        if etag_matches(inm, &f.sha256) {
            return base(304);
        }
    }
    // The store serves the bytes itself (`serve --s3-redirect on`); the
    // client's Range travels with it to the store.
    if let Some(location) = f.file.redirect() {
        return Response::empty(307).with_header("Location", location).with_header("ETag", etag.clone());
    }
    let range = match (range, if_range) {
        // If-Range needs a strong match (RFC 9110 13.1.5); anything else
        // means "the file may have changed: send all of it".
        (Some(_), Some(validator)) if validator.trim() != etag => None,
        (range, _) => range,
    };
    let mut file = f.file;
    let (status, start, len) = match range.map(|r| parse_range(r, f.size)) {
        None | Some(RangeSpec::Whole) => (200, 0, f.size),
        Some(RangeSpec::Unsatisfiable) => {
            return base(416).with_header("Content-Range", format!("bytes */{}", f.size));
        }
        Some(RangeSpec::Part { start, end }) => (206, start, end - start + 1),
    };
    // The fallback reads from the file's position; sendfile uses `start` itself.
    if start > 0 {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            eprintln!("modelreg: seeking in a stored file failed: {e}");
            return Response::empty(500);
        }
    }
    let mut response = base(status).with_header("Content-Type", f.content_type);
    if status == 206 {
        response = response.with_header("Content-Range", format!("bytes {}-{}/{}", start, start + len - 1, f.size));
    }
    response.body = match file.into_local_file() {
        Ok(file) => Body::File { file, start, len },
        Err(blob) => Body::Stream { reader: Box::new(blob.take(len)), len },
    };
    response
}

fn etag_matches(header: &str, sha256: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag == "*" || tag.trim_matches('"') == sha256
    })
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    Whole,
    Unsatisfiable,
    /// Inclusive byte positions.
    Part { start: u64, end: u64 },
}

fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeSpec::Whole };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeSpec::Whole };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeSpec::Unsatisfiable,
            Ok(n) if size == 0 => return if n > 0 { RangeSpec::Unsatisfiable } else { RangeSpec::Whole },
            Ok(n) => Some((size.saturating_sub(n), size - 1)),
            Err(_) => None,
        },
        (false, true) => first.parse::<u64>().ok().map(|s| (s, size.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, e.min(size.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        // A syntactically invalid range is ignored (RFC 9110 14.2).
        None => RangeSpec::Whole,
        Some((start, _)) if start >= size => RangeSpec::Unsatisfiable,
        Some((start, end)) => RangeSpec::Part { start, end },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), RangeSpec::Part { start: 0, end: 4 });
        assert_eq!(parse_range("bytes=5-", 10), RangeSpec::Part { start: 5, end: 9 });
        assert_eq!(parse_range("bytes=-3", 10), RangeSpec::Part { start: 7, end: 9 });
        assert_eq!(parse_range("bytes=-30", 10), RangeSpec::Part { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=8-100", 10), RangeSpec::Part { start: 8, end: 9 });
        assert_eq!(parse_range("bytes=10-", 10), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=4-2", 10), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), RangeSpec::Whole);
        assert_eq!(parse_range("items=0-1", 10), RangeSpec::Whole);
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("W/\"x\", \"abc\"", "abc"));
        assert!(etag_matches("*", "abc"));
        assert!(!etag_matches("\"abd\"", "abc"));
    }
}

/// `Content-Disposition` for a download, keeping only the characters of
/// the name that can neither break the header nor name a path.
pub fn attachment(filename: &str) -> String {
    let safe: String = filename.chars().filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/')).collect();
    format!("attachment; filename=\"{safe}\"")
}
