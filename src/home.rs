//! The home directory: where updraft keeps its config, database, DAGs and logs.
//!
//! `UPDRAFT_HOME`, else `~/updraft` (`%USERPROFILE%\updraft` on Windows). Created on
//! first use with a commented `updraft.cfg`, `dags/` and `logs/`.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};

/// The home directory named by the environment.
pub fn locate(env: &[(String, String)]) -> Result<PathBuf> {
    let var = |name: &str| {
        env.iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    };
    if let Some(home) = var("UPDRAFT_HOME") {
        return Ok(home);
    }
    let user_home = if cfg!(windows) {
        var("USERPROFILE")
    } else {
        var("HOME")
    };
    user_home
        .map(|h| h.join("updraft"))
        .ok_or_else(|| Error::Usage("cannot find a home directory: set UPDRAFT_HOME".into()))
}

/// Creates the home and its parts if missing; never overwrites an existing file.
pub fn ensure(home: &Path) -> Result<()> {
    std::fs::create_dir_all(home).map_err(|e| Error::io(home, e))?;
    let cfg = home.join("updraft.cfg");
    if !cfg.exists() {
        std::fs::write(&cfg, Config::template()).map_err(|e| Error::io(&cfg, e))?;
    }
    Ok(())
}

/// Creates the folders the config points at (the DAG folder and the log folder).
pub fn ensure_folders(cfg: &Config) -> Result<()> {
    for dir in [&cfg.core.dags_folder, &cfg.logging.base_log_folder] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}
