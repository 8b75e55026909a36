//! Sensors run for real: native pokes inside the supervisor (files the test creates after
//! the sensor starts, times, commands, another DAG's tasks), poke and reschedule modes,
//! timeouts and soft_fail, read back from the SQLite file. No sleeps: every wait polls a
//! condition.

use std::time::Duration;

use crate::engine::{Engine, dag, task};
use crate::util::{TempHome, wait_until};

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
