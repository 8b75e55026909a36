//! The local executor: runs each queued task instance under a supervisor process
//! (`updraft tasks run --ti-id ID`) and tells the scheduler when one ends.
//!
//! It never decides what runs (the scheduler does) and never writes task state (the
//! supervisor does, over the Execution API). The supervisor's stdin is a lifeline: when
//! this side goes away — shutdown, or the whole process killed — the supervisor sees
//! end-of-file, stops its task, and reports it for retry.

pub mod client;
pub mod supervise;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

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
    /// A supervisor ended; `reported` is false when it died without reporting a state.
    Exited {
        ti_id: String,
        try_number: u32,
        reported: bool,
    },
}

struct Slot {
    stdin: Option<ChildStdin>,
    pid: u32,
}

/// Runs supervisors; at most as many as the scheduler hands it.
pub struct LocalExecutor {
    exe: PathBuf,
    api_url: String,
    home: PathBuf,
    events: Sender<ExecEvent>,
    running: HashMap<String, Slot>,
}

/// What a supervisor prints on stdout so the executor can clean up after it: the pid of
/// the task's process (group leader), to kill if the supervisor dies first.
pub const TASK_PID_LINE: &str = "task-pid ";

impl LocalExecutor {
    pub fn new(
        api_url: &str,
        home: PathBuf,
        events: Sender<ExecEvent>,
    ) -> std::io::Result<LocalExecutor> {
        Ok(LocalExecutor {
            exe: std::env::current_exe()?,
            api_url: api_url.to_string(),
            home,
            events,
            running: HashMap::new(),
        })
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Starts the supervisor of one workload.
    pub fn submit(&mut self, w: Workload) -> std::io::Result<()> {
        let mut child = Command::new(&self.exe)
            .args(["tasks", "run", "--ti-id", &w.ti_id])
            .env("UPDRAFT_HOME", &self.home)
            .env(client::URL_VAR, &self.api_url)
            .env(client::TOKEN_VAR, &w.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take();
        self.running.insert(w.ti_id.clone(), Slot { stdin, pid });
        let events = self.events.clone();
        std::thread::Builder::new()
            .name(format!("supervisor-{pid}"))
            .spawn(move || watch(child, w, events))?;
        Ok(())
    }

    /// Forgets a finished supervisor.
    pub fn reap(&mut self, ti_id: &str) {
        self.running.remove(ti_id);
    }

    /// Lets running tasks finish for up to `grace`, then cuts every supervisor's
    /// lifeline so it stops its task and reports it for retry; waits for them to go.
    pub fn shutdown(&mut self, grace: Duration, events: &crossbeam_channel::Receiver<ExecEvent>) {
        let deadline = Instant::now() + grace;
        if !self.running.is_empty() {
            log::info!(
                "waiting up to {grace:?} for {} running task(s)",
                self.running.len()
            );
        }
        while !self.running.is_empty() {
            match events.recv_deadline(deadline) {
                Ok(ExecEvent::Exited { ti_id, .. }) => self.reap(&ti_id),
                Err(_) => break,
            }
        }
        if self.running.is_empty() {
            return;
        }
        log::warn!(
            "stopping {} task(s) still running; they will be retried",
            self.running.len()
        );
        for slot in self.running.values_mut() {
            log::debug!("closing the lifeline of supervisor {}", slot.pid);
            slot.stdin.take();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.running.is_empty() {
            match events.recv_deadline(deadline) {
                Ok(ExecEvent::Exited { ti_id, .. }) => self.reap(&ti_id),
                Err(_) => {
                    log::error!("{} supervisor(s) did not stop", self.running.len());
                    break;
                }
            }
        }
    }
}

/// Waits for one supervisor; if it died without reporting, kills what it left behind.
fn watch(mut child: Child, w: Workload, events: Sender<ExecEvent>) {
    let mut task_pid = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(pid) = line
                .strip_prefix(TASK_PID_LINE)
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                task_pid = Some(pid);
            }
        }
    }
    let status = child.wait();
    let reported = status.as_ref().is_ok_and(|s| s.success());
    if !reported {
        log::warn!(
            "supervisor of {} (try {}) ended without reporting: {status:?}",
            w.task_id,
            w.try_number
        );
        if let Some(pid) = task_pid {
            kill_group(pid);
        }
    }
    let _ = events.send(ExecEvent::Exited {
        ti_id: w.ti_id,
        try_number: w.try_number,
        reported,
    });
}

/// Kills the process group a dead supervisor's task led (Unix).
#[cfg(unix)]
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// Kills the process tree a dead supervisor's task led (Windows): its job object does
/// not end with the supervisor, so the tree goes by pid, as `taskkill /T` walks it.
#[cfg(windows)]
fn kill_group(pid: u32) {
    let _ = Command::new("taskkill")
        .args(["/F", "/T", "/PID", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
