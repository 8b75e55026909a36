//! Variables, connections, pools and jobs as the Core API lists and changes them: whole
//! tables with their row ids (Airflow's `id`, which lists sort by), pool usage summed from
//! task instances, and the steps of a create, update or delete inside one [`Tx`].
//!
//! Each `put_*` writes every field of a row as given (an update that keeps a field passes
//! the old value); the API decides what changes. The single-row reads the CLI and the
//! Execution API use stay in `vars.rs`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::Cached;
use super::{Connection, Store, Tx, Variable, db, parse_ts};
use crate::error::Result;

/// A pool's settings, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    /// -1 is unlimited, as in Airflow.
    pub slots: i64,
    pub description: Option<String>,
    pub include_deferred: bool,
}

/// A pool with its row id and the slots its task instances take, by state (each task
/// instance counts its `pool_slots`).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRow {
    pub id: i64,
    pub pool: Pool,
    pub running: i64,
    pub queued: i64,
    pub scheduled: i64,
    pub deferred: i64,
}

impl PoolRow {
    /// Slots in use: running and queued, and deferred when the pool counts them.
    pub fn occupied(&self) -> i64 {
        let base = self.running.saturating_add(self.queued);
        if self.pool.include_deferred {
            base.saturating_add(self.deferred)
        } else {
            base
        }
    }

    /// Slots free; -1 for an unlimited pool (Airflow's `inf`, which its API writes as -1).
    pub fn open(&self) -> i64 {
        if self.pool.slots == -1 {
            -1
        } else {
            self.pool.slots.saturating_sub(self.occupied())
        }
    }
}

/// A row of the `job` table.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: i64,
    pub job_type: String,
    pub state: String,
    pub hostname: String,
    pub unixname: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub latest_heartbeat: Option<DateTime<Utc>>,
}

const POOL_STATS: &str = "SELECT p.rowid, p.pool, p.slots, p.description, p.include_deferred,
       COALESCE(SUM(CASE WHEN t.state = 'running' THEN t.pool_slots END), 0),
       COALESCE(SUM(CASE WHEN t.state = 'queued' THEN t.pool_slots END), 0),
       COALESCE(SUM(CASE WHEN t.state = 'scheduled' THEN t.pool_slots END), 0),
       COALESCE(SUM(CASE WHEN t.state = 'deferred' THEN t.pool_slots END), 0)
     FROM slot_pool p
     LEFT JOIN task_instance t ON t.pool = p.pool
       AND t.state IN ('running', 'queued', 'scheduled', 'deferred')";

impl Store {
    /// Every variable with its row id, in row id order.
    pub fn variables(&self) -> Result<Vec<(i64, Variable)>> {
        self.query(
            "SELECT rowid, key, val, description FROM variable ORDER BY rowid",
            [],
            |r| Ok((r.get(0)?, variable_row(r, 1)?)),
        )
    }

    /// Every connection with its row id, in row id order.
    pub fn connections(&self) -> Result<Vec<(i64, Connection)>> {
        self.query(
            "SELECT rowid, conn_id, conn_type, description, host, schema, login, password, port, extra
             FROM connection ORDER BY rowid",
            [],
            |r| Ok((r.get(0)?, connection_row(r, 1)?)),
        )
    }

    /// Every pool with its usage, in row id order.
    pub fn pools(&self) -> Result<Vec<PoolRow>> {
        self.query(
            &format!("{POOL_STATS} GROUP BY p.pool ORDER BY p.rowid"),
            [],
            pool_stats_row,
        )
    }

    /// One pool with its usage.
    pub fn pool(&self, name: &str) -> Result<Option<PoolRow>> {
        self.conn
            .row(
                &format!("{POOL_STATS} WHERE p.pool = ?1 GROUP BY p.pool"),
                [name],
                pool_stats_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every job, in id order.
    pub fn jobs(&self) -> Result<Vec<JobRecord>> {
        self.query(
            "SELECT id, job_type, state, hostname, unixname, start_date, end_date, latest_heartbeat
             FROM job ORDER BY id",
            [],
            |r| {
                let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
                    Ok(r.get::<_, Option<String>>(i)?.and_then(|s| parse_ts(&s)))
                };
                Ok(JobRecord {
                    id: r.get(0)?,
                    job_type: r.get(1)?,
                    state: r.get(2)?,
                    hostname: r.get(3)?,
                    unixname: r.get(4)?,
                    start_date: time(5)?,
                    end_date: time(6)?,
                    latest_heartbeat: time(7)?,
                })
            },
        )
    }
}

impl Tx<'_> {
    pub fn variable(&self, key: &str) -> Result<Option<Variable>> {
        self.0
            .row(
                "SELECT key, val, description FROM variable WHERE key = ?1",
                [key],
                |r| variable_row(r, 0),
            )
            .optional()
            .map_err(db)
    }

    /// Creates the variable, or sets every field of the one with its key.
    pub fn put_variable(&self, v: &Variable) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO variable (key, val, description) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET val = excluded.val, description = excluded.description",
                params![v.key, v.val, v.description],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Whether there was such a variable.
    pub fn delete_variable(&self, key: &str) -> Result<bool> {
        let n = self
            .0
            .exec("DELETE FROM variable WHERE key = ?1", [key])
            .map_err(db)?;
        Ok(n > 0)
    }

    pub fn connection(&self, conn_id: &str) -> Result<Option<Connection>> {
        self.0
            .row(
                "SELECT conn_id, conn_type, description, host, schema, login, password, port, extra
                 FROM connection WHERE conn_id = ?1",
                [conn_id],
                |r| connection_row(r, 0),
            )
            .optional()
            .map_err(db)
    }

    /// Creates the connection, or sets every field of the one with its id (keeping its
    /// row id, so lists keep their order).
    pub fn put_connection(&self, c: &Connection) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO connection (conn_id, conn_type, description, host, schema, login, password, port, extra)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (conn_id) DO UPDATE SET conn_type = excluded.conn_type,
                   description = excluded.description, host = excluded.host, schema = excluded.schema,
                   login = excluded.login, password = excluded.password, port = excluded.port,
                   extra = excluded.extra",
                params![c.conn_id, c.conn_type, c.description, c.host, c.schema, c.login, c.password, c.port, c.extra],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Whether there was such a connection.
    pub fn delete_connection(&self, conn_id: &str) -> Result<bool> {
        let n = self
            .0
            .exec("DELETE FROM connection WHERE conn_id = ?1", [conn_id])
            .map_err(db)?;
        Ok(n > 0)
    }

    pub fn pool(&self, name: &str) -> Result<Option<Pool>> {
        self.0
            .row(
                "SELECT pool, slots, description, include_deferred FROM slot_pool WHERE pool = ?1",
                [name],
                |r| pool_row(r, 0),
            )
            .optional()
            .map_err(db)
    }

    /// Creates the pool, or sets every field of the one with its name.
    pub fn put_pool(&self, p: &Pool) -> Result<()> {
        self.0
            .exec(
                "INSERT INTO slot_pool (pool, slots, description, include_deferred) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pool) DO UPDATE SET slots = excluded.slots,
                   description = excluded.description, include_deferred = excluded.include_deferred",
                params![p.name, p.slots, p.description, p.include_deferred],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Whether there was such a pool. Its task instances keep naming it, and wait until a
    /// pool of that name exists again (as in Airflow).
    pub fn delete_pool(&self, name: &str) -> Result<bool> {
        let n = self
            .0
            .exec("DELETE FROM slot_pool WHERE pool = ?1", [name])
            .map_err(db)?;
        Ok(n > 0)
    }
}

fn variable_row(r: &Row, at: usize) -> rusqlite::Result<Variable> {
    Ok(Variable {
        key: r.get(at)?,
        val: r.get(at + 1)?,
        description: r.get(at + 2)?,
    })
}

fn connection_row(r: &Row, at: usize) -> rusqlite::Result<Connection> {
    Ok(Connection {
        conn_id: r.get(at)?,
        conn_type: r.get(at + 1)?,
        description: r.get(at + 2)?,
        host: r.get(at + 3)?,
        schema: r.get(at + 4)?,
        login: r.get(at + 5)?,
        password: r.get(at + 6)?,
        port: r.get(at + 7)?,
        extra: r.get(at + 8)?,
    })
}

fn pool_row(r: &Row, at: usize) -> rusqlite::Result<Pool> {
    Ok(Pool {
        name: r.get(at)?,
        slots: r.get(at + 1)?,
        description: r.get(at + 2)?,
        include_deferred: r.get(at + 3)?,
    })
}

fn pool_stats_row(r: &Row) -> rusqlite::Result<PoolRow> {
    Ok(PoolRow {
        id: r.get(0)?,
        pool: pool_row(r, 1)?,
        running: r.get(5)?,
        queued: r.get(6)?,
        scheduled: r.get(7)?,
        deferred: r.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_keeps_row_ids_and_sets_every_field() {
        let (dir, mut store) = crate::store::temp_store("q-objects");
        store
            .write(|tx| {
                for k in ["b", "a"] {
                    tx.put_variable(&Variable {
                        key: k.into(),
                        val: "1".into(),
                        description: Some("d".into()),
                    })?;
                }
                tx.put_variable(&Variable {
                    key: "b".into(),
                    val: "2".into(),
                    description: None,
                })
            })
            .unwrap();
        let vars = store.variables().unwrap();
        let keys: Vec<&str> = vars.iter().map(|(_, v)| v.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(vars[0].1.val, "2");
        assert_eq!(vars[0].1.description, None);
        assert!(store.write(|tx| tx.delete_variable("a")).unwrap());
        assert!(!store.write(|tx| tx.delete_variable("a")).unwrap());

        let c = Connection {
            conn_id: "c1".into(),
            conn_type: "http".into(),
            port: Some(80),
            ..Connection::default()
        };
        store.write(|tx| tx.put_connection(&c)).unwrap();
        let (id, _) = store.connections().unwrap()[0].clone();
        store
            .write(|tx| {
                tx.put_connection(&Connection {
                    host: Some("h".into()),
                    ..c.clone()
                })
            })
            .unwrap();
        let (id2, got) = store.connections().unwrap()[0].clone();
        assert_eq!((id2, got.host.as_deref()), (id, Some("h")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unlimited_and_empty_pools() {
        let (dir, mut store) = crate::store::temp_store("q-objects");
        store
            .write(|tx| {
                tx.put_pool(&Pool {
                    name: "free".into(),
                    slots: -1,
                    description: None,
                    include_deferred: true,
                })
            })
            .unwrap();
        let pools = store.pools().unwrap();
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].pool.name, "default_pool");
        assert_eq!(pools[0].open(), 128);
        let free = store.pool("free").unwrap().unwrap();
        assert_eq!((free.occupied(), free.open()), (0, -1));
        assert!(store.pool("nope").unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
