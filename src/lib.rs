//! updraft: an Airflow-compatible workflow orchestrator in one binary.
//!
//! Code map (ARCHITECTURE.md has the long form):
//! - `cli` parses argv into a closed `Command`; `app` runs it.
//! - `config` reads `updraft.cfg` and `UPDRAFT__`/`AIRFLOW__` variables, validated once;
//!   `home` finds and creates `UPDRAFT_HOME`.
//! - `model` holds DAGs, tasks and Airflow's state names; no I/O.
//! - `dagfile` turns dag-factory YAML into `model::Dag`s or import errors;
//!   `processor` keeps the store in step with the DAG files.
//! - `store` is the only module that talks to SQLite.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod dagfile;
pub mod error;
pub mod home;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod processor;
pub mod server;
pub mod signals;
pub mod store;
