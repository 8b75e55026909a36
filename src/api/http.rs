//! Requests and replies as handlers see them, and the one place errors become statuses.
//!
//! A [`Req`] is already read off the socket and stripped of the `base_url` prefix, so
//! handlers are plain functions from values to values, testable without a server.

use std::fmt;

use serde_json::{Value, json};

use crate::error::{DbKind, Error};

/// HTTP methods updraft routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request, read in full, its path relative to the prefix.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    /// The decoded path below the prefix, starting with `/`.
    pub path: String,
    /// The same, still percent-encoded: routes split it first, then decode each
    /// segment, so an id may contain an encoded `/`.
    pub raw_path: String,
    /// Query pairs, decoded, in order (a key may repeat: `tags=a&tags=b`).
    pub query: Vec<(String, String)>,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The prefix that URLs in replies must carry: `""` or `/a/b` (no trailing slash).
    pub prefix: String,
    pub remote: Option<std::net::SocketAddr>,
}

impl Req {
    /// A request made inside the process (readiness checks, tests).
    pub fn internal(method: Method, path: &str) -> Req {
        Req {
            method,
            path: path.to_string(),
            raw_path: path.to_string(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            prefix: String::new(),
            remote: None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A reply, built by a handler and written by the server.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// A reply's body: made for this reply, or shared with others (a page kept whole, such
/// as the DAG list's, is sent from where it is kept, without a copy).
#[derive(Debug, Clone)]
pub enum Body {
    Owned(Vec<u8>),
    Shared(std::sync::Arc<[u8]>),
}

impl Default for Body {
    fn default() -> Body {
        Body::Owned(Vec::new())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Owned(bytes)
    }
}

impl From<std::sync::Arc<[u8]>> for Body {
    fn from(bytes: std::sync::Arc<[u8]>) -> Body {
        Body::Shared(bytes)
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Body::Owned(b) => b,
            Body::Shared(b) => b,
        }
    }
}

impl Reply {
    /// A JSON reply: a `Value`, or a typed response written straight into the body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(value)
                .expect("JSON values and our DTOs serialize")
                .into(),
        }
    }

    pub fn bytes(status: u16, content_type: &str, body: impl Into<Body>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn redirect(location: &str) -> Reply {
        Reply {
            status: 307,
            headers: vec![("Location".into(), location.into())],
            body: Body::default(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Why a request failed, as the API reports it: `{"detail": ...}` with a status, and
/// any headers the status needs (`Retry-After` with a 503).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub detail: Value,
    pub headers: Vec<(String, String)>,
}

/// What a 503 for a busy database tells clients to wait before trying again, in
/// seconds. The write already waited the store's whole busy timeout for another
/// process's transaction, so this only spaces out the retries of a client that loops.
const BUSY_RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    pub fn new(status: u16, detail: impl Into<String>) -> ApiError {
        ApiError::with_detail(status, Value::String(detail.into()))
    }
    /// A detail that is not a string: pydantic's error lists, Airflow's objects.
    pub fn with_detail(status: u16, detail: Value) -> ApiError {
        ApiError {
            status,
            detail,
            headers: Vec::new(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(400, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(404, detail)
    }
    /// Airflow's reply to a database error it explains by `reason` only: the statement
    /// and SQLite's message go to the server log under an error id the reply names, as
    /// Airflow hides the SQL (`api_fastapi/common/exceptions.py`).
    pub fn database(status: u16, reason: &str, what: &str) -> ApiError {
        let id = crate::ids::random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            8,
        );
        log::warn!("error id {id}: {}: {what}", reason.to_lowercase());
        ApiError::with_detail(
            status,
            json!({
                "reason": reason,
                "statement": "hidden",
                "orig_error": "hidden",
                "message": format!("Serious error when handling your request. Check logs for more details - you will find it in api server when you look for ID {id}"),
            }),
        )
    }
    pub fn with_header(mut self, name: &str, value: &str) -> ApiError {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn into_reply(self) -> Reply {
        let mut reply = Reply::json(self.status, &json!({ "detail": self.detail }));
        reply.headers.extend(self.headers);
        reply
    }
}

impl From<Error> for ApiError {
    /// The one translation of crate errors into statuses.
    fn from(e: Error) -> ApiError {
        match e {
            Error::NotFound(msg) => ApiError::new(404, msg),
            Error::Conflict(msg) => ApiError::new(409, msg),
            Error::Usage(msg) | Error::Failed(msg) => ApiError::new(400, msg),
            Error::Exit(code) => ApiError::new(500, format!("exit code {code}")),
            Error::Config { .. } => ApiError::new(400, e.to_string()),
            Error::Db {
                kind: DbKind::Busy,
                msg,
            } => {
                log::warn!("request refused, database busy: {msg}");
                ApiError::new(
                    503,
                    "The database is busy: another process held its write lock too long. Nothing was changed; try again.",
                )
                .with_header("Retry-After", &BUSY_RETRY_AFTER_SECS.to_string())
            }
            Error::Db {
                kind: DbKind::Unique,
                msg,
            } => ApiError::database(409, "Unique constraint violation", &msg),
            Error::Db {
                kind: DbKind::Constraint,
                msg,
            } => ApiError::database(409, "Constraint violation", &msg),
            Error::Io { .. }
            | Error::Db {
                kind: DbKind::Other,
                ..
            } => {
                log::error!("request failed: {e}");
                ApiError::new(500, "internal error; see the server log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DbKind) -> Error {
        Error::Db {
            kind,
            msg: "/h/updraft.db: the text SQLite gave".into(),
        }
    }

    /// Issue 13: a busy database is a 503 a client may retry after `Retry-After`; a
    /// refused constraint a 409 in Airflow's shape (`api_fastapi/common/exceptions.py`),
    /// SQLite's text kept out of the reply; anything else stays a 500.
    #[test]
    fn database_errors_become_statuses_by_kind() {
        let busy = ApiError::from(db(DbKind::Busy)).into_reply();
        assert_eq!(busy.status, 503);
        assert!(
            busy.headers
                .contains(&("Retry-After".into(), BUSY_RETRY_AFTER_SECS.to_string())),
            "{:?}",
            busy.headers
        );
        let body: Value = serde_json::from_slice(&busy.body).unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("try again"),
            "{body}"
        );

        for (kind, reason) in [
            (DbKind::Unique, "Unique constraint violation"),
            (DbKind::Constraint, "Constraint violation"),
        ] {
            let reply = ApiError::from(db(kind)).into_reply();
            assert_eq!(reply.status, 409, "{kind:?}");
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            let detail = &body["detail"];
            assert_eq!(detail["reason"], reason);
            assert_eq!(
                (&detail["statement"], &detail["orig_error"]),
                (&json!("hidden"), &json!("hidden"))
            );
            assert!(!body.to_string().contains("SQLite"), "{body}");
            assert!(!reply.headers.iter().any(|(n, _)| n == "Retry-After"));
        }

        let other = ApiError::from(db(DbKind::Other)).into_reply();
        assert_eq!(other.status, 500);
    }
}
