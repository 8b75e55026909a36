//! Human-in-the-loop details (Airflow's `hitl_detail`): the request a task waits on, its
//! answer, and the moves of the waiting task instance (`awaiting_input`) that go with
//! them, each in the transaction that writes the answer.
//!
//! A task instance that parked waiting for an answer is resumed without a new try: it goes
//! back to `scheduled` with the event its `execute_complete` reads (`resume_event`, for the
//! try in `resume_try`), as Airflow's `handle_event_submit` does with `next_kwargs`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::{Value, json};

use super::runs::opt_time;
use super::{Cached, Store, Tx, db, ts};
use crate::error::Result;

/// One human-in-the-loop detail, as stored (JSON columns parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct HitlRow {
    pub ti_id: String,
    pub options: Vec<String>,
    pub subject: String,
    pub body: Option<String>,
    pub defaults: Option<Vec<String>>,
    pub multiple: bool,
    pub params: Value,
    /// `{id, name}` objects.
    pub assignees: Vec<Value>,
    pub created_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    /// `{id, name}`; `None` for a timeout's defaults.
    pub responded_by: Option<Value>,
    pub chosen_options: Option<Vec<String>>,
    pub params_input: Value,
    /// When the wait ends (Airflow's `trigger_timeout`); `None` once resumed.
    pub timeout_at: Option<DateTime<Utc>>,
    pub resume_try: Option<u32>,
    pub resume_event: Option<Value>,
}

impl HitlRow {
    pub fn response_received(&self) -> bool {
        self.responded_at.is_some()
    }

    /// The event `execute_complete` reads (Airflow's `as_resume_event_payload`).
    fn event(&self, timedout: bool) -> Value {
        json!({
            "chosen_options": self.chosen_options.clone().unwrap_or_default(),
            "params_input": self.params_input,
            "responded_at": self.responded_at.map(ts),
            "responded_by_user": self.responded_by,
            "timedout": timedout,
        })
    }
}

/// The request a task makes (the Execution API's `HITLDetailRequest`).
pub struct HitlRequest<'a> {
    pub options: &'a [String],
    pub subject: &'a str,
    pub body: Option<&'a str>,
    pub defaults: Option<&'a [String]>,
    pub multiple: bool,
    pub params: &'a Value,
    pub assigned_users: &'a [Value],
}

/// What a sweep of timed-out waits did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub resumed: usize,
    pub failed: usize,
}

const COLS: &str =
    "ti_id, options, subject, body, defaults, multiple, params, assignees, created_at,
    responded_at, responded_by, chosen_options, params_input, timeout_at, resume_try, resume_event";

fn json_col(r: &Row, i: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = r.get(i)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

fn strings(v: Option<Value>) -> Option<Vec<String>> {
    v.and_then(|v| serde_json::from_value(v).ok())
}

fn hitl_row(r: &Row) -> rusqlite::Result<HitlRow> {
    Ok(HitlRow {
        ti_id: r.get(0)?,
        options: strings(json_col(r, 1)?).unwrap_or_default(),
        subject: r.get(2)?,
        body: r.get(3)?,
        defaults: strings(json_col(r, 4)?),
        multiple: r.get(5)?,
        params: json_col(r, 6)?.unwrap_or_else(|| json!({})),
        assignees: match json_col(r, 7)? {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        created_at: opt_time(r, 8)?.unwrap_or_default(),
        responded_at: opt_time(r, 9)?,
        responded_by: json_col(r, 10)?.filter(|v| !v.is_null()),
        chosen_options: strings(json_col(r, 11)?),
        params_input: json_col(r, 12)?.unwrap_or_else(|| json!({})),
        timeout_at: opt_time(r, 13)?,
        resume_try: r.get(14)?,
        resume_event: json_col(r, 15)?,
    })
}

impl Store {
    /// The detail of one task instance, if it asked for one.
    pub fn hitl(&self, ti_id: &str) -> Result<Option<HitlRow>> {
        self.conn
            .row(
                &format!("SELECT {COLS} FROM hitl_detail WHERE ti_id = ?1"),
                [ti_id],
                hitl_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The details of one DAG's run (`None`: every DAG, every run), oldest first.
    pub fn hitls(&self, dag_id: Option<&str>, run_id: Option<&str>) -> Result<Vec<HitlRow>> {
        self.query(
            &format!(
                "SELECT {} FROM hitl_detail h JOIN task_instance t ON t.id = h.ti_id
                 WHERE (?1 IS NULL OR t.dag_id = ?1) AND (?2 IS NULL OR t.run_id = ?2)
                 ORDER BY h.created_at, h.ti_id",
                COLS.split(',')
                    .map(|c| format!("h.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params![dag_id, run_id],
            hitl_row,
        )
    }

    /// How many task instances wait for an answer now (the UI's badge).
    pub fn hitl_waiting(&self) -> Result<i64> {
        self.conn
            .row(
                "SELECT COUNT(*) FROM hitl_detail h JOIN task_instance t ON t.id = h.ti_id
                 WHERE h.responded_at IS NULL AND t.state = 'awaiting_input'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}

impl Tx<'_> {
    fn hitl(&self, ti_id: &str) -> Result<Option<HitlRow>> {
        self.0
            .row(
                &format!("SELECT {COLS} FROM hitl_detail WHERE ti_id = ?1"),
                [ti_id],
                hitl_row,
            )
            .optional()
            .map_err(db)
    }

    /// Airflow's `upsert_hitl_detail`: writes the request of a task instance that has
    /// none; an existing one stays as it is, its answer (from an earlier try) removed.
    pub fn upsert_hitl(
        &self,
        ti_id: &str,
        req: &HitlRequest,
        now: DateTime<Utc>,
    ) -> Result<HitlRow> {
        let to_text = |v: &Value| v.to_string();
        self.0
            .exec(
                "INSERT INTO hitl_detail (ti_id, options, subject, body, defaults, multiple, params, assignees, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (ti_id) DO UPDATE SET responded_at = NULL, responded_by = NULL,
                    chosen_options = NULL, params_input = '{}', resume_try = NULL, resume_event = NULL",
                params![
                    ti_id,
                    to_text(&json!(req.options)),
                    req.subject,
                    req.body,
                    req.defaults.map(|d| to_text(&json!(d))),
                    req.multiple,
                    to_text(req.params),
                    to_text(&json!(req.assigned_users)),
                    ts(now),
                ],
            )
            .map_err(db)?;
        self.hitl(ti_id)?
            .ok_or_else(|| crate::error::Error::Failed("the detail just written is gone".into()))
    }

    /// Writes an answer; `None` when the detail has one already (Airflow's 409). A task
    /// instance parked waiting for it resumes in the same transaction.
    pub fn respond_hitl(
        &self,
        ti_id: &str,
        chosen: &[String],
        params_input: &Value,
        by: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<HitlRow>> {
        let n = self
            .0
            .exec(
                "UPDATE hitl_detail SET responded_at = ?2, responded_by = ?3, chosen_options = ?4, params_input = ?5
                 WHERE ti_id = ?1 AND responded_at IS NULL",
                params![
                    ti_id,
                    ts(now),
                    by.map(Value::to_string),
                    json!(chosen).to_string(),
                    params_input.to_string()
                ],
            )
            .map_err(db)?;
        if n == 0 {
            return Ok(None);
        }
        let Some(row) = self.hitl(ti_id)? else {
            return Ok(None);
        };
        self.resume(&row, row.event(false), now)?;
        Ok(Some(row))
    }

    /// A running try parks to wait for its answer (`awaiting_input`), until `timeout_at`
    /// if given. An answer that came between the request and the park resumes it at
    /// once, as Airflow's park transition does. Returns the state it is in, `None` when
    /// it was not running at `try_number`.
    pub fn park_hitl(
        &self,
        ti_id: &str,
        try_number: u32,
        timeout_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<&'static str>> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET state = 'awaiting_input', updated_at = ?3
                 WHERE id = ?1 AND state = 'running' AND try_number = ?2",
                params![ti_id, try_number, ts(now)],
            )
            .map_err(db)?;
        if n == 0 {
            return Ok(None);
        }
        self.0
            .exec(
                "UPDATE hitl_detail SET timeout_at = ?2, resume_try = NULL, resume_event = NULL WHERE ti_id = ?1",
                params![ti_id, timeout_at.map(ts)],
            )
            .map_err(db)?;
        match self.hitl(ti_id)? {
            Some(row) if row.response_received() => {
                self.resume(&row, row.event(false), now)?;
                Ok(Some("scheduled"))
            }
            _ => Ok(Some("awaiting_input")),
        }
    }

    /// Airflow's `check_awaiting_input_timeouts`: each task instance whose wait ended
    /// without an answer resumes with the defaults (written as the answer, by nobody),
    /// or, without defaults, with a timeout error its `execute_complete` fails on.
    pub fn sweep_hitl(&self, now: DateTime<Utc>) -> Result<Swept> {
        let rows: Vec<HitlRow> = {
            let mut stmt = self
                .0
                .prepare_cached(&format!(
                    "SELECT {} FROM hitl_detail h JOIN task_instance t ON t.id = h.ti_id
                     WHERE h.timeout_at IS NOT NULL AND h.timeout_at < ?1 AND t.state = 'awaiting_input'
                     LIMIT 100",
                    COLS.split(',')
                        .map(|c| format!("h.{}", c.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .map_err(db)?;
            stmt.query_map([ts(now)], hitl_row)
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)?
        };
        let mut swept = Swept::default();
        for row in rows {
            if row.response_received() {
                self.resume(&row, row.event(false), now)?;
                swept.resumed += 1;
            } else if let Some(defaults) = &row.defaults {
                // The defaults, and each param's default value, become the answer.
                let params_input: serde_json::Map<String, Value> = row
                    .params
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                let value = match v {
                                    Value::Object(p) if p.contains_key("value") => {
                                        p["value"].clone()
                                    }
                                    other => other.clone(),
                                };
                                (k.clone(), value)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let params_input = Value::Object(params_input);
                self.0
                    .exec(
                        "UPDATE hitl_detail SET responded_at = ?2, responded_by = NULL, chosen_options = ?3, params_input = ?4
                         WHERE ti_id = ?1",
                        params![row.ti_id, ts(now), json!(defaults).to_string(), params_input.to_string()],
                    )
                    .map_err(db)?;
                let answered = HitlRow {
                    responded_at: Some(now),
                    responded_by: None,
                    chosen_options: Some(defaults.clone()),
                    params_input,
                    ..row.clone()
                };
                self.resume(&answered, answered.event(true), now)?;
                swept.resumed += 1;
            } else {
                let event = json!({
                    "error": "The Human-in-the-loop response timeout has passed without a response.",
                    "error_type": "timeout",
                });
                self.resume(&row, event, now)?;
                swept.failed += 1;
            }
        }
        Ok(swept)
    }

    /// A parked task instance back to `scheduled` (same try) with the event its resumed
    /// try reads; nothing when it is not parked (finished, cleared, not yet parked).
    fn resume(&self, row: &HitlRow, event: Value, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET state = 'scheduled', scheduled_dttm = ?2, updated_at = ?2
                 WHERE id = ?1 AND state = 'awaiting_input'",
                params![row.ti_id, ts(now)],
            )
            .map_err(db)?;
        if n == 1 {
            self.0
                .exec(
                    "UPDATE hitl_detail SET timeout_at = NULL, resume_event = ?2,
                        resume_try = (SELECT try_number FROM task_instance WHERE id = ?1)
                     WHERE ti_id = ?1",
                    params![row.ti_id, event.to_string()],
                )
                .map_err(db)?;
        }
        Ok(n == 1)
    }
}
