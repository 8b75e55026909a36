//! updraft: an Airflow-compatible workflow orchestrator in one binary.
//!
//! Code map (ARCHITECTURE.md has the long form):
//! - `cli` parses argv into a closed `Command`; `app` runs it.
//! - `config` reads `updraft.cfg` and `UPDRAFT__`/`AIRFLOW__` variables, validated once;
//!   `home` finds and creates `UPDRAFT_HOME`.
//! - `model` holds DAGs, tasks and Airflow's state names; no I/O.
//! - `dagfile` turns dag-factory YAML into `model::Dag`s or import errors;
//!   `processor` keeps the store in step with the DAG files.
//! - `scheduler` decides when DAGs run and what tasks do next (pure rules in
//!   `rules` and `timetable`), and hands work to the `executor`.
//! - `store` is the only module that talks to SQLite.
//! - `template` renders templated task fields with Airflow's Jinja context.
//! - `memory` gives freed memory back to the system in long-running commands.
//! - `process` runs a task command in its own process group or job object, output to
//!   the try's log, and kills its whole tree.
// Two calls have no safe wrapper: a Windows one (executor::end_tasks_with_this_process)
// and glibc's malloc_trim (memory::release_free); they are the only `allow`s.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dagfile;
pub mod error;
pub mod executor;
pub mod home;
pub mod ids;
pub mod jwt;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod process;
pub mod processor;
pub mod scheduler;
pub mod server;
pub mod signals;
pub mod store;
pub mod template;

/// This machine's name, as tasks report it to the Execution API.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
