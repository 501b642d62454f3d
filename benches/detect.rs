//! Micro-benchmarks of the detection engine: detector start-up (part of every cold audit and
//! of `keyfence run`), classifying one environment as `run` does at start-up (a new detector,
//! keywords searched by hand) and once the automata are built, and scanning text with and
//! without keyword hits.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyfence::detect::{Detector, Mode, rules};
use std::hint::black_box;

fn environment() -> Vec<(String, Vec<u8>)> {
    let mut env: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| {
            (
                format!("SOME_SETTING_{i}"),
                format!("/usr/lib/value/{i}").into_bytes(),
            )
        })
        .collect();
    env.push(("PATH".into(), b"/usr/local/bin:/usr/bin:/bin".to_vec()));
    env.push(("TOKENIZERS_PARALLELISM".into(), b"false".to_vec()));
    // Random-looking stand-ins, built from a counter: benches need shapes, not secrets.
    let body: String = (0..93)
        .map(|i| (b'A' + (i * 7 % 26) as u8) as char)
        .collect();
    env.push((
        "ANTHROPIC_API_KEY".into(),
        format!("sk-ant-api03-{body}AA").into_bytes(),
    ));
    env.push(("MY_TOKEN".into(), b"q8Zr4TnW1xKp7Lm2Vb9Yc3Hd".to_vec()));
    env
}

fn code(n: usize) -> Vec<u8> {
    let chunk = "function f(a,b){return a.key===b.key?a.token:b.value}const url='https://example.org/x';\n\
                 // a comment about passwords and keys\nmodule.exports={apiKey:process.env.API_KEY};\n";
    chunk.repeat(n / chunk.len() + 1).into_bytes()
}

fn bench(c: &mut Criterion) {
    c.bench_function("detector start-up (rules and keyword tables)", |b| {
        b.iter(|| black_box(Detector::new(rules::builtin())))
    });
    let env = environment();
    c.bench_function(
        "run's start-up: new detector, classify a 64-variable environment",
        |b| {
            // The rules (and the regexes they compile on first use) are made once per process,
            // as in `run`; what each iteration pays is the keyword tables and the search.
            b.iter(|| {
                let d = Detector::new(rules::builtin());
                env.iter()
                    .filter(|(k, v)| d.classify_var(k, v).is_some())
                    .count()
            })
        },
    );
    let d = Detector::new(rules::builtin());
    // Past the hand-search budget: the automata are built and used from here on.
    let _ = d.scan(&code(1 << 17), Mode::Text);
    c.bench_function("classify a 64-variable environment (automata built)", |b| {
        b.iter(|| {
            env.iter()
                .filter(|(k, v)| d.classify_var(k, v).is_some())
                .count()
        })
    });
    let mut g = c.benchmark_group("scan");
    let text = code(1 << 20);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("1 MiB of code dense with name keywords", |b| {
        b.iter(|| d.scan(black_box(&text), Mode::Text).len())
    });
    let prose = "The quick brown fox jumps over the lazy dog. "
        .repeat((1 << 20) / 45)
        .into_bytes();
    g.throughput(Throughput::Bytes(prose.len() as u64));
    g.bench_function("1 MiB of prose without keywords", |b| {
        b.iter(|| d.scan(black_box(&prose), Mode::Text).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
