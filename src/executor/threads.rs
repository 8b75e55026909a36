//! The executor's threads: supervisors and the readers of their tasks' output run on
//! them. A thread is started only when none is idle and ends after idling for a while,
//! as starting and ending one or two threads per task showed in profiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

type Job = Box<dyn FnOnce() + Send>;

/// How long an idle thread waits for another job before it ends.
const IDLE: Duration = Duration::from_secs(30);

pub struct Threads {
    jobs: (Sender<Job>, Receiver<Job>),
    /// Threads waiting for a job and not yet claimed by `run`.
    idle: AtomicUsize,
}

impl Threads {
    pub fn new() -> Arc<Threads> {
        Arc::new(Threads {
            jobs: crossbeam_channel::unbounded(),
            idle: AtomicUsize::new(0),
        })
    }

    /// Runs `job` at once on an idle thread, or on a new one.
    pub fn run(
        self: &Arc<Self>,
        name: &str,
        job: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        if claim(&self.idle) {
            // An idle thread is waiting, and no other `run` can claim it.
            let _ = self.jobs.0.send(Box::new(job));
            return Ok(());
        }
        let threads = self.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || threads.work(Box::new(job)))?;
        Ok(())
    }

    fn work(&self, first: Job) {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            job();
            self.idle.fetch_add(1, Ordering::AcqRel);
            while next.is_none() {
                match self.jobs.1.recv_timeout(IDLE) {
                    Ok(job) => next = Some(job),
                    // Leave only if no `run` has claimed this thread meanwhile.
                    Err(_) if claim(&self.idle) => return,
                    Err(_) => {}
                }
            }
        }
    }
}

/// Takes one idle thread, if there is one.
fn claim(idle: &AtomicUsize) -> bool {
    idle.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}
