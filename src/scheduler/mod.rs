//! The scheduler: the only writer of scheduling decisions. It creates runs when their
//! schedule says so, decides which task instances may run (trigger rules, retries,
//! limits), hands them to the executor, and closes runs.
//!
//! It reacts to events, not ticks: a task that ends (the Execution API wakes us
//! in-process after committing its report; otherwise its supervisor's exit) starts a
//! pass at once unless a pass has already seen the commit that reported it
//! (`data_version` unchanged), and a commit by another
//! process (a trigger from the CLI or the API server) is seen through SQLite's
//! `data_version` within [`POLL`]. `scheduler_heartbeat_sec` only bounds how long it
//! sleeps with nothing to do. A pass reads only active runs and their task instances,
//! so its cost does not grow with history. One scheduler is active per database (a
//! lease); others stand by and take over when its heartbeat goes stale.

pub mod decide;
pub mod rules;
pub mod timetable;
mod tis;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender, after, select};
use serde_json::Value;

use crate::auth::task as task_token;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::executor::{ExecEvent, LocalExecutor, Workload};
use crate::model::{Dag, RunState, RunType, TaskState};
use crate::store::{Event, Held, NewRun, PassLook, RunRow, Shared, Store, TiRow, Tx};
use decide::{RunPlan, Step};
use tis::{RunTis, TiCache};

/// How often a scheduler with nothing to do checks the database for outside changes.
const POLL: Duration = Duration::from_millis(20);

/// The longest the loop plans ahead; it wakes at least this often with nothing to do.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Why the loop stopped.
#[derive(Debug, PartialEq)]
pub enum Stop {
    /// The shutdown channel disconnected.
    Shutdown,
}

pub struct Options {
    /// The Execution API URL handed to tasks, and to supervisors without `in_process`.
    pub api_url: String,
    /// The Execution API served by this process: supervisors call it without a
    /// connection (`standalone`, `dags test`).
    pub in_process: Option<Arc<dyn crate::executor::client::InProcessApi>>,
    /// The connection those calls are served on: the scheduler's own, lent to them
    /// whenever the loop waits (`store::shared`).
    pub connection: Option<Arc<Shared>>,
    /// How long running tasks may finish after shutdown before they are stopped.
    pub grace: Duration,
    /// Stop after this run reaches a final state (`dags test`).
    pub until_run: Option<(String, String)>,
    /// Where to count runs created, tasks queued and finished (the API server's
    /// `/metrics` when it runs in this process).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where the scheduler reads the wall-clock time (`Clock::System` but in tests).
    pub clock: Clock,
    /// The Execution API its supervisors report to runs in this process and wakes the
    /// scheduler after each report it commits (`Ctx::wake_scheduler`): a supervisor's
    /// exit after a report then needs no look at the database of its own.
    pub api_wakes: bool,
}

pub struct Scheduler {
    cfg: Config,
    opts: Options,
    store: Held,
    /// In-process calls wrote on the connection while it was lent: a change its
    /// `data_version` does not show.
    lent_writes: bool,
    secret: Vec<u8>,
    exec: LocalExecutor,
    exec_events: Receiver<ExecEvent>,
    hostname: String,
    /// Who this process is in the lease: see `process::host_identity`.
    lease_host: String,
    job_id: i64,
    active: bool,
    /// Parsed DAGs by id, with the parse time they came from.
    dags: HashMap<String, (DateTime<Utc>, Arc<Dag>)>,
    paused: HashSet<String>,
    last_sync: Option<Instant>,
    /// Whether "another scheduler is active" was logged (once per standby spell).
    told_standby: bool,
    last_heartbeat: Instant,
    last_reap: Instant,
    data_version: i64,
    /// Another process wrote since the DAG cache was last refreshed.
    dirty: bool,
    /// Each scheduled DAG's next run, computed once and kept until the DAG or its runs
    /// change, so a pass does not query every DAG.
    next_runs: HashMap<String, Option<timetable::RunInfo>>,
    /// Pools that do not exist, already warned about.
    warned_pools: HashSet<String>,
    /// The task instances of the active runs, refreshed from what changed.
    tis: TiCache,
    /// The `dag_changes` count the DAG cache and pause flags were last read at, and the
    /// `run_changes` count `next_runs` was computed at: while they stay the same, so
    /// do the rows those came from, and an outside change (a task's report, say) costs
    /// no read of every DAG.
    dags_at: Option<i64>,
    next_runs_at: Option<i64>,
    /// The active runs as last read, with the `run_changes` count read before them:
    /// reused while no run was written since.
    active_runs: Option<(i64, Vec<RunRow>)>,
}

impl Scheduler {
    pub fn new(cfg: Config, opts: Options) -> Result<Scheduler> {
        let mut store = Store::open(&cfg.database.path)?;
        let secret = crate::jwt::secret(&cfg.auth.jwt_secret, &cfg.home)?;
        let (tx, exec_events) = crossbeam_channel::unbounded();
        let exec = LocalExecutor::new(
            &cfg,
            &opts.api_url,
            opts.in_process.clone(),
            opts.clock.clone(),
            tx,
        );
        let hostname = crate::hostname();
        let job_id = store.start_job(
            "SchedulerJob",
            &hostname,
            std::process::id(),
            opts.clock.now(),
        )?;
        Ok(Scheduler {
            store: Held::new(store, opts.connection.clone()),
            lent_writes: false,
            cfg,
            opts,
            secret,
            exec,
            exec_events,
            lease_host: crate::process::host_identity(&hostname),
            hostname,
            job_id,
            active: false,
            dags: HashMap::new(),
            paused: HashSet::new(),
            last_sync: None,
            told_standby: false,
            last_heartbeat: Instant::now(),
            last_reap: Instant::now(),
            data_version: -1,
            dirty: true,
            next_runs: HashMap::new(),
            warned_pools: HashSet::new(),
            tis: tis::TiCache::default(),
            dags_at: None,
            next_runs_at: None,
            active_runs: None,
        })
    }

    /// Runs until `shutdown` disconnects (or the watched run ends); `wake` is poked by
    /// an in-process API server when a task reports its state.
    pub fn run(mut self, wake: Receiver<()>, shutdown: Receiver<()>) -> Result<Stop> {
        log::info!(
            "scheduler started (job {}, {} pid {})",
            self.job_id,
            self.hostname,
            std::process::id()
        );
        // A panic in the loop ends this scheduler like an error does: its tasks are
        // still stopped for retry and its job is marked failed, so whoever waits on the
        // thread (the process) learns why and stops too.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.main_loop(&wake, &shutdown)
        }))
        .unwrap_or_else(|panic| {
            Err(Error::Failed(format!(
                "the scheduler panicked: {}",
                panic_message(panic.as_ref())
            )))
        });
        // The supervisors' last reports may be served on the connection meanwhile.
        self.store.lend();
        let events = self.exec_events.clone();
        self.exec.shutdown(self.opts.grace, &events);
        if let Err(e) = self.take_back() {
            log::error!("scheduler stopped: {e}");
            return result.and(Err(e));
        }
        // What the supervisors reported while stopping still needs its bookkeeping.
        while let Ok(ev) = events.try_recv() {
            if let Some((ti_id, try_number)) = self.reap(ev) {
                let _ = self.on_unreported(&ti_id, try_number);
            }
        }
        let state = if result.is_ok() { "success" } else { "failed" };
        let _ = self
            .store
            .end_job(self.job_id, state, self.opts.clock.now());
        match &result {
            Ok(_) => log::info!("scheduler stopped"),
            Err(e) => log::error!("scheduler stopped: {e}"),
        }
        result
    }

    fn main_loop(&mut self, wake: &Receiver<()>, shutdown: &Receiver<()>) -> Result<Stop> {
        let beat = Duration::from_secs_f64(self.cfg.scheduler.heartbeat_sec.max(0.05));
        // A scheduler for one run (`dags test`) drives only that run: no lease, no
        // scheduled runs, no adopting, so it can run beside a standalone.
        let private = self.opts.until_run.is_some();
        self.active = private;
        loop {
            if !private && (self.last_heartbeat.elapsed() >= beat || !self.active) {
                self.store
                    .heartbeat_job(self.job_id, self.opts.clock.now())?;
                self.last_heartbeat = Instant::now();
                if !self.try_activate()? {
                    self.store.lend();
                    select! {
                        recv(shutdown) -> _ => return Ok(Stop::Shutdown),
                        recv(after(beat)) -> _ => {
                            self.take_back()?;
                            continue;
                        }
                    }
                }
            }
            let next = match self.pass() {
                Ok(next) => next,
                Err(e) => {
                    // A pass that fails (the database busy for too long, say) is retried;
                    // nothing it did half-way was committed.
                    log::error!("scheduler pass failed: {e}");
                    Instant::now() + beat
                }
            };
            // A pass that queued tasks lent the connection; `dags test` takes it back
            // to look at its run.
            if self.opts.until_run.is_some() {
                self.take_back()?;
            }
            if let Some((dag_id, run_id)) = &self.opts.until_run
                && self
                    .store
                    .run(dag_id, run_id)?
                    .is_some_and(|r| r.state.is_finished())
            {
                return Ok(Stop::Shutdown);
            }
            let until = next.min(Instant::now() + beat);
            loop {
                let wait = until.saturating_duration_since(Instant::now()).min(POLL);
                self.store.lend();
                select! {
                    recv(shutdown) -> _ => return Ok(Stop::Shutdown),
                    recv(self.exec_events) -> ev => {
                        // Take whatever else is ready, then one pass for all of it.
                        let unreported: Vec<(String, u32)> = ev
                            .into_iter()
                            .chain(self.exec_events.try_iter().collect::<Vec<_>>())
                            .filter_map(|ev| self.reap(ev))
                            .collect();
                        // A try that reported its state did so through the API. One in
                        // this process wakes us for that commit (before the supervisor
                        // hears back, so before this exit): the exit needs nothing here,
                        // and the connection stays lent for the next task's claim, which
                        // comes about now. Otherwise the exit is how the report is
                        // noticed promptly (others' commits are still seen within `POLL`).
                        if unreported.is_empty() && self.opts.api_wakes {
                            continue;
                        }
                        self.take_back()?;
                        for (ti_id, try_number) in &unreported {
                            self.on_unreported(ti_id, *try_number)?;
                        }
                        if !unreported.is_empty() || self.outside_change()? {
                            break;
                        }
                    }
                    recv(wake) -> _ => {
                        self.take_back()?;
                        while wake.try_recv().is_ok() {}
                        // Woken after a commit of the API's: new unless the pass that
                        // just ran saw it (an exit that came first asked for it).
                        if self.outside_change()? {
                            break;
                        }
                    }
                    recv(after(wait)) -> _ => {
                        self.take_back()?;
                        if Instant::now() >= until || self.outside_change()? {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Takes the lease if no other live scheduler holds it. On becoming active, adopts
    /// what a dead predecessor left behind.
    fn try_activate(&mut self) -> Result<bool> {
        let now = self.opts.clock.now();
        let threshold = chrono::Duration::milliseconds(
            (self.cfg.scheduler.health_check_threshold * 1000.0) as i64,
        );
        // A holder on this host (and in this pid namespace) whose process is provably
        // gone (no such pid, or the pid now names a later process) is not waited for:
        // its heartbeat only looks fresh.
        let host = self.lease_host.clone();
        let dead = |h: &crate::store::Lease| {
            let gone = h.hostname == host
                && h.started.is_some_and(|at| {
                    u32::try_from(h.pid)
                        .is_ok_and(|pid| crate::process::still_running(pid, at) == Some(false))
                });
            if gone {
                log::warn!(
                    "the scheduler holding the lease (job {}, pid {} on this host) is gone; taking over without waiting for its heartbeat to go stale",
                    h.job_id,
                    h.pid
                );
            }
            gone
        };
        let holder = self.store.take_lease(
            self.job_id,
            &self.lease_host,
            std::process::id(),
            now,
            now - threshold,
            &dead,
        )?;
        let mine = holder.job_id == self.job_id;
        if mine && !self.active {
            log::info!("this scheduler (job {}) is now the active one", self.job_id);
            self.active = true;
            self.told_standby = false;
            self.adopt_orphans()?;
            // DAG callback requests a previous scheduler recorded but whose runner never
            // claimed them (the process ended first): handed over again. A claimed one
            // is not (Airflow too runs a DAG callback at most once).
            let queued: Vec<i64> = self
                .store
                .queued_dag_callbacks()?
                .iter()
                .map(|c| c.id)
                .collect();
            let now = self.opts.clock.now();
            self.dag_callbacks(&queued, now);
        } else if !mine && self.active {
            log::error!(
                "lost the scheduler lease to job {}; standing by",
                holder.job_id
            );
            self.active = false;
        } else if !mine && !self.told_standby {
            log::info!(
                "another scheduler is active (job {} on {} pid {}); standing by",
                holder.job_id,
                holder.hostname.split(' ').next().unwrap_or_default(),
                holder.pid
            );
            // Once per standby spell. No made-up past instant: on Windows `Instant`
            // counts from boot, so `now - 24 h` panics on a machine up for less.
            self.told_standby = true;
        }
        Ok(mine)
    }

    /// Task instances queued or running under a scheduler that is gone: their
    /// supervisors died with it. Running ones fail (or retry), their leftover process
    /// trees stopped; queued ones run again.
    fn adopt_orphans(&mut self) -> Result<()> {
        let orphans = self.store.orphans(self.job_id)?;
        if orphans.is_empty() {
            return Ok(());
        }
        log::warn!(
            "adopting {} task instance(s) left by a previous scheduler",
            orphans.len()
        );
        crate::executor::kill_orphans(
            &orphans
                .iter()
                .filter(|t| t.state == Some(TaskState::Running))
                .map(|t| t.id.clone())
                .collect(),
        );
        let now = self.opts.clock.now();
        let dags = self.dags_for(orphans.iter().map(|t| t.dag_id.as_str()))?;
        self.store.write(|tx| {
            for ti in &orphans {
                match ti.state {
                    Some(TaskState::Running) => {
                        fail_try(
                            tx,
                            ti,
                            dags.get(&ti.dag_id).map(|d| d.as_ref()),
                            now,
                            "its scheduler is gone",
                        )?;
                    }
                    _ => {
                        tx.unqueue_ti(&ti.id, now)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Takes the connection back from the in-process calls it was lent to.
    fn take_back(&mut self) -> Result<()> {
        self.lent_writes |= self.store.take_back()?;
        Ok(())
    }

    /// True when another connection committed since the last look, or the in-process
    /// calls wrote on this one while it was lent.
    fn outside_change(&mut self) -> Result<bool> {
        let v = self.store.data_version()?;
        let changed = v != self.data_version || std::mem::take(&mut self.lent_writes);
        self.data_version = v;
        self.dirty |= changed;
        Ok(changed)
    }

    /// Reaps a supervisor's exit. Returns the try when its supervisor ended without
    /// reporting a final state, which [`Scheduler::on_unreported`] settles; a reported one
    /// needs nothing more, as the API did its bookkeeping. (Its task instance can be
    /// running or restarting again only as a later part of the same try, such as a
    /// sensor's next poke, whose own supervisor answers for it.)
    fn reap(&mut self, ev: ExecEvent) -> Option<(String, u32)> {
        let ExecEvent::Exited {
            ti_id,
            try_number,
            reported,
        } = ev;
        self.exec.reap(&ti_id);
        self.opts.metrics.incr("executor_supervisors_exited", 1);
        if reported {
            return None;
        }
        self.opts.metrics.incr("executor_supervisors_unreported", 1);
        Some((ti_id, try_number))
    }

    /// Settles a try whose supervisor ended without reporting a final state: it was
    /// cleared while it ran (and can run again now), or the executor has the last word.
    fn on_unreported(&mut self, ti_id: &str, try_number: u32) -> Result<()> {
        let Some(ti) = self.store.ti(ti_id)? else {
            return Ok(());
        };
        if ti.try_number != try_number {
            return Ok(());
        }
        let now = self.opts.clock.now();
        match ti.state {
            // Cleared while it ran: now that its process is gone, it can run again.
            Some(TaskState::Restarting) => {
                self.store.write(|tx| tx.unqueue_ti(&ti.id, now))?;
                Ok(())
            }
            // The supervisor is gone but the task never got a final state: the
            // executor's word is the last one (Airflow's "executor reports failed").
            Some(TaskState::Running | TaskState::Queued) => {
                let dag = self.dags_for([ti.dag_id.as_str()])?;
                let reason = "its supervisor exited without reporting a state";
                self.store.write(|tx| {
                    fail_try(
                        tx,
                        &ti,
                        dag.get(&ti.dag_id).map(|d| d.as_ref()),
                        now,
                        reason,
                    )
                })
            }
            _ => Ok(()),
        }
    }

    /// The parsed DAGs of these ids, loaded or refreshed from the store as needed.
    fn dags_for<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, Arc<Dag>>> {
        let mut out = HashMap::new();
        for id in ids {
            if out.contains_key(id) {
                continue;
            }
            if let Some(d) = self.dags.get(id) {
                out.insert(id.to_string(), d.1.clone());
            } else if let Some(row) = self.store.dag(id)? {
                let d = row.dag;
                self.dags
                    .insert(id.to_string(), (row.last_parsed_time, d.clone()));
                out.insert(id.to_string(), d);
            }
        }
        Ok(out)
    }

    /// One scheduling pass. Returns when the next time-based work is due.
    fn pass(&mut self) -> Result<Instant> {
        self.opts.metrics.incr("scheduler_passes", 1);
        let now = self.opts.clock.now();
        let beat = Duration::from_secs_f64(self.cfg.scheduler.heartbeat_sec.max(0.05));
        let mut next = Instant::now() + beat;
        let mut look = self.sync_dags(now)?;
        let written = self.store.rows_written();
        if self.opts.until_run.is_none() {
            next = next.min(self.create_scheduled_runs(now)?);
            if look.queued_events {
                self.create_asset_runs(now)?;
            }
        }
        if self.last_reap.elapsed() >= beat {
            self.reap_zombies(now)?;
            self.last_reap = Instant::now();
        }
        // Human-in-the-loop waits whose time is up: resumed with their defaults, or to
        // fail (Airflow's `check_awaiting_input_timeouts`). Looked for first, so a pass
        // with none due writes nothing.
        if look.hitl_due {
            let swept = self.store.write(|tx| tx.sweep_hitl(now))?;
            log::info!(
                "human-in-the-loop timeouts: {} resumed, {} failed",
                swept.resumed,
                swept.failed
            );
        }

        // What this pass wrote so far (runs created, task instances failed or resumed)
        // moved the counts it looked at: look again, so the runs and task instances read
        // next are at least as new as this process's own writes.
        if self.store.rows_written() != written {
            look = self.store.pass_look(now)?;
        }
        // Open backfills are read before the runs: a backfill created in between has
        // runs this pass does not see, rather than no runs (which would finish it).
        let open = match self.opts.until_run {
            None if look.open_backfills => self.store.open_backfills()?,
            _ => Vec::new(),
        };
        let mut runs = self.active_runs(look.counts[1])?;
        if let Some((dag_id, run_id)) = &self.opts.until_run {
            runs.retain(|r| &r.dag_id == dag_id && &r.run_id == run_id);
        }
        let only = self.opts.until_run.clone();
        self.finish_backfills(&open, &runs, now)?;
        if runs.is_empty() {
            return Ok(next);
        }
        // The limits of the backfills whose runs are active: the open ones, and a
        // completed one whose run was cleared and queued again (it runs under its
        // backfill's limit, as in Airflow).
        let mut backfills = open;
        for id in runs.iter().filter_map(|r| r.backfill_id) {
            if !backfills.iter().any(|b| b.id == id)
                && let Some(b) = self.store.backfill(id)?
            {
                backfills.push(crate::store::OpenBackfill {
                    id,
                    max_active_runs: b.max_active_runs,
                    is_paused: b.is_paused,
                });
            }
        }
        let dags = self.dags_for(runs.iter().map(|r| r.dag_id.as_str()))?;
        // Taken out of `self` so the candidates can borrow it while `queue` runs; an
        // error (which may leave it ahead of a rolled-back transaction) drops it, and the
        // next pass reads it again.
        let mut cache = std::mem::take(&mut self.tis);
        cache.refresh(&self.store, &runs, look.counts[2])?;
        let max_runs_default = self.cfg.core.max_active_runs_per_dag;
        let mut new_callbacks: Vec<i64> = Vec::new();
        let job_id = self.job_id;
        let parallelism = self.cfg.core.parallelism;
        let default_limit = self.cfg.core.max_active_tasks_per_dag;
        // One write transaction advances the runs and queues what may start: one commit
        // (and one write of each page it touches) per pass, not two, right between a
        // task's report and its downstream's start.
        let (decisions, queued) = self.store.write(|tx| {
            new_callbacks.clear();
            let mut to_queue: Vec<&RunRow> = Vec::new();
            // Task instances found ready, scheduled in the cache but not yet written:
            // each is written once, queued or scheduled, when `queue` has decided.
            let mut ready = Ready::default();
            // Running runs per DAG and backfill: a backfill's runs count against its own
            // limit, the others against the DAG's (Airflow groups by both).
            let mut running_per_dag: HashMap<(&str, Option<i64>), u32> = HashMap::new();
            for r in runs.iter().filter(|r| r.state == RunState::Running) {
                *running_per_dag
                    .entry((&r.dag_id, r.backfill_id))
                    .or_default() += 1;
            }
            let mut retry_at: Option<DateTime<Utc>> = None;
            for run in &runs {
                let Some(dag) = dags.get(&run.dag_id) else {
                    continue;
                };
                let mut run_state = run.state;
                if run_state == RunState::Queued {
                    // Held: the DAG (or the run's backfill) is paused, and this is not the
                    // run `dags test` drives.
                    let (limit, held) = decide::start_limit(
                        run.backfill_id,
                        &backfills,
                        decide::run_limit(dag, max_runs_default),
                        self.paused.contains(&run.dag_id),
                    );
                    let held = held && only.is_none();
                    let n = running_per_dag
                        .entry((&run.dag_id, run.backfill_id))
                        .or_default();
                    if !decide::may_start_run(*n, limit, held) {
                        continue;
                    }
                    tx.set_run_state(run.id, RunState::Queued, RunState::Running, now)?;
                    *n += 1;
                    run_state = RunState::Running;
                }
                let Some(tis) = cache.run_mut(run.id) else {
                    continue;
                };
                let outcome = advance_run(tx, run, dag, tis, &mut ready, now)?;
                if let Some(at) = outcome.retry_at {
                    retry_at = Some(retry_at.map_or(at, |r: DateTime<Utc>| r.min(at)));
                }
                if let Some(done) = outcome.finished {
                    if tx.set_run_state(run.id, run_state, done, now)? {
                        // The DAG's callbacks for this end, recorded with the end itself, run
                        // by the executor once this commits (see `dag_callbacks`).
                        let is_failure = done == RunState::Failed;
                        let on = if is_failure {
                            "on_failure_callback"
                        } else {
                            "on_success_callback"
                        };
                        if dag.callbacks.iter().any(|c| c.on == on) {
                            new_callbacks.push(tx.add_dag_callback(
                                &run.dag_id,
                                &run.run_id,
                                is_failure,
                                outcome.reason,
                                outcome.reason_ti.as_deref(),
                                now,
                            )?);
                        }
                    }
                    log::info!("run {} of {} finished: {done}", run.run_id, run.dag_id);
                    continue;
                }
                to_queue.push(run);
            }
            let queued = queue(
                tx,
                &cache,
                &to_queue,
                &dags,
                Limits {
                    parallelism,
                    default_limit,
                },
                &mut self.warned_pools,
                &mut ready,
                job_id,
                now,
            )?;
            // The ready ones not queued now wait as scheduled.
            for (id, from) in ready.0 {
                tx.set_ti_state(&id, from, Some(TaskState::Scheduled), now, None)?;
            }
            Ok((retry_at, queued))
        })?;
        if let Some(at) = decisions {
            let wait = (at - self.opts.clock.now()).to_std().unwrap_or_default();
            next = next.min(later(wait));
        }
        // Lent before the supervisors start, so that their claims, which come at once,
        // find the connection free rather than go to a pool worker's.
        self.store.lend();
        self.submit(queued, now)?;
        self.dag_callbacks(&new_callbacks, now);
        self.tis = cache;
        Ok(next)
    }

    /// Hands DAG callback requests to the executor, each with a token good for that
    /// request only. The executor's runner claims each (a compare-and-set), so one handed
    /// over twice runs once.
    fn dag_callbacks(&mut self, ids: &[i64], now: DateTime<Utc>) {
        let lifetime = self.cfg.auth.execution_jwt_expiration_time;
        for &id in ids {
            let token = task_token::mint_dag_callback(&self.secret, id, lifetime, now);
            if let Err(e) = self.exec.submit_dag_callback(id, token) {
                log::error!("cannot start the runner of DAG callback request {id}: {e}");
            }
        }
    }

    /// Marks completed the open backfills none of whose runs is active any more; the
    /// write re-checks it, in case a run was queued again since `runs` was read.
    fn finish_backfills(
        &mut self,
        open: &[crate::store::OpenBackfill],
        runs: &[RunRow],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done = decide::finished_backfills(open, runs.iter().map(|r| r.backfill_id));
        if done.is_empty() {
            return Ok(());
        }
        self.store.write(|tx| {
            for id in &done {
                if tx.complete_backfill(*id, true, now)? {
                    log::info!("backfill {id} completed");
                }
            }
            Ok(())
        })
    }

    /// Hands the task instances just queued to the executor, each with its try's token.
    fn submit(&mut self, queued: Vec<Queued>, now: DateTime<Utc>) -> Result<()> {
        self.opts
            .metrics
            .incr("scheduler_task_instances_queued", queued.len() as u64);
        let lifetime = self.cfg.auth.execution_jwt_expiration_time;
        for ti in queued {
            let w = Workload {
                token: task_token::mint(&self.secret, &ti.id, ti.try_number, lifetime, now),
                ti_id: ti.id.clone(),
                dag_id: ti.dag_id,
                task_id: ti.task_id.clone(),
                try_number: ti.try_number,
            };
            if let Err(e) = self.exec.submit(w) {
                log::error!("cannot start the supervisor of {}: {e}", ti.task_id);
                self.take_back()?;
                self.store.write(|tx| {
                    tx.set_ti_state(
                        &ti.id,
                        Some(TaskState::Queued),
                        Some(TaskState::Failed),
                        now,
                        None,
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Every queued or running run (`Store::active_runs`), read again only when a run
    /// was written, added or deleted since the last read (`run_changes`, counted by
    /// triggers whichever process writes): most passes follow a task's report, which
    /// changes no run.
    fn active_runs(&mut self, changes: i64) -> Result<Vec<RunRow>> {
        if let Some((at, runs)) = &self.active_runs
            && *at == changes
        {
            return Ok(runs.clone());
        }
        let runs = self.store.active_runs()?;
        self.active_runs = Some((changes, runs.clone()));
        Ok(runs)
    }

    /// Reads the DAG folder when `dag_dir_list_interval` has passed, and refreshes the
    /// cached DAGs and pause flags when the store changed. Returns the pass's first look
    /// at the store (`Store::pass_look`), taken after the DAG folder's writes.
    fn sync_dags(&mut self, now: DateTime<Utc>) -> Result<PassLook> {
        let mut parsed = false;
        let every = Duration::from_secs_f64(self.cfg.scheduler.dag_dir_list_interval);
        if self.last_sync.is_none_or(|t| t.elapsed() >= every) {
            // The first pass re-parses every file: this process's environment, which
            // `$VAR`s in DAG files read, may not be the one they were last parsed with.
            let report = if self.last_sync.is_none() {
                crate::processor::sync_all(&mut self.store, &self.cfg, now)?
            } else {
                crate::processor::sync(&mut self.store, &self.cfg, now)?
            };
            parsed = report.parsed > 0;
            self.last_sync = Some(Instant::now());
            self.dirty = true;
        }
        self.outside_change()?;
        // Each count is read before the rows it stands for, so what is kept is at least
        // as new as its count.
        let look = self.store.pass_look(now)?;
        if !std::mem::take(&mut self.dirty) {
            return Ok(look);
        }
        let [dag_changes, run_changes, _] = look.counts;
        if self.next_runs_at != Some(run_changes) || self.dags_at != Some(dag_changes) {
            self.next_runs.clear();
            self.next_runs_at = Some(run_changes);
        }
        if self.dags_at != Some(dag_changes) {
            let rows = self.store.dag_states()?;
            self.paused = rows.iter().filter(|r| r.1).map(|r| r.0.clone()).collect();
            let live: HashSet<&str> = rows.iter().filter(|r| !r.2).map(|r| r.0.as_str()).collect();
            self.dags.retain(|id, (parsed, _)| {
                live.contains(id.as_str()) && rows.iter().any(|r| &r.0 == id && r.3 == *parsed)
            });
            for (id, _, stale, _) in &rows {
                if !stale && !self.dags.contains_key(id) {
                    self.dags_for([id.as_str()])?;
                }
            }
            self.paused
                .extend(rows.iter().filter(|r| r.2).map(|r| r.0.clone()));
            self.dags_at = Some(dag_changes);
        }
        // A parse frees most of what it allocated (the YAML tree, the DAG's JSON, the
        // copy read back): give that back now, before a run allocates beside it.
        if parsed {
            crate::memory::release_free();
        }
        Ok(look)
    }

    /// Creates the runs whose time has come; returns when the next one is due.
    fn create_scheduled_runs(&mut self, now: DateTime<Utc>) -> Result<Instant> {
        let mut next = later(MAX_SLEEP);
        let candidates: Vec<Arc<Dag>> = self
            .dags
            .iter()
            .filter(|(id, (_, d))| {
                !self.paused.contains(*id) && d.schedule != crate::model::Schedule::None
            })
            .map(|(_, (_, d))| d.clone())
            .collect();
        for dag in candidates {
            let next_run = match self.next_runs.get(&dag.dag_id) {
                Some(cached) => *cached,
                None => {
                    let last = self
                        .store
                        .last_scheduled_run(&dag.dag_id)?
                        .and_then(|r| info_of(&r));
                    let info = timetable::next_run(&dag, last.as_ref(), now);
                    self.next_runs.insert(dag.dag_id.clone(), info);
                    info
                }
            };
            let limit = decide::run_limit(&dag, self.cfg.core.max_active_runs_per_dag);
            let store = &self.store;
            let plan = decide::scheduled_run(next_run, now, limit, || {
                store.active_run_count(&dag.dag_id)
            })?;
            let (run_id, info) = match plan {
                RunPlan::Done | RunPlan::Full => continue,
                RunPlan::Later(at) => {
                    let wait = (at - now).to_std().unwrap_or_default();
                    next = next.min(later(wait));
                    continue;
                }
                RunPlan::Create { run_id, info } => (run_id, info),
            };
            let created = self.store.write(|tx| {
                tx.create_run(
                    &NewRun {
                        dag: &dag,
                        run_id: run_id.clone(),
                        run_type: RunType::Scheduled,
                        logical_date: Some(info.logical_date),
                        data_interval: Some((info.data_interval_start, info.data_interval_end)),
                        run_after: info.run_after,
                        conf: Value::Object(Default::default()),
                        note: None,
                        triggered_by: "timetable",
                        user: None,
                        backfill_id: None,
                    },
                    now,
                )
            });
            // Whatever happened, the next run is computed afresh from the store.
            self.next_runs.remove(&dag.dag_id);
            match created {
                Ok(_) => {
                    self.opts.metrics.incr("scheduler_dag_runs_created", 1);
                    log::info!("created run {run_id} of {}", dag.dag_id);
                    // More may be due (catchup): come straight back.
                    next = Instant::now();
                }
                Err(Error::Conflict(msg)) => log::debug!("{msg}"),
                Err(e) => return Err(e),
            }
        }
        Ok(next)
    }

    /// Creates a run of each unpaused asset-scheduled DAG whose condition its queued
    /// events satisfy (Airflow's `dags_needing_dagruns` and
    /// `_create_dag_runs_asset_triggered`). A DAG no longer scheduled on assets has its
    /// queue emptied. A producer's success wakes the scheduler, so this runs at once.
    fn create_asset_runs(&mut self, now: DateTime<Utc>) -> Result<()> {
        let waiting = self.store.dags_with_queued_events()?;
        for dag_id in waiting {
            if self.paused.contains(&dag_id) {
                continue;
            }
            let Some(dag) = self.dags.get(&dag_id).map(|(_, d)| d.clone()) else {
                continue;
            };
            let Some(cond) = dag.schedule.asset_condition() else {
                self.store
                    .write(|tx| tx.delete_queued(Some(&dag_id), None, None))?;
                continue;
            };
            let queued = self.store.queued_events(Some(&dag_id), None, None)?;
            // An alias stands for the assets it resolves to (events attached through it
            // named them): satisfied when any of them has a queued event, as Airflow's
            // `AssetEvaluator`.
            let mut resolved = std::collections::HashMap::new();
            for alias in cond.aliases() {
                resolved.insert(alias.to_string(), self.store.alias_assets(alias)?);
            }
            let ready = cond.evaluate(&|leaf| match leaf {
                crate::model::AssetCond::Asset(a) => {
                    queued.iter().any(|q| q.name == a.name && q.uri == a.uri)
                }
                crate::model::AssetCond::Alias(name) => resolved.get(name).is_some_and(|assets| {
                    assets
                        .iter()
                        .any(|a| queued.iter().any(|q| q.name == a.name && q.uri == a.uri))
                }),
                _ => false,
            });
            if !ready {
                continue;
            }
            let Some(triggered) = queued.iter().map(|q| q.created_at).max() else {
                continue;
            };
            let run_id = asset_run_id(triggered);
            let created = self
                .store
                .write(|tx| tx.create_asset_run(&dag, &queued, &run_id, now));
            match created {
                Ok(_) => {
                    self.opts.metrics.incr("scheduler_dag_runs_created", 1);
                    log::info!("created asset-triggered run {run_id} of {dag_id}");
                }
                Err(Error::Conflict(msg)) => log::debug!("{msg}"),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Running task instances whose heartbeat stopped (supervisor killed, machine
    /// asleep) fail or go up for retry after `task_instance_heartbeat_timeout`.
    fn reap_zombies(&mut self, now: DateTime<Utc>) -> Result<()> {
        let timeout = chrono::Duration::milliseconds(
            (self.cfg.scheduler.task_instance_heartbeat_timeout * 1000.0) as i64,
        );
        let stale = self.store.stale_running(now - timeout)?;
        if stale.is_empty() {
            return Ok(());
        }
        self.opts
            .metrics
            .incr("scheduler_zombies", stale.len() as u64);
        let dags = self.dags_for(stale.iter().map(|t| t.dag_id.as_str()))?;
        self.store.write(|tx| {
            for ti in &stale {
                log::warn!(
                    "{} of {} ({}) stopped heartbeating; it is a zombie",
                    ti.task_id,
                    ti.run_id,
                    ti.dag_id
                );
                fail_try(
                    tx,
                    ti,
                    dags.get(&ti.dag_id).map(|d| d.as_ref()),
                    now,
                    "no heartbeat",
                )?;
            }
            Ok(())
        })
    }
}

/// A task instance moved to queued in a pass, to hand to the executor once it commits.
struct Queued {
    id: String,
    dag_id: String,
    task_id: String,
    try_number: u32,
}

/// Task instances a pass found ready to be scheduled, with the state each was in: set
/// to scheduled in the pass's cache, and written once `queue` has decided, straight to
/// queued (`Tx::schedule_and_queue_ti`) or to scheduled. Either write is the
/// compare-and-set on that state; one that fails leaves the row to its other writer,
/// whose change the next pass reads (a higher change number) in place of the cache's.
#[derive(Default)]
struct Ready(Vec<(String, Option<TaskState>)>);

impl Ready {
    fn take(&mut self, id: &str) -> Option<Option<TaskState>> {
        let at = self.0.iter().position(|(i, _)| i == id)?;
        Some(self.0.swap_remove(at).1)
    }
}

/// The pass's limits on what runs at once (`[core]`).
struct Limits {
    parallelism: u32,
    /// `max_active_tasks_per_dag`, for DAGs without their own.
    default_limit: u32,
}

/// Moves scheduled task instances of `runs` to queued, highest priority first, within
/// `parallelism`, each DAG's `max_active_tasks` and the pools, in the pass's transaction.
#[allow(clippy::too_many_arguments)]
fn queue(
    tx: &Tx,
    cache: &TiCache,
    runs: &[&RunRow],
    dags: &HashMap<String, Arc<Dag>>,
    limits: Limits,
    warned_pools: &mut HashSet<String>,
    ready: &mut Ready,
    job_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Queued>> {
    let waiting: Vec<(&RunRow, &RunTis)> = runs
        .iter()
        .filter_map(|r| cache.run(r.id).map(|tis| (*r, tis)))
        .filter(|(_, tis)| tis.scheduled().next().is_some())
        .collect();
    // Most passes have nothing scheduled: no need to read what is in use.
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let usage = tx.slot_usage()?;
    let pools: HashMap<String, i64> = tx.pool_slots()?.into_iter().collect();
    // The tasks with limits of their own, and what their DAGs have queued or running.
    let mut task_limits = decide::TaskLimits::new();
    let mut task_usage = Vec::new();
    let mut seen = HashSet::new();
    for (run, _) in &waiting {
        let Some(dag) = dags.get(&run.dag_id) else {
            continue;
        };
        let mut limited = false;
        for t in &dag.tasks {
            if t.max_active_tis_per_dag.is_some() || t.max_active_tis_per_dagrun.is_some() {
                task_limits.insert(
                    (dag.dag_id.clone(), t.task_id.clone()),
                    (t.max_active_tis_per_dag, t.max_active_tis_per_dagrun),
                );
                limited = true;
            }
        }
        if limited && seen.insert(dag.dag_id.clone()) {
            task_usage.extend(tx.task_usage(&dag.dag_id)?);
        }
    }
    let chosen = decide::to_queue(
        waiting
            .into_iter()
            .map(|(run, tis)| (run.id, run.dag_id.as_str(), tis.scheduled())),
        decide::Slots::in_use(&usage).with_task_limits(&task_limits, &task_usage),
        &pools,
        limits.parallelism,
        |dag_id| {
            dags.get(dag_id)
                .and_then(|d| d.max_active_tasks)
                .unwrap_or(limits.default_limit)
        },
        warned_pools,
    );
    let mut out = Vec::new();
    for ti in chosen {
        let queued = match ready.take(&ti.id) {
            Some(from) => tx.schedule_and_queue_ti(&ti.id, from, job_id, now)?,
            None => tx.queue_ti(&ti.id, job_id, now)?,
        };
        if queued {
            out.push(Queued {
                id: ti.id.clone(),
                dag_id: ti.dag_id.clone(),
                task_id: ti.task_id.clone(),
                try_number: ti.try_number,
            });
        }
    }
    Ok(out)
}

/// What one run's pass found.
struct Outcome {
    finished: Option<RunState>,
    retry_at: Option<DateTime<Utc>>,
    /// Why it finished, in Airflow's words (`DagCallbackRequest.msg`), and the task
    /// instance the DAG's callback gets the context of when this pass knows it (a timeout's
    /// or a deadlock's); the ones that succeeded or failed last are looked up when the
    /// callback runs.
    reason: &'static str,
    reason_ti: Option<String>,
}

/// Applies trigger rules and retries to the task instances of one run that can move:
/// those whose own or an upstream's state changed since the last pass, in task order so
/// skips and upstream failures travel down the graph in one pass.
fn advance_run(
    tx: &Tx,
    run: &RunRow,
    dag: &Arc<Dag>,
    tis: &mut RunTis,
    ready: &mut Ready,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mut retry_at = None;

    if decide::run_timed_out(dag.dagrun_timeout_secs, run.start_date, now) {
        let timeout = dag.dagrun_timeout_secs.unwrap_or_default();
        log::warn!(
            "run {} of {} timed out after {timeout} s",
            run.run_id,
            run.dag_id
        );
        // Airflow's callback context: the unfinished instance that started last.
        let last_unfinished = tis
            .tis()
            .iter()
            .filter(|t| !t.state.is_some_and(TaskState::is_finished))
            .max_by_key(|t| t.start_date)
            .map(|t| t.id.clone());
        for ti in tis
            .tis()
            .iter()
            .filter(|t| !t.state.is_some_and(TaskState::is_finished))
        {
            // Running ones learn it at their next heartbeat and stop.
            tx.set_ti_state(&ti.id, ti.state, Some(TaskState::Skipped), now, None)?;
        }
        return Ok(Outcome {
            finished: Some(RunState::Failed),
            retry_at,
            reason: "timed_out",
            reason_ti: last_unfinished,
        });
    }

    let mut graph = tis.graph(dag);
    let mut todo = tis.take_todo(&graph);
    let mut expanded = false;
    while let Some((p, which)) = todo.pop_first() {
        let task = &dag.tasks[p];
        // A length not known from the file comes from the upstreams' results, now that
        // they may be done (`None`, so upstream_failed, when one pushed none).
        // Only an unexpanded instance needs the length: an expanded task's instances
        // are looked at without reading (and parsing) the upstream's result each time.
        let unexpanded = || {
            graph.tis_of_task[p]
                .iter()
                .any(|&i| tis.ti(i).map_index < 0)
        };
        let mapped = match &task.mapped {
            Some(m) if m.length().is_some() => Some(m.length()),
            Some(_) if !unexpanded() => Some(None),
            Some(m) => Some(
                m.resolved(|u| {
                    let pushed = tx
                        .xcom_values(&run.dag_id, &run.run_id, u, "return_value")
                        .ok()?;
                    crate::model::mappable_values(&pushed)
                })
                .and_then(|m| m.length()),
            ),
            None => None,
        };
        if which.is_none()
            && let Some(n) = task.mapped.as_ref().and_then(|m| m.length())
            && revise_literal_map(tx, tis, &graph, p, task, n, now)?
        {
            log::info!(
                "{} of {} revised to {n} mapped task instances (its list changed)",
                task.task_id,
                run.run_id
            );
            // The next pass reads the revised instances and schedules them.
            expanded = true;
            retry_at = Some(now);
            continue;
        }
        // The trigger rule is the same for every instance of a task: evaluated once.
        let mut decision = None;
        let instances = match which {
            Some(i) => vec![i],
            None => graph.tis_of_task[p].clone(),
        };
        // A mapped task's instances that go from no state to scheduled move in one
        // statement after the loop (they are the whole task after its expansion).
        let mut to_schedule: Vec<usize> = Vec::new();
        let batch = instances.len() > 1;
        for i in instances {
            let ti = tis.ti(i);
            let current = ti.state;
            let step = decide::task_step(
                current,
                ti.next_retry_at,
                now,
                task.skips_the_worker(),
                || {
                    *decision.get_or_insert_with(|| {
                        rules::evaluate(task.trigger_rule, &tis.upstream_states(&graph, p))
                    })
                },
            );
            // An expansion its trigger rule let through to scheduled is written scheduled.
            let schedules = matches!(step, Step::To(TaskState::Scheduled));
            let to = match decide::mapped_step(step, ti.map_index, mapped) {
                Step::Stay => continue,
                Step::RetryAt(at) => {
                    retry_at = Some(retry_at.map_or(at, |r: DateTime<Utc>| r.min(at)));
                    continue;
                }
                Step::Expand(n) => {
                    if tx.expand_ti(ti, n, schedules, now)? {
                        log::info!(
                            "{} of {} expanded into {n} task instances",
                            ti.task_id,
                            ti.run_id
                        );
                        // As Airflow's `_get_ready_tis`, what was expanded is scheduled in
                        // the same pass: the instances are read into the run's cache and
                        // the task is looked at again (those written scheduled are then
                        // queued as any other; to success, each moves as other tasks do).
                        for row in tx.tis_of_task(&run.dag_id, &run.run_id, &task.task_id)? {
                            tis.put(row);
                        }
                        graph = tis.graph(dag);
                        todo.insert((p, None));
                        expanded = true;
                        break;
                    }
                    continue;
                }
                Step::To(to) => Some(to),
            };
            if batch && current.is_none() && to == Some(TaskState::Scheduled) {
                to_schedule.push(i);
                continue;
            }
            let id = &ti.id;
            let moved = if to == Some(TaskState::Success) {
                // Straight from no state to success, as a try of its own.
                tx.set_ti_state(id, current, Some(TaskState::Scheduled), now, None)?
                    && tx.set_ti_state(
                        id,
                        Some(TaskState::Scheduled),
                        Some(TaskState::Success),
                        now,
                        None,
                    )?
            } else if to == Some(TaskState::Scheduled) {
                // Written when `queue` has decided (see `Ready`).
                ready.0.push((id.clone(), current));
                true
            } else {
                tx.set_ti_state(id, current, to, now, None)?
            };
            if moved {
                if to == Some(TaskState::Success) {
                    tis.set_state(i, Some(TaskState::Scheduled));
                }
                tis.set_state(i, to);
                todo.extend(graph.downstream[p].iter().map(|&d| (d, None)));
            }
        }
        if !to_schedule.is_empty() {
            let ids: Vec<&str> = to_schedule.iter().map(|&i| tis.ti(i).id.as_str()).collect();
            let moved: HashSet<String> = tx.schedule_new_tis(&ids, now)?.into_iter().collect();
            for i in to_schedule {
                if moved.contains(&tis.ti(i).id) {
                    tis.set_state(i, Some(TaskState::Scheduled));
                }
            }
            if !moved.is_empty() {
                todo.extend(graph.downstream[p].iter().map(|&d| (d, None)));
            }
        }
    }

    if expanded {
        // Its new instances are not in the counts yet: the run is not over.
        return Ok(Outcome {
            finished: None,
            retry_at,
            reason: "",
            reason_ti: None,
        });
    }
    let (unfinished, moving) = tis.unfinished();
    let finished = decide::run_end(unfinished, moving, || {
        (0..dag.tasks.len())
            .filter(|&p| graph.downstream[p].is_empty())
            .flat_map(|p| graph.tis_of_task[p].iter().copied())
            .any(|i| {
                matches!(
                    tis.ti(i).state,
                    Some(TaskState::Failed | TaskState::UpstreamFailed)
                )
            })
    });
    let mut reason = match finished {
        Some(RunState::Success) => "success",
        _ => "task_failure",
    };
    let mut reason_ti = None;
    if unfinished > 0 && finished.is_some() {
        // Deadlock: nothing can ever move (all waiting on rules that cannot be met).
        log::warn!(
            "run {} of {} is deadlocked: no task can run",
            run.run_id,
            run.dag_id
        );
        reason = "all_tasks_deadlocked";
        // As Airflow's: an unfinished instance one of whose direct upstreams finished.
        let finished_tasks: HashSet<&str> = tis
            .tis()
            .iter()
            .filter(|t| t.state.is_some_and(TaskState::is_finished))
            .map(|t| t.task_id.as_str())
            .collect();
        reason_ti = tis
            .tis()
            .iter()
            .filter(|t| !t.state.is_some_and(TaskState::is_finished))
            .find(|t| {
                dag.task(&t.task_id).is_some_and(|task| {
                    task.upstream
                        .iter()
                        .any(|u| finished_tasks.contains(u.as_str()))
                })
            })
            .map(|t| t.id.clone());
    }
    Ok(Outcome {
        finished,
        retry_at,
        reason,
        reason_ti,
    })
}

/// Task `p`, mapped over literals that now give `n` instances, after its list changed in
/// the file since the run's instances were made: Airflow's `verify_integrity` when the
/// DAG changed removes the instances past the new length (whatever their state) and
/// brings back removed ones within it, and `_revise_map_indexes_if_mapped` adds the
/// missing map indexes when one of the task's instances may be scheduled (no state or
/// up for retry, its trigger rule met). Only expanded instances are revised: an
/// unexpanded one (map index -1) is expanded by `decide::mapped_step`. True if it wrote.
fn revise_literal_map(
    tx: &Tx,
    tis: &RunTis,
    graph: &tis::Graph,
    p: usize,
    task: &crate::model::Task,
    n: usize,
    now: DateTime<Utc>,
) -> Result<bool> {
    let expanded: Vec<&TiRow> = graph.tis_of_task[p]
        .iter()
        .map(|&i| tis.ti(i))
        .filter(|t| t.map_index >= 0)
        .collect();
    let Some(first) = expanded.first() else {
        return Ok(false);
    };
    let within = |t: &TiRow| (t.map_index as usize) < n;
    let removed = |t: &TiRow| t.state == Some(TaskState::Removed);
    let shrink = expanded.iter().any(|t| !within(t) && !removed(t));
    let restore = expanded.iter().any(|t| within(t) && removed(t));
    let missing = expanded.iter().filter(|t| within(t)).count() < n;
    // Restored instances have no state again, so they count as waiting too.
    let waiting = expanded.iter().any(|t| {
        within(t)
            && matches!(
                t.state,
                None | Some(TaskState::UpForRetry | TaskState::Removed)
            )
    });
    let grow = missing
        && waiting
        && rules::evaluate(task.trigger_rule, &tis.upstream_states(graph, p))
            == rules::Decision::Run;
    if !(shrink || restore || grow) {
        return Ok(false);
    }
    tx.revise_map_indexes(first, n, grow, now)
}

/// Ends a try that will not report for itself: up for retry if it has tries left,
/// failed otherwise.
fn fail_try(tx: &Tx, ti: &TiRow, dag: Option<&Dag>, now: DateTime<Utc>, why: &str) -> Result<()> {
    let task = dag.and_then(|d| d.task(&ti.task_id));
    let retry = ti.try_number <= ti.max_tries && task.is_some();
    let (to, next) = if retry {
        let delay = rules::retry_delay(task.expect("checked above"), ti.try_number);
        (
            TaskState::UpForRetry,
            Some(now + chrono::Duration::from_std(delay).unwrap_or_default()),
        )
    } else {
        (TaskState::Failed, None)
    };
    if tx.set_ti_state(&ti.id, ti.state, Some(to), now, next)? {
        log::warn!(
            "{} of {} (try {}): {to}, because {why}",
            ti.task_id,
            ti.run_id,
            ti.try_number
        );
        tx.event(
            &Event::for_ti(
                ti,
                to.as_str(),
                "scheduler",
                serde_json::json!({"reason": why}),
            ),
            now,
        )?;
    }
    Ok(())
}

/// Airflow's run id of an asset-triggered run: `asset_triggered__`, `run_after` as
/// Python's `isoformat` writes it, and 8 random letters and digits (it has no logical
/// date to make it unique).
fn asset_run_id(run_after: DateTime<Utc>) -> String {
    let digits = if run_after.timestamp_subsec_micros() == 0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Micros
    };
    format!(
        "asset_triggered__{}_{}",
        run_after.to_rfc3339_opts(digits, false),
        crate::ids::random_string(
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            8
        )
    )
}

fn info_of(r: &RunRow) -> Option<timetable::RunInfo> {
    Some(timetable::RunInfo {
        logical_date: r.logical_date?,
        data_interval_start: r.data_interval_start?,
        data_interval_end: r.data_interval_end?,
        run_after: r.run_after,
    })
}

/// The instant `wait` from now, at most [`MAX_SLEEP`] away: a run due in the year 9999
/// must not overflow `Instant` (whose range is the platform's: on Windows it counts
/// from boot), and the loop looks again within the hour anyway.
fn later(wait: Duration) -> Instant {
    Instant::now() + wait.min(MAX_SLEEP)
}

/// The text a panic was raised with, when it is text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A scheduler running on its own thread.
pub struct Handle {
    thread: std::thread::JoinHandle<Result<Stop>>,
    /// Dropped to stop it: every select! in the loop sees the disconnect.
    shutdown: Sender<()>,
    /// Disconnects when the thread ends, however it ends (see [`Handle::ended`]).
    ended: Receiver<()>,
}

impl Handle {
    /// Stops scheduling, lets running tasks finish within the grace period, and waits.
    pub fn stop(self) -> Result<()> {
        drop(self.shutdown);
        match self.thread.join() {
            Ok(r) => r.map(|_| ()),
            Err(panic) => Err(Error::Failed(format!(
                "the scheduler thread panicked: {}",
                panic_message(panic.as_ref())
            ))),
        }
    }

    /// A channel that disconnects when the scheduler thread ends, for a `select!` beside
    /// the process's stop signals: a scheduler that ends before it was asked to has
    /// failed, and the process must not carry on without it.
    pub fn ended(&self) -> &Receiver<()> {
        &self.ended
    }

    /// Whether the loop has ended by itself (`dags test`'s run finished).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Starts a scheduler on its own thread; `wake` is poked by an in-process API server.
pub fn start(cfg: Config, opts: Options, wake: Receiver<()>) -> Result<Handle> {
    let (shutdown, stop) = crossbeam_channel::bounded(0);
    let (ended_tx, ended) = crossbeam_channel::bounded::<()>(0);
    let sched = Scheduler::new(cfg, opts)?;
    let thread = std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || {
            // Dropped when this closure ends, by return or by unwinding.
            let _ended = ended_tx;
            sched.run(wake, stop)
        })
        .map_err(|e| Error::Failed(format!("cannot start the scheduler: {e}")))?;
    Ok(Handle {
        thread,
        shutdown,
        ended,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A fresh `UPDRAFT_HOME`, removed when dropped.
    struct Home(std::path::PathBuf);

    impl Drop for Home {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A scheduler over a home whose one DAG, `daily`, runs an EmptyOperator every
    /// midnight from 2020-01-01 with catchup, reading the time from `clock`. Its passes
    /// need no executor: EmptyOperator tasks succeed without running.
    fn scheduler(name: &str, clock: &Clock) -> (Home, Scheduler) {
        let (home, sched, _) = scheduler_lending(name, clock, false);
        (home, sched)
    }

    /// [`scheduler`], whose connection is lent to in-process calls when `lends`.
    fn scheduler_lending(
        name: &str,
        clock: &Clock,
        lends: bool,
    ) -> (Home, Scheduler, Option<Arc<Shared>>) {
        let home = Home(
            std::env::temp_dir().join(format!("updraft-scheduler-{name}-{}", std::process::id())),
        );
        let _ = std::fs::remove_dir_all(&home.0);
        std::fs::create_dir_all(home.0.join("dags")).unwrap();
        std::fs::write(
            home.0.join("dags").join("daily.yml"),
            "daily:\n  schedule: \"0 0 * * *\"\n  catchup: true\n  default_args:\n    start_date: 2020-01-01\n  tasks:\n    - task_id: t\n      operator: EmptyOperator\n",
        )
        .unwrap();
        let env: Vec<(String, String)> = [
            ("UPDRAFT__CORE__LOAD_EXAMPLES", "False"),
            ("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = Config::load(&home.0, &env).unwrap();
        let connection = lends.then(|| Arc::new(Shared::new(cfg.database.path.clone())));
        let opts = Options {
            api_url: "http://127.0.0.1:9/execution/".into(),
            in_process: None,
            connection: connection.clone(),
            grace: Duration::ZERO,
            until_run: None,
            metrics: Default::default(),
            clock: clock.clone(),
            api_wakes: false,
        };
        (home, Scheduler::new(cfg, opts).unwrap(), connection)
    }

    /// Issue 22: a pass lends its connection before it hands what it queued to the
    /// executor, so the supervisors' claims, which come at once, are served on it rather
    /// than on a pool worker's (a quarter of a chain's claims were); and a supervisor's
    /// exit that reported its state is reaped without taking the connection back (a
    /// store call while it is lent panics).
    #[test]
    fn a_pass_ends_with_its_connection_lent_and_a_reported_exit_leaves_it_lent() {
        let clock = Clock::fake(Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).unwrap());
        let (_home, mut sched, shared) = scheduler_lending("lends", &clock, true);
        let shared = shared.unwrap();
        let served = |shared: &Shared| shared.try_serve(|s| (s.runs_of(Some("daily"), 10), true));
        assert!(served(&shared).is_none(), "held while the scheduler works");

        sched.pass().unwrap();
        let runs = served(&shared)
            .expect("lent once the pass is done")
            .unwrap();
        assert_eq!(runs.len(), 1, "the pass created and drove a run");

        let exit = |reported| ExecEvent::Exited {
            ti_id: "no-such-ti".into(),
            try_number: 1,
            reported,
        };
        assert_eq!(sched.reap(exit(true)), None);
        assert!(
            served(&shared).is_some(),
            "still lent after a reported exit"
        );
        assert_eq!(sched.reap(exit(false)), Some(("no-such-ti".into(), 1)));

        sched.take_back().unwrap();
        assert!(served(&shared).is_none());
        sched.on_unreported("no-such-ti", 1).unwrap();
        assert_eq!(sched.store.runs_of(Some("daily"), 10).unwrap().len(), 1);
    }

    /// A task instance found ready is written once by the pass that queues it, straight
    /// from no state to queued, and its row is what scheduling then queueing it left: a
    /// new try, the scheduled and queued times, this scheduler's job. The one that is
    /// not queued (a pool of one slot) is written as scheduled, and queued by a later
    /// pass with the usual write.
    #[test]
    fn a_ready_task_instance_is_written_once_when_the_pass_queues_it() {
        let now = Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).unwrap();
        let clock = Clock::fake(now);
        let (home, mut sched) = scheduler("ready", &clock);
        std::fs::remove_file(home.0.join("dags").join("daily.yml")).unwrap();
        std::fs::write(
            home.0.join("dags").join("two.yml"),
            "two:\n  schedule: \"0 0 * * *\"\n  catchup: true\n  default_args:\n    start_date: 2020-01-01\n    pool: one\n  tasks:\n    - task_id: a\n      operator: BashOperator\n      bash_command: \"true\"\n    - task_id: b\n      operator: BashOperator\n      bash_command: \"true\"\n",
        )
        .unwrap();
        sched.store.set_pool("one", 1, None).unwrap();
        let mut passes = 0;
        let tis = loop {
            let before = sched.store.ti_change_seq().unwrap();
            let existed = !sched.store.runs_of(Some("two"), 1).unwrap().is_empty();
            sched.pass().unwrap();
            passes += 1;
            let run = sched.store.runs_of(Some("two"), 1).unwrap().pop();
            if let Some(run) = run {
                let tis = sched.store.tis_of_run("two", &run.run_id).unwrap();
                if tis.iter().any(|t| t.state.is_some()) {
                    // The rows inserted by this pass (numbered by the insert trigger),
                    // then one write each: queued for one, scheduled for the other.
                    let inserted = if existed { 0 } else { tis.len() as i64 };
                    let after = sched.store.ti_change_seq().unwrap();
                    assert_eq!(after - before, inserted + 2, "{tis:?}");
                    break tis;
                }
            }
            assert!(passes < 5, "no run was advanced");
        };
        let queued: Vec<_> = tis
            .iter()
            .filter(|t| t.state == Some(TaskState::Queued))
            .collect();
        let scheduled: Vec<_> = tis
            .iter()
            .filter(|t| t.state == Some(TaskState::Scheduled))
            .collect();
        assert_eq!((queued.len(), scheduled.len()), (1, 1), "{tis:?}");
        let q = queued[0];
        assert_eq!(q.try_number, 1);
        assert_eq!((q.scheduled_dttm, q.queued_dttm), (Some(now), Some(now)));
        assert_eq!(q.updated_at, now);
        let s = scheduled[0];
        assert_eq!(
            (s.try_number, s.scheduled_dttm, s.queued_dttm),
            (1, Some(now), None)
        );
    }

    /// The logical dates of `daily`'s runs, oldest first, and whether all succeeded.
    fn runs(s: &Scheduler) -> (Vec<String>, bool) {
        let rows = s.store.runs_of(Some("daily"), 100).unwrap();
        let dates = rows
            .iter()
            .rev()
            .map(|r| r.logical_date.unwrap().date_naive().to_string())
            .collect();
        (dates, rows.iter().all(|r| r.state == RunState::Success))
    }

    /// Issue 22: memory freed by a DAG folder's parse stayed with the allocator until the
    /// trim thread's next round, so a run started meanwhile peaked above it. A pass that
    /// parsed a file returns it at once; one that parsed nothing does not trim.
    #[test]
    fn a_pass_that_parsed_returns_the_freed_memory() {
        let clock = Clock::fake(Utc.with_ymd_and_hms(2020, 1, 3, 12, 0, 0).unwrap());
        let (_home, mut sched) = scheduler("release", &clock);
        let releases = || crate::memory::RELEASES.with(|n| n.get());
        let before = releases();
        sched.pass().unwrap();
        assert_eq!(releases(), before + 1);
        sched.last_sync = Some(Instant::now() - Duration::from_secs(3600));
        sched.pass().unwrap();
        assert_eq!(releases(), before + 1, "nothing changed, nothing parsed");
    }

    /// A run a pass creates is driven by that same pass: its own write moved the counts
    /// the pass looked at first, so it looks again before it reads the active runs.
    #[test]
    fn a_pass_drives_the_run_it_creates() {
        let clock = Clock::fake(Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).unwrap());
        let (_home, mut sched) = scheduler("own", &clock);
        // The first run, then passes that find nothing new: the active runs are kept.
        for _ in 0..3 {
            sched.pass().unwrap();
        }
        assert_eq!(runs(&sched), (vec!["2020-01-01".into()], true));
        clock.set(Utc.with_ymd_and_hms(2020, 1, 2, 12, 0, 0).unwrap());
        sched.pass().unwrap();
        assert_eq!(
            runs(&sched),
            (vec!["2020-01-01".into(), "2020-01-02".into()], true)
        );
    }

    #[test]
    fn passes_create_the_runs_their_clock_says_are_due() {
        let clock = Clock::fake(Utc.with_ymd_and_hms(2020, 1, 3, 12, 0, 0).unwrap());
        let (_home, mut sched) = scheduler("clock", &clock);
        // Catchup creates one run a pass; more passes than runs create no more.
        for _ in 0..6 {
            sched.pass().unwrap();
        }
        assert_eq!(
            runs(&sched),
            (
                vec![
                    "2020-01-01".into(),
                    "2020-01-02".into(),
                    "2020-01-03".into()
                ],
                true
            )
        );
        clock.advance(chrono::Duration::hours(11));
        sched.pass().unwrap();
        assert_eq!(
            runs(&sched).0.len(),
            3,
            "2020-01-04 is not due before midnight"
        );
        clock.advance(chrono::Duration::hours(1));
        for _ in 0..3 {
            sched.pass().unwrap();
        }
        assert_eq!(
            runs(&sched),
            (
                vec![
                    "2020-01-01".into(),
                    "2020-01-02".into(),
                    "2020-01-03".into(),
                    "2020-01-04".into()
                ],
                true
            )
        );
    }
    /// Issue 22: most passes follow a task's report, which writes no run and no DAG row,
    /// so they read neither the active runs nor every DAG again; a change by another
    /// connection to either is still seen by the next pass.
    #[test]
    fn passes_read_runs_and_dags_again_only_after_they_change() {
        let clock = Clock::fake(Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).unwrap());
        let (_home, mut sched) = scheduler("reads", &clock);
        for _ in 0..4 {
            sched.pass().unwrap();
        }
        assert_eq!(runs(&sched), (vec!["2020-01-01".into()], true));
        let reads = |s: &Scheduler| (s.store.active_runs_reads(), s.store.dag_states_reads());
        let before = reads(&sched);
        assert!(before.0 >= 1 && before.1 >= 1, "{before:?}");
        // Another connection writes a task instance's row, as a report does: the next
        // passes see that something changed, and read no run and no DAG again.
        let run = sched.store.runs_of(Some("daily"), 1).unwrap().remove(0);
        let mut other = Store::open(&sched.cfg.database.path).unwrap();
        let ti = other.tis_of_run("daily", &run.run_id).unwrap().remove(0);
        other.write(|tx| tx.set_rendered(&ti.id, "echo")).unwrap();
        sched.pass().unwrap();
        sched.pass().unwrap();
        assert_eq!(reads(&sched), before);
        // A DAG paused and a run cleared elsewhere: the next pass reads both again.
        assert!(other.set_paused("daily", true).unwrap());
        other
            .write(|tx| tx.set_run_state(run.id, RunState::Success, RunState::Queued, clock.now()))
            .unwrap();
        sched.pass().unwrap();
        assert_eq!(reads(&sched), (before.0 + 1, before.1 + 1));
        assert!(sched.paused.contains("daily"));
        let held = sched
            .active_runs(sched.store.change_counts().unwrap()[1])
            .unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].id, held[0].state), (run.id, RunState::Queued));
    }
}
