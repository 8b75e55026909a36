//! The wall clock, as one value handed to whoever reads the time: the system's in
//! production, a settable one in tests, so decisions that depend on the date (which
//! runs are due, when a retry may start, which heartbeat is stale) can be checked at
//! any instant without waiting for it. A process's clock is `app::Env::clock`, handed
//! down to whatever it builds; a test checks that nothing else reads the wall clock.
//!
//! Only wall-clock time (`DateTime<Utc>`) goes through a `Clock`. Waiting does not:
//! loops sleep on `Instant`s and crossbeam's `after`, which are monotonic and real. A
//! fake clock that also drove waits would need a fake timer under every `select!`; the
//! decisions themselves take `now` as a value (see `scheduler::decide`), so they are
//! tested without any loop, and a loop that turns a wall-clock due time into a wait
//! (`run_after - clock.now()`) stays consistent with whichever clock it was given.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Where the current time comes from. Cloning a fake clock shares it: setting one
/// clone moves them all.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock that reads what it was last set to.
    Fake(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A fake clock standing at `at`.
    pub fn fake(at: DateTime<Utc>) -> Clock {
        Clock::Fake(Arc::new(Mutex::new(at)))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fake(at) => *at.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Sets a fake clock to `at`; the system clock cannot be set and ignores it.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Clock::Fake(at) = self {
            *at.lock().unwrap_or_else(|p| p.into_inner()) = to;
        }
    }

    /// Moves a fake clock on by `by` (back, if negative); the system clock ignores it.
    pub fn advance(&self, by: chrono::Duration) {
        if let Clock::Fake(at) = self {
            let mut at = at.lock().unwrap_or_else(|p| p.into_inner());
            *at += by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_fake_clock_reads_what_it_was_set_to_in_every_clone() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = Clock::fake(t0);
        let shared = clock.clone();
        assert_eq!(clock.now(), t0);
        shared.advance(chrono::Duration::hours(25));
        assert_eq!(clock.now(), t0 + chrono::Duration::hours(25));
        clock.set(t0);
        assert_eq!(shared.now(), t0);
    }

    #[test]
    fn the_system_clock_moves_and_ignores_set() {
        let clock = Clock::System;
        let before = Utc::now();
        clock.set(before - chrono::Duration::days(365));
        let read = clock.now();
        assert!(read >= before, "{read} < {before}");
    }

    /// The reads of the wall clock allowed outside a `Clock`: `(file, line start)`. Each
    /// stamps a record for people to read and decides nothing, and what writes it has
    /// no `Clock` at hand without threading one through every caller for a timestamp:
    /// the stderr logger is a global (`log`'s), and the HTTP `Date` header is written
    /// by the connection code, below the API's `Ctx`.
    const ALLOWED: [(&str, &str); 3] = [
        ("clock.rs", "Clock::System => Utc::now(),"),
        ("logging.rs", "let now = chrono::Utc::now().format("),
        ("server/mod.rs", "let now = chrono::Utc::now();"),
    ];

    /// The lines of `dir`'s Rust files, above each file's tests, that read the wall
    /// clock, as `(path, text)`.
    fn wall_clock_reads(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        let reads = ["Utc::now", "Local::now", "SystemTime::now"];
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                wall_clock_reads(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap();
            for line in code.lines() {
                let code = line.split("//").next().unwrap();
                if reads.iter().any(|r| code.contains(r)) {
                    let shown = path.display().to_string().replace('\\', "/");
                    out.push((shown, line.trim().to_string()));
                }
            }
        }
    }

    /// Time is read through a `Clock` (so a fake one decides in tests), except on the
    /// lines of `ALLOWED`. A new `Utc::now()` elsewhere fails here.
    #[test]
    fn only_a_clock_and_the_allowed_lines_read_the_wall_clock() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        wall_clock_reads(&src, &mut found);
        let allowed = |(path, line): &(String, String)| {
            ALLOWED.iter().any(|(file, text)| {
                path.ends_with(&format!("src/{file}")) && line.starts_with(text)
            })
        };
        let outside: Vec<_> = found.iter().filter(|r| !allowed(r)).collect();
        assert!(
            outside.is_empty(),
            "wall clock read around Clock: {outside:#?}"
        );
        // An entry that no longer matches is removed, not kept as a hole.
        assert_eq!(found.len(), ALLOWED.len(), "{found:#?}");
    }
}
