//! DAGs and what hangs off them: the list and one DAG (read, pause, delete), details,
//! tasks, source, run statistics, tags, import errors and the event log, in Airflow
//! 3.3.2's shapes.
//!
//! The DAG list is filtered and sorted here, not in SQL, as some fields Airflow sorts by
//! (the next run, the latest run) are computed rather than stored. It runs over every
//! DAG's row and parsed DAG as the API keeps them (`DagCache::rows`: the same rows while
//! no DAG row changed, else one index scan, and no JSON parsed for a DAG seen before),
//! with typed sort keys; only the page is rendered, and only its DAGs' next runs are
//! computed unless the order names `next_dagrun`. So a request costs its page plus a
//! flag check per stored DAG. A page asked for again with nothing it shows changed is
//! sent as it was kept (`dag_pieces::Pages`): its query, rows, import errors and
//! favorites the same, and its DAGs' next runs computed again and the same. The event log, which grows with every task, is filtered
//! in SQL.
//! Nothing here writes except through `ops::set_paused` and `Store::delete_dag`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::dag_pieces::{DagPieces, Errors, Page, PageInputs, PageKey, Pages, Piece};
use super::kit::Patterns;
use super::kit::{
    Kind, body, dt, field, invalid, iso_duration, order_keys, page, query_all, query_bool,
};
use super::views::{display_name, find_dag, params_json};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::{Dag, RunState, Schedule};
use crate::ops;
use crate::scheduler::timetable::{self, RunInfo};
use crate::store::{DagRow, LatestRun, Store};

use Method::{Delete, Get, Patch};
use Role::{User, Viewer};

#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dags", Viewer, None, "List DAGs: filters by id, name, tags, owners, paused, staleness, last run state", list),
    guarded(Patch, "/api/v2/dags", User, Some("patch_dags"), "Pause or unpause every DAG that dag_id_pattern matches", patch_many),
    guarded(Get, "/api/v2/dags/{dag_id}", Viewer, None, "One DAG", get),
    guarded(Patch, "/api/v2/dags/{dag_id}", User, Some("patch_dag"), "Pause or unpause a DAG", patch),
    guarded(Delete, "/api/v2/dags/{dag_id}", User, Some("delete_dag"), "Delete a DAG and its history; its file, if still there, brings it back", delete),
    guarded(Get, "/api/v2/dags/{dag_id}/details", Viewer, None, "One DAG with its settings, params and active run count", details),
    guarded(Get, "/api/v2/dagWarnings", Viewer, None, "DAG warnings (updraft raises none: always empty)", dag_warnings),
];

/// `GET /api/v2/dagWarnings`: Airflow's warnings are about pools and callbacks updraft does
/// not have; parse problems are import errors here. Always empty, in Airflow's shape.
fn dag_warnings(
    _ctx: &Ctx,
    _store: &mut Store,
    _req: &Req,
    _p: &Params,
) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        200,
        &serde_json::json!({"dag_warnings": [], "total_entries": 0}),
    ))
}

/// What the DAG list sorts by, as `order_by` names it.
const DAG_KEYS: &[(&str, DagKey)] = &[
    ("dag_id", DagKey::Id),
    ("dag_display_name", DagKey::Name),
    ("next_dagrun", DagKey::Next),
    ("last_run_state", DagKey::LastState),
    ("last_run_start_date", DagKey::LastStart),
];

/// The only field a DAG PATCH changes.
const PATCH_FIELDS: &[super::kit::Field] = &[field("is_paused", Kind::Bool, true, false)];

/// The DAG list: filtered and sorted over the rows and cached parsed DAGs, so only the
/// page is rendered. The next run, a query and a timetable step per DAG, is computed for
/// the page's DAGs only, unless the order needs it for every match.
fn list(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let names: Vec<&str> = DAG_KEYS.iter().map(|(n, _)| *n).collect();
    let order: Vec<(DagKey, bool)> = order_keys(req, &names, "dag_id")?
        .into_iter()
        .filter_map(|(k, d)| DAG_KEYS.iter().find(|(n, _)| *n == k).map(|(_, c)| (*c, d)))
        .collect();
    let filter = DagFilter::from_query(req, false)?;
    let by_next = order.iter().any(|(k, _)| *k == DagKey::Next);
    let by_last_run = filter.last_run_state.is_some()
        || order
            .iter()
            .any(|(k, _)| matches!(k, DagKey::LastState | DagKey::LastStart));
    let facts = Facts::load(store, by_last_run, ctx.clock.now())?;
    let all = ctx.dags.rows(store)?;
    // `is_favorite`: the caller's favorites (see misc_more.rs), or all the others.
    let user = p.user.as_ref().map_or("", |u| u.name.as_str());
    let favorites = match query_bool(req, "is_favorite")? {
        Some(want) => Some((want, store.favorites(user)?)),
        None => None,
    };
    // A page kept whole: when it was made from these rows, errors and favorites, the
    // filter and the order pick the same DAGs again, so only their next runs can differ.
    let inputs = PageInputs {
        rows: &all,
        errors: &facts.errors,
        favorites: &favorites,
    };
    let key = (!by_next && !by_last_run).then(|| PageKey {
        query: req.query.clone(),
        user: favorites.as_ref().map(|_| user.to_string()),
    });
    if let Some(key) = &key {
        let kept = ctx.dag_pieces.lock_pages().get(key, &inputs);
        if let Some(kept) = kept {
            let mut same = true;
            for &(i, next) in &kept.shown {
                if next_run(store, &all[i].dag, facts.now)? != next {
                    same = false;
                    break;
                }
            }
            if same {
                return Ok(Reply::bytes(200, "application/json", kept.body.clone()));
            }
        }
    }
    let mut rows = Vec::with_capacity(all.len());
    for (index, row) in all.iter().enumerate() {
        if !filter.keeps(row, &facts) {
            continue;
        }
        if let Some((want, favs)) = &favorites
            && favs.contains(&row.dag.dag_id) != *want
        {
            continue;
        }
        let next = if by_next {
            next_run(store, &row.dag, facts.now)?
        } else {
            None
        };
        let last_run = facts.latest.get(&row.dag.dag_id);
        rows.push(Listed {
            row,
            index,
            next,
            last_run,
        });
    }
    sort_dags(&mut rows, &order);
    let total = rows.len();
    let mut page = Vec::new();
    let mut shown = Vec::new();
    for listed in rows.into_iter().skip(offset).take(limit) {
        let next = if by_next {
            listed.next
        } else {
            next_run(store, &listed.row.dag, facts.now)?
        };
        page.push((listed.row, next));
        shown.push((listed.index, next));
    }
    let body: Arc<[u8]> = ctx
        .dag_pieces
        .page(ctx, &page, &facts, total, all.len())
        .into();
    if let Some(key) = key {
        let kept = Page::new(&inputs, shown, body.clone());
        ctx.dag_pieces.lock_pages().put(key, kept);
    }
    Ok(Reply::bytes(200, "application/json", body))
}

impl DagPieces {
    fn lock_pages(&self) -> std::sync::MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A DagCollection of `page`, the same bytes serializing [`DagCollection`] makes.
    fn page(
        &self,
        ctx: &Ctx,
        page: &[(&Arc<DagRow>, Option<RunInfo>)],
        facts: &Facts,
        total: usize,
        dags: usize,
    ) -> Vec<u8> {
        let pieces: Vec<Arc<[u8]>> = {
            let mut held = self.pieces.lock().unwrap_or_else(|p| p.into_inner());
            // Rows the DAG cache let go of (deleted DAGs, older parses).
            if held.len() > dags + page.len() {
                held.retain(|_, p| Arc::strong_count(&p.row) > 1);
            }
            page.iter()
                .map(|&(row, next)| {
                    let has_errors = facts.has_errors(row);
                    let fresh = |p: &&Piece| {
                        Arc::ptr_eq(&p.row, row) && p.next == next && p.has_errors == has_errors
                    };
                    if let Some(p) = held.get(&row.dag.dag_id).filter(fresh) {
                        return p.json.clone();
                    }
                    let json: Arc<[u8]> = serde_json::to_vec(&dag_json(ctx, row, next, facts))
                        .expect("a DAGResponse serializes")
                        .into();
                    let piece = Piece {
                        row: row.clone(),
                        next,
                        has_errors,
                        json: json.clone(),
                    };
                    held.insert(row.dag.dag_id.clone(), piece);
                    json
                })
                .collect()
        };
        let size = pieces.iter().map(|p| p.len() + 1).sum::<usize>();
        let mut out = Vec::with_capacity(size + 40);
        out.extend_from_slice(b"{\"dags\":[");
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(piece);
        }
        out.extend_from_slice(format!("],\"total_entries\":{total}}}").as_bytes());
        out
    }
}

fn get(ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let row = find_dag(store, p.get("dag_id"))?;
    let facts = Facts::load(store, false, ctx.clock.now())?;
    let next = next_run(store, &row.dag, facts.now)?;
    Ok(Reply::json(200, &dag_json(ctx, &row, next, &facts)))
}

fn patch(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let paused = patch_body(req)?;
    let dag_id = p.get("dag_id");
    let row = store
        .dag(dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("Dag with id: {dag_id} was not found")))?;
    check_update_mask(req)?;
    set_paused(store, &row, paused, p, ctx.clock.now())?;
    ctx.wake_scheduler();
    let row = find_dag(store, dag_id)?;
    let facts = Facts::load(store, false, ctx.clock.now())?;
    let next = next_run(store, &row.dag, facts.now)?;
    Ok(Reply::json(200, &dag_json(ctx, &row, next, &facts)))
}

/// Airflow's `patch_dags`: every DAG the filters match is changed; the reply is one page
/// of them. Without `dag_id_pattern` (or `dag_id_prefix_pattern`) nothing matches, so a
/// forgotten filter never pauses everything; `~` or `%` matches all.
fn patch_many(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let paused = patch_body(req)?;
    check_update_mask(req)?;
    let (limit, offset) = page(ctx, req)?;
    let filter = DagFilter::from_query(req, true)?;
    let facts = Facts::load(store, false, ctx.clock.now())?;
    let all = ctx.dags.rows(store)?;
    let matched: Vec<&DagRow> = all
        .iter()
        .map(|row| &**row)
        .filter(|row| filter.keeps(row, &facts))
        .collect();
    for row in &matched {
        set_paused(store, row, paused, p, ctx.clock.now())?;
    }
    ctx.wake_scheduler();
    let total = matched.len();
    let mut dags = Vec::new();
    for row in matched.into_iter().skip(offset).take(limit) {
        let row = DagRow {
            is_paused: paused,
            ..row.clone()
        };
        let next = next_run(store, &row.dag, facts.now)?;
        dags.push((row, next));
    }
    let dags = dags
        .iter()
        .map(|(row, next)| dag_json(ctx, row, *next, &facts))
        .collect();
    Ok(Reply::json(
        200,
        &DagCollection {
            dags,
            total_entries: total,
        },
    ))
}

fn delete(ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    store.delete_dag(p.get("dag_id"))?;
    ctx.wake_scheduler();
    Ok(Reply {
        status: 204,
        headers: Vec::new(),
        body: Default::default(),
    })
}

fn details(ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let row = find_dag(store, p.get("dag_id"))?;
    let facts = Facts::load(store, false, ctx.clock.now())?;
    let next = next_run(store, &row.dag, facts.now)?;
    let mut out = match serde_json::to_value(dag_json(ctx, &row, next, &facts)) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    // The computed fields come last in Airflow's DAGDetailsResponse, after its own.
    let backfillable = out.remove("is_backfillable").unwrap_or(Value::Null);
    let token = out.remove("file_token").unwrap_or(Value::Null);
    let concurrency = out.get("max_active_tasks").cloned().unwrap_or(Value::Null);
    let dag = &row.dag;
    let last_parsed = store.file_last_parsed(&row.bundle_name, &row.relative_fileloc)?;
    let more = json!({
        "catchup": dag.catchup,
        "dag_run_timeout": dag.dagrun_timeout_secs.map(iso_duration),
        "asset_expression": dag.schedule.asset_condition().map(|c| c.expression()),
        "doc_md": dag.doc_md,
        "start_date": dt(dag.start_date),
        "end_date": dt(dag.end_date),
        "is_paused_upon_creation": null,
        "params": params_json(&dag.params),
        "render_template_as_native_obj": false,
        "template_search_path": null,
        "timezone": dag.timezone.name(),
        "last_parsed": dt(last_parsed),
        // The model keeps default_args applied to each task, not as a mapping.
        "default_args": null,
        "rerun_with_latest_version": null,
        "owner_links": {},
        "is_favorite": store.favorites(p.user.as_ref().map_or("", |u| u.name.as_str()))?.contains(&dag.dag_id),
        "active_runs_count": store.running_run_count(&dag.dag_id)?,
        "is_backfillable": backfillable,
        "file_token": token,
        "concurrency": concurrency,
        "latest_dag_version": store
            .dag_versions(&dag.dag_id)?
            .last()
            .map(|v| super::versions::version_json(v, display_name(dag))),
    });
    if let Value::Object(m) = more {
        out.extend(m);
    }
    Ok(Reply::json(200, &Value::Object(out)))
}

/// What every DAG in a response needs besides its row, read once per request.
struct Facts {
    /// The files with an import error now: file names by bundle.
    errors: Errors,
    /// The newest run of each DAG; read only when asked for (filtering or sorting by it),
    /// as it is a query over every DAG's runs. Empty otherwise.
    latest: HashMap<String, LatestRun>,
    now: DateTime<Utc>,
}

impl Facts {
    fn load(store: &Store, with_latest: bool, now: DateTime<Utc>) -> Result<Facts, ApiError> {
        let mut errors: HashMap<String, HashSet<String>> = HashMap::new();
        for (bundle, file) in store.import_error_files()? {
            errors.entry(bundle).or_default().insert(file);
        }
        Ok(Facts {
            errors,
            latest: if with_latest {
                store.latest_runs()?
            } else {
                HashMap::new()
            },
            now,
        })
    }

    /// Whether the DAG's file has an import error now.
    fn has_errors(&self, row: &DagRow) -> bool {
        self.errors
            .get(&row.bundle_name)
            .is_some_and(|files| files.contains(&row.relative_fileloc))
    }
}

/// The DAG list's filters, as Airflow's query parameters name them.
struct DagFilter {
    id: Patterns,
    name: Patterns,
    tags: Vec<String>,
    all_tags: bool,
    owners: Vec<String>,
    exclude_stale: bool,
    paused: Option<bool>,
    has_import_errors: Option<bool>,
    last_run_state: Option<RunState>,
    bundle_name: Option<String>,
    /// PATCH's rule: no id pattern matches nothing.
    need_id_pattern: bool,
}

impl DagFilter {
    fn from_query(req: &Req, for_patch: bool) -> Result<DagFilter, ApiError> {
        let q = |name: &str| req.query(name).map(str::to_string);
        let all_tags = match req.query("tags_match_mode") {
            None | Some("any") => false,
            Some("all") => true,
            Some(other) => {
                return Err(invalid(
                    &["query", "tags_match_mode"],
                    "literal_error",
                    "Input should be 'any' or 'all'",
                    json!(other),
                ));
            }
        };
        // PATCH takes neither this nor the list-only filters below, so ignores them.
        let last_run_state = match req.query("last_dag_run_state").filter(|_| !for_patch) {
            None => None,
            Some(s) => Some(RunState::parse(s).ok_or_else(|| {
                invalid(
                    &["query", "last_dag_run_state"],
                    "enum",
                    "Input should be 'queued', 'running', 'success' or 'failed'",
                    json!(s),
                )
            })?),
        };
        // `only_active` is Airflow 2's name for the same switch.
        let exclude_stale = match query_bool(req, "exclude_stale")? {
            Some(v) => v,
            None => query_bool(req, "only_active")?.unwrap_or(true),
        };
        let list_only = |v: Option<String>| if for_patch { None } else { v };
        Ok(DagFilter {
            id: Patterns::new(req, "dag_id"),
            name: if for_patch {
                Patterns::default()
            } else {
                Patterns::new(req, "dag_display_name")
            },
            tags: query_all(req, "tags")
                .into_iter()
                .map(str::to_string)
                .collect(),
            all_tags,
            owners: query_all(req, "owners")
                .into_iter()
                .map(str::to_string)
                .collect(),
            exclude_stale,
            paused: query_bool(req, "paused")?,
            has_import_errors: if for_patch {
                None
            } else {
                query_bool(req, "has_import_errors")?
            },
            last_run_state,
            bundle_name: list_only(q("bundle_name")),
            need_id_pattern: for_patch,
        })
    }

    /// Whether a DAG passes every filter. Called for every stored DAG per request, so
    /// the cheap flags go first and nothing is allocated for a filter not given.
    fn keeps(&self, row: &DagRow, facts: &Facts) -> bool {
        let dag = &row.dag;
        if self.need_id_pattern && self.id.is_empty() {
            return false;
        }
        let tag_ok = |t: &String| dag.tags.contains(t);
        let owners_ok = || {
            let joined = dag.owners.join(",").to_lowercase();
            self.owners
                .iter()
                .any(|o| joined.contains(&o.to_lowercase()))
        };
        // Lazily: reading the DAG itself costs a cache miss per DAG.
        let name = || display_name(dag);
        !(self.exclude_stale && row.is_stale)
            && self.paused.is_none_or(|p| p == row.is_paused)
            && self
                .bundle_name
                .as_deref()
                .is_none_or(|b| b == row.bundle_name)
            // Reading the id reads the DAG: a cache miss per DAG, for nothing when no
            // pattern is given (most of an unfiltered list's time in this function).
            && (self.id.is_empty() || self.id.keep(&dag.dag_id))
            && (self.name.is_empty() || self.name.keep(name()))
            && (self.tags.is_empty()
                || if self.all_tags {
                    self.tags.iter().all(tag_ok)
                } else {
                    self.tags.iter().any(tag_ok)
                })
            && (self.owners.is_empty() || owners_ok())
            && self
                .has_import_errors
                .is_none_or(|h| h == facts.has_errors(row))
            && self
                .last_run_state
                .is_none_or(|s| facts.latest.get(&dag.dag_id).map(|l| l.state) == Some(s))
    }
}

/// Airflow's DAGCollectionResponse.
#[derive(Serialize)]
struct DagCollection<'a> {
    dags: Vec<DagResponse<'a>>,
    total_entries: usize,
}

/// One DAG as Airflow's DAGResponse, fields in its order. Typed and borrowed from the
/// row, so a page of DAGs is written into the reply without building JSON values.
#[derive(Serialize)]
struct DagResponse<'a> {
    dag_id: &'a str,
    dag_display_name: &'a str,
    is_paused: bool,
    is_stale: bool,
    last_parsed_time: Value,
    /// The processor does not time each file.
    last_parse_duration: (),
    last_expired: (),
    bundle_name: &'a str,
    bundle_version: (),
    relative_fileloc: &'a str,
    fileloc: &'a str,
    description: Option<&'a str>,
    timetable_summary: Option<String>,
    timetable_description: String,
    timetable_partitioned: bool,
    timetable_periodic: bool,
    tags: Vec<DagTag<'a>>,
    max_active_tasks: u32,
    max_active_runs: u32,
    max_consecutive_failed_dag_runs: u32,
    has_task_concurrency_limits: bool,
    has_import_errors: bool,
    next_dagrun_logical_date: Value,
    next_dagrun_data_interval_start: Value,
    next_dagrun_data_interval_end: Value,
    next_dagrun_run_after: Value,
    allowed_run_types: (),
    owners: &'a [String],
    is_backfillable: bool,
    file_token: String,
}

/// A tag as Airflow's DagTagResponse.
#[derive(Serialize)]
struct DagTag<'a> {
    name: &'a str,
    dag_id: &'a str,
    dag_display_name: &'a str,
}

/// One DAG as Airflow's DAGResponse.
fn dag_json<'a>(
    ctx: &Ctx,
    row: &'a DagRow,
    next: Option<RunInfo>,
    facts: &Facts,
) -> DagResponse<'a> {
    let dag = &row.dag;
    let name = display_name(dag);
    let periodic = dag.schedule.is_periodic();
    let mut tags: Vec<&str> = dag.tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    tags.dedup();
    DagResponse {
        dag_id: &dag.dag_id,
        dag_display_name: name,
        is_paused: row.is_paused,
        is_stale: row.is_stale,
        last_parsed_time: dt(Some(row.last_parsed_time)),
        last_parse_duration: (),
        last_expired: (),
        bundle_name: &row.bundle_name,
        bundle_version: (),
        relative_fileloc: &row.relative_fileloc,
        fileloc: &row.fileloc,
        description: dag.description.as_deref(),
        timetable_summary: dag.schedule.summary(),
        timetable_description: timetable::description(&dag.schedule),
        timetable_partitioned: false,
        timetable_periodic: periodic,
        tags: tags
            .into_iter()
            .map(|t| DagTag {
                name: t,
                dag_id: &dag.dag_id,
                dag_display_name: name,
            })
            .collect(),
        max_active_tasks: dag
            .max_active_tasks
            .unwrap_or(ctx.cfg.core.max_active_tasks_per_dag),
        max_active_runs: dag
            .max_active_runs
            .unwrap_or(ctx.cfg.core.max_active_runs_per_dag),
        max_consecutive_failed_dag_runs: 0,
        has_task_concurrency_limits: false,
        has_import_errors: facts.has_errors(row),
        next_dagrun_logical_date: dt(next.map(|n| n.logical_date)),
        next_dagrun_data_interval_start: dt(next.map(|n| n.data_interval_start)),
        next_dagrun_data_interval_end: dt(next.map(|n| n.data_interval_end)),
        next_dagrun_run_after: dt(next.map(|n| n.run_after)),
        allowed_run_types: (),
        owners: &dag.owners,
        is_backfillable: periodic,
        file_token: ctx
            .file_tokens
            .sign(&row.bundle_name, &row.relative_fileloc),
    }
}

/// The logical date of the next scheduled run (the Execution API's `next_dagrun`).
pub(crate) fn next_logical_date(
    ctx: &Ctx,
    store: &Store,
    dag: &Dag,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(next_run(store, dag, ctx.clock.now())?.map(|n| n.logical_date))
}

/// The next scheduled run, from the newest scheduled one, as the scheduler will compute
/// it. Airflow keeps it on the DAG whether paused or not, and so does this.
fn next_run(store: &Store, dag: &Dag, now: DateTime<Utc>) -> Result<Option<RunInfo>, ApiError> {
    if dag.schedule == Schedule::None {
        return Ok(None);
    }
    let last = store.last_scheduled_run(&dag.dag_id)?.and_then(|r| {
        Some(RunInfo {
            logical_date: r.logical_date?,
            data_interval_start: r.data_interval_start?,
            data_interval_end: r.data_interval_end?,
            run_after: r.run_after,
        })
    });
    Ok(timetable::next_run(dag, last.as_ref(), now))
}

fn patch_body(req: &Req) -> Result<bool, ApiError> {
    let map = body(req, PATCH_FIELDS)?;
    map.get("is_paused")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            invalid(
                &["body", "is_paused"],
                "bool_type",
                "Input should be a valid boolean",
                Value::Null,
            )
        })
}

fn check_update_mask(req: &Req) -> Result<(), ApiError> {
    let mask = query_all(req, "update_mask");
    if mask.is_empty() || mask == ["is_paused"] {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "Only `is_paused` field can be updated through the REST API",
        ))
    }
}

/// Pauses or unpauses through `ops::set_paused` when that changes something. A stale DAG
/// (which Airflow still lets one pause) is set directly, as `ops` knows only live ones.
fn set_paused(
    store: &mut Store,
    row: &DagRow,
    paused: bool,
    p: &Params,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if row.is_paused == paused {
        return Ok(());
    }
    if row.is_stale {
        store.set_paused(&row.dag.dag_id, paused)?;
    } else {
        let user = p.user().map(|u| u.name.as_str());
        ops::set_paused(store, &row.dag.dag_id, paused, user, now)?;
    }
    Ok(())
}

/// A key the DAG list sorts by.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DagKey {
    Id,
    Name,
    Next,
    LastState,
    LastStart,
}

/// One DAG of the list with the computed values it may be sorted by.
struct Listed<'a> {
    row: &'a Arc<DagRow>,
    /// The row's place in the list it came from.
    index: usize,
    /// The next run: computed for every match only when the order names it.
    next: Option<RunInfo>,
    /// The newest run, when the facts hold them.
    last_run: Option<&'a LatestRun>,
}

impl DagKey {
    /// Two DAGs by this key, nulls first as SQL sorts them. Times compare as times,
    /// which orders them as their stored text does.
    fn compare(self, a: &Listed, b: &Listed) -> std::cmp::Ordering {
        match self {
            DagKey::Id => a.row.dag.dag_id.cmp(&b.row.dag.dag_id),
            DagKey::Name => display_name(&a.row.dag).cmp(display_name(&b.row.dag)),
            DagKey::Next => {
                let date = |l: &Listed| l.next.map(|n| n.logical_date);
                date(a).cmp(&date(b))
            }
            DagKey::LastState => {
                let state = |l: &Listed| l.last_run.map(|r| r.state.as_str());
                state(a).cmp(&state(b))
            }
            DagKey::LastStart => {
                let start = |l: &Listed| l.last_run.and_then(|r| r.start_date);
                start(a).cmp(&start(b))
            }
        }
    }
}

/// Sorts the DAG list, which comes in `dag_id` order (as `DagCache::rows` gives it),
/// as [`sorted`] sorts JSON rows: by each key of `order` in turn, ties broken by
/// `dag_id` in the direction of the first key, as Airflow appends its primary key. Typed
/// keys, so no JSON is built for DAGs outside the page.
fn sort_dags(rows: &mut [Listed], order: &[(DagKey, bool)]) {
    // By dag_id first (the default), the ids being unique: already in order, or reversed.
    // SQLite orders text as bytes, as `str` does.
    if let Some((DagKey::Id, desc)) = order.first() {
        if *desc {
            rows.reverse();
        }
        return;
    }
    let mut keys = order.to_vec();
    if !keys.iter().any(|(k, _)| *k == DagKey::Id) {
        keys.push((DagKey::Id, order.first().is_some_and(|(_, d)| *d)));
    }
    rows.sort_by(|a, b| {
        keys.iter()
            .map(|(k, desc)| {
                let o = k.compare(a, b);
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::kit::sorted;

    /// A stored DAG with just what the list sorts by.
    fn listed(id: &str, name: Option<&str>) -> DagRow {
        let dag = Dag {
            dag_id: id.into(),
            fileloc: format!("{id}.yml"),
            line: 1,
            dag_display_name: name.map(str::to_string),
            description: None,
            doc_md: None,
            schedule: Schedule::None,
            timezone: Default::default(),
            start_date: None,
            end_date: None,
            catchup: false,
            tags: Vec::new(),
            params: Value::Null,
            max_active_runs: None,
            max_active_tasks: None,
            dagrun_timeout_secs: None,
            owners: Vec::new(),
            tasks: Vec::new(),
            task_groups: Vec::new(),
            callbacks: Vec::new(),
        };
        DagRow {
            dag: std::sync::Arc::new(dag),
            bundle_name: "b".into(),
            relative_fileloc: format!("{id}.yml"),
            fileloc: format!("/{id}.yml"),
            is_paused: false,
            is_stale: false,
            last_parsed_time: Utc::now(),
        }
    }

    #[test]
    fn the_dag_list_sorts_as_the_json_keys_did() {
        // Ties, nulls and upper case in every key, so each order leans on the next key
        // and on the dag_id tiebreak.
        let t = |h: u32| Some(DateTime::<Utc>::from_timestamp(i64::from(h) * 3600, 0).unwrap());
        let run = |state, start| {
            Some(LatestRun {
                state,
                start_date: start,
            })
        };
        let data = [
            ("e", Some("Beta"), t(2), run(RunState::Success, t(1))),
            ("a", None, None, run(RunState::Failed, t(1))),
            ("c", Some("beta"), t(2), None),
            ("b", Some("Zed"), t(1), run(RunState::Success, None)),
            ("d", None, None, run(RunState::Running, t(3))),
            ("f", Some("a"), t(1), run(RunState::Failed, t(3))),
        ];
        let latest: Vec<Option<LatestRun>> = data.iter().map(|d| d.3.clone()).collect();
        let stored: Vec<Arc<DagRow>> = data
            .iter()
            .map(|(id, name, ..)| Arc::new(listed(id, *name)))
            .collect();
        let rows = || -> Vec<Listed> {
            data.iter()
                .zip(&latest)
                .zip(&stored)
                .enumerate()
                .map(|(index, (((_, _, next, _), last), row))| Listed {
                    row,
                    index,
                    next: next.map(|d| RunInfo {
                        logical_date: d,
                        data_interval_start: d,
                        data_interval_end: d,
                        run_after: d,
                    }),
                    last_run: last.as_ref(),
                })
                .collect()
        };
        let mut orders: Vec<Vec<(usize, bool)>> = Vec::new();
        for i in 0..DAG_KEYS.len() {
            for d in [false, true] {
                orders.push(vec![(i, d)]);
                for j in 0..DAG_KEYS.len() {
                    if j != i {
                        orders.push(vec![(i, d), (j, !d)]);
                        orders.push(vec![(i, d), (j, d)]);
                    }
                }
            }
        }
        for order in orders {
            // The old way: JSON keys and stable sorts over the rows in dag_id order.
            let mut by_id = rows();
            by_id.sort_by(|a, b| a.row.dag.dag_id.cmp(&b.row.dag.dag_id));
            let keys: Vec<Value> = by_id
                .iter()
                .map(|l| {
                    json!({
                        "dag_id": l.row.dag.dag_id,
                        "dag_display_name": display_name(&l.row.dag),
                        "next_dagrun": l.next.map(|n| crate::store::ts(n.logical_date)),
                        "last_run_state": l.last_run.map(|r| r.state.as_str()),
                        "last_run_start_date": l.last_run.and_then(|r| r.start_date).map(crate::store::ts),
                    })
                })
                .collect();
            let ids: Vec<Value> = by_id.iter().map(|l| json!(l.row.dag.dag_id)).collect();
            let named: Vec<(&str, bool)> =
                order.iter().map(|(i, d)| (DAG_KEYS[*i].0, *d)).collect();
            let old: Vec<Value> = sorted(ids, keys, &named, "dag_id");
            let mut new = rows();
            new.sort_by(|a, b| a.row.dag.dag_id.cmp(&b.row.dag.dag_id));
            let typed: Vec<(DagKey, bool)> =
                order.iter().map(|(i, d)| (DAG_KEYS[*i].1, *d)).collect();
            sort_dags(&mut new, &typed);
            let new: Vec<Value> = new.iter().map(|l| json!(l.row.dag.dag_id)).collect();
            assert_eq!(new, old, "{named:?}");
        }
    }

    #[test]
    fn sorting_by_several_keys_breaks_ties_by_the_primary_key() {
        let rows: Vec<Value> = ["b", "a", "c"].iter().map(|s| json!(s)).collect();
        let keys = vec![
            json!({"id": "b", "state": "x"}),
            json!({"id": "a", "state": "y"}),
            json!({"id": "c", "state": "x"}),
        ];
        let got = sorted(rows.clone(), keys.clone(), &[("state", false)], "id");
        assert_eq!(got, vec![json!("b"), json!("c"), json!("a")]);
        let got = sorted(rows, keys, &[("state", true)], "id");
        assert_eq!(got, vec![json!("a"), json!("c"), json!("b")]);
    }
}
