//! The query string as Airflow's list routes read it: paging, `order_by`, times, booleans,
//! repeated parameters; and Airflow's date format and collection shape in replies.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::body::invalid;
use super::time::parse_datetime;
use crate::api::http::{ApiError, Req};
use crate::api::route::Ctx;

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
