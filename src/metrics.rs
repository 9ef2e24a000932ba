//! The process's counters: requests (recorded by the transport), job
//! durations (recorded by the job runner) and requests to an object store
//! (recorded by its client). `http::metrics` renders them for
//! `GET /metrics`; recording needs nothing from the layers above, so the
//! runner can count without knowing of HTTP.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the request latency buckets, in seconds: from a cached
/// read (sub-millisecond) to a large upload (minutes).
pub const REQUEST_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Jobs run from milliseconds (a machine state change) to an hour (a build).
pub const JOB_BUCKETS: &[f64] = &[0.01, 0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

#[derive(Clone, Debug)]
pub struct Histogram {
    /// Per bucket, not cumulative; summed when rendered.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(buckets: &[f64]) -> Histogram {
        Histogram { counts: vec![0; buckets.len()], sum: 0.0, count: 0 }
    }

    pub fn observe(&mut self, buckets: &[f64], seconds: f64) {
        if let Some(i) = buckets.iter().position(|&le| seconds <= le) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

type RequestKey = (&'static str, &'static str, String, u16);
type RouteKey = (&'static str, &'static str, String);

#[derive(Default)]
pub struct State {
    pub requests: BTreeMap<RequestKey, u64>,
    pub latency: BTreeMap<RouteKey, Histogram>,
    pub bytes_in: BTreeMap<&'static str, u64>,
    pub bytes_out: BTreeMap<&'static str, u64>,
    pub rate_limited: BTreeMap<&'static str, u64>,
    pub jobs: BTreeMap<(String, &'static str), Histogram>,
    /// Requests to the blob store, by method and outcome.
    pub store_requests: BTreeMap<(&'static str, &'static str), u64>,
    pub store_latency: BTreeMap<&'static str, Histogram>,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(Default::default)
}

pub fn lock() -> std::sync::MutexGuard<'static, State> {
    state().lock().unwrap_or_else(|p| p.into_inner())
}

/// Requests being handled right now (incremented by `handle`).
pub static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

/// One finished request. `route` is the matched pattern, so the label set
/// stays bounded whatever paths clients send.
pub struct Observation<'a> {
    pub dialect: &'static str,
    pub route: &'static str,
    pub method: &'a str,
    pub status: u16,
    pub elapsed: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

pub fn observe_request(o: &Observation) {
    // Unknown methods are clients' inventions: one label for all of them.
    let method = match o.method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => o.method,
        _ => "other",
    };
    let mut state = lock();
    *state.requests.entry((o.dialect, o.route, method.to_string(), o.status)).or_default() += 1;
    state
        .latency
        .entry((o.dialect, o.route, method.to_string()))
        .or_insert_with(|| Histogram::new(REQUEST_BUCKETS))
        .observe(REQUEST_BUCKETS, o.elapsed.as_secs_f64());
    *state.bytes_in.entry(o.dialect).or_default() += o.bytes_in;
    *state.bytes_out.entry(o.dialect).or_default() += o.bytes_out;
    if o.status == 429 {
        *state.rate_limited.entry(o.dialect).or_default() += 1;
    }
}

/// Whether the object store answered its last request: 1 yes, 0 no, -1
/// nothing asked yet (or the store is local).
pub static STORE_UP: AtomicI64 = AtomicI64::new(-1);

/// One request to the object store. `outcome` is `ok`, `not_found`,
/// `unavailable` (unreachable, 5xx, refused credentials) or `error`.
pub fn observe_store_request(method: &'static str, outcome: &'static str, elapsed: Duration) {
    STORE_UP.store(if outcome == "unavailable" { 0 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
    let mut state = lock();
    *state.store_requests.entry((method, outcome)).or_default() += 1;
    state
        .store_latency
        .entry(method)
        .or_insert_with(|| Histogram::new(REQUEST_BUCKETS))
        .observe(REQUEST_BUCKETS, elapsed.as_secs_f64());
}

/// A job ran to its end (`succeeded` or `failed` as its handler returned).
pub fn observe_job(kind: &str, succeeded: bool, elapsed: Duration) {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    lock()
        .jobs
        .entry((kind.to_string(), outcome))
        .or_insert_with(|| Histogram::new(JOB_BUCKETS))
        .observe(JOB_BUCKETS, elapsed.as_secs_f64());
}
