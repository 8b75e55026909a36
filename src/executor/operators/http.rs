//! HttpOperator / SimpleHttpOperator, and HttpSensor's poke: one request built from an
//! `http` connection and the task's arguments, as Airflow's HttpHook builds it.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{Done, connection_extra};
use crate::executor::sensor::{Poke, PokeError};
use crate::percent::encode_query as encode_query_value;

/// What is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub basic_auth: Option<(String, String)>,
    pub timeout: Option<Duration>,
    pub verify: bool,
    pub allow_redirects: bool,
    /// `check_response`: a status of 400 or more fails.
    pub check_response: bool,
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    pub reason: String,
    pub text: String,
    /// The response's headers, in order (for a Python `response_check`).
    pub headers: Vec<(String, String)>,
    /// The URL it came from (after redirects: the request's).
    pub url: String,
}

impl HttpReply {
    /// The reply as the Python runner's `Response` reads it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "status_code": self.status,
            "reason": self.reason,
            "text": self.text,
            "headers": self.headers,
            "url": self.url,
        })
    }
}

/// Connection `extra` keys that set how requests sends, not headers (HttpHook's).
const SESSION_KEYS: &[&str] = &[
    "timeout",
    "verify",
    "allow_redirects",
    "max_redirects",
    "proxies",
    "stream",
    "cert",
    "trust_env",
    "check_response",
    "auth_type",
    "auth_kwargs",
];

/// The request an HttpHook makes: the connection's base URL (`host` with a scheme, or
/// `schema://host:port`), the endpoint, login/password as basic auth, the connection's
/// `extra` as headers under the task's `headers`; `data` as the query of a GET, the
/// body of others (a mapping form-encoded, or JSON when the Content-Type says so, as
/// dag-factory serializes it).
pub fn build(
    conn: Option<&Value>,
    method: &str,
    endpoint: &str,
    data: &Value,
    headers: &Value,
    extra_options: &Value,
) -> Result<HttpCall, String> {
    let method = method.to_ascii_uppercase();
    let empty = Value::Null;
    let conn = conn.unwrap_or(&empty);
    let s = |k: &str| conn[k].as_str().filter(|v| !v.is_empty());
    let mut base = match s("host") {
        Some(host) if host.contains("://") => host.to_string(),
        Some(host) => format!("{}://{host}", s("schema").unwrap_or("http")),
        None => String::new(),
    };
    if let Some(port) = conn["port"].as_i64() {
        base = format!("{base}:{port}");
    }
    let mut url = if !base.is_empty()
        && !base.ends_with('/')
        && !endpoint.is_empty()
        && !endpoint.starts_with('/')
    {
        format!("{base}/{endpoint}")
    } else {
        format!("{base}{endpoint}")
    };
    if !url.contains("://") {
        return Err(format!(
            "cannot build a URL from the connection's host and the endpoint: {url:?}"
        ));
    }
    let extra = connection_extra(conn);
    let mut out_headers: Vec<(String, String)> = Vec::new();
    let set_header = |k: &str, v: String, h: &mut Vec<(String, String)>| {
        h.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        h.push((k.to_string(), v));
    };
    for (k, v) in &extra {
        if SESSION_KEYS.contains(&k.as_str()) {
            continue;
        }
        if k == "headers"
            && let Some(m) = v.as_object()
        {
            for (hk, hv) in m {
                set_header(hk, text(hv), &mut out_headers);
            }
            continue;
        }
        set_header(k, text(v), &mut out_headers);
    }
    let task_headers: Map<String, Value> = match headers {
        Value::Object(m) => m.clone(),
        Value::String(s) if !s.trim().is_empty() => {
            serde_json::from_str(s).map_err(|e| format!("headers must be a mapping: {e}"))?
        }
        _ => Map::new(),
    };
    for (k, v) in &task_headers {
        set_header(k, text(v), &mut out_headers);
    }
    let content_type = out_headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let mut body = Vec::new();
    match method.as_str() {
        "GET" => {
            let query = match data {
                Value::Null => String::new(),
                Value::Object(m) => form(m),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !query.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&query);
            }
        }
        "HEAD" => {}
        _ => match data {
            Value::Null => {}
            Value::String(s) => body = s.clone().into_bytes(),
            v if content_type.contains("application/json") => body = v.to_string().into_bytes(),
            Value::Object(m) => {
                body = form(m).into_bytes();
                if content_type.is_empty() {
                    set_header(
                        "Content-Type",
                        "application/x-www-form-urlencoded".into(),
                        &mut out_headers,
                    );
                }
            }
            other => body = other.to_string().into_bytes(),
        },
    }
    let opt = |k: &str| {
        let v = &extra_options[k];
        if v.is_null() {
            extra.get(k).unwrap_or(&Value::Null)
        } else {
            v
        }
    };
    let flag = |v: &Value, default: bool| match v {
        Value::Bool(b) => *b,
        Value::String(s) => !matches!(
            s.to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        ),
        _ => default,
    };
    let timeout = match opt("timeout") {
        Value::Number(n) => n.as_f64().filter(|t| *t > 0.0).map(Duration::from_secs_f64),
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .filter(|t| *t > 0.0)
            .map(Duration::from_secs_f64),
        _ => None,
    };
    let basic_auth = s("login").map(|l| (l.to_string(), s("password").unwrap_or("").to_string()));
    Ok(HttpCall {
        method,
        url,
        headers: out_headers,
        body,
        basic_auth,
        timeout,
        verify: flag(opt("verify"), true),
        allow_redirects: flag(opt("allow_redirects"), true),
        check_response: flag(opt("check_response"), true),
    })
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// `a=1&b=2`, as requests encodes a mapping (a list value repeats its key).
fn form(m: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    for (k, v) in m {
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values {
            parts.push(format!(
                "{}={}",
                encode_query_value(k),
                encode_query_value(&text(v))
            ));
        }
    }
    parts.join("&")
}

/// Sends the request: TLS checked against the platform's roots unless `verify` is off.
pub fn send(call: &HttpCall) -> Result<HttpReply, String> {
    use base64::Engine;
    use ureq::tls::{RootCerts, TlsConfig};
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::PlatformVerifier)
        .disable_verification(!call.verify)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .max_redirects(if call.allow_redirects { 30 } else { 0 })
        .timeout_global(call.timeout)
        .timeout_connect(Some(call.timeout.unwrap_or(Duration::from_secs(60))))
        .tls_config(tls)
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(call.method.as_str())
        .uri(call.url.as_str());
    for (k, v) in &call.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some((login, password)) = &call.basic_auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
        req = req.header("Authorization", format!("Basic {token}"));
    }
    let req = req
        .body(call.body.clone())
        .map_err(|e| format!("invalid request: {e}"))?;
    let mut res = agent
        .run(req)
        .map_err(|e| format!("{} {}: {e}", call.method, call.url))?;
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let text = res
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("reading the response of {}: {e}", call.url))?;
    Ok(HttpReply {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        text,
        headers,
        url: call.url.clone(),
    })
}

/// HttpOperator's execute: the response's text is the return value; or with a
/// `response_check` (Python), a falsy answer fails the task, and with a
/// `response_filter` (Python) its value is the return value, as `process_response` does.
pub fn operator(
    args: &Map<String, Value>,
    conn: Option<&Value>,
    log: &mut dyn FnMut(&str),
    python: &mut dyn FnMut(&Value) -> Result<Value, String>,
) -> Done {
    let null = Value::Null;
    let get = |k: &str| args.get(k).unwrap_or(&null);
    let method = get("method").as_str().unwrap_or("POST");
    let endpoint = get("endpoint").as_str().unwrap_or("");
    let call = match build(
        conn,
        method,
        endpoint,
        get("data"),
        get("headers"),
        get("extra_options"),
    ) {
        Ok(c) => c,
        Err(e) => return Done::Failed(e),
    };
    log(&format!("Calling HTTP method {} {}", call.method, call.url));
    let reply = match send(&call) {
        Ok(r) => r,
        Err(e) => return Done::Failed(e),
    };
    if get("log_response").as_bool().unwrap_or(false) {
        log(&reply.text);
    }
    if call.check_response && reply.status >= 400 {
        log(&format!("HTTP error: {}", reply.reason));
        log(&reply.text);
        return Done::Failed(format!("{}:{}", reply.status, reply.reason));
    }
    let (check, filter) = (get("response_check"), get("response_filter"));
    if check.is_null() && filter.is_null() {
        return Done::Success(Some(Value::String(reply.text)));
    }
    let invoke = serde_json::json!({
        "kind": "http", "check": check, "filter": filter, "response": reply.to_json(),
    });
    match python(&invoke) {
        Ok(out) if out["check"] == Value::Bool(false) => {
            Done::Failed("Response check returned False.".into())
        }
        // A filter that returns None pushes no XCom, as a Python task's None.
        Ok(out) if !filter.is_null() => {
            Done::Success(Some(out["value"].clone()).filter(|v| !v.is_null()))
        }
        Ok(_) => Done::Success(Some(Value::String(reply.text))),
        Err(e) => Done::Failed(e),
    }
}

/// HttpSensor's poke (without a `response_check`): done when the endpoint answers
/// below 400; a 404 is "not yet" as in Airflow (any other error status fails the poke,
/// unless `extra_options.check_response` is false). `args` are the rendered `endpoint`,
/// `method` (GET), `request_params`, `headers`, `extra_options`.
///
/// With a `response_check` (Python), a response the status lets through is done when
/// the check answers truthy, as HttpSensor's poke returns the check's value.
pub fn poke_http(
    args: &Map<String, Value>,
    conn: Option<&Value>,
    log: &mut dyn FnMut(&str),
    python: &mut dyn FnMut(&Value) -> Result<Value, String>,
) -> Result<Poke, PokeError> {
    let null = Value::Null;
    let get = |k: &str| args.get(k).unwrap_or(&null);
    let method = get("method").as_str().unwrap_or("GET");
    let endpoint = get("endpoint").as_str().unwrap_or("");
    let call = match build(
        conn,
        method,
        endpoint,
        get("request_params"),
        get("headers"),
        get("extra_options"),
    ) {
        Ok(c) => c,
        Err(e) => return Err(PokeError::Error(e)),
    };
    log(&format!("Poking: {}", endpoint));
    match send(&call) {
        Ok(r) if r.status == 404 => Ok(Poke::NotYet),
        Ok(r) if r.status >= 400 && call.check_response => {
            log(&format!("HTTP error: {}", r.reason));
            log(&r.text);
            Err(PokeError::Error(format!("{}:{}", r.status, r.reason)))
        }
        Ok(r) if !get("response_check").is_null() => {
            let invoke = serde_json::json!({
                "kind": "http", "check": get("response_check"), "response": r.to_json(),
            });
            match python(&invoke) {
                // A PokeReturnValue's `xcom_value` comes back as `value`.
                Ok(out) if out["check"] == Value::Bool(true) => Ok(Poke::Done(
                    out.get("value").filter(|v| !v.is_null()).cloned(),
                )),
                Ok(_) => Ok(Poke::NotYet),
                Err(e) => Err(PokeError::Error(e)),
            }
        }
        Ok(_) => Ok(Poke::Done(None)),
        Err(e) => Err(PokeError::Error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_url_and_body_are_built_as_http_hook_builds_them() {
        let conn = json!({"host": "example.com", "schema": "https", "port": 8443, "login": "u", "password": "p",
            "extra": "{\"X-Token\": \"t\", \"timeout\": 5}"});
        let c = build(
            Some(&conn),
            "post",
            "run",
            &json!({"a": "1 2", "b": "x"}),
            &json!({}),
            &Value::Null,
        )
        .unwrap();
        assert_eq!(c.url, "https://example.com:8443/run");
        assert_eq!(c.method, "POST");
        assert_eq!(c.body, b"a=1%202&b=x");
        assert!(c.headers.contains(&("X-Token".into(), "t".into())));
        assert_eq!(c.timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.basic_auth, Some(("u".into(), "p".into())));
        let c = build(
            Some(&json!({"host": "http://h:1/api/"})),
            "GET",
            "x",
            &json!({"q": "v"}),
            &Value::Null,
            &Value::Null,
        )
        .unwrap();
        assert_eq!(c.url, "http://h:1/api/x?q=v");
        let j = build(
            Some(&json!({"host": "h"})),
            "POST",
            "/r",
            &json!({"d": 1}),
            &json!({"Content-Type": "application/json"}),
            &Value::Null,
        )
        .unwrap();
        assert_eq!(j.url, "http://h/r");
        assert_eq!(j.body, br#"{"d":1}"#);
        assert!(build(None, "GET", "/x", &Value::Null, &Value::Null, &Value::Null).is_err());
    }

    /// A server on loopback answering each connection with the next of `replies`.
    fn serve(replies: Vec<&'static str>) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for reply in replies {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = "ok";
                let _ = write!(
                    s,
                    "HTTP/1.1 {reply}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        port
    }

    #[test]
    fn the_http_poke_waits_on_404_and_fails_on_other_errors() {
        let port = serve(vec!["404 Not Found", "200 OK", "500 Internal Server Error"]);
        let conn = json!({"host": "127.0.0.1", "port": port});
        let args = json!({"endpoint": "/ready"}).as_object().unwrap().clone();
        let mut lines = Vec::new();
        let mut log = |l: &str| lines.push(l.to_string());
        assert_eq!(
            poke_http(&args, Some(&conn), &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Ok(Poke::NotYet)
        );
        assert_eq!(
            poke_http(&args, Some(&conn), &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Ok(Poke::Done(None))
        );
        assert_eq!(
            poke_http(&args, Some(&conn), &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Err(PokeError::Error("500:Internal Server Error".into()))
        );
        // Nothing listens there any more: the poke is an error, not a wait.
        assert!(matches!(
            poke_http(&args, Some(&conn), &mut log, &mut |_| Err(
                "no Python here".into()
            )),
            Err(PokeError::Error(_))
        ));
        assert!(lines.iter().any(|l| l == "Poking: /ready"), "{lines:?}");
    }
}
