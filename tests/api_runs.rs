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
        let (_, run) = srv.call(token, Method::Get, &run_path(dag_id, run_id), None);
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
        let (_, ti) = srv.call(token, Method::Get, &ti_path(dag_id, run_id, task_id), None);
        last = ti;
        last["state"] == state
    });
    assert!(done, "{task_id} never {state}: {last}\n{}", srv.log());
}

fn trigger(srv: &TestServer, token: &str, dag_id: &str, body: Value) -> Value {
    let (status, run) = srv.call(
        token,
        Method::Post,
        &format!("/api/v2/dags/{dag_id}/dagRuns"),
        Some(body),
    );
    assert_eq!(status, 200, "{run}");
    run
}

/// A standalone running some DAGs, with users of every role, and the user's and the
/// viewer's tokens. Each test starts its own, so its runs are the only ones it sees.
struct Fixture {
    e: Engine,
    user: String,
    viewer: String,
}

impl Fixture {
    fn start(files: &[(&str, &str)]) -> Fixture {
        let e = Engine::start(files, &[USERS]);
        let (user, viewer) = (e.srv.login("user"), e.srv.login("viewer"));
        Fixture { e, user, viewer }
    }

    /// `ok` (a, then b echoing hello) and `other` (x).
    fn ok_and_other() -> Fixture {
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
        Fixture::start(&[("ok.yml", &ok), ("other.yml", &other)])
    }

    /// `tis`: flaky (fails its first try), b after it echoing hello, and slow, which
    /// echoes "first", sleeps `pause` seconds, then echoes "second".
    fn tis(pause: u32) -> Fixture {
        let tasks = [
            task(
                "flaky",
                "{% if ti.try_number < 2 %}exit 1{% else %}echo second try{% endif %}",
                "retries: 1\nretry_delay: 0",
            ),
            task("b", "echo hello", "dependencies: [flaky]"),
            task(
                "slow",
                &format!("echo first; sleep {pause}; echo second"),
                "",
            ),
        ]
        .concat();
        Fixture::start(&[("tis.yml", &dag("tis", "", &tasks))])
    }

    fn srv(&self) -> &TestServer {
        &self.e.srv
    }

    /// A manual run of `dag_id` triggered by the user, waited for until it succeeded.
    fn finished_run(&self, dag_id: &str) -> String {
        let run = trigger(
            self.srv(),
            &self.user,
            dag_id,
            json!({"logical_date": null}),
        );
        let run_id = run["dag_run_id"].as_str().unwrap().to_string();
        assert_eq!(
            wait_run(self.srv(), &self.viewer, dag_id, &run_id),
            "success"
        );
        run_id
    }

    /// The runs the list tests read: a finished manual run of `ok` (its id returned
    /// first), `dup_run` of `ok` with a logical date, and a run of `other` (its id second).
    fn three_runs(&self) -> (String, String) {
        let run_id = self.finished_run("ok");
        trigger(
            self.srv(),
            &self.user,
            "ok",
            json!({"dag_run_id": "dup_run", "logical_date": "2025-01-01T00:00:00Z"}),
        );
        let other = trigger(
            self.srv(),
            &self.user,
            "other",
            json!({"logical_date": null}),
        );
        (run_id, other["dag_run_id"].as_str().unwrap().to_string())
    }
}

#[test]
fn a_user_triggers_a_run_and_a_viewer_may_not() {
    let f = Fixture::ok_and_other();
    let (srv, user, viewer) = (f.srv(), &f.user, &f.viewer);
    // A viewer may not trigger; a user may, and gets 200 with the whole run.
    let (status, _) = srv.call(
        viewer,
        Method::Post,
        "/api/v2/dags/ok/dagRuns",
        Some(json!({"logical_date": null})),
    );
    assert_eq!(status, 403);
    let run = trigger(
        srv,
        user,
        "ok",
        json!({"logical_date": null, "conf": {"x": 1}}),
    );
    has_fields(&run, RUN_FIELDS);
    assert_eq!(run["conf"], json!({"x": 1}));
    assert_eq!(run["state"], "queued");
    assert_eq!(run["run_type"], "manual");
    assert_eq!(run["triggered_by"], "rest_api");
    assert_eq!(run["triggering_user_name"], "user");
    assert_eq!(run["dag_versions"][0]["version_number"], 1, "{run}");
    assert_eq!(run["logical_date"], Value::Null);
    let run_id = run["dag_run_id"].as_str().unwrap().to_string();
    assert!(run_id.starts_with("manual__"), "{run_id}");
    assert_eq!(wait_run(srv, viewer, "ok", &run_id), "success");
    let (_, done) = srv.call(viewer, Method::Get, &run_path("ok", &run_id), None);
    assert!(done["duration"].as_f64().unwrap() > 0.0, "{done}");
    assert!(done["end_date"].as_str().unwrap().ends_with('Z'), "{done}");
}

#[test]
fn a_chosen_run_id_is_kept_and_taking_it_again_is_a_409() {
    let f = Fixture::ok_and_other();
    let (srv, user) = (f.srv(), &f.user);
    let dup = trigger(
        srv,
        user,
        "ok",
        json!({"dag_run_id": "dup_run", "logical_date": "2025-01-01T00:00:00Z", "note": "first"}),
    );
    assert_eq!(dup["conf"], json!({}));
    assert_eq!(dup["note"], "first");
    assert_eq!(dup["logical_date"], "2025-01-01T00:00:00Z");
    assert_eq!(dup["data_interval_end"], "2025-01-01T00:00:00Z");
    let (status, conflict) = srv.call(
        user,
        Method::Post,
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
}

#[test]
fn malformed_trigger_bodies_are_refused_with_airflows_status() {
    let f = Fixture::ok_and_other();
    let (srv, user) = (f.srv(), &f.user);
    // Every problem in one pydantic-style 422.
    let (status, bad) = srv.call(
        user,
        Method::Post,
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
    // Text that is not JSON at all.
    let reply = srv
        .request(Method::Post, "/api/v2/dags/ok/dagRuns")
        .token(user)
        .content_type("application/json")
        .raw(r#"{"logical_date": null, "conf": {"#)
        .send();
    assert_eq!(reply.status, 422, "{}", reply.text);
    let bad = reply.json();
    assert_eq!(bad["detail"][0]["type"], "json_invalid");
    // Well-formed JSON with a wrong value: (body, status, the first error's type).
    for (body, want, kind) in [
        (
            json!({"logical_date": "2025-02-01T00:00:00"}),
            422,
            Some("timezone_aware"),
        ),
        (
            json!({"logical_date": null, "data_interval_start": "2025-01-01T00:00:00Z"}),
            422,
            None,
        ),
        (
            json!({"logical_date": null, "dag_run_id": "scheduled__mine"}),
            400,
            None,
        ),
    ] {
        let (status, bad) = srv.call(
            user,
            Method::Post,
            "/api/v2/dags/ok/dagRuns",
            Some(body.clone()),
        );
        assert_eq!(status, want, "{body}: {bad}");
        if let Some(kind) = kind {
            assert_eq!(bad["detail"][0]["type"].as_str(), Some(kind), "{bad}");
        }
    }
    let (status, bad) = srv.call(
        user,
        Method::Post,
        "/api/v2/dags/nope/dagRuns",
        Some(json!({"logical_date": null})),
    );
    assert_eq!(
        (status, bad["detail"].as_str()),
        (404, Some("Dag with dag_id: 'nope' not found"))
    );
    // Nothing of the above made a run.
    let (_, list) = srv.call(user, Method::Get, "/api/v2/dags/~/dagRuns", None);
    assert_eq!(list["total_entries"], 0, "{list}");
}

#[test]
fn run_lists_filter_order_and_page_like_airflow() {
    let f = Fixture::ok_and_other();
    let (srv, viewer) = (f.srv(), &f.viewer);
    let (run_id, other_id) = f.three_runs();
    // Oldest first by default, filters, order, paging, `~` for every DAG.
    let (status, list) = srv.call(viewer, Method::Get, "/api/v2/dags/ok/dagRuns", None);
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
    let (_, list) = srv.call(
        viewer,
        Method::Get,
        "/api/v2/dags/ok/dagRuns?order_by=-id",
        None,
    );
    assert_eq!(list["dag_runs"][0]["dag_run_id"], "dup_run");
    for query in [
        "run_id_pattern=DUP&limit=5",
        "logical_date_gte=2024-12-31T00:00:00Z",
    ] {
        let (_, list) = srv.call(
            viewer,
            Method::Get,
            &format!("/api/v2/dags/ok/dagRuns?{query}"),
            None,
        );
        assert_eq!(list["total_entries"], 1, "{query}: {list}");
    }
    let (_, list) = srv.call(
        viewer,
        Method::Get,
        "/api/v2/dags/ok/dagRuns?state=success&state=failed&run_type=manual",
        None,
    );
    assert!(list["total_entries"].as_u64().unwrap() >= 1, "{list}");
    let (_, list) = srv.call(viewer, Method::Get, "/api/v2/dags/~/dagRuns?limit=1", None);
    assert_eq!(list["total_entries"], 3, "{list}");
    assert_eq!(list["dag_runs"].as_array().unwrap().len(), 1);
    let (_, list) = srv.call(
        viewer,
        Method::Get,
        "/api/v2/dags/~/dagRuns?dag_id_pattern=oth",
        None,
    );
    assert_eq!(list["dag_runs"][0]["dag_run_id"], json!(other_id));
    // Cursor paging walks forward and back.
    let (_, first) = srv.call(
        viewer,
        Method::Get,
        "/api/v2/dags/~/dagRuns?limit=2&cursor=",
        None,
    );
    assert_eq!(first["total_entries_limit"], 50000, "{first}");
    assert_eq!(first["previous_cursor"], Value::Null);
    let next = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = srv.call(
        viewer,
        Method::Get,
        &format!("/api/v2/dags/~/dagRuns?limit=2&cursor={next}"),
        None,
    );
    assert_eq!(second["dag_runs"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let back = second["previous_cursor"].as_str().unwrap().to_string();
    let (_, again) = srv.call(
        viewer,
        Method::Get,
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
}

#[test]
fn the_batch_run_list_takes_its_filters_in_a_body() {
    let f = Fixture::ok_and_other();
    let (srv, viewer) = (f.srv(), &f.viewer);
    f.three_runs();
    let (status, list) = srv.call(
        viewer,
        Method::Post,
        "/api/v2/dags/~/dagRuns/list",
        Some(json!({"dag_ids": ["ok", "other"], "order_by": "-dag_run_id", "page_limit": 2})),
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_entries"], 3);
    assert_eq!(list["dag_runs"].as_array().unwrap().len(), 2);
    let (_, list) = srv.call(
        viewer,
        Method::Post,
        "/api/v2/dags/~/dagRuns/list",
        Some(json!({"dag_ids": ["other"], "states": ["queued", "running", "success", "failed"]})),
    );
    assert_eq!(list["total_entries"], 1, "{list}");
}

#[test]
fn bad_run_list_queries_and_bodies_are_4xx() {
    let f = Fixture::ok_and_other();
    let (srv, viewer) = (f.srv(), &f.viewer);
    for (q, want) in [
        ("order_by=bogus", 400),
        ("state=bogus", 422),
        ("limit=-1", 422),
        ("logical_date_gte=yesterday", 422),
        ("duration_gt=long", 422),
        ("cursor=%21%21", 400),
        ("partition_date_gte=2024-01-01", 400),
    ] {
        let (status, body) = srv.call(
            viewer,
            Method::Get,
            &format!("/api/v2/dags/~/dagRuns?{q}"),
            None,
        );
        assert_eq!(status, want, "{q}: {body}");
    }
    let (status, _) = srv.call(viewer, Method::Get, "/api/v2/dags/nope/dagRuns", None);
    assert_eq!(status, 404);
    // The batch list is only under `~`.
    let (status, bad) = srv.call(
        viewer,
        Method::Post,
        "/api/v2/dags/ok/dagRuns/list",
        Some(json!({})),
    );
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("literal_error"))
    );
    let (status, _) = srv.call(
        viewer,
        Method::Post,
        "/api/v2/dags/~/dagRuns/list",
        Some(json!({"states": ["bogus"], "page_offset": -1})),
    );
    assert_eq!(status, 422);
}

#[test]
fn patching_a_run_sets_its_note_and_state() {
    let f = Fixture::ok_and_other();
    let (srv, user, viewer) = (f.srv(), &f.user, &f.viewer);
    let path = run_path("ok", &f.finished_run("ok"));
    // A viewer may not.
    let (status, _) = srv.call(viewer, Method::Patch, &path, Some(json!({"note": "x"})));
    assert_eq!(status, 403);
    let (status, patched) = srv.call(user, Method::Patch, &path, Some(json!({"note": "checked"})));
    assert_eq!(
        (status, &patched["note"]),
        (200, &json!("checked")),
        "{patched}"
    );
    let (status, patched) = srv.call(
        user,
        Method::Patch,
        &format!("{path}?update_mask=state"),
        Some(json!({"state": "failed", "note": "ignored"})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["state"], "failed");
    assert_eq!(patched["note"], "checked");
    let (status, bad) = srv.call(
        user,
        Method::Patch,
        &path,
        Some(json!({"state": "running"})),
    );
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("enum")),
        "{bad}"
    );
}

#[test]
fn clearing_a_run_lists_its_tasks_then_runs_them_again() {
    let f = Fixture::ok_and_other();
    let (srv, user, viewer) = (f.srv(), &f.user, &f.viewer);
    let run_id = f.finished_run("ok");
    // A dry run (the default) lists the task instances; a real one re-runs them.
    let clear = format!("{}/clear", run_path("ok", &run_id));
    let (status, dry) = srv.call(user, Method::Post, &clear, Some(json!({})));
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["total_entries"], 2, "{dry}");
    has_fields(&dry["task_instances"][0], TI_FIELDS);
    let (status, cleared) = srv.call(user, Method::Post, &clear, Some(json!({"dry_run": false})));
    assert_eq!(status, 200, "{cleared}");
    has_fields(&cleared, RUN_FIELDS);
    // Queued again, unless the scheduler was quicker still.
    assert!(
        ["queued", "running"].contains(&cleared["state"].as_str().unwrap()),
        "{cleared}"
    );
    assert_eq!(cleared["end_date"], Value::Null, "{cleared}");
    assert_eq!(wait_run(srv, viewer, "ok", &run_id), "success");
    let (_, b) = srv.call(viewer, Method::Get, &ti_path("ok", &run_id, "b"), None);
    assert_eq!(
        (b["state"].as_str(), b["try_number"].as_u64()),
        (Some("success"), Some(2)),
        "{b}"
    );
    let (status, _) = srv.call(
        user,
        Method::Post,
        &clear,
        Some(json!({"only_failed": true, "only_new": true})),
    );
    assert_eq!(status, 422);
}

#[test]
fn deleting_a_run_removes_it_and_its_task_instances() {
    let f = Fixture::ok_and_other();
    let (srv, user, viewer) = (f.srv(), &f.user, &f.viewer);
    let run_id = f.finished_run("ok");
    let path = run_path("ok", &run_id);
    let (status, _) = srv.call(viewer, Method::Delete, &path, None);
    assert_eq!(status, 403);
    let (status, body) = srv.call(user, Method::Delete, &path, None);
    assert_eq!((status, body), (204, Value::Null));
    let (status, gone) = srv.call(viewer, Method::Get, &path, None);
    assert_eq!(status, 404);
    assert_eq!(
        gone["detail"],
        format!("The DagRun with dag_id: `ok` and run_id: `{run_id}` was not found")
    );
    let (status, _) = srv.call(viewer, Method::Get, &ti_path("ok", &run_id, "b"), None);
    assert_eq!(status, 404);
    let (status, _) = srv.call(user, Method::Delete, &path, None);
    assert_eq!(status, 404);
}

#[test]
fn a_running_tasks_log_is_followed_with_a_continuation_token() {
    let f = Fixture::tis(5);
    let (srv, user, viewer) = (f.srv(), &f.user, &f.viewer);
    let run = trigger(srv, user, "tis", json!({"logical_date": null}));
    let run_id = run["dag_run_id"].as_str().unwrap().to_string();
    // Follow the slow task's log while it runs: the token brings only what came after.
    wait_ti(srv, viewer, "tis", &run_id, "slow", "running");
    let logs = format!("{}/logs/1", ti_path("tis", &run_id, "slow"));
    let mut live = Value::Null;
    let seen = wait_until(LONG, || {
        live = srv.call(viewer, Method::Get, &logs, None).1;
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
    assert_eq!(wait_run(srv, viewer, "tis", &run_id), "success");
    let (status, rest) = srv.call(viewer, Method::Get, &format!("{logs}?token={token}"), None);
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
}

#[test]
fn a_log_comes_as_json_text_or_ndjson_and_bad_log_requests_are_4xx() {
    let f = Fixture::tis(0);
    let (srv, viewer) = (f.srv(), &f.viewer);
    let run_id = f.finished_run("tis");
    let logs = format!("{}/logs/1", ti_path("tis", &run_id, "slow"));
    // The same log as text/plain and as NDJSON; no other format.
    let accept = |kind: &str| {
        srv.request(Method::Get, &logs)
            .token(viewer)
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
    // (path after the task instance, status)
    for (tail, want) in [
        ("logs/1?token=forged.token", 400),
        ("logs/7", 404),
        ("logs/one", 422),
    ] {
        let path = format!("{}/{tail}", ti_path("tis", &run_id, "slow"));
        let (status, body) = srv.call(viewer, Method::Get, &path, None);
        assert_eq!(status, want, "{tail}: {body}");
    }
}

#[test]
fn task_instances_list_and_read_with_every_field_the_client_needs() {
    let f = Fixture::tis(0);
    let (srv, viewer) = (f.srv(), &f.viewer);
    let run_id = f.finished_run("tis");
    let tis_path = format!("{}/taskInstances", run_path("tis", &run_id));
    let (status, list) = srv.call(viewer, Method::Get, &tis_path, None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_entries"], 3);
    for ti in list["task_instances"].as_array().unwrap() {
        has_fields(ti, TI_FIELDS);
        assert_eq!(ti["state"], "success");
        assert_eq!(ti["executor_config"], "{}");
    }
    let (_, list) = srv.call(
        viewer,
        Method::Get,
        &format!("{tis_path}?task_display_name_pattern=fla&order_by=-start_date"),
        None,
    );
    assert_eq!(list["total_entries"], 1, "{list}");
    let (_, all) = srv.call(
        viewer,
        Method::Get,
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
        viewer,
        Method::Get,
        &format!("/api/v2/dags/~/dagRuns/{}/taskInstances", enc(&run_id)),
        None,
    );
    assert_eq!(status, 400);
    let (status, b) = srv.call(viewer, Method::Get, &ti_path("tis", &run_id, "b"), None);
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
}

#[test]
fn tries_keep_the_failed_first_try_in_the_history_shape() {
    let f = Fixture::tis(0);
    let (srv, viewer) = (f.srv(), &f.viewer);
    let run_id = f.finished_run("tis");
    let flaky = ti_path("tis", &run_id, "flaky");
    let (status, tries) = srv.call(viewer, Method::Get, &format!("{flaky}/tries"), None);
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
    let (status, one) = srv.call(viewer, Method::Get, &format!("{flaky}/tries/1"), None);
    assert_eq!(
        (status, one["try_number"].as_u64()),
        (200, Some(1)),
        "{one}"
    );
    let (status, _) = srv.call(viewer, Method::Get, &format!("{flaky}/tries/3"), None);
    assert_eq!(status, 404);
    let (_, first_try) = srv.call(viewer, Method::Get, &format!("{flaky}/logs/1"), None);
    assert!(
        first_try.to_string().contains("final state: up_for_retry"),
        "{first_try}"
    );
}

#[test]
fn xcoms_hold_the_bash_return_value_listed_without_it_and_read_with_it() {
    let f = Fixture::tis(0);
    let (srv, viewer) = (f.srv(), &f.viewer);
    let run_id = f.finished_run("tis");
    let b_path = ti_path("tis", &run_id, "b");
    let (status, xs) = srv.call(viewer, Method::Get, &format!("{b_path}/xcomEntries"), None);
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
    let xcom = format!("{b_path}/xcomEntries/return_value");
    let (status, x) = srv.call(viewer, Method::Get, &xcom, None);
    assert_eq!((status, &x["value"]), (200, &json!("hello")), "{x}");
    let (_, x) = srv.call(
        viewer,
        Method::Get,
        &format!("{xcom}?stringify=true&deserialize=true"),
        None,
    );
    assert_eq!(x["value"], "hello");
    let (status, _) = srv.call(
        viewer,
        Method::Get,
        &format!("{b_path}/xcomEntries/nope"),
        None,
    );
    assert_eq!(status, 404);
    let (_, every) = srv.call(
        viewer,
        Method::Get,
        "/api/v2/dags/~/dagRuns/~/taskInstances/~/xcomEntries",
        None,
    );
    assert_eq!(every["total_entries"], 3, "{every}");
    assert_eq!(every["xcom_entries"][0]["task_id"], "b", "{every}");
}

#[test]
fn a_task_state_set_by_hand_comes_back_and_decides_the_run() {
    let f = Fixture::tis(0);
    let (srv, user, viewer) = (f.srv(), &f.user, &f.viewer);
    let run_id = f.finished_run("tis");
    // A viewer may not; a user gets the task instance back.
    let b_path = ti_path("tis", &run_id, "b");
    let (status, _) = srv.call(
        viewer,
        Method::Patch,
        &b_path,
        Some(json!({"new_state": "failed"})),
    );
    assert_eq!(status, 403);
    let (status, dry) = srv.call(
        user,
        Method::Patch,
        &format!("{b_path}/dry_run"),
        Some(json!({"new_state": "failed", "include_upstream": true})),
    );
    assert_eq!(
        (status, dry["total_entries"].as_u64()),
        (200, Some(2)),
        "{dry}"
    );
    let (status, bad) = srv.call(
        user,
        Method::Patch,
        &b_path,
        Some(json!({"new_state": "running"})),
    );
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("value_error")),
        "{bad}"
    );
    let (status, patched) = srv.call(
        user,
        Method::Patch,
        &b_path,
        Some(json!({"new_state": "failed", "note": "broken by hand"})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["total_entries"], 1);
    assert_eq!(patched["task_instances"][0]["state"], "failed");
    assert_eq!(patched["task_instances"][0]["note"], "broken by hand");
    let (status, _) = srv.call(
        user,
        Method::Patch,
        &b_path,
        Some(json!({"new_state": "failed"})),
    );
    assert_eq!(status, 409);
    assert_eq!(wait_run(srv, viewer, "tis", &run_id), "failed");
}

#[test]
fn clear_task_instances_lists_then_runs_a_failed_task_again() {
    let f = Fixture::tis(0);
    let (srv, user, viewer) = (f.srv(), &f.user, &f.viewer);
    let run_id = f.finished_run("tis");
    let b_path = ti_path("tis", &run_id, "b");
    let (status, failed) = srv.call(
        user,
        Method::Patch,
        &b_path,
        Some(json!({"new_state": "failed"})),
    );
    assert_eq!(status, 200, "{failed}");
    assert_eq!(wait_run(srv, viewer, "tis", &run_id), "failed");
    // A dry run lists, a real one runs the task again.
    let clear = "/api/v2/dags/tis/clearTaskInstances";
    let (status, dry) = srv.call(
        user,
        Method::Post,
        clear,
        Some(json!({"dag_run_id": run_id, "task_ids": ["b"]})),
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["total_entries"], 1);
    assert_eq!(dry["task_instances"][0]["state"], "failed");
    let (status, _) = srv.call(
        viewer,
        Method::Post,
        clear,
        Some(json!({"dag_run_id": run_id, "dry_run": false})),
    );
    assert_eq!(status, 403);
    let (status, bad) = srv.call(
        user,
        Method::Post,
        clear,
        Some(json!({"only_failed": true, "only_running": true})),
    );
    assert_eq!(
        (status, &bad["detail"][0]["type"]),
        (422, &json!("value_error")),
        "{bad}"
    );
    let (status, done) = srv.call(
        user,
        Method::Post,
        clear,
        Some(json!({"dag_run_id": run_id, "task_ids": ["b"], "dry_run": false})),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["total_entries"], 1);
    assert_eq!(wait_run(srv, viewer, "tis", &run_id), "success");
    let (_, b) = srv.call(viewer, Method::Get, &b_path, None);
    assert_eq!(
        (b["state"].as_str(), b["try_number"].as_u64()),
        (Some("success"), Some(2)),
        "{b}"
    );
    let (status, _) = srv.call(
        user,
        Method::Post,
        "/api/v2/dags/nope/clearTaskInstances",
        Some(json!({})),
    );
    assert_eq!(status, 404);
}

#[test]
fn bad_task_instance_input_of_every_kind_is_a_4xx_never_a_500() {
    use Method::{Get, Patch, Post};
    let f = Fixture::tis(0);
    let (srv, user) = (f.srv(), &f.user);
    let run_id = f.finished_run("tis");
    let tis_path = format!("{}/taskInstances", run_path("tis", &run_id));
    let logs = format!("{}/logs/1", ti_path("tis", &run_id, "slow"));
    let b_path = ti_path("tis", &run_id, "b");
    let xcom = format!("{b_path}/xcomEntries/return_value");
    let clear = "/api/v2/dags/tis/clearTaskInstances";
    let long = "x".repeat(1001);
    let runs = "/api/v2/dags/tis/dagRuns";
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Get, format!("{tis_path}?state=bogus"), None),
        (Get, format!("{tis_path}?order_by=task_id"), None),
        (Get, format!("{tis_path}?try_number=x"), None),
        (Get, format!("{tis_path}?duration_lt=nan"), None),
        (Get, format!("{tis_path}?start_date_gte=soon"), None),
        (Get, format!("{logs}?full_content=maybe"), None),
        (Get, format!("{logs}?map_index=-5"), None),
        (Get, format!("{xcom}?map_index=x"), None),
        (Get, format!("{xcom}?stringify=perhaps"), None),
        (Get, format!("{}/tries/-1", b_path), None),
        (Patch, b_path.clone(), Some(json!({"new_state": 5}))),
        (Patch, b_path.clone(), Some(json!({"new_state": null}))),
        (Patch, b_path.clone(), Some(json!({"note": long}))),
        (Patch, b_path.clone(), Some(json!([1, 2]))),
        (
            Patch,
            format!("{}/taskInstances/nope", run_path("tis", &run_id)),
            Some(json!({"new_state": "success"})),
        ),
        (
            Post,
            clear.to_string(),
            Some(json!({"task_ids": [1, ["b", "x"]]})),
        ),
        (Post, clear.to_string(), Some(json!({"task_ids": []}))),
        (
            Post,
            clear.to_string(),
            Some(json!({"start_date": "2025-01-01T00:00:00"})),
        ),
        (Post, clear.to_string(), Some(json!({"dag_run_id": "nope"}))),
        (
            Post,
            clear.to_string(),
            Some(json!({"dag_run_id": run_id, "include_past": true})),
        ),
        (
            Post,
            clear.to_string(),
            Some(json!({"start_date": "2025-02-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"})),
        ),
        (
            Post,
            runs.to_string(),
            Some(json!({"logical_date": null, "conf": [], "run_after": "later"})),
        ),
        (
            Post,
            runs.to_string(),
            Some(json!({"logical_date": null, "dag_run_id": "a/../b"})),
        ),
        (
            Post,
            runs.to_string(),
            Some(json!({"logical_date": null, "partition_key": "p"})),
        ),
        (
            Post,
            format!("{runs}/list"),
            Some(json!({"dag_ids": [1], "order_by": "nope"})),
        ),
        (
            Post,
            "/api/v2/dags/~/dagRuns/list".to_string(),
            Some(json!({"order_by": "nope"})),
        ),
        (
            Patch,
            run_path("tis", &run_id),
            Some(json!({"bogus": true})),
        ),
        (
            Post,
            format!("{}/clear", run_path("tis", &run_id)),
            Some(json!({"dry_run": "yes"})),
        ),
    ];
    for (method, path, body) in cases {
        let (status, reply) = srv.call(user, method, &path, body.clone());
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
            Method::Post,
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
    let (_, runs) = srv.call(&user, Method::Get, "/api/v2/dags/lim/dagRuns", None);
    assert_eq!(runs["total_entries"], 0, "{runs}");
    // At the limit, the run and its log work, though `run_id=` and 250 characters are
    // more than a file name holds.
    let at_limit = "r".repeat(250);
    let (status, body) = post(&at_limit);
    assert_eq!(status, 200, "{body}");
    assert_eq!(wait_run(srv, &user, "lim", &at_limit), "success");
    let (status, log) = srv.call(
        &user,
        Method::Get,
        &format!("{}/logs/1", ti_path("lim", &at_limit, "t")),
        None,
    );
    assert_eq!(status, 200, "{log}");
    assert!(log.to_string().contains("ok"), "{log}");
}
