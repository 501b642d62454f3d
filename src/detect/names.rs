//! The name heuristic: a name that says "secret" and a value that looks like one.
//!
//! Names are split into lowercase segments (`_`, `-`, `.`, camelCase), so `TOKENIZERS_PARALLELISM`
//! has no `token` segment and `KEYTIMEOUT` no `key` segment. A trailing segment that names a
//! pointer to a secret (`_FILE`, `_PATH`, `_URL`, `_ID`, ...) makes the name harmless.

use super::entropy::shannon;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Tokens and keys: only high-entropy values count.
    Token,
    /// Passwords: may be short and low-entropy, still a secret at rest.
    Password,
}

/// How much evidence a value needs. `Assignment` is for environment, shell and `.env`
/// assignments, where the name is certain; `Text` is for arbitrary files, where a "key" can be
/// anything and only random-looking values count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    Assignment,
    Text,
}

/// Exact names that look secret-like but hold no secret.
const HARMLESS_NAMES: &[&str] = &[
    "tokenizers_parallelism",
    "keytimeout",
    "ssh_auth_sock",
    "gpg_key",
    "gpg_tty",
    "pwd",
    "oldpwd",
    "keymap",
    "xauthority",
    "password_store_dir",
    "password_store_key",
    "git_askpass",
    "ssh_askpass",
    "sudo_askpass",
    "npm_config_keyfile",
];

/// Trailing segments that turn a secret-like name into a pointer or a setting.
const HARMLESS_SUFFIXES: &[&str] = &[
    "file",
    "files",
    "path",
    "paths",
    "dir",
    "directory",
    "url",
    "uri",
    "endpoint",
    "host",
    "port",
    "id",
    "ids",
    "name",
    "names",
    "type",
    "types",
    "timeout",
    "length",
    "len",
    "size",
    "count",
    "enabled",
    "disabled",
    "enable",
    "disable",
    "mode",
    "region",
    "header",
    "headers",
    "helper",
    "prefix",
    "suffix",
    "format",
    "version",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "sock",
    "socket",
    "command",
    "cmd",
    "program",
    "location",
    "field",
    "kind",
    "algorithm",
    "alg",
    "limit",
    "max",
    "min",
    "method",
    "store",
    "policy",
    "scope",
    "scopes",
    "audience",
    "issuer",
    "env",
    "var",
    "variable",
    "parallelism",
    "required",
    "rotation",
    "hint",
    "label",
    "index",
    "mask",
    "regex",
    "pattern",
    "provider",
    "source",
    "service",
    "user",
    "username",
    "table",
    "column",
    "status",
    "state",
    "event",
    "events",
    "ref",
];

/// Splits `MY_API_KEY`, `myApiKey`, `my-api.key` into `["my", "api", "key"]`.
pub fn segments(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' || c == '/' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub fn name_kind(name: &str) -> Option<NameKind> {
    let lower = name.to_ascii_lowercase();
    if HARMLESS_NAMES.contains(&lower.as_str()) {
        return None;
    }
    let segs = segments(name);
    let last = segs.last()?;
    if HARMLESS_SUFFIXES.contains(&last.as_str()) {
        return None;
    }
    let mut kind = None;
    for s in &segs {
        match s.as_str() {
            "password" | "passwd" | "pass" | "pwd" | "passphrase" | "passwords" => {
                return Some(NameKind::Password);
            }
            "key" | "apikey" | "token" | "secret" | "secrets" | "credential" | "credentials"
            | "pat" | "accesskey" | "privatekey" | "authtoken" | "apitoken" | "clientsecret"
            | "auth" => kind = Some(NameKind::Token),
            _ => {}
        }
    }
    // `auth` alone (NPM_AUTH, GIT_AUTH) is secret-like only in the last place.
    if kind == Some(NameKind::Token)
        && !segs.iter().any(|s| s != "auth" && is_token_segment(s))
        && last != "auth"
    {
        return None;
    }
    kind
}

fn is_token_segment(s: &str) -> bool {
    matches!(
        s,
        "key"
            | "apikey"
            | "token"
            | "secret"
            | "secrets"
            | "credential"
            | "credentials"
            | "pat"
            | "accesskey"
            | "privatekey"
            | "authtoken"
            | "apitoken"
            | "clientsecret"
    )
}

/// Words that mark a value as a stand-in, not a secret.
const PLACEHOLDER_WORDS: &[&str] = &[
    "xxxx",
    "****",
    "....",
    "changeme",
    "change_me",
    "change-me",
    "changeit",
    "placeholder",
    "example",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "redacted",
    "dummy",
    "replace",
    "insert",
    "<",
    "todo",
];

const PLACEHOLDER_VALUES: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "secret",
    "token",
    "key",
    "none",
    "null",
    "nil",
    "true",
    "false",
    "undefined",
    "default",
    "test",
    "admin",
    "root",
    "user",
    "username",
    "pwd",
    "empty",
    "string",
    "value",
    "apikey",
    "api_key",
    "sample",
    "foo",
    "bar",
    "foobar",
];

pub fn is_placeholder(value: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(value).to_ascii_lowercase();
    if PLACEHOLDER_VALUES.contains(&lower.as_str()) {
        return true;
    }
    if PLACEHOLDER_WORDS
        .iter()
        .any(|w| contains_in_one_case(value, w))
    {
        return true;
    }
    longest_run(value) >= 8
}

/// `word` (lower case) in `value` as a person writes it: lower case, upper case or capitalised.
///
/// Why not any mix of cases: a random key in base62 holds "xXxX" or "ToDo" now and then (one
/// GitHub token in 200,000 generated held "xXxX"), and a key taken for a placeholder is a key
/// left unreported.
fn contains_in_one_case(value: &[u8], word: &str) -> bool {
    let word = word.as_bytes();
    value.windows(word.len()).any(|w| {
        w == word
            || w.iter()
                .zip(word)
                .all(|(a, b)| *a == b.to_ascii_uppercase())
            || (w[0] == word[0].to_ascii_uppercase() && w[1..] == word[1..])
    })
}

fn longest_run(value: &[u8]) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut prev = None;
    for &b in value {
        if Some(b) == prev {
            run += 1;
        } else {
            run = 1;
            prev = Some(b);
        }
        best = best.max(run);
    }
    best
}

/// `$VAR`, `${VAR}`, `$(cmd)`, `%VAR%`, `{{ tmpl }}`, `<token>`, `op://...`: a pointer to a
/// secret kept elsewhere, not the secret.
pub fn is_reference(value: &[u8]) -> bool {
    let v = value;
    v.starts_with(b"$")
        || v.windows(2).any(|w| w == b"${" || w == b"$(" || w == b"{{")
        || (v.starts_with(b"%") && v.ends_with(b"%"))
        || (v.starts_with(b"<") && v.ends_with(b">"))
        || v.starts_with(b"op://")
        || v.starts_with(b"keyfence:")
        || v.starts_with(b"store:")
}

pub fn is_path(value: &[u8]) -> bool {
    value.starts_with(b"/")
        || value.starts_with(b"~/")
        || value.starts_with(b"./")
        || value.starts_with(b"../")
        || (value.len() > 2 && value[1] == b':' && (value[2] == b'\\' || value[2] == b'/'))
}

fn char_classes(value: &[u8]) -> (bool, bool, bool, bool) {
    let lower = value.iter().any(u8::is_ascii_lowercase);
    let upper = value.iter().any(u8::is_ascii_uppercase);
    let digit = value.iter().any(u8::is_ascii_digit);
    let other = value.iter().any(|b| !b.is_ascii_alphanumeric());
    (lower, upper, digit, other)
}

/// Whether `value`, held under a name of `kind`, is a secret.
pub fn value_is_secret(kind: NameKind, value: &[u8], strictness: Strictness) -> bool {
    // Cheap rejections first: in code most candidates are short identifiers.
    if strictness == Strictness::Text
        && (value.len() < 20
            || !value
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=_-~".contains(b)))
    {
        return false;
    }
    if value.is_empty()
        || is_reference(value)
        || is_path(value)
        || is_placeholder(value)
        || value.iter().any(|b| b.is_ascii_whitespace())
    {
        return false;
    }
    let (lower, upper, digit, other) = char_classes(value);
    let classes = [lower, upper, digit, other].iter().filter(|&&c| c).count();
    let entropy = shannon(value);
    match (kind, strictness) {
        (NameKind::Password, Strictness::Assignment) => {
            value.len() >= 6 && classes >= 2 && !value.iter().all(u8::is_ascii_digit)
        }
        (NameKind::Token, Strictness::Assignment) => {
            // Random tokens nearly always hold a digit or a symbol; camelCase words do not.
            value.len() >= 16
                && entropy >= 3.0
                && classes >= 2
                && (digit || other || value.len() >= 32)
        }
        // In arbitrary files a "key" is often a word, a dotted identifier or a hash; demand a
        // random-looking mix of letters and digits with no code punctuation.
        (_, Strictness::Text) => {
            value.len() >= 20
                && entropy >= 3.7
                && digit
                && (lower || upper)
                && (classes >= 3 || value.len() >= 32)
                && value
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=_-~".contains(b))
                && !(value.iter().all(|b| b.is_ascii_hexdigit()) && value.len().is_multiple_of(8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_words_count_in_one_case_only() {
        for v in [
            "sk-ant-api03-xxxxxxxx",
            "YOUR_API_KEY_HERE",
            "your-token",
            "Example-Key-1234567890",
            "TODO-fill-me-in",
            "api-key-REDACTED",
        ] {
            assert!(is_placeholder(v.as_bytes()), "{v}");
        }
        // Random key material spelling a word in mixed case is not a placeholder.
        for v in [
            "KWCUINCqIBK6dUL4CPSRe3TWw82XXB3fxXxX",
            "a8ToDoQ2mZ9rEXaMpLe7",
        ] {
            assert!(!is_placeholder(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn names() {
        let cases = [
            ("ANTHROPIC_API_KEY", Some(NameKind::Token)),
            ("GITHUB_TOKEN", Some(NameKind::Token)),
            ("clientSecret", Some(NameKind::Token)),
            ("DB_PASSWORD", Some(NameKind::Password)),
            ("AWS_CREDENTIALS", Some(NameKind::Token)),
            ("TOKENIZERS_PARALLELISM", None),
            ("KEYTIMEOUT", None),
            ("GPG_KEY_FILE", None),
            ("SSH_AUTH_SOCK", None),
            ("PWD", None),
            ("API_KEY_ID", None),
            ("MONKEY", None),
            ("NPM_AUTH", Some(NameKind::Token)),
            ("AUTH_MODE", None),
        ];
        for (name, want) in cases {
            assert_eq!(name_kind(name), want, "{name}");
        }
    }

    #[test]
    fn values() {
        use NameKind::*;
        use Strictness::*;
        assert!(value_is_secret(
            Token,
            b"Hq3vT9xLm2Zr8WbK5nYp4Jc7",
            Assignment
        ));
        assert!(!value_is_secret(Token, b"changeme", Assignment));
        assert!(!value_is_secret(Token, b"${API_KEY}", Assignment));
        assert!(!value_is_secret(Token, b"false", Assignment));
        assert!(value_is_secret(Password, b"hunter22", Assignment));
        assert!(!value_is_secret(Password, b"hunter22", Text));
        assert!(!value_is_secret(Token, b"getTokenFromRequest", Text));
    }
}
