//! Operations that both the CLI and the Core API offer: trigger a run, clear task
//! instances, mark runs and tasks, pause a DAG. One implementation, two front ends.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::{Dag, RunState, RunType, TaskState};
use crate::scheduler::timetable;
use crate::store::{DagRow, Event, NewRun, RunRow, Store, TiRow};

/// A live DAG by id, or Airflow's 404 text.
pub fn dag(store: &Store, dag_id: &str) -> Result<DagRow> {
    store
        .dag(dag_id)?
        .filter(|d| !d.is_stale)
        .ok_or_else(|| Error::NotFound(format!("The Dag with ID: `{dag_id}` was not found")))
}

/// What a trigger asks for.
#[derive(Debug, Default)]
pub struct Trigger {
    pub run_id: Option<String>,
    pub logical_date: Option<DateTime<Utc>>,
    /// The data interval; inferred from the logical date by the timetable when absent.
    /// Only a run with a logical date has one.
    pub data_interval: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// When the run may start; now when absent. A generated run id is made from it.
    pub run_after: Option<DateTime<Utc>>,
    pub conf: Option<Value>,
    pub note: Option<String>,
    pub triggered_by: &'static str,
    pub user: Option<String>,
    /// The caller writes its own audit entry (the API does, from its route table), so
    /// none is written here.
    pub audited_by_caller: bool,
}

/// Airflow's default `[scheduler] allowed_run_id_pattern`.
const ALLOWED_RUN_ID: &str = r"^[A-Za-z0-9_.~:+-]+$";
/// Airflow's `RUN_ID_REGEX`, the shape of the run ids it generates.
const GENERATED_RUN_ID: &str =
    r"^(?:manual|scheduled|asset_triggered)__(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00)$";
/// Run id prefixes Airflow keeps for runs it makes itself (`DagRunType.from_run_id`).
const RESERVED_RUN_ID_PREFIXES: &[&str] = &[
    "backfill",
    "scheduled",
    "operator_triggered",
    "asset_triggered",
    "asset_materialization",
];

/// Airflow's checks of a manual run id (`create_dagrun`): no `..`, only the allowed
/// characters, no prefix of a run type Airflow makes itself.
fn check_run_id(run_id: &str) -> Result<()> {
    if run_id.trim().is_empty() {
        return Err(Error::Usage("the run id must not be empty".into()));
    }
    // Before anything echoes the id back: a long one would make a long reply.
    let len = run_id.chars().count();
    if len > crate::model::ID_LEN {
        return Err(Error::Usage(format!(
            "The run_id is {len} characters long; at most {} are allowed (Airflow's ID_LEN)",
            crate::model::ID_LEN
        )));
    }
    if run_id.contains("..") {
        return Err(Error::Usage(format!(
            "The run_id '{run_id}' must not contain '..' to prevent path traversal"
        )));
    }
    // Generated ids (`manual__2024-01-01T00:00:00+00:00`) pass this pattern too.
    let allowed = regex_lite::Regex::new(ALLOWED_RUN_ID).expect("a valid pattern");
    if !allowed.is_match(run_id) {
        return Err(Error::Usage(format!(
            "The run_id provided '{run_id}' does not match regex pattern '{ALLOWED_RUN_ID}' or '{GENERATED_RUN_ID}'"
        )));
    }
    if let Some(kind) = RESERVED_RUN_ID_PREFIXES
        .iter()
        .find(|p| run_id.starts_with(&format!("{p}__")))
    {
        return Err(Error::Usage(format!(
            "A manual DAG run cannot use ID '{run_id}' since it is reserved for {kind} runs"
        )));
    }
    Ok(())
}

/// Creates a manual run, queued for the scheduler.
pub fn trigger(store: &mut Store, dag_id: &str, t: Trigger, now: DateTime<Utc>) -> Result<RunRow> {
    let row = dag(store, dag_id)?;
    let conf = match t.conf {
        None | Some(Value::Null) => json!({}),
        Some(c @ Value::Object(_)) => c,
        Some(other) => {
            return Err(Error::Usage(format!(
                "conf must be a JSON object, not {other}"
            )));
        }
    };
    let run_after = t.run_after.unwrap_or(now);
    let run_id = t.run_id.unwrap_or_else(|| {
        format!(
            "manual__{}",
            run_after.to_rfc3339_opts(SecondsFormat::Micros, false)
        )
    });
    check_run_id(&run_id)?;
    let interval = t.logical_date.map(|ld| {
        t.data_interval
            .unwrap_or_else(|| timetable::manual_interval(&row.dag, ld))
    });
    let run = store.write(|tx| {
        let run = tx.create_run(
            &NewRun {
                dag: &row.dag,
                run_id: run_id.clone(),
                run_type: RunType::Manual,
                logical_date: t.logical_date,
                data_interval: interval,
                run_after,
                conf: conf.clone(),
                note: t.note.clone(),
                triggered_by: t.triggered_by,
                user: t.user.as_deref(),
                backfill_id: None,
            },
            now,
        )?;
        if !t.audited_by_caller {
            tx.event(
                &Event {
                    event: "trigger_dag_run".into(),
                    dag_id: Some(dag_id.to_string()),
                    run_id: Some(run_id.clone()),
                    owner: t.user.clone(),
                    extra: Some(json!({"conf": conf, "triggered_by": t.triggered_by}).to_string()),
                    ..Event::default()
                },
                now,
            )?;
        }
        Ok(run)
    })?;
    if row.is_paused {
        log::info!("{dag_id} is paused: run {run_id} waits queued until it is unpaused");
    }
    Ok(run)
}

/// Pauses or unpauses a DAG.
pub fn set_paused(
    store: &mut Store,
    dag_id: &str,
    paused: bool,
    user: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    dag(store, dag_id)?;
    store.write(|tx| {
        tx.set_paused(dag_id, paused)?;
        tx.event(
            &Event {
                event: if paused { "pause" } else { "unpause" }.into(),
                dag_id: Some(dag_id.to_string()),
                owner: user.map(str::to_string),
                ..Event::default()
            },
            now,
        )
    })
}

/// Clears the task instances of `dag_id` whose task id matches `task_regex` (all when
/// `None`), in one run or in every run, so they run again. With `only_failed`, only
/// failed and upstream_failed ones. Their runs go back to queued. Returns how many.
pub fn clear(
    store: &mut Store,
    dag_id: &str,
    run_id: Option<&str>,
    task_regex: Option<&str>,
    only_failed: bool,
    now: DateTime<Utc>,
) -> Result<usize> {
    let row = dag(store, dag_id)?;
    let matcher = task_regex
        .map(|p| {
            regex_lite::Regex::new(p)
                .map_err(|e| Error::Usage(format!("bad task pattern {p:?}: {e}")))
        })
        .transpose()?;
    let runs: Vec<RunRow> = match run_id {
        Some(r) => vec![
            store
                .run(dag_id, r)?
                .ok_or_else(|| run_not_found(dag_id, r))?,
        ],
        None => store.runs_of(Some(dag_id), usize::MAX >> 1)?,
    };
    let mut chosen = Vec::new();
    for run in runs {
        chosen.extend(
            store
                .tis_of_run(dag_id, &run.run_id)?
                .into_iter()
                .filter(|ti| matcher.as_ref().is_none_or(|m| m.is_match(&ti.task_id)))
                .filter(|ti| {
                    !only_failed
                        || matches!(
                            ti.state,
                            Some(TaskState::Failed | TaskState::UpstreamFailed)
                        )
                }),
        );
    }
    clear_tis(store, &row.dag, &chosen, true, now)
}

/// Clears the given task instances of one DAG so they run again, run by run: a finished
/// try goes to history, a running one is told to stop (`restarting`). Those without a
/// state have nothing to clear and are left alone. With `reset_runs`, their finished
/// runs go back to queued (a live run picks the cleared tasks up by itself). Returns how
/// many were cleared.
pub fn clear_tis(
    store: &mut Store,
    dag: &Dag,
    tis: &[TiRow],
    reset_runs: bool,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut by_run: BTreeMap<&str, Vec<&TiRow>> = BTreeMap::new();
    for ti in tis.iter().filter(|ti| ti.state.is_some()) {
        by_run.entry(ti.run_id.as_str()).or_default().push(ti);
    }
    let mut cleared = 0;
    for (run_id, chosen) in by_run {
        let run = store.run(&dag.dag_id, run_id)?;
        store.write(|tx| {
            for ti in &chosen {
                let retries = dag.task(&ti.task_id).map_or(0, |t| t.retries);
                tx.clear_ti(&ti.id, retries, now)?;
            }
            if let Some(run) = &run
                && reset_runs
                && run.state.is_finished()
            {
                tx.set_run_state(run.id, run.state, RunState::Queued, now)?;
                tx.restart_run(run.id)?;
            }
            tx.event(
                &Event {
                    event: "clear".into(),
                    dag_id: Some(dag.dag_id.clone()),
                    run_id: Some(run_id.to_string()),
                    extra: Some(
                        json!({"task_ids": chosen.iter().map(|t| &t.task_id).collect::<Vec<_>>()})
                            .to_string(),
                    ),
                    ..Event::default()
                },
                now,
            )
        })?;
        cleared += chosen.len();
    }
    Ok(cleared)
}

fn run_not_found(dag_id: &str, run_id: &str) -> Error {
    Error::NotFound(format!(
        "The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
    ))
}

/// Sets a run's state by hand, as Airflow 3 does: marking it success or failed also
/// finishes its running task instances with that state and skips the ones that have not
/// finished or started; queued only re-queues the run.
pub fn mark_run(
    store: &mut Store,
    dag_id: &str,
    run_id: &str,
    to: RunState,
    now: DateTime<Utc>,
) -> Result<RunRow> {
    let run = store
        .run(dag_id, run_id)?
        .ok_or_else(|| run_not_found(dag_id, run_id))?;
    let tis = store.tis_of_run(dag_id, run_id)?;
    store.write(|tx| {
        if matches!(to, RunState::Success | RunState::Failed) {
            let ti_state = if to == RunState::Success {
                TaskState::Success
            } else {
                TaskState::Failed
            };
            for ti in tis
                .iter()
                .filter(|t| !t.state.is_some_and(TaskState::is_finished))
            {
                let target = if ti.state == Some(TaskState::Running) {
                    ti_state
                } else {
                    TaskState::Skipped
                };
                tx.set_ti_state(&ti.id, ti.state, Some(target), now, None)?;
            }
        }
        if run.state != to {
            tx.set_run_state(run.id, run.state, to, now)?;
        }
        tx.event(
            &Event {
                event: format!("mark_run_{to}"),
                dag_id: Some(dag_id.to_string()),
                run_id: Some(run_id.to_string()),
                ..Event::default()
            },
            now,
        )
    })?;
    store
        .run(dag_id, run_id)?
        .ok_or_else(|| run_not_found(dag_id, run_id))
}

/// Which task instances besides the named one a state change by hand covers, as
/// Airflow's `set_task_instance_state` takes them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Relatives {
    /// Every task upstream of it, transitively.
    pub upstream: bool,
    /// Every task downstream of it, transitively.
    pub downstream: bool,
    /// The same tasks in later runs (by logical date).
    pub future: bool,
    /// The same tasks in earlier runs (by logical date).
    pub past: bool,
}

/// The ids of `task_id` and, as asked, of every task up- or downstream of it.
pub fn task_family(dag: &Dag, task_id: &str, upstream: bool, downstream: bool) -> Vec<String> {
    let mut ids: BTreeSet<String> = BTreeSet::from([task_id.to_string()]);
    for (go, up) in [(upstream, true), (downstream, false)] {
        if !go {
            continue;
        }
        let mut todo = vec![task_id.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(id) = todo.pop() {
            let next: Vec<&String> = if up {
                dag.task(&id)
                    .map(|t| t.upstream.iter().collect())
                    .unwrap_or_default()
            } else {
                dag.tasks
                    .iter()
                    .filter(|t| t.upstream.contains(&id))
                    .map(|t| &t.task_id)
                    .collect()
            };
            for n in next {
                if seen.insert(n.clone()) {
                    ids.insert(n.clone());
                    todo.push(n.clone());
                }
            }
        }
    }
    // In the DAG's task order, which is topological.
    dag.tasks
        .iter()
        .filter(|t| ids.contains(&t.task_id))
        .map(|t| t.task_id.clone())
        .collect()
}

/// Sets task instances' state by hand, as Airflow's `set_task_instance_state`: the task
/// in one run (all its map indexes, or the one given) and, as `rel` asks, its relatives; those already in that state are left
/// out. With `commit` false nothing changes and the result is what would. After a
/// change, failed and upstream_failed tasks downstream of the task are cleared so they
/// run again, and finished runs are opened again so the scheduler reacts. Returns the
/// task instances changed (as they are now), or that would be (as they are).
#[allow(clippy::too_many_arguments)]
pub fn set_ti_states(
    store: &mut Store,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: Option<i64>,
    to: TaskState,
    rel: Relatives,
    commit: bool,
    now: DateTime<Utc>,
) -> Result<Vec<TiRow>> {
    let row = dag(store, dag_id)?;
    if row.dag.task(task_id).is_none() {
        return Err(Error::NotFound(format!(
            "Task '{task_id}' not found in Dag '{dag_id}'"
        )));
    }
    let run = store
        .run(dag_id, run_id)?
        .ok_or_else(|| run_not_found(dag_id, run_id))?;
    // Past and future follow logical dates; a run without one stands alone (Airflow's
    // `get_run_ids`).
    let runs = match (run.logical_date, store.logical_date_span(dag_id)?) {
        (Some(ld), Some((first, last))) if rel.past || rel.future => store.runs_between(
            dag_id,
            if rel.past { first } else { ld },
            if rel.future { last } else { ld },
        )?,
        _ => vec![run.clone()],
    };
    let family = task_family(&row.dag, task_id, rel.upstream, rel.downstream);
    let mut changing = Vec::new();
    for r in &runs {
        changing.extend(
            store
                .tis_of_run(dag_id, &r.run_id)?
                .into_iter()
                .filter(|ti| family.contains(&ti.task_id) && ti.state != Some(to))
                // One instance of the task itself, when one is named; its relatives whole.
                .filter(|ti| ti.task_id != task_id || map_index.is_none_or(|m| ti.map_index == m)),
        );
    }
    if !commit || changing.is_empty() {
        return Ok(changing);
    }
    store.write(|tx| {
        for ti in &changing {
            if !tx.set_ti_state(&ti.id, ti.state, Some(to), now, None)? {
                return Err(Error::Conflict(format!(
                    "task instance {} of run {} changed state meanwhile; try again",
                    ti.task_id, ti.run_id
                )));
            }
        }
        for r in runs.iter().filter(|r| r.state.is_finished()) {
            if changing.iter().any(|ti| ti.run_id == r.run_id) {
                tx.set_run_state(r.id, r.state, RunState::Queued, now)?;
            }
        }
        for r in &runs {
            tx.event(
                &Event {
                    event: format!("mark_task_{to}"),
                    dag_id: Some(dag_id.to_string()),
                    task_id: Some(task_id.to_string()),
                    run_id: Some(r.run_id.clone()),
                    ..Event::default()
                },
                now,
            )?;
        }
        Ok(())
    })?;
    // Downstream tasks that failed because of this one get another chance.
    let below = task_family(&row.dag, task_id, false, true);
    let mut failed_below = Vec::new();
    for r in &runs {
        failed_below.extend(
            store
                .tis_of_run(dag_id, &r.run_id)?
                .into_iter()
                .filter(|ti| {
                    ti.task_id != task_id
                        && below.contains(&ti.task_id)
                        && matches!(
                            ti.state,
                            Some(TaskState::Failed | TaskState::UpstreamFailed)
                        )
                }),
        );
    }
    clear_tis(store, &row.dag, &failed_below, true, now)?;
    let mut after = Vec::new();
    for ti in &changing {
        if let Some(t) = store.ti(&ti.id)? {
            after.push(t);
        }
    }
    Ok(after)
}

/// Sets one task instance's state by hand (success, failed, skipped). A running one
/// is stopped by its supervisor at its next heartbeat.
pub fn mark_ti(
    store: &mut Store,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    to: TaskState,
    now: DateTime<Utc>,
) -> Result<()> {
    set_ti_states(
        store,
        dag_id,
        run_id,
        task_id,
        None,
        to,
        Relatives::default(),
        true,
        now,
    )
    .map(|_| ())
}
