//! The Core API (`/api/v2`) and login (`/auth`): shared pieces every resource uses —
//! who is asking, paging and ordering, Airflow's date format, request bodies checked
//! the way Airflow's pydantic models check them, secret masking, the audit log — and
//! the login routes themselves. Resources live in the sibling files, one route table
//! each.

pub mod dags;
pub mod objects;
pub mod runs;
pub mod tis;
pub mod ui;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{ApiError, Ctx, Method, Params, Reply, Req, Route, guarded, public};
use crate::auth::{self, Role, User};
use crate::store::{Event, Store};

/// Login: SimpleAuthManager's token routes, and the UI's login/logout redirects.
#[rustfmt::skip]
pub static AUTH: &[Route] = &[
    public(Method::Post, "/auth/token", super::App::Core, "Log in: username and password (JSON or form) for a token", token),
    public(Method::Post, "/auth/token/cli", super::App::Core, "Log in for a CLI token", token),
    public(Method::Get, "/auth/token", super::App::Core, "A token without credentials (only with simple_auth_manager_all_admins)", token_all_admins),
    public(Method::Get, "/api/v2/auth/login", super::App::Core, "Redirect to the login page", login_redirect),
    public(Method::Get, "/api/v2/auth/logout", super::App::Core, "Log out: forget the token cookie and go to the login page", logout),
    guarded(Method::Get, "/ui/auth/me", Role::Viewer, None, "Who is logged in (for the UI)", me),
];

/// The name of the cookie the UI keeps its token in (Airflow's).
pub const COOKIE: &str = "_token";

/// Who is asking, from `Authorization: Bearer` or the UI's cookie, checked against the
/// role the route needs. With `simple_auth_manager_all_admins`, everyone is admin.
pub fn authorize(ctx: &Ctx, req: &Req, need: Role) -> Result<User, ApiError> {
    if ctx.cfg.auth.all_admins {
        return Ok(User {
            name: "admin".into(),
            role: Role::Admin,
        });
    }
    let bearer = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let token = bearer
        .or_else(|| cookie(req, COOKIE))
        .ok_or_else(|| ApiError::new(401, "Not authenticated"))?;
    let user = auth::verify(&ctx.secret, token, Utc::now()).map_err(|e| match e {
        crate::jwt::Invalid::Expired => ApiError::new(403, "Token Expired"),
        _ => ApiError::new(403, "Invalid JWT token"),
    })?;
    if user.role < need {
        return Err(ApiError::new(403, "Forbidden"));
    }
    Ok(user)
}

fn cookie<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.header("cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// `POST /auth/token`: 201 `{"access_token": JWT}` for a right username and password.
fn token(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    if ctx.cfg.auth.all_admins {
        return issue_for(
            ctx,
            User {
                name: "admin".into(),
                role: Role::Admin,
            },
        );
    }
    let ip = req.remote.map(|a| a.ip());
    if !ctx.limiter.allowed(ip) {
        return Err(ApiError::new(
            429,
            "Too many failed logins from this address; wait a minute",
        ));
    }
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let body: Map<String, Value> = if form {
        let text = String::from_utf8_lossy(&req.body);
        super::http::parse_query(&text)
            .ok_or_else(|| {
                ApiError::bad_request("the form body is not valid percent-encoded UTF-8")
            })?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(ApiError::new(
                    422,
                    "the body must be a JSON object {\"username\": ..., \"password\": ...} or a form",
                ));
            }
        }
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let (Some(username), Some(password)) = (field("username"), field("password")) else {
        let missing: Vec<&str> = ["username", "password"]
            .into_iter()
            .filter(|f| field(f).is_none())
            .collect();
        return Err(ApiError::new(
            422,
            format!(
                "validation error for LoginBody: {} Field required",
                missing.join(", ")
            ),
        ));
    };
    let passwords = auth::init_passwords(&ctx.cfg).map_err(|e| {
        log::error!("cannot read the passwords file: {e}");
        ApiError::new(500, "internal error; see the server log")
    })?;
    let role = ctx
        .cfg
        .auth
        .users
        .iter()
        .find(|(u, _)| u == username)
        .and_then(|(_, r)| Role::parse(r));
    let ok = role.is_some()
        && passwords
            .get(username)
            .is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()));
    match (ok, role) {
        (true, Some(role)) => {
            ctx.limiter.succeeded(ip);
            issue_for(
                ctx,
                User {
                    name: username.to_string(),
                    role,
                },
            )
        }
        _ => {
            ctx.limiter.failed(ip);
            log::warn!("failed login for {username:?} from {ip:?}");
            Err(ApiError::new(401, "Invalid credentials"))
        }
    }
}

fn issue_for(ctx: &Ctx, user: User) -> Result<Reply, ApiError> {
    let t = auth::issue(
        &ctx.secret,
        &user,
        ctx.cfg.auth.jwt_expiration_time,
        Utc::now(),
    );
    Ok(Reply::json(201, &json!({"access_token": t})))
}

/// `GET /auth/token`: only when everyone is admin, as in Airflow.
fn token_all_admins(ctx: &Ctx, s: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    if !ctx.cfg.auth.all_admins {
        return Err(ApiError::new(403, "Forbidden"));
    }
    token(ctx, s, req, p)
}

/// `GET /api/v2/auth/login`: to the UI's login page (under the prefix), keeping `next`.
fn login_redirect(_: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::redirect(&login_location(
        &req.prefix,
        req.query("next"),
    )))
}

/// The UI's login page under `prefix`, with `next` when it is safe, encoded as a query
/// value so that every reader gets it back as sent.
fn login_location(prefix: &str, next: Option<&str>) -> String {
    let mut location = format!("{prefix}/login");
    if let Some(n) = next.filter(|n| is_safe_next(n, prefix)) {
        location.push_str(&format!("?next={}", crate::api::http::query_encode(n)));
    }
    location
}

/// `GET /api/v2/auth/logout`: clears the cookie (scoped to the prefix) and goes to login.
fn logout(_: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    Ok(
        Reply::redirect(&format!("{}/login", req.prefix)).with_header(
            "Set-Cookie",
            &format!(
                "{COOKIE}=; Path={}/; Max-Age=0; HttpOnly; SameSite=Lax",
                req.prefix
            ),
        ),
    )
}

/// `GET /ui/auth/me`: the logged-in user and role.
fn me(ctx: &Ctx, _: &mut Store, _: &Req, p: &Params) -> Result<Reply, ApiError> {
    let u = p.user().expect("a guarded route has a user");
    Ok(Reply::json(
        200,
        &json!({"username": u.name, "role": u.role.as_str(), "all_admins": ctx.cfg.auth.all_admins}),
    ))
}

/// A `next` that stays on this server, under its prefix: no scheme, no `//host`.
fn is_safe_next(next: &str, prefix: &str) -> bool {
    next.starts_with(&format!("{prefix}/"))
        && !next.starts_with("//")
        && !next.contains("://")
        && !next.contains('\\')
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes the audit entry of a successful mutating call: who, what, which DAG, run and
/// task, and the request body with secrets masked.
pub fn audit(store: &mut Store, event: &str, req: &Req, p: &Params) {
    let param = |name: &str| {
        p.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mut extra = json!({"method": req.method.as_str()});
    if !body.is_null() {
        extra["body"] = mask_audit(event, &body);
    }
    let ev = Event {
        event: event.to_string(),
        dag_id: param("dag_id"),
        task_id: param("task_id"),
        run_id: param("dag_run_id"),
        owner: p.user().map(|u| u.name.clone()),
        extra: Some(extra.to_string()),
        ..Event::default()
    };
    if let Err(e) = store.write(|tx| tx.event(&ev, Utc::now())) {
        log::error!("cannot write the audit entry {event}: {e}");
    }
}

/// Words that make a key's value secret: Airflow 3.3.2's `DEFAULT_SENSITIVE_FIELDS`.
const SENSITIVE: &[&str] = &[
    "access_key",
    "access_token",
    "api_key",
    "apikey",
    "auth_header",
    "authorization",
    "bearer",
    "connection_string",
    "dsn",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "proxy",
    "proxy_password",
    "proxies",
    "secret",
    "service_account",
    "service_key",
    "token",
    "keyfile_dict",
    "webhook_url",
];

/// Whether a variable or field name looks secret: lowercased, with each run of
/// characters other than letters, digits and `_` read as one `_` (so `api-key` and
/// `API Key` are `api_key`), it contains one of [`SENSITIVE`], as Airflow decides.
pub fn is_sensitive(key: &str) -> bool {
    let mut k = String::with_capacity(key.len());
    let mut in_run = false;
    for c in key.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '_' {
            k.push(c);
            in_run = false;
        } else if !in_run {
            k.push('_');
            in_run = true;
        }
    }
    SENSITIVE.iter().any(|s| k.contains(s))
}

/// A copy with the values of secret-looking keys replaced by `***`, at any depth. A
/// variable body (`{"key": "db_password", "value": ...}`) masks its value too.
pub fn mask(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let secret_var = m
                .get("key")
                .and_then(Value::as_str)
                .is_some_and(is_sensitive);
            Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let hide = is_sensitive(k) || (secret_var && k == "value");
                        (
                            k.clone(),
                            if hide && !v.is_null() {
                                json!("***")
                            } else {
                                mask(v)
                            },
                        )
                    })
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(mask).collect()),
        other => other.clone(),
    }
}

/// A request body masked for the audit log as Airflow's `action_logging` masks it: a
/// variable's value never appears, whatever its key; a connection's `extra` keeps only its
/// key names; other fields by [`mask`]. Bulk bodies are masked entity by entity.
pub fn mask_audit(event: &str, body: &Value) -> Value {
    let (variable, connection) = (event.contains("variable"), event.contains("connection"));
    if !variable && !connection {
        return mask(body);
    }
    let entity = |e: &Value| -> Value {
        let Value::Object(m) = e else {
            return mask(e);
        };
        let field = |k: &str, v: &Value| -> Value {
            if variable && (k == "value" || k == "val") {
                json!("***")
            } else if connection && k == "extra" && !v.is_null() && v != "" {
                match v.as_str().map(serde_json::from_str::<Value>) {
                    Some(Ok(Value::Object(x))) => {
                        Value::Object(x.keys().map(|k| (k.clone(), json!("***"))).collect())
                    }
                    Some(Ok(_)) => {
                        json!("Expected JSON object in `extra` field, got non-dict JSON")
                    }
                    _ => json!("Encountered non-JSON in `extra` field"),
                }
            } else {
                mask(&json!({ k: v }))[k].clone()
            }
        };
        Value::Object(m.iter().map(|(k, v)| (k.clone(), field(k, v))).collect())
    };
    match body.get("actions").and_then(Value::as_array) {
        Some(actions) => {
            let masked: Vec<Value> = actions
                .iter()
                .map(|a| match a.get("entities").and_then(Value::as_array) {
                    Some(es) => {
                        let mut a = a.clone();
                        a["entities"] = es.iter().map(&entity).collect();
                        a
                    }
                    None => mask(a),
                })
                .collect();
            let mut out = mask(body);
            out["actions"] = Value::Array(masked);
            out
        }
        None => entity(body),
    }
}

/// A time as Airflow's REST models write it: `2024-01-01T00:00:00.123456Z`, without the
/// fraction when it is zero.
pub fn dt(t: Option<DateTime<Utc>>) -> Value {
    match t {
        None => Value::Null,
        Some(t) if t.timestamp_subsec_micros() == 0 => {
            Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
        }
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
    }
}

/// `limit` and `offset`: Airflow's default 50 (`fallback_page_limit`), silently capped at
/// `maximum_page_limit`; a negative or non-numeric value is a 422.
pub fn page(ctx: &Ctx, req: &Req) -> Result<(usize, usize), ApiError> {
    let num = |name: &str, default: usize| -> Result<usize, ApiError> {
        match req.query(name) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().map_err(|_| {
                invalid(
                    &["query", name],
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                    json!(v),
                )
            }),
        }
    };
    let limit = num("limit", ctx.cfg.api.fallback_page_limit as usize)?;
    Ok((
        limit.min(ctx.cfg.api.maximum_page_limit as usize),
        num("offset", 0)?,
    ))
}

/// `order_by` as Airflow's `SortParam` takes it: one or more names (repeated, or a comma
/// list), each with an optional leading `-` for descending; `default` when absent;
/// `aliases` map other names onto allowed ones. An unknown name, or more than ten, is a
/// 400 with Airflow's text.
pub fn orders<'a>(
    values: &[&str],
    allowed: &[&'a str],
    default: &[(&'a str, bool)],
    aliases: &[(&str, &'a str)],
) -> Result<Vec<(&'a str, bool)>, ApiError> {
    let names: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(default.to_vec());
    }
    if names.len() > MAX_SORT_PARAMS {
        let shown: Vec<String> = names.iter().map(|v| format!("'{v}'")).collect();
        return Err(ApiError::bad_request(format!(
            "Ordering with more than {MAX_SORT_PARAMS} parameters is not allowed. Provided: [{}]",
            shown.join(", ")
        )));
    }
    names
        .iter()
        .map(|raw| {
            let (name, desc) = match raw.strip_prefix('-') {
                Some(n) => (n, true),
                None => (*raw, false),
            };
            let name = aliases.iter().find(|(a, _)| *a == name).map_or(name, |(_, to)| *to);
            allowed.iter().find(|a| **a == name).map(|a| (*a, desc)).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Ordering with '{name}' is disallowed or the attribute does not exist on the model"
                ))
            })
        })
        .collect()
}

/// Airflow's `SortParam.MAX_SORT_PARAMS`.
const MAX_SORT_PARAMS: usize = 10;

/// The `order_by` query parameter of a request, parsed by [`orders`].
pub fn order_keys<'a>(
    req: &Req,
    allowed: &[&'a str],
    default: &'a str,
) -> Result<Vec<(&'a str, bool)>, ApiError> {
    orders(
        &query_all(req, "order_by"),
        allowed,
        &[(default, false)],
        &[],
    )
}

/// The first key of `order_by`, for lists that sort by one key.
pub fn order_by<'a>(
    req: &Req,
    allowed: &[&'a str],
    default: &'a str,
) -> Result<(&'a str, bool), ApiError> {
    Ok(order_keys(req, allowed, default)?
        .into_iter()
        .next()
        .unwrap_or((default, false)))
}

/// Sorts rows by the value at `key` in each JSON object (nulls first, as SQL sorts them).
pub fn sort_rows(rows: &mut [Value], key: &str, desc: bool) {
    rows.sort_by(|a, b| {
        let ord = compare(&a[key], &b[key]);
        if desc { ord.reverse() } else { ord }
    });
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// One page of rows, in Airflow's collection shape.
pub fn collection(key: &str, rows: Vec<Value>, limit: usize, offset: usize) -> Value {
    let total = rows.len();
    let items: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
    json!({ key: items, "total_entries": total })
}

/// Airflow's 409 for a row that already exists: the details go to the server log under
/// an error id the reply names, as Airflow hides the SQL.
pub fn unique_violation(what: &str) -> ApiError {
    let id = crate::ids::random_string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        8,
    );
    log::warn!("error id {id}: unique constraint violation: {what}");
    ApiError {
        status: 409,
        detail: json!({
            "reason": "Unique constraint violation",
            "statement": "hidden",
            "orig_error": "hidden",
            "message": format!("Serious error when handling your request. Check logs for more details - you will find it in api server when you look for ID {id}"),
        }),
    }
}

/// A 422 with one pydantic-style error.
pub fn invalid(loc: &[&str], kind: &str, msg: &str, input: Value) -> ApiError {
    ApiError {
        status: 422,
        detail: json!([{"type": kind, "loc": loc, "msg": msg, "input": input}]),
    }
}

/// The kinds of value a body field takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Str,
    Bool,
    Int,
    Number,
    Object,
    List,
    DateTime,
    /// Anything JSON.
    Any,
}

/// One field of a request body.
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub nullable: bool,
}

pub const fn field(name: &'static str, kind: Kind, required: bool, nullable: bool) -> Field {
    Field {
        name,
        kind,
        required,
        nullable,
    }
}

/// Parses a JSON object body and checks it against `fields` as pydantic would for a model
/// with `extra="forbid"`: every problem in one 422 list, in Airflow's shape.
pub fn body(req: &Req, fields: &[Field]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            // serde's column is 1-based within its line; pydantic reports a character offset.
            let offset = req
                .body
                .len()
                .min(e.column().saturating_sub(1) + line_offset(&req.body, e.line()));
            return Err(ApiError {
                status: 422,
                detail: json!([{"type": "json_invalid", "loc": ["body", offset], "msg": "JSON decode error",
                                "input": {}, "ctx": {"error": e.to_string()}}]),
            });
        }
    };
    let Value::Object(map) = value else {
        return Err(invalid(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            value,
        ));
    };
    let mut errors = Vec::new();
    for f in fields {
        match map.get(f.name) {
            None if f.required => errors.push(json!({"type": "missing", "loc": ["body", f.name], "msg": "Field required", "input": Value::Object(map.clone())})),
            None => {}
            Some(Value::Null) if f.nullable || !f.required && f.kind == Kind::Any => {}
            Some(v) => {
                if let Some((kind, msg)) = type_error(f.kind, v) {
                    errors.push(json!({"type": kind, "loc": ["body", f.name], "msg": msg, "input": v}));
                }
            }
        }
    }
    for (k, v) in &map {
        if !fields.iter().any(|f| f.name == k) {
            errors.push(json!({"type": "extra_forbidden", "loc": ["body", k], "msg": "Extra inputs are not permitted", "input": v}));
        }
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(ApiError {
            status: 422,
            detail: Value::Array(errors),
        })
    }
}

fn line_offset(body: &[u8], line: usize) -> usize {
    body.split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum()
}

fn type_error(kind: Kind, v: &Value) -> Option<(&'static str, &'static str)> {
    let ok = match kind {
        Kind::Any => true,
        Kind::Str => v.is_string(),
        Kind::Bool => v.is_boolean(),
        Kind::Int => v.as_i64().is_some(),
        Kind::Number => v.is_number(),
        Kind::Object => v.is_object(),
        Kind::List => v.is_array(),
        Kind::DateTime => v.as_str().is_some_and(|s| parse_datetime(s).is_some()),
    };
    if ok {
        return None;
    }
    Some(match kind {
        Kind::Str => ("string_type", "Input should be a valid string"),
        Kind::Bool => ("bool_type", "Input should be a valid boolean"),
        Kind::Int => ("int_type", "Input should be a valid integer"),
        Kind::Number => ("float_type", "Input should be a valid number"),
        Kind::Object => ("dict_type", "Input should be a valid dictionary"),
        Kind::List => ("list_type", "Input should be a valid list"),
        Kind::DateTime => (
            "datetime_from_date_parsing",
            "Input should be a valid datetime",
        ),
        Kind::Any => unreachable!("always fine"),
    })
}

/// An ISO 8601 time as clients send it; a time without an offset is UTC.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A query parameter as a time, or a 422 naming it.
pub fn query_time(req: &Req, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    match req.query(name) {
        None | Some("") => Ok(None),
        Some(v) => parse_datetime(v).map(Some).ok_or_else(|| {
            invalid(
                &["query", name],
                "datetime_from_date_parsing",
                "Input should be a valid datetime",
                json!(v),
            )
        }),
    }
}

/// A query parameter as a boolean, or a 422 naming it.
pub fn query_bool(req: &Req, name: &str) -> Result<Option<bool>, ApiError> {
    match req.query(name) {
        None => Ok(None),
        Some(v) => crate::config::parse_bool(v)
            .or(match v.to_ascii_lowercase().as_str() {
                "yes" | "on" => Some(true),
                "no" | "off" => Some(false),
                _ => None,
            })
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    &["query", name],
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                    json!(v),
                )
            }),
    }
}

/// Every value of a repeatable query parameter (`tags=a&tags=b`).
pub fn query_all<'a>(req: &'a Req, name: &str) -> Vec<&'a str> {
    req.query
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A SQL-LIKE pattern as Airflow's `*_pattern` filters take it: `%` any run, `_` one
/// character, case-insensitive.
pub fn like(pattern: &str, text: &str) -> bool {
    // Airflow wraps the pattern in `%...%` unless it has wildcards of its own.
    if !pattern.contains(['%', '_']) {
        return text
            .to_ascii_lowercase()
            .contains(&pattern.to_ascii_lowercase());
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy matching that remembers only the last `%`: at most len(p) * len(t) steps,
    // where trying every split at every `%` would take exponential time on a pattern
    // like `%a%a%a%a%b` (a request must not be able to stall a worker).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '_' || c.eq_ignore_ascii_case(&t[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_airflow_format() {
        let t = parse_datetime("2024-01-01T00:00:00+00:00");
        assert_eq!(dt(t), json!("2024-01-01T00:00:00Z"));
        let t = parse_datetime("2026-11-21T08:56:37.186058+00:00");
        assert_eq!(dt(t), json!("2026-11-21T08:56:37.186058Z"));
        assert_eq!(dt(None), Value::Null);
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn masks_secret_keys_at_any_depth() {
        let v = json!({"password": "p", "login": "u", "extra": {"api_key": "k", "n": 1}, "key": "db_token", "value": "s"});
        assert_eq!(
            mask(&v),
            json!({"password": "***", "login": "u", "extra": {"api_key": "***", "n": 1}, "key": "db_token", "value": "***"})
        );
    }

    #[test]
    fn patterns_match_like_sql() {
        assert!(like("exam%", "example_bash"));
        assert!(!like("exam%", "my_example"));
        assert!(like("bash", "example_bash_operator"));
        assert!(like("ex_mple%", "example"));
        assert!(like("%a%b%", "xxaxxbxx"));
        assert!(!like("%a%b", "xxaxxbxx"));
        assert!(like("%", ""));
        // No exponential backtracking on many `%`.
        let t = "a".repeat(250);
        assert!(!like(&format!("{}b", "%a".repeat(40)), &t));
    }

    #[test]
    fn sensitive_names_as_airflow_reads_them() {
        assert!(is_sensitive("db_password"));
        assert!(is_sensitive("API Key"));
        assert!(is_sensitive("my-api-key"));
        assert!(is_sensitive("SLACK_WEBHOOK_URL"));
        assert!(!is_sensitive("timeout"));
        assert!(!is_sensitive("sample_var"));
    }

    #[test]
    fn audit_masks_variable_values_and_connection_extras() {
        let v = json!({"key": "plain", "value": "v", "description": "d"});
        assert_eq!(
            mask_audit("post_variable", &v),
            json!({"key": "plain", "value": "***", "description": "d"})
        );
        let c = json!({"connection_id": "c", "password": "p", "extra": "{\"timeout\": 5}"});
        assert_eq!(
            mask_audit("post_connection", &c),
            json!({"connection_id": "c", "password": "***", "extra": {"timeout": "***"}})
        );
        let bulk = json!({"actions": [{"action": "create", "entities": [v], "action_on_existence": "fail"},
                                       {"action": "delete", "entities": ["plain"]}]});
        let m = mask_audit("bulk_variables", &bulk);
        assert_eq!(m["actions"][0]["entities"][0]["value"], "***");
        assert_eq!(m["actions"][1]["entities"][0], "plain");
    }

    /// Issue 12, item 20: a `next` naming a run id with `+00:00` came back from the
    /// login page's query as `' 00:00'`, another run.
    #[test]
    fn login_keeps_next_as_sent() {
        let next = "/p/dags/d/grid?run=manual__2024-01-01T00:00:00+00:00&task=t";
        let location = login_location("/p", Some(next));
        let (page, query) = location.split_once('?').unwrap();
        assert_eq!(page, "/p/login");
        let got = crate::api::http::parse_query(query).unwrap();
        assert_eq!(got, vec![("next".to_string(), next.to_string())]);
        assert_eq!(login_location("/p", Some("//evil.com/x")), "/p/login");
    }

    #[test]
    fn next_must_stay_here() {
        assert!(is_safe_next("/p/dags", "/p"));
        assert!(!is_safe_next("//evil.com/x", ""));
        assert!(!is_safe_next("http://evil.com/p/x", "/p"));
        assert!(!is_safe_next("/other", "/p"));
    }
}
