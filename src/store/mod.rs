//! The SQLite store: the only module that names rusqlite.
//!
//! One [`Store`] per thread (a `Connection` is `Send`, not `Sync`): no pool, no lock.
//! The file runs in WAL mode so readers never wait for the writer; every write is one
//! `BEGIN IMMEDIATE` transaction, so contention shows up at `BEGIN` under the busy
//! timeout instead of as a failed commit. SQL is literal and sits next to its function.

mod assets;
mod backfills;
mod callbacks;
mod dags;
mod hitl;
mod jobs;
mod migrations;
mod q_dags;
mod q_exec;
mod q_objects;
pub mod q_runs;
mod q_versions;
mod runs;
mod shared;
pub mod user_sql;
mod vars;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::OpenFlags;
use rusqlite::config::DbConfig;

pub use assets::{AssetEventRow, AssetRefRow, AssetRow, AssetStateRow, EventSource, QueuedRow};
pub use backfills::{BackfillDate, BackfillRow, NewBackfill, OpenBackfill, Progress};
pub use callbacks::DagCallbackRow;
pub use dags::{DagHead, DagRow, FileState, ImportErrorRow, ParsedFile};
pub use hitl::{HitlRequest, HitlRow, Swept};
pub use jobs::Lease;
pub use q_dags::{LatestRun, LogCol, LogFilter, LogRow};
pub use q_exec::{StateEntry, StateScope};
pub use q_objects::{JobRecord, Pool, PoolRow};
pub use q_versions::VersionRow;
pub use runs::{Event, NewRun, PassLook, RunRow, TiRow, Tx};
pub use shared::{Held, Shared};
pub use vars::{Connection, Variable};

use crate::error::{DbKind, Error, Result};

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a long-running process moves the write-ahead log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL pages after which a commit checkpoints in place, SQLite's own way (its default is
/// 1,000): only a backstop where no background checkpoint runs or it fell behind.
const AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// Where SQLite's memory in this process (every connection's pages, schema and prepared
/// statements) stops growing: past it, a page cache reuses its oldest pages instead of
/// taking more. Each connection may otherwise cache SQLite's default 2 MB, and a server
/// has one per API worker (up to 64) plus the scheduler's (which its in-process
/// Execution API calls share: `store::shared`) and the checkpoint's, so what they could
/// hold together grew with `[api] workers`. The 30-minute soak in `make bench`
/// stays well under it (SQLite held 2.2-2.9 MB there); pages it lets go are read again
/// from the operating system's file cache.
pub const SQLITE_SOFT_HEAP_LIMIT: i64 = 8 << 20;

/// An open database connection.
pub struct Store {
    conn: rusqlite::Connection,
    path: PathBuf,
}

/// What `db check` reports.
#[derive(Debug)]
pub struct Status {
    pub path: PathBuf,
    pub version: usize,
    pub latest: usize,
    pub journal_mode: String,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let mut store = Store::connect(path, true)?;
        store.migrate()?;
        Ok(store)
    }

    /// Checkpoints the write-ahead log on a thread of its own, every [`CHECKPOINT_EVERY`],
    /// for as long as the process runs. Otherwise the commit that takes the log past
    /// SQLite's threshold does it, fsyncs included, while a task waits on that commit:
    /// those were the slowest steps between two dependent tasks (the scheduling gap's
    /// p99 was 4.9-6.1 ms with them and 1.7-1.8 ms without). A passive checkpoint takes
    /// no lock that writers or readers wait for, nor any page of this connection's cache:
    /// what is cached now (all of a new database's pages, when this connection migrated
    /// it: ~400 kB for the life of the process) is let go first.
    pub fn checkpoint_in_background(self) -> Result<()> {
        settings(&self.conn, "PRAGMA shrink_memory").map_err(|e| self.err(e))?;
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    let done =
                        self.conn
                            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        log::debug!("background checkpoint: {e}");
                    }
                }
            })
            .map(drop)
            .map_err(|e| Error::Failed(format!("cannot start the checkpoint thread: {e}")))
    }

    /// Opens an existing database without changing it; an error if it is missing.
    pub fn open_existing(path: &Path) -> Result<Store> {
        Store::connect(path, false)
    }

    fn connect(path: &Path, create: bool) -> Result<Store> {
        if create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
        } else if !path.exists() {
            return Err(Error::NotFound(format!(
                "no database at {}; run 'updraft db migrate' to create it",
                path.display()
            )));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn =
            rusqlite::Connection::open_with_flags(path, flags).map_err(|e| db_err(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_err(path, e))?;
        // WAL: readers beside one writer. NORMAL sync is durable across process crashes
        // (only an OS crash can lose the last commits), which is what a laptop needs.
        settings(
            &conn,
            &format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
                 PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};
                 PRAGMA soft_heap_limit = {SQLITE_SOFT_HEAP_LIMIT};"
            ),
        )
        .map_err(|e| db_err(path, e))?;
        // Plans that do not depend on the values bound: SQLite (built with STAT4) otherwise
        // marks a statement whose plan looked at a bound value (an ORDER BY ... LIMIT, a
        // LIKE) to be parsed and planned again on every new binding, which undoes the
        // statement cache. Partial indexes still apply: queries write their conditions
        // out (see `runs::ACTIVE_TI`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(|e| db_err(path, e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Applies every pending migration; returns the versions before and after.
    pub fn migrate(&mut self) -> Result<(usize, usize)> {
        let from = self.version()?;
        let latest = migrations::MIGRATIONS.len();
        if from > latest {
            return Err(Error::db(format!(
                "{} is at schema version {from}, newer than this updraft knows ({latest}); upgrade updraft",
                self.path.display()
            )));
        }
        for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(from) {
            let tx = self.begin()?;
            tx.batch(sql)
                .and_then(|()| tx.batch(&format!("PRAGMA user_version = {}", i + 1)))
                .and_then(|()| tx.commit())
                .map_err(|e| Error::Db {
                    kind: kind_of(&e),
                    msg: format!("migration {} failed: {e}", i + 1),
                })?;
            log::info!("database migrated to version {}", i + 1);
        }
        Ok((from, latest))
    }

    /// Connectivity and schema version, for `db check` and health.
    pub fn status(&self) -> Result<Status> {
        let journal_mode: String = self
            .conn
            .row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(Status {
            path: self.path.clone(),
            version: self.version()?,
            latest: migrations::MIGRATIONS.len(),
            journal_mode,
        })
    }

    /// SQLite's own checks, for `db check`: `PRAGMA integrity_check` (b-trees, indexes,
    /// constraints; at most its first 100 findings) and `PRAGMA foreign_key_check`.
    /// Returns what they found, one line each; empty when the file is sound.
    pub fn problems(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .query("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?
            .into_iter()
            .filter(|line| line != "ok")
            .map(|line| format!("integrity_check: {line}"))
            .collect();
        out.extend(self.query("PRAGMA foreign_key_check", [], |r| {
            let table: String = r.get(0)?;
            let rowid: Option<i64> = r.get(1)?;
            let parent: String = r.get(2)?;
            let row = rowid.map_or_else(|| "a row".to_string(), |id| format!("row {id}"));
            Ok(format!(
                "foreign_key_check: {row} of {table} refers to a missing row of {parent}"
            ))
        })?);
        Ok(out)
    }

    /// Drops every table and migrates from empty.
    pub fn reset(&mut self) -> Result<()> {
        let tables: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .map_err(|e| self.err(e))?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        // SQLite ignores `foreign_keys` inside a transaction, so it is switched around one.
        settings(&self.conn, "PRAGMA foreign_keys = OFF").map_err(|e| self.err(e))?;
        let tx = self.begin()?;
        for t in &tables {
            tx.batch(&format!("DROP TABLE IF EXISTS \"{t}\""))
                .map_err(db)?;
        }
        tx.batch("PRAGMA user_version = 0")
            .and_then(|()| tx.commit())
            .map_err(db)?;
        settings(&self.conn, "PRAGMA foreign_keys = ON").map_err(|e| self.err(e))?;
        self.migrate().map(|_| ())
    }

    /// Changes whenever another connection commits (SQLite's `data_version`): a cheap
    /// way to notice outside writes without reading any table.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn version(&self) -> Result<usize> {
        self.conn
            .row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map(|v| v as usize)
            .map_err(|e| self.err(e))
    }

    /// Starts a write transaction that holds the write lock from its first statement.
    fn begin(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&path, e))
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_err(&self.path, e)
    }
}

fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Db {
        kind: kind_of(&e),
        msg: format!("{}: {e}", path.display()),
    }
}

/// A rusqlite error as the crate's, its kind kept.
pub(super) fn db(e: rusqlite::Error) -> Error {
    Error::from(e)
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Db {
            kind: kind_of(&e),
            msg: e.to_string(),
        }
    }
}

/// SQLite's result code as a [`DbKind`]: the one place the store reads it.
fn kind_of(e: &rusqlite::Error) -> DbKind {
    use rusqlite::ErrorCode;
    let Some(err) = e.sqlite_error() else {
        return DbKind::Other;
    };
    match err.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DbKind::Busy,
        ErrorCode::ConstraintViolation => match err.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => DbKind::Unique,
            _ => DbKind::Constraint,
        },
        _ => DbKind::Other,
    }
}

/// Connection settings (`PRAGMA`s) that SQLite ignores or refuses inside a
/// transaction: the only statements the store runs outside one.
fn settings(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    conn.execute_batch(sql)
}

/// The one text form of a time in the database: RFC 3339, UTC, microseconds
/// (`2024-01-31T12:00:00.000000+00:00`). Written digit by digit for years 0 to 9999 (every
/// read and write of a row formats or parses several: chrono's general formatter and
/// parser were ~2 % of a task's instructions), by chrono otherwise; the same text.
pub fn ts(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.to_rfc3339_opts(SecondsFormat::Micros, false);
    }
    let mut b = *b"0000-00-00T00:00:00.000000+00:00";
    let mut put = |mut n: u32, end: usize, width: usize| {
        for c in b[end - width..end].iter_mut().rev() {
            *c = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(year as u32, 4, 4);
    put(t.month(), 7, 2);
    put(t.day(), 10, 2);
    put(t.hour(), 13, 2);
    put(t.minute(), 16, 2);
    put(t.second(), 19, 2);
    put(nanos / 1000, 26, 6);
    String::from_utf8(b.to_vec())
        .unwrap_or_else(|_| t.to_rfc3339_opts(SecondsFormat::Micros, false))
}

/// Reads back a time written by [`ts`]: its exact form digit by digit, any other RFC 3339
/// text (older rows, other offsets, a leap second) by chrono.
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() == 32
        && &b[26..] == b"+00:00"
        && (b[4], b[7], b[10], b[13], b[16], b[19]) == (b'-', b'-', b'T', b':', b':', b'.')
        && let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec), Some(us)) = (
            num(0, 4),
            num(5, 7),
            num(8, 10),
            num(11, 13),
            num(14, 16),
            num(17, 19),
            num(20, 26),
        )
        && let Some(t) = chrono::NaiveDate::from_ymd_opt(y as i32, mo, d)
            .and_then(|d| d.and_hms_micro_opt(h, mi, sec, us))
        && sec < 60
    {
        return Some(t.and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How many prepared statements each connection keeps: every query the scheduler and
/// the API run, so none is parsed twice (parsing showed as ~20 % of a busy server).
const STATEMENT_CACHE: usize = 256;

/// A connection inside a write transaction (`BEGIN IMMEDIATE`, from [`Store::begin`]).
/// Only these may write: [`Cached::exec`] and [`Cached::batch`] require it, so a write
/// on the bare connection (autocommit) does not compile.
pub(super) trait InTransaction {}

impl InTransaction for rusqlite::Transaction<'_> {}

/// `execute` and `query_row` through the connection's statement cache; the store uses
/// only these, so no statement is prepared on every call. Writes only in a transaction.
pub(super) trait Cached {
    /// The connection underneath.
    fn connection(&self) -> &rusqlite::Connection;

    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>
    where
        Self: InTransaction,
    {
        self.connection().prepare_cached(sql)?.execute(params)
    }

    /// Statements without parameters (migrations, `PRAGMA user_version`), uncached.
    fn batch(&self, sql: &str) -> rusqlite::Result<()>
    where
        Self: InTransaction,
    {
        self.connection().execute_batch(sql)
    }

    fn row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.connection().prepare_cached(sql)?.query_row(params, f)
    }
}

impl Cached for rusqlite::Connection {
    fn connection(&self) -> &rusqlite::Connection {
        self
    }
}

impl Cached for rusqlite::Transaction<'_> {
    fn connection(&self) -> &rusqlite::Connection {
        self
    }
}

#[cfg(test)]
impl Store {
    /// How many times this connection has run its cached statement of `sql` (SQLite's
    /// run counter): what tests of "this is not read again" count.
    fn statement_runs(&self, sql: &str) -> i32 {
        self.conn
            .prepare_cached(sql)
            .map(|s| s.get_status(rusqlite::StatementStatus::Run))
            .unwrap_or(0)
    }

    /// Reads of every active run ([`Store::active_runs`]) on this connection.
    pub(crate) fn active_runs_reads(&self) -> i32 {
        self.statement_runs(&runs::active_runs_sql())
    }

    /// Reads of every DAG's state ([`Store::dag_states`]) on this connection.
    pub(crate) fn dag_states_reads(&self) -> i32 {
        self.statement_runs(dags::DAG_STATES)
    }
}

#[cfg(test)]
pub(crate) use tests::temp_store;

#[cfg(test)]
mod tests {
    use super::*;

    /// A new store in a folder of its own under the temp dir, for tests; the caller removes
    /// the folder.
    pub(crate) fn temp_store(name: &str) -> (PathBuf, Store) {
        use std::hash::{BuildHasher, RandomState};
        let dir = std::env::temp_dir().join(format!(
            "updraft-{name}-{}-{}",
            std::process::id(),
            RandomState::new().hash_one(0u8)
        ));
        let store = Store::open(&dir.join("t.db")).unwrap();
        (dir, store)
    }

    /// `ts` and `parse_ts` write and read exactly what chrono's RFC 3339 formatter and
    /// parser do, over years 0 to 9999 and every sub-second precision, and leave what is
    /// not `ts`'s form (other offsets, `Z`, a leap second, nonsense) to chrono.
    #[test]
    fn times_are_chronos_text() {
        let chrono_ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, false);
        let chrono_parse = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let lo = "0000-01-01T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp();
        let hi = "9999-12-31T23:59:59Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp();
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = lo + (x % (hi - lo + 1) as u64) as i64;
            let nanos = match i % 4 {
                0 => 0,
                1 => (x >> 20) as u32 % 1_000 * 1_000,
                2 => (x >> 20) as u32 % 1_000_000_000,
                _ => 999_999_999,
            };
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let text = ts(t);
            assert_eq!(text, chrono_ts(t), "{t:?}");
            assert_eq!(parse_ts(&text), chrono_parse(&text), "{text}");
        }
        for text in [
            "2024-02-29T23:59:59.999999+00:00",
            "2023-02-29T00:00:00.000000+00:00",
            "2024-01-01T24:00:00.000000+00:00",
            "2016-12-31T23:59:60.000000+00:00",
            "2024-01-01T00:00:00.000000+02:00",
            "2024-01-01T00:00:00.000000Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01t00:00:00.000000+00:00",
            "2024-01-01T00:00:00.00000x+00:00",
            "+2024-01-01T00:00:00.00000+00:00",
            "2024-1-01T00:00:00.0000000+00:00",
            "",
        ] {
            assert_eq!(parse_ts(text), chrono_parse(text), "{text}");
        }
        for year in [-1, 10_000] {
            let t = chrono::NaiveDate::from_ymd_opt(year, 6, 1)
                .unwrap()
                .and_hms_micro_opt(1, 2, 3, 4)
                .unwrap()
                .and_utc();
            assert_eq!(ts(t), chrono_ts(t));
        }
    }

    /// Issue 12, item 12: what all connections together cache has one bound, however
    /// many API workers there are.
    #[test]
    fn sqlite_memory_has_one_process_wide_bound() {
        let (dir, store) = temp_store("store");
        let limit = store
            .conn
            .row("PRAGMA soft_heap_limit", [], |r| r.get::<_, i64>(0));
        assert_eq!(limit.unwrap(), SQLITE_SOFT_HEAP_LIMIT);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The bundled SQLite is built with `.cargo/config.toml`'s options: no extension
    /// loading, and no bulk page-cache block per connection (idle memory).
    #[test]
    fn sqlite_is_built_with_the_configured_options() {
        let (dir, store) = temp_store("store");
        let options = store
            .query("PRAGMA compile_options", [], |r| r.get::<_, String>(0))
            .unwrap();
        for want in ["OMIT_LOAD_EXTENSION", "DEFAULT_PCACHE_INITSZ=0"] {
            assert!(
                options.iter().any(|o| o == want),
                "{want} not in {options:?}"
            );
        }
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cached_statements_are_not_planned_again_for_new_values() {
        let (dir, store) = temp_store("store");
        // An ORDER BY ... LIMIT over an index is planned with the bound value in view.
        let sql = "SELECT latest_heartbeat FROM job WHERE job_type = ?1 AND state = 'running'
                   ORDER BY latest_heartbeat DESC LIMIT 1";
        for kind in ["SchedulerJob", "TriggererJob", "SchedulerJob"] {
            let got = store.conn.row(sql, [kind], |r| r.get::<_, String>(0));
            assert!(matches!(got, Err(rusqlite::Error::QueryReturnedNoRows)));
        }
        let stmt = store.conn.prepare_cached(sql).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
        drop(stmt);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn migrates_from_empty_and_again() {
        let (dir, mut store) = temp_store("store");
        let st = store.status().unwrap();
        assert_eq!(st.version, st.latest);
        assert_eq!(st.journal_mode, "wal");
        assert_eq!(store.migrate().unwrap(), (st.latest, st.latest));
        let slots: i64 = store
            .conn
            .row(
                "SELECT slots FROM slot_pool WHERE pool = 'default_pool'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(slots, 128);
        store.reset().unwrap();
        assert_eq!(store.status().unwrap().version, st.latest);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_write_to_a_dag_row_is_counted_and_heads_read_without_the_dag() {
        let (dir, mut store) = temp_store("store");
        let n0 = store.dag_changes().unwrap();
        store
            .conn
            .execute(
                "INSERT INTO dag (dag_id, bundle_name, relative_fileloc, fileloc, is_paused, last_parsed_time, serialized)
                 VALUES ('d', 'b', 'f.yml', '/f.yml', 0, '2026-01-01T00:00:00.000000+00:00', 'not read')",
                [],
            )
            .unwrap();
        assert_eq!(store.dag_changes().unwrap(), n0 + 1);
        let mut heads = Vec::new();
        store
            .dag_heads(|h| heads.push((h.dag_id.to_string(), h.parsed.to_string(), h.is_paused)))
            .unwrap();
        assert_eq!(
            heads,
            [("d".into(), "2026-01-01T00:00:00.000000+00:00".into(), false)]
        );
        assert!(store.set_paused("d", true).unwrap());
        assert_eq!(store.dag_changes().unwrap(), n0 + 2);
        assert!(!store.set_paused("nope", true).unwrap());
        assert_eq!(store.dag_changes().unwrap(), n0 + 2);
        store.delete_dag("d").unwrap();
        assert_eq!(store.dag_changes().unwrap(), n0 + 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn kind(e: &Error) -> Option<DbKind> {
        match e {
            Error::Db { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Issue 13: a write refused because another process holds the write lock is
    /// `Busy` (the API answers 503 and the caller may retry); a duplicate key is
    /// `Unique`, another refused constraint `Constraint` (409); both were one string.
    #[test]
    fn database_failures_keep_their_kind() {
        let (dir, mut store) = temp_store("store");
        let holder = rusqlite::Connection::open(dir.join("t.db")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        store.conn.busy_timeout(Duration::from_millis(20)).unwrap();
        let busy = store.set_variable("k", "v", None).unwrap_err();
        assert_eq!(kind(&busy), Some(DbKind::Busy), "{busy}");
        assert!(busy.to_string().contains("try again"), "{busy}");
        holder.execute_batch("ROLLBACK").unwrap();
        store.set_variable("k", "v", None).unwrap();

        let insert = |store: &mut Store, sql: &str| {
            store
                .write(|tx| tx.0.exec(sql, []).map_err(db))
                .unwrap_err()
        };
        let dup = insert(
            &mut store,
            "INSERT INTO slot_pool (pool, slots) VALUES ('default_pool', 1)",
        );
        assert_eq!(kind(&dup), Some(DbKind::Unique), "{dup}");
        let null = insert(
            &mut store,
            "INSERT INTO slot_pool (pool, slots) VALUES ('p', NULL)",
        );
        assert_eq!(kind(&null), Some(DbKind::Constraint), "{null}");
        let bad = insert(&mut store, "INSERT INTO no_such_table VALUES (1)");
        assert_eq!(kind(&bad), Some(DbKind::Other), "{bad}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Every write is one `BEGIN IMMEDIATE` transaction: `Cached::exec` and `batch`
    /// demand one by type, and this checks that nothing in the store goes around them
    /// with rusqlite's own write methods. The kit in this file is the only caller.
    #[test]
    fn every_write_goes_through_a_transaction() {
        let files = [
            ("backfills.rs", include_str!("backfills.rs")),
            ("callbacks.rs", include_str!("callbacks.rs")),
            ("dags.rs", include_str!("dags.rs")),
            ("hitl.rs", include_str!("hitl.rs")),
            ("jobs.rs", include_str!("jobs.rs")),
            ("migrations.rs", include_str!("migrations.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("q_dags.rs", include_str!("q_dags.rs")),
            ("q_exec.rs", include_str!("q_exec.rs")),
            ("q_versions.rs", include_str!("q_versions.rs")),
            ("q_objects.rs", include_str!("q_objects.rs")),
            ("assets.rs", include_str!("assets.rs")),
            ("q_runs.rs", include_str!("q_runs.rs")),
            ("runs.rs", include_str!("runs.rs")),
            ("shared.rs", include_str!("shared.rs")),
            ("vars.rs", include_str!("vars.rs")),
            ("user_sql.rs", include_str!("user_sql.rs")),
        ];
        let raw = regex_lite::Regex::new(
            r"\.(execute|execute_batch|insert|pragma_update|pragma_update_and_check)\s*\(",
        )
        .unwrap();
        let mut found = Vec::new();
        for (name, text) in files {
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().filter(|l| raw.is_match(l)) {
                found.push(format!("{name}: {}", line.trim()));
            }
        }
        assert_eq!(
            found,
            [
                "mod.rs: conn.execute_batch(sql)",
                "mod.rs: self.connection().prepare_cached(sql)?.execute(params)",
                "mod.rs: self.connection().execute_batch(sql)",
            ],
            "write through `Cached::exec` in `Store::write` (or `settings` for a PRAGMA \
             SQLite refuses inside a transaction)"
        );
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store"))
            .unwrap()
            .count();
        assert_eq!(
            on_disk,
            files.len(),
            "a new file in src/store: list it here"
        );
    }

    #[test]
    fn open_existing_refuses_a_missing_file() {
        let err = Store::open_existing(Path::new("/nonexistent/updraft.db"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("db migrate"), "{err}");
    }

    fn save_dag(store: &mut Store, yaml: &str, now: chrono::DateTime<chrono::Utc>) {
        let parsed = crate::dagfile::parse("d.yml", yaml, now);
        assert_eq!(parsed.errors, []);
        let f = ParsedFile {
            bundle_name: "dags-folder",
            relative_path: "d.yml",
            fileloc: "/dags/d.yml",
            state: FileState {
                mtime_ns: 1,
                size: yaml.len() as i64,
            },
            source: yaml,
            dags: &parsed.dags,
            error: None,
        };
        store.save_parsed_file(&f, false, now).unwrap();
    }

    /// Issue 22: the scheduler, the API's cache and each API worker that missed it at
    /// once read a DAG each into their own parsed copy (~10 MB at 10,000 tasks). Every
    /// reader of one database in a process now gets the one copy, parsed once, until a
    /// new parse is written.
    #[test]
    fn a_dag_is_parsed_once_per_process_while_held() {
        let (dir, mut store) = temp_store("store");
        let now = chrono::Utc::now();
        save_dag(
            &mut store,
            "d:\n  tasks:\n    - task_id: a\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: 'true'\n",
            now,
        );
        let path = dir.join("t.db");
        let barrier = std::sync::Barrier::new(8);
        let dags: Vec<std::sync::Arc<crate::model::Dag>> = std::thread::scope(|s| {
            let readers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let store = Store::open_existing(&path).unwrap();
                        barrier.wait();
                        store.dag("d").unwrap().unwrap().dag
                    })
                })
                .collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(dags.iter().all(|d| std::sync::Arc::ptr_eq(d, &dags[0])));
        let again = store.dag("d").unwrap().unwrap().dag;
        assert!(std::sync::Arc::ptr_eq(&again, &dags[0]));
        // A new parse, even one stamped with the same time, is read anew.
        save_dag(
            &mut store,
            "d:\n  tasks:\n    - task_id: b\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: 'true'\n",
            now,
        );
        let new = store.dag("d").unwrap().unwrap().dag;
        assert_eq!(new.tasks[0].task_id, "b");
        assert_eq!(dags[0].tasks[0].task_id, "a");
        // Once nobody holds a DAG, the next read parses it again.
        drop((dags, again, new));
        assert!(store.dag("d").unwrap().is_some());
        assert_eq!(
            store.dag("nope").unwrap().map(|r| r.dag.dag_id.clone()),
            None
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 22 changed how a DAG is stored (usual task values left out). A DAG whose
    /// newest version was written the old way gets no new version when it is parsed
    /// again unchanged; a change still makes one.
    #[test]
    fn a_new_way_of_writing_a_dag_is_not_a_new_version() {
        let (dir, mut store) = temp_store("store");
        let now = chrono::Utc::now();
        let yaml = "d:\n  tasks:\n    - task_id: a\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: 'true'\n";
        save_dag(&mut store, yaml, now);
        // Rewrite the version as it was stored before: every task field written out.
        let json: String = store
            .conn
            .query_row(
                "SELECT serialized FROM dag_version WHERE dag_id = 'd'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut full: serde_json::Value = serde_json::from_str(&json).unwrap();
        let t = full["tasks"][0].as_object_mut().unwrap();
        for (k, v) in [
            ("upstream", serde_json::json!([])),
            ("pool", serde_json::json!("default_pool")),
            ("retries", serde_json::json!(0)),
        ] {
            t.insert(k.into(), v);
        }
        let full = full.to_string();
        assert_ne!(full, json);
        store
            .conn
            .execute(
                "UPDATE dag_version SET serialized = ?1 WHERE dag_id = 'd'",
                [&full],
            )
            .unwrap();
        let versions = |store: &Store| -> i64 {
            store
                .conn
                .query_row(
                    "SELECT count(*) FROM dag_version WHERE dag_id = 'd'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        save_dag(&mut store, yaml, now + chrono::Duration::seconds(1));
        assert_eq!(versions(&store), 1);
        save_dag(
            &mut store,
            &yaml.replace("'true'", "'false'"),
            now + chrono::Duration::seconds(2),
        );
        assert_eq!(versions(&store), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
