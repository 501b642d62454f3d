//! Compiles `rules/*.toml` into Rust data (`$OUT_DIR/rules.rs`), so a run pays nothing to parse
//! its rule catalogue: `keyfence run` and `secret get` have a 1 ms and 5 ms budget (DESIGN.md
//! §4), and parsing the TOML at start-up cost 1.4 ms. A malformed rules file fails the build.

use serde::Deserialize;
use std::fmt::Write as _;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    id: String,
    kind: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    prefixes: Vec<String>,
    keywords: Vec<String>,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default)]
    engine: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    min_entropy: f64,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    password: bool,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    allowlist: Vec<String>,
    examples: Vec<String>,
    #[serde(default)]
    negative_examples: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<Spec>,
}

fn list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", inner.join(", "))
}

fn main() {
    println!("cargo:rerun-if-changed=rules");
    let mut files: Vec<_> = std::fs::read_dir("rules")
        .expect("rules/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read rules file");
        let file: RuleFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for r in file.rules {
            let engine = match r.engine.as_deref() {
                None | Some("regex") => "Engine::Regex",
                Some("assignment") => "Engine::Assignment",
                Some(other) => panic!("{}: rule {}: unknown engine {other}", path.display(), r.id),
            };
            if engine == "Engine::Regex" && r.regex.is_none() {
                panic!("{}: rule {} has no regex", path.display(), r.id);
            }
            let checksum = match r.checksum.as_deref() {
                None => "None",
                Some("base62-crc32") => "Some(Checksum::Base62Crc32)",
                Some(other) => panic!(
                    "{}: rule {}: unknown checksum {other}",
                    path.display(),
                    r.id
                ),
            };
            writeln!(
                out,
                "RuleSpec {{ id: {:?}, kind: {:?}, prefix: {:?}, prefixes: {}, keywords: {}, \
                 ignore_case: {}, engine: {engine}, regex: {:?}, min_entropy: {:?}, \
                 checksum: {checksum}, password: {}, priority: {}, allowlist: {}, \
                 examples: {}, negative_examples: {} }},",
                r.id,
                r.kind,
                r.prefix,
                list(&r.prefixes),
                list(&r.keywords),
                r.ignore_case,
                r.regex,
                r.min_entropy,
                r.password,
                r.priority,
                list(&r.allowlist),
                list(&r.examples),
                list(&r.negative_examples),
            )
            .expect("write");
        }
    }
    out.push_str("]\n");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("rules.rs");
    std::fs::write(dest, out).expect("write rules.rs");
}
