//! A human-in-the-loop try (HITLOperator, ApprovalOperator, HITLBranchOperator,
//! HITLEntryOperator), in two parts as in Airflow 3.3.
//!
//! `execute`: render `subject` and `body`, write the request, park the task instance
//! (`awaiting_input`) and end: the supervisor's thread goes back to the pool and the slot
//! is free while a person decides. `execute_complete`: when the answer (or the timeout)
//! resumes it, the run context carries the event (`next_kwargs`); the answer is checked,
//! pushed as the XCom, and drives what comes next: a rejection skips or fails, a branch
//! skips the tasks not chosen. Nothing here opens the database: every step is an
//! Execution API call.

use serde_json::{Value, json};

use super::{ApiLookup, Outcome, TaskLog, template_context};
use crate::clock::Clock;
use crate::executor::client::Client;
use crate::template;

/// Runs the part of the try the run context asks for and reports it.
pub(super) fn run(
    ctx: &Value,
    ti_id: &str,
    client: &Client,
    clock: &Clock,
    log: &mut TaskLog,
    fail_state: &str,
    finish: &dyn Fn(&mut TaskLog, &str, Option<&str>) -> Outcome,
) -> Outcome {
    let task = &ctx["task"];
    let hitl = &task["hitl"];
    if ctx["next_method"] == "execute_complete" {
        let event = &ctx["next_kwargs"]["event"];
        let state = complete(ctx, ti_id, client, log, event, fail_state);
        return finish(log, state, None);
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let (dag_id, run_id) = (s(&ctx["dag_run"]["dag_id"]), s(&ctx["dag_run"]["run_id"]));
    let try_number = ctx["try_number"].as_u64().unwrap_or(1) as u32;
    let tctx = template_context(ctx, try_number, clock);
    let lookup = ApiLookup {
        client,
        dag_id: &dag_id,
        run_id: &run_id,
    };
    // `subject` and `body` are the operator's template fields.
    let mut rendered = serde_json::Map::new();
    for field in ["subject", "body"] {
        let Some(text) = hitl[field].as_str() else {
            rendered.insert(field.to_string(), Value::Null);
            continue;
        };
        match template::render(text, &tctx, &lookup) {
            Ok(r) => {
                rendered.insert(field.to_string(), Value::String(r));
            }
            Err(e) => {
                log.line(&format!("cannot render {field}: {e}"));
                return finish(log, fail_state, None);
            }
        }
    }
    let request = json!({
        "ti_id": ti_id,
        "options": hitl["options"],
        "subject": rendered["subject"],
        "body": rendered["body"],
        "defaults": hitl["defaults"],
        "multiple": hitl["multiple"],
        "params": hitl["params"],
        "assigned_users": hitl["assigned_users"],
    });
    if let Err(e) = client.hitl_upsert(ti_id, &request) {
        log.line(&format!("cannot write the human-in-the-loop request: {e}"));
        return finish(log, fail_state, None);
    }
    let timeout = hitl["response_timeout_secs"].as_f64();
    log.line(&format!(
        "Waiting for response: {}{}",
        rendered["subject"].as_str().unwrap_or(""),
        match timeout {
            Some(t) => format!(" (for at most {t} s)"),
            None => String::new(),
        }
    ));
    match client.hitl_park(ti_id, timeout) {
        Ok(()) => {
            log.line("the task waits for its answer (awaiting_input)");
            Outcome::Reported
        }
        Err(e) => {
            log.line(&format!("cannot wait for the answer: {e}"));
            finish(log, fail_state, None)
        }
    }
}

/// `execute_complete`: the state the resumed try ends in.
fn complete(
    ctx: &Value,
    ti_id: &str,
    client: &Client,
    log: &mut TaskLog,
    event: &Value,
    fail_state: &str,
) -> &'static str {
    let fail = if fail_state == "failed" {
        "failed"
    } else {
        "up_for_retry"
    };
    let task = &ctx["task"];
    let hitl = &task["hitl"];
    if let Some(error) = event["error"].as_str() {
        let kind = match event["error_type"].as_str() {
            Some("timeout") => "HITLTimeoutError",
            _ => "HITLTriggerEventError",
        };
        log.line(&format!("{kind}: {error}"));
        return fail;
    }
    let chosen: Vec<String> = event["chosen_options"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let params_input = event["params_input"].clone();
    let options: Vec<&str> = hitl["options"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let bad: Vec<&String> = chosen
        .iter()
        .filter(|c| !options.contains(&c.as_str()))
        .collect();
    if !bad.is_empty() {
        log.line(&format!("ValueError: Responses {bad:?} not in {options:?}"));
        return fail;
    }
    let params = hitl["params"].as_object();
    if let (Some(p), Some(input)) = (params, params_input.as_object())
        && !p.is_empty()
        && !input.is_empty()
        && (p.len() != input.len() || p.keys().any(|k| !input.contains_key(k)))
    {
        log.line(&format!(
            "ValueError: params_input {params_input} does not match params {}",
            hitl["params"]
        ));
        return fail;
    }
    // Each value against its param's schema, as `ParamsDict.__setitem__` checks it.
    if let (Some(p), Some(input)) = (params, params_input.as_object()) {
        for (key, value) in input {
            if let Some(err) = p
                .get(key)
                .and_then(|param| schema_error(&param["schema"], value))
            {
                log.line(&format!(
                    "ParamValidationError: Invalid input for param {key}: {err}"
                ));
                return fail;
            }
        }
    }
    let by = &event["responded_by_user"];
    log.line(&format!(
        "{} chose {chosen:?}{}",
        match by["name"].as_str() {
            Some(name) => format!("{name} (id={})", by["id"].as_str().unwrap_or("")),
            None => "the timeout".to_string(),
        },
        if params_input.as_object().is_some_and(|m| !m.is_empty()) {
            format!(" with {params_input}")
        } else {
            String::new()
        }
    ));
    let payload = json!({
        "chosen_options": chosen,
        "params_input": params_input,
        "responded_at": event["responded_at"],
        "responded_by_user": event["responded_by_user"],
    });
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let (dag_id, run_id, task_id) = (
        s(&ctx["dag_run"]["dag_id"]),
        s(&ctx["dag_run"]["run_id"]),
        s(&task["task_id"]),
    );
    let downstream = |key: &str| -> Vec<String> {
        task[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut result = payload;
    let mut skip: Vec<String> = Vec::new();
    match task["operator"].as_str() {
        Some("ApprovalOperator") => {
            if chosen.first().map(String::as_str) == Some("Approve") {
                log.line("Approved. Proceeding with downstream tasks...");
            } else if hitl["fail_on_reject"] == true {
                log.line("HITLRejectException: Receive \"Reject\"");
                return fail;
            } else {
                skip = if hitl["ignore_downstream_trigger_rules"] == true {
                    downstream("all_downstream")
                } else {
                    downstream("downstream")
                };
                log.line(&format!("Rejected. Skipping downstream tasks {skip:?}"));
            }
        }
        Some("HITLBranchOperator") => {
            let mapping = &hitl["options_mapping"];
            let branches: Vec<String> = chosen
                .iter()
                .map(|o| mapping[o.as_str()].as_str().unwrap_or(o).to_string())
                .collect();
            let direct = downstream("downstream");
            let all = downstream("all_downstream");
            let groups = &task["group_roots"];
            let mut follow: Vec<String> = Vec::new();
            for b in &branches {
                follow.push(b.clone());
                if let Some(roots) = groups[b.as_str()].as_array() {
                    follow.extend(roots.iter().filter_map(|r| r.as_str().map(str::to_string)));
                }
            }
            let invalid: Vec<&String> = branches
                .iter()
                .filter(|b| {
                    !direct.contains(b) && !groups[b.as_str()].is_array() && !all.contains(b)
                })
                .collect();
            if !invalid.is_empty() {
                log.line(&format!(
                    "'branch_task_ids' must contain only valid task_ids. Invalid tasks found: {invalid:?}"
                ));
                return fail;
            }
            skip = direct.into_iter().filter(|t| !follow.contains(t)).collect();
            log.line(&format!("Branch into {branches:?}; skipping {skip:?}"));
            result = json!(branches);
        }
        _ => {}
    }
    if !skip.is_empty()
        && let Err(e) = client.skip_downstream(ti_id, &skip)
    {
        log.line(&format!("could not skip the tasks downstream: {e}"));
        return fail;
    }
    if let Err(e) = client.xcom_set(&dag_id, &run_id, &task_id, "return_value", &result, None) {
        log.line(&format!("could not push the return value: {e}"));
        return fail;
    }
    "success"
}

/// Why `value` does not satisfy `schema`, for the JSON Schema keywords a form's params
/// use (`type`, `enum`, `minimum`, `maximum`, `minLength`, `maxLength`); `None` when it
/// does (or the schema says nothing this checks).
fn schema_error(schema: &Value, value: &Value) -> Option<String> {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let is = |t: &str| match t {
        "string" => value.is_string(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    };
    if !types.is_empty() && !types.iter().any(|t| is(t)) {
        return Some(format!("{value} is not of type {}", types.join(" or ")));
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Some(format!(
            "{value} is not one of {}",
            Value::Array(options.clone())
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            return Some(format!("{value} is less than the minimum of {min}"));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            return Some(format!("{value} is greater than the maximum of {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64()
            && len < min
        {
            return Some(format!("{value} is too short"));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && len > max
        {
            return Some(format!("{value} is too long"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::schema_error;
    use serde_json::json;

    #[test]
    fn values_are_checked_against_their_param_schema() {
        let ok = |s, v| schema_error(&s, &v).is_none();
        assert!(ok(json!({"type": "integer"}), json!(3)));
        assert!(!ok(json!({"type": "integer"}), json!("three")));
        assert!(!ok(json!({"type": "integer"}), json!(1.5)));
        assert!(ok(json!({"type": ["null", "string"]}), json!(null)));
        assert!(!ok(json!({"enum": ["a", "b"]}), json!("c")));
        assert!(!ok(json!({"type": "number", "minimum": 1}), json!(0)));
        assert!(!ok(json!({"type": "string", "maxLength": 2}), json!("abc")));
        assert!(ok(json!({}), json!({"any": "thing"})));
    }
}
