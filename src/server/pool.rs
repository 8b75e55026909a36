//! The worker pool and its supervisor: workers serve requests; the supervisor keeps their
//! number, replaces the ones that panic, and recycles the pool on an interval.
//!
//! A rolling refresh starts new workers first. Each proves it is ready (its own database
//! connection open, a health request through the real handler stack answered 200), and
//! only then does one of the oldest workers stop taking requests, finish the one it
//! has, and exit. Requests wait in tiny_http's queue, not in a worker, so nothing is
//! dropped. A new worker that is not ready aborts the cycle and the old ones stay.
//!
//! The Execution API keeps a reserve: at most all workers but one serve other requests
//! at once ([`Lanes`]), so a pool busy with slow Core API or UI requests still answers
//! the tasks that report through `/execution` at once.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, after, never, select, unbounded};

use super::{Dispatch, serve};
use crate::api::{Ctx, Method, Req};
use crate::config::MAX_WORKERS;
use crate::error::{Error, Result};
use crate::store::Store;

/// How often `[api] reload_on_plugin_change` looks at the plugins folder.
pub const PLUGIN_POLL: Duration = Duration::from_secs(1);
/// How often an idle worker looks at its retire flag.
const POLL: Duration = Duration::from_millis(50);
/// How long a new worker may take to prove it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a retiring worker may take to finish its request.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// The grace period when the controlling side disappears without saying how long.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Workers kept back for the Execution API: requests to anything else are served by at
/// most `workers - EXECUTION_RESERVE` workers at once (and at least one).
const EXECUTION_RESERVE: usize = 1;

/// The two lanes of the pool. tiny_http queues the Execution API's requests in a lane of
/// their own, handed out first (`server::start_with`). A worker takes a slot before it
/// waits for a request: with one, it takes whatever comes next; without, it waits for the
/// Execution API's lane alone. There are the pool's size less [`EXECUTION_RESERVE`]
/// slots, so however slow the other requests are, a worker is always waiting for the
/// tasks' calls, and no request is ever taken by a worker that cannot serve it.
struct Lanes {
    /// Workers holding a slot: serving, or waiting for, any request.
    other_busy: AtomicUsize,
}

impl Lanes {
    fn new() -> Lanes {
        Lanes {
            other_busy: AtomicUsize::new(0),
        }
    }

    /// Takes a slot for any request, if one is free.
    fn acquire(&self, ctx: &Ctx) -> bool {
        let size = ctx.pool.target.load(Ordering::Relaxed) as usize;
        // A server without the Execution API (`--apps core`) keeps nothing back.
        let reserve = if ctx.apps.execution {
            EXECUTION_RESERVE
        } else {
            0
        };
        let slots = size.saturating_sub(reserve).max(1);
        self.other_busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| {
                (busy < slots).then_some(busy + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.other_busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the supervisor can be told, by signals (Unix), by the app, or by tests.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Add one worker (SIGTTIN).
    AddWorker,
    /// Retire the oldest worker, never the last (SIGTTOU).
    RetireWorker,
    /// Start a full rolling refresh now (SIGHUP).
    Refresh,
    /// Stop: finish in-flight requests within the grace period, then return.
    Shutdown(Duration),
}

/// What workers tell the supervisor.
enum Event {
    Ready(u64),
    NotReady(u64, String),
    Exited(u64, Exit),
}

#[derive(Debug)]
enum Exit {
    Retired,
    Panicked,
    ListenerClosed,
}

struct Worker {
    generation: u64,
    retire: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    ready: bool,
}

struct Supervisor {
    http: Arc<tiny_http::Server>,
    lanes: Arc<Lanes>,
    ctx: Arc<Ctx>,
    dispatch: Dispatch,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    /// By id; ids grow with age, so the first entries are the oldest.
    workers: BTreeMap<u64, Worker>,
    next_id: u64,
    generation: u64,
    target: usize,
    stopping: bool,
}

/// Starts `[api] workers` workers and the supervisor thread.
pub fn start(
    http: Arc<tiny_http::Server>,
    ctx: Arc<Ctx>,
    dispatch: Dispatch,
) -> Result<(Sender<Control>, JoinHandle<()>)> {
    let (events_tx, events) = unbounded();
    let (control_tx, control) = unbounded();
    let target = ctx.cfg.api.workers.max(1) as usize;
    let mut sup = Supervisor {
        http,
        lanes: Arc::new(Lanes::new()),
        ctx,
        dispatch,
        events_tx,
        events,
        workers: BTreeMap::new(),
        next_id: 0,
        generation: 1,
        target,
        stopping: false,
    };
    sup.ctx.pool.generation.store(1, Ordering::Relaxed);
    sup.ctx.pool.target.store(target as u64, Ordering::Relaxed);
    for _ in 0..target {
        sup.spawn();
    }
    // The first workers must be ready before the server counts as started.
    let ids: Vec<u64> = sup.workers.keys().copied().collect();
    for id in ids {
        if let Err(reason) = sup.wait_ready(id) {
            sup.stop_all(Duration::from_secs(1));
            return Err(Error::Failed(format!(
                "API worker {id} did not start: {reason}"
            )));
        }
    }
    let handle = std::thread::Builder::new()
        .name("api-supervisor".into())
        .spawn(move || sup.run(control))
        .map_err(|e| Error::Failed(format!("cannot start the API supervisor: {e}")))?;
    Ok((control_tx, handle))
}

impl Supervisor {
    fn run(mut self, control: Receiver<Control>) {
        let interval = self.ctx.cfg.api.worker_refresh_interval;
        let every = (interval > 0.0).then(|| Duration::from_secs_f64(interval));
        let mut batch = self.ctx.cfg.api.worker_refresh_batch_size.max(1) as usize;
        if batch > self.target {
            log::warn!(
                "[api] worker_refresh_batch_size {batch} is larger than the pool ({}); using {}",
                self.target,
                self.target
            );
            batch = self.target;
        }
        let mut next_refresh = every.map(|d| Instant::now() + d);
        let mut watch = self
            .ctx
            .cfg
            .api
            .reload_on_plugin_change
            .then(|| crate::plugins::Watch::new(&self.ctx.cfg.core.plugins_folder));
        let plugin_tick = match watch {
            Some(_) => crossbeam_channel::tick(PLUGIN_POLL),
            None => never(),
        };
        loop {
            let tick = match next_refresh {
                Some(at) => after(at.saturating_duration_since(Instant::now())),
                None => never(),
            };
            select! {
                recv(plugin_tick) -> _ => {
                    if let Some(files) = watch.as_mut().and_then(|w| w.poll()) {
                        log::info!("plugins changed ({}): refreshing the workers", files.join(", "));
                        self.refresh(batch.min(self.target));
                    }
                }
                recv(self.events) -> ev => {
                    if let Ok(ev) = ev {
                        self.on_event(ev);
                    }
                }
                recv(control) -> msg => match msg {
                    Ok(Control::AddWorker) if self.target >= MAX_WORKERS as usize => {
                        log::warn!(
                            "not adding a worker: the pool has the maximum of {MAX_WORKERS}"
                        );
                    }
                    Ok(Control::AddWorker) => {
                        self.target += 1;
                        self.publish_target();
                        let id = self.spawn();
                        log::info!("worker {id} added (pool now {})", self.target);
                    }
                    Ok(Control::RetireWorker) => {
                        if self.target > 1 {
                            self.target -= 1;
                            self.publish_target();
                            if let Some(id) = self.oldest(|_| true) {
                                self.retire_and_wait(id);
                                log::info!("worker {id} retired (pool now {})", self.target);
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
                    // Everyone who could send a command is gone: stop as for Ctrl-C.
                    Err(_) => {
                        self.stop_all(DEFAULT_GRACE);
                        return;
                    }
                },
                recv(tick) -> _ => {
                    self.refresh(batch.min(self.target));
                    next_refresh = every.map(|d| Instant::now() + d);
                }
            }
        }
    }

    /// One rolling refresh: replace every current worker, `batch` at a time.
    fn refresh(&mut self, batch: usize) {
        let started = Instant::now();
        // The new workers serve the plugins as they are now.
        self.ctx
            .pool
            .load_plugins(&self.ctx.cfg.core.plugins_folder);
        let old_gen = self.generation;
        self.generation += 1;
        let new_gen = self.generation;
        log::info!(
            "worker refresh: generation {new_gen} replaces generation {old_gen} and older, {batch} at a time"
        );
        loop {
            let old: Vec<u64> = self
                .workers
                .iter()
                .filter(|(_, w)| w.generation < new_gen)
                .map(|(id, _)| *id)
                .collect();
            if old.is_empty() {
                break;
            }
            let n = batch.min(old.len());
            let fresh: Vec<u64> = (0..n).map(|_| self.spawn()).collect();
            for &id in &fresh {
                log::info!("worker refresh: worker {id} spawned");
            }
            for &id in &fresh {
                match self.wait_ready(id) {
                    Ok(()) => log::info!("worker refresh: worker {id} ready"),
                    Err(reason) => {
                        log::error!(
                            "worker refresh aborted: new worker {id} failed its readiness check ({reason}); keeping the old workers"
                        );
                        for &f in &fresh {
                            self.retire_and_wait(f);
                        }
                        self.generation = old_gen;
                        self.ctx.pool.generation.store(old_gen, Ordering::Relaxed);
                        return;
                    }
                }
            }
            self.ctx.pool.generation.store(new_gen, Ordering::Relaxed);
            for &id in old.iter().take(n) {
                self.retire_and_wait(id);
                log::info!("worker refresh: worker {id} retired");
            }
        }
        self.ctx.pool.refreshes.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "worker refresh: cycle done in {:.0?}, {} workers of generation {new_gen}",
            started.elapsed(),
            self.workers.len()
        );
    }

    fn spawn(&mut self) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let retire = Arc::new(AtomicBool::new(false));
        let (http, lanes, ctx, dispatch, events, flag) = (
            self.http.clone(),
            self.lanes.clone(),
            self.ctx.clone(),
            self.dispatch,
            self.events_tx.clone(),
            retire.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("api-worker-{id}"))
            .spawn(move || work(id, &http, &lanes, &ctx, dispatch, &events, &flag))
            .expect("the OS can start a thread");
        self.workers.insert(
            id,
            Worker {
                generation: self.generation,
                retire,
                handle,
                ready: false,
            },
        );
        id
    }

    /// Waits for one worker's readiness, handling other events meanwhile.
    fn wait_ready(&mut self, id: u64) -> std::result::Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.workers.get(&id).is_some_and(|w| w.ready) {
                return Ok(());
            }
            let ev = match self.events.recv_deadline(deadline) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("not ready within {READY_TIMEOUT:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => return Err("event channel closed".into()),
            };
            match ev {
                Event::NotReady(w, reason) if w == id => {
                    self.reap(w);
                    return Err(reason);
                }
                other => self.on_event(other),
            }
        }
    }

    /// Tells a worker to stop after its current request and waits until it has.
    fn retire_and_wait(&mut self, id: u64) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        w.retire.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + RETIRE_TIMEOUT;
        while self.workers.contains_key(&id) {
            match self.events.recv_deadline(deadline) {
                Ok(ev) => self.on_event(ev),
                Err(_) => {
                    log::warn!(
                        "worker {id} did not finish within {RETIRE_TIMEOUT:?}; leaving it to finish alone"
                    );
                    self.workers.remove(&id);
                    self.publish_alive();
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Ready(id) => {
                if let Some(w) = self.workers.get_mut(&id) {
                    w.ready = true;
                }
                self.publish_alive();
            }
            Event::NotReady(id, reason) => {
                log::error!("worker {id} is not ready: {reason}");
                self.reap(id);
            }
            Event::Exited(id, why) => {
                let planned = self
                    .workers
                    .get(&id)
                    .is_some_and(|w| w.retire.load(Ordering::Relaxed));
                self.reap(id);
                if !planned && !self.stopping && self.workers.len() < self.target {
                    let new = self.spawn();
                    log::warn!("worker {id} exited ({why:?}); worker {new} replaces it");
                }
            }
        }
    }

    fn reap(&mut self, id: u64) {
        if let Some(w) = self.workers.remove(&id) {
            let _ = w.handle.join();
        }
        self.publish_alive();
    }

    fn oldest(&self, pred: impl Fn(&Worker) -> bool) -> Option<u64> {
        self.workers
            .iter()
            .find(|(_, w)| pred(w))
            .map(|(id, _)| *id)
    }

    fn publish_alive(&self) {
        let alive = self.workers.values().filter(|w| w.ready).count();
        self.ctx.pool.alive.store(alive as u64, Ordering::Relaxed);
    }

    fn publish_target(&self) {
        self.ctx
            .pool
            .target
            .store(self.target as u64, Ordering::Relaxed);
    }

    /// Every worker drains what is queued and stops; waits up to `grace` for them.
    fn stop_all(&mut self, grace: Duration) {
        self.stopping = true;
        for w in self.workers.values() {
            w.retire.store(true, Ordering::Relaxed);
        }
        let deadline = Instant::now() + grace;
        while !self.workers.is_empty() {
            match self.events.recv_deadline(deadline) {
                Ok(Event::Exited(id, _) | Event::NotReady(id, _)) => self.reap(id),
                Ok(Event::Ready(_)) => {}
                Err(_) => {
                    log::warn!(
                        "{} request(s) still running after the {grace:?} grace period; stopping anyway",
                        self.workers.len()
                    );
                    break;
                }
            }
        }
        self.http.unblock();
    }
}

/// A worker's life: open the store, prove readiness, serve until told to retire.
fn work(
    id: u64,
    http: &tiny_http::Server,
    lanes: &Lanes,
    ctx: &Ctx,
    dispatch: Dispatch,
    events: &Sender<Event>,
    retire: &AtomicBool,
) {
    let mut store = match Store::open_existing(&ctx.cfg.database.path) {
        Ok(s) => s,
        Err(e) => {
            let _ = events.send(Event::NotReady(
                id,
                format!("cannot open the database: {e}"),
            ));
            return;
        }
    };
    let probe_path = if ctx.apps.core {
        "/api/v2/monitor/health"
    } else {
        "/execution/health"
    };
    let probe = catch_unwind(AssertUnwindSafe(|| {
        dispatch(ctx, &mut store, &Req::internal(Method::Get, probe_path))
            .0
            .status
    }));
    match probe {
        Ok(200) => {}
        Ok(status) => {
            let _ = events.send(Event::NotReady(
                id,
                format!("GET {probe_path} answered {status}"),
            ));
            return;
        }
        Err(_) => {
            let _ = events.send(Event::NotReady(id, format!("GET {probe_path} panicked")));
            return;
        }
    }
    let _ = events.send(Event::Ready(id));
    let exit = loop {
        if retire.load(Ordering::Relaxed) {
            break Exit::Retired;
        }
        // With a slot, any request (the Execution API's first); without, only theirs.
        let slot = lanes.acquire(ctx);
        let next = if slot {
            http.recv_timeout(POLL)
        } else {
            http.recv_first_timeout(POLL)
        };
        let rq = match next {
            Ok(Some(rq)) => rq,
            Ok(None) => {
                if slot {
                    lanes.release();
                }
                continue;
            }
            Err(e) => {
                if slot {
                    lanes.release();
                }
                log::debug!("worker {id}: listener closed: {e}");
                break Exit::ListenerClosed;
            }
        };
        // A panic costs this request a 500 and this worker its life; the supervisor
        // starts a replacement. The store may be mid-transaction, so it goes too.
        let healthy = serve(ctx, &mut store, dispatch, rq);
        if slot {
            lanes.release();
        }
        if !healthy {
            log::error!(
                "worker {id}: a handler panicked; the request got a 500 and this worker retires"
            );
            break Exit::Panicked;
        }
    };
    let _ = events.send(Event::Exited(id, exit));
}
