//! Patch (updraft): a budget of bytes a render may build, per thread.
//!
//! Fuel bounds a render's steps and the caller can bound its output, but one step can
//! double a string (`{% set ns.s = ns.s ~ ns.s %}`), so forty steps reach a terabyte and
//! the process aborts on the failed allocation. With a budget set on the rendering thread
//! ([`set_build_budget`]), every string value made is charged its length, operations
//! that would build a value larger than what is left fail before they allocate (`~`, `+`,
//! `*`, `join`, `replace`, `indent`, `center`), and once the budget is spent the next
//! instruction fails the render. No budget (the default) is upstream's behaviour.

use std::cell::Cell;

use crate::error::{Error, ErrorKind};

thread_local! {
    static LIMIT: Cell<Option<usize>> = const { Cell::new(None) };
    static SPENT: Cell<usize> = const { Cell::new(0) };
}

/// Sets (or with `None` removes) the budget of bytes the renders on this thread may
/// build together, and starts counting from zero.
pub fn set_build_budget(bytes: Option<usize>) {
    LIMIT.with(|l| l.set(bytes));
    SPENT.with(|s| s.set(0));
}

/// Whether `bytes` more would still fit in this thread's budget (always, without one).
pub fn build_budget_allows(bytes: usize) -> bool {
    match LIMIT.with(Cell::get) {
        None => true,
        Some(limit) => SPENT
            .with(Cell::get)
            .checked_add(bytes)
            .is_some_and(|total| total <= limit),
    }
}

/// Whether this thread has built more than its budget.
pub fn build_budget_spent() -> bool {
    LIMIT
        .with(Cell::get)
        .is_some_and(|limit| SPENT.with(Cell::get) > limit)
}

/// Counts `bytes` built.
pub(crate) fn charge(bytes: usize) {
    if LIMIT.with(Cell::get).is_some() {
        SPENT.with(|s| s.set(s.get().saturating_add(bytes)));
    }
}

/// The error of a render past its budget.
pub(crate) fn exceeded() -> Error {
    let limit = LIMIT.with(Cell::get).unwrap_or(usize::MAX);
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "the template built more than {limit} bytes of values (a string or list that grows in a loop?)"
        ),
    )
}

/// `Ok` when `bytes` more fit, else the budget's error: for operations that check before
/// they allocate.
pub(crate) fn check(bytes: usize) -> Result<(), Error> {
    if build_budget_allows(bytes) {
        Ok(())
    } else {
        Err(exceeded())
    }
}

/// A sequence of `items` values, as bytes of the budget (what its slots take).
pub(crate) fn seq_bytes(items: usize) -> usize {
    items.saturating_mul(std::mem::size_of::<crate::value::Value>())
}

/// The length of `s.replace(from, to)`, without building it.
pub fn replaced_len(s: &str, from: &str, to: &str) -> usize {
    let n = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    s.len()
        .saturating_sub(n.saturating_mul(from.len()))
        .saturating_add(n.saturating_mul(to.len()))
}
