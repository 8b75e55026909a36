//! Configuration: Airflow's sections and keys, read from `updraft.cfg` and the environment.
//!
//! Precedence, highest first: a command's flags ([`Override`], e.g. `api-server --port`),
//! `UPDRAFT__SECTION__KEY`, `AIRFLOW__SECTION__KEY`, the file `$UPDRAFT_HOME/updraft.cfg`,
//! the defaults in [`KEYS`]. Every value is parsed once, here, by its [`Kind`] (with its
//! range), and a bad one stops the program naming its key and where it came from; after
//! that the rest of the crate reads typed fields of [`Config`], which is passed around,
//! never global.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::Zone;
use crate::process::HostEnv;

/// The kinds of value a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Str,
    /// A whole number from `min` to `max`; `unit` names what it counts, for the error.
    /// `max` never exceeds what the field it goes into holds.
    Int {
        min: i64,
        max: i64,
        unit: &'static str,
    },
    /// A TCP port, 0 to 65535 (0: any free port).
    Port,
    /// A number of seconds, from zero to [`MAX_SECS`].
    Secs,
    /// A number of seconds above zero, up to [`MAX_SECS`].
    PositiveSecs,
    Bool,
    /// One of a closed list of words (compared case-insensitively).
    Word(&'static [&'static str]),
    /// A time zone: an IANA name (`Europe/Amsterdam`), `utc`, or an offset (`+02:00`).
    Zone,
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

/// A count that goes into a `u32`, at least `min`.
const fn count(min: i64, unit: &'static str) -> Kind {
    Kind::Int {
        min,
        max: u32::MAX as i64,
        unit,
    }
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
    key(
        "core",
        "plugins_folder",
        "{UPDRAFT_HOME}/plugins",
        Kind::Str,
    ),
    key("core", "parallelism", "32", count(1, "tasks")),
    key("core", "max_active_tasks_per_dag", "16", count(1, "tasks")),
    key("core", "max_active_runs_per_dag", "16", count(1, "runs")),
    // The longest list or mapping a task may push for a mapped task to expand over.
    key("core", "max_map_length", "1024", count(1, "values")),
    key("core", "dags_are_paused_at_creation", "True", Kind::Bool),
    key("core", "load_examples", "True", Kind::Bool),
    key("core", "default_timezone", "utc", Kind::Zone),
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
    // updraft's own: the Python that runs Python tasks; empty finds one on PATH.
    key("core", "python_interpreter", "", Kind::Str),
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
    key("api", "port", "8080", Kind::Port),
    key("api", "base_url", "", Kind::Str),
    key(
        "api",
        "workers",
        "4",
        Kind::Int {
            min: 1,
            max: MAX_WORKERS as i64,
            unit: "workers",
        },
    ),
    key("api", "server_type", "uvicorn", Kind::Str),
    key("api", "worker_refresh_interval", "0", Kind::Secs),
    key("api", "worker_refresh_batch_size", "1", count(1, "workers")),
    key("api", "reload_on_plugin_change", "False", Kind::Bool),
    key("api", "proxy_headers", "False", Kind::Bool),
    key(
        "api",
        "expose_config",
        "False",
        Kind::Word(&["true", "false", "non-sensitive-only"]),
    ),
    key("api", "maximum_page_limit", "100", count(1, "items")),
    key("api", "fallback_page_limit", "50", count(1, "items")),
    key(
        "api",
        "max_body_size",
        "10485760",
        Kind::Int {
            min: 1,
            max: i64::MAX,
            unit: "bytes",
        },
    ),
    // Airflow passes it to uvicorn as `timeout_keep_alive`: how long an idle kept-alive
    // connection stays open.
    key("api", "worker_timeout", "120", Kind::PositiveSecs),
    // updraft's own: the time a client has to send a whole request once it has begun
    // (head and body), and to take each piece of a reply.
    key("api", "request_timeout", "30", Kind::PositiveSecs),
    // updraft's own: connections served at once (each costs a thread and two sockets).
    key("api", "max_connections", "4096", count(1, "connections")),
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
    /// The command line: the flag that set it (`--port`), or the command that sets it
    /// itself (`dags test`).
    Cli(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(var) => f.write_str(var),
            Source::Cli(what) => write!(f, "cli {what}"),
        }
    }
}

/// A value the command line sets, above the environment and the file: a flag such as
/// `api-server --port`, or what a command fixes for itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub section: &'static str,
    pub key: &'static str,
    pub value: String,
    /// The flag (`--port`) or command (`dags test`) that set it, as `config list` and
    /// errors name it.
    pub by: &'static str,
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
    /// The process environment as `app::Env` read it, for what starts tasks (PATH, the
    /// user, Windows' folders). Empty unless `app::load_config` built this `Config`.
    pub host: HostEnv,
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
    /// Declarative plugin files (`plugins.rs`).
    pub plugins_folder: PathBuf,
    pub parallelism: u32,
    pub max_active_tasks_per_dag: u32,
    pub max_active_runs_per_dag: u32,
    pub max_map_length: u32,
    pub dags_are_paused_at_creation: bool,
    pub load_examples: bool,
    /// Empty when not set: then derived from the API address (see the server).
    pub execution_api_server_url: String,
    pub killed_task_cleanup_time: f64,
    pub test_connection: TestConnection,
    /// `[core] python_interpreter`: empty when not set (then found on PATH).
    pub python_interpreter: String,
    /// The zone of DAGs without a start date (their cron schedules tick in it).
    pub default_timezone: Zone,
}

/// `[core] test_connection`: whether `POST /api/v2/connections/test` may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestConnection {
    Disabled,
    Enabled,
    Hidden,
}

/// `[api] expose_config`: whether `GET /api/v2/config` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExposeConfig {
    False,
    True,
    NonSensitiveOnly,
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
    pub expose_config: ExposeConfig,
    pub maximum_page_limit: u32,
    pub fallback_page_limit: u32,
    pub max_body_size: u64,
    /// Seconds an idle kept-alive connection stays open.
    pub worker_timeout: f64,
    /// Seconds a client has to send a request once begun, and to take a piece of a reply.
    pub request_timeout: f64,
    pub max_connections: u32,
}

/// Whether `[api] server_type` names a server this platform runs: `uvicorn` (the
/// thread pool, everywhere) or `gunicorn` (prefork worker processes, Unix only, as in
/// Airflow, whose gunicorn needs `fork` and `fcntl`).
pub fn check_server_type(value: &str, windows: bool) -> std::result::Result<(), &'static str> {
    match value {
        "uvicorn" => Ok(()),
        "gunicorn" if windows => Err(
            "gunicorn is Unix-only (it needs fork and fcntl, as in Airflow); on Windows use the default 'uvicorn' (updraft's thread pool, which also recycles its workers)",
        ),
        "gunicorn" => Ok(()),
        _ => Err(
            "expected 'uvicorn' (the default: worker threads in one process) or 'gunicorn' (worker processes, Unix only)",
        ),
    }
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
        Config::load_with_flags(home, env, &[])
    }

    /// [`Config::load`], with the command line's `flags` above the environment.
    pub fn load_with_flags(
        home: &Path,
        env: &[(String, String)],
        flags: &[Override],
    ) -> Result<Config> {
        let file = home.join("updraft.cfg");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&file, e)),
        };
        Config::from_sources(home, &file, &text, env, flags)
    }

    /// Resolves every key from its sources, then parses and checks the whole set.
    pub fn from_sources(
        home: &Path,
        file: &Path,
        file_text: &str,
        env: &[(String, String)],
        flags: &[Override],
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
        for o in flags {
            if find(o.section, o.key).is_none() {
                warnings.push(format!(
                    "unknown key [{}] {} from {} is ignored",
                    o.section, o.key, o.by
                ));
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
                // The last flag for a key wins, as on a command line.
                let from_flags = flags
                    .iter()
                    .rev()
                    .find(|o| o.section == k.section && o.key == k.key)
                    .map(|o| (o.value.clone(), Source::Cli(o.by)));
                let from_env = || {
                    ["UPDRAFT", "AIRFLOW"].iter().find_map(|p| {
                        let name = var(p);
                        env.iter()
                            .find(|(n, _)| *n == name)
                            .map(|(_, v)| (v.clone(), Source::Env(name)))
                    })
                };
                let (raw, source) = from_flags
                    .or_else(from_env)
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
        let parsed = entries.iter().map(parse).collect::<Result<Vec<Value>>>()?;
        let values = Values {
            entries: &entries,
            parsed,
        };
        let mut cfg = values.config(home)?;
        cfg.entries = entries;
        cfg.warnings = warnings;
        Ok(cfg)
    }

    /// The effective value of one key, as `config get-value` prints it.
    pub fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.section == section && e.key == key)
    }

    /// What `config list` prints: every key by section, its value (secrets hidden) and
    /// where the value came from.
    pub fn list(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for e in &self.entries {
            if e.section != section {
                section = e.section;
                out.push_str(&format!(
                    "{}[{section}]\n",
                    if out.is_empty() { "" } else { "\n" }
                ));
            }
            out.push_str(&format!(
                "{} = {}  # {}\n",
                e.key,
                e.display_value(),
                e.source
            ));
        }
        out
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

/// A value parsed by its key's [`Kind`], within its range.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Secs(f64),
    Bool(bool),
    /// The word of the key's list it matched, as the list spells it.
    Word(&'static str),
    Zone(Zone),
}

/// Parses one entry by its kind: the only place a value's text is read as a number, a
/// boolean or a word.
fn parse(e: &Entry) -> Result<Value> {
    let v = e.value.trim();
    match e.kind {
        Kind::Str | Kind::Secret => Ok(Value::Str(v.to_string())),
        Kind::Int { min, max, unit } => match v.parse::<i64>() {
            Ok(n) if n < min => Err(bad(
                e,
                &format!("expected a whole number of at least {min}"),
            )),
            Ok(n) if n > max => Err(bad(e, &format!("expected at most {max} {unit}"))),
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => Err(bad(e, "expected a whole number")),
        },
        Kind::Port => match v.parse::<u16>() {
            Ok(n) => Ok(Value::Int(i64::from(n))),
            Err(_) => Err(bad(e, "expected a port number from 0 to 65535")),
        },
        Kind::Secs | Kind::PositiveSecs => {
            let positive = e.kind == Kind::PositiveSecs;
            match v.parse::<f64>() {
                Ok(n) if positive && n == 0.0 => {
                    Err(bad(e, "expected a number of seconds above 0"))
                }
                Ok(n) if (0.0..=MAX_SECS).contains(&n) => Ok(Value::Secs(n)),
                _ => Err(bad(
                    e,
                    "expected a number of seconds from 0 to 3153600000 (100 years)",
                )),
            }
        }
        Kind::Bool => parse_bool(v)
            .map(Value::Bool)
            .ok_or_else(|| bad(e, "expected True or False")),
        Kind::Word(words) => words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(v))
            .map(|w| Value::Word(w))
            .ok_or_else(|| bad(e, &format!("expected one of: {}", words.join(", ")))),
        Kind::Zone => Zone::parse(v).map(Value::Zone).ok_or_else(|| {
            bad(
                e,
                "expected a time zone name from the IANA database such as Europe/Amsterdam (case-sensitive), utc, or an offset such as +02:00",
            )
        }),
    }
}

/// The parsed values of every key, by key, for building [`Config`]'s typed fields.
struct Values<'a> {
    entries: &'a [Entry],
    parsed: Vec<Value>,
}

impl Values<'_> {
    fn find(&self, section: &str, key: &str) -> Result<(&Entry, &Value)> {
        self.entries
            .iter()
            .zip(&self.parsed)
            .find(|(e, _)| e.section == section && e.key == key)
            .ok_or_else(|| Error::Usage(format!("updraft has no key [{section}] {key}")))
    }

    /// The error for a key read as a type its [`Kind`] does not give: a mistake in
    /// [`KEYS`] that `template_parses_back_to_defaults` catches.
    fn wrong(e: &Entry, want: &str) -> Error {
        bad(e, &format!("read as {want}, which its kind does not give"))
    }

    fn text(&self, section: &str, key: &str) -> Result<String> {
        match self.find(section, key)? {
            (_, Value::Str(s)) => Ok(s.clone()),
            (e, _) => Err(Self::wrong(e, "text")),
        }
    }

    /// A whole number as the field's type; the kind's range keeps it in that type.
    fn int<T: TryFrom<i64>>(&self, section: &str, key: &str) -> Result<T> {
        match self.find(section, key)? {
            (e, Value::Int(n)) => {
                T::try_from(*n).map_err(|_| bad(e, "the number does not fit its field"))
            }
            (e, _) => Err(Self::wrong(e, "a whole number")),
        }
    }

    fn secs(&self, section: &str, key: &str) -> Result<f64> {
        match self.find(section, key)? {
            (_, Value::Secs(n)) => Ok(*n),
            (e, _) => Err(Self::wrong(e, "seconds")),
        }
    }

    fn boolean(&self, section: &str, key: &str) -> Result<bool> {
        match self.find(section, key)? {
            (_, Value::Bool(b)) => Ok(*b),
            (e, _) => Err(Self::wrong(e, "a boolean")),
        }
    }

    fn zone(&self, section: &str, key: &str) -> Result<Zone> {
        match self.find(section, key)? {
            (_, Value::Zone(z)) => Ok(*z),
            (e, _) => Err(Self::wrong(e, "a time zone")),
        }
    }

    fn word(&self, section: &str, key: &str) -> Result<&'static str> {
        match self.find(section, key)? {
            (_, Value::Word(w)) => Ok(w),
            (e, _) => Err(Self::wrong(e, "a word")),
        }
    }

    /// Builds [`Config`] from the parsed values, with the checks that span more than a
    /// value's kind. `entries` and `warnings` are left for the caller to fill.
    fn config(&self, home: &Path) -> Result<Config> {
        let (db, _) = self.find("database", "sql_alchemy_conn")?;
        let db_path = sqlite_path(&db.value).ok_or_else(|| {
            bad(db, "expected a sqlite:/// URL, e.g. sqlite:////home/me/updraft/updraft.db (updraft stores its state in SQLite only)")
        })?;
        let (server_type, _) = self.find("api", "server_type")?;
        if let Err(why) = check_server_type(server_type.value.trim(), cfg!(windows)) {
            return Err(bad(server_type, why));
        }
        let (base_url, _) = self.find("api", "base_url")?;
        if !base_url.value.is_empty()
            && !base_url.value.contains("://")
            && !base_url.value.starts_with('/')
        {
            return Err(bad(
                base_url,
                "expected a URL such as http://localhost:8080/prefix, or a path such as /prefix",
            ));
        }
        let (users_entry, _) = self.find("core", "simple_auth_manager_users")?;
        let users = parse_users(&users_entry.value).map_err(|reason| bad(users_entry, &reason))?;
        // Each match below covers its key's word list; the last arm is its last word.
        let level = match self.word("logging", "logging_level")? {
            "debug" => log::LevelFilter::Debug,
            "info" => log::LevelFilter::Info,
            "warning" => log::LevelFilter::Warn,
            _ => log::LevelFilter::Error,
        };
        let test_connection = match self.word("core", "test_connection")? {
            "disabled" => TestConnection::Disabled,
            "enabled" => TestConnection::Enabled,
            _ => TestConnection::Hidden,
        };
        let expose_config = match self.word("api", "expose_config")? {
            "true" => ExposeConfig::True,
            "false" => ExposeConfig::False,
            _ => ExposeConfig::NonSensitiveOnly,
        };
        let path = |section: &str, key: &str| self.text(section, key).map(PathBuf::from);

        Ok(Config {
            home: home.to_path_buf(),
            core: Core {
                dags_folder: path("core", "dags_folder")?,
                plugins_folder: path("core", "plugins_folder")?,
                parallelism: self.int("core", "parallelism")?,
                max_active_tasks_per_dag: self.int("core", "max_active_tasks_per_dag")?,
                max_active_runs_per_dag: self.int("core", "max_active_runs_per_dag")?,
                max_map_length: self.int("core", "max_map_length")?,
                dags_are_paused_at_creation: self.boolean("core", "dags_are_paused_at_creation")?,
                load_examples: self.boolean("core", "load_examples")?,
                execution_api_server_url: self.text("core", "execution_api_server_url")?,
                killed_task_cleanup_time: self.secs("core", "killed_task_cleanup_time")?,
                test_connection,
                python_interpreter: self.text("core", "python_interpreter")?,
                default_timezone: self.zone("core", "default_timezone")?,
            },
            database: Database { path: db_path },
            api: Api {
                host: self.text("api", "host")?,
                port: self.int("api", "port")?,
                base_url: self.text("api", "base_url")?,
                workers: self.int("api", "workers")?,
                server_type: self.text("api", "server_type")?,
                worker_refresh_interval: self.secs("api", "worker_refresh_interval")?,
                worker_refresh_batch_size: self.int("api", "worker_refresh_batch_size")?,
                reload_on_plugin_change: self.boolean("api", "reload_on_plugin_change")?,
                proxy_headers: self.boolean("api", "proxy_headers")?,
                expose_config,
                maximum_page_limit: self.int("api", "maximum_page_limit")?,
                fallback_page_limit: self.int("api", "fallback_page_limit")?,
                max_body_size: self.int("api", "max_body_size")?,
                worker_timeout: self.secs("api", "worker_timeout")?,
                request_timeout: self.secs("api", "request_timeout")?,
                max_connections: self.int("api", "max_connections")?,
            },
            auth: Auth {
                users,
                all_admins: self.boolean("core", "simple_auth_manager_all_admins")?,
                passwords_file: path("core", "simple_auth_manager_passwords_file")?,
                jwt_secret: self.text("api_auth", "jwt_secret")?,
                jwt_expiration_time: self.secs("api_auth", "jwt_expiration_time")?,
                execution_jwt_expiration_time: self.secs("execution_api", "jwt_expiration_time")?,
            },
            scheduler: Scheduler {
                heartbeat_sec: self.secs("scheduler", "scheduler_heartbeat_sec")?,
                health_check_threshold: self
                    .secs("scheduler", "scheduler_health_check_threshold")?,
                dag_dir_list_interval: self.secs("scheduler", "dag_dir_list_interval")?,
                task_instance_heartbeat_timeout: self
                    .secs("scheduler", "task_instance_heartbeat_timeout")?,
            },
            logging: Logging {
                base_log_folder: path("logging", "base_log_folder")?,
                level,
            },
            entries: Vec::new(),
            warnings: Vec::new(),
            host: HostEnv::default(),
        })
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
        Config::from_sources(
            Path::new("/h"),
            Path::new("/h/updraft.cfg"),
            file,
            &env,
            &[],
        )
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
                &[("UPDRAFT__API__SERVER_TYPE", "hypercorn")],
                "[api] server_type = \"hypercorn\"",
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
    fn flags_win_over_env_and_file_and_say_so() {
        let env: Vec<(String, String)> = vec![("UPDRAFT__API__PORT".into(), "9200".into())];
        let flags = [
            Override {
                section: "api",
                key: "port",
                value: "9300".into(),
                by: "--port",
            },
            Override {
                section: "api",
                key: "workers",
                value: "65".into(),
                by: "--workers",
            },
        ];
        let file = "[api]\nport = 9000\nworkers = 2\n";
        let load = |flags: &[Override]| {
            Config::from_sources(
                Path::new("/h"),
                Path::new("/h/updraft.cfg"),
                file,
                &env,
                flags,
            )
        };
        let c = load(&flags[..1]).unwrap();
        assert_eq!(c.api.port, 9300);
        let port = c.get("api", "port").unwrap();
        assert_eq!(port.source, Source::Cli("--port"));
        assert_eq!(port.source.to_string(), "cli --port");
        let list = c.list();
        assert!(list.contains("\nport = 9300  # cli --port\n"), "{list}");
        assert!(list.contains("\nworkers = 2  # /h/updraft.cfg\n"), "{list}");
        assert_eq!(c.api.workers, 2);
        // A bad flag names the flag, not a variable nobody set.
        let err = load(&flags).unwrap_err().to_string();
        assert!(
            err.contains("[api] workers = \"65\" (from cli --workers)"),
            "{err}"
        );
    }

    #[test]
    fn numbers_too_large_for_their_field_are_refused() {
        // Each once passed the check as an i64 and was then cut to a u32 (`as u32`):
        // 4294967296 tasks at once became 0.
        for (key, value) in [
            ("UPDRAFT__CORE__PARALLELISM", "4294967296"),
            ("UPDRAFT__CORE__MAX_ACTIVE_RUNS_PER_DAG", "4294967297"),
            ("UPDRAFT__API__MAXIMUM_PAGE_LIMIT", "4294967396"),
            ("UPDRAFT__API__MAX_CONNECTIONS", "5000000000"),
        ] {
            let err = load("", &[(key, value)]).unwrap_err().to_string();
            assert!(err.contains("expected at most 4294967295"), "{key}: {err}");
        }
        let c = load("", &[("UPDRAFT__CORE__PARALLELISM", "4294967295")]).unwrap();
        assert_eq!(c.core.parallelism, u32::MAX);
    }

    #[test]
    fn words_become_typed_values() {
        let c = load(
            "[core]\ntest_connection = ENABLED\n[api]\nexpose_config = Non-Sensitive-Only\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.core.test_connection, TestConnection::Enabled);
        assert_eq!(c.api.expose_config, ExposeConfig::NonSensitiveOnly);
        let c = load("", &[]).unwrap();
        assert_eq!(c.core.test_connection, TestConnection::Disabled);
        assert_eq!(c.api.expose_config, ExposeConfig::False);
        assert_eq!(c.logging.level, log::LevelFilter::Info);
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

    #[test]
    fn gunicorn_is_refused_on_windows_only() {
        assert_eq!(check_server_type("uvicorn", true), Ok(()));
        assert_eq!(check_server_type("uvicorn", false), Ok(()));
        assert_eq!(check_server_type("gunicorn", false), Ok(()));
        let why = check_server_type("gunicorn", true).unwrap_err();
        assert!(why.contains("Unix-only"), "{why}");
        assert!(why.contains("'uvicorn'"), "{why}");
        assert!(check_server_type("sync", false).is_err());
        // On this platform, the value is taken or refused as check_server_type says.
        let loaded = load("", &[("UPDRAFT__API__SERVER_TYPE", "gunicorn")]);
        assert_eq!(loaded.is_ok(), cfg!(unix), "{:?}", loaded.err());
    }
}
