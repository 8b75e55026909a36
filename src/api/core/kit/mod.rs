//! The shared request kit of the Core API: pattern filters, time ranges, sorting, update
//! masks and the pydantic-style body checks every resource uses.

use std::collections::BTreeSet;

mod body;
mod mask;
mod pattern;
mod query;
mod time;

pub(super) use body::*;
pub(super) use mask::{is_sensitive, mask};
pub(super) use pattern::{Pattern, Patterns};
pub(super) use query::*;
pub(super) use time::{dt, iso_duration, parse_datetime, timedelta_json};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::api::http::{ApiError, Reply, Req};
use crate::api::route::{Ctx, Params};
use crate::py::py_set;
use crate::store::q_runs::{Bound, ListQuery, Op};

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

pub(super) fn string(m: &Map<String, Value>, f: &str) -> Option<String> {
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

/// Airflow caps the count of a cursor-paged list at this (`EXACT_COUNT_LIMIT`).
pub(super) const CURSOR_COUNT_LIMIT: usize = 50_000;
/// A note's longest length (`max_length` in Airflow's models).
pub(super) const NOTE_MAX: usize = 1000;

/// A pydantic `value_error` of a whole body (a model validator's complaint).
pub(super) fn body_value_error(body: &Map<String, Value>, msg: &str) -> ApiError {
    unprocessable(vec![json!({
        "type": "value_error", "loc": ["body"], "msg": format!("Value error, {msg}"),
        "input": body, "ctx": {"error": {}},
    })])
}

/// Errors for body times that must carry an offset (pydantic's `AwareDatetime`).
pub(super) fn naive_times(body: &Map<String, Value>, names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .filter_map(|n| {
            let v = body.get(*n)?;
            let s = v.as_str()?;
            (parse_datetime(s).is_some() && DateTime::parse_from_rfc3339(s).is_err()).then(|| {
                json!({"type": "timezone_aware", "loc": ["body", n], "msg": "Input should have timezone info", "input": v})
            })
        })
        .collect()
}

/// Errors for notes over Airflow's length limit.
pub(super) fn long_note(body: &Map<String, Value>) -> Vec<Value> {
    match body.get("note").and_then(Value::as_str) {
        Some(n) if n.chars().count() > NOTE_MAX => vec![json!({
            "type": "string_too_long", "loc": ["body", "note"],
            "msg": format!("String should have at most {NOTE_MAX} characters"),
            "input": n, "ctx": {"max_length": NOTE_MAX},
        })],
        _ => Vec::new(),
    }
}

/// A pydantic enum error, for a value not among `allowed`.
pub(super) fn enum_error(loc: Value, input: &Value, allowed: &[&str]) -> Value {
    let expected = match allowed {
        [] => String::new(),
        [one] => format!("'{one}'"),
        [rest @ .., last] => format!(
            "{} or '{last}'",
            rest.iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    json!({"type": "enum", "loc": loc, "msg": format!("Input should be {expected}"), "input": input,
           "ctx": {"expected": expected}})
}

/// A string from a checked body.
pub(super) fn text<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// A boolean from a checked body, with its default.
pub(super) fn flag(body: &Map<String, Value>, name: &str, default: bool) -> bool {
    body.get(name).and_then(Value::as_bool).unwrap_or(default)
}

/// A time from a checked body.
pub(super) fn time(body: &Map<String, Value>, name: &str) -> Option<DateTime<Utc>> {
    text(body, name).and_then(parse_datetime)
}

/// Adds the sort keys to `q`, then `tiebreak` in the direction of the first key, as
/// Airflow appends the primary key.
pub(super) fn apply_order(
    q: &mut ListQuery,
    keys: &[(&'static str, bool)],
    tiebreak: &'static str,
) {
    for (k, desc) in keys {
        q.order_by(k, *desc);
    }
    if !keys.iter().any(|(k, _)| *k == tiebreak) {
        q.order_by(tiebreak, keys.first().is_some_and(|k| k.1));
    }
}

/// `{field}_gte`, `_gt`, `_lte`, `_lt` time filters from the query string.
pub(super) fn time_ranges(
    req: &Req,
    q: &mut ListQuery,
    fields: &[&'static str],
) -> Result<(), ApiError> {
    for f in fields {
        for (suffix, op) in Op::SUFFIXES {
            if let Some(t) = query_time(req, &format!("{f}_{suffix}"))? {
                q.cmp(f, op, Bound::Time(t));
            }
        }
    }
    Ok(())
}

/// `{field}_gte`, `_gt`, `_lte`, `_lt` number filters from the query string.
pub(super) fn number_ranges(
    req: &Req,
    q: &mut ListQuery,
    field: &'static str,
) -> Result<(), ApiError> {
    for (suffix, op) in Op::SUFFIXES {
        let name = format!("{field}_{suffix}");
        if let Some(v) = req.query(&name) {
            let x: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite())
                .ok_or_else(|| {
                    invalid(
                        &["query", &name],
                        "float_parsing",
                        "Input should be a valid number, unable to parse string as a number",
                        json!(v),
                    )
                })?;
            q.cmp(field, op, Bound::Num(x));
        }
    }
    Ok(())
}

/// Every value of a repeatable integer query parameter, or a 422 naming it.
pub(super) fn query_ints(req: &Req, name: &str) -> Result<Vec<i64>, ApiError> {
    query_all(req, name)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.trim().parse().map_err(|_| ApiError::with_detail(422, json!([{"type": "int_parsing", "loc": ["query", name, i],
                    "msg": "Input should be a valid integer, unable to parse string as an integer", "input": v}])))
        })
        .collect()
}

/// A repeatable state-like filter: each value among `valid` or `none` (NULL), else
/// Airflow's 422 with `detail_name` ("state", "run type").
pub(super) fn state_filter(
    req: &Req,
    name: &str,
    valid: &[&str],
    nulls: &[&str],
    detail_name: &str,
) -> Result<Vec<Option<String>>, ApiError> {
    query_all(req, name)
        .into_iter()
        .map(|v| {
            if nulls.contains(&v) {
                Ok(None)
            } else if valid.contains(&v) {
                Ok(Some(v.to_string()))
            } else {
                Err(ApiError::new(
                    422,
                    format!(
                        "Invalid value for {detail_name}. Valid values are {}",
                        valid.join(", ")
                    ),
                ))
            }
        })
        .collect()
}

/// `*_pattern` and `*_prefix_pattern` filters on the given fields.
pub(super) fn patterns(req: &Req, q: &mut ListQuery, fields: &[(&str, &'static str)]) {
    for (param, field) in fields {
        let p = Patterns::new(req, param);
        if let Some(s) = p.search {
            q.search(field, s.sql_terms());
        }
        if let Some(s) = p.prefix {
            q.prefix(field, s.sql_terms());
        }
    }
}

/// How a list is paged: Airflow's offset paging, or its cursor paging when `cursor` is
/// given. updraft's cursors are opaque tokens of a position in the ordered list.
pub(super) struct Paging {
    pub limit: usize,
    pub offset: usize,
    pub cursor: bool,
}

const CURSOR_TAG: &str = "o:";

pub(super) fn encode_cursor(offset: usize) -> String {
    B64.encode(format!("{CURSOR_TAG}{offset}"))
}

/// `limit`, `offset` and `cursor` from the query string.
pub(super) fn paging(ctx: &Ctx, req: &Req) -> Result<Paging, ApiError> {
    let (limit, offset) = page(ctx, req)?;
    let Some(cursor) = req.query("cursor") else {
        return Ok(Paging {
            limit,
            offset,
            cursor: false,
        });
    };
    if cursor.is_empty() {
        return Ok(Paging {
            limit,
            offset: 0,
            cursor: true,
        });
    }
    let (token, backward) = match cursor.strip_prefix('~') {
        Some(t) => (t, true),
        None => (cursor, false),
    };
    let at: usize = B64
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(CURSOR_TAG).and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("Invalid cursor token"))?;
    // A backward cursor names where the next page starts: the page before ends there.
    Ok(if backward {
        Paging {
            limit: limit.min(at),
            offset: at.saturating_sub(limit),
            cursor: true,
        }
    } else {
        Paging {
            limit,
            offset: at,
            cursor: true,
        }
    })
}

/// A page of a `dag_runs` or `task_instances` list with Airflow's paging fields.
pub(super) fn paged(key: &str, items: Vec<Value>, total: usize, p: &Paging) -> Value {
    if !p.cursor {
        return json!({key: items, "total_entries": total, "total_entries_limit": null,
                      "next_cursor": null, "previous_cursor": null});
    }
    let end = p.offset + items.len();
    let next = (end < total && !items.is_empty()).then(|| encode_cursor(end));
    let previous =
        (p.offset > 0 && !items.is_empty()).then(|| format!("~{}", encode_cursor(p.offset)));
    json!({key: items, "total_entries": total.min(CURSOR_COUNT_LIMIT),
           "total_entries_limit": CURSOR_COUNT_LIMIT, "next_cursor": next, "previous_cursor": previous})
}

/// The body fields an `update_mask` lets through: those set, limited to the mask's
/// names when there is one (`update_mask=a&update_mask=b` or `update_mask=a,b`).
pub(super) fn masked<'a>(req: &Req, body: &'a Map<String, Value>) -> Vec<&'a str> {
    let mask: Vec<&str> = query_all(req, "update_mask")
        .into_iter()
        .flat_map(|m| m.split(','))
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    body.keys()
        .map(String::as_str)
        .filter(|k| mask.is_empty() || mask.contains(k))
        .collect()
}

/// `rows` in the order of `order` over the matching `keys` (one object per row), ties
/// broken by `pk` in the direction of the first key, as Airflow appends its primary key.
pub(super) fn sorted(
    rows: Vec<Value>,
    keys: Vec<Value>,
    order: &[(&str, bool)],
    pk: &str,
) -> Vec<Value> {
    let mut pairs: Vec<Value> = keys
        .into_iter()
        .enumerate()
        .map(|(i, mut k)| {
            k["__row"] = json!(i);
            k
        })
        .collect();
    // Stable sorts, least significant key first.
    if !order.iter().any(|(k, _)| *k == pk) {
        sort_rows(&mut pairs, pk, order.first().is_some_and(|(_, d)| *d));
    }
    for (key, desc) in order.iter().rev() {
        sort_rows(&mut pairs, key, *desc);
    }
    let mut rows: Vec<Option<Value>> = rows.into_iter().map(Some).collect();
    pairs
        .iter()
        .filter_map(|k| k["__row"].as_u64())
        .filter_map(|i| rows.get_mut(i as usize).and_then(Option::take))
        .collect()
}

/// An integer query parameter, or a 422 naming it.
pub(super) fn query_int(req: &Req, name: &str) -> Result<Option<i64>, ApiError> {
    req.query(name)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| int_error("query", name, v))
        })
        .transpose()
}

/// An integer path parameter, or a 422 naming it.
pub(super) fn path_int(p: &Params, name: &str) -> Result<i64, ApiError> {
    let v = p.get(name);
    v.trim()
        .parse::<i64>()
        .map_err(|_| int_error("path", name, v))
}

pub(super) fn int_error(place: &str, name: &str, v: &str) -> ApiError {
    invalid(
        &[place, name],
        "int_parsing",
        "Input should be a valid integer, unable to parse string as an integer",
        json!(v),
    )
}

/// `map_index` from the query string (default -1, at least -1), or a 422.
pub(super) fn query_map_index(req: &Req) -> Result<Option<i64>, ApiError> {
    let Some(v) = req.query("map_index") else {
        return Ok(None);
    };
    let n: i64 = v.trim().parse().map_err(|_| {
        invalid(
            &["query", "map_index"],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            json!(v),
        )
    })?;
    if n < -1 {
        return Err(ApiError::with_detail(
            422,
            json!([{"type": "greater_than_equal", "loc": ["query", "map_index"],
                "msg": "Input should be greater than or equal to -1", "input": v, "ctx": {"ge": -1}}]),
        ));
    }
    Ok(Some(n))
}

/// The `{map_index}` path segment as an integer (pydantic's 422 if it is not one);
/// -1, a task that is not mapped, on a route without it.
pub(super) fn path_map_index(p: &Params) -> Result<i64, ApiError> {
    let Some(v) = p.try_get("map_index") else {
        return Ok(-1);
    };
    v.parse().map_err(|_| {
        invalid(
            &["path", "map_index"],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            json!(v),
        )
    })
}

/// A path segment as a non-negative integer, or pydantic's 422 naming it.
pub(super) fn path_number(p: &Params, name: &str) -> Result<u32, ApiError> {
    let v = p.get(name);
    let n: i64 = v.parse().map_err(|_| {
        invalid(
            &["path", name],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            json!(v),
        )
    })?;
    u32::try_from(n).map_err(|_| {
        ApiError::with_detail(
            422,
            json!([{"type": "greater_than_equal", "loc": ["path", name],
            "msg": "Input should be greater than or equal to 0", "input": v, "ctx": {"ge": 0}}]),
        )
    })
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
    fn enum_errors_read_like_pydantic() {
        let e = enum_error(
            json!(["body", "state"]),
            &json!("x"),
            &["queued", "success", "failed"],
        );
        assert_eq!(e["msg"], "Input should be 'queued', 'success' or 'failed'");
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        assert_eq!(B64.decode(encode_cursor(150)).unwrap(), b"o:150".to_vec());
        let p = Paging {
            limit: 2,
            offset: 2,
            cursor: true,
        };
        let v = paged("dag_runs", vec![json!(1), json!(2)], 5, &p);
        assert_eq!(v["next_cursor"], json!(encode_cursor(4)));
        assert_eq!(
            v["previous_cursor"],
            json!(format!("~{}", encode_cursor(2)))
        );
        assert_eq!(v["total_entries_limit"], json!(CURSOR_COUNT_LIMIT));
    }
}
