//! What the API reads and writes beyond the older resources: for the Task SDK's client,
//! rendered template fields (RTIF), XCom deletes and variable keys; for the Core API,
//! task instance deletes and users' favorite DAGs; for both, the task state store.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::Cached;
use super::{Store, Tx, db, ts};
use crate::error::Result;

impl Store {
    /// The rendered template fields a worker stored for the task instance, if any.
    pub fn rtif(&self, ti_id: &str) -> Result<Option<Value>> {
        let text: Option<Option<String>> = self
            .conn
            .row(
                "SELECT rendered_fields FROM task_instance WHERE id = ?1",
                [ti_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(text
            .flatten()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok()))
    }

    /// Variable keys in key order, those starting with `prefix` if given: one page
    /// (`offset`, `limit`) and the count of all that match.
    pub fn variable_keys(
        &self,
        prefix: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<String>, usize)> {
        let mut keys: Vec<String> = self
            .variables()?
            .into_iter()
            .map(|(_, v)| v.key)
            .filter(|k| prefix.is_none_or(|p| k.starts_with(p)))
            .collect();
        keys.sort();
        let total = keys.len();
        Ok((keys.into_iter().skip(offset).take(limit).collect(), total))
    }
}

impl Store {
    /// The DAGs `user` marked favorite.
    pub fn favorites(&self, user: &str) -> Result<std::collections::HashSet<String>> {
        Ok(self
            .query(
                "SELECT dag_id FROM dag_favorite WHERE user_id = ?1",
                [user],
                |r| r.get::<_, String>(0),
            )?
            .into_iter()
            .collect())
    }
}

impl Tx<'_> {
    /// Marks (or with `on` false unmarks) a DAG favorite for `user`; whether that
    /// changed anything.
    pub fn set_favorite(&self, dag_id: &str, user: &str, on: bool) -> Result<bool> {
        let sql = if on {
            "INSERT OR IGNORE INTO dag_favorite (dag_id, user_id) VALUES (?1, ?2)"
        } else {
            "DELETE FROM dag_favorite WHERE dag_id = ?1 AND user_id = ?2"
        };
        let n = self.0.exec(sql, [dag_id, user]).map_err(db)?;
        Ok(n > 0)
    }

    /// Stores the rendered template fields of a task instance (a JSON object), replacing
    /// earlier ones. Whether the task instance exists.
    pub fn set_rtif(&self, ti_id: &str, fields: &Value) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE task_instance SET rendered_fields = ?2 WHERE id = ?1",
                params![ti_id, fields.to_string()],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Removes one XCom of the task instance at `map_index`; whether there was one.
    pub fn delete_xcom(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i64,
        key: &str,
    ) -> Result<bool> {
        let n = self
            .0
            .exec(
                "DELETE FROM xcom WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4 AND key = ?5",
                params![dag_id, run_id, task_id, map_index, key],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    /// Deletes a task instance with its tries kept in history and its XComs (Airflow's
    /// foreign keys cascade the same way). Whether it existed.
    pub fn delete_ti(&self, ti: &super::TiRow) -> Result<bool> {
        let key = params![ti.dag_id, ti.run_id, ti.task_id, ti.map_index];
        self.0
            .exec(
                "DELETE FROM xcom WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4",
                key,
            )
            .map_err(db)?;
        self.0
            .exec(
                "DELETE FROM task_instance_history WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4",
                params![ti.dag_id, ti.run_id, ti.task_id, ti.map_index],
            )
            .map_err(db)?;
        let n = self
            .0
            .exec("DELETE FROM task_instance WHERE id = ?1", [&ti.id])
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Sets a task state store value (JSON text), creating or replacing the key.
    #[allow(clippy::too_many_arguments)]
    pub fn set_state(
        &self,
        ti: &StateScope,
        key: &str,
        value: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO task_state_store (dag_id, run_id, task_id, map_index, key, value, updated_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (dag_id, run_id, task_id, map_index, key) DO UPDATE SET
                   value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                params![ti.dag_id, ti.run_id, ti.task_id, ti.map_index, key, value, ts(now), expires_at.map(ts)],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Deletes one key (`Some`) or every key (`None`) of a task instance's state store;
    /// with `all_map_indices`, of every instance of the task. How many went.
    pub fn delete_state(
        &self,
        ti: &StateScope,
        key: Option<&str>,
        all_map_indices: bool,
    ) -> Result<usize> {
        self.0
            .exec(
                "DELETE FROM task_state_store WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3
                   AND (?6 OR map_index = ?4) AND (?5 IS NULL OR key = ?5)",
                params![
                    ti.dag_id,
                    ti.run_id,
                    ti.task_id,
                    ti.map_index,
                    key,
                    all_map_indices
                ],
            )
            .map_err(db)
    }
}

/// The task instance a state store entry belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct StateScope {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i64,
}

/// A task state store entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEntry {
    pub key: String,
    /// The value, JSON.
    pub value: Value,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Store {
    /// A task instance's state store entries not expired at `now`, by key.
    pub fn state_entries(&self, ti: &StateScope, now: DateTime<Utc>) -> Result<Vec<StateEntry>> {
        self.query(
            "SELECT key, value, updated_at, expires_at FROM task_state_store
             WHERE dag_id = ?1 AND run_id = ?2 AND task_id = ?3 AND map_index = ?4
               AND (expires_at IS NULL OR expires_at > ?5)
             ORDER BY key",
            params![ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ts(now)],
            |r| {
                let value: String = r.get(1)?;
                let updated: String = r.get(2)?;
                let expires: Option<String> = r.get(3)?;
                Ok(StateEntry {
                    key: r.get(0)?,
                    value: serde_json::from_str(&value).unwrap_or(Value::String(value)),
                    updated_at: super::parse_ts(&updated).unwrap_or_default(),
                    expires_at: expires.as_deref().and_then(super::parse_ts),
                })
            },
        )
    }
}
