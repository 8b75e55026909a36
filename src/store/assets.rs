//! Assets: the assets and aliases DAGs name, their events, the events queued per
//! consumer DAG (Airflow's `AssetDagRunQueue`) and the events each run consumed.
//!
//! A producer's success records an event per outlet and, in the same transaction,
//! queues it for every unpaused DAG scheduled on the asset (Airflow 3.3.2's
//! `register_asset_change` skips paused ones). The scheduler turns a DAG's queue into
//! an asset-triggered run once its condition holds (`create_asset_run`), which consumes
//! the queue and the events since the DAG's previous asset-triggered run.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value as Json;

use super::runs::{opt_time, run_row};
use super::{Cached, NewRun, Result, RunRow, Store, Tx, db, ts};
use crate::model::{AssetCond, AssetRef, Dag, RunType};

/// An asset as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    pub id: i64,
    pub name: String,
    pub uri: String,
    pub group: String,
    pub extra: Json,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A DAG's or a task's reference to an asset.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRefRow {
    pub asset_id: i64,
    pub dag_id: String,
    /// `schedule`, `outlet` or `inlet`.
    pub kind: String,
    /// Empty for `schedule`.
    pub task_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An asset event, with its asset's name, URI and group.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetEventRow {
    pub id: i64,
    pub asset_id: i64,
    pub name: String,
    pub uri: String,
    pub group: String,
    pub extra: Json,
    pub source_dag_id: Option<String>,
    pub source_task_id: Option<String>,
    pub source_run_id: Option<String>,
    pub source_map_index: i64,
    pub timestamp: DateTime<Utc>,
}

/// One queued event of a consumer DAG (`asset_dag_run_queue`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRow {
    pub asset_id: i64,
    pub name: String,
    pub uri: String,
    pub dag_id: String,
    pub created_at: DateTime<Utc>,
}

/// Where an event came from: a task instance's success, or nothing (a manual event).
#[derive(Debug, Clone, Copy)]
pub struct EventSource<'a> {
    pub dag_id: &'a str,
    pub task_id: &'a str,
    pub run_id: &'a str,
    pub map_index: i64,
}

const EVENT_COLS: &str =
    "e.id, e.asset_id, a.name, a.uri, a.grp, e.extra, e.source_dag_id, e.source_task_id,
    e.source_run_id, e.source_map_index, e.timestamp";

fn json_col(r: &Row, i: usize) -> rusqlite::Result<Json> {
    let text: String = r.get(i)?;
    Ok(serde_json::from_str(&text).unwrap_or(Json::Object(Default::default())))
}

fn time(r: &Row, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    Ok(opt_time(r, i)?.unwrap_or_default())
}

fn asset_row(r: &Row) -> rusqlite::Result<AssetRow> {
    Ok(AssetRow {
        id: r.get(0)?,
        name: r.get(1)?,
        uri: r.get(2)?,
        group: r.get(3)?,
        extra: json_col(r, 4)?,
        created_at: time(r, 5)?,
        updated_at: time(r, 6)?,
    })
}

fn event_row(r: &Row) -> rusqlite::Result<AssetEventRow> {
    Ok(AssetEventRow {
        id: r.get(0)?,
        asset_id: r.get(1)?,
        name: r.get(2)?,
        uri: r.get(3)?,
        group: r.get(4)?,
        extra: json_col(r, 5)?,
        source_dag_id: r.get(6)?,
        source_task_id: r.get(7)?,
        source_run_id: r.get(8)?,
        source_map_index: r.get(9)?,
        timestamp: time(r, 10)?,
    })
}

fn queued_row(r: &Row) -> rusqlite::Result<QueuedRow> {
    Ok(QueuedRow {
        asset_id: r.get(0)?,
        name: r.get(1)?,
        uri: r.get(2)?,
        dag_id: r.get(3)?,
        created_at: time(r, 4)?,
    })
}

const ASSET_COLS: &str = "id, name, uri, grp, extra, created_at, updated_at";

/// The id of an asset, created (or its group and extra updated) as the DAG names it.
fn upsert_asset(tx: &rusqlite::Transaction, a: &AssetRef, now_s: &str) -> rusqlite::Result<i64> {
    tx.exec(
        "INSERT INTO asset (name, uri, grp, extra, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (name, uri) DO UPDATE SET grp = excluded.grp, extra = excluded.extra,
           updated_at = CASE WHEN grp = excluded.grp AND extra = excluded.extra THEN updated_at ELSE excluded.updated_at END",
        params![a.name, a.uri, a.group, a.extra.to_string(), now_s],
    )?;
    tx.row(
        "SELECT id FROM asset WHERE name = ?1 AND uri = ?2",
        [&a.name, &a.uri],
        |r| r.get(0),
    )
}

/// Records which assets a DAG schedules on and its tasks produce and read, as its
/// latest parse says; references it no longer makes go, the others keep `created_at`
/// (the start of its event window when it does not catch up).
pub(super) fn sync_refs(
    tx: &rusqlite::Transaction,
    dag: &Dag,
    now_s: &str,
) -> rusqlite::Result<()> {
    let mut refs: Vec<(&AssetCond, &str, &str)> = Vec::new();
    let schedule;
    if let Some(cond) = dag.schedule.asset_condition() {
        schedule = cond
            .assets()
            .into_iter()
            .cloned()
            .map(AssetCond::Asset)
            .collect::<Vec<_>>();
        refs.extend(schedule.iter().map(|c| (c, "schedule", "")));
        collect_aliases(tx, cond)?;
        for name in cond.aliases() {
            tx.exec(
                "INSERT INTO dag_alias_ref (dag_id, alias_id, created_at, updated_at)
                 SELECT ?1, id, ?3, ?3 FROM asset_alias WHERE name = ?2
                 ON CONFLICT (dag_id, alias_id) DO UPDATE SET updated_at = excluded.updated_at",
                params![dag.dag_id, name, now_s],
            )?;
        }
    }
    tx.exec(
        "DELETE FROM dag_alias_ref WHERE dag_id = ?1 AND updated_at <> ?2",
        params![dag.dag_id, now_s],
    )?;
    for task in &dag.tasks {
        refs.extend(
            task.outlets
                .iter()
                .map(|c| (c, "outlet", task.task_id.as_str())),
        );
        refs.extend(
            task.inlets
                .iter()
                .map(|c| (c, "inlet", task.task_id.as_str())),
        );
    }
    for (cond, kind, task_id) in refs {
        match cond {
            AssetCond::Asset(a) => {
                let id = upsert_asset(tx, a, now_s)?;
                tx.exec(
                    "INSERT INTO dag_asset_ref (dag_id, asset_id, kind, task_id, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (dag_id, kind, asset_id, task_id) DO UPDATE SET updated_at = excluded.updated_at",
                    params![dag.dag_id, id, kind, task_id, now_s],
                )?;
            }
            other => collect_aliases(tx, other)?,
        }
    }
    tx.exec(
        "DELETE FROM dag_asset_ref WHERE dag_id = ?1 AND updated_at <> ?2",
        params![dag.dag_id, now_s],
    )?;
    Ok(())
}

fn collect_aliases(tx: &rusqlite::Transaction, cond: &AssetCond) -> rusqlite::Result<()> {
    match cond {
        AssetCond::Alias(name) => {
            tx.exec(
                "INSERT OR IGNORE INTO asset_alias (name, grp) VALUES (?1, 'asset')",
                [name],
            )?;
        }
        AssetCond::All(items) | AssetCond::Any(items) => {
            for i in items {
                collect_aliases(tx, i)?;
            }
        }
        AssetCond::Asset(_) => {}
    }
    Ok(())
}

impl Tx<'_> {
    /// Records an event of an asset (created if no DAG named it yet) and queues it for
    /// every unpaused DAG scheduled on it. Returns the event's id.
    pub fn asset_event(
        &self,
        asset: &AssetRef,
        extra: &Json,
        source: Option<EventSource>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let now_s = ts(now);
        let id = self
            .0
            .row(
                "SELECT id FROM asset WHERE name = ?1 AND uri = ?2",
                [&asset.name, &asset.uri],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(db)?;
        let id = match id {
            Some(id) => id,
            None => upsert_asset(&self.0, asset, &now_s).map_err(db)?,
        };
        self.event_of(id, extra, source, now)
    }

    /// Records an event of `asset` attached through the alias `alias` (a task's
    /// `outlet_events[alias].add(asset)`), as Airflow 3.3.2's `register_asset_change`
    /// with `source_alias_names`: the alias now names the asset (it resolves to it), the
    /// event keeps the alias among its `source_aliases`, and it is queued for every
    /// unpaused DAG scheduled on the alias as well as on the asset. The event's id.
    pub fn alias_event(
        &self,
        alias: &str,
        asset: &AssetRef,
        extra: &Json,
        source: Option<EventSource>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let event_id = self.asset_event(asset, extra, source, now)?;
        self.0
            .exec(
                "INSERT OR IGNORE INTO asset_alias (name, grp) VALUES (?1, 'asset')",
                [alias],
            )
            .map_err(db)?;
        let alias_id: i64 = self
            .0
            .row("SELECT id FROM asset_alias WHERE name = ?1", [alias], |r| {
                r.get(0)
            })
            .map_err(db)?;
        let asset_id: i64 = self
            .0
            .row(
                "SELECT asset_id FROM asset_event WHERE id = ?1",
                [event_id],
                |r| r.get(0),
            )
            .map_err(db)?;
        self.0
            .exec(
                "INSERT OR IGNORE INTO asset_alias_asset (alias_id, asset_id) VALUES (?1, ?2)",
                [alias_id, asset_id],
            )
            .map_err(db)?;
        self.0
            .exec(
                "INSERT OR IGNORE INTO asset_alias_asset_event (alias_id, event_id) VALUES (?1, ?2)",
                [alias_id, event_id],
            )
            .map_err(db)?;
        self.0
            .exec(
                "INSERT INTO asset_dag_run_queue (asset_id, target_dag_id, created_at)
                 SELECT ?1, r.dag_id, ?3 FROM dag_alias_ref r JOIN dag d ON d.dag_id = r.dag_id
                 WHERE r.alias_id = ?2 AND d.is_paused = 0 AND d.is_stale = 0
                 ON CONFLICT (asset_id, target_dag_id) DO NOTHING",
                params![asset_id, alias_id, ts(now)],
            )
            .map_err(db)?;
        Ok(event_id)
    }

    /// Records an event of the asset `asset_id` and queues it (see `asset_event`).
    pub fn event_of(
        &self,
        asset_id: i64,
        extra: &Json,
        source: Option<EventSource>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let now_s = ts(now);
        let extra = match extra {
            Json::Object(_) => extra.to_string(),
            _ => "{}".to_string(),
        };
        self.0
            .exec(
                "INSERT INTO asset_event (asset_id, extra, source_dag_id, source_task_id, source_run_id, source_map_index, timestamp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    asset_id,
                    extra,
                    source.map(|s| s.dag_id),
                    source.map(|s| s.task_id),
                    source.map(|s| s.run_id),
                    source.map_or(-1, |s| s.map_index),
                    now_s
                ],
            )
            .map_err(db)?;
        let event_id = self.0.last_insert_rowid();
        self.0
            .exec(
                "INSERT INTO asset_dag_run_queue (asset_id, target_dag_id, created_at)
                 SELECT r.asset_id, r.dag_id, ?2 FROM dag_asset_ref r JOIN dag d ON d.dag_id = r.dag_id
                 WHERE r.asset_id = ?1 AND r.kind = 'schedule' AND d.is_paused = 0 AND d.is_stale = 0
                 ON CONFLICT (asset_id, target_dag_id) DO NOTHING",
                params![asset_id, now_s],
            )
            .map_err(db)?;
        Ok(event_id)
    }

    /// Creates the asset-triggered run of `dag` for its queued events `queued` (all of
    /// them, read in this pass): as Airflow's `_create_dag_runs_asset_triggered`, no
    /// logical date nor data interval, `run_after` the newest queued time; it consumes
    /// the events of the DAG's assets after its previous asset-triggered run (or, when
    /// it does not catch up, after it started scheduling on them) up to then, and
    /// empties those queue rows.
    pub fn create_asset_run(
        &self,
        dag: &Dag,
        queued: &[QueuedRow],
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRow>> {
        let Some(triggered) = queued.iter().map(|q| q.created_at).max() else {
            return Ok(None);
        };
        let triggered_s = ts(triggered);
        let previous: Option<String> = self
            .0
            .row(
                "SELECT MAX(run_after) FROM dag_run WHERE dag_id = ?1 AND run_type = 'asset_triggered' AND run_after < ?2",
                params![dag.dag_id, triggered_s],
                |r| r.get(0),
            )
            .map_err(db)?;
        let since_refs: Option<String> = if dag.catchup {
            None
        } else {
            self.0
                .row(
                    "SELECT MIN(created_at) FROM (
                       SELECT created_at FROM dag_asset_ref WHERE dag_id = ?1 AND kind = 'schedule'
                       UNION ALL SELECT created_at FROM dag_alias_ref WHERE dag_id = ?1)",
                    [&dag.dag_id],
                    |r| r.get(0),
                )
                .map_err(db)?
        };
        let floor = previous.or(since_refs).unwrap_or_default();
        let run = self.create_run(
            &NewRun {
                dag,
                run_id: run_id.to_string(),
                run_type: RunType::AssetTriggered,
                logical_date: None,
                data_interval: None,
                run_after: triggered,
                conf: Json::Object(Default::default()),
                note: None,
                triggered_by: "asset",
                user: None,
                backfill_id: None,
            },
            now,
        )?;
        self.0
            .exec(
                "INSERT OR IGNORE INTO dag_run_asset_event (dag_run_id, event_id)
                 SELECT ?1, e.id FROM asset_event e
                 WHERE (e.asset_id IN (SELECT asset_id FROM dag_asset_ref WHERE dag_id = ?2 AND kind = 'schedule')
                     OR e.id IN (SELECT ae.event_id FROM asset_alias_asset_event ae
                                 JOIN dag_alias_ref r ON r.alias_id = ae.alias_id WHERE r.dag_id = ?2))
                   AND e.timestamp <= ?3 AND e.timestamp > ?4",
                params![run.id, dag.dag_id, triggered_s, floor],
            )
            .map_err(db)?;
        for q in queued {
            self.0
                .exec(
                    "DELETE FROM asset_dag_run_queue WHERE asset_id = ?1 AND target_dag_id = ?2",
                    params![q.asset_id, q.dag_id],
                )
                .map_err(db)?;
        }
        Ok(Some(run))
    }

    /// Empties a DAG's queue (a DAG no longer scheduled on assets, or the API's delete),
    /// optionally of one asset and of rows queued before `before`. How many went.
    pub fn delete_queued(
        &self,
        dag_id: Option<&str>,
        asset_id: Option<i64>,
        before: Option<DateTime<Utc>>,
    ) -> Result<usize> {
        self.0
            .exec(
                "DELETE FROM asset_dag_run_queue WHERE (?1 IS NULL OR target_dag_id = ?1)
                   AND (?2 IS NULL OR asset_id = ?2) AND (?3 IS NULL OR created_at < ?3)",
                params![dag_id, asset_id, before.map(ts)],
            )
            .map_err(db)
    }
}

/// One key of an asset's state store.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetStateRow {
    pub key: String,
    pub value: Json,
    pub updated_at: DateTime<Utc>,
    /// `(kind, dag_id, run_id, task_id, map_index)` of the last writer, if recorded.
    pub kind: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub map_index: Option<i64>,
}

impl Tx<'_> {
    /// Sets one key of an asset's state store, written through the Core API.
    pub fn set_asset_state(
        &self,
        asset_id: i64,
        key: &str,
        value: &Json,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO asset_state_store (asset_id, key, value, updated_at, last_updated_by_kind)
                 VALUES (?1, ?2, ?3, ?4, 'api')
                 ON CONFLICT (asset_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
                   last_updated_by_kind = 'api', last_updated_by_dag_id = NULL, last_updated_by_run_id = NULL,
                   last_updated_by_task_id = NULL, last_updated_by_map_index = NULL",
                params![asset_id, key, value.to_string(), ts(now)],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Deletes one key, or every key with `None`.
    pub fn delete_asset_state(&self, asset_id: i64, key: Option<&str>) -> Result<usize> {
        self.0
            .exec(
                "DELETE FROM asset_state_store WHERE asset_id = ?1 AND (?2 IS NULL OR key = ?2)",
                params![asset_id, key],
            )
            .map_err(db)
    }
}

impl Store {
    /// An asset's state store, by key.
    pub fn asset_state(&self, asset_id: i64) -> Result<Vec<AssetStateRow>> {
        self.query(
            "SELECT key, value, updated_at, last_updated_by_kind, last_updated_by_dag_id, last_updated_by_run_id,
                    last_updated_by_task_id, last_updated_by_map_index
             FROM asset_state_store WHERE asset_id = ?1 ORDER BY key",
            [asset_id],
            |r| {
                let text: String = r.get(1)?;
                Ok(AssetStateRow {
                    key: r.get(0)?,
                    value: serde_json::from_str(&text).unwrap_or(Json::Null),
                    updated_at: time(r, 2)?,
                    kind: r.get(3)?,
                    dag_id: r.get(4)?,
                    run_id: r.get(5)?,
                    task_id: r.get(6)?,
                    map_index: r.get(7)?,
                })
            },
        )
    }

    /// The DAGs that have queued asset events.
    pub fn dags_with_queued_events(&self) -> Result<Vec<String>> {
        self.query(
            "SELECT DISTINCT target_dag_id FROM asset_dag_run_queue",
            [],
            |r| r.get(0),
        )
    }

    /// Queued events, of one DAG and/or one asset, queued before `before`, oldest first.
    pub fn queued_events(
        &self,
        dag_id: Option<&str>,
        asset_id: Option<i64>,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<QueuedRow>> {
        self.query(
            "SELECT q.asset_id, a.name, a.uri, q.target_dag_id, q.created_at FROM asset_dag_run_queue q
             JOIN asset a ON a.id = q.asset_id
             WHERE (?1 IS NULL OR q.target_dag_id = ?1) AND (?2 IS NULL OR q.asset_id = ?2)
               AND (?3 IS NULL OR q.created_at < ?3)
             ORDER BY q.created_at, q.asset_id",
            params![dag_id, asset_id, before.map(ts)],
            queued_row,
        )
    }

    /// Every asset, by id.
    pub fn assets(&self) -> Result<Vec<AssetRow>> {
        self.query(
            &format!("SELECT {ASSET_COLS} FROM asset ORDER BY id"),
            [],
            asset_row,
        )
    }

    pub fn asset(&self, id: i64) -> Result<Option<AssetRow>> {
        self.conn
            .row(
                &format!("SELECT {ASSET_COLS} FROM asset WHERE id = ?1"),
                [id],
                asset_row,
            )
            .optional()
            .map_err(db)
    }

    /// The asset named so (by name and URI; by either alone when the other is None).
    pub fn asset_by(&self, name: Option<&str>, uri: Option<&str>) -> Result<Option<AssetRow>> {
        self.conn
            .row(
                &format!(
                    "SELECT {ASSET_COLS} FROM asset WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR uri = ?2)
                     ORDER BY id LIMIT 1"
                ),
                params![name, uri],
                asset_row,
            )
            .optional()
            .map_err(db)
    }

    /// Every reference of live DAGs to assets.
    pub fn asset_refs(&self) -> Result<Vec<AssetRefRow>> {
        self.query(
            "SELECT r.asset_id, r.dag_id, r.kind, r.task_id, r.created_at, r.updated_at FROM dag_asset_ref r
             JOIN dag d ON d.dag_id = r.dag_id WHERE d.is_stale = 0 ORDER BY r.dag_id, r.task_id",
            [],
            |r| {
                Ok(AssetRefRow {
                    asset_id: r.get(0)?,
                    dag_id: r.get(1)?,
                    kind: r.get(2)?,
                    task_id: r.get(3)?,
                    created_at: time(r, 4)?,
                    updated_at: time(r, 5)?,
                })
            },
        )
    }

    /// Every alias: id, name, group.
    pub fn asset_aliases(&self) -> Result<Vec<(i64, String, String)>> {
        self.query(
            "SELECT id, name, grp FROM asset_alias ORDER BY id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// The assets an alias resolves to (Airflow's `expand_alias_to_assets`): those events
    /// attached through it named; none for an unknown alias.
    pub fn alias_assets(&self, alias: &str) -> Result<Vec<AssetRow>> {
        let cols = ASSET_COLS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.query(
            &format!(
                "SELECT {cols} FROM asset_alias_asset aa JOIN asset_alias al ON al.id = aa.alias_id
                 JOIN asset a ON a.id = aa.asset_id WHERE al.name = ?1 ORDER BY a.id"
            ),
            [alias],
            asset_row,
        )
    }

    /// The aliases an event was attached through (its `source_aliases`): (name, group).
    pub fn event_aliases(&self, event_id: i64) -> Result<Vec<(String, String)>> {
        self.query(
            "SELECT al.name, al.grp FROM asset_alias_asset_event ae JOIN asset_alias al ON al.id = ae.alias_id
             WHERE ae.event_id = ?1 ORDER BY al.id",
            [event_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The events attached through the alias `alias`, oldest first.
    pub fn alias_events(&self, alias: &str) -> Result<Vec<AssetEventRow>> {
        self.query(
            &format!(
                "SELECT {EVENT_COLS} FROM asset_alias_asset_event ae JOIN asset_alias al ON al.id = ae.alias_id
                 JOIN asset_event e ON e.id = ae.event_id JOIN asset a ON a.id = e.asset_id
                 WHERE al.name = ?1 ORDER BY e.id"
            ),
            [alias],
            event_row,
        )
    }

    /// Every event, oldest first.
    pub fn asset_events(&self) -> Result<Vec<AssetEventRow>> {
        self.query(
            &format!("SELECT {EVENT_COLS} FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id"),
            [],
            event_row,
        )
    }

    pub fn asset_event_by_id(&self, id: i64) -> Result<Option<AssetEventRow>> {
        self.conn
            .row(
                &format!("SELECT {EVENT_COLS} FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE e.id = ?1"),
                [id],
                event_row,
            )
            .optional()
            .map_err(db)
    }

    /// The events a run consumed (`consumed_asset_events`), oldest first.
    pub fn consumed_events(&self, run_pk: i64) -> Result<Vec<AssetEventRow>> {
        self.query(
            &format!(
                "SELECT {EVENT_COLS} FROM dag_run_asset_event c JOIN asset_event e ON e.id = c.event_id
                 JOIN asset a ON a.id = e.asset_id WHERE c.dag_run_id = ?1 ORDER BY e.timestamp, e.id"
            ),
            [run_pk],
            event_row,
        )
    }

    /// The runs that consumed an event (`created_dagruns`).
    pub fn runs_of_event(&self, event_id: i64) -> Result<Vec<RunRow>> {
        self.query(
            &format!(
                "SELECT {} FROM dag_run_asset_event c JOIN dag_run r ON r.id = c.dag_run_id
                 WHERE c.event_id = ?1 ORDER BY r.id",
                super::runs::RUN_COLS
                    .split(',')
                    .map(|c| format!("r.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [event_id],
            run_row,
        )
    }
}
