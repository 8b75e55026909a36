//! What the Task SDK's Execution API client reads and writes beyond a task's own run:
//! rendered template fields (RTIF), XCom deletes, variable keys.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::Cached;
use super::{Store, Tx, db};
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

impl Tx<'_> {
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
}
