//! The transport: tiny_http, a fixed pool of worker threads each with its
//! own registry handle, routing, authentication, rate limiting, body limits,
//! an access-log line per request, and a graceful stop on SIGINT/SIGTERM.

pub mod access_log;
pub mod forwarded;
pub mod metrics;
pub mod multipart;
mod ratelimit;
pub mod request;
pub mod response;
pub mod router;

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
    pub data_dir: PathBuf,
    pub bind: String,
    pub workers: usize,
    pub json_limit: u64,
    pub upload_limit: u64,
    /// How long the server waits on a silent client (per read and write)
    /// before closing the connection.
    pub io_timeout: Duration,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    pub rate_limit: Option<RateLimit>,
    /// How long an emulated machine takes to change state.
    pub machine_delay: Duration,
    /// `docker` to build environment images for real; None to only validate.
    pub image_builder: Option<String>,
    /// How many compute jobs (builds, model tests) run at once.
    pub compute_slots: usize,
    /// The Python that runs models (`serve --python`); None: the managed
    /// runtime under the data directory, when installed.
    pub python: Option<PathBuf>,
    /// Where local (`git`) repositories may be registered and pulled from
    /// (`serve --allow-git-path`; the offline CLI's operator: anywhere).
    pub git_paths: crate::registry::repositories::GitPaths,
    /// `--public-url` and `--trusted-proxy`: absolute URLs and client
    /// addresses behind a reverse proxy.
    pub proxying: forwarded::Proxying,
    /// How long Octomil's signed upload and download URLs work.
    pub signed_url_ttl: Duration,
}

impl ServerOptions {
    /// The settings under which the offline CLI runs jobs itself: no delay
    /// for emulated machines, no image builder, no upload limit (0), and
    /// local repositories anywhere (its user is the operator).
    pub fn offline(data_dir: &std::path::Path, python: Option<PathBuf>) -> ServerOptions {
        ServerOptions {
            data_dir: data_dir.to_path_buf(),
            bind: String::new(),
            workers: 1,
            json_limit: 0,
            upload_limit: 0,
            io_timeout: Duration::ZERO,
            max_connections: 0,
            rate_limit: None,
            machine_delay: Duration::ZERO,
            image_builder: None,
            compute_slots: 1,
            python,
            git_paths: crate::registry::repositories::GitPaths::Any,
            proxying: forwarded::Proxying::default(),
            signed_url_ttl: crate::registry::signed_urls::URL_TTL,
        }
    }
}

/// What a handler gets besides the request: this worker's registry handle
/// and the server's options.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub options: &'a ServerOptions,
}

/// Runs the server until SIGINT or SIGTERM; requests in flight finish first.
pub fn serve(options: ServerOptions, router: Router, on_ready: impl FnOnce(&str)) -> Result<(), Error> {
    let limits = tiny_http::ConnectionLimits {
        read_timeout: Some(options.io_timeout),
        write_timeout: Some(options.io_timeout),
        max_connections: options.max_connections,
    };
    let server = tiny_http::Server::http_with_limits(options.bind.as_str(), limits)
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", options.bind)))?;
    let addr = server.server_addr().to_ip().map(|a| a.to_string()).unwrap_or_else(|| options.bind.clone());
    let server = Arc::new(server);
    let stopping = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stopping))
            .map_err(|e| Error::Internal(format!("cannot install signal handler: {e}")))?;
    }
    let router = Arc::new(router);
    let options = Arc::new(options);
    let limiter = Arc::new(options.rate_limit.map(ratelimit::Limiter::new));
    let mut workers = Vec::new();
    for n in 0..options.workers.max(1) {
        let registry = Registry::open(&options.data_dir)?;
        let (server, router, options, limiter, stopping) =
            (Arc::clone(&server), Arc::clone(&router), Arc::clone(&options), Arc::clone(&limiter), Arc::clone(&stopping));
        let worker = std::thread::Builder::new().name(format!("http-{n}")).spawn(move || {
            let ctx = Ctx { registry: &registry, options: &options };
            // Polling with a timeout (rather than recv) lets a worker notice
            // the stop flag without a wake-up per thread.
            while !stopping.load(Ordering::Relaxed) {
                if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(200)) {
                    handle(&ctx, &router, limiter.as_ref().as_ref(), request);
                }
            }
        });
        workers.push(worker.map_err(|e| Error::Internal(format!("cannot start worker thread: {e}")))?);
    }
    on_ready(&addr);
    while !stopping.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("modelreg: stop signal received; finishing requests in flight");
    for worker in workers {
        let _ = worker.join();
    }
    // Model servers, pip and builders of jobs still running go with us.
    crate::process::kill_all();
    eprintln!("modelreg: stopped");
    Ok(())
}

fn handle(ctx: &Ctx, router: &Router, limiter: Option<&ratelimit::Limiter>, raw: tiny_http::Request) {
    let started = Instant::now();
    metrics::IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            if let Error::Internal(message) = &error {
                eprintln!("modelreg: internal error on {method} {path}: {message}");
            }
            (dialect.render_error)(&error)
        }
    };
    let response = response.with_header("X-Request-Id", request_id.as_str());
    let status = response.status;
    let bytes = response.body_len();
    if let Err(e) = respond(request.inner, response) {
        eprintln!("modelreg: sending the response to {remote} failed: {e}");
    }
    let route = router.pattern_for(&method, &request.path);
    let observation = metrics::Observation {
        dialect: dialect_name,
        route,
        method: &method,
        status,
        elapsed: started.elapsed(),
        bytes_in,
        bytes_out: bytes,
    };
    metrics::observe_request(&observation);
    metrics::IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
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

fn respond(raw: tiny_http::Request, response: Response) -> std::io::Result<()> {
    let status = tiny_http::StatusCode(response.status);
    let headers: Vec<tiny_http::Header> = response
        .headers
        .iter()
        .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
        .collect();
    let (reader, len): (Box<dyn Read + Send>, usize) = match response.body {
        Body::Empty => (Box::new(std::io::empty()), 0),
        Body::Bytes(bytes) => {
            let len = bytes.len();
            (Box::new(std::io::Cursor::new(bytes)), len)
        }
        Body::Stream { reader, len } => (reader, len as usize),
    };
    // Always Content-Length, never chunked: clients (and the Octomil seed) expect the size up front.
    raw.respond(tiny_http::Response::new(status, headers, reader, Some(len), None).with_chunked_threshold(usize::MAX))
}
