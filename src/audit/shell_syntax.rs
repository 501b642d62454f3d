// TEMPORARY STUB (helper-2 replaces this file with the real lexer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Posix,
    Fish,
    Csh,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub value: Vec<u8>,
    pub line: u32,
    pub column: u32,
    pub exported: bool,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub path: String,
    pub line: u32,
}
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub assignments: Vec<Assignment>,
    pub sources: Vec<Sourced>,
}
pub fn parse(text: &[u8], _dialect: Dialect) -> Parsed {
    let mut p = Parsed::default();
    for (i, l) in text.split(|&b| b == b'\n').enumerate() {
        let s = String::from_utf8_lossy(l);
        let s = s.trim();
        let (exported, rest) = match s.strip_prefix("export ") {
            Some(r) => (true, r),
            None => (false, s),
        };
        if let Some((n, v)) = rest.split_once('=') {
            if !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let v = v.trim_matches(|c| c == '"' || c == '\'');
                p.assignments.push(Assignment {
                    name: n.into(),
                    value: v.as_bytes().to_vec(),
                    line: i as u32 + 1,
                    column: 1,
                    exported,
                });
            }
        }
    }
    p
}
