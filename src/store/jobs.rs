//! Jobs and their heartbeats (what health checks and `jobs check` read), and the lease
//! that makes one scheduler active while the others stand by.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{Store, dags::time_col, ts};
use crate::error::{Error, Result};

/// A live job, as `jobs check` lists it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub job_type: String,
    pub hostname: String,
    pub pid: i64,
    pub latest_heartbeat: DateTime<Utc>,
}

/// Who holds the scheduler lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub job_id: i64,
    pub hostname: String,
    pub pid: i64,
    pub heartbeat: DateTime<Utc>,
    /// When the holder's job was registered (after its process started); None when
    /// its job row is gone.
    pub started: Option<DateTime<Utc>>,
}

impl Store {
    /// The newest heartbeat of a running job of this type (`SchedulerJob`, ...).
    pub fn latest_heartbeat(&self, job_type: &str) -> Result<Option<DateTime<Utc>>> {
        self.conn
            .row(
                "SELECT latest_heartbeat FROM job WHERE job_type = ?1 AND state = 'running'
                 ORDER BY latest_heartbeat DESC LIMIT 1",
                [job_type],
                |r| time_col(r, 0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Running jobs of a type whose heartbeat is newer than `since`, newest first.
    pub fn alive_jobs(
        &self,
        job_type: &str,
        since: DateTime<Utc>,
        hostname: Option<&str>,
    ) -> Result<Vec<JobRow>> {
        self.query(
            "SELECT id, job_type, hostname, pid, latest_heartbeat FROM job
             WHERE job_type = ?1 AND state = 'running' AND latest_heartbeat >= ?2 AND (?3 IS NULL OR hostname = ?3)
             ORDER BY latest_heartbeat DESC",
            params![job_type, ts(since), hostname],
            |r| {
                Ok(JobRow {
                    id: r.get(0)?,
                    job_type: r.get(1)?,
                    hostname: r.get(2)?,
                    pid: r.get(3)?,
                    latest_heartbeat: time_col(r, 4)?,
                })
            },
        )
    }

    /// Registers a running job; returns its id.
    pub fn start_job(
        &mut self,
        job_type: &str,
        hostname: &str,
        pid: u32,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.write(|tx| {
            tx.0.exec(
                "INSERT INTO job (job_type, state, hostname, pid, start_date, latest_heartbeat)
                 VALUES (?1, 'running', ?2, ?3, ?4, ?4)",
                params![job_type, hostname, pid, ts(now)],
            )
            .map_err(Error::from)?;
            Ok(tx.0.last_insert_rowid())
        })
    }

    /// Records a heartbeat of a job, and renews the scheduler lease if it holds it.
    pub fn heartbeat_job(&mut self, job_id: i64, now: DateTime<Utc>) -> Result<()> {
        self.write(|tx| {
            let now = ts(now);
            tx.0.exec(
                "UPDATE job SET latest_heartbeat = ?2 WHERE id = ?1",
                params![job_id, now],
            )
            .and_then(|_| {
                tx.0.exec(
                    "UPDATE scheduler_lease SET heartbeat = ?2 WHERE job_id = ?1",
                    params![job_id, now],
                )
            })
            .map_err(Error::from)?;
            Ok(())
        })
    }

    /// Marks a job ended and gives up its lease.
    pub fn end_job(&mut self, job_id: i64, state: &str, now: DateTime<Utc>) -> Result<()> {
        self.write(|tx| {
            tx.0.exec(
                "UPDATE job SET state = ?2, end_date = ?3 WHERE id = ?1",
                params![job_id, state, ts(now)],
            )
            .and_then(|_| {
                tx.0.exec("DELETE FROM scheduler_lease WHERE job_id = ?1", [job_id])
            })
            .map_err(Error::from)?;
            Ok(())
        })
    }

    /// Takes the scheduler lease if it is free, stale (heartbeat before `stale_before`),
    /// already ours, or held by a holder `dead` proves gone (asked only of a holder with
    /// a fresh heartbeat). Returns the holder after the attempt.
    pub fn take_lease(
        &mut self,
        job_id: i64,
        hostname: &str,
        pid: u32,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        dead: &dyn Fn(&Lease) -> bool,
    ) -> Result<Lease> {
        self.write(|tx| {
            let db = Error::from;
            let holder: Option<Lease> = tx
                .0
                .row(
                    "SELECT l.job_id, l.hostname, l.pid, l.heartbeat, j.start_date
                     FROM scheduler_lease l LEFT JOIN job j ON j.id = l.job_id WHERE l.id = 1",
                    [],
                    |r| {
                        Ok(Lease {
                            job_id: r.get(0)?,
                            hostname: r.get(1)?,
                            pid: r.get(2)?,
                            heartbeat: time_col(r, 3)?,
                            started: r
                                .get::<_, Option<String>>(4)?
                                .and_then(|t| super::parse_ts(&t)),
                        })
                    },
                )
                .optional()
                .map_err(db)?;
            if let Some(h) = holder
                .filter(|h| h.job_id != job_id && h.heartbeat >= stale_before && !dead(h))
            {
                return Ok(h);
            }
            tx.0.exec(
                "INSERT OR REPLACE INTO scheduler_lease (id, job_id, hostname, pid, heartbeat) VALUES (1, ?1, ?2, ?3, ?4)",
                params![job_id, hostname, pid, ts(now)],
            )
            .map_err(db)?;
            Ok(Lease {
                job_id,
                hostname: hostname.to_string(),
                pid: pid as i64,
                heartbeat: now,
                started: None,
            })
        })
    }
}
