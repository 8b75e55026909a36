//! The DAG list's rendered DAGs, kept between requests (held by the server's `Ctx`;
//! `dags.rs` fills and reads it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::scheduler::timetable::RunInfo;
use crate::store::DagRow;

/// Each listed DAG's DAGResponse as JSON, with what it was made from. A page of the DAG
/// list is its DAGs' pieces put together, and a piece is made again only when its row
/// (a new parse, a pause), its next run or its file's import errors changed: rendering
/// a 100-DAG page was most of a list request's time.
#[derive(Default)]
pub struct DagPieces(pub(super) Mutex<HashMap<String, Piece>>);

pub(super) struct Piece {
    /// Held, so the row's address cannot be reused by another row while it is a key.
    pub row: Arc<DagRow>,
    pub next: Option<RunInfo>,
    pub has_errors: bool,
    pub json: Arc<[u8]>,
}
