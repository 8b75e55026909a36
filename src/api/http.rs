//! Requests and replies as handlers see them, and the one place errors become statuses.
//!
//! A [`Req`] is already read off the socket and stripped of the `base_url` prefix, so
//! handlers are plain functions from values to values, testable without a server.

use std::fmt;

use serde_json::{Value, json};

use crate::error::Error;

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
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON reply: a `Value`, or a typed response written straight into the body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(value).expect("JSON values and our DTOs serialize"),
        }
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn redirect(location: &str) -> Reply {
        Reply {
            status: 307,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Why a request failed, as the API reports it: `{"detail": ...}` with a status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: Value::String(detail.into()),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(400, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(404, detail)
    }
    pub fn into_reply(self) -> Reply {
        Reply::json(self.status, &json!({ "detail": self.detail }))
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
            Error::Io { .. } | Error::Db(_) => {
                log::error!("request failed: {e}");
                ApiError::new(500, "internal error; see the server log")
            }
        }
    }
}

/// Decodes `%XX` escapes; `plus_is_space` for query strings. `None` on a bad escape
/// or on bytes that are not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes `s` as one query-string value: everything but RFC 3986's unreserved
/// characters is escaped, as `encodeURIComponent` does. A path-segment encoder would
/// leave `+` raw, and a query reader (ours, `URLSearchParams`) turns a raw `+` into a
/// space, so a run id with `+00:00` came back as another id.
pub fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits `a=1&b=2` into decoded pairs.
pub fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_round_trip() {
        for v in [
            "/dags/d/runs/manual__2024-01-01T00:00:00+00:00",
            "a b&c=d#e%f",
            "caf\u{e9}",
        ] {
            let q = format!("next={}", query_encode(v));
            assert_eq!(parse_query(&q).unwrap(), vec![("next".into(), v.into())]);
        }
        assert_eq!(query_encode("+00:00"), "%2B00%3A00");
    }

    #[test]
    fn decodes() {
        assert_eq!(percent_decode("a%20b+c", false).unwrap(), "a b+c");
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("%2e%2E", false).unwrap(), "..");
        assert!(percent_decode("%zz", false).is_none());
        assert!(percent_decode("%ff", false).is_none());
        assert!(percent_decode("%4", false).is_none());
        assert_eq!(
            parse_query("tags=a&tags=b&x").unwrap(),
            vec![
                ("tags".into(), "a".into()),
                ("tags".into(), "b".into()),
                ("x".into(), "".into())
            ]
        );
    }
}
