//! The configuration (`/config`), as `[api] expose_config` allows, in JSON or text.

use crate::store::Store;
use serde_json::{Value, json};

use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::error::Result;

use Method::Get;

/// The configuration.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/config", Role::Viewer, None, "The configuration, if [api] expose_config allows (JSON or text/plain)", get_config),
    guarded(Get, "/api/v2/config/section/{section}/option/{option}", Role::Viewer, None, "One configuration value, if [api] expose_config allows", get_config_value),
];

/// Options Airflow marks `sensitive` (config.yml), besides updraft's own secrets.
const SENSITIVE_OPTIONS: &[(&str, &str)] = &[
    ("core", "fernet_key"),
    ("core", "asset_manager_kwargs"),
    ("database", "sql_alchemy_conn"),
    ("database", "sql_alchemy_conn_async"),
    ("database", "sql_alchemy_engine_args"),
    ("logging", "remote_task_handler_kwargs"),
    ("secrets", "backend_kwargs"),
    ("api", "secret_key"),
    ("workers", "secrets_backend_kwargs"),
    ("api_auth", "jwt_secret"),
    ("sentry", "sentry_dsn"),
];

const HIDDEN: &str = "< hidden >";

fn sensitive_option(e: &crate::config::Entry) -> bool {
    e.kind == crate::config::Kind::Secret || SENSITIVE_OPTIONS.contains(&(e.section, e.key))
}

/// `true` for `Accept: text/plain`; JSON for `application/json`, `*/*` or none; else 406.
fn wants_text(req: &Req) -> Result<bool, ApiError> {
    let accept = req.header("accept").unwrap_or("*/*");
    if accept.starts_with("*/*") || accept.starts_with("application/json") {
        Ok(false)
    } else if accept.starts_with("text/plain") {
        Ok(true)
    } else {
        Err(ApiError::new(
            406,
            "Only application/json or text/plain is supported",
        ))
    }
}

/// `[api] expose_config`: `False` refuses; `True` and `non-sensitive-only` both show the
/// configuration with sensitive values hidden (Airflow 3.3.2 never shows them).
fn check_expose(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.cfg.api.expose_config != crate::config::ExposeConfig::False {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "Your Airflow administrator chose not to expose the configuration, most likely for security reasons.",
        ))
    }
}

fn config_reply(text: bool, sections: Vec<(String, Vec<(String, String)>)>) -> Reply {
    if text {
        let body: Vec<String> = sections
            .iter()
            .map(|(name, options)| {
                let lines: Vec<String> =
                    options.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("[{name}]\n{}\n", lines.join("\n"))
            })
            .collect();
        return Reply::bytes(
            200,
            "text/plain; charset=utf-8",
            body.join("\n").into_bytes(),
        );
    }
    let sections: Vec<Value> = sections
        .into_iter()
        .map(|(name, options)| {
            let options: Vec<Value> = options
                .into_iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            json!({"name": name, "options": options})
        })
        .collect();
    Reply::json(200, &json!({ "sections": sections }))
}

fn get_config(ctx: &Ctx, _: &mut Store, req: &Req, _: &Params) -> Result<Reply, ApiError> {
    let text = wants_text(req)?;
    check_expose(ctx)?;
    let only = req.query("section").filter(|s| !s.is_empty());
    if let Some(s) = only
        && !ctx.cfg.entries.iter().any(|e| e.section == s)
    {
        return Err(ApiError::not_found(format!("Section {s} not found.")));
    }
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for e in ctx
        .cfg
        .entries
        .iter()
        .filter(|e| only.is_none_or(|s| s == e.section))
    {
        let value = if sensitive_option(e) && !e.value.is_empty() {
            HIDDEN.to_string()
        } else {
            e.value.clone()
        };
        match sections.iter_mut().find(|(name, _)| name == e.section) {
            Some((_, options)) => options.push((e.key.to_string(), value)),
            None => sections.push((e.section.to_string(), vec![(e.key.to_string(), value)])),
        }
    }
    Ok(config_reply(text, sections))
}

fn get_config_value(ctx: &Ctx, _: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let text = wants_text(req)?;
    check_expose(ctx)?;
    let (section, option) = (p.get("section"), p.get("option"));
    // Option names are case-insensitive in Airflow's config parser; sections are not.
    let e = ctx
        .cfg
        .get(section, &option.to_ascii_lowercase())
        .ok_or_else(|| ApiError::not_found(format!("Option [{section}/{option}] not found.")))?;
    let value = if sensitive_option(e) {
        HIDDEN.to_string()
    } else {
        e.value.clone()
    };
    Ok(config_reply(
        text,
        vec![(section.to_string(), vec![(option.to_string(), value)])],
    ))
}
