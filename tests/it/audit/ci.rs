//! The `ci` source against fixture workflows (tests/fixtures/ci): every rule's positive cases at
//! the exact line and column, its negative cases silent, bad input as error entries, SARIF that
//! validates against the SARIF 2.1.0 schema, and zizmor's secret audits as a floor.

use crate::common::*;
use serde_json::Value;
use std::path::Path;

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci/project")
}

/// Every long token in the fixture files: the committed fake keys, which must never be printed.
fn fixture_values() -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![fixture_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for w in text.split(|c: char| c.is_whitespace() || "\"'=,:".contains(c)) {
                if w.len() >= 20
                    && w.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
                {
                    out.push(w.to_string());
                }
            }
        }
    }
    out
}

fn ci_fixture() -> (Fixture, Vec<String>) {
    let fx = Fixture::new();
    copy_tree(&fixture_dir(), &fx.project);
    let values = fixture_values();
    (fx, values)
}

fn audit(fx: &Fixture, format: &str) -> Run {
    let r = fx.run(
        &[
            "audit", "--only", "ci", "--format", format, "--color", "never",
        ],
        &[],
    );
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    r
}

/// (rule, path, line, column, severity) of every finding.
fn summary(findings: &[Value]) -> Vec<(String, String, u64, u64, String)> {
    let mut v: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["location"]["path"].as_str().unwrap().to_string(),
                f["location"]["line"].as_u64().unwrap(),
                f["location"]["column"].as_u64().unwrap_or(0),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_rule_fires_where_it_should_and_nowhere_else() {
    let (fx, values) = ci_fixture();
    let r = audit(&fx, "json");
    assert!(values.len() >= 4, "{values:?}");
    r.assert_no_secret(&values);
    assert_eq!(r.code, 1);
    let got = summary(&r.findings());
    let w = ".github/workflows/";
    let want: Vec<(&str, String, u64, u64, &str)> = vec![
        // Workflow-level env reaches `npm ci`: high.
        (
            "ci-workflow-env-secret",
            format!("{w}env-scope.yml"),
            5,
            14,
            "high",
        ),
        // Job env in a job with `npm ci`: high; in a job with only curl: medium.
        (
            "ci-job-env-secret",
            format!("{w}env-scope.yml"),
            12,
            19,
            "high",
        ),
        (
            "ci-job-env-secret",
            format!("{w}env-scope.yml"),
            24,
            28,
            "medium",
        ),
        // The anchored env block, reached by both jobs (the alias points at the anchor).
        (
            "ci-job-env-secret",
            format!("{w}anchors.yml"),
            8,
            26,
            "high",
        ),
        (
            "ci-job-env-secret",
            format!("{w}anchors.yml"),
            8,
            26,
            "medium",
        ),
        (
            "ci-secrets-inherit",
            format!("{w}reusable.yml"),
            7,
            14,
            "high",
        ),
        (
            "ci-secret-to-unpinned-action",
            format!("{w}reusable.yml"),
            12,
            19,
            "medium",
        ),
        (
            "ci-all-secrets",
            format!("{w}expressions.yml"),
            12,
            24,
            "critical",
        ),
        (
            "ci-secret-fromjson",
            format!("{w}expressions.yml"),
            20,
            20,
            "medium",
        ),
        (
            "ci-secret-in-run",
            format!("{w}expressions.yml"),
            25,
            30,
            "medium",
        ),
        (
            "ci-secret-to-unpinned-action",
            format!("{w}expressions.yml"),
            33,
            18,
            "medium",
        ),
        (
            "ci-pr-target-checkout",
            format!("{w}pr-target.yml"),
            12,
            16,
            "critical",
        ),
        (
            "anthropic-api-key",
            format!("{w}plaintext.yml"),
            8,
            26,
            "critical",
        ),
        (
            "generic-secret",
            format!("{w}plaintext.yml"),
            12,
            31,
            "critical",
        ),
        (
            "ci-secret-in-run",
            "action/action.yml".into(),
            12,
            63,
            "medium",
        ),
        (
            "ci-secret-to-unpinned-action",
            "action/action.yml".into(),
            18,
            15,
            "medium",
        ),
        ("gitlab-pat", ".gitlab-ci.yml".into(), 6, 17, "critical"),
        (
            "gitlab-global-secret-variable",
            ".gitlab-ci.yml".into(),
            7,
            3,
            "medium",
        ),
        ("npm-token", "ci/extra.yml".into(), 3, 21, "critical"),
    ];
    let mut want: Vec<(String, String, u64, u64, String)> = want
        .into_iter()
        .map(|(a, b, c, d, e)| (a.to_string(), b, c, d, e.to_string()))
        .collect();
    want.sort();
    let fmt = |v: &[(String, String, u64, u64, String)]| {
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(fmt(&got), fmt(&want));

    // The broken workflow is an error entry naming the file and the position.
    let errors = r.json()["errors"].as_array().cloned().unwrap_or_default();
    let e = errors
        .iter()
        .find(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("broken.yaml"))
        })
        .unwrap_or_else(|| panic!("no error for broken.yaml: {errors:?}"));
    assert!(
        e["message"].as_str().unwrap().contains("line 6 column 7"),
        "{e}"
    );
}

#[test]
fn the_fix_moves_the_secret_to_the_one_step_that_uses_it() {
    let (fx, _) = ci_fixture();
    let f = audit(&fx, "json").findings();
    let job = find_at(&f, "ci-job-env-secret", "env-scope.yml", 12).expect("job env finding");
    let fix = job["fix"].as_str().unwrap();
    assert!(
        fix.contains("`DEPLOY_KEY: ${{ secrets.DEPLOY_KEY }}`")
            && fix.contains("step \"Deploy\" (line 18)")
            && fix.contains("the one step that uses it"),
        "{fix}"
    );
    let msg = job["message"].as_str().unwrap();
    assert!(msg.contains("step \"Install\" (line 16)"), "{msg}");
}

#[test]
fn plaintext_keys_generated_per_run_are_found_and_never_printed() {
    let mut fx = Fixture::new();
    let ant = fx.key("anthropic");
    let gh = fx.key("github");
    fx.project_file(
        ".github/workflows/w.yml",
        &format!(
            "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: ./x\n        env:\n          ANTHROPIC_API_KEY: {ant}\n          GH_TOKEN: \"{gh}\"\n"
        ),
    );
    // Also in the project's own tree scan, the file belongs to `ci` only.
    let r = fx.run(&["audit", "--only", "ci,file", "--format", "json"], &[]);
    let f = r.findings();
    let a = find_at(&f, "anthropic-api-key", "w.yml", 8).expect("anthropic");
    assert_eq!(a["source"], "ci");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["location"]["column"], 30);
    assert_eq!(a["secret"]["fingerprint"], sha12(&ant));
    let g = find_at(&f, "github-token", "w.yml", 9).expect("github token");
    assert_eq!(g["secret"]["fingerprint"], sha12(&gh));
    assert_eq!(f.len(), 2, "{f:?}");
}

#[test]
fn negatives_stay_silent() {
    let fx = Fixture::new();
    fx.project_file(
        ".github/workflows/ok.yml",
        "on: [push, pull_request_target]\nenv:\n  NODE_ENV: production\njobs:\n  a:\n    runs-on: ubuntu-latest\n    env:\n      GREETING: ${{ vars.GREETING }}\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo ${{ github.sha }} ${{ toJSON(github.event) }}\n      - uses: some/action@0123456789abcdef0123456789abcdef01234567\n        with:\n          token: ${{ secrets.TOKEN }}\n      - run: ./deploy \"$TOKEN\"\n        env:\n          TOKEN: ${{ secrets.TOKEN }}\n",
    );
    let r = audit(&fx, "json");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.findings().is_empty(), "{}", r.stdout);
    assert!(r.json()["errors"].as_array().unwrap().is_empty());
}

#[test]
fn bad_input_is_an_error_with_a_position_never_a_crash() {
    let fx = Fixture::new();
    let w = ".github/workflows";
    fx.project_file(&format!("{w}/alias.yml"), "on: push\njobs: *missing\n");
    fx.project_file(&format!("{w}/tabs.yml"), "on: push\njobs:\n\ta: 1\n");
    std::fs::write(
        fx.project.join(format!("{w}/binary.yml")),
        b"on: push\nname: \xff\xfe\n",
    )
    .unwrap();
    // A billion-laughs document: aliases are shared, not expanded.
    let mut laughs = String::from("on: push\nx0: &x0 [a, a, a, a, a, a, a, a, a]\n");
    for i in 1..40 {
        let p = i - 1;
        laughs.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    laughs.push_str("jobs:\n  a:\n    env: *x39\n    steps: *x39\n");
    fx.project_file(&format!("{w}/laughs.yml"), &laughs);
    // A huge workflow: 40,000 steps, one of which expands a secret in its script.
    let mut huge = String::from("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n");
    for i in 0..40_000 {
        huge.push_str(&format!("      - name: step {i}\n        run: echo {i}\n"));
    }
    huge.push_str("      - run: ./x ${{ secrets.LAST }}\n");
    let huge_line = 5 + 2 * 40_000 + 1;
    fx.project_file(&format!("{w}/huge.yml"), &huge);
    let started = std::time::Instant::now();
    let r = audit(&fx, "json");
    let took = started.elapsed();
    let errors = r.json()["errors"].as_array().cloned().unwrap();
    let err = |name: &str| {
        errors
            .iter()
            .find(|e| e["path"].as_str().is_some_and(|p| p.ends_with(name)))
            .and_then(|e| e["message"].as_str())
            .unwrap_or_else(|| panic!("no error for {name}: {errors:?}"))
            .to_string()
    };
    assert!(
        err("alias.yml").contains("line 2 column 7"),
        "{}",
        err("alias.yml")
    );
    assert!(err("tabs.yml").contains("line 3"), "{}", err("tabs.yml"));
    assert!(
        err("binary.yml").contains("line 2 column 7"),
        "{}",
        err("binary.yml")
    );
    let f = r.findings();
    assert!(
        find_at(&f, "ci-secret-in-run", "huge.yml", huge_line as u64).is_some(),
        "{f:?}"
    );
    assert!(took.as_secs() < 20, "took {took:?}");
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema_and_regions_hit_the_line() {
    let (fx, values) = ci_fixture();
    let r = audit(&fx, "sarif");
    r.assert_no_secret(&values);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif-schema-2.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The schema check must be able to fail: a result without a message is invalid.
    let mut broken = doc.clone();
    broken["runs"][0]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("message");
    assert!(!validator.is_valid(&broken));

    // Each region's line holds what the finding is about.
    let results = doc["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() >= 15);
    for res in results {
        let loc = &res["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
        let col = loc["region"]["startColumn"].as_u64().unwrap() as usize;
        let text = std::fs::read_to_string(fx.project.join(uri)).unwrap();
        let l = text.lines().nth(line - 1).unwrap();
        let at = &l[col - 1..];
        let rule = res["ruleId"].as_str().unwrap();
        let ok = match rule {
            "ci-secrets-inherit" => at.starts_with("inherit"),
            "gitlab-global-secret-variable" => at.starts_with("NPM_TOKEN"),
            "ci-pr-target-checkout" => at.starts_with("${{ github.event.pull_request.head"),
            r if r.starts_with("ci-") => at.starts_with("${{"),
            // Plaintext keys: the region starts at the key itself.
            _ => values.iter().any(|v| at.starts_with(v.as_str())),
        };
        assert!(ok, "{rule} at {uri}:{line}:{col} points at {at:?}");
    }
}

/// zizmor's secret-related audits (`secrets-inherit`, `overprovisioned-secrets`,
/// `unredacted-secrets`) on the same fixtures: keyfence reports each of their findings too.
#[test]
fn keyfence_reports_everything_zizmors_secret_audits_report() {
    let Ok(z) = std::process::Command::new("zizmor")
        .args(["--offline", "--no-progress", "--format", "json", "."])
        .current_dir(fixture_dir())
        .output()
    else {
        skip("zizmor is not installed (.ci/run installs it with pip)");
        return;
    };
    let found: Value = serde_json::from_slice(&z.stdout).unwrap_or_else(|e| {
        panic!(
            "zizmor output is not JSON ({e}): {}",
            String::from_utf8_lossy(&z.stderr)
        )
    });
    let (fx, _) = ci_fixture();
    let ours = audit(&fx, "json").findings();
    let map = [
        ("secrets-inherit", "ci-secrets-inherit"),
        ("overprovisioned-secrets", "ci-all-secrets"),
        ("unredacted-secrets", "ci-secret-fromjson"),
    ];
    let mut compared = 0;
    for zf in found.as_array().unwrap() {
        let ident = zf["ident"].as_str().unwrap();
        let Some((_, rule)) = map.iter().find(|(z, _)| *z == ident) else {
            continue;
        };
        let primary = zf["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["symbolic"]["kind"] == "Primary")
            .unwrap();
        let path = primary["symbolic"]["key"]["Local"]["verbatim_path"]
            .as_str()
            .unwrap()
            .trim_start_matches("./")
            .to_string();
        let line = primary["concrete"]["location"]["start_point"]["row"]
            .as_u64()
            .unwrap()
            + 1;
        // zizmor points at the job's `uses:` for secrets-inherit, keyfence at the
        // `secrets: inherit` line below it; the rest point at the same expression.
        let hit = ours.iter().any(|f| {
            f["rule"] == *rule
                && f["location"]["path"] == path.as_str()
                && f["location"]["line"]
                    .as_u64()
                    .is_some_and(|l| l >= line && l <= line + 2)
        });
        assert!(
            hit,
            "zizmor {ident} at {path}:{line} has no keyfence {rule}"
        );
        compared += 1;
    }
    println!("zizmor secret-audit findings compared: {compared}");
    assert!(compared >= 3, "zizmor reported {compared}: {found}");
}

/// Snapshots of the three formats over the ci fixture (with its npm lockfile for `package`).
fn snapshot_run(format: &str) -> String {
    let (fx, values) = ci_fixture();
    let r = fx.run(
        &[
            "audit",
            "--only",
            "ci,package",
            "--format",
            format,
            "--color",
            "never",
            "-v",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    r.assert_no_secret(&values);
    r.stdout
        .replace(&fx.dir.path().display().to_string(), "[TMP]")
        .replace(env!("CARGO_PKG_VERSION"), "[VERSION]")
}

#[test]
fn snapshot_human() {
    insta::assert_snapshot!(snapshot_run("human"));
}

#[test]
fn snapshot_json() {
    insta::assert_snapshot!(snapshot_run("json"));
}

#[test]
fn snapshot_sarif() {
    let out = snapshot_run("sarif");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif-schema-2.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    insta::assert_snapshot!(out);
}
