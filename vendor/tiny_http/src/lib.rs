//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
// modelreg patch: deny, not forbid, so that `response::send_file` alone may call sendfile(2)
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // number of client connections currently open
    num_connections: Arc<AtomicUsize>,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Limits applied to every client connection. See [`Server::http_with_limits`].
///
/// The defaults are a 30 s read timeout, a 30 s write timeout and 512 connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Timeout of each read on an accepted socket. Also the longest time a client may take
    /// to send a request's head (request line, headers and a body of up to 1 KiB, which is
    /// read with them) once it has started, and to send the unread rest of a body that the
    /// server discards. When it expires the connection is closed, after a `408` response if
    /// a request had started. `None` waits forever.
    pub read_timeout: Option<Duration>,

    /// Timeout of each write on an accepted socket. `None` waits forever.
    pub write_timeout: Option<Duration>,

    /// Most client connections served at the same time, each by its own thread (0 counts as
    /// 1). When this many are open, the server stops accepting: new connections wait in the
    /// listen backlog of the operating system, and are accepted as soon as another
    /// connection closes. Requests on the open connections keep being served meanwhile.
    pub max_connections: usize,

    /// Longest time a whole request head may take to arrive: from the connection's start
    /// for its first request, from the head's first byte for later ones (a keep-alive
    /// connection may idle for `read_timeout` between requests). A client that starts a head
    /// and does not finish it in time gets `408` and is disconnected; one that sends nothing
    /// is disconnected. `None`: only `read_timeout` applies.
    pub head_timeout: Option<Duration>,

    /// Most connections open at once from one IP address (0: no limit). Further ones are
    /// answered `503` and closed at once, so that one address cannot take every slot of
    /// `max_connections`.
    pub max_connections_per_ip: usize,

    /// Addresses `max_connections_per_ip` does not apply to: a reverse proxy in front carries
    /// every client's connection from its one address.
    pub per_ip_exempt: Option<fn(IpAddr) -> bool>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            read_timeout: Some(Duration::from_secs(30)),
            write_timeout: Some(Duration::from_secs(30)),
            max_connections: 512,
            head_timeout: Some(Duration::from_secs(10)),
            max_connections_per_ip: 0,
            per_ip_exempt: None,
        }
    }
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address, with the default
    /// [`ConnectionLimits`].
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::http_with_limits(addr, ConnectionLimits::default())
    }

    /// Shortcut for a simple server on a specific address, with the given limits on its
    /// client connections.
    pub fn http_with_limits<A>(
        addr: A,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        let config = ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        };
        let listener = config.addr.bind()?;
        Self::from_listener_with_limits(listener, None, limits)
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with_limits(listener, ssl_config, ConnectionLimits::default())
    }

    /// Same as `from_listener()`, with the given limits on the client connections.
    pub fn from_listener_with_limits<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::build(listener.into(), ssl_config, limits, None)
    }

    /// A server that calls `handler` for each request on the thread of the request's
    /// connection, rather than queueing requests for `recv()`. Each connection then has a
    /// thread for as long as it is open (at most `max_connections`), so a request that takes
    /// long (a slow upload or download) never delays another connection's request; `recv()`
    /// returns nothing on such a server. `handler` must answer the request before it returns.
    pub fn http_with_handler<A: ToSocketAddrs>(
        addr: A,
        limits: ConnectionLimits,
        handler: Arc<dyn Fn(Request) + Send + Sync>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = ConfigListenAddr::from_socket_addrs(addr)?.bind()?;
        Self::build(listener, None, limits, Some(handler))
    }

    fn build(
        listener: Listener,
        ssl_config: Option<SslConfig>,
        limits: ConnectionLimits,
        handler: Option<Arc<dyn Fn(Request) + Send + Sync>>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if limits.read_timeout == Some(Duration::ZERO)
            || limits.write_timeout == Some(Duration::ZERO)
            || limits.head_timeout == Some(Duration::ZERO)
        {
            return Err("a connection timeout must be longer than zero (or None)".into());
        }
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let num_connections = Arc::new(AtomicUsize::new(0));

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        let inside_num_connections = num_connections.clone();
        thread::spawn(move || {
            // a tasks pool is used to dispatch the connections into threads, at most
            // `max_connections` at a time
            let tasks_pool = util::TaskPool::new(limits.max_connections);
            let per_ip = PerIp::new(limits.max_connections_per_ip, limits.per_ip_exempt);

            log::debug!("Running accept thread");
            while !inside_close_trigger.load(Relaxed) {
                // at the bound, stop accepting (new clients wait in the listen backlog)
                // until a connection closes
                if !tasks_pool.wait_for_slot(&inside_close_trigger) {
                    break;
                }

                let mut ip_slot = None;
                let new_client = match server.accept() {
                    Ok(_) if inside_close_trigger.load(Relaxed) => break,
                    Ok((sock, addr)) => {
                        match per_ip.take(addr.map(|a| a.ip())) {
                            Ok(slot) => ip_slot = slot,
                            Err(()) => {
                                refuse_busy(sock);
                                continue;
                            }
                        }

                        // bounds the time a client can hold its connection thread
                        if let Err(e) = sock.set_timeouts(limits.read_timeout, limits.write_timeout)
                        {
                            log::error!("Could not set timeouts on a new client: {}", e);
                            continue;
                        }

                        use util::RefinedTcpStream;
                        let (read_closable, write_closable) = match ssl {
                            None => RefinedTcpStream::new(sock),
                            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                            Some(ref ssl) => {
                                // trying to apply SSL over the connection
                                // if an error occurs, we just close the socket and resume listening
                                let sock = match ssl.accept(sock) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                };

                                RefinedTcpStream::new(sock)
                            }
                            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                            Some(ref _ssl) => unreachable!(),
                        };

                        Ok(ClientConnection::new(
                            write_closable,
                            read_closable,
                            limits.read_timeout,
                            limits.head_timeout,
                        ))
                    }
                    Err(e) => Err(e),
                };

                match new_client {
                    Ok(client) => {
                        let messages = inside_messages.clone();
                        let connection_count = ConnectionCount::new(&inside_num_connections);
                        let handler = handler.clone();
                        tasks_pool.spawn(Box::new(move || {
                            let _connection_count = connection_count;
                            let _ip_slot = ip_slot;
                            if let Some(handler) = handler {
                                for rq in client {
                                    handler(rq);
                                }
                            } else if client.secure() {
                                // Synchronization is needed for HTTPS requests to avoid a deadlock
                                let (sender, receiver) = mpsc::channel();
                                for rq in client {
                                    messages.push(rq.with_notify_sender(sender.clone()).into());
                                    receiver.recv().unwrap();
                                }
                            } else {
                                for rq in client {
                                    messages.push(rq.into());
                                }
                            }
                        }));
                    }

                    Err(e) if accept_error_is_transient(&e) => {
                        // e.g. out of file descriptors: the listener still works, try again
                        // later rather than stop serving for good
                        log::error!("Error accepting new client: {}", e);
                        thread::sleep(Duration::from_millis(100));
                    }

                    Err(e) => {
                        log::error!("Error accepting new client: {}", e);
                        inside_messages.push(e.into());
                        break;
                    }
                }
            }
            log::debug!("Terminating accept thread");
        });

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
            num_connections,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        self.num_connections.load(Relaxed)
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Stops accepting connections and closes the listening socket (within a few hundred
    /// milliseconds at most; at once unless the accept loop waits for a connection slot), so
    /// that new clients are refused rather than left waiting. Connections already open
    /// are served on.
    pub fn stop_accepting(&self) {
        if self.close.swap(true, Relaxed) {
            return;
        }
        // connect briefly to ourselves to unblock the accept thread
        if let ListenAddr::IP(addr) = &self.listening_addr {
            if let Ok(stream) = TcpStream::connect(addr) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

/// Whether the listener may accept again after this error from `accept()`.
fn accept_error_is_transient(e: &IoError) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM have no stable `ErrorKind`: they are `Uncategorized`
    // (or `OutOfMemory`), like most errors of a listener that stays usable
    !matches!(
        e.kind(),
        IoErrorKind::InvalidInput | IoErrorKind::NotFound | IoErrorKind::Unsupported
    )
}

/// Open connections per client address, for `ConnectionLimits::max_connections_per_ip`.
#[derive(Clone)]
struct PerIp {
    max: usize,
    exempt: Option<fn(IpAddr) -> bool>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in `PerIp`, given back when dropped.
struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize, exempt: Option<fn(IpAddr) -> bool>) -> Self {
        PerIp { max, exempt, open: Arc::default() }
    }

    /// A place for a connection from `ip`; `Err` if that address has its maximum open.
    fn take(&self, ip: Option<IpAddr>) -> Result<Option<IpSlot>, ()> {
        let ip = match ip {
            Some(ip) if self.max > 0 && !self.exempt.is_some_and(|exempt| exempt(ip)) => ip,
            _ => return Ok(None),
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return Err(());
        }
        *count += 1;
        Ok(Some(IpSlot { ip, open: self.open.clone() }))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Answers a connection over its address's limit with `503` and closes it, on the accept
/// thread: the answer is small enough for an empty socket buffer, and a short write timeout
/// bounds it anyway.
fn refuse_busy(sock: Connection) {
    if sock
        .set_timeouts(Some(Duration::from_millis(100)), Some(Duration::from_millis(100)))
        .is_err()
    {
        return;
    }
    let mut sock = sock;
    let response = client::transport_error(
        503,
        "TOO_MANY_REQUESTS",
        "too many connections from this address",
    )
    .with_header("Retry-After: 1".parse::<Header>().expect("a valid header"))
    .with_connection_close();
    let _ = response.raw_print(&mut sock, HTTPVersion(1, 1), &[], false, None);
    let _ = std::io::Write::flush(&mut sock);
    let _ = sock.shutdown(Shutdown::Write);
}

/// Counts an open client connection for `Server::num_connections` while it lives.
struct ConnectionCount(Arc<AtomicUsize>);

impl ConnectionCount {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Relaxed);
        ConnectionCount(count.clone())
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
