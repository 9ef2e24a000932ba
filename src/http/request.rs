//! The request a handler sees: path parameters, query, headers, the caller,
//! and capped readers for JSON and multipart bodies.

use std::io::Read;

use serde_json::Value;

use super::multipart::{self, Multipart};
use crate::registry::{Error, Principal, Result};

pub struct Request {
    pub(super) inner: tiny_http::Request,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) params: Vec<(&'static str, String)>,
    pub(super) principal: Option<Principal>,
    pub(super) json_limit: u64,
    pub(super) upload_limit: u64,
    pub(super) base_url: String,
}

impl Request {
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A `{name}` segment of the route's pattern.
    pub fn param(&self, name: &str) -> &str {
        let value = self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        // Asking for a name the route's pattern lacks is a typo in a handler.
        debug_assert!(value.is_some(), "the route for {} has no {{{name}}}", self.path);
        value.unwrap_or("")
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }

    /// A stored file as the answer to this request, honouring its
    /// If-None-Match, Range and If-Range (see `response::file_response`).
    pub fn file_answer(&self, file: super::response::FileToSend) -> super::response::Response {
        super::response::file_response(self.header("If-None-Match"), self.header("Range"), self.header("If-Range"), file)
    }

    /// The authenticated caller. Routes marked public have none.
    pub fn who(&self) -> Result<&Principal> {
        self.principal.as_ref().ok_or_else(|| Error::Unauthorized("this route needs an API key".into()))
    }

    /// `scheme://host[:port]` as the client addressed us (through a proxy,
    /// see `forwarded`), for absolute URLs in Location headers, pagination
    /// links and signed URLs.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    fn declared_length(&self) -> Option<u64> {
        self.header("Content-Length").and_then(|v| v.trim().parse().ok())
    }

    /// The whole body of a small request (JSON, a form), refusing more than
    /// the JSON limit before or while reading.
    fn small_body(&mut self, kind: &str) -> Result<Vec<u8>> {
        let limit = self.json_limit;
        let too_large = || Error::TooLarge(format!("{kind} bodies are limited to {limit} bytes"));
        if self.declared_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        self.inner
            .as_reader()
            .take(limit + 1)
            .read_to_end(&mut body)
            .map_err(|e| Error::invalid("body", format!("could not be read: {e}")))?;
        if body.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(body)
    }

    /// Reads the whole body as JSON, refusing more than the JSON limit.
    /// An empty body reads as `null`.
    pub fn json_value(&mut self) -> Result<Value> {
        let body = self.small_body("JSON")?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| Error::invalid("body", format!("is not valid JSON: {e}")))
    }

    /// Reads the body as a JSON object (an empty body is an empty object).
    pub fn json_object(&mut self) -> Result<serde_json::Map<String, Value>> {
        match self.json_value()? {
            Value::Object(map) => Ok(map),
            Value::Null => Ok(serde_json::Map::new()),
            _ => Err(Error::invalid("body", "must be a JSON object")),
        }
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    pub fn is_multipart(&self) -> bool {
        self.content_type().is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
    }

    /// The fields of a small form body: `application/x-www-form-urlencoded`
    /// (what the Octomil SDK sends with httpx's `data=`), or else a JSON
    /// object whose values are read as text. Capped like JSON bodies.
    pub fn form_fields(&mut self) -> Result<Vec<(String, String)>> {
        let urlencoded = self
            .content_type()
            .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if !urlencoded {
            let object = self.json_object()?;
            return Ok(object
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| if v.is_null() { String::new() } else { v.to_string() })))
                .collect());
        }
        let body = self.small_body("form")?;
        let text = String::from_utf8(body).map_err(|_| Error::invalid("body", "is not UTF-8"))?;
        Ok(parse_query(text.trim()))
    }

    /// The raw body as a stream, for a PUT of a file. Fails with 413 before
    /// reading anything when the declared length is over the upload limit;
    /// the reader's consumer enforces the limit on what actually arrives.
    pub fn body(&mut self) -> Result<&mut dyn Read> {
        let limit = self.upload_limit;
        if self.declared_length().is_some_and(|n| n > limit) {
            return Err(Error::TooLarge(format!("uploads are limited to {limit} bytes")));
        }
        Ok(self.inner.as_reader())
    }

    /// The largest upload the server accepts, in bytes.
    pub fn upload_limit(&self) -> u64 {
        self.upload_limit
    }

    /// Opens the body as multipart/form-data. Fails with 413 before reading
    /// anything when the declared length is over the upload limit.
    pub fn multipart(&mut self) -> Result<Multipart<&mut dyn Read>> {
        let content_type = self.content_type().unwrap_or("").to_string();
        let boundary = multipart::boundary_from_content_type(&content_type)
            .map_err(|e| Error::invalid("Content-Type", format!("must be multipart/form-data with a boundary ({e})")))?;
        let limit = self.upload_limit;
        if self.declared_length().is_some_and(|n| n > limit) {
            return Err(Error::TooLarge(format!("uploads are limited to {limit} bytes")));
        }
        Ok(Multipart::new(self.inner.as_reader(), &boundary))
    }
}

/// Splits `a=1&b=two%20words` into decoded pairs.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so the
/// result is safe as a path segment or a query name or value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a query component: %XX escapes, and `+` as a space (form
/// encoding).
pub fn percent_decode(s: &str) -> String {
    decode(s, true)
}

/// Decodes a path segment: %XX escapes only (a `+` in a path is a plus).
pub fn percent_decode_path(s: &str) -> String {
    decode(s, false)
}

/// Invalid escapes are kept as they are; invalid UTF-8 is replaced.
fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = &bytes[i + 1..i + 3];
                let digits = hex.iter().all(u8::is_ascii_hexdigit).then(|| std::str::from_utf8(hex).ok()).flatten();
                match digits.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query("a=1&b=two%20words&c=x+y&d&e=%zz&f=%4"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "x y".into()),
                ("d".into(), "".into()),
                ("e".into(), "%zz".into()),
                ("f".into(), "%4".into()),
            ]
        );
        // from_str_radix alone would read "+1" as 1.
        assert_eq!(percent_decode_path("%+1"), "%+1");
        assert_eq!(percent_decode_path("a+b%20c"), "a+b c");
    }
}
