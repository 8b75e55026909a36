//! Jobs and their heartbeats: what health checks and `jobs check` read.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::{Store, dags::time_col};
use crate::error::Result;

impl Store {
    /// The newest heartbeat of a running job of this type (`SchedulerJob`, ...).
    pub fn latest_heartbeat(&self, job_type: &str) -> Result<Option<DateTime<Utc>>> {
        self.conn
            .query_row(
                "SELECT latest_heartbeat FROM job WHERE job_type = ?1 AND state = 'running'
                 ORDER BY latest_heartbeat DESC LIMIT 1",
                [job_type],
                |r| time_col(r, 0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
