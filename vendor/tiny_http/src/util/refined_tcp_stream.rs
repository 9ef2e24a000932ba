use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;

pub(crate) enum Stream {
    Http(Connection),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

impl Clone for Stream {
    fn clone(&self) -> Self {
        match self {
            Stream::Http(tcp_stream) => Stream::Http(tcp_stream.try_clone().unwrap()),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Stream::Https(ssl_stream.clone()),
        }
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(tcp_stream)
    }
}

impl Stream {
    /// modelreg patch: the socket sendfile(2) may write to: plain TCP only
    /// (TLS must encrypt in user space; Unix sockets are left on the
    /// buffered path, which is all their users need).
    #[cfg(unix)]
    fn sendfile_socket(&self) -> Option<std::os::unix::io::RawFd> {
        use std::os::unix::io::AsRawFd;
        match self {
            Stream::Http(Connection::Tcp(s)) => Some(s.as_raw_fd()),
            _ => None,
        }
    }

    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.set_read_timeout(timeout),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => Ok(()),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    // modelreg patch: while the deadline is set, no read waits past it (see `ReadDeadline`)
    deadline: Option<ReadDeadline>,
    // the socket's own read timeout, put back once the deadline is cleared
    idle_timeout: Option<Duration>,
    // the socket's read timeout is currently shortened to meet the deadline
    shortened: bool,
}

/// An instant by which a whole request head must have arrived, shared between a connection
/// and the read half of its socket. A per-read timeout alone lets a client keep a head going
/// for ever by sending a byte just before each timeout; while a deadline is set, each read
/// on the socket waits only for what is left of it.
#[derive(Clone, Default)]
pub(crate) struct ReadDeadline(Arc<Mutex<Option<Instant>>>);

impl ReadDeadline {
    pub(crate) fn set(&self, at: Option<Instant>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub(crate) fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RefinedTcpStream {
    /// modelreg patch: see `Stream::sendfile_socket`.
    #[cfg(unix)]
    pub(crate) fn sendfile_socket(&self) -> Option<std::os::unix::io::RawFd> {
        self.stream.sendfile_socket()
    }

    pub(crate) fn new<S>(stream: S) -> (RefinedTcpStream, RefinedTcpStream)
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.clone(), stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            deadline: None,
            idle_timeout: None,
            shortened: false,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            deadline: None,
            idle_timeout: None,
            shortened: false,
        };

        (read, write)
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// Makes reads honour `deadline` while it is set; `idle_timeout` is the socket's read
    /// timeout otherwise.
    pub(crate) fn follow_deadline(&mut self, deadline: ReadDeadline, idle_timeout: Option<Duration>) {
        self.deadline = Some(deadline);
        self.idle_timeout = idle_timeout;
    }

    /// Sends FIN: the client reads the end of the response, and the connection can still
    /// read what the client sends meanwhile (see `ClientConnection::linger`).
    pub(crate) fn shutdown_write(&mut self) -> IoResult<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if let Some(deadline) = &self.deadline {
            match deadline.get() {
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the request head did not arrive in time",
                        ));
                    }
                    // the socket's timeout may be shorter than what is left
                    let left = self.idle_timeout.map_or(left, |idle| idle.min(left));
                    self.stream.set_read_timeout(Some(left))?;
                    self.shortened = true;
                }
                None if self.shortened => {
                    self.stream.set_read_timeout(self.idle_timeout)?;
                    self.shortened = false;
                }
                None => (),
            }
        }
        self.stream.read(buf)
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
