//! A small HTTP client for `--server`: it speaks the Octomil routes, the
//! dialect whose model and version operations match the CLI's one to one.

use std::io::Read;

use serde_json::Value;

use crate::registry::Error;

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
}

impl Remote {
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
        let mut response = result.map_err(|e| Error::Internal(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Internal(format!("reading the server's answer failed: {e}")))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(status_error(status, &body))
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
        match sent {
            // A server that refuses an upload early (over its size limit, say)
            // answers and closes without reading the rest; all we see is the
            // closed connection.
            Err(ureq::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset) => {
                Err(Error::Internal(format!(
                    "{} closed the connection while the file was being sent ({e}); it may have refused the upload, \
                     for instance because it is larger than the server accepts",
                    self.base
                )))
            }
            sent => self.finish(sent),
        }
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
        let sha256 = header("X-Model-Hash").map(|h| h.trim_start_matches("sha256:").to_string());
        let file_name = header("Content-Disposition").and_then(|v| disposition_file_name(&v));
        let reader = Box::new(response.into_body().into_reader());
        Ok(Download { reader, len, sha256, file_name })
    }
}

/// The `filename` of a Content-Disposition header, if it is a plain file
/// name: a server must not be able to make the CLI write outside the
/// current directory.
fn disposition_file_name(header: &str) -> Option<String> {
    let value = header.split(';').map(str::trim).find_map(|p| p.strip_prefix("filename="))?;
    let name = value.trim().trim_matches('"');
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    plain.then(|| name.to_string())
}

fn status_error(status: u16, body: &Value) -> Error {
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {status}: {body}"));
    match status {
        400 | 422 => Error::Invalid { field: "request".into(), message },
        401 => Error::Unauthorized(message),
        403 => Error::Forbidden(message),
        404 => Error::NotFound(message),
        409 => Error::Conflict(message),
        413 => Error::TooLarge(message),
        _ => Error::Internal(message),
    }
}
