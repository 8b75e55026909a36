//! dag-factory's file features against a real `standalone` and the CLI: `defaults.yml` up
//! the folder tree, re-read when it changes; `doc_md_file_path` with `$CONFIG_ROOT_DIR`;
//! keys Airflow 3 refuses as import errors with their file and line.

use std::time::Duration;

use serde_json::{Value, json};

use crate::engine::FAST;
use crate::util::{Method, TempHome, TestServer, USERS, wait_until};

const WAIT: Duration = Duration::from_secs(60);

const DAG: &str = "d:
  doc_md_file_path: $CONFIG_ROOT_DIR/team/doc.md
  tasks:
    - task_id: t
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo hi
";

/// Editing a `defaults.yml` (and not the DAG file) re-parses the DAG below it; so do adding
/// a bad one (an import error naming it) and removing it again.
#[test]
fn editing_a_defaults_file_reparses_the_dags_below_it() {
    let home = TempHome::new();
    home.write(
        "dags/defaults.yml",
        "default_args:\n  owner: first\n  start_date: 2024-01-01\n",
    );
    home.write("dags/team/defaults.yml", "default_args:\n  retries: 2\n");
    home.write("dags/team/d.yml", DAG);
    home.write("dags/team/doc.md", "# About d\n");
    let mut env = FAST.to_vec();
    env.push(USERS);
    let srv = TestServer::start(&home, &["standalone"], &env);
    let token = srv.login("viewer");
    let get = |path: &str| srv.call(&token, Method::Get, path, None);
    let task = || get("/api/v2/dags/d/tasks/t").1;
    let waits_for = |what: &str, ok: &dyn Fn(&Value) -> bool, read: &dyn Fn() -> Value| {
        let mut seen = Value::Null;
        let done = wait_until(WAIT, || {
            seen = read();
            ok(&seen)
        });
        assert!(done, "{what}: last saw {seen}; log:\n{}", srv.log());
        seen
    };
    waits_for(
        "the DAG with both defaults",
        &|t| t["owner"] == "first" && t["retries"] == 2.0,
        &task,
    );
    // The defaults files are not DAG files, and the doc file was read.
    let (_, dags) = get("/api/v2/dags");
    assert_eq!(dags["total_entries"], 1, "{dags}");
    let (_, details) = get("/api/v2/dags/d/details");
    assert_eq!(details["doc_md"], "# About d\n", "{details}");

    // The root's defaults change; the DAG file does not.
    home.write(
        "dags/defaults.yml",
        "default_args:\n  owner: second owner\n  start_date: 2024-01-01\n",
    );
    waits_for(
        "the new owner",
        &|t| t["owner"] == "second owner" && t["retries"] == 2.0,
        &task,
    );

    // A key Airflow 3 refuses, in the team's defaults: an import error for the DAG file
    // that names the defaults file and the line.
    home.write(
        "dags/team/defaults.yml",
        "default_args:\n  retries: 2\nschedule_interval: '@daily'\n",
    );
    let errors = || get("/api/v2/importErrors").1;
    let seen = waits_for("the import error", &|v| v["total_entries"] == 1, &errors);
    let error = &seen["import_errors"][0];
    assert_eq!(error["filename"], "team/d.yml", "{error}");
    let trace = error["stack_trace"].as_str().unwrap_or_default();
    assert!(
        trace.starts_with(
            "team/d.yml:1:1: in team/defaults.yml at line 3, column 20: `schedule_interval` is no longer accepted"
        ),
        "{trace}"
    );

    // Without it, the DAG loads again with the root's defaults alone.
    std::fs::remove_file(home.path.join("dags/team/defaults.yml")).unwrap();
    waits_for("no import error", &|v| v["total_entries"] == 0, &errors);
    waits_for(
        "the DAG without the team's defaults",
        &|t| t["owner"] == "second owner" && t["retries"] == 0.0,
        &task,
    );
}

/// A refused key in the DAG file itself: the CLI lists the import error at its line and
/// column, and `$VAR`s the environment sets are expanded.
#[test]
fn refused_keys_are_import_errors_at_their_line() {
    let home = TempHome::new();
    home.write(
        "dags/ok.yml",
        "ok_$TEAM:\n  schedule: '@daily'\n  default_view: grid\n  orientation: LR\n  tasks: []\n",
    );
    home.write(
        "dags/bad.yml",
        "bad:\n  tasks:\n    - task_id: t\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n      provide_context: true\n",
    );
    let env = [("TEAM", "blue")];
    let listed = home.run(&["dags", "list", "--output", "json"], &env).json();
    let ids: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["dag_id"])
        .collect();
    assert_eq!(ids, [&json!("ok_blue")], "{listed}");
    let errors = home
        .run(&["dags", "list-import-errors", "--output", "json"], &env)
        .expect(1)
        .json();
    let error = &errors[0];
    assert_eq!(
        (&error["filepath"], &error["line"], &error["column"]),
        (&json!("bad.yml"), &json!(5), &json!(7)),
        "{errors}"
    );
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("EmptyOperator takes no argument `provide_context`"),
        "{errors}"
    );
}

/// Issue 19: a DAG gets a new version when its file's text or its parsed structure
/// changes, each version keeps its text (`dagSources?version_number=`), and a run records
/// the version it was created with (`dag_versions`, the `dag_version` filter).
#[test]
fn a_dag_is_versioned_by_its_text_and_structure_and_runs_record_theirs() {
    let home = TempHome::new();
    let v1 = "v:\n  schedule: null\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n    - task_id: t\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: echo 1\n";
    home.write("dags/v.yml", v1);
    let mut env = FAST.to_vec();
    env.push(USERS);
    let srv = TestServer::start(&home, &["standalone"], &env);
    let token = srv.login("admin");
    let get = |path: &str| srv.call(&token, Method::Get, path, None);
    let versions_are = |n: u64| {
        let mut seen = Value::Null;
        let ok = wait_until(WAIT, || {
            seen = get("/api/v2/dags/v/dagVersions").1;
            seen["total_entries"] == n
        });
        assert!(ok, "want {n} versions, saw {seen}; log:\n{}", srv.log());
        seen
    };
    let first = versions_are(1);
    assert_eq!(first["dag_versions"][0]["version_number"], 1, "{first}");
    let (_, source) = get("/api/v2/dagSources/v");
    assert_eq!(
        (source["content"].as_str(), &source["version_number"]),
        (Some(v1), &json!(1))
    );
    let (status, run) = srv.call(
        &token,
        Method::Post,
        "/api/v2/dags/v/dagRuns",
        Some(json!({"logical_date": null})),
    );
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["dag_versions"][0]["version_number"], 1, "{run}");
    let run_id = run["dag_run_id"].as_str().unwrap_or_default().to_string();

    // The text changes (a comment), the structure does not: a new version all the same.
    let v2 = format!("# edited\n{v1}");
    home.write("dags/v.yml", &v2);
    versions_are(2);
    // The structure changes: another.
    let v3 = v2.replace("echo 1", "echo 3");
    home.write("dags/v.yml", &v3);
    let all = versions_are(3);
    let numbers: Vec<&Value> = all["dag_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version_number"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(2), &json!(3)], "{all}");
    for (n, text) in [(1, v1), (2, v2.as_str()), (3, v3.as_str())] {
        let (status, s) = get(&format!("/api/v2/dagSources/v?version_number={n}"));
        assert_eq!(
            (status, s["content"].as_str()),
            (200, Some(text)),
            "version {n}: {s}"
        );
    }
    let (status, one) = get("/api/v2/dags/v/dagVersions/2");
    assert_eq!(
        (status, &one["version_number"], &one["dag_id"]),
        (200, &json!(2), &json!("v")),
        "{one}"
    );
    assert_eq!(get("/api/v2/dags/v/dagVersions/9").0, 404);
    assert_eq!(get("/api/v2/dagSources/v?version_number=9").0, 404);
    // The run keeps the version it was created with.
    let (_, run) = get(&format!("/api/v2/dags/v/dagRuns/{run_id}"));
    assert_eq!(run["dag_versions"][0]["version_number"], 1, "{run}");
    let (_, runs) = get("/api/v2/dags/v/dagRuns?dag_version=1");
    assert_eq!(runs["total_entries"], 1, "{runs}");
    let (_, runs) = get("/api/v2/dags/v/dagRuns?dag_version=3");
    assert_eq!(runs["total_entries"], 0, "{runs}");
}
