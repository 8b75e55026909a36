//! Operations that both the CLI and the Core API offer: trigger a run, clear task
//! instances, mark runs and tasks, pause a DAG. One implementation, two front ends.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::{RunState, RunType, TaskState};
use crate::scheduler::timetable;
use crate::store::{DagRow, Event, NewRun, RunRow, Store};

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
    pub conf: Option<Value>,
    pub note: Option<String>,
    pub triggered_by: &'static str,
    pub user: Option<String>,
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
    let run_id = t.run_id.unwrap_or_else(|| {
        format!(
            "manual__{}",
            now.to_rfc3339_opts(SecondsFormat::Micros, false)
        )
    });
    if run_id.trim().is_empty() {
        return Err(Error::Usage("the run id must not be empty".into()));
    }
    let interval = t
        .logical_date
        .map(|ld| timetable::manual_interval(&row.dag, ld));
    let run = store.write(|tx| {
        let run = tx.create_run(
            &NewRun {
                dag: &row.dag,
                run_id: run_id.clone(),
                run_type: RunType::Manual,
                logical_date: t.logical_date,
                data_interval: interval,
                run_after: now,
                conf: conf.clone(),
                note: t.note.clone(),
                triggered_by: t.triggered_by,
                user: t.user.as_deref(),
            },
            now,
        )?;
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
    store.set_paused(dag_id, paused)?;
    store.write(|tx| {
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
        Some(r) => vec![store.run(dag_id, r)?.ok_or_else(|| {
            Error::NotFound(format!(
                "The DagRun with dag_id: `{dag_id}` and run_id: `{r}` was not found"
            ))
        })?],
        None => store.runs_of(Some(dag_id), usize::MAX >> 1)?,
    };
    let mut cleared = 0;
    for run in runs {
        let tis = store.tis_of_run(dag_id, &run.run_id)?;
        let chosen: Vec<_> = tis
            .into_iter()
            .filter(|ti| matcher.as_ref().is_none_or(|m| m.is_match(&ti.task_id)))
            .filter(|ti| {
                !only_failed
                    || matches!(
                        ti.state,
                        Some(TaskState::Failed | TaskState::UpstreamFailed)
                    )
            })
            .filter(|ti| ti.state.is_some())
            .collect();
        if chosen.is_empty() {
            continue;
        }
        store.write(|tx| {
            for ti in &chosen {
                let retries = row.dag.task(&ti.task_id).map_or(0, |t| t.retries);
                tx.clear_ti(&ti.id, retries, now)?;
            }
            if run.state.is_finished() {
                tx.set_run_state(run.id, run.state, RunState::Queued, now)?;
            }
            tx.event(
                &Event {
                    event: "clear".into(),
                    dag_id: Some(dag_id.to_string()),
                    run_id: Some(run.run_id.clone()),
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

/// Sets a run's state by hand. Marking success or failed also finishes the run's
/// unfinished task instances with that state, as Airflow's "mark" does.
pub fn mark_run(
    store: &mut Store,
    dag_id: &str,
    run_id: &str,
    to: RunState,
    now: DateTime<Utc>,
) -> Result<RunRow> {
    let run = store.run(dag_id, run_id)?.ok_or_else(|| {
        Error::NotFound(format!(
            "The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"
        ))
    })?;
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
                // Unstarted ones are skipped when the run fails, as in Airflow.
                let target = if to == RunState::Failed && ti.state != Some(TaskState::Running) {
                    TaskState::Skipped
                } else {
                    ti_state
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
        .ok_or_else(|| Error::NotFound(run_id.to_string()))
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
    let ti = store.ti_by_key(dag_id, run_id, task_id)?.ok_or_else(|| {
        Error::NotFound(format!("Task Instance with dag_id: `{dag_id}`, run_id: `{run_id}`, task_id: `{task_id}` was not found"))
    })?;
    let run = store.run(dag_id, run_id)?;
    store.write(|tx| {
        if !tx.set_ti_state(&ti.id, ti.state, Some(to), now, None)? {
            return Err(Error::Conflict(format!(
                "task instance {task_id} changed state meanwhile; try again"
            )));
        }
        // A finished run is opened again so downstream tasks react to the change.
        if let Some(run) = &run
            && run.state.is_finished()
        {
            tx.set_run_state(run.id, run.state, RunState::Queued, now)?;
        }
        tx.event(
            &Event {
                event: format!("mark_task_{to}"),
                dag_id: Some(dag_id.to_string()),
                task_id: Some(task_id.to_string()),
                run_id: Some(run_id.to_string()),
                ..Event::default()
            },
            now,
        )
    })
}
