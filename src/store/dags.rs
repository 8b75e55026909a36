//! DAG files, DAGs, tags and import errors: what the DAG processor writes and the API reads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::Cached;
use super::{Store, Tx, parse_ts, ts};
use crate::error::{Error, Result};
use crate::model::Dag;

/// What the processor remembers of a file to decide whether to re-parse it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileState {
    pub mtime_ns: i64,
    pub size: i64,
}

/// A DAG as stored: its parsed structure plus the state around it. The structure is
/// shared, so a parsed DAG can be kept and handed out without copying it.
#[derive(Debug, Clone)]
pub struct DagRow {
    pub dag: Arc<Dag>,
    pub bundle_name: String,
    pub relative_fileloc: String,
    pub fileloc: String,
    pub is_paused: bool,
    pub is_stale: bool,
    pub last_parsed_time: DateTime<Utc>,
}

/// The part of a DAG's row that changes without a new parse, and which parse it holds:
/// borrowed from the row being read, so scanning every DAG allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct DagHead<'a> {
    pub dag_id: &'a str,
    /// `last_parsed_time` as stored (see [`DagRow::parse_stamp`]). Equal
    /// stamps mean the same parse, so a kept parsed DAG is still current.
    pub parsed: &'a str,
    pub is_paused: bool,
    pub is_stale: bool,
}

impl DagRow {
    /// Its parse time as stored, to compare with [`DagHead::parsed`]: stored times are
    /// `ts` text, which reads back to the same text.
    pub fn parse_stamp(&self) -> String {
        ts(self.last_parsed_time)
    }
}

/// (dag_id, is_paused, is_stale, last_parsed_time).
pub type DagState = (String, bool, bool, DateTime<Utc>);

/// An import error as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportErrorRow {
    pub id: i64,
    pub bundle_name: String,
    pub filename: String,
    pub line: u32,
    pub column: u32,
    pub stack_trace: String,
    pub timestamp: DateTime<Utc>,
}

/// One parsed file, ready to be written.
pub struct ParsedFile<'a> {
    pub bundle_name: &'a str,
    pub relative_path: &'a str,
    /// The path shown to users as `fileloc` (absolute for files on disk).
    pub fileloc: &'a str,
    pub state: FileState,
    pub source: &'a str,
    pub dags: &'a [Dag],
    /// `(line, column, text)`: the file's import error, if any. Then `dags` is empty
    /// and the DAGs already stored from this file keep their last good version.
    pub error: Option<(u32, u32, String)>,
}

/// The query of [`Store::dag_states`].
pub(super) const DAG_STATES: &str = "SELECT dag_id, is_paused, is_stale, last_parsed_time FROM dag";

impl Store {
    /// The remembered state of every file of a bundle.
    pub fn file_states(&self, bundle: &str) -> Result<HashMap<String, FileState>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT relative_path, mtime_ns, size FROM dag_file WHERE bundle_name = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([bundle], |r| {
                Ok((
                    r.get(0)?,
                    FileState {
                        mtime_ns: r.get(1)?,
                        size: r.get(2)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// The stored source of one file, if it was seen before.
    pub fn file_source(&self, bundle: &str, relative_path: &str) -> Result<Option<String>> {
        self.conn
            .row(
                "SELECT source FROM dag_file WHERE bundle_name = ?1 AND relative_path = ?2",
                [bundle, relative_path],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Writes one parsed file in one transaction: its state, its DAGs (new ones paused
    /// per `paused_at_creation`), or its import error. A DAG id already defined by
    /// another live file becomes an import error of this file, as in Airflow.
    pub fn save_parsed_file(
        &mut self,
        f: &ParsedFile,
        paused_at_creation: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now_s = ts(now);
        let tx = self.begin()?;
        let res = (|| -> rusqlite::Result<()> {
            tx.exec(
                "INSERT INTO dag_file (bundle_name, relative_path, mtime_ns, size, source, last_parsed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (bundle_name, relative_path) DO UPDATE SET
                   mtime_ns = excluded.mtime_ns, size = excluded.size,
                   source = excluded.source, last_parsed = excluded.last_parsed",
                params![f.bundle_name, f.relative_path, f.state.mtime_ns, f.state.size, f.source, now_s],
            )?;
            let mut error = f.error.clone();
            if error.is_none() {
                for dag in f.dags {
                    let owner: Option<(String, String)> = tx
                        .row(
                            "SELECT bundle_name, relative_fileloc FROM dag WHERE dag_id = ?1 AND is_stale = 0",
                            [&dag.dag_id],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    if let Some((b, file)) = owner.filter(|(b, file)| {
                        (b.as_str(), file.as_str()) != (f.bundle_name, f.relative_path)
                    }) {
                        error = Some((
                            dag.line,
                            1,
                            format!(
                                "DAG id {:?} is already defined in {file} ({b}); DAG ids must be unique",
                                dag.dag_id
                            ),
                        ));
                        break;
                    }
                }
            }
            if let Some((line, col, text)) = &error {
                tx.exec(
                    "INSERT INTO import_error (bundle_name, filename, line, col, stack_trace, timestamp)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (bundle_name, filename) DO UPDATE SET
                       line = excluded.line, col = excluded.col,
                       stack_trace = excluded.stack_trace, timestamp = excluded.timestamp",
                    params![f.bundle_name, f.relative_path, line, col, text, now_s],
                )?;
                return Ok(());
            }
            tx.exec(
                "DELETE FROM import_error WHERE bundle_name = ?1 AND filename = ?2",
                [f.bundle_name, f.relative_path],
            )?;
            let ids: Vec<&str> = f.dags.iter().map(|d| d.dag_id.as_str()).collect();
            mark_stale_except(&tx, f.bundle_name, f.relative_path, &ids)?;
            for dag in f.dags {
                let json = serde_json::to_string(dag).expect("a Dag always serializes");
                tx.exec(
                    "INSERT INTO dag (dag_id, bundle_name, relative_fileloc, fileloc, is_paused, is_stale, last_parsed_time, serialized)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)
                     ON CONFLICT (dag_id) DO UPDATE SET
                       bundle_name = excluded.bundle_name, relative_fileloc = excluded.relative_fileloc,
                       fileloc = excluded.fileloc, is_stale = 0,
                       last_parsed_time = excluded.last_parsed_time, serialized = excluded.serialized",
                    params![dag.dag_id, f.bundle_name, f.relative_path, f.fileloc, paused_at_creation, now_s, json],
                )?;
                super::assets::sync_refs(&tx, dag, &now_s)?;
                super::q_versions::record_version(&tx, dag, f.bundle_name, &json, f.source, now)?;
                tx.exec("DELETE FROM dag_tag WHERE dag_id = ?1", [&dag.dag_id])?;
                for tag in &dag.tags {
                    tx.exec(
                        "INSERT OR IGNORE INTO dag_tag (dag_id, name) VALUES (?1, ?2)",
                        [&dag.dag_id, tag],
                    )?;
                }
            }
            Ok(())
        })();
        let res = res.and_then(|()| tx.commit()).map_err(Error::from);
        let ids: Vec<&str> = f.dags.iter().map(|d| d.dag_id.as_str()).collect();
        PARSED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(&self.path, &ids);
        res
    }

    /// Forgets a file that is gone: its DAGs become stale (history kept), its error goes.
    pub fn remove_file(&mut self, bundle: &str, relative_path: &str) -> Result<()> {
        let tx = self.begin()?;
        let res = (|| -> rusqlite::Result<()> {
            tx.exec(
                "DELETE FROM dag_file WHERE bundle_name = ?1 AND relative_path = ?2",
                [bundle, relative_path],
            )?;
            tx.exec(
                "DELETE FROM import_error WHERE bundle_name = ?1 AND filename = ?2",
                [bundle, relative_path],
            )?;
            mark_stale_except(&tx, bundle, relative_path, &[])
        })();
        res.and_then(|()| tx.commit()).map_err(Error::from)
    }

    /// Every DAG, stale ones included, ordered by id.
    pub fn dags(&self) -> Result<Vec<DagRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT serialized, bundle_name, relative_fileloc, fileloc, is_paused, is_stale, last_parsed_time
                 FROM dag ORDER BY dag_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], dag_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Calls `f` with the head of every DAG, stale ones included, ordered by id: one
    /// scan of the `dag_head` index, which covers the query, so the serialized DAGs are
    /// not read. For callers that keep parsed DAGs by parse stamp (the API's cache).
    pub fn dag_heads(&self, mut f: impl FnMut(DagHead<'_>)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT dag_id, last_parsed_time, is_paused, is_stale FROM dag ORDER BY dag_id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let text = |i: usize| -> rusqlite::Result<&str> {
                r.get_ref(i)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })
            };
            f(DagHead {
                dag_id: text(0).map_err(|e| self.err(e))?,
                parsed: text(1).map_err(|e| self.err(e))?,
                is_paused: r.get(2).map_err(|e| self.err(e))?,
                is_stale: r.get(3).map_err(|e| self.err(e))?,
            });
        }
        Ok(())
    }

    /// How many times any DAG's row was written, deleted or added (triggers count it in
    /// the writing transaction): while it stays the same, so do the rows.
    pub fn dag_changes(&self) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT n FROM dag_changes WHERE id = 1")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    /// One DAG by id. Its parsed structure is shared with every other reader of the same
    /// database in this process that holds the same parse (see [`Parsed`]): the scheduler,
    /// the API's cache and its request handlers get one copy, and concurrent readers of a
    /// DAG nobody holds wait for one parse instead of each making their own.
    pub fn dag(&self, dag_id: &str) -> Result<Option<DagRow>> {
        match self.dag_read(dag_id, false)? {
            Read::Row(row) => return Ok(Some(row)),
            Read::Gone => return Ok(None),
            Read::Parse => {}
        }
        let _one = PARSING.lock().unwrap_or_else(|p| p.into_inner());
        match self.dag_read(dag_id, true)? {
            Read::Row(row) => Ok(Some(row)),
            Read::Gone | Read::Parse => Ok(None),
        }
    }

    /// One DAG's row with the parsed DAG shared when [`PARSED`] holds its parse; the
    /// stored JSON is read only when it does not, and parsed only with `parse`.
    fn dag_read(&self, dag_id: &str, parse: bool) -> Result<Read> {
        let key = (self.path.clone(), dag_id.to_string());
        let held = PARSED.lock().unwrap_or_else(|p| p.into_inner()).get(&key);
        let stamp = held.as_ref().map(|(stamp, _)| stamp.as_str());
        let read = self
            .conn
            .row(
                "SELECT CASE WHEN last_parsed_time IS ?2 OR NOT ?3 THEN NULL ELSE serialized END,
                        bundle_name, relative_fileloc, fileloc, is_paused, is_stale, last_parsed_time
                 FROM dag WHERE dag_id = ?1",
                params![dag_id, stamp, parse],
                |r| {
                    let parsed: String = r.get(6)?;
                    let dag = match &held {
                        Some((s, dag)) if *s == parsed => Arc::clone(dag),
                        _ if !parse => return Ok(None),
                        _ => {
                            let json: String = r.get(0)?;
                            Arc::new(serde_json::from_str::<Dag>(&json).map_err(|e| {
                                rusqlite::Error::FromSqlConversionFailure(
                                    0,
                                    rusqlite::types::Type::Text,
                                    Box::new(e),
                                )
                            })?)
                        }
                    };
                    Ok(Some((parsed, row_with(dag, r)?)))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(match read {
            None => Read::Gone,
            Some(None) => Read::Parse,
            Some(Some((parsed, row))) => {
                let fresh = !matches!(&held, Some((s, _)) if *s == parsed);
                if fresh {
                    PARSED
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .keep(key, parsed, &row.dag);
                }
                Read::Row(row)
            }
        })
    }

    /// (dag_id, is_paused, is_stale, last_parsed_time) of every DAG: what the scheduler
    /// rereads when the store changed.
    pub fn dag_states(&self) -> Result<Vec<DagState>> {
        self.query(DAG_STATES, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, time_col(r, 3)?))
        })
    }

    /// Sets a DAG's paused flag; false if there is no such DAG.
    pub fn set_paused(&mut self, dag_id: &str, paused: bool) -> Result<bool> {
        self.write(|tx| tx.set_paused(dag_id, paused))
    }

    /// A DAG's parse stamp (see [`DagHead::parsed`]), to check a kept parsed copy
    /// without reading the serialized DAG.
    pub fn dag_parse_stamp(&self, dag_id: &str) -> Result<Option<String>> {
        self.conn
            .row(
                "SELECT last_parsed_time FROM dag WHERE dag_id = ?1",
                [dag_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// (bundle_name, filename) of every file with an import error, without the errors'
    /// texts: what a DAG's `has_import_errors` needs.
    pub fn import_error_files(&self) -> Result<Vec<(String, String)>> {
        self.query("SELECT bundle_name, filename FROM import_error", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    /// Every import error, ordered by file.
    pub fn import_errors(&self) -> Result<Vec<ImportErrorRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, bundle_name, filename, line, col, stack_trace, timestamp
                 FROM import_error ORDER BY bundle_name, filename",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ImportErrorRow {
                    id: r.get(0)?,
                    bundle_name: r.get(1)?,
                    filename: r.get(2)?,
                    line: r.get(3)?,
                    column: r.get(4)?,
                    stack_trace: r.get(5)?,
                    timestamp: time_col(r, 6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }
}

impl Tx<'_> {
    /// Sets a DAG's paused flag; false if there is no such DAG.
    pub fn set_paused(&self, dag_id: &str, paused: bool) -> Result<bool> {
        let n = self
            .0
            .exec(
                "UPDATE dag SET is_paused = ?2 WHERE dag_id = ?1",
                params![dag_id, paused],
            )
            .map_err(Error::from)?;
        Ok(n == 1)
    }
}

fn mark_stale_except(
    tx: &rusqlite::Transaction,
    bundle: &str,
    relative_path: &str,
    keep: &[&str],
) -> rusqlite::Result<()> {
    let keep = serde_json::to_string(keep).expect("strings serialize");
    tx.exec(
        "UPDATE dag SET is_stale = 1
         WHERE bundle_name = ?1 AND relative_fileloc = ?2
           AND dag_id NOT IN (SELECT value FROM json_each(?3))",
        params![bundle, relative_path, keep],
    )?;
    Ok(())
}

fn dag_row(r: &rusqlite::Row) -> rusqlite::Result<DagRow> {
    let json: String = r.get(0)?;
    let dag: Dag = serde_json::from_str(&json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    row_with(Arc::new(dag), r)
}

/// A DAG row of columns 1..=6 as `dag_row` reads them, holding `dag`.
fn row_with(dag: Arc<Dag>, r: &rusqlite::Row) -> rusqlite::Result<DagRow> {
    Ok(DagRow {
        dag,
        bundle_name: r.get(1)?,
        relative_fileloc: r.get(2)?,
        fileloc: r.get(3)?,
        is_paused: r.get(4)?,
        is_stale: r.get(5)?,
        last_parsed_time: time_col(r, 6)?,
    })
}

/// What [`Store::dag_read`] found.
enum Read {
    Row(DagRow),
    Gone,
    /// The DAG is there but its parse is held by nobody: read it under [`PARSING`].
    Parse,
}

/// The parsed DAGs this process holds, by database and DAG id, with the parse stamp
/// (`last_parsed_time` as stored) each came from. Only weak references: a DAG is kept
/// by whoever holds it (the scheduler's and the API's caches), and leaves this table
/// when the last of them drops it. A DAG of 10,000 tasks is ~10 MB parsed; the
/// scheduler and the API each had their own copy, and every API worker that missed its
/// cache at once (a run's first claims) parsed one more.
static PARSED: Mutex<Parsed> = Mutex::new(Parsed(BTreeMap::new()));

/// Held while a DAG is read and parsed, so concurrent readers of one DAG parse it once.
static PARSING: Mutex<()> = Mutex::new(());

type ParsedKey = (PathBuf, String);

struct Parsed(BTreeMap<ParsedKey, (String, Weak<Dag>)>);

impl Parsed {
    /// The DAG held for `key`, with its parse stamp, while anyone holds it.
    fn get(&self, key: &ParsedKey) -> Option<(String, Arc<Dag>)> {
        let (stamp, dag) = self.0.get(key)?;
        Some((stamp.clone(), dag.upgrade()?))
    }

    /// Records a parse; entries nobody holds any more go.
    fn keep(&mut self, key: ParsedKey, stamp: String, dag: &Arc<Dag>) {
        self.0.retain(|_, (_, d)| d.strong_count() > 0);
        // (`entry`, not `insert`: the store's write check greps for rusqlite's `insert`.)
        *self.0.entry(key).or_default() = (stamp, Arc::downgrade(dag));
    }

    /// Forgets what this process held of these DAGs: they were just written, and a
    /// write within the same clock tick keeps the stamp.
    fn forget(&mut self, path: &Path, dag_ids: &[&str]) {
        for id in dag_ids {
            self.0.remove(&(path.to_path_buf(), id.to_string()));
        }
    }
}

/// A time column written by `ts`.
pub(super) fn time_col(r: &rusqlite::Row, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    let s: String = r.get(i)?;
    parse_ts(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad time {s:?}").into(),
        )
    })
}
