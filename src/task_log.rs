//! Where a try's log lives: one path scheme, shared by the executor (which writes the
//! file) and the API and web server (which read it), so neither reaches into the other.

use std::path::{Path, PathBuf};

/// The log file of one try: `{base}/dag_id=D/run_id=R/task_id=T/attempt=N.log`, as
/// Airflow lays it out. Each id goes through [`path_part`], so two ids never share a
/// file (`col:1` and `col_1` once did on Windows).
pub fn log_path(
    base: &Path,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: u32,
) -> PathBuf {
    log_path_at(base, dag_id, run_id, task_id, -1, try_number)
}

/// [`log_path`] of the instance at `map_index`: `map_index=M/` comes before `attempt`
/// for an instance of a mapped task (`map_index` at least 0), as in Airflow.
pub fn log_path_at(
    base: &Path,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i64,
    try_number: u32,
) -> PathBuf {
    let part = |s: &str| path_part(s, cfg!(windows));
    let task = base
        .join(fit_name(format!("dag_id={}", part(dag_id))))
        .join(fit_name(format!("run_id={}", part(run_id))))
        .join(fit_name(format!("task_id={}", part(task_id))));
    let dir = match map_index {
        i if i >= 0 => task.join(format!("map_index={i}")),
        _ => task,
    };
    dir.join(format!("attempt={try_number}.log"))
}

/// The longest file name ext4, NTFS and APFS take: 255 bytes (NTFS counts UTF-16 units,
/// never more than the UTF-8 bytes).
const NAME_MAX: usize = 255;

/// A path component as it is when it fits in [`NAME_MAX`]; else its start, `~` and a
/// hash of the whole, so two long ids still get two files. Ids may be 250 characters
/// (Airflow's `ID_LEN`), which with `run_id=` in front is more than a file name holds.
fn fit_name(name: String) -> String {
    use sha2::Digest;
    if name.len() <= NAME_MAX {
        return name;
    }
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut cut = NAME_MAX - 1 - hash.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{hash}", &name[..cut])
}

/// An id as one file name component, one to one: what the platform cannot hold in a
/// name becomes `%XX` (its UTF-8 bytes in hex), and `%` itself `%25`, so the mapping
/// can be undone and never merges two ids. Elsewhere than Windows that is only `/`
/// (ids as Airflow allows them never contain it, nor `%`, so their paths are Airflow's);
/// on Windows also `< > : " \ | ? *`, control characters, and a trailing dot or space,
/// which Windows drops from names. Windows also compares names without case, which no
/// escape short of spelling out every capital can avoid: ids that differ only in case
/// share a folder there (README, Windows).
pub fn path_part(id: &str, windows: bool) -> String {
    let mut out = String::with_capacity(id.len());
    let last = id.chars().count().saturating_sub(1);
    for (i, c) in id.chars().enumerate() {
        let escape = c == '%'
            || c == '/'
            || c == '\0'
            || windows
                && (c.is_ascii_control()
                    || "<>:\"\\|?*".contains(c)
                    || (i == last && (c == '.' || c == ' ')));
        if escape {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_one_to_one_and_valid_on_windows() {
        // (id, on Windows, elsewhere)
        let cases = [
            ("col:1", "col%3A1", "col:1"),
            ("col_1", "col_1", "col_1"),
            ("col%3A1", "col%253A1", "col%253A1"),
            (
                "manual__2024-03-01T00:00:00+00:00",
                "manual__2024-03-01T00%3A00%3A00+00%3A00",
                "manual__2024-03-01T00:00:00+00:00",
            ),
            ("a/b", "a%2Fb", "a%2Fb"),
            ("a_b", "a_b", "a_b"),
            (r#"<>"\|?*"#, "%3C%3E%22%5C%7C%3F%2A", r#"<>"\|?*"#),
            ("end.", "end%2E", "end."),
            ("end", "end", "end"),
            ("a.b", "a.b", "a.b"),
            ("tab\there", "tab%09here", "tab\there"),
            ("café", "café", "café"),
        ];
        for (id, windows, unix) in cases {
            assert_eq!(path_part(id, true), windows, "{id:?} on Windows");
            assert_eq!(path_part(id, false), unix, "{id:?} elsewhere");
        }
        for windows in [true, false] {
            let parts: std::collections::HashSet<String> =
                cases.iter().map(|c| path_part(c.0, windows)).collect();
            assert_eq!(parts.len(), cases.len(), "a collision (windows: {windows})");
            if windows {
                for p in &parts {
                    assert!(
                        !p.chars()
                            .any(|c| "<>:\"/\\|?*".contains(c) || c.is_ascii_control())
                            && !p.ends_with(['.', ' ']),
                        "{p:?} is not a valid Windows file name"
                    );
                }
            }
        }
        let path = log_path(Path::new("logs"), "d", "col:1", "t", 2);
        let want = if cfg!(windows) { "col%3A1" } else { "col:1" };
        assert_eq!(
            path,
            Path::new("logs")
                .join("dag_id=d")
                .join(format!("run_id={want}"))
                .join("task_id=t")
                .join("attempt=2.log")
        );
        assert_eq!(
            log_path_at(Path::new("logs"), "d", "r", "t", 3, 1),
            Path::new("logs/dag_id=d/run_id=r/task_id=t/map_index=3/attempt=1.log")
        );
    }

    #[test]
    fn long_names_are_cut_to_fit_and_stay_distinct() {
        let short = "run_id=a".to_string();
        assert_eq!(fit_name(short.clone()), short);
        let long_a = format!("run_id={}a", "x".repeat(300));
        let long_b = format!("run_id={}b", "x".repeat(300));
        let (a, b) = (fit_name(long_a), fit_name(long_b));
        assert!(a.len() <= NAME_MAX && b.len() <= NAME_MAX);
        assert_ne!(a, b);
        // A cut never splits a character.
        let wide = fit_name(format!("run_id={}", "é".repeat(200)));
        assert!(wide.len() <= NAME_MAX && wide.contains('~'));
    }
}
