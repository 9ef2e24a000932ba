//! Method + path pattern routing. Patterns are literal segments and
//! `{name}` captures; a trailing `/` is significant (DataRobot's routes end
//! in one, the others do not).

use super::request::Request;
use super::response::Response;
use super::Ctx;
use crate::registry::{Error, Result};

pub type Handler = fn(&Ctx, &mut Request) -> Result<Response>;

/// A front door: the path prefix it owns and how it renders errors, so that
/// a 404 or 405 under `/v1/` looks like Paperspace's and one under `/api/v2/`
/// like DataRobot's.
pub struct Dialect {
    pub name: &'static str,
    pub prefix: &'static str,
    pub render_error: fn(&Error) -> Response,
    /// Whether `/a/b` also reaches the route `/a/b/`. DataRobot's own
    /// callers send both forms (the custom-models action and the Terraform
    /// provider drop the slash on some routes); the others keep the
    /// trailing slash significant.
    pub trailing_slash_optional: bool,
    /// The dialect's client retries a 503 by resending the request head
    /// without its body (the DataRobot client does: the stream is spent), so
    /// a request with a body is answered 500 where it would be 503.
    pub retry_resends_no_body: bool,
}

enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

pub struct Route {
    method: &'static str,
    /// The pattern as registered: what metrics and the access log name a
    /// request by, instead of its unbounded path.
    pub pattern: &'static str,
    segments: Vec<Segment>,
    pub handler: Handler,
    /// Public routes (health, version handshake) need no API key.
    pub public: bool,
    pub dialect: &'static Dialect,
}

pub enum Match<'a> {
    Found(&'a Route, Vec<(&'static str, String)>),
    WrongMethod { allowed: Vec<String>, dialect: &'static Dialect },
    NotFound(&'static Dialect),
}

pub struct Router {
    routes: Vec<Route>,
    dialects: Vec<&'static Dialect>,
    fallback: &'static Dialect,
}

impl Router {
    pub fn new(fallback: &'static Dialect) -> Router {
        Router { routes: Vec::new(), dialects: Vec::new(), fallback }
    }

    fn push(&mut self, dialect: &'static Dialect, method: &'static str, pattern: &'static str, handler: Handler, public: bool) {
        if !self.dialects.iter().any(|d| std::ptr::eq(*d, dialect)) {
            self.dialects.push(dialect);
            // Longest prefix first, so `/api/v2/` wins over `/api/`.
            self.dialects.sort_by_key(|d| std::cmp::Reverse(d.prefix.len()));
        }
        let segments = split(pattern)
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name),
                None => Segment::Literal(s),
            })
            .collect();
        self.routes.push(Route { method, pattern, segments, handler, public, dialect });
    }

    pub fn add(&mut self, dialect: &'static Dialect, method: &'static str, pattern: &'static str, handler: Handler) {
        self.push(dialect, method, pattern, handler, false);
    }

    pub fn add_public(&mut self, dialect: &'static Dialect, method: &'static str, pattern: &'static str, handler: Handler) {
        self.push(dialect, method, pattern, handler, true);
    }

    pub fn dialect_for(&self, path: &str) -> &'static Dialect {
        self.dialects.iter().copied().find(|d| path.starts_with(d.prefix)).unwrap_or(self.fallback)
    }

    /// The pattern of the route a request reaches, or a fixed label when
    /// none does (so that unknown paths add no label values).
    pub fn pattern_for(&self, method: &str, path: &str) -> &'static str {
        match self.route(method, path) {
            Match::Found(route, _) => route.pattern,
            Match::WrongMethod { .. } => "(method not allowed)",
            Match::NotFound(_) => "(no route)",
        }
    }

    /// HEAD is answered by GET routes (the transport drops the body).
    pub fn route(&self, method: &str, path: &str) -> Match<'_> {
        let wanted = if method == "HEAD" { "GET" } else { method };
        let mut allowed: Vec<String> = Vec::new();
        for route in &self.routes {
            let Some(params) = route.matches(path) else { continue };
            if route.method == wanted {
                return Match::Found(route, params);
            }
            allowed.push(route.method.to_string());
            if route.method == "GET" {
                allowed.push("HEAD".into());
            }
        }
        if allowed.is_empty() {
            let dialect = self.dialect_for(path);
            if dialect.trailing_slash_optional && !path.ends_with('/') {
                return self.route(method, &format!("{path}/"));
            }
            return Match::NotFound(dialect);
        }
        allowed.sort();
        allowed.dedup();
        Match::WrongMethod { allowed, dialect: self.dialect_for(path) }
    }
}

impl Route {
    fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        let mut parts = split(path);
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(lit) if *lit == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => params.push((*name, super::request::percent_decode_path(part))),
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some(params)
    }
}

/// `/a/b/` → ["a", "b", ""]: the empty last segment keeps a trailing slash
/// significant.
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(_: &Error) -> Response {
        Response::empty(500)
    }
    static D: Dialect = Dialect { name: "t", prefix: "/", render_error: render, trailing_slash_optional: false, retry_resends_no_body: false };
    static SLASHLESS: Dialect = Dialect { name: "s", prefix: "/api/v2/", render_error: render, trailing_slash_optional: true, retry_resends_no_body: false };
    fn h(_: &Ctx, _: &mut Request) -> Result<Response> {
        Ok(Response::empty(200))
    }

    #[test]
    fn params_methods_and_trailing_slashes() {
        let mut r = Router::new(&D);
        r.add(&D, "GET", "/v1/models/{id}", h);
        r.add(&D, "DELETE", "/v1/models/{id}", h);
        r.add(&D, "GET", "/api/v2/customModels/{id}/", h);
        match r.route("GET", "/v1/models/abc") {
            Match::Found(_, p) => assert_eq!(p, vec![("id", "abc".to_string())]),
            _ => panic!("no match"),
        }
        assert!(matches!(r.route("HEAD", "/v1/models/abc"), Match::Found(..)));
        match r.route("TRACE", "/v1/models/abc") {
            Match::WrongMethod { allowed, .. } => assert_eq!(allowed, vec!["DELETE", "GET", "HEAD"]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(r.route("GET", "/v1/models/abc/"), Match::NotFound(_)));
        assert!(matches!(r.route("GET", "/v1/models/"), Match::NotFound(_)));
        assert!(matches!(r.route("GET", "/api/v2/customModels/x/"), Match::Found(..)));
        assert!(matches!(r.route("GET", "/api/v2/customModels/x"), Match::NotFound(_)));
    }

    #[test]
    fn a_dialect_may_make_the_trailing_slash_optional() {
        let mut r = Router::new(&D);
        r.add(&SLASHLESS, "GET", "/api/v2/datasets/{id}/", h);
        r.add(&SLASHLESS, "POST", "/api/v2/datasets/fromFile/", h);
        match r.route("GET", "/api/v2/datasets/abc") {
            Match::Found(_, p) => assert_eq!(p, vec![("id", "abc".to_string())]),
            _ => panic!("no match without the slash"),
        }
        assert!(matches!(r.route("POST", "/api/v2/datasets/fromFile"), Match::Found(..)));
        assert!(matches!(r.route("DELETE", "/api/v2/datasets/abc"), Match::WrongMethod { .. }));
        assert!(matches!(r.route("GET", "/api/v2/datasets/abc//"), Match::NotFound(_)));
    }
}
