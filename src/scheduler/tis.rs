//! The task instances of the active runs, kept between passes and refreshed from what
//! changed: a trigger numbers every task instance insert and update (`change_seq`, see
//! the migrations), so a pass reads the rows changed since the last one instead of
//! every task instance of every active run. A pass over a 10,000-task run that reread
//! all of them made the whole run quadratic.
//!
//! Writers are serialized by SQLite, so change numbers are given in commit order: once
//! a number is seen, every change with a smaller one is visible too.

use std::collections::HashMap;

use crate::error::Result;
use crate::store::{RunRow, Store, TiRow};

/// The task instances of one run, in insertion order.
struct RunTis {
    /// The run's row id: a run deleted and created again under the same id is new.
    run_row: i64,
    tis: Vec<TiRow>,
    index: HashMap<String, usize>,
}

impl RunTis {
    fn new(run_row: i64, tis: Vec<TiRow>) -> RunTis {
        let index = tis
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        RunTis {
            run_row,
            tis,
            index,
        }
    }

    fn put(&mut self, ti: TiRow) {
        match self.index.get(&ti.id) {
            Some(&i) => self.tis[i] = ti,
            None => {
                self.index.insert(ti.id.clone(), self.tis.len());
                self.tis.push(ti);
            }
        }
    }
}

#[derive(Default)]
pub struct TiCache {
    /// The highest change number applied; `None` before the first refresh.
    seq: Option<i64>,
    runs: HashMap<(String, String), RunTis>,
}

impl TiCache {
    /// Brings the cache up to date for `runs` (the active runs, just read) and returns
    /// the task instances of each, by (dag_id, run_id).
    pub fn refresh(
        &mut self,
        store: &Store,
        runs: &[RunRow],
    ) -> Result<HashMap<(&str, &str), &[TiRow]>> {
        let counter = store.ti_change_seq()?;
        // First look, or the database was reset under us: start from the counter.
        if self.seq.is_none_or(|s| counter < s) {
            self.runs.clear();
            self.seq = Some(counter);
        }
        let active: HashMap<(&str, &str), i64> = runs
            .iter()
            .map(|r| ((r.dag_id.as_str(), r.run_id.as_str()), r.id))
            .collect();
        self.runs
            .retain(|(d, r), v| active.get(&(d.as_str(), r.as_str())) == Some(&v.run_row));
        let mut seq = self.seq.unwrap_or(counter);
        if counter > seq {
            for (n, ti) in store.tis_changed_since(seq)? {
                seq = seq.max(n);
                if let Some(run) = self.runs.get_mut(&(ti.dag_id.clone(), ti.run_id.clone())) {
                    run.put(ti);
                }
            }
        }
        self.seq = Some(seq);
        // Runs not seen before (new, or back from a finished state) are read whole; a
        // change made to them after this read has a higher number, read next time.
        for run in runs {
            let key = (run.dag_id.clone(), run.run_id.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = self.runs.entry(key) {
                let tis = store.tis_of_run(&run.dag_id, &run.run_id)?;
                slot.insert(RunTis::new(run.id, tis));
            }
        }
        Ok(self
            .runs
            .iter()
            .map(|((d, r), v)| ((d.as_str(), r.as_str()), v.tis.as_slice()))
            .collect())
    }
}
