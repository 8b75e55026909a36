//! A small stderr logger for the `log` facade: one line per record, UTC time first.
//!
//! Why not env_logger: the level comes from `[logging] logging_level`, and a dozen lines
//! cost less than a dependency tree.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let target = record
            .target()
            .strip_prefix("updraft::")
            .unwrap_or(record.target());
        // One write per line: stderr is unbuffered, and worker processes share it, so a line
        // written piecewise interleaves with theirs byte by byte.
        let line = format!("{now} {:<5} {target}: {}\n", record.level(), record.args());
        // A closed stderr must not take the program down with it.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&Logger);
    log::set_max_level(level);
}
