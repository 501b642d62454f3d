//! Canary costs (issue: trace and canaries): making one canary of each kind, and the registry
//! work an audit adds: loading a registry of 1,000 canaries and matching findings against it.
//! All of it should be negligible next to a scan (`detect` bench: the detector alone takes
//! longer to build).

use criterion::{Criterion, criterion_group, criterion_main};
use keyfence::canary::{self, Entry, KINDS};
use std::hint::black_box;

fn registry(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            fingerprint: format!("{:012x}", i * 7919),
            kind: KINDS[i % KINDS.len()].0.to_string(),
            created: 1_700_000_000 + i as u64,
            label: String::new(),
            planted_in: vec![format!("/home/u/project{i}/.env").into()],
            env_only: false,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for (kind, _) in KINDS {
        c.bench_function(&format!("canary new {kind}"), |b| {
            b.iter(|| black_box(canary::generate(black_box(kind))))
        });
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("canaries.json");
    canary::save(&path, &registry(1000)).expect("save");
    c.bench_function("registry load (1,000 canaries)", |b| {
        b.iter(|| black_box(canary::load(&path).expect("load")))
    });
    let all = registry(1000);
    // An audit's worth of findings: 50 fingerprints, a few of them canaries.
    let found: Vec<String> = (0..50).map(|i| format!("{:012x}", i * 104_729)).collect();
    c.bench_function("match 50 findings against 1,000 canaries", |b| {
        b.iter(|| {
            found
                .iter()
                .filter(|fp| all.iter().any(|c| &c.fingerprint == *fp))
                .count()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
