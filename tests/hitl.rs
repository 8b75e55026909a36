//! Human-in-the-loop tasks end to end: a standalone runs DAGs whose tasks wait for a
//! person (`awaiting_input`, holding no slot), answered through the Core API's
//! `hitlDetails` routes or left to time out; the answer becomes the XCom and drives
//! what runs next.

use serde_json::{Value, json};

use crate::engine::{Engine, dag, task};
use crate::util::{Method, USERS, wait_until};

const HITL: &str = "airflow.providers.standard.operators.hitl";
const LONG: std::time::Duration = std::time::Duration::from_secs(90);

fn enc(s: &str) -> String {
    updraft::percent::encode_segment(s)
}

/// Waits until the task instance is in `state`.
fn wait_state(e: &Engine, dag_id: &str, run_id: &str, task_id: &str, state: &str) {
    let ok = wait_until(LONG, || e.state(dag_id, run_id, task_id) == state);
    assert!(
        ok,
        "{dag_id}.{task_id} is {} not {state}; log:\n{}",
        e.state(dag_id, run_id, task_id),
        e.srv.log()
    );
}

fn detail_path(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!(
        "/api/v2/dags/{dag_id}/dagRuns/{}/taskInstances/{task_id}/-1/hitlDetails",
        enc(run_id)
    )
}

fn xcom(e: &Engine, dag_id: &str, run_id: &str, task_id: &str) -> Value {
    e.store()
        .xcom(dag_id, run_id, task_id, "return_value")
        .unwrap()
        .unwrap_or(Value::Null)
}

#[test]
fn people_answer_hitl_tasks_through_the_api_and_timeouts_choose_defaults() {
    let approve = [
        format!(
            "    - task_id: approval\n      operator: {HITL}.ApprovalOperator\n      subject: 'Ship {{{{ dag_run.dag_id }}}}?'\n      body: 'run {{{{ run_id }}}}'\n"
        ),
        task("after", "echo shipped", "dependencies: [approval]"),
        // Runs while the approval waits: with parallelism 1 it could not if the wait
        // held a slot.
        task("side", "echo side", ""),
    ]
    .concat();
    let branch = [
        format!(
            "    - task_id: pick\n      operator: {HITL}.HITLBranchOperator\n      subject: Which way?\n      options: [Left, Right]\n      options_mapping: {{Left: go_left}}\n"
        ),
        task("go_left", "echo left", "dependencies: [pick]"),
        task("Right", "echo right", "dependencies: [pick]"),
    ]
    .concat();
    let entry = format!(
        "    - task_id: form\n      operator: {HITL}.HITLEntryOperator\n      subject: Your details\n      assigned_users: [{{id: user, name: user}}]\n      params:\n        name: nobody\n        count: {{value: 1, type: integer}}\n"
    );
    let timeout = [
        format!(
            "    - task_id: wait_default\n      operator: {HITL}.HITLOperator\n      subject: Quick?\n      options: ['yes', 'no']\n      defaults: 'no'\n      execution_timeout: 1\n"
        ),
        format!(
            "    - task_id: wait_fail\n      operator: {HITL}.HITLOperator\n      subject: Quick?\n      options: ['yes', 'no']\n      response_timeout: 1\n"
        ),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("approve.yml", &dag("approve", "", &approve)),
            ("branch.yml", &dag("branch", "", &branch)),
            ("entry.yml", &dag("entry", "", &entry)),
            ("timeout.yml", &dag("timeout", "", &timeout)),
        ],
        &[USERS, ("UPDRAFT__CORE__PARALLELISM", "1")],
    );
    let admin = e.srv.login("admin");
    let user = e.srv.login("user");
    let viewer = e.srv.login("viewer");

    // An approval: the task waits without a slot, is listed, and is answered.
    let run = e.trigger("approve", None);
    wait_state(&e, "approve", &run, "approval", "awaiting_input");
    wait_state(&e, "approve", &run, "side", "success");
    assert_eq!(e.state("approve", &run, "after"), "none");
    let path = detail_path("approve", &run, "approval");
    let (status, d) = e.srv.call(&viewer, Method::Get, &path, None);
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["subject"], "Ship approve?");
    assert_eq!(d["body"], format!("run {run}"));
    assert_eq!(d["options"], json!(["Approve", "Reject"]));
    assert_eq!(d["response_received"], false);
    assert_eq!(d["task_instance"]["state"], "awaiting_input");
    let list = "/api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false";
    let (status, l) = e.srv.call(&viewer, Method::Get, list, None);
    assert_eq!(status, 200, "{l}");
    assert_eq!(l["total_entries"], 1, "{l}");
    assert_eq!(l["hitl_details"][0]["task_instance"]["task_id"], "approval");
    // A viewer may not answer; an option not offered is a 400; two for one a 400.
    let answer = |token: &str, body: Value| e.srv.call(token, Method::Patch, &path, Some(body));
    assert_eq!(
        answer(&viewer, json!({"chosen_options": ["Approve"]})).0,
        403
    );
    let (status, err) = answer(&admin, json!({"chosen_options": ["Maybe"]}));
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        err["detail"],
        "Invalid options ['Maybe']; allowed options are ['Approve', 'Reject']."
    );
    assert_eq!(
        answer(&admin, json!({"chosen_options": ["Approve", "Reject"]})).0,
        400
    );
    assert_eq!(answer(&admin, json!({"chosen_options": []})).0, 422);
    let (status, r) = answer(&admin, json!({"chosen_options": ["Approve"]}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["responded_by"], json!({"id": "admin", "name": "admin"}));
    assert_eq!(answer(&admin, json!({"chosen_options": ["Reject"]})).0, 409);
    assert_eq!(e.wait_run("approve", &run), "success");
    assert_eq!(e.state("approve", &run, "after"), "success");
    let x = xcom(&e, "approve", &run, "approval");
    assert_eq!(x["chosen_options"], json!(["Approve"]));
    assert_eq!(x["responded_by_user"]["name"], "admin");
    // The same try resumed: no second try was used.
    assert_eq!(e.states("approve", &run)["approval"].1, 1);

    // A rejection skips what is downstream; the task itself succeeds.
    let run2 = e.trigger("approve", None);
    wait_state(&e, "approve", &run2, "approval", "awaiting_input");
    let path2 = detail_path("approve", &run2, "approval");
    let (status, _) = e.srv.call(
        &admin,
        Method::Patch,
        &path2,
        Some(json!({"chosen_options": ["Reject"]})),
    );
    assert_eq!(status, 200);
    assert_eq!(e.wait_run("approve", &run2), "success");
    assert_eq!(e.state("approve", &run2, "approval"), "success");
    assert_eq!(e.state("approve", &run2, "after"), "skipped");

    // A branch: the chosen option (through options_mapping) is the task that runs.
    let run = e.trigger("branch", None);
    wait_state(&e, "branch", &run, "pick", "awaiting_input");
    let (status, r) = e.srv.call(
        &user,
        Method::Patch,
        &detail_path("branch", &run, "pick"),
        Some(json!({"chosen_options": ["Left"]})),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(e.wait_run("branch", &run), "success");
    assert_eq!(e.state("branch", &run, "go_left"), "success");
    assert_eq!(e.state("branch", &run, "Right"), "skipped");
    assert_eq!(xcom(&e, "branch", &run, "pick"), json!(["go_left"]));

    // An entry form, assigned to `user` only: the admin may not answer it.
    let run = e.trigger("entry", None);
    wait_state(&e, "entry", &run, "form", "awaiting_input");
    let path = detail_path("entry", &run, "form");
    let (_, d) = e.srv.call(&viewer, Method::Get, &path, None);
    assert_eq!(d["options"], json!(["OK"]));
    assert_eq!(d["defaults"], json!(["OK"]));
    assert_eq!(d["params"]["count"]["schema"], json!({"type": "integer"}));
    assert_eq!(d["assigned_users"], json!([{"id": "user", "name": "user"}]));
    let body = json!({"chosen_options": ["OK"], "params_input": {"name": "Ada", "count": 3}});
    let (status, err) = e.srv.call(&admin, Method::Patch, &path, Some(body.clone()));
    assert_eq!(status, 403, "{err}");
    assert_eq!(
        err["detail"],
        "User=admin (id=admin) is not a respondent for the task."
    );
    let (status, _) = e.srv.call(&user, Method::Patch, &path, Some(body));
    assert_eq!(status, 200);
    assert_eq!(e.wait_run("entry", &run), "success");
    let x = xcom(&e, "entry", &run, "form");
    assert_eq!(x["params_input"], json!({"name": "Ada", "count": 3}));
    assert_eq!(x["chosen_options"], json!(["OK"]));
    // A value its param's schema refuses fails the task when it resumes, as in Airflow.
    let run = e.trigger("entry", None);
    wait_state(&e, "entry", &run, "form", "awaiting_input");
    let bad = json!({"chosen_options": ["OK"], "params_input": {"name": "Ada", "count": "three"}});
    let (status, _) = e.srv.call(
        &user,
        Method::Patch,
        &detail_path("entry", &run, "form"),
        Some(bad),
    );
    assert_eq!(status, 200);
    assert_eq!(e.wait_run("entry", &run), "failed");
    let log = e.log("entry", &run, "form", 1);
    assert!(
        log.contains("ParamValidationError: Invalid input for param count"),
        "{log}"
    );

    // Timeouts: the defaults are chosen (by nobody), or the task fails without them.
    let run = e.trigger("timeout", None);
    assert_eq!(e.wait_run("timeout", &run), "failed");
    assert_eq!(e.state("timeout", &run, "wait_default"), "success");
    assert_eq!(e.state("timeout", &run, "wait_fail"), "failed");
    let (_, d) = e.srv.call(
        &viewer,
        Method::Get,
        &detail_path("timeout", &run, "wait_default"),
        None,
    );
    assert_eq!(d["chosen_options"], json!(["no"]));
    assert_eq!(d["responded_by_user"], Value::Null);
    assert_eq!(d["response_received"], true);
    assert_eq!(
        xcom(&e, "timeout", &run, "wait_default")["chosen_options"],
        json!(["no"])
    );
    assert!(
        e.log("timeout", &run, "wait_fail", 1)
            .contains("HITLTimeoutError"),
        "{}",
        e.log("timeout", &run, "wait_fail", 1)
    );
    // Nothing waits any more.
    let (_, l) = e.srv.call(
        &viewer,
        Method::Get,
        "/api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false",
        None,
    );
    assert_eq!(l["total_entries"], 1, "only the one that failed: {l}");
    let (status, _) = e.srv.call(
        &viewer,
        Method::Get,
        &detail_path("timeout", "nope", "wait_default"),
        None,
    );
    assert_eq!(status, 404);
    // The list's filters and order, as Airflow's.
    let all = "/api/v2/dags/~/dagRuns/~/hitlDetails";
    let count = |query: &str| {
        let (status, l) = e
            .srv
            .call(&viewer, Method::Get, &format!("{all}?{query}"), None);
        assert_eq!(status, 200, "{query}: {l}");
        l["total_entries"].as_u64().unwrap_or(0)
    };
    assert_eq!(count(""), 7);
    assert_eq!(count("dag_id_pattern=appr"), 2);
    assert_eq!(count("task_id=pick"), 1);
    assert_eq!(count("state=success"), 5);
    assert_eq!(count("responded_by_user_name=user"), 3);
    assert_eq!(count("subject_search=quick"), 2);
    let (_, l) = e.srv.call(
        &viewer,
        Method::Get,
        &format!("{all}?order_by=-created_at&limit=1"),
        None,
    );
    assert_eq!(
        l["hitl_details"][0]["task_instance"]["dag_id"], "timeout",
        "{l}"
    );
    assert_eq!(l["total_entries"], 7);
    let (status, err) = e
        .srv
        .call(&viewer, Method::Get, &format!("{all}?order_by=nope"), None);
    assert_eq!(status, 400, "{err}");
}
