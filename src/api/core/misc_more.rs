//! The rest of Airflow's Core API that updraft had no route for: favorite DAGs, default
//! connections, the connection test queue, and re-parsing a DAG file now.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::kit::{Kind, body, field, no_content, unique_violation};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::store::{Connection, Store};

use Method::{Get, Post, Put};

/// Favorites, default connections, the connection test queue, re-parsing.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Post, "/api/v2/dags/{dag_id}/favorite", Role::Viewer, Some("favorite_dag"), "Mark a DAG favorite (for the caller)", favorite),
    guarded(Post, "/api/v2/dags/{dag_id}/unfavorite", Role::Viewer, Some("unfavorite_dag"), "Unmark a favorite DAG (for the caller)", unfavorite),
    guarded(Post, "/api/v2/connections/defaults", Role::Op, Some("create_default_connections"), "Create Airflow's default connections of the kinds updraft's operators use, where missing", create_defaults),
    guarded(Post, "/api/v2/connections/enqueue-test", Role::Op, None, "Queue a connection test (only with [core] test_connection = Enabled)", enqueue_test),
    guarded(Get, "/api/v2/connections/enqueue-test", Role::Op, None, "A queued connection test's state, by the token in Airflow-Connection-Test-Token", get_test),
    guarded(Put, "/api/v2/parseDagFile/{file_token}", Role::User, Some("reparse_dag_file"), "Re-parse the DAG files now (the token names one; changed files are parsed)", reparse),
];

fn user_name(p: &Params) -> String {
    p.user.as_ref().map(|u| u.name.clone()).unwrap_or_default()
}

fn dag_exists(ctx: &Ctx, store: &Store, dag_id: &str) -> Result<(), ApiError> {
    match ctx.dags.get(store, dag_id)? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!(
            "Dag with id '{dag_id}' not found"
        ))),
    }
}

/// `POST /dags/{dag_id}/favorite`: 204; 409 when it already is.
fn favorite(ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    dag_exists(ctx, store, dag_id)?;
    let user = user_name(p);
    if !store.write(|tx| tx.set_favorite(dag_id, &user, true))? {
        return Err(unique_violation("dag_favorite"));
    }
    Ok(no_content())
}

/// `POST /dags/{dag_id}/unfavorite`: 204; 409 when it was not a favorite.
fn unfavorite(ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let dag_id = p.get("dag_id");
    dag_exists(ctx, store, dag_id)?;
    let user = user_name(p);
    if !store.write(|tx| tx.set_favorite(dag_id, &user, false))? {
        return Err(ApiError::new(409, "Dag is not marked as favorite"));
    }
    Ok(no_content())
}

/// Airflow's default connections (`airflow.utils.db.create_default_connections`) of the
/// types updraft's operators and hooks use; `sqlite_default`'s file is in updraft's home
/// (Airflow's is in the temporary folder).
fn defaults(home: &std::path::Path) -> Vec<Connection> {
    let conn = |id: &str, kind: &str, host: Option<String>, extra: Option<&str>| Connection {
        conn_id: id.to_string(),
        conn_type: kind.to_string(),
        description: None,
        host,
        schema: None,
        login: None,
        password: None,
        port: None,
        extra: extra.map(str::to_string),
    };
    let sqlite = home.join("sqlite_default.db");
    vec![
        conn("fs_default", "fs", None, Some(r#"{"path": "/"}"#)),
        conn(
            "http_default",
            "http",
            Some("https://www.httpbin.org/".into()),
            None,
        ),
        conn(
            "sqlite_default",
            "sqlite",
            Some(sqlite.to_string_lossy().into_owned()),
            None,
        ),
    ]
}

/// `POST /connections/defaults`: creates the default connections not there yet. 204.
fn create_defaults(
    ctx: &Ctx,
    store: &mut Store,
    _req: &Req,
    _p: &Params,
) -> Result<Reply, ApiError> {
    for c in defaults(&ctx.cfg.home) {
        store.add_connection(&c)?;
    }
    Ok(no_content())
}

/// A queued connection test: updraft runs it when it is queued (it has no hooks to run
/// elsewhere), so it is finished by the first poll.
struct QueuedTest {
    connection_id: String,
    state: &'static str,
    result_message: String,
    created_at: String,
}

/// The tests of this process, by token; the oldest go past this many.
const KEPT_TESTS: usize = 1000;
static TESTS: Mutex<Vec<(String, QueuedTest)>> = Mutex::new(Vec::new());

fn tests() -> std::sync::MutexGuard<'static, Vec<(String, QueuedTest)>> {
    TESTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// `POST /connections/enqueue-test`: 403 unless `[core] test_connection` is Enabled, as
/// Airflow; then the test runs at once as `POST /connections/test` does (updraft has no
/// connection hooks, so it fails with "Unknown hook type") and its token is returned. 202.
fn enqueue_test(ctx: &Ctx, _store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    let b = body(
        req,
        &[
            field("connection_id", Kind::Str, true, false),
            field("conn_type", Kind::Str, true, false),
            field("description", Kind::Str, false, true),
            field("host", Kind::Str, false, true),
            field("login", Kind::Str, false, true),
            field("schema", Kind::Str, false, true),
            field("port", Kind::Int, false, true),
            field("password", Kind::Str, false, true),
            field("extra", Kind::Str, false, true),
            field("team_name", Kind::Str, false, true),
            field("commit_on_success", Kind::Bool, false, false),
            field("executor", Kind::Str, false, true),
            field("queue", Kind::Str, false, true),
        ],
    )?;
    if ctx.cfg.core.test_connection != crate::config::TestConnection::Enabled {
        return Err(ApiError::new(
            403,
            "Testing connections is disabled in Airflow configuration. Contact your deployment admin to enable it.",
        ));
    }
    let id = b["connection_id"].as_str().unwrap_or_default().to_string();
    let kind = b["conn_type"].as_str().unwrap_or_default();
    let token = crate::ids::random_string(
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        32,
    );
    let test = QueuedTest {
        connection_id: id.clone(),
        state: "failed",
        result_message: format!("Unknown hook type \"{kind}\""),
        created_at: crate::store::ts(ctx.clock.now()),
    };
    let mut all = tests();
    if all.len() >= KEPT_TESTS {
        all.remove(0);
    }
    all.push((token.clone(), test));
    Ok(Reply::json(
        202,
        &json!({"token": token, "connection_id": id, "state": "queued"}),
    ))
}

/// `GET /connections/enqueue-test` with the `Airflow-Connection-Test-Token` header.
fn get_test(_ctx: &Ctx, _store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    let Some(token) = req.header("airflow-connection-test-token") else {
        return Err(ApiError::with_detail(
            422,
            json!([{"type": "missing", "loc": ["header", "Airflow-Connection-Test-Token"], "msg": "Field required", "input": null}]),
        ));
    };
    let all = tests();
    let found: HashMap<&str, &QueuedTest> = all.iter().map(|(t, q)| (t.as_str(), q)).collect();
    let t = found.get(token).ok_or_else(|| {
        ApiError::not_found(format!("No connection test found for token: `{token}`"))
    })?;
    Ok(Reply::json(
        200,
        &json!({"token": token, "connection_id": t.connection_id, "state": t.state,
                "result_message": t.result_message, "created_at": t.created_at}),
    ))
}

/// `PUT /parseDagFile/{file_token}`: the token (as the DAG responses' `file_token`)
/// names a DAG file; updraft parses the DAG folders now, which re-parses that file if it
/// changed (and any other that did). 201 with `null`; 404 for a token it did not sign.
fn reparse(ctx: &Ctx, store: &mut Store, _req: &Req, p: &Params) -> Result<Reply, ApiError> {
    if ctx.file_tokens.open(p.get("file_token")).is_none() {
        return Err(ApiError::not_found("File not found"));
    }
    crate::processor::sync(store, &ctx.cfg, ctx.clock.now())?;
    ctx.wake_scheduler();
    Ok(Reply::json(201, &Value::Null))
}
