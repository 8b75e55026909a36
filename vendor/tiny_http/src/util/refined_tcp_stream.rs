use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

    /// (Patch.)
    fn set_read_timeout(&mut self, t: Option<std::time::Duration>) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.set_read_timeout(t),
            // The TLS streams keep upstream's behaviour: no read timeout.
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

    // Patch: passed on, so a reply's head and body leave in one `writev`.
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.write_vectored(bufs),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write_vectored(bufs),
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
    deadline: Option<Arc<Deadline>>,
    // Patch: the read timeout the socket has now (`None`: reads block), so it is set
    // again only when a read would otherwise outlast the deadline.
    #[cfg(not(windows))]
    armed: Option<Duration>,
    // Patch: how many times the socket's read timeout was set (for the tests).
    arms: usize,
    // Patch (Windows): the deadline the socket's read timeout was set for.
    #[cfg(windows)]
    armed_at: u64,
}

/// The longest a read on a connection with a deadline waits before it wakes and looks
/// at the deadline again, while that deadline is further away. (Patch.)
#[cfg(not(windows))]
const SLICE: Duration = Duration::from_secs(5);

/// The instant by which the reads on a connection must have returned, or none. Shared
/// between a connection's reading half and the `ClientConnection` that moves it from
/// phase to phase (waiting for a request, reading one, lingering); both sit on the
/// connection's thread, so reading it is one relaxed atomic load. (Patch.)
#[derive(Debug)]
pub(crate) struct Deadline {
    base: Instant,
    /// Nanoseconds from `base`; `NONE` when reads may wait forever.
    at: AtomicU64,
}

impl Deadline {
    const NONE: u64 = u64::MAX;

    pub(crate) fn new() -> Arc<Deadline> {
        Arc::new(Deadline {
            base: Instant::now(),
            at: AtomicU64::new(Self::NONE),
        })
    }

    /// `d` in nanoseconds, kept below `NONE` (584 years).
    fn nanos(d: Duration) -> u64 {
        std::convert::TryFrom::try_from(d.as_nanos()).unwrap_or(Self::NONE).min(Self::NONE - 1)
    }

    fn now(&self) -> u64 {
        Self::nanos(Instant::now().saturating_duration_since(self.base))
    }

    /// Reads must have returned `timeout` from now; `None`: no limit.
    pub(crate) fn set(&self, timeout: Option<Duration>) {
        let at = match timeout {
            Some(t) => self.now().saturating_add(Self::nanos(t)).min(Self::NONE - 1),
            None => Self::NONE,
        };
        self.at.store(at, Ordering::Relaxed);
    }

    /// Moves the deadline `by` later (time the client could not use does not count).
    pub(crate) fn extend(&self, by: Duration) {
        let at = self.at.load(Ordering::Relaxed);
        if at != Self::NONE {
            let later = at.saturating_add(Self::nanos(by)).min(Self::NONE - 1);
            self.at.store(later, Ordering::Relaxed);
        }
    }

    /// What is left until the deadline: `Ok(None)` without one, `Err` once it passed.
    fn left(&self) -> Result<Option<Duration>, ()> {
        let at = self.at.load(Ordering::Relaxed);
        if at == Self::NONE {
            return Ok(None);
        }
        match at.checked_sub(self.now()) {
            Some(left) if left > 0 => Ok(Some(Duration::from_nanos(left))),
            _ => Err(()),
        }
    }
}

impl RefinedTcpStream {
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
            #[cfg(not(windows))]
            armed: None,
            arms: 0,
            #[cfg(windows)]
            armed_at: Deadline::NONE,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            deadline: None,
            #[cfg(not(windows))]
            armed: None,
            arms: 0,
            #[cfg(windows)]
            armed_at: Deadline::NONE,
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

    /// Bounds every read by `deadline`. (Patch.)
    pub(crate) fn set_deadline(&mut self, deadline: Arc<Deadline>) {
        self.deadline = Some(deadline);
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
        // Patch: no read returns later than the deadline, so a whole request (or the
        // wait for the next one) is bounded in time, however its bytes trickle in. The
        // socket's read timeout is not set for every read (a system call each): it is
        // left as it is while a read bounded by it still ends by the deadline, and a
        // read that times out before the deadline simply reads again. So the socket
        // timeout is set only when the deadline comes nearer than it (at most `SLICE`
        // away), and when it has become much shorter than needed; while a client keeps
        // its connection busy, not at all.
        let deadline = match &self.deadline {
            Some(deadline) => deadline.clone(),
            None => return self.stream.read(buf),
        };
        // Windows documents a socket whose receive timed out as in an indeterminate
        // state, so there a timeout is never read past: the socket is armed with the
        // time left whenever the deadline moves (once per phase) and its expiry ends the
        // request. A read later in the same phase may so outlast the deadline by at most
        // that phase's timeout.
        #[cfg(windows)]
        {
            let at = deadline.at.load(Ordering::Relaxed);
            let left = deadline
                .left()
                .map_err(|()| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
            if at != self.armed_at {
                self.stream.set_read_timeout(left)?;
                self.armed_at = at;
                self.arms += 1;
            }
            return match self.stream.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    Err(std::io::ErrorKind::TimedOut.into())
                }
                other => other,
            };
        }
        #[cfg(not(windows))]
        loop {
            let left = deadline
                .left()
                .map_err(|()| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
            let want = match left {
                None => None,
                Some(left) => {
                    let want = left.min(SLICE);
                    match self.armed {
                        // Ends by the deadline, and does not wake much more often than
                        // it needs to.
                        Some(armed) if armed <= left && armed >= want / 2 => Some(armed),
                        _ => Some(want),
                    }
                }
            };
            if want != self.armed {
                self.stream.set_read_timeout(want)?;
                self.armed = want;
                self.arms += 1;
            }
            match self.stream.read(buf) {
                // Unix reports an expired SO_RCVTIMEO as EAGAIN, Windows as a timeout:
                // either way, look at the deadline again. So too after a signal (a
                // receive with a timeout is not restarted by the kernel), which would
                // otherwise end the connection.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                other => return other,
            }
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    // Patch: passed on, so a reply's head and body leave in one `writev`.
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> IoResult<usize> {
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A connected pair: the server's reading half, bounded by a deadline, and the client.
    fn pair() -> (RefinedTcpStream, Arc<Deadline>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (mut read, _write) = RefinedTcpStream::new(Connection::from(server));
        let deadline = Deadline::new();
        read.set_deadline(deadline.clone());
        (read, deadline, client)
    }

    #[test]
    fn a_busy_connection_sets_its_read_timeout_once() {
        let (mut read, deadline, mut client) = pair();
        deadline.set(Some(Duration::from_secs(30)));
        let mut buf = [0u8; 16];
        for i in 0..100u8 {
            client.write_all(&[i]).unwrap();
            assert_eq!(read.read(&mut buf).unwrap(), 1);
            assert_eq!(buf[0], i);
            // A new phase with the same timeout, as between keep-alive requests.
            deadline.set(Some(Duration::from_secs(30)));
        }
        assert_eq!(read.arms, 1);
    }

    #[test]
    fn a_read_ends_at_its_deadline_not_before() {
        let (mut read, deadline, mut client) = pair();
        let started = Instant::now();
        deadline.set(Some(Duration::from_millis(300)));
        let mut buf = [0u8; 16];
        let err = read.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(300));
        // Past the deadline, no read waits at all, even with bytes on their way.
        client.write_all(b"late").unwrap();
        let err = read.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        // A new deadline, and the bytes are there.
        deadline.set(Some(Duration::from_secs(30)));
        assert_eq!(read.read(&mut buf).unwrap(), 4);
        // Without a deadline, the read blocks until data comes.
        deadline.set(None);
        client.write_all(b"x").unwrap();
        assert_eq!(read.read(&mut buf).unwrap(), 1);
    }
}
