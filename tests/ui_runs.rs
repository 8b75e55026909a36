//! The UI's private routes for seeing every run, fresh: the change counts an open page
//! polls (`/ui/changes`), moved by a run another process makes, and the grid's pages,
//! filters and the page of a run named by a link (`/ui/grid/{dag_id}`).

use serde_json::{Value, json};

use crate::engine::FAST;
use crate::util::{Method, TempHome, TestServer, USERS};

const DAG: &str = "one:\n  schedule: null\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n    - task_id: nop\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n";

fn trigger(home: &TempHome, run_id: &str) {
    home.run(&["dags", "trigger", "one", "--run-id", run_id], FAST)
        .expect(0);
}

fn ids(grid: &Value) -> Vec<&str> {
    grid["dag_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dag_run_id"].as_str().unwrap())
        .collect()
}

/// Issue 20: a run triggered from the CLI (another process, on the same database)
/// moves the counts the open pages poll, so they refetch within a poll; and the grid
/// pages back to the oldest run, filters, and brings in the page of a linked run.
#[test]
fn ui_changes_move_with_other_processes_and_the_grid_pages_to_every_run() {
    let home = TempHome::new();
    std::fs::write(home.dags().join("one.yml"), DAG).unwrap();
    let srv = TestServer::start(&home, &["api-server"], &[USERS]);
    let token = srv.login("viewer");
    let changes = || {
        let (status, body) = srv.call(&token, Method::Get, "/ui/changes", None);
        assert_eq!(status, 200, "{body}");
        body
    };
    trigger(&home, "r0");
    let before = changes();
    assert_eq!(before, changes(), "nothing changed, nothing moves");
    trigger(&home, "r1");
    let after = changes();
    assert!(
        after["runs"].as_i64() > before["runs"].as_i64(),
        "{before} -> {after}"
    );
    // Marking a run moves the count too (an update, not an insert).
    let (status, body) = srv.call(
        &srv.login("admin"),
        Method::Patch,
        "/api/v2/dags/one/dagRuns/r0",
        Some(json!({"state": "failed"})),
    );
    assert_eq!(status, 200, "{body}");
    let marked = changes();
    assert!(marked["runs"].as_i64() > after["runs"].as_i64(), "{marked}");
    assert!(
        marked["task_instances"].as_i64() > after["task_instances"].as_i64(),
        "{marked}"
    );

    for i in 2..7 {
        trigger(&home, &format!("r{i}"));
    }
    let grid = |q: &str| {
        let (status, body) = srv.call(&token, Method::Get, &format!("/ui/grid/one?{q}"), None);
        (status, body)
    };
    // Pages of 3, newest first as pages, oldest first within one.
    let (status, page) = grid("limit=3");
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), ["r4", "r5", "r6"]);
    assert_eq!(
        (&page["total_entries"], &page["offset"]),
        (&json!(7), &json!(0))
    );
    let (_, page) = grid("limit=3&offset=6");
    assert_eq!(ids(&page), ["r0"]);
    // A link to the oldest run brings its page in, whatever the offset says.
    let (_, page) = grid("limit=3&offset=0&around=r1");
    assert_eq!(ids(&page), ["r1", "r2", "r3"], "{page}");
    assert_eq!(page["offset"], 3);
    // Filters by state and type; the failed run is the only one.
    let (_, page) = grid("limit=3&state=failed&run_type=manual");
    assert_eq!(
        (ids(&page), &page["total_entries"]),
        (vec!["r0"], &json!(1))
    );
    let (_, page) = grid("state=queued&state=failed&limit=10");
    assert_eq!(page["total_entries"], 7);
    let (_, page) = grid("run_type=scheduled");
    assert_eq!(page["total_entries"], 0);
    // A run the filters leave out keeps the offset asked for.
    let (_, page) = grid("limit=3&state=queued&around=r0");
    assert_eq!(page["offset"], 0);
    // Bad values are 422s, not 500s.
    for q in ["state=bogus", "run_type=bogus", "offset=x", "limit=x"] {
        let (status, body) = grid(q);
        assert_eq!(status, 422, "{q}: {body}");
    }
}

/// The counts move with a scheduler in another process: `updraft scheduler` beside
/// `updraft api-server` on one database runs a triggered run, and each step it commits
/// (the run starting, its task instance made and finished) is seen by the API's poll.
#[test]
fn ui_changes_move_as_a_scheduler_in_another_process_runs_a_dag() {
    let home = TempHome::new();
    std::fs::write(home.dags().join("one.yml"), DAG).unwrap();
    let api = TestServer::start(&home, &["api-server"], &[USERS]);
    let url = format!("{}/execution/", api.base);
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.push(("UPDRAFT__CORE__EXECUTION_API_SERVER_URL", &url));
    let _scheduler = TestServer::start(&home, &["scheduler"], &env);
    let token = api.login("admin");
    let changes = || api.call(&token, Method::Get, "/ui/changes", None).1;
    // The DAG is held paused while the run is triggered and the counts read, so every
    // step the scheduler commits comes after that read (an EmptyOperator run can
    // otherwise end in the scheduler's first pass, before the read).
    let pause = |paused: bool| {
        let (status, body) = api.call(
            &token,
            Method::Patch,
            "/api/v2/dags/one",
            Some(serde_json::json!({ "is_paused": paused })),
        );
        assert_eq!(status, 200, "{body}");
    };
    let found = crate::util::wait_until(std::time::Duration::from_secs(90), || {
        api.call(&token, Method::Get, "/api/v2/dags/one", None).0 == 200
    });
    assert!(found, "{}", api.log());
    pause(true);
    trigger(&home, "r0");
    let queued = changes();
    pause(false);
    let mut last = queued.clone();
    let done = crate::util::wait_until(std::time::Duration::from_secs(90), || {
        last = changes();
        let (_, grid) = api.call(&token, Method::Get, "/ui/grid/one", None);
        grid["dag_runs"][0]["state"] == "success"
    });
    assert!(done, "{last}");
    let finished = changes();
    assert!(
        finished["runs"].as_i64() > queued["runs"].as_i64()
            && finished["task_instances"].as_i64() > queued["task_instances"].as_i64(),
        "{queued} -> {finished}"
    );
}
