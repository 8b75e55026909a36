use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::request::BodyBudget;
use crate::util::refined_tcp_stream::Deadline;
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder};
use crate::util::{SequentialWriter, SequentialWriterBuilder, Turn};
use crate::{Limits, Request, StatusCode};

/// The largest request head (request line and headers) read. (Patch.)
const MAX_HEAD: usize = 64 * 1024;
/// After a refused body, how long and how much of it is read and thrown away before the
/// connection closes, so the client can read the reply instead of a reset. (Patch.)
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

type Writer = SequentialWriter<BufWriter<RefinedTcpStream>>;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // Patch: the limits, the bodies held across connections, and the deadline of the
    // next read on the socket.
    limits: Limits,
    budget: Arc<BodyBudget>,
    deadline: Arc<Deadline>,
    // Patch: true after a request whose body was refused, which ends the connection.
    linger: bool,
    // Patch: requests read from this connection so far.
    served: u32,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// Patch: no request began (the client closed, or the idle timeout passed).
    Idle,
    /// Patch: the request line or a header is not ASCII.
    NotAscii,
    /// Patch: the head is larger than `MAX_HEAD`.
    HeadTooLarge,
    /// Patch: the server holds `Limits::max_buffered` bytes of bodies already.
    Busy,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        limits: Limits,
        budget: Arc<BodyBudget>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let deadline = Deadline::new();
        read_socket.set_deadline(deadline.clone());

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            limits,
            budget,
            deadline,
            linger: false,
            served: 0,
        }
    }

    /// Lets the next reads wait `timeout` at most, from now. (Patch.)
    fn set_deadline(&self, timeout: Option<Duration>) {
        self.deadline.set(timeout);
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    ///
    /// Patch: `budget` is what is left of `MAX_HEAD`, and a line that is not ASCII is
    /// its own error (answered 400), not an I/O error (which closed without a status).
    fn read_next_line(&mut self, budget: &mut usize) -> Result<AsciiString, ReadError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b.map_err(ReadError::ReadIoError)?,
                None => {
                    return Err(ReadError::ReadIoError(IoError::new(
                        ErrorKind::ConnectionAborted,
                        "Unexpected EOF",
                    )))
                }
            };

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf).map_err(|_| ReadError::NotAscii);
            }

            if *budget == 0 {
                return Err(ReadError::HeadTooLarge);
            }
            *budget -= 1;
            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
        }
    }

    /// Waits for the first byte of the next request, then gives the client
    /// `request_timeout` for the whole request. (Patch.)
    ///
    /// `turn` is the wait for the reply to the previous request. The idle time counts
    /// from that reply: a wait that began before it was written and timed out is begun
    /// again once it is. When no request comes, this returns only after that reply is
    /// written, so the connection (and its thread) lasts as long as its last reply.
    fn wait_for_request(&mut self, turn: &mut Turn) -> Result<(), ReadError> {
        loop {
            self.set_deadline(self.limits.idle_timeout);
            let replied = turn.came();
            match self.next_header_source.fill_buf_first() {
                Ok(true) => break,
                Err(e) if e.kind() == ErrorKind::TimedOut && !replied => turn.wait(),
                Ok(false) | Err(_) => {
                    turn.wait();
                    return Err(ReadError::Idle);
                }
            }
        }
        self.set_deadline(self.limits.request_timeout);
        Ok(())
    }

    /// Reads and throws away what the client still sends, within `LINGER` and
    /// `LINGER_BYTES`, before the connection closes. (Patch.)
    fn linger(&mut self) {
        self.set_deadline(Some(LINGER));
        let mut buf = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match self.next_header_source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    ///
    /// Patch: takes the writer of this request and the wait for its turn (see `next`),
    /// reads the body too (see `new_request`), and bounds the head by `MAX_HEAD`.
    fn read(&mut self, writer: Writer, turn: &mut Turn) -> Result<Request, ReadError> {
        self.wait_for_request(turn)?;
        let mut budget = MAX_HEAD;
        let (method, path, version, headers) = {
            // reading the request line, after the empty lines RFC 9112 lets a client send
            let (method, path, version) = {
                let mut line = self.read_next_line(&mut budget)?;
                while line.is_empty() {
                    line = self.read_next_line(&mut budget)?;
                }

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line(&mut budget)?;

                    if line.is_empty() {
                        break;
                    };
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // Patch: a `100 Continue` is written by `new_request` through `writer`, so only
        // after the previous reply; the client cannot send the body before it, so that
        // wait does not count against its `request_timeout`.
        if headers.iter().any(|h: &crate::Header| h.field.equiv("Expect")) && !turn.came() {
            let waited = Instant::now();
            turn.wait();
            self.deadline.extend(waited.elapsed());
        }

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            self.limits.max_body,
            Some(&self.budget),
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::BodyBudgetFull => ReadError::Busy,
                request::RequestCreationError::BadContentLength => ReadError::WrongHeader(version),
            }
        })?;

        self.served = self.served.saturating_add(1);
        let mut request = request;
        request.set_sequence(self.served);
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            if self.linger {
                self.linger = false;
                self.linger();
            }
            return None;
        }

        // Patch: the next request (head and body, both bounded) is read at once, but
        // queued (or refused) only once the reply to this connection's previous request
        // has been written. So a connection holds at most one request in the server's
        // queue and one more in hand, however many the client pipelines; and when the
        // client does not pipeline, that reply is written by the time the next request
        // arrives, and this thread blocks only on the socket. (Waiting for the reply
        // before reading cost a second wake-up per request.) The writer's turn is taken
        // out of it: every path below waits on `turn` before anything is written.
        let mut writer = self.sink.next().unwrap();
        let mut turn = writer.take_turn();
        let read = self.read(writer, &mut turn);
        turn.wait();

        // Patch: every refusal closes the connection, with a JSON body saying why.
        let v11 = HTTPVersion(1, 1);
        let (version, status, detail) = match read {
            Ok(rq) => {
                // updating the status of the connection
                let connection_header = rq
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Connection"))
                    .map(|h| h.value.as_str());

                let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

                match lowercase {
                    Some(ref val) if val.contains("close") => self.no_more_requests = true,
                    Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                    Some(ref val)
                        if !val.contains("keep-alive")
                            && *rq.http_version() == HTTPVersion(1, 0) =>
                    {
                        self.no_more_requests = true
                    }
                    None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                    _ => (),
                };

                // Patch: a body that was not read ends the connection; its bytes would
                // otherwise be taken for the next request.
                if rq.body_refused() {
                    self.no_more_requests = true;
                    self.linger = true;
                }

                // checking HTTP version
                if *rq.http_version() > (1, 1) {
                    let mut w = rq.into_writer();
                    refuse(
                        &mut w,
                        v11,
                        505,
                        "This server only supports HTTP versions 1.0 and 1.1",
                    );
                    return None;
                }

                // returning the request
                return Some(rq);
            }
            Err(ReadError::Idle) => return None,
            Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                (v11, 408, "the request was not received in time")
            }
            Err(ReadError::ReadIoError(_)) => return None,
            Err(ReadError::WrongRequestLine) => (v11, 400, "the request line is not valid HTTP"),
            Err(ReadError::WrongHeader(ver)) => (ver, 400, "a request header is not valid HTTP"),
            Err(ReadError::NotAscii) => (
                v11,
                400,
                "the request line or a header is not ASCII (percent-encode the URL)",
            ),
            Err(ReadError::HeadTooLarge) => (v11, 431, "the request head is larger than 64 KiB"),
            Err(ReadError::Busy) => (
                v11,
                503,
                "the server is holding too many request bodies; try again later",
            ),
            Err(ReadError::ExpectationFailed(ver)) => {
                (ver, 417, "the only expectation understood is 100-continue")
            }
        };
        // we don't know where the next request would start, so we have to close
        let mut w = self.sink.next().unwrap();
        refuse(&mut w, version, status, detail);
        None
    }
}

/// Writes a reply that ends the connection: `status`, with `{"detail": detail}`. (Patch.)
fn refuse<W: Write>(w: &mut W, version: HTTPVersion, status: u16, detail: &str) {
    let body = format!("{{\"detail\": \"{}\"}}", detail);
    let reply = format!(
        "HTTP/{}.{} {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        version.0,
        version.1,
        status,
        StatusCode(status).default_reason_phrase(),
        body.len(),
        body
    );
    let _ = w.write_all(reply.as_bytes());
    let _ = w.flush();
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }

    /// Reads one reply (head and `Content-Length` body) off `r`.
    fn reply(r: &mut impl std::io::BufRead) -> String {
        let mut head = String::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        head + &String::from_utf8(body).unwrap()
    }

    // Patch: a pipelined request is read before the previous reply is written, but queued
    // only after it; its `100 Continue` comes after that reply too; replies keep order.
    #[test]
    fn pipelined_requests_queue_one_at_a_time_and_replies_keep_order() {
        use crate::{Response, Server};
        use std::io::{BufReader, Write};
        use std::time::Duration;
        let server = Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .write_all(
                b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
                  POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
            )
            .unwrap();
        let mut replies = BufReader::new(client.try_clone().unwrap());
        let first = server.recv().unwrap();
        assert_eq!(first.url(), "/1");
        // The second request is not queued while the first has no reply.
        assert!(server
            .recv_timeout(Duration::from_millis(300))
            .unwrap()
            .is_none());
        first.respond(Response::from_string("one")).unwrap();
        let one = reply(&mut replies);
        assert!(one.starts_with("HTTP/1.1 200"), "{}", one);
        assert!(one.ends_with("one"), "{}", one);
        // Only now may the client send the body.
        let cont = reply(&mut replies);
        assert!(cont.starts_with("HTTP/1.1 100"), "{}", cont);
        client
            .write_all(b"body\
                GET /3 HTTP/1.1\r\nHost: x\r\n\r\nGET /4 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut second = server.recv().unwrap();
        assert_eq!(second.url(), "/2");
        let mut body = String::new();
        std::io::Read::read_to_string(second.as_reader(), &mut body).unwrap();
        assert_eq!(body, "body");
        assert!(server
            .recv_timeout(Duration::from_millis(300))
            .unwrap()
            .is_none());
        second.respond(Response::from_string("two")).unwrap();
        for n in ["3", "4"] {
            let rq = server.recv().unwrap();
            assert_eq!(rq.url(), format!("/{}", n));
            rq.respond(Response::from_string(n)).unwrap();
        }
        for n in ["two", "3", "4"] {
            let r = reply(&mut replies);
            assert!(r.ends_with(n), "{}", r);
        }
    }
}
