//! Variables, connections and pools are one kind of resource: objects with an id that are
//! created, read, updated, deleted one at a time or in bulk. [`Objects`] says what that
//! needs of each kind; the single-object handlers ([`get_one`], [`post_one`],
//! [`patch_one`], [`delete_one`]) and the bulk engine behind `PATCH /variables`,
//! `/connections` and `/pools` (a BulkBody read with pydantic's error locations, its
//! actions run in one transaction) are written once against it.

use std::collections::BTreeSet;

use crate::py::py_set;
use crate::store::{Store, Tx};
use serde_json::{Map, Value, json};

use super::kit::{Field, Kind, field};
use super::kit::{
    at, body_loc, error, get, json_body, no_content, string, unprocessable, update_mask, validate,
};
use crate::api::http::{ApiError, Reply, Req};
use crate::api::route::{Ctx, Params};
use crate::error::{Error, Result};

/// One action of a BulkBody.
#[derive(Debug)]
pub(super) struct Action {
    kind: BulkKind,
    /// Entity ids, with the checked body (none for a delete by id).
    entities: Vec<(String, Option<Map<String, Value>>)>,
    /// `action_on_existence` of a create: fail, skip or overwrite.
    on_existence: &'static str,
    /// `action_on_non_existence` of an update or delete: fail or skip.
    on_missing: &'static str,
    update_mask: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum BulkKind {
    Create = 0,
    Update = 1,
    Delete = 2,
}

const BULK_CREATE: &[Field] = &[
    field("action", Kind::Str, true, false),
    field("entities", Kind::List, true, false),
    field("action_on_existence", Kind::Str, false, false),
];
const BULK_UPDATE: &[Field] = &[
    field("action", Kind::Str, true, false),
    field("entities", Kind::List, true, false),
    field("update_mask", Kind::List, false, true),
    field("action_on_non_existence", Kind::Str, false, false),
];
const BULK_DELETE: &[Field] = &[
    field("action", Kind::Str, true, false),
    field("entities", Kind::List, true, false),
    field("action_on_non_existence", Kind::Str, false, false),
];

pub(super) type Check = fn(&Value, &[Value]) -> Result<Map<String, Value>, Vec<Value>>;

/// Reads a BulkBody: every problem in one pydantic-style 422, located as pydantic
/// locates it (`["body", "actions", 0, "create", "entities", 1, "key"]`).
pub(super) fn parse_bulk(
    req: &Req,
    check_entity: Check,
    id_field: &str,
) -> Result<Vec<Action>, ApiError> {
    let top = validate(
        &json_body(req)?,
        &[field("actions", Kind::List, true, false)],
        &body_loc(),
    )
    .map_err(unprocessable)?;
    let mut errors = Vec::new();
    let mut actions = Vec::new();
    let empty = Vec::new();
    for (i, a) in get(&top, "actions")
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let base = [json!("body"), json!("actions"), json!(i)];
        let tags = "'create', 'update', 'delete'";
        let (kind, fields) = match a.get("action").and_then(Value::as_str) {
            Some("create") => (BulkKind::Create, BULK_CREATE),
            Some("update") => (BulkKind::Update, BULK_UPDATE),
            Some("delete") => (BulkKind::Delete, BULK_DELETE),
            Some(tag) => {
                errors.push(error(
                    &base,
                    "union_tag_invalid",
                    &format!("Input tag '{tag}' found using _action_discriminator() does not match any of the expected tags: {tags}"),
                    a,
                    Some(json!({"discriminator": "_action_discriminator()", "tag": tag, "expected_tags": tags})),
                ));
                continue;
            }
            None => {
                errors.push(error(
                    &base,
                    "union_tag_not_found",
                    "Unable to extract tag using discriminator _action_discriminator()",
                    a,
                    Some(json!({"discriminator": "_action_discriminator()"})),
                ));
                continue;
            }
        };
        let tag = ["create", "update", "delete"][kind as usize];
        let loc: Vec<Value> = base.iter().cloned().chain([json!(tag)]).collect();
        let m = match validate(a, fields, &loc) {
            Ok(m) => m,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let mut choice = |name: &str, options: &[&'static str]| -> &'static str {
            match m.get(name).and_then(Value::as_str) {
                None => options[0],
                Some(v) => options
                    .iter()
                    .find(|o| **o == v)
                    .copied()
                    .unwrap_or_else(|| {
                        let expected = match options {
                            [a, b] => format!("'{a}' or '{b}'"),
                            _ => "'fail', 'skip' or 'overwrite'".into(),
                        };
                        errors.push(error(
                            &at(&loc, name),
                            "enum",
                            &format!("Input should be {expected}"),
                            &json!(v),
                            Some(json!({"expected": expected})),
                        ));
                        options[0]
                    }),
            }
        };
        let on_existence = choice("action_on_existence", &["fail", "skip", "overwrite"]);
        let on_missing = choice("action_on_non_existence", &["fail", "skip"]);
        let mut update_mask = None;
        if let Some(Value::Array(fields)) = m.get("update_mask") {
            let mut names = Vec::new();
            for (j, f) in fields.iter().enumerate() {
                match f.as_str() {
                    Some(s) => names.push(s.to_string()),
                    None => errors.push(error(
                        &at(&at(&loc, "update_mask"), j),
                        "string_type",
                        "Input should be a valid string",
                        f,
                        None,
                    )),
                }
            }
            update_mask = (!names.is_empty()).then_some(names);
        }
        let mut entities = Vec::new();
        for (j, e) in get(&m, "entities")
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let eloc = at(&at(&loc, "entities"), j);
            if let (BulkKind::Delete, Value::String(id)) = (kind, e) {
                entities.push((id.clone(), None));
                continue;
            }
            match check_entity(e, &eloc) {
                Ok(body) => {
                    let id = string(&body, id_field).unwrap_or_default();
                    entities.push((id, (kind != BulkKind::Delete).then_some(body)));
                }
                Err(e) => errors.extend(e),
            }
        }
        actions.push(Action {
            kind,
            entities,
            on_existence,
            on_missing,
            update_mask,
        });
    }
    if errors.is_empty() {
        Ok(actions)
    } else {
        Err(unprocessable(errors))
    }
}

/// What the handlers need of one kind of object.
pub(super) trait Objects {
    /// `variables`, as the error texts say it.
    const NOUN: &'static str;
    /// `keys`, as the error texts say it.
    const IDS: &'static str;
    /// The path parameter that names one object (`variable_key`).
    const PARAM: &'static str;
    /// The body field that holds the id (`key`).
    const ID_FIELD: &'static str;
    /// Checks a create (or bulk) body, its errors located under `loc`.
    fn check(v: &Value, loc: &[Value]) -> std::result::Result<Map<String, Value>, Vec<Value>>;
    /// Checks a single PATCH body.
    fn check_patch(
        v: &Value,
        loc: &[Value],
    ) -> std::result::Result<Map<String, Value>, Vec<Value>> {
        Self::check(v, loc)
    }
    /// The 400 text when a PATCH body names another object than its path.
    fn id_mismatch(body: &Map<String, Value>, id: &str) -> Option<&'static str>;
    /// Airflow's 404 text.
    fn missing(id: &str) -> String;
    /// What a single create of an existing object answers.
    fn already_exists(id: &str) -> ApiError;
    /// The object as the API shows it, if it exists.
    fn show(store: &Store, id: &str) -> Result<Option<Value>>;
    fn exists(tx: &Tx, id: &str) -> Result<bool>;
    /// Creates the entity, or overwrites the given fields of an existing one.
    fn create(tx: &Tx, body: &Map<String, Value>, exists: bool) -> Result<()>;
    /// `Err(detail)` for a 400 that stops the action, as Airflow's HTTPException does.
    fn update(
        tx: &Tx,
        id: &str,
        body: &Map<String, Value>,
        mask: Option<&[String]>,
    ) -> Result<std::result::Result<(), String>>;
    fn delete(tx: &Tx, id: &str) -> Result<std::result::Result<(), String>>;
}

/// `GET /{objects}/{id}`.
pub(super) fn get_one<B: Objects>(
    _: &Ctx,
    store: &mut Store,
    _: &Req,
    p: &Params,
) -> std::result::Result<Reply, ApiError> {
    let id = p.get(B::PARAM);
    let shown = B::show(store, id)?.ok_or_else(|| ApiError::not_found(B::missing(id)))?;
    Ok(Reply::json(200, &shown))
}

/// `POST /{objects}`: creates one; an existing id is refused.
pub(super) fn post_one<B: Objects>(
    _: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> std::result::Result<Reply, ApiError> {
    let m = B::check(&json_body(req)?, &body_loc()).map_err(unprocessable)?;
    let id = string(&m, B::ID_FIELD).unwrap_or_default();
    let created = store.write(|tx| {
        if B::exists(tx, &id)? {
            return Ok(false);
        }
        B::create(tx, &m, false).map(|()| true)
    })?;
    if !created {
        return Err(B::already_exists(&id));
    }
    reply_one::<B>(store, 201, &id)
}

/// `PATCH /{objects}/{id}`: the body's fields (those in `update_mask` when given).
pub(super) fn patch_one<B: Objects>(
    _: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> std::result::Result<Reply, ApiError> {
    let id = p.get(B::PARAM);
    let m = B::check_patch(&json_body(req)?, &body_loc()).map_err(unprocessable)?;
    if let Some(msg) = B::id_mismatch(&m, id) {
        return Err(ApiError::bad_request(msg));
    }
    let mask = update_mask(req);
    store.write(|tx| {
        if !B::exists(tx, id)? {
            return Err(Error::NotFound(B::missing(id)));
        }
        B::update(tx, id, &m, mask.as_deref())?.map_err(Error::Usage)
    })?;
    reply_one::<B>(store, 200, id)
}

/// `DELETE /{objects}/{id}`.
pub(super) fn delete_one<B: Objects>(
    _: &Ctx,
    store: &mut Store,
    _: &Req,
    p: &Params,
) -> std::result::Result<Reply, ApiError> {
    let id = p.get(B::PARAM);
    store.write(|tx| {
        if !B::exists(tx, id)? {
            return Err(Error::NotFound(B::missing(id)));
        }
        B::delete(tx, id)?.map_err(Error::Usage)
    })?;
    Ok(no_content())
}

/// `PATCH /{objects}`: a BulkBody.
pub(super) fn bulk<B: Objects>(
    _: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> std::result::Result<Reply, ApiError> {
    let actions = parse_bulk(req, B::check, B::ID_FIELD)?;
    Ok(Reply::json(200, &run_bulk::<B>(store, &actions)?))
}

fn reply_one<B: Objects>(
    store: &Store,
    status: u16,
    id: &str,
) -> std::result::Result<Reply, ApiError> {
    let shown = B::show(store, id)?.ok_or_else(|| ApiError::not_found(B::missing(id)))?;
    Ok(Reply::json(status, &shown))
}

/// Runs every action in one transaction and answers a BulkResponse: per action kind, the
/// ids that succeeded and the errors, `null` for a kind the request did not use. As in
/// Airflow, a failed check (`fail` on existence or absence) skips its whole action, and an
/// update or delete that fails stops the rest of its action.
pub(super) fn run_bulk<B: Objects>(
    store: &mut Store,
    actions: &[Action],
) -> Result<Value, ApiError> {
    let out = store.write(|tx| {
        let mut results: [Option<(Vec<String>, Vec<Value>)>; 3] = Default::default();
        for a in actions {
            let (success, errors) = results[a.kind as usize].get_or_insert_with(Default::default);
            let mut ids: Vec<&str> = Vec::new();
            for (id, _) in &a.entities {
                if !(a.kind == BulkKind::Delete && ids.contains(&id.as_str())) {
                    ids.push(id);
                }
            }
            let mut found = BTreeSet::new();
            let mut missing = BTreeSet::new();
            for id in &ids {
                if B::exists(tx, id)? {
                    found.insert(*id);
                } else {
                    missing.insert(*id);
                }
            }
            match a.kind {
                BulkKind::Create => {
                    if a.on_existence == "fail" && !found.is_empty() {
                        errors.push(bulk_error(
                            409,
                            format!(
                                "The {} with these {}: {} already exist.",
                                B::NOUN,
                                B::IDS,
                                py_set(found)
                            ),
                        ));
                        continue;
                    }
                    for (id, body) in &a.entities {
                        let exists = found.contains(id.as_str());
                        if exists && a.on_existence == "skip" {
                            continue;
                        }
                        if let Some(body) = body {
                            B::create(tx, body, exists)?;
                            success.push(id.clone());
                        }
                    }
                }
                BulkKind::Update | BulkKind::Delete => {
                    if a.on_missing == "fail" && !missing.is_empty() {
                        errors.push(bulk_error(
                            404,
                            format!(
                                "The {} with these {}: {} were not found.",
                                B::NOUN,
                                B::IDS,
                                py_set(missing)
                            ),
                        ));
                        continue;
                    }
                    let mask = a.update_mask.as_deref();
                    let run = |id: &str, body: Option<&Map<String, Value>>| match body {
                        Some(b) if a.kind == BulkKind::Update => B::update(tx, id, b, mask),
                        _ => B::delete(tx, id),
                    };
                    let todo: Vec<(&str, Option<&Map<String, Value>>)> = match a.kind {
                        BulkKind::Update => a
                            .entities
                            .iter()
                            .map(|(id, b)| (id.as_str(), b.as_ref()))
                            .collect(),
                        _ => ids.iter().map(|id| (*id, None)).collect(),
                    };
                    for (id, body) in todo {
                        if missing.contains(id) {
                            continue;
                        }
                        match run(id, body)? {
                            Ok(()) => success.push(id.to_string()),
                            Err(detail) => {
                                errors.push(bulk_error(400, detail));
                                if a.kind == BulkKind::Update {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        let part = |r: &Option<(Vec<String>, Vec<Value>)>| {
            r.as_ref().map(|(s, e)| json!({"success": s, "errors": e}))
        };
        Ok(json!({
            "create": part(&results[0]),
            "update": part(&results[1]),
            "delete": part(&results[2]),
        }))
    })?;
    Ok(out)
}

pub(super) fn bulk_error(status: u16, detail: String) -> Value {
    json!({"error": detail, "status_code": status})
}
