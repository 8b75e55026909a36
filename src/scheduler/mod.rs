//! Scheduling decisions as pure functions: when a DAG runs next, and what a task does next.
pub mod rules;
pub mod timetable;
