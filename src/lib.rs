//! updraft: an Airflow-compatible workflow orchestrator in one binary.
//!
//! Code map (ARCHITECTURE.md has the long form):
//! - `cli` parses argv into a closed `Command`; `app` runs it.
//! - `config` reads `updraft.cfg` and `UPDRAFT__`/`AIRFLOW__` variables, validated once;
//!   `home` finds and creates `UPDRAFT_HOME`.
//! - `model` holds DAGs, tasks and Airflow's state names; no I/O.
//! - `dagfile` turns dag-factory YAML into `model::Dag`s or import errors;
//!   `processor` keeps the store in step with the DAG files.
//! - `scheduler` decides when DAGs run and what tasks do next (pure rules in
//!   `rules`, `timetable` and `decide`), and hands work to the `executor`; `clock` is
//!   the wall clock it reads, real or fake.
//! - `store` is the only module that talks to SQLite.
//! - `template` renders templated task fields with Airflow's Jinja context.
//! - `memory` gives freed memory back to the system in long-running commands.
//! - `process` runs a task command in its own process group or job object, output to
//!   the try's log, and kills its whole tree.
//
// Modules depend downward only, in the layers ARCHITECTURE.md lists; `tests` below checks it.
// Two calls have no safe wrapper: a Windows one (executor::end_tasks_with_this_process)
// and glibc's malloc_trim (memory::release); they are the only `allow`s.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod backfill;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dagfile;
pub mod error;
pub mod executor;
pub mod home;
pub mod ids;
pub mod jwt;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod percent;
pub mod plugins;
pub mod process;
pub mod processor;
pub mod py;
pub mod scheduler;
pub mod server;
pub mod signals;
pub mod store;
pub mod task_log;
pub mod template;

/// This machine's name, as tasks report it to the Execution API.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The crate's layers, bottom first: a module may name (`crate::x`) modules of its own
    /// layer or a lower one, and the modules never import one another in a cycle. A new
    /// module goes into one of these lists. ARCHITECTURE.md, "Layers", says why.
    const LAYERS: [&[&str]; 6] = [
        &[
            "clock", "error", "ids", "memory", "metrics", "model", "percent", "py", "task_log",
        ],
        &[
            "auth", "cli", "config", "dagfile", "home", "jwt", "logging", "plugins", "process",
            "store", "template",
        ],
        &["backfill", "executor", "ops", "processor", "scheduler"],
        &["api"],
        &["server"],
        &["app", "signals"],
    ];

    /// The modules `path` (a file, or a folder of them) names, comments and tests left out.
    fn names(path: &Path, modules: &BTreeSet<&str>, out: &mut BTreeSet<String>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                names(&entry.unwrap().path(), modules, out);
            }
            return;
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap().to_string() + "\n")
            .collect();
        // `crate::x`, and each item's first name in a `use crate::{x, y::{..}};` group.
        let re = |r: &str| regex_lite::Regex::new(r).unwrap();
        let path = re(r"crate::(\w+)|crate::\{([^;]*)\};");
        let (nested, item) = (re(r"\{[^{}]*\}"), re(r"(?:^|,)\s*(\w+)"));
        for c in path.captures_iter(&code) {
            let mut group = c.get(2).map_or("", |g| g.as_str()).to_string();
            while nested.is_match(&group) {
                group = nested.replace_all(&group, "").into_owned();
            }
            let firsts = item.captures_iter(&group).filter_map(|i| i.get(1));
            for n in c.get(1).into_iter().chain(firsts).map(|m| m.as_str()) {
                if modules.contains(n) {
                    out.insert(n.to_string());
                }
            }
        }
    }

    #[test]
    fn modules_depend_only_downward_and_never_in_a_cycle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let modules: BTreeSet<&str> = lib
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
            .collect();
        let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
        let mut deps = BTreeMap::new();
        for &m in &modules {
            assert!(
                layer(m).is_some(),
                "module {m} is in none of LAYERS: add it to one"
            );
            let mut out = BTreeSet::new();
            names(&src.join(format!("{m}.rs")), &modules, &mut out);
            names(&src.join(m), &modules, &mut out);
            out.remove(m);
            for d in &out {
                assert!(
                    layer(d) <= layer(m),
                    "{m} names {d}, a module of a higher layer"
                );
            }
            deps.insert(m.to_string(), out);
        }
        // Peel off modules that name no module left, and modules no module left names:
        // what stays is on a cycle (or between two).
        loop {
            let named: BTreeSet<String> = deps.values().flatten().cloned().collect();
            let peel: Vec<String> = deps
                .iter()
                .filter(|(m, d)| !named.contains(*m) || d.iter().all(|d| !deps.contains_key(d)))
                .map(|(m, _)| m.clone())
                .collect();
            if peel.is_empty() {
                break;
            }
            for m in peel {
                deps.remove(&m);
            }
        }
        assert!(
            deps.is_empty(),
            "import cycle among {:?}",
            deps.keys().collect::<Vec<_>>()
        );
    }
}
