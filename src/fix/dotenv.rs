//! A project's `.env` files: a key's value gives way to a `store:NAME` reference on the same
//! line, so the file still says what the program needs and where it is kept.

use super::{Edit, FileScan, Format, Found, Removal, Removed, line_bytes, line_table};
use crate::audit;
use crate::detect;
use crate::secret::SecretValue;
use crate::syntax;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use zeroize::Zeroizing;

pub(super) fn scan_dotenv(
    path: PathBuf,
    real: PathBuf,
    shown: String,
    text: Zeroizing<Vec<u8>>,
) -> Option<FileScan> {
    let detector = detect::detector();
    let lines = line_table(&text);
    let mut found = Vec::new();
    for e in audit::dotenv::parse(&text) {
        let Some(m) = detector.classify_var(&e.name, &e.value) else {
            continue;
        };
        let removal = match line_bytes(&text, &lines, e.line).and_then(dotenv_value_span) {
            Some(_) if syntax::shell::is_name(e.name.as_bytes()) => Removal::Reference,
            Some(_) => Removal::Manual(
                "its name cannot be a store entry or an environment variable; move it by hand"
                    .to_string(),
            ),
            None => Removal::Manual(
                "the value spans several lines; replace it by hand with store:NAME".to_string(),
            ),
        };
        found.push(Found {
            name: e.name.clone(),
            value: SecretValue::new(e.value.as_slice()),
            info: m.info(),
            line: e.line,
            removal,
            notes: Vec::new(),
            cmds: Vec::new(),
        });
    }
    if found.is_empty() {
        return None;
    }
    Some(FileScan {
        path,
        real,
        shown,
        format: Format::Dotenv,
        found,
        original: text,
        export_lines: Vec::new(),
        assignments: HashMap::new(),
        json: None,
    })
}

/// Where the value of a one-line `[export ]NAME=value` starts and ends in `line` (its quotes
/// included; a trailing ` # comment` excluded); `None` when the value goes on past the line.
fn dotenv_value_span(line: &[u8]) -> Option<(usize, usize)> {
    let sep = line.iter().position(|&b| b == b'=' || b == b':')?;
    let start = sep
        + 1
        + line[sep + 1..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
    let rest = &line[start..];
    let end = match rest.first() {
        Some(&q @ (b'\'' | b'"')) => {
            let mut i = 1;
            loop {
                match rest.get(i) {
                    None => return None,
                    Some(b'\\') if q == b'"' => i += 2,
                    Some(&b) if b == q => break start + i + 1,
                    Some(_) => i += 1,
                }
            }
        }
        _ => {
            let comment = rest
                .windows(2)
                .position(|w| matches!(w[0], b' ' | b'\t') && w[1] == b'#')
                .unwrap_or(rest.len());
            let value = &rest[..comment];
            start + value.len()
                - value
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count()
        }
    };
    Some((start, end))
}

pub(super) fn dotenv_edit(
    file: &FileScan,
    chosen: &[usize],
    store_name: &dyn Fn(usize) -> String,
) -> Option<Edit> {
    let lines = line_table(&file.original);
    // Line number → the reference that replaces its value.
    let mut replace: BTreeMap<u32, String> = BTreeMap::new();
    let mut removed = Vec::new();
    for &fi in chosen {
        let f = &file.found[fi];
        if f.removal == Removal::Reference {
            replace.insert(f.line, format!("store:{}", store_name(fi)));
            removed.push(Removed {
                found: fi,
                lines: vec![f.line],
            });
        }
    }
    if removed.is_empty() {
        return None;
    }
    let mut new = Zeroizing::new(Vec::with_capacity(file.original.len()));
    for (n, &(start, end, next)) in lines.iter().enumerate() {
        let line = &file.original[start..end];
        match replace.get(&(n as u32 + 1)) {
            Some(reference) => {
                let (vs, ve) = dotenv_value_span(line)?;
                new.extend_from_slice(&line[..vs]);
                new.extend_from_slice(reference.as_bytes());
                new.extend_from_slice(&line[ve..]);
            }
            None => new.extend_from_slice(line),
        }
        new.extend_from_slice(&file.original[end..next]);
    }
    Some(Edit::plain(new, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::plan_edit;
    use crate::fix::testing::KEY;

    /// `text` as the project's `.env`, holding a key.
    fn scanned(text: String) -> FileScan {
        scan_dotenv(
            "/p/.env".into(),
            "/p/.env".into(),
            ".env".into(),
            Zeroizing::new(text.into_bytes()),
        )
        .expect("a key")
    }

    #[test]
    fn value_spans() {
        let cases: &[(&str, Option<&str>)] = &[
            ("A=x", Some("x")),
            ("export A = \"v # x\" # c", Some("\"v # x\"")),
            ("A='it''s'", Some("'it'")),
            ("A=\"a\\\"b\" tail", Some("\"a\\\"b\"")),
            ("A=v w   # note", Some("v w")),
            ("A: v", Some("v")),
            ("A=", Some("")),
            ("A=\"opened", None),
            ("A='opened", None),
            ("no separator", None),
        ];
        for (line, want) in cases {
            let got = dotenv_value_span(line.as_bytes()).map(|(s, e)| &line[s..e]);
            assert_eq!(got, *want, "{line:?}");
        }
    }

    #[test]
    fn value_gives_way_to_a_reference() {
        let text =
            format!("# keys\r\nexport ANTHROPIC_API_KEY=\"{KEY}\" # mine\r\nOTHER=1\r\nPLAIN=x");
        let f = scanned(text);
        assert_eq!(f.found.len(), 1);
        assert_eq!(f.found[0].removal, Removal::Reference);
        let e = plan_edit(&f, &[0], &|_| "ANTHROPIC_API_KEY_2".into()).unwrap();
        assert_eq!(
            String::from_utf8(e.new.to_vec()).unwrap(),
            "# keys\r\nexport ANTHROPIC_API_KEY=store:ANTHROPIC_API_KEY_2 # mine\r\nOTHER=1\r\nPLAIN=x"
        );
        assert_eq!(
            e.removed,
            [Removed {
                found: 0,
                lines: vec![2]
            }]
        );
        // Not chosen: nothing to write.
        assert!(plan_edit(&f, &[], &|_| String::new()).is_none());
    }

    #[test]
    fn a_value_over_several_lines_is_left_to_the_user() {
        let text = format!("ANTHROPIC_API_KEY=\"{KEY}\nmore\"\n");
        let f = scanned(text);
        assert!(
            matches!(&f.found[0].removal, Removal::Manual(why) if why.contains("several lines"))
        );
        assert!(plan_edit(&f, &[0], &|_| "K".into()).is_none());
    }
}
