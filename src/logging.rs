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
        // A closed stderr must not take the program down with it.
        let _ = writeln!(
            std::io::stderr().lock(),
            "{now} {:<5} {target}: {}",
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&Logger);
    log::set_max_level(level);
}
