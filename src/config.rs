//! Configuration: Airflow's sections and keys, read from `updraft.cfg` and the environment.
//!
//! Precedence, highest first: `UPDRAFT__SECTION__KEY`, `AIRFLOW__SECTION__KEY`, the file
//! `$UPDRAFT_HOME/updraft.cfg`, the defaults in [`KEYS`]. Every value is validated once,
//! here, and a bad one stops the program naming its key; after that the rest of the crate
//! reads typed fields of [`Config`], which is passed around, never global.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The kinds of value a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Str,
    /// A whole number at least this large.
    Int(i64),
    /// A number of seconds, at least zero.
    Secs,
    Bool,
    /// One of a closed list of words (compared case-insensitively).
    Word(&'static [&'static str]),
    /// A string that `list` shows as `< hidden >`.
    Secret,
}

/// One key updraft knows, with Airflow's default where Airflow has one.
/// `{UPDRAFT_HOME}` in a default or a value stands for the home directory.
pub struct Key {
    pub section: &'static str,
    pub key: &'static str,
    pub default: &'static str,
    pub kind: Kind,
}

const fn key(section: &'static str, key: &'static str, default: &'static str, kind: Kind) -> Key {
    Key {
        section,
        key,
        default,
        kind,
    }
}

/// Every key updraft reads. `config list` prints them in this order.
pub const KEYS: &[Key] = &[
    key("core", "dags_folder", "{UPDRAFT_HOME}/dags", Kind::Str),
    key("core", "parallelism", "32", Kind::Int(1)),
    key("core", "max_active_tasks_per_dag", "16", Kind::Int(1)),
    key("core", "max_active_runs_per_dag", "16", Kind::Int(1)),
    key("core", "dags_are_paused_at_creation", "True", Kind::Bool),
    key("core", "load_examples", "True", Kind::Bool),
    key("core", "default_timezone", "utc", Kind::Word(&["utc"])),
    key("core", "execution_api_server_url", "", Kind::Str),
    // After Ctrl-C, how long running tasks may finish before they are stopped for retry.
    key("core", "killed_task_cleanup_time", "60", Kind::Secs),
    // Whether `POST /api/v2/connections/test` may run; Airflow's default keeps it off.
    key(
        "core",
        "test_connection",
        "Disabled",
        Kind::Word(&["disabled", "enabled", "hidden"]),
    ),
    key(
        "core",
        "simple_auth_manager_users",
        "admin:admin",
        Kind::Str,
    ),
    key(
        "core",
        "simple_auth_manager_all_admins",
        "False",
        Kind::Bool,
    ),
    key(
        "core",
        "simple_auth_manager_passwords_file",
        "{UPDRAFT_HOME}/simple_auth_manager_passwords.json.generated",
        Kind::Str,
    ),
    key(
        "database",
        "sql_alchemy_conn",
        "sqlite:///{UPDRAFT_HOME}/updraft.db",
        Kind::Str,
    ),
    key("api", "host", "127.0.0.1", Kind::Str),
    key("api", "port", "8080", Kind::Int(0)),
    key("api", "base_url", "", Kind::Str),
    key("api", "workers", "4", Kind::Int(1)),
    key("api", "server_type", "uvicorn", Kind::Str),
    key("api", "worker_refresh_interval", "0", Kind::Secs),
    key("api", "worker_refresh_batch_size", "1", Kind::Int(1)),
    key("api", "reload_on_plugin_change", "False", Kind::Bool),
    key("api", "proxy_headers", "False", Kind::Bool),
    key(
        "api",
        "expose_config",
        "False",
        Kind::Word(&["true", "false", "non-sensitive-only"]),
    ),
    key("api", "maximum_page_limit", "100", Kind::Int(1)),
    key("api", "fallback_page_limit", "50", Kind::Int(1)),
    key("api", "max_body_size", "10485760", Kind::Int(1)),
    // Airflow passes it to uvicorn as `timeout_keep_alive`: how long an idle kept-alive
    // connection stays open.
    key("api", "worker_timeout", "120", Kind::Secs),
    // updraft's own: the time a client has to send a whole request once it has begun
    // (head and body), and to take each piece of a reply.
    key("api", "request_timeout", "30", Kind::Secs),
    // updraft's own: connections served at once (each costs a thread and two sockets).
    key("api", "max_connections", "4096", Kind::Int(1)),
    key("api_auth", "jwt_secret", "", Kind::Secret),
    key("api_auth", "jwt_expiration_time", "86400", Kind::Secs),
    key("execution_api", "jwt_expiration_time", "600", Kind::Secs),
    key("scheduler", "scheduler_heartbeat_sec", "5", Kind::Secs),
    key(
        "scheduler",
        "scheduler_health_check_threshold",
        "30",
        Kind::Secs,
    ),
    // Airflow re-lists the folder every 300 s but re-parses changed files every 30 s
    // (`min_file_process_interval`); updraft does both in one cheap stat-based pass.
    key("scheduler", "dag_dir_list_interval", "30", Kind::Secs),
    key(
        "scheduler",
        "task_instance_heartbeat_timeout",
        "300",
        Kind::Secs,
    ),
    key(
        "logging",
        "base_log_folder",
        "{UPDRAFT_HOME}/logs",
        Kind::Str,
    ),
    key(
        "logging",
        "logging_level",
        "INFO",
        Kind::Word(&["debug", "info", "warning", "error", "critical"]),
    ),
];

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(var) => f.write_str(var),
        }
    }
}

/// One effective value, as `config list` shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub section: &'static str,
    pub key: &'static str,
    pub value: String,
    pub source: Source,
    pub kind: Kind,
}

/// The validated configuration. Built once by [`Config::load`]; no `Default`.
#[derive(Clone)]
pub struct Config {
    pub home: PathBuf,
    pub entries: Vec<Entry>,
    /// Unknown keys seen in the file or the environment, as warnings to log.
    pub warnings: Vec<String>,
    pub core: Core,
    pub database: Database,
    pub api: Api,
    pub auth: Auth,
    pub scheduler: Scheduler,
    pub logging: Logging,
}

#[derive(Debug, Clone)]
pub struct Core {
    pub dags_folder: PathBuf,
    pub parallelism: u32,
    pub max_active_tasks_per_dag: u32,
    pub max_active_runs_per_dag: u32,
    pub dags_are_paused_at_creation: bool,
    pub load_examples: bool,
    /// Empty when not set: then derived from the API address (see the server).
    pub execution_api_server_url: String,
    pub killed_task_cleanup_time: f64,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Api {
    pub host: String,
    pub port: u16,
    pub base_url: String,
    pub workers: u32,
    pub server_type: String,
    pub worker_refresh_interval: f64,
    pub worker_refresh_batch_size: u32,
    pub reload_on_plugin_change: bool,
    pub proxy_headers: bool,
    pub expose_config: String,
    pub maximum_page_limit: u32,
    pub fallback_page_limit: u32,
    pub max_body_size: u64,
    /// Seconds an idle kept-alive connection stays open.
    pub worker_timeout: f64,
    /// Seconds a client has to send a request once begun, and to take a piece of a reply.
    pub request_timeout: f64,
    pub max_connections: u32,
}

/// The most API workers a pool may have (`[api] workers`, `--workers`, SIGTTIN): each is
/// a thread with its own database connection, and past a few per core more only contend.
pub const MAX_WORKERS: u32 = 64;

/// Authentication settings; `Debug` hides the secret.
#[derive(Clone)]
pub struct Auth {
    pub users: Vec<(String, String)>,
    pub all_admins: bool,
    pub passwords_file: PathBuf,
    pub jwt_secret: String,
    pub jwt_expiration_time: f64,
    pub execution_jwt_expiration_time: f64,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users)
            .field("all_admins", &self.all_admins)
            .field("passwords_file", &self.passwords_file)
            .field("jwt_secret", &"< hidden >")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Scheduler {
    pub heartbeat_sec: f64,
    pub health_check_threshold: f64,
    pub dag_dir_list_interval: f64,
    pub task_instance_heartbeat_timeout: f64,
}

#[derive(Debug, Clone)]
pub struct Logging {
    pub base_log_folder: PathBuf,
    pub level: log::LevelFilter,
}

/// The largest number of seconds a key takes (100 years). Larger values would overflow
/// `Duration` and `Instant` arithmetic (on Windows an `Instant` counts from boot), and
/// mean "never" anyway.
const MAX_SECS: f64 = 3_153_600_000.0;

/// The roles of Airflow's SimpleAuthManager, lowest first.
pub const ROLES: &[&str] = &["viewer", "user", "op", "admin"];

impl Config {
    /// Loads the configuration for `home` from its file and `env` (the process
    /// environment in production; any list in tests).
    pub fn load(home: &Path, env: &[(String, String)]) -> Result<Config> {
        let file = home.join("updraft.cfg");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&file, e)),
        };
        Config::from_sources(home, &file, &text, env)
    }

    /// Resolves every key from its sources, then validates the whole set.
    pub fn from_sources(
        home: &Path,
        file: &Path,
        file_text: &str,
        env: &[(String, String)],
    ) -> Result<Config> {
        let mut warnings = Vec::new();
        let file_values = parse_ini(file_text, file, &mut warnings)?;
        for (section, key) in file_values.keys() {
            if find(section, key).is_none() {
                warnings.push(format!(
                    "{}: unknown key [{section}] {key} is ignored",
                    file.display()
                ));
            }
        }
        for (var, _) in env {
            for prefix in ["UPDRAFT__", "AIRFLOW__"] {
                let Some(rest) = var.strip_prefix(prefix) else {
                    continue;
                };
                let known = rest.split_once("__").is_some_and(|(s, k)| {
                    find(&s.to_ascii_lowercase(), &k.to_ascii_lowercase()).is_some()
                });
                // Airflow users carry many AIRFLOW__ settings updraft has no use for;
                // only our own prefix is worth a warning.
                if !known && prefix == "UPDRAFT__" {
                    warnings.push(format!("unknown setting {var} is ignored"));
                }
            }
        }

        let home_str = home.to_string_lossy();
        let entries: Vec<Entry> = KEYS
            .iter()
            .map(|k| {
                let var = |prefix: &str| {
                    format!(
                        "{prefix}__{}__{}",
                        k.section.to_ascii_uppercase(),
                        k.key.to_ascii_uppercase()
                    )
                };
                let from_env = ["UPDRAFT", "AIRFLOW"].iter().find_map(|p| {
                    let name = var(p);
                    env.iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| (v.clone(), Source::Env(name)))
                });
                let (raw, source) = from_env
                    .or_else(|| {
                        file_values
                            .get(&(k.section.to_string(), k.key.to_string()))
                            .map(|v| (v.clone(), Source::File(file.to_path_buf())))
                    })
                    .unwrap_or_else(|| (k.default.to_string(), Source::Default));
                let value = raw
                    .replace("{UPDRAFT_HOME}", &home_str)
                    .replace("{AIRFLOW_HOME}", &home_str);
                Entry {
                    section: k.section,
                    key: k.key,
                    value,
                    source,
                    kind: k.kind,
                }
            })
            .collect();
        for e in &entries {
            check_kind(e)?;
        }
        Config::from_entries(home, entries, warnings)
    }

    fn from_entries(home: &Path, entries: Vec<Entry>, warnings: Vec<String>) -> Result<Config> {
        let get = |section: &str, key: &str| -> &Entry {
            entries
                .iter()
                .find(|e| e.section == section && e.key == key)
                .expect("every key in KEYS has an entry")
        };
        let s = |section: &str, key: &str| get(section, key).value.trim().to_string();
        let int = |section: &str, key: &str| -> i64 { s(section, key).parse().unwrap_or(0) };
        let secs = |section: &str, key: &str| -> f64 { s(section, key).parse().unwrap_or(0.0) };
        let boolean = |section: &str, key: &str| parse_bool(&s(section, key)).unwrap_or(false);

        let port = get("api", "port");
        let port_value = u16::try_from(int("api", "port"))
            .map_err(|_| bad(port, "expected a port number from 0 to 65535"))?;
        let db = get("database", "sql_alchemy_conn");
        let db_path = sqlite_path(&db.value).ok_or_else(|| {
            bad(db, "expected a sqlite:/// URL, e.g. sqlite:////home/me/updraft/updraft.db (updraft stores its state in SQLite only)")
        })?;
        let server_type = get("api", "server_type");
        if server_type.value.trim() != "uvicorn" {
            return Err(bad(
                server_type,
                "process workers are not supported yet; only 'uvicorn' (updraft's thread pool) is accepted",
            ));
        }
        let base_url = get("api", "base_url");
        if !base_url.value.is_empty()
            && !base_url.value.contains("://")
            && !base_url.value.starts_with('/')
        {
            return Err(bad(
                base_url,
                "expected a URL such as http://localhost:8080/prefix, or a path such as /prefix",
            ));
        }
        let workers = get("api", "workers");
        if int("api", "workers") > i64::from(MAX_WORKERS) {
            return Err(bad(
                workers,
                &format!("expected at most {MAX_WORKERS} workers"),
            ));
        }
        for key in ["worker_timeout", "request_timeout"] {
            if secs("api", key) <= 0.0 {
                return Err(bad(get("api", key), "expected a number of seconds above 0"));
            }
        }
        let users_entry = get("core", "simple_auth_manager_users");
        let users = parse_users(&users_entry.value).map_err(|reason| bad(users_entry, &reason))?;
        let level = match s("logging", "logging_level").to_ascii_lowercase().as_str() {
            "debug" => log::LevelFilter::Debug,
            "warning" => log::LevelFilter::Warn,
            "error" | "critical" => log::LevelFilter::Error,
            _ => log::LevelFilter::Info,
        };

        Ok(Config {
            home: home.to_path_buf(),
            core: Core {
                dags_folder: PathBuf::from(s("core", "dags_folder")),
                parallelism: int("core", "parallelism") as u32,
                max_active_tasks_per_dag: int("core", "max_active_tasks_per_dag") as u32,
                max_active_runs_per_dag: int("core", "max_active_runs_per_dag") as u32,
                dags_are_paused_at_creation: boolean("core", "dags_are_paused_at_creation"),
                load_examples: boolean("core", "load_examples"),
                execution_api_server_url: s("core", "execution_api_server_url"),
                killed_task_cleanup_time: secs("core", "killed_task_cleanup_time"),
            },
            database: Database { path: db_path },
            api: Api {
                host: s("api", "host"),
                port: port_value,
                base_url: s("api", "base_url"),
                workers: int("api", "workers") as u32,
                server_type: s("api", "server_type"),
                worker_refresh_interval: secs("api", "worker_refresh_interval"),
                worker_refresh_batch_size: int("api", "worker_refresh_batch_size") as u32,
                reload_on_plugin_change: boolean("api", "reload_on_plugin_change"),
                proxy_headers: boolean("api", "proxy_headers"),
                expose_config: s("api", "expose_config").to_ascii_lowercase(),
                maximum_page_limit: int("api", "maximum_page_limit") as u32,
                fallback_page_limit: int("api", "fallback_page_limit") as u32,
                max_body_size: int("api", "max_body_size") as u64,
                worker_timeout: secs("api", "worker_timeout"),
                request_timeout: secs("api", "request_timeout"),
                max_connections: u32::try_from(int("api", "max_connections")).unwrap_or(u32::MAX),
            },
            auth: Auth {
                users,
                all_admins: boolean("core", "simple_auth_manager_all_admins"),
                passwords_file: PathBuf::from(s("core", "simple_auth_manager_passwords_file")),
                jwt_secret: s("api_auth", "jwt_secret"),
                jwt_expiration_time: secs("api_auth", "jwt_expiration_time"),
                execution_jwt_expiration_time: secs("execution_api", "jwt_expiration_time"),
            },
            scheduler: Scheduler {
                heartbeat_sec: secs("scheduler", "scheduler_heartbeat_sec"),
                health_check_threshold: secs("scheduler", "scheduler_health_check_threshold"),
                dag_dir_list_interval: secs("scheduler", "dag_dir_list_interval"),
                task_instance_heartbeat_timeout: secs(
                    "scheduler",
                    "task_instance_heartbeat_timeout",
                ),
            },
            logging: Logging {
                base_log_folder: PathBuf::from(s("logging", "base_log_folder")),
                level,
            },
            entries,
            warnings,
        })
    }

    /// The effective value of one key, as `config get-value` prints it.
    pub fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.section == section && e.key == key)
    }

    /// The text of a fresh `updraft.cfg`: every key, commented out at its default.
    pub fn template() -> String {
        let mut out = String::from(
            "# updraft configuration. Keys and sections are Apache Airflow's.\n\
             # Environment variables UPDRAFT__SECTION__KEY and AIRFLOW__SECTION__KEY override this file.\n\
             # {UPDRAFT_HOME} stands for the home directory.\n",
        );
        let mut section = "";
        for k in KEYS {
            if k.section != section {
                section = k.section;
                out.push_str(&format!("\n[{section}]\n"));
            }
            out.push_str(&format!("# {} = {}\n", k.key, k.default));
        }
        out
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("home", &self.home)
            .field("core", &self.core)
            .field("database", &self.database)
            .field("api", &self.api)
            .field("auth", &self.auth)
            .field("scheduler", &self.scheduler)
            .field("logging", &self.logging)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// The value as `config list` prints it: secrets hidden.
    pub fn display_value(&self) -> &str {
        if self.kind == Kind::Secret && !self.value.is_empty() {
            "< hidden >"
        } else {
            &self.value
        }
    }
}

fn find(section: &str, key: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.section == section && k.key == key)
}

fn bad(e: &Entry, reason: &str) -> Error {
    Error::Config {
        section: e.section,
        key: e.key,
        value: e.value.clone(),
        source: e.source.to_string(),
        reason: reason.to_string(),
    }
}

fn check_kind(e: &Entry) -> Result<()> {
    let v = e.value.trim();
    match e.kind {
        Kind::Str | Kind::Secret => Ok(()),
        Kind::Int(min) => match v.parse::<i64>() {
            Ok(n) if n >= min => Ok(()),
            Ok(_) => Err(bad(
                e,
                &format!("expected a whole number of at least {min}"),
            )),
            Err(_) => Err(bad(e, "expected a whole number")),
        },
        Kind::Secs => match v.parse::<f64>() {
            Ok(n) if (0.0..=MAX_SECS).contains(&n) => Ok(()),
            _ => Err(bad(
                e,
                "expected a number of seconds from 0 to 3153600000 (100 years)",
            )),
        },
        Kind::Bool => parse_bool(v)
            .map(|_| ())
            .ok_or_else(|| bad(e, "expected True or False")),
        Kind::Word(words) => {
            if words.iter().any(|w| w.eq_ignore_ascii_case(v)) {
                Ok(())
            } else {
                Err(bad(e, &format!("expected one of: {}", words.join(", "))))
            }
        }
    }
}

/// Airflow's `getboolean`: t/true/1 and f/false/0, any case.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "1" => Some(true),
        "f" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// `user:role,user:role`, roles from [`ROLES`].
fn parse_users(v: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut users = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (user, role) = item
            .split_once(':')
            .ok_or_else(|| format!("expected user:role pairs, got {item:?}"))?;
        let role = role.trim().to_ascii_lowercase();
        if !ROLES.contains(&role.as_str()) {
            return Err(format!(
                "unknown role {role:?} for user {user:?}; roles are {}",
                ROLES.join(", ")
            ));
        }
        users.push((user.trim().to_string(), role));
    }
    Ok(users)
}

/// The file path of a `sqlite:///relative` or `sqlite:////absolute` URL.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.trim().strip_prefix("sqlite:///")?;
    let rest = rest.split('?').next().unwrap_or(rest);
    // On Windows a path after `sqlite:///` is `C:/...`; on Unix an absolute path
    // keeps its own leading slash (`sqlite:////home/...`).
    (!rest.is_empty()).then(|| PathBuf::from(rest))
}

type IniValues = BTreeMap<(String, String), String>;

/// Reads INI text the way Python's configparser does for Airflow's file: `[section]`,
/// `key = value` or `key: value`, `#`/`;` comment lines, keys lowercased.
fn parse_ini(text: &str, file: &Path, warnings: &mut Vec<String>) -> Result<IniValues> {
    let mut values = IniValues::new();
    let mut section: Option<String> = None;
    // A UTF-8 byte order mark, as PowerShell 5 and old Notepad write one, is not text
    // (Python's configparser reads Airflow's file with `utf-8-sig` semantics too).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_ascii_lowercase());
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            warnings.push(format!(
                "{}:{}: line is neither [section] nor key = value; ignored",
                file.display(),
                n + 1
            ));
            continue;
        };
        let Some(section) = &section else {
            return Err(Error::Usage(format!(
                "{}:{}: key {:?} comes before any [section]",
                file.display(),
                n + 1,
                key.trim()
            )));
        };
        values.insert(
            (section.clone(), key.trim().to_ascii_lowercase()),
            value.trim().to_string(),
        );
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(Path::new("/h"), Path::new("/h/updraft.cfg"), file, &env)
    }

    #[test]
    fn precedence_env_over_airflow_env_over_file_over_default() {
        let file = "[api]\nport = 9000\nworkers = 2\nhost = 0.0.0.0\n";
        let c = load(
            file,
            &[
                ("AIRFLOW__API__PORT", "9100"),
                ("UPDRAFT__API__PORT", "9200"),
                ("AIRFLOW__API__WORKERS", "3"),
            ],
        )
        .unwrap();
        assert_eq!(c.api.port, 9200);
        assert_eq!(
            c.get("api", "port").unwrap().source,
            Source::Env("UPDRAFT__API__PORT".into())
        );
        assert_eq!(c.api.workers, 3);
        assert_eq!(
            c.get("api", "workers").unwrap().source,
            Source::Env("AIRFLOW__API__WORKERS".into())
        );
        assert_eq!(c.api.host, "0.0.0.0");
        assert_eq!(
            c.get("api", "host").unwrap().source,
            Source::File("/h/updraft.cfg".into())
        );
        assert_eq!(c.core.parallelism, 32);
        assert_eq!(
            c.get("core", "parallelism").unwrap().source,
            Source::Default
        );
        assert_eq!(c.core.dags_folder, PathBuf::from("/h/dags"));
        assert_eq!(c.database.path, PathBuf::from("/h/updraft.db"));
    }

    #[test]
    fn bad_values_name_their_key() {
        // (file text, environment, what the error must say)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("[api]\nport = eighty\n", &[], "[api] port = \"eighty\""),
            ("", &[("UPDRAFT__API__PORT", "70000")], "[api] port"),
            (
                "",
                &[("AIRFLOW__CORE__PARALLELISM", "0")],
                "[core] parallelism",
            ),
            (
                "[core]\nload_examples = maybe\n",
                &[],
                "[core] load_examples",
            ),
            (
                "",
                &[("UPDRAFT__API__SERVER_TYPE", "gunicorn")],
                "process workers are not supported",
            ),
            (
                "",
                &[("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", "postgresql://x")],
                "[database] sql_alchemy_conn",
            ),
            (
                "",
                &[("UPDRAFT__CORE__SIMPLE_AUTH_MANAGER_USERS", "bob:king")],
                "unknown role",
            ),
            (
                "",
                &[("UPDRAFT__LOGGING__LOGGING_LEVEL", "loud")],
                "[logging] logging_level",
            ),
            (
                "",
                &[("UPDRAFT__SCHEDULER__SCHEDULER_HEARTBEAT_SEC", "-1")],
                "[scheduler] scheduler_heartbeat_sec",
            ),
            ("port = 1\n", &[], "before any [section]"),
            ("[api]\nworkers = 65\n", &[], "at most 64 workers"),
            ("[api]\nrequest_timeout = 0\n", &[], "[api] request_timeout"),
            (
                "",
                &[("AIRFLOW__API__WORKER_TIMEOUT", "0")],
                "[api] worker_timeout",
            ),
            ("[api]\nmax_connections = 0\n", &[], "[api] max_connections"),
            (
                "",
                &[("UPDRAFT__CORE__KILLED_TASK_CLEANUP_TIME", "1e30")],
                "[core] killed_task_cleanup_time",
            ),
        ];
        for (file, env, want) in cases {
            let err = load(file, env).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{err} should contain {want}"
            );
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_file() {
        let c = load("\u{feff}[api]\r\nport = 9000\r\n", &[]).unwrap();
        assert_eq!(c.api.port, 9000);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn unknown_keys_warn() {
        let c = load(
            "[api]\nbogus = 1\n",
            &[("UPDRAFT__CORE__NOPE", "1"), ("AIRFLOW__CORE__NOPE", "1")],
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("[api] bogus"));
        assert!(c.warnings[1].contains("UPDRAFT__CORE__NOPE"));
    }

    #[test]
    fn template_parses_back_to_defaults() {
        let c = load(&Config::template(), &[]).unwrap();
        assert!(c.warnings.is_empty());
        assert!(c.entries.iter().all(|e| e.source == Source::Default));
    }

    #[test]
    fn secrets_are_hidden() {
        let c = load("[api_auth]\njwt_secret = s3cret\n", &[]).unwrap();
        assert_eq!(
            c.get("api_auth", "jwt_secret").unwrap().display_value(),
            "< hidden >"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
