//! Backfills against a real standalone: the Core API's 7 routes, the CLI, and the
//! scheduler driving backfill runs within the backfill's own `max_active_runs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::engine::{Engine, task};
use crate::util::{Method, USERS, wait_until};

const LONG: Duration = Duration::from_secs(120);

/// A daily DAG whose own `max_active_runs` is 1 (a backfill's limit replaces it) and
/// whose scheduler makes no run of January 2024 (no catchup).
fn daily(dag_id: &str, extra: &str, tasks: &str) -> String {
    format!(
        "{dag_id}:\n  schedule: \"0 0 * * *\"\n  catchup: false\n  max_active_runs: 1\n  default_args:\n    start_date: 2024-01-01\n{extra}  tasks:\n{tasks}"
    )
}

fn day(d: u32) -> String {
    format!("2024-01-{d:02}T00:00:00Z")
}

struct Api<'a> {
    e: &'a Engine,
    token: String,
}

impl Api<'_> {
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.e.srv.call(&self.token, method, path, body)
    }

    fn create(&self, body: Value) -> Value {
        let (status, b) = self.call(Method::Post, "/api/v2/backfills", Some(body));
        assert_eq!(status, 200, "{b}");
        b
    }

    fn backfill(&self, id: i64) -> Value {
        let (status, b) = self.call(Method::Get, &format!("/api/v2/backfills/{id}"), None);
        assert_eq!(status, 200, "{b}");
        b
    }

    /// (run id, state) of every backfill run of the DAG, by logical date.
    fn runs(&self, dag_id: &str) -> Vec<(String, String, String)> {
        let (status, b) = self.call(
            Method::Get,
            &format!(
                "/api/v2/dags/{dag_id}/dagRuns?run_type=backfill&order_by=logical_date&limit=100"
            ),
            None,
        );
        assert_eq!(status, 200, "{b}");
        b["dag_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["logical_date"].as_str().unwrap_or_default().to_string(),
                    r["dag_run_id"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn wait_completed(&self, id: i64) -> Value {
        let mut last = Value::Null;
        let done = wait_until(LONG, || {
            last = self.backfill(id);
            !last["completed_at"].is_null()
        });
        assert!(
            done,
            "backfill {id} not completed: {last}\n{}",
            self.e.srv.log()
        );
        last
    }
}

fn start(files: &[(&str, &str)]) -> (Engine, String) {
    let e = Engine::start(files, &[USERS]);
    let token = e.srv.login("user");
    (e, token)
}

#[test]
fn a_ten_day_backfill_never_runs_more_than_its_max_active_runs() {
    let (e, token) = start(&[(
        "bf.yml",
        &daily("bf", "", &task("t", "sleep 1; echo {{ ds }}", "")),
    )]);
    let api = Api { e: &e, token };
    let b = api.create(
        json!({"dag_id": "bf", "from_date": day(1), "to_date": day(10), "max_active_runs": 2}),
    );
    assert_eq!(b["max_active_runs"], 2, "{b}");
    assert_eq!(b["reprocess_behavior"], "none");
    assert_eq!(b["is_paused"], false);
    assert_eq!(b["completed_at"], Value::Null);
    assert_eq!(b["dag_display_name"], "bf");
    let id = b["id"].as_i64().unwrap();
    // Every run exists, queued, as soon as the backfill does.
    let runs = api.runs("bf");
    assert_eq!(runs.len(), 10, "{runs:?}");
    assert_eq!(runs[0].1, "backfill__2024-01-01T00:00:00+00:00");
    // Poll while it runs: never more than 2 running at once.
    let store = e.store();
    let mut most = 0;
    let done = wait_until(LONG, || {
        let running = store
            .runs_of(Some("bf"), 100)
            .unwrap()
            .iter()
            .filter(|r| r.backfill_id == Some(id) && r.state.as_str() == "running")
            .count();
        most = most.max(running);
        assert!(running <= 2, "{running} backfill runs running at once");
        !api.backfill(id)["completed_at"].is_null()
    });
    assert!(done, "{}", e.srv.log());
    // And from the recorded times: at most 2 overlapped, and 2 did (the DAG's own limit
    // of 1 does not apply to backfill runs).
    let spans: Vec<_> = store
        .runs_of(Some("bf"), 100)
        .unwrap()
        .into_iter()
        .filter(|r| r.backfill_id == Some(id))
        .map(|r| {
            (
                r.start_date.unwrap(),
                r.end_date.unwrap(),
                r.state.to_string(),
            )
        })
        .collect();
    assert_eq!(spans.len(), 10);
    let overlap = spans
        .iter()
        .map(|(s, _, _)| spans.iter().filter(|(s2, e2, _)| s2 <= s && s < e2).count())
        .max()
        .unwrap();
    assert_eq!(overlap, 2, "{spans:?} (polled at most {most})");
    assert!(spans.iter().all(|(_, _, st)| st == "success"), "{spans:?}");
    let (status, list) = api.call(Method::Get, "/api/v2/backfills?dag_id=bf", None);
    assert_eq!(status, 200);
    assert_eq!(list["total_entries"], 1, "{list}");
    assert_eq!(list["backfills"][0]["id"], id);
}

#[test]
fn reprocess_failed_reruns_only_the_failed_dates() {
    let e = Engine::start(&[], &[USERS]);
    let flag = e.home.path.join("fixed");
    let cmd = format!(
        "test -f {} || test {{{{ ds }}}} != 2024-01-02",
        flag.display()
    );
    std::fs::write(
        e.home.dags().join("rp.yml"),
        daily("rp", "", &task("t", &cmd, "")),
    )
    .unwrap();
    let store = e.store();
    assert!(wait_until(LONG, || store.dag("rp").unwrap().is_some()));
    let api = Api {
        token: e.srv.login("user"),
        e: &e,
    };
    let first = api.create(json!({"dag_id": "rp", "from_date": day(1), "to_date": day(3)}));
    api.wait_completed(first["id"].as_i64().unwrap());
    let states: Vec<String> = api.runs("rp").into_iter().map(|r| r.2).collect();
    assert_eq!(states, ["success", "failed", "success"]);
    std::fs::write(&flag, "").unwrap();

    let body = json!({"dag_id": "rp", "from_date": day(1), "to_date": day(4), "reprocess_behavior": "failed"});
    let (status, dry) = api.call(
        Method::Post,
        "/api/v2/backfills/dry_run",
        Some(body.clone()),
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        dry,
        json!({"total_entries": 2, "backfills": [
            {"logical_date": day(2), "partition_key": null, "partition_date": null},
            {"logical_date": day(4), "partition_key": null, "partition_date": null},
        ]})
    );
    let second = api.create(body);
    let id = second["id"].as_i64().unwrap();
    assert_eq!(second["reprocess_behavior"], "failed");
    api.wait_completed(id);
    let runs = api.runs("rp");
    let states: Vec<&str> = runs.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        states,
        ["success", "success", "success", "success"],
        "{runs:?}"
    );
    // The failed date ran again in its own run (a second try); the others were skipped,
    // and the backfill says why.
    let run2 = store.run("rp", &runs[1].1).unwrap().unwrap();
    assert_eq!(run2.backfill_id, Some(id));
    assert_eq!(run2.clear_number, 1);
    assert_eq!(
        store
            .ti_by_key("rp", &runs[1].1, "t")
            .unwrap()
            .unwrap()
            .try_number,
        2
    );
    assert_eq!(
        store
            .ti_by_key("rp", &runs[0].1, "t")
            .unwrap()
            .unwrap()
            .try_number,
        1
    );
    let dates: Vec<(String, bool, Option<String>)> = store
        .backfill_dates(id)
        .unwrap()
        .into_iter()
        .map(|(d, run, why)| (d.unwrap().date_naive().to_string(), run.is_some(), why))
        .collect();
    let skipped = Some("already exists".to_string());
    assert_eq!(
        dates,
        [
            ("2024-01-01".into(), false, skipped.clone()),
            ("2024-01-02".into(), true, None),
            ("2024-01-03".into(), false, skipped),
            ("2024-01-04".into(), true, None),
        ]
    );
    // A run of a completed backfill, cleared, runs again under its backfill's limit.
    let (status, body) = api.call(
        Method::Post,
        &format!("/api/v2/dags/rp/dagRuns/{}/clear", runs[0].1),
        Some(json!({"dry_run": false})),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        wait_until(LONG, || store
            .ti_by_key("rp", &runs[0].1, "t")
            .unwrap()
            .is_some_and(
                |t| t.try_number == 2 && t.state.is_some_and(|s| s.is_finished())
            )),
        "{:?}\n{}",
        api.runs("rp"),
        e.srv.log()
    );
    assert_eq!(e.wait_run("rp", &runs[0].1), "success");
}

#[test]
fn a_paused_backfill_starts_nothing_and_cancel_fails_its_queued_runs() {
    let (e, token) = start(&[
        ("cx.yml", &daily("cx", "", &task("t", "sleep 1", ""))),
        ("other.yml", &daily("other", "", &task("t", "true", ""))),
    ]);
    let api = Api { e: &e, token };
    // Paused before the scheduler can start anything: the DAG is paused first.
    let (status, body) = api.call(
        Method::Patch,
        "/api/v2/dags/cx",
        Some(json!({"is_paused": true})),
    );
    assert_eq!(status, 200, "{body}");
    let b = api.create(
        json!({"dag_id": "cx", "from_date": day(1), "to_date": day(5), "max_active_runs": 1}),
    );
    let id = b["id"].as_i64().unwrap();
    let (status, paused) = api.call(Method::Put, &format!("/api/v2/backfills/{id}/pause"), None);
    assert_eq!(
        (status, &paused["is_paused"]),
        (200, &json!(true)),
        "{paused}"
    );
    let (status, body) = api.call(
        Method::Patch,
        "/api/v2/dags/cx",
        Some(json!({"is_paused": false})),
    );
    assert_eq!(status, 200, "{body}");
    // A manual run of the same DAG (not held by the backfill, nor by its DAG's limit
    // of 1, which backfill runs do not count against) finishing proves the scheduler
    // has passed over the paused backfill's runs since the DAG was unpaused.
    let (status, run) = api.call(
        Method::Post,
        "/api/v2/dags/cx/dagRuns",
        Some(json!({"logical_date": null})),
    );
    assert_eq!(status, 200, "{run}");
    e.wait_run("cx", run["dag_run_id"].as_str().unwrap());
    let states: Vec<String> = api.runs("cx").into_iter().map(|r| r.2).collect();
    assert_eq!(states, vec!["queued"; 5]);

    let (status, unpaused) = api.call(
        Method::Put,
        &format!("/api/v2/backfills/{id}/unpause"),
        None,
    );
    assert_eq!(
        (status, &unpaused["is_paused"]),
        (200, &json!(false)),
        "{unpaused}"
    );
    // Cancel mid-way: once the first run has finished and another is running.
    let mid = wait_until(LONG, || {
        let runs = api.runs("cx");
        runs.iter().any(|r| r.2 == "success") && runs.iter().any(|r| r.2 == "running")
    });
    assert!(mid, "{:?}\n{}", api.runs("cx"), e.srv.log());
    let (status, cancelled) =
        api.call(Method::Put, &format!("/api/v2/backfills/{id}/cancel"), None);
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["is_paused"], true);
    assert!(!cancelled["completed_at"].is_null(), "{cancelled}");
    // Nothing queued is left; what ran finishes, the rest failed, and nothing starts.
    let store = e.store();
    assert!(wait_until(LONG, || store
        .runs_of(Some("cx"), 100)
        .unwrap()
        .iter()
        .filter(|r| r.backfill_id == Some(id))
        .all(|r| r.state.is_finished())));
    let runs = api.runs("cx");
    let failed = runs.iter().filter(|r| r.2 == "failed").count();
    let succeeded = runs.iter().filter(|r| r.2 == "success").count();
    assert_eq!(failed + succeeded, 5, "{runs:?}");
    assert!(failed >= 1 && succeeded >= 2, "{runs:?}");
    for r in runs.iter().filter(|r| r.2 == "failed") {
        assert_eq!(
            store.run("cx", &r.1).unwrap().unwrap().start_date,
            None,
            "{r:?} started"
        );
    }
    for verb in ["pause", "unpause", "cancel"] {
        let (status, body) = api.call(Method::Put, &format!("/api/v2/backfills/{id}/{verb}"), None);
        assert_eq!(
            (status, body),
            (409, json!({"detail": "Backfill is already completed."})),
            "{verb}"
        );
    }
    // With this one completed, the DAG may have another backfill.
    api.create(json!({"dag_id": "other", "from_date": day(1), "to_date": day(1)}));
    api.create(json!({"dag_id": "cx", "from_date": day(1), "to_date": day(1), "reprocess_behavior": "failed"}));
}

#[test]
fn backfill_requests_are_checked_as_airflow_checks_them() {
    let manual =
        "manual:\n  schedule: null\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n"
            .to_string()
            + &task("t", "true", "");
    let (e, token) = start(&[
        ("d.yml", &daily("d", "", &task("t", "true", ""))),
        ("manual.yml", &manual),
    ]);
    let api = Api { e: &e, token };
    // Keep the first backfill open: its DAG is paused.
    let (status, _) = api.call(
        Method::Patch,
        "/api/v2/dags/d",
        Some(json!({"is_paused": true})),
    );
    assert_eq!(status, 200);
    let post = |path: &str, body: Value| api.call(Method::Post, path, Some(body));
    for path in ["/api/v2/backfills", "/api/v2/backfills/dry_run"] {
        let cases: Vec<(Value, u16, Value)> = vec![
            (
                json!({"dag_id": "nope", "from_date": day(1), "to_date": day(2)}),
                404,
                json!("Could not find dag nope"),
            ),
            (
                json!({"dag_id": "manual", "from_date": day(1), "to_date": day(2)}),
                422,
                json!("manual has a non-periodic schedule that does not support backfills"),
            ),
            (
                json!({"dag_id": "d", "from_date": day(3), "to_date": day(2)}),
                422,
                json!(
                    "from_date (2024-01-03T00:00:00+00:00) must not be after to_date (2024-01-02T00:00:00+00:00)."
                ),
            ),
            (
                json!({"dag_id": "d", "from_date": "2999-01-01T00:00:00Z", "to_date": "2999-01-02T00:00:00Z"}),
                422,
                json!("Backfill cannot be executed for future dates."),
            ),
        ];
        for (body, status, detail) in cases {
            let (got, reply) = post(path, body.clone());
            assert_eq!((got, &reply["detail"]), (status, &detail), "{path} {body}");
        }
        let (got, reply) = post(
            path,
            json!({"dag_id": "d", "from_date": day(1), "to_date": day(2), "reprocess_behavior": "all"}),
        );
        assert_eq!(got, 422, "{reply}");
        assert_eq!(
            reply["detail"][0]["loc"],
            json!(["body", "reprocess_behavior"])
        );
        let (got, reply) = post(
            path,
            json!({"dag_id": "d", "from_date": day(1), "to_date": day(2), "colour": 1}),
        );
        assert_eq!(
            (got, &reply["detail"][0]["type"]),
            (422, &json!("extra_forbidden")),
            "{reply}"
        );
        let (got, reply) = post(path, json!({"dag_id": "d", "to_date": day(2)}));
        assert_eq!(
            (got, &reply["detail"][0]["loc"]),
            (422, &json!(["body", "from_date"])),
            "{reply}"
        );
    }
    // A naive date is UTC, as Airflow's `coerce_datetime` makes it.
    let (status, dry) = post(
        "/api/v2/backfills/dry_run",
        json!({"dag_id": "d", "from_date": "2024-01-01T00:00:00", "to_date": "2024-01-03T00:00:00", "run_backwards": true}),
    );
    assert_eq!(status, 200, "{dry}");
    let dates: Vec<&str> = dry["backfills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["logical_date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, [day(3), day(2), day(1)]);
    // A range with no fire time in it.
    let (status, reply) = post(
        "/api/v2/backfills",
        json!({"dag_id": "d", "from_date": "2024-01-01T01:00:00Z", "to_date": "2024-01-01T02:00:00Z"}),
    );
    assert_eq!(
        (status, &reply["detail"]),
        (
            422,
            &json!(
                "No runs to create for Dag d in the range [2024-01-01 01:00:00+00:00, 2024-01-01 02:00:00+00:00]"
            )
        )
    );

    let b = api.create(
        json!({"dag_id": "d", "from_date": day(1), "to_date": day(2), "dag_run_conf": {"k": 1}}),
    );
    assert_eq!(b["dag_run_conf"], json!({"k": 1}));
    let (status, reply) = post(
        "/api/v2/backfills",
        json!({"dag_id": "d", "from_date": day(3), "to_date": day(4)}),
    );
    assert_eq!(
        (status, &reply["detail"]),
        (409, &json!("There is already a running backfill for dag d"))
    );
    let runs = api.runs("d");
    assert_eq!(runs.len(), 2);
    let (status, run) = api.call(
        Method::Get,
        &format!("/api/v2/dags/d/dagRuns/{}", runs[0].1),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        (&run["run_type"], &run["triggered_by"], &run["conf"]),
        (&json!("backfill"), &json!("backfill"), &json!({"k": 1}))
    );

    // The other routes' errors.
    let (status, reply) = api.call(Method::Get, "/api/v2/backfills", None);
    assert_eq!(
        (status, &reply["detail"][0]["loc"]),
        (422, &json!(["query", "dag_id"])),
        "{reply}"
    );
    let (status, reply) = api.call(
        Method::Get,
        "/api/v2/backfills?dag_id=d&order_by=dag_id",
        None,
    );
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = api.call(Method::Get, "/api/v2/backfills?dag_id=nope", None);
    assert_eq!(
        (status, reply),
        (200, json!({"backfills": [], "total_entries": 0}))
    );
    let (status, reply) = api.call(Method::Get, "/api/v2/backfills/999", None);
    assert_eq!(
        (status, reply),
        (404, json!({"detail": "Backfill not found"}))
    );
    let (status, reply) = api.call(Method::Put, "/api/v2/backfills/999/cancel", None);
    assert_eq!(
        (status, reply),
        (404, json!({"detail": "Backfill not found"}))
    );
    let (status, reply) = api.call(Method::Get, "/api/v2/backfills/abc", None);
    assert_eq!(
        (status, &reply["detail"][0]["type"]),
        (422, &json!("int_parsing")),
        "{reply}"
    );
    // Viewers read, and only read.
    let viewer = e.srv.login("viewer");
    let id = b["id"].as_i64().unwrap();
    let (status, _) = e.srv.call(
        &viewer,
        Method::Get,
        &format!("/api/v2/backfills/{id}"),
        None,
    );
    assert_eq!(status, 200);
    let (status, _) = e.srv.call(
        &viewer,
        Method::Put,
        &format!("/api/v2/backfills/{id}/pause"),
        None,
    );
    assert_eq!(status, 403);
    let (status, _) = e
        .srv
        .call("", Method::Get, &format!("/api/v2/backfills/{id}"), None);
    assert_eq!(status, 401);
}

#[test]
fn backfill_create_on_the_command_line() {
    let e = Engine::start(
        &[("cli.yml", &daily("cli", "", &task("t", "true", "")))],
        &[],
    );
    let args = |more: &[&str]| -> Vec<String> {
        [
            "backfill",
            "create",
            "--dag-id",
            "cli",
            "--from-date",
            "2024-01-01",
            "--to-date",
            "2024-01-03",
        ]
        .iter()
        .chain(more)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |more: &[&str]| {
        let a = args(more);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        e.home.run(&a, crate::engine::FAST)
    };
    let dry = run(&["--dry-run", "--run-backwards"]).expect(0).stdout();
    let dates: Vec<&str> = dry.lines().filter(|l| l.starts_with("| 2024-")).collect();
    assert_eq!(dates.len(), 3, "{dry}");
    assert!(
        dates[0].starts_with("| 2024-01-03 00:00:00+00:00 |")
            && dates[2].starts_with("| 2024-01-01"),
        "{dry}"
    );
    assert!(
        e.store()
            .runs_of(Some("cli"), 100)
            .unwrap()
            .iter()
            .all(|r| r.backfill_id.is_none())
    );
    let bad = run(&["--reprocess-behavior", "all"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(
        bad.stderr().contains("--reprocess-behavior"),
        "{}",
        bad.stderr()
    );
    let bad = run(&["--max-active-runs", "0"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    let made = run(&["--max-active-runs", "2", "--dag-run-conf", "{\"a\": 1}"])
        .expect(0)
        .stdout();
    assert!(made.contains("3 run(s) queued"), "{made}");
    let store = e.store();
    assert!(
        wait_until(LONG, || {
            let runs = store.runs_of(Some("cli"), 100).unwrap();
            runs.iter()
                .filter(|r| r.backfill_id.is_some() && r.state.as_str() == "success")
                .count()
                == 3
        }),
        "{}",
        e.srv.log()
    );
    let run1 = store
        .run("cli", "backfill__2024-01-01T00:00:00+00:00")
        .unwrap()
        .unwrap();
    assert_eq!(run1.conf, json!({"a": 1}));
    // Once it is completed, another backfill may start: every date has a run now, so
    // all are skipped.
    assert!(wait_until(LONG, || store
        .open_backfills()
        .unwrap()
        .is_empty()));
    let again = run(&[]).expect(0).stdout();
    assert!(
        again.contains("0 run(s) queued, 3 date(s) skipped"),
        "{again}"
    );
    assert!(wait_until(LONG, || store
        .open_backfills()
        .unwrap()
        .is_empty()));
    // A range without a fire time in it: Airflow's CLI warns and exits 1.
    let none = e.home.run(
        &[
            "backfill",
            "create",
            "--dag-id",
            "cli",
            "--from-date",
            "2024-01-01T01:00:00",
            "--to-date",
            "2024-01-01T02:00:00",
        ],
        crate::engine::FAST,
    );
    assert_eq!(none.code(), 1, "{}", none.stderr());
    assert!(
        none.stderr().contains("No runs to create for Dag cli"),
        "{}",
        none.stderr()
    );
}

#[test]
fn the_schedule_goes_on_after_the_dates_a_backfill_made() {
    // A catchup DAG, paused, backfilled over its first days: unpaused, its scheduler
    // carries on after the backfill's last date (Airflow's `_get_latest_runs_stmt` takes
    // backfill runs too) rather than trying the backfilled dates again, and the
    // backfill's runs, held by its pause, do not count against the DAG's own
    // max_active_runs of 1 (Airflow's `exclude_backfill`).
    let today = chrono::Utc::now().date_naive();
    let start = today - chrono::Duration::days(4);
    let text = format!(
        "cu:\n  schedule: \"0 0 * * *\"\n  catchup: true\n  max_active_runs: 1\n  default_args:\n    start_date: {start}\n  tasks:\n{}",
        task("t", "true", "")
    );
    let (e, token) = start_paused(&[("cu.yml", &text)]);
    let api = Api { e: &e, token };
    let to = start + chrono::Duration::days(1);
    let b = api.create(json!({"dag_id": "cu", "from_date": format!("{start}T00:00:00Z"), "to_date": format!("{to}T00:00:00Z")}));
    let id = b["id"].as_i64().unwrap();
    let path = format!("/api/v2/backfills/{id}/pause");
    assert_eq!(api.call(Method::Put, &path, None).0, 200);
    let unpause = Some(json!({"is_paused": false}));
    assert_eq!(api.call(Method::Patch, "/api/v2/dags/cu", unpause).0, 200);
    let store = e.store();
    let days = |kind: &str| -> Vec<String> {
        let mut d: Vec<String> = store
            .runs_of(Some("cu"), 100)
            .unwrap()
            .iter()
            .filter(|r| r.run_type.as_str() == kind)
            .map(|r| r.logical_date.unwrap().date_naive().to_string())
            .collect();
        d.sort();
        d
    };
    let want: Vec<String> = (2..=4)
        .map(|n| (start + chrono::Duration::days(n)).to_string())
        .collect();
    let done = wait_until(LONG, || days("scheduled") == want);
    assert!(done, "{:?}\n{}", days("scheduled"), e.srv.log());
    let path = format!("/api/v2/backfills/{id}/unpause");
    assert_eq!(api.call(Method::Put, &path, None).0, 200);
    api.wait_completed(id);
    assert_eq!(days("backfill"), [start.to_string(), to.to_string()]);
}

#[test]
fn reprocessed_runs_start_in_the_backfills_order() {
    let (e, token) = start(&[("ord.yml", &daily("ord", "", &task("t", "true", "")))]);
    let api = Api { e: &e, token };
    let first = api.create(json!({"dag_id": "ord", "from_date": day(2), "to_date": day(2)}));
    api.wait_completed(first["id"].as_i64().unwrap());
    // Day 2's run is older than the two this backfill makes, yet with one run at a
    // time, newest first, it runs second.
    let second = api.create(
        json!({"dag_id": "ord", "from_date": day(1), "to_date": day(3),
        "reprocess_behavior": "completed", "run_backwards": true, "max_active_runs": 1}),
    );
    api.wait_completed(second["id"].as_i64().unwrap());
    let store = e.store();
    let mut started: Vec<(chrono::DateTime<chrono::Utc>, String)> = store
        .runs_of(Some("ord"), 100)
        .unwrap()
        .into_iter()
        .filter(|r| r.run_type.as_str() == "backfill")
        .map(|r| {
            (
                r.start_date.unwrap(),
                r.logical_date.unwrap().date_naive().to_string(),
            )
        })
        .collect();
    started.sort();
    let order: Vec<&str> = started.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        order,
        ["2024-01-03", "2024-01-02", "2024-01-01"],
        "{started:?}"
    );
}

/// A standalone whose DAGs are paused when they first appear.
fn start_paused(files: &[(&str, &str)]) -> (Engine, String) {
    let e = Engine::start(
        files,
        &[
            USERS,
            ("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True"),
        ],
    );
    let token = e.srv.login("user");
    (e, token)
}
