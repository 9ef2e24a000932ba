//! A small blocking HTTP client for `--server`. `models`/`versions` speak the
//! Octomil routes, `machines`/`templates` the Paperspace ones and
//! `custom-models`/`custom-templates`/`environments`/`datasets` the DataRobot
//! ones; each command family uses the dialect whose operations match it one
//! to one.
//!
//! Uploads and downloads stream: a multipart body is read from the files as
//! it is sent (one file open at a time), and a download is handed back as a
//! reader.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::registry::{Error, FIRST_KEY_FILE};

pub struct Remote {
    agent: ureq::Agent,
    base: String,
    token: String,
}

pub struct Download {
    pub reader: Box<dyn Read>,
    pub len: Option<u64>,
    pub sha256: Option<String>,
    /// The file name the source suggests (a bare name, never a path).
    pub file_name: Option<String>,
    /// For a converted format: whether it was verified against the
    /// original (Octomil's `X-Modelreg-Verified`); None for anything else.
    pub verified: Option<bool>,
}

/// One part of a multipart/form-data body.
pub struct FormPart {
    pub name: String,
    pub value: FormValue,
}

pub enum FormValue {
    Text(String),
    /// A file sent from disk as it is read, under this file name.
    File { path: PathBuf, filename: String },
}

impl FormPart {
    pub fn text(name: &str, value: impl Into<String>) -> FormPart {
        FormPart { name: name.into(), value: FormValue::Text(value.into()) }
    }

    pub fn file(name: &str, path: &Path) -> FormPart {
        let filename = path.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_string();
        FormPart { name: name.into(), value: FormValue::File { path: path.to_path_buf(), filename } }
    }
}

/// The client for `--server URL`, with the key from `--token` /
/// `MODELREG_TOKEN`, else the data directory's admin.key.
pub fn connect(data_dir: &Path, url: &str, token: Option<&str>) -> Result<Remote, Error> {
    check_server_url(url)?;
    let token = match token {
        Some(t) => t.to_string(),
        None => std::fs::read_to_string(data_dir.join(FIRST_KEY_FILE))
            .map(|t| t.trim().to_string())
            .map_err(|_| Error::Unauthorized("--server needs --token (or MODELREG_TOKEN)".into()))?,
    };
    Ok(Remote::new(url, &token))
}

/// `--server` must be an http(s) URL. A bare `host:port` is the common
/// slip, and the HTTP library's own complaint ("invalid format") does not
/// say what is wrong, so say it here.
fn check_server_url(url: &str) -> Result<(), Error> {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://")) else {
        return Err(Error::invalid(
            "server",
            format!("{url:?} is not a URL; give the scheme too, as in --server http://{}", url.trim_start_matches('/')),
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(Error::invalid("server", format!("{url:?} names no host; e.g. --server http://127.0.0.1:8420")));
    }
    Ok(())
}

impl Remote {
    /// A model's id from a handle the user typed, its id or its name: the
    /// Octomil route takes either and answers with the id. A UUID is taken
    /// as the id without a round trip.
    pub fn model_id(&self, handle: &str) -> Result<String, Error> {
        if crate::registry::is_uuid(handle) {
            return Ok(handle.to_string());
        }
        let model = self.get_json(&format!("/api/v1/models/{}", enc(handle)))?;
        model["id"].as_str().map(str::to_string).ok_or_else(|| Error::Internal(format!("the server answered no id: {model}")))
    }

    pub fn new(base: &str, token: &str) -> Remote {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Remote { agent, base: base.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn finish(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, Error> {
        let text = self.finish_text(result)?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The body of a 2xx answer as text; any other status is its error.
    fn finish_text(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<String, Error> {
        let mut response = result.map_err(|e| Error::Internal(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Internal(format!("reading the server's answer failed: {e}")))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(status_error(status, &serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Any method, with an optional JSON body; answers the server's JSON
    /// (or `Value::String("")` for an empty answer such as a 204).
    pub fn json_request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let mut builder = ureq::http::Request::builder().method(method).uri(self.url(path)).header("Authorization", self.auth());
        if body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let request = builder
            .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
            .map_err(|e| Error::Internal(format!("cannot build the request: {e}")))?;
        self.finish(self.agent.run(request))
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.json_request("PUT", path, Some(body))
    }

    pub fn patch_json(&self, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        self.json_request("PATCH", path, body)
    }

    /// Sends multipart/form-data with `method` (POST, PUT or PATCH). Files
    /// are read as the body is sent, one at a time, so memory does not grow
    /// with their size or number; `wrap` may wrap the whole body (a progress
    /// bar) given its length.
    pub fn send_form(
        &self,
        method: &str,
        path: &str,
        parts: &[FormPart],
        wrap: impl FnOnce(Box<dyn Read>, u64) -> Box<dyn Read>,
    ) -> Result<Value, Error> {
        let (body, len, boundary) = FormBody::new(parts)?;
        let mut body = wrap(Box::new(body), len);
        let url = self.url(path);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let send = ureq::SendBody::from_reader(&mut body);
        let sent = match method {
            "POST" => self.agent.post(url),
            "PUT" => self.agent.put(url),
            "PATCH" => self.agent.patch(url),
            other => return Err(Error::Internal(format!("multipart bodies are sent with POST, PUT or PATCH, not {other}"))),
        }
        .header("Authorization", self.auth())
        .header("Content-Type", content_type)
        .header("Content-Length", len.to_string())
        .send(send);
        self.finish_upload(sent)
    }

    /// `finish` for a request whose body was streamed from files.
    fn finish_upload(&self, sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, Error> {
        match sent {
            // A server that refuses an upload early (over its size limit, say)
            // answers and closes without reading the rest; all we see is the
            // closed connection.
            Err(ureq::Error::Io(e)) if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) => {
                Err(Error::Internal(format!(
                    "{} closed the connection while the file was being sent ({e}); it may have refused the upload, \
                     for instance because it is larger than the server accepts",
                    self.base
                )))
            }
            // Our own body failed (a file vanished or changed size).
            Err(ureq::Error::Io(e)) if e.kind() != io::ErrorKind::ConnectionRefused => {
                Err(Error::Internal(format!("sending the request to {} failed: {e}", self.base)))
            }
            sent => self.finish(sent),
        }
    }

    /// A DataRobot status (`/api/v2/status/{id}/`) without following its
    /// 303: the status body, and the path it redirects to once the job is
    /// done (the Location without the server's origin).
    pub fn status(&self, path: &str) -> Result<(Value, Option<String>), Error> {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).max_redirects_will_error(false).build().new_agent();
        let mut response = agent
            .get(self.url(path))
            .header("Authorization", self.auth())
            .call()
            .map_err(|e| Error::Internal(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let location = response.headers().get("Location").and_then(|v| v.to_str().ok()).map(|l| {
            let rest = l.strip_prefix("http://").or_else(|| l.strip_prefix("https://")).unwrap_or(l);
            rest.find('/').map_or_else(String::new, |i| rest[i..].to_string())
        });
        let text = response.body_mut().read_to_string().map_err(|e| Error::Internal(format!("reading the server's answer failed: {e}")))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        match status {
            200 => Ok((body, None)),
            303 => Ok((body, location)),
            _ => Err(status_error(status, &body)),
        }
    }

    /// A text answer (a log) as it is.
    pub fn get_text(&self, path: &str) -> Result<String, Error> {
        self.finish_text(self.agent.get(self.url(path)).header("Authorization", self.auth()).call())
    }

    pub fn get_json(&self, path: &str) -> Result<Value, Error> {
        self.finish(self.agent.get(self.url(path)).header("Authorization", self.auth()).call())
    }

    pub fn delete(&self, path: &str) -> Result<Value, Error> {
        self.finish(self.agent.delete(self.url(path)).header("Authorization", self.auth()).call())
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.finish(
            self.agent
                .post(self.url(path))
                .header("Authorization", self.auth())
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )
    }

    /// Posts multipart/form-data with text `fields` and one streamed file.
    pub fn upload(
        &self,
        path: &str,
        fields: &[(&str, String)],
        file_field: &str,
        filename: &str,
        file: &mut dyn Read,
        file_len: u64,
    ) -> Result<Value, Error> {
        let boundary = format!("modelreg-{}", uuid::Uuid::new_v4().simple());
        let mut head = String::new();
        for (name, value) in fields {
            head.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
        }
        let quoted = filename.replace(['"', '\r', '\n'], "_");
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{quoted}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = format!("\r\n--{boundary}--\r\n");
        let len = head.len() as u64 + file_len + tail.len() as u64;
        let mut body = head.as_bytes().chain(file).chain(tail.as_bytes());
        let sent = self
            .agent
            .post(self.url(path))
            .header("Authorization", self.auth())
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .header("Content-Length", len.to_string())
            .send(ureq::SendBody::from_reader(&mut body));
        self.finish_upload(sent)
    }

    pub fn download(&self, path: &str) -> Result<Download, Error> {
        let response = self
            .agent
            .get(self.url(path))
            .header("Authorization", self.auth())
            .call()
            .map_err(|e| Error::Internal(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return self.finish(Ok(response)).and_then(|body| Err(status_error(status, &body)));
        }
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let len = header("Content-Length").and_then(|v| v.parse().ok());
        // Octomil names the sha256; the other dialects' file responses use it
        // as their strong ETag.
        let sha256 = header("X-Model-Hash")
            .map(|h| h.trim_start_matches("sha256:").to_string())
            .or_else(|| header("ETag").and_then(|e| sha256_etag(&e)));
        let file_name = header("Content-Disposition").and_then(|v| disposition_file_name(&v));
        let verified = header(crate::api::octomil::formats::VERIFIED_HEADER).map(|v| v == "true");
        let reader = Box::new(response.into_body().into_reader());
        Ok(Download { reader, len, sha256, file_name, verified })
    }
}

/// The `filename` of a Content-Disposition header, if it is a plain file
/// name: a server must not be able to make the CLI write outside the
/// current directory.
fn disposition_file_name(header: &str) -> Option<String> {
    let value = header.split(';').map(str::trim).find_map(|p| p.strip_prefix("filename="))?;
    let name = value.trim().trim_matches('"');
    // No hidden files either: a server must not be able to drop a
    // `.bashrc` into the current directory.
    let plain = !name.is_empty() && !name.starts_with('.') && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    plain.then(|| name.to_string())
}

/// The sha256 a strong ETag of 64 hex digits carries (`file_response`'s).
fn sha256_etag(etag: &str) -> Option<String> {
    let tag = etag.trim().strip_prefix('"')?.strip_suffix('"')?;
    (tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit())).then(|| tag.to_ascii_lowercase())
}

/// Percent-encodes one path segment or query value (an id from the command
/// line must not add path segments or query parameters).
pub fn enc(s: &str) -> String {
    crate::http::request::percent_encode(s)
}

fn status_error(status: u16, body: &Value) -> Error {
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {status}: {body}"));
    match status {
        // The message already names the field ("name: is required"), as the
        // offline command's error does.
        400 | 422 => Error::Unprocessable { message, details: Value::Null },
        401 => Error::Unauthorized(message),
        403 => Error::Forbidden(message),
        404 => Error::NotFound(message),
        409 => Error::Conflict(message),
        413 => Error::TooLarge(message),
        _ => Error::Internal(message),
    }
}

/// A multipart/form-data body read from its parts as it is sent: the
/// boundaries and text parts are small buffers, each file is opened only
/// when its turn comes and must still have the size it had when the
/// Content-Length was computed.
struct FormBody {
    segments: VecDeque<Segment>,
    current: Option<Box<dyn Read>>,
}

enum Segment {
    Bytes(Vec<u8>),
    File { path: PathBuf, len: u64 },
}

impl FormBody {
    fn new(parts: &[FormPart]) -> Result<(FormBody, u64, String), Error> {
        let boundary = format!("modelreg-{}", uuid::Uuid::new_v4().simple());
        let quote = |s: &str| s.replace(['"', '\r', '\n'], "_");
        let mut segments = VecDeque::new();
        let mut len = 0u64;
        fn bytes(segments: &mut VecDeque<Segment>, len: &mut u64, text: String) {
            *len += text.len() as u64;
            segments.push_back(Segment::Bytes(text.into_bytes()));
        }
        for part in parts {
            let name = quote(&part.name);
            match &part.value {
                FormValue::Text(value) => bytes(
                    &mut segments,
                    &mut len,
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"),
                ),
                FormValue::File { path, filename } => {
                    let file_len = std::fs::metadata(path)
                        .map_err(|e| Error::invalid("file", format!("cannot read {}: {e}", path.display())))?
                        .len();
                    bytes(
                        &mut segments,
                        &mut len,
                        format!(
                            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\n\
                             Content-Type: application/octet-stream\r\n\r\n",
                            quote(filename)
                        ),
                    );
                    segments.push_back(Segment::File { path: path.clone(), len: file_len });
                    bytes(&mut segments, &mut len, "\r\n".to_string());
                    len += file_len;
                }
            }
        }
        bytes(&mut segments, &mut len, format!("--{boundary}--\r\n"));
        Ok((FormBody { segments, current: None }, len, boundary))
    }
}

impl Read for FormBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(reader) = &mut self.current {
                let n = reader.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            match self.segments.pop_front() {
                None => return Ok(0),
                Some(Segment::Bytes(b)) => self.current = Some(Box::new(io::Cursor::new(b))),
                Some(Segment::File { path, len }) => {
                    let file = File::open(&path)?;
                    if file.metadata()?.len() != len {
                        return Err(io::Error::other(format!("{} changed size while it was being sent", path.display())));
                    }
                    self.current = Some(Box::new(Exact { inner: file.take(len), left: len, path }));
                }
            }
        }
    }
}

/// Reads exactly `left` bytes, failing if the file ends early.
struct Exact {
    inner: io::Take<File>,
    left: u64,
    path: PathBuf,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} shrank while it was being sent", self.path.display())));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
