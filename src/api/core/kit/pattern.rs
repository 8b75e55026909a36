//! Airflow's `*_pattern` and `*_prefix_pattern` query filters, read by one parser and
//! matched either in memory or by the store's SQL.
//!
//! A search pattern is SQL `ILIKE '%term%'` (`%` and `_` are wildcards); a prefix pattern is
//! a case-sensitive prefix with trailing characters that are not letters or digits dropped
//! (as Airflow does before its range scan), an empty prefix matching any value. In both,
//! `|` separates alternatives (any one may match), and a whole pattern of `~` means
//! "anything", as Airflow's `transform_aliases` reads it.

use crate::api::http::Req;

/// One `*_pattern` or `*_prefix_pattern` filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    prefix: bool,
    terms: Vec<String>,
}

impl Pattern {
    /// A `*_pattern` value.
    pub fn search(raw: &str) -> Pattern {
        let raw = if raw == "~" { "%" } else { raw };
        Pattern {
            prefix: false,
            terms: alternatives(raw).map(str::to_string).collect(),
        }
    }

    /// A `*_prefix_pattern` value.
    pub fn prefix(raw: &str) -> Pattern {
        let raw = if raw == "~" { "" } else { raw };
        Pattern {
            prefix: true,
            terms: alternatives(raw)
                .map(|t| {
                    t.trim_end_matches(|c: char| !c.is_alphanumeric())
                        .to_string()
                })
                .collect(),
        }
    }

    /// Whether `text` matches any alternative.
    pub fn matches(&self, text: &str) -> bool {
        if self.prefix {
            self.terms.iter().any(|t| text.starts_with(t.as_str()))
        } else {
            self.terms.iter().any(|t| like(&format!("%{t}%"), text))
        }
    }

    /// A search pattern's alternatives as SQL `LIKE` patterns (`%term%`); a prefix
    /// pattern's prefixes, each possibly empty.
    pub fn sql_terms(&self) -> Vec<String> {
        if self.prefix {
            self.terms.clone()
        } else {
            self.terms.iter().map(|t| format!("%{t}%")).collect()
        }
    }

    /// Whether some alternative is the empty prefix, which matches any value.
    pub fn any_prefix(&self) -> bool {
        self.prefix && self.terms.iter().any(String::is_empty)
    }
}

/// The `|`-separated alternatives of a pattern, blanks dropped; the whole pattern when
/// there are none.
fn alternatives(raw: &str) -> impl Iterator<Item = &str> {
    let mut parts: Vec<&str> = Vec::new();
    if raw.contains('|') {
        parts = raw
            .split('|')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
    }
    if parts.is_empty() {
        parts.push(raw);
    }
    parts.into_iter()
}

/// Both filters on one field, `{base}_pattern` and `{base}_prefix_pattern`: a value must
/// pass each one given.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    pub search: Option<Pattern>,
    pub prefix: Option<Pattern>,
}

impl Patterns {
    pub fn new(req: &Req, base: &str) -> Patterns {
        Patterns {
            search: req.query(&format!("{base}_pattern")).map(Pattern::search),
            prefix: req
                .query(&format!("{base}_prefix_pattern"))
                .map(Pattern::prefix),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.search.is_none() && self.prefix.is_none()
    }

    pub fn keep(&self, text: &str) -> bool {
        self.search.as_ref().is_none_or(|p| p.matches(text))
            && self.prefix.as_ref().is_none_or(|p| p.matches(text))
    }
}

/// A SQL-LIKE pattern as Airflow's `*_pattern` filters take it: `%` any run, `_` one
/// character, case-insensitive.
pub fn like(pattern: &str, text: &str) -> bool {
    // Airflow wraps the pattern in `%...%` unless it has wildcards of its own.
    if !pattern.contains(['%', '_']) {
        return text
            .to_ascii_lowercase()
            .contains(&pattern.to_ascii_lowercase());
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy matching that remembers only the last `%`: at most len(p) * len(t) steps,
    // where trying every split at every `%` would take exponential time on a pattern
    // like `%a%a%a%a%b` (a request must not be able to stall a worker).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '_' || c.eq_ignore_ascii_case(&t[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::http::Method;

    #[test]
    fn patterns_like_airflow() {
        let mut req = Req::internal(Method::Get, "/");
        req.query = vec![("variable_key_pattern".into(), "ab|cd".into())];
        let p = Patterns::new(&req, "variable_key");
        assert!(p.keep("xABx") && p.keep("cd") && !p.keep("ac"));
        req.query = vec![("variable_key_pattern".into(), "~".into())];
        assert!(Patterns::new(&req, "variable_key").keep("anything"));
        req.query = vec![("variable_key_prefix_pattern".into(), "test_".into())];
        let p = Patterns::new(&req, "variable_key");
        assert!(p.keep("testing") && !p.keep("Test") && !p.keep("my_test"));
    }

    #[test]
    fn patterns_follow_airflow() {
        let search = |p: &str, t: &str| Pattern::search(p).matches(t);
        let prefix_match = |p: &str, t: &str| Pattern::prefix(p).matches(t);
        assert!(search("bash", "example_BASH_operator"));
        assert!(search("exam%", "my_example"));
        assert!(search("zzz|exam", "example"));
        assert!(search("~", "anything"));
        assert!(!search("nope", "example"));
        assert!(prefix_match("exa", "example"));
        assert!(!prefix_match("Exa", "example"));
        assert!(prefix_match("example_", "examples"));
        assert!(prefix_match("zz|ex", "example"));
        assert!(prefix_match("~", "example"));
    }

    #[test]
    fn sql_terms_and_alternatives() {
        assert_eq!(Pattern::search("a | b|").sql_terms(), ["%a%", "%b%"]);
        assert_eq!(Pattern::search("~").sql_terms(), ["%%%"]);
        // `~` stands for "anything" only as the whole pattern, as in Airflow.
        assert_eq!(Pattern::search("a|~").sql_terms(), ["%a%", "%~%"]);
        assert_eq!(Pattern::search("|").sql_terms(), ["%|%"]);
        assert_eq!(Pattern::prefix("ex_|b-").sql_terms(), ["ex", "b"]);
        assert!(Pattern::prefix("~").any_prefix());
        assert!(Pattern::prefix("a|_").any_prefix());
        assert!(!Pattern::prefix("a").any_prefix());
    }

    #[test]
    fn patterns_match_like_sql() {
        assert!(like("exam%", "example_bash"));
        assert!(!like("exam%", "my_example"));
        assert!(like("bash", "example_bash_operator"));
        assert!(like("ex_mple%", "example"));
        assert!(like("%a%b%", "xxaxxbxx"));
        assert!(!like("%a%b", "xxaxxbxx"));
        assert!(like("%", ""));
        // No exponential backtracking on many `%`.
        let t = "a".repeat(250);
        assert!(!like(&format!("{}b", "%a".repeat(40)), &t));
    }
}
