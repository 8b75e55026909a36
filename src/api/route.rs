//! What a handler is given and how a route is described: the server-wide [`Ctx`], the
//! path [`Params`], a [`Route`] of the table and the sub-[`App`]s. A leaf of `api/`: the
//! route table (`mod.rs`) and every handler import it, it imports no handler.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use super::core::dag_pieces::DagPieces;
use super::core::signing::FileTokens;
use super::http::{ApiError, Method, Reply, Req};
use crate::auth::{Limiter, Role, User};
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::Dag;
use crate::store::{DagRow, Store};

/// Which sub-applications a server runs (`--apps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Apps {
    pub core: bool,
    pub execution: bool,
}

impl Apps {
    pub const ALL: Apps = Apps {
        core: true,
        execution: true,
    };

    /// Parses Airflow's `--apps` value: `all`, `core`, `execution`, or a comma list.
    pub fn parse(s: &str) -> Option<Apps> {
        let mut apps = Apps {
            core: false,
            execution: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "all" => apps = Apps::ALL,
                "core" => apps.core = true,
                "execution" => apps.execution = true,
                _ => return None,
            }
        }
        (apps.core || apps.execution).then_some(apps)
    }

    pub(super) fn serves(self, app: App) -> bool {
        match app {
            App::Core => self.core,
            App::Execution => self.execution,
            App::Any => true,
        }
    }
}

/// The sub-application a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    Core,
    Execution,
    /// Served by every server (metrics).
    Any,
}

/// What a handler is given besides the request: the route's path parameters and, on
/// routes that need a login, who is asking.
pub struct Params {
    pub(super) values: Vec<(&'static str, String)>,
    pub(super) user: Option<User>,
}

impl Params {
    pub fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .expect("the route template names this parameter")
    }

    /// A parameter the route may not have.
    pub fn try_get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The caller, on a route with a role; `None` on public routes.
    pub fn user(&self) -> Option<&User> {
        self.user.as_ref()
    }
}

pub type Handler = fn(&Ctx, &mut Store, &Req, &Params) -> Result<Reply, ApiError>;

/// One entry of the route table.
pub struct Route {
    pub method: Method,
    /// Airflow's path template, `{name}` for a parameter.
    pub path: &'static str,
    pub app: App,
    /// The least role that may call it; `None` for routes without a login (health,
    /// version, the Execution API, which checks its own task tokens).
    pub role: Option<Role>,
    /// The event log entry a successful call writes (mutating routes).
    pub event: Option<&'static str>,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    pub handler: Handler,
}

/// A route anyone may call.
pub const fn public(
    method: Method,
    path: &'static str,
    app: App,
    summary: &'static str,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        app,
        role: None,
        event: None,
        summary,
        handler,
    }
}

/// A Core API route that needs a login with at least `role`; `event` names the audit
/// entry a successful call writes.
pub const fn guarded(
    method: Method,
    path: &'static str,
    role: Role,
    event: Option<&'static str>,
    summary: &'static str,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        app: App::Core,
        role: Some(role),
        event,
        summary,
        handler,
    }
}

/// State shared by every worker of one server.
pub struct Ctx {
    pub cfg: Config,
    pub apps: Apps,
    /// The `base_url` path: `""` or `/a/b`, without a trailing slash.
    pub prefix: String,
    /// Shared with an in-process scheduler, which adds its own counters.
    pub metrics: std::sync::Arc<Metrics>,
    pub pool: PoolStats,
    /// The last check of `execution_api_server_url` (see `server::probe`).
    pub execution_probe: Mutex<Probe>,
    pub started: Instant,
    /// The JWT signing secret (see `jwt::secret`).
    pub secret: Vec<u8>,
    /// DAG file tokens, keyed with `secret`.
    pub file_tokens: FileTokens,
    /// Wakes the scheduler when it runs in this process and a task finished.
    pub scheduler_wake: Option<crossbeam_channel::Sender<()>>,
    /// Failed logins per client address.
    pub limiter: Limiter,
    /// Parsed DAGs, so a task's claim does not deserialize its whole DAG every time.
    pub dags: DagCache,
    /// The DAG list's rendered DAGs and pages.
    pub dag_pieces: DagPieces,
    /// Where handlers read the wall-clock time (the process's `Env::clock`).
    pub clock: Clock,
}

/// Every DAG's row in id order, shared by the requests that read it.
pub type DagRows = Arc<[Arc<DagRow>]>;

/// A DAG's row as last read, with the stamp of the parse it holds.
struct Cached {
    stamp: String,
    row: Arc<DagRow>,
}

/// Parsed DAGs by id, each kept with the row it was read with and replaced when the
/// store holds a newer parse. A DAG's stored JSON grows with its task count; reading it
/// for every task of a big run made claims cost O(tasks) each, and reading every DAG's
/// made the DAG list cost a JSON parse per DAG per request.
#[derive(Default)]
pub struct DagCache {
    by_id: RwLock<HashMap<String, Cached>>,
    /// Every DAG's row as of a count of `Store::dag_changes`: the DAG list's input for
    /// as long as no DAG row changes.
    all: RwLock<Option<(i64, DagRows)>>,
}

impl DagCache {
    /// The DAG as last parsed, from the cache when it is current.
    pub fn get(&self, store: &Store, dag_id: &str) -> crate::error::Result<Option<Arc<Dag>>> {
        let Some(stamp) = store.dag_parse_stamp(dag_id)? else {
            return Ok(None);
        };
        if let Some(c) = self.read().get(dag_id)
            && c.stamp == stamp
        {
            return Ok(Some(c.row.dag.clone()));
        }
        Ok(self.load(store, dag_id)?.map(|row| row.dag.clone()))
    }

    /// Every DAG's row, stale ones included, ordered by id. While no DAG row changed
    /// since the last call, that call's rows; otherwise one scan of the rows' heads, the
    /// rest from the cache.
    pub fn rows(&self, store: &Store) -> crate::error::Result<DagRows> {
        // Read before the scan, so the rows kept are at least as new as the count.
        let changes = store.dag_changes()?;
        if let Some((n, rows)) = &*self.all.read().unwrap_or_else(|p| p.into_inner())
            && *n == changes
        {
            return Ok(rows.clone());
        }
        let rows: DagRows = self.scan(store)?.into();
        *self.all.write().unwrap_or_else(|p| p.into_inner()) = Some((changes, rows.clone()));
        Ok(rows)
    }

    /// Every DAG's row from one scan of the rows' heads: only DAGs parsed since they
    /// were cached are read whole and deserialized; a row whose flags changed is copied
    /// without its DAG. DAGs the store no longer holds are forgotten, so the cache never
    /// outgrows the store.
    fn scan(&self, store: &Store) -> crate::error::Result<Vec<Arc<DagRow>>> {
        // Slots in id order: a cached row, a row to re-flag, or a DAG to read.
        enum Slot {
            Hit(Arc<DagRow>),
            Flags(Arc<DagRow>, bool, bool),
            Miss(String),
        }
        let mut slots = Vec::new();
        {
            let map = self.read();
            store.dag_heads(|h| {
                slots.push(match map.get(h.dag_id) {
                    Some(c) if c.stamp == h.parsed => {
                        if (c.row.is_paused, c.row.is_stale) == (h.is_paused, h.is_stale) {
                            Slot::Hit(c.row.clone())
                        } else {
                            Slot::Flags(c.row.clone(), h.is_paused, h.is_stale)
                        }
                    }
                    _ => Slot::Miss(h.dag_id.to_string()),
                });
            })?;
        }
        let mut rows = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Slot::Hit(row) => rows.push(row),
                Slot::Flags(row, is_paused, is_stale) => {
                    let row = Arc::new(DagRow {
                        is_paused,
                        is_stale,
                        ..DagRow::clone(&row)
                    });
                    self.keep(row.clone());
                    rows.push(row);
                }
                // Read whole; one deleted since the scan is left out.
                Slot::Miss(dag_id) => rows.extend(self.load(store, &dag_id)?),
            }
        }
        if self.read().len() > rows.len() {
            let ids: HashSet<&str> = rows.iter().map(|r| r.dag.dag_id.as_str()).collect();
            self.write().retain(|id, _| ids.contains(id.as_str()));
        }
        Ok(rows)
    }

    /// Reads one DAG from the store and keeps it.
    fn load(&self, store: &Store, dag_id: &str) -> crate::error::Result<Option<Arc<DagRow>>> {
        let row = store.dag(dag_id)?.map(Arc::new);
        if let Some(row) = &row {
            self.keep(row.clone());
        }
        Ok(row)
    }

    fn keep(&self, row: Arc<DagRow>) {
        let stamp = row.parse_stamp();
        self.write()
            .insert(row.dag.dag_id.clone(), Cached { stamp, row });
    }

    // A panic while holding the lock leaves the map as it was between two inserts.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Cached>> {
        self.by_id.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Cached>> {
        self.by_id.write().unwrap_or_else(|p| p.into_inner())
    }
}

thread_local! {
    /// `Some` while this thread's wakes of the scheduler are held back
    /// ([`Ctx::holding_wakes`]): whether one was asked for.
    static HELD_WAKE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

impl Ctx {
    /// Tells an in-process scheduler that state changed, so it need not wait for a tick.
    pub fn wake_scheduler(&self) {
        if HELD_WAKE.get().is_some() {
            HELD_WAKE.set(Some(true));
        } else if let Some(tx) = &self.scheduler_wake {
            let _ = tx.try_send(());
        }
    }

    /// Runs `f`, holding back the scheduler's wakes it asks for until it returns: for a
    /// call served on the connection the scheduler takes back when woken
    /// (`store::Shared`), so that it wakes to a free connection rather than to wait for
    /// the call's reply and wake again.
    pub fn holding_wakes<R>(&self, f: impl FnOnce() -> R) -> R {
        let outer = HELD_WAKE.replace(Some(false));
        let out = f();
        let asked = HELD_WAKE.replace(outer) == Some(true);
        if asked {
            self.wake_scheduler();
        }
        out
    }
}

/// The worker pool as health and metrics report it.
#[derive(Default)]
pub struct PoolStats {
    pub alive: AtomicU64,
    pub target: AtomicU64,
    pub generation: AtomicU64,
    pub refreshes: AtomicU64,
    /// Every reply closes its connection: this process is stopping.
    pub draining: std::sync::atomic::AtomicBool,
    /// Set in a process worker (`[api] server_type = gunicorn`): which one, and where
    /// its arbiter publishes the pool.
    pub process: std::sync::OnceLock<ProcessWorker>,
    /// The plugins this pool serves: loaded when it starts and at each refresh.
    pub plugins: std::sync::RwLock<std::sync::Arc<crate::plugins::Loaded>>,
}

impl PoolStats {
    /// Loads `[core] plugins_folder` anew (a pool's start or refresh); logs what failed.
    pub fn load_plugins(&self, folder: &std::path::Path) {
        let loaded = crate::plugins::load(folder);
        for e in &loaded.errors {
            log::error!("plugin file not loaded: {e}");
        }
        if !loaded.plugins.is_empty() {
            let names: Vec<&str> = loaded.plugins.iter().map(|p| p.name.as_str()).collect();
            log::info!("plugins loaded: {}", names.join(", "));
        }
        *self.plugins.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(loaded);
    }

    pub fn plugins(&self) -> std::sync::Arc<crate::plugins::Loaded> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A process worker's place in its arbiter's pool (`server::arbiter`).
#[derive(Debug, Clone)]
pub struct ProcessWorker {
    pub id: u64,
    pub generation: u64,
    /// The arbiter's state file: the pool's workers, as JSON.
    pub state: std::path::PathBuf,
}

impl PoolStats {
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

/// Whether the Execution API URL that tasks will be given answers as it should.
#[derive(Debug, Clone)]
pub struct Probe {
    pub url: String,
    /// `None` until the first check finishes.
    pub ok: Option<bool>,
    pub detail: String,
}
