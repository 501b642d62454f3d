#!/usr/bin/env bash
# `run --guard` costs (DESIGN.md §4: <= 200 us per exec; <= 5 % on a real build), with
# `strace -f -e trace=execve` (the usual way to watch a tree's execs) run the same way:
#   - 2,000 execs of /bin/true by the guarded command itself: each child is put in the nested
#     Landlock domain at its first stop (one single-stepped system call, with the ruleset the
#     helper shares) and gets a rewritten environment at its exec;
#   - 2,000 execs one level deeper (already contained: one seccomp stop and an environment
#     check each);
#   - `cargo build --offline` of a small crate with two dependencies, from a clean target dir.
# Usage: bench/guard-overhead.sh   (KEYFENCE=path/to/keyfence to pick the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/interleave.sh"
kf=${KEYFENCE:-$here/../target/release/keyfence}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
kf=$(realpath "$kf") # the build runs in the crate's directory
command -v strace >/dev/null || { echo "strace missing: apt-get install strace" >&2; exit 1; }

# Not in /tmp: the store is denied to the tree (the descendant fence, guard/fence.rs), and every
# directory on the way to it is only listable there, so with the store in /tmp the linker's
# temporary files could not be read back and the guarded build failed.
work=$(mktemp -d "${BENCH_HOMES:-/home}/kf-guard.XXXXXX")
trap 'rm -rf "$work"' EXIT
export XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state XDG_CONFIG_HOME=$work/config
# A random stand-in value: the benchmark measures mechanics, not a real key.
value=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
printf "%s" "$value" | "$kf" secret set BENCH_TOKEN -q
guard="$kf run --guard --no-mask --inject BENCH_TOKEN --"
loop='i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done'
deep="sh -c '$loop'"

echo "== 2,000 execs (interleaved rounds, medians of ${RUNS:-15})"
children() { sh -c "$loop"; }
children_guard() { $guard sh -c "$loop"; }
children_strace() { strace -f -qq -e trace=execve -o /dev/null sh -c "$loop"; }
grandchildren() { sh -c "$deep"; }
grandchildren_guard() { $guard sh -c "$deep"; }
grandchildren_strace() { strace -f -qq -e trace=execve -o /dev/null sh -c "$deep"; }
interleave "${RUNS:-15}" "$work/times" : children children_guard children_strace \
  grandchildren grandchildren_guard grandchildren_strace
python3 - "$here" "$work/times" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from timings import medians
m = medians(sys.argv[2])
def row(label, bare, other):
    per = (m[other] - m[bare]) / 2000 * 1e6
    print(f"{label:44s} {m[other]*1e3:8.1f} ms  (+{per:6.1f} us per exec over {m[bare]*1e3:.1f} ms bare)")
row("guard, children of the command", 0, 1)
row("strace -f -e execve, same", 0, 2)
row("guard, grandchildren (already contained)", 3, 4)
row("strace -f -e execve, same", 3, 5)
PY

echo "== cargo build --offline of a small crate (memchr + itoa), clean target dir (interleaved)"
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
clean() { rm -rf "$crate/target"; }
build() { (cd "$crate" && cargo build --offline -q); }
build_guard() { (cd "$crate" && $guard cargo build --offline -q); }
build_strace() { (cd "$crate" && strace -f -qq -e trace=execve -o /dev/null cargo build --offline -q); }
# Each variant must build: interleave hides the messages (and stops the script at a failure).
for v in build build_guard build_strace; do
  clean
  $v 2>"$work/err" && [ -x "$crate/target/debug/guardbench" ] ||
    { echo "$v failed:" >&2; cat "$work/err" >&2; exit 1; }
done
interleave "${BUILD_RUNS:-8}" "$work/btimes" clean build build_guard build_strace
python3 - "$here" "$work/btimes" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[1])
from timings import load
runs = load(sys.argv[2])
b = statistics.median(runs[0])
for i, label in enumerate(["bare", "guard", "strace -f -e execve"]):
    x = runs[i]
    m = statistics.median(x)
    print(f"{label:22s} median {m:6.2f} s ± {statistics.stdev(x):.2f}  ({(m/b-1)*100:+5.1f} %)  n={len(x)}")
PY
