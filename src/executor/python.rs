//! Python tasks: which interpreter runs them, and the runner that ships inside the binary.
//!
//! updraft has no Python of its own. A PythonOperator or TaskFlow try runs the user's
//! interpreter (`[core] python_interpreter`, else one found on PATH) on a small bootstrap,
//! `python/updraft_runner.py`, which is compiled into the binary and written out under the
//! home folder on first use, with the `airflow` compatibility package beside it. The
//! supervisor starts it like a Bash task's process (same tree kill, timeouts, heartbeats,
//! token); this module only finds the interpreter and lays out the files. Finding reads
//! PATH from the `HostEnv` it is given, never the process environment.

use std::ffi::{OsStr, OsString};
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use crate::process::HostEnv;

/// The config key users set; named in every message about a missing interpreter.
pub const KEY: &str = "[core] python_interpreter (AIRFLOW__CORE__PYTHON_INTERPRETER)";

/// The runner's files, by their path under the runner folder.
const FILES: &[(&str, &str)] = &[
    (
        "updraft_runner.py",
        include_str!("python/updraft_runner.py"),
    ),
    ("_updraft_task.py", include_str!("python/_updraft_task.py")),
    (
        "compat/airflow/__init__.py",
        include_str!("python/airflow/__init__.py"),
    ),
    (
        "compat/airflow/exceptions.py",
        include_str!("python/airflow/exceptions.py"),
    ),
    (
        "compat/airflow/sdk.py",
        include_str!("python/airflow/sdk.py"),
    ),
    (
        "compat/airflow/models.py",
        include_str!("python/airflow/models.py"),
    ),
    (
        "compat/airflow/utils/__init__.py",
        include_str!("python/airflow/utils/__init__.py"),
    ),
    (
        "compat/airflow/utils/context.py",
        include_str!("python/airflow/utils/context.py"),
    ),
    (
        "compat/airflow/operators/__init__.py",
        include_str!("python/airflow/operators/__init__.py"),
    ),
    (
        "compat/airflow/operators/python.py",
        include_str!("python/airflow/operators/python.py"),
    ),
];

/// A Python to run: the program and the arguments that come before the script (`-3` for
/// Windows' `py` launcher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Interpreter {
    fn new(program: PathBuf) -> Interpreter {
        // On text, not `Path::file_stem`, so Windows paths read the same on every host.
        let text = program.to_string_lossy();
        let name = text.rsplit(['/', '\\']).next().unwrap_or_default();
        let launcher = name.eq_ignore_ascii_case("py") || name.eq_ignore_ascii_case("py.exe");
        let args = if launcher {
            vec![OsString::from("-3")]
        } else {
            Vec::new()
        };
        Interpreter { program, args }
    }

    /// As the task log shows it.
    pub fn describe(&self) -> String {
        let mut text = self.program.display().to_string();
        for a in &self.args {
            text.push(' ');
            text.push_str(&a.to_string_lossy());
        }
        text
    }
}

/// The interpreter `configured` names (a path, or a name looked up on PATH), or when it is
/// empty the one a user would expect on this platform; `Err` is the one line the task log
/// gets, naming the key to set.
pub fn find(configured: &str, host: &HostEnv) -> Result<Interpreter, String> {
    let path_var = host.var("PATH");
    let windows = cfg!(windows);
    let configured = configured.trim();
    if !configured.is_empty() {
        return named(configured, path_var, windows, &is_executable).ok_or_else(|| {
            format!(
                "the Python interpreter `{configured}` set in {KEY} was not found or cannot be run"
            )
        });
    }
    let mut launcher_dirs = Vec::new();
    if windows {
        if let Some(local) = host.var("LOCALAPPDATA") {
            launcher_dirs.push(Path::new(local).join(r"Programs\Python\Launcher"));
        }
        if let Some(root) = host.var("SystemRoot") {
            launcher_dirs.push(PathBuf::from(root));
        }
    }
    discover(path_var, windows, &launcher_dirs, &is_executable).ok_or_else(|| {
        let looked = if windows {
            "python.exe, python3.exe and the py launcher"
        } else {
            "python3 and python"
        };
        format!(
            "no Python interpreter found (looked for {looked} on PATH): set {KEY} to the Python that runs Python tasks"
        )
    })
}

/// One line for `config list`: which interpreter Python tasks would run with.
pub fn summary(configured: &str, host: &HostEnv) -> String {
    match find(configured, host) {
        Ok(i) => format!("Python tasks run with {}", i.describe()),
        Err(e) => format!("Python tasks cannot run: {e}"),
    }
}

/// The configured interpreter: a path as given, or a bare name searched on PATH.
fn named(
    configured: &str,
    path_var: Option<&OsStr>,
    windows: bool,
    usable: &dyn Fn(&Path) -> bool,
) -> Option<Interpreter> {
    let as_path = Path::new(configured);
    let is_path = configured.contains('/') || (windows && configured.contains('\\'));
    if is_path {
        return usable(as_path).then(|| Interpreter::new(as_path.to_path_buf()));
    }
    let mut names = vec![configured.to_string()];
    if windows && !configured.to_ascii_lowercase().ends_with(".exe") {
        names.insert(0, format!("{configured}.exe"));
    }
    names
        .iter()
        .find_map(|name| search(path_var, name, windows, usable))
        .map(Interpreter::new)
}

/// The default: `python3`, then `python` on PATH (Unix); on Windows `python.exe`, then
/// `python3.exe`, then the `py` launcher (on PATH or in `launcher_dirs`) with `-3`. The
/// Microsoft Store's aliases in `WindowsApps` are never taken: without the Store's Python
/// installed they open the Store instead of running anything.
fn discover(
    path_var: Option<&OsStr>,
    windows: bool,
    launcher_dirs: &[PathBuf],
    usable: &dyn Fn(&Path) -> bool,
) -> Option<Interpreter> {
    let names: &[&str] = if windows {
        &["python.exe", "python3.exe", "py.exe"]
    } else {
        &["python3", "python"]
    };
    for name in names {
        if let Some(p) = search(path_var, name, windows, usable) {
            return Some(Interpreter::new(p));
        }
    }
    launcher_dirs
        .iter()
        .map(|dir| join(dir, "py.exe", windows))
        .find(|p| usable(p))
        .map(Interpreter::new)
}

/// The first `name` in PATH's folders that `usable` takes, passing over the Store's stubs.
fn search(
    path_var: Option<&OsStr>,
    name: &str,
    windows: bool,
    usable: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = match path_var {
        Some(p) if windows => p
            .to_string_lossy()
            .split(';')
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d.trim_matches('"')))
            .collect(),
        Some(p) => std::env::split_paths(p).collect(),
        None => Vec::new(),
    };
    dirs.into_iter()
        .filter(|d| !windows || !is_store_alias_dir(d))
        .map(|d| join(&d, name, windows))
        .find(|p| usable(p))
}

/// `dir` and `name` joined with the platform's separator (Windows rules are tested on
/// Unix too, so this does not use the host's).
fn join(dir: &Path, name: &str, windows: bool) -> PathBuf {
    if windows {
        let dir = dir.to_string_lossy();
        PathBuf::from(format!("{}\\{name}", dir.trim_end_matches(['\\', '/'])))
    } else {
        dir.join(name)
    }
}

/// Whether `dir` is `...\Microsoft\WindowsApps`, where the Store's `python.exe` aliases live.
fn is_store_alias_dir(dir: &Path) -> bool {
    let text = dir
        .to_string_lossy()
        .replace('/', "\\")
        .to_ascii_lowercase();
    text.trim_end_matches('\\')
        .ends_with("\\microsoft\\windowsapps")
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(windows)]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Writes the runner's files under `home` once per version of them, and returns their
/// folder. A folder is written under a temporary name and renamed into place, so a
/// process never sees half of one.
pub fn install(home: &Path) -> io::Result<PathBuf> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    FILES.hash(&mut hasher);
    let dir = home.join("python-runner").join(format!(
        "{}-{:016x}",
        env!("CARGO_PKG_VERSION"),
        hasher.finish()
    ));
    if dir.join("updraft_runner.py").is_file() {
        return Ok(dir);
    }
    let tmp = dir.with_extension(format!(
        "tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (rel, text) in FILES {
        let path = tmp.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another supervisor got there first.
        Err(_) if dir.join("updraft_runner.py").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(dirs: &[&str], windows: bool) -> OsString {
        OsString::from(dirs.join(if windows { ";" } else { ":" }))
    }

    #[test]
    fn unix_prefers_python3_then_python() {
        let have = |files: &'static [&'static str]| {
            move |p: &Path| files.iter().any(|f| Path::new(f) == p)
        };
        let p = path(&["/a", "/b"], false);
        let found = discover(Some(&p), false, &[], &have(&["/b/python3", "/a/python"]));
        assert_eq!(found.unwrap().program, PathBuf::from("/b/python3"));
        let found = discover(Some(&p), false, &[], &have(&["/b/python"]));
        assert_eq!(found, Some(Interpreter::new("/b/python".into())));
        assert_eq!(discover(Some(&p), false, &[], &have(&[])), None);
        assert_eq!(discover(None, false, &[], &have(&["/a/python3"])), None);
    }

    #[test]
    fn windows_skips_the_store_alias_and_falls_back_to_the_py_launcher() {
        let store = r"C:\Users\me\AppData\Local\Microsoft\WindowsApps";
        let real = r"C:\Program Files\Python312";
        let files = [
            format!(r"{store}\python.exe"),
            format!(r"{store}\python3.exe"),
            format!(r"{real}\python.exe"),
            r"C:\Windows\py.exe".to_string(),
        ];
        let have = |n: usize| {
            let files = files[..n].to_vec();
            move |p: &Path| files.iter().any(|f| Path::new(f) == p)
        };
        let p = path(&[store, real], true);
        // A real python.exe after the Store's alias on PATH, in a folder with a space.
        let found = discover(Some(&p), true, &[], &have(3)).unwrap();
        assert_eq!(found.program, PathBuf::from(format!(r"{real}\python.exe")));
        assert!(found.args.is_empty());
        // Only the aliases: never taken; the py launcher is, with -3.
        let launcher = [PathBuf::from(r"C:\Windows")];
        let only_store = |p: &Path| {
            p == Path::new(&files[0])
                || p == Path::new(&files[1])
                || p == Path::new(r"C:\Windows\py.exe")
        };
        let found = discover(Some(&p), true, &launcher, &only_store).unwrap();
        assert_eq!(found.program, PathBuf::from(r"C:\Windows\py.exe"));
        assert_eq!(found.args, [OsString::from("-3")]);
        assert_eq!(discover(Some(&p), true, &[], &have(2)), None);
        assert!(is_store_alias_dir(Path::new(
            r"c:\users\x\appdata\local\microsoft\windowsapps\"
        )));
        assert!(!is_store_alias_dir(Path::new(r"C:\Python312")));
    }

    #[test]
    fn a_configured_interpreter_is_a_path_or_a_name_on_path() {
        let have =
            |p: &Path| p == Path::new("/opt/py/bin/python3.12") || p == Path::new("/u/python3.12");
        let p = path(&["/u"], false);
        let found = named("/opt/py/bin/python3.12", Some(&p), false, &have).unwrap();
        assert_eq!(found.program, PathBuf::from("/opt/py/bin/python3.12"));
        let found = named("python3.12", Some(&p), false, &have).unwrap();
        assert_eq!(found.program, PathBuf::from("/u/python3.12"));
        assert_eq!(named("/nope/python", Some(&p), false, &have), None);
        // On Windows a bare name takes `.exe`, and `py` is the launcher.
        let w = path(&[r"C:\Windows"], true);
        let have = |p: &Path| p == Path::new(r"C:\Windows\py.exe");
        let found = named("py", Some(&w), true, &have).unwrap();
        assert_eq!(found.args, [OsString::from("-3")]);
    }

    #[test]
    fn a_missing_interpreter_names_the_key() {
        let host = HostEnv::new([("PATH", "/nonexistent-dir")], PathBuf::from("/tmp"));
        let err = find("", &host).unwrap_err();
        assert!(err.contains("[core] python_interpreter"), "{err}");
        let err = find("/nonexistent/python", &host).unwrap_err();
        assert!(
            err.contains("`/nonexistent/python`") && err.contains("[core] python_interpreter"),
            "{err}"
        );
    }
}
