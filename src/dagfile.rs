//! dag-factory YAML files -> `model::Dag`s, with import errors that carry file:line:col.
//!
//! This module reads text and returns values: no file system, no environment, no database,
//! no clock. The caller passes what a parse needs in `Inputs`: `now` for relative dates,
//! the environment variables, the text of the `defaults.yml` files above the DAG file, and a
//! reader for the files a DAG names (`doc_md_file_path`). It follows dag-factory 1.1.0:
//! every file's text has its `$VAR`s expanded first (`vars`); the `defaults.yml` files merge
//! into one (`global_defaults`); every top-level key but `default` and `task_groups` is a
//! DAG; the `defaults.yml` DAG-level keys go under each DAG's own, then the file's `default`
//! is merged in as `merge_configs` does; and `default_args` apply to every task. DAG-level
//! keys updraft does not use are ignored, as dag-factory passes Airflow only the ones it
//! knows; the few dag-factory or Airflow 3 refuse are errors (`REFUSED` and the checks in
//! `dag`), and so are task and task group keys the operator or `TaskGroup` does not take
//! (`tasks`). Errors are collected rather than returned at the first, so one import shows a
//! person every fix.
//!
//! `yaml` turns text into positioned nodes, `values` reads schedules, dates and durations,
//! `tasks` builds tasks and groups and expands dependencies, `schema` describes the format.

mod hitl;
mod mapping;
mod operators;
mod schema;
mod sensors;
mod tasks;
mod values;
mod vars;
mod yaml;

use chrono::{DateTime, Utc};

use crate::model::{Dag, ID_LEN, Schedule, Zone};
use yaml::{Entry, Node, Pos, Value};

pub use schema::schema;

/// Top-level keys that are not DAGs (dag-factory's `SYSTEM_PARAMS`).
const NOT_DAGS: &[&str] = &["default", "task_groups"];

/// dag-factory tags every DAG it builds with this.
const DAG_FACTORY_TAG: &str = "dagfactory";

/// The names dag-factory looks for in each folder, the first found winning.
pub const DEFAULTS_FILE_NAMES: &[&str] = &["defaults.yml", "defaults.yaml"];

/// What one file yields. A file with any error yields no DAGs, as in Airflow.
#[derive(Debug, Default)]
pub struct FileParse {
    pub dags: Vec<Dag>,
    pub errors: Vec<ImportError>,
    pub warnings: Vec<String>,
}

/// One problem in a DAG file, at a 1-based line and column. A problem in one of its
/// `defaults.yml` files is reported at 1:1 of the DAG file, its message naming the place.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportError {
    pub line: u32,
    pub column: u32,
    pub message: String,
    /// Which file it is in while parsing (see `Pos::src`); 0 once `parse_with` returns.
    pub(crate) src: u16,
}

/// A `defaults.yml` file that applies to a DAG file: its name for messages, and its text.
#[derive(Debug, Clone)]
pub struct DefaultsFile {
    pub name: String,
    pub text: String,
}

/// What a parse needs besides the file's text. The caller does the reading.
pub struct Inputs<'a> {
    /// For relative dates (`start_date: 2 days`).
    pub now: DateTime<Utc>,
    /// `[core] default_timezone`: the zone of DAGs without a start date.
    pub default_zone: Zone,
    /// An environment variable's value, for `$NAME` and `${NAME}`.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// The `defaults.yml` files that apply, the farthest from the DAG file (the DAG
    /// folder's root) first and its own folder's last, so that each wins over the ones
    /// before it.
    pub defaults: &'a [DefaultsFile],
    /// The text of the file at an absolute path (`doc_md_file_path`), or why not.
    pub read: &'a dyn Fn(&str) -> Result<String, String>,
}

/// Parses one dag-factory file with no environment, no `defaults.yml` and no other files;
/// DAGs without a start date are in UTC.
pub fn parse(fileloc: &str, source: &str, now: DateTime<Utc>) -> FileParse {
    parse_in(fileloc, source, now, Zone::default())
}

/// `parse`, with `default_zone` (`[core] default_timezone`) for DAGs without a start date.
pub fn parse_in(fileloc: &str, source: &str, now: DateTime<Utc>, default_zone: Zone) -> FileParse {
    let inputs = Inputs {
        now,
        default_zone,
        var: &|_| None,
        defaults: &[],
        read: &|path| Err(format!("{path} is not readable here")),
    };
    parse_with(fileloc, source, &inputs)
}

/// Parses one dag-factory file. `fileloc` names the file in messages and in `Dag::fileloc`.
pub fn parse_with(fileloc: &str, source: &str, inputs: &Inputs) -> FileParse {
    let mut cx = Ctx {
        now: inputs.now,
        default_zone: inputs.default_zone,
        read: inputs.read,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let defaults: Vec<Node> = inputs
        .defaults
        .iter()
        .enumerate()
        .filter_map(|(i, file)| {
            let src = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let text = vars::expand(&file.text, inputs.var);
            let loaded = yaml::load(&text).map(|node| {
                let mut node = node.unwrap_or(Node {
                    pos: Pos {
                        line: 1,
                        col: 1,
                        src,
                    },
                    value: Value::Null,
                });
                node.set_src(src);
                node
            });
            let node = loaded.map_err(|mut e| {
                e.src = src;
                e
            });
            cx.ok(node)
        })
        .collect();
    let source = vars::expand(source, inputs.var);
    let dags = match yaml::load(&source) {
        Ok(_) if defaults.len() < inputs.defaults.len() => Vec::new(),
        Ok(Some(root)) => file(&mut cx, fileloc, &root, &defaults),
        Ok(None) => {
            cx.warnings.push("the file is empty".to_string());
            Vec::new()
        }
        Err(e) => {
            cx.errors.push(e);
            Vec::new()
        }
    };
    // An error in `default` is found once per DAG; report it once.
    let mut errors = cx.errors;
    errors.sort_by_key(|e| (e.src, e.line, e.column));
    errors.dedup();
    // Errors in a defaults file first, as they stop every DAG of the file.
    errors.sort_by_key(|e| e.src == 0);
    for e in &mut errors {
        if let Some(file) = usize::from(e.src)
            .checked_sub(1)
            .and_then(|i| inputs.defaults.get(i))
        {
            e.message = format!(
                "in {} at line {}, column {}: {}",
                file.name, e.line, e.column, e.message
            );
            (e.line, e.column, e.src) = (1, 1, 0);
        }
    }
    FileParse {
        dags: if errors.is_empty() { dags } else { Vec::new() },
        errors,
        warnings: cx.warnings,
    }
}

/// What the readers share: the clock reading, the file reader and what went wrong so far.
struct Ctx<'a> {
    now: DateTime<Utc>,
    /// `[core] default_timezone`.
    default_zone: Zone,
    read: &'a dyn Fn(&str) -> Result<String, String>,
    errors: Vec<ImportError>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    /// The value, or `None` with the error recorded.
    fn ok<T>(&mut self, result: Result<T, ImportError>) -> Option<T> {
        result.map_err(|e| self.errors.push(e)).ok()
    }

    /// `key` from the first of `layers` that sets it, converted by `read`. Absent, null and
    /// wrong values are all `None`; a wrong one is also recorded.
    fn get<'n, T>(
        &mut self,
        layers: &[&'n Node],
        key: &str,
        read: impl FnOnce(&'n Node, &str) -> Result<T, ImportError>,
    ) -> Option<T> {
        let node = layers.iter().find_map(|layer| layer.field(key))?;
        self.ok(read(node, key))
    }

    /// `node` if it is a mapping; anything else is recorded and read as absent.
    fn mapping<'n>(&mut self, node: Option<&'n Node>, key: &str) -> Option<&'n Node> {
        let node = node?;
        if !node.is_map() {
            let found = node.describe();
            self.errors.push(
                node.pos
                    .error(format!("`{key}` must be a mapping, not {found}")),
            );
            return None;
        }
        Some(node)
    }
}

fn file(cx: &mut Ctx, fileloc: &str, root: &Node, defaults: &[Node]) -> Vec<Dag> {
    if !root.is_map() {
        let found = root.describe();
        cx.errors.push(root.pos.error(format!(
            "the top level of a DAG file must be a mapping of dag_id to DAG settings, not {found}"
        )));
        return Vec::new();
    }
    let default = cx.mapping(root.field("default"), "default");
    let default = if defaults.is_empty() {
        default.cloned()
    } else {
        // dag-factory lays the file's `default.default_args` over the defaults files' ones,
        // key by key, and keeps the rest of `default` as it is.
        let (args, dag_level) = global_defaults(cx, defaults);
        let mut default = default.cloned().unwrap_or(Node {
            pos: root.pos,
            value: Value::Map(Vec::new()),
        });
        let own_args = cx.mapping(default.field("default_args"), "default_args");
        let mut merged = args;
        for e in own_args.map(Node::entries).unwrap_or_default() {
            upsert(&mut merged, e.clone());
        }
        let pos = own_args.map_or(default.pos, |a| a.pos);
        if let Value::Map(entries) = &mut default.value {
            upsert(
                entries,
                Entry {
                    key: "default_args".to_string(),
                    key_pos: pos,
                    value: Node {
                        pos,
                        value: Value::Map(merged),
                    },
                },
            );
        }
        return dags_of(cx, fileloc, root, Some(&default), &dag_level);
    };
    dags_of(cx, fileloc, root, default.as_ref(), &[])
}

/// The DAGs of a file: each DAG's own settings, then `dag_level` (what the defaults files
/// set outside `default_args`) under them, then the file's `default` merged in.
fn dags_of(
    cx: &mut Ctx,
    fileloc: &str,
    root: &Node,
    default: Option<&Node>,
    dag_level: &[Entry],
) -> Vec<Dag> {
    let mut dags = Vec::new();
    for entry in root.entries() {
        if NOT_DAGS.contains(&entry.key.as_str()) {
            continue;
        }
        let dag_id = &entry.key;
        cx.ok(check_id(dag_id, entry.key_pos, "dag_id", true, ID_LEN));
        if !entry.value.is_map() {
            let found = entry.value.describe();
            cx.errors.push(entry.key_pos.error(format!(
                "DAG `{dag_id}` must be a mapping of its settings, not {found}"
            )));
            continue;
        }
        let mut own = entry.value.clone();
        if let Value::Map(entries) = &mut own.value {
            for e in dag_level {
                if !entries.iter().any(|o| o.key == e.key) {
                    entries.push(e.clone());
                }
            }
        }
        let cfg = match default {
            Some(default) => merge(cx, dag_id, "", &own, default),
            None => own,
        };
        if let Some(dag) = dag(cx, fileloc, dag_id, entry.key_pos, &cfg) {
            dags.push(dag);
        }
    }
    dags
}

/// The `defaults.yml` files (farthest first) merged as dag-factory's
/// `_global_default_args` does: `default_args` key by key, without going deeper; every
/// other key whole; `tags` as the sorted union of all the files' tags. A later file wins.
/// Returns the `default_args` and the other keys.
fn global_defaults(cx: &mut Ctx, files: &[Node]) -> (Vec<Entry>, Vec<Entry>) {
    let mut args = Vec::new();
    let mut dag_level: Vec<Entry> = Vec::new();
    for file in files {
        if !file.is_map() {
            let found = file.describe();
            cx.errors.push(file.pos.error(format!(
                "a defaults file must be a mapping of settings, not {found}"
            )));
            continue;
        }
        for e in file.entries() {
            match (e.key.as_str(), &e.value.value) {
                ("default_args", Value::Map(entries)) => {
                    for a in entries {
                        upsert(&mut args, a.clone());
                    }
                }
                ("default_args", _) => {
                    let found = e.value.describe();
                    cx.errors.push(
                        e.value
                            .pos
                            .error(format!("`default_args` must be a mapping, not {found}")),
                    );
                }
                ("tags", Value::List(tags)) => {
                    let mut all: Vec<Node> = match dag_level.iter().find(|d| d.key == "tags") {
                        Some(Entry {
                            value:
                                Node {
                                    value: Value::List(before),
                                    ..
                                },
                            ..
                        }) => before.clone(),
                        _ => Vec::new(),
                    };
                    for tag in tags {
                        if !all.iter().any(|t| t.value == tag.value) {
                            all.push(tag.clone());
                        }
                    }
                    all.sort_by(|a, b| match (&a.value, &b.value) {
                        (Value::Str(a), Value::Str(b)) => a.cmp(b),
                        _ => std::cmp::Ordering::Equal,
                    });
                    upsert(
                        &mut dag_level,
                        Entry {
                            value: Node {
                                pos: e.value.pos,
                                value: Value::List(all),
                            },
                            ..e.clone()
                        },
                    );
                }
                ("tags", _) => {
                    let found = e.value.describe();
                    cx.errors.push(
                        e.value
                            .pos
                            .error(format!("`tags` must be a list, not {found}")),
                    );
                }
                _ => upsert(&mut dag_level, e.clone()),
            }
        }
    }
    (args, dag_level)
}

/// Sets `entry` in `entries`, in place of one with its key.
fn upsert(entries: &mut Vec<Entry>, entry: Entry) {
    match entries.iter_mut().find(|e| e.key == entry.key) {
        Some(e) => *e = entry,
        None => entries.push(entry),
    }
}

/// dag-factory's `merge_configs`: mappings merge key by key and the DAG's value wins;
/// anything else, lists included, is the DAG's alone (with a warning, as that surprises).
/// Keys only in `default` come last.
fn merge(cx: &mut Ctx, dag_id: &str, path: &str, dag: &Node, default: &Node) -> Node {
    let (Value::Map(own), Value::Map(defaults)) = (&dag.value, &default.value) else {
        if matches!(default.value, Value::List(_) | Value::Map(_)) {
            cx.warnings.push(format!(
                "DAG `{dag_id}`: its `{path}` replaces the one in `default` rather than merging with it (only mappings merge; lists are replaced)"
            ));
        }
        return dag.clone();
    };
    let mut merged = own.clone();
    for d in defaults {
        match merged.iter_mut().find(|m| m.key == d.key) {
            Some(m) => {
                let path = if path.is_empty() {
                    d.key.clone()
                } else {
                    format!("{path}.{}", d.key)
                };
                m.value = merge(cx, dag_id, &path, &m.value, &d.value);
            }
            None => merged.push(d.clone()),
        }
    }
    Node {
        pos: dag.pos,
        value: Value::Map(merged),
    }
}

/// One DAG from its merged settings; `None` if any of them is wrong.
fn dag(cx: &mut Ctx, fileloc: &str, dag_id: &str, pos: Pos, cfg: &Node) -> Option<Dag> {
    let errors_before = cx.errors.len();
    let own = &[cfg];
    let default_args = cx.mapping(cfg.field("default_args"), "default_args");
    let args: &[&Node] = match &default_args {
        Some(args) => std::slice::from_ref(args),
        None => &[],
    };

    // Dates in `default_args` follow `default_args.timezone`, as in dag-factory; both
    // default to UTC there, not to `[core] default_timezone`.
    let tz = cx
        .get(own, "timezone", |n, _| values::timezone(n))
        .unwrap_or_default();
    let args_tz = cx
        .get(args, "timezone", |n, _| values::timezone(n))
        .unwrap_or_default();
    let now = cx.now;
    let mut date = |key: &str| {
        cx.get(own, key, |n, key| values::date(n, key, tz, now))
            .map(|d| (d, tz))
            .or_else(|| {
                cx.get(args, key, |n, key| values::date(n, key, args_tz, now))
                    .map(|d| (d, args_tz))
            })
    };
    let start = date("start_date");
    let end_date = date("end_date").map(|(d, _)| d);
    // Airflow's DAG takes its zone from its start date (`_extract_tz`), which dag-factory
    // has put in the zone above; without one, `[core] default_timezone`.
    let timezone = start.map_or(cx.default_zone, |(_, zone)| zone);
    let start_date = start.map(|(d, _)| d);

    refused(cx, cfg);
    let schedule = cx
        .get(own, "schedule", |n, _| values::schedule(n))
        .unwrap_or(Schedule::None);

    let mut tags: Vec<String> = cx
        .get(own, "tags", Node::strings)
        .unwrap_or_default()
        .into_iter()
        .map(|(tag, _)| tag)
        .collect();
    if !tags.iter().any(|t| t == DAG_FACTORY_TAG) {
        tags.push(DAG_FACTORY_TAG.to_string());
    }
    let params = cx
        .mapping(cfg.field("params"), "params")
        .map_or_else(|| serde_json::json!({}), Node::to_json);
    // dag-factory reads the deprecated `concurrency` first.
    let max_active_tasks = cx
        .get(own, "concurrency", Node::count)
        .or_else(|| cx.get(own, "max_active_tasks", Node::count));
    let dagrun_timeout_secs = cx.get(own, "dagrun_timeout", values::timedelta);
    // dag-factory reads `doc_md_file_path` into `doc_md`, in place of any given.
    let doc_md = match cfg.field("doc_md_file_path").filter(|n| truthy(n)) {
        Some(n) => cx.ok(doc_md_file(cx.read, n)),
        None => cx.get(own, "doc_md", Node::string),
    };

    let (tasks, task_groups) = tasks::build(cx, cfg, default_args);
    let mut owners: Vec<String> = Vec::new();
    for task in &tasks {
        if !owners.contains(&task.owner) {
            owners.push(task.owner.clone());
        }
    }
    let dag = Dag {
        dag_id: dag_id.to_string(),
        fileloc: fileloc.to_string(),
        line: pos.line,
        dag_display_name: cx.get(own, "dag_display_name", Node::string),
        description: cx.get(own, "description", Node::string),
        doc_md,
        schedule,
        timezone,
        start_date,
        end_date,
        catchup: cx.get(own, "catchup", Node::boolean).unwrap_or(false),
        tags,
        params,
        max_active_runs: cx.get(own, "max_active_runs", Node::count),
        max_active_tasks,
        dagrun_timeout_secs,
        owners,
        tasks,
        task_groups,
    };
    (cx.errors.len() == errors_before).then_some(dag)
}

/// What dag-factory 1.1.0 or Airflow 3's `DAG` refuse among the DAG-level keys it would
/// otherwise pass on; all other keys updraft does not use are ignored, as dag-factory
/// ignores them. Asked of the real thing: `tests/compat/key_verdicts.py`.
fn refused(cx: &mut Ctx, cfg: &Node) {
    if let Some(n) = cfg.field("schedule_interval") {
        cx.errors.push(n.pos.error(
            "`schedule_interval` is no longer accepted in Airflow 3; use `schedule` instead",
        ));
    }
    if let Some(n) = cfg.field("timetable").filter(|n| truthy(n)) {
        cx.errors.push(n.pos.error(
            "`timetable` is not a DAG argument in Airflow 3; give the timetable as `schedule`",
        ));
    }
    // Not Airflow's verdict but updraft's: the macros are Python callables, which updraft
    // cannot call, and a file that loads but fails at every run is worse than one that
    // says so when it is read.
    if let Some(n) = cfg.field("user_defined_macros") {
        cx.errors.push(
            n.pos
                .error("`user_defined_macros` names Python callables, which updraft cannot run"),
        );
    }
    // A YAML boolean, not a word that reads as one.
    if let Some(n) = cfg
        .field("render_template_as_native_obj")
        .filter(|n| !matches!(n.value, Value::Bool(_)))
    {
        cx.errors.push(n.pos.error(format!(
            "`render_template_as_native_obj` must be true or false, not {}",
            n.describe()
        )));
    }
    if let Some(n) = cfg.field("template_searchpath") {
        let paths = match &n.value {
            Value::Str(s) => Ok(vec![(s.clone(), n.pos)]),
            Value::List(_) => n.strings("template_searchpath"),
            _ => Err(n.pos.error(format!(
                "`template_searchpath` must be a path or a list of paths, not {}",
                n.describe()
            ))),
        };
        for (path, pos) in cx.ok(paths).unwrap_or_default() {
            if !std::path::Path::new(&path).is_absolute() {
                cx.errors.push(pos.error(format!(
                    "`template_searchpath` must be absolute paths, not `{path}`"
                )));
            }
        }
    }
}

/// The text of the file `doc_md_file_path` names, which must be an absolute path.
fn doc_md_file(
    read: &dyn Fn(&str) -> Result<String, String>,
    n: &Node,
) -> Result<String, ImportError> {
    let path = n.string("doc_md_file_path")?;
    if !std::path::Path::new(&path).is_absolute() {
        return Err(n.pos.error(format!(
            "`doc_md_file_path` must be an absolute path, not `{path}` (dag-factory does not resolve it against anything; `$CONFIG_ROOT_DIR/...` is one way)"
        )));
    }
    read(&path).map_err(|e| n.pos.error(format!("cannot read `doc_md_file_path`: {e}")))
}

/// Python's truth: what `if value:` takes as true.
fn truthy(n: &Node) -> bool {
    match &n.value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(items) => !items.is_empty(),
        Value::Map(entries) => !entries.is_empty(),
    }
}

/// Airflow's `validate_key` (`validate_group_key` for a group's own id, without dots):
/// letters, digits, `_`, `-` and `.`, at most `max` characters. An id too long to show
/// is shown by its start and length.
fn check_id(id: &str, pos: Pos, what: &str, dots: bool, max: usize) -> Result<(), ImportError> {
    let allowed = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || (dots && c == '.');
    let len = id.chars().count();
    if !id.is_empty() && len <= max && id.chars().all(allowed) {
        return Ok(());
    }
    let shown = if len > max {
        format!(
            "{}...` ({len} characters)",
            id.chars().take(40).collect::<String>()
        )
    } else {
        format!("{id}`")
    };
    Err(pos.error(format!(
        "{what} `{shown} must be 1 to {max} letters, digits, `_` or `-`{}",
        if dots { " or `.`" } else { "" }
    )))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::model::{Operator, Task, TriggerRule};

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/fixtures/dags/", $name))
        };
    }

    fn now() -> DateTime<Utc> {
        "2025-06-15T13:45:00Z".parse().unwrap()
    }

    fn parse_ok(yaml: &str) -> Vec<Dag> {
        let parsed = parse("dags/test.yml", yaml, now());
        assert_eq!(parsed.errors, [], "{yaml}");
        parsed.dags
    }

    fn task<'d>(dag: &'d Dag, id: &str) -> &'d Task {
        dag.tasks.iter().find(|t| t.task_id == id).unwrap()
    }

    /// One line per error (`error L:C message`), DAG (`dag ID schedule`) and task
    /// (`  ID <- UPSTREAMS`). Each line of `expect` must start the matching line of that.
    fn check(yaml: &str, expect: &str) {
        check_parsed(&parse("dags/test.yml", yaml, now()), expect);
    }

    fn check_parsed(parsed: &FileParse, expect: &str) {
        let mut got = String::new();
        for e in &parsed.errors {
            writeln!(got, "error {}:{} {}", e.line, e.column, e.message).unwrap();
        }
        for d in &parsed.dags {
            let schedule = d.schedule.summary().unwrap_or_else(|| "None".to_string());
            writeln!(got, "dag {} {schedule}", d.dag_id).unwrap();
            for t in &d.tasks {
                writeln!(got, "  {} <- {}", t.task_id, t.upstream.join(", ")).unwrap();
            }
        }
        let want: Vec<&str> = expect
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let lines: Vec<&str> = got.lines().map(str::trim).collect();
        let matches =
            lines.len() == want.len() && lines.iter().zip(&want).all(|(g, w)| g.starts_with(w));
        assert!(matches, "\nexpected:\n{}\ngot:\n{got}", want.join("\n"));
    }

    #[test]
    fn reference_examples() {
        check(
            fixture!("example_dag_factory.yml"),
            "dag basic_example_dag 0 3 * * *
               task_1 <-
               task_2 <- task_1
               example_task_group.task_3 <- task_1",
        );
        check(
            fixture!("example_task_group.yml"),
            "dag task_group 0 1 * * *
               task_1 <-
               task_group_1.task_2 <- task_1
               task_group_1.task_group_2.task_4 <- task_1",
        );
        let dags = parse_ok(fixture!("example_task_group.yml"));
        let dag = &dags[0];
        assert_eq!((dag.line, dag.fileloc.as_str()), (7, "dags/test.yml"));
        assert_eq!(dag.start_date, "2024-01-01T00:00:00Z".parse().ok());
        assert_eq!(dag.owners, ["default_owner"]);
        assert_eq!(dag.tags, ["dagfactory"]);
        let groups: Vec<_> = dag
            .task_groups
            .iter()
            .map(|g| (g.group_id.as_str(), g.parent.as_deref(), g.line))
            .collect();
        assert_eq!(
            groups,
            [
                ("task_group_1", None, 10),
                ("task_group_1.task_group_2", Some("task_group_1"), 13)
            ]
        );
        let t4 = task(dag, "task_group_1.task_group_2.task_4");
        assert_eq!(
            (t4.line, t4.task_group.as_deref()),
            (24, Some("task_group_1.task_group_2"))
        );
        assert_eq!(t4.bash_command.as_deref(), Some("echo 4"));
    }

    #[test]
    fn default_block_merges_mappings_and_replaces_lists() {
        let parsed = parse("dags/test.yml", fixture!("default_merge.yml"), now());
        assert_eq!(parsed.errors, []);
        let [one, list] = &parsed.dags[..] else {
            panic!("{:?}", parsed.dags)
        };
        let ids: Vec<_> = one.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["extract", "load"]);
        let load = task(one, "load");
        assert_eq!(load.bash_command.as_deref(), Some("echo load differently"));
        assert_eq!(
            (load.upstream.as_slice(), load.retries, load.owner.as_str()),
            (&["extract".to_string()][..], 1, "default_owner")
        );
        assert_eq!(one.tags, ["team", "dagfactory"]);
        assert_eq!(
            one.schedule,
            Schedule::Cron {
                expr: "0 0 * * *".into(),
                raw: "@daily".into()
            }
        );
        let ids: Vec<_> = list.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["only"]);
        assert_eq!(
            (list.owners.as_slice(), list.tags.as_slice()),
            (
                &["list_owner".to_string()][..],
                &["mine".to_string(), "dagfactory".to_string()][..]
            )
        );
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
        assert!(
            parsed
                .warnings
                .iter()
                .all(|w| w.starts_with("DAG `own_list`: its `")),
            "{:?}",
            parsed.warnings
        );
        assert!(parsed.warnings[0].contains("`tags`") && parsed.warnings[1].contains("`tasks`"));
    }

    #[test]
    fn every_dag_and_task_key() {
        let dags = parse_ok(fixture!("all_keys.yml"));
        let [dag, old] = &dags[..] else {
            panic!("{dags:?}")
        };
        assert_eq!(dag.description.as_deref(), Some("every key updraft reads"));
        assert_eq!(dag.dag_display_name.as_deref(), Some("Everything"));
        assert_eq!(dag.schedule, Schedule::Delta { secs: 1800.0 });
        // The DAG's own start_date, in its timezone, wins over default_args'.
        assert_eq!(dag.start_date, "2024-01-01T04:00:00Z".parse().ok());
        // The written `Z` gives way to the DAG's zone, as dag-factory's `get_datetime` does.
        assert_eq!(dag.end_date, "2024-12-30T22:00:00Z".parse().ok());
        assert_eq!(dag.timezone.name(), "+02:00");
        assert!(dag.catchup);
        assert_eq!(dag.tags, ["a", "b", "dagfactory"]);
        assert_eq!(
            dag.params,
            serde_json::json!({"limit": 10, "mode": {"value": "fast", "type": "string", "description": "How fast"}})
        );
        assert_eq!(
            (
                dag.max_active_runs,
                dag.max_active_tasks,
                dag.dagrun_timeout_secs
            ),
            (Some(2), Some(4), Some(3600.0))
        );
        assert_eq!(dag.owners, ["someone", "ops"]);
        let bash = task(dag, "bash");
        let expected = Task {
            task_id: "bash".into(),
            line: 39,
            operator: Operator::Bash,
            task_group: None,
            upstream: vec![],
            bash_command: Some("echo $GREETING".into()),
            env: Some(vec![
                ("GREETING".into(), "hello".into()),
                ("COUNT".into(), "3".into()),
                ("DEBUG".into(), "true".into()),
            ]),
            append_env: true,
            cwd: Some("/tmp".into()),
            trigger_rule: TriggerRule::AllDone,
            retries: 5,
            retry_delay_secs: 60.0,
            retry_exponential_backoff: true,
            max_retry_delay_secs: Some(600.0),
            execution_timeout_secs: Some(3600.0),
            pool: "etl".into(),
            pool_slots: 2,
            priority_weight: 5,
            owner: "someone".into(),
            doc_md: Some("runs bash".into()),
            python: None,
            callbacks: Vec::new(),
            map_index_template: None,
            max_active_tis_per_dag: None,
            max_active_tis_per_dagrun: None,
            mapped: None,
            hitl: None,
            sensor: None,
            args: None,
        };
        assert_eq!(bash, &expected);
        let empty = task(dag, "empty");
        assert_eq!(
            (
                empty.operator,
                empty.trigger_rule,
                empty.retries,
                empty.bash_command.as_deref()
            ),
            (
                Operator::Empty,
                TriggerRule::NoneFailedMinOneSuccess,
                2,
                None
            )
        );

        assert_eq!(
            old.schedule,
            Schedule::Cron {
                expr: "0 * * * *".into(),
                raw: "@hourly".into()
            }
        );
        assert_eq!(old.max_active_tasks, Some(3));
        assert_eq!(old.start_date, "2024-01-01T05:00:00Z".parse().ok());
        assert!(!old.catchup);
        let noop = &old.tasks[0];
        assert_eq!(
            (
                noop.retries,
                noop.retry_delay_secs,
                noop.pool.as_str(),
                noop.pool_slots,
                noop.priority_weight,
                noop.owner.as_str()
            ),
            (0, 300.0, "default_pool", 1, 1, "airflow")
        );
    }

    #[test]
    fn group_dependencies_expand_to_tasks() {
        check(
            fixture!("task_groups_dict.yml"),
            "dag grouped None
               start <-
               extract.pull_a <- start
               extract.pull_b <- start
               extract.merge <- extract.pull_a, extract.pull_b
               transform.clean.dedupe <- extract.merge
               transform.join <- transform.clean.dedupe
               report <- transform.join",
        );
        let dags = parse_ok(fixture!("task_groups_dict.yml"));
        let retries: Vec<_> = dags[0].tasks.iter().map(|t| t.retries).collect();
        assert_eq!(retries, [0, 0, 0, 0, 3, 3, 0]);
        assert_eq!(
            dags[0].task_groups[0].tooltip.as_deref(),
            Some("pulls data")
        );
    }

    #[test]
    fn import_errors() {
        let cases = [
            (fixture!("bad_yaml.yml"), "error 5:6 invalid YAML"),
            (
                fixture!("not_a_mapping.yml"),
                "error 1:1 the top level of a DAG file must be a mapping of dag_id to DAG settings, not a list",
            ),
            (
                fixture!("dag_not_a_mapping.yml"),
                "error 3:1 DAG `bad` must be a mapping of its settings, not the string `just a string`",
            ),
            (
                fixture!("unknown_operator.yml"),
                "error 4:17 unknown operator `airflow.providers.amazon.aws.operators.s3.S3CreateBucketOperator`: updraft runs airflow.providers.standard.operators.bash.BashOperator, ",
            ),
            (
                fixture!("missing_operator.yml"),
                "error 3:16 task `a` has no `operator`",
            ),
            (
                fixture!("missing_bash_command.yml"),
                "error 3:5 task `a` is a BashOperator but has no `bash_command`",
            ),
            (
                fixture!("cycle.yml"),
                "error 5:7 dependency cycle: a -> b -> c -> a",
            ),
            (
                fixture!("unknown_dependency.yml"),
                "error 5:25 task `a` depends on `nowhere`, which is neither a task nor a task group of this DAG",
            ),
            (
                fixture!("duplicate_task.yml"),
                "error 5:16 duplicate task_id `a`: it is already used on line 3",
            ),
            (
                fixture!("unknown_task_group.yml"),
                "error 7:24 task `a` names the task group `h`, which is not defined in `task_groups`",
            ),
            (
                fixture!("unknown_parent_group.yml"),
                "error 4:26 task group `g` names the task group `nowhere`, which is not defined",
            ),
            (
                fixture!("group_cycle.yml"),
                "error 4:26 task groups are nested in a circle: outer -> inner -> outer",
            ),
            (
                fixture!("bad_cron.yml"),
                "error 2:13 invalid cron expression `61 * * * *`",
            ),
            (
                fixture!("bad_date.yml"),
                "error 3:17 cannot read the string `2024-02-30` as `start_date`",
            ),
            (
                fixture!("bad_timezone.yml"),
                "error 2:13 unknown time zone `Europe/Lutetia`: use an IANA name",
            ),
            (
                fixture!("bad_timedelta.yml"),
                "error 4:5 timedelta has no argument `fortnights`",
            ),
            (
                fixture!("bad_default.yml"),
                "error 4:14 `retries` must be a whole number, not the string `lots`",
            ),
        ];
        for (yaml, expect) in cases {
            check(yaml, expect);
        }
        check(
            fixture!("wrong_types.yml"),
            "error 2:12 `catchup` must be true or false, not the string `maybe`
             error 3:9 `tags` must be a list of strings, not the string `team`
             error 4:20 `max_active_runs` must be a whole number from 0 up, not the number -1
             error 6:14 `retries` must be a whole number, not the string `lots`
             error 10:19 `pool_slots` must be at least 1
             error 11:21 unknown trigger_rule `sometimes`; use one of all_success, ",
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let deep = "a: ".to_string() + &"[".repeat(300) + &"]".repeat(300);
        let mut laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n".to_string();
        for i in 1..8 {
            laughs += &format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 9].join(", ")
            );
        }
        let odd = [
            "",
            "[]",
            "null",
            "~",
            "42",
            "'text'",
            "{}",
            "- - - - -",
            "1: {}",
            "true: {}",
            "? [a]\n: {}",
            "default: []",
            "default: 3\nd: {}",
            "d: {tasks: 3}",
            "d: {tasks: [3, null, {}]}",
            "d: {tasks: {a: 1}}",
            "d: {task_groups: [{}], tasks: [{task_id: [x]}]}",
            "d: {default_args: [], tasks: [{task_id: a, operator: 5}]}",
            "d: {schedule: {}, start_date: {}, params: [], tags: [1], dagrun_timeout: {__type__: 1}}",
            "d: {tasks: [{task_id: a, operator: EmptyOperator, dependencies: a}]}",
            "d: {tasks: [{task_id: a, operator: EmptyOperator, dependencies: [a]}]}",
            "d: {task_groups: {g: {dependencies: [g]}}, tasks: [{task_id: a, operator: EmptyOperator, task_group_name: g}]}",
            "d: {start_date: '9999999999 days'}",
            "d: {start_date: '2024-01-01T00:00:00+99:99'}",
            "d: {timezone: '+99:00'}",
            "d: {dagrun_timeout: 1e400}",
            "\u{feff}d: {}",
            "d: {params: {x: .nan}}",
            "a: &a [*a]",
            "d:\n\t- x",
            &deep,
            &"- ".repeat(100_000),
            &laughs,
        ];
        for yaml in odd {
            let parsed = parse("odd.yml", yaml, now());
            for e in &parsed.errors {
                assert!(e.line >= 1 && e.column >= 1, "{yaml:?}: {e:?}");
            }
        }
        let parsed = parse("odd.yml", "", now());
        assert_eq!(
            (
                parsed.dags.len(),
                parsed.errors.len(),
                parsed.warnings.len()
            ),
            (0, 0, 1)
        );
    }

    #[test]
    fn small_forms() {
        // A dependency on a group means its leaves; a group's dependency reaches its roots.
        check(
            "d:
               task_groups: [{group_name: g, dependencies: [a]}]
               tasks:
                 - {task_id: a, operator: EmptyOperator}
                 - {task_id: x, operator: EmptyOperator, task_group_name: g}
                 - {task_id: y, operator: EmptyOperator, task_group_name: g, dependencies: [x]}
                 - {task_id: z, operator: EmptyOperator, dependencies: [g]}",
            "dag d None
               a <-
               g.x <- a
               g.y <- g.x
               z <- g.y",
        );
        // Dependencies on a group with no tasks are no-ops; a task can't be in a group and depend on it.
        check(
            "d: {task_groups: [{group_name: g}], tasks: [{task_id: a, operator: EmptyOperator, dependencies: [g]}]}",
            "dag d None\n a <-",
        );
        check(
            "d: {task_groups: [{group_name: g}], tasks: [{task_id: a, operator: EmptyOperator, task_group_name: g, dependencies: [g]}]}",
            "error 1:103 dependency cycle: g.a -> g.a",
        );
        check(
            "d:\n  tasks:\n    a: {operator: EmptyOperator}\n    a: {operator: EmptyOperator}\n",
            "error 4:5 invalid YAML: duplicated key in mapping",
        );
        check("d: {schedule: '@once', tasks: []}", "dag d @once");
        check("d: {schedule: null}", "dag d None");
        // Airflow 3 and dag-factory 1.1 refuse `schedule_interval`, unless it is null.
        check(
            "d: {schedule: '@daily', schedule_interval: '@hourly'}",
            "error 1:44 `schedule_interval` is no longer accepted in Airflow 3; use `schedule` instead",
        );
        check(
            "d: {schedule: '@daily', schedule_interval: null}",
            "dag d 0 0 * * *",
        );
        check(
            "'my dag': {}",
            "error 1:1 dag_id `my dag` must be 1 to 250 letters",
        );
        check(
            "d: {task_groups: [{group_name: a.b}]}",
            "error 1:32 group_name `a.b` must be 1 to 200 letters, digits, `_` or `-`\n",
        );
        check(
            "d: {tasks: [{task_id: a, decorator: airflow.decorators.task}]}",
            "error 1:23 task `a` needs a `python_callable`",
        );
        check(
            "d: {tasks: [{task_id: a, decorator: my.task, python_callable: m.f}]}",
            "error 1:37 unknown decorator `my.task`",
        );
        check("d: {start_date: '2 days'}\ne: {}", "dag d None\ndag e None");
    }

    /// A DAG's zone is its start date's, as Airflow's `_extract_tz` finds it after
    /// dag-factory has read the date in `timezone` (or `default_args.timezone`), UTC when
    /// that is unset; without a start date, `[core] default_timezone`.
    #[test]
    fn a_dag_takes_the_zone_of_its_start_date() {
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        let cases = [
            (
                "d: {timezone: Europe/Amsterdam, start_date: 2024-03-30, schedule: '30 2 * * *'}",
                "Europe/Amsterdam",
                Some("2024-03-29T23:00:00Z"),
            ),
            (
                "d: {default_args: {timezone: America/New_York, start_date: 2024-01-01}}",
                "America/New_York",
                Some("2024-01-01T05:00:00Z"),
            ),
            // The DAG's own start date is read in the DAG's `timezone`, UTC by default,
            // whatever default_args say.
            (
                "d: {start_date: 2024-01-01, default_args: {timezone: America/New_York, start_date: 2023-01-01}}",
                "UTC",
                Some("2024-01-01T00:00:00Z"),
            ),
            ("d: {timezone: Europe/Amsterdam}", "Asia/Tokyo", None),
            ("d: {}", "Asia/Tokyo", None),
        ];
        for (yaml, zone, start) in cases {
            let parsed = crate::dagfile::parse_in("dags/test.yml", yaml, now(), tokyo);
            assert_eq!(parsed.errors, [], "{yaml}");
            let dag = &parsed.dags[0];
            assert_eq!(dag.timezone.name(), zone, "{yaml}");
            assert_eq!(dag.start_date, start.map(|s| s.parse().unwrap()), "{yaml}");
        }
        // Stored DAGs from before zones load, in UTC.
        let mut json = serde_json::to_value(&parse_ok("d: {}")[0]).unwrap();
        json.as_object_mut().unwrap().remove("timezone");
        let old: Dag = serde_json::from_value(json).unwrap();
        assert_eq!(old.timezone, Zone::default());
    }

    /// Timetables in a file: unknown classes and zones are import errors at their line.
    #[test]
    fn timetable_import_errors() {
        check(
            "d:\n  schedule:\n    __type__: airflow.timetables.trigger.CronTriggerTimetable\n    cron: '0 3 * * *'\n    timezone: Europe/Amsterdam\n",
            "dag d 0 3 * * *",
        );
        check(
            "d:\n  schedule:\n    __type__: airflow.timetables.simple.ContinuousTimetable\n",
            "error 3:15 schedules of type `airflow.timetables.simple.ContinuousTimetable` are not supported",
        );
        check(
            "d:\n  schedule:\n    __type__: airflow.timetables.trigger.CronTriggerTimetable\n    cron: '0 3 * * *'\n    timezone: Europe/Amsterdm\n",
            "error 5:15 unknown time zone `Europe/Amsterdm`",
        );
        check(
            "d:\n  timezone: Mars/Olympus\n  start_date: 2024-01-01\n",
            "error 2:13 unknown time zone `Mars/Olympus`",
        );
    }

    #[test]
    fn ids_are_held_to_airflows_column_sizes() {
        let long = |n: usize| "x".repeat(n);
        // Each id on its own: dag_id and task_id 250, a group's own id 200.
        check(
            &format!("{}: {{}}", long(250)),
            &format!("dag {} None", long(250)),
        );
        check(
            &format!("{}: {{}}", long(251)),
            "error 1:1 dag_id `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...` (251 characters) must be 1 to 250",
        );
        check(
            &format!(
                "d: {{tasks: [{{task_id: {}, operator: EmptyOperator}}]}}",
                long(251)
            ),
            "error 1:23 task_id `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...` (251 characters) must be 1 to 250",
        );
        check(
            &format!("d: {{task_groups: [{{group_name: {}}}]}}", long(201)),
            "error 1:32 group_name `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...` (201 characters) must be 1 to 200",
        );
        // A task's full id, with its groups' ids in front, is held to 250 as well.
        let (g, t) = (long(150), long(100));
        check(
            &format!(
                "d:\n  task_groups: [{{group_name: {g}}}]\n  tasks:\n    - {{task_id: {t}, operator: EmptyOperator, task_group_name: {g}}}\n"
            ),
            "error 4:17 the full id of this task, `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...` with the ids of the task groups around it, is 251 characters long; Airflow's limit is 250",
        );
        // Thousands of nested groups: the group where the chain passes the limit is
        // reported, at its line, once (not each group and task inside it), and the ids
        // are never built in full.
        let depth = 2000;
        let mut yaml = String::from("d:\n  task_groups:\n");
        for i in 0..depth {
            yaml.push_str(&format!("    - {{group_name: group{i:04}"));
            if i > 0 {
                yaml.push_str(&format!(", parent_group_name: group{:04}", i - 1));
            }
            yaml.push_str("}\n");
        }
        yaml.push_str(&format!(
            "  tasks:\n    - {{task_id: t, operator: EmptyOperator, task_group_name: group{:04}}}\n",
            depth - 1
        ));
        let parsed = parse("dags/deep.yml", &yaml, now());
        assert!(parsed.dags.is_empty());
        // `groupNNNN` is 9 characters: 25 levels make 249, the 26th is too long.
        let first = &parsed.errors[0];
        assert_eq!((first.line, first.column), (3 + 25, 20), "{first:?}");
        assert!(
            first.message.contains("is 259 characters long"),
            "{first:?}"
        );
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors.get(1));
    }

    /// Parses `yaml` with these `defaults.yml` files (root first), variables and files.
    fn parse_in(
        yaml: &str,
        defaults: &[(&str, &str)],
        vars: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> FileParse {
        let defaults: Vec<DefaultsFile> = defaults
            .iter()
            .map(|(name, text)| DefaultsFile {
                name: name.to_string(),
                text: text.to_string(),
            })
            .collect();
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let read = |path: &str| {
            files
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, text)| text.to_string())
                .ok_or_else(|| format!("{path}: No such file or directory"))
        };
        let inputs = Inputs {
            now: now(),
            default_zone: Zone::default(),
            var: &var,
            defaults: &defaults,
            read: &read,
        };
        parse_with("dags/a/b/test.yml", yaml, &inputs)
    }

    /// The start of an absolute path on this platform.
    const ABS: &str = if cfg!(windows) { "C:" } else { "" };
    const SRV_DAGS: &str = if cfg!(windows) {
        "C:/srv/dags"
    } else {
        "/srv/dags"
    };

    const TASK: &str = "  tasks:\n    - task_id: t\n      operator: airflow.providers.standard.operators.bash.BashOperator\n      bash_command: echo hi\n";

    /// `tests/compat/key_verdicts.py`'s three-level cases: root `defaults.yml`,
    /// `a/defaults.yaml`, `a/b/defaults.yml` (beside which a `defaults.yaml` loses), with
    /// what Apache Airflow 3.3.2 + dag-factory 1.1.0 built from them.
    #[test]
    fn defaults_files_at_three_levels() {
        let levels = [
            (
                "defaults.yml",
                "description: root\nschedule: '@daily'\ncatchup: true\ntags: [zeta, root]\n\
                 default_args: {owner: root, retries: 1, pool: root_pool, env: {ROOT: '1'}, start_date: 2024-01-01}\n",
            ),
            (
                "a/defaults.yaml",
                "description: a\ntags: [alpha]\ndefault_args: {owner: a, env: {A: '1'}}\n",
            ),
            (
                "a/b/defaults.yml",
                "tags: [beta, root]\ndefault_args: {retries: 3}\n",
            ),
        ];
        // (DAG file, description, tags, owner, env) as Airflow printed them; every case
        // also has schedule @daily (0 0 * * *), catchup, retries 3 and pool root_pool.
        let cases = [
            (
                format!("d:\n{TASK}"),
                "a",
                vec!["alpha", "beta", "dagfactory", "root", "zeta"],
                "a",
                ("A", "1"),
            ),
            (
                format!(
                    "d:\n  description: own\n  tags: [own]\n  default_args: {{owner: own}}\n{TASK}"
                ),
                "own",
                vec!["dagfactory", "own"],
                "own",
                ("A", "1"),
            ),
            // The defaults files' DAG-level keys win over the file's `default` block (the
            // DAG's own settings take them first); its `default_args` win over theirs,
            // key by key, not deeper (`env` is the block's alone).
            (
                format!(
                    "default:\n  description: block\n  schedule: '@hourly'\n  default_args: {{owner: block, env: {{BLOCK: '1'}}}}\nd:\n{TASK}"
                ),
                "a",
                vec!["alpha", "beta", "dagfactory", "root", "zeta"],
                "block",
                ("BLOCK", "1"),
            ),
        ];
        for (yaml, description, tags, owner, env) in cases {
            let parsed = parse_in(&yaml, &levels, &[], &[]);
            assert_eq!(parsed.errors, [], "{yaml}");
            let dag = &parsed.dags[0];
            let mut got_tags: Vec<&str> = dag.tags.iter().map(String::as_str).collect();
            got_tags.sort_unstable();
            let t = &dag.tasks[0];
            assert_eq!(
                (
                    dag.description.as_deref(),
                    dag.schedule.summary().as_deref(),
                    dag.catchup,
                    got_tags,
                ),
                (Some(description), Some("0 0 * * *"), true, tags),
                "{yaml}"
            );
            assert_eq!(
                (t.owner.as_str(), t.retries, t.pool.as_str(), t.env.clone()),
                (
                    owner,
                    3,
                    "root_pool",
                    Some(vec![(env.0.to_string(), env.1.to_string())])
                ),
                "{yaml}"
            );
            assert_eq!(dag.start_date, "2024-01-01T00:00:00Z".parse().ok());
        }
    }

    /// The verdicts `tests/compat/key_verdicts.py` got from Apache Airflow 3.3.2 +
    /// dag-factory 1.1.0 for each case: `ok`, or the error updraft gives at its place.
    #[test]
    fn key_verdicts_match_airflow() {
        let bash = |extra: &str| format!("d:\n{TASK}{extra}");
        let dag = |key: &str| format!("d:\n  {key}\n{TASK}");
        let cases: Vec<(&str, String, &str, &str)> = vec![
            ("plain", dag("schedule: '@daily'"), "", "dag d 0 0 * * *"),
            (
                "schedule_interval",
                dag("schedule_interval: '@daily'"),
                "",
                "error 2:22 `schedule_interval` is no longer accepted in Airflow 3",
            ),
            (
                "schedule_interval_null",
                dag("schedule_interval: null"),
                "",
                "dag d None",
            ),
            (
                "schedule_interval_in_default",
                format!("default:\n  schedule_interval: '@daily'\nd:\n{TASK}"),
                "",
                "error 2:22 `schedule_interval` is no longer accepted",
            ),
            (
                "schedule_interval_in_defaults_yml",
                format!("d:\n{TASK}"),
                "schedule_interval: '@daily'\n",
                "error 1:1 in defaults.yml at line 1, column 20: `schedule_interval` is no longer accepted",
            ),
            ("default_view", dag("default_view: grid"), "", "dag d None"),
            ("orientation", dag("orientation: LR"), "", "dag d None"),
            ("unknown_dag_key", dag("no_such_key: 1"), "", "dag d None"),
            ("concurrency", dag("concurrency: 2"), "", "dag d None"),
            (
                "sla_miss_callback",
                dag("sla_miss_callback: x.y"),
                "",
                "dag d None",
            ),
            (
                "is_paused_upon_creation",
                dag("is_paused_upon_creation: true"),
                "",
                "dag d None",
            ),
            (
                "access_control",
                dag("access_control: {}"),
                "",
                "dag d None",
            ),
            (
                "timetable",
                dag("timetable: x"),
                "",
                "error 2:14 `timetable` is not a DAG argument in Airflow 3",
            ),
            (
                "render_template_as_native_obj_bool",
                dag("render_template_as_native_obj: true"),
                "",
                "dag d None",
            ),
            (
                "render_template_as_native_obj_str",
                dag("render_template_as_native_obj: 'yes'"),
                "",
                "error 2:34 `render_template_as_native_obj` must be true or false",
            ),
            (
                "template_searchpath_relative",
                dag("template_searchpath: sql"),
                "",
                "error 2:24 `template_searchpath` must be absolute paths",
            ),
            (
                "doc_md_file_path_relative",
                dag("doc_md_file_path: README.md"),
                "",
                "error 2:21 `doc_md_file_path` must be an absolute path",
            ),
            (
                "doc_md_file_path_missing",
                dag(&format!("doc_md_file_path: {ABS}/no/such/file.md")),
                "",
                "error 2:21 cannot read `doc_md_file_path`: ",
            ),
            (
                "unknown_default_arg",
                dag("default_args: {no_such_arg: 1}"),
                "",
                "dag d None",
            ),
            (
                "unknown_task_key",
                bash("      no_such_key: 1\n"),
                "",
                "error 6:7 task `t`: BashOperator takes no argument `no_such_key`",
            ),
            ("task_sla", bash("      sla: 60\n"), "", "dag d None"),
            (
                "task_provide_context",
                bash("      provide_context: true\n"),
                "",
                "error 6:7 task `t`: BashOperator takes no argument `provide_context`",
            ),
            (
                "task_task_concurrency",
                bash("      task_concurrency: 1\n"),
                "",
                "error 6:7 task `t`: BashOperator takes no argument `task_concurrency`",
            ),
            (
                "task_max_active_tis_per_dag",
                bash("      max_active_tis_per_dag: 1\n"),
                "",
                "dag d None",
            ),
            ("task_doc_md", bash("      doc_md: hi\n"), "", "dag d None"),
            (
                "task_group_unknown_key",
                format!(
                    "d:\n  task_groups: [{{group_name: g, no_such_key: 1}}]\n{TASK}      task_group_name: g\n"
                ),
                "",
                "error 2:33 task group `g`: TaskGroup takes no argument `no_such_key`",
            ),
            (
                "empty_defaults_yml",
                format!("d:\n{TASK}"),
                "",
                "error 1:1 in defaults.yml at line 1, column 1: a defaults file must be a mapping of settings, not null",
            ),
            (
                "defaults_yml_list",
                format!("d:\n{TASK}"),
                "- a\n",
                "error 1:1 in defaults.yml at line 1, column 1: a defaults file must be a mapping of settings, not a list",
            ),
            (
                "defaults_yml_default_args_list",
                format!("d:\n{TASK}"),
                "default_args: [a]\n",
                "error 1:1 in defaults.yml at line 1, column 15: `default_args` must be a mapping, not a list",
            ),
            (
                "defaults_yml_tags_string",
                format!("d:\n{TASK}"),
                "tags: x\n",
                "error 1:1 in defaults.yml at line 1, column 7: `tags` must be a list",
            ),
            (
                "defaults_yml_unknown_key",
                format!("d:\n{TASK}"),
                "no_such_key: 1\n",
                "dag d None",
            ),
        ];
        let with_defaults = [
            "schedule_interval_in_defaults_yml",
            "empty_defaults_yml",
            "defaults_yml_list",
            "defaults_yml_default_args_list",
            "defaults_yml_tags_string",
            "defaults_yml_unknown_key",
        ];
        for (name, yaml, defaults, expect) in cases {
            let files: &[(&str, &str)] = if with_defaults.contains(&name) {
                &[("defaults.yml", defaults)]
            } else {
                &[]
            };
            let parsed = parse_in(&yaml, files, &[], &[]);
            let expect = if expect.starts_with("dag") {
                format!("{expect}\n  t <-")
            } else {
                expect.to_string()
            };
            check_parsed(&parsed, &expect);
        }
    }

    /// dag-factory runs `os.path.expandvars` over each file's whole text: set variables are
    /// put in (keys too, and in `defaults.yml`), unset ones stay as written.
    #[test]
    fn environment_variables_are_expanded() {
        let vars = [
            ("OWNER", "ops"),
            ("CONFIG_ROOT_DIR", SRV_DAGS),
            ("SUFFIX", "nightly"),
        ];
        let yaml = format!(
            "d_${{SUFFIX}}:\n  description: $OWNER runs $UNSET and ${{ALSO_UNSET}}\n  doc_md_file_path: $CONFIG_ROOT_DIR/docs/d.md\n  default_args: {{owner: $OWNER}}\n{TASK}"
        );
        let parsed = parse_in(
            &yaml,
            &[("defaults.yml", "default_args: {pool: pool_$SUFFIX}\n")],
            &vars,
            &[(&format!("{SRV_DAGS}/docs/d.md"), "# About d\nsee $OWNER")],
        );
        assert_eq!(parsed.errors, []);
        let dag = &parsed.dags[0];
        assert_eq!(dag.dag_id, "d_nightly");
        assert_eq!(
            dag.description.as_deref(),
            Some("ops runs $UNSET and ${ALSO_UNSET}")
        );
        // The file doc_md_file_path names is read as it is.
        assert_eq!(dag.doc_md.as_deref(), Some("# About d\nsee $OWNER"));
        assert_eq!(
            (dag.tasks[0].owner.as_str(), dag.tasks[0].pool.as_str()),
            ("ops", "pool_nightly")
        );
        // Without the variable, the path stays relative: dag-factory's error.
        let parsed = parse_in(&yaml, &[], &[vars[0], vars[2]], &[]);
        check_parsed(
            &parsed,
            "error 3:21 `doc_md_file_path` must be an absolute path, not `$CONFIG_ROOT_DIR/docs/d.md`",
        );
    }

    #[test]
    fn doc_md_file_path_replaces_doc_md() {
        let yaml = format!("d:\n  doc_md: inline\n  doc_md_file_path: {ABS}/docs/d.md\n{TASK}");
        let parsed = parse_in(
            &yaml,
            &[],
            &[],
            &[(&format!("{ABS}/docs/d.md"), "from the file")],
        );
        assert_eq!(parsed.errors, []);
        assert_eq!(parsed.dags[0].doc_md.as_deref(), Some("from the file"));
        let parsed = parse_in(&format!("d:\n  doc_md: inline\n{TASK}"), &[], &[], &[]);
        assert_eq!(parsed.dags[0].doc_md.as_deref(), Some("inline"));
    }
}
