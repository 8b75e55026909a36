//! Dynamic task mapping, end to end: Bash tasks expanded over literals run as task
//! instances with map indexes 0..n-1, each with its own try, log, XCom and state; the
//! tasks downstream see them all; the Core API reads and clears them one by one.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::engine::{Engine, dag, task};
use crate::util::{Method, USERS, wait_until};

/// map index -> (state, try number) of one task's instances.
fn instances(
    e: &Engine,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
) -> BTreeMap<i64, (String, u32)> {
    e.store()
        .tis_of_run(dag_id, run_id)
        .unwrap()
        .into_iter()
        .filter(|t| t.task_id == task_id)
        .map(|t| {
            (
                t.map_index,
                (
                    t.state.map_or("none".into(), |s| s.to_string()),
                    t.try_number,
                ),
            )
        })
        .collect()
}

/// The log of one try of one mapped instance, from where Airflow lays it out.
fn mapped_log(
    e: &Engine,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i64,
    try_number: u32,
) -> String {
    let path = e
        .home
        .path
        .join("logs")
        .join(format!("dag_id={dag_id}"))
        .join(format!("run_id={run_id}"))
        .join(format!("task_id={task_id}"))
        .join(format!("map_index={map_index}"))
        .join(format!("attempt={try_number}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn states(list: &[(i64, &str)]) -> BTreeMap<i64, (String, u32)> {
    list.iter().map(|(i, s)| (*i, (s.to_string(), 1))).collect()
}

#[test]
fn bash_mapped_over_a_literal_runs_each_value_as_its_own_instance() {
    let tasks = [
        task("first", "echo first", ""),
        "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      dependencies: [first]\n      partial:\n        bash_command: 'echo \"value=$V index={{ ti.map_index }}\"'\n        map_index_template: 'item {{ ti.map_index }}'\n      expand:\n        env: [{V: red}, {V: green}, {V: blue}]\n".to_string(),
        task(
            "after",
            "echo {{ ti.xcom_pull(task_ids='m') }}",
            "dependencies: [m]",
        ),
    ]
    .concat();
    let e = Engine::start(&[("m.yml", &dag("mapped", "", &tasks))], &[]);
    let run = e.trigger("mapped", None);
    assert_eq!(e.wait_run("mapped", &run), "success");
    assert_eq!(
        instances(&e, "mapped", &run, "m"),
        states(&[(0, "success"), (1, "success"), (2, "success")])
    );
    let tis = e.store().tis_of_run("mapped", &run).unwrap();
    let end_of_m = tis
        .iter()
        .filter(|t| t.task_id == "m")
        .filter_map(|t| t.end_date)
        .max();
    let after = tis.iter().find(|t| t.task_id == "after").unwrap();
    assert!(
        after.start_date >= end_of_m,
        "downstream started before every instance ended"
    );
    for (i, colour) in ["red", "green", "blue"].iter().enumerate() {
        let log = mapped_log(&e, "mapped", &run, "m", i as i64, 1);
        assert!(
            log.contains(&format!("task_id=m map_index={i} try 1")),
            "{log}"
        );
        assert!(
            log.lines()
                .any(|l| l == format!("value={colour} index={i}")),
            "{log}"
        );
        let ti = tis
            .iter()
            .find(|t| t.task_id == "m" && t.map_index == i as i64)
            .unwrap();
        assert_eq!(
            ti.rendered_map_index.as_deref(),
            Some(format!("item {i}").as_str())
        );
    }
    // Downstream, xcom_pull of the mapped task is every instance's value, in map index
    // order, as Airflow 3's `XCom.get_all`.
    let log = e.log("mapped", &run, "after", 1);
    assert!(
        log.lines().any(
            |l| l == "[value=red index=0, value=green index=1, value=blue index=2]"
                || l == "['value=red index=0', 'value=green index=1', 'value=blue index=2']"
        ),
        "{log}"
    );
    // Each instance pushed its own return value.
    let store = e.store();
    for i in 0..3 {
        let value = store
            .xcom_at("mapped", &run, "m", i, "return_value")
            .unwrap();
        assert_eq!(
            value,
            Some(json!(format!(
                "value={} index={i}",
                ["red", "green", "blue"][i as usize]
            )))
        );
    }
}

#[test]
fn several_expanded_arguments_run_their_cross_product() {
    let tasks = "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      expand:\n        bash_command: ['echo A$X', 'echo B$X']\n        env: [{X: '1'}, {X: '2'}, {X: '3'}]\n";
    let e = Engine::start(&[("x.yml", &dag("cross", "", tasks))], &[]);
    let run = e.trigger("cross", None);
    assert_eq!(e.wait_run("cross", &run), "success");
    let got = instances(&e, "cross", &run, "m");
    assert_eq!(got.len(), 6, "{got:?}");
    // The CLI lists each instance with its map index, as Airflow's does.
    let out = e
        .home
        .run(
            &[
                "tasks",
                "states-for-dag-run",
                "cross",
                &run,
                "--output",
                "json",
            ],
            crate::engine::FAST,
        )
        .expect(0)
        .json();
    let listed: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["map_index"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["0", "1", "2", "3", "4", "5"]);
    // The last argument varies fastest, as in Airflow.
    for (i, want) in ["A1", "A2", "A3", "B1", "B2", "B3"].iter().enumerate() {
        let log = mapped_log(&e, "cross", &run, "m", i as i64, 1);
        assert!(log.lines().any(|l| l == *want), "map index {i}: {log}");
    }
}

#[test]
fn a_task_mapped_to_nothing_is_skipped_and_so_is_what_needs_its_success() {
    let tasks = [
        task("first", "echo first", ""),
        task(
            "m",
            "echo never",
            "dependencies: [first]\nexpand: {env: []}",
        ),
        task("needs_success", "echo x", "dependencies: [m]"),
        task(
            "runs_anyway",
            "echo x",
            "dependencies: [m]\ntrigger_rule: all_done",
        ),
    ]
    .concat();
    let e = Engine::start(&[("z.yml", &dag("zero", "", &tasks))], &[]);
    let run = e.trigger("zero", None);
    assert_eq!(e.wait_run("zero", &run), "success");
    let ms = instances(&e, "zero", &run, "m");
    assert_eq!(ms.keys().copied().collect::<Vec<_>>(), [-1]);
    assert_eq!(ms[&-1].0, "skipped");
    assert_eq!(e.state("zero", &run, "needs_success"), "skipped");
    assert_eq!(e.state("zero", &run, "runs_anyway"), "success");
}

#[test]
fn one_failed_instance_fails_all_success_downstreams_but_not_all_done() {
    let tasks = [
        "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      expand:\n        bash_command: ['true', 'exit 3', 'true']\n".to_string(),
        task("needs_success", "echo x", "dependencies: [m]"),
        task("runs_anyway", "echo x", "dependencies: [m]\ntrigger_rule: all_done"),
    ]
    .concat();
    let e = Engine::start(&[("f.yml", &dag("fail_one", "", &tasks))], &[]);
    let run = e.trigger("fail_one", None);
    assert_eq!(e.wait_run("fail_one", &run), "failed");
    let ms = instances(&e, "fail_one", &run, "m");
    assert_eq!(ms[&0].0, "success", "{ms:?}");
    assert_eq!(ms[&1].0, "failed", "{ms:?}");
    assert_eq!(ms[&2].0, "success", "{ms:?}");
    assert_eq!(
        e.state("fail_one", &run, "needs_success"),
        "upstream_failed"
    );
    assert_eq!(e.state("fail_one", &run, "runs_anyway"), "success");
}

#[test]
fn the_api_reads_mapped_instances_and_clears_one() {
    let tasks = "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      map_index_template: 'n{{ ti.map_index }}'\n      expand:\n        bash_command: ['echo 0', 'exit 3', 'echo 2']\n";
    let e = Engine::start(&[("a.yml", &dag("api_map", "", tasks))], &[USERS]);
    let run = e.trigger("api_map", None);
    assert_eq!(e.wait_run("api_map", &run), "failed");
    let token = e.srv.login("user");
    let call = |method: Method, path: &str, body: Option<Value>| {
        e.srv.call(
            &token,
            method,
            &format!("/api/v2/dags/api_map/dagRuns/{run}/{path}"),
            body,
        )
    };
    // The task's own route names no instance: Airflow's 404.
    let (status, body) = call(Method::Get, "taskInstances/m", None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["detail"],
        "Task instance is mapped, add the map_index value to the URL"
    );
    let (status, body) = call(Method::Get, "taskInstances/m/1", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["map_index"].clone(), body["state"].clone()),
        (json!(1), json!("failed"))
    );
    assert_eq!(body["rendered_map_index"], "n1");
    let (status, body) = call(Method::Get, "taskInstances/m/7", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(Method::Get, "taskInstances/m/x", None);
    assert_eq!(status, 422, "{body}");
    let (status, body) = call(Method::Get, "taskInstances/m/1/tries", None);
    assert_eq!(
        (status, body["total_entries"].clone()),
        (200, json!(1)),
        "{body}"
    );
    let (status, body) = call(Method::Get, "taskInstances/m/1/tries/1", None);
    assert_eq!(
        (status, body["map_index"].clone()),
        (200, json!(1)),
        "{body}"
    );
    // The UI's grid shows the task as one cell summarising its instances, as Airflow's.
    let (status, grid) = e.srv.call(&token, Method::Get, "/ui/grid/api_map", None);
    assert_eq!(status, 200, "{grid}");
    let cell = &grid["dag_runs"][0]["task_instances"]["m"];
    assert_eq!(cell["state"], "failed", "{cell}");
    assert_eq!(cell["map_count"], 3);
    assert_eq!(cell["child_states"], json!({"success": 2, "failed": 1}));
    let (_, structure) = e
        .srv
        .call(&token, Method::Get, "/ui/structure/api_map", None);
    assert_eq!(structure["nodes"][0]["is_mapped"], true, "{structure}");
    let (_, body) = call(Method::Get, "taskInstances/m/2", None);
    assert_eq!(body["rendered_fields"]["bash_command"], "echo 2");
    // A state change names one instance; the dry run lists only it.
    let (status, body) = call(
        Method::Patch,
        "taskInstances/m/0/dry_run",
        Some(json!({"new_state": "failed"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["task_instances"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    assert_eq!(body["task_instances"][0]["map_index"], 0);
    let (status, body) = call(Method::Get, "taskInstances/m/1/dependencies", None);
    assert_eq!(
        (status, body["dependencies"].clone()),
        (200, json!([])),
        "{body}"
    );
    // listMapped: every instance, in map index order; filters and order_by.
    let (status, body) = call(Method::Get, "taskInstances/m/listMapped", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_entries"], 3);
    let indexes = |b: &Value| -> Vec<i64> {
        b["task_instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["map_index"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(indexes(&body), [0, 1, 2]);
    let (_, body) = call(
        Method::Get,
        "taskInstances/m/listMapped?state=success&order_by=-map_index",
        None,
    );
    assert_eq!(indexes(&body), [2, 0]);
    let (_, body) = call(Method::Get, "taskInstances?map_index=2", None);
    assert_eq!(indexes(&body), [2]);
    let log = e
        .srv
        .request(
            Method::Get,
            &format!("/api/v2/dags/api_map/dagRuns/{run}/taskInstances/m/logs/1?map_index=2"),
        )
        .token(&token)
        .header("Accept", "text/plain")
        .send();
    assert_eq!(log.status, 200);
    assert!(log.text.contains("echo 2"), "{}", log.text);
    let (status, _) = call(Method::Get, "taskInstances/m/logs/1?map_index=5", None);
    assert_eq!(status, 404);
    // Clearing map index 1 alone runs it again, and only it.
    let (status, body) = e.srv.call(
        &token,
        Method::Post,
        "/api/v2/dags/api_map/clearTaskInstances",
        Some(json!({"dry_run": false, "dag_run_id": run, "task_ids": [["m", 1]], "only_failed": false})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(indexes(&body), [1]);
    assert!(
        wait_until(std::time::Duration::from_secs(90), || {
            instances(&e, "api_map", &run, "m")[&1] == ("failed".to_string(), 2)
        }),
        "{:?}",
        instances(&e, "api_map", &run, "m")
    );
    assert_eq!(
        instances(&e, "api_map", &run, "m")[&0],
        ("success".to_string(), 1)
    );
    assert_eq!(
        instances(&e, "api_map", &run, "m")[&2],
        ("success".to_string(), 1)
    );
}

/// The Execution API's routes as a mapped instance's Task SDK calls them: its XComs at
/// its own map index, `mapped_length` past `[core] max_map_length` refused with Airflow's
/// reason, and `rendered-map-index`.
#[test]
fn mapped_instances_push_and_read_xcoms_at_their_map_index() {
    let tasks = "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      expand:\n        bash_command: ['sleep 30', 'sleep 30']\n";
    let e = Engine::start(
        &[("x.yml", &dag("xmap", "", tasks))],
        &[("UPDRAFT__CORE__MAX_MAP_LENGTH", "10")],
    );
    let run = e.trigger("xmap", None);
    assert!(wait_until(std::time::Duration::from_secs(90), || {
        instances(&e, "xmap", &run, "m")
            .values()
            .all(|(state, _)| state == "running")
    }));
    let store = e.store();
    let one = store.ti_at("xmap", &run, "m", 1).unwrap().unwrap();
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token =
        updraft::auth::task::mint(&secret, &one.id, one.try_number, 600.0, chrono::Utc::now());
    let push = |query: &str, value: Value| {
        let reply = e
            .srv
            .request(
                Method::Post,
                &format!("/execution/xcoms/xmap/{run}/m/k{query}"),
            )
            .token(&token)
            .json(&value)
            .send();
        (reply.status, reply.value())
    };
    let (status, body) = push("?map_index=1&mapped_length=11", json!([1]));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["detail"],
        json!({"reason": "unmappable_return_value_length",
               "message": "pushed value is too large to map as a downstream's dependency"})
    );
    assert_eq!(push("?map_index=1&mapped_length=10", json!([1, 2])).0, 201);
    // Another instance's map index is not its own.
    assert_eq!(push("?map_index=0", json!("x")).0, 403);
    // Without a map index, a task pushes at its own.
    assert_eq!(push("", json!("own")).0, 201);
    assert_eq!(
        store.xcom_at("xmap", &run, "m", 1, "k").unwrap(),
        Some(json!("own"))
    );
    assert_eq!(store.xcom_at("xmap", &run, "m", 0, "k").unwrap(), None);
    let get = |query: &str| {
        let reply = e
            .srv
            .request(
                Method::Get,
                &format!("/execution/xcoms/xmap/{run}/m/k{query}"),
            )
            .token(&token)
            .send();
        (reply.status, reply.value())
    };
    assert_eq!(
        get("?map_index=1"),
        (200, json!({"key": "k", "value": "own"}))
    );
    assert_eq!(get("?map_index=0").0, 404);
    // The sequence routes a mapped task's downstream reads its results through: the count
    // (HEAD), one by position, a slice; in map index order.
    let zero = store.ti_at("xmap", &run, "m", 0).unwrap().unwrap();
    let token0 = updraft::auth::task::mint(
        &secret,
        &zero.id,
        zero.try_number,
        600.0,
        chrono::Utc::now(),
    );
    let reply = e
        .srv
        .request(Method::Post, &format!("/execution/xcoms/xmap/{run}/m/k"))
        .token(&token0)
        .json(&json!("zero"))
        .send();
    assert_eq!(reply.status, 201);
    let head = e
        .srv
        .request(Method::Head, &format!("/execution/xcoms/xmap/{run}/m/k"))
        .token(&token)
        .send();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-range"), Some("map_indexes 2"));
    let read = |path: &str| {
        let r = e
            .srv
            .request(
                Method::Get,
                &format!("/execution/xcoms/xmap/{run}/m/k/{path}"),
            )
            .token(&token)
            .send();
        (r.status, r.value())
    };
    assert_eq!(read("item/0"), (200, json!("zero")));
    assert_eq!(read("item/-1"), (200, json!("own")));
    assert_eq!(read("item/2").0, 404);
    assert_eq!(read("slice"), (200, json!(["zero", "own"])));
    assert_eq!(read("slice?step=-1"), (200, json!(["own", "zero"])));
    assert_eq!(read("slice?start=1"), (200, json!(["own"])));
    let reply = e
        .srv
        .request(
            Method::Patch,
            &format!("/execution/task-instances/{}/rendered-map-index", one.id),
        )
        .token(&token)
        .json(&json!("the second"))
        .send();
    assert_eq!(reply.status, 204, "{}", reply.text);
    let got = store.ti_at("xmap", &run, "m", 1).unwrap().unwrap();
    assert_eq!(got.rendered_map_index.as_deref(), Some("the second"));
    e.home
        .run(&["tasks", "clear", "xmap", "-y"], crate::engine::FAST)
        .expect(0);
}

/// Mapped instances are task instances to the limits: with `max_active_tis_per_dagrun: 1`
/// no two of them run at once.
#[test]
fn max_active_tis_per_dagrun_runs_mapped_instances_one_at_a_time() {
    let tasks = "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      max_active_tis_per_dagrun: 1\n      expand:\n        bash_command: ['sleep 0.3', 'sleep 0.3', 'sleep 0.3']\n";
    let e = Engine::start(&[("l.yml", &dag("limited", "", tasks))], &[]);
    let run = e.trigger("limited", None);
    assert_eq!(e.wait_run("limited", &run), "success");
    let mut spans: Vec<_> = e
        .store()
        .tis_of_run("limited", &run)
        .unwrap()
        .into_iter()
        .map(|t| (t.start_date.unwrap(), t.end_date.unwrap()))
        .collect();
    assert_eq!(spans.len(), 3);
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two instances overlapped: {spans:?}"
        );
    }
}

/// `dags test` runs every instance in the foreground and prints each one's log under its
/// map index.
#[test]
fn dags_test_prints_each_mapped_instance() {
    let home = crate::util::TempHome::new();
    let tasks = "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      expand:\n        bash_command: ['echo first-value', 'echo second-value']\n";
    home.write("dags/t.yml", &dag("mapped_test", "", tasks));
    let out = home
        .run(&["dags", "test", "mapped_test"], crate::engine::FAST)
        .expect(0)
        .stdout();
    for (i, value) in ["first-value", "second-value"].iter().enumerate() {
        let head = format!("--- m map_index={i} (try 1): success ---");
        let at = out
            .find(&head)
            .unwrap_or_else(|| panic!("no {head:?} in {out}"))
            + head.len();
        let section = out[at..].split("\n--- ").next().unwrap_or_default();
        assert!(
            section.lines().any(|l| l == *value),
            "{value} not under {head}: {out}"
        );
    }
}

/// `tasks test --map-index N` runs that instance's values here; without one, a mapped
/// task is refused with Airflow's words.
#[test]
fn tasks_test_runs_one_mapped_instance() {
    let home = crate::util::TempHome::new();
    let tasks = "    - task_id: m\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      partial:\n        bash_command: 'echo \"$V at {{ ti.map_index }}\"'\n      expand:\n        env: [{V: first}, {V: second}]\n";
    home.write("dags/t.yml", &dag("tt", "", tasks));
    let run = home.run(
        &["tasks", "test", "tt", "m", "--map-index", "1"],
        crate::engine::FAST,
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stdout().lines().any(|l| l == "second at 1"),
        "{}",
        run.stdout()
    );
    let refused = home.run(&["tasks", "test", "tt", "m"], crate::engine::FAST);
    assert_ne!(refused.code(), 0);
    assert!(
        refused
            .stderr()
            .contains("No map_index passed to mapped task"),
        "{}",
        refused.stderr()
    );
    let beyond = home.run(
        &["tasks", "test", "tt", "m", "--map-index", "2"],
        crate::engine::FAST,
    );
    assert!(
        beyond.stderr().contains("there is no map index 2"),
        "{}",
        beyond.stderr()
    );
}

const PYTHON_LIB: &str = r#"
from airflow.sdk import get_current_context


def times(x, factor, ti=None):
    return [ti.map_index, x * factor]


def double_with_label(number, label=False):
    return f"original={number} doubled={number * 2}" if label else number * 2


def double(number):
    return number * 2


def collect():
    ti = get_current_context()["ti"]
    return {
        "times": ti.xcom_pull(task_ids="times"),
        "doubled": ti.xcom_pull(task_ids="doubled"),
        "one": ti.xcom_pull(task_ids="doubled", map_indexes=1),
        "labelled": ti.xcom_pull(task_ids="labelled"),
    }
"#;

#[test]
fn python_tasks_mapped_over_literals_call_each_instance_with_its_values() {
    let tasks = "    - task_id: times
      operator: airflow.providers.standard.operators.python.PythonOperator
      python_callable: lib.times
      partial:
        op_kwargs: {factor: 10}
      expand:
        op_args: [[1], [2], [3]]
    - task_id: doubled
      decorator: airflow.sdk.task
      python_callable: lib.double
      expand:
        number: [1, 2, 3]
    - task_id: labelled
      decorator: airflow.decorators.task
      python_callable: lib.double_with_label
      partial:
        label: true
      expand:
        number: [5, 7]
    - task_id: collect
      decorator: airflow.sdk.task
      python_callable: lib.collect
      dependencies: [times, doubled, labelled]
";
    let e = Engine::start(
        &[
            ("lib.py", PYTHON_LIB),
            ("p.yml", &dag("pymapped", "", tasks)),
        ],
        &[],
    );
    let run = e.trigger("pymapped", None);
    let state = e.wait_run("pymapped", &run);
    assert_eq!(
        state,
        "success",
        "{:?}",
        e.store().tis_of_run("pymapped", &run)
    );
    assert_eq!(
        instances(&e, "pymapped", &run, "doubled"),
        states(&[(0, "success"), (1, "success"), (2, "success")])
    );
    let store = e.store();
    for i in 0..3i64 {
        assert_eq!(
            store
                .xcom_at("pymapped", &run, "doubled", i, "return_value")
                .unwrap(),
            Some(json!((i + 1) * 2))
        );
    }
    assert_eq!(
        store
            .xcom("pymapped", &run, "collect", "return_value")
            .unwrap(),
        Some(json!({
            "times": [[0, 10], [1, 20], [2, 30]],
            "doubled": [2, 4, 6],
            "one": 4,
            "labelled": ["original=5 doubled=10", "original=7 doubled=14"],
        }))
    );
}

const UPSTREAM_LIB: &str = r#"
from airflow.sdk import get_current_context


def numbers():
    return [1, 2, 3]


def pairs():
    return {"a": 1, "b": 2}


def nothing():
    return []


def scalar():
    return 5


def templated():
    return ["{{ ti.map_index }}", "x"]


def same(text):
    return text


def commands():
    return ["echo '{{ run_id }}'", "echo two"]


def double(number):
    return number * 2


def join(key, value):
    return f"{key}={value}"


def collect():
    ti = get_current_context()["ti"]
    return {"doubled": ti.xcom_pull(task_ids="doubled"), "joined": ti.xcom_pull(task_ids="joined")}
"#;

#[test]
fn python_tasks_mapped_over_an_upstreams_result_expand_when_it_is_done() {
    let py = "airflow.providers.standard.operators.python.PythonOperator";
    let tasks = format!(
        "    - task_id: doubled
      decorator: airflow.sdk.task
      python_callable: lib.double
      expand:
        number: +numbers
    - task_id: numbers
      operator: {py}
      python_callable: lib.numbers
    - task_id: pairs
      operator: {py}
      python_callable: lib.pairs
    - task_id: joined
      operator: {py}
      python_callable: lib.join
      expand:
        op_args: pairs.output
    - task_id: nothing
      operator: {py}
      python_callable: lib.nothing
    - task_id: over_nothing
      decorator: airflow.sdk.task
      python_callable: lib.double
      expand:
        number: +nothing
    - task_id: scalar
      operator: {py}
      python_callable: lib.scalar
    - task_id: over_scalar
      decorator: airflow.sdk.task
      python_callable: lib.double
      expand:
        number: +scalar
    - task_id: collect
      decorator: airflow.sdk.task
      python_callable: lib.collect
      dependencies: [doubled, joined]
    - task_id: templated
      operator: {py}
      python_callable: lib.templated
    - task_id: unpushed
      operator: {py}
      python_callable: lib.numbers
      do_xcom_push: false
    - task_id: over_unpushed
      decorator: airflow.sdk.task
      python_callable: lib.double
      expand:
        number: +unpushed
    - task_id: raw
      decorator: airflow.sdk.task
      python_callable: lib.same
      expand:
        text: +templated
    - task_id: rendered
      decorator: airflow.sdk.task
      python_callable: lib.same
      expand:
        text: ['{{{{ ti.map_index }}}}', y]
"
    );
    let e = Engine::start(
        &[
            ("lib.py", UPSTREAM_LIB),
            ("u.yml", &dag("upmapped", "", &tasks)),
        ],
        &[],
    );
    let run = e.trigger("upmapped", None);
    let state = e.wait_run("upmapped", &run);
    let tis = e.store().tis_of_run("upmapped", &run).unwrap();
    assert_eq!(state, "failed", "{tis:?}");
    assert_eq!(
        instances(&e, "upmapped", &run, "doubled"),
        states(&[(0, "success"), (1, "success"), (2, "success")])
    );
    let store = e.store();
    assert_eq!(
        store
            .xcom("upmapped", &run, "collect", "return_value")
            .unwrap(),
        Some(json!({"doubled": [2, 4, 6], "joined": ["a=1", "b=2"]}))
    );
    // Zero length: skipped. A result that is not a list or a dict fails its task with
    // Airflow's message, and what expands over it is upstream_failed.
    let one = |t: &str| instances(&e, "upmapped", &run, t);
    assert_eq!(one("over_nothing")[&-1].0, "skipped");
    assert_eq!(one("scalar")[&-1].0, "failed");
    assert_eq!(one("over_scalar")[&-1].0, "upstream_failed");
    let log = e.log("upmapped", &run, "scalar", 1);
    assert!(log.contains("unmappable return type 'int'"), "{log}");
    assert_eq!(one("unpushed")[&-1].0, "failed");
    assert_eq!(one("over_unpushed")[&-1].0, "upstream_failed");
    let log = e.log("upmapped", &run, "unpushed", 1);
    assert!(log.contains("did not push XCom for task mapping"), "{log}");
    // A value read from an upstream's XCom is not a template (Airflow's
    // `resolved_oids`); a literal one is rendered.
    let all = |t: &str| -> Vec<Value> {
        store
            .xcom_values("upmapped", &run, t, "return_value")
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(all("raw"), [json!("{{ ti.map_index }}"), json!("x")]);
    assert_eq!(all("rendered"), [json!("0"), json!("y")]);
}

const DAGFACTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/dagfactory-dev");

/// dag-factory 1.1.0's mapped examples, run with a real interpreter.
#[test]
fn dag_factorys_mapped_python_examples_run() {
    let read = |rel: &str| std::fs::read_to_string(format!("{DAGFACTORY}/{rel}")).unwrap();
    let e = Engine::start(
        &[
            ("sample.py", &read("sample.py")),
            ("expand_tasks.py", &read("expand_tasks.py")),
            (
                "dynamic.yml",
                &read("airflow3/example_dynamic_task_mapping.yml"),
            ),
            ("taskflow.yml", &read("airflow3/example_taskflow.yml")),
            ("named.yml", &read("example_map_index_template.yml")),
        ],
        &[],
    );
    let values = |dag: &str, run: &str, task: &str| -> Vec<Value> {
        e.store()
            .xcom_values(dag, run, task, "return_value")
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };
    // `process` expands `op_args` over `request.output` ([[1], [2], [3], [4]]), with
    // `fixed_param` from `partial`'s op_kwargs.
    let run = e.trigger("dynamic_task_map", None);
    let state = e.wait_run("dynamic_task_map", &run);
    assert_eq!(state, "success", "{:?}", e.states("dynamic_task_map", &run));
    assert_eq!(
        values("dynamic_task_map", &run, "process"),
        [json!([1]), json!([2]), json!([3]), json!([4])]
    );
    assert!(mapped_log(&e, "dynamic_task_map", &run, "process", 2, 1).contains("test\n3\n"));
    let run = e.trigger("taskflow", None);
    let state = e.wait_run("taskflow", &run);
    assert_eq!(state, "success", "{:?}", e.states("taskflow", &run));
    let v = |task: &str| values("taskflow", &run, task);
    assert_eq!(
        v("double_number_with_dynamic_task_mapping_static"),
        [json!(2), json!(6), json!(10)]
    );
    assert_eq!(
        v("double_number_with_dynamic_task_mapping_taskflow"),
        [json!(4), json!(8), json!(12)]
    );
    // Two upstream results: their cross product, the last varying fastest.
    assert_eq!(
        v("multiply_with_multiple_parameters"),
        [4, 8, 12, 8, 16, 24, 12, 24, 36].map(|n| json!(n))
    );
    assert_eq!(v("double_number_with_dynamic_task_and_partial").len(), 3);
    let run = e.trigger("example_map_index_template", None);
    let state = e.wait_run("example_map_index_template", &run);
    assert_eq!(state, "success");
    assert_eq!(
        values(
            "example_map_index_template",
            &run,
            "dynamic_task_with_named_mapping"
        ),
        [json!("Black"), json!("Santos"), json!("Spencer")]
    );
    // `map_index_template: "{{ custom_mapping_key }}"` reads what the callable put into
    // its context: rendered after the call, as Airflow does.
    let mut named: Vec<(i64, Option<String>)> = e
        .store()
        .tis_of_run("example_map_index_template", &run)
        .unwrap()
        .into_iter()
        .map(|t| (t.map_index, t.rendered_map_index))
        .collect();
    named.sort();
    assert_eq!(
        named,
        [(0, "Lucy"), (1, "Vera"), (2, "Marks")].map(|(i, n)| (i, Some(n.to_string())))
    );
    // The render before the call fails (the name is not set yet) and, as Airflow's early
    // render, says nothing.
    let log = mapped_log(
        &e,
        "example_map_index_template",
        &run,
        "dynamic_task_with_named_mapping",
        0,
        1,
    );
    assert!(!log.contains("cannot render map_index_template"), "{log}");
}

/// `[core] max_map_length` bounds what a task pushes for a downstream to expand over: the
/// push is refused (Airflow's 400), so the task fails and what expands over it does not run.
#[test]
fn a_result_longer_than_max_map_length_fails_its_task() {
    let tasks = "    - task_id: numbers
      operator: airflow.providers.standard.operators.python.PythonOperator
      python_callable: lib.numbers
    - task_id: doubled
      decorator: airflow.sdk.task
      python_callable: lib.double
      expand:
        number: +numbers
";
    let e = Engine::start(
        &[
            ("lib.py", UPSTREAM_LIB),
            ("l.yml", &dag("toolong", "", tasks)),
        ],
        &[("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")],
    );
    let run = e.trigger("toolong", None);
    assert_eq!(e.wait_run("toolong", &run), "failed");
    assert_eq!(instances(&e, "toolong", &run, "numbers")[&-1].0, "failed");
    assert_eq!(
        instances(&e, "toolong", &run, "doubled")[&-1].0,
        "upstream_failed"
    );
    let log = e.log("toolong", &run, "numbers", 1);
    assert!(
        log.contains("could not push the return value's XComs"),
        "{log}"
    );
}

/// A Bash task's result is a string: a task expanded over it cannot map it, so the Bash
/// task fails with Airflow's message and what expands over it is upstream_failed.
#[test]
fn a_bash_result_cannot_be_mapped_over() {
    let tasks = [
        task("up", "echo 3", ""),
        "    - task_id: doubled
      decorator: airflow.sdk.task
      python_callable: lib.double
      expand:
        number: +up
"
        .to_string(),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", UPSTREAM_LIB),
            ("b.yml", &dag("bashup", "", &tasks)),
        ],
        &[],
    );
    let run = e.trigger("bashup", None);
    assert_eq!(e.wait_run("bashup", &run), "failed");
    assert_eq!(instances(&e, "bashup", &run, "up")[&-1].0, "failed");
    assert_eq!(
        instances(&e, "bashup", &run, "doubled")[&-1].0,
        "upstream_failed"
    );
    let log = e.log("bashup", &run, "up", 1);
    assert!(log.contains("unmappable return type 'str'"), "{log}");
}

/// A Bash task expanded over the commands a Python task returned runs each as it is: a
/// value read from an XCom is not a template (Airflow's `resolved_oids`).
#[test]
fn bash_mapped_over_a_python_result_runs_each_command_unrendered() {
    let tasks = "    - task_id: commands
      operator: airflow.providers.standard.operators.python.PythonOperator
      python_callable: lib.commands
    - task_id: run
      operator: airflow.providers.standard.operators.bash.BashOperator
      expand:
        bash_command: commands.output
";
    let e = Engine::start(
        &[("lib.py", UPSTREAM_LIB), ("c.yml", &dag("cmds", "", tasks))],
        &[],
    );
    let run = e.trigger("cmds", None);
    assert_eq!(e.wait_run("cmds", &run), "success");
    let out: Vec<Value> = e
        .store()
        .xcom_values("cmds", &run, "run", "return_value")
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(out, [json!("{{ run_id }}"), json!("two")]);
}

/// A DAG file parsed again with a longer or shorter literal list revises the instances of
/// a run already made, as Airflow's `verify_integrity` and `_revise_map_indexes_if_mapped`
/// do: the new values get instances of their own once the task may run, the map indexes
/// past a shorter list are removed, and what needs every instance's success runs.
#[test]
fn a_literal_list_changed_after_the_run_was_made_grows_or_shrinks_its_instances() {
    let long = std::time::Duration::from_secs(90);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let gate =
        std::env::temp_dir().join(format!("updraft-map-gate-{}-{nanos}", std::process::id()));
    let file = |grow: &str, shrink: &str| {
        let mapped = |id: &str, list: &str| {
            format!(
                "    - task_id: {id}\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      dependencies: [gate]\n      expand:\n        bash_command: {list}\n"
            )
        };
        dag(
            "revise",
            "",
            &format!(
                "{}{}{}{}",
                task(
                    "gate",
                    &format!("while [ ! -f '{}' ]; do sleep 0.1; done", gate.display()),
                    ""
                ),
                mapped("grow", grow),
                mapped("shrink", shrink),
                task("after", "echo done", "dependencies: [grow, shrink]"),
            ),
        )
    };
    let e = Engine::start(
        &[(
            "revise.yml",
            &file(
                "['echo g0', 'echo g1']",
                "['echo s0', 'echo s1', 'echo s2']",
            ),
        )],
        &[],
    );
    let run = e.trigger("revise", None);
    assert!(wait_until(long, || e.state("revise", &run, "gate") == "running"));
    assert_eq!(instances(&e, "revise", &run, "grow").len(), 2);
    assert_eq!(instances(&e, "revise", &run, "shrink").len(), 3);

    std::fs::write(
        e.home.dags().join("revise.yml"),
        file(
            "['echo g0', 'echo g1', 'echo g2', 'echo g3']",
            "['echo s0']",
        ),
    )
    .unwrap();
    // Once the file is parsed again the shrunk list removes its last two instances; the
    // grown one waits for its upstream before it gets new ones.
    assert!(
        wait_until(long, || {
            let now: Vec<String> = instances(&e, "revise", &run, "shrink")
                .into_values()
                .map(|(s, _)| s)
                .collect();
            now == ["none", "removed", "removed"]
        }),
        "{:?}",
        instances(&e, "revise", &run, "shrink")
    );
    assert_eq!(instances(&e, "revise", &run, "grow").len(), 2);
    std::fs::write(&gate, "").unwrap();

    assert_eq!(e.wait_run("revise", &run), "success");
    let _ = std::fs::remove_file(&gate);
    assert_eq!(
        instances(&e, "revise", &run, "grow"),
        states(&[
            (0, "success"),
            (1, "success"),
            (2, "success"),
            (3, "success")
        ])
    );
    assert_eq!(
        instances(&e, "revise", &run, "shrink"),
        [
            (0, ("success".to_string(), 1)),
            (1, ("removed".into(), 0)),
            (2, ("removed".into(), 0))
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(e.state("revise", &run, "after"), "success");
    // The new instances run their own values from the file as it is now.
    assert!(mapped_log(&e, "revise", &run, "grow", 3, 1).contains("g3"));
}

/// `map_index_template` is rendered again after the task, as Airflow's Task SDK does:
/// with the task's fields rendered (`task.bash_command` is the instance's command as it
/// ran), and a render error there fails a task that succeeded, Bash or Python (its
/// result is not pushed), where the render before the task kept quiet.
#[test]
fn map_index_template_is_rendered_after_the_task_and_its_error_fails_the_task() {
    let bash = "airflow.providers.standard.operators.bash.BashOperator";
    let tasks = format!(
        "    - task_id: named
      operator: {bash}
      retries: 2
      map_index_template: '{{{{ task.bash_command }}}}|{{{{ task.retries }}}}|{{{{ task.task_id }}}}'
      expand:
        bash_command: ['echo {{{{ ti.map_index }}}}', 'echo second']
    - task_id: bad_bash
      operator: {bash}
      map_index_template: '{{{{ nope.attr }}}}'
      expand:
        bash_command: ['echo fine']
    - task_id: bad_python
      operator: airflow.providers.standard.operators.python.PythonOperator
      python_callable: lib.same
      map_index_template: '{{{{ nope.attr }}}}'
      expand:
        op_args: [['x']]
"
    );
    let e = Engine::start(
        &[
            ("lib.py", UPSTREAM_LIB),
            ("n.yml", &dag("names", "", &tasks)),
        ],
        &[],
    );
    let run = e.trigger("names", None);
    assert_eq!(e.wait_run("names", &run), "failed");
    let tis = e.store().tis_of_run("names", &run).unwrap();
    let named: Vec<(i64, Option<String>)> = tis
        .iter()
        .filter(|t| t.task_id == "named")
        .map(|t| (t.map_index, t.rendered_map_index.clone()))
        .collect();
    assert_eq!(
        named,
        [
            (0, Some("echo 0|2|named".to_string())),
            (1, Some("echo second|2|named".to_string()))
        ]
    );
    assert_eq!(
        instances(&e, "names", &run, "named"),
        states(&[(0, "success"), (1, "success")])
    );
    for task_id in ["bad_bash", "bad_python"] {
        assert_eq!(
            instances(&e, "names", &run, task_id),
            states(&[(0, "failed")]),
            "{task_id}"
        );
        let log = mapped_log(&e, "names", &run, task_id, 0, 1);
        assert_eq!(
            log.matches("cannot render map_index_template").count(),
            1,
            "{log}"
        );
        assert!(
            e.store()
                .xcom_values("names", &run, task_id, "return_value")
                .unwrap()
                .is_empty(),
            "{task_id}"
        );
    }
}

/// `tasks test --map-index N` of a task expanded over an upstream's result reads the
/// values from the run it names (run id or logical date), as Airflow's `tasks test` runs
/// in the existing run; without such a run it says what it needs.
#[test]
fn tasks_test_of_a_task_mapped_over_a_result_reads_the_named_run() {
    let tasks = "    - task_id: commands
      operator: airflow.providers.standard.operators.python.PythonOperator
      python_callable: lib.commands
    - task_id: run
      operator: airflow.providers.standard.operators.bash.BashOperator
      expand:
        bash_command: commands.output
";
    let e = Engine::start(
        &[
            ("lib.py", UPSTREAM_LIB),
            ("c.yml", &dag("cmdtest", "", tasks)),
        ],
        &[],
    );
    let run = e.trigger("cmdtest", None);
    assert_eq!(e.wait_run("cmdtest", &run), "success");
    let test = e.home.run(
        &["tasks", "test", "cmdtest", "run", &run, "--map-index", "1"],
        crate::engine::FAST,
    );
    assert_eq!(test.code(), 0, "{}", test.stderr());
    assert!(
        test.stdout().lines().any(|l| l == "two"),
        "{}",
        test.stdout()
    );
    let no_run = e.home.run(
        &[
            "tasks",
            "test",
            "cmdtest",
            "run",
            "2001-01-01",
            "--map-index",
            "1",
        ],
        crate::engine::FAST,
    );
    assert_ne!(no_run.code(), 0);
    assert!(
        no_run.stderr().contains("name a run that has it"),
        "{}",
        no_run.stderr()
    );
}
