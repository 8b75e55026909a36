//! The DAG processor: keeps the store in step with the DAG files.
//!
//! Two bundles, as in Airflow 3: `dags-folder` (the `.yml`/`.yaml` files under
//! `[core] dags_folder`, recursively) and `example_dags` (the examples compiled into the
//! binary, when `[core] load_examples` is on). A pass stats every file and re-parses only
//! those whose size or mtime changed, or below a `defaults.yml` that changed (appeared,
//! vanished); a vanished file's DAGs become stale, history kept. `defaults.yml` and
//! `defaults.yaml` are settings for the DAG files in their folder and below, not DAG files:
//! they are kept in the store as files without DAGs, so their changes are seen. The parser
//! gets from here what it may not read itself: those files, the environment variables (from
//! `Config::host`) and the files a DAG names (`doc_md_file_path`). `sync_all` re-parses
//! every file, for a new process whose environment may differ from the last one's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rust_embed::Embed;

use crate::config::Config;
use crate::dagfile;
use crate::error::{Error, Result};
use crate::store::{FileState, ParsedFile, Store};

/// The example DAGs shipped in the binary.
#[derive(Embed)]
#[folder = "src/example_dags/"]
struct Examples;

pub const FOLDER_BUNDLE: &str = "dags-folder";
pub const EXAMPLES_BUNDLE: &str = "example_dags";

/// What one pass did.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub parsed: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub errors: usize,
    /// Python files seen and skipped (they need Apache Airflow).
    pub python_files: usize,
}

/// The variable dag-factory's examples use for the DAG folder; updraft sets it to
/// `[core] dags_folder` when the environment does not.
const CONFIG_ROOT_DIR: &str = "CONFIG_ROOT_DIR";

/// Brings the store in step with both bundles, re-parsing what changed.
pub fn sync(store: &mut Store, cfg: &Config, now: DateTime<Utc>) -> Result<Report> {
    sync_with(store, cfg, now, false)
}

/// Brings the store in step with both bundles, re-parsing every file: what a DAG file
/// yields depends on the environment too (`$VAR`), which no file's mtime shows.
pub fn sync_all(store: &mut Store, cfg: &Config, now: DateTime<Utc>) -> Result<Report> {
    sync_with(store, cfg, now, true)
}

fn sync_with(store: &mut Store, cfg: &Config, now: DateTime<Utc>, all: bool) -> Result<Report> {
    let mut report = Report::default();
    let folder = &cfg.core.dags_folder;
    let mut files = Vec::new();
    if folder.is_dir() {
        walk(folder, &mut files, &mut report.python_files)?;
    } else {
        log::warn!(
            "dags_folder {} does not exist; set [core] dags_folder to a folder of dag-factory YAML files",
            folder.display()
        );
    }
    let on_disk = files.iter().map(|p| {
        let rel = relative(folder, p);
        (rel, Source::Disk(p.clone()))
    });
    sync_bundle(
        store,
        cfg,
        FOLDER_BUNDLE,
        on_disk.collect(),
        now,
        all,
        &mut report,
    )?;

    let examples = if cfg.core.load_examples {
        Examples::iter()
            .map(|name| (name.to_string(), Source::Embedded(name.to_string())))
            .collect()
    } else {
        Vec::new()
    };
    sync_bundle(store, cfg, EXAMPLES_BUNDLE, examples, now, all, &mut report)?;
    if report.python_files > 0 {
        log::info!(
            "skipped {} Python file(s) in {}: Python DAGs need Apache Airflow",
            report.python_files,
            folder.display()
        );
    }
    Ok(report)
}

enum Source {
    Disk(PathBuf),
    Embedded(String),
}

fn sync_bundle(
    store: &mut Store,
    cfg: &Config,
    bundle: &str,
    files: Vec<(String, Source)>,
    now: DateTime<Utc>,
    all: bool,
    report: &mut Report,
) -> Result<()> {
    let mut known = store.file_states(bundle)?;
    let (files, defaults): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(rel, _)| !is_defaults_file(rel));
    // The defaults files first: which folders have one that changed, and their text.
    let mut changed: BTreeSet<String> = known
        .keys()
        .filter(|rel| is_defaults_file(rel) && !defaults.iter().any(|(d, _)| d == *rel))
        .map(|rel| folder_of(rel).to_string())
        .collect();
    let mut by_folder: BTreeMap<String, dagfile::DefaultsFile> = BTreeMap::new();
    for (rel, source) in &defaults {
        let Source::Disk(path) = source else { continue };
        let old = known.remove(rel);
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let state = FileState {
            mtime_ns: mtime_ns(&meta),
            size: meta.len() as i64,
        };
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                log::warn!("cannot read {}: {e}", path.display());
                continue;
            }
        };
        let dir = folder_of(rel).to_string();
        // `defaults.yml` wins over `defaults.yaml` in one folder (sorted, it comes first).
        by_folder
            .entry(dir.clone())
            .or_insert(dagfile::DefaultsFile {
                name: rel.clone(),
                text: text.clone(),
            });
        if old.as_ref() != Some(&state) || all {
            changed.insert(dir);
            store.save_parsed_file(
                &ParsedFile {
                    bundle_name: bundle,
                    relative_path: rel,
                    fileloc: &path.to_string_lossy(),
                    state,
                    source: &text,
                    dags: &[],
                    error: None,
                },
                cfg.core.dags_are_paused_at_creation,
                now,
            )?;
        }
    }
    let root = cfg.core.dags_folder.to_string_lossy().into_owned();
    let var = |name: &str| {
        let value = cfg
            .host
            .var(name)
            .and_then(|v| v.to_str())
            .map(str::to_string);
        value.or_else(|| (name == CONFIG_ROOT_DIR).then(|| root.clone()))
    };
    let read = |path: &str| {
        std::fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| format!("{path}: {e}"))
    };
    for (rel, source) in files {
        let old = known.remove(&rel);
        // The folders from the DAG folder's root down to this file's.
        let chain = folders_above(&rel);
        let defaults_changed = chain.iter().any(|dir| changed.contains(*dir));
        let (state, text, fileloc) = match &source {
            Source::Disk(path) => {
                let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
                let state = FileState {
                    mtime_ns: mtime_ns(&meta),
                    size: meta.len() as i64,
                };
                if old.as_ref() == Some(&state) && !defaults_changed && !all {
                    report.unchanged += 1;
                    continue;
                }
                let text = match std::fs::read(path) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => {
                        log::warn!("cannot read {}: {e}", path.display());
                        continue;
                    }
                };
                (state, text, path.to_string_lossy().into_owned())
            }
            Source::Embedded(name) => {
                let Some(file) = Examples::get(name) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&file.data).into_owned();
                if old.is_some()
                    && !all
                    && store.file_source(bundle, &rel)?.as_deref() == Some(&text)
                {
                    report.unchanged += 1;
                    continue;
                }
                let state = FileState {
                    mtime_ns: 0,
                    size: text.len() as i64,
                };
                (state, text, format!("{EXAMPLES_BUNDLE}/{name}"))
            }
        };
        let applying: Vec<dagfile::DefaultsFile> = chain
            .iter()
            .filter_map(|dir| by_folder.get(*dir).cloned())
            .collect();
        let inputs = dagfile::Inputs {
            now,
            default_zone: cfg.core.default_timezone,
            var: &var,
            defaults: &applying,
            read: &read,
        };
        let parsed = dagfile::parse_with(&rel, &text, &inputs);
        for w in &parsed.warnings {
            log::warn!("{rel}: {w}");
        }
        let error = (!parsed.errors.is_empty()).then(|| {
            let first = &parsed.errors[0];
            let text = parsed
                .errors
                .iter()
                .map(|e| format!("{rel}:{}:{}: {}", e.line, e.column, e.message))
                .collect::<Vec<_>>()
                .join("\n");
            (first.line, first.column, text)
        });
        if let Some((_, _, text)) = &error {
            log::warn!("import error in {bundle}/{rel}:\n{text}");
            report.errors += 1;
        }
        store.save_parsed_file(
            &ParsedFile {
                bundle_name: bundle,
                relative_path: &rel,
                fileloc: &fileloc,
                state,
                source: &text,
                dags: &parsed.dags,
                error,
            },
            cfg.core.dags_are_paused_at_creation,
            now,
        )?;
        report.parsed += 1;
    }
    for rel in known.into_keys() {
        log::info!("{bundle}/{rel} is gone; its DAGs are now stale");
        store.remove_file(bundle, &rel)?;
        report.removed += 1;
    }
    Ok(())
}

/// Whether `rel` is a `defaults.yml` (or `.yaml`): settings, not a DAG file.
fn is_defaults_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    dagfile::DEFAULTS_FILE_NAMES.contains(&name)
}

/// The folder of `rel` inside the bundle: "" for the root, else `a/b`.
fn folder_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The folders from the bundle's root down to the one holding `rel`: "", "a", "a/b".
fn folders_above(rel: &str) -> Vec<&str> {
    let mut out = vec![""];
    for (i, c) in rel.char_indices() {
        if c == '/' {
            out.push(&rel[..i]);
        }
    }
    out
}

/// Collects DAG files under `dir`, skipping hidden entries; counts Python files.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, python: &mut usize) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|rd| rd.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| Error::io(dir, e))?;
    // Sorted, so that which of two files defining one DAG id wins is stable.
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out, python)?;
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => out.push(path),
            Some("py") => *python += 1,
            _ => {}
        }
    }
    Ok(())
}

/// The path inside the folder, with `/` on every platform (it is a stable key).
fn relative(folder: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(folder).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}
