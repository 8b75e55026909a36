//! The DAG list's rendered DAGs and whole pages, kept between requests (held by the
//! server's `Ctx`; `dags.rs` fills and reads them).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use crate::api::route::DagRows;
use crate::scheduler::timetable::RunInfo;
use crate::store::DagRow;

/// Each listed DAG's DAGResponse as JSON, with what it was made from, and the last pages
/// made of them.
#[derive(Default)]
pub struct DagPieces {
    pub(super) pieces: Mutex<HashMap<String, Piece>>,
    pub(super) pages: Mutex<Pages>,
}

/// A DAG's DAGResponse. A page of the DAG list is its DAGs' pieces put together, and a
/// piece is made again only when its row (a new parse, a pause), its next run or its
/// file's import errors changed: rendering a 100-DAG page was most of a list request's
/// time.
pub(super) struct Piece {
    /// Held, so the row's address cannot be reused by another row while it is a key.
    pub row: Arc<DagRow>,
    pub next: Option<RunInfo>,
    pub has_errors: bool,
    pub json: Arc<[u8]>,
}

/// The import errors a page was made with: file names by bundle.
pub(super) type Errors = HashMap<String, HashSet<String>>;

/// The `is_favorite` filter a page was made with: the value asked for and the caller's
/// favorites then.
pub(super) type Favorites = Option<(bool, HashSet<String>)>;

/// What a page of the list is a function of, besides the request's query: the rows it
/// was filtered and sorted from, the import errors, the caller's favorites, and the
/// next runs of its DAGs. Orders and filters that read more (the next run of every DAG,
/// every DAG's latest run) are not kept as pages.
pub(super) struct PageInputs<'a> {
    pub rows: &'a DagRows,
    pub errors: &'a Errors,
    pub favorites: &'a Favorites,
}

/// A whole rendered page of the DAG list.
pub(super) struct Page {
    /// Not held: a row list the DAG cache let go of must not stay in memory for this.
    /// The weak count keeps its allocation, so its address is not another list's.
    rows: Weak<[Arc<DagRow>]>,
    errors: Errors,
    favorites: Favorites,
    /// The page's DAGs as positions in `rows`, with the next runs they were shown with:
    /// a next run moves with time and runs without any row changing, so a request
    /// computes them again for these DAGs and uses the page only if they are the same.
    pub shown: Vec<(usize, Option<RunInfo>)>,
    pub body: Arc<[u8]>,
}

impl Page {
    pub fn new(inputs: &PageInputs, shown: Vec<(usize, Option<RunInfo>)>, body: Arc<[u8]>) -> Page {
        Page {
            rows: Arc::downgrade(inputs.rows),
            errors: inputs.errors.clone(),
            favorites: inputs.favorites.clone(),
            shown,
            body,
        }
    }

    /// Whether the page was made from these rows, errors and favorites.
    fn made_from(&self, inputs: &PageInputs) -> bool {
        std::ptr::addr_eq(self.rows.as_ptr(), Arc::as_ptr(inputs.rows))
            && self.errors == *inputs.errors
            && self.favorites == *inputs.favorites
    }
}

/// The last pages asked for, by query. Bounded in count and in bytes, the least
/// recently used page going first; a page is used only while it was made from the same
/// inputs as the request has, so a change of any of them shows in the next reply.
#[derive(Default)]
pub(super) struct Pages {
    by_query: HashMap<PageKey, (Arc<Page>, u64)>,
    bytes: usize,
    uses: u64,
}

/// A request's query pairs as received, and the caller when the page depends on who
/// asks (`is_favorite`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct PageKey {
    pub query: Vec<(String, String)>,
    pub user: Option<String>,
}

/// At most this many pages are kept...
const MAX_PAGES: usize = 32;
/// ...and at most this many bytes of them (a 100-DAG page is ~100 KB).
const MAX_PAGE_BYTES: usize = 4 << 20;

impl Pages {
    /// The page kept for `key` if it was made from `inputs`. Its next runs are still to
    /// be checked by the caller.
    pub fn get(&mut self, key: &PageKey, inputs: &PageInputs) -> Option<Arc<Page>> {
        self.uses += 1;
        let uses = self.uses;
        let (page, used) = self.by_query.get_mut(key)?;
        if !page.made_from(inputs) {
            return None;
        }
        *used = uses;
        Some(page.clone())
    }

    /// Keeps `page` for `key`, dropping pages of row lists no longer current and the
    /// least recently used ones beyond the bounds. A page over the byte bound alone is
    /// not kept.
    pub fn put(&mut self, key: PageKey, page: Page) {
        if page.body.len() > MAX_PAGE_BYTES {
            return;
        }
        self.uses += 1;
        let size = page.body.len();
        if let Some((old, _)) = self.by_query.insert(key, (Arc::new(page), self.uses)) {
            self.bytes -= old.body.len();
        }
        self.bytes += size;
        let mut gone = 0;
        self.by_query.retain(|_, (p, _)| {
            let keep = p.rows.strong_count() > 0;
            if !keep {
                gone += p.body.len();
            }
            keep
        });
        self.bytes -= gone;
        while self.by_query.len() > MAX_PAGES || self.bytes > MAX_PAGE_BYTES {
            let Some(oldest) = self
                .by_query
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((p, _)) = self.by_query.remove(&oldest) {
                self.bytes -= p.body.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> DagRows {
        Vec::new().into()
    }

    fn key(q: &str) -> PageKey {
        PageKey {
            query: vec![("q".into(), q.into())],
            user: None,
        }
    }

    fn page(inputs: &PageInputs, bytes: usize) -> Page {
        Page::new(inputs, vec![(0, None)], vec![b'x'; bytes].into())
    }

    #[test]
    fn a_kept_page_serves_only_the_inputs_it_was_made_from() {
        let (old_rows, errors, favorites) = (rows(), Errors::new(), None);
        let inputs = PageInputs {
            rows: &old_rows,
            errors: &errors,
            favorites: &favorites,
        };
        let mut pages = Pages::default();
        pages.put(key("a"), page(&inputs, 10));
        assert!(pages.get(&key("a"), &inputs).is_some());
        assert!(pages.get(&key("b"), &inputs).is_none());

        // Rows read again (a DAG changed): even an equal list is another list.
        let new_rows = rows();
        let moved = PageInputs {
            rows: &new_rows,
            ..inputs
        };
        assert!(pages.get(&key("a"), &moved).is_none());
        // An import error.
        let broken: Errors = [("b".to_string(), ["f.yml".to_string()].into())].into();
        let moved = PageInputs {
            errors: &broken,
            ..inputs
        };
        assert!(pages.get(&key("a"), &moved).is_none());
        // A favorite.
        let liked: Favorites = Some((true, ["d".to_string()].into()));
        let moved = PageInputs {
            favorites: &liked,
            ..inputs
        };
        assert!(pages.get(&key("a"), &moved).is_none());
        assert!(pages.get(&key("a"), &inputs).is_some());
    }

    #[test]
    fn kept_pages_stay_within_their_bounds_and_forget_replaced_rows() {
        let (errors, favorites) = (Errors::new(), None);
        let kept_rows = rows();
        let inputs = PageInputs {
            rows: &kept_rows,
            errors: &errors,
            favorites: &favorites,
        };
        let mut pages = Pages::default();
        for i in 0..MAX_PAGES + 5 {
            pages.put(key(&i.to_string()), page(&inputs, 10));
        }
        assert_eq!(pages.by_query.len(), MAX_PAGES);
        assert_eq!(pages.bytes, MAX_PAGES * 10);
        // The least recently used went first: 0..5, unless asked for since.
        assert!(pages.get(&key("4"), &inputs).is_none());
        assert!(pages.get(&key("5"), &inputs).is_some());

        let big = MAX_PAGE_BYTES / 3;
        for i in 0..4 {
            pages.put(key(&format!("big{i}")), page(&inputs, big));
        }
        assert!(pages.bytes <= MAX_PAGE_BYTES, "{}", pages.bytes);
        assert!(pages.get(&key("big3"), &inputs).is_some());
        assert!(pages.get(&key("big0"), &inputs).is_none());
        pages.put(key("huge"), page(&inputs, MAX_PAGE_BYTES + 1));
        assert!(pages.get(&key("huge"), &inputs).is_none());

        // Pages of a row list the DAG cache dropped go at the next put.
        let gone_rows = rows();
        let gone = PageInputs {
            rows: &gone_rows,
            ..inputs
        };
        pages.put(key("gone"), page(&gone, 10));
        drop(gone_rows);
        pages.put(key("next"), page(&inputs, 10));
        assert!(!pages.by_query.contains_key(&key("gone")));
        let total: usize = pages.by_query.values().map(|(p, _)| p.body.len()).sum();
        assert_eq!(pages.bytes, total);
    }
}
