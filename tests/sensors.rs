//! Sensors run for real: native pokes inside the supervisor (files the test creates after
//! the sensor starts, times, commands, another DAG's tasks), poke and reschedule modes,
//! timeouts and soft_fail, read back from the SQLite file. No sleeps: every wait polls a
//! condition.

use std::time::Duration;

use crate::engine::{Engine, dag, task};
use crate::util::{Method, TempHome, wait_until};

const FILE_SENSOR: &str = "airflow.providers.standard.sensors.filesystem.FileSensor";

/// One sensor task as a YAML list item.
fn sensor(id: &str, operator: &str, more: &str) -> String {
    let mut s = format!("    - task_id: {id}\n      operator: {operator}\n");
    for line in more.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str(&format!("      {}\n", line.trim()));
    }
    s
}

#[test]
fn a_rescheduled_file_sensor_frees_its_pool_slot_and_times_out_as_airflow() {
    // The folder the files come to: a home of its own, removed when the test ends.
    let files_home = TempHome::new();
    let files = files_home.path.clone();
    let wanted = files.join("in").join("data-*.csv");
    let tasks = [
        // The sensor goes first (higher priority) into a one-slot pool, then waits in
        // reschedule mode: `other`, in the same pool, can only run if it freed the slot.
        sensor(
            "wait",
            FILE_SENSOR,
            &format!(
                "filepath: '{}'\nmode: reschedule\npoke_interval: 0.3\npool: tiny\npriority_weight: 100",
                wanted.display()
            ),
        ),
        task("other", "echo other", "pool: tiny"),
        sensor(
            "soft",
            FILE_SENSOR,
            "filepath: /nonexistent/never-*.txt\nmode: reschedule\npoke_interval: 0.2\ntimeout: 1\nsoft_fail: true",
        ),
        sensor(
            "hard",
            "airflow.sensors.filesystem.FileSensor",
            "filepath: /nonexistent/never-*.txt\npoke_interval: 0.2\ntimeout: 1\nretries: 2",
        ),
    ]
    .concat();
    let e = Engine::start(&[("sense.yml", &dag("sense", "", &tasks))], &[]);
    e.store().set_pool("tiny", 1, None).unwrap();
    let run = e.trigger("sense", None);
    let store = e.store();
    let ti_of = |task_id: &str| {
        store
            .tis_of_run("sense", &run)
            .unwrap()
            .into_iter()
            .find(|t| t.task_id == task_id)
            .unwrap()
    };
    // `other` ran to success while the sensor, with the only slot before, still waits.
    let freed = wait_until(Duration::from_secs(90), || {
        e.state("sense", &run, "other") == "success"
    });
    assert!(freed, "{:?}\n{}", e.states("sense", &run), e.srv.log());
    let wait = ti_of("wait");
    assert_ne!(
        wait.state.map(|s| s.to_string()).as_deref(),
        Some("success")
    );
    let (count, first) = store.reschedules(&wait.id).unwrap();
    assert!(count >= 1, "no reschedule rows");
    // The Execution API tells a try where its timeout counts from, as the Task SDK asks
    // it, and refuses a reschedule without its date.
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token = updraft::auth::task::mint(
        &secret,
        &wait.id,
        wait.try_number,
        600.0,
        chrono::Utc::now(),
    );
    let call = |method: Method, path: &str, body: &str| {
        e.srv
            .request(method, &format!("/execution/{path}"))
            .token(&token)
            .content_type("application/json")
            .raw(body.to_string())
            .send()
    };
    let start = call(
        Method::Get,
        &format!("task-reschedules/{}/start_date", wait.id),
        "",
    );
    assert_eq!(start.status, 200, "{}", start.text);
    assert_eq!(
        start.json(),
        serde_json::json!(updraft::store::ts(first.unwrap()))
    );
    let no_date = call(
        Method::Patch,
        &format!("task-instances/{}/state", wait.id),
        r#"{"state": "up_for_reschedule", "end_date": "2026-01-01T00:00:00Z"}"#,
    );
    assert_eq!(no_date.status, 422, "{}", no_date.text);
    let other = ti_of("other");
    assert!(
        first.unwrap() <= other.start_date.unwrap(),
        "other started before the sensor first poked: {first:?} vs {:?}",
        other.start_date
    );
    // The file comes: the sensor's next poke finds it, in the same try.
    std::fs::create_dir_all(files.join("in")).unwrap();
    std::fs::write(files.join("in").join("data-1.csv"), "x").unwrap();
    assert_eq!(e.wait_run("sense", &run), "failed");
    let states = e.states("sense", &run);
    assert_eq!(states["wait"], ("success".to_string(), 1), "{states:?}");
    // soft_fail: skipped at its timeout; without it: failed at once, no retry.
    assert_eq!(states["soft"].0, "skipped", "{states:?}");
    assert_eq!(states["hard"], ("failed".to_string(), 1), "{states:?}");
    let log = e.log("sense", &run, "hard", 1);
    assert!(
        log.contains("Sensor has timed out; run duration of")
            && log.contains("seconds exceeds the specified timeout of 1.0."),
        "{log}"
    );
    assert!(
        e.log("sense", &run, "wait", 1)
            .contains("up_for_reschedule")
    );
}

const CALLABLES: &str = r#"
import os


def exists(path):
    return os.path.exists(path)
"#;

/// Every native sensor against real things in one standalone: another DAG's tasks and
/// run (ExternalTaskSensor at a logical date less `execution_delta`), the time sensors,
/// BashSensor's exit codes, a FileSensor below an `fs` connection's path, and a
/// PythonSensor in reschedule mode; the files come after the sensors have poked.
#[test]
fn native_sensors_wait_for_files_times_commands_and_other_dags() {
    let files_home = TempHome::new();
    let files = files_home.path.clone();
    let go = files.join("go.txt");
    let day = "{__type__: datetime.timedelta, days: 1}";
    let ext = "airflow.sensors.external_task.ExternalTaskSensor";
    let ext3 = "airflow.providers.standard.sensors.external_task.ExternalTaskSensor";
    let producer = [
        task("producer_task", "echo made", ""),
        task("broken", "exit 1", ""),
    ]
    .concat();
    let consumer = [
        sensor(
            "ext",
            ext,
            &format!("external_dag_id: producer\nexternal_task_id: producer_task\nexecution_delta: {day}\nmode: reschedule\npoke_interval: 0.3"),
        ),
        sensor(
            "ext_dag_failed",
            ext3,
            &format!("external_dag_id: producer\nallowed_states: [failed]\nexecution_delta: {day}\nmode: reschedule\npoke_interval: 0.3"),
        ),
        sensor(
            "ext_broken",
            ext3,
            &format!("external_dag_id: producer\nexternal_task_ids: [broken]\nfailed_states: [failed]\nsoft_fail: true\nexecution_delta: {day}\ndeferrable: true\npoke_interval: 0.3"),
        ),
    ]
    .concat();
    let misc = [
        sensor(
            "td",
            "airflow.providers.standard.sensors.time_delta.TimeDeltaSensor",
            "delta: {__type__: datetime.timedelta, seconds: 1}\npoke_interval: 0.2",
        ),
        sensor("tm", "airflow.sensors.time_sensor.TimeSensor", "target_time: '00:00:00'"),
        sensor(
            "dt",
            "airflow.providers.standard.sensors.date_time.DateTimeSensor",
            "target_time: '{{ ds }}'",
        ),
        sensor(
            "dt_future",
            "airflow.sensors.date_time.DateTimeSensor",
            "target_time: '2999-01-01T00:00:00+00:00'\npoke_interval: 0.2\ntimeout: 0.5\nsoft_fail: true",
        ),
        sensor(
            "bash_wait",
            "airflow.providers.standard.sensors.bash.BashSensor",
            &format!("bash_command: \"test -f '{}'\"\nmode: reschedule\npoke_interval: 0.3", go.display()),
        ),
        sensor(
            "bash_fail",
            "airflow.sensors.bash.BashSensor",
            "bash_command: 'exit 3'\nretry_exit_code: 2\nretries: 1",
        ),
        sensor(
            "fs",
            FILE_SENSOR,
            "fs_conn_id: files\nfilepath: 'sub/*.txt'\nmode: reschedule\npoke_interval: 0.3",
        ),
        format!(
            "    - task_id: py\n      operator: airflow.providers.standard.sensors.python.PythonSensor\n      python_callable: lib.exists\n      op_args: ['{}']\n      mode: reschedule\n      poke_interval: 0.3\n",
            go.display()
        ),
        // Poke mode in the runner, with Airflow's backoff capped by max_wait.
        format!(
            "    - task_id: py_backoff\n      operator: airflow.sensors.python.PythonSensor\n      python_callable: lib.exists\n      op_args: ['{}']\n      poke_interval: 1\n      exponential_backoff: true\n      max_wait: 0.2\n",
            go.display()
        ),
    ]
    .concat();
    let e = Engine::start(
        &[
            ("lib.py", CALLABLES),
            ("producer.yml", &dag("producer", "", &producer)),
            ("consumer.yml", &dag("consumer", "", &consumer)),
            ("misc.yml", &dag("misc", "", &misc)),
        ],
        &[],
    );
    let extra = serde_json::json!({"path": files.to_string_lossy()}).to_string();
    e.home
        .run(
            &[
                "connections",
                "add",
                "files",
                "--conn-type",
                "fs",
                "--conn-extra",
                &extra,
            ],
            &[],
        )
        .expect(0);
    let trigger_at = |dag_id: &str, date: &str| {
        e.home
            .run(
                &["dags", "trigger", dag_id, "--logical-date", date],
                crate::engine::FAST,
            )
            .expect(0)
            .stdout()
            .trim()
            .to_string()
    };
    let consumer_run = trigger_at("consumer", "2024-06-02T00:00:00+00:00");
    let misc_run = trigger_at("misc", "2024-06-02T00:00:00+00:00");
    let store = e.store();
    let rescheduled = |dag_id: &str, run: &str, task_id: &str| {
        let ti = store
            .tis_of_run(dag_id, run)
            .unwrap()
            .into_iter()
            .find(|t| t.task_id == task_id)
            .unwrap();
        store.reschedules(&ti.id).unwrap().0 >= 1
    };
    // Everything waiting has poked at least once before what it waits for comes.
    let poked = wait_until(Duration::from_secs(90), || {
        ["ext", "ext_dag_failed", "ext_broken"]
            .iter()
            .all(|t| rescheduled("consumer", &consumer_run, t))
            && ["bash_wait", "fs", "py"]
                .iter()
                .all(|t| rescheduled("misc", &misc_run, t))
            && std::fs::read_to_string(updraft::task_log::log_path(
                &e.home.path.join("logs"),
                "misc",
                &misc_run,
                "py_backoff",
                1,
            ))
            .is_ok_and(|l| l.contains("next poke in"))
    });
    assert!(
        poked,
        "{:?} {:?}\n{}",
        e.states("consumer", &consumer_run),
        e.states("misc", &misc_run),
        e.srv.log()
    );
    let producer_run = trigger_at("producer", "2024-06-01T00:00:00+00:00");
    std::fs::write(&go, "go").unwrap();
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::write(files.join("sub").join("a.txt"), "a").unwrap();
    assert_eq!(e.wait_run("producer", &producer_run), "failed");
    e.wait_run("consumer", &consumer_run);
    let c = e.states("consumer", &consumer_run);
    assert_eq!(c["ext"], ("success".to_string(), 1), "{c:?}");
    assert_eq!(c["ext_dag_failed"].0, "success", "{c:?}");
    assert_eq!(c["ext_broken"].0, "skipped", "{c:?}");
    assert_eq!(e.wait_run("misc", &misc_run), "failed");
    let m = e.states("misc", &misc_run);
    for t in ["td", "tm", "dt", "bash_wait", "fs", "py", "py_backoff"] {
        assert_eq!(
            m[t],
            ("success".to_string(), 1),
            "{t}: {m:?}\n{}",
            e.log("misc", &misc_run, t, 1)
        );
    }
    assert_eq!(m["dt_future"].0, "skipped", "{m:?}");
    let backoff = e.log("misc", &misc_run, "py_backoff", 1);
    assert!(backoff.contains("next poke in 0.2 s"), "{backoff}");
    // A code other than retry_exit_code fails at once, without a retry.
    assert_eq!(m["bash_fail"], ("failed".to_string(), 1), "{m:?}");
    assert!(
        e.log("misc", &misc_run, "bash_fail", 1)
            .contains("Command exited with return code 3")
    );
    // `tasks test` pokes a sensor as a run would, its template rendered.
    let tested = e
        .home
        .run(
            &["tasks", "test", "misc", "dt", "2024-06-03"],
            crate::engine::FAST,
        )
        .expect(0);
    assert!(
        tested
            .stdout()
            .contains("Checking if the time (2024-06-03) has come")
            && tested.stdout().contains("Success criteria met"),
        "{}",
        tested.stdout()
    );
}

/// dag-factory's example file fails to import in Airflow too (a task id with a colon);
/// its first DAG, alone, loads and waits for the producer's task at its logical date.
#[test]
fn dag_factorys_external_task_sensor_example() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/dagfactory-dev/external_task_sensor.yml"
    ))
    .unwrap();
    let first = &text[..text
        .find("example_external_task_sensor_dag_factory_consumer2:")
        .unwrap()];
    let producer = dag(
        "example_external_task_sensor_dag_factory_producer",
        "",
        &task("producer_task", "echo produced", ""),
    );
    let e = Engine::start(
        &[
            ("whole.yml", &text),
            ("consumer.yml", first),
            ("producer.yml", &producer),
        ],
        &[],
    );
    let date = "2025-01-05T00:00:00+00:00";
    let trigger_at = |dag_id: &str| {
        e.home
            .run(
                &["dags", "trigger", dag_id, "--logical-date", date],
                crate::engine::FAST,
            )
            .expect(0)
            .stdout()
            .trim()
            .to_string()
    };
    let p = trigger_at("example_external_task_sensor_dag_factory_producer");
    assert_eq!(
        e.wait_run("example_external_task_sensor_dag_factory_producer", &p),
        "success"
    );
    let c = trigger_at("example_external_task_sensor_dag_factory_consumer");
    assert_eq!(
        e.wait_run("example_external_task_sensor_dag_factory_consumer", &c),
        "success"
    );
    // As Airflow, none of the whole file's DAGs loads (updraft names its first error).
    let errors = e.home.run(&["dags", "list-import-errors"], &[]);
    assert!(errors.stdout().contains("whole.yml"), "{}", errors.stdout());
}
