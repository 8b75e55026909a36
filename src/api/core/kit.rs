//! The shared request kit of the Core API: pattern filters, time ranges, sorting, update
//! masks and the pydantic-style body checks every resource uses.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::py::py_set;
use super::{Field, body, like, query_all, query_time, sort_rows};
use crate::api::{ApiError, Method, Reply, Req};

/// `NAME_gte`, `NAME_gt`, `NAME_lte`, `NAME_lt` query bounds on a time.
pub(super) struct Range {
    gte: Option<DateTime<Utc>>,
    gt: Option<DateTime<Utc>>,
    lte: Option<DateTime<Utc>>,
    lt: Option<DateTime<Utc>>,
}

impl Range {
    pub fn new(req: &Req, name: &str) -> Result<Range, ApiError> {
        Ok(Range {
            gte: query_time(req, &format!("{name}_gte"))?,
            gt: query_time(req, &format!("{name}_gt"))?,
            lte: query_time(req, &format!("{name}_lte"))?,
            lt: query_time(req, &format!("{name}_lt"))?,
        })
    }

    /// As SQL compares: a missing time is outside any bound.
    pub fn holds(&self, t: Option<DateTime<Utc>>) -> bool {
        let bounded = [self.gte, self.gt, self.lte, self.lt]
            .iter()
            .any(Option::is_some);
        let Some(t) = t else {
            return !bounded;
        };
        self.gte.is_none_or(|b| t >= b)
            && self.gt.is_none_or(|b| t > b)
            && self.lte.is_none_or(|b| t <= b)
            && self.lt.is_none_or(|b| t < b)
    }
}

/// `*_pattern` (case-insensitive substring, SQL wildcards) and `*_prefix_pattern`
/// (case-sensitive prefix) filters, `|` between alternatives, `~` for all.
pub(super) struct Patterns {
    contains: Option<Vec<String>>,
    prefix: Option<Vec<String>>,
}

impl Patterns {
    pub fn new(req: &Req, base: &str) -> Patterns {
        let terms = |v: &str| -> Vec<String> {
            if v.contains('|') {
                let t: Vec<String> = v
                    .split('|')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect();
                if !t.is_empty() {
                    return t;
                }
            }
            vec![v.to_string()]
        };
        let contains = req
            .query(&format!("{base}_pattern"))
            .map(|v| terms(if v == "~" { "%" } else { v }));
        let prefix = req
            .query(&format!("{base}_prefix_pattern"))
            .map(|v| terms(if v == "~" { "" } else { v }));
        Patterns { contains, prefix }
    }

    pub fn keep(&self, s: &str) -> bool {
        let contains = self
            .contains
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| like(&format!("%{t}%"), s)));
        // Airflow drops trailing punctuation from a prefix before matching.
        let prefix = self.prefix.as_ref().is_none_or(|ts| {
            ts.iter()
                .any(|t| s.starts_with(t.trim_end_matches(|c: char| !c.is_alphanumeric())))
        });
        contains && prefix
    }
}

/// Sorts list rows by an `order_by` field, ties broken by row id in the same direction
/// (rows arrive in id order), then drops the fields only sorting needed.
pub(super) fn sort(rows: &mut [Value], by: &str, desc: bool, hidden: &[&str]) {
    if desc {
        rows.reverse();
    }
    sort_rows(rows, by, desc);
    for r in rows.iter_mut() {
        if let Some(o) = r.as_object_mut() {
            for h in hidden {
                o.shift_remove(*h);
            }
        }
    }
}

/// `update_mask=a&update_mask=b`; none (or an empty list) means every field given.
pub(super) fn update_mask(req: &Req) -> Option<Vec<String>> {
    let fields: Vec<String> = query_all(req, "update_mask")
        .into_iter()
        .map(String::from)
        .collect();
    (!fields.is_empty()).then_some(fields)
}

pub(super) fn no_content() -> Reply {
    Reply::bytes(204, "application/json", Vec::new())
}

pub(super) fn unprocessable(errors: Vec<Value>) -> ApiError {
    ApiError {
        status: 422,
        detail: Value::Array(errors),
    }
}

pub(super) fn body_loc() -> [Value; 1] {
    [json!("body")]
}

/// A location with one more step.
pub(super) fn at(loc: &[Value], step: impl Into<Value>) -> Vec<Value> {
    loc.iter().cloned().chain([step.into()]).collect()
}

pub(super) fn error(
    loc: &[Value],
    kind: &str,
    msg: &str,
    input: &Value,
    ctx: Option<Value>,
) -> Value {
    let mut e = json!({"type": kind, "loc": loc, "msg": msg, "input": input});
    if let Some(c) = ctx {
        e["ctx"] = c;
    }
    e
}

/// The body as JSON, or the 422 `json_invalid` that [`body`] gives for it.
pub(super) fn read_json(req: &Req) -> Result<Value, ApiError> {
    match serde_json::from_slice(&req.body) {
        Ok(v) => Ok(v),
        Err(_) => body(req, &[]).map(Value::Object),
    }
}

/// Checks one JSON object against `fields` with [`body`]'s rules, its errors located
/// under `loc` (a bulk entity sits deep inside the request body).
pub(super) fn check(
    v: &Value,
    fields: &[Field],
    loc: &[Value],
) -> Result<Map<String, Value>, Vec<Value>> {
    let mut one = Req::internal(Method::Post, "/");
    one.body = serde_json::to_vec(v).expect("JSON values serialize");
    body(&one, fields).map_err(|e| match e.detail {
        Value::Array(errors) => errors
            .into_iter()
            .map(|mut err| {
                let rest: Vec<Value> = err["loc"]
                    .as_array()
                    .map(|l| l.iter().skip(1).cloned().collect())
                    .unwrap_or_default();
                err["loc"] = Value::Array(loc.iter().cloned().chain(rest).collect());
                err
            })
            .collect(),
        other => vec![other],
    })
}

pub(super) fn max_len(
    m: &Map<String, Value>,
    f: &str,
    max: usize,
    loc: &[Value],
    errors: &mut Vec<Value>,
) {
    if let Some(s) = m.get(f).and_then(Value::as_str)
        && s.chars().count() > max
    {
        errors.push(error(
            &at(loc, f),
            "string_too_long",
            &format!("String should have at most {max} characters"),
            &json!(s),
            Some(json!({"max_length": max})),
        ));
    }
}

/// `team_name` needs `[core] multi_team`, which updraft does not have.
pub(super) fn no_team(m: &Map<String, Value>, loc: &[Value], errors: &mut Vec<Value>) {
    if m.get("team_name").is_some_and(|t| !t.is_null()) {
        errors.push(error(
            loc,
            "value_error",
            "Value error, team_name cannot be set when multi_team mode is disabled. Please contact your administrator.",
            &Value::Object(m.clone()),
            Some(json!({"error": {}})),
        ));
    }
}

/// A field of a checked body (`null` if absent: indexing a `Map` would panic).
pub(super) fn get<'a>(m: &'a Map<String, Value>, f: &str) -> &'a Value {
    m.get(f).unwrap_or(&Value::Null)
}

pub(super) fn text(m: &Map<String, Value>, f: &str) -> Option<String> {
    m.get(f).and_then(Value::as_str).map(String::from)
}

/// The fields a PATCH changes: those in the body, only those in `update_mask` when one
/// is given, never the immutable ones (naming one in the mask is a 400, as in Airflow).
pub(super) fn fields_to_update(
    m: &Map<String, Value>,
    mask: Option<&[String]>,
    immutable: &[&str],
) -> std::result::Result<Vec<String>, String> {
    let mut fields: Vec<String> = m
        .keys()
        .filter(|k| !immutable.contains(&k.as_str()))
        .cloned()
        .collect();
    if let Some(mask) = mask {
        let bad: BTreeSet<&str> = mask
            .iter()
            .map(String::as_str)
            .filter(|k| immutable.contains(k))
            .collect();
        if !bad.is_empty() {
            return Err(format!(
                "Update not allowed: the following fields are immutable and cannot be modified: {}",
                py_set(bad)
            ));
        }
        fields.retain(|f| mask.contains(f));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_mask_rules() {
        let m = json!({"key": "k", "value": "v", "description": "d"});
        let m = m.as_object().unwrap();
        assert_eq!(
            fields_to_update(m, None, &["key"]).unwrap(),
            ["value", "description"]
        );
        let mask = vec!["description".to_string()];
        assert_eq!(
            fields_to_update(m, Some(&mask), &["key"]).unwrap(),
            ["description"]
        );
        let mask = vec!["key".to_string()];
        assert_eq!(
            fields_to_update(m, Some(&mask), &["key"]).unwrap_err(),
            "Update not allowed: the following fields are immutable and cannot be modified: {'key'}"
        );
    }

    #[test]
    fn patterns_like_airflow() {
        let mut req = Req::internal(Method::Get, "/");
        req.query = vec![("variable_key_pattern".into(), "ab|cd".into())];
        let p = Patterns::new(&req, "variable_key");
        assert!(p.keep("xABx") && p.keep("cd") && !p.keep("ac"));
        req.query = vec![("variable_key_pattern".into(), "~".into())];
        assert!(Patterns::new(&req, "variable_key").keep("anything"));
        req.query = vec![("variable_key_prefix_pattern".into(), "test_".into())];
        let p = Patterns::new(&req, "variable_key");
        assert!(p.keep("testing") && !p.keep("Test") && !p.keep("my_test"));
    }
}
