//! The transport: tiny_http with each request handled on its connection's
//! thread (each such thread keeps a registry handle), routing,
//! authentication, rate limiting, body limits, an access-log line per
//! request, and a graceful stop on SIGINT/SIGTERM.

pub mod access_log;
pub mod forwarded;
pub mod generic;
pub mod metrics;
pub mod multipart;
pub mod params;
mod ratelimit;
pub mod request;
pub mod response;
pub mod router;

use std::io::Read;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use ratelimit::RateLimit;
pub use request::Request;
pub use response::{Body, FileToSend, Response};
pub use router::{Dialect, Match, Router};

use crate::registry::{Error, Registry};

/// Everything `modelreg serve` was configured with.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The data directory, and how jobs run (the server starts their runners).
    pub jobs: crate::jobs::JobSettings,
    pub bind: String,
    pub json_limit: u64,
    pub upload_limit: u64,
    /// How long the server waits on a silent client (per read and write)
    /// before closing the connection.
    pub io_timeout: Duration,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Most connections open at once from one client address (0: no limit).
    pub max_connections_per_address: usize,
    /// How long a request head may take to arrive whole.
    pub head_timeout: Duration,
    /// After SIGTERM/SIGINT, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
    /// How often gc runs while serving (None: never); the temp sweep runs as often.
    pub gc_interval: Option<Duration>,
    pub rate_limit: Option<RateLimit>,
    /// `--public-url` and `--trusted-proxy`: absolute URLs and client
    /// addresses behind a reverse proxy.
    pub proxying: forwarded::Proxying,
    /// How long Octomil's signed upload and download URLs work.
    pub signed_url_ttl: Duration,
    /// Queue an Octomil upload's ONNX conversion as soon as it is stored,
    /// when the runtime has the converters (`serve --no-convert-on-upload`
    /// turns it off; a download of a missing format still converts).
    pub convert_on_upload: bool,
}

/// What a handler gets besides the request: this worker's registry handle
/// and the server's options.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub options: &'a ServerOptions,
}

thread_local! {
    /// The registry handle of a connection thread, opened by its first request. tiny_http
    /// reuses connection threads, so most requests find one open.
    static REGISTRY: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// Runs the server until SIGINT or SIGTERM. Then the listening socket closes at once, and
/// requests in flight have `shutdown_grace` to finish.
///
/// Each request runs on its connection's thread (see "The transport" in ARCHITECTURE.md):
/// a slow upload or download holds its own connection's thread, never one that another
/// client's request needs.
pub fn serve(options: ServerOptions, router: Router, on_ready: impl FnOnce(&str)) -> Result<(), Error> {
    let limits = tiny_http::ConnectionLimits {
        read_timeout: Some(options.io_timeout),
        write_timeout: Some(options.io_timeout),
        max_connections: options.max_connections,
        head_timeout: Some(options.head_timeout.max(Duration::from_millis(1))),
        max_connections_per_ip: options.max_connections_per_address,
        per_ip_exempt: Some(forwarded::is_trusted_proxy),
    };
    forwarded::remember_trusted_proxies(&options.proxying.trusted);
    let stopping = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stopping))
            .map_err(|e| Error::Internal(format!("cannot install signal handler: {e}")))?;
    }
    let router = Arc::new(router);
    let options = Arc::new(options);
    start_maintenance(&options)?;
    let limiter = Arc::new(options.rate_limit.map(ratelimit::Limiter::new));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let handler: Arc<dyn Fn(tiny_http::Request) + Send + Sync> = {
        let (router, options, limiter, stopping, in_flight) =
            (Arc::clone(&router), Arc::clone(&options), Arc::clone(&limiter), Arc::clone(&stopping), Arc::clone(&in_flight));
        Arc::new(move |request: tiny_http::Request| {
            in_flight.fetch_add(1, Ordering::SeqCst);
            let _done = InFlight(&in_flight);
            REGISTRY.with(|slot| {
                let mut slot = slot.borrow_mut();
                if slot.is_none() {
                    match Registry::open(&options.jobs.data_dir) {
                        Ok(registry) => *slot = Some(registry),
                        Err(e) => {
                            let dialect = router.dialect_for(request.url());
                            let response = (dialect.render_error)(&e);
                            let _ = respond(request, response, true);
                            return;
                        }
                    }
                }
                let ctx = Ctx { registry: slot.as_ref().expect("opened above"), options: &options };
                handle(&ctx, &router, limiter.as_ref().as_ref(), request, &stopping);
            });
        })
    };
    let server = tiny_http::Server::http_with_handler(options.bind.as_str(), limits, handler)
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", options.bind)))?;
    let addr = server.server_addr().to_ip().map(|a| a.to_string()).unwrap_or_else(|| options.bind.clone());
    on_ready(&addr);
    while !stopping.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop_accepting();
    let deadline = Instant::now() + options.shutdown_grace;
    eprintln!(
        "modelreg: stop signal received; no new connections; {} requests in flight get {:?} to finish",
        in_flight.load(Ordering::SeqCst),
        options.shutdown_grace
    );
    while in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = in_flight.load(Ordering::SeqCst);
    if left > 0 {
        // Their uploads' temp files are swept at the next start; nothing they did is
        // acknowledged, so nothing acknowledged is lost.
        eprintln!("modelreg: {left} requests still in flight after the grace period are cut off");
    }
    // Model servers, pip and builders of jobs still running go with us.
    crate::process::kill_all();
    eprintln!("modelreg: stopped");
    Ok(())
}

/// How often `serve` sweeps upload temp files no live upload owns, besides at start.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// How old an unreferenced blob must be before the scheduled gc removes it (as `modelreg
/// gc`'s default).
const GC_GRACE: Duration = Duration::from_secs(3600);

/// Sweeps temp files now (so that a restart after a crash starts clean), then on a thread
/// of its own sweeps every `SWEEP_EVERY` and runs gc every `gc_interval` (the sweep runs with
/// each gc too). gc waits for uploads in progress (the gc lock); it runs off the request
/// path, so requests never wait for it.
fn start_maintenance(options: &ServerOptions) -> Result<(), Error> {
    let registry = Registry::open(&options.jobs.data_dir)?;
    let swept = registry.sweep_temp()?;
    if !swept.is_empty() {
        let bytes: u64 = swept.iter().map(|(_, n)| n).sum();
        eprintln!("modelreg: removed {} temp file(s) of uploads that died ({bytes} bytes)", swept.len());
    }
    let gc_every = options.gc_interval;
    let sweep_every = gc_every.map_or(SWEEP_EVERY, |gc| gc.min(SWEEP_EVERY));
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || {
            let mut next_gc = gc_every.map(|every| Instant::now() + every);
            loop {
                std::thread::sleep(sweep_every);
                match registry.sweep_temp() {
                    Ok(swept) if !swept.is_empty() => {
                        eprintln!("modelreg: removed {} temp file(s) of uploads that died", swept.len())
                    }
                    Ok(_) => (),
                    Err(e) => eprintln!("modelreg: sweeping temp files failed: {e}"),
                }
                if let (Some(at), Some(every)) = (next_gc, gc_every) {
                    if Instant::now() >= at {
                        match registry.gc(GC_GRACE, false) {
                            Ok(report) => eprintln!(
                                "modelreg: gc removed {} blob(s) and {} temp file(s), {} bytes",
                                report.removed_blobs.len(),
                                report.removed_temp_files.len(),
                                report.bytes()
                            ),
                            Err(e) => eprintln!("modelreg: gc failed: {e}"),
                        }
                        next_gc = Some(Instant::now() + every);
                    }
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start the maintenance thread: {e}")))?;
    Ok(())
}

/// Counts a request as in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn handle(ctx: &Ctx, router: &Router, limiter: Option<&ratelimit::Limiter>, raw: tiny_http::Request, stopping: &AtomicBool) {
    let started = Instant::now();
    crate::metrics::IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let request_id = access_log::request_id(
        raw.headers().iter().find(|h| h.field.equiv("X-Request-Id")).map(|h| h.value.as_str()),
    );
    let bytes_in = raw.body_length().unwrap_or(0) as u64;
    let method = raw.method().as_str().to_string();
    let url = raw.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let peer = raw.remote_addr().copied();
    let header = |name: &str| raw.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str());
    let base_url = ctx.options.proxying.base_url(peer, header);
    let remote = ctx.options.proxying.client_addr(peer, header);
    let mut request = Request {
        base_url,
        method: method.clone(),
        path: path.to_string(),
        query: request::parse_query(query),
        params: Vec::new(),
        principal: None,
        json_limit: ctx.options.json_limit,
        upload_limit: ctx.options.upload_limit,
        inner: raw,
    };
    // A panic is a bug, but it must cost one 500, not a worker thread.
    let dispatched =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(ctx, router, limiter, &mut request)));
    let (response, dialect) = dispatched.unwrap_or_else(|_| {
        let error = Error::Internal("the handler panicked; see the server log".into());
        (Err(error), router.dialect_for(&request.path))
    });
    let dialect_name = dialect.name;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            match &error {
                Error::Internal(message) => eprintln!("modelreg: internal error on {method} {path}: {message}"),
                Error::Unavailable(message) => eprintln!("modelreg: {method} {path}: {message}"),
                _ => {}
            }
            match error {
                Error::Unavailable(message) if dialect.retry_resends_no_body && !matches!(method.as_str(), "GET" | "HEAD" | "DELETE") => {
                    (dialect.render_error)(&Error::Internal(message))
                }
                // the store recovers by itself; a client may try again soon
                Error::Unavailable(_) => (dialect.render_error)(&error).with_header("Retry-After", "5"),
                error => (dialect.render_error)(&error),
            }
        }
    };
    let response = response.with_header("X-Request-Id", request_id.as_str());
    let status = response.status;
    let bytes = response.body_len();
    // While stopping, a keep-alive client is told to take its next request elsewhere.
    if let Err(e) = respond(request.inner, response, stopping.load(Ordering::Relaxed)) {
        eprintln!("modelreg: sending the response to {remote} failed: {e}");
    }
    let route = router.pattern_for(&method, &request.path);
    let observation = crate::metrics::Observation {
        dialect: dialect_name,
        route,
        method: &method,
        status,
        elapsed: started.elapsed(),
        bytes_in,
        bytes_out: bytes,
    };
    crate::metrics::observe_request(&observation);
    crate::metrics::IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    access_log::write(&access_log::Entry {
        request_id: &request_id,
        remote: &remote.to_string(),
        method: &method,
        path: &request.path,
        route,
        status,
        bytes_in,
        bytes_out: bytes,
        elapsed: observation.elapsed,
        dialect: dialect_name,
        principal: request.principal.as_ref(),
    });
}

fn dispatch(
    ctx: &Ctx,
    router: &Router,
    limiter: Option<&ratelimit::Limiter>,
    request: &mut Request,
) -> (Result<Response, Error>, &'static Dialect) {
    let (route, params) = match router.route(&request.method, &request.path) {
        Match::Found(route, params) => (route, params),
        Match::WrongMethod { allowed, dialect } => {
            let allow = allowed.join(", ");
            let response = (dialect.render_error)(&Error::MethodNotAllowed { allowed }).with_header("Allow", allow);
            return (Ok(response), dialect);
        }
        Match::NotFound(dialect) => {
            return (Err(Error::NoRoute(format!("no route for {} {}", request.method, request.path))), dialect);
        }
    };
    request.params = params;
    if !route.public {
        match authenticate(ctx, request) {
            Ok(principal) => request.principal = Some(principal),
            Err(e) => return (Err(e), route.dialect),
        }
        if let Some(limiter) = limiter {
            // One bucket per API key: a user's two keys are limited apart.
            let key = request.principal.as_ref().and_then(|p| p.key_id.as_deref()).unwrap_or("");
            if let Err(retry_after_secs) = limiter.check(key) {
                let error = Error::RateLimited { retry_after_secs };
                let response = (route.dialect.render_error)(&error).with_header("Retry-After", retry_after_secs.to_string());
                return (Ok(response), route.dialect);
            }
        }
    }
    ((route.handler)(ctx, request), route.dialect)
}

/// `Authorization: Bearer <key>`, or `Token <key>` as the DataRobot client
/// sends by default.
fn authenticate(ctx: &Ctx, request: &Request) -> Result<crate::registry::Principal, Error> {
    let header = request
        .header("Authorization")
        .ok_or_else(|| Error::Unauthorized("missing Authorization header; send `Authorization: Bearer <key>`".into()))?;
    let (scheme, key) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return Err(Error::Unauthorized(format!("unsupported authorization scheme {scheme:?}; use Bearer")));
    }
    ctx.registry.authenticate(key.trim())
}

fn respond(mut raw: tiny_http::Request, response: Response, close: bool) -> std::io::Result<()> {
    let status = tiny_http::StatusCode(response.status);
    if close {
        raw.close_connection_after();
    }
    let headers: Vec<tiny_http::Header> = response
        .headers
        .iter()
        .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
        .collect();
    let mut sendfile = None;
    let (reader, len): (Box<dyn Read + Send>, usize) = match response.body {
        Body::Empty => (Box::new(std::io::empty()), 0),
        Body::Bytes(bytes) => {
            let len = bytes.len();
            (Box::new(std::io::Cursor::new(bytes)), len)
        }
        Body::Stream { reader, len } => (reader, len as usize),
        Body::File { file, start, len } => {
            sendfile = Some((std::os::fd::AsRawFd::as_raw_fd(&file), start));
            (Box::new(file.take(len)), len as usize)
        }
    };
    // Always Content-Length, never chunked: clients (and the Octomil seed) expect the size up front.
    let mut answer = tiny_http::Response::new(status, headers, reader, Some(len), None).with_chunked_threshold(usize::MAX);
    if let Some((fd, start)) = sendfile {
        // the reader owns the file, so fd stays open until the answer is sent
        answer = answer.with_sendfile_source(fd, start);
    }
    raw.respond(answer)
}
