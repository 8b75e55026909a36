//! The command line, run as a user would: exit codes, config, and DAG folders.

use crate::util::{TempHome, TestServer, get_json};

const GOOD: &str = r#"
hello:
  schedule: "@daily"
  default_args:
    start_date: 2024-01-01
  tasks:
    - task_id: a
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo a
    - task_id: b
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo b
      dependencies: [a]
"#;

const BROKEN: &str = r#"
broken:
  tasks:
    - task_id: a
      operator: airflow.operators.nope.NopeOperator
"#;

#[test]
fn exit_codes() {
    let home = TempHome::new();
    home.run(&["version"], &[]).expect(0);
    home.run(&["--help"], &[]).expect(0);
    home.run(&["dags", "show", "--help"], &[]).expect(0);
    home.run(&[], &[]).expect(2);
    home.run(&["fly"], &[]).expect(2);
    home.run(&["dags", "list", "--output", "xml"], &[])
        .expect(2);
    home.run(&["db", "reset"], &[]).expect(2);
    home.run(&["config", "get-value", "api", "nope"], &[])
        .expect(1);
    home.run(&["dags", "show", "missing"], &[]).expect(1);
}

/// `connections add` refuses an id that exists (exit 1) and leaves the stored one as it
/// was; the check and the insert are one transaction, so two adds cannot both win.
#[test]
fn connections_add_refuses_an_existing_id() {
    let home = TempHome::new();
    home.run(&["db", "migrate"], &[]).expect(0);
    let add = |host: &str| {
        home.run(
            &[
                "connections",
                "add",
                "c1",
                "--conn-type",
                "http",
                "--conn-host",
                host,
            ],
            &[],
        )
    };
    let first = add("first.example").expect(0);
    assert!(
        first.stdout().contains("Successfully added `conn_id`=c1"),
        "{}",
        first.stdout()
    );
    let again = add("second.example").expect(1);
    assert!(
        again
            .stderr()
            .contains("A connection with `conn_id`=c1 already exists."),
        "{}",
        again.stderr()
    );
    let got = home.run(&["connections", "get", "c1"], &[]).expect(0);
    assert!(got.stdout().contains("first.example"), "{}", got.stdout());
}

#[test]
fn home_is_created_with_a_config_file() {
    let home = TempHome::new();
    let sub = home.path.join("fresh");
    let run = home.run(
        &["db", "migrate"],
        &[("UPDRAFT_HOME", sub.to_str().unwrap())],
    );
    run.expect(0);
    assert!(sub.join("updraft.cfg").is_file());
    assert!(sub.join("updraft.db").is_file());
    home.run(&["db", "check"], &[("UPDRAFT_HOME", sub.to_str().unwrap())])
        .expect(0);
    home.run(
        &["db", "reset", "--yes"],
        &[("UPDRAFT_HOME", sub.to_str().unwrap())],
    )
    .expect(0);
}

#[test]
fn db_check_fails_without_a_database() {
    let home = TempHome::new();
    let run = home.run(&["db", "check"], &[]).expect(1);
    assert!(run.stderr().contains("db migrate"), "{}", run.stderr());
}

#[test]
fn db_check_runs_sqlite_integrity_and_foreign_key_checks() {
    let home = TempHome::new();
    home.run(&["db", "migrate"], &[]).expect(0);
    let ok = home.run(&["db", "check"], &[]).expect(0);
    assert!(
        ok.stdout().contains("integrity_check ok"),
        "{}",
        ok.stdout()
    );
    let db = home.path.join("updraft.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        // An XCom of a run that does not exist: a dangling foreign key (possible with foreign
        // keys off, as the sqlite3 shell has them by default).
        c.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO xcom (dag_id, run_id, task_id, key, value, timestamp)
             VALUES ('gone', 'gone', 't', 'k', '1', '2024-01-01T00:00:00Z');",
        )
        .unwrap();
    }
    let run = home.run(&["db", "check"], &[]).expect(1);
    assert!(
        run.stderr()
            .contains("foreign_key_check: row 1 of xcom refers to a missing row of dag_run"),
        "{}",
        run.stderr()
    );
    {
        // An index that no longer matches its table: the schema says it indexes
        // another column than the one its entries came from.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "DELETE FROM xcom;
             CREATE TABLE junk (a TEXT, b TEXT);
             CREATE INDEX junk_a ON junk (a);
             INSERT INTO junk VALUES ('x', 'y');
             PRAGMA writable_schema = ON;
             UPDATE sqlite_master SET sql = 'CREATE INDEX junk_a ON junk (b)' WHERE name = 'junk_a';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    }
    let run = home.run(&["db", "check"], &[]).expect(1);
    assert!(
        run.stderr().contains("integrity_check: ") && run.stderr().contains("junk_a"),
        "{}",
        run.stderr()
    );
}

#[test]
fn config_precedence_through_the_binary() {
    let home = TempHome::new();
    home.write(
        "updraft.cfg",
        "[api]\nport = 9000\nworkers = 7\n[core]\nparallelism = 5\n",
    );
    let get = |section: &str, key: &str, env: &[(&str, &str)]| {
        home.run(&["config", "get-value", section, key], env)
            .expect(0)
            .stdout()
            .trim()
            .to_string()
    };
    assert_eq!(get("api", "port", &[]), "9000");
    assert_eq!(
        get("api", "port", &[("AIRFLOW__API__PORT", "9100")]),
        "9100"
    );
    assert_eq!(
        get(
            "api",
            "port",
            &[
                ("AIRFLOW__API__PORT", "9100"),
                ("UPDRAFT__API__PORT", "9200")
            ]
        ),
        "9200"
    );
    assert_eq!(get("api", "host", &[]), "127.0.0.1");
    let list = home
        .run(&["config", "list"], &[("AIRFLOW__CORE__PARALLELISM", "6")])
        .expect(0)
        .stdout();
    assert!(
        list.contains("parallelism = 6  # AIRFLOW__CORE__PARALLELISM"),
        "{list}"
    );
    assert!(list.contains("workers = 7  # "), "{list}");
    assert!(list.contains("host = 127.0.0.1  # default"), "{list}");
}

#[test]
fn server_flags_win_over_env_and_file_and_name_themselves() {
    let home = TempHome::new();
    home.write("updraft.cfg", "[api]\nworkers = 1\n");
    let env = [("UPDRAFT__API__WORKERS", "2")];
    // A bad flag is reported as the flag, not as a variable the user never set.
    let run = home.run(&["api-server", "--workers", "65"], &env).expect(2);
    assert!(
        run.stderr()
            .contains("[api] workers = \"65\" (from cli --workers): expected at most 64"),
        "{}",
        run.stderr()
    );
    // A good one wins over the environment and the file.
    let srv = TestServer::start(&home, &["api-server", "--workers", "3"], &env);
    let (status, health) = get_json(&format!("{}/api/v2/monitor/health", srv.base));
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["api_server"]["workers_alive"], 3, "{health}");
}

#[test]
fn bad_config_names_the_key_and_exits_2() {
    let home = TempHome::new();
    home.write("updraft.cfg", "[api]\nport = eighty\n");
    let run = home.run(&["dags", "list"], &[]).expect(2);
    assert!(
        run.stderr().contains("[api] port = \"eighty\""),
        "{}",
        run.stderr()
    );
    let run = home.run(&["version"], &[]).expect(0);
    assert!(run.stderr().is_empty());
}

#[test]
fn unknown_keys_are_warnings() {
    let home = TempHome::new();
    home.write("updraft.cfg", "[api]\nfrobnicate = 1\n");
    let run = home
        .run(
            &["config", "get-value", "api", "port"],
            &[("UPDRAFT__API__NOPE", "1")],
        )
        .expect(0);
    assert!(
        run.stderr().contains("[api] frobnicate"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("UPDRAFT__API__NOPE"),
        "{}",
        run.stderr()
    );
}

#[test]
fn dags_and_import_errors_from_a_folder() {
    let home = TempHome::new();
    let folder = home.path.join("elsewhere");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("good.yml"), GOOD).unwrap();
    std::fs::write(folder.join("sub/broken.yaml"), BROKEN).unwrap();
    std::fs::write(folder.join("legacy.py"), "from airflow import DAG\n").unwrap();
    let env = [("UPDRAFT__CORE__DAGS_FOLDER", folder.to_str().unwrap())];

    let run = home
        .run(&["dags", "list", "--output", "json"], &env)
        .expect(0);
    let dags = run.json();
    let ids: Vec<&str> = dags
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dag_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hello"]);
    assert_eq!(dags[0]["is_paused"], "True");
    assert_eq!(dags[0]["bundle_name"], "dags-folder");
    assert!(
        run.stderr().contains("Python DAGs need Apache Airflow"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("list-import-errors"),
        "{}",
        run.stderr()
    );

    let run = home
        .run(&["dags", "list-import-errors", "--output", "json"], &env)
        .expect(1);
    let errors = run.json();
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    assert_eq!(errors[0]["filepath"], "sub/broken.yaml");
    assert_eq!(errors[0]["line"], 5);
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("NopeOperator"),
        "{errors}"
    );

    let run = home.run(&["tasks", "list", "hello"], &env).expect(0);
    assert_eq!(run.stdout(), "a\nb\n");
    let run = home
        .run(&["dags", "show", "hello", "--output", "json"], &env)
        .expect(0);
    assert_eq!(
        run.json()["tasks"][1]["upstream_task_ids"],
        serde_json::json!(["a"])
    );
    let run = home.run(&["dags", "show", "hello"], &env).expect(0);
    assert!(
        run.stdout().contains("b [BashOperator] <- a"),
        "{}",
        run.stdout()
    );
}

#[test]
fn rescan_sees_edits_fixes_and_deletions() {
    let home = TempHome::new();
    let dags = home.dags();
    std::fs::write(dags.join("one.yml"), GOOD).unwrap();
    std::fs::write(dags.join("two.yml"), GOOD.replace("hello:", "second:")).unwrap();
    let ids = |home: &TempHome| -> Vec<String> {
        let run = home
            .run(&["dags", "list", "--output", "json"], &[])
            .expect(0);
        run.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["dag_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&home), ["hello", "second"]);

    // An edit that renames the DAG: the old id goes stale, the new one appears.
    std::fs::write(dags.join("one.yml"), GOOD.replace("hello:", "renamed:")).unwrap();
    assert_eq!(ids(&home), ["renamed", "second"]);

    // Breaking a file keeps its last good DAG and records an import error.
    std::fs::write(dags.join("two.yml"), format!("{GOOD}\n  : [")).unwrap();
    assert_eq!(ids(&home), ["renamed", "second"]);
    home.run(&["dags", "list-import-errors"], &[]).expect(1);

    // Deleting it removes both the DAG and the error.
    std::fs::remove_file(dags.join("two.yml")).unwrap();
    assert_eq!(ids(&home), ["renamed"]);
    home.run(&["dags", "list-import-errors"], &[]).expect(0);
}

#[test]
fn duplicate_dag_ids_across_files_are_an_import_error() {
    let home = TempHome::new();
    let dags = home.dags();
    std::fs::write(dags.join("a.yml"), GOOD).unwrap();
    std::fs::write(dags.join("b.yml"), GOOD).unwrap();
    let run = home
        .run(&["dags", "list-import-errors", "--output", "json"], &[])
        .expect(1);
    let errors = run.json();
    assert_eq!(errors[0]["filepath"], "b.yml");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("already defined in a.yml"),
        "{errors}"
    );
}

#[test]
fn examples_load_and_unload() {
    let home = TempHome::new();
    let run = home
        .run(
            &["dags", "list", "--output", "json"],
            &[("UPDRAFT__CORE__LOAD_EXAMPLES", "True")],
        )
        .expect(0);
    let dags = run.json();
    let n = dags.as_array().unwrap().len();
    assert!(n >= 3, "{dags}");
    assert!(
        dags.as_array()
            .unwrap()
            .iter()
            .all(|d| d["bundle_name"] == "example_dags")
    );
    home.run(
        &["dags", "list-import-errors"],
        &[("UPDRAFT__CORE__LOAD_EXAMPLES", "True")],
    )
    .expect(0);
    let run = home
        .run(&["dags", "list", "--output", "json"], &[])
        .expect(0);
    assert_eq!(run.json(), serde_json::json!([]));
}

#[test]
fn schema_is_json_and_served_by_the_api_server() {
    let home = TempHome::new();
    let run = home.run(&["dags", "schema"], &[]).expect(0);
    let schema = run.json();
    assert!(schema["properties"].is_object() || schema["additionalProperties"].is_object());
    let srv =
        crate::util::TestServer::start(&home, &["api-server"], &[("UPDRAFT__API__BASE_URL", "/p")]);
    let (status, served) = crate::util::get_json(&format!("{}/dag-schema.json", srv.base));
    assert_eq!((status, served), (200, schema));
}

/// The README's first DAG is the one the Airflow compatibility check loads.
#[test]
fn readme_dag_is_checked_against_airflow() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```yaml\n").expect("README has a YAML block") + "```yaml\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let checked =
        std::fs::read_to_string(root.join("tests/compat/dags/hello_updraft.yml")).unwrap();
    assert_eq!(
        block, checked,
        "README's DAG and tests/compat/dags/hello_updraft.yml differ"
    );
    let home = TempHome::new();
    std::fs::write(home.dags().join("hello.yml"), block).unwrap();
    let run = home.run(&["tasks", "list", "hello_updraft"], &[]).expect(0);
    assert_eq!(run.stdout(), "hello\nwhich_run\n");
}

/// The glibc build links `updraft` as a non-PIE (build.rs), so the loader no longer
/// relocates its pointer tables at every start, which made them private copies.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_glibc_binary_is_not_a_pie() {
    use std::io::Read;
    let mut head = [0u8; 18];
    std::fs::File::open(crate::util::bin())
        .and_then(|mut f| f.read_exact(&mut head))
        .unwrap();
    // ELF's e_type, a little-endian u16 at offset 16: 2 is ET_EXEC, 3 is ET_DYN (a PIE).
    assert_eq!(&head[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([head[16], head[17]]), 2);
}

/// A glibc server maps no shared library but glibc's own: the unwinder is GCC's static
/// libgcc_eh, linked in (build.rs), rather than libgcc_s.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_glibc_server_maps_only_glibc() {
    let home = TempHome::new();
    let srv = TestServer::start(&home, &["standalone"], &[]);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", srv.pid())).unwrap();
    let mut libs: Vec<&str> = (maps.lines())
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|path| path.rsplit('/').next())
        .filter(|name| name.contains(".so"))
        .collect();
    libs.sort();
    libs.dedup();
    assert_eq!(libs, ["ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6"]);
}
