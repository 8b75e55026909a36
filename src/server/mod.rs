//! The HTTP server: owns the tiny_http listener, turns its requests into [`Req`]s under the
//! `base_url` prefix, and writes [`Reply`]s back. The worker threads and their rolling
//! recycle live in `pool.rs`; what a request means is `api`'s business.
//!
//! tiny_http reads requests, head and body, on its own connection threads and queues
//! them; any worker takes the next one. A connection (keep-alive included) is never
//! tied to a worker, which is why a worker can retire between two requests without a
//! client noticing, and why a slow or stalled client never holds a worker. What one
//! client may cost (body size, time to send a request or take a reply, idle time,
//! connections at once) is bounded by [`limits`], inside our patched tiny_http
//! (vendor/tiny_http/PATCHES.md).

#[cfg(unix)]
pub mod arbiter;
mod pool;
pub mod probe;

use std::io::{IoSlice, Read, Write};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub use pool::Control;

use crate::api::{self, ApiError, Apps, Ctx, Method, Probe, Reply, Req};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::executor::client::{Answer, InProcessApi};
use crate::percent::{decode_segment, parse_query};
use crate::store::Store;

/// What a worker calls for each request: the route table in production; tests may wrap it.
pub type Dispatch = fn(&Ctx, &mut Store, &Req) -> (Reply, &'static str);

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub ctx: Arc<Ctx>,
    control: Sender<Control>,
    supervisor: Option<JoinHandle<()>>,
    /// Dropped on shutdown, which stops the execution URL probe.
    _stop_probe: Sender<()>,
    http: Arc<tiny_http::Server>,
    dispatch: Dispatch,
    /// The connection in-process calls are served on when it is free.
    connection: Arc<crate::store::Shared>,
}

impl Running {
    /// Sends the pool a command (add or retire a worker, refresh now).
    pub fn control(&self) -> Sender<Control> {
        self.control.clone()
    }

    /// Stops taking requests, lets in-flight ones finish within `grace`, and returns.
    pub fn shutdown(mut self, grace: Duration) {
        let _ = self.control.send(Control::Shutdown(grace));
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
    }

    /// Stops accepting connections and serves the open ones until they close or `limit`
    /// passes, every reply saying `Connection: close`: what a process worker does before
    /// [`Running::shutdown`], so a kept-alive client is told to reconnect (to another
    /// worker) rather than finding its connection gone.
    pub fn drain(&self, limit: Duration) {
        self.ctx.pool.draining.store(true, Ordering::Relaxed);
        self.http.stop_accepting();
        let deadline = Instant::now() + limit;
        while self.http.open_connections() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.http.open_connections();
        if left > 0 {
            log::info!("{left} idle connection(s) still open after {limit:?}; closing them");
        }
    }

    /// The Execution API for callers in this process (the supervisors of a scheduler
    /// running beside this server), without a socket.
    pub fn in_process(&self) -> Arc<dyn InProcessApi> {
        Arc::new(self.in_process_handle())
    }

    /// The connection in-process calls are served on: a scheduler in this process
    /// holds it and lends it whenever it waits (`store::Held`), so the calls and its
    /// passes find each other's pages cached.
    pub fn connection(&self) -> Arc<crate::store::Shared> {
        self.connection.clone()
    }

    fn in_process_handle(&self) -> InProcess {
        InProcess {
            http: Arc::downgrade(&self.http),
            ctx: Arc::downgrade(&self.ctx),
            dispatch: self.dispatch,
            own: self.connection.clone(),
            base: format!("{}/execution/", self.ctx.prefix),
            host: self.addr.to_string(),
        }
    }

    /// Blocks until the pool stops (after a `Shutdown` sent through [`Running::control`]).
    pub fn wait(mut self) {
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
    }
}

/// The Execution API reached from inside the server's process ([`Running::in_process`]).
///
/// A call is a request in memory (method, path, headers, body), served as any other
/// (route table, token check and refresh, metrics, log, a panic's 500), whose reply comes
/// back as the bytes it would have written to a socket. One call at a time is served on
/// its caller's own thread, on the connection [`Running::connection`] (unless the
/// scheduler it is lent to has it back); while one is, the others are queued where a connection thread queues the requests it reads, in the Execution
/// API's lane, for the pool's workers. What is saved is the client's and server's HTTP
/// work, the loopback connection and its system calls, and, on the caller's thread, the
/// hand-over to a worker and back: a thread wake-up each way, ~40 µs apiece on the
/// bench machine, and the first of them on the path from a task's end to its
/// downstream's start.
///
/// Only a handle: it does not keep the server alive. Once the server has stopped, a call
/// fails as one to an unreachable server would.
struct InProcess {
    http: std::sync::Weak<tiny_http::Server>,
    ctx: std::sync::Weak<Ctx>,
    dispatch: Dispatch,
    /// The connection of the call served on its caller's thread.
    own: Arc<crate::store::Shared>,
    /// The Execution API's path, `{prefix}/execution/`.
    base: String,
    /// The server's address, sent as `Host` as an HTTP client would.
    host: String,
}

impl InProcess {
    /// Serves the call on this thread if the connection for it is free (see
    /// [`crate::store::Shared::try_serve`]); its request otherwise, for the pool.
    fn serve_here(
        &self,
        http: &tiny_http::Server,
        method: tiny_http::Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> std::io::Result<tiny_http::InMemoryReply> {
        let Some(ctx) = self.ctx.upgrade() else {
            return http.push_in_memory(method, target, headers, body);
        };
        let mut body = Some(body);
        let here = ctx.holding_wakes(|| {
            self.own.try_serve(|store| {
                let body = body.take().expect("taken once");
                match http.in_memory(method.clone(), target, headers, body) {
                    Ok((rq, reply)) => {
                        let sound = serve(&ctx, store, self.dispatch, rq);
                        (Ok(reply), sound)
                    }
                    Err(e) => (Err(e), true),
                }
            })
        });
        match here {
            Some(reply) => reply,
            None => http.push_in_memory(method, target, headers, body.expect("not served")),
        }
    }
}

/// Reads what `respond` wrote: a status line, headers, an empty line, the body.
fn parse_answer(bytes: &[u8]) -> std::result::Result<Answer, String> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the reply has no end of head")?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| "the reply head is not text")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("the reply has no status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    })
}

impl InProcessApi for InProcess {
    fn base(&self) -> &str {
        &self.base
    }

    /// `Err` says why there was no reply: the server stopped (or is stopping), or did not
    /// answer in time.
    fn call(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> std::result::Result<Answer, String> {
        let method = <tiny_http::Method as std::str::FromStr>::from_str(method)
            .map_err(|()| format!("{method} is not an HTTP method"))?;
        let pending = {
            // The server is held only while the request is queued or served here: a
            // call queued when it stops gets the 500 of a dropped request, or times out.
            // One served here runs to its end (the store's busy timeout bounds it).
            let http = self
                .http
                .upgrade()
                .ok_or("the server in this process has stopped")?;
            let mut all = Vec::with_capacity(headers.len() + 1);
            all.push(("Host", self.host.as_str()));
            all.extend_from_slice(headers);
            self.serve_here(&http, method, target, &all, body)
                .map_err(|e| e.to_string())?
        };
        let bytes = pending.wait(timeout).map_err(|e| e.to_string())?;
        parse_answer(&bytes)
    }
}

/// The `base_url` path: `""` or `/a/b`. Accepts a full URL or a path, with or without a
/// trailing slash.
pub fn prefix_of(base_url: &str) -> String {
    let path = match base_url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => base_url,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/').to_string()
}

/// Binds the listener and starts the workers. The database must exist (migrated).
pub fn start(cfg: Config, apps: Apps, dispatch: Dispatch, clock: Clock) -> Result<Running> {
    start_with(cfg, apps, dispatch, None, clock)
}

/// [`start`], with a channel that wakes a scheduler in this process when tasks finish.
pub fn start_with(
    cfg: Config,
    apps: Apps,
    dispatch: Dispatch,
    scheduler_wake: Option<Sender<()>>,
    clock: Clock,
) -> Result<Running> {
    start_on(cfg, apps, dispatch, scheduler_wake, clock, None)
}

/// [`start_with`], serving `shared` (a non-blocking listener other processes accept on
/// too: a process worker's, see `arbiter`) instead of binding `[api] host:port`.
pub fn start_on(
    cfg: Config,
    apps: Apps,
    dispatch: Dispatch,
    scheduler_wake: Option<Sender<()>>,
    clock: Clock,
    shared: Option<(std::net::TcpListener, crate::api::ProcessWorker)>,
) -> Result<Running> {
    let (shared, me) = shared.unzip();
    let secret = crate::jwt::secret(&cfg.auth.jwt_secret, &cfg.home)?;
    let addr = format!("{}:{}", cfg.api.host, cfg.api.port);
    let mut limits = limits(&cfg);
    limits.shared_listener = shared.is_some();
    // The Execution API's requests come first, and to the worker kept for them
    // (server/pool.rs's `Lanes`).
    let first = apps
        .execution
        .then(|| format!("{}/execution", prefix_of(&cfg.api.base_url)));
    let listener = match shared {
        Some(l) => Ok(l),
        None => listen(&addr),
    };
    let http = listener
        .and_then(|l| {
            tiny_http::Server::from_listener_with_lanes(l, None, limits, first)
                .map_err(std::io::Error::other)
        })
        .map_err(|e| {
            Error::Failed(format!(
                "cannot listen on {addr}: {e}; set [api] port (or --port) to a free port"
            ))
        })?;
    let local = http
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Failed(format!("{addr} is not an IP address")))?;
    let prefix = prefix_of(&cfg.api.base_url);
    let exec_url = probe::execution_url(&cfg, local);
    let ctx = Arc::new(Ctx {
        apps,
        prefix,
        metrics: Default::default(),
        pool: Default::default(),
        execution_probe: std::sync::Mutex::new(Probe {
            url: exec_url,
            ok: None,
            detail: "not checked yet".into(),
        }),
        started: Instant::now(),
        file_tokens: crate::api::core::signing::FileTokens::new(&secret),
        secret,
        scheduler_wake,
        limiter: Default::default(),
        dags: Default::default(),
        dag_pieces: Default::default(),
        clock,
        cfg,
    });
    if let Some(me) = me {
        let _ = ctx.pool.process.set(me);
    }
    ctx.pool.load_plugins(&ctx.cfg.core.plugins_folder);
    let http = Arc::new(http);
    let (control, supervisor) = pool::start(http.clone(), ctx.clone(), dispatch)?;
    let (stop_probe, stop) = crossbeam_channel::bounded(0);
    probe::watch(ctx.clone(), stop);
    let connection = Arc::new(crate::store::Shared::new(ctx.cfg.database.path.clone()));
    Ok(Running {
        addr: local,
        ctx,
        control,
        supervisor: Some(supervisor),
        _stop_probe: stop_probe,
        http,
        dispatch,
        connection,
    })
}

/// File descriptors kept for everything but client connections (the database, logs,
/// task processes and their pipes).
#[cfg(unix)]
const FDS_RESERVED: u64 = 256;

/// Bytes of request bodies held at once across all connections (or one
/// `max_body_size`, if larger): bodies are read before a worker sees their request, so
/// without this, every connection could hold a full one.
const BODY_MEMORY: usize = 256 * 1024 * 1024;

/// What one client may cost, from `[api]`: the body limit, the timeouts, and the
/// connections served at once, no more than the process's file descriptors allow.
fn limits(cfg: &Config) -> tiny_http::Limits {
    let secs = |s: f64| Some(Duration::from_secs_f64(s));
    let mut max_connections = u64::from(cfg.api.max_connections);
    if let Some(fds) = raise_fd_limit() {
        // Each connection holds two descriptors (tiny_http reads and writes through a
        // clone of the socket).
        #[cfg(unix)]
        let fit = fds.saturating_sub(FDS_RESERVED) / 2;
        #[cfg(not(unix))]
        let fit = fds;
        if fit < max_connections {
            log::warn!(
                "[api] max_connections {max_connections} lowered to {fit}: the process may open {fds} files"
            );
            max_connections = fit.max(1);
        }
    }
    let max_body = usize::try_from(cfg.api.max_body_size).unwrap_or(usize::MAX);
    tiny_http::Limits {
        max_body,
        max_buffered: BODY_MEMORY.max(max_body),
        idle_timeout: secs(cfg.api.worker_timeout),
        request_timeout: secs(cfg.api.request_timeout),
        write_timeout: secs(cfg.api.request_timeout),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        shared_listener: false,
    }
}

/// Raises the soft limit of open files to the hard one (Unix, where the soft one is
/// often 1024: a few hundred connections) and returns it; `None` where there is no
/// such limit (Windows) or it cannot be read.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// Windows has no per-process limit on sockets to raise.
#[cfg(windows)]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// Serves one request from the queue: read, route, reply, count. Returns false when the
/// handler panicked: the client got a 500 and the caller must retire (the store may be
/// mid-transaction).
fn serve(ctx: &Ctx, store: &mut Store, dispatch: Dispatch, mut rq: tiny_http::Request) -> bool {
    let started = Instant::now();
    let method_name = method_label(rq.method());
    let mut healthy = true;
    let (reply, route) = match read(ctx, &mut rq) {
        Ok(Routed::Request(req)) if req.path.starts_with("/plugins/") => {
            (plugin_file(ctx, &req), "/plugins/{plugin}/{file}")
        }
        Ok(Routed::Request(req)) => {
            match catch_unwind(AssertUnwindSafe(|| dispatch(ctx, store, &req))) {
                Ok(done) => done,
                Err(_) => {
                    healthy = false;
                    ctx.metrics.panics.fetch_add(1, Ordering::Relaxed);
                    let detail = "internal server error: the handler panicked; see the server log";
                    (ApiError::new(500, detail).into_reply(), "panic")
                }
            }
        }
        Ok(Routed::Reply(reply)) => (reply, "outside_prefix"),
        Err(reply) => (reply, "bad_request"),
    };
    let status = reply.status;
    ctx.metrics
        .observe(method_name, route, status, started.elapsed());
    if rq.in_memory() {
        ctx.metrics.observe_in_process(route);
    }
    if status >= 500 {
        log::warn!("{} {} -> {status}", rq.method(), rq.url());
    } else {
        log::debug!(
            "{} {} -> {status} in {:?}",
            rq.method(),
            rq.url(),
            started.elapsed()
        );
    }
    respond(rq, reply, ctx.pool.draining.load(Ordering::Relaxed));
    healthy
}

/// `GET /plugins/{plugin}/{path}`: a file of a plugin's `static_folder`.
fn plugin_file(ctx: &Ctx, req: &Req) -> Reply {
    let not_found = || ApiError::not_found("no such plugin file").into_reply();
    if req.method != Method::Get {
        return ApiError::new(405, "Method Not Allowed").into_reply();
    }
    let rest = req.path.trim_start_matches("/plugins/");
    let Some((name, file)) = rest.split_once('/') else {
        return not_found();
    };
    // No way out of the folder: every part is a plain name.
    if file
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == ".." || part.contains('\\'))
    {
        return not_found();
    }
    let plugins = ctx.pool.plugins();
    let Some(dir) = plugins
        .plugins
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.static_folder.clone())
    else {
        return not_found();
    };
    match std::fs::read(dir.join(file)) {
        Ok(bytes) => Reply::bytes(200, crate::api::assets::mime(file), bytes),
        Err(_) => not_found(),
    }
}

/// Requests one keep-alive connection may carry before the server closes it: Apache's
/// `MaxKeepAliveRequests` default.
const KEEPALIVE_REQUESTS: u32 = 100;

/// Writes a reply; a client that went away is not an error worth more than a debug line.
///
/// The reply is written by hand through the request's writer, which keeps tiny_http's
/// ordering of pipelined replies: its own `respond` sends a body in 8 KB pieces (each its
/// own `send` and, with `TCP_NODELAY`, its own segment) and drops a `Connection` header.
fn respond(rq: tiny_http::Request, reply: Reply, draining: bool) {
    // tiny_http gives each connection one of its threads for the connection's whole
    // life. Upstream's pool could hand a burst of new connections to fewer threads than
    // it thought idle, so one waited until another connection closed (our copy counts
    // right: PATCHES.md). Browsers open such bursts and leave the connections idle, so
    // theirs still close after each reply, and other clients' after KEEPALIVE_REQUESTS:
    // a kept-alive connection holds a thread, which [api] worker_timeout also bounds.
    // The client closes after reading `Connection: close`, which ends tiny_http's thread.
    let browser = rq.headers().iter().any(|h| h.field.equiv("Sec-Fetch-Mode"));
    // tiny_http closes a connection whose body it refused; the client should know.
    let close = browser || draining || rq.body_refused() || rq.sequence() >= KEEPALIVE_REQUESTS;
    let tiny_http::HTTPVersion(major, minor) = *rq.http_version();
    let head_only = *rq.method() == tiny_http::Method::Head;
    let status = reply.status;
    // 1xx, 204 and 304 replies have no body, nor a length.
    let bodiless = matches!(status, 100..=199 | 204 | 304);
    let with_body = !(bodiless || head_only);
    // The head in one buffer, written with `write!` rather than a `format!` (an
    // allocation) per line.
    let mut out = Vec::with_capacity(256);
    let _ = write!(
        out,
        "HTTP/{major}.{minor} {status} {}\r\n",
        tiny_http::StatusCode(status).default_reason_phrase()
    );
    let fits = |s: &str| s.is_ascii() && !s.contains(['\r', '\n']);
    for (name, value) in reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain([("X-Content-Type-Options", "nosniff")])
        .filter(|(n, v)| fits(n) && fits(v))
    {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    http_date(&mut out);
    if !bodiless {
        let _ = write!(out, "Content-Length: {}\r\n", reply.body.len());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    // The head and the body in one `writev`, so the reply leaves in as few segments as
    // the kernel makes of it, and the body is not copied (a kept page is shared).
    let body: &[u8] = if with_body { &reply.body } else { &[] };
    let mut w = rq.into_writer();
    let done = write_all_vectored(&mut w, &mut [IoSlice::new(&out), IoSlice::new(body)])
        .and_then(|()| w.flush());
    if let Err(e) = done {
        log::debug!("client went away before the reply: {e}");
    }
}

/// Writes every byte of `bufs`, as few calls as the writer takes them in (the standard
/// library's `write_all_vectored` is not stable yet).
fn write_all_vectored(w: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends the `Date` header line: the time formatted once a second per thread (as
/// HTTP dates have a one-second resolution), not on every reply.
fn http_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    DATE.with_borrow_mut(|(second, line)| {
        if *second != now.timestamp() {
            *second = now.timestamp();
            *line = format!("Date: {}\r\n", now.format("%a, %d %b %Y %H:%M:%S GMT"));
        }
        out.extend_from_slice(line.as_bytes());
    });
}

enum Routed {
    Request(Req),
    /// Answered without routing: a redirect into the prefix, or a 404 outside it.
    Reply(Reply),
}

/// Reads a tiny_http request into a [`Req`], enforcing the prefix and the body limit.
fn read(ctx: &Ctx, rq: &mut tiny_http::Request) -> std::result::Result<Routed, Reply> {
    let method = Method::parse(rq.method().as_str())
        .ok_or_else(|| ApiError::new(405, "Method Not Allowed").into_reply())?;
    let url = rq.url().to_string();
    let (raw_path, raw_query) = url.split_once('?').unwrap_or((&url, ""));
    if !raw_path.starts_with('/') {
        return Err(ApiError::bad_request("the request path must start with /").into_reply());
    }
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };

    // The prefix URLs in replies carry: a trusted proxy's, then our own.
    let forwarded = if ctx.cfg.api.proxy_headers {
        header("x-forwarded-prefix")
            .map(prefix_of)
            .unwrap_or_default()
    } else {
        String::new()
    };
    let public_prefix = format!("{forwarded}{}", ctx.prefix);
    let below = if ctx.prefix.is_empty() {
        raw_path
    } else if raw_path == "/" || raw_path == ctx.prefix {
        return Ok(Routed::Reply(Reply::redirect(&format!("{public_prefix}/"))));
    } else if let Some(rest) = raw_path
        .strip_prefix(&ctx.prefix)
        .filter(|r| r.starts_with('/'))
    {
        rest
    } else {
        let detail = format!(
            "Not Found: this server serves everything under {}/",
            ctx.prefix
        );
        return Ok(Routed::Reply(ApiError::not_found(detail).into_reply()));
    };
    let path = decode_segment(below)
        .filter(|p| !p.contains('\0'))
        .ok_or_else(|| {
            ApiError::bad_request("the request path is not valid percent-encoded UTF-8")
                .into_reply()
        })?;
    let query = parse_query(raw_query).ok_or_else(|| {
        ApiError::bad_request("the query string is not valid percent-encoded UTF-8").into_reply()
    })?;

    let limit = ctx.cfg.api.max_body_size;
    let too_large = || {
        ApiError::new(
            413,
            format!("the request body is larger than [api] max_body_size ({limit} bytes)"),
        )
        .into_reply()
    };
    if rq.body_length().is_some_and(|n| n as u64 > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            ApiError::bad_request(format!("cannot read the request body: {e}")).into_reply()
        })?;
    if body.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Routed::Request(Req {
        method,
        path,
        raw_path: below.to_string(),
        query,
        headers,
        body,
        prefix: public_prefix,
        remote: rq.remote_addr().copied(),
    }))
}

fn method_label(m: &tiny_http::Method) -> &'static str {
    Method::parse(m.as_str()).map_or("OTHER", Method::as_str)
}

/// The production dispatch.
pub fn dispatch(ctx: &Ctx, store: &mut Store, req: &Req) -> (Reply, &'static str) {
    api::handle(ctx, store, req)
}

/// Binds `addr` (the first of its addresses that binds, as std does) with TCP_NODELAY,
/// which every accepted connection inherits: tiny_http writes a reply's head and body
/// in two writes, and with Nagle's algorithm the body of any reply over ~1 KB waited
/// for the client's delayed ACK, ~40 ms per request on a kept-alive connection.
fn listen(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let mut last = None;
    for a in std::net::ToSocketAddrs::to_socket_addrs(addr)? {
        let bound = Socket::new(Domain::for_address(a), Type::STREAM, None).and_then(|s| {
            // As std does on Unix, so a restart can bind while old connections linger;
            // never on Windows, where it would let another process share the port.
            #[cfg(unix)]
            s.set_reuse_address(true)?;
            s.set_tcp_nodelay(true)?;
            s.bind(&a.into())?;
            s.listen(1024)?;
            Ok(s)
        });
        match bound {
            Ok(s) => return Ok(s.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to listen on")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most 7 bytes a call, from the first slice offered only.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reply_is_written_whole_and_in_order_by_a_writer_taking_bits() {
        let (head, body) = (b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), vec![b'x'; 100]);
        let mut w = Trickle(Vec::new());
        write_all_vectored(&mut w, &mut [IoSlice::new(&head), IoSlice::new(&body)]).unwrap();
        assert_eq!(w.0, [head, body].concat());
        let mut w = Trickle(Vec::new());
        write_all_vectored(&mut w, &mut [IoSlice::new(b""), IoSlice::new(b"")]).unwrap();
        assert!(w.0.is_empty());
    }

    /// Bodies held at once across connections are bounded: a body that would go over
    /// the budget gets a 503, and the budget comes back when a request is dropped.
    #[test]
    fn bodies_held_at_once_are_bounded() {
        use std::io::{Read, Write};
        let limits = tiny_http::Limits {
            max_body: 8_000,
            max_buffered: 10_000,
            ..Default::default()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let http = tiny_http::Server::from_listener_with_limits(listener, None, limits).unwrap();
        let wait = Duration::from_secs(30);
        let post = || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(wait)).unwrap();
            let body = "x".repeat(6_000);
            write!(
                s,
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            s
        };
        // The first body is read and its request queued, holding 6,000 bytes.
        let _first = post();
        let held = http.recv_timeout(wait).unwrap().unwrap();
        // A second one does not fit beside it.
        let mut second = post();
        let mut reply = String::new();
        second.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        // Once the first request is gone, a body fits again.
        drop(held);
        let _third = post();
        let mut rq = http.recv_timeout(wait).unwrap().unwrap();
        let mut body = Vec::new();
        rq.as_reader().read_to_end(&mut body).unwrap();
        assert_eq!(body.len(), 6_000);
    }

    /// A test home with an empty DAG folder and a migrated database.
    fn home_cfg(name: &str) -> (std::path::PathBuf, Config) {
        let home = std::env::temp_dir().join(format!("updraft-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join("dags")).unwrap();
        let env: Vec<(String, String)> = [
            ("UPDRAFT__CORE__LOAD_EXAMPLES", "False"),
            ("UPDRAFT__API__PORT", "0"),
            ("UPDRAFT__API__HOST", "127.0.0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = Config::load(&home, &env).unwrap();
        drop(Store::open(&cfg.database.path).unwrap());
        (home, cfg)
    }

    /// A call in process is served by the real handler stack (counted, in process, by
    /// route; token checked); once the server has stopped, it fails at once, and the
    /// client's retries end in `Unreachable`, as with a server that is gone.
    #[test]
    fn calls_in_process_are_served_and_fail_once_the_server_stops() {
        use crate::executor::client::{CallError, Client, Transport};

        let (home, cfg) = home_cfg("inproc");
        let running = start(cfg, Apps::ALL, dispatch, Clock::System).unwrap();
        let inproc = running.in_process();
        let wait = Duration::from_secs(30);
        let health = inproc
            .call("GET", "/execution/health", &[], Vec::new(), wait)
            .unwrap();
        assert_eq!(
            health.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&health.body)
        );
        let client = Client::with_transport(Transport::InProcess(inproc.clone()), "", "nope");
        match client.variable("x") {
            Err(CallError::Status(401 | 403, _)) => {}
            other => panic!("a bad token must be refused: {other:?}"),
        }
        let metrics = running.ctx.metrics.render(&[]);
        assert!(
            metrics
                .contains("updraft_http_in_process_requests_total{route=\"/execution/health\"} 1"),
            "{metrics}"
        );
        running.shutdown(Duration::from_secs(5));
        let gone = inproc.call("GET", "/execution/health", &[], Vec::new(), wait);
        assert!(gone.is_err(), "{gone:?}");
        match client.variable("x") {
            Err(CallError::Unreachable(_)) => {}
            other => panic!("a stopped server is unreachable: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&home);
    }

    /// Answers with the name of the thread that served the request.
    fn who_serves(_: &Ctx, _: &mut Store, _: &Req) -> (Reply, &'static str) {
        let me = std::thread::current().name().unwrap_or("?").to_string();
        (Reply::bytes(200, "text/plain", me.into_bytes()), "who")
    }

    /// A call is served on its caller's thread; one made while the connection for it is
    /// held (by a scheduler, say) goes to the pool's workers, and a handler's panic costs
    /// its caller a 500 and the connection, not the next call.
    #[test]
    fn a_call_in_process_is_served_by_its_caller_unless_another_is() {
        let (home, cfg) = home_cfg("inproc-here");
        let db = cfg.database.path.clone();
        let running = start(cfg, Apps::ALL, who_serves, Clock::System).unwrap();
        let inproc = Arc::new(running.in_process_handle());
        let wait = Duration::from_secs(30);
        let call = move |inproc: &InProcess| {
            let a = inproc
                .call("GET", "/execution/health", &[], Vec::new(), wait)
                .unwrap();
            String::from_utf8(a.body).unwrap()
        };
        let caller = |inproc: Arc<InProcess>| {
            std::thread::Builder::new()
                .name("the-caller".into())
                .spawn(move || call(&inproc))
                .unwrap()
                .join()
                .unwrap()
        };
        assert_eq!(caller(inproc.clone()), "the-caller");
        let store = Store::open_existing(&db).unwrap();
        let mut held = crate::store::Held::new(store, Some(running.connection()));
        let by = caller(inproc.clone());
        assert!(by.starts_with("api-worker-"), "{by}");
        held.lend();
        assert_eq!(caller(inproc.clone()), "the-caller");
        held.take_back().unwrap();
        let by = caller(inproc.clone());
        assert!(by.starts_with("api-worker-"), "{by}");
        drop(held);
        running.shutdown(Duration::from_secs(5));

        // The workers' readiness probe is answered; the calls panic.
        fn panics(_: &Ctx, _: &mut Store, req: &Req) -> (Reply, &'static str) {
            assert!(!req.path.starts_with("/execution"), "on purpose");
            (Reply::bytes(200, "text/plain", Vec::new()), "probe")
        }
        let (home2, cfg) = home_cfg("inproc-panic");
        let running = start(cfg, Apps::ALL, panics, Clock::System).unwrap();
        let inproc = running.in_process_handle();
        for _ in 0..2 {
            let a = inproc
                .call("GET", "/execution/health", &[], Vec::new(), wait)
                .unwrap();
            assert_eq!(a.status, 500);
            assert!(!inproc.own.is_here());
        }
        running.shutdown(Duration::from_secs(5));
        for h in [home, home2] {
            let _ = std::fs::remove_dir_all(&h);
        }
    }

    /// Answers with the thread serving it and whether the wake it asks for went out
    /// at once.
    fn wakes(ctx: &Ctx, _: &mut Store, req: &Req) -> (Reply, &'static str) {
        // The readiness probe's requests are not this test's.
        if !req.path.ends_with("/wake") {
            return (Reply::bytes(200, "text/plain", Vec::new()), "probe");
        }
        ctx.wake_scheduler();
        let sent = ctx.scheduler_wake.as_ref().is_some_and(|tx| !tx.is_empty());
        let me = std::thread::current().name().unwrap_or("?").to_string();
        let body = format!("{me} {}", if sent { "sent" } else { "held" });
        (Reply::bytes(200, "text/plain", body.into_bytes()), "wakes")
    }

    /// A call served on its caller's thread wakes the scheduler only once it is done
    /// with the connection, which the scheduler takes back when woken; one served by
    /// the pool wakes it at once.
    #[test]
    fn a_call_served_by_its_caller_wakes_the_scheduler_after_its_reply() {
        let (home, cfg) = home_cfg("inproc-wakes");
        let db = cfg.database.path.clone();
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let running = start_with(cfg, Apps::ALL, wakes, Some(wake_tx), Clock::System).unwrap();
        let inproc = Arc::new(running.in_process_handle());
        let call = |inproc: Arc<InProcess>| {
            std::thread::Builder::new()
                .name("the-caller".into())
                .spawn(move || {
                    let a = inproc
                        .call(
                            "GET",
                            "/execution/wake",
                            &[],
                            Vec::new(),
                            Duration::from_secs(30),
                        )
                        .unwrap();
                    String::from_utf8(a.body).unwrap()
                })
                .unwrap()
                .join()
                .unwrap()
        };
        assert_eq!(call(inproc.clone()), "the-caller held");
        assert!(
            wake_rx.try_recv().is_ok(),
            "the held wake went out after the reply"
        );
        let held = crate::store::Held::new(
            Store::open_existing(&db).unwrap(),
            Some(running.connection()),
        );
        let by = call(inproc.clone());
        assert!(
            by.starts_with("api-worker-") && by.ends_with(" sent"),
            "{by}"
        );
        assert!(wake_rx.try_recv().is_ok());
        drop(held);
        running.shutdown(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn prefixes_from_base_url() {
        for (base, want) in [
            ("", ""),
            ("http://localhost:28080/d12345", "/d12345"),
            ("http://localhost:28080/d12345/", "/d12345"),
            ("https://h/a/b/", "/a/b"),
            ("http://h:1", ""),
            ("/x", "/x"),
            ("/x/", "/x"),
        ] {
            assert_eq!(prefix_of(base), want, "{base}");
        }
    }
}
