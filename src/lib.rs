//! updraft: an Airflow-compatible workflow orchestrator in one binary.

pub mod dagfile;
pub mod model;
