//! The built-in operators run for real in one standalone: HttpOperator against an HTTP
//! server the test runs on loopback, the SQL operators on a SQLite file, a
//! TriggerDagRunOperator starting (and waiting for) a second DAG, the branch operators,
//! and dag-factory's HTTP examples. No sleeps: every wait polls a condition.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::engine::{Engine, FAST, dag, task};
use crate::util::Method;

/// One request as the loopback server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server on 127.0.0.1: `/missing` is a 404, `/json...` a 200 with a JSON
/// body, anything else a 200 whose body echoes the method, target and body. Every request is recorded.
fn loopback_server() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let target = parts.next().unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim_end().split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).into_owned();
            let (status, ctype, text) = if target.starts_with("/missing") {
                ("404 Not Found", "text/plain", "no such thing".to_string())
            } else if target.starts_with("/json") {
                (
                    "200 OK",
                    "application/json",
                    r#"{"ready": true, "n": 3}"#.to_string(),
                )
            } else {
                (
                    "200 OK",
                    "text/plain",
                    format!("echo:{method} {target} {body}"),
                )
            };
            log.lock().unwrap().push(Seen {
                method,
                target,
                headers,
                body,
            });
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (port, seen)
}

/// One task of a built-in operator as a YAML list item.
fn op(id: &str, operator: &str, more: &str) -> String {
    let mut s = format!("    - task_id: {id}\n      operator: {operator}\n");
    for line in more.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str(&format!("      {line}\n"));
    }
    s
}

const HTTP: &str = "airflow.providers.http.operators.http.HttpOperator";
const SIMPLE_HTTP: &str = "airflow.providers.http.operators.http.SimpleHttpOperator";
const HTTP_SENSOR: &str = "airflow.providers.http.sensors.http.HttpSensor";
const SQL_SENSOR: &str = "airflow.providers.common.sql.sensors.sql.SqlSensor";
const SQL: &str = "airflow.providers.common.sql.operators.sql.SQLExecuteQueryOperator";
const SQL_CHECK: &str = "airflow.providers.common.sql.operators.sql.SQLCheckOperator";
const SQL_VALUE: &str = "airflow.operators.sql.SQLValueCheckOperator";
const TRIGGER: &str = "airflow.providers.standard.operators.trigger_dagrun.TriggerDagRunOperator";

fn xcom(e: &Engine, dag_id: &str, run: &str, task: &str, key: &str) -> Option<Value> {
    e.store().xcom(dag_id, run, task, key).unwrap()
}

#[test]
fn http_sql_trigger_and_branch_operators_run_in_the_supervisor() {
    let (port, seen) = loopback_server();
    let db = std::env::temp_dir().join(format!("updraft-ops-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let http = [
        op(
            "get",
            HTTP,
            "http_conn_id: web\nmethod: GET\nendpoint: 'hello/{{ params.who }}'\ndata: {q: '{{ params.who }}'}\nheaders: {X-Run: '{{ params.who }}'}\nlog_response: true",
        ),
        op(
            "post_json",
            SIMPLE_HTTP,
            "http_conn_id: web\nendpoint: /submit\ndata: {k: v}\nheaders: {Content-Type: application/json}\ndependencies: [get]",
        ),
        op(
            "missing",
            HTTP,
            "http_conn_id: web\nmethod: GET\nendpoint: /missing\ndependencies: [post_json]",
        ),
        // HttpSensor: a 200 is done; a 404 waits (here in reschedule mode) until the
        // timeout, which soft_fail turns into a skip.
        op("sense", HTTP_SENSOR, "http_conn_id: web\nendpoint: 'hello/{{ params.who }}'"),
        op(
            "sense_missing",
            "airflow.sensors.http_sensor.HttpSensor",
            "http_conn_id: web\nendpoint: /missing\nmode: reschedule\npoke_interval: 0.2\ntimeout: 1\nsoft_fail: true",
        ),
    ]
    .concat();
    let sql = [
        op(
            "create",
            SQL,
            "conn_id: db\nsql: \"CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x;y'); INSERT INTO t VALUES (2, 'z')\"\nsplit_statements: true\nreturn_last: false",
        ),
        op(
            "select",
            SQL,
            "conn_id: db\nsql: 'SELECT a, b FROM t WHERE a >= ? AND b != ''{{ params.skip }}'' ORDER BY a'\nparameters: [1]\ndependencies: [create]",
        ),
        op(
            "check_ok",
            SQL_CHECK,
            "conn_id: db\nsql: SELECT count(*) FROM t\ndependencies: [create]",
        ),
        op(
            "quiet",
            SQL,
            "conn_id: db\nsql: SELECT 1\ndo_xcom_push: false\ndependencies: [create]",
        ),
        op(
            "check_bad",
            SQL_CHECK,
            "conn_id: db\nsql: SELECT count(*) FROM t WHERE a > 5\ndependencies: [create]",
        ),
        op(
            "value_ok",
            SQL_VALUE,
            "conn_id: db\nsql: SELECT sum(a) FROM t\npass_value: 3\ndependencies: [create]",
        ),
        op(
            "value_bad",
            SQL_VALUE,
            "conn_id: db\nsql: SELECT sum(a) FROM t\npass_value: 10\ntolerance: 0.1\ndependencies: [create]",
        ),
        // SqlSensor: a truthy first cell is done; no rows waits until the timeout.
        op(
            "rows",
            SQL_SENSOR,
            "conn_id: db\nsql: SELECT count(*) FROM t\nmode: reschedule\npoke_interval: 0.2\ndependencies: [create]",
        ),
        op(
            "no_rows",
            SQL_SENSOR,
            "conn_id: db\nsql: SELECT a FROM t WHERE a > 5\npoke_interval: 0.2\ntimeout: 1\ndependencies: [create]",
        ),
    ]
    .concat();
    let parent = [
        op(
            "start_child",
            TRIGGER,
            "trigger_dag_id: child\ntrigger_run_id: 'from_{{ params.who }}'\nconf: {who: '{{ params.who }}'}\nwait_for_completion: true\npoke_interval: 0.2",
        ),
        op(
            "again",
            TRIGGER,
            "trigger_dag_id: child\ntrigger_run_id: 'from_{{ params.who }}'\nskip_when_already_exists: true\ndependencies: [start_child]",
        ),
        op(
            "reset",
            TRIGGER,
            "trigger_dag_id: child\ntrigger_run_id: 'from_{{ params.who }}'\nreset_dag_run: true\nwait_for_completion: true\npoke_interval: 0.2\ndependencies: [again]\ntrigger_rule: all_done",
        ),
        op(
            "fail_child",
            TRIGGER,
            "trigger_dag_id: child\nconf: {fail: 1}\nlogical_date: '2024-02-03T04:05:06+00:00'\nwait_for_completion: true\npoke_interval: 0.2",
        ),
        op(
            "no_such_dag",
            TRIGGER,
            "trigger_dag_id: nowhere",
        ),
    ]
    .concat();
    let child = task(
        "work",
        "echo got {{ dag_run.conf.who }}; test -z '{{ dag_run.conf.get(\"fail\", \"\") }}'",
        "",
    );
    let branches = [
        op(
            "weekday",
            "airflow.providers.standard.operators.weekday.BranchDayOfWeekOperator",
            "week_day: [Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday]\nfollow_task_ids_if_true: yes_day\nfollow_task_ids_if_false: no_day",
        ),
        task("yes_day", "echo yes", "dependencies: [weekday]"),
        task("no_day", "echo no", "dependencies: [weekday]"),
        op(
            "when",
            "airflow.operators.datetime.BranchDateTimeOperator",
            "target_upper: '2000-01-01T00:00:00+00:00'\ntarget_lower: null\nfollow_task_ids_if_true: [in_time]\nfollow_task_ids_if_false: [too_late]",
        ),
        task("in_time", "echo in", "dependencies: [when]"),
        task("too_late", "echo late", "dependencies: [when]"),
        op(
            "latest",
            "airflow.operators.latest_only.LatestOnlyOperator",
            "",
        ),
        task("after_latest", "echo latest", "dependencies: [latest]"),
    ]
    .concat();
    let params = "  params:\n    who: me\n    skip: nothing\n";
    let e = Engine::start(
        &[
            ("http.yml", &dag("http_ops", params, &http)),
            ("sql.yml", &dag("sql_ops", params, &sql)),
            ("parent.yml", &dag("parent", params, &parent)),
            ("child.yml", &dag("child", "", &child)),
            ("branches.yml", &dag("branches", "", &branches)),
            (
                "old.yml",
                &format!(
                    "old:\n  schedule: '@daily'\n  catchup: false\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n{}{}",
                    op(
                        "latest",
                        "airflow.operators.latest_only.LatestOnlyOperator",
                        ""
                    ),
                    task("after_latest", "echo latest", "dependencies: [latest]"),
                ),
            ),
        ],
        &[],
    );
    let add = |args: &[&str]| e.home.run(args, FAST).expect(0);
    let port = port.to_string();
    add(&[
        "connections",
        "add",
        "web",
        "--conn-type",
        "http",
        "--conn-host",
        "127.0.0.1",
        "--conn-port",
        &port,
        "--conn-login",
        "u",
        "--conn-password",
        "p",
        "--conn-extra",
        r#"{"X-Extra": "e", "timeout": 30}"#,
    ]);
    let db_path = db.to_string_lossy().into_owned();
    add(&[
        "connections",
        "add",
        "db",
        "--conn-type",
        "sqlite",
        "--conn-host",
        &db_path,
    ]);

    // HTTP: the connection's host, port, basic auth and extra headers; templated
    // endpoint, data and headers; the body is the XCom; a 404 fails the task.
    let run = e.trigger("http_ops", None);
    assert_eq!(
        e.wait_run("http_ops", &run),
        "failed",
        "{:?}",
        e.states("http_ops", &run)
    );
    let states = e.states("http_ops", &run);
    assert_eq!(
        states["get"].0,
        "success",
        "{}",
        e.log("http_ops", &run, "get", 1)
    );
    assert_eq!(
        states["post_json"].0,
        "success",
        "{}",
        e.log("http_ops", &run, "post_json", 1)
    );
    assert_eq!(states["missing"].0, "failed");
    assert_eq!(states["sense"].0, "success");
    assert_eq!(
        states["sense_missing"].0,
        "skipped",
        "{}",
        e.log("http_ops", &run, "sense_missing", 1)
    );
    assert!(
        e.log("http_ops", &run, "sense_missing", 1)
            .contains("Poking: /missing")
    );
    assert!(
        e.log("http_ops", &run, "missing", 1)
            .contains("404:Not Found")
    );
    assert_eq!(
        xcom(&e, "http_ops", &run, "get", "return_value"),
        Some(json!("echo:GET /hello/me?q=me "))
    );
    assert!(
        e.log("http_ops", &run, "get", 1)
            .contains("echo:GET /hello/me?q=me"),
        "log_response"
    );
    assert_eq!(
        xcom(&e, "http_ops", &run, "post_json", "return_value"),
        Some(json!(r#"echo:POST /submit {"k":"v"}"#))
    );
    {
        let seen = seen.lock().unwrap();
        let get = seen
            .iter()
            .find(|s| s.target.starts_with("/hello/me?q="))
            .unwrap();
        // The HttpSensor's templated endpoint, without the operator's data.
        assert!(seen.iter().any(|s| s.target == "/hello/me"));
        assert_eq!(get.method, "GET");
        assert_eq!(get.header("x-run"), Some("me"));
        assert_eq!(get.header("x-extra"), Some("e"));
        // u:p
        assert_eq!(get.header("authorization"), Some("Basic dTpw"));
        let post = seen.iter().find(|s| s.target == "/submit").unwrap();
        assert_eq!(post.header("content-type"), Some("application/json"));
        assert_eq!(post.body, r#"{"k":"v"}"#);
    }

    // SQL on the SQLite file: split statements, parameters, templated SQL, the checks.
    let run = e.trigger("sql_ops", None);
    e.wait_run("sql_ops", &run);
    let states = e.states("sql_ops", &run);
    for (t, want) in [
        ("create", "success"),
        ("select", "success"),
        ("check_ok", "success"),
        ("check_bad", "failed"),
        ("value_ok", "success"),
        ("value_bad", "failed"),
        ("rows", "success"),
        ("no_rows", "failed"),
    ] {
        assert_eq!(states[t].0, want, "{t}: {}", e.log("sql_ops", &run, t, 1));
    }
    assert_eq!(
        xcom(&e, "sql_ops", &run, "create", "return_value"),
        Some(json!([null, null, null]))
    );
    assert_eq!(
        xcom(&e, "sql_ops", &run, "select", "return_value"),
        Some(json!([[1, "x;y"], [2, "z"]]))
    );
    assert!(
        e.log("sql_ops", &run, "check_bad", 1)
            .contains("Test failed.")
    );
    assert_eq!(states["quiet"].0, "success");
    assert_eq!(xcom(&e, "sql_ops", &run, "quiet", "return_value"), None);

    // Triggering: the child runs with the rendered conf and the parent waits for it;
    // the same run id again is skipped, or reset and waited for; a failed child fails
    // the waiting task; a DAG that does not exist fails the task.
    let run = e.trigger("parent", None);
    e.wait_run("parent", &run);
    let states = e.states("parent", &run);
    for (t, want) in [
        ("start_child", "success"),
        ("again", "skipped"),
        ("reset", "success"),
        ("fail_child", "failed"),
        ("no_such_dag", "failed"),
    ] {
        assert_eq!(states[t].0, want, "{t}: {}", e.log("parent", &run, t, 1));
    }
    let child_run = e
        .store()
        .run("child", "from_me")
        .unwrap()
        .expect("the child run");
    assert_eq!(child_run.conf, json!({"who": "me"}));
    assert_eq!(child_run.state.to_string(), "success");
    assert_eq!(e.state("child", "from_me", "work"), "success");
    assert_eq!(
        xcom(&e, "parent", &run, "start_child", "trigger_run_id"),
        Some(json!("from_me"))
    );
    assert!(
        e.log("parent", &run, "fail_child", 1)
            .contains("child failed with failed state failed")
    );

    // Branches: every week day follows `yes_day`; a window that ended long ago follows
    // `too_late`; a manual run is always the latest.
    let run = e.trigger("branches", None);
    assert_eq!(e.wait_run("branches", &run), "success");
    let states = e.states("branches", &run);
    for (t, want) in [
        ("yes_day", "success"),
        ("no_day", "skipped"),
        ("in_time", "skipped"),
        ("too_late", "success"),
        ("after_latest", "success"),
    ] {
        assert_eq!(states[t].0, want, "{t}: {states:?}");
    }
    assert_eq!(
        xcom(&e, "branches", &run, "weekday", "return_value"),
        Some(json!("yes_day"))
    );
    // A backfilled run of 2024 is not the latest: its downstream is skipped.
    e.home
        .run(
            &[
                "backfill",
                "create",
                "--dag-id",
                "old",
                "--from-date",
                "2024-01-02",
                "--to-date",
                "2024-01-02",
            ],
            FAST,
        )
        .expect(0);
    let store = e.store();
    let mut old_run = None;
    assert!(crate::util::wait_until(
        std::time::Duration::from_secs(90),
        || {
            old_run = store
                .runs_of(Some("old"), 10)
                .unwrap()
                .into_iter()
                .find(|r| r.run_type.as_str() == "backfill" && r.state.to_string() == "success");
            old_run.is_some()
        }
    ));
    let old_run = old_run.unwrap().run_id;
    assert_eq!(e.state("old", &old_run, "latest"), "success");
    assert_eq!(e.state("old", &old_run, "after_latest"), "skipped");
    let _ = std::fs::remove_file(&db);
}

/// dag-factory's HttpOperator and SimpleHttpOperator examples load as they come, and
/// run against the loopback server under their connection id.
#[test]
fn dag_factorys_http_examples_run_against_loopback() {
    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/dagfactory-dev");
    let (port, seen) = loopback_server();
    let files: Vec<(String, String)> = [
        "example_http_operator_task.yml",
        "example_simple_http_operator_task.yml",
    ]
    .iter()
    .map(|f| {
        (
            f.to_string(),
            std::fs::read_to_string(format!("{DIR}/{f}")).unwrap(),
        )
    })
    .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let e = Engine::start(&refs, &[("UPDRAFT__CORE__TEST_CONNECTION", "Enabled")]);
    let port = port.to_string();
    e.home
        .run(
            &[
                "connections",
                "add",
                "example_host",
                "--conn-type",
                "http",
                "--conn-host",
                "127.0.0.1",
                "--conn-port",
                &port,
            ],
            FAST,
        )
        .expect(0);
    for dag_id in ["http_operator", "http_operator_example_dag"] {
        let run = e.trigger(dag_id, None);
        assert_eq!(
            e.wait_run(dag_id, &run),
            "success",
            "{}",
            e.log(dag_id, &run, "send_request_json", 1)
        );
        assert_eq!(
            xcom(&e, dag_id, &run, "send_request_json", "return_value"),
            Some(json!(
                r#"echo:POST /run_test {"data":"fake_data","format":"json"}"#
            ))
        );
        assert_eq!(
            xcom(&e, dag_id, &run, "send_request_plain_text", "return_value"),
            Some(json!("echo:POST /run_test data=fake_data&test=plain_text"))
        );
    }
    // (A scheduled run of either DAG may add its own requests.)
    assert!(seen.lock().unwrap().len() >= 4);

    // The connection test, enabled: each type as its Airflow hook tests it.
    let token = e.srv.login("admin");
    let test = |body: Value| {
        let (status, reply) =
            e.srv
                .call(&token, Method::Post, "/api/v2/connections/test", Some(body));
        assert_eq!(status, 200, "{reply}");
        (
            reply["status"].as_bool().unwrap(),
            reply["message"].as_str().unwrap().to_string(),
        )
    };
    let before = seen.lock().unwrap().len();
    // The stored connection, as the form sends it back (password masked).
    assert_eq!(
        test(json!({"connection_id": "example_host", "conn_type": "http", "password": "***"})),
        (true, "Connection successfully tested".to_string())
    );
    assert_eq!(seen.lock().unwrap()[before].method, "POST");
    let missing = format!("http://127.0.0.1:{port}/missing");
    assert_eq!(
        test(json!({"connection_id": "new_http", "conn_type": "http", "host": missing})),
        (false, "404:Not Found".to_string())
    );
    // Stored credentials are not sent to another host.
    let (status, _) = e.srv.call(
        &token,
        Method::Post,
        "/api/v2/connections/test",
        Some(json!({"connection_id": "example_host", "conn_type": "http", "host": "elsewhere.invalid"})),
    );
    assert_eq!(status, 400);
    let db = e
        .home
        .path
        .join("updraft.db")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        test(json!({"connection_id": "lite", "conn_type": "sqlite", "host": db})),
        (true, "Connection successfully tested".to_string())
    );
    let nowhere = e.home.path.join("nowhere").to_string_lossy().into_owned();
    let (ok, _) = test(json!({"connection_id": "lite", "conn_type": "sqlite", "host": nowhere}));
    assert!(!ok);
    assert!(
        !e.home.path.join("nowhere").exists(),
        "a test creates nothing"
    );
    let dags = e.home.dags().to_string_lossy().into_owned();
    let extra = json!({"path": dags}).to_string();
    assert_eq!(
        test(json!({"connection_id": "files", "conn_type": "fs", "extra": extra})),
        (true, format!("Path {dags} is existing."))
    );
    let extra = json!({"path": nowhere}).to_string();
    assert_eq!(
        test(json!({"connection_id": "files", "conn_type": "fs", "extra": extra})),
        (false, format!("Path {nowhere} does not exist."))
    );
}

/// The Python callables of the operators and sensors, in a module of the DAG folder.
const CALLABLES: &str = r#"
def filt(response, ti):
    return {"status": response.status_code, "word": response.text.split()[0],
            "ctype": response.headers["content-type"], "ok": response.ok, "task": ti.task_id}

def is_ready(response):
    return response.json()["ready"]

def json_n(response):
    return response.json()["n"]

def never(response, **context):
    return "dag_run" in context and False

def second(row):
    return row[1]

def is_x(value):
    return value == "x"

def no(value):
    return False

def nothing(response):
    return None
"#;

#[test]
fn python_callables_of_http_and_sql_operators_and_sensors_run_with_the_runner() {
    let (port, _) = loopback_server();
    let db = std::env::temp_dir().join(format!("updraft-calls-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let tasks = [
        // HttpOperator: the filter's value is the XCom; the check runs first.
        op(
            "filtered",
            HTTP,
            "http_conn_id: web\nmethod: GET\nendpoint: /hello\nresponse_filter: lib.filt",
        ),
        op(
            "checked",
            HTTP,
            "http_conn_id: web\nmethod: GET\nendpoint: /json\nresponse_check_name: is_ready\nresponse_check_file: $CONFIG_ROOT_DIR/lib.py\nresponse_filter: lib.json_n",
        ),
        op(
            "filtered_none",
            HTTP,
            "http_conn_id: web\nmethod: GET\nendpoint: /hello\nresponse_filter: lib.nothing",
        ),
        op(
            "refused",
            HTTP,
            "http_conn_id: web\nmethod: GET\nendpoint: /hello\nresponse_check: lib.never\nresponse_filter: lib.json_n",
        ),
        // HttpSensor: done when the check is truthy, else not yet.
        op(
            "sense_json",
            HTTP_SENSOR,
            "http_conn_id: web\nendpoint: /json\nresponse_check_lambda: \"lambda response: response.json()['ready']\"\npoke_interval: 0.2",
        ),
        op(
            "sense_never",
            HTTP_SENSOR,
            "http_conn_id: web\nendpoint: /hello\nresponse_check: lib.never\nmode: reschedule\npoke_interval: 0.2\ntimeout: 1\nsoft_fail: true",
        ),
        // SqlSensor: selector, then failure, then success, on the first row.
        op(
            "create",
            SQL,
            "conn_id: db\nsql: \"CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x')\"\nsplit_statements: true",
        ),
        op(
            "sql_success",
            SQL_SENSOR,
            "conn_id: db\nsql: SELECT a, b FROM t\nselector: lib.second\nsuccess: lib.is_x\npoke_interval: 0.2\ndependencies: [create]",
        ),
        op(
            "sql_failure",
            SQL_SENSOR,
            "conn_id: db\nsql: SELECT a, b FROM t\nselector: lib.second\nfailure: lib.is_x\npoke_interval: 0.2\ndependencies: [create]",
        ),
        op(
            "sql_waits",
            SQL_SENSOR,
            "conn_id: db\nsql: SELECT a, b FROM t\nsuccess: lib.no\nmode: reschedule\npoke_interval: 0.2\ntimeout: 1\nsoft_fail: true\ndependencies: [create]",
        ),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("calls.yml", &dag("calls", "", &tasks)),
        ],
        &[],
    );
    let add = |args: &[&str]| e.home.run(args, FAST).expect(0);
    let port = port.to_string();
    add(&[
        "connections",
        "add",
        "web",
        "--conn-type",
        "http",
        "--conn-host",
        "127.0.0.1",
        "--conn-port",
        &port,
    ]);
    let db_path = db.to_string_lossy().into_owned();
    add(&[
        "connections",
        "add",
        "db",
        "--conn-type",
        "sqlite",
        "--conn-host",
        &db_path,
    ]);
    let errors = e.home.run(&["dags", "list-import-errors"], FAST);
    assert!(
        !errors.stdout().contains("calls.yml"),
        "{}",
        errors.stdout()
    );
    let run = e.trigger("calls", None);
    assert_eq!(
        e.wait_run("calls", &run),
        "failed",
        "{:?}",
        e.states("calls", &run)
    );
    let states = e.states("calls", &run);
    let log = |t: &str| e.log("calls", &run, t, 1);
    for (t, want) in [
        ("filtered", "success"),
        ("checked", "success"),
        ("filtered_none", "success"),
        ("refused", "failed"),
        ("sense_json", "success"),
        ("sense_never", "skipped"),
        ("sql_success", "success"),
        ("sql_failure", "failed"),
        ("sql_waits", "skipped"),
    ] {
        assert_eq!(states[t].0, want, "{t}: {}", log(t));
    }
    assert_eq!(
        xcom(&e, "calls", &run, "filtered", "return_value"),
        Some(
            json!({"status": 200, "word": "echo:GET", "ctype": "text/plain", "ok": true, "task": "filtered"})
        )
    );
    assert_eq!(
        xcom(&e, "calls", &run, "checked", "return_value"),
        Some(json!(3))
    );
    // A filter that returns None pushes nothing.
    assert_eq!(
        xcom(&e, "calls", &run, "filtered_none", "return_value"),
        None
    );
    assert!(
        log("refused").contains("Response check returned False."),
        "{}",
        log("refused")
    );
    assert_eq!(xcom(&e, "calls", &run, "refused", "return_value"), None);
    assert!(
        log("sql_failure").contains("Failure criteria met. self.failure(x) returned True"),
        "{}",
        log("sql_failure")
    );
    let _ = std::fs::remove_file(&db);
}
