//! DAG versions (Airflow's `dag_version`): the parser records one each time a DAG's
//! parsed structure or its file's text changes, keeping that text; a run records the
//! version that was newest when it was created.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::Cached;
use super::{Store, parse_ts};
use crate::error::Result;

/// One version of a DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    /// Its id in the API (a UUID, as Airflow's).
    pub uuid: String,
    pub dag_id: String,
    pub version_number: i64,
    pub bundle_name: String,
    /// The file's text this version was parsed from.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

const COLS: &str = "uuid, dag_id, version_number, bundle_name, source, created_at";

fn version_row(r: &Row) -> rusqlite::Result<VersionRow> {
    let created: String = r.get(5)?;
    Ok(VersionRow {
        uuid: r.get(0)?,
        dag_id: r.get(1)?,
        version_number: r.get(2)?,
        bundle_name: r.get(3)?,
        source: r.get(4)?,
        created_at: parse_ts(&created).unwrap_or_default(),
    })
}

/// Inside the parser's transaction: adds a version of `dag_id` when its parsed form or
/// source differs from its newest version's (or it has none). The parsed form is
/// compared as a model when the texts differ, so that a change in how a DAG is written
/// (issue 22 left usual task values out) adds no version of an unchanged DAG.
pub(super) fn record_version(
    tx: &rusqlite::Transaction,
    dag: &crate::model::Dag,
    bundle_name: &str,
    serialized: &str,
    source: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let dag_id = dag.dag_id.as_str();
    let newest: Option<(i64, String, String)> = tx
        .row(
            "SELECT version_number, serialized, source FROM dag_version WHERE dag_id = ?1
             ORDER BY version_number DESC LIMIT 1",
            [dag_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((_, s, src)) = &newest
        && src == source
        && (s == serialized
            || serde_json::from_str::<crate::model::Dag>(s).is_ok_and(|d| d == *dag))
    {
        return Ok(());
    }
    let number = newest.map_or(1, |(n, _, _)| n + 1);
    tx.exec(
        "INSERT INTO dag_version (uuid, dag_id, version_number, bundle_name, serialized, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            crate::ids::uuid7(now),
            dag_id,
            number,
            bundle_name,
            serialized,
            source,
            super::ts(now)
        ],
    )?;
    Ok(())
}

impl Store {
    /// Every version of a DAG, oldest first.
    pub fn dag_versions(&self, dag_id: &str) -> Result<Vec<VersionRow>> {
        self.query(
            &format!("SELECT {COLS} FROM dag_version WHERE dag_id = ?1 ORDER BY version_number"),
            [dag_id],
            version_row,
        )
    }

    /// One version of a DAG by its number.
    pub fn dag_version(&self, dag_id: &str, number: i64) -> Result<Option<VersionRow>> {
        self.conn
            .row(
                &format!(
                    "SELECT {COLS} FROM dag_version WHERE dag_id = ?1 AND version_number = ?2"
                ),
                params![dag_id, number],
                version_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The version a run was created with, if it has one (runs from before versions
    /// were kept have none).
    pub fn run_version(&self, dag_id: &str, run_id: &str) -> Result<Option<VersionRow>> {
        self.conn
            .row(
                &format!(
                    "SELECT {} FROM dag_run r JOIN dag_version v ON v.id = r.dag_version_id
                     WHERE r.dag_id = ?1 AND r.run_id = ?2",
                    COLS.split(", ")
                        .map(|c| format!("v.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                [dag_id, run_id],
                version_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
