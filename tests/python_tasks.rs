//! Python tasks run for real: `updraft standalone` with the interpreter on PATH (the
//! Makefile and CI install Debian's python3), callables in the DAG folder, XComs, Variables
//! and states read back from the SQLite file. No sleeps: every wait polls a condition.

use serde_json::json;

use crate::engine::{Engine, FAST, dag, task};

const PYTHON_OPERATOR: &str = "airflow.providers.standard.operators.python.PythonOperator";

/// One Python task as a YAML list item: a PythonOperator, unless `more` names another
/// `operator` or a `decorator`.
fn py_task(id: &str, callable: &str, more: &str) -> String {
    let mut s = format!("    - task_id: {id}\n      python_callable: {callable}\n");
    if !more.contains("decorator:") && !more.contains("operator:") {
        s.push_str(&format!("      operator: {PYTHON_OPERATOR}\n"));
    }
    for line in more.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str(&format!("      {}\n", line.trim()));
    }
    s
}

const CALLABLES: &str = r#"
import json

from airflow.sdk import Variable, get_current_context
from airflow.exceptions import AirflowFailException, AirflowSkipException


def start(prefix, ds=None, ti=None, **kwargs):
    print("started", prefix, "café", ti.task_id, kwargs["dag_run"].conf.get("n"))
    assert kwargs["logical_date"].tzinfo is not None
    assert kwargs["data_interval_start"] == kwargs["logical_date"]
    return {"n": kwargs["params"]["n"], "word": prefix + "-" + ds}


def double(number):
    return number * 2


def back_from_bash():
    ctx = get_current_context()
    got = ctx["ti"].xcom_pull(task_ids="bash")
    both = ctx["ti"].xcom_pull(task_ids=["doubled", "bash"])
    return {"from_bash": got, "both": both, "greeting": Variable.get("greeting"),
            "missing": Variable.get("nope", "dflt")}


def boom():
    raise ValueError("callable went wrong")


def skip():
    raise AirflowSkipException("nothing to do")


def fail_now():
    raise AirflowFailException("no point retrying")


def not_json():
    return {1, 2}


def choose(ti):
    return ti.xcom_pull(task_ids="pick_input") or "left"


def falsy():
    return 0


def truthy():
    return "yes"


def spawn_and_hang(pidfile):
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    time.sleep(300)


def read_conn():
    from airflow.sdk import Connection

    c = Connection.get("db")
    ctx = get_current_context()
    Variable.set("written", {"by": "callable"}, serialize_json=True)
    return [c.host, c.port, c.login, c.extra_dejson["k"], ctx["conn"].db.schema]


def report(context, tag="plain"):
    ti = context["ti"]
    print(f"callback {tag} for {ti.task_id} try {ti.try_number}", flush=True)
    Variable.set(f"cb_{ti.task_id}_{tag}_{ti.try_number}", "fired")
    e = context.get("exception", "absent")
    kind = "BaseException" if isinstance(e, BaseException) and not isinstance(e, Exception) else "Exception"
    Variable.set(f"exc_{ti.task_id}_{tag}_{ti.try_number}", f"{e!r} {kind if e != 'absent' and e is not None else ''}".strip())


def broken_callback(context):
    raise RuntimeError("callback broke")


def types(**kwargs):
    return {k: type(v).__name__ for k, v in kwargs.items() if k in ("n", "items", "word")}


def wait_for_go():
    from airflow.sdk import PokeReturnValue

    value = Variable.get("go", None)
    return PokeReturnValue(is_done=value is not None, xcom_value=value)


def never():
    return False


def imports_dag():
    from airflow.models import DAG  # noqa: F401
"#;

#[test]
fn python_and_taskflow_pass_xcoms_to_bash_and_back() {
    let tasks = [
        py_task(
            "start",
            "lib.start",
            "op_args: ['{{ dag.dag_id }}']\nmultiple_outputs: true",
        ),
        py_task(
            "doubled",
            "lib.double",
            "decorator: airflow.sdk.task\nnumber: \"+start['n']\"",
        ),
        task(
            "bash",
            "echo {{ ti.xcom_pull(task_ids='doubled') + 1 }}",
            "dependencies: [doubled]",
        ),
        py_task(
            "back",
            "lib.back_from_bash",
            "decorator: airflow.decorators.task\ndependencies: [bash]",
        ),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("flow.yml", &dag("flow", "  params:\n    n: 21\n", &tasks)),
        ],
        &[],
    );
    e.home
        .run(&["variables", "set", "greeting", "hello"], FAST)
        .expect(0);
    let args = [
        "dags",
        "trigger",
        "flow",
        "--conf",
        r#"{"n": 5}"#,
        "--logical-date",
        "2024-05-01T00:00:00+00:00",
    ];
    let run = e
        .home
        .run(&args, FAST)
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    let state = e.wait_run("flow", &run);
    let states = e.states("flow", &run);
    let logs: Vec<String> = ["start", "doubled", "bash", "back"]
        .iter()
        .filter(|t| states[**t].0 != "upstream_failed")
        .map(|t| e.log("flow", &run, t, 1))
        .collect();
    assert_eq!(state, "success", "{states:?}\n{}", logs.join("\n"));
    // The log is UTF-8 and live output of the callable; the conf overrides the param.
    assert!(logs[0].contains("started flow café start 5"), "{}", logs[0]);
    let store = e.store();
    let xcom = |task: &str, key: &str| store.xcom("flow", &run, task, key).unwrap();
    assert_eq!(xcom("start", "word"), Some(json!("flow-2024-05-01")));
    // Multiple outputs: one XCom per key, and the whole dict as return_value.
    assert_eq!(xcom("start", "n"), Some(json!(5)));
    assert_eq!(xcom("doubled", "return_value"), Some(json!(10)));
    assert!(logs[2].lines().any(|l| l == "11"), "{}", logs[2]);
    assert_eq!(
        xcom("back", "return_value"),
        Some(json!({
            "from_bash": "11",
            "both": [10, "11"],
            "greeting": "hello",
            "missing": "dflt",
        }))
    );
}

#[test]
fn failures_retries_skips_and_what_the_log_says() {
    let tasks = [
        py_task("boom", "lib.boom", "retries: 1\nretry_delay: 0"),
        py_task("skip", "lib.skip", ""),
        py_task("fail_now", "lib.fail_now", "retries: 3\nretry_delay: 0"),
        py_task("not_json", "lib.not_json", ""),
        py_task("imports_dag", "lib.imports_dag", ""),
    ]
    .concat();
    let e = Engine::start(
        &[("lib.py", CALLABLES), ("bad.yml", &dag("bad", "", &tasks))],
        &[],
    );
    let run = e.trigger("bad", None);
    assert_eq!(e.wait_run("bad", &run), "failed");
    let states = e.states("bad", &run);
    let st = |t: &str| states[t].clone();
    // A raising callable uses its retries; the traceback is in each try's log.
    assert_eq!(st("boom"), ("failed".to_string(), 2), "{states:?}");
    for try_number in [1, 2] {
        let log = e.log("bad", &run, "boom", try_number);
        assert!(
            log.contains("Traceback (most recent call last)")
                && log.contains("ValueError: callable went wrong"),
            "{log}"
        );
    }
    assert_eq!(st("skip").0, "skipped", "{states:?}");
    // AirflowFailException: failed at once, its three retries unused.
    assert_eq!(st("fail_now"), ("failed".to_string(), 1), "{states:?}");
    assert!(
        e.log("bad", &run, "fail_now", 1)
            .contains("without retrying")
    );
    let log = e.log("bad", &run, "not_json", 1);
    assert!(
        log.contains("the return value is not JSON-serialisable: a value of type builtins.set"),
        "{log}"
    );
    // Without Apache Airflow installed, other airflow names fail saying what exists.
    let log = e.log("bad", &run, "imports_dag", 1);
    assert!(
        log.contains("ImportError") && log.contains("airflow.sdk: get_current_context, Variable"),
        "{log}"
    );
}

#[test]
fn a_missing_interpreter_fails_the_task_naming_the_key() {
    let tasks = [
        py_task("t", "lib.double", "op_args: [1]"),
        task("b", "echo ok", ""),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("nopy.yml", &dag("nopy", "", &tasks)),
        ],
        &[("UPDRAFT__CORE__PYTHON_INTERPRETER", "/nonexistent/python3")],
    );
    // `config list` says so too, naming the key.
    let list = e
        .home
        .run(
            &["config", "list"],
            &[("UPDRAFT__CORE__PYTHON_INTERPRETER", "/nonexistent/python3")],
        )
        .expect(0)
        .stdout();
    assert!(list.contains("# Python tasks cannot run: the Python interpreter `/nonexistent/python3` set in [core] python_interpreter"), "{list}");
    let found = e.home.run(&["config", "list"], &[]).expect(0).stdout();
    assert!(found.contains("# Python tasks run with /"), "{found}");
    let run = e.trigger("nopy", None);
    assert_eq!(e.wait_run("nopy", &run), "failed");
    assert_eq!(e.state("nopy", &run, "b"), "success");
    let log = e.log("nopy", &run, "t", 1);
    assert!(
        log.contains("`/nonexistent/python3` set in [core] python_interpreter (AIRFLOW__CORE__PYTHON_INTERPRETER) was not found"),
        "{log}"
    );
}

#[test]
fn branches_and_short_circuits_skip_what_is_not_followed() {
    let short = "decorator: airflow.providers.standard.decorators.short_circuit.short_circuit_task";
    let tasks = [
        py_task(
            "branch",
            "lib.choose",
            "operator: airflow.operators.python.BranchPythonOperator",
        ),
        task("left", "echo left", "dependencies: [branch]"),
        task("right", "echo right", "dependencies: [branch]"),
        task("after_right", "echo after", "dependencies: [right]"),
        task(
            "join",
            "echo join",
            "dependencies: [left, right]\ntrigger_rule: none_failed_min_one_success",
        ),
        py_task("stop", "lib.falsy", short),
        task("stopped", "echo no", "dependencies: [stop]"),
        task(
            "stopped_too",
            "echo no",
            "dependencies: [stopped]\ntrigger_rule: all_done",
        ),
        py_task(
            "go",
            "lib.truthy",
            "operator: airflow.providers.standard.operators.python.ShortCircuitOperator",
        ),
        task("went", "echo went", "dependencies: [go]"),
    ]
    .concat();
    let e = Engine::start(
        &[("lib.py", CALLABLES), ("br.yml", &dag("br", "", &tasks))],
        &[],
    );
    let run = e.trigger("br", None);
    let state = e.wait_run("br", &run);
    let states = e.states("br", &run);
    assert_eq!(
        state,
        "success",
        "{states:?}\n{}",
        e.log("br", &run, "branch", 1)
    );
    let want = [
        ("branch", "success"),
        ("left", "success"),
        ("right", "skipped"),
        ("after_right", "skipped"),
        ("join", "success"),
        ("stop", "success"),
        ("stopped", "skipped"),
        // ignore_downstream_trigger_rules (the default): all_done does not save it.
        ("stopped_too", "skipped"),
        ("go", "success"),
        ("went", "success"),
    ];
    for (task, st) in want {
        assert_eq!(states[task].0, st, "{task}: {states:?}");
    }
    assert_eq!(
        e.store().xcom("br", &run, "stop", "return_value").unwrap(),
        Some(json!(0))
    );
    // The Core API names them as Airflow does: a decorator by its `@task...` name.
    let token = e.srv.login("admin");
    for (task, name, class) in [
        ("branch", "BranchPythonOperator", "BranchPythonOperator"),
        (
            "stop",
            "@task.short_circuit",
            "_ShortCircuitDecoratedOperator",
        ),
    ] {
        let path = format!("/api/v2/dags/br/tasks/{task}");
        let (status, body) = e.srv.call(&token, crate::util::Method::Get, &path, None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (
                body["operator_name"].as_str(),
                body["class_ref"]["class_name"].as_str()
            ),
            (Some(name), Some(class)),
            "{body}"
        );
    }
}

/// dag-factory's own examples, with its `sample.py`, as they come.
const DAGFACTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/dagfactory-dev");

#[test]
fn dag_factorys_python_examples_run() {
    let read = |rel: &str| std::fs::read_to_string(format!("{DAGFACTORY}/{rel}")).unwrap();
    let e = Engine::start(
        &[
            ("sample.py", &read("sample.py")),
            (
                "outputs.yml",
                &read("example_multiple_outputs_taskflow.yml"),
            ),
            ("params.yml", &read("airflow3/example_params.yml")),
        ],
        &[],
    );
    let run = e.trigger("example_multiple_outputs_taskflow", None);
    let dag = "example_multiple_outputs_taskflow";
    assert_eq!(
        e.wait_run(dag, &run),
        "success",
        "{:?}",
        e.states(dag, &run)
    );
    let store = e.store();
    for (task, value) in [("echo1", "value1"), ("echo2", "value2")] {
        assert_eq!(
            store.xcom(dag, &run, task, "return_value").unwrap(),
            Some(json!(value))
        );
    }
    let run = e.trigger("example_params", None);
    assert_eq!(e.wait_run("example_params", &run), "success");
    // The task's own params over the DAG's.
    let log = e.log("example_params", &run, "task_2", 1);
    assert!(
        log.contains(
            "params:  {'model_version': '1.0.0', 'input_uri': 'localhost', 'my_param': 10}"
        ) && log.contains("model_version: 1.0.0"),
        "{log}"
    );
}

/// The timeout leaves a loaded machine time to start the interpreter and the grandchild
/// (at 2 s a CI-like load of 40 killed the callable before it wrote the pid file).
#[test]
fn execution_timeout_kills_the_python_tree_connections_read_variables_written() {
    let pidfile =
        std::env::temp_dir().join(format!("updraft-py-grandchild-{}", std::process::id()));
    let kwargs = format!(
        "op_kwargs: {{pidfile: '{}'}}\nexecution_timeout: 6",
        pidfile.display()
    );
    let tasks = [
        py_task("hang", "lib.spawn_and_hang", &kwargs),
        py_task("conn", "lib.read_conn", ""),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("slow.yml", &dag("slow", "", &tasks)),
        ],
        &[],
    );
    let add = [
        "connections",
        "add",
        "db",
        "--conn-type",
        "postgres",
        "--conn-host",
        "h.example",
        "--conn-port",
        "5432",
        "--conn-login",
        "me",
        "--conn-schema",
        "s1",
        "--conn-extra",
        r#"{"k": "v"}"#,
    ];
    e.home.run(&add, FAST).expect(0);
    let run = e.trigger("slow", None);
    assert_eq!(e.wait_run("slow", &run), "failed");
    assert_eq!(e.state("slow", &run, "conn"), "success");
    assert_eq!(
        e.store()
            .xcom("slow", &run, "conn", "return_value")
            .unwrap(),
        Some(json!(["h.example", 5432, "me", "v", "s1"]))
    );
    let written = e.home.run(&["variables", "get", "written"], FAST).expect(0);
    assert_eq!(written.stdout().trim(), r#"{"by": "callable"}"#);
    let log = e.log("slow", &run, "hang", 1);
    assert!(
        log.contains("execution_timeout of 6.000 s reached"),
        "{log}"
    );
    let grandchild: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(") ")
                .next()
                .is_some_and(|r| !r.starts_with('Z'))
        })
    };
    assert!(
        crate::util::wait_until(std::time::Duration::from_secs(60), || !alive(grandchild)),
        "grandchild {grandchild} survived"
    );
    let _ = std::fs::remove_file(pidfile);
}

#[test]
fn callbacks_fire_once_each_and_never_change_the_state() {
    let lib = "  default_args:\n    start_date: 2024-01-01\n    on_retry_callback: lib.report\n";
    let tasks = [
        task(
            "ok",
            "echo ok",
            "on_execute_callback: {callback: lib.report, tag: exec}\non_success_callback: {callback: lib.report, tag: success}",
        ),
        py_task(
            "boom",
            "lib.boom",
            "retries: 1\nretry_delay: 0\non_failure_callback_name: broken_callback\non_failure_callback_file: $CONFIG_ROOT_DIR/lib.py",
        ),
        py_task("skip", "lib.skip", "on_skipped_callback: {callback: lib.report, tag: skipped}"),
        task("bash_fail", "exit 3", "on_failure_callback: {callback: lib.report, tag: failed}"),
        task(
            "slow",
            "sleep 30",
            "execution_timeout: 1\non_failure_callback: {callback: lib.report, tag: failed}",
        ),
    ]
    .concat();
    let yaml = dag("cbs", "", &tasks).replace("  default_args:\n    start_date: 2024-01-01\n", lib);
    let e = Engine::start(&[("lib.py", CALLABLES), ("cbs.yml", &yaml)], &[]);
    let run = e.trigger("cbs", None);
    assert_eq!(e.wait_run("cbs", &run), "failed");
    let states = e.states("cbs", &run);
    assert_eq!(states["ok"].0, "success", "{states:?}");
    assert_eq!(states["boom"], ("failed".to_string(), 2), "{states:?}");
    assert_eq!(states["skip"].0, "skipped", "{states:?}");
    let var = |key: &str| {
        let out = e.home.run(&["variables", "get", key], FAST);
        (out.code() == 0).then(|| out.stdout().trim().to_string())
    };
    for key in [
        "cb_ok_exec_1",
        "cb_ok_success_1",
        "cb_boom_plain_1",
        "cb_skip_skipped_1",
    ] {
        assert_eq!(var(key).as_deref(), Some("fired"), "{key}");
    }
    // on_retry only for the try that is retried; the DAG's default_args reach every task.
    assert_eq!(var("cb_boom_plain_2"), None);
    // The context's `exception`: what failed the try (Airflow 3.3.2's own for a Bash exit
    // and a timeout), None after a success or skip, absent before the task runs.
    for (key, want) in [
        (
            "exc_boom_plain_1",
            "ValueError('callable went wrong') Exception",
        ),
        (
            "exc_bash_fail_failed_1",
            "AirflowException('Bash command failed. The command returned a non-zero exit code 3.') Exception",
        ),
        ("exc_ok_success_1", "None"),
        ("exc_ok_exec_1", "'absent'"),
        ("exc_skip_skipped_1", "None"),
    ] {
        assert_eq!(var(key).as_deref(), Some(want), "{key}");
    }
    let timeout = var("exc_slow_failed_1").unwrap_or_default();
    assert!(
        timeout.starts_with("AirflowTaskTimeout('Timeout, PID: ")
            && timeout.ends_with(" BaseException"),
        "{timeout}"
    );
    let ok_log = e.log("cbs", &run, "ok", 1);
    assert_eq!(
        ok_log.matches("callback exec for ok").count(),
        1,
        "{ok_log}"
    );
    assert_eq!(
        ok_log.matches("callback success for ok").count(),
        1,
        "{ok_log}"
    );
    // A callback that raises is logged; the state stays failed, as the try made it.
    let log = e.log("cbs", &run, "boom", 2);
    assert!(
        log.contains("on_failure_callback broken_callback failed")
            && log.contains("RuntimeError: callback broke"),
        "{log}"
    );
}

#[test]
fn native_rendering_gives_python_values() {
    let kwargs = "op_kwargs: {n: '{{ params.n }}', items: '{{ [1, 2] }}', word: '{{ params.w }}'}";
    let tasks = [py_task("t", "lib.types", kwargs)].concat();
    let extra = "  render_template_as_native_obj: true\n  params:\n    n: 3\n    w: abc\n";
    let plain = dag("plain", "  params:\n    n: 3\n    w: abc\n", &tasks);
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("native.yml", &dag("native", extra, &tasks)),
            ("plain.yml", &plain),
        ],
        &[],
    );
    for (dag_id, want) in [
        (
            "native",
            json!({"n": "int", "items": "list", "word": "str"}),
        ),
        ("plain", json!({"n": "str", "items": "str", "word": "str"})),
    ] {
        let run = e.trigger(dag_id, None);
        assert_eq!(e.wait_run(dag_id, &run), "success");
        assert_eq!(
            e.store().xcom(dag_id, &run, "t", "return_value").unwrap(),
            Some(want),
            "{dag_id}"
        );
    }
}

#[test]
fn python_sensors_poke_until_done_or_time_out() {
    let sensor = "operator: airflow.providers.standard.sensors.python.PythonSensor";
    let tasks = [
        py_task(
            "wait",
            "lib.wait_for_go",
            "decorator: airflow.providers.standard.decorators.sensor.sensor_task\npoke_interval: 0.2",
        ),
        py_task("soft", "lib.never", &format!("{sensor}\npoke_interval: 0.1\ntimeout: 0.5\nsoft_fail: true")),
        py_task("hard", "lib.never", &format!("{sensor}\npoke_interval: 0.1\ntimeout: 0.5\nretries: 2")),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("sense.yml", &dag("sense", "", &tasks)),
        ],
        &[],
    );
    let run = e.trigger("sense", None);
    let path = updraft::task_log::log_path(&e.home.path.join("logs"), "sense", &run, "wait", 1);
    let poked = crate::util::wait_until(std::time::Duration::from_secs(90), || {
        std::fs::read_to_string(&path).is_ok_and(|l| l.contains("Poke returned"))
    });
    assert!(
        poked,
        "the sensor never poked: {:?}",
        e.states("sense", &run)
    );
    e.home
        .run(&["variables", "set", "go", "now"], FAST)
        .expect(0);
    assert_eq!(e.wait_run("sense", &run), "failed");
    let states = e.states("sense", &run);
    assert_eq!(states["wait"].0, "success", "{states:?}");
    assert_eq!(
        e.store()
            .xcom("sense", &run, "wait", "return_value")
            .unwrap(),
        Some(json!("now"))
    );
    assert_eq!(states["soft"].0, "skipped", "{states:?}");
    // A sensor's timeout fails it without using its retries.
    assert_eq!(states["hard"], ("failed".to_string(), 1), "{states:?}");
    assert!(
        e.log("sense", &run, "hard", 1)
            .contains("Sensor has timed out")
    );
}

/// A plain callable's try imports nothing it does not need: JSON goes through `_json`,
/// the socket is imported by the first API call (there is none here: the return value's
/// XComs go back through the outcome file), the context's macros on first use. Each of
/// `json`, `socket` and `uuid` (with `platform`) cost a few ms of CPU on every try.
const LEAN: &str = r#"
import sys


def lean():
    loaded = set(sys.modules)
    # importlib (and the warnings it imports) only where the interpreter's own start
    # does not load them already.
    import subprocess

    bare = subprocess.run(
        [sys.executable, "-c", "import sys; print(' '.join(sys.modules))"], capture_output=True, text=True
    ).stdout.split()
    started = {"importlib", "warnings"} - set(bare)
    return {"loaded": sorted(m for m in ("json", "socket", "uuid", "platform", *started) if m in loaded)}


def uses_macros(macros):
    return [macros.uuid.UUID(int=1).version is None, macros.json.dumps([1]), macros.ds_add("2024-01-01", 2)]


def uses_dateutil(macros):
    import importlib.util

    if importlib.util.find_spec("dateutil") is None:
        try:
            macros.dateutil
        except ImportError as e:
            return ["2024-01-31", "2024-02-29", "no dateutil: " + str(e)]
    month = macros.dateutil.relativedelta.relativedelta(months=1)
    return [
        macros.dateutil.parser.parse("2024-01-31T10:00:00+01:00").date().isoformat(),
        (macros.datetime(2024, 1, 31) + month).date().isoformat(),
        macros.dateutil.tz.UTC.tzname(None),
    ]
"#;

#[test]
fn a_plain_callable_imports_no_json_socket_importlib_or_macros() {
    let tasks = [
        py_task("t", "lean.lean", "multiple_outputs: true"),
        py_task("m", "lean.uses_macros", ""),
        py_task("d", "lean.uses_dateutil", ""),
    ]
    .concat();
    let e = Engine::start(
        &[("lean.py", LEAN), ("lean.yml", &dag("lean", "", &tasks))],
        &[],
    );
    let run = e.trigger("lean", None);
    assert_eq!(e.wait_run("lean", &run), "success");
    let xcom = |task: &str, key: &str| e.store().xcom("lean", &run, task, key).unwrap();
    assert_eq!(xcom("t", "return_value"), Some(json!({"loaded": []})));
    assert_eq!(xcom("t", "loaded"), Some(json!([])));
    assert_eq!(
        xcom("m", "return_value"),
        Some(json!([true, "[1]", "2024-01-03"]))
    );
    // `macros.dateutil` is the dateutil package, with its submodules, as in Airflow; an
    // interpreter without it says what to install.
    let got = xcom("d", "return_value").unwrap();
    assert_eq!(
        (&got[0], &got[1]),
        (&json!("2024-01-31"), &json!("2024-02-29")),
        "{got}"
    );
    let third = got[2].as_str().unwrap_or_default();
    assert!(
        third == "UTC" || third.contains("pip install python-dateutil"),
        "{got}"
    );
}

/// Airflow runs an EmptyOperator task on a worker only when it has an
/// `on_execute_callback` or `on_success_callback` (`DagRun.schedule_tis`), so that they
/// fire; any other EmptyOperator task is marked success without a process.
#[test]
fn empty_tasks_with_execute_or_success_callbacks_fire_them() {
    let empty = "      operator: airflow.providers.standard.operators.empty.EmptyOperator\n";
    let tasks = [
        format!(
            "    - task_id: e\n{empty}      on_execute_callback: {{callback: lib.report, tag: exec}}\n      on_success_callback: {{callback: lib.report, tag: success}}\n"
        ),
        format!("    - task_id: plain\n{empty}      dependencies: [e]\n"),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("empty.yml", &dag("empty", "", &tasks)),
        ],
        &[],
    );
    let run = e.trigger("empty", None);
    assert_eq!(e.wait_run("empty", &run), "success");
    for key in ["cb_e_exec_1", "cb_e_success_1"] {
        let out = e.home.run(&["variables", "get", key], FAST);
        assert_eq!(out.stdout().trim(), "fired", "{key}: {}", out.stderr());
    }
    let log = e.log("empty", &run, "e", 1);
    assert_eq!(log.matches("callback exec for e").count(), 1, "{log}");
    assert_eq!(log.matches("callback success for e").count(), 1, "{log}");
}

/// `tasks test` of a Python task runs it as Airflow 3's `task_test` does: in a temporary
/// run, through an Execution API (here a private one), with its log on stdout; the run is
/// deleted afterwards.
#[test]
fn tasks_test_runs_a_python_task_in_a_temporary_run() {
    let home = crate::util::TempHome::new();
    let lib = format!(
        "{CALLABLES}\n\ndef tested(ds, ti):\n    print('tested', ds, Variable.get('greeting'), ti.task_id)\n    return ds\n"
    );
    home.write("dags/lib.py", &lib);
    let tasks = [
        py_task("up", "lib.boom", ""),
        py_task("t", "lib.tested", "dependencies: [up]"),
    ]
    .concat();
    home.write("dags/tt.yml", &dag("tt", "", &tasks));
    home.run(&["variables", "set", "greeting", "hi"], FAST)
        .expect(0);
    let run = home
        .run(&["tasks", "test", "tt", "t", "2024-03-02"], FAST)
        .expect(0);
    assert!(
        run.stdout().contains("tested 2024-03-02 hi t")
            && run.stdout().contains("Returned value was: 2024-03-02"),
        "{}",
        run.stdout()
    );
    let run = home.run(&["tasks", "test", "tt", "up"], FAST).expect(1);
    assert!(
        run.stdout().contains("ValueError: callable went wrong"),
        "{}",
        run.stdout()
    );
    let store = updraft::store::Store::open_existing(&home.path.join("updraft.db")).unwrap();
    assert_eq!(store.runs_of(Some("tt"), 10).unwrap().len(), 0);
}

/// Python reads a `.pyc` but never writes one when the environment has
/// PYTHONDONTWRITEBYTECODE; the runner then writes its own once, so later tries do not
/// compile it again.
#[test]
fn the_runner_keeps_its_bytecode_even_with_pythondontwritebytecode() {
    let tasks = py_task("t", "lean.lean", "");
    let e = Engine::start(
        &[("lean.py", LEAN), ("bc.yml", &dag("bc", "", &tasks))],
        &[("PYTHONDONTWRITEBYTECODE", "1")],
    );
    let run = e.trigger("bc", None);
    assert_eq!(e.wait_run("bc", &run), "success");
    let runners = e.home.path.join("python-runner");
    let cached: Vec<String> = std::fs::read_dir(&runners)
        .unwrap()
        .flatten()
        .filter_map(|d| std::fs::read_dir(d.path().join("__pycache__")).ok())
        .flatten()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached.iter().any(|f| f.starts_with("_updraft_task.")),
        "{cached:?}"
    );
}

const DAG_CALLBACKS: &str = r#"
import json
import os


def record(context, tag, pull):
    from airflow.sdk import Variable

    ti = context.get("ti")
    line = {
        "tag": tag, "reason": context["reason"], "run_id": context["run_id"],
        "dag_run": context["dag_run"].run_id, "run_state": context["dag_run"].state,
        "ti": ti.task_id, "ti_state": ti.state, "dag": context["dag"].dag_id,
        "xcom": ti.xcom_pull(task_ids=pull), "var": Variable.get("greeting", "none"),
    }
    Variable.set("dcb_" + tag, "set")
    with open(os.path.join(os.path.dirname(__file__), "fired.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


def broken(context):
    raise RuntimeError("dag callback broke: " + context["reason"])
"#;

/// DAG-level callbacks: recorded by the scheduler when a run ends, run once by the
/// executor's callback runner with the context Airflow's DAG processor builds (the
/// relevant task instance's, with `reason`), logged where Airflow's DAG processor logs the
/// file; one that raises changes nothing.
#[test]
fn dag_callbacks_fire_once_with_the_runs_context() {
    let ok = dag(
        "dcb_ok",
        "  on_success_callback: {callback: dcb.record, tag: ok, pull: a}\n  on_failure_callback: {callback: dcb.record, tag: wrong, pull: a}\n",
        &[
            task("a", "echo a", ""),
            task("b", "echo b", "dependencies: [a]"),
        ]
        .concat(),
    );
    let fail = dag(
        "dcb_fail",
        "  on_failure_callback: {callback: dcb.record, tag: fail, pull: fine}\n  on_success_callback: {callback: dcb.record, tag: wrong, pull: fine}\n",
        &[task("fine", "echo fine", ""), task("boom", "exit 3", "")].concat(),
    );
    let bad = dag(
        "dcb_bad",
        "  on_failure_callback_name: broken\n  on_failure_callback_file: $CONFIG_ROOT_DIR/dcb.py\n",
        &task("boom", "exit 3", ""),
    );
    let e = Engine::start(
        &[
            ("dcb.py", DAG_CALLBACKS),
            ("dcb_ok.yml", &ok),
            ("dcb_fail.yml", &fail),
            ("dcb_bad.yml", &bad),
        ],
        &[],
    );
    e.home
        .run(&["variables", "set", "greeting", "hi"], FAST)
        .expect(0);
    let runs: Vec<(&str, String)> = ["dcb_ok", "dcb_fail", "dcb_bad"]
        .into_iter()
        .map(|d| (d, e.trigger(d, None)))
        .collect();
    let store = e.store();
    for (d, run) in &runs {
        e.wait_run(d, run);
        let done = crate::util::wait_until(std::time::Duration::from_secs(90), || {
            let cbs = store.dag_callbacks_of_run(d, run).unwrap();
            !cbs.is_empty()
                && cbs
                    .iter()
                    .all(|c| c.state == "success" || c.state == "failed")
        });
        assert!(
            done,
            "{d}: {:?}\n{}",
            store.dag_callbacks_of_run(d, run),
            e.srv.log()
        );
    }
    let states: Vec<(String, String, String)> = runs
        .iter()
        .flat_map(|(d, run)| store.dag_callbacks_of_run(d, run).unwrap())
        .map(|c| (c.dag_id, c.reason, c.state))
        .collect();
    assert_eq!(
        states,
        [
            ("dcb_ok".into(), "success".into(), "success".into()),
            ("dcb_fail".into(), "task_failure".into(), "success".into()),
            ("dcb_bad".into(), "task_failure".into(), "failed".into()),
        ]
    );
    // A failing callback changes nothing: the run and its task keep their states.
    assert_eq!(e.wait_run("dcb_bad", &runs[2].1), "failed");
    assert_eq!(e.state("dcb_bad", &runs[2].1, "boom"), "failed");
    assert_eq!(e.wait_run("dcb_ok", &runs[0].1), "success");
    let fired = std::fs::read_to_string(e.home.dags().join("fired.jsonl")).unwrap();
    let mut lines: Vec<serde_json::Value> = fired
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.sort_by_key(|l| l["tag"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        lines,
        [
            json!({"tag": "fail", "reason": "task_failure", "run_id": runs[1].1, "dag_run": runs[1].1,
                   "run_state": "failed", "ti": "boom", "ti_state": "failed", "dag": "dcb_fail",
                   "xcom": "fine", "var": "hi"}),
            json!({"tag": "ok", "reason": "success", "run_id": runs[0].1, "dag_run": runs[0].1,
                   "run_state": "success", "ti": "b", "ti_state": "success", "dag": "dcb_ok",
                   "xcom": "a", "var": "hi"}),
        ],
        "{fired}"
    );
    // Its token set a variable while it ran (as Airflow's DAG processor lets a callback).
    let out = e.home.run(&["variables", "get", "dcb_ok"], FAST);
    assert_eq!(out.stdout().trim(), "set");
    // A finished request's token reads nothing more, claims nothing again, and a callback
    // token never reaches a task instance's routes.
    let cb = &store.dag_callbacks_of_run("dcb_ok", &runs[0].1).unwrap()[0];
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token = updraft::auth::task::mint_dag_callback(&secret, cb.id, 600.0, chrono::Utc::now());
    let status = |method, path: &str| {
        e.srv
            .request(method, path)
            .token(&token)
            .json(&json!({"pid": 1, "hostname": "x", "state": "success"}))
            .send()
            .status
    };
    use crate::util::Method::{Get, Patch, Put};
    assert_eq!(status(Get, "/execution/variables/greeting"), 403);
    assert_eq!(
        status(Patch, &format!("/execution/dag-callbacks/{}/run", cb.id)),
        409
    );
    assert_eq!(
        status(
            Patch,
            &format!("/execution/dag-callbacks/{}/run", cb.id + 1)
        ),
        403
    );
    let ti = store.ti_by_key("dcb_ok", &runs[0].1, "b").unwrap().unwrap();
    assert_eq!(
        status(
            Put,
            &format!("/execution/task-instances/{}/heartbeat", ti.id)
        ),
        403
    );
    // Output goes where Airflow's DAG processor logs the file.
    let day = store
        .run("dcb_bad", &runs[2].1)
        .unwrap()
        .unwrap()
        .end_date
        .unwrap();
    let log_path = e
        .home
        .path
        .join("logs/dag_processor")
        .join(day.format("%Y-%m-%d").to_string())
        .join("dags-folder/dcb_bad.yml.log");
    let log = std::fs::read_to_string(&log_path)
        .unwrap_or_else(|err| panic!("{}: {err}", log_path.display()));
    assert!(
        log.contains("on_failure_callback broken failed")
            && log.contains("RuntimeError: dag callback broke: task_failure"),
        "{log}"
    );
}

/// `dags test` lets a DAG callback its run asked for finish before it exits (Airflow's
/// `dag.test` runs them in its process), within the shutdown grace.
#[test]
fn dags_test_waits_for_the_dag_callbacks_of_its_run() {
    let home = crate::util::TempHome::new();
    let lib = "import os, time\n\n\ndef slow(context):\n    time.sleep(1)\n    with open(os.path.join(os.path.dirname(__file__), 'fired.txt'), 'a') as f:\n        f.write(context['reason'] + '\\n')\n";
    std::fs::write(home.dags().join("slowcb.py"), lib).unwrap();
    let yaml = dag(
        "slowcb",
        "  on_success_callback: slowcb.slow\n",
        &task("a", "echo a", ""),
    );
    std::fs::write(home.dags().join("slowcb.yml"), yaml).unwrap();
    // The shutdown grace (`killed_task_cleanup_time`, 60 s by default) bounds the wait.
    home.run(
        &["dags", "test", "slowcb"],
        &[("UPDRAFT__CORE__KILLED_TASK_CLEANUP_TIME", "30")],
    )
    .expect(0);
    let fired = std::fs::read_to_string(home.dags().join("fired.txt")).unwrap_or_default();
    assert_eq!(fired, "success\n");
}
