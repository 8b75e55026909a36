//! updraft's integration tests: one binary, real processes, real files, real sockets.

// Shared fixtures: temporary homes, the binary as a server, HTTP helpers, waiting.
mod util;
// The command line: exit codes, config precedence, DAG folders read through the CLI.
mod cli;
// The API server as a process: apps, base_url, health, metrics, limits, refresh.
mod server;
// The worker pool in-process: panics and graceful shutdown.
mod pool;
// Running DAGs: standalone, scheduler, executor, supervisor, Execution API.
mod engine;
// Python tasks with a real interpreter: PythonOperator, TaskFlow, XComs, skip/fail, errors.
mod python_tasks;
// Logging in: passwords, tokens, roles, rate limits.
mod api_auth;
// Every guarded route against every role, from the route table.
mod api_roles;
// dag-factory's file features: defaults.yml up the tree, re-read on change; refused keys.
mod dag_files;
// The Core API's DAG resources: list, details, tasks, source, stats, tags, import errors, event logs.
mod api_dags;
// Variables, connections, pools, config, plugins, providers, jobs through the Core API.
mod api_objects;
// DAG runs, task instances, logs and XComs through the Core API.
mod api_runs;
// Backfills: the Core API's routes, the CLI, and the scheduler within a backfill's limit.
mod backfill;
// Named time zones and timetables: DAGs in zones, run and read back through the API.
mod timezones;
// Declarative plugins: API, static files, template macros, reload on change.
mod plugins;
// Dynamic task mapping: expand/partial over literals, mapped instances in the engine and the API.
mod mapping;
// Human in the loop: approval, branch and entry tasks answered through the API, timeouts.
mod hitl;
// Sensors: native pokes, poke and reschedule modes, timeouts, soft_fail.
mod sensors;
// Built-in operators (HTTP, SQL on SQLite, trigger, branches) against loopback servers and files.
mod operators;
// Assets: outlets, asset schedules (AND/OR, paused, AssetOrTimeSchedule), the asset routes.
mod assets;
// The UI's private routes for paging runs and noticing changes.
mod ui_runs;
// The scopes of the UI's clear and mark dialogs: mapped tasks whole, relatives whole.
mod ui_actions;
// Why a task instance is not running: the dependencies route (issue 20).
mod ti_deps;
