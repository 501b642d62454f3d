//! Edits shown as unified diffs in which no value appears: a known key as its preview, any other
//! secret the detector sees as its own, and a line that still holds a piece of a key hidden.

use super::FileScan;
use crate::detect::{self, Mode};
use crate::secret::SecretValue;
use zeroize::Zeroizing;

/// A unified diff of the edit in which no value appears: every known key value is shown as its
/// preview, and any other secret the detector sees in a shown line too.
pub fn diff(file: &FileScan, new: &[u8]) -> String {
    let forms: Vec<(&SecretValue, &str)> = file
        .found
        .iter()
        .map(|f| (&f.value, f.info.preview.as_str()))
        .collect();
    text_diff(
        &file.real.display().to_string(),
        &file.original,
        new,
        &forms,
    )
}

/// A unified diff of `old` → `new` under `name`, with each of `values` shown as its preview and
/// any other secret the detector sees replaced by its own: for setup's edits of agent settings,
/// which may hold keys near the lines it changes.
pub fn text_diff(name: &str, old: &[u8], new: &[u8], values: &[(&SecretValue, &str)]) -> String {
    use similar::{ChangeTag, TextDiff};
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let td = TextDiff::from_lines(old.as_ref(), new.as_ref());
    let redactor = Redactor::new(values);
    let mut out = format!("--- {name}\n+++ {name}\n");
    for hunk in td.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&format!("{}\n", hunk.header()));
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
                ChangeTag::Equal => ' ',
            };
            let line = change.value();
            let body = line.strip_suffix('\n').unwrap_or(line);
            let body = body.strip_suffix('\r').unwrap_or(body);
            out.push(sign);
            out.push_str(&redactor.line(body));
            out.push('\n');
            if change.missing_newline() {
                out.push_str("\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// Replaces secret values in text shown to the user.
struct Redactor {
    /// (a way the value may be written, its preview), longest first.
    forms: Vec<(Zeroizing<String>, String)>,
    values: Vec<SecretValue>,
}

impl Redactor {
    fn new(found: &[(&SecretValue, &str)]) -> Self {
        let mut forms = Vec::new();
        let mut values = Vec::new();
        for (value, preview) in found {
            let raw = Zeroizing::new(String::from_utf8_lossy(value.expose()).into_owned());
            let json = Zeroizing::new(serde_json::to_string(raw.as_str()).unwrap_or_default());
            let json = Zeroizing::new(json[1..json.len().saturating_sub(1).max(1)].to_string());
            for form in [raw, json] {
                if !form.is_empty() {
                    forms.push((form, preview.to_string()));
                }
            }
            values.push((*value).clone());
        }
        forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        Redactor { forms, values }
    }

    fn line(&self, line: &str) -> String {
        let mut s = line.to_string();
        for (form, preview) in &self.forms {
            if s.contains(form.as_str()) {
                s = s.replace(form.as_str(), preview);
            }
        }
        let matches = detect::detector().scan(s.as_bytes(), Mode::Assignment);
        let mut shown: Vec<String> = Vec::new();
        if !matches.is_empty() {
            let mut r = String::with_capacity(s.len());
            let mut at = 0;
            for m in matches {
                if m.start < at
                    || !s.is_char_boundary(m.start)
                    || !s.is_char_boundary(m.end)
                    || s[m.start..m.end].contains('…')
                {
                    continue;
                }
                r.push_str(&s[at..m.start]);
                let preview = m.info().preview;
                r.push_str(&preview);
                shown.push(preview);
                at = m.end;
            }
            r.push_str(&s[at..]);
            s = r;
        }
        // Last guard: a value written in some other way (escaped, split) still shows a piece.
        // Previews share the public prefix with their value, so they are not looked at.
        let mut rest = s.clone();
        for p in self.forms.iter().map(|(_, p)| p).chain(&shown) {
            rest = rest.replace(p.as_str(), "");
        }
        if self
            .values
            .iter()
            .any(|v| leaks(rest.as_bytes(), v.expose()))
        {
            return "[line hidden: it holds part of a key]".to_string();
        }
        s
    }
}

/// Whether `hay` holds 10 consecutive bytes of `value` (all of it, if shorter).
fn leaks(hay: &[u8], value: &[u8]) -> bool {
    let w = value.len().min(10);
    w > 0
        && value
            .windows(w)
            .any(|piece| memchr::memmem::find(hay, piece).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::plan_edit;
    use crate::fix::testing::{KEY, shell_file};
    use crate::syntax::shell::Dialect;

    #[test]
    fn diff_shows_previews_not_values() {
        let text = format!("# top\nexport ANTHROPIC_API_KEY={KEY}\nexport PATH=/bin\n");
        let f = shell_file(&text, Dialect::Posix);
        let e = plan_edit(&f, &[0], &|_| String::new()).unwrap();
        let d = diff(&f, &e.new);
        assert!(
            d.contains("-export ANTHROPIC_API_KEY=sk-ant-api03-…AA\n"),
            "{d}"
        );
        assert!(d.contains(" export PATH=/bin\n"), "{d}");
        assert!(!d.contains("Hq3vT9xLm2"), "{d}");
    }

    #[test]
    fn text_diff_hides_every_form_of_a_value() {
        let key = SecretValue::new(KEY.to_string());
        let k = KEY.to_string();
        let piece = &k[20..40];
        let old = format!(
            "{{\n  \"env\": {{\"K\": \"{k}\"}},\n  \"note\": \"{piece}\",\n  \"x\": 1\n}}\n"
        );
        let new = "{\n  \"x\": 2\n}\n";
        let d = text_diff(
            "s.json",
            old.as_bytes(),
            new.as_bytes(),
            &[(&key, "PREVIEW")],
        );
        assert!(d.starts_with("--- s.json\n+++ s.json\n@@"), "{d}");
        assert!(d.contains("-  \"env\": {\"K\": \"PREVIEW\"},\n"), "{d}");
        assert!(
            d.contains("-[line hidden: it holds part of a key]\n"),
            "{d}"
        );
        assert!(d.contains("+  \"x\": 2\n"), "{d}");
        for w in k.as_bytes().windows(10) {
            assert!(!d.contains(std::str::from_utf8(w).unwrap()), "{d}");
        }
    }
}
