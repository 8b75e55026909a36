//! Declarative plugins: YAML files in `[core] plugins_folder` that give the UI and the
//! templates what Airflow plugins most often give them, without Python.
//!
//! ```yaml
//! name: company                 # required; macros are macros.company.<name>
//! external_views:               # Airflow 3's fields
//!   - name: Runbook
//!     href: https://wiki.example.com/{dag_id}/{run_id}/{task_id}
//!     destination: task_instance  # nav (default), dag, dag_run, task, task_instance
//!     icon: https://example.com/icon.svg
//!     url_route: runbook
//!     category: Docs
//! macros:                       # Jinja snippets, called like functions
//!   greet: {args: [who], template: "Hello {{ who }}"}
//! user_defined_filters:         # the filtered value is `value`
//!   shout: {template: "{{ value | upper }}!"}
//! static_folder: static         # served under {base_url}/plugins/company/
//! ```
//!
//! A broken file is an import error with its file and line (as `GET
//! /api/v2/plugins/importErrors` and the log show), never a crash, and never hides the
//! other files. The API server loads the folder when a worker pool starts and at each
//! refresh (`server::pool`, `server::arbiter`); templates load it when a task renders, as
//! each Airflow task process imports plugins anew.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::dagfile::yaml::{self, Node};

/// Where a process finds its plugins (set once, from the config, at startup).
static FOLDER: OnceLock<PathBuf> = OnceLock::new();

/// The keys of a plugin file, and of one external view: what the loader accepts and
/// what [`schema`] declares.
const PLUGIN_KEYS: &[&str] = &[
    "name",
    "external_views",
    "macros",
    "user_defined_filters",
    "static_folder",
];
const VIEW_KEYS: &[&str] = &[
    "name",
    "href",
    "destination",
    "icon",
    "icon_dark_mode",
    "url_route",
    "category",
];

/// The `destination` values of Airflow 3's external views.
const DESTINATIONS: &[&str] = &["nav", "dag", "dag_run", "task", "task_instance"];

/// A Jinja snippet called as a function: a macro, or a filter (whose first argument is
/// `value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Snippet {
    pub name: String,
    pub args: Vec<String>,
    pub template: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    pub name: String,
    pub file: PathBuf,
    /// Airflow 3's `ExternalViewResponse` objects.
    pub external_views: Vec<Value>,
    pub macros: Vec<Snippet>,
    pub filters: Vec<Snippet>,
    pub static_folder: Option<PathBuf>,
}

/// A broken plugin file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Every plugin of a folder, and every file that failed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Loaded {
    pub plugins: Vec<Plugin>,
    pub errors: Vec<LoadError>,
}

/// Sets the folder templates read plugins from (the first call wins).
pub fn set_folder(folder: &Path) {
    let _ = FOLDER.set(folder.to_path_buf());
}

/// The plugins of the folder set by [`set_folder`], read now; none if it was not set.
pub fn current() -> Loaded {
    FOLDER.get().map(|f| load(f)).unwrap_or_default()
}

/// The plugin files of `folder` (`*.yml`, `*.yaml`), sorted by name.
fn files(folder: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml")
                })
        })
        .collect();
    files.sort();
    files
}

/// Loads every plugin file of `folder`; a missing folder has none.
pub fn load(folder: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    for file in files(folder) {
        match load_file(&file) {
            Ok(p) if loaded.plugins.iter().any(|q| q.name == p.name) => {
                loaded.errors.push(LoadError {
                    file: file.clone(),
                    line: 1,
                    message: format!("another plugin file already names a plugin {:?}", p.name),
                });
            }
            Ok(p) => loaded.plugins.push(p),
            Err(e) => loaded.errors.push(e),
        }
    }
    loaded
}

/// What changed in `folder` between two [`fingerprint`]s: file names.
pub fn changed(
    before: &[(PathBuf, SystemTime, u64)],
    now: &[(PathBuf, SystemTime, u64)],
) -> Vec<String> {
    let mut out = Vec::new();
    for f in now {
        if !before.contains(f) {
            out.push(f.0.display().to_string());
        }
    }
    for f in before {
        if !now.iter().any(|n| n.0 == f.0) {
            out.push(format!("{} (removed)", f.0.display()));
        }
    }
    out
}

/// Every file under `folder` (static files included) with its modification time and
/// size: what [`changed`] compares.
pub fn fingerprint(folder: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((e.path(), modified, meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// Watches a plugins folder for `[api] reload_on_plugin_change`: a change counts once
/// the folder looked the same at two checks in a row (a file still being written is not
/// loaded half-way), as Airflow's monitor waits for it.
pub struct Watch {
    folder: PathBuf,
    seen: Vec<(PathBuf, SystemTime, u64)>,
    pending: Option<Vec<(PathBuf, SystemTime, u64)>>,
}

impl Watch {
    pub fn new(folder: &Path) -> Watch {
        Watch {
            folder: folder.to_path_buf(),
            seen: fingerprint(folder),
            pending: None,
        }
    }

    /// The files changed since the last change reported, once it has settled.
    pub fn poll(&mut self) -> Option<Vec<String>> {
        let now = fingerprint(&self.folder);
        if now == self.seen {
            self.pending = None;
            return None;
        }
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return None;
        }
        let files = changed(&self.seen, &now);
        self.seen = now;
        self.pending = None;
        Some(files)
    }
}

fn load_file(file: &Path) -> Result<Plugin, LoadError> {
    let fail = |line: u32, message: String| LoadError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| fail(0, format!("cannot read: {e}")))?;
    let root = yaml::load(&text)
        .map_err(|e| fail(e.line, e.message))?
        .ok_or_else(|| {
            fail(
                1,
                "the file is empty; a plugin needs at least a `name`".into(),
            )
        })?;
    parse(&root, file).map_err(|e| fail(e.line, e.message))
}

fn parse(root: &Node, file: &Path) -> Result<Plugin, crate::dagfile::ImportError> {
    if !root.is_map() {
        return Err(root.pos.error(format!(
            "a plugin file is a mapping with a `name`, not {}",
            root.describe()
        )));
    }
    for e in root.entries() {
        if !PLUGIN_KEYS.contains(&e.key.as_str()) {
            return Err(e.key_pos.error(format!(
                "unknown key `{}`; a plugin file has name, external_views, macros, user_defined_filters, static_folder",
                e.key
            )));
        }
    }
    let name_node = root
        .field("name")
        .ok_or_else(|| root.pos.error("a plugin needs a `name`"))?;
    let name = name_node.string("name")?;
    if !is_identifier(&name) {
        return Err(name_node.pos.error(format!(
            "`name` {name:?} must be a Python identifier (letters, digits, _), as templates call macros.{name}.<macro>"
        )));
    }
    let mut views = Vec::new();
    if let Some(list) = root.field("external_views") {
        let yaml::Value::List(items) = &list.value else {
            return Err(list.pos.error("`external_views` must be a list"));
        };
        for item in items {
            views.push(external_view(item)?);
        }
    }
    let macros = snippets(root.field("macros"), "macros", false)?;
    let filters = snippets(
        root.field("user_defined_filters"),
        "user_defined_filters",
        true,
    )?;
    let static_folder = match root.field("static_folder") {
        Some(n) => {
            let rel = n.string("static_folder")?;
            let dir = file.parent().unwrap_or(Path::new(".")).join(&rel);
            if !dir.is_dir() {
                return Err(n.pos.error(format!(
                    "`static_folder` {rel:?} is not a folder next to the plugin file"
                )));
            }
            Some(dir)
        }
        None => None,
    };
    Ok(Plugin {
        name,
        file: file.to_path_buf(),
        external_views: views,
        macros,
        filters,
        static_folder,
    })
}

fn external_view(item: &Node) -> Result<Value, crate::dagfile::ImportError> {
    if !item.is_map() {
        return Err(item
            .pos
            .error("each external view is a mapping with `name` and `href`"));
    }
    let mut v = json!({
        "name": null, "href": null, "icon": null, "icon_dark_mode": null,
        "url_route": null, "category": null, "destination": "nav",
    });
    for e in item.entries() {
        let text = e.value.string(&e.key)?;
        match e.key.as_str() {
            "destination" if !DESTINATIONS.contains(&text.as_str()) => {
                return Err(e.value.pos.error(format!(
                    "`destination` must be one of {}, not {text:?}",
                    DESTINATIONS.join(", ")
                )));
            }
            key if VIEW_KEYS.contains(&key) => v[key] = json!(text),
            other => {
                return Err(e.key_pos.error(format!(
                    "unknown key `{other}` of an external view; it has name, href, destination, icon, icon_dark_mode, url_route, category"
                )));
            }
        }
    }
    for required in ["name", "href"] {
        if v[required].is_null() {
            return Err(item
                .pos
                .error(format!("an external view needs `{required}`")));
        }
    }
    Ok(v)
}

fn snippets(
    node: Option<&Node>,
    key: &str,
    filter: bool,
) -> Result<Vec<Snippet>, crate::dagfile::ImportError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    if !node.is_map() {
        return Err(node
            .pos
            .error(format!("`{key}` must be a mapping of names to snippets")));
    }
    let mut out = Vec::new();
    for e in node.entries() {
        if !is_identifier(&e.key) {
            return Err(e.key_pos.error(format!("{:?} is not a valid name", e.key)));
        }
        // A bare string is a snippet without arguments.
        let (args, template) = if let yaml::Value::Str(s) = &e.value.value {
            (Vec::new(), s.clone())
        } else if e.value.is_map() {
            let template = e
                .value
                .field("template")
                .ok_or_else(|| e.value.pos.error(format!("`{}` needs a `template`", e.key)))?
                .string("template")?;
            let args = match e.value.field("args") {
                Some(a) => a.strings("args")?.into_iter().map(|(s, _)| s).collect(),
                None => Vec::new(),
            };
            (args, template)
        } else {
            return Err(e.value.pos.error(format!(
                "`{}` is a template string or a mapping with `template` and `args`",
                e.key
            )));
        };
        if let Err(err) = minijinja::Environment::new().template_from_str(&template) {
            return Err(e
                .value
                .pos
                .error(format!("`{}`: the template does not parse: {err}", e.key)));
        }
        let mut args = args;
        if filter {
            args.insert(0, "value".into());
        }
        out.push(Snippet {
            name: e.key.clone(),
            args,
            template,
        });
    }
    Ok(out)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The JSON Schema of plugin files, for editors (`GET /plugin-schema.json`).
pub fn schema() -> Value {
    let snippet = json!({
        "oneOf": [
            {"type": "string", "description": "A Jinja template without arguments"},
            {
                "type": "object",
                "required": ["template"],
                "additionalProperties": false,
                "properties": {
                    "template": {"type": "string", "description": "A Jinja template; the arguments are names in it"},
                    "args": {"type": "array", "items": {"type": "string"}},
                },
            },
        ],
    });
    let identifier = "^[A-Za-z_][A-Za-z0-9_]*$";
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "updraft plugin file",
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "pattern": identifier, "description": "Macros are macros.<name>.<macro>"},
            "external_views": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "href"],
                    "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string"},
                        "href": {"type": "string", "description": "May hold {dag_id}, {run_id}, {task_id}"},
                        "destination": {"enum": DESTINATIONS, "default": "nav"},
                        "icon": {"type": "string"},
                        "icon_dark_mode": {"type": "string"},
                        "url_route": {"type": "string"},
                        "category": {"type": "string"},
                    },
                },
            },
            "macros": {"type": "object", "propertyNames": {"pattern": identifier}, "additionalProperties": snippet},
            "user_defined_filters": {"type": "object", "propertyNames": {"pattern": identifier}, "additionalProperties": snippet},
            "static_folder": {"type": "string", "description": "A folder next to the file, served under {base_url}/plugins/<name>/"},
        },
    })
}

/// Airflow's `PluginResponse` for one plugin.
pub fn to_response(p: &Plugin) -> Value {
    json!({
        "name": p.name,
        "macros": p.macros.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "flask_blueprints": [],
        "fastapi_apps": [],
        "fastapi_root_middlewares": [],
        "external_views": p.external_views,
        "react_apps": [],
        "appbuilder_views": [],
        "appbuilder_menu_items": [],
        "global_operator_extra_links": [],
        "operator_extra_links": [],
        "source": format!("$PLUGINS_FOLDER/{}", p.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        "listeners": [],
        "timetables": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// The schema declares exactly the keys the loader takes.
    #[test]
    fn the_schema_matches_the_loader() {
        let s = schema();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |l: &[&str]| {
            let mut k: Vec<String> = l.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&s["properties"]), sorted(PLUGIN_KEYS));
        assert_eq!(
            keys(&s["properties"]["external_views"]["items"]["properties"]),
            sorted(VIEW_KEYS)
        );
    }

    #[test]
    fn a_broken_file_is_reported_with_its_line_and_hides_nothing() {
        let dir = std::env::temp_dir().join(format!("updraft-plugins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "a.yml",
            "name: a\nmacros:\n  greet: {args: [who], template: 'Hi {{ who }}'}\nexternal_views:\n  - name: Docs\n    href: https://x/{dag_id}\n",
        );
        write(
            &dir,
            "b.yaml",
            "name: b\nexternal_views:\n  - name: X\n    href: y\n    destination: moon\n",
        );
        write(&dir, "c.yml", "name: c\nmacros: [oops\n");
        write(&dir, "notes.txt", "not a plugin");
        let loaded = load(&dir);
        assert_eq!(loaded.plugins.len(), 1, "{loaded:?}");
        assert_eq!(loaded.plugins[0].macros[0].args, vec!["who"]);
        assert_eq!(loaded.plugins[0].external_views[0]["destination"], "nav");
        assert_eq!(loaded.errors.len(), 2, "{loaded:?}");
        assert_eq!(loaded.errors[0].line, 5, "{}", loaded.errors[0]);
        assert!(loaded.errors[0].message.contains("destination"));
        assert!(loaded.errors[1].file.ends_with("c.yml"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
