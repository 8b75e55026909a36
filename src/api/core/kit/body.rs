//! Request bodies checked as Airflow's pydantic models check them (`extra="forbid"`):
//! [`validate`] checks a JSON value against the fields of a model, its errors located
//! where pydantic locates them; [`body`] reads a request's JSON and validates it.

use serde_json::{Map, Value, json};

use super::time::parse_datetime;
use crate::api::http::{ApiError, Req};

/// Airflow's 409 for a row that already exists (see [`ApiError::database`]).
pub fn unique_violation(what: &str) -> ApiError {
    ApiError::database(409, "Unique constraint violation", what)
}

/// A 422 with one pydantic-style error.
pub fn invalid(loc: &[&str], kind: &str, msg: &str, input: Value) -> ApiError {
    ApiError::with_detail(
        422,
        json!([{"type": kind, "loc": loc, "msg": msg, "input": input}]),
    )
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
    validate(&json_body(req)?, fields, &[json!("body")]).map_err(unprocessable)
}

/// The request body as JSON, or pydantic's 422 `json_invalid` with the character offset
/// of the error.
pub fn json_body(req: &Req) -> Result<Value, ApiError> {
    serde_json::from_slice(&req.body).map_err(|e| {
        // serde's column is 1-based within its line; pydantic reports a character offset.
        let offset = req
            .body
            .len()
            .min(e.column().saturating_sub(1) + line_offset(&req.body, e.line()));
        ApiError::with_detail(
            422,
            json!([{"type": "json_invalid", "loc": ["body", offset], "msg": "JSON decode error",
                            "input": {}, "ctx": {"error": e.to_string()}}]),
        )
    })
}

/// Checks one JSON value against `fields`: an object with each required field, each
/// field of its kind, no other field. Errors are located under `loc` (`["body"]` for a
/// whole body; deeper for a bulk entity).
pub fn validate(
    value: &Value,
    fields: &[Field],
    loc: &[Value],
) -> Result<Map<String, Value>, Vec<Value>> {
    let Value::Object(map) = value else {
        return Err(vec![json!({"type": "model_attributes_type", "loc": loc,
            "msg": "Input should be a valid dictionary or object to extract fields from", "input": value})]);
    };
    let at = |name: &str| -> Vec<Value> { loc.iter().cloned().chain([json!(name)]).collect() };
    let mut errors = Vec::new();
    for f in fields {
        match map.get(f.name) {
            None if f.required => errors.push(json!({"type": "missing", "loc": at(f.name), "msg": "Field required", "input": value})),
            None => {}
            Some(Value::Null) if f.nullable || !f.required && f.kind == Kind::Any => {}
            Some(v) => {
                if let Some((kind, msg)) = type_error(f.kind, v) {
                    errors.push(json!({"type": kind, "loc": at(f.name), "msg": msg, "input": v}));
                }
            }
        }
    }
    for (k, v) in map {
        if !fields.iter().any(|f| f.name == k) {
            errors.push(json!({"type": "extra_forbidden", "loc": at(k), "msg": "Extra inputs are not permitted", "input": v}));
        }
    }
    if errors.is_empty() {
        Ok(map.clone())
    } else {
        Err(errors)
    }
}

/// A 422 with several pydantic-style errors.
pub fn unprocessable(errors: Vec<Value>) -> ApiError {
    ApiError::with_detail(422, Value::Array(errors))
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
