#!/usr/bin/env bash
# `run --guard` costs (DESIGN.md §4: <= 200 us per exec; <= 5 % on a real build), with
# `strace -f -e trace=execve` (the usual way to watch a tree's execs) run the same way:
#   - 2,000 execs of /bin/true by the guarded command itself: each child is put in the nested
#     Landlock domain (one injected system call, with the ruleset the helper shares) and gets a
#     rewritten environment;
#   - 2,000 execs one level deeper (already contained: one seccomp stop and an environment
#     check each);
#   - `cargo build --offline` of a small crate with two dependencies, from a clean target dir.
# Usage: bench/guard-overhead.sh   (KEYFENCE=path/to/keyfence to pick the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kf=${KEYFENCE:-$here/../target/release/keyfence}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 1; }
command -v strace >/dev/null || { echo "strace missing: apt-get install strace" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state XDG_CONFIG_HOME=$work/config
# A random stand-in value: the benchmark measures mechanics, not a real key.
value=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
printf "%s" "$value" | "$kf" secret set BENCH_TOKEN -q
guard="$kf run --guard --no-mask --inject BENCH_TOKEN --"
loop='i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done'
deep="sh -c '$loop'"

echo "== 2,000 execs (hyperfine)"
hyperfine -N --warmup 2 -r 15 --export-json "$work/execs.json" \
  "sh -c \"$loop\"" \
  "$guard sh -c \"$loop\"" \
  "strace -f -qq -e trace=execve -o /dev/null sh -c \"$loop\"" \
  "sh -c \"$deep\"" \
  "$guard sh -c \"$deep\"" \
  "strace -f -qq -e trace=execve -o /dev/null sh -c \"$deep\"" >/dev/null
python3 - "$work/execs.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
def row(label, bare, other):
    per = (other["median"] - bare["median"]) / 2000 * 1e6
    print(f"{label:44s} {other['median']*1e3:8.1f} ms  (+{per:6.1f} us per exec over {bare['median']*1e3:.1f} ms bare)")
row("guard, children of the command", r[0], r[1])
row("strace -f -e execve, same", r[0], r[2])
row("guard, grandchildren (already contained)", r[3], r[4])
row("strace -f -e execve, same", r[3], r[5])
PY

echo "== cargo build --offline of a small crate (memchr + itoa), clean target dir"
crate=$work/crate
mkdir -p "$crate/src"
cat > "$crate/Cargo.toml" <<'TOML'
[package]
name = "guardbench"
version = "0.1.0"
edition = "2021"
[dependencies]
memchr = "2"
itoa = "1"
TOML
echo 'fn main() { let mut b = itoa::Buffer::new(); println!("{:?}", memchr::memchr(b0, b.format(42).as_bytes())); }' \
  | sed 's/b0/b'"'"'4'"'"'/' > "$crate/src/main.rs"
(cd "$crate" && cargo generate-lockfile --offline -q && cargo build --offline -q) # warm the registry
hyperfine --warmup 1 -r 5 --prepare "rm -rf $crate/target" --export-json "$work/build.json" \
  "cd $crate && cargo build --offline -q" \
  "cd $crate && $guard cargo build --offline -q" \
  "cd $crate && strace -f -qq -e trace=execve -o /dev/null cargo build --offline -q" >/dev/null
python3 - "$work/build.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
b = r[0]["mean"]
for label, x in [("bare", r[0]), ("guard", r[1]), ("strace -f -e execve", r[2])]:
    print(f"{label:22s} {x['mean']:7.2f} s ± {x['stddev']:.2f}  ({(x['mean']/b-1)*100:+5.1f} %)")
PY
