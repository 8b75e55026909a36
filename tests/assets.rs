//! Assets: producers' outlets make events, consumers run on their conditions, through
//! a real standalone; the Core and Execution API's asset routes.

use std::time::Duration;

use serde_json::{Value, json};
use updraft::store::RunRow;

use crate::engine::{Engine, task};
use crate::util::{Method, wait_until};

const LONG: Duration = Duration::from_secs(90);
const BASH: &str = "airflow.providers.standard.operators.bash.BashOperator";

fn asset(uri: &str) -> String {
    format!("{{__type__: airflow.sdk.Asset, uri: '{uri}'}}")
}

/// A DAG scheduled by `schedule` (flow YAML) with one Bash task.
fn consumer(dag_id: &str, schedule: &str) -> String {
    format!(
        "{dag_id}:\n  default_args:\n    start_date: 2024-01-01\n  catchup: false\n  schedule: {schedule}\n  tasks:\n    - task_id: use\n      operator: {BASH}\n      bash_command: 'echo consumed'\n"
    )
}

/// A manual DAG whose one task runs `cmd` and updates `outlets` (flow YAML).
fn producer(dag_id: &str, cmd: &str, outlets: &str) -> String {
    format!(
        "{dag_id}:\n  default_args:\n    start_date: 2024-01-01\n  schedule: null\n  tasks:\n{}",
        task("make", cmd, &format!("outlets: {outlets}"))
    )
}

fn runs(e: &Engine, dag_id: &str) -> Vec<RunRow> {
    e.store().runs_of(Some(dag_id), 100).unwrap()
}

fn wait_runs(e: &Engine, dag_id: &str, n: usize) -> Vec<RunRow> {
    let mut got = Vec::new();
    let ok = wait_until(LONG, || {
        got = runs(e, dag_id);
        got.len() >= n
    });
    assert!(
        ok,
        "{dag_id} has {} runs, not {n}\n{}",
        got.len(),
        e.srv.log()
    );
    got
}

/// URIs of the events a run consumed.
fn consumed(e: &Engine, run: &RunRow) -> Vec<String> {
    e.store()
        .consumed_events(run.id)
        .unwrap()
        .into_iter()
        .map(|ev| ev.uri)
        .collect()
}

#[test]
fn consumers_run_on_their_conditions_and_only_on_successful_updates() {
    let files = [
        ("prod_a.yml", producer("prod_a", "echo a", "['s3://b/a']")),
        (
            "prod_b.yml",
            producer("prod_b", "echo b", &format!("[{}]", asset("s3://b/b"))),
        ),
        ("prod_c.yml", producer("prod_c", "echo c", "['s3://b/c']")),
        (
            "prod_fail.yml",
            producer("prod_fail", "exit 3", "['s3://b/f']"),
        ),
        ("prod_p.yml", producer("prod_p", "echo p", "['s3://b/p']")),
        ("prod_t.yml", producer("prod_t", "echo t", "['s3://b/t']")),
        // AND: a list of assets, all must update.
        (
            "cons_and.yml",
            consumer("cons_and", "['s3://b/a', 's3://b/b']").replace(
                "echo consumed",
                "echo {% for uri, events in triggering_asset_events.items() %}{{ uri }}={{ events[0].source_dag_id }},{% endfor %}",
            ),
        ),
        // OR, written with dag-factory's __or__ over Asset mappings.
        (
            "cons_or.yml",
            consumer(
                "cons_or",
                &format!("{{__or__: [{}, {}]}}", asset("s3://b/a"), asset("s3://b/c")),
            ),
        ),
        ("cons_fail.yml", consumer("cons_fail", "['s3://b/f']")),
        ("cons_paused.yml", consumer("cons_paused", "['s3://b/p']")),
        (
            "cons_time.yml",
            consumer(
                "cons_time",
                &format!(
                    "{{__type__: airflow.timetables.assets.AssetOrTimeSchedule, timetable: {{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '* * * * *', timezone: UTC}}, assets: [{}]}}",
                    asset("s3://b/t")
                ),
            ),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let e = Engine::start(&files, &[]);
    let token = e.srv.login("admin");
    let loaded = wait_until(LONG, || {
        e.store().dags().map(|d| d.len()).unwrap_or(0) == files.len()
    });
    assert!(loaded, "{}", e.srv.log());
    e.home.run(&["dags", "pause", "cons_paused"], &[]).expect(0);

    // A failed producer emits nothing and triggers nothing.
    let run = e.trigger("prod_fail", None);
    assert_eq!(e.wait_run("prod_fail", &run), "failed");

    // a alone: OR runs, AND waits with a queued event.
    let run = e.trigger("prod_a", None);
    assert_eq!(e.wait_run("prod_a", &run), "success");
    let or_runs = wait_runs(&e, "cons_or", 1);
    let or_run = &or_runs[0];
    assert_eq!(or_run.run_type.as_str(), "asset_triggered");
    assert!(
        or_run.run_id.starts_with("asset_triggered__"),
        "{}",
        or_run.run_id
    );
    assert_eq!(or_run.logical_date, None);
    assert_eq!(or_run.data_interval_start, None);
    assert_eq!(or_run.triggered_by.as_deref(), Some("asset"));
    assert_eq!(consumed(&e, or_run), ["s3://b/a"]);
    assert_eq!(e.wait_run("cons_or", &or_run.run_id), "success");
    let queued = e
        .store()
        .queued_events(Some("cons_and"), None, None)
        .unwrap();
    assert_eq!(
        queued.iter().map(|q| q.uri.as_str()).collect::<Vec<_>>(),
        ["s3://b/a"]
    );
    assert!(
        runs(&e, "cons_and").is_empty(),
        "AND ran on half its condition"
    );

    // b completes the AND: one run consuming both events, the queue emptied.
    let run = e.trigger("prod_b", None);
    assert_eq!(e.wait_run("prod_b", &run), "success");
    let and_runs = wait_runs(&e, "cons_and", 1);
    assert_eq!(consumed(&e, &and_runs[0]), ["s3://b/a", "s3://b/b"]);
    assert!(
        e.store()
            .queued_events(Some("cons_and"), None, None)
            .unwrap()
            .is_empty()
    );
    assert_eq!(e.wait_run("cons_and", &and_runs[0].run_id), "success");
    // `triggering_asset_events` in a Bash task's template.
    let log = e.log("cons_and", &and_runs[0].run_id, "use", 1);
    assert!(log.contains("s3://b/a=prod_a,s3://b/b=prod_b,"), "{log}");

    // The failed producer's asset: no event, no queue, no run.
    let events = e.store().asset_events().unwrap();
    assert!(events.iter().all(|ev| ev.uri != "s3://b/f"), "{events:?}");
    assert!(runs(&e, "cons_fail").is_empty());
    // The producer's event names its source.
    let a = events.iter().find(|ev| ev.uri == "s3://b/a").unwrap();
    assert_eq!(
        (
            a.source_dag_id.as_deref(),
            a.source_task_id.as_deref(),
            a.source_map_index
        ),
        (Some("prod_a"), Some("make"), -1)
    );

    // A paused consumer gets no run (as Airflow 3.3.2, nothing is queued for it); once
    // unpaused, its next run consumes the events made while it was paused too.
    let run = e.trigger("prod_p", None);
    assert_eq!(e.wait_run("prod_p", &run), "success");
    let run = e.trigger("prod_c", None);
    assert_eq!(e.wait_run("prod_c", &run), "success");
    // cons_or's run on c shows the scheduler has passed since p's event.
    wait_runs(&e, "cons_or", 2);
    assert!(runs(&e, "cons_paused").is_empty());
    assert!(
        e.store()
            .queued_events(Some("cons_paused"), None, None)
            .unwrap()
            .is_empty()
    );
    e.home
        .run(&["dags", "unpause", "cons_paused"], &[])
        .expect(0);
    let run = e.trigger("prod_p", None);
    assert_eq!(e.wait_run("prod_p", &run), "success");
    let paused_runs = wait_runs(&e, "cons_paused", 1);
    assert_eq!(consumed(&e, &paused_runs[0]), ["s3://b/p", "s3://b/p"]);

    // The Core API: assets with their DAGs and last event, events with the runs they
    // made, a run's upstream events.
    let (status, list) = e.srv.call(
        &token,
        Method::Get,
        "/api/v2/assets?uri_pattern=s3://b/a",
        None,
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_entries"], 1, "{list}");
    let a = &list["assets"][0];
    let scheduled: Vec<&str> = a["scheduled_dags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dag_id"].as_str().unwrap())
        .collect();
    assert_eq!(scheduled, ["cons_and", "cons_or"]);
    assert_eq!(a["producing_tasks"][0]["dag_id"], "prod_a");
    assert_eq!(a["producing_tasks"][0]["task_id"], "make");
    assert!(a["last_asset_event"]["id"].is_i64(), "{a}");
    let (status, evs) = e.srv.call(
        &token,
        Method::Get,
        "/api/v2/assets/events?source_dag_id=prod_a",
        None,
    );
    assert_eq!(status, 200, "{evs}");
    assert_eq!(evs["total_entries"], 1, "{evs}");
    let made: Vec<&str> = evs["asset_events"][0]["created_dagruns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dag_id"].as_str().unwrap())
        .collect();
    assert_eq!(made, ["cons_or", "cons_and"]);
    let path = format!(
        "/api/v2/dags/cons_and/dagRuns/{}/upstreamAssetEvents",
        and_runs[0].run_id
    );
    let (status, up) = e.srv.call(&token, Method::Get, &path, None);
    assert_eq!(status, 200, "{up}");
    let uris: Vec<&str> = up["asset_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ev| ev["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["s3://b/a", "s3://b/b"]);

    // A manual event of c triggers the OR consumer like a producer's.
    let c_id = e
        .store()
        .asset_by(None, Some("s3://b/c"))
        .unwrap()
        .unwrap()
        .id;
    let (status, ev) = e.srv.call(
        &token,
        Method::Post,
        "/api/v2/assets/events",
        Some(json!({"asset_id": c_id, "extra": {"k": 1}})),
    );
    assert_eq!(status, 200, "{ev}");
    assert_eq!(ev["extra"], json!({"k": 1, "from_rest_api": true}));
    assert_eq!(ev["source_dag_id"], Value::Null);
    let or_runs = wait_runs(&e, "cons_or", 3);
    assert_eq!(consumed(&e, &or_runs[0]), ["s3://b/c"]);
    let (status, _) = e.srv.call(
        &token,
        Method::Post,
        "/api/v2/assets/events",
        Some(json!({"asset_id": 999_999})),
    );
    assert_eq!(status, 404);

    // The asset state store: set, read, listed, deleted.
    let base = format!("/api/v2/assets/{c_id}/state-store");
    let (status, body) = e.srv.call(
        &token,
        Method::Put,
        &format!("{base}/cursor"),
        Some(json!({"value": {"offset": [1, 2]}})),
    );
    assert_eq!(status, 204, "{body}");
    let (status, got) = e
        .srv
        .call(&token, Method::Get, &format!("{base}/cursor"), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["value"], json!({"offset": [1, 2]}));
    assert_eq!(got["last_updated_by"]["kind"], "api");
    let (_, list) = e.srv.call(&token, Method::Get, &base, None);
    assert_eq!(list["total_entries"], 1, "{list}");
    let (status, _) = e
        .srv
        .call(&token, Method::Delete, &format!("{base}/cursor"), None);
    assert_eq!(status, 204);
    let (status, _) = e
        .srv
        .call(&token, Method::Get, &format!("{base}/cursor"), None);
    assert_eq!(status, 404);
    let (status, _) = e.srv.call(
        &token,
        Method::Put,
        "/api/v2/assets/999999/state-store/k",
        Some(json!({"value": 1})),
    );
    assert_eq!(status, 404);

    // Queued events per DAG: listed, then dropped, so the AND never completes.
    let run = e.trigger("prod_a", None);
    assert_eq!(e.wait_run("prod_a", &run), "success");
    let mut queued = Value::Null;
    let ok = wait_until(LONG, || {
        queued = e
            .srv
            .call(
                &token,
                Method::Get,
                "/api/v2/dags/cons_and/assets/queuedEvents",
                None,
            )
            .1;
        queued["total_entries"] == 1
    });
    assert!(ok, "{queued}");
    assert_eq!(queued["queued_events"][0]["dag_id"], "cons_and");
    let (status, _) = e.srv.call(
        &token,
        Method::Delete,
        "/api/v2/dags/cons_and/assets/queuedEvents",
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = e.srv.call(
        &token,
        Method::Delete,
        "/api/v2/dags/cons_and/assets/queuedEvents",
        None,
    );
    assert_eq!(status, 404);
    let run = e.trigger("prod_b", None);
    assert_eq!(e.wait_run("prod_b", &run), "success");
    let ok = wait_until(LONG, || {
        e.store()
            .queued_events(Some("cons_and"), None, None)
            .unwrap()
            .len()
            == 1
    });
    assert!(ok);
    assert_eq!(runs(&e, "cons_and").len(), 1, "AND ran on a dropped event");

    // AssetOrTimeSchedule: a run on the asset, and one on the clock.
    let run = e.trigger("prod_t", None);
    assert_eq!(e.wait_run("prod_t", &run), "success");
    let time_runs = wait_runs(&e, "cons_time", 1);
    assert!(
        time_runs
            .iter()
            .any(|r| r.run_type.as_str() == "asset_triggered"),
        "{time_runs:?}"
    );
    let (status, details) = e
        .srv
        .call(&token, Method::Get, "/api/v2/dags/cons_time/details", None);
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["timetable_summary"], "Asset or * * * * *");
    assert_eq!(
        details["asset_expression"],
        json!({"all": [{"asset": {"uri": "s3://b/t", "name": "s3://b/t", "group": "asset"}}]})
    );
    let ok = wait_until(Duration::from_secs(150), || {
        runs(&e, "cons_time")
            .iter()
            .any(|r| r.run_type.as_str() == "scheduled")
    });
    assert!(
        ok,
        "no scheduled run of cons_time: {:?}",
        runs(&e, "cons_time")
    );
}

const PY_CALLABLES: &str = r#"
from airflow.sdk import Asset, AssetAlias

import _updraft_task


def produce(outlet_events, outlets, **context):
    outlet_events["s3://b/py"].extra = {"rows": 3, "outlets": [o.uri for o in outlets if hasattr(o, "uri")]}
    outlet_events[AssetAlias("al")].add(Asset("s3://b/via_alias"), extra={"n": 1})


def read_inlets(inlet_events, triggering_asset_events, **context):
    py = inlet_events[Asset("s3://b/py")]
    try:
        inlet_events[Asset("s3://b/not_an_inlet")]
        missing = "no KeyError"
    except KeyError:
        missing = "KeyError"
    return {
        "py_runs": [e.source_run_id for e in py],
        "newest": py[-1].source_run_id,
        "newest_first": [e.source_run_id for e in inlet_events["s3://b/py"].ascending(False).limit(1)],
        "alias": [[e.asset.uri, e.extra] for e in inlet_events[AssetAlias("al")]],
        "by_index": inlet_events[1][-1].asset.uri,
        "triggered_by_alias": [e.asset.uri for e in triggering_asset_events[AssetAlias("al")]],
        "missing": missing,
        # The Execution API route the Task SDK resolves an alias with.
        "resolved": [a["uri"] for a in _updraft_task.CLIENT.call("GET", "assets/by-alias?alias_name=al")],
        "unresolved": _updraft_task.CLIENT.call("GET", "assets/by-alias?alias_name=nothing"),
    }


def consume(triggering_asset_events, **context):
    events = triggering_asset_events["s3://b/py"]
    return {"extra": events[0].extra, "source": events[0].source_dag_id, "assets": len(triggering_asset_events)}
"#;

#[test]
fn a_python_producer_sets_extras_and_its_consumer_reads_triggering_events() {
    let producer = "prod_py:\n  default_args:\n    start_date: 2024-01-01\n  schedule: null\n  tasks:\n    - task_id: make\n      operator: airflow.providers.standard.operators.python.PythonOperator\n      python_callable: assetfns.produce\n      outlets: ['s3://b/py', {__type__: airflow.sdk.AssetAlias, name: al}]\n";
    let consumer = "cons_py:\n  default_args:\n    start_date: 2024-01-01\n  schedule: ['s3://b/py']\n  tasks:\n    - task_id: use\n      operator: airflow.providers.standard.operators.python.PythonOperator\n      python_callable: assetfns.consume\n";
    // Scheduled on the alias the producer attaches `s3://b/via_alias` through; reads its
    // inlets' events (`inlet_events`) through the Execution API.
    let on_alias = "cons_alias:\n  default_args:\n    start_date: 2024-01-01\n  schedule: [{__type__: airflow.sdk.AssetAlias, name: al}]\n  tasks:\n    - task_id: read\n      operator: airflow.providers.standard.operators.python.PythonOperator\n      python_callable: assetfns.read_inlets\n      inlets: ['s3://b/py', {__type__: airflow.sdk.AssetAlias, name: al}]\n";
    let e = Engine::start(
        &[
            ("assetfns.py", PY_CALLABLES),
            ("prod_py.yml", producer),
            ("cons_py.yml", consumer),
            ("cons_alias.yml", on_alias),
        ],
        &[],
    );
    let loaded = wait_until(LONG, || e.store().dags().map(|d| d.len()).unwrap_or(0) == 3);
    assert!(loaded, "{}", e.srv.log());
    let run = e.trigger("prod_py", None);
    assert_eq!(
        e.wait_run("prod_py", &run),
        "success",
        "{}",
        e.log("prod_py", &run, "make", 1)
    );
    let events = e.store().asset_events().unwrap();
    let py = events
        .iter()
        .find(|ev| ev.uri == "s3://b/py")
        .expect("no event of s3://b/py");
    assert_eq!(py.extra, json!({"rows": 3, "outlets": ["s3://b/py"]}));
    let alias = events
        .iter()
        .find(|ev| ev.uri == "s3://b/via_alias")
        .expect("no event through the alias");
    assert_eq!(alias.extra, json!({"n": 1}));
    let runs = wait_runs(&e, "cons_py", 1);
    assert_eq!(
        e.wait_run("cons_py", &runs[0].run_id),
        "success",
        "{}",
        e.log("cons_py", &runs[0].run_id, "use", 1)
    );
    let got = e
        .store()
        .xcom("cons_py", &runs[0].run_id, "use", "return_value")
        .unwrap();
    assert_eq!(
        got,
        Some(
            json!({"extra": {"rows": 3, "outlets": ["s3://b/py"]}, "source": "prod_py", "assets": 1})
        )
    );

    // The alias resolved to `s3://b/via_alias` when the event attached through it was
    // made, so the DAG scheduled on the alias runs, consuming that event only (as
    // Airflow 3.3.2: events of assets it schedules on, or attached through its aliases).
    let first = wait_runs(&e, "cons_alias", 1);
    assert_eq!(first[0].run_type.as_str(), "asset_triggered");
    assert_eq!(
        e.wait_run("cons_alias", &first[0].run_id),
        "success",
        "{}",
        e.log("cons_alias", &first[0].run_id, "read", 1)
    );
    assert_eq!(consumed(&e, &first[0]), ["s3://b/via_alias"]);
    // A second update: the next run of the consumer sees both, newest last.
    let run2 = e.trigger("prod_py", None);
    assert_eq!(e.wait_run("prod_py", &run2), "success");
    let both = wait_runs(&e, "cons_alias", 2);
    let second = both.iter().max_by_key(|r| r.id).unwrap();
    assert_eq!(
        e.wait_run("cons_alias", &second.run_id),
        "success",
        "{}",
        e.log("cons_alias", &second.run_id, "read", 1)
    );
    let got = e
        .store()
        .xcom("cons_alias", &second.run_id, "read", "return_value")
        .unwrap();
    assert_eq!(
        got,
        Some(json!({
            "py_runs": [run, run2],
            "newest": run2,
            "newest_first": [run2],
            "alias": [["s3://b/via_alias", {"n": 1}], ["s3://b/via_alias", {"n": 1}]],
            "by_index": "s3://b/via_alias",
            "triggered_by_alias": ["s3://b/via_alias"],
            "missing": "KeyError",
            "resolved": ["s3://b/via_alias"],
            "unresolved": [],
        }))
    );
}

#[test]
fn the_asset_list_filters_on_exact_dag_ids_as_airflow() {
    // `dag_ids` names DAGs exactly (Airflow's `_DagIdAssetReferenceFilter`): those
    // scheduled on an asset or producing it, not those that only read it.
    let reader = format!(
        "reader:\n  default_args:\n    start_date: 2024-01-01\n  schedule: null\n  tasks:\n{}",
        task("read", "echo r", "inlets: ['s3://b/x']")
    );
    let files = [
        ("prod.yml", producer("prod", "echo p", "['s3://b/x']")),
        ("cons.yml", consumer("cons", "['s3://b/y']")),
        ("reader.yml", reader),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let e = Engine::start(&files, &[]);
    let token = e.srv.login("admin");
    let loaded = wait_until(LONG, || {
        e.store().dags().map(|d| d.len()).unwrap_or(0) == files.len()
    });
    assert!(loaded, "{}", e.srv.log());
    let uris = |query: &str| -> Vec<String> {
        let (status, list) = e.srv.call(
            &token,
            Method::Get,
            &format!("/api/v2/assets?order_by=uri&{query}"),
            None,
        );
        assert_eq!(status, 200, "{list}");
        list["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["uri"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(uris("dag_ids=prod"), ["s3://b/x"]);
    assert_eq!(uris("dag_ids=cons"), ["s3://b/y"]);
    assert_eq!(uris("dag_ids=prod,cons"), ["s3://b/x", "s3://b/y"]);
    assert_eq!(uris("dag_ids=prod&dag_ids=cons"), ["s3://b/x", "s3://b/y"]);
    // Not a pattern, and a DAG that only reads an asset does not count.
    assert!(uris("dag_ids=pro").is_empty());
    assert!(uris("dag_ids=reader").is_empty());
    assert!(uris("dag_ids=nothing").is_empty());
}
