//! A typed client of the Execution API: what a supervisor, and commands run inside a
//! task, use to reach state. Nothing here opens the database.
//!
//! Connection errors and 5xx answers are retried with a growing wait (the server may be
//! restarting); 4xx answers are results. A `Refreshed-API-Token` answer header replaces
//! the token for the following calls, as Airflow's task SDK does.
//!
//! A client reaches the API over HTTP, or, for a supervisor in the process that serves
//! the Execution API, in process ([`Transport::InProcess`]): the same requests, without
//! a socket, served on the caller's thread or the server's own queue. Retries and
//! results are the same either way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::percent::encode_segment;

/// The environment variables a task (and its supervisor) finds the API in.
pub const URL_VAR: &str = "UPDRAFT_EXECUTION_API_URL";
pub const TOKEN_VAR: &str = "UPDRAFT_TASK_TOKEN";

/// How many times a call is tried, and the first wait between tries (doubling).
const ATTEMPTS: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call did not give what was asked.
#[derive(Debug)]
pub enum CallError {
    /// The server answered with this status and body.
    Status(u16, Value),
    /// The server could not be reached, after every retry.
    Unreachable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(s, body) => write!(f, "the Execution API answered {s}: {body}"),
            CallError::Unreachable(e) => write!(f, "the Execution API is unreachable: {e}"),
        }
    }
}

/// How a client's requests reach the Execution API.
#[derive(Clone)]
pub enum Transport {
    /// Over HTTP, sharing the agent's kept-alive connections.
    Http(ureq::Agent),
    /// Through the server in this process, without a connection.
    InProcess(Arc<dyn InProcessApi>),
}

/// The Execution API served by this very process, reached without a socket. The server
/// implements it (`server::Running::in_process`); the executor only holds it, so it
/// need not know the server.
pub trait InProcessApi: Send + Sync {
    /// The Execution API's path, `{prefix}/execution/`: what a call's `target` starts with.
    fn base(&self) -> &str;

    /// One request; `target` is the path (and query) from the server's root. Waits at
    /// most `timeout` for a reply from another thread (one served on this thread runs to
    /// its end); `Err` says why there was none.
    fn call(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, String>;
}

/// A reply to an [`InProcessApi`] call.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Names as sent (any case).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Client {
    transport: Transport,
    base: String,
    token: Mutex<String>,
}

impl Client {
    /// `base` ends with `/execution/` (a trailing slash is added if missing).
    pub fn new(base: &str, token: &str) -> Client {
        Client::with_agent(agent(), base, token)
    }

    /// A client sharing `agent`'s pool of kept-alive connections with other clients:
    /// the executor's supervisor threads each have their own token but one agent.
    pub fn with_agent(agent: ureq::Agent, base: &str, token: &str) -> Client {
        Client::with_transport(Transport::Http(agent), base, token)
    }

    /// A client over `transport`; `base` is the API's URL for HTTP. In process, the
    /// server's own Execution API path is used instead, whatever URL tasks are given.
    pub fn with_transport(transport: Transport, base: &str, token: &str) -> Client {
        let base = match &transport {
            Transport::Http(_) => base,
            Transport::InProcess(server) => server.base(),
        };
        Client {
            base: format!("{}/", base.trim_end_matches('/')),
            transport,
            token: Mutex::new(token.to_string()),
        }
    }

    /// A client for commands run inside a task: URL and token from the environment.
    pub fn from_env(vars: &[(String, String)]) -> Option<Client> {
        let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Some(Client::new(&get(URL_VAR)?, &get(TOKEN_VAR)?))
    }

    /// The API's base URL, ending in `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> String {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), CallError> {
        self.call_tries(method, path, body, ATTEMPTS)
    }

    fn call_tries(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        attempts: u32,
    ) -> Result<(u16, Value), CallError> {
        let url = format!("{}{}", self.base, path);
        let mut wait = FIRST_WAIT;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let auth = format!("Bearer {}", self.token());
            let payload = body.map(Value::to_string).unwrap_or_default();
            match self.send(method, &url, &auth, payload) {
                Ok((status, refreshed, text)) => {
                    if let Some(t) = refreshed {
                        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = t;
                    }
                    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if status < 500 {
                        return Ok((status, value));
                    }
                    last = format!("{status} {text}");
                }
                Err(e) => last = e,
            }
            if attempt < attempts {
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
        Err(CallError::Unreachable(format!("{method} {url}: {last}")))
    }

    /// One try: the status, a refreshed token if the answer carries one, and the body;
    /// `Err` when there was no answer.
    fn send(
        &self,
        method: &str,
        url: &str,
        auth: &str,
        payload: String,
    ) -> Result<(u16, Option<String>, String), String> {
        let agent = match &self.transport {
            Transport::Http(agent) => agent,
            Transport::InProcess(server) => {
                let mut headers = vec![("Authorization", auth)];
                if method != "GET" {
                    headers.push(("Content-Type", "application/json"));
                }
                let answer = server.call(method, url, &headers, payload.into_bytes(), TIMEOUT)?;
                let refreshed = answer.header("refreshed-api-token").map(str::to_string);
                let text = String::from_utf8_lossy(&answer.body).into_owned();
                return Ok((answer.status, refreshed, text));
            }
        };
        let res = match method {
            "GET" => agent.get(url).header("Authorization", auth).call(),
            "PUT" => agent
                .put(url)
                .header("Authorization", auth)
                .content_type("application/json")
                .send(&payload),
            "POST" => agent
                .post(url)
                .header("Authorization", auth)
                .content_type("application/json")
                .send(&payload),
            _ => agent
                .patch(url)
                .header("Authorization", auth)
                .content_type("application/json")
                .send(&payload),
        };
        let mut r = res.map_err(|e| e.to_string())?;
        let refreshed = r
            .headers()
            .get("refreshed-api-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        Ok((status, refreshed, text))
    }

    fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value, CallError> {
        let (status, value) = self.call(method, path, body)?;
        if ok.contains(&status) {
            Ok(value)
        } else {
            Err(CallError::Status(status, value))
        }
    }

    /// Marks the task instance running; returns the run context.
    pub fn run(
        &self,
        ti_id: &str,
        pid: u32,
        hostname: &str,
        unixname: &str,
        start_date: DateTime<Utc>,
    ) -> Result<Value, CallError> {
        let body = json!({"pid": pid, "hostname": hostname, "unixname": unixname, "start_date": start_date});
        self.expect(
            "PATCH",
            &format!("task-instances/{ti_id}/run"),
            Some(&body),
            &[200],
        )
    }

    /// Ok(true) while the task may go on; Ok(false) when the server says it must stop.
    pub fn heartbeat(&self, ti_id: &str, pid: u32, hostname: &str) -> Result<bool, CallError> {
        let body = json!({"pid": pid, "hostname": hostname});
        match self.call(
            "PUT",
            &format!("task-instances/{ti_id}/heartbeat"),
            Some(&body),
        )? {
            (204 | 200, _) => Ok(true),
            (404 | 409 | 410, _) => Ok(false),
            (status, value) => Err(CallError::Status(status, value)),
        }
    }

    /// Reports the end of the try.
    pub fn finish(
        &self,
        ti_id: &str,
        state: &str,
        end: DateTime<Utc>,
        rendered: Option<&str>,
    ) -> Result<(), CallError> {
        self.finish_with_outlets(ti_id, state, end, rendered, &[])
    }

    /// `finish`, with the task's `outlet_events` (extras it set on its outlets, events
    /// it attached to its aliases) as the Task SDK sends them with a success.
    pub fn finish_with_outlets(
        &self,
        ti_id: &str,
        state: &str,
        end: DateTime<Utc>,
        rendered: Option<&str>,
        outlet_events: &[Value],
    ) -> Result<(), CallError> {
        let mut body = json!({"state": state, "end_date": end, "rendered_command": rendered});
        if !outlet_events.is_empty() {
            body["outlet_events"] = json!(outlet_events);
        }
        self.expect(
            "PATCH",
            &format!("task-instances/{ti_id}/state"),
            Some(&body),
            &[200, 204],
        )
        .map(|_| ())
    }

    /// `up_for_reschedule` until `reschedule_date`, as the Task SDK's `RescheduleTask`.
    pub fn reschedule(
        &self,
        ti_id: &str,
        reschedule_date: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), CallError> {
        let body = json!({"state": "up_for_reschedule", "reschedule_date": reschedule_date, "end_date": end});
        self.expect(
            "PATCH",
            &format!("task-instances/{ti_id}/state"),
            Some(&body),
            &[200, 204],
        )
        .map(|_| ())
    }

    /// Claims a DAG callback request; its callbacks and context.
    pub fn dag_callback_run(&self, id: i64) -> Result<Value, CallError> {
        self.expect(
            "PATCH",
            &format!("dag-callbacks/{id}/run"),
            Some(&json!({})),
            &[200],
        )
    }

    /// Says how a DAG callback request's run ended: `success` or `failed`.
    pub fn dag_callback_finish(&self, id: i64, state: &str) -> Result<(), CallError> {
        self.expect(
            "PATCH",
            &format!("dag-callbacks/{id}/state"),
            Some(&json!({"state": state})),
            &[200, 204],
        )
        .map(|_| ())
    }

    /// A GET with query parameters (repeated names allowed), its JSON answer.
    pub fn get_with_query(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CallError> {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::percent::encode_query(v)))
            .collect();
        match self.call("GET", &format!("{path}?{}", q.join("&")), None)? {
            (200, v) => Ok(v),
            (s, v) => Err(CallError::Status(s, v)),
        }
    }

    pub fn variable(&self, key: &str) -> Result<Option<String>, CallError> {
        match self.call("GET", &format!("variables/{}", encode_segment(key)), None)? {
            (200, v) => Ok(v["value"].as_str().map(str::to_string)),
            (404, _) => Ok(None),
            (s, v) => Err(CallError::Status(s, v)),
        }
    }

    pub fn connection(&self, conn_id: &str) -> Result<Option<Value>, CallError> {
        match self.call(
            "GET",
            &format!("connections/{}", encode_segment(conn_id)),
            None,
        )? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (s, v) => Err(CallError::Status(s, v)),
        }
    }

    pub fn xcom_get(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> Result<Option<Value>, CallError> {
        let path = format!(
            "xcoms/{}/{}/{}/{}",
            encode_segment(dag_id),
            encode_segment(run_id),
            encode_segment(task_id),
            encode_segment(key)
        );
        match self.call("GET", &path, None)? {
            (200, v) => Ok(Some(v["value"].clone())),
            (404, _) => Ok(None),
            (s, v) => Err(CallError::Status(s, v)),
        }
    }

    /// Every value of an XCom of a task, in map index order (one for a task that is not
    /// mapped): the Execution API's slice route, as Airflow's `XCom.get_all`.
    pub fn xcom_all(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> Result<Vec<Value>, CallError> {
        let path = format!(
            "xcoms/{}/{}/{}/{}/slice",
            encode_segment(dag_id),
            encode_segment(run_id),
            encode_segment(task_id),
            encode_segment(key)
        );
        match self.call("GET", &path, None)? {
            (200, Value::Array(values)) => Ok(values),
            (s, v) => Err(CallError::Status(s, v)),
        }
    }

    /// Records the render of the task's `map_index_template`.
    pub fn rendered_map_index(&self, ti_id: &str, text: &str) -> Result<(), CallError> {
        let path = format!(
            "task-instances/{}/rendered-map-index",
            encode_segment(ti_id)
        );
        self.expect(
            "PATCH",
            &path,
            Some(&Value::String(text.to_string())),
            &[204],
        )
        .map(|_| ())
    }

    pub fn xcom_set(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
        value: &Value,
        mapped_length: Option<u64>,
    ) -> Result<(), CallError> {
        let mut path = format!(
            "xcoms/{}/{}/{}/{}",
            encode_segment(dag_id),
            encode_segment(run_id),
            encode_segment(task_id),
            encode_segment(key)
        );
        // The length of a value a mapped downstream expands over, which the server
        // bounds by `[core] max_map_length`, as the Task SDK sends it.
        if let Some(n) = mapped_length {
            path.push_str(&format!("?mapped_length={n}"));
        }
        self.expect("POST", &path, Some(value), &[200, 201])
            .map(|_| ())
    }
}

/// The human-in-the-loop calls (Airflow's `upsert_hitl_detail`, the `awaiting_input`
/// transition) and the skip of tasks downstream that an answer leads to.
impl Client {
    /// Writes the request of a human-in-the-loop task (`POST /hitlDetails/{ti_id}`).
    pub fn hitl_upsert(&self, ti_id: &str, request: &Value) -> Result<Value, CallError> {
        let path = format!("hitlDetails/{}", encode_segment(ti_id));
        self.expect("POST", &path, Some(request), &[201])
    }

    /// Parks the try until its answer comes, or `timeout_secs` pass (the server resumes
    /// it at once when the answer is already there).
    pub fn hitl_park(&self, ti_id: &str, timeout_secs: Option<f64>) -> Result<(), CallError> {
        let body = json!({"state": "awaiting_input", "timeout": timeout_secs, "next_method": "execute_complete", "next_kwargs": {}});
        self.expect(
            "PATCH",
            &format!("task-instances/{}/state", encode_segment(ti_id)),
            Some(&body),
            &[204],
        )
        .map(|_| ())
    }
}

/// An HTTP agent as every client uses it: statuses are results, not errors.
///
/// ureq keeps 3 idle connections per host. Keeping one per supervisor made calls cheaper
/// but stalled whole runs for seconds: tiny_http 0.12 serves each connection on a thread
/// of its own pool, and a burst of new connections can queue behind threads held by
/// idle kept-alive ones (see bench/PROFILES.md).
///
/// The timeouts bound connecting and each read and write, not the whole call: a total
/// (global) timeout makes ureq resolve the host on a thread of its own, one per call.
///
/// Each connection reads and writes through buffers of [`BUFFER`] bytes. ureq's default
/// is 128 KiB each way, sized for any server on the internet; every supervisor holds a
/// connection while its task runs, so at parallelism 32 those buffers alone were 8 MiB
/// of the standalone's heap (heaptrack's largest peak consumer in a 1,000-task run),
/// and glibc's arenas kept the freed 128 KiB blocks resident afterwards. The Execution
/// API's answer heads are a few hundred bytes (a refreshed token the longest), and
/// bodies of any size stream through the buffer.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(TIMEOUT))
        .timeout_per_read(Some(TIMEOUT))
        .timeout_per_write(Some(TIMEOUT))
        .input_buffer_size(BUFFER)
        .output_buffer_size(BUFFER)
        .max_response_header_size(MAX_HEAD)
        .build()
        .into()
}

/// The read and write buffer of each connection to the Execution API (see [`agent`]).
const BUFFER: usize = 16 * 1024;

/// The longest answer head accepted: it must fit the read buffer with room to spare, so
/// a longer one fails with ureq's clear "response header too large" error.
const MAX_HEAD: usize = 8 * 1024;

/// The Execution API's dag-runs routes, as Airflow's task SDK calls them for
/// TriggerDagRunOperator (executor::operators::trigger).
impl Client {
    /// `POST dag-runs/{dag_id}/{run_id}`: the status (204 made, 409 exists, 404 no DAG)
    /// and the body.
    pub fn trigger_dag_run(
        &self,
        dag_id: &str,
        run_id: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let path = format!(
            "dag-runs/{}/{}",
            encode_segment(dag_id),
            encode_segment(run_id)
        );
        self.call("POST", &path, Some(body))
    }

    /// `POST dag-runs/{dag_id}/{run_id}/clear`.
    pub fn clear_dag_run(&self, dag_id: &str, run_id: &str) -> Result<(), CallError> {
        let path = format!(
            "dag-runs/{}/{}/clear",
            encode_segment(dag_id),
            encode_segment(run_id)
        );
        self.expect("POST", &path, Some(&json!({})), &[200, 204])
            .map(|_| ())
    }

    /// `GET dag-runs/{dag_id}/{run_id}/state`: the run's state.
    pub fn dag_run_state(&self, dag_id: &str, run_id: &str) -> Result<String, CallError> {
        let path = format!(
            "dag-runs/{}/{}/state",
            encode_segment(dag_id),
            encode_segment(run_id)
        );
        let v = self.expect("GET", &path, None, &[200])?;
        Ok(v["state"].as_str().unwrap_or("").to_string())
    }

    /// `PATCH task-instances/{id}/skip-downstream`: skips these tasks of the run.
    pub fn skip_downstream(&self, ti_id: &str, tasks: &[String]) -> Result<(), CallError> {
        let path = format!("task-instances/{}/skip-downstream", encode_segment(ti_id));
        self.expect("PATCH", &path, Some(&json!({"tasks": tasks})), &[200, 204])
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    /// Issue 22: every supervisor's connection held ureq's default 128 KiB read and
    /// 128 KiB write buffers, 8 MiB at parallelism 32.
    #[test]
    fn connections_have_small_buffers() {
        let agent = agent();
        assert!(agent.config().input_buffer_size() <= BUFFER);
        assert!(agent.config().output_buffer_size() <= BUFFER);
        assert!(agent.config().max_response_header_size() < agent.config().input_buffer_size());
    }

    /// Bodies far larger than the buffers still go through whole, both ways.
    #[test]
    fn bodies_larger_than_the_buffers_pass_whole() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut got = vec![0u8; length];
            reader.read_exact(&mut got).unwrap();
            // The answer echoes the request body, as a JSON string, twice.
            let text = String::from_utf8(got).unwrap();
            let body = json!({"a": text, "b": text}).to_string();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        });
        let big = "x".repeat(10 * BUFFER + 7);
        let mut res = agent()
            .post(&url)
            .content_type("application/json")
            .send(big.as_str())
            .unwrap();
        let value: Value = serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap();
        server.join().unwrap();
        assert_eq!(value["a"].as_str().map(str::len), Some(big.len()));
        assert_eq!(value["b"], value["a"]);
    }
}
