//! `$NAME` and `${NAME}` in a file's text, as dag-factory expands them.
//!
//! dag-factory 1.1.0 runs Python's `os.path.expandvars` over the whole text of every file it
//! reads (DAG files and `defaults.yml`), before YAML sees it: keys, values and comments
//! alike. This is the POSIX flavour Airflow runs under: a name is ASCII letters, digits and
//! `_`; `${...}` takes anything up to the first `}`; a variable that is not set stays as
//! written; a value is put in as it is, never expanded again. No `$$` escape, no default
//! values (`${A:-b}` names a variable called `A:-b`). The caller supplies the lookup, so
//! this reads no environment itself.

/// `text` with every set variable put in.
pub(crate) fn expand(text: &str, var: &dyn Fn(&str) -> Option<String>) -> String {
    if !text.contains('$') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        // The reference: `{...}` up to the first `}`, or a run of word characters.
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (len, var(name)) {
            (1.., Some(value)) => out.push_str(&value),
            (1.., None) => out.push_str(&rest[at..at + 1 + len]),
            (0, _) => out.push('$'),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case is what Python 3.11's `posixpath.expandvars` gives with HOME=/h, A=x$B,
    /// EMPTY= set, and nothing else.
    #[test]
    fn expands_as_python_does() {
        let var = |name: &str| match name {
            "HOME" => Some("/h".to_string()),
            "A" => Some("x$B".to_string()),
            "EMPTY" => Some(String::new()),
            "a b" => Some("spaced".to_string()),
            _ => None,
        };
        let cases = [
            ("no dollar", "no dollar"),
            ("$HOME/dags", "/h/dags"),
            ("${HOME}/dags", "/h/dags"),
            ("$HOMEx", "$HOMEx"),
            ("${HOME}x", "/hx"),
            ("$UNSET/x", "$UNSET/x"),
            ("${UNSET}", "${UNSET}"),
            ("$A", "x$B"),
            ("[$EMPTY]", "[]"),
            ("$", "$"),
            ("a $ b", "a $ b"),
            ("$$HOME", "$/h"),
            ("${HOME", "${HOME"),
            ("${}", "${}"),
            ("${a b}", "spaced"),
            ("$HOME-$HOME", "/h-/h"),
            ("é$HOMEé", "é/hé"),
            ("$é", "$é"),
            ("${A:-d}", "${A:-d}"),
        ];
        for (text, want) in cases {
            assert_eq!(expand(text, &var), want, "{text:?}");
        }
    }
}
