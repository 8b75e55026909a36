//! Connections: create, read, update, delete, bulk changes and the connection test, with
//! Airflow 3.3.2's paths, shapes, texts and status codes. A connection's password is always
//! `***` and its `extra` is masked key by key; a `***` sent back in a PATCH keeps the
//! stored secret, as Airflow merges it.

use super::bulk::{Objects, bulk, delete_one, get_one, patch_one, post_one};
use super::kit::unique_violation;
use crate::py::py_json;
use crate::store::{Connection, Store, Tx};
use serde_json::{Map, Value, json};

use super::kit::{Field, Kind, collection, field, is_sensitive, mask, order_by, page};
use super::kit::{
    Patterns, at, body_loc, error, get, json_body, max_len, no_team, sort, string, unprocessable,
    validate,
};
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::error::Result;

use Method::{Delete, Get, Patch, Post};

/// Connections.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/connections", Role::Op, None, "List connections (passwords and secret extras masked)", list_connections),
    guarded(Post, "/api/v2/connections", Role::Op, Some("post_connection"), "Create a connection", post_one::<Conns>),
    guarded(Patch, "/api/v2/connections", Role::Op, Some("bulk_connections"), "Create, update and delete connections in bulk", bulk::<Conns>),
    guarded(Post, "/api/v2/connections/test", Role::Op, None, "Test a connection (only with [core] test_connection = Enabled)", test_connection),
    guarded(Get, "/api/v2/connections/{connection_id}", Role::Op, None, "Get a connection", get_one::<Conns>),
    guarded(Patch, "/api/v2/connections/{connection_id}", Role::Op, Some("patch_connection"), "Update a connection; `***` keeps a stored secret", patch_one::<Conns>),
    guarded(Delete, "/api/v2/connections/{connection_id}", Role::Op, Some("delete_connection"), "Delete a connection", delete_one::<Conns>),
];

const CONNECTION: &[Field] = &[
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
];

/// ConnectionBody's `connection_id` pattern.
const CONN_ID_PATTERN: &str = r"^[\w.-]+$";

fn list_connections(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let allowed = [
        "conn_id",
        "connection_id",
        "conn_type",
        "description",
        "host",
        "port",
        "id",
        "team_name",
    ];
    let (by, desc) = order_by(req, &allowed, "id")?;
    let by = if by == "conn_id" { "connection_id" } else { by };
    let filter = Patterns::new(req, "connection_id");
    let mut rows: Vec<Value> = store
        .connections()?
        .into_iter()
        .filter(|(_, c)| filter.keep(&c.conn_id))
        .map(|(id, c)| {
            let mut row = connection_json(&c);
            row["id"] = json!(id);
            row
        })
        .collect();
    sort(&mut rows, by, desc, &["id"]);
    Ok(Reply::json(
        200,
        &collection("connections", rows, limit, offset),
    ))
}

/// `POST /connections/test`: off unless `[core] test_connection = Enabled`, as in Airflow.
/// When on, the body (over the stored connection of that id when it names one, whose
/// secrets a `***` or an absent field keeps, as Airflow merges them; a different host or
/// port must bring its own credentials) is tested by the supervisor's own code for the
/// types updraft runs (`executor::operators::test_connection`): http, sqlite, fs.
fn test_connection(ctx: &Ctx, store: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let m = check_connection(&json_body(req)?, &body_loc()).map_err(unprocessable)?;
    if ctx.cfg.core.test_connection != crate::config::TestConnection::Enabled {
        return Err(ApiError::new(
            403,
            "Testing connections is disabled in Airflow configuration. Contact your deployment admin to enable it.",
        ));
    }
    let id = string(&m, "connection_id").unwrap_or_default();
    let mut conn = json!({"conn_id": id});
    if let Some(stored) = store.connection(&id)? {
        let differs =
            |k: &str, stored: Value| m.get(k).is_some_and(|v| !v.is_null() && *v != stored);
        let moved = differs("host", json!(stored.host)) || differs("port", json!(stored.port));
        let own_secret = ["login", "password"].iter().any(|k| {
            m.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|v| v != "***")
        });
        if moved && !own_secret {
            return Err(ApiError::new(
                400,
                "The host or port to test differs from the stored connection. Include the credentials to test in the request body.",
            ));
        }
        if !moved {
            conn = stored.to_json();
        }
    }
    for (k, v) in &m {
        let key = if k == "connection_id" {
            "conn_id"
        } else {
            k.as_str()
        };
        if v.as_str() != Some("***") {
            conn[key] = v.clone();
        }
    }
    let (status, message) = crate::executor::operators::test_connection(&conn);
    Ok(Reply::json(
        200,
        &json!({"status": status, "message": message}),
    ))
}

fn connection_missing(id: &str) -> String {
    format!("The Connection with connection_id: `{id}` was not found")
}

fn check_connection(v: &Value, loc: &[Value]) -> Result<Map<String, Value>, Vec<Value>> {
    let m = validate(v, CONNECTION, loc)?;
    let mut errors = Vec::new();
    if let Some(id) = m.get("connection_id").and_then(Value::as_str) {
        max_len(&m, "connection_id", 200, loc, &mut errors);
        let ok = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            errors.push(error(
                &at(loc, "connection_id"),
                "string_pattern_mismatch",
                &format!("String should match pattern '{CONN_ID_PATTERN}'"),
                &json!(id),
                Some(json!({"pattern": CONN_ID_PATTERN})),
            ));
        }
    }
    if let Some(extra) = m
        .get("extra")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        let why = match serde_json::from_str::<Value>(extra) {
            Ok(Value::Object(_)) => None,
            Ok(_) => Some(
                "Value error, The `extra` field must be a valid JSON object (e.g., {'key': 'value'})",
            ),
            Err(_) => Some(
                "Value error, The `extra` field must be a valid JSON object (e.g., {'key': 'value'}), but encountered non-JSON in `extra` field",
            ),
        };
        if let Some(msg) = why {
            errors.push(error(
                &at(loc, "extra"),
                "value_error",
                msg,
                &json!(extra),
                Some(json!({"error": {}})),
            ));
        }
    }
    no_team(&m, loc, &mut errors);
    errors.is_empty().then_some(m).ok_or(errors)
}

/// `extra` as stored: `""` is `{}`, as Airflow keeps it.
fn extra_text(m: &Map<String, Value>) -> Option<String> {
    m.get("extra")
        .and_then(Value::as_str)
        .map(|e| if e.is_empty() { "{}".into() } else { e.into() })
}

fn new_connection(m: &Map<String, Value>) -> Connection {
    Connection {
        conn_id: string(m, "connection_id").unwrap_or_default(),
        conn_type: string(m, "conn_type").unwrap_or_default(),
        description: string(m, "description"),
        host: string(m, "host"),
        schema: string(m, "schema"),
        login: string(m, "login"),
        password: string(m, "password"),
        port: m.get("port").and_then(Value::as_i64),
        extra: extra_text(m),
    }
}

/// ConnectionResponse: the password is `***` whenever one is set; `extra` has the values
/// of secret-looking keys masked (and text that is not JSON is hidden whole).
fn connection_json(c: &Connection) -> Value {
    let extra = c.extra.as_deref().map(|e| {
        if e.is_empty() {
            String::new()
        } else {
            serde_json::from_str::<Value>(e)
                .map_or_else(|_| "***".into(), |v| py_json(&mask(&v), None))
        }
    });
    json!({
        "connection_id": c.conn_id,
        "conn_type": c.conn_type,
        "description": c.description,
        "host": c.host,
        "login": c.login,
        "schema": c.schema,
        "port": c.port,
        "password": c.password.as_ref().map(|_| "***"),
        "extra": extra,
        "team_name": null,
    })
}

/// A PATCH of a connection, as Airflow's `update_orm_from_pydantic`: plain fields as
/// given; the password and `extra` merged with the stored ones, so a `***` the client
/// got from a GET keeps the stored secret.
fn apply_connection(
    old: &Connection,
    m: &Map<String, Value>,
    mask: Option<&[String]>,
) -> Connection {
    let in_mask = |f: &str| mask.is_none_or(|mk| mk.iter().any(|x| x == f));
    let set = |f: &str| m.contains_key(f) && in_mask(f);
    let mut c = old.clone();
    if set("conn_type") {
        c.conn_type = string(m, "conn_type").unwrap_or_default();
    }
    for (f, slot) in [
        ("description", &mut c.description),
        ("host", &mut c.host),
        ("login", &mut c.login),
        ("schema", &mut c.schema),
    ] {
        if set(f) {
            *slot = string(m, f);
        }
    }
    if set("port") {
        c.port = m.get("port").and_then(Value::as_i64);
    }
    // Named in the mask, a field missing from the body is cleared, as in Airflow.
    let touched = |f: &str| match mask {
        None => m.contains_key(f),
        Some(mk) => mk.iter().any(|x| x == f),
    };
    if touched("password") {
        c.password = match string(m, "password") {
            Some(p) if p == "***" => old.password.clone(),
            other => other,
        };
    }
    if touched("extra") {
        let new = extra_text(m);
        c.extra = match (&new, &old.extra) {
            (Some(n), Some(o)) => match (
                serde_json::from_str::<Value>(n),
                serde_json::from_str::<Value>(o),
            ) {
                (Ok(n), Ok(o)) => Some(py_json(&merge(&n, &o, false), None)),
                _ => new,
            },
            _ => new,
        };
    }
    c
}

/// Airflow's secrets-masker `merge`: where the new value still holds `***` under a
/// secret-looking key, the old value comes back.
fn merge(new: &Value, old: &Value, sensitive: bool) -> Value {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => Value::Object(
            n.iter()
                .map(|(k, v)| {
                    let merged = match o.get(k) {
                        Some(ov) => merge(v, ov, sensitive || is_sensitive(k)),
                        None => v.clone(),
                    };
                    (k.clone(), merged)
                })
                .collect(),
        ),
        (Value::Array(n), Value::Array(o)) => Value::Array(
            n.iter()
                .enumerate()
                .map(|(i, v)| match o.get(i) {
                    Some(ov) => merge(v, ov, sensitive),
                    None => v.clone(),
                })
                .collect(),
        ),
        _ if sensitive && new == "***" => old.clone(),
        _ => new.clone(),
    }
}

struct Conns;

impl Objects for Conns {
    const NOUN: &'static str = "connections";
    const IDS: &'static str = "connection_ids";
    const PARAM: &'static str = "connection_id";
    const ID_FIELD: &'static str = "connection_id";
    fn check(v: &Value, loc: &[Value]) -> std::result::Result<Map<String, Value>, Vec<Value>> {
        check_connection(v, loc)
    }
    fn id_mismatch(body: &Map<String, Value>, id: &str) -> Option<&'static str> {
        (get(body, "connection_id") != id)
            .then_some("The connection_id in the request body does not match the URL parameter")
    }
    fn missing(id: &str) -> String {
        connection_missing(id)
    }
    fn already_exists(id: &str) -> ApiError {
        unique_violation(&format!("connection {id:?}"))
    }
    fn show(store: &Store, id: &str) -> Result<Option<Value>> {
        Ok(store.connection(id)?.map(|c| connection_json(&c)))
    }
    fn exists(tx: &Tx, id: &str) -> Result<bool> {
        Ok(tx.connection(id)?.is_some())
    }
    fn create(tx: &Tx, m: &Map<String, Value>, exists: bool) -> Result<()> {
        let new = new_connection(m);
        let id = new.conn_id.clone();
        match tx.connection(&id)?.filter(|_| exists) {
            // Overwrite only the fields the request gave, as Airflow's exclude_unset.
            Some(mut c) => {
                let given = |f: &str| m.contains_key(f);
                if given("conn_type") {
                    c.conn_type = new.conn_type;
                }
                if given("description") {
                    c.description = new.description;
                }
                if given("host") {
                    c.host = new.host;
                }
                if given("login") {
                    c.login = new.login;
                }
                if given("schema") {
                    c.schema = new.schema;
                }
                if given("port") {
                    c.port = new.port;
                }
                if given("password") {
                    c.password = new.password;
                }
                if given("extra") {
                    c.extra = new.extra;
                }
                tx.put_connection(&c)
            }
            None => tx.put_connection(&new),
        }
    }
    fn update(
        tx: &Tx,
        id: &str,
        m: &Map<String, Value>,
        mask: Option<&[String]>,
    ) -> Result<std::result::Result<(), String>> {
        let Some(old) = tx.connection(id)? else {
            return Ok(Err(connection_missing(id)));
        };
        tx.put_connection(&apply_connection(&old, m, mask)).map(Ok)
    }
    fn delete(tx: &Tx, id: &str) -> Result<std::result::Result<(), String>> {
        tx.delete_connection(id).map(|_| Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_secrets_merge_back() {
        let old = json!({"token": "t", "n": 1, "nested": {"password": "p"}});
        let new = json!({"token": "***", "n": 2, "nested": {"password": "***"}});
        assert_eq!(
            merge(&new, &old, false),
            json!({"token": "t", "n": 2, "nested": {"password": "p"}})
        );
        // Not a secret key: `***` is a value like any other.
        assert_eq!(
            merge(&json!({"x": "***"}), &json!({"x": "y"}), false),
            json!({"x": "***"})
        );
    }

    #[test]
    fn connection_patch_keeps_masked_password() {
        let old = Connection {
            conn_id: "c".into(),
            conn_type: "http".into(),
            password: Some("secret".into()),
            extra: Some("{\"api_key\": \"k\", \"t\": 1}".into()),
            host: Some("h".into()),
            ..Connection::default()
        };
        let body = json!({"connection_id": "c", "conn_type": "http", "password": "***",
                          "extra": "{\"api_key\": \"***\", \"t\": 2}"});
        let m = body.as_object().unwrap();
        let c = apply_connection(&old, m, None);
        assert_eq!(c.password.as_deref(), Some("secret"));
        assert_eq!(c.extra.as_deref(), Some("{\"api_key\": \"k\", \"t\": 2}"));
        assert_eq!(c.host.as_deref(), Some("h"));
        let mask = vec!["password".to_string()];
        let c = apply_connection(&old, &Map::new(), Some(&mask));
        assert_eq!(c.password, None);
    }
}
