//! A YAML document tree with source positions, for the audit sources that read CI files. Built
//! from `saphyr-parser`'s spanned events; this module only assembles them into nodes and keeps
//! byte offsets, lines and columns so findings point at the exact place.
//!
//! Aliases share the anchored node (`Rc`) instead of copying it, so a "billion laughs" document
//! stays as small as its text; walks that visit every scalar skip alias nodes, whose content is
//! visited at the anchor. Nesting depth and node count are bounded: bad input is an `Error` with a
//! position, never a panic or a stack overflow.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;
use std::rc::Rc;

/// Deeper nesting than this is refused (no workflow comes close).
const MAX_DEPTH: usize = 256;
/// More nodes than this is refused: about 100 bytes of YAML per node, so a few tens of MB.
const MAX_NODES: usize = 1_000_000;

/// A position in the source: byte offset, 1-based line, 1-based column (in characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    pub offset: usize,
    pub line: u32,
    pub column: u32,
}

#[derive(Debug)]
pub enum Kind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    Seq(Vec<Rc<Node>>),
    Map(Vec<(Rc<Node>, Rc<Node>)>),
    /// `*name`: the anchored node.
    Alias(Rc<Node>),
}

#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    pub start: Pos,
    pub end: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid YAML at line {} column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl Node {
    /// The node itself, or the anchored node an alias stands for.
    pub fn resolve(&self) -> &Node {
        let mut n = self;
        // An alias can only name a node that is complete, so chains end.
        while let Kind::Alias(target) = &n.kind {
            n = target;
        }
        n
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.resolve().kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// A plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        match &self.resolve().kind {
            Kind::Scalar {
                value,
                style: ScalarStyle::Plain,
            } => matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"),
            _ => false,
        }
    }

    pub fn entries(&self) -> &[(Rc<Node>, Rc<Node>)] {
        match &self.resolve().kind {
            Kind::Map(m) => m,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Rc<Node>] {
        match &self.resolve().kind {
            Kind::Seq(s) => s,
            _ => &[],
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.resolve().kind, Kind::Map(_))
    }

    /// The value of `key` in a mapping, following `<<` merge keys.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.get_entry(key).map(|(_, v)| v)
    }

    /// The key node and value node of `key` in a mapping, following `<<` merge keys.
    pub fn get_entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.get_entry_depth(key, 0)
    }

    fn get_entry_depth(&self, key: &str, depth: usize) -> Option<(&Node, &Node)> {
        let entries = self.entries();
        if let Some((k, v)) = entries.iter().find(|(k, _)| k.as_str() == Some(key)) {
            return Some((k, v));
        }
        if depth > 8 {
            return None;
        }
        for (k, v) in entries {
            if k.as_str() == Some("<<") {
                let sources: Vec<&Node> = match &v.resolve().kind {
                    Kind::Seq(s) => s.iter().map(|n| &**n).collect(),
                    _ => vec![v],
                };
                for s in sources {
                    if let Some(hit) = s.get_entry_depth(key, depth + 1) {
                        return Some(hit);
                    }
                }
            }
        }
        None
    }

    /// Every scalar written at this node or below it, with its node (aliases are not followed:
    /// their scalars are visited where they are anchored).
    pub fn scalars<'a>(&'a self, out: &mut Vec<&'a Node>) {
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            match &n.kind {
                Kind::Scalar { .. } => out.push(n),
                Kind::Seq(s) => stack.extend(s.iter().rev().map(|c| &**c)),
                Kind::Map(m) => {
                    for (k, v) in m.iter().rev() {
                        stack.push(v);
                        stack.push(k);
                    }
                }
                Kind::Alias(_) => {}
            }
        }
    }
}

/// Character index → byte offset, for sources with non-ASCII text.
struct Offsets {
    table: Option<Vec<usize>>,
}

impl Offsets {
    fn new(text: &str) -> Self {
        if text.is_ascii() {
            return Offsets { table: None };
        }
        let mut t: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        t.push(text.len());
        Offsets { table: Some(t) }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index,
            Some(t) => t
                .get(char_index)
                .copied()
                .unwrap_or(*t.last().unwrap_or(&0)),
        }
    }
}

fn pos(off: &Offsets, m: &saphyr_parser::Marker) -> Pos {
    Pos {
        offset: off.byte(m.index()),
        line: m.line() as u32,
        column: m.col() as u32 + 1,
    }
}

enum Partial {
    Seq {
        anchor: usize,
        start: Pos,
        items: Vec<Rc<Node>>,
    },
    Map {
        anchor: usize,
        start: Pos,
        entries: Vec<(Rc<Node>, Rc<Node>)>,
        key: Option<Rc<Node>>,
    },
}

/// Parses every document of a YAML stream.
pub fn parse(text: &str) -> Result<Vec<Rc<Node>>, Error> {
    let off = Offsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Partial> = Vec::new();
    let mut anchors: HashMap<usize, Rc<Node>> = HashMap::new();
    let mut count = 0usize;
    let err_at = |span: &Span, message: String| Error {
        line: span.start.line() as u32,
        column: span.start.col() as u32 + 1,
        message,
    };
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| Error {
            line: e.marker().line() as u32,
            column: e.marker().col() as u32 + 1,
            message: e.info().to_string(),
        })?;
        let start = pos(&off, &span.start);
        let end = pos(&off, &span.end);
        let node = match ev {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd => {
                continue;
            }
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err(err_at(&span, "alias to an unknown anchor".into()));
                };
                Node {
                    kind: Kind::Alias(target.clone()),
                    start,
                    end,
                }
            }
            Event::Scalar(value, style, anchor, _) => {
                let n = Rc::new(Node {
                    kind: Kind::Scalar {
                        value: value.into_owned(),
                        style,
                    },
                    start,
                    end,
                });
                if anchor != 0 {
                    anchors.insert(anchor, n.clone());
                }
                count += 1;
                if count > MAX_NODES {
                    return Err(err_at(&span, "too many nodes".into()));
                }
                add(&mut stack, &mut docs, n);
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err_at(
                        &span,
                        format!("nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                count += 1;
                if count > MAX_NODES {
                    return Err(err_at(&span, "too many nodes".into()));
                }
                stack.push(if matches!(ev, Event::SequenceStart(..)) {
                    Partial::Seq {
                        anchor,
                        start,
                        items: Vec::new(),
                    }
                } else {
                    Partial::Map {
                        anchor,
                        start,
                        entries: Vec::new(),
                        key: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(p) = stack.pop() else {
                    return Err(err_at(&span, "unbalanced collection end".into()));
                };
                let (anchor, n) = match p {
                    Partial::Seq {
                        anchor,
                        start,
                        items,
                    } => (
                        anchor,
                        Node {
                            kind: Kind::Seq(items),
                            start,
                            end,
                        },
                    ),
                    Partial::Map {
                        anchor,
                        start,
                        entries,
                        ..
                    } => (
                        anchor,
                        Node {
                            kind: Kind::Map(entries),
                            start,
                            end,
                        },
                    ),
                };
                let n = Rc::new(n);
                if anchor != 0 {
                    anchors.insert(anchor, n.clone());
                }
                add(&mut stack, &mut docs, n);
                continue;
            }
        };
        add(&mut stack, &mut docs, Rc::new(node));
    }
    Ok(docs)
}

/// Adds a finished node to the collection being built, or as a document.
fn add(stack: &mut [Partial], docs: &mut Vec<Rc<Node>>, n: Rc<Node>) {
    match stack.last_mut() {
        None => docs.push(n),
        Some(Partial::Seq { items, .. }) => items.push(n),
        Some(Partial::Map { entries, key, .. }) => match key.take() {
            None => *key = Some(n),
            Some(k) => entries.push((k, n)),
        },
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    let col = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count())
        + 1;
    (line as u32, col as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_of_keys_and_values() {
        let text = "a: 1\nb:\n  - x\n  - 'y'\nc: |\n  run ${{ z }}\n";
        let docs = parse(text).unwrap();
        let root = &docs[0];
        let (k, v) = root.get_entry("b").unwrap();
        assert_eq!((k.start.line, k.start.column), (2, 1));
        assert_eq!(v.items().len(), 2);
        assert_eq!(v.items()[1].as_str(), Some("y"));
        assert_eq!(v.items()[1].start.line, 4);
        let c = root.get("c").unwrap();
        assert_eq!(c.as_str(), Some("run ${{ z }}\n"));
        // The block scalar's source text holds the expression at its real place.
        let at = text[c.start.offset..].find("${{").unwrap() + c.start.offset;
        assert_eq!(line_col(text, at), (6, 7));
    }

    #[test]
    fn aliases_share_and_merge_keys_are_followed() {
        let text = "base: &b\n  X: 1\njob:\n  <<: *b\n  Y: 2\nother: *b\n";
        let docs = parse(text).unwrap();
        let root = &docs[0];
        assert_eq!(
            root.get("job").unwrap().get("X").unwrap().as_str(),
            Some("1")
        );
        assert_eq!(root.get("other").unwrap().get("X").unwrap().start.line, 2);
        let mut s = Vec::new();
        root.scalars(&mut s);
        // base, X, 1, job, <<, Y, 2, other: the aliased X is not visited twice.
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn billion_laughs_stays_small() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..30 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let docs = parse(&text).unwrap();
        let mut s = Vec::new();
        docs[0].scalars(&mut s);
        assert_eq!(s.len(), 30 + 10);
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
        let e = parse("a: *nope\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 4), "{e}");
        let deep = "[".repeat(10_000);
        let e = parse(&deep).unwrap_err();
        // The parser's own recursion limit, or ours: either way an error with a position.
        assert!(
            e.message.contains("nested") || e.message.contains("recursion"),
            "{e}"
        );
    }

    #[test]
    fn non_ascii_offsets_are_bytes() {
        let text = "é: ü\nk: ${{ v }}\n";
        let docs = parse(text).unwrap();
        let v = docs[0].get("k").unwrap();
        assert_eq!(&text[v.start.offset..v.start.offset + 3], "${{");
        assert_eq!((v.start.line, v.start.column), (2, 4));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,400}") {
            if let Ok(docs) = parse(&s) {
                for d in docs {
                    let mut v = Vec::new();
                    d.scalars(&mut v);
                    for n in v {
                        prop_assert!(n.start.offset <= s.len() && n.end.offset <= s.len());
                        prop_assert!(s.is_char_boundary(n.start.offset));
                    }
                }
            }
        }

        #[test]
        fn never_panics_on_yaml_like_text(s in "([ ]{0,4}(- )?[a-z&*<:]{0,6}(: )?(\\$\\{\\{ [a-z.]{0,8} \\}\\}|[a-z|>\\[\\]{},'\"]{0,6})\n){0,30}") {
            let _ = parse(&s);
        }
    }
}
