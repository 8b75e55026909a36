//! Who is asking and what they did: SimpleAuthManager's token routes, the UI's login and
//! logout redirects, the check of a guarded route's token or cookie ([`authorize`]) and
//! the audit log entry of a change ([`audit`]).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::kit::mask;
use super::signing;
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{App, Ctx, Params, Route, guarded, public};
use crate::auth::{self, Role, User};
use crate::store::{Event, Store};

/// Login: SimpleAuthManager's token routes, and the UI's login/logout redirects.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    public(Method::Post, "/auth/token", App::Core, "Log in: username and password (JSON or form) for a token", token),
    public(Method::Post, "/auth/token/cli", App::Core, "Log in for a CLI token", token),
    public(Method::Get, "/auth/token", App::Core, "A token without credentials (only with simple_auth_manager_all_admins)", token_all_admins),
    public(Method::Get, "/api/v2/auth/login", App::Core, "Redirect to the login page", login_redirect),
    public(Method::Get, "/api/v2/auth/logout", App::Core, "Log out: forget the token cookie and go to the login page", logout),
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
    let token = match bearer {
        Some(t) => t,
        None => {
            let t = cookie(req, COOKIE).ok_or_else(|| ApiError::new(401, "Not authenticated"))?;
            // A browser sends the cookie along with any site's form or fetch; only our own
            // pages may use it to change things (a Bearer header is never sent by itself).
            if !matches!(req.method, Method::Get | Method::Head | Method::Options)
                && !same_origin(ctx, req)
            {
                return Err(ApiError::new(
                    403,
                    "Forbidden: a change authenticated by the _token cookie must come from \
                     this server's own pages (Origin or Sec-Fetch-Site); API clients send \
                     Authorization: Bearer",
                ));
            }
            t
        }
    };
    let user = auth::verify(&ctx.secret, token, ctx.clock.now()).map_err(|e| match e {
        crate::jwt::Invalid::Expired => ApiError::new(403, "Token Expired"),
        _ => ApiError::new(403, "Invalid JWT token"),
    })?;
    if !auth::still_configured(&user, &ctx.cfg.auth.users) {
        return Err(ApiError::new(
            403,
            "Invalid JWT token: its user is no longer configured with its role; log in again",
        ));
    }
    if user.role < need {
        return Err(ApiError::new(403, "Forbidden"));
    }
    Ok(user)
}

/// Whether a request comes from a page this server served: `Sec-Fetch-Site: same-origin`
/// when the browser sends it (every current one does), else an `Origin` whose host and
/// port are the request's `Host` (or, with `[api] proxy_headers`, the proxy's
/// `X-Forwarded-Host`), so any base_url prefix and any proxy in front keep working.
/// Neither header means an old browser we cannot judge or a script holding the cookie,
/// which can send it as a Bearer header instead: refused.
fn same_origin(ctx: &Ctx, req: &Req) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        return site.trim().eq_ignore_ascii_case("same-origin");
    }
    let Some((scheme, origin_host)) = req
        .header("origin")
        .and_then(|o| o.trim().split_once("://"))
    else {
        return false;
    };
    let forwarded = if ctx.cfg.api.proxy_headers {
        req.header("x-forwarded-host")
            .and_then(|h| h.split(',').next())
    } else {
        None
    };
    let Some(host) = forwarded.or_else(|| req.header("host")) else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let norm = |h: &str| {
        let h = h.trim().to_ascii_lowercase();
        h.strip_suffix(default_port)
            .map(str::to_string)
            .unwrap_or(h)
    };
    !origin_host.contains('/') && norm(origin_host) == norm(host)
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
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let body: Map<String, Value> = if form {
        let text = String::from_utf8_lossy(&req.body);
        crate::percent::parse_query(&text)
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
    let ip = req.remote.map(|a| a.ip());
    // Names that are no user share one count: the limiter keeps one entry per
    // configured user, however many names a client makes up.
    let configured = ctx.cfg.auth.users.iter().any(|(u, _)| u == username);
    let counted = if configured { username } else { "" };
    if !ctx.limiter.allowed(ip, counted) {
        return Err(ApiError::new(
            429,
            format!(
                "Too many failed logins for this user or from this address; try again in {} seconds",
                auth::WINDOW.as_secs()
            ),
        ));
    }
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
            .is_some_and(|p| signing::same_secret(p.as_bytes(), password.as_bytes()));
    match (ok, role) {
        (true, Some(role)) => {
            ctx.limiter.succeeded(username);
            issue_for(
                ctx,
                User {
                    name: username.to_string(),
                    role,
                },
            )
        }
        _ => {
            ctx.limiter.failed(ip, counted);
            // Shown, not echoed whole: the name is whatever the client sent.
            let shown: String = username.chars().take(64).collect();
            log::warn!("failed login for {shown:?} from {ip:?}");
            Err(ApiError::new(401, "Invalid credentials"))
        }
    }
}

fn issue_for(ctx: &Ctx, user: User) -> Result<Reply, ApiError> {
    let t = auth::issue(
        &ctx.secret,
        &user,
        ctx.cfg.auth.jwt_expiration_time,
        ctx.clock.now(),
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
    let next = req.query("next").filter(|n| is_safe_next(n, &req.prefix));
    let mut location = format!("{}/login", req.prefix);
    if let Some(n) = next {
        location.push_str(&format!("?next={}", crate::percent::encode_query(n)));
    }
    Ok(Reply::redirect(&location))
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

/// Writes the audit entry of a successful mutating call: who, what, which DAG, run and
/// task, and the request body with secrets masked.
pub fn audit(store: &mut Store, event: &str, req: &Req, p: &Params, now: DateTime<Utc>) {
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
    if let Err(e) = store.write(|tx| tx.event(&ev, now)) {
        log::error!("cannot write the audit entry {event}: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn next_must_stay_here() {
        assert!(is_safe_next("/p/dags", "/p"));
        assert!(!is_safe_next("//evil.com/x", ""));
        assert!(!is_safe_next("http://evil.com/p/x", "/p"));
        assert!(!is_safe_next("/other", "/p"));
    }
}
