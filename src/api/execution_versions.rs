//! The Execution API's versions: what each dated version of Airflow 3.3.2's Execution API
//! changed (its Cadwyn `VersionChange`s in `execution_api/versions/`), in one table, and
//! how a request naming an older version in `Airflow-API-Version` is answered in that
//! version's shapes: routes a version added are not there for older ones (and the route
//! one removed is), replies are converted down change by change from the newest, and
//! request fields a version added are refused from older clients as the older (strict)
//! models refuse them.
//!
//! The handlers write the newest shapes only; this module is the one place that knows
//! the older ones.

use serde_json::{Map, Value, json};

use crate::api::http::{self, ApiError, Method, Req};
use crate::api::route::{Ctx, Params, Route};
use crate::store::Store;

/// The reply shapes the changes convert, as Airflow's models name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `TIRunContext`: the reply of a task's `run`.
    RunContext,
    /// `DagRun` answered on its own (a run's detail, the previous run).
    DagRun,
    /// `AssetEventsResponse`: the asset-events routes.
    AssetEvents,
}

/// One effect of a version change, undone for requests naming an earlier version.
pub enum Effect {
    /// A route this version added: older requests do not match it.
    RouteAdded(Method, &'static str),
    /// A route this version removed: only older requests match it.
    RouteRemoved(Method, &'static str),
    /// A reply change: the function turns the newer reply into the older one.
    Reply(Shape, fn(&mut Value)),
    /// A body field this version added to a strict request model: older requests
    /// carrying it are refused (422 `extra_forbidden`). `tag` is the state-update
    /// union's tag the model answers to, when the route takes that union.
    BodyField {
        method: Method,
        path: &'static str,
        tag: Option<&'static str>,
        field: &'static str,
    },
    /// A query parameter this version added: older requests are served without it.
    QueryParam(&'static str, &'static str),
}

/// One of Airflow's `VersionChange`s.
pub struct Change {
    /// The version that brought it (`Airflow-API-Version` dates before it see the
    /// older shape).
    pub version: &'static str,
    /// Airflow's class name.
    pub name: &'static str,
    pub effects: &'static [Effect],
}

use Effect::{BodyField, QueryParam, Reply, RouteAdded, RouteRemoved};
use Method::{Get, Patch, Post, Put};
use Shape::{AssetEvents, DagRun, RunContext};

const RUN: &str = "/execution/task-instances/{task_instance_id}/run";
const STATE: &str = "/execution/task-instances/{task_instance_id}/state";
const TRIGGER: &str = "/execution/dag-runs/{dag_id}/{run_id}";
const XCOM: &str = "/execution/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}";
const XCOM_SLICE: &str = "/execution/xcoms/{dag_id}/{run_id}/{task_id}/{key:path}/slice";

/// Every change of Airflow 3.3.2's Execution API, newest first (the order replies are
/// converted down in). Schema-only changes of models no updraft route answers with
/// (`TaskInstance.dag_version_id`, `TaskInstance.queue`: only in the generated client)
/// are listed without effects.
pub const CHANGES: &[Change] = &[
    // 2026-06-30
    Change {
        version: "2026-06-30",
        name: "AddVariableKeysEndpoint",
        effects: &[RouteAdded(Get, "/execution/variables/keys")],
    },
    Change {
        version: "2026-06-30",
        name: "AddConnectionTestEndpoint",
        effects: &[
            RouteAdded(Patch, "/execution/connection-tests/{connection_test_id}"),
            RouteAdded(
                Get,
                "/execution/connection-tests/{connection_test_id}/connection",
            ),
        ],
    },
    Change {
        version: "2026-06-30",
        name: "AddAwaitingInputStatePayload",
        effects: &[
            awaiting("state"),
            awaiting("timeout"),
            awaiting("next_method"),
            awaiting("next_kwargs"),
            awaiting("rendered_map_index"),
        ],
    },
    Change {
        version: "2026-06-30",
        name: "AddTaskInstanceQueueField",
        effects: &[],
    },
    Change {
        version: "2026-06-30",
        name: "AddRetryPolicyFields",
        effects: &[
            state_field("up_for_retry", "retry_delay_seconds"),
            state_field("up_for_retry", "retry_reason"),
        ],
    },
    Change {
        version: "2026-06-30",
        name: "AddTeamNameField",
        effects: &[
            Reply(RunContext, |v| drop_in(v, "dag_run", "team_name")),
            Reply(DagRun, |v| drop_field(v, "team_name")),
        ],
    },
    Change {
        version: "2026-06-30",
        name: "AddTaskAndAssetStateStoreEndpoints",
        effects: &[
            RouteAdded(Get, "/execution/store/ti/{task_instance_id}/{key:path}"),
            RouteAdded(Put, "/execution/store/ti/{task_instance_id}/{key:path}"),
            RouteAdded(
                Method::Delete,
                "/execution/store/ti/{task_instance_id}/{key:path}",
            ),
            RouteAdded(Method::Delete, "/execution/store/ti/{task_instance_id}"),
            RouteAdded(Get, "/execution/store/asset/by-name/value"),
            RouteAdded(Put, "/execution/store/asset/by-name/value"),
            RouteAdded(Method::Delete, "/execution/store/asset/by-name/value"),
            RouteAdded(Method::Delete, "/execution/store/asset/by-name/clear"),
            RouteAdded(Get, "/execution/store/asset/by-uri/value"),
            RouteAdded(Put, "/execution/store/asset/by-uri/value"),
            RouteAdded(Method::Delete, "/execution/store/asset/by-uri/value"),
            RouteAdded(Method::Delete, "/execution/store/asset/by-uri/clear"),
        ],
    },
    Change {
        version: "2026-06-30",
        name: "AddAssetsByAliasEndpoint",
        effects: &[RouteAdded(Get, "/execution/assets/by-alias")],
    },
    Change {
        version: "2026-06-30",
        name: "AddPartitionDateField",
        effects: &[
            Reply(RunContext, |v| drop_in(v, "dag_run", "partition_date")),
            Reply(DagRun, |v| drop_field(v, "partition_date")),
        ],
    },
    Change {
        version: "2026-06-30",
        name: "AddConsumedAssetEventPartitionKeyField",
        effects: &[Reply(RunContext, |v| {
            if let Some(Value::Array(events)) = v
                .get_mut("dag_run")
                .and_then(|r| r.get_mut("consumed_asset_events"))
            {
                for e in events {
                    drop_field(e, "partition_key");
                }
            }
        })],
    },
    // 2026-04-06
    Change {
        version: "2026-04-06",
        name: "AddPartitionKeyField",
        effects: &[
            Reply(RunContext, |v| drop_in(v, "dag_run", "partition_key")),
            Reply(DagRun, |v| drop_field(v, "partition_key")),
            Reply(AssetEvents, |v| {
                if let Some(Value::Array(events)) = v.get_mut("asset_events") {
                    for e in events {
                        drop_field(e, "partition_key");
                        if let Some(Value::Array(runs)) = e.get_mut("created_dagruns") {
                            runs.iter_mut().for_each(|r| drop_field(r, "partition_key"));
                        }
                    }
                }
            }),
            BodyField {
                method: Post,
                path: TRIGGER,
                tag: None,
                field: "partition_key",
            },
        ],
    },
    Change {
        version: "2026-04-06",
        name: "MovePreviousRunEndpoint",
        effects: &[
            RouteAdded(Get, "/execution/dag-runs/previous"),
            RouteRemoved(Get, "/execution/dag-runs/{dag_id}/previous"),
        ],
    },
    Change {
        version: "2026-04-06",
        name: "AddDagRunDetailEndpoint",
        effects: &[RouteAdded(Get, "/execution/dag-runs/{dag_id}/{run_id}")],
    },
    Change {
        version: "2026-04-06",
        name: "MakeDagRunStartDateNullable",
        effects: &[
            Reply(RunContext, |v| {
                if let Some(run) = v.get_mut("dag_run") {
                    start_date_or_run_after(run);
                }
            }),
            Reply(DagRun, start_date_or_run_after),
        ],
    },
    Change {
        version: "2026-04-06",
        name: "ModifyDeferredTaskKwargsToJsonValue",
        effects: &[Reply(RunContext, |v| {
            if let Some(kwargs) = v.get_mut("next_kwargs")
                && !kwargs.is_null()
            {
                *kwargs = base_serialization(kwargs.take());
            }
        })],
    },
    Change {
        version: "2026-04-06",
        name: "RemoveUpstreamMapIndexesField",
        effects: &[Reply(RunContext, |v| {
            if let Value::Object(m) = v {
                m.insert("upstream_map_indexes".into(), Value::Null);
            }
        })],
    },
    Change {
        version: "2026-04-06",
        name: "AddNoteField",
        effects: &[
            Reply(RunContext, |v| drop_in(v, "dag_run", "note")),
            Reply(DagRun, |v| drop_field(v, "note")),
            BodyField {
                method: Post,
                path: TRIGGER,
                tag: None,
                field: "note",
            },
        ],
    },
    Change {
        version: "2026-04-06",
        name: "AddTaskInstanceStartDateField",
        effects: &[Reply(RunContext, |v| drop_field(v, "start_date"))],
    },
    Change {
        version: "2026-04-06",
        name: "AddRunAfterField",
        effects: &[BodyField {
            method: Post,
            path: TRIGGER,
            tag: None,
            field: "run_after",
        }],
    },
    Change {
        version: "2026-04-06",
        name: "AddDagEndpoint",
        effects: &[RouteAdded(Get, "/execution/dags/{dag_id}")],
    },
    // 2025-11-05 .. 2025-04-28
    Change {
        version: "2025-11-05",
        name: "AddTriggeringUserNameField",
        effects: &[
            Reply(RunContext, |v| {
                drop_in(v, "dag_run", "triggering_user_name")
            }),
            Reply(DagRun, |v| drop_field(v, "triggering_user_name")),
        ],
    },
    Change {
        version: "2025-10-27",
        name: "MakeDagRunConfNullable",
        effects: &[Reply(RunContext, |v| {
            if let Some(run) = v.get_mut("dag_run").and_then(Value::as_object_mut)
                && run.get("conf").is_none_or(Value::is_null)
            {
                run.insert("conf".into(), json!({}));
            }
        })],
    },
    Change {
        version: "2025-09-23",
        name: "AddDagVersionIdField",
        effects: &[],
    },
    Change {
        version: "2025-08-10",
        name: "AddDagRunStateFieldAndPreviousEndpoint",
        effects: &[
            Reply(RunContext, |v| drop_in(v, "dag_run", "state")),
            Reply(DagRun, |v| drop_field(v, "state")),
            RouteAdded(Get, "/execution/dag-runs/{dag_id}/previous"),
        ],
    },
    Change {
        version: "2025-08-10",
        name: "AddIncludePriorDatesToGetXComSlice",
        effects: &[
            QueryParam(XCOM, "include_prior_dates"),
            QueryParam(XCOM_SLICE, "include_prior_dates"),
        ],
    },
    Change {
        version: "2025-05-20",
        name: "DowngradeUpstreamMapIndexes",
        effects: &[Reply(RunContext, |v| {
            if let Some(Value::Object(m)) = v.get_mut("upstream_map_indexes") {
                for x in m.values_mut() {
                    *x = match x.take() {
                        Value::Number(n) if n.is_i64() || n.is_u64() => Value::Number(n),
                        Value::Array(a) if !a.is_empty() && a.iter().all(is_int) => a[0].clone(),
                        _ => Value::Null,
                    };
                }
            }
        })],
    },
    Change {
        version: "2025-04-28",
        name: "AddRenderedMapIndexField",
        effects: &[
            state_field("_terminal_", "rendered_map_index"),
            state_field("success", "rendered_map_index"),
            state_field("deferred", "rendered_map_index"),
            state_field("up_for_retry", "rendered_map_index"),
        ],
    },
];

/// The versions Airflow 3.3.2 lists, oldest first: the first has no changes of its own.
pub const VERSIONS: &[&str] = &[
    "2025-04-11",
    "2025-04-28",
    "2025-05-20",
    "2025-08-10",
    "2025-09-23",
    "2025-10-27",
    "2025-11-05",
    "2026-04-06",
    "2026-06-30",
];

const fn state_field(tag: &'static str, field: &'static str) -> Effect {
    BodyField {
        method: Patch,
        path: STATE,
        tag: Some(tag),
        field,
    }
}

const fn awaiting(field: &'static str) -> Effect {
    state_field("awaiting_input", field)
}

fn is_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

fn drop_field(v: &mut Value, field: &str) {
    if let Value::Object(m) = v {
        m.remove(field);
    }
}

fn drop_in(v: &mut Value, object: &str, field: &str) {
    if let Some(inner) = v.get_mut(object) {
        drop_field(inner, field);
    }
}

fn start_date_or_run_after(run: &mut Value) {
    if let Value::Object(m) = run
        && m.get("start_date").is_none_or(Value::is_null)
    {
        let after = m.get("run_after").cloned().unwrap_or(Value::Null);
        m.insert("start_date".into(), after);
    }
}

/// Plain JSON as Airflow's `BaseSerialization.serialize` writes it for workers before
/// 2026-04-06: every object wrapped as `{"__type": "dict", "__var": {...}}`, lists kept.
fn base_serialization(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let inner: Map<String, Value> = m
                .into_iter()
                .map(|(k, v)| (k, base_serialization(v)))
                .collect();
            json!({"__var": inner, "__type": "dict"})
        }
        Value::Array(a) => Value::Array(a.into_iter().map(base_serialization).collect()),
        other => other,
    }
}

/// The changes a request naming `version` does not have: those of later versions.
fn undone(version: &str) -> impl Iterator<Item = &'static Effect> + '_ {
    CHANGES
        .iter()
        .filter(move |c| version < c.version)
        .flat_map(|c| c.effects.iter())
}

/// Whether the route `method path` exists in `version`.
pub fn route_exists(method: Method, path: &str, version: &str) -> bool {
    // A route added by one version and removed by a later one exists in between.
    CHANGES.iter().all(|c| {
        c.effects.iter().all(|e| match e {
            RouteAdded(m, p) if *m == method && *p == path => version >= c.version,
            RouteRemoved(m, p) if *m == method && *p == path => version < c.version,
            _ => true,
        })
    })
}

/// The reply shape of a route, when a change converts it.
pub fn shape_of(method: Method, path: &str) -> Option<Shape> {
    match (method, path) {
        (Patch, RUN) => Some(RunContext),
        (Get, "/execution/dag-runs/{dag_id}/{run_id}" | "/execution/dag-runs/previous") => {
            Some(DagRun)
        }
        (Get, "/execution/asset-events/by-asset" | "/execution/asset-events/by-asset-alias") => {
            Some(AssetEvents)
        }
        _ => None,
    }
}

/// A reply of the newest shape `shape`, converted to `version`'s.
pub fn downgrade(shape: Shape, version: &str, mut body: Value) -> Value {
    for e in undone(version) {
        if let Reply(s, f) = e
            && *s == shape
        {
            f(&mut body);
        }
    }
    body
}

/// The state-update union's tag of a body (Airflow's `ti_state_discriminator`).
fn state_tag(body: &Value) -> &'static str {
    match body.get("state").and_then(Value::as_str) {
        Some("success") => "success",
        Some("failed" | "skipped" | "removed") => "_terminal_",
        Some("deferred") => "deferred",
        Some("up_for_reschedule") => "up_for_reschedule",
        Some("awaiting_input") => "awaiting_input",
        Some("up_for_retry") => "up_for_retry",
        _ => "_other_",
    }
}

/// Refuses a request body of `version` that carries fields its models did not have,
/// as pydantic refuses extra fields of a strict model.
pub fn check_body(method: Method, path: &str, version: &str, body: &[u8]) -> Result<(), ApiError> {
    let mut fields = undone(version).filter_map(|e| match e {
        BodyField {
            method: m,
            path: p,
            tag,
            field,
        } if *m == method && *p == path => Some((*tag, *field)),
        _ => None,
    });
    let Some(first) = fields.next() else {
        return Ok(());
    };
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let tag = state_tag(&Value::Object(obj.clone()));
    let errors: Vec<Value> = std::iter::once(first)
        .chain(fields)
        .filter(|(t, _)| t.is_none_or(|t| t == tag))
        .filter_map(|(t, field)| {
            let input = obj.get(field)?;
            let loc = match t {
                Some(t) => json!(["body", t, field]),
                None => json!(["body", field]),
            };
            Some(json!({"type": "extra_forbidden", "loc": loc,
                        "msg": "Extra inputs are not permitted", "input": input}))
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::with_detail(422, Value::Array(errors)))
}

/// The query parameters `version` did not have on route `path`: dropped from its
/// requests.
pub fn unknown_query(path: &str, version: &str) -> Vec<&'static str> {
    undone(version)
        .filter_map(|e| match e {
            QueryParam(p, name) if *p == path => Some(*name),
            _ => None,
        })
        .collect()
}

/// Runs the Execution API route `r` for a request naming `version`: its body checked
/// against that version's models, the query parameters it did not have dropped, the
/// newest-shaped reply converted down.
pub fn serve(
    r: &Route,
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    params: &Params,
    version: &str,
) -> http::Reply {
    if let Err(e) = check_body(r.method, r.path, version, &req.body) {
        return e.into_reply();
    }
    let unknown = unknown_query(r.path, version);
    let stripped;
    let req = if req.query.iter().any(|(k, _)| unknown.contains(&k.as_str())) {
        let mut copy = req.clone();
        copy.query.retain(|(k, _)| !unknown.contains(&k.as_str()));
        stripped = copy;
        &stripped
    } else {
        req
    };
    let reply = (r.handler)(ctx, store, req, params).unwrap_or_else(ApiError::into_reply);
    match shape_of(r.method, r.path) {
        Some(shape) if reply.status < 300 && version < VERSIONS[VERSIONS.len() - 1] => {
            match serde_json::from_slice::<Value>(&reply.body) {
                Ok(body) if !body.is_null() => {
                    let mut out = http::Reply::json(reply.status, &downgrade(shape, version, body));
                    out.headers = reply.headers;
                    out
                }
                _ => reply,
            }
        }
        _ => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_context() -> Value {
        json!({
            "dag_run": {"dag_id": "d", "run_id": "r", "state": "running", "conf": null,
                        "start_date": null, "run_after": "2025-01-01T00:00:00Z",
                        "triggering_user_name": "u", "partition_key": null, "partition_date": null,
                        "note": null, "team_name": null,
                        "consumed_asset_events": [{"partition_key": "p", "extra": {}}]},
            "max_tries": 0, "start_date": "2025-01-01T00:00:01Z", "next_kwargs": null,
        })
    }

    #[test]
    fn the_newest_version_is_served_unchanged() {
        assert_eq!(
            downgrade(RunContext, "2026-06-30", run_context()),
            run_context()
        );
        assert_eq!(
            downgrade(RunContext, "2027-01-01", run_context()),
            run_context()
        );
    }

    #[test]
    fn versions_are_the_changes_dates() {
        let mut dates: Vec<&str> = CHANGES.iter().map(|c| c.version).collect();
        dates.dedup();
        dates.reverse();
        assert_eq!(dates, VERSIONS[1..]);
        assert!(CHANGES.windows(2).all(|w| w[0].version >= w[1].version));
    }

    #[test]
    fn add_team_name_partition_date_and_event_partition_key_2026_06_30() {
        let v = downgrade(RunContext, "2026-04-06", run_context());
        let run = &v["dag_run"];
        assert!(run.get("team_name").is_none() && run.get("partition_date").is_none());
        assert!(
            run["consumed_asset_events"][0]
                .get("partition_key")
                .is_none()
        );
        assert!(run.get("partition_key").is_some() && run.get("note").is_some());
        let d = downgrade(DagRun, "2026-04-06", run_context()["dag_run"].clone());
        assert!(d.get("team_name").is_none() && d.get("partition_date").is_none());
    }

    #[test]
    fn the_2026_04_06_changes() {
        let v = downgrade(RunContext, "2026-04-05", run_context());
        let run = &v["dag_run"];
        assert!(run.get("partition_key").is_none() && run.get("note").is_none());
        // MakeDagRunStartDateNullable: a run not started reads as started at run_after.
        assert_eq!(run["start_date"], "2025-01-01T00:00:00Z");
        // AddTaskInstanceStartDateField, RemoveUpstreamMapIndexesField.
        assert!(v.get("start_date").is_none());
        assert_eq!(v.get("upstream_map_indexes"), Some(&Value::Null));
        assert_eq!(run["triggering_user_name"], "u");
        let d = downgrade(DagRun, "2026-04-05", run_context()["dag_run"].clone());
        assert_eq!(d["start_date"], "2025-01-01T00:00:00Z");
        let events = json!({"asset_events": [{"id": 1, "partition_key": "p",
                            "created_dagruns": [{"run_id": "r", "partition_key": null}]}]});
        let e = downgrade(AssetEvents, "2026-04-05", events.clone());
        assert_eq!(
            e["asset_events"][0],
            json!({"id": 1, "created_dagruns": [{"run_id": "r"}]})
        );
        assert_eq!(downgrade(AssetEvents, "2026-04-06", events.clone()), events);
    }

    #[test]
    fn next_kwargs_reach_older_workers_in_base_serialization() {
        let mut ctx = run_context();
        ctx["next_kwargs"] =
            json!({"event": {"chosen_options": ["a"], "params_input": {"x": 1.5}}});
        let v = downgrade(RunContext, "2026-04-05", ctx);
        assert_eq!(
            v["next_kwargs"],
            json!({"__type": "dict", "__var": {"event": {"__type": "dict", "__var": {
                "chosen_options": ["a"], "params_input": {"__type": "dict", "__var": {"x": 1.5}}}}}})
        );
        assert_eq!(
            downgrade(RunContext, "2026-04-05", run_context())["next_kwargs"],
            Value::Null
        );
    }

    #[test]
    fn triggering_user_name_conf_and_state_of_older_runs() {
        let v = downgrade(RunContext, "2025-11-04", run_context());
        assert!(v["dag_run"].get("triggering_user_name").is_none());
        assert_eq!(v["dag_run"]["conf"], Value::Null);
        let v = downgrade(RunContext, "2025-10-26", run_context());
        assert_eq!(v["dag_run"]["conf"], json!({}));
        assert_eq!(v["dag_run"]["state"], "running");
        let v = downgrade(RunContext, "2025-08-09", run_context());
        assert!(v["dag_run"].get("state").is_none());
    }

    #[test]
    fn upstream_map_indexes_of_the_oldest_versions_are_null() {
        // RemoveUpstreamMapIndexesField puts null first; DowngradeUpstreamMapIndexes then
        // leaves it (it converts only a mapping).
        let v = downgrade(RunContext, "2025-04-11", run_context());
        assert_eq!(v["upstream_map_indexes"], Value::Null);
        let mut m = json!({"upstream_map_indexes": {"a": 1, "b": [2, 3], "c": [], "d": null}});
        let change = CHANGES
            .iter()
            .find(|c| c.name == "DowngradeUpstreamMapIndexes");
        for e in change.map_or(&[][..], |c| c.effects) {
            if let Reply(RunContext, f) = e {
                f(&mut m);
            }
        }
        assert_eq!(
            m["upstream_map_indexes"],
            json!({"a": 1, "b": 2, "c": null, "d": null})
        );
    }

    #[test]
    fn routes_come_and_go_with_their_versions() {
        let keys = "/execution/variables/keys";
        assert!(route_exists(Get, keys, "2026-06-30"));
        assert!(!route_exists(Get, keys, "2026-06-29"));
        let old_prev = "/execution/dag-runs/{dag_id}/previous";
        assert!(!route_exists(Get, old_prev, "2025-08-09"));
        assert!(route_exists(Get, old_prev, "2025-08-10"));
        assert!(route_exists(Get, old_prev, "2026-04-05"));
        assert!(!route_exists(Get, old_prev, "2026-04-06"));
        assert!(!route_exists(Get, "/execution/dags/{dag_id}", "2026-04-05"));
        assert!(route_exists(
            Get,
            "/execution/variables/{variable_key:path}",
            "2025-04-11"
        ));
    }

    #[test]
    fn older_clients_cannot_send_fields_their_models_lacked() {
        let body = br#"{"state": "success", "end_date": "2025-01-01T00:00:00Z", "rendered_map_index": "x"}"#;
        assert!(check_body(Patch, STATE, "2025-04-28", body).is_ok());
        let e = check_body(Patch, STATE, "2025-04-27", body).unwrap_err();
        let reply = e.into_reply();
        assert_eq!(reply.status, 422);
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            v["detail"][0]["loc"],
            json!(["body", "success", "rendered_map_index"])
        );
        assert_eq!(v["detail"][0]["type"], "extra_forbidden");
        let retry = br#"{"state": "up_for_retry", "retry_reason": "r"}"#;
        assert!(check_body(Patch, STATE, "2026-06-30", retry).is_ok());
        assert!(check_body(Patch, STATE, "2026-06-29", retry).is_err());
        let trigger = br#"{"conf": {}, "note": "n"}"#;
        assert!(check_body(Post, TRIGGER, "2026-04-05", trigger).is_err());
        assert!(check_body(Post, TRIGGER, "2026-04-06", trigger).is_ok());
        assert!(check_body(Post, TRIGGER, "2026-04-05", br#"{"conf": {}}"#).is_ok());
    }

    #[test]
    fn include_prior_dates_is_not_read_from_clients_before_2025_08_10() {
        assert_eq!(unknown_query(XCOM, "2025-08-09"), ["include_prior_dates"]);
        assert!(unknown_query(XCOM, "2025-08-10").is_empty());
        assert_eq!(
            unknown_query(XCOM_SLICE, "2025-04-11"),
            ["include_prior_dates"]
        );
    }
}
