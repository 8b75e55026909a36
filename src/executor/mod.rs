//! The local executor: runs each queued task instance under a supervisor thread (see
//! `supervise`) and tells the scheduler when one ends.
//!
//! It never decides what runs (the scheduler does) and never writes task state (the
//! supervisor does, over the Execution API). On shutdown, tasks still running after the
//! grace period are stopped and reported for retry. If the whole process is killed,
//! its tasks' process trees are left behind: on Windows their job objects end with it;
//! elsewhere the next scheduler stops them when it adopts their task instances
//! (`kill_orphans`).

pub mod client;
pub mod operators;
pub mod python;
mod sensor;
pub mod supervise;
mod threads;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::clock::Clock;
use crate::config::Config;
use supervise::{Outcome, Supervisors};

/// One task instance try to run.
#[derive(Debug, Clone)]
pub struct Workload {
    pub ti_id: String,
    pub dag_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub token: String,
}

/// What the executor tells the scheduler.
#[derive(Debug)]
pub enum ExecEvent {
    /// A supervisor ended; `reported` is false when it could not report a state.
    Exited {
        ti_id: String,
        try_number: u32,
        reported: bool,
    },
}

/// Runs supervisors; at most as many as the scheduler hands it.
pub struct LocalExecutor {
    supervisors: Arc<Supervisors>,
    events: Sender<ExecEvent>,
    /// Supervisors started and not yet reaped, by task instance: a human-in-the-loop
    /// task's resumed try may start before the first part's exit is reaped, so one task
    /// instance can have two for a moment.
    running: HashMap<String, u32>,
    /// DAG callback requests being run (`submit_dag_callback`): shutdown waits for them
    /// as for tasks, so `dags test` and a stopping standalone let them finish.
    callbacks: Arc<AtomicUsize>,
}

/// Supervises one workload and tells the scheduler how it ended.
fn run_one(w: Workload, supervisors: &Supervisors, events: &Sender<ExecEvent>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        supervise::supervise(supervisors, &w.ti_id, &w.token)
    }))
    .unwrap_or_else(|_| {
        log::error!(
            "the supervisor of {} (try {}) panicked",
            w.task_id,
            w.try_number
        );
        Outcome::Unreported
    });
    if outcome != Outcome::Reported {
        log::warn!(
            "supervisor of {} (try {}) ended without reporting: {outcome:?}",
            w.task_id,
            w.try_number
        );
    }
    let _ = events.send(ExecEvent::Exited {
        ti_id: w.ti_id,
        try_number: w.try_number,
        reported: outcome == Outcome::Reported,
    });
}

impl LocalExecutor {
    /// `clock` is where supervisors read the time they report (a try's start and end).
    pub fn new(
        cfg: &Config,
        api_url: &str,
        in_process: Option<Arc<dyn client::InProcessApi>>,
        clock: Clock,
        events: Sender<ExecEvent>,
    ) -> LocalExecutor {
        end_tasks_with_this_process();
        LocalExecutor {
            supervisors: Arc::new(Supervisors::new(cfg, api_url, clock, in_process)),
            events,
            running: HashMap::new(),
            callbacks: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn running(&self) -> usize {
        self.running.values().map(|&n| n as usize).sum()
    }

    /// Starts the supervisor of one workload.
    pub fn submit(&mut self, w: Workload) -> std::io::Result<()> {
        let ti_id = w.ti_id.clone();
        let supervisors = self.supervisors.clone();
        let events = self.events.clone();
        self.supervisors
            .threads
            .run("task", move || run_one(w, &supervisors, &events))?;
        *self.running.entry(ti_id).or_default() += 1;
        Ok(())
    }

    /// Runs one DAG callback request (see `supervise::dag_callback`) on a thread of its
    /// own. It takes no slot of `parallelism`, as Airflow's DAG processor runs callbacks
    /// outside the executor's slots, and is not waited for on shutdown beyond its runner
    /// being stopped.
    pub fn submit_dag_callback(&mut self, id: i64, token: String) -> std::io::Result<()> {
        let supervisors = self.supervisors.clone();
        let callbacks = self.callbacks.clone();
        callbacks.fetch_add(1, Ordering::SeqCst);
        let started = self.supervisors.threads.run("dag-callback", move || {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                supervise::dag_callback(&supervisors, id, &token)
            }));
            if ran.is_err() {
                log::error!("the runner of DAG callback request {id} panicked");
            }
            callbacks.fetch_sub(1, Ordering::SeqCst);
        });
        if started.is_err() {
            self.callbacks.fetch_sub(1, Ordering::SeqCst);
        }
        started
    }

    /// Forgets a finished supervisor.
    pub fn reap(&mut self, ti_id: &str) {
        if let Some(n) = self.running.get_mut(ti_id) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(ti_id);
            }
        }
    }

    /// Lets running tasks finish for up to `grace`, then tells every supervisor to stop
    /// its task and report it for retry; waits for them to go.
    pub fn shutdown(&mut self, grace: Duration, events: &crossbeam_channel::Receiver<ExecEvent>) {
        let deadline = Instant::now() + grace;
        if !self.running.is_empty() {
            log::info!(
                "waiting up to {grace:?} for {} running task(s)",
                self.running()
            );
        }
        self.wait_all(deadline, events);
        self.wait_callbacks(deadline);
        if self.running.is_empty() && self.callbacks.load(Ordering::SeqCst) == 0 {
            return;
        }
        if !self.running.is_empty() {
            log::warn!(
                "stopping {} task(s) still running; they will be retried",
                self.running()
            );
        }
        self.supervisors.stop.store(true, Ordering::Relaxed);
        self.wait_all(Instant::now() + Duration::from_secs(30), events);
        self.wait_callbacks(Instant::now() + Duration::from_secs(30));
        if !self.running.is_empty() {
            log::error!("{} supervisor(s) did not stop", self.running());
        }
    }

    /// Waits until no DAG callback runs, or `deadline`.
    fn wait_callbacks(&self, deadline: Instant) {
        while self.callbacks.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_all(&mut self, deadline: Instant, events: &crossbeam_channel::Receiver<ExecEvent>) {
        while !self.running.is_empty() {
            match events.recv_deadline(deadline) {
                Ok(ExecEvent::Exited { ti_id, .. }) => self.reap(&ti_id),
                Err(_) => break,
            }
        }
    }
}

/// Stops the process trees of these task instances left running by an executor that was
/// killed: each task's top process carries its task instance id in its environment
/// (`supervise::TI_VAR`) and leads its own process group. Linux reads `/proc`.
#[cfg(target_os = "linux")]
pub fn kill_orphans(ti_ids: &HashSet<String>) {
    if ti_ids.is_empty() {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let prefix = format!("{}=", supervise::TI_VAR);
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let ours = environ
            .split(|b| *b == 0)
            .filter_map(|var| std::str::from_utf8(var).ok()?.strip_prefix(&prefix))
            .any(|id| ti_ids.contains(id));
        let leads_group = || {
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
                .is_ok_and(|g| g.as_raw() == pid)
        };
        if ours && leads_group() {
            log::warn!("stopping process group {pid}, left running by a killed executor");
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Elsewhere: on Windows the executor's process and every task it starts share a job
/// object that ends with it (`end_tasks_with_this_process`), so nothing is left to
/// find. Other Unixes have no `/proc` to search; their orphans run to their end, and
/// nothing records what they do.
#[cfg(not(target_os = "linux"))]
pub fn kill_orphans(_ti_ids: &HashSet<String>) {}

/// Puts this process in a job object that kills what is left in it when its last
/// handle closes, which happens when this process ends however it ends. Tasks start in
/// it (each in a job of its own nested inside), so a killed executor takes its tasks
/// with it. Where that cannot be set up, tasks outlive a killed executor; a warning
/// says so.
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn end_tasks_with_this_process() {
    use windows::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject,
    };
    use windows::Win32::System::Threading::GetCurrentProcess;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain Win32 calls on a job handle just created and on the pseudo
        // handle of this process; `info` outlives the call that reads it. The job handle
        // is never closed: it must live exactly as long as this process.
        let result = unsafe {
            CreateJobObjectW(None, None).and_then(|job| {
                let mut info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION::default();
                info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                SetInformationJobObject(
                    job,
                    JobObjectExtendedLimitInformation,
                    (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                    std::mem::size_of_val(&info) as u32,
                )?;
                AssignProcessToJobObject(job, GetCurrentProcess())
            })
        };
        if let Err(e) = result {
            log::warn!(
                "tasks will outlive this process if it is killed: cannot set up its job object: {e}"
            );
        }
    });
}

#[cfg(not(windows))]
pub fn end_tasks_with_this_process() {}
