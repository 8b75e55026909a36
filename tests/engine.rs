//! Running DAGs for real: `updraft standalone` as a process, DAG files on disk, task
//! processes, the SQLite file read back. No sleeps: every wait polls a condition.

use std::collections::HashMap;
use std::time::Duration;

use updraft::store::Store;

use crate::util::{Method, TempHome, TestServer, wait_until};

/// Waits for runs and tasks; generous, as CI machines are slow and shared.
const LONG: Duration = Duration::from_secs(90);

/// Settings that make a test quick: short heartbeats and timeouts, DAGs unpaused.
pub const FAST: &[(&str, &str)] = &[
    ("UPDRAFT__SCHEDULER__SCHEDULER_HEARTBEAT_SEC", "0.2"),
    ("UPDRAFT__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "3"),
    ("UPDRAFT__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD", "2"),
    ("UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL", "1"),
    ("UPDRAFT__CORE__KILLED_TASK_CLEANUP_TIME", "1"),
    ("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False"),
];

const BASH: &str = "airflow.providers.standard.operators.bash.BashOperator";

/// A DAG file: `tasks` is YAML list items, indented by four spaces.
pub fn dag(dag_id: &str, extra: &str, tasks: &str) -> String {
    format!(
        "{dag_id}:\n  schedule: null\n  default_args:\n    start_date: 2024-01-01\n{extra}  tasks:\n{tasks}"
    )
}

/// One task as a YAML list item.
pub fn task(id: &str, cmd: &str, more: &str) -> String {
    let mut s =
        format!("    - task_id: {id}\n      operator: {BASH}\n      bash_command: {cmd:?}\n");
    for line in more.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str(&format!("      {}\n", line.trim()));
    }
    s
}

pub struct Engine {
    pub home: TempHome,
    pub srv: TestServer,
}

impl Engine {
    /// A standalone on a fresh home whose DAG folder holds `files`.
    pub fn start(files: &[(&str, &str)], env: &[(&str, &str)]) -> Engine {
        let home = TempHome::new();
        for (name, text) in files {
            std::fs::write(home.dags().join(name), text).unwrap();
        }
        let mut all: Vec<(&str, &str)> = FAST.to_vec();
        all.extend_from_slice(env);
        let srv = TestServer::start(&home, &["standalone"], &all);
        Engine { home, srv }
    }

    pub fn store(&self) -> Store {
        Store::open_existing(&self.home.path.join("updraft.db")).unwrap()
    }

    /// `updraft dags trigger` through the CLI; returns the run id.
    pub fn trigger(&self, dag_id: &str, conf: Option<&str>) -> String {
        let mut args = vec!["dags", "trigger", dag_id];
        if let Some(c) = conf {
            args.extend(["--conf", c]);
        }
        self.home
            .run(&args, FAST)
            .expect(0)
            .stdout()
            .trim()
            .to_string()
    }

    /// Waits until the run is success or failed; returns which.
    pub fn wait_run(&self, dag_id: &str, run_id: &str) -> String {
        let store = self.store();
        let mut state = String::new();
        let done = wait_until(LONG, || {
            state = store
                .run(dag_id, run_id)
                .unwrap()
                .map(|r| r.state.to_string())
                .unwrap_or_default();
            state == "success" || state == "failed"
        });
        assert!(
            done,
            "run {run_id} of {dag_id} still {state}: {:?}\nlog:\n{}",
            self.states(dag_id, run_id),
            self.srv.log()
        );
        state
    }

    /// task id -> (state, try number).
    pub fn states(&self, dag_id: &str, run_id: &str) -> HashMap<String, (String, u32)> {
        self.store()
            .tis_of_run(dag_id, run_id)
            .unwrap()
            .into_iter()
            .map(|t| {
                (
                    t.task_id,
                    (
                        t.state.map_or("none".into(), |s| s.to_string()),
                        t.try_number,
                    ),
                )
            })
            .collect()
    }

    pub fn state(&self, dag_id: &str, run_id: &str, task_id: &str) -> String {
        self.states(dag_id, run_id)
            .get(task_id)
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }

    /// The log file of one try.
    pub fn log(&self, dag_id: &str, run_id: &str, task_id: &str, try_number: u32) -> String {
        let path = updraft::task_log::log_path(
            &self.home.path.join("logs"),
            dag_id,
            run_id,
            task_id,
            try_number,
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

fn expect_states(e: &Engine, dag_id: &str, run_id: &str, want: &[(&str, &str)]) {
    let got = e.states(dag_id, run_id);
    for (task, state) in want {
        assert_eq!(
            got.get(*task).map(|s| s.0.as_str()),
            Some(*state),
            "{task} in {got:?}"
        );
    }
}

#[test]
fn a_chain_runs_in_order_with_logs_on_disk() {
    let tasks = [
        task("a", "echo A", ""),
        task("b", "echo B", "dependencies: [a]"),
        task("c", "echo C", "dependencies: [b]"),
    ]
    .concat();
    let e = Engine::start(&[("chain.yml", &dag("chain", "", &tasks))], &[]);
    let run = e.trigger("chain", None);
    assert_eq!(e.wait_run("chain", &run), "success");
    let tis = e.store().tis_of_run("chain", &run).unwrap();
    let by: HashMap<_, _> = tis.iter().map(|t| (t.task_id.as_str(), t)).collect();
    assert!(by["a"].end_date <= by["b"].start_date && by["b"].end_date <= by["c"].start_date);
    let log = e.log("chain", &run, "b", 1);
    assert!(log.contains("running with"), "{log}");
    assert!(log.lines().any(|l| l == "B"), "{log}");
    assert!(log.contains("final state: success"), "{log}");
    // The scheduler's counters show on the API server's /metrics in standalone.
    let count = |name: &str| -> u64 {
        let (_, metrics) = crate::util::get(&format!("{}/metrics", e.srv.base));
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("updraft_{name}_total ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("scheduler_task_instances_queued") >= 3);
    // Supervisors exit just after they report, so their count may lag the run's end.
    assert!(wait_until(LONG, || count("executor_supervisors_exited") >= 3));
}

/// Issue 22: a standalone's supervisors reach its Execution API in process. Their claims
/// and reports are served by the server's workers (counted in `/metrics` by route, as
/// any request), and every one of them came without a connection.
#[test]
fn a_standalones_supervisors_call_its_execution_api_in_process() {
    let tasks = [
        task("a", "true", ""),
        task("b", "true", "dependencies: [a]"),
        task("c", "true", "dependencies: [b]"),
    ]
    .concat();
    let e = Engine::start(&[("inproc.yml", &dag("inproc", "", &tasks))], &[]);
    let run = e.trigger("inproc", None);
    assert_eq!(e.wait_run("inproc", &run), "success");
    let metrics = || crate::util::get(&format!("{}/metrics", e.srv.base)).1;
    let sum = |text: &str, prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let served = |text: &str, route: &str| {
        sum(
            text,
            &format!("updraft_http_requests_total{{method=\"PATCH\",route=\"{route}\","),
        )
    };
    let in_process = |text: &str, route: &str| {
        sum(
            text,
            &format!("updraft_http_in_process_requests_total{{route=\"{route}\"}}"),
        )
    };
    let claim = "/execution/task-instances/{task_instance_id}/run";
    let report = "/execution/task-instances/{task_instance_id}/state";
    let mut text = String::new();
    // The counts are written just after each reply, so the last may lag the run's end.
    let counted = wait_until(LONG, || {
        text = metrics();
        served(&text, claim) >= 3 && served(&text, report) >= 3
    });
    assert!(counted, "{text}");
    assert_eq!(served(&text, claim), 3, "{text}");
    assert_eq!(in_process(&text, claim), served(&text, claim), "{text}");
    assert_eq!(in_process(&text, report), served(&text, report), "{text}");
}

/// Airflow's `run` stores the start the worker sends (`TIEnterRunningPayload.start_date`,
/// "when the task started executing") and stamps the first heartbeat with the server's
/// time; a caller that sends no start gets the server's time for both.
#[test]
fn a_claim_stores_the_start_its_worker_sends() {
    let tasks = [task("a", "true", ""), task("b", "true", "")].concat();
    let e = Engine::start(
        &[("claim.yml", &dag("claim", "", &tasks))],
        &[
            crate::util::USERS,
            ("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True"),
        ],
    );
    // The DAG is paused: its run waits, and no supervisor claims anything.
    let run = e.trigger("claim", None);
    let store = e.store();
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let claim = |task_id: &str, start: Option<&str>| {
        let ti = store.ti_by_key("claim", &run, task_id).unwrap().unwrap();
        let token =
            updraft::auth::task::mint(&secret, &ti.id, ti.try_number, 600.0, chrono::Utc::now());
        let mut body = serde_json::json!({"pid": 4242, "hostname": "worker-1", "unixname": "u"});
        if let Some(start) = start {
            body["start_date"] = start.into();
        }
        let r = e
            .srv
            .request(
                Method::Patch,
                &format!("/execution/task-instances/{}/run", ti.id),
            )
            .token(&token)
            .json(&body)
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        store.ti(&ti.id).unwrap().unwrap()
    };
    let before = chrono::Utc::now();
    let tis = store.tis_of_run("claim", &run).unwrap();
    e.store()
        .write(|tx| {
            for t in &tis {
                tx.set_ti_state(
                    &t.id,
                    None,
                    Some(updraft::model::TaskState::Scheduled),
                    before,
                    None,
                )?;
                tx.queue_ti(&t.id, 1, before)?;
            }
            Ok(())
        })
        .unwrap();
    let a = claim("a", Some("2024-05-06T07:08:09.123456Z"));
    assert_eq!(a.state, Some(updraft::model::TaskState::Running));
    assert_eq!(
        a.start_date,
        Some("2024-05-06T07:08:09.123456Z".parse().unwrap())
    );
    let beat = a.last_heartbeat_at.unwrap();
    assert!(beat >= before && beat <= chrono::Utc::now(), "{beat}");
    let b = claim("b", None);
    assert_eq!(b.start_date, b.last_heartbeat_at);
    assert!(b.start_date.unwrap() >= before, "{:?}", b.start_date);
    // The Core API shows the start as stored.
    let token = e.srv.login("admin");
    let shown = e
        .srv
        .request(
            Method::Get,
            &format!("/api/v2/dags/claim/dagRuns/{run}/taskInstances/a"),
        )
        .token(&token)
        .send();
    assert_eq!(
        shown.json()["start_date"],
        "2024-05-06T07:08:09.123456Z",
        "{}",
        shown.text
    );
}

#[test]
fn fan_out_fan_in_and_trigger_rules() {
    let tasks = [
        task("start", "echo start", ""),
        task("ok1", "echo ok", "dependencies: [start]"),
        task("bad", "exit 3", "dependencies: [start]"),
        task("skip", "exit 99", "dependencies: [start]"),
        task("join_all_success", "echo x", "dependencies: [ok1, bad]"),
        task(
            "join_all_done",
            "echo x",
            "dependencies: [ok1, bad, skip]\ntrigger_rule: all_done",
        ),
        task(
            "join_one_failed",
            "echo x",
            "dependencies: [ok1, bad]\ntrigger_rule: one_failed",
        ),
        task(
            "join_one_success",
            "echo x",
            "dependencies: [ok1, bad]\ntrigger_rule: one_success",
        ),
        task(
            "join_none_failed",
            "echo x",
            "dependencies: [ok1, skip]\ntrigger_rule: none_failed",
        ),
        task("after_skip", "echo x", "dependencies: [skip]"),
        task(
            "all_failed",
            "echo x",
            "dependencies: [bad]\ntrigger_rule: all_failed",
        ),
        task(
            "all_skipped",
            "echo x",
            "dependencies: [skip]\ntrigger_rule: all_skipped",
        ),
        task(
            "none_skipped",
            "echo x",
            "dependencies: [ok1, skip]\ntrigger_rule: none_skipped",
        ),
        task(
            "min_one",
            "echo x",
            "dependencies: [skip, ok1]\ntrigger_rule: none_failed_min_one_success",
        ),
        task(
            "one_done",
            "echo x",
            "dependencies: [bad]\ntrigger_rule: one_done",
        ),
        task(
            "always",
            "echo x",
            "dependencies: [join_all_success]\ntrigger_rule: always",
        ),
        task(
            "downstream_of_upstream_failed",
            "echo x",
            "dependencies: [join_all_success]",
        ),
    ]
    .concat();
    let e = Engine::start(&[("rules.yml", &dag("rules", "", &tasks))], &[]);
    let run = e.trigger("rules", None);
    assert_eq!(e.wait_run("rules", &run), "failed");
    expect_states(
        &e,
        "rules",
        &run,
        &[
            ("start", "success"),
            ("ok1", "success"),
            ("bad", "failed"),
            ("skip", "skipped"),
            ("join_all_success", "upstream_failed"),
            ("join_all_done", "success"),
            ("join_one_failed", "success"),
            ("join_one_success", "success"),
            ("join_none_failed", "success"),
            ("after_skip", "skipped"),
            ("all_failed", "success"),
            ("all_skipped", "success"),
            ("none_skipped", "skipped"),
            ("min_one", "success"),
            ("one_done", "success"),
            ("always", "success"),
            ("downstream_of_upstream_failed", "upstream_failed"),
        ],
    );
}

#[test]
fn retries_then_success_and_retries_exhausted() {
    let tasks = [
        task(
            "flaky",
            "{% if ti.try_number < 3 %}exit 1{% else %}echo third time lucky{% endif %}",
            "retries: 3\nretry_delay: 0",
        ),
        task("hopeless", "exit 1", "retries: 1\nretry_delay: 0"),
    ]
    .concat();
    let e = Engine::start(&[("retry.yml", &dag("retry", "", &tasks))], &[]);
    let run = e.trigger("retry", None);
    assert_eq!(e.wait_run("retry", &run), "failed");
    let s = e.states("retry", &run);
    assert_eq!(s["flaky"], ("success".into(), 3));
    assert_eq!(s["hopeless"], ("failed".into(), 2));
    // Every try is kept, with its own log.
    let history = e.store().ti_history("retry", &run, "flaky").unwrap();
    assert_eq!(
        history.iter().map(|t| t.try_number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        e.log("retry", &run, "flaky", 1)
            .contains("final state: up_for_retry")
    );
    assert!(
        e.log("retry", &run, "flaky", 3)
            .contains("third time lucky")
    );
}

#[cfg(unix)]
#[test]
fn execution_timeout_kills_the_whole_tree() {
    let pidfile = std::env::temp_dir().join(format!("updraft-grandchild-{}", std::process::id()));
    let cmd = format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display());
    let tasks = task("slow", &cmd, "execution_timeout: 1");
    let e = Engine::start(&[("timeout.yml", &dag("timeout", "", &tasks))], &[]);
    let run = e.trigger("timeout", None);
    assert_eq!(e.wait_run("timeout", &run), "failed");
    let grandchild: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(LONG, || !std::path::Path::new(&format!(
            "/proc/{grandchild}"
        ))
        .exists()),
        "grandchild {grandchild} survived"
    );
    assert!(
        e.log("timeout", &run, "slow", 1)
            .contains("execution_timeout")
    );
    let _ = std::fs::remove_file(pidfile);
}

#[test]
fn xcom_variables_params_and_conf_reach_tasks() {
    let tasks = [
        task("push", "echo first; echo 42", ""),
        task("pull", "echo got {{ ti.xcom_pull(task_ids='push') }}", "dependencies: [push]"),
        task(
            "templated",
            "echo var={{ var.value.greeting }} json={{ var.json.cfg.n }} param={{ params.who }} conf={{ dag_run.conf.extra }}",
            "",
        ),
        task(
            "cli_xcom",
            "updraft tasks xcom push answer 7 && updraft tasks xcom pull --task-id push && updraft variables get greeting",
            "dependencies: [push]",
        ),
    ]
    .concat();
    let e = Engine::start(
        &[(
            "data.yml",
            &dag("data", "  params:\n    who: world\n", &tasks),
        )],
        &[],
    );
    e.home
        .run(&["variables", "set", "greeting", "hello"], FAST)
        .expect(0);
    e.home
        .run(&["variables", "set", "cfg", "{\"n\": 5}"], FAST)
        .expect(0);
    let run = e.trigger("data", Some(r#"{"extra": "x1"}"#));
    assert_eq!(
        e.wait_run("data", &run),
        "success",
        "{:?}",
        e.states("data", &run)
    );
    assert!(
        e.log("data", &run, "pull", 1)
            .lines()
            .any(|l| l == "got 42")
    );
    let t = e.log("data", &run, "templated", 1);
    assert!(
        t.lines()
            .any(|l| l == "var=hello json=5 param=world conf=x1"),
        "{t}"
    );
    let c = e.log("data", &run, "cli_xcom", 1);
    assert!(
        c.lines().any(|l| l == "42") && c.lines().any(|l| l == "hello"),
        "{c}"
    );
    let store = e.store();
    assert_eq!(
        store.xcom("data", &run, "cli_xcom", "answer").unwrap(),
        Some(serde_json::json!(7))
    );
    assert_eq!(
        store.xcom("data", &run, "push", "return_value").unwrap(),
        Some(serde_json::json!("42"))
    );
}

#[test]
fn clearing_a_failed_task_runs_it_again() {
    let marker = std::env::temp_dir().join(format!("updraft-clear-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    // Fails until the marker file exists.
    let cmd = format!("test -f {}", marker.display());
    let tasks = [
        task("check", &cmd, ""),
        task("after", "echo after", "dependencies: [check]"),
    ]
    .concat();
    let e = Engine::start(&[("clear.yml", &dag("clear", "", &tasks))], &[]);
    let run = e.trigger("clear", None);
    assert_eq!(e.wait_run("clear", &run), "failed");
    expect_states(
        &e,
        "clear",
        &run,
        &[("check", "failed"), ("after", "upstream_failed")],
    );
    std::fs::write(&marker, "").unwrap();
    e.home
        .run(&["tasks", "clear", "clear", "-t", "^check$", "-y"], FAST)
        .expect(0);
    // Clearing one task re-opens the run; its downstream is cleared by the new outcome.
    assert!(
        wait_until(LONG, || e.state("clear", &run, "check") == "success"),
        "{:?}",
        e.states("clear", &run)
    );
    e.home
        .run(&["tasks", "clear", "clear", "-t", "after", "-y"], FAST)
        .expect(0);
    assert_eq!(e.wait_run("clear", &run), "success");
    assert_eq!(e.states("clear", &run)["check"].1, 2);
    let _ = std::fs::remove_file(marker);
}

/// A task cleared while it runs goes to `restarting`; its supervisor learns so at its next
/// heartbeat, stops the task and ends without reporting, and the scheduler then sets the
/// task instance back to no state (nothing else does), so it runs again as a new try.
#[test]
fn clearing_a_running_task_stops_it_and_runs_it_again() {
    let marker = std::env::temp_dir().join(format!("updraft-clear-running-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    // The first try outlasts every wait here unless it is stopped; the second succeeds.
    let cmd = format!("test -f {} || sleep 600", marker.display());
    let e = Engine::start(
        &[("rerun.yml", &dag("rerun", "", &task("wait", &cmd, "")))],
        &[],
    );
    let run = e.trigger("rerun", None);
    assert!(
        wait_until(LONG, || e.state("rerun", &run, "wait") == "running"),
        "{:?}",
        e.states("rerun", &run)
    );
    std::fs::write(&marker, "").unwrap();
    e.home
        .run(&["tasks", "clear", "rerun", "-t", "^wait$", "-y"], FAST)
        .expect(0);
    assert_eq!(e.wait_run("rerun", &run), "success");
    assert_eq!(e.states("rerun", &run)["wait"], ("success".to_string(), 2));
    let _ = std::fs::remove_file(marker);
}

#[test]
fn pools_and_max_active_runs_limit_concurrency() {
    // Three tasks in a one-slot pool: their run times must not overlap.
    let tasks = [
        task("p1", "echo 1", "pool: tiny"),
        task("p2", "echo 2", "pool: tiny"),
        task("p3", "echo 3", "pool: tiny"),
    ]
    .concat();
    let e = Engine::start(
        &[("pool.yml", &dag("pool", "  max_active_runs: 1\n", &tasks))],
        &[],
    );
    // The pools API comes with the Core API; here the store makes the pool.
    e.store().set_pool("tiny", 1, None).unwrap();
    let r1 = e.trigger("pool", None);
    let r2 = e.trigger("pool", None);
    // With max_active_runs 1, the second run waits queued while the first runs.
    assert_eq!(e.wait_run("pool", &r1), "success");
    assert_eq!(e.wait_run("pool", &r2), "success");
    let store = e.store();
    let run1 = store.run("pool", &r1).unwrap().unwrap();
    let run2 = store.run("pool", &r2).unwrap().unwrap();
    assert!(run1.end_date <= run2.start_date, "runs overlapped");
    assert_one_at_a_time(&store, "pool", &r1, "tasks in a one-slot pool overlapped");
}

/// Fails if any two task instances of the run were running at the same time.
fn assert_one_at_a_time(store: &Store, dag_id: &str, run_id: &str, why: &str) {
    let mut spans: Vec<_> = store
        .tis_of_run(dag_id, run_id)
        .unwrap()
        .into_iter()
        .map(|t| (t.start_date.unwrap(), t.end_date.unwrap()))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "{why}: {spans:?}");
    }
}

#[test]
fn catchup_creates_a_run_per_schedule_tick() {
    let today = chrono::Utc::now().date_naive();
    let start = today - chrono::Duration::days(3);
    let text = format!(
        "daily:\n  schedule: \"0 0 * * *\"\n  catchup: true\n  default_args:\n    start_date: {start}\n  tasks:\n{}",
        task("t", "echo {{ ds }}", "")
    );
    let e = Engine::start(&[("daily.yml", &text)], &[]);
    let want: Vec<String> = (0..=3)
        .map(|d| format!("{}", start + chrono::Duration::days(d)))
        .collect();
    let store = e.store();
    assert!(
        wait_until(LONG, || store.runs_of(Some("daily"), 100).unwrap().len()
            >= 4),
        "{}",
        e.srv.log()
    );
    let mut dates: Vec<String> = store
        .runs_of(Some("daily"), 100)
        .unwrap()
        .iter()
        .map(|r| r.logical_date.unwrap().date_naive().to_string())
        .collect();
    dates.sort();
    assert_eq!(dates, want);
    for r in store.runs_of(Some("daily"), 100).unwrap() {
        assert_eq!(r.run_type.as_str(), "scheduled");
        assert_eq!(e.wait_run("daily", &r.run_id), "success");
        let day = r.logical_date.unwrap().date_naive().to_string();
        assert!(e.log("daily", &r.run_id, "t", 1).lines().any(|l| l == day));
    }
}

#[test]
fn a_task_token_is_refused_for_another_task() {
    let tasks = [task("a", "sleep 30", ""), task("b", "sleep 30", "")].concat();
    let e = Engine::start(&[("tok.yml", &dag("tok", "", &tasks))], &[]);
    let run = e.trigger("tok", None);
    assert!(wait_until(LONG, || e.state("tok", &run, "a") == "running"
        && e.state("tok", &run, "b") == "running"));
    let store = e.store();
    let a = store.ti_by_key("tok", &run, "a").unwrap().unwrap();
    let b = store.ti_by_key("tok", &run, "b").unwrap().unwrap();
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token_a =
        updraft::auth::task::mint(&secret, &a.id, a.try_number, 600.0, chrono::Utc::now());
    let put = |ti: &str, token: &str| {
        e.srv
            .request(
                Method::Put,
                &format!("/execution/task-instances/{ti}/heartbeat"),
            )
            .token(token)
            .json(&serde_json::json!({"pid": 1, "hostname": "x"}))
            .send()
            .status
    };
    assert_eq!(put(&b.id, &token_a), 403);
    assert_eq!(put(&b.id, "not-a-token"), 403);
    // Its own id with the wrong pid: the task runs elsewhere.
    assert_eq!(put(&a.id, &token_a), 409);
    let reply = e
        .srv
        .request(
            Method::Put,
            &format!("/execution/task-instances/{}/heartbeat", a.id),
        )
        .json(&serde_json::json!({}))
        .send();
    assert_eq!(reply.status, 401);
    e.home.run(&["tasks", "clear", "tok", "-y"], FAST).expect(0);
}

/// A report the state's compare-and-set refuses (the try already ended) writes nothing:
/// not its rendered command either, which goes with the state.
#[test]
fn a_refused_report_leaves_the_rendered_command() {
    let e = Engine::start(&[("rc.yml", &dag("rc", "", &task("a", "true", "")))], &[]);
    let run = e.trigger("rc", None);
    assert_eq!(e.wait_run("rc", &run), "success");
    let a = e.store().ti_by_key("rc", &run, "a").unwrap().unwrap();
    assert_eq!(a.rendered_command.as_deref(), Some("true"));
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token = updraft::auth::task::mint(&secret, &a.id, a.try_number, 600.0, chrono::Utc::now());
    let reply = e
        .srv
        .request(
            Method::Patch,
            &format!("/execution/task-instances/{}/state", a.id),
        )
        .token(&token)
        .json(&serde_json::json!({"state": "failed", "rendered_command": "not what ran"}))
        .send();
    assert_eq!(reply.status, 409, "{}", reply.text);
    let after = e.store().ti_by_key("rc", &run, "a").unwrap().unwrap();
    assert_eq!(after, a);
    // The successful report's command is in the try's history row too.
    let db = rusqlite::Connection::open(e.home.path.join("updraft.db")).unwrap();
    let kept: Option<String> = db
        .query_row(
            "SELECT rendered_command FROM task_instance_history WHERE task_instance_id = ?1 AND try_number = 1",
            [&a.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept.as_deref(), Some("true"));
}

/// Supervisors are threads of the executor, so killing it kills them: the next scheduler
/// stops the task tree they left and runs the task again.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_executor_leaves_no_task_behind() {
    let tasks = task(
        "victim",
        "{% if ti.try_number == 1 %}sleep 300{% else %}echo recovered{% endif %}",
        "retries: 1\nretry_delay: 0",
    );
    let mut e = Engine::start(&[("zombie.yml", &dag("zombie", "", &tasks))], &[]);
    let run = e.trigger("zombie", None);
    let log = updraft::task_log::log_path(&e.home.path.join("logs"), "zombie", &run, "victim", 1);
    let started = |_: &Engine| {
        let log = std::fs::read_to_string(&log).ok()?;
        let pid = log
            .split("started pid ")
            .nth(1)?
            .split_whitespace()
            .next()?;
        pid.parse::<u32>().ok()
    };
    assert!(wait_until(LONG, || started(&e).is_some()));
    let task_pid = started(&e).unwrap();
    e.srv.child.kill().unwrap();
    let _ = e.srv.child.wait();
    // Orphaned, the task goes on running until a scheduler takes over.
    assert!(alive(task_pid), "the task died with its executor");
    e.srv = TestServer::start(&e.home, &["standalone"], FAST);
    assert_eq!(e.wait_run("zombie", &run), "success");
    assert_eq!(e.states("zombie", &run)["victim"], ("success".into(), 2));
    assert!(wait_until(LONG, || !alive(task_pid)), "try 1 still runs");
}

/// Whether a process runs (a zombie waiting for its reaper does not).
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|r| !r.starts_with('Z'))
    })
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_running_tasks_for_retry_and_exits_0() {
    let tasks = task("long", "sleep 300", "");
    let mut e = Engine::start(&[("long.yml", &dag("long", "", &tasks))], &[]);
    let run = e.trigger("long", None);
    assert!(wait_until(LONG, || e.state("long", &run, "long") == "running"));
    e.srv.signal("INT");
    assert_eq!(e.srv.wait_exit(LONG), Some(0), "{}", e.srv.log());
    assert_eq!(e.state("long", &run, "long"), "up_for_retry");
    assert!(e.log("long", &run, "long", 1).contains("will be retried"));
}

#[cfg(unix)]
#[test]
fn kill_9_and_restart_finishes_every_run() {
    let tasks = [
        task("first", "sleep 2", ""),
        task("second", "echo done", "dependencies: [first]"),
    ]
    .concat();
    let mut e = Engine::start(&[("crash.yml", &dag("crash", "", &tasks))], &[]);
    let run = e.trigger("crash", None);
    assert!(wait_until(LONG, || e.state("crash", &run, "first") == "running"));
    e.srv.child.kill().unwrap();
    let _ = e.srv.child.wait();
    let srv = TestServer::start(&e.home, &["standalone"], FAST);
    e.srv = srv;
    let state = e.wait_run("crash", &run);
    let s = e.states("crash", &run);
    // With no retries the interrupted try fails; nothing stays running, nothing runs twice.
    assert!(state == "failed" || state == "success", "{state}");
    assert!(
        s.values().all(|(st, _)| st != "running" && st != "queued"),
        "{s:?}"
    );
    let history = e.store().ti_history("crash", &run, "first").unwrap();
    assert!(
        history
            .iter()
            .filter(|t| t.state.map(|s| s.to_string()) == Some("success".into()))
            .count()
            <= 1
    );
}

#[test]
fn dags_test_and_tasks_test_run_in_the_foreground() {
    let home = TempHome::new();
    let tasks = [
        task("hello", "echo hello {{ ds }}", ""),
        task("fail", "exit 4", "dependencies: [hello]"),
    ]
    .concat();
    std::fs::write(home.dags().join("fg.yml"), dag("fg", "", &tasks)).unwrap();
    let run = home
        .run(&["dags", "test", "fg", "2024-03-01"], FAST)
        .expect(1);
    assert!(
        run.stdout().contains("hello 2024-03-01"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("ended failed"), "{}", run.stdout());
    let run = home
        .run(&["tasks", "test", "fg", "hello", "2024-03-02"], FAST)
        .expect(0);
    assert!(
        run.stdout().contains("hello 2024-03-02"),
        "{}",
        run.stdout()
    );
    home.run(&["tasks", "test", "fg", "fail"], FAST).expect(1);
}

#[test]
fn dags_test_prints_a_log_that_is_not_utf8() {
    let home = TempHome::new();
    // Latin-1 bytes, as a program writing in a legacy code page prints them.
    let tasks = task("latin", r"printf 'caf\351 ok\n'", "");
    std::fs::write(home.dags().join("l1.yml"), dag("l1", "", &tasks)).unwrap();
    let run = home
        .run(&["dags", "test", "l1", "2024-03-01"], FAST)
        .expect(0);
    assert!(run.stdout().contains("caf\u{fffd} ok"), "{}", run.stdout());
}

#[test]
fn jobs_check_follows_the_scheduler() {
    let e = Engine::start(&[], &[]);
    assert!(wait_until(LONG, || e
        .home
        .run(
            &["jobs", "check", "--job-type", "SchedulerJob", "--local"],
            FAST
        )
        .code()
        == 0));
    let out = e.home.run(&["jobs", "check"], FAST).expect(0).stdout();
    assert_eq!(out, "Found one alive job.\n");
    drop(e.srv);
    // Killed: its heartbeat goes stale within the threshold.
    assert!(wait_until(LONG, || e
        .home
        .run(&["jobs", "check"], FAST)
        .code()
        == 1));
}

#[cfg(unix)]
#[test]
fn a_standby_scheduler_takes_over() {
    let home = TempHome::new();
    std::fs::write(
        home.dags().join("ha.yml"),
        dag("ha", "", &task("t", "echo ha", "")),
    )
    .unwrap();
    let api = TestServer::start(&home, &["api-server"], FAST);
    let url = format!("{}/execution/", api.base);
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.push(("UPDRAFT__CORE__EXECUTION_API_SERVER_URL", &url));
    let mut first = TestServer::start(&home, &["scheduler"], &env);
    assert!(
        wait_until(LONG, || first.log().contains("is now the active one")),
        "{}",
        first.log()
    );
    let second = TestServer::start(&home, &["scheduler"], &env);
    assert!(
        wait_until(LONG, || second.log().contains("standing by")),
        "{}",
        second.log()
    );
    assert!(!second.log().contains("is now the active one"));
    first.child.kill().unwrap();
    let _ = first.child.wait();
    assert!(
        wait_until(LONG, || second.log().contains("is now the active one")),
        "{}",
        second.log()
    );
    let run = home
        .run(&["dags", "trigger", "ha"], FAST)
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    let store = Store::open_existing(&home.path.join("updraft.db")).unwrap();
    assert!(wait_until(LONG, || store
        .run("ha", &run)
        .unwrap()
        .is_some_and(|r| r.state.to_string() == "success")));
}

/// A scheduler killed on this host is taken over at once, not after
/// `scheduler_health_check_threshold` (an hour here, longer than any wait below).
#[cfg(unix)]
#[test]
fn a_restarted_scheduler_takes_over_from_a_dead_one_on_this_host_at_once() {
    let home = TempHome::new();
    let api = TestServer::start(&home, &["api-server"], FAST);
    let url = format!("{}/execution/", api.base);
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.push(("UPDRAFT__CORE__EXECUTION_API_SERVER_URL", &url));
    env.push((
        "UPDRAFT__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD",
        "3600",
    ));
    let mut first = TestServer::start(&home, &["scheduler"], &env);
    assert!(
        wait_until(LONG, || first.log().contains("is now the active one")),
        "{}",
        first.log()
    );
    first.child.kill().unwrap();
    let _ = first.child.wait();
    let second = TestServer::start(&home, &["scheduler"], &env);
    assert!(
        wait_until(LONG, || second.log().contains("is now the active one")),
        "{}",
        second.log()
    );
    assert!(
        second.log().contains("is gone; taking over"),
        "{}",
        second.log()
    );
}

/// A scheduler thread that dies takes its process down, API and all, with a message
/// and exit code 1, instead of leaving an API that answers while nothing schedules.
#[cfg(unix)]
#[test]
fn a_standalone_whose_scheduler_dies_exits_1() {
    let home = TempHome::new();
    let mut srv = TestServer::start(&home, &["standalone"], FAST);
    assert!(
        wait_until(LONG, || srv.log().contains("is now the active one")),
        "{}",
        srv.log()
    );
    // The scheduler's next heartbeat fails: its loop ends with an error.
    rusqlite::Connection::open(home.path.join("updraft.db"))
        .unwrap()
        .execute_batch("DROP TABLE scheduler_lease")
        .unwrap();
    assert_eq!(srv.wait_exit(LONG), Some(1), "{}", srv.log());
    assert!(
        srv.log()
            .contains("updraft stopped because its scheduler did"),
        "{}",
        srv.log()
    );
}

#[test]
fn dagrun_timeout_fails_the_run_and_max_active_tasks_limits_it_by_priority() {
    let slow = task("slow", "sleep 300", "");
    let three = [
        task("m1", "echo 1", "priority_weight: 1"),
        task("m2", "echo 2", "priority_weight: 3"),
        task("m3", "echo 3", "priority_weight: 2"),
    ]
    .concat();
    let e = Engine::start(
        &[
            (
                "timeout.yml",
                &dag("run_timeout", "  dagrun_timeout: 1\n", &slow),
            ),
            (
                "narrow.yml",
                &dag("narrow", "  max_active_tasks: 1\n", &three),
            ),
        ],
        &[],
    );
    let run = e.trigger("run_timeout", None);
    assert_eq!(e.wait_run("run_timeout", &run), "failed");
    assert_eq!(e.state("run_timeout", &run, "slow"), "skipped");
    // The supervisor notices at its next heartbeat and stops the task.
    assert!(
        wait_until(LONG, || e
            .log("run_timeout", &run, "slow", 1)
            .contains("cleared or changed elsewhere")),
        "{}",
        e.log("run_timeout", &run, "slow", 1)
    );

    let run = e.trigger("narrow", None);
    assert_eq!(e.wait_run("narrow", &run), "success");
    assert_one_at_a_time(
        &e.store(),
        "narrow",
        &run,
        "max_active_tasks 1 but tasks overlapped",
    );
    // One at a time, highest priority_weight first.
    let mut tis = e.store().tis_of_run("narrow", &run).unwrap();
    tis.sort_by_key(|t| t.start_date);
    let order: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(order, ["m2", "m3", "m1"]);
}

#[test]
fn short_lived_task_tokens_are_refreshed_while_a_task_runs() {
    // Two-second tokens, a task of four seconds with heartbeats every second: only the
    // tokens the server hands back (`Refreshed-API-Token`) keep it going and reporting.
    let tasks = task("long", "sleep 4; echo done", "");
    let e = Engine::start(
        &[("refresh.yml", &dag("refresh", "", &tasks))],
        &[("UPDRAFT__EXECUTION_API__JWT_EXPIRATION_TIME", "2")],
    );
    let run = e.trigger("refresh", None);
    assert_eq!(
        e.wait_run("refresh", &run),
        "success",
        "{}",
        e.log("refresh", &run, "long", 1)
    );
}

#[test]
fn the_write_ahead_log_is_checkpointed_in_the_background() {
    let e = Engine::start(&[("one.yml", &dag("one", "", &task("t", "true", "")))], &[]);
    let run = e.trigger("one", None);
    assert_eq!(e.wait_run("one", &run), "success");
    // Only a checkpoint copies pages from the -wal file into the database file, and no
    // commit here comes near SQLite's own threshold: a copy of the database file alone
    // shows the run once the background checkpoint ran. (A copy torn by a checkpoint in
    // progress fails to read and is taken again.)
    let (db, copy) = (e.home.path.join("updraft.db"), e.home.path.join("copy.db"));
    let in_file = || {
        std::fs::copy(&db, &copy).unwrap();
        let c = rusqlite::Connection::open(&copy).unwrap();
        let n = c.query_row(
            "SELECT count(*) FROM dag_run WHERE state = 'success' AND run_id = ?1",
            [&run],
            |r| r.get::<_, i64>(0),
        );
        matches!(n, Ok(1))
    };
    assert!(wait_until(LONG, in_file), "{}", e.srv.log());
}

/// `METHOD /execution/PATH` with a task token: the status and whether the reply re-issued
/// the token.
fn exec_call(e: &Engine, token: &str, method: Method, path: &str, body: &str) -> (u16, bool) {
    let reply = e
        .srv
        .request(method, &format!("/execution/{path}"))
        .token(token)
        .content_type("application/json")
        .raw(body)
        .send();
    (reply.status, reply.header("refreshed-api-token").is_some())
}

#[test]
fn a_finished_tasks_token_reaches_only_its_own_routes_and_is_never_refreshed() {
    // Twenty-second tokens: always within the refresh threshold (30 s at least).
    let tasks = [
        task("t", "echo \"token=$UPDRAFT_TASK_TOKEN\"", ""),
        task("long", "sleep 60", ""),
    ]
    .concat();
    let e = Engine::start(
        &[("done.yml", &dag("done", "", &tasks))],
        &[("UPDRAFT__EXECUTION_API__JWT_EXPIRATION_TIME", "20")],
    );
    e.home.run(&["variables", "set", "k", "v"], FAST).expect(0);
    let run = e.trigger("done", None);
    assert!(wait_until(LONG, || e.state("done", &run, "t") == "success"
        && e.state("done", &run, "long") == "running"));
    let store = e.store();
    let t = store.ti_by_key("done", &run, "t").unwrap().unwrap();
    let long = store.ti_by_key("done", &run, "long").unwrap().unwrap();
    let log = e.log("done", &run, "t", 1);
    let token = log
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .unwrap_or_else(|| panic!("{log}"))
        .to_string();
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let mint = |id: &str, try_number: u32| {
        updraft::auth::task::mint(&secret, id, try_number, 20.0, chrono::Utc::now())
    };
    let xcom = "xcoms/done/".to_string() + &run + "/t/return_value";
    // A running try reads, and its expiring token is re-issued.
    let running = mint(&long.id, long.try_number);
    assert_eq!(
        exec_call(&e, &running, Method::Get, "variables/k", ""),
        (200, true)
    );
    // The finished try's own token: no data, no refresh.
    for (method, path, body) in [
        (Method::Get, "variables/k".to_string(), ""),
        (Method::Get, "connections/c".to_string(), ""),
        (Method::Get, xcom.clone(), ""),
        (Method::Post, xcom.clone(), "\"x\""),
    ] {
        assert_eq!(
            exec_call(&e, &token, method, &path, body),
            (403, false),
            "{method} {path}"
        );
    }
    // Its own routes answer by state, as the supervisor needs: a repeated final state is
    // fine, a heartbeat or a second start is told the try is over.
    let ti_path = |what: &str| format!("task-instances/{}/{what}", t.id);
    assert_eq!(
        exec_call(
            &e,
            &token,
            Method::Patch,
            &ti_path("state"),
            r#"{"state": "success"}"#
        ),
        (200, false)
    );
    assert_eq!(
        exec_call(
            &e,
            &token,
            Method::Put,
            &ti_path("heartbeat"),
            r#"{"pid": 1, "hostname": "x"}"#
        ),
        (409, false)
    );
    assert_eq!(
        exec_call(
            &e,
            &token,
            Method::Patch,
            &ti_path("run"),
            r#"{"pid": 1, "hostname": "x"}"#
        ),
        (409, false)
    );
    // A token for another try of a running task instance is no better.
    let other_try = mint(&long.id, long.try_number + 1);
    assert_eq!(
        exec_call(&e, &other_try, Method::Get, "variables/k", ""),
        (403, false)
    );
    e.home
        .run(&["tasks", "clear", "done", "-y"], FAST)
        .expect(0);
}

/// Issue 12, item 4: a template that never ends, one whose output is huge, one slower
/// than its `execution_timeout` and one that doubles a string in a loop (before the build
/// budget it exhausted memory and aborted the process) each fail their own task with a message saying which
/// bound they hit; the process stays up and the rest of the run succeeds. Before the
/// bounds, the first spun a core until the zombie check failed it (and on after), the
/// second ran into the shell's argument limit. `wait_run` bounds the test if it regresses.
#[test]
fn a_template_that_renders_forever_or_too_much_fails_only_its_task() {
    let forever =
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
    let tasks = [
        task("forever", forever, ""),
        task(
            "huge",
            "{% for a in range(2048) %}{{ 'x' * 1024 }}{% endfor %}",
            "",
        ),
        task("slow", forever, "execution_timeout: 0.3"),
        // A string that doubles 100 times: 2^100 bytes if nothing stopped it.
        task(
            "doubling",
            "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "",
        ),
        task("fine", "echo {{ dag_run.conf.get('x', 'none') }}", ""),
        task("after", "echo after", "dependencies: [fine]"),
    ]
    .concat();
    let e = Engine::start(&[("bounded.yml", &dag("bounded", "", &tasks))], &[]);
    let run = e.trigger("bounded", None);
    assert_eq!(e.wait_run("bounded", &run), "failed");
    expect_states(
        &e,
        "bounded",
        &run,
        &[
            ("forever", "failed"),
            ("huge", "failed"),
            ("slow", "failed"),
            ("doubling", "failed"),
            ("fine", "success"),
            ("after", "success"),
        ],
    );
    let log = |task: &str| e.log("bounded", &run, task, 1);
    let forever_log = log("forever");
    assert!(
        forever_log.contains(
            "cannot render bash_command: the template exceeded its step budget of 10000000 steps"
        ),
        "{forever_log}"
    );
    let huge_log = log("huge");
    assert!(
        huge_log.contains(
            "cannot render bash_command: the rendered template is larger than the output cap of 1048576 bytes"
        ),
        "{huge_log}"
    );
    let slow_log = log("slow");
    assert!(
        slow_log.contains(
            "execution_timeout of 0.300 s reached while rendering bash_command: the render was stopped"
        ),
        "{slow_log}"
    );
    let doubling_log = log("doubling");
    assert!(
        doubling_log.contains(
            "cannot render bash_command: the template built more than 67108864 bytes of values"
        ),
        "{doubling_log}"
    );
    assert!(log("fine").lines().any(|l| l == "none"));
    let (status, _) = crate::util::get(&format!("{}/api/v2/monitor/health", e.srv.base));
    assert_eq!(status, 200, "{}", e.srv.log());
}

// See: issue 21, item 1: standalone with worker processes runs its scheduler once, in
// the arbiter; the workers serve HTTP only, and tasks report through them.
#[cfg(unix)]
#[test]
fn standalone_with_worker_processes_runs_one_scheduler() {
    let e = Engine::start(
        &[("once.yml", &dag("once", "", &task("t", "echo ran", "")))],
        &[
            ("UPDRAFT__API__SERVER_TYPE", "gunicorn"),
            ("UPDRAFT__API__WORKERS", "2"),
        ],
    );
    let run = e.trigger("once", None);
    assert_eq!(
        e.wait_run("once", &run),
        "success",
        "{:?}\n{}",
        e.states("once", &run),
        e.srv.log()
    );
    assert!(e.log("once", &run, "t", 1).contains("ran"));
    let log = e.srv.log();
    assert_eq!(log.matches("scheduler started").count(), 1, "{log}");
    assert!(log.contains("worker processes"), "{log}");
}

/// Issue 19: the Execution API routes the Task SDK calls, with a running task's own token:
/// Variable and XCom keys may hold a raw `/`, as Airflow's `{variable_key:path}` and
/// `{key:path}` routes match them, in the Execution API and the Core API alike; the
/// mapped-XCom `item` route still takes `.../item/0`.
#[test]
fn variable_and_xcom_keys_with_a_raw_slash_are_matched() {
    let tasks = task("a", "sleep 30", "");
    let e = Engine::start(
        &[("slash.yml", &dag("slash", "", &tasks))],
        &[crate::util::USERS],
    );
    let run = e.trigger("slash", None);
    assert!(wait_until(LONG, || e.state("slash", &run, "a") == "running"));
    let a = e.store().ti_by_key("slash", &run, "a").unwrap().unwrap();
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token = updraft::auth::task::mint(&secret, &a.id, a.try_number, 600.0, chrono::Utc::now());
    let exec = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let mut r = e
            .srv
            .request(method, &format!("/execution/{path}"))
            .token(&token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    // Execution API: set and read `team/a/b`.
    let set = exec(
        Method::Put,
        "variables/team/a/b",
        Some(serde_json::json!({"val": "v1"})),
    );
    assert_eq!(set.status, 201, "{}", set.text);
    let got = exec(Method::Get, "variables/team/a/b", None);
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(
        (&got.json()["key"], &got.json()["value"]),
        (&serde_json::json!("team/a/b"), &serde_json::json!("v1"))
    );
    // Core API: the same variable, read, changed and deleted by its raw key.
    let admin = e.srv.login("admin");
    let (status, v) = e
        .srv
        .call(&admin, Method::Get, "/api/v2/variables/team/a/b", None);
    assert_eq!(
        (status, &v["key"]),
        (200, &serde_json::json!("team/a/b")),
        "{v}"
    );
    let (status, v) = e.srv.call(
        &admin,
        Method::Patch,
        "/api/v2/variables/team/a/b",
        Some(serde_json::json!({"key": "team/a/b", "value": "v2"})),
    );
    assert_eq!(
        (status, &v["value"]),
        (200, &serde_json::json!("v2")),
        "{v}"
    );
    assert_eq!(
        exec(Method::Get, "variables/team/a/b", None).json()["value"],
        "v2"
    );
    let (status, _) = e
        .srv
        .call(&admin, Method::Delete, "/api/v2/variables/team/a/b", None);
    assert_eq!(status, 204);
    assert_eq!(exec(Method::Get, "variables/team/a/b", None).status, 404);
    // XComs: pushed by the task under `out/part`, read whole, and through the item route,
    // which is matched before the plain key route (as Airflow declares it first).
    let run_path = run.replace('+', "%2B");
    let xcom = format!("xcoms/slash/{run_path}/a/out/part");
    let pushed = exec(Method::Post, &xcom, Some(serde_json::json!({"n": 1})));
    assert!(pushed.status < 300, "{} {}", pushed.status, pushed.text);
    let got = exec(Method::Get, &xcom, None);
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["key"], "out/part", "{}", got.text);
    assert_eq!(
        got.json()["value"],
        serde_json::json!({"n": 1}),
        "{}",
        got.text
    );
    let item = exec(Method::Get, &format!("{xcom}/item/0"), None);
    assert_eq!(item.status, 200, "{}", item.text);
    assert_eq!(item.json(), serde_json::json!({"n": 1}), "{}", item.text);
    let core =
        format!("/api/v2/dags/slash/dagRuns/{run_path}/taskInstances/a/xcomEntries/out/part");
    let (status, x) = e.srv.call(&admin, Method::Get, &core, None);
    assert_eq!(
        (status, &x["key"]),
        (200, &serde_json::json!("out/part")),
        "{x}"
    );
    assert_eq!(exec(Method::Delete, &xcom, None).status, 200);
    let (status, _) = e.srv.call(&admin, Method::Get, &core, None);
    assert_eq!(status, 404);
    e.home
        .run(&["tasks", "clear", "slash", "-y"], FAST)
        .expect(0);
}

/// `variables/keys` is the listing (a variable named `keys` is set and deleted by PUT and
/// DELETE), the run context's `dag_run` has what the SDK's `DagRun` requires, rtif reaches
/// the Core API, and `Airflow-API-Version` is answered as Airflow's versioned app does.
#[test]
fn the_task_sdks_execution_routes_answer_a_running_task() {
    let tasks = task("a", "sleep 30", "");
    let e = Engine::start(
        &[("sdk.yml", &dag("sdk", "", &tasks))],
        &[crate::util::USERS],
    );
    let run = e.trigger("sdk", None);
    assert!(wait_until(LONG, || e.state("sdk", &run, "a") == "running"));
    let a = e.store().ti_by_key("sdk", &run, "a").unwrap().unwrap();
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token = updraft::auth::task::mint(&secret, &a.id, a.try_number, 600.0, chrono::Utc::now());
    let call =
        |method: Method, path: &str, body: Option<serde_json::Value>, version: Option<&str>| {
            let mut r = e
                .srv
                .request(method, &format!("/execution/{path}"))
                .token(&token);
            if let Some(v) = version {
                r = r.header("Airflow-API-Version", v);
            }
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send()
        };
    // The run context, re-asked by the process that holds the try.
    let ctx = call(
        Method::Patch,
        &format!("task-instances/{}/run", a.id),
        Some(
            serde_json::json!({"pid": a.pid.unwrap(), "hostname": a.hostname.clone().unwrap(),
                                "unixname": "u", "start_date": "2024-01-01T00:00:00Z"}),
        ),
        None,
    );
    assert_eq!(ctx.status, 200, "{}", ctx.text);
    let dr = &ctx.json()["dag_run"];
    assert_eq!(
        (
            &dr["state"],
            &dr["consumed_asset_events"],
            &dr["partition_key"]
        ),
        (
            &serde_json::json!("running"),
            &serde_json::json!([]),
            &serde_json::Value::Null
        ),
        "{dr}"
    );
    assert_eq!(ctx.header("airflow-api-version"), Some("2026-06-30"));
    // Versions: an older one is served and echoed, one before the first is not found,
    // a non-date is refused.
    let older = call(
        Method::Get,
        "task-instances/count?dag_id=sdk",
        None,
        Some("2025-06-01"),
    );
    assert_eq!(
        (older.status, older.header("airflow-api-version")),
        (200, Some("2025-06-01"))
    );
    assert_eq!(
        call(
            Method::Get,
            "task-instances/count?dag_id=sdk",
            None,
            Some("2024-12-31")
        )
        .status,
        404
    );
    assert_eq!(
        call(Method::Get, "dags/sdk", None, Some("latest")).status,
        422
    );
    // A variable named `keys`.
    let set = call(
        Method::Put,
        "variables/keys",
        Some(serde_json::json!({"val": "k"})),
        None,
    );
    assert_eq!(set.status, 201, "{}", set.text);
    let listed = call(Method::Get, "variables/keys?prefix=ke", None, None);
    assert_eq!(
        listed.json(),
        serde_json::json!({"keys": ["keys"], "total_entries": 1})
    );
    assert_eq!(
        call(Method::Delete, "variables/keys", None, None).status,
        204
    );
    assert_eq!(
        call(Method::Get, "variables/keys", None, None).json()["total_entries"],
        0
    );
    // Rendered fields reach the Core API.
    let rtif = call(
        Method::Put,
        &format!("task-instances/{}/rtif", a.id),
        Some(serde_json::json!({"bash_command": "sleep 30 # rendered"})),
        None,
    );
    assert_eq!(rtif.status, 201, "{}", rtif.text);
    let viewer = e.srv.login("viewer");
    let (_, ti) = e.srv.call(
        &viewer,
        Method::Get,
        &format!("/api/v2/dags/sdk/dagRuns/{run}/taskInstances/a"),
        None,
    );
    assert_eq!(
        ti["rendered_fields"]["bash_command"], "sleep 30 # rendered",
        "{ti}"
    );
    // Lookups of its own run.
    let states = call(
        Method::Get,
        &format!(
            "task-instances/states?dag_id=sdk&run_ids={}",
            run.replace('+', "%2B")
        ),
        None,
        None,
    );
    assert_eq!(
        states.json()["task_states"][&run]["a"],
        "running",
        "{}",
        states.text
    );
    let count = call(
        Method::Get,
        "dag-runs/count?dag_id=sdk&states=running",
        None,
        None,
    );
    assert_eq!(count.json(), serde_json::json!(1));
    e.home.run(&["tasks", "clear", "sdk", "-y"], FAST).expect(0);
}

/// A client naming an older `Airflow-API-Version` gets that version's shapes, as Airflow
/// 3.3.2's Cadwyn changes convert them: the run context without the fields added since,
/// the routes added since not there (`variables/keys` is then a variable's key), the
/// route removed since there, request fields added since refused. And an empty
/// `{name:path}` value is a key like any other, as Starlette matches it.
#[test]
fn older_execution_api_versions_get_their_own_shapes() {
    let tasks = task("a", "sleep 30", "");
    let e = Engine::start(
        &[("old.yml", &dag("old", "", &tasks))],
        &[crate::util::USERS],
    );
    let run = e.trigger("old", None);
    assert!(wait_until(LONG, || e.state("old", &run, "a") == "running"));
    let a = e.store().ti_by_key("old", &run, "a").unwrap().unwrap();
    let secret = updraft::jwt::secret("", &e.home.path).unwrap();
    let token = updraft::auth::task::mint(&secret, &a.id, a.try_number, 600.0, chrono::Utc::now());
    let call = |method: Method, path: &str, body: Option<serde_json::Value>, version: &str| {
        let mut r = e
            .srv
            .request(method, &format!("/execution/{path}"))
            .token(&token);
        if !version.is_empty() {
            r = r.header("Airflow-API-Version", version);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let run_body = serde_json::json!({"pid": a.pid.unwrap(), "hostname": a.hostname.clone().unwrap(),
                                      "unixname": "u", "start_date": "2024-01-01T00:00:00Z"});
    let ctx_path = format!("task-instances/{}/run", a.id);
    let newest = call(Method::Patch, &ctx_path, Some(run_body.clone()), "");
    assert_eq!(newest.status, 200, "{}", newest.text);
    let new = newest.json();
    for f in [
        "state",
        "triggering_user_name",
        "partition_key",
        "note",
        "team_name",
        "partition_date",
    ] {
        assert!(new["dag_run"].get(f).is_some(), "{f}: {new}");
    }
    assert!(new.get("start_date").is_some() && new.get("upstream_map_indexes").is_none());
    let oldest = call(Method::Patch, &ctx_path, Some(run_body), "2025-04-28");
    assert_eq!(oldest.status, 200, "{}", oldest.text);
    assert_eq!(oldest.header("airflow-api-version"), Some("2025-04-28"));
    let old = oldest.json();
    for f in [
        "state",
        "triggering_user_name",
        "partition_key",
        "note",
        "team_name",
        "partition_date",
    ] {
        assert!(old["dag_run"].get(f).is_none(), "{f}: {old}");
    }
    assert!(old.get("start_date").is_none(), "{old}");
    assert_eq!(
        old.get("upstream_map_indexes"),
        Some(&serde_json::Value::Null),
        "{old}"
    );
    assert_eq!(old["dag_run"]["run_id"], new["dag_run"]["run_id"]);
    // Routes by version: `variables/keys` (2026-06-30) is a variable's key before it, the
    // DAG route (2026-04-06) is not there, the old previous-run route is.
    let keys = call(Method::Get, "variables/keys", None, "2026-04-06");
    assert_eq!(
        (keys.status, keys.json()["detail"]["message"].clone()),
        (404, serde_json::json!("Variable with key 'keys' not found")),
        "{}",
        keys.text
    );
    assert_eq!(call(Method::Get, "variables/keys", None, "").status, 200);
    assert_eq!(
        call(Method::Get, "dags/old", None, "2026-04-05").status,
        404
    );
    assert_eq!(
        call(Method::Get, "dags/old", None, "2026-04-06").status,
        200
    );
    let prev = "dag-runs/old/previous?logical_date=2100-01-01T00:00:00Z";
    let p = call(Method::Get, prev, None, "2025-08-10");
    assert_eq!(p.status, 200, "{}", p.text);
    // A manual run has no logical date: no run is before one.
    assert_eq!(p.json(), serde_json::Value::Null, "{}", p.text);
    // Before 2025-08-10 only the trigger route (POST) has this path's shape.
    assert_eq!(call(Method::Get, prev, None, "2025-08-09").status, 405);
    // From 2026-04-06 the path is the detail route of a run named `previous`.
    assert_eq!(call(Method::Get, prev, None, "").status, 404);
    // A field the old state payload did not have is refused, and the try goes on.
    let state = format!("task-instances/{}/state", a.id);
    let body = serde_json::json!({"state": "success", "end_date": "2024-01-01T00:00:05Z",
                                  "rendered_map_index": "x"});
    let refused = call(Method::Patch, &state, Some(body), "2025-04-11");
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(
        refused.json()["detail"][0]["loc"],
        serde_json::json!(["body", "success", "rendered_map_index"])
    );
    assert_eq!(e.state("old", &run, "a"), "running");
    // An empty `{name:path}` value names the key "".
    let empty = call(Method::Get, "variables/", None, "");
    assert_eq!(empty.status, 404, "{}", empty.text);
    assert!(empty.text.contains("''"), "{}", empty.text);
    let admin = e.srv.login("admin");
    let (status, v) = e.srv.call(&admin, Method::Get, "/api/v2/variables/", None);
    assert_eq!(
        (status, v["detail"].clone()),
        (
            404,
            serde_json::json!("The Variable with key: `` was not found")
        )
    );
    e.home.run(&["tasks", "clear", "old", "-y"], FAST).expect(0);
}
