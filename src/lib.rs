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
//!   `rules`, `timetable` and `decide`), and hands work to the `executor`; `clock` is
//!   the wall clock it reads, real or fake.
//! - `store` is the only module that talks to SQLite.
//! - `template` renders templated task fields with Airflow's Jinja context.
//! - `process` runs a task command in its own process group or job object, output to
//!   the try's log, and kills its whole tree.
// One Windows call has no safe wrapper (executor::end_tasks_with_this_process); it is
// the only `allow`.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dagfile;
pub mod error;
pub mod executor;
pub mod home;
pub mod ids;
pub mod jwt;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod percent;
pub mod process;
pub mod processor;
pub mod py;
pub mod scheduler;
pub mod server;
pub mod signals;
pub mod store;
pub mod task_log;
pub mod template;

/// This machine's name, as tasks report it to the Execution API.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
