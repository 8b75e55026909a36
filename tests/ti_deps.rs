//! Why a task instance is not running: the Core API's `dependencies` route for task
//! instances held back by a failed upstream, a paused DAG, a run not yet running and a
//! full pool (issue 20's task-instance depth).

use crate::engine::{Engine, dag, task};
use crate::util::{Method, USERS};
use serde_json::{Value, json};

/// A run of a paused DAG stays queued, so its task instances keep no state and the
/// scheduler does not settle the downstream as upstream_failed: each reason the
/// scheduler would hold it back for must be named, the trigger rule with the upstream
/// states (before the fix only "Dag Not Paused" was, as the rule's failure was skipped
/// unless the rule was still waiting).
#[test]
fn dependencies_say_why_a_task_waits_behind_a_failed_upstream_and_a_full_pool() {
    let tasks = [
        task("up", "echo up", ""),
        task("down", "echo down", "dependencies: [up]\npool: tiny"),
    ]
    .concat();
    let e = Engine::start(&[("blocked.yml", &dag("blocked", "", &tasks))], &[USERS]);
    let t = e.srv.login("admin");
    let call = |method, path: &str, body: Option<Value>| e.srv.call(&t, method, path, body);
    let (status, v) = call(
        Method::Patch,
        "/api/v2/dags/blocked",
        Some(json!({"is_paused": true})),
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(
        Method::Post,
        "/api/v2/pools",
        Some(json!({"name": "tiny", "slots": 0})),
    );
    assert_eq!(status, 201, "{v}");
    let (status, run) = call(
        Method::Post,
        "/api/v2/dags/blocked/dagRuns",
        Some(json!({"logical_date": null, "dag_run_id": "held"})),
    );
    assert_eq!(status, 200, "{run}");
    let ti = |task_id: &str| format!("/api/v2/dags/blocked/dagRuns/held/taskInstances/{task_id}");
    let (status, v) = call(
        Method::Patch,
        &ti("up"),
        Some(json!({"new_state": "failed"})),
    );
    assert_eq!(status, 200, "{v}");

    let (status, d) = call(Method::Get, &format!("{}/dependencies", ti("down")), None);
    assert_eq!(status, 200, "{d}");
    let deps = d["dependencies"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = deps.iter().filter_map(|x| x["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "Dag Not Paused",
            "Dagrun Running",
            "Pool Slots Available",
            "Trigger Rule"
        ],
        "{d}"
    );
    let reason = |name: &str| {
        deps.iter()
            .find(|x| x["name"] == name)
            .and_then(|x| x["reason"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        reason("Trigger Rule"),
        "Task's trigger rule 'all_success' requires all upstream tasks to have succeeded, but found 1 non-success(es). Upstream states: up: failed.",
    );
    assert_eq!(
        reason("Pool Slots Available"),
        "Not scheduling since there are 0 open slots in pool tiny and require 1 pool slots"
    );
    assert_eq!(
        reason("Dagrun Running"),
        "Task instance's dagrun was not in the 'running' state but in the state 'queued'."
    );
    // A task instance that is done has nothing holding it back.
    let (status, d) = call(Method::Get, &format!("{}/dependencies", ti("up")), None);
    assert_eq!((status, d), (200, json!({"dependencies": []})));
}
