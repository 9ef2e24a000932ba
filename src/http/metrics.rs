//! `GET /metrics`: the server's counters in Prometheus' text format (0.0.4).
//!
//! A small exporter of our own rather than the `prometheus` or
//! `prometheus-client` crates: the families are few and fixed, every label
//! set is bounded (dialects, route patterns — never raw paths —, methods,
//! statuses, job kinds), and the server is synchronous, so a mutex-guarded
//! map per family and a formatter is all it takes; those crates would bring
//! registries, macros and dependencies for no gain here.
//!
//! Counters live in this process (`crate::metrics`, where the transport
//! and the job runner record them) and start at zero when it starts, as
//! Prometheus expects (`rate()` handles resets). Store-wide gauges (blobs,
//! the job queue) are read from the database at scrape time, so they count
//! what every process did, the offline CLI included.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use crate::metrics::{lock, Histogram, IN_FLIGHT, JOB_BUCKETS, REQUEST_BUCKETS};
use crate::registry::{Principal, Registry, Result};

static SCRAPE_TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// `serve --metrics-token-file`: a token good for /metrics only.
pub fn set_scrape_token(token: Option<String>) {
    let _ = SCRAPE_TOKEN.set(token);
}

/// Whether `bearer` is the scrape token (compared in constant time, as a
/// secret should be).
pub fn is_scrape_token(bearer: &str) -> bool {
    let Some(Some(token)) = SCRAPE_TOKEN.get() else { return false };
    token.len() == bearer.len() && token.bytes().zip(bearer.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Who may read /metrics: the scrape token, or an admin key of the first
/// team (the counters cover every team, so a team's own admin does not
/// qualify). `None` for the scrape token.
pub fn authorize(registry: &Registry, bearer: &str) -> Result<Option<Principal>> {
    if is_scrape_token(bearer) {
        return Ok(None);
    }
    let who = registry.authenticate(bearer)?;
    if !registry.is_operator(&who)? {
        return Err(crate::registry::Error::Forbidden(
            "/metrics is for the scrape token (serve --metrics-token-file) or an admin key of the first team".into(),
        ));
    }
    Ok(Some(who))
}

/// `GET /metrics`. Public to the router (the scrape token is not an API
/// key), so the bearer is checked here.
pub fn handler(ctx: &super::Ctx, req: &mut super::Request) -> Result<super::Response> {
    let header = req.header("Authorization").ok_or_else(|| {
        crate::registry::Error::Unauthorized("missing Authorization header; send `Authorization: Bearer <key or scrape token>`".into())
    })?;
    let bearer = header.trim().split_once(' ').map(|(_, token)| token.trim()).unwrap_or("").to_string();
    // Set for the access log: a scrape with a key names the key.
    req.principal = authorize(ctx.registry, &bearer)?;
    let body = render(ctx.registry)?;
    Ok(super::Response::bytes(200, "text/plain; version=0.0.4; charset=utf-8", body.into_bytes()))
}

/// The whole exposition.
pub fn render(registry: &Registry) -> Result<String> {
    let stats = registry.store_stats()?;
    let mut out = String::with_capacity(16 * 1024);
    let state = lock();

    family(&mut out, "modelreg_build_info", "gauge", "The running modelreg's version and database schema version.");
    let _ = writeln!(
        out,
        "modelreg_build_info{{version=\"{}\",schema=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        crate::registry::SCHEMA_VERSION
    );

    family(&mut out, "modelreg_http_requests_total", "counter", "HTTP requests answered, by dialect, route pattern, method and status.");
    for ((dialect, route, method, status), n) in &state.requests {
        let _ = writeln!(
            out,
            "modelreg_http_requests_total{{dialect=\"{}\",route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            esc(dialect),
            esc(route)
        );
    }

    family(&mut out, "modelreg_http_request_duration_seconds", "histogram", "Time from a request's arrival to its response's last byte.");
    for ((dialect, route, method), h) in &state.latency {
        let labels = format!("dialect=\"{}\",route=\"{}\",method=\"{method}\"", esc(dialect), esc(route));
        histogram(&mut out, "modelreg_http_request_duration_seconds", &labels, REQUEST_BUCKETS, h);
    }

    family(&mut out, "modelreg_http_request_bytes_total", "counter", "Request body bytes received (as declared by Content-Length), by dialect.");
    for (dialect, n) in &state.bytes_in {
        let _ = writeln!(out, "modelreg_http_request_bytes_total{{dialect=\"{}\"}} {n}", esc(dialect));
    }
    family(&mut out, "modelreg_http_response_bytes_total", "counter", "Response body bytes sent, by dialect.");
    for (dialect, n) in &state.bytes_out {
        let _ = writeln!(out, "modelreg_http_response_bytes_total{{dialect=\"{}\"}} {n}", esc(dialect));
    }
    family(&mut out, "modelreg_http_rate_limited_total", "counter", "Requests refused by the per-key rate limit (429), by dialect.");
    for (dialect, n) in &state.rate_limited {
        let _ = writeln!(out, "modelreg_http_rate_limited_total{{dialect=\"{}\"}} {n}", esc(dialect));
    }
    family(&mut out, "modelreg_http_requests_in_flight", "gauge", "Requests being handled now.");
    let _ = writeln!(out, "modelreg_http_requests_in_flight {}", IN_FLIGHT.load(Ordering::Relaxed));
    family(&mut out, "modelreg_uploads_in_flight", "gauge", "Uploads streaming into the blob store now (in this server).");
    let _ = writeln!(out, "modelreg_uploads_in_flight {}", crate::registry::UPLOADS_IN_FLIGHT.load(Ordering::Relaxed));

    family(&mut out, "modelreg_blobs", "gauge", "Blobs recorded in the store.");
    let _ = writeln!(out, "modelreg_blobs {}", stats.blobs);
    family(&mut out, "modelreg_blob_bytes", "gauge", "Bytes of the blobs recorded in the store.");
    let _ = writeln!(out, "modelreg_blob_bytes {}", stats.blob_bytes);

    family(&mut out, "modelreg_blob_store_up", "gauge", "Whether the object store answered its last request (1, or 0); -1 before any, or for a local store.");
    let _ = writeln!(out, "modelreg_blob_store_up {}", crate::metrics::STORE_UP.load(Ordering::Relaxed));
    family(&mut out, "modelreg_blob_store_requests_total", "counter", "Requests to the object store, by method and outcome (ok, not_found, unavailable, error).");
    for ((method, outcome), n) in &state.store_requests {
        let _ = writeln!(out, "modelreg_blob_store_requests_total{{method=\"{method}\",outcome=\"{outcome}\"}} {n}");
    }
    family(&mut out, "modelreg_blob_store_request_duration_seconds", "histogram", "Time to the object store's answer (its head, for a download), by method.");
    for (method, h) in &state.store_latency {
        histogram(&mut out, "modelreg_blob_store_request_duration_seconds", &format!("method=\"{method}\""), REQUEST_BUCKETS, h);
    }

    family(&mut out, "modelreg_jobs", "gauge", "Jobs waiting (queued) or running, by kind.");
    for (kind, state_name, n) in &stats.jobs {
        let _ = writeln!(out, "modelreg_jobs{{kind=\"{}\",state=\"{}\"}} {n}", esc(kind), esc(state_name));
    }
    family(&mut out, "modelreg_job_duration_seconds", "histogram", "How long jobs run in this server, by kind and outcome.");
    for ((kind, outcome), h) in &state.jobs {
        let labels = format!("kind=\"{}\",outcome=\"{outcome}\"", esc(kind));
        histogram(&mut out, "modelreg_job_duration_seconds", &labels, JOB_BUCKETS, h);
    }
    Ok(out)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, buckets: &[f64], h: &Histogram) {
    let mut cumulative = 0;
    for (le, n) in buckets.iter().zip(&h.counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// A label value as the text format requires: backslash, quote and newline
/// escaped.
fn esc(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(&[0.1, 1.0], 0.05);
        h.observe(&[0.1, 1.0], 0.5);
        h.observe(&[0.1, 1.0], 5.0);
        let mut out = String::new();
        histogram(&mut out, "x", "a=\"b\"", &[0.1, 1.0], &h);
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
