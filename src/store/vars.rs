//! Variables, connections and pools: the configuration objects tasks and operators read.

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::Cached;
use super::{Store, db};
use crate::error::Result;

/// A connection, with Airflow's field names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connection {
    pub conn_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub schema: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub port: Option<i64>,
    pub extra: Option<String>,
}

impl Connection {
    /// The connection as JSON, password in clear: for the Execution API (tasks need it).
    pub fn to_json(&self) -> Value {
        json!({
            "conn_id": self.conn_id, "conn_type": self.conn_type, "description": self.description,
            "host": self.host, "schema": self.schema, "login": self.login, "password": self.password,
            "port": self.port, "extra": self.extra,
        })
    }
}

/// A variable: key, value, description.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub key: String,
    pub val: String,
    pub description: Option<String>,
}

impl Store {
    pub fn variable(&self, key: &str) -> Result<Option<Variable>> {
        self.conn
            .row(
                "SELECT key, val, description FROM variable WHERE key = ?1",
                [key],
                |r| {
                    Ok(Variable {
                        key: r.get(0)?,
                        val: r.get(1)?,
                        description: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Creates the variable, or sets the value (and the description, when given) of the
    /// one with its key.
    pub fn set_variable(&mut self, key: &str, val: &str, description: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.0.exec(
                "INSERT INTO variable (key, val, description) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET val = excluded.val,
                   description = COALESCE(excluded.description, variable.description)",
                params![key, val, description],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    pub fn connection(&self, conn_id: &str) -> Result<Option<Connection>> {
        self.conn
            .row(
                "SELECT conn_id, conn_type, description, host, schema, login, password, port, extra
                 FROM connection WHERE conn_id = ?1",
                [conn_id],
                |r| {
                    Ok(Connection {
                        conn_id: r.get(0)?,
                        conn_type: r.get(1)?,
                        description: r.get(2)?,
                        host: r.get(3)?,
                        schema: r.get(4)?,
                        login: r.get(5)?,
                        password: r.get(6)?,
                        port: r.get(7)?,
                        extra: r.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Creates a connection; `false` (and nothing written) when one with its id exists.
    pub fn add_connection(&mut self, c: &Connection) -> Result<bool> {
        self.write(|tx| {
            let n = tx.0.exec(
                "INSERT INTO connection (conn_id, conn_type, description, host, schema, login, password, port, extra)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (conn_id) DO NOTHING",
                params![c.conn_id, c.conn_type, c.description, c.host, c.schema, c.login, c.password, c.port, c.extra],
            )
            .map_err(db)?;
            Ok(n == 1)
        })
    }

    /// Creates or resizes a pool.
    pub fn set_pool(&mut self, pool: &str, slots: i64, description: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.0.exec(
                "INSERT INTO slot_pool (pool, slots, description) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pool) DO UPDATE SET slots = excluded.slots,
                   description = COALESCE(excluded.description, slot_pool.description)",
                params![pool, slots, description],
            )
            .map_err(db)?;
            Ok(())
        })
    }
}
