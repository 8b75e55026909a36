//! The scopes the UI's clear and mark dialogs send, as Airflow 3.3.2 reads them: a mapped
//! task named without a map index is every instance of it, and a relative that a flag
//! adds is cleared whole even when a `[task_id, map_index]` pair also names it.

use serde_json::{Value, json};

use crate::engine::{Engine, dag, task};
use crate::util::{Method, USERS};

/// `(task_id, map_index)` of each task instance in a collection, sorted.
fn named(body: &Value) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = body["task_instances"]
        .as_array()
        .unwrap_or_else(|| panic!("no task_instances: {body}"))
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap_or_default().to_string(),
                t["map_index"].as_i64().unwrap_or(-2),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(t, m)| (t.to_string(), *m)).collect()
}

#[test]
fn dialogs_scopes_reach_every_map_index_the_api_names() {
    let mapped = "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      dependencies: [first]\n      expand:\n        bash_command: ['echo 0', 'exit 3', 'echo 2']\n";
    let tasks = format!(
        "{}{mapped}{}",
        task("first", "echo first", ""),
        task("after", "echo after", "dependencies: [m]")
    );
    let e = Engine::start(&[("a.yml", &dag("acts", "", &tasks))], &[USERS]);
    let run = e.trigger("acts", None);
    assert_eq!(e.wait_run("acts", &run), "failed");
    let token = e.srv.login("user");
    let call = |method: Method, path: &str, body: Value| {
        e.srv.call(
            &token,
            method,
            &format!("/api/v2/dags/acts/{path}"),
            Some(body),
        )
    };

    // Clearing `first` with its downstream while a pair names one instance of `m`: `m`
    // is a relative of `first`, so every instance of it is cleared (Airflow's
    // `find_relevant_relatives`), not only the one the pair names.
    let (status, body) = call(
        Method::Post,
        "clearTaskInstances",
        json!({"dry_run": true, "dag_run_id": run, "only_failed": false,
               "include_downstream": true, "task_ids": ["first", ["m", 1]]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        named(&body),
        pairs(&[("after", -1), ("first", -1), ("m", 0), ("m", 1), ("m", 2)])
    );
    // A pair alone still names one instance; its relatives come whole.
    let (status, body) = call(
        Method::Post,
        "clearTaskInstances",
        json!({"dry_run": true, "dag_run_id": run, "only_failed": false,
               "include_upstream": true, "task_ids": [["m", 1]]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(named(&body), pairs(&[("first", -1), ("m", 1)]));

    // Marking the mapped task without a map index is marking every instance of it that
    // is not already in that state; its dry run lists them.
    let runs = format!("dagRuns/{run}/taskInstances/m");
    let (status, body) = call(
        Method::Patch,
        &format!("{runs}/dry_run"),
        json!({"new_state": "success"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(named(&body), pairs(&[("m", 1)]));
    let (status, body) = call(
        Method::Patch,
        &runs,
        json!({"new_state": "success", "note": "fixed by hand"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(named(&body), pairs(&[("m", 0), ("m", 1), ("m", 2)]));
    for t in body["task_instances"].as_array().into_iter().flatten() {
        assert_eq!(
            (&t["state"], &t["note"]),
            (&json!("success"), &json!("fixed by hand")),
            "{t}"
        );
    }
    let (status, body) = call(Method::Patch, &runs, json!({"new_state": "success"}));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["detail"], "Task id m is already in success state");
    // A task with no instance in the run is still Airflow's 404.
    let (status, body) = call(
        Method::Patch,
        "dagRuns/nope/taskInstances/m",
        json!({"new_state": "success"}),
    );
    assert_eq!(status, 404, "{body}");
}
