//! The task instances of the active runs, kept between passes and refreshed from what
//! changed: a trigger numbers every task instance insert and update (`change_seq`, see
//! the migrations), so a pass reads the rows changed since the last one instead of
//! every task instance of every active run. A pass over a 10,000-task run that reread
//! all of them made the whole run quadratic.
//!
//! Writers are serialized by SQLite, so change numbers are given in commit order: once
//! a number is seen, every change with a smaller one is visible too.
//!
//! Each run also keeps what a pass needs to look only at what can move: the task
//! instances whose state changed since the run was last advanced, the scheduled ones in
//! priority order, and counts of unfinished and moving ones. A pass then costs what
//! changed, not the size of the run.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::error::Result;
use crate::model::{Dag, TaskState};
use crate::store::{RunRow, Store, TiRow};

use super::rules::Upstream;

/// A DAG's tasks laid over one run's task instances, by task position (the DAG's
/// topological order).
pub struct Graph {
    dag: Arc<Dag>,
    /// The task instances of each task, by map index (one, map index -1, for a task
    /// that is not mapped or not expanded yet; none if the run has none for it).
    pub tis_of_task: Vec<Vec<usize>>,
    /// The task of each task instance, if the DAG still has it.
    task_of_ti: Vec<Option<usize>>,
    /// Each task's upstreams, as task positions.
    pub upstream: Vec<Vec<usize>>,
    /// Each task's direct downstreams, as task positions.
    pub downstream: Vec<Vec<usize>>,
}

impl Graph {
    fn new(dag: &Arc<Dag>, tis: &[TiRow]) -> Graph {
        let position: HashMap<&str, usize> = dag
            .tasks
            .iter()
            .enumerate()
            .map(|(p, t)| (t.task_id.as_str(), p))
            .collect();
        let mut tis_of_task: Vec<Vec<usize>> = vec![Vec::new(); dag.tasks.len()];
        let mut task_of_ti = vec![None; tis.len()];
        for (i, t) in tis.iter().enumerate() {
            if let Some(&p) = position.get(t.task_id.as_str()) {
                tis_of_task[p].push(i);
                task_of_ti[i] = Some(p);
            }
        }
        for list in &mut tis_of_task {
            list.sort_by_key(|&i| tis[i].map_index);
        }
        let mut downstream = vec![Vec::new(); dag.tasks.len()];
        let upstream = dag
            .tasks
            .iter()
            .enumerate()
            .map(|(p, t)| {
                let ups: Vec<usize> = t
                    .upstream
                    .iter()
                    .filter_map(|u| position.get(u.as_str()).copied())
                    .collect();
                for &q in &ups {
                    downstream[q].push(p);
                }
                ups
            })
            .collect();
        Graph {
            dag: dag.clone(),
            tis_of_task,
            task_of_ti,
            upstream,
            downstream,
        }
    }
}

/// What a pass looks at: a task position, and one of its task instances (its own state
/// changed) or all of them (`None`: an upstream's changed, or the run is new).
pub type Todo = (usize, Option<usize>);

/// The task instances of one run, in insertion order.
pub struct RunTis {
    tis: Vec<TiRow>,
    index: HashMap<String, usize>,
    graph: Option<Arc<Graph>>,
    /// Every task is to be looked at: the run is new to the cache or has a new task
    /// instance.
    full: bool,
    /// Task instances whose state changed since the run was last advanced.
    dirty: Vec<usize>,
    /// The scheduled task instances, highest priority first.
    scheduled: BTreeSet<(Reverse<i64>, usize)>,
    /// The task instances up for retry, looked at on every pass until their delay ends.
    retrying: BTreeSet<usize>,
    unfinished: usize,
    moving: usize,
    /// The states of each task's instances, counted, by task id: a downstream's trigger
    /// rule reads these, so it costs its upstream tasks, not their mapped instances.
    by_task: HashMap<String, Upstream>,
}

/// States a task instance leaves on its own (or the scheduler moves it from): while one
/// is in them, the run is not stuck.
fn is_moving(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::Scheduled
                | TaskState::Queued
                | TaskState::Running
                | TaskState::UpForRetry
                | TaskState::UpForReschedule
                | TaskState::Restarting
                // Left by an answer, or by the timeout sweep.
                | TaskState::AwaitingInput
        )
    )
}

impl RunTis {
    fn new(tis: Vec<TiRow>) -> RunTis {
        let mut run = RunTis {
            tis: Vec::with_capacity(tis.len()),
            index: HashMap::with_capacity(tis.len()),
            graph: None,
            full: true,
            dirty: Vec::new(),
            scheduled: BTreeSet::new(),
            retrying: BTreeSet::new(),
            unfinished: 0,
            moving: 0,
            by_task: HashMap::new(),
        };
        for ti in tis {
            run.put(ti);
        }
        run
    }

    /// Counts task instance `i` into the run's tallies (`add`), or out of them.
    fn count(&mut self, i: usize, add: bool) {
        let ti = &self.tis[i];
        let key = (Reverse(ti.priority_weight), i);
        let state = ti.state;
        self.by_task
            .entry(ti.task_id.clone())
            .or_default()
            .count(state, add);
        let step = |n: &mut usize| if add { *n += 1 } else { *n -= 1 };
        if !state.is_some_and(TaskState::is_finished) {
            step(&mut self.unfinished);
        }
        if is_moving(state) {
            step(&mut self.moving);
        }
        match state {
            Some(TaskState::Scheduled) if add => self.scheduled.insert(key),
            Some(TaskState::Scheduled) => self.scheduled.remove(&key),
            Some(TaskState::UpForRetry | TaskState::UpForReschedule) if add => {
                self.retrying.insert(i)
            }
            Some(TaskState::UpForRetry | TaskState::UpForReschedule) => self.retrying.remove(&i),
            _ => false,
        };
    }

    /// A row read from the store, new or changed.
    pub fn put(&mut self, ti: TiRow) {
        match self.index.get(&ti.id) {
            Some(&i) => {
                if self.tis[i].state != ti.state {
                    self.dirty.push(i);
                }
                self.count(i, false);
                self.tis[i] = ti;
                self.count(i, true);
            }
            None => {
                let i = self.tis.len();
                self.index.insert(ti.id.clone(), i);
                self.tis.push(ti);
                self.count(i, true);
                self.full = true;
            }
        }
    }

    pub fn ti(&self, i: usize) -> &TiRow {
        &self.tis[i]
    }

    pub fn tis(&self) -> &[TiRow] {
        &self.tis
    }

    /// Records a state this pass wrote; moving to scheduled starts a new try, as the
    /// store's update does, unless it is a rescheduled sensor's next poke.
    pub fn set_state(&mut self, i: usize, to: Option<TaskState>) {
        self.count(i, false);
        let ti = &mut self.tis[i];
        if to == Some(TaskState::Scheduled) && ti.state != Some(TaskState::UpForReschedule) {
            ti.try_number += 1;
        }
        ti.state = to;
        self.count(i, true);
    }

    /// The run's graph for `dag`, made again when the DAG was parsed again or the run
    /// has new task instances.
    pub fn graph(&mut self, dag: &Arc<Dag>) -> Arc<Graph> {
        match &self.graph {
            Some(g) if !self.full && Arc::ptr_eq(&g.dag, dag) => g.clone(),
            _ => {
                let g = Arc::new(Graph::new(dag, &self.tis));
                self.graph = Some(g.clone());
                self.full = true;
                g
            }
        }
    }

    /// What a pass must look at, and forgets it: every task the first time, then the
    /// task instances whose own state changed, those up for retry, and every instance of
    /// the tasks downstream of a change.
    pub fn take_todo(&mut self, g: &Graph) -> BTreeSet<Todo> {
        let mut todo = BTreeSet::new();
        if std::mem::take(&mut self.full) {
            todo.extend((0..g.tis_of_task.len()).map(|p| (p, None)));
            self.dirty.clear();
            return todo;
        }
        let changed = self.dirty.drain(..).chain(self.retrying.iter().copied());
        for i in changed {
            if let Some(p) = g.task_of_ti[i] {
                todo.insert((p, Some(i)));
                todo.extend(g.downstream[p].iter().map(|&d| (d, None)));
            }
        }
        todo
    }

    /// The states of task `p`'s upstream tasks' instances, counted; an upstream task
    /// with no instance in the run counts as one with no state.
    pub fn upstream_states(&self, g: &Graph, p: usize) -> Upstream {
        let mut up = Upstream::default();
        for &q in &g.upstream[p] {
            match self.by_task.get(g.dag.tasks[q].task_id.as_str()) {
                Some(counts) if counts.total > 0 => up.merge(counts),
                _ => up.count(None, true),
            }
        }
        up
    }

    /// How many task instances have not finished, and how many of those are moving
    /// (scheduled, queued, running, up for retry or restarting).
    pub fn unfinished(&self) -> (usize, usize) {
        (self.unfinished, self.moving)
    }

    /// The scheduled task instances, highest priority first.
    pub fn scheduled(&self) -> impl Iterator<Item = &TiRow> {
        self.scheduled.iter().map(|&(_, i)| &self.tis[i])
    }
}

#[derive(Default)]
pub struct TiCache {
    /// The highest change number applied; `None` before the first refresh.
    seq: Option<i64>,
    /// By run row id.
    runs: HashMap<i64, RunTis>,
    /// Run row ids by (dag_id, run_id), to place changed rows.
    keys: HashMap<(String, String), i64>,
}

impl TiCache {
    /// Brings the cache up to date for `runs` (the active runs, just read); `counter` is
    /// the task instance change count, read before them.
    pub fn refresh(&mut self, store: &Store, runs: &[RunRow], counter: i64) -> Result<()> {
        // First look, or the database was reset under us: start from the counter.
        if self.seq.is_none_or(|s| counter < s) {
            self.runs.clear();
            self.keys.clear();
            self.seq = Some(counter);
        }
        let active: HashMap<i64, (&str, &str)> = runs
            .iter()
            .map(|r| (r.id, (r.dag_id.as_str(), r.run_id.as_str())))
            .collect();
        self.runs.retain(|id, _| active.contains_key(id));
        self.keys.retain(|(d, r), id| {
            active
                .get(id)
                .is_some_and(|k| *k == (d.as_str(), r.as_str()))
        });
        let mut seq = self.seq.unwrap_or(counter);
        if counter > seq {
            for (n, ti) in store.tis_changed_since(seq)? {
                seq = seq.max(n);
                let key = (ti.dag_id.clone(), ti.run_id.clone());
                if let Some(run) = self.keys.get(&key).and_then(|id| self.runs.get_mut(id)) {
                    run.put(ti);
                }
            }
        }
        self.seq = Some(seq);
        // Runs not seen before (new, or back from a finished state) are read whole; a
        // change made to them after this read has a higher number, read next time.
        for run in runs {
            if let Entry::Vacant(slot) = self.runs.entry(run.id) {
                let tis = store.tis_of_run(&run.dag_id, &run.run_id)?;
                slot.insert(RunTis::new(tis));
                self.keys
                    .insert((run.dag_id.clone(), run.run_id.clone()), run.id);
            }
        }
        Ok(())
    }

    pub fn run(&self, run_row: i64) -> Option<&RunTis> {
        self.runs.get(&run_row)
    }

    pub fn run_mut(&mut self, run_row: i64) -> Option<&mut RunTis> {
        self.runs.get_mut(&run_row)
    }
}
