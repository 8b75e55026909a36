//! Private routes for the embedded UI: data a page needs in one call that the public API
//! cannot give in one. The DAG list's recent-run marks (runs of many DAGs at once), a
//! DAG's structure (tasks inside their groups, the edges, the YAML line of each) and
//! the grid (recent runs × task instance states). Not a stable API: the shapes follow
//! what `static/` draws, not Airflow's `/ui` routes, which belong to its React UI. These
//! handlers only read; every change the UI makes goes through `/api/v2`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::kit::dt;
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::{Dag, RunState, RunType, TaskState};
use crate::store::q_runs::{Bound, ListQuery, Op};
use crate::store::{RunRow, Store, TiRow};

#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Method::Get, "/ui/dags/recent_runs", Role::Viewer, None, "UI: the newest runs of each DAG in dag_ids (for the DAG list)", recent_runs),
    guarded(Method::Get, "/ui/structure/{dag_id}", Role::Viewer, None, "UI: a DAG's tasks inside their groups, its edges and YAML lines (for the graph and grid)", structure),
    guarded(Method::Get, "/ui/grid/{dag_id}", Role::Viewer, None, "UI: one page of a DAG's runs, newest first, filtered by state and type, with the state of every task instance (for the grid)", grid),
    guarded(Method::Get, "/ui/changes", Role::Viewer, None, "UI: counts of the changes to DAGs, runs and task instances, which open pages poll to refetch only when one moves", changes),
    guarded(Method::Get, "/ui/backfill/{dag_id}", Role::Viewer, None, "UI: a DAG's newest backfill with its runs counted by state (for the DAG page's banner)", backfill),
];

/// `GET /ui/backfill/{dag_id}`: the DAG's newest backfill (null if it never had one),
/// with its runs counted by state and the dates it skipped, so the DAG page can say
/// "N of M runs".
fn backfill(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (rows, _) = store.backfills_of(p.get("dag_id"), true, 1, 0)?;
    let Some(b) = rows.first() else {
        return Ok(Reply::json(200, &json!({"backfill": null})));
    };
    let n = store.backfill_progress(b.id)?;
    Ok(Reply::json(
        200,
        &json!({"backfill": {
            "id": b.id,
            "from_date": dt(Some(b.from_date)),
            "to_date": dt(Some(b.to_date)),
            "is_paused": b.is_paused,
            "max_active_runs": b.max_active_runs,
            "reprocess_behavior": b.reprocess_behavior,
            "completed_at": dt(b.completed_at),
            "runs": {"total": n.queued + n.running + n.success + n.failed,
                     "queued": n.queued, "running": n.running, "success": n.success,
                     "failed": n.failed, "skipped_dates": n.skipped},
        }}),
    ))
}

/// Recent runs per DAG in the list: Airflow's UI shows ten.
const RECENT_RUNS: usize = 10;
/// Runs in the grid by default, and at most (Airflow's largest choice is 365).
const GRID_RUNS: usize = 25;
const GRID_RUNS_MAX: usize = 365;
/// Newest runs per DAG the recent-runs call gives at most.
const RECENT_RUNS_MAX: usize = 100;
/// DAG ids one recent-runs call may name (one page of the DAG list is 50 at most 100).
const DAG_IDS_MAX: usize = 100;

/// `GET /ui/dags/recent_runs?dag_ids=a&dag_ids=b&limit=10`: for each DAG named, its
/// newest runs, newest first. Unknown ids get an empty list; filtering and paging of the
/// DAGs themselves stay with `GET /api/v2/dags`.
fn recent_runs(_: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let limit = limit(req, RECENT_RUNS, RECENT_RUNS_MAX)?;
    let ids = super::kit::query_all(req, "dag_ids");
    if ids.len() > DAG_IDS_MAX {
        return Err(ApiError::bad_request(format!(
            "at most {DAG_IDS_MAX} dag_ids in one call"
        )));
    }
    let mut dags = Vec::with_capacity(ids.len());
    for id in ids {
        let runs: Vec<Value> = store
            .runs_of(Some(id), limit)?
            .iter()
            .map(run_json)
            .collect();
        dags.push(json!({"dag_id": id, "latest_dag_runs": runs}));
    }
    Ok(Reply::json(
        200,
        &json!({"total_entries": dags.len(), "dags": dags}),
    ))
}

/// `GET /ui/structure/{dag_id}`: `nodes` is the tree of groups and tasks, each level in
/// the order the tasks run (a group sits where its first task would); `edges` are the
/// task-level dependencies (a dependency on a group is already expanded to its tasks).
fn structure(_: &Ctx, store: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag = dag_of(store, p.get("dag_id"))?;
    let edges: Vec<Value> = dag
        .tasks
        .iter()
        .flat_map(|t| {
            t.upstream
                .iter()
                .map(move |u| json!({"source_id": u, "target_id": t.task_id}))
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({"dag_id": dag.dag_id, "nodes": tree(&dag), "edges": edges}),
    ))
}

/// `GET /ui/changes`: `{"dags": n, "runs": n, "task_instances": n}`, counts that move
/// whenever such a row is written, by this process or another on the same database
/// (triggers keep them; see `Store::change_counts`). One small read: an open page polls
/// it every second and refetches what it shows only when a count moves.
fn changes(_: &Ctx, store: &mut Store, _: &Req, _: &Params) -> Result<Reply, ApiError> {
    let [dags, runs, tis] = store.change_counts()?;
    Ok(Reply::json(
        200,
        &json!({"dags": dags, "runs": runs, "task_instances": tis}),
    ))
}

/// `GET /ui/grid/{dag_id}?limit=25&offset=0&state=..&run_type=..&around=<run_id>`: one
/// page of the DAG's runs, newest first as counted (by id), shown oldest first (the
/// grid reads left to right), each with `task_instances` keyed by task id; `state` and
/// `run_type` (repeatable) filter them. `around` names a run whose page to give instead
/// of `offset`'s, so a link to any run shows it however old it is (when the filters
/// leave it out, `offset` stands). `total_entries` counts the runs the filters leave,
/// `offset` is the page's.
fn grid(_: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    dag_of(store, dag_id)?;
    let limit = limit(req, GRID_RUNS, GRID_RUNS_MAX)?.max(1);
    let mut offset = match req.query("offset") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| {
            super::kit::invalid(
                &["query", "offset"],
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
                json!(v),
            )
        })?,
    };
    let mut q = ListQuery::default();
    q.any_of("dag_id", vec![Some(dag_id.to_string())]);
    let states = tokens(req, "state", RunState::ALL.iter().map(|s| s.as_str()))?;
    if !states.is_empty() {
        q.any_of("state", states);
    }
    let types = tokens(req, "run_type", RunType::ALL.iter().map(|t| t.as_str()))?;
    if !types.is_empty() {
        q.any_of("run_type", types);
    }
    if let Some(run_id) = req.query("around") {
        // The run's place among the runs the filters leave: how many newer ones there are.
        let mut this = q.clone();
        this.any_of("run_id", vec![Some(run_id.to_string())]);
        this.limit = Some(1);
        if let Some(run) = store.list_runs(&this)?.0.first() {
            let mut newer = q.clone();
            newer.cmp("id", Op::Gt, Bound::Num(run.id as f64));
            newer.limit = Some(0);
            let (_, before) = store.list_runs(&newer)?;
            offset = before / limit * limit;
        }
    }
    q.order_by("id", true);
    q.limit = Some(limit);
    q.offset = offset;
    let (mut runs, total) = store.list_runs(&q)?;
    runs.reverse();
    let mut out = Vec::with_capacity(runs.len());
    for run in &runs {
        let rows = store.tis_of_run(dag_id, &run.run_id)?;
        let mut mapped: HashMap<&str, Vec<&TiRow>> = HashMap::new();
        let mut tis = Map::new();
        for ti in &rows {
            if ti.map_index >= 0 {
                mapped.entry(ti.task_id.as_str()).or_default().push(ti);
            } else {
                tis.insert(ti.task_id.clone(), ti_json(ti));
            }
        }
        for (task_id, instances) in mapped {
            tis.insert(task_id.to_string(), mapped_json(&instances));
        }
        let mut r = run_json(run);
        r["task_instances"] = Value::Object(tis);
        out.push(r);
    }
    Ok(Reply::json(
        200,
        &json!({"dag_id": dag_id, "dag_runs": out, "total_entries": total, "offset": offset, "limit": limit}),
    ))
}

/// A repeatable query value that must be one of `valid`: the values given, or a 422
/// naming the parameter and what it takes.
fn tokens<'a>(
    req: &Req,
    name: &str,
    valid: impl Iterator<Item = &'a str> + Clone,
) -> Result<Vec<Option<String>>, ApiError> {
    super::kit::query_all(req, name)
        .into_iter()
        .map(|v| {
            if valid.clone().any(|x| x == v) {
                Ok(Some(v.to_string()))
            } else {
                Err(ApiError::new(
                    422,
                    format!(
                        "Invalid value for {name}. Valid values are {}",
                        valid.clone().collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        })
        .collect()
}

fn dag_of(store: &Store, dag_id: &str) -> Result<std::sync::Arc<Dag>, ApiError> {
    store
        .dag(dag_id)?
        .map(|row| row.dag)
        .ok_or_else(|| ApiError::not_found(format!("The Dag with ID: `{dag_id}` was not found")))
}

fn limit(req: &Req, default: usize, max: usize) -> Result<usize, ApiError> {
    match req.query("limit") {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map(|n| n.min(max)).map_err(|_| {
            super::kit::invalid(
                &["query", "limit"],
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
                json!(v),
            )
        }),
    }
}

/// The fields of a run the UI draws, named as in Airflow's `DAGRunResponse`.
fn run_json(r: &RunRow) -> Value {
    let duration = match (r.start_date, r.end_date) {
        (Some(s), Some(e)) => json!((e - s).num_microseconds().unwrap_or(0) as f64 / 1e6),
        _ => Value::Null,
    };
    json!({
        "dag_run_id": r.run_id,
        "state": r.state.as_str(),
        "run_type": r.run_type.as_str(),
        "logical_date": dt(r.logical_date),
        "run_after": dt(Some(r.run_after)),
        "queued_at": dt(r.queued_at),
        "start_date": dt(r.start_date),
        "end_date": dt(r.end_date),
        "duration": duration,
        "note": r.note,
    })
}

fn ti_json(ti: &TiRow) -> Value {
    json!({
        "state": ti.state.map(|s| s.as_str()),
        "try_number": ti.try_number,
        "start_date": dt(ti.start_date),
        "end_date": dt(ti.end_date),
        "duration": ti.duration,
    })
}

/// Airflow's grid order of states for a mapped task's cell (`state_priority`): the
/// first one any instance is in is the cell's state; `None` is no status.
const STATE_PRIORITY: &[Option<TaskState>] = &[
    Some(TaskState::Failed),
    Some(TaskState::UpstreamFailed),
    Some(TaskState::UpForRetry),
    Some(TaskState::UpForReschedule),
    Some(TaskState::Running),
    Some(TaskState::Restarting),
    Some(TaskState::Deferred),
    Some(TaskState::AwaitingInput),
    Some(TaskState::Queued),
    Some(TaskState::Scheduled),
    None,
    Some(TaskState::Success),
    Some(TaskState::Skipped),
    Some(TaskState::Removed),
];

/// A mapped task's cell: its instances summarised as Airflow's grid does (the state by
/// `STATE_PRIORITY`, the count of each state, the first start and last end), and how
/// many there are.
fn mapped_json(instances: &[&TiRow]) -> Value {
    let mut counts: Map<String, Value> = Map::new();
    for ti in instances {
        let key = ti.state.map_or("none", TaskState::as_str);
        let n = counts.get(key).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(key.to_string(), json!(n + 1));
    }
    let state = STATE_PRIORITY
        .iter()
        .find(|s| instances.iter().any(|ti| ti.state == **s))
        .copied()
        .flatten();
    json!({
        "state": state.map(TaskState::as_str),
        "map_count": instances.len(),
        "child_states": counts,
        "try_number": instances.iter().map(|t| t.try_number).max(),
        "start_date": dt(instances.iter().filter_map(|t| t.start_date).min()),
        "end_date": dt(instances.iter().filter_map(|t| t.end_date).max()),
        "duration": null,
    })
}

/// The task-group tree: `{id, label, type, children}` for groups, `{id, label, type,
/// operator, line}` for tasks.
fn tree(dag: &Dag) -> Vec<Value> {
    let rank = topo_rank(dag);
    // A group's rank is its first task's, so it sits where its work starts.
    let mut group_rank: HashMap<&str, usize> = HashMap::new();
    for t in &dag.tasks {
        let mut g = t.task_group.as_deref();
        while let Some(id) = g {
            let r = group_rank.entry(id).or_insert(usize::MAX);
            *r = (*r).min(rank[t.task_id.as_str()]);
            g = dag
                .task_groups
                .iter()
                .find(|x| x.group_id == id)
                .and_then(|x| x.parent.as_deref());
        }
    }
    children(dag, None, &rank, &group_rank)
}

fn children(
    dag: &Dag,
    parent: Option<&str>,
    rank: &HashMap<&str, usize>,
    group_rank: &HashMap<&str, usize>,
) -> Vec<Value> {
    let mut out: Vec<(usize, Value)> = Vec::new();
    for g in dag
        .task_groups
        .iter()
        .filter(|g| g.parent.as_deref() == parent)
    {
        out.push((
            group_rank
                .get(g.group_id.as_str())
                .copied()
                .unwrap_or(usize::MAX),
            json!({
                "id": g.group_id,
                "label": last_part(&g.group_id),
                "type": "task_group",
                "tooltip": g.tooltip,
                "line": g.line,
                "children": children(dag, Some(&g.group_id), rank, group_rank),
            }),
        ));
    }
    for t in dag
        .tasks
        .iter()
        .filter(|t| t.task_group.as_deref() == parent)
    {
        out.push((
            rank[t.task_id.as_str()],
            json!({
                "id": t.task_id,
                "label": last_part(&t.task_id),
                "type": "task",
                "operator": t.operator.class_name(),
                "line": t.line,
                "is_mapped": t.mapped.is_some(),
            }),
        ));
    }
    out.sort_by_key(|(r, _)| *r);
    out.into_iter().map(|(_, v)| v).collect()
}

fn last_part(id: &str) -> &str {
    id.rsplit('.').next().unwrap_or(id)
}

/// Each task's position in a topological order that keeps the file's order among tasks
/// that could run together (Kahn's algorithm, always taking the earliest ready task).
fn topo_rank(dag: &Dag) -> HashMap<&str, usize> {
    let index: HashMap<&str, usize> = dag
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task_id.as_str(), i))
        .collect();
    let mut pending: Vec<usize> = dag
        .tasks
        .iter()
        .map(|t| {
            t.upstream
                .iter()
                .filter(|u| index.contains_key(u.as_str()))
                .count()
        })
        .collect();
    let mut done = vec![false; dag.tasks.len()];
    let mut rank = HashMap::new();
    for n in 0..dag.tasks.len() {
        // The DAG is acyclic once parsed; should it not be, the rest keep file order.
        let next = (0..dag.tasks.len())
            .find(|&i| !done[i] && pending[i] == 0)
            .or_else(|| (0..dag.tasks.len()).find(|&i| !done[i]))
            .expect("a task is left while n < len");
        done[next] = true;
        let id = dag.tasks[next].task_id.as_str();
        rank.insert(id, n);
        for (i, t) in dag.tasks.iter().enumerate() {
            if t.upstream.iter().any(|u| u == id) {
                pending[i] = pending[i].saturating_sub(1);
            }
        }
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(yaml: &str) -> Dag {
        let now = "2025-06-15T13:45:00Z".parse().unwrap();
        let mut parsed = crate::dagfile::parse("dags/t.yml", yaml, now);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.dags.remove(0)
    }

    /// `(id, depth)` of every node, depth first.
    fn flat(nodes: &[Value], depth: usize, out: &mut Vec<(String, usize)>) {
        for n in nodes {
            out.push((n["id"].as_str().unwrap().to_string(), depth));
            if let Some(c) = n["children"].as_array() {
                flat(c, depth + 1, out);
            }
        }
    }

    #[test]
    fn groups_nest_and_sit_where_their_work_starts() {
        let d = dag(include_str!("../../example_dags/example_task_group.yml"));
        let mut out = Vec::new();
        flat(&tree(&d), 0, &mut out);
        let got: Vec<(&str, usize)> = out.iter().map(|(id, n)| (id.as_str(), *n)).collect();
        assert_eq!(
            got,
            [
                ("start", 0),
                ("section_1", 0),
                ("section_1.task_1", 1),
                ("section_1.task_2", 1),
                ("section_2", 0),
                ("section_2.task_3", 1),
                ("section_2.inner_section_2", 1),
                ("section_2.inner_section_2.task_4", 2),
                ("end", 0),
            ]
        );
        let start = &tree(&d)[0];
        assert_eq!(start["label"], "start");
        assert_eq!(start["operator"], "EmptyOperator");
        assert!(start["line"].as_u64().unwrap() > 0);
    }

    #[test]
    fn tasks_rank_upstream_first_and_keep_file_order_otherwise() {
        // `b` is written first but runs after `a`; `c` and `d` could run together.
        let d = dag("t:
  schedule: null
  default_args: {start_date: 2024-01-01}
  tasks:
    - {task_id: b, operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [a]}
    - {task_id: a, operator: airflow.providers.standard.operators.empty.EmptyOperator}
    - {task_id: c, operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [b]}
    - {task_id: d, operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [b]}
");
        let rank = topo_rank(&d);
        let mut order: Vec<&str> = rank.keys().copied().collect();
        order.sort_by_key(|id| rank[id]);
        assert_eq!(order, ["a", "b", "c", "d"]);
    }
}
