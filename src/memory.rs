//! Giving freed memory back to the operating system, for the long-running commands.
//!
//! glibc's malloc keeps what a program frees. Each thread allocates from one of up to
//! 8 × cores arenas, and an arena returns pages on its own only while the free space
//! sits at the top of its heap; free space below a block still in use stays resident
//! until `malloc_trim` hands it back. A server whose threads take turns (API workers,
//! task supervisors, the HTTP library's connection threads) leaves such holes in every
//! arena, so its RSS crept up while its live heap did not: in a soak of a DAG every
//! second under API load, one `malloc_trim` took the anonymous RSS from 12.6 MB to
//! 8.2 MB (issue 12, item 12). The trim thread does that every [`TRIM_EVERY`].
//!
//! Elsewhere there is nothing to call: musl's allocator unmaps freed pages itself, and
//! the Windows heap decommits large free blocks on its own.

use std::time::Duration;

/// How often the trim thread returns free memory. A trim locks each arena for as long as
/// it takes to walk its free blocks (well under a millisecond for a server's heap), and
/// pages it returned are faulted in again when next used, so a few seconds' worth of
/// churn is the most RSS may hold beyond the live heap.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Starts the thread that returns free memory every [`TRIM_EVERY`], for as long as the
/// process runs (like the store's checkpoint thread, it has no state to stop cleanly).
pub fn trim_in_background() -> crate::error::Result<()> {
    if !TRIMS {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_EVERY);
                release();
            }
        })
        .map(drop)
        .map_err(|e| crate::error::Error::Failed(format!("cannot start the trim thread: {e}")))
}

/// Whether this build's allocator needs trimming.
const TRIMS: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Returns what the allocator holds free to the operating system now, rather than at the
/// next trim: for after a burst of short-lived memory, such as a DAG folder's parse (a
/// 10,000-task file held ~45 MB of freed parse memory until the trim, so a run started
/// in those seconds peaked that much higher).
pub fn release_free() {
    #[cfg(test)]
    RELEASES.with(|n| n.set(n.get() + 1));
    release();
}

#[cfg(test)]
thread_local! {
    /// How many times this thread called [`release_free`].
    pub static RELEASES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Returns the free pages of every malloc arena to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release() {
    // SAFETY: malloc_trim takes a padding size and only walks and releases glibc's own
    // free lists, under each arena's lock; it touches no memory this program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Nothing to return: this target's allocator gives free pages back itself.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn rss_anon_kib() -> i64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Issue 12, item 12: memory a thread freed below a block still in use stayed
    /// resident. 64 MiB freed that way must go back to the system.
    #[test]
    fn freed_memory_goes_back() {
        const MIB: i64 = 1024;
        let kept = std::thread::spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![1u8; 4096]).collect();
            // Every 64th block stays in use, so the freed ones are holes below blocks in
            // use, which free() alone never returns: a server's heap after a busy spell.
            let kept: Vec<Vec<u8>> = blocks
                .iter_mut()
                .skip(63)
                .step_by(64)
                .map(std::mem::take)
                .collect();
            drop(std::hint::black_box(blocks));
            kept
        })
        .join()
        .unwrap();
        let before = rss_anon_kib();
        release_free();
        let after = rss_anon_kib();
        drop(kept);
        assert!(
            before - after > 32 * MIB,
            "RssAnon {before} kB before the trim, {after} kB after"
        );
    }
}
