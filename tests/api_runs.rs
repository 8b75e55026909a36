//! DAG runs, task instances, logs and XComs through the Core API, against a real
//! `standalone` that runs the DAGs: shapes as Airflow 3.3.2 sends them, filters and
//! paging, state changes by hand, clearing, and bad input answered with 4xx, never 500.

use std::time::Duration;

use serde_json::{Value, json};

use crate::engine::{Engine, dag, task};
use crate::util::{Method, TestServer, USERS, wait_until};

/// Waits for runs and tasks; generous, as CI machines are slow and shared.
const LONG: Duration = Duration::from_secs(90);

/// The fields the Python client requires of a `DAGRunResponse`.
const RUN_FIELDS: &[&str] = &[
    "dag_run_id",
    "dag_id",
    "logical_date",
    "queued_at",
    "start_date",
    "end_date",
    "duration",
    "data_interval_start",
    "data_interval_end",
    "run_after",
    "last_scheduling_decision",
    "run_type",
    "state",
    "triggered_by",
    "triggering_user_name",
    "conf",
    "note",
    "dag_versions",
    "bundle_version",
    "dag_display_name",
    "partition_key",
    "partition_date",
];

/// The fields the Python client requires of a `TaskInstanceResponse`.
const TI_FIELDS: &[&str] = &[
    "id",
    "task_id",
    "dag_id",
    "dag_run_id",
    "map_index",
    "logical_date",
    "run_after",
    "start_date",
    "end_date",
    "duration",
    "state",
    "try_number",
    "max_tries",
    "task_display_name",
    "dag_display_name",
    "hostname",
    "unixname",
    "pool",
    "pool_slots",
    "queue",
    "priority_weight",
    "operator",
    "operator_name",
    "queued_when",
    "scheduled_when",
    "pid",
    "executor",
    "executor_config",
    "note",
    "rendered_map_index",
    "trigger",
    "triggerer_job",
    "dag_version",
];

/// A path segment, percent-encoded (run ids hold `:` and `+`).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn run_path(dag_id: &str, run_id: &str) -> String {
    format!("/api/v2/dags/{dag_id}/dagRuns/{}", enc(run_id))
}

fn ti_path(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!("{}/taskInstances/{task_id}", run_path(dag_id, run_id))
}

fn has_fields(v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(*f).is_some(), "{f} missing from {v}");
    }
}

/// Polls a run through the API until it is success or failed; returns which.
fn wait_run(srv: &TestServer, token: &str, dag_id: &str, run_id: &str) -> String {
    let mut last = Value::Null;
    let done = wait_until(LONG, || {
        let (_, run) = srv.call(token, "GET", &run_path(dag_id, run_id), None);
        last = run;
        matches!(last["state"].as_str(), Some("success" | "failed"))
    });
    assert!(done, "run {run_id} never finished: {last}\n{}", srv.log());
    last["state"].as_str().unwrap_or_default().to_string()
}

/// Waits for a task instance to reach `state`.
fn wait_ti(srv: &TestServer, token: &str, dag_id: &str, run_id: &str, task_id: &str, state: &str) {
    let mut last = Value::Null;
    let done = wait_until(LONG, || {
        let (_, ti) = srv.call(token, "GET", &ti_path(dag_id, run_id, task_id), None);
        last = ti;
        last["state"] == state
    });
    assert!(done, "{task_id} never {state}: {last}\n{}", srv.log());
}

fn trigger(srv: &TestServer, token: &str, dag_id: &str, body: Value) -> Value {
    let (status, run) = srv.call(
        token,
        "POST",
        &format!("/api/v2/dags/{dag_id}/dagRuns"),
        Some(body),
    );
    assert_eq!(status, 200, "{run}");
    run
}

#[test]
fn runs_trigger_list_patch_clear_and_delete() {
    let ok = dag(
        "ok",
        "",
        &[
            task("a", "echo a", ""),
            task("b", "echo hello", "dependencies: [a]"),
        ]
        .concat(),
    );
    let other = dag("other", "", &task("x", "echo x", ""));
    let e = Engine::start(&[("ok.yml", &ok), ("other.yml", &other)], &[USERS]);
    let srv = &e.srv;
    let (user, viewer) = (srv.login("user"), srv.login("viewer"));

    // A viewer may not trigger; a user may, and gets 200 with the whole run.
    let (status, _) = srv.call(
        &viewer,
        "POST",
        "/api/v2/dags/ok/dagRuns",
        Some(json!({"logical_date": null})),
    );
    assert_eq!(status, 403);
    let run = trigger(
        srv,
        &user,
        "ok",
        json!({"logical_date": null, "conf": {"x": 1}}),
    );
    has_fields(&run, RUN_FIELDS);
    assert_eq!(run["conf"], json!({"x": 1}));
    assert_eq!(run["state"], "queued");
    assert_eq!(run["run_type"], "manual");
    assert_eq!(run["triggered_by"], "rest_api");
    assert_eq!(run["triggering_user_name"], "user");
    assert_eq!(run["dag_versions"], json!([]));
    assert_eq!(run["logical_date"], Value::Null);
    let run_id = run["dag_run_id"].as_str().unwrap().to_string();
    assert!(run_id.starts_with("manual__"), "{run_id}");
    assert_eq!(wait_run(srv, &viewer, "ok", &run_id), "success");
    let (_, done) = srv.call(&viewer, "GET", &run_path("ok", &run_id), None);
    assert!(done["duration"].as_f64().unwrap() > 0.0, "{done}");
    assert!(done["end_date"].as_str().unwrap().ends_with('Z'), "{done}");

    // A chosen id, then the same id again: Airflow's 409.
    let dup = trigger(
        srv,
        &user,
        "ok",
        json!({"dag_run_id": "dup_run", "logical_date": "2025-01-01T00:00:00Z", "note": "first"}),
    );
    assert_eq!(dup["conf"], json!({}));
    assert_eq!(dup["note"], "first");
    assert_eq!(dup["logical_date"], "2025-01-01T00:00:00Z");
    assert_eq!(dup["data_interval_end"], "2025-01-01T00:00:00Z");
    let (status, conflict) = srv.call(
        &user,
        "POST",
        "/api/v2/dags/ok/dagRuns",
        Some(json!({"dag_run_id": "dup_run", "logical_date": null})),
    );
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(
        conflict["detail"]["reason"], "Unique constraint violation",
        "{conflict}"
    );
    assert!(
        conflict["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("look for ID")
    );
    let other_run = trigger(srv, &user, "other", json!({"logical_date": null}));
    let other_id = other_run["dag_run_id"].as_str().unwrap().to_string();

    // Malformed bodies: every problem in one pydantic-style 422.
    let (status, bad) = srv.call(
        &user,
        "POST",
        "/api/v2/dags/ok/dagRuns",
        Some(json!({"conf": "not-a-dict", "bogus": 1})),
    );
    assert_eq!(status, 422);
    let kinds: Vec<&str> = bad["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["missing", "dict_type", "extra_forbidden"], "{bad}");
    assert_eq!(bad["detail"][0]["loc"], json!(["body", "logical_date"]));
    let reply = srv
        .request(Method::Post, "/api/v2/dags/ok/dagRuns")
        .token(&user)
        .content_type("application/json")
        .raw(r#"{"logical_date": null, "conf": {"#)
        .send();
    assert_eq!(reply.status, 422, "{}", reply.text);
    let bad = reply.json();
    assert_eq!(bad["detail"][0]["type"], "json_invalid");
    let (status, bad) = srv.call(
        &user,
        "POST",
        "/api/v2/dags/ok/dagRuns",
        Some(json!({"logical_date": "2025-02-01T00:00:00"})),
    );
    assert_eq!(
        (status, bad["detail"][0]["type"].as_str()),
        (422, Some("timezone_aware")),
        "{bad}"
    );
    let (status, bad) = srv.call(
        &user,
        "POST",
        "/api/v2/dags/ok/dagRuns",
        Some(json!({"logical_date": null, "data_interval_start": "2025-01-01T00:00:00Z"})),
    );
    assert_eq!(status, 422, "{bad}");
    let (status, bad) = srv.call(
        &user,
        "POST",
        "/api/v2/dags/ok/dagRuns",
        Some(json!({"logical_date": null, "dag_run_id": "scheduled__mine"})),
    );
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = srv.call(
        &user,
        "POST",
        "/api/v2/dags/nope/dagRuns",
        Some(json!({"logical_date": null})),
    );
    assert_eq!(
        (status, bad["detail"].as_str()),
        (404, Some("Dag with dag_id: 'nope' not found"))
    );

    // Lists: oldest first by default, filters, order, paging, `~` for every DAG.
    let (status, list) = srv.call(&viewer, "GET", "/api/v2/dags/ok/dagRuns", None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_entries"], 2);
    for k in ["total_entries_limit", "next_cursor", "previous_cursor"] {
        assert_eq!(list[k], Value::Null, "{k}");
    }
    let ids: Vec<&str> = list["dag_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dag_run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [run_id.as_str(), "dup_run"]);
    has_fields(&list["dag_runs"][1], RUN_FIELDS);
    let (_, list) = srv.call(&viewer, "GET", "/api/v2/dags/ok/dagRuns?order_by=-id", None);
    assert_eq!(list["dag_runs"][0]["dag_run_id"], "dup_run");
    let (_, list) = srv.call(
        &viewer,
        "GET",
        "/api/v2/dags/ok/dagRuns?run_id_pattern=DUP&limit=5",
        None,
    );
    assert_eq!(list["total_entries"], 1, "{list}");
    let (_, list) = srv.call(
        &viewer,
        "GET",
        "/api/v2/dags/ok/dagRuns?logical_date_gte=2024-12-31T00:00:00Z",
        None,
    );
    assert_eq!(list["total_entries"], 1, "{list}");
    let (_, list) = srv.call(
        &viewer,
        "GET",
        "/api/v2/dags/ok/dagRuns?state=success&state=failed&run_type=manual",
        None,
    );
    assert!(list["total_entries"].as_u64().unwrap() >= 1, "{list}");
    let (_, list) = srv.call(&viewer, "GET", "/api/v2/dags/~/dagRuns?limit=1", None);
    assert_eq!(list["total_entries"], 3, "{list}");
    assert_eq!(list["dag_runs"].as_array().unwrap().len(), 1);
    let (_, list) = srv.call(
        &viewer,
        "GET",
        "/api/v2/dags/~/dagRuns?dag_id_pattern=oth",
        None,
    );
    assert_eq!(list["dag_runs"][0]["dag_run_id"], json!(other_id));
    // Cursor paging walks forward and back.
    let (_, first) = srv.call(
        &viewer,
        "GET",
        "/api/v2/dags/~/dagRuns?limit=2&cursor=",
        None,
    );
    assert_eq!(first["total_entries_limit"], 50000, "{first}");
    assert_eq!(first["previous_cursor"], Value::Null);
    let next = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = srv.call(
        &viewer,
        "GET",
        &format!("/api/v2/dags/~/dagRuns?limit=2&cursor={next}"),
        None,
    );
    assert_eq!(second["dag_runs"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let back = second["previous_cursor"].as_str().unwrap().to_string();
    let (_, again) = srv.call(
        &viewer,
        "GET",
        &format!("/api/v2/dags/~/dagRuns?limit=2&cursor={}", enc(&back)),
        None,
    );
    let ids = |page: &Value| -> Vec<Value> {
        page["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dag_run_id"].clone())
            .collect()
    };
    assert_eq!(ids(&again), ids(&first));
    // Bad query values are 4xx.
    for (q, want) in [
        ("order_by=bogus", 400),
        ("state=bogus", 422),
        ("limit=-1", 422),
        ("logical_date_gte=yesterday", 422),
        ("duration_gt=long", 422),
        ("cursor=%21%21", 400),
        ("partition_date_gte=2024-01-01", 400),
    ] {
        let (status, body) = srv.call(&viewer, "GET", &format!("/api/v2/dags/~/dagRuns?{q}"), None);
        assert_eq!(status, want, "{q}: {body}");
    }
    let (status, _) = srv.call(&viewer, "GET", "/api/v2/dags/nope/dagRuns", None);
    assert_eq!(status, 404);

    // The batch list takes its filters in a body, and only under `~`.
    let (status, list) = srv.call(
        &viewer,
        "POST",
        "/api/v2/dags/~/dagRuns/list",
        Some(json!({"dag_ids": ["ok", "other"], "order_by": "-dag_run_id", "page_limit": 2})),
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_entries"], 3);
    assert_eq!(list["dag_runs"].as_array().unwrap().len(), 2);
    let (_, list) = srv.call(
        &viewer,
        "POST",
        "/api/v2/dags/~/dagRuns/list",
        Some(json!({"dag_ids": ["other"], "states": ["queued", "running", "success", "failed"]})),
    );
    assert_eq!(list["total_entries"], 1, "{list}");
    let (status, bad) = srv.call(
        &viewer,
        "POST",
        "/api/v2/dags/ok/dagRuns/list",
        Some(json!({})),
    );
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("literal_error"))
    );
    let (status, _) = srv.call(
        &viewer,
        "POST",
        "/api/v2/dags/~/dagRuns/list",
        Some(json!({"states": ["bogus"], "page_offset": -1})),
    );
    assert_eq!(status, 422);

    // Patch: note and state; a viewer may not.
    let path = run_path("ok", &run_id);
    let (status, _) = srv.call(&viewer, "PATCH", &path, Some(json!({"note": "x"})));
    assert_eq!(status, 403);
    let (status, patched) = srv.call(&user, "PATCH", &path, Some(json!({"note": "checked"})));
    assert_eq!(
        (status, &patched["note"]),
        (200, &json!("checked")),
        "{patched}"
    );
    let (status, patched) = srv.call(
        &user,
        "PATCH",
        &format!("{path}?update_mask=state"),
        Some(json!({"state": "failed", "note": "ignored"})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["state"], "failed");
    assert_eq!(patched["note"], "checked");
    let (status, bad) = srv.call(&user, "PATCH", &path, Some(json!({"state": "running"})));
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("enum")),
        "{bad}"
    );

    // Clear: a dry run (the default) lists the task instances; a real one re-runs them.
    let clear = format!("{path}/clear");
    let (status, dry) = srv.call(&user, "POST", &clear, Some(json!({})));
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["total_entries"], 2, "{dry}");
    has_fields(&dry["task_instances"][0], TI_FIELDS);
    let (status, cleared) = srv.call(&user, "POST", &clear, Some(json!({"dry_run": false})));
    assert_eq!(status, 200, "{cleared}");
    has_fields(&cleared, RUN_FIELDS);
    // Queued again, unless the scheduler was quicker still.
    assert!(
        ["queued", "running"].contains(&cleared["state"].as_str().unwrap()),
        "{cleared}"
    );
    assert_eq!(cleared["end_date"], Value::Null, "{cleared}");
    assert_eq!(wait_run(srv, &viewer, "ok", &run_id), "success");
    let (_, b) = srv.call(&viewer, "GET", &ti_path("ok", &run_id, "b"), None);
    assert_eq!(
        (b["state"].as_str(), b["try_number"].as_u64()),
        (Some("success"), Some(2)),
        "{b}"
    );
    let (status, _) = srv.call(
        &user,
        "POST",
        &clear,
        Some(json!({"only_failed": true, "only_new": true})),
    );
    assert_eq!(status, 422);

    // Delete: 204, then the run and its task instances are gone.
    let (status, _) = srv.call(&viewer, "DELETE", &path, None);
    assert_eq!(status, 403);
    let (status, body) = srv.call(&user, "DELETE", &path, None);
    assert_eq!((status, body), (204, Value::Null));
    let (status, gone) = srv.call(&viewer, "GET", &path, None);
    assert_eq!(status, 404);
    assert_eq!(
        gone["detail"],
        format!("The DagRun with dag_id: `ok` and run_id: `{run_id}` was not found")
    );
    let (status, _) = srv.call(&viewer, "GET", &ti_path("ok", &run_id, "b"), None);
    assert_eq!(status, 404);
    let (status, _) = srv.call(&user, "DELETE", &path, None);
    assert_eq!(status, 404);
}

#[test]
fn task_instances_tries_logs_xcoms_and_clearing() {
    let tasks = [
        task(
            "flaky",
            "{% if ti.try_number < 2 %}exit 1{% else %}echo second try{% endif %}",
            "retries: 1\nretry_delay: 0",
        ),
        task("b", "echo hello", "dependencies: [flaky]"),
        task("slow", "echo first; sleep 5; echo second", ""),
    ]
    .concat();
    let e = Engine::start(&[("tis.yml", &dag("tis", "", &tasks))], &[USERS]);
    let srv = &e.srv;
    let (user, viewer) = (srv.login("user"), srv.login("viewer"));
    let run = trigger(srv, &user, "tis", json!({"logical_date": null}));
    let run_id = run["dag_run_id"].as_str().unwrap().to_string();

    // Follow the slow task's log while it runs: the token brings only what came after.
    wait_ti(srv, &viewer, "tis", &run_id, "slow", "running");
    let logs = format!("{}/logs/1", ti_path("tis", &run_id, "slow"));
    let mut live = Value::Null;
    let seen = wait_until(LONG, || {
        live = srv.call(&viewer, "GET", &logs, None).1;
        live.to_string().contains("\"first\"")
    });
    assert!(seen, "{live}");
    let token = live["continuation_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token while running: {live}"))
        .to_string();
    assert_eq!(
        live["content"][0]["event"],
        "::group::Log message source details"
    );
    assert!(
        live["content"][3]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{live}"
    );
    assert_eq!(live["content"][3]["level"], "info");
    assert_eq!(wait_run(srv, &viewer, "tis", &run_id), "success");
    let (status, rest) = srv.call(&viewer, "GET", &format!("{logs}?token={token}"), None);
    assert_eq!(status, 200, "{rest}");
    let events: Vec<&str> = rest["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"second"), "{rest}");
    assert!(!events.contains(&"first"), "{rest}");
    assert!(events.contains(&"final state: success"), "{rest}");
    assert_eq!(rest["continuation_token"], Value::Null);
    // The same log as text/plain and as NDJSON; no other format.
    let accept = |kind: &str| {
        srv.request(Method::Get, &logs)
            .token(&viewer)
            .header("Accept", kind)
            .send()
    };
    let reply = accept("text/plain");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "{:?}",
        reply.headers
    );
    let text = reply.text;
    assert!(
        text.starts_with('[') && text.contains("\nfirst\n") && text.contains("\nsecond\n"),
        "{text}"
    );
    let nd = accept("application/x-ndjson");
    assert_eq!(nd.status, 200);
    for line in nd.text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(
            v.get("timestamp").is_some() && v["event"].is_string(),
            "{line}"
        );
    }
    assert_eq!(accept("image/png").status, 406);
    let (status, _) = srv.call(&viewer, "GET", &format!("{logs}?token=forged.token"), None);
    assert_eq!(status, 400);
    let (status, _) = srv.call(
        &viewer,
        "GET",
        &format!("{}/logs/7", ti_path("tis", &run_id, "slow")),
        None,
    );
    assert_eq!(status, 404);
    let (status, _) = srv.call(
        &viewer,
        "GET",
        &format!("{}/logs/one", ti_path("tis", &run_id, "slow")),
        None,
    );
    assert_eq!(status, 422);

    // Task instances: the list and one, with every field the client needs.
    let tis_path = format!("{}/taskInstances", run_path("tis", &run_id));
    let (status, list) = srv.call(&viewer, "GET", &tis_path, None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_entries"], 3);
    for ti in list["task_instances"].as_array().unwrap() {
        has_fields(ti, TI_FIELDS);
        assert_eq!(ti["state"], "success");
        assert_eq!(ti["executor_config"], "{}");
    }
    let (_, list) = srv.call(
        &viewer,
        "GET",
        &format!("{tis_path}?task_display_name_pattern=fla&order_by=-start_date"),
        None,
    );
    assert_eq!(list["total_entries"], 1, "{list}");
    let (_, all) = srv.call(
        &viewer,
        "GET",
        "/api/v2/dags/~/dagRuns/~/taskInstances?state=success&limit=2",
        None,
    );
    assert_eq!(
        (
            all["total_entries"].as_u64(),
            all["task_instances"].as_array().map(Vec::len)
        ),
        (Some(3), Some(2)),
        "{all}"
    );
    let (status, _) = srv.call(
        &viewer,
        "GET",
        &format!("/api/v2/dags/~/dagRuns/{}/taskInstances", enc(&run_id)),
        None,
    );
    assert_eq!(status, 400);
    let (status, b) = srv.call(&viewer, "GET", &ti_path("tis", &run_id, "b"), None);
    assert_eq!(status, 200);
    has_fields(&b, TI_FIELDS);
    assert_eq!(
        b["rendered_fields"],
        json!({"bash_command": "echo hello", "env": null, "cwd": null})
    );
    assert_eq!(
        (b["operator"].as_str(), b["queue"].as_str()),
        (Some("BashOperator"), Some("default"))
    );
    assert!(
        b["id"].as_str().unwrap().len() == 36 && b["pid"].is_i64(),
        "{b}"
    );

    // Tries: the failed first try and the second, in the history shape.
    let (status, tries) = srv.call(
        &viewer,
        "GET",
        &format!("{}/tries", ti_path("tis", &run_id, "flaky")),
        None,
    );
    assert_eq!(status, 200, "{tries}");
    let numbers: Vec<u64> = tries["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["try_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "{tries}");
    assert_eq!(tries["task_instances"][1]["state"], "success");
    assert_ne!(tries["task_instances"][0]["state"], "success");
    for gone in [
        "id",
        "logical_date",
        "run_after",
        "note",
        "rendered_fields",
        "trigger",
    ] {
        assert!(tries["task_instances"][0].get(gone).is_none(), "{gone}");
    }
    let (status, one) = srv.call(
        &viewer,
        "GET",
        &format!("{}/tries/1", ti_path("tis", &run_id, "flaky")),
        None,
    );
    assert_eq!(
        (status, one["try_number"].as_u64()),
        (200, Some(1)),
        "{one}"
    );
    let (status, _) = srv.call(
        &viewer,
        "GET",
        &format!("{}/tries/3", ti_path("tis", &run_id, "flaky")),
        None,
    );
    assert_eq!(status, 404);
    let (_, first_try) = srv.call(
        &viewer,
        "GET",
        &format!("{}/logs/1", ti_path("tis", &run_id, "flaky")),
        None,
    );
    assert!(
        first_try.to_string().contains("final state: up_for_retry"),
        "{first_try}"
    );

    // XComs: BashOperator's return value, listed without its value and read with it.
    let (status, xs) = srv.call(
        &viewer,
        "GET",
        &format!("{}/xcomEntries", ti_path("tis", &run_id, "b")),
        None,
    );
    assert_eq!(status, 200, "{xs}");
    assert_eq!(xs["total_entries"], 1);
    let entry = &xs["xcom_entries"][0];
    let keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "key",
            "timestamp",
            "logical_date",
            "map_index",
            "task_id",
            "dag_id",
            "run_id",
            "dag_display_name",
            "task_display_name",
            "run_after"
        ]
    );
    let xcom = format!("{}/xcomEntries/return_value", ti_path("tis", &run_id, "b"));
    let (status, x) = srv.call(&viewer, "GET", &xcom, None);
    assert_eq!((status, &x["value"]), (200, &json!("hello")), "{x}");
    let (_, x) = srv.call(
        &viewer,
        "GET",
        &format!("{xcom}?stringify=true&deserialize=true"),
        None,
    );
    assert_eq!(x["value"], "hello");
    let (status, _) = srv.call(
        &viewer,
        "GET",
        &format!("{}/xcomEntries/nope", ti_path("tis", &run_id, "b")),
        None,
    );
    assert_eq!(status, 404);
    let (_, every) = srv.call(
        &viewer,
        "GET",
        "/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries",
        None,
    );
    assert_eq!(every["total_entries"], 3, "{every}");
    assert_eq!(every["xcom_entries"][0]["task_id"], "b", "{every}");

    // Set a state by hand: a viewer may not; a user gets the task instance back.
    let b_path = ti_path("tis", &run_id, "b");
    let (status, _) = srv.call(
        &viewer,
        "PATCH",
        &b_path,
        Some(json!({"new_state": "failed"})),
    );
    assert_eq!(status, 403);
    let (status, dry) = srv.call(
        &user,
        "PATCH",
        &format!("{b_path}/dry_run"),
        Some(json!({"new_state": "failed", "include_upstream": true})),
    );
    assert_eq!(
        (status, dry["total_entries"].as_u64()),
        (200, Some(2)),
        "{dry}"
    );
    let (status, bad) = srv.call(
        &user,
        "PATCH",
        &b_path,
        Some(json!({"new_state": "running"})),
    );
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("value_error")),
        "{bad}"
    );
    let (status, patched) = srv.call(
        &user,
        "PATCH",
        &b_path,
        Some(json!({"new_state": "failed", "note": "broken by hand"})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["total_entries"], 1);
    assert_eq!(patched["task_instances"][0]["state"], "failed");
    assert_eq!(patched["task_instances"][0]["note"], "broken by hand");
    let (status, _) = srv.call(
        &user,
        "PATCH",
        &b_path,
        Some(json!({"new_state": "failed"})),
    );
    assert_eq!(status, 409);
    assert_eq!(wait_run(srv, &viewer, "tis", &run_id), "failed");

    // clearTaskInstances: a dry run lists, a real one runs the task again.
    let clear = "/api/v2/dags/tis/clearTaskInstances";
    let (status, dry) = srv.call(
        &user,
        "POST",
        clear,
        Some(json!({"dag_run_id": run_id, "task_ids": ["b"]})),
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["total_entries"], 1);
    assert_eq!(dry["task_instances"][0]["state"], "failed");
    let (status, _) = srv.call(
        &viewer,
        "POST",
        clear,
        Some(json!({"dag_run_id": run_id, "dry_run": false})),
    );
    assert_eq!(status, 403);
    let (status, bad) = srv.call(
        &user,
        "POST",
        clear,
        Some(json!({"only_failed": true, "only_running": true})),
    );
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("value_error")),
        "{bad}"
    );
    let (status, done) = srv.call(
        &user,
        "POST",
        clear,
        Some(json!({"dag_run_id": run_id, "task_ids": ["b"], "dry_run": false})),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["total_entries"], 1);
    assert_eq!(wait_run(srv, &viewer, "tis", &run_id), "success");
    let (_, b) = srv.call(&viewer, "GET", &b_path, None);
    assert_eq!(
        (b["state"].as_str(), b["try_number"].as_u64()),
        (Some("success"), Some(2)),
        "{b}"
    );
    let (status, _) = srv.call(
        &user,
        "POST",
        "/api/v2/dags/nope/clearTaskInstances",
        Some(json!({})),
    );
    assert_eq!(status, 404);

    // Bad input of every kind is a 4xx, never a 500.
    let long = "x".repeat(1001);
    let runs = "/api/v2/dags/tis/dagRuns";
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("{tis_path}?state=bogus"), None),
        ("GET", format!("{tis_path}?order_by=task_id"), None),
        ("GET", format!("{tis_path}?try_number=x"), None),
        ("GET", format!("{tis_path}?duration_lt=nan"), None),
        ("GET", format!("{tis_path}?start_date_gte=soon"), None),
        ("GET", format!("{logs}?full_content=maybe"), None),
        ("GET", format!("{logs}?map_index=-5"), None),
        ("GET", format!("{xcom}?map_index=x"), None),
        ("GET", format!("{xcom}?stringify=perhaps"), None),
        ("GET", format!("{}/tries/-1", b_path), None),
        ("PATCH", b_path.clone(), Some(json!({"new_state": 5}))),
        ("PATCH", b_path.clone(), Some(json!({"new_state": null}))),
        ("PATCH", b_path.clone(), Some(json!({"note": long}))),
        ("PATCH", b_path.clone(), Some(json!([1, 2]))),
        (
            "PATCH",
            format!("{}/taskInstances/nope", run_path("tis", &run_id)),
            Some(json!({"new_state": "success"})),
        ),
        (
            "POST",
            clear.to_string(),
            Some(json!({"task_ids": [1, ["b", "x"]]})),
        ),
        ("POST", clear.to_string(), Some(json!({"task_ids": []}))),
        (
            "POST",
            clear.to_string(),
            Some(json!({"start_date": "2025-01-01T00:00:00"})),
        ),
        (
            "POST",
            clear.to_string(),
            Some(json!({"dag_run_id": "nope"})),
        ),
        (
            "POST",
            clear.to_string(),
            Some(json!({"dag_run_id": run_id, "include_past": true})),
        ),
        (
            "POST",
            clear.to_string(),
            Some(json!({"start_date": "2025-02-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"})),
        ),
        (
            "POST",
            runs.to_string(),
            Some(json!({"logical_date": null, "conf": [], "run_after": "later"})),
        ),
        (
            "POST",
            runs.to_string(),
            Some(json!({"logical_date": null, "dag_run_id": "a/../b"})),
        ),
        (
            "POST",
            runs.to_string(),
            Some(json!({"logical_date": null, "partition_key": "p"})),
        ),
        (
            "POST",
            format!("{runs}/list"),
            Some(json!({"dag_ids": [1], "order_by": "nope"})),
        ),
        (
            "POST",
            "/api/v2/dags/~/dagRuns/list".to_string(),
            Some(json!({"order_by": "nope"})),
        ),
        (
            "PATCH",
            run_path("tis", &run_id),
            Some(json!({"bogus": true})),
        ),
        (
            "POST",
            format!("{}/clear", run_path("tis", &run_id)),
            Some(json!({"dry_run": "yes"})),
        ),
    ];
    for (method, path, body) in cases {
        let (status, reply) = srv.call(&user, method, &path, body.clone());
        assert!(
            (400..500).contains(&status),
            "{method} {path} {body:?}: {status} {reply}"
        );
    }
}

#[test]
fn run_ids_are_held_to_airflows_id_len_and_one_at_the_limit_runs() {
    let e = Engine::start(
        &[("lim.yml", &dag("lim", "", &task("t", "echo ok", "")))],
        &[USERS],
    );
    let srv = &e.srv;
    let user = srv.login("user");
    let post = |run_id: &str| {
        srv.call(
            &user,
            "POST",
            "/api/v2/dags/lim/dagRuns",
            Some(json!({"dag_run_id": run_id, "logical_date": null})),
        )
    };
    let (status, body) = post(&"r".repeat(100_000));
    assert_eq!(status, 400, "{}", &body.to_string()[..200]);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("run_id") && detail.contains("100000") && detail.contains("250"),
        "{detail}"
    );
    assert!(
        detail.len() < 200,
        "the reply echoes the id: {}",
        detail.len()
    );
    let (status, _) = post(&"r".repeat(251));
    assert_eq!(status, 400);
    let (_, runs) = srv.call(&user, "GET", "/api/v2/dags/lim/dagRuns", None);
    assert_eq!(runs["total_entries"], 0, "{runs}");
    // At the limit, the run and its log work, though `run_id=` and 250 characters are
    // more than a file name holds.
    let at_limit = "r".repeat(250);
    let (status, body) = post(&at_limit);
    assert_eq!(status, 200, "{body}");
    assert_eq!(wait_run(srv, &user, "lim", &at_limit), "success");
    let (status, log) = srv.call(
        &user,
        "GET",
        &format!("{}/logs/1", ti_path("lim", &at_limit, "t")),
        None,
    );
    assert_eq!(status, 200, "{log}");
    assert!(log.to_string().contains("ok"), "{log}");
}
