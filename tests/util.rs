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

    #[cfg(unix)]
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
/// connection for every request.
pub fn agent(keep_alive: bool) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)));
    if !keep_alive {
        cfg = cfg.max_idle_connections(0).max_idle_connections_per_host(0);
    }
    cfg.build().into()
}

/// GET a URL: (status, body).
pub fn get(url: &str) -> (u16, String) {
    let mut res = agent(false)
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = res.status().as_u16();
    (status, res.body_mut().read_to_string().unwrap_or_default())
}

/// GET a URL and parse JSON.
pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(url);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}")),
    )
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
            "POST",
            "/auth/token",
            Some(serde_json::json!({"username": user, "password": password})),
        );
        assert_eq!(status, 201, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// `METHOD base+path` with a bearer token (none if empty) and a JSON body: (status, JSON
    /// or the text as a JSON string, Null when empty).
    pub fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let a = agent(true);
        let auth = format!("Bearer {token}");
        let res = match (method, body) {
            ("GET", _) => {
                let r = a.get(&url);
                if token.is_empty() {
                    r.call()
                } else {
                    r.header("Authorization", &auth).call()
                }
            }
            ("DELETE", _) => {
                let r = a.delete(&url);
                if token.is_empty() {
                    r.call()
                } else {
                    r.header("Authorization", &auth).call()
                }
            }
            (m, body) => {
                let r = match m {
                    "POST" => a.post(&url),
                    "PUT" => a.put(&url),
                    _ => a.patch(&url),
                };
                let r = if token.is_empty() {
                    r
                } else {
                    r.header("Authorization", &auth)
                };
                r.content_type("application/json")
                    .send(body.map(|b| b.to_string()).unwrap_or_default())
            }
        };
        let mut res = res.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        (status, value)
    }
}

/// Users of every role, for API tests.
pub const USERS: (&str, &str) = (
    "UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "admin:admin,viewer:viewer,user:user,op:op",
);
