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
