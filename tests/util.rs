//! Test fixtures: a temporary home per test and the real `updraft` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh `UPDRAFT_HOME`, removed on drop.
pub struct TempHome {
    pub path: PathBuf,
}

impl TempHome {
    pub fn new() -> TempHome {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "updraft-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempHome { path }
    }

    /// The DAG folder, created.
    pub fn dags(&self) -> PathBuf {
        let d = self.path.join("dags");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Writes a file relative to the home, creating parent folders.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `updraft ARGS` with this home and without examples unless `env` says otherwise.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_clear()
            .env("UPDRAFT_HOME", &self.path)
            .env("UPDRAFT__CORE__LOAD_EXAMPLES", "False");
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run(cmd.output().expect("updraft runs"))
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The finished process, with helpers to read it.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout(),
                self.stderr()
            )
        })
    }
    /// Asserts the exit code, showing the output when it is wrong.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "stdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_updraft"))
}

/// A running `updraft` server process, killed on drop.
pub struct TestServer {
    pub child: std::process::Child,
    pub base: String,
    pub stderr_path: PathBuf,
    /// Passwords the server generated and printed, by user.
    pub passwords: Vec<(String, String)>,
}

impl TestServer {
    /// Starts `updraft ARGS` on 127.0.0.1:0 and waits for its "listening on URL" line.
    pub fn start(home: &TempHome, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        use std::io::BufRead;
        use std::process::Stdio;
        static N: AtomicU32 = AtomicU32::new(0);
        let stderr_path = home
            .path
            .join(format!("server-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_clear()
            .env("UPDRAFT_HOME", &home.path)
            .env("UPDRAFT__CORE__LOAD_EXAMPLES", "False")
            .env("UPDRAFT__API__HOST", "127.0.0.1")
            .env("UPDRAFT__API__PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("updraft starts");
        let stdout = child.stdout.take().unwrap();
        // Generated passwords come first, then the line that says the server is up.
        let mut reader = std::io::BufReader::new(stdout);
        let mut passwords = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let Some(rest) = line
                .trim()
                .strip_prefix("Simple auth manager | Password for user '")
            else {
                break;
            };
            if let Some((user, pass)) = rest.split_once("': ") {
                passwords.push((user.to_string(), pass.to_string()));
            }
        }
        // Keep reading, so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        // Servers print their URL; a scheduler prints a line without one.
        assert!(
            !line.is_empty(),
            "no output; log:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        let base = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        TestServer {
            child,
            base,
            stderr_path,
            passwords,
        }
    }

    /// `http://127.0.0.1:PORT` without the prefix.
    pub fn origin(&self) -> String {
        let after = self.base.find("://").map_or(0, |i| i + 3);
        match self.base[after..].find('/') {
            Some(i) => self.base[..after + i].to_string(),
            None => self.base.clone(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with `kill` (Unix).
    #[cfg(unix)]
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit by itself and returns its code.
    #[cfg(unix)]
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that returns 4xx/5xx as values. `keep_alive` false opens a new
/// connection for every request; pass one to [`Request::send_on`] to reuse its connections.
pub fn agent(keep_alive: bool) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)));
    if !keep_alive {
        cfg = cfg.max_idle_connections(0).max_idle_connections_per_host(0);
    }
    cfg.build().into()
}

/// The HTTP methods the tests send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP request: the only way the tests speak HTTP, apart from the raw-socket tests that
/// send malformed requests on purpose. Build it with [`request`] (or
/// [`TestServer::request`]), then `send`.
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    follow_redirects: bool,
    timeout: Option<std::time::Duration>,
}

/// `METHOD url`, no headers, no body, following redirects.
pub fn request(method: Method, url: &str) -> Request {
    Request {
        method,
        url: url.to_string(),
        headers: Vec::new(),
        body: None,
        follow_redirects: true,
        timeout: None,
    }
}

impl Request {
    /// `Authorization: Bearer TOKEN`.
    pub fn token(self, token: &str) -> Request {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Request {
        headers.iter().fold(self, |r, (k, v)| r.header(k, v))
    }

    /// A JSON body, with its content type.
    pub fn json(self, body: &serde_json::Value) -> Request {
        self.content_type("application/json").raw(body.to_string())
    }

    /// A body sent as it is; no content type unless one is set.
    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    pub fn content_type(self, value: &str) -> Request {
        self.header("Content-Type", value)
    }

    /// Answers a redirect with the redirect itself.
    pub fn no_redirects(mut self) -> Request {
        self.follow_redirects = false;
        self
    }

    /// Waits up to `limit` for the whole exchange instead of the agent's 30 s.
    pub fn timeout(mut self, limit: std::time::Duration) -> Request {
        self.timeout = Some(limit);
        self
    }

    /// Sends on a fresh connection; panics when no HTTP reply comes back.
    pub fn send(self) -> Reply {
        self.send_on(&agent(false))
    }

    /// Sends through `agent` (and its kept-alive connections); panics when no HTTP reply
    /// comes back.
    pub fn send_on(self, agent: &ureq::Agent) -> Reply {
        let what = format!("{} {}", self.method, self.url);
        self.try_send_on(agent)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Sends through `agent`; a transport error is a value.
    pub fn try_send_on(self, agent: &ureq::Agent) -> Result<Reply, ureq::Error> {
        fn dress<B>(mut r: ureq::RequestBuilder<B>, req: &Request) -> ureq::RequestBuilder<B> {
            for (k, v) in &req.headers {
                r = r.header(k, v);
            }
            let mut cfg = r.config();
            if !req.follow_redirects {
                cfg = cfg.max_redirects(0);
            }
            if req.timeout.is_some() {
                cfg = cfg.timeout_global(req.timeout);
            }
            cfg.build()
        }
        let url = &self.url;
        let res = match self.method {
            Method::Get => dress(agent.get(url), &self).call(),
            Method::Delete => dress(agent.delete(url), &self).call(),
            Method::Head => dress(agent.head(url), &self).call(),
            m => {
                let r = match m {
                    Method::Post => agent.post(url),
                    Method::Put => agent.put(url),
                    _ => agent.patch(url),
                };
                dress(r, &self).send(self.body.clone().unwrap_or_default())
            }
        };
        let mut res = res?;
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Ok(Reply {
            status: res.status().as_u16(),
            headers,
            text: res.body_mut().read_to_string().unwrap_or_default(),
        })
    }
}

/// What came back: status, headers (names lowercase) and the body as text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Reply {
    /// The first value of header `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics, showing it, when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The body as JSON, the text as a JSON string when it is not, Null when empty.
    pub fn value(&self) -> serde_json::Value {
        if self.text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&self.text)
                .unwrap_or_else(|_| serde_json::Value::String(self.text.clone()))
        }
    }
}

/// GET a URL: (status, body).
pub fn get(url: &str) -> (u16, String) {
    let r = request(Method::Get, url).send();
    (r.status, r.text)
}

/// GET a URL and parse JSON.
pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = request(Method::Get, url).send();
    let v = serde_json::from_str(&r.text)
        .unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {}", r.text));
    (r.status, v)
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl TestServer {
    /// A token for `user` through `POST /auth/token`, with the password it printed.
    pub fn login(&self, user: &str) -> String {
        let password = self
            .passwords
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no password printed for {user}: {:?}", self.passwords));
        let (status, body) = self.call(
            "",
            Method::Post,
            "/auth/token",
            Some(serde_json::json!({"username": user, "password": password})),
        );
        assert_eq!(status, 201, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// `METHOD base+path`, nothing set yet.
    pub fn request(&self, method: Method, path: &str) -> Request {
        request(method, &format!("{}{path}", self.base))
    }

    /// `METHOD base+path` with a bearer token (none if empty) and a JSON body: (status, JSON
    /// or the text as a JSON string, Null when empty). POST, PUT and PATCH without a body
    /// send an empty one as JSON.
    pub fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = self.request(method, path);
        if !token.is_empty() {
            r = r.token(token);
        }
        r = match (method, body) {
            (Method::Get | Method::Delete, _) => r,
            (_, Some(b)) => r.json(&b),
            (_, None) => r.content_type("application/json").raw(""),
        };
        let reply = r.send_on(&agent(true));
        (reply.status, reply.value())
    }
}

/// Users of every role, for API tests.
pub const USERS: (&str, &str) = (
    "UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "admin:admin,viewer:viewer,user:user,op:op",
);
