//! One connection that the threads of one process take turns on.
//!
//! SQLite drops a connection's whole page cache when it begins a transaction after
//! another connection committed. A standalone's scheduler and the Execution API calls
//! its supervisors make in process take turns on one database: a task's report, the
//! pass that queues its downstream, that downstream's claim. On separate connections,
//! each of those starts cold and reads its pages again; on one, each finds the pages the
//! one before it left. So the scheduler lends its connection ([`Held::lend`]) whenever
//! it waits, an in-process call is served on it if it is there and free
//! ([`Shared::try_serve`]), and the scheduler takes it back ([`Held::take_back`]) before
//! its next look at the store, waiting at most for the one call being served on it.
//!
//! A connection is still used by one thread at a time, and every transaction still
//! begins and ends within one turn: a turn is a whole call, or the scheduler's work
//! between two waits.

use super::Store;
use crate::error::Result;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// The connection between turns, and the lock a turn holds.
pub struct Shared {
    path: PathBuf,
    slot: Mutex<Slot>,
}

enum Slot {
    /// Not opened yet, or dropped after a call panicked on it (it may have been
    /// mid-transaction).
    Empty,
    Here(Store),
    /// Its holder ([`Held`]) has it.
    Out,
}

impl Shared {
    pub fn new(path: PathBuf) -> Shared {
        Shared {
            path,
            slot: Mutex::new(Slot::Empty),
        }
    }

    /// Runs `f` on the connection, on this thread, if no other call is on it and its
    /// holder has lent it (or there is no holder); `None` otherwise, or when it cannot
    /// be opened. `f` returns whether the connection is still sound; if not, it is
    /// dropped and the next turn opens another.
    pub fn try_serve<R>(&self, f: impl FnOnce(&mut Store) -> (R, bool)) -> Option<R> {
        let mut slot = match self.slot.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(p)) => {
                let mut slot = p.into_inner();
                if !matches!(*slot, Slot::Out) {
                    *slot = Slot::Empty;
                }
                slot
            }
            Err(TryLockError::WouldBlock) => return None,
        };
        if let Slot::Empty = *slot {
            match Store::open_existing(&self.path) {
                Ok(store) => *slot = Slot::Here(store),
                Err(e) => {
                    log::warn!("in-process calls go to the pool: {e}");
                    return None;
                }
            }
        }
        let Slot::Here(store) = &mut *slot else {
            return None;
        };
        let (out, sound) = f(store);
        if !sound {
            *slot = Slot::Empty;
        }
        Some(out)
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a connection waits here for calls.
    #[cfg(test)]
    pub fn is_here(&self) -> bool {
        matches!(*self.lock(), Slot::Here(_))
    }
}

/// A connection held by one thread, lent to a [`Shared`] while that thread waits.
/// Dereferences to the [`Store`] while held; using it while lent is a bug (a panic).
pub struct Held {
    store: Option<Store>,
    shared: Option<Arc<Shared>>,
    /// The connection's `rows_written` when it was lent.
    lent_at: u64,
}

impl Held {
    /// `store`, lent to `shared` whenever [`Held::lend`] is called (never without one).
    /// A connection `shared` had opened for calls before is closed (once the call on it,
    /// if any, is done): one holder, one connection.
    pub fn new(store: Store, shared: Option<Arc<Shared>>) -> Held {
        if let Some(shared) = &shared {
            *shared.lock() = Slot::Out;
        }
        Held {
            store: Some(store),
            shared,
            lent_at: 0,
        }
    }

    /// Lets the others use the connection until [`Held::take_back`].
    pub fn lend(&mut self) {
        let Some(shared) = &self.shared else { return };
        if let Some(store) = self.store.take() {
            self.lent_at = store.rows_written();
            *shared.lock() = Slot::Here(store);
        }
    }

    /// Takes the connection back, waiting for a call being served on it. Returns true
    /// when others wrote on it while it was lent: their commits are this connection's,
    /// so its `PRAGMA data_version` does not show them.
    pub fn take_back(&mut self) -> Result<bool> {
        let Some(shared) = &self.shared else {
            return Ok(false);
        };
        if self.store.is_some() {
            return Ok(false);
        }
        let mut slot = shared.lock();
        let (store, wrote) = match std::mem::replace(&mut *slot, Slot::Out) {
            Slot::Here(store) => {
                let wrote = store.rows_written() != self.lent_at;
                (store, wrote)
            }
            // Dropped after a panic: whatever it wrote before was committed or rolled
            // back, so look again.
            Slot::Empty | Slot::Out => match Store::open_existing(&shared.path) {
                Ok(store) => (store, true),
                Err(e) => {
                    *slot = Slot::Empty;
                    return Err(e);
                }
            },
        };
        self.store = Some(store);
        Ok(wrote)
    }
}

/// What a dropped holder had goes back to the others.
impl Drop for Held {
    fn drop(&mut self) {
        self.lend();
    }
}

impl Deref for Held {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("the connection is lent")
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("the connection is lent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;
    use std::time::Duration;

    #[test]
    fn calls_are_served_on_the_connection_only_while_it_is_lent() {
        let (dir, store) = temp_store("shared-turns");
        let shared = Arc::new(Shared::new(dir.join("t.db")));
        let mut held = Held::new(store, Some(shared.clone()));
        let written = |s: &mut Store| (s.rows_written(), true);

        // Held: a call goes elsewhere.
        assert_eq!(shared.try_serve(written), None);

        // Lent: the call is served on the holder's own connection (its count of rows
        // written goes on from the holder's), and the holder learns of its write.
        held.set_pool("p", 1, None).unwrap();
        let before = held.rows_written();
        held.lend();
        let served = shared.try_serve(|s| {
            s.set_pool("q", 2, None).unwrap();
            (s.rows_written(), true)
        });
        assert_eq!(served, Some(before + 1));
        assert!(held.take_back().unwrap());
        assert_eq!(held.pool("q").unwrap().map(|p| p.pool.slots), Some(2));

        // Lent and only read: nothing to learn.
        held.lend();
        assert_eq!(shared.try_serve(written), Some(before + 1));
        assert!(!held.take_back().unwrap());
        // Taking back what is held is a no-op.
        assert!(!held.take_back().unwrap());

        // A call that leaves it unsound drops it: the holder gets a new one, and is told
        // to look again.
        held.lend();
        assert_eq!(shared.try_serve(|_| ((), false)), Some(()));
        assert!(held.take_back().unwrap());
        assert_eq!(held.rows_written(), 0, "a new connection");
        assert_eq!(held.pool("q").unwrap().map(|p| p.pool.slots), Some(2));

        // A dropped holder gives the connection back.
        drop(held);
        assert!(shared.try_serve(written).is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn taking_back_waits_for_the_call_being_served() {
        let (dir, store) = temp_store("shared-wait");
        let shared = Arc::new(Shared::new(dir.join("t.db")));
        let mut held = Held::new(store, Some(shared.clone()));
        held.lend();
        let (started_tx, started) = crossbeam_channel::bounded(0);
        let (go, go_rx) = crossbeam_channel::bounded::<()>(0);
        let call = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                shared.try_serve(|s| {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    s.set_variable("k", "v", None).unwrap();
                    ((), true)
                })
            })
        };
        started.recv().unwrap();
        // A second call while the first is served goes elsewhere.
        assert_eq!(shared.try_serve(|_| ((), true)), None);
        let taker = std::thread::spawn(move || {
            let wrote = held.take_back().unwrap();
            (wrote, held)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !taker.is_finished(),
            "took the connection from a call on it"
        );
        go.send(()).unwrap();
        assert_eq!(call.join().unwrap(), Some(()));
        let (wrote, held) = taker.join().unwrap();
        assert!(wrote);
        // Taken: calls go elsewhere again.
        assert_eq!(shared.try_serve(|_| ((), true)), None);
        drop(held);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
