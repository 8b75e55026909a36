//! YAML text -> `Node`s that know their line and column.
//!
//! saphyr's marked loader does the parsing. Its loader and the drop of its tree recurse, so
//! a few kilobytes of `- - - -` would overflow the stack: nesting is bounded first, on the
//! parser's event stream, which does not recurse. The tree is then copied into `Node`, a
//! plain value the rest of `dagfile` can merge, clone and look up by key without saphyr's
//! lifetimes and hash-keyed mappings. Nothing here knows what a DAG is.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use saphyr_parser::{Event, Marker, Parser, ScanError};

use super::ImportError;

/// Deeper than any real DAG file goes, and shallow enough for the recursion below.
const MAX_DEPTH: usize = 64;

/// A 1-based line and column, in the file numbered `src` (0: the DAG file itself; others
/// are its `defaults.yml` files, numbered by the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
    pub src: u16,
}

/// A YAML value and where it starts. Tags are dropped and aliases already expanded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// YAML 1.2 core schema values; mapping keys are always text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    /// Entries in file order; keys are unique (the loader rejects duplicates).
    Map(Vec<Entry>),
}

/// One key of a mapping, with the key's own position for errors about the key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// Parses a whole file. `Ok(None)` is an empty file (or one holding only `null`).
pub(crate) fn load(source: &str) -> Result<Option<Node>, ImportError> {
    check_shape(source)?;
    let docs = MarkedYaml::load_from_str(source).map_err(|e| scan_error(&e))?;
    let Some(doc) = docs.first() else {
        return Ok(None);
    };
    let node = convert(doc, None)?;
    Ok((node.value != Value::Null).then_some(node))
}

impl Pos {
    /// An import error here.
    pub fn error(self, message: impl Into<String>) -> ImportError {
        ImportError {
            line: self.line,
            column: self.col,
            message: message.into(),
            src: self.src,
        }
    }
}

impl Node {
    /// The entry for `key`, if this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries().iter().find(|e| e.key == key)
    }

    /// The value of `key`, unless absent or null: dag-factory reads both with `.get()`.
    pub fn field(&self, key: &str) -> Option<&Node> {
        self.entry(key)
            .map(|e| &e.value)
            .filter(|v| v.value != Value::Null)
    }

    /// The entries of a mapping; none for anything else.
    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Marks this node and everything in it as read from the file numbered `src`.
    pub fn set_src(&mut self, src: u16) {
        self.pos.src = src;
        match &mut self.value {
            Value::List(items) => items.iter_mut().for_each(|n| n.set_src(src)),
            Value::Map(entries) => {
                for e in entries {
                    e.key_pos.src = src;
                    e.value.set_src(src);
                }
            }
            _ => {}
        }
    }

    /// Whether this is a mapping (possibly empty).
    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// What this is, for messages: "the string `lots`", "a list".
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(s) if s.chars().count() > 40 => {
                format!("the string `{}...`", s.chars().take(40).collect::<String>())
            }
            Value::Str(s) => format!("the string `{s}`"),
            Value::List(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }

    fn wrong(&self, key: &str, expected: &str) -> ImportError {
        let found = self.describe();
        self.pos
            .error(format!("`{key}` must be {expected}, not {found}"))
    }

    /// A string; `key` names the setting in messages.
    pub fn string(&self, key: &str) -> Result<String, ImportError> {
        match &self.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.wrong(key, "a string")),
        }
    }

    /// A boolean. PyYAML reads YAML 1.1, where `yes`, `no`, `on` and `off` are booleans
    /// too; files written for dag-factory may use them, so they are accepted here.
    pub fn boolean(&self, key: &str) -> Result<bool, ImportError> {
        match &self.value {
            Value::Bool(b) => Ok(*b),
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "on" | "true" => Ok(true),
                "no" | "off" | "false" => Ok(false),
                _ => Err(self.wrong(key, "true or false")),
            },
            _ => Err(self.wrong(key, "true or false")),
        }
    }

    /// A whole number, negative ones included.
    pub fn integer(&self, key: &str) -> Result<i64, ImportError> {
        match &self.value {
            Value::Int(i) => Ok(*i),
            _ => Err(self.wrong(key, "a whole number")),
        }
    }

    /// A whole number from 0 up.
    pub fn count(&self, key: &str) -> Result<u32, ImportError> {
        match &self.value {
            Value::Int(i) => {
                u32::try_from(*i).map_err(|_| self.wrong(key, "a whole number from 0 up"))
            }
            _ => Err(self.wrong(key, "a whole number")),
        }
    }

    /// A list of strings, each with its position.
    pub fn strings(&self, key: &str) -> Result<Vec<(String, Pos)>, ImportError> {
        let Value::List(items) = &self.value else {
            return Err(self.wrong(key, "a list of strings"));
        };
        items
            .iter()
            .map(|item| match &item.value {
                Value::Str(s) => Ok((s.clone(), item.pos)),
                _ => Err(item.pos.error(format!(
                    "each item of `{key}` must be a string, not {}",
                    item.describe()
                ))),
            })
            .collect()
    }

    /// The value as JSON, for `params`. JSON has no NaN or infinity; those become null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::List(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

fn pos_of(m: &Marker) -> Pos {
    Pos {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX).max(1),
        col: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        src: 0,
    }
}

fn scan_error(e: &ScanError) -> ImportError {
    pos_of(e.marker()).error(format!("invalid YAML: {}", e.info()))
}

/// Rejects a second document and nesting deeper than `MAX_DEPTH`. An alias counts as deep
/// as the anchored value it stands for, since the loader copies that value in its place.
fn check_shape(source: &str) -> Result<(), ImportError> {
    struct Open {
        anchor: usize,
        depth: usize,
        deepest: usize,
    }
    let bump = |open: &mut Vec<Open>, reached: usize| {
        if let Some(parent) = open.last_mut() {
            parent.deepest = parent.deepest.max(reached);
        }
    };
    let mut open: Vec<Open> = Vec::new();
    // Anchor id -> how many levels the anchored value adds below its own.
    let mut heights: HashMap<usize, usize> = HashMap::new();
    let mut documents = 0;
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| scan_error(&e))?;
        let depth = open.len() + 1;
        let reached = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(pos_of(&span.start).error(
                        "a DAG file holds one YAML document; this is a second one (after `---`)",
                    ));
                }
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                bump(&mut open, depth);
                open.push(Open {
                    anchor,
                    depth,
                    deepest: depth,
                });
                depth
            }
            Event::Scalar(_, _, anchor, _) => {
                if anchor != 0 {
                    heights.insert(anchor, 0);
                }
                depth
            }
            Event::Alias(anchor) => depth + heights.get(&anchor).copied().unwrap_or(0),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(done) = open.pop() else { continue };
                if done.anchor != 0 {
                    heights.insert(done.anchor, done.deepest - done.depth);
                }
                done.deepest
            }
            _ => continue,
        };
        if reached > MAX_DEPTH {
            return Err(pos_of(&span.start).error(format!(
                "the YAML is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        bump(&mut open, reached);
    }
    Ok(())
}

/// Copies saphyr's tree. `at` overrides the position: saphyr gives the node inside a tag
/// an empty span, so a tagged node takes the tag's.
fn convert(m: &MarkedYaml, at: Option<Pos>) -> Result<Node, ImportError> {
    let pos = at.unwrap_or_else(|| pos_of(&m.span.start));
    let value = match &m.data {
        YamlData::Value(s) => scalar(s),
        YamlData::Representation(text, ..) => Value::Str(text.to_string()),
        YamlData::Sequence(items) => Value::List(
            items
                .iter()
                .map(|item| convert(item, None))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut merged: Vec<Entry> = Vec::new();
            let mut explicit: Vec<Entry> = Vec::new();
            for (k, v) in map {
                let key_pos = pos_of(&k.span.start);
                let key = key_text(k)
                    .ok_or_else(|| key_pos.error("a mapping key must be a plain value"))?;
                let value = convert(v, None)?;
                if key == "<<" {
                    merge_key(&mut merged, value)?;
                } else {
                    explicit.push(Entry {
                        key,
                        key_pos,
                        value,
                    });
                }
            }
            // As PyYAML: merged keys first, explicit keys override them.
            for e in explicit {
                match merged.iter_mut().find(|m| m.key == e.key) {
                    Some(m) => *m = e,
                    None => merged.push(e),
                }
            }
            Value::Map(merged)
        }
        YamlData::Tagged(_, inner) => return convert(inner, Some(pos)),
        YamlData::Alias(_) => {
            return Err(pos.error("an alias must refer to an anchor completed before it"));
        }
        YamlData::BadValue => {
            return Err(pos.error("this value cannot be read as the type its tag names"));
        }
    };
    Ok(Node { pos, value })
}

/// `<<: *anchor` (or a list of them), YAML 1.1's merge key, which PyYAML applies.
fn merge_key(into: &mut Vec<Entry>, value: Node) -> Result<(), ImportError> {
    let sources = match value.value {
        Value::List(items) => items,
        _ => vec![value],
    };
    for source in sources {
        let Value::Map(entries) = source.value else {
            return Err(source.pos.error("`<<` merges mappings only"));
        };
        for e in entries {
            if !into.iter().any(|m| m.key == e.key) {
                into.push(e);
            }
        }
    }
    Ok(())
}

fn scalar(s: &Scalar) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Int(*i),
        Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
        Scalar::String(s) => Value::Str(s.to_string()),
    }
}

/// A key as text: `1:` is the key "1", as a dag_id Airflow would take it as written.
fn key_text(k: &MarkedYaml) -> Option<String> {
    match &k.data {
        YamlData::Value(s) => Some(match scalar(s) {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s,
            Value::List(_) | Value::Map(_) => return None,
        }),
        YamlData::Representation(text, ..) => Some(text.to_string()),
        YamlData::Tagged(_, inner) => key_text(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, col: u32) -> Pos {
        Pos { line, col, src: 0 }
    }

    #[test]
    fn nodes_carry_positions() {
        let node = load("a:\n  b: \"x\"\n  c: [1, !t 2]\n").unwrap().unwrap();
        let a = node.entry("a").unwrap();
        assert_eq!(a.key_pos, at(1, 1));
        let b = a.value.entry("b").unwrap();
        assert_eq!((b.key_pos, b.value.pos), (at(2, 3), at(2, 6)));
        let Value::List(c) = &a.value.field("c").unwrap().value else {
            panic!("not a list")
        };
        assert_eq!((c[0].pos, c[1].pos), (at(3, 7), at(3, 10)));
        assert_eq!(c[1].value, Value::Int(2));
    }

    #[test]
    fn merge_keys_apply_under_explicit_ones() {
        let node = load("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n")
            .unwrap()
            .unwrap();
        let d = node.field("d").unwrap();
        let keys: Vec<_> = d.entries().iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["x", "y"]);
        assert_eq!(d.field("y").unwrap().value, Value::Int(3));
    }

    #[test]
    fn bad_input_is_an_error_at_its_position() {
        let check = |src: &str, line: u32, col: u32, text: &str| {
            let e = load(src).unwrap_err();
            assert_eq!((e.line, e.column), (line, col), "{src:?}: {e:?}");
            assert!(e.message.contains(text), "{src:?}: {e:?}");
        };
        check("a: [1,\n", 2, 1, "invalid YAML");
        check("a: 1\na: 2\n", 2, 1, "duplicated key");
        check("a: 1\n---\nb: 2\n", 2, 1, "second");
        check("a: !!int foo\n", 1, 4, "tag");
        check("? [1]\n: 2\n", 1, 3, "plain value");
        check(&("- ".repeat(100) + "x"), 1, 129, "nested");
        // Shallow as written, but each alias stands for a deeper copy of the one before.
        let mut src = "a0: &a0 [[[[[[[[[[1]]]]]]]]]]\n".to_string();
        for i in 1..10 {
            src += &format!("a{i}: &a{i} [[[[[[*a{}]]]]]]\n", i - 1);
        }
        check(&src, 10, 15, "nested");
    }

    #[test]
    fn empty_files_hold_nothing() {
        for src in ["", "# only a comment\n", "null", "~\n", "---\n"] {
            assert_eq!(load(src), Ok(None), "{src:?}");
        }
    }
}
