//! The Core API (`/api/v2`) and login (`/auth`): one file a resource, each with its route
//! table (listed in `api/mod.rs`); what several share sits in `kit/` (the request kit),
//! `views.rs` (runs and task instances as shown) and `signing.rs` (signed tokens). No
//! file here imports a resource file, so the files form no import cycle.

pub mod assets;
pub mod auth;
pub mod backfills;
mod bulk;
pub mod config;
pub mod connections;
pub mod dag_pieces;
pub mod dag_runs;
pub mod dag_sources;
pub mod dag_stats;
pub mod dag_tags;
pub mod dags;
pub mod event_logs;
pub mod hitl;
pub mod import_errors;
pub mod jobs;
mod kit;
pub mod logs;
pub mod misc_more;
pub mod pools;
pub mod run_more;

pub mod signing;
pub mod state_store;
pub mod task_instances;
pub mod tasks;
pub mod ti_more;
pub mod ui;
pub mod variables;
pub mod versions;
mod views;
pub mod xcom_writes;
pub mod xcoms;
