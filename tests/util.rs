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
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout(), self.stderr()))
    }
    /// Asserts the exit code, showing the output when it is wrong.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(self.code(), code, "stdout: {}\nstderr: {}", self.stdout(), self.stderr());
        self
    }
}

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_updraft"))
}

/// The fixture folder of DAG files.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}
