//! Requests made in this process (Patch; see PATCHES.md).
//!
//! A caller in the same process as the server may hand it a request held in memory:
//! method, URL, headers and body. It is queued exactly where a connection thread queues a
//! request it read (the first lane included), taken by whoever calls `recv`, and
//! answered the usual way (`respond`, `into_writer`, or the `500` of a dropped
//! request). The bytes of the reply, as they would have gone down a socket, reach the
//! caller through a channel once the writer is dropped. No socket, no connection thread,
//! no parsing of a request head.

use std::io::{self, Cursor, Write};
use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::time::Duration;

use ascii::AsciiString;

use crate::request::new_request;
use crate::{HTTPVersion, Header, HeaderField, Method, Request, Server};

/// The reply to a request made with [`Server::push_in_memory`], once written.
#[derive(Debug)]
pub struct InMemoryReply {
    rx: mpsc::Receiver<Vec<u8>>,
}

impl InMemoryReply {
    /// The bytes of the reply (status line, headers, body), waiting at most `timeout`.
    ///
    /// `TimedOut` when no reply came in time; `ConnectionAborted` when the request was
    /// dropped with nothing written, as a connection closed without an answer would be.
    /// A request the server drops unanswered (a server dropped with requests still
    /// queued, say) is answered `500` by tiny_http, as on a socket.
    pub fn wait(self, timeout: Duration) -> io::Result<Vec<u8>> {
        match self.rx.recv_timeout(timeout) {
            Ok(bytes) => Ok(bytes),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no reply from the server in time",
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server dropped the request without a reply",
            )),
        }
    }
}

/// The response writer of an in-memory request: collects what is written, and hands it
/// to the caller when dropped (the moment a socket's writer would have been released).
struct ReplyWriter {
    out: Vec<u8>,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
}

impl Write for ReplyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ReplyWriter {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            if !self.out.is_empty() {
                // The caller may have stopped waiting; then nobody wants the reply.
                let _ = tx.send(std::mem::take(&mut self.out));
            }
        }
    }
}

impl Server {
    /// Queues a request made in this process, as if a connection had read it: `url` is
    /// the request target (path and query), `headers` are sent as given but for
    /// `Content-Length`, which is the body's length. A URL under the first lane's path
    /// goes to the first lane. `ConnectionRefused` once the server has stopped accepting
    /// (or is dropped); `InvalidInput` for a header that is not ASCII. (Patch.)
    ///
    /// The request is HTTP/1.1 with no remote address; [`crate::Request::in_memory`]
    /// tells it apart.
    pub fn push_in_memory(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> io::Result<InMemoryReply> {
        let (rq, reply) = self.in_memory(method, url, headers, body)?;
        if self.first.as_deref().is_some_and(|p| crate::under(url, p)) {
            self.messages.push_first(rq.into());
        } else {
            self.messages.push(rq.into());
        }
        Ok(reply)
    }

    /// The request [`Server::push_in_memory`] would queue, handed to the caller instead,
    /// for a caller that serves it on its own thread: its reply reaches the
    /// `InMemoryReply` the same way. Refused the same way too. (Patch.)
    pub fn in_memory(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> io::Result<(Request, InMemoryReply)> {
        if self.close.load(Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the server no longer takes requests",
            ));
        }
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        let mut list = Vec::with_capacity(headers.len() + 1);
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            let field =
                HeaderField::from_str(name).map_err(|_| bad("a header name is not ASCII"))?;
            let value =
                AsciiString::from_ascii(*value).map_err(|_| bad("a header value is not ASCII"))?;
            list.push(Header { field, value });
        }
        list.push(Header {
            field: HeaderField::from_str("Content-Length").map_err(|_| bad("Content-Length"))?,
            value: AsciiString::from_ascii(body.len().to_string())
                .map_err(|_| bad("Content-Length"))?,
        });
        let (tx, rx) = mpsc::sync_channel(1);
        let writer = ReplyWriter {
            out: Vec::new(),
            tx: Some(tx),
        };
        let mut rq = new_request(
            false,
            method,
            url.to_string(),
            HTTPVersion(1, 1),
            list,
            None,
            Cursor::new(body),
            writer,
            self.max_body,
            None,
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))?;
        rq.set_in_memory();
        Ok((rq, InMemoryReply { rx }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    use crate::{Limits, Method, Server};

    const WAIT: Duration = Duration::from_secs(30);

    fn server(first: Option<&str>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Server::from_listener_with_lanes(
            listener,
            None,
            Limits::default(),
            first.map(str::to_string),
        )
        .unwrap()
    }

    /// The request is taken from the queue like a socket's, with its method, URL,
    /// headers and body, and what the server writes comes back whole.
    #[test]
    fn a_request_in_memory_is_served_like_a_sockets() {
        let http = server(None);
        let reply = http
            .push_in_memory(
                Method::Patch,
                "/a/b?x=1",
                &[("Authorization", "Bearer t"), ("Content-Length", "999")],
                b"{\"k\": 1}".to_vec(),
            )
            .unwrap();
        let mut rq = http.recv_timeout(WAIT).unwrap().unwrap();
        assert!(rq.in_memory());
        assert_eq!(*rq.method(), Method::Patch);
        assert_eq!(rq.url(), "/a/b?x=1");
        assert_eq!(rq.remote_addr(), None);
        assert_eq!(rq.body_length(), Some(8));
        assert!(rq
            .headers()
            .iter()
            .any(|h| h.field.equiv("Authorization") && h.value.as_str() == "Bearer t"));
        let mut body = String::new();
        rq.as_reader().read_to_string(&mut body).unwrap();
        assert_eq!(body, "{\"k\": 1}");
        let mut w = rq.into_writer();
        w.write_all(b"HTTP/1.1 204 No Content\r\n").unwrap();
        w.write_all(b"\r\n").unwrap();
        drop(w);
        let bytes = reply.wait(WAIT).unwrap();
        assert_eq!(bytes, b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    /// A request handed to its caller is the one that would have been queued, its reply
    /// comes back the same way, and nothing is queued.
    #[test]
    fn a_request_in_memory_can_be_served_by_its_caller() {
        let http = server(None);
        let (mut rq, reply) = http
            .in_memory(Method::Put, "/a?b=c", &[("X-Y", "z")], b"hi".to_vec())
            .unwrap();
        assert!(rq.in_memory());
        assert_eq!((rq.method(), rq.url()), (&Method::Put, "/a?b=c"));
        assert!(rq
            .headers()
            .iter()
            .any(|h| h.field.equiv("X-Y") && h.value.as_str() == "z"));
        let mut body = String::new();
        rq.as_reader().read_to_string(&mut body).unwrap();
        assert_eq!(body, "hi");
        rq.respond(crate::Response::from_string("ok")).unwrap();
        let bytes = reply.wait(WAIT).unwrap();
        assert!(bytes.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&bytes));
        assert!(bytes.ends_with(b"\r\n\r\nok"));
        assert!(http
            .recv_timeout(Duration::from_millis(10))
            .unwrap()
            .is_none());
        http.stop_accepting();
        let err = http.in_memory(Method::Get, "/", &[], Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    /// A request under the first lane's path goes to the first lane, as a connection's.
    #[test]
    fn a_request_in_memory_takes_its_lane() {
        let http = server(Some("/execution"));
        let _other = http
            .push_in_memory(Method::Get, "/api/x", &[], Vec::new())
            .unwrap();
        let _exec = http
            .push_in_memory(Method::Get, "/execution/health", &[], Vec::new())
            .unwrap();
        let rq = http.recv_first_timeout(WAIT).unwrap().unwrap();
        assert_eq!(rq.url(), "/execution/health");
        assert!(http
            .recv_first_timeout(Duration::from_millis(10))
            .unwrap()
            .is_none());
        assert_eq!(http.recv_timeout(WAIT).unwrap().unwrap().url(), "/api/x");
    }

    /// A waiting caller never hangs: a request dropped unanswered gets tiny_http's 500
    /// (queued requests are dropped with the server), one nobody takes times out, and a
    /// server that stopped accepting refuses new ones.
    #[test]
    fn a_caller_never_waits_for_ever() {
        let http = server(None);
        let unanswered = http
            .push_in_memory(Method::Get, "/", &[], Vec::new())
            .unwrap();
        let queued = http
            .push_in_memory(Method::Get, "/", &[], Vec::new())
            .unwrap();
        drop(http.recv_timeout(WAIT).unwrap().unwrap());
        let bytes = unanswered.wait(WAIT).unwrap();
        assert!(
            bytes.starts_with(b"HTTP/1.1 500"),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        let nobody = http
            .push_in_memory(Method::Get, "/", &[], Vec::new())
            .unwrap();
        drop(http);
        let bytes = queued.wait(WAIT).unwrap();
        assert!(bytes.starts_with(b"HTTP/1.1 500"));
        assert!(nobody.wait(WAIT).unwrap().starts_with(b"HTTP/1.1 500"));

        let http = server(None);
        let late = http
            .push_in_memory(Method::Get, "/", &[], Vec::new())
            .unwrap();
        let err = late.wait(Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        http.stop_accepting();
        let err = http
            .push_in_memory(Method::Get, "/", &[], Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    /// A body over the limit is not taken, as from a socket: the request says so.
    #[test]
    fn a_body_over_the_limit_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = Limits {
            max_body: 4,
            ..Limits::default()
        };
        let http = Server::from_listener_with_limits(listener, None, limits).unwrap();
        let _reply = http
            .push_in_memory(Method::Post, "/", &[], b"12345".to_vec())
            .unwrap();
        let rq = http.recv_timeout(WAIT).unwrap().unwrap();
        assert!(rq.body_refused());
        assert_eq!(rq.body_length(), Some(5));
    }
}
