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
    /// The database refused or failed; `kind` says whether the caller can do anything
    /// about it (try again later, or change the request).
    Db { kind: DbKind, msg: String },
    /// Something asked for does not exist (a DAG id, a run id, a key).
    NotFound(String),
    /// The change collides with the current state (a duplicate run id, a task that is
    /// no longer in the state the caller expected).
    Conflict(String),
    /// The command ran and its subject failed (a DAG run, a check); exit 1.
    Failed(String),
    /// Exit with this code, having said what there was to say (a supervisor's outcome).
    Exit(u8),
}

/// What kind of database failure an [`Error::Db`] is: the store classifies SQLite's
/// result codes once, so callers decide on a kind, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// Another connection held the write lock for longer than the busy timeout
    /// (SQLite's BUSY or LOCKED): nothing was written, and the same write may succeed
    /// later.
    Busy,
    /// A UNIQUE or PRIMARY KEY constraint refused the write: the row already exists.
    Unique,
    /// Another constraint (a foreign key, CHECK or NOT NULL) refused the write: it
    /// collides with what is stored now, e.g. a row it refers to is gone.
    Constraint,
    /// Anything else: the file cannot be read or written, a bug.
    Other,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code: 2 for usage and configuration, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config { .. } => 2,
            Error::Exit(code) => *code,
            Error::Io { .. }
            | Error::Db { .. }
            | Error::NotFound(_)
            | Error::Conflict(_)
            | Error::Failed(_) => 1,
        }
    }

    /// A database failure of no particular kind (see [`DbKind::Other`]).
    pub(crate) fn db(msg: impl Into<String>) -> Error {
        Error::Db {
            kind: DbKind::Other,
            msg: msg.into(),
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
            Error::Db {
                kind: DbKind::Busy,
                msg,
            } => write!(
                f,
                "database: {msg} (another process held the write lock too long; try again)"
            ),
            Error::Db { msg, .. } => write!(f, "database: {msg}"),
            Error::NotFound(msg) | Error::Conflict(msg) | Error::Failed(msg) => f.write_str(msg),
            Error::Exit(code) => write!(f, "exit code {code}"),
        }
    }
}

impl std::error::Error for Error {}
