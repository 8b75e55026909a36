//! The crate's error type, with hand-written messages and the exit code each one means.
//!
//! Messages are lowercase, without a trailing period, and say what to do next where
//! there is something to do. Nothing here knows HTTP: `api/` maps errors to statuses.

use std::fmt;
use std::path::PathBuf;

/// Everything that can stop a command.
#[derive(Debug)]
pub enum Error {
    /// Wrong command-line words; exit 2.
    Usage(String),
    /// A config value that cannot be used, named by section and key; exit 2.
    Config {
        section: &'static str,
        key: &'static str,
        value: String,
        source: String,
        reason: String,
    },
    /// A file or directory operation failed.
    Io { path: PathBuf, err: std::io::Error },
    /// The database refused or failed.
    Db(String),
    /// Something asked for does not exist (a DAG id, a run id, a key).
    NotFound(String),
    /// The command ran and its subject failed (a DAG run, a check); exit 1.
    Failed(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code: 2 for usage and configuration, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config { .. } => 2,
            Error::Io { .. } | Error::Db(_) | Error::NotFound(_) | Error::Failed(_) => 1,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            err,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg} (see 'updraft --help')"),
            Error::Config {
                section,
                key,
                value,
                source,
                reason,
            } => write!(
                f,
                "bad config value [{section}] {key} = {value:?} (from {source}): {reason}"
            ),
            Error::Io { path, err } => write!(f, "{}: {err}", path.display()),
            Error::Db(msg) => write!(f, "database: {msg}"),
            Error::NotFound(msg) | Error::Failed(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}
