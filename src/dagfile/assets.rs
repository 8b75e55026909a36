//! Assets in DAG files: `outlets`/`inlets` of tasks and asset `schedule`s, as dag-factory
//! 1.1.0 builds them on Airflow 3.3.2.
//!
//! dag-factory turns every `__type__` mapping into its object first (`cast_with_type`),
//! then folds `__and__`/`__or__` lists with `&`/`|` (which only assets support: a list
//! holding a plain string becomes a string, which Airflow then reads as a cron
//! expression and refuses). A schedule that is a list makes each string an
//! `Asset(uri)`; `outlets`/`inlets` do the same, and also read `file:` + `datasets:` (the
//! URIs of the named entries of a YAML file's `datasets:` list). On Airflow 3 dag-factory
//! hands a `schedule:` mapping without `__type__` (its Airflow 2 `datasets:` forms) to
//! the DAG unchanged, which Airflow refuses, and so does updraft. `airflow.datasets` is
//! gone in Airflow 3, so `airflow.datasets.Dataset` is an import error there too.

use serde_json::Value as Json;

use super::yaml::{Node, Value};
use super::{ImportError, values};
use crate::model::{AssetCond, AssetRef, Schedule};

const ASSET_TYPES: &[&str] = &[
    "airflow.sdk.Asset",
    "airflow.sdk.definitions.asset.Asset",
    "airflow.sdk.definitions.asset.Dataset",
];
const ALIAS_TYPES: &[&str] = &[
    "airflow.sdk.AssetAlias",
    "airflow.sdk.definitions.asset.AssetAlias",
];
const ALL_TYPES: &[&str] = &[
    "airflow.sdk.AssetAll",
    "airflow.sdk.definitions.asset.AssetAll",
];
const ANY_TYPES: &[&str] = &[
    "airflow.sdk.AssetAny",
    "airflow.sdk.definitions.asset.AssetAny",
];
const OR_TIME_TYPES: &[&str] = &[
    "airflow.timetables.assets.AssetOrTimeSchedule",
    "airflow.sdk.AssetOrTimeSchedule",
    "airflow.sdk.definitions.timetables.assets.AssetOrTimeSchedule",
];
/// Modules Airflow 3 no longer has: a `__type__` in them fails to import.
const GONE_MODULES: &[&str] = &["airflow.datasets.", "airflow.assets."];

fn type_name(n: &Node) -> Option<&str> {
    match &n.field("__type__")?.value {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// Whether a schedule's node is one of the asset forms (so `values::schedule` hands it
/// here rather than reading it as a timetable).
pub(crate) fn is_asset_schedule(n: &Node) -> bool {
    match &n.value {
        Value::List(_) => true,
        Value::Map(_) => match type_name(n) {
            Some(t) => {
                ASSET_TYPES.contains(&t)
                    || ALIAS_TYPES.contains(&t)
                    || ALL_TYPES.contains(&t)
                    || ANY_TYPES.contains(&t)
                    || OR_TIME_TYPES.contains(&t)
                    || GONE_MODULES.iter().any(|m| t.starts_with(m))
            }
            None => n.entry("__and__").is_some() || n.entry("__or__").is_some(),
        },
        _ => false,
    }
}

/// An asset schedule (`is_asset_schedule` said so).
pub(crate) fn schedule(n: &Node) -> Result<Schedule, ImportError> {
    if let Value::List(items) = &n.value {
        // dag-factory drops nulls and blank strings, and makes each string an asset.
        let mut all = Vec::new();
        for item in items {
            match &item.value {
                Value::Null => {}
                Value::Str(s) if s.trim().is_empty() => {}
                Value::Str(s) => all.push(AssetCond::Asset(asset_of(s.trim(), None, item)?)),
                _ => all.push(condition(item)?),
            }
        }
        if all.is_empty() {
            return Err(n
                .pos
                .error("an asset schedule needs at least one asset; use null for no schedule"));
        }
        return Ok(Schedule::Assets(AssetCond::All(all)));
    }
    if let Some(t) = type_name(n).filter(|t| OR_TIME_TYPES.contains(t)) {
        return or_time(n, t);
    }
    let cond = condition(n)?;
    // Airflow wraps a single asset or alias in `AssetAll` (`_default_timetable`).
    Ok(Schedule::Assets(match cond {
        c @ (AssetCond::Asset(_) | AssetCond::Alias(_)) => AssetCond::All(vec![c]),
        c => c,
    }))
}

/// `AssetOrTimeSchedule(timetable=..., assets=...)`, keyword arguments only.
fn or_time(n: &Node, path: &str) -> Result<Schedule, ImportError> {
    for e in n.entries() {
        if !matches!(e.key.as_str(), "__type__" | "timetable" | "assets") {
            return Err(e.key_pos.error(format!(
                "{path} got an unexpected keyword argument `{}` (it takes `timetable` and `assets`)",
                e.key
            )));
        }
    }
    let tt = n
        .field("timetable")
        .ok_or_else(|| n.pos.error(format!("{path} needs `timetable`")))?;
    let timetable = match values::schedule(tt)? {
        Schedule::Timetable(t) => t,
        _ => {
            return Err(tt.pos.error(format!(
                "the `timetable` of {path} must be a timetable (a `__type__` mapping of one of Airflow's timetable classes), not {}",
                tt.describe()
            )));
        }
    };
    let a = n
        .field("assets")
        .ok_or_else(|| n.pos.error(format!("{path} needs `assets`")))?;
    let assets = match &a.value {
        Value::List(items) => {
            AssetCond::All(items.iter().map(condition).collect::<Result<Vec<_>, _>>()?)
        }
        _ => match condition(a)? {
            c @ (AssetCond::Asset(_) | AssetCond::Alias(_)) => AssetCond::All(vec![c]),
            c => c,
        },
    };
    Ok(Schedule::AssetOrTime { timetable, assets })
}

/// One asset, alias, or `__and__`/`__or__`/`AssetAll`/`AssetAny` of them.
fn condition(n: &Node) -> Result<AssetCond, ImportError> {
    if !n.is_map() {
        return Err(n.pos.error(format!(
            "all elements of an asset schedule must be assets (`__type__: airflow.sdk.Asset`), asset aliases or conditions of them, not {}",
            n.describe()
        )));
    }
    if let Some(t) = type_name(n) {
        if ASSET_TYPES.contains(&t) {
            return asset(n, t).map(AssetCond::Asset);
        }
        if ALIAS_TYPES.contains(&t) {
            return alias(n, t);
        }
        if ALL_TYPES.contains(&t) || ANY_TYPES.contains(&t) {
            let items = match n.field("__args__").map(|a| &a.value) {
                Some(Value::List(items)) => {
                    items.iter().map(condition).collect::<Result<Vec<_>, _>>()?
                }
                _ => return Err(n.pos.error(format!("{t} takes its assets as `__args__`"))),
            };
            return Ok(if ALL_TYPES.contains(&t) {
                AssetCond::All(items)
            } else {
                AssetCond::Any(items)
            });
        }
        return Err(n
            .field("__type__")
            .map_or(n.pos, |t| t.pos)
            .error(unknown_type(t)));
    }
    for (key, all) in [("__and__", true), ("__or__", false)] {
        if let Some(e) = n.entry(key) {
            let Value::List(items) = &e.value.value else {
                return Err(e.value.pos.error(format!("`{key}` must be a list")));
            };
            let items = items
                .iter()
                .map(|i| {
                    condition(i).map_err(|_| {
                        i.pos.error(format!(
                            "each item of `{key}` must be an asset (`__type__: airflow.sdk.Asset`), an alias or a condition of them, not {} (dag-factory joins strings into one string, which Airflow reads as a cron expression and refuses)",
                            i.describe()
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if all {
                AssetCond::All(items)
            } else {
                AssetCond::Any(items)
            });
        }
    }
    Err(n.pos.error(
        "a schedule mapping must be a `__type__` mapping (a timetable, an asset, AssetOrTimeSchedule) or `__and__`/`__or__` of assets; dag-factory's `datasets:`/`file:` schedule forms are Airflow 2 only and Airflow 3 refuses them",
    ))
}

fn unknown_type(t: &str) -> String {
    if GONE_MODULES.iter().any(|m| t.starts_with(m)) {
        format!(
            "`{t}` cannot be imported: Airflow 3 has no module `{}`; use airflow.sdk.Asset or airflow.sdk.AssetAlias",
            t.rsplit_once('.').map_or(t, |(m, _)| m)
        )
    } else {
        format!(
            "`{t}` is not an asset type; use airflow.sdk.Asset, airflow.sdk.AssetAlias, airflow.sdk.AssetAll or airflow.sdk.AssetAny"
        )
    }
}

/// `Asset(name=None, uri=None, *, group="asset", extra=None)`: the first `__args__` are
/// the name and the URI.
fn asset(n: &Node, path: &str) -> Result<AssetRef, ImportError> {
    let mut name = None;
    let mut uri = None;
    let mut group = None;
    let mut extra = Json::Object(Default::default());
    if let Some(args) = n.field("__args__") {
        let Value::List(items) = &args.value else {
            return Err(args.pos.error("`__args__` must be a list"));
        };
        if items.len() > 2 {
            return Err(args.pos.error(format!(
                "{path} takes at most 2 positional arguments (name, uri), not {}",
                items.len()
            )));
        }
        name = items.first().map(|i| i.string("name")).transpose()?;
        uri = items.get(1).map(|i| i.string("uri")).transpose()?;
    }
    for e in n.entries() {
        match e.key.as_str() {
            "__type__" | "__args__" => {}
            "name" | "uri" | "group" if e.value.value == Value::Null => {}
            "name" => name = Some(e.value.string("name")?),
            "uri" => uri = Some(e.value.string("uri")?),
            "group" => group = Some(e.value.string("group")?),
            "extra" => {
                if e.value.value != Value::Null {
                    extra = e.value.to_json();
                    if !extra.is_object() {
                        return Err(e.value.pos.error(format!(
                            "the `extra` of an asset must be a mapping, not {}",
                            e.value.describe()
                        )));
                    }
                }
            }
            "watchers" => {}
            other => {
                return Err(e.key_pos.error(format!(
                    "{path} got an unexpected keyword argument `{other}` (it takes name, uri, group, extra, watchers)"
                )));
            }
        }
    }
    let (name, uri) = match (name, uri) {
        (None, None) => return Err(n.pos.error("an asset needs a `name` or a `uri`")),
        (Some(name), None) => (name.clone(), name),
        (None, Some(uri)) => (uri.clone(), uri),
        (Some(name), Some(uri)) => (name, uri),
    };
    let mut a = asset_of(&uri, Some(name), n)?;
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        a.group = g;
    }
    a.extra = extra;
    Ok(a)
}

/// An asset from its URI (and name: the URI when not given), checked and normalized as
/// Airflow's `_sanitize_uri` does for the common cases: the scheme in lower case, no
/// trailing slash.
fn asset_of(uri: &str, name: Option<String>, at: &Node) -> Result<AssetRef, ImportError> {
    if uri.is_empty() || uri.len() > 1500 {
        return Err(at
            .pos
            .error("an asset's URI must be 1 to 1500 characters long"));
    }
    let name = name.unwrap_or_else(|| uri.to_string());
    if name.is_empty() || name.len() > 1500 {
        return Err(at
            .pos
            .error("an asset's name must be 1 to 1500 characters long"));
    }
    let uri = match uri.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme == "airflow" {
                return Err(at.pos.error(format!(
                    "the asset URI `{uri}` uses the reserved scheme `airflow`"
                )));
            }
            let rest = match rest.trim_end_matches('/') {
                "" => rest,
                trimmed => trimmed,
            };
            format!("{scheme}://{rest}")
        }
        None => uri.to_string(),
    };
    Ok(AssetRef {
        name,
        uri,
        group: "asset".to_string(),
        extra: Json::Object(Default::default()),
    })
}

/// `AssetAlias(name, group="asset")`.
fn alias(n: &Node, path: &str) -> Result<AssetCond, ImportError> {
    let mut name = match n.field("__args__").map(|a| &a.value) {
        Some(Value::List(items)) => items.first().map(|i| i.string("name")).transpose()?,
        _ => None,
    };
    for e in n.entries() {
        match e.key.as_str() {
            "__type__" | "__args__" | "group" => {}
            "name" => name = Some(e.value.string("name")?),
            other => {
                return Err(e.key_pos.error(format!(
                    "{path} got an unexpected keyword argument `{other}` (it takes name, group)"
                )));
            }
        }
    }
    match name.filter(|s| !s.is_empty()) {
        Some(name) => Ok(AssetCond::Alias(name)),
        None => Err(n.pos.error(format!("{path} needs a `name`"))),
    }
}

/// A task's `outlets` or `inlets` (`key`): a list of URIs and assets, one asset, or
/// `file:` + `datasets:` (read by `read`, which takes an absolute path).
pub(crate) fn task_assets(
    n: &Node,
    key: &str,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<AssetCond>, ImportError> {
    match &n.value {
        Value::List(items) => items
            .iter()
            .filter(|i| i.value != Value::Null)
            .map(|i| match &i.value {
                Value::Str(s) => asset_of(s, None, i).map(AssetCond::Asset),
                Value::Map(_) => match type_name(i) {
                    Some(t) if ASSET_TYPES.contains(&t) => asset(i, t).map(AssetCond::Asset),
                    Some(t) if ALIAS_TYPES.contains(&t) => alias(i, t),
                    Some(t) => Err(i.pos.error(unknown_type(t))),
                    None => Err(i.pos.error(format!(
                        "each item of `{key}` must be a URI or an asset (`__type__: airflow.sdk.Asset`), not a mapping without `__type__`"
                    ))),
                },
                _ => Err(i.pos.error(format!(
                    "each item of `{key}` must be a URI or an asset, not {}",
                    i.describe()
                ))),
            })
            .collect(),
        Value::Str(s) => Ok(vec![AssetCond::Asset(asset_of(s, None, n)?)]),
        Value::Map(_) => match type_name(n) {
            Some(t) if ASSET_TYPES.contains(&t) => Ok(vec![AssetCond::Asset(asset(n, t)?)]),
            Some(t) if ALIAS_TYPES.contains(&t) => Ok(vec![alias(n, t)?]),
            Some(t) => Err(n.pos.error(unknown_type(t))),
            None => from_file(n, key, read),
        },
        _ => Err(n.pos.error(format!(
            "`{key}` must be a list of URIs or assets, not {}",
            n.describe()
        ))),
    }
}

/// dag-factory's `file:` + `datasets:`: the URIs of the entries of the file's `datasets`
/// list whose `name` is in `datasets`, in the file's order.
fn from_file(
    n: &Node,
    key: &str,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<AssetCond>, ImportError> {
    let (Some(file), Some(names)) = (n.field("file"), n.field("datasets")) else {
        return Err(n.pos.error(format!(
            "`{key}` as a mapping needs both `file` and `datasets` (dag-factory's datasets file)"
        )));
    };
    let path = file.string("file")?;
    if !std::path::Path::new(&path).is_absolute() {
        return Err(file.pos.error(format!(
            "`file` must be an absolute path, not `{path}` (`$CONFIG_ROOT_DIR/...` is one way)"
        )));
    }
    let wanted: Vec<String> = match &names.value {
        Value::Str(s) => vec![s.clone()],
        _ => names
            .strings("datasets")?
            .into_iter()
            .map(|(s, _)| s)
            .collect(),
    };
    let text = read(&path).map_err(|e| file.pos.error(format!("cannot read `{path}`: {e}")))?;
    let doc = super::yaml::load(&text).map_err(|e| {
        file.pos
            .error(format!("cannot read `{path}`: {}", e.message))
    })?;
    let mut out = Vec::new();
    let listed = doc.as_ref().and_then(|d| d.field("datasets"));
    if let Some(Value::List(entries)) = listed.map(|l| &l.value) {
        for e in entries {
            let (Some(Value::Str(name)), Some(Value::Str(uri))) = (
                e.field("name").map(|v| &v.value),
                e.field("uri").map(|v| &v.value),
            ) else {
                continue;
            };
            if wanted.contains(name) {
                out.push(AssetCond::Asset(asset_of(uri, None, file)?));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(src: &str) -> Node {
        super::super::yaml::load(src).unwrap().unwrap()
    }

    /// A schedule as `describe` writes it, or the error with its position.
    fn sched(src: &str) -> String {
        match values::schedule(&node(src)) {
            Ok(Schedule::Assets(c)) => format!("assets {}", c.describe()),
            Ok(Schedule::AssetOrTime { timetable, assets }) => {
                format!("or-time {} | {}", timetable.summary(), assets.describe())
            }
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("{}:{} {}", e.line, e.column, e.message),
        }
    }

    #[test]
    fn asset_schedules_in_the_forms_dag_factory_builds_on_airflow_3() {
        let a = |uri: &str| format!("{{__type__: airflow.sdk.Asset, uri: '{uri}'}}");
        let cases = [
            (
                "[s3://b/x, ' ', null, name_only]",
                "assets s3://b/x & name_only",
            ),
            (&format!("[{}]", a("S3://b/y/")), "assets S3://b/y/"),
            (&a("s3://b/x"), "assets s3://b/x"),
            (
                &format!(
                    "{{__or__: [{{__and__: [{}, {}]}}, {}]}}",
                    a("a://1"),
                    a("a://2"),
                    a("a://3")
                ),
                "assets (a://1 & a://2) | a://3",
            ),
            (
                &format!(
                    "{{__type__: airflow.sdk.AssetAny, __args__: [{}, {}]}}",
                    a("a://1"),
                    a("a://2")
                ),
                "assets a://1 | a://2",
            ),
            (
                &format!(
                    "{{__type__: airflow.timetables.assets.AssetOrTimeSchedule, timetable: {{__type__: airflow.timetables.trigger.CronTriggerTimetable, cron: '0 1 * * 5', timezone: UTC}}, assets: [{}]}}",
                    a("a://1")
                ),
                "or-time 0 1 * * 5 | a://1",
            ),
            (
                "[{__type__: airflow.sdk.AssetAlias, name: al}]",
                "assets alias al",
            ),
            (
                "{__and__: [s3://a, s3://b]}",
                "1:12 each item of `__and__` must be an asset",
            ),
            ("{datasets: [a]}", "1:1 a schedule mapping must be"),
            (
                "[{__type__: airflow.datasets.Dataset, uri: x}]",
                "1:13 `airflow.datasets.Dataset` cannot be imported",
            ),
            (
                "[{__type__: airflow.sdk.Asset}]",
                "1:2 an asset needs a `name` or a `uri`",
            ),
            (
                "[{__type__: airflow.sdk.Asset, uri: 'airflow://x'}]",
                "1:2 the asset URI `airflow://x` uses the reserved scheme",
            ),
            ("[]", "1:1 an asset schedule needs at least one asset"),
            (
                "{__type__: airflow.sdk.AssetOrTimeSchedule, timetable: '@daily', assets: []}",
                "1:56 the `timetable` of",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .map(|(src, want)| (src, want, sched(src)))
            .filter(|(_, want, got)| !got.starts_with(*want))
            .map(|(src, _, got)| format!("{src}: {got}"))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn an_asset_named_alone_stands_for_its_uri_and_the_other_way_round() {
        let Ok(Schedule::Assets(AssetCond::All(items))) = values::schedule(&node(
            "[{__type__: airflow.sdk.Asset, name: n}, {__type__: airflow.sdk.Asset, uri: 'U://x/', group: g, extra: {k: 1}}]",
        )) else {
            panic!("not an asset schedule");
        };
        let AssetCond::Asset(n) = &items[0] else {
            panic!()
        };
        assert_eq!(
            (n.name.as_str(), n.uri.as_str(), n.group.as_str()),
            ("n", "n", "asset")
        );
        let AssetCond::Asset(u) = &items[1] else {
            panic!()
        };
        assert_eq!(
            (u.name.as_str(), u.uri.as_str(), u.group.as_str()),
            ("U://x/", "u://x", "g")
        );
        assert_eq!(u.extra, serde_json::json!({"k": 1}));
    }

    #[test]
    fn outlets_read_uris_assets_aliases_and_datasets_files() {
        let file = "datasets:\n  - {name: d1, uri: 's3://b/1'}\n  - {name: d2, uri: 's3://b/2'}\n  - {name: d3}\n";
        let read = |path: &str| {
            if path == "/abs/ds.yml" {
                Ok(file.to_string())
            } else {
                Err("no such file".to_string())
            }
        };
        let got = |src: &str| match task_assets(&node(src), "outlets", &read) {
            Ok(v) => v
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("{}:{} {}", e.line, e.column, e.message),
        };
        assert_eq!(
            got(
                "[s3://b/x, {__type__: airflow.sdk.Asset, name: n}, {__type__: airflow.sdk.AssetAlias, name: al}]"
            ),
            "s3://b/x, n, alias al"
        );
        assert_eq!(
            got("{file: /abs/ds.yml, datasets: [d2, d1, d3]}"),
            "s3://b/1, s3://b/2"
        );
        assert!(got("{file: ds.yml, datasets: [d1]}").contains("must be an absolute path"));
        assert!(
            got("{file: /abs/none.yml, datasets: [d1]}").contains("cannot read `/abs/none.yml`")
        );
        assert!(got("[3]").contains("must be a URI or an asset"));
    }

    #[test]
    fn conditions_evaluate_as_airflow_all_and_any() {
        let Ok(Schedule::Assets(c)) = values::schedule(&node(
            "{__or__: [{__and__: [{__type__: airflow.sdk.Asset, uri: 'a://1'}, {__type__: airflow.sdk.Asset, uri: 'a://2'}]}, {__type__: airflow.sdk.Asset, uri: 'a://3'}]}",
        )) else {
            panic!()
        };
        let with = |set: &[&str]| {
            c.evaluate(&|leaf| matches!(leaf, AssetCond::Asset(a) if set.contains(&a.uri.as_str())))
        };
        assert!(!with(&[]));
        assert!(!with(&["a://1"]));
        assert!(with(&["a://1", "a://2"]));
        assert!(with(&["a://3"]));
    }
}
