//! Process workers (`[api] server_type = gunicorn`, Unix): the api-server process is an
//! arbiter that holds the listening socket and runs `[api] workers` worker processes of
//! this same binary, each an `api-server` with a small thread pool of its own
//! ([`THREADS`]), all accepting on that one socket.
//!
//! The socket reaches a worker as an inherited descriptor (its stdin), not through
//! `SO_REUSEPORT`: one socket means one accept queue that lives as long as the arbiter,
//! so a worker that stops accepting leaves nothing behind (with `SO_REUSEPORT` each
//! worker has its own queue, and the connections waiting in it are reset when it
//! closes), and port 0 stays one port. The socket is non-blocking and every worker waits
//! for it with poll(2), so a worker can stop accepting at a moment of its choosing
//! (tiny_http's `Limits::shared_listener`).
//!
//! A worker reports on its stdout, a pipe the arbiter reads: `ready <port>` once its
//! threads passed their own readiness checks, with the loopback port of a private
//! listener that only it serves; then `alive` every second (a write that fails means the
//! arbiter is gone, and the worker stops). The arbiter then asks that worker itself,
//! through its private port, for `GET /api/v2/monitor/health` and checks the answering
//! pid: only a worker that passed both counts as ready.
//!
//! Rolling refresh, as Airflow's gunicorn arbiter does it: every
//! `worker_refresh_interval`, `worker_refresh_batch_size` new workers first, each ready,
//! then as many of the oldest get SIGTERM: a worker that gets it stops accepting, answers
//! what its connections still send with `Connection: close` until they have closed (or
//! a few seconds pass), lets its threads finish, and exits. A new worker that is not
//! ready aborts the cycle and the old ones stay. SIGTTIN adds a worker, SIGTTOU retires
//! the oldest (never the last), SIGHUP refreshes them all; a worker that dies is
//! replaced. The arbiter publishes the pool (pid, start, generation, RSS of each worker)
//! in a state file that every worker's health route reads.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, after, never, select, unbounded};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::{Control, Dispatch, Running, prefix_of};
use crate::api::{Apps, ProcessWorker};
use crate::clock::Clock;
use crate::config::{Config, MAX_WORKERS};
use crate::error::{Error, Result};

/// Threads of each worker process: one kept for the Execution API, the rest for
/// anything (server/pool.rs's lanes). A worker is one of `[api] workers`; its threads
/// are its own business, as a uvicorn worker's event loop is.
pub const THREADS: u32 = 4;

/// Names a worker process in its environment (and says that it is one).
pub const ENV_ID: &str = "UPDRAFT_WORKER_ID";
const ENV_GENERATION: &str = "UPDRAFT_WORKER_GENERATION";
const ENV_STATE: &str = "UPDRAFT_WORKER_STATE";

/// How long a new worker may take to report ready and answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a retiring worker may take to drain and exit before it is killed.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping worker waits for its clients to close their connections.
const DRAIN: Duration = Duration::from_secs(5);
/// How often the arbiter looks at its workers (exits, RSS) when nothing happens.
const TICK: Duration = Duration::from_secs(1);
/// How often the RSS figures in the state file are read anew.
const RSS_EVERY: Duration = Duration::from_secs(5);
/// How often a worker tells the arbiter it is alive (and finds out whether it is).
const ALIVE_EVERY: Duration = Duration::from_secs(1);

/// A running arbiter, steered like [`Running`].
pub struct Arbiter {
    pub addr: SocketAddr,
    pub prefix: String,
    control: Sender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Arbiter {
    pub fn control(&self) -> Sender<Control> {
        self.control.clone()
    }

    /// Stops every worker gracefully (SIGTERM; SIGKILL after `grace`) and returns.
    pub fn shutdown(mut self, grace: Duration) {
        let _ = self.control.send(Control::Shutdown(grace));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the arbiter hears about its workers.
enum Event {
    Ready(u64, u16),
    /// The worker's stdout closed: it exited (or is about to).
    Gone(u64),
}

struct Proc {
    child: Child,
    generation: u64,
    /// Seconds since the epoch, as the arbiter's clock read them.
    started: f64,
    /// The private port, once the worker reported ready.
    port: Option<u16>,
    /// Its readiness was proven (report and health check).
    ready: bool,
    /// Sent SIGTERM on purpose.
    retiring: bool,
    rss: Option<u64>,
}

struct State {
    cfg: Config,
    apps: Apps,
    listener: TcpListener,
    state_path: PathBuf,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    /// By id; ids grow with age, so the first entries are the oldest.
    workers: BTreeMap<u64, Proc>,
    next_id: u64,
    generation: u64,
    target: usize,
    refreshes: u64,
    stopping: bool,
    rss_read: Instant,
    clock: Clock,
}

/// Binds `[api] host:port`, starts `[api] workers` worker processes and waits until each
/// is ready; then the arbiter runs on a thread of its own.
pub fn start(cfg: Config, apps: Apps, clock: Clock) -> Result<Arbiter> {
    let addr = format!("{}:{}", cfg.api.host, cfg.api.port);
    let listener = super::listen(&addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| {
            Error::Failed(format!(
                "cannot listen on {addr}: {e}; set [api] port (or --port) to a free port"
            ))
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Failed(format!("cannot read the listening address: {e}")))?;
    let (events_tx, events) = unbounded();
    let target = cfg.api.workers.max(1) as usize;
    let state_path = cfg
        .home
        .join(format!(".api-workers-{}.json", std::process::id()));
    let prefix = prefix_of(&cfg.api.base_url);
    let mut st = State {
        cfg,
        apps,
        listener,
        state_path,
        events_tx,
        events,
        workers: BTreeMap::new(),
        next_id: 0,
        generation: 1,
        target,
        refreshes: 0,
        stopping: false,
        rss_read: Instant::now(),
        clock,
    };
    log::info!(
        "api-server: arbiter (pid {}) with {target} worker processes of {THREADS} threads on {local}",
        std::process::id()
    );
    let mut first = Vec::new();
    for _ in 0..target {
        match st.spawn() {
            Ok(id) => first.push(id),
            Err(e) => {
                st.stop_all(Duration::from_secs(1));
                return Err(e);
            }
        }
    }
    for id in first {
        if let Err(reason) = st.wait_ready(id) {
            st.stop_all(Duration::from_secs(5));
            return Err(Error::Failed(format!(
                "API worker process {id} did not start: {reason}"
            )));
        }
    }
    st.publish();
    let (control_tx, control) = unbounded();
    let thread = std::thread::Builder::new()
        .name("api-arbiter".into())
        .spawn(move || st.run(control))
        .map_err(|e| Error::Failed(format!("cannot start the API arbiter: {e}")))?;
    Ok(Arbiter {
        addr: local,
        prefix,
        control: control_tx,
        thread: Some(thread),
    })
}

impl State {
    fn run(mut self, control: Receiver<Control>) {
        let interval = self.cfg.api.worker_refresh_interval;
        let every = (interval > 0.0).then(|| Duration::from_secs_f64(interval));
        let mut batch = self.cfg.api.worker_refresh_batch_size.max(1) as usize;
        if batch > self.target {
            log::warn!(
                "[api] worker_refresh_batch_size {batch} is larger than the pool ({}); using {}",
                self.target,
                self.target
            );
            batch = self.target;
        }
        let mut next_refresh = every.map(|d| Instant::now() + d);
        let ticker = crossbeam_channel::tick(TICK);
        let mut watch = self
            .cfg
            .api
            .reload_on_plugin_change
            .then(|| crate::plugins::Watch::new(&self.cfg.core.plugins_folder));
        let plugin_tick = match watch {
            Some(_) => crossbeam_channel::tick(super::pool::PLUGIN_POLL),
            None => never(),
        };
        loop {
            let refresh_at = match next_refresh {
                Some(at) => after(at.saturating_duration_since(Instant::now())),
                None => never(),
            };
            select! {
                recv(self.events) -> ev => {
                    if let Ok(ev) = ev {
                        self.on_event(ev);
                    }
                }
                recv(ticker) -> _ => self.check(),
                recv(plugin_tick) -> _ => {
                    if let Some(files) = watch.as_mut().and_then(|w| w.poll()) {
                        log::info!("plugins changed ({}): refreshing the worker processes", files.join(", "));
                        self.refresh(batch.min(self.target));
                    }
                }
                recv(control) -> msg => match msg {
                    Ok(Control::AddWorker) if self.target >= MAX_WORKERS as usize => {
                        log::warn!("not adding a worker: the pool has the maximum of {MAX_WORKERS}");
                    }
                    Ok(Control::AddWorker) => {
                        self.target += 1;
                        match self.spawn() {
                            Ok(id) => log::info!("worker process {id} added (pool now {})", self.target),
                            Err(e) => log::error!("cannot add a worker process: {e}"),
                        }
                    }
                    Ok(Control::RetireWorker) => {
                        if self.target > 1 {
                            self.target -= 1;
                            if let Some(id) = self.oldest(None) {
                                self.retire_and_wait(id);
                                log::info!("worker process {id} retired (pool now {})", self.target);
                            }
                        } else {
                            log::info!("not retiring the last worker");
                        }
                    }
                    Ok(Control::Refresh) => self.refresh(batch.min(self.target)),
                    Ok(Control::Shutdown(grace)) => {
                        self.stop_all(grace);
                        return;
                    }
                    Err(_) => {
                        self.stop_all(DRAIN);
                        return;
                    }
                },
                recv(refresh_at) -> _ => {
                    self.refresh(batch.min(self.target));
                    next_refresh = every.map(|d| Instant::now() + d);
                }
            }
            self.publish();
        }
    }

    /// One rolling refresh: replace every current worker, `batch` at a time, new first.
    fn refresh(&mut self, batch: usize) {
        let started = Instant::now();
        let old_gen = self.generation;
        self.generation += 1;
        let new_gen = self.generation;
        log::info!(
            "worker refresh: generation {new_gen} replaces generation {old_gen} and older, {batch} at a time"
        );
        loop {
            let old = self.old_workers(new_gen);
            if old.is_empty() {
                break;
            }
            let n = batch.min(old.len());
            let mut fresh = Vec::new();
            let mut failure = None;
            for _ in 0..n {
                match self.spawn() {
                    Ok(id) => {
                        log::info!("worker refresh: worker process {id} spawned");
                        fresh.push(id);
                    }
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            for &id in &fresh {
                if failure.is_some() {
                    break;
                }
                match self.wait_ready(id) {
                    Ok(()) => log::info!("worker refresh: worker process {id} ready"),
                    Err(reason) => failure = Some(format!("worker process {id}: {reason}")),
                }
            }
            if let Some(reason) = failure {
                log::error!(
                    "worker refresh aborted: a new worker failed its readiness check ({reason}); keeping the old workers"
                );
                for &f in &fresh {
                    self.retire_and_wait(f);
                }
                self.generation = old_gen;
                return;
            }
            self.publish();
            for &id in old.iter().take(n) {
                self.retire_and_wait(id);
                log::info!("worker refresh: worker process {id} retired");
            }
        }
        self.refreshes += 1;
        log::info!(
            "worker refresh: cycle done in {:.0?}, {} worker processes of generation {new_gen}",
            started.elapsed(),
            self.workers.len()
        );
    }

    /// The workers older than `generation` not already on their way out, oldest first.
    fn old_workers(&self, generation: u64) -> Vec<u64> {
        self.workers
            .iter()
            .filter(|(_, w)| w.generation < generation && !w.retiring)
            .map(|(id, _)| *id)
            .collect()
    }

    fn spawn(&mut self) -> Result<u64> {
        self.next_id += 1;
        let id = self.next_id;
        let exe = std::env::current_exe()
            .map_err(|e| Error::Failed(format!("cannot find this program's path: {e}")))?;
        let socket: OwnedFd = self
            .listener
            .try_clone()
            .map_err(|e| Error::Failed(format!("cannot share the listening socket: {e}")))?
            .into();
        let mut cmd = Command::new(exe);
        cmd.arg("api-server")
            .arg("--apps")
            .arg(apps_arg(self.apps))
            .env("UPDRAFT_HOME", &self.cfg.home)
            // What the arbiter's own flags set, the worker must see too.
            .env("UPDRAFT__API__HOST", &self.cfg.api.host)
            .env("UPDRAFT__API__PORT", self.cfg.api.port.to_string())
            .env(
                "UPDRAFT__API__PROXY_HEADERS",
                if self.cfg.api.proxy_headers {
                    "True"
                } else {
                    "False"
                },
            )
            .env("UPDRAFT__API__WORKERS", THREADS.to_string())
            .env("UPDRAFT__API__WORKER_REFRESH_INTERVAL", "0")
            .env(ENV_ID, id.to_string())
            .env(ENV_GENERATION, self.generation.to_string())
            .env(ENV_STATE, &self.state_path)
            .stdin(Stdio::from(socket))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Ctrl-C in a terminal reaches the arbiter alone, which stops the workers
            // in order.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Failed(format!("cannot start an API worker process: {e}")))?;
        let out = child.stdout.take();
        let events = self.events_tx.clone();
        let reader = std::thread::Builder::new()
            .name(format!("api-worker-{id}-out"))
            .spawn(move || {
                if let Some(out) = out {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        let port = line.strip_prefix("ready ").map(|p| p.trim().parse());
                        if let Some(Ok(port)) = port {
                            let _ = events.send(Event::Ready(id, port));
                        }
                    }
                }
                let _ = events.send(Event::Gone(id));
            });
        if let Err(e) = reader {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Failed(format!("cannot start a thread: {e}")));
        }
        log::debug!("worker process {id} is pid {}", child.id());
        self.workers.insert(
            id,
            Proc {
                child,
                generation: self.generation,
                started: self.clock.now().timestamp_micros() as f64 / 1e6,
                port: None,
                ready: false,
                retiring: false,
                rss: None,
            },
        );
        Ok(id)
    }

    /// Waits until a worker reported ready and its own health check answered, handling
    /// other events meanwhile.
    fn wait_ready(&mut self, id: u64) -> std::result::Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let Some(w) = self.workers.get(&id) else {
                return Err("it exited before it was ready".into());
            };
            if w.ready {
                return Ok(());
            }
            if let Some(port) = w.port {
                let pid = w.child.id();
                let result = self.health_check(port, pid);
                if let Some(w) = self.workers.get_mut(&id) {
                    match result {
                        Ok(()) => {
                            w.ready = true;
                            return Ok(());
                        }
                        Err(reason) => {
                            self.kill_now(id);
                            return Err(reason);
                        }
                    }
                }
                continue;
            }
            match self.events.recv_deadline(deadline) {
                Ok(ev) => self.on_event(ev),
                Err(RecvTimeoutError::Timeout) => {
                    self.kill_now(id);
                    return Err(format!("not ready within {READY_TIMEOUT:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => return Err("event channel closed".into()),
            }
        }
    }

    /// `GET {prefix}/api/v2/monitor/health` (or the Execution API's) on the worker's
    /// private port: 200, answered by the process with `pid`.
    fn health_check(&self, port: u16, pid: u32) -> std::result::Result<(), String> {
        let prefix = prefix_of(&self.cfg.api.base_url);
        let path = if self.apps.core {
            "/api/v2/monitor/health"
        } else {
            "/execution/health"
        };
        let url = format!("http://127.0.0.1:{port}{prefix}{path}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut res = agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url} failed: {e}"))?;
        let status = res.status().as_u16();
        if status != 200 {
            return Err(format!("GET {url} answered {status}"));
        }
        if self.apps.core {
            let body: Value = res.body_mut().read_json().unwrap_or_default();
            let answered = body["api_server"]["worker"]["pid"].as_u64();
            if answered != Some(u64::from(pid)) {
                return Err(format!(
                    "GET {url} was answered by pid {answered:?}, not the worker's {pid}"
                ));
            }
        }
        Ok(())
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Ready(id, port) => {
                if let Some(w) = self.workers.get_mut(&id) {
                    w.port = Some(port);
                }
                // A replacement nobody waits for is checked here.
                if self.workers.get(&id).is_some_and(|w| !w.ready) && !self.stopping {
                    let pid = self.workers.get(&id).map_or(0, |w| w.child.id());
                    match self.health_check(port, pid) {
                        Ok(()) => {
                            if let Some(w) = self.workers.get_mut(&id) {
                                w.ready = true;
                            }
                        }
                        Err(reason) => {
                            log::error!("worker process {id} failed its health check: {reason}");
                            self.kill_now(id);
                        }
                    }
                }
            }
            Event::Gone(id) => self.reap(id),
        }
    }

    /// Reaps a worker whose stdout closed. One that died unasked is replaced by the next
    /// [`State::check`], within a second: a worker that cannot start (a database gone)
    /// is retried once a second, not in a tight loop.
    fn reap(&mut self, id: u64) {
        let Some(mut w) = self.workers.remove(&id) else {
            return;
        };
        let status = w.child.wait();
        if w.retiring || self.stopping {
            return;
        }
        let how = match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let when = if w.ready { "" } else { " before it was ready" };
        log::warn!(
            "worker process {id} (pid {}) died{when} ({how}); a new one replaces it",
            w.child.id()
        );
    }

    /// Once a tick: reaps workers that exited without closing their pipe (a worker's
    /// own child could hold it), refreshes the RSS figures.
    fn check(&mut self) {
        let mut exited = Vec::new();
        for (id, w) in self.workers.iter_mut() {
            if matches!(w.child.try_wait(), Ok(Some(_))) {
                exited.push(*id);
            }
        }
        for id in exited {
            self.reap(id);
        }
        if !self.stopping && self.workers.len() < self.target {
            match self.spawn() {
                Ok(new) => log::info!(
                    "worker process {new} started to keep {} workers",
                    self.target
                ),
                Err(e) => log::error!("cannot start a worker process: {e}"),
            }
        }
        if self.rss_read.elapsed() >= RSS_EVERY {
            self.rss_read = Instant::now();
            for w in self.workers.values_mut() {
                w.rss = rss_of(w.child.id());
            }
        }
    }

    /// SIGTERM, then waits until the worker exited; SIGKILL after [`RETIRE_TIMEOUT`].
    fn retire_and_wait(&mut self, id: u64) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.retiring = true;
        let _ = kill(pid_of(&w.child), Signal::SIGTERM);
        let deadline = Instant::now() + RETIRE_TIMEOUT;
        while self.workers.contains_key(&id) {
            match self.events.recv_deadline(deadline) {
                Ok(ev) => self.on_event(ev),
                Err(_) => {
                    log::warn!(
                        "worker process {id} did not stop within {RETIRE_TIMEOUT:?}; killing it"
                    );
                    self.kill_now(id);
                }
            }
        }
        self.publish();
    }

    fn kill_now(&mut self, id: u64) {
        if let Some(mut w) = self.workers.remove(&id) {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }

    fn oldest(&self, generation: Option<u64>) -> Option<u64> {
        self.workers
            .iter()
            .find(|(_, w)| !w.retiring && generation.is_none_or(|g| w.generation < g))
            .map(|(id, _)| *id)
    }

    /// SIGTERM to every worker; waits up to `grace`, then SIGKILL.
    fn stop_all(&mut self, grace: Duration) {
        self.stopping = true;
        for w in self.workers.values_mut() {
            w.retiring = true;
            let _ = kill(pid_of(&w.child), Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace.max(DRAIN + Duration::from_secs(1));
        while !self.workers.is_empty() {
            match self.events.recv_deadline(deadline) {
                Ok(Event::Gone(id)) => self.reap(id),
                Ok(Event::Ready(..)) => {}
                Err(_) => break,
            }
        }
        let left: Vec<u64> = self.workers.keys().copied().collect();
        for id in left {
            log::warn!("worker process {id} still running after {grace:?}; killing it");
            self.kill_now(id);
        }
        let _ = std::fs::remove_file(&self.state_path);
    }

    /// Writes the state file the workers' health route reads (atomically: a rename).
    fn publish(&self) {
        let workers: Vec<Value> = self
            .workers
            .iter()
            .map(|(id, w)| {
                json!({
                    "id": id,
                    "pid": w.child.id(),
                    "generation": w.generation,
                    "started": w.started,
                    "ready": w.ready,
                    "retiring": w.retiring,
                    "rss_bytes": w.rss,
                })
            })
            .collect();
        let alive = self
            .workers
            .values()
            .filter(|w| w.ready && !w.retiring)
            .count();
        let body = json!({
            "server_type": "gunicorn",
            "arbiter_pid": std::process::id(),
            "workers_alive": alive,
            "workers_configured": self.target,
            "generation": self.generation,
            "refreshes_completed": self.refreshes,
            "workers": workers,
        });
        let tmp = self.state_path.with_extension("tmp");
        let written = std::fs::write(&tmp, body.to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.state_path));
        if let Err(e) = written {
            log::warn!("cannot write {}: {e}", self.state_path.display());
        }
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
}

fn apps_arg(apps: Apps) -> &'static str {
    match (apps.core, apps.execution) {
        (true, false) => "core",
        (false, true) => "execution",
        _ => "all",
    }
}

/// A process's resident memory in bytes: `VmRSS` of /proc (Linux), `ps` elsewhere.
pub fn rss_of(pid: u32) -> Option<u64> {
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        return Some(kb * 1024);
    }
    let out = Command::new("ps")
        .args(["-o", "rss=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    let kb: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(kb * 1024)
}

/// What a process worker knows of itself, from its environment; `None` in any other
/// process.
pub fn worker_env(vars: &[(String, String)]) -> Option<ProcessWorker> {
    let var = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    Some(ProcessWorker {
        id: var(ENV_ID)?.parse().ok()?,
        generation: var(ENV_GENERATION)?.parse().ok()?,
        state: PathBuf::from(var(ENV_STATE)?),
    })
}

/// A worker process's life: serve the inherited socket with a thread pool, report
/// ready, and on SIGTERM (or when the arbiter is gone) drain and stop.
pub fn serve_as_worker(
    cfg: Config,
    apps: Apps,
    me: ProcessWorker,
    dispatch: Dispatch,
    clock: Clock,
    stop: Receiver<()>,
) -> Result<()> {
    use std::os::fd::AsFd;
    let socket = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::Failed(format!("no listening socket on stdin: {e}")))?;
    let listener = TcpListener::from(socket);
    let id = me.id;
    let running = super::start_on(cfg, apps, dispatch, None, clock, Some((listener, me)))?;
    let private = private_health(&running, dispatch)?;
    let mut out = std::io::stdout();
    writeln!(out, "ready {private}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::Failed(format!("cannot report to the arbiter: {e}")))?;
    log::info!("worker process {id} (pid {}) ready", std::process::id());
    loop {
        match stop.recv_timeout(ALIVE_EVERY) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if writeln!(out, "alive").and_then(|()| out.flush()).is_err() {
                    log::warn!("worker process {id}: the arbiter is gone; stopping");
                    break;
                }
            }
        }
    }
    running.drain(DRAIN);
    running.shutdown(DRAIN);
    log::info!("worker process {id} stopped");
    Ok(())
}

/// Serves the worker's own routes on a loopback port of its own, one request at a time,
/// so the arbiter's health check reaches this worker and no other. Returns the port.
fn private_health(running: &Running, dispatch: Dispatch) -> Result<u16> {
    let http = tiny_http::Server::http("127.0.0.1:0")
        .map_err(|e| Error::Failed(format!("cannot open the worker's health port: {e}")))?;
    let port = http
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or_else(|| Error::Failed("the worker's health port is not an IP port".into()))?;
    let ctx = running.ctx.clone();
    let mut store = crate::store::Store::open_existing(&ctx.cfg.database.path)?;
    std::thread::Builder::new()
        .name("api-worker-health".into())
        .spawn(move || {
            for rq in http.incoming_requests() {
                let _ = super::serve(&ctx, &mut store, dispatch, rq);
            }
        })
        .map_err(|e| Error::Failed(format!("cannot start a thread: {e}")))?;
    Ok(port)
}
