//! The access log: one line per request on stderr, as text or JSON
//! (`serve --log-format`), naming the request id (also sent back as
//! `X-Request-Id`), the key and user that made it, its dialect, route and
//! outcome, so that "who deleted this model" has an answer.
//!
//! Every request is logged; deletions and access changes (DELETE, an
//! `accessControl` change, a write to the admin API) also carry
//! `"audit": true`, so that they can be kept apart from the rest of the
//! traffic.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;

use crate::registry::Principal;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `time remote "METHOD path" status bytes ms dialect rid=… key=… user=…`
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// The request id: the client's (or proxy's) `X-Request-Id` when it is a
/// plain token, so that one id follows a request through the proxy's log and
/// ours; otherwise a new one.
pub fn request_id(incoming: Option<&str>) -> String {
    match incoming.map(str::trim) {
        Some(id) if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) => {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

pub struct Entry<'a> {
    pub request_id: &'a str,
    pub remote: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The matched route pattern (`/api/v1/models/{model_id}`), if any.
    pub route: &'static str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
    pub dialect: &'static str,
    pub principal: Option<&'a Principal>,
}

impl Entry<'_> {
    /// Deletions and access changes: what an audit asks about.
    fn is_audit(&self) -> bool {
        self.method == "DELETE"
            || (self.method != "GET" && self.method != "HEAD" && (self.route.contains("accessControl") || self.dialect == "admin"))
    }

    /// The path as logged: a signed URL's path is its secret, so those
    /// routes are logged by their pattern.
    fn logged_path(&self) -> &str {
        if self.route.contains("{token}") {
            self.route
        } else {
            self.path
        }
    }

    pub fn render(&self, format: LogFormat) -> String {
        let ms = self.elapsed.as_secs_f64() * 1000.0;
        let key = self.principal.and_then(|p| p.key_id.as_deref());
        let user = self.principal.map(|p| p.username.as_str());
        match format {
            LogFormat::Text => format!(
                "{} {} \"{} {}\" {} {} {ms:.1}ms {} rid={} key={} user={}{}",
                crate::registry::now(),
                self.remote,
                self.method,
                self.logged_path(),
                self.status,
                self.bytes_out,
                self.dialect,
                self.request_id,
                key.unwrap_or("-"),
                user.unwrap_or("-"),
                if self.is_audit() { " audit" } else { "" }
            ),
            LogFormat::Json => json!({
                "time": crate::registry::now(),
                "request_id": self.request_id,
                "remote": self.remote,
                "method": self.method,
                "path": self.logged_path(),
                "route": self.route,
                "status": self.status,
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "duration_ms": (ms * 10.0).round() / 10.0,
                "dialect": self.dialect,
                "key_id": key,
                "user": user,
                "user_id": self.principal.map(|p| p.user_id.as_str()),
                "team_id": self.principal.map(|p| p.team_id.as_str()),
                "audit": self.is_audit(),
            })
            .to_string(),
        }
    }
}

/// Writes the entry as one line, in one write, so that lines of concurrent
/// requests never interleave.
pub fn write(entry: &Entry) {
    let mut line = entry.render(FORMAT.get().copied().unwrap_or_default());
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(method: &'a str, route: &'static str, path: &'a str, who: Option<&'a Principal>) -> Entry<'a> {
        Entry {
            request_id: "r1",
            remote: "127.0.0.1",
            method,
            path,
            route,
            status: 204,
            bytes_in: 0,
            bytes_out: 0,
            elapsed: Duration::from_millis(3),
            dialect: "octomil",
            principal: who,
        }
    }

    #[test]
    fn json_lines_name_the_key_and_mark_deletions() {
        let who = Principal { team_id: "t".into(), user_id: "u".into(), username: "alice".into(), is_admin: false, key_id: Some("k".into()) };
        let line = entry("DELETE", "/api/v1/models/{model_id}", "/api/v1/models/m", Some(&who)).render(LogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!((v["request_id"].as_str(), v["key_id"].as_str(), v["user"].as_str()), (Some("r1"), Some("k"), Some("alice")));
        assert_eq!((v["status"].as_u64(), v["audit"].as_bool()), (Some(204), Some(true)));
        let text = entry("GET", "/api/v1/models", "/api/v1/models", Some(&who)).render(LogFormat::Text);
        assert!(text.contains("rid=r1 key=k user=alice") && !text.ends_with("audit"), "{text}");
    }

    #[test]
    fn signed_url_tokens_stay_out_of_the_log() {
        let line = entry("GET", "/api/v1/downloads/{token}", "/api/v1/downloads/secret", None).render(LogFormat::Text);
        assert!(!line.contains("secret"), "{line}");
    }

    #[test]
    fn only_plain_incoming_request_ids_are_kept() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        assert_ne!(request_id(Some("a b\nc")), "a b\nc");
        assert_eq!(request_id(None).len(), 32);
    }
}
