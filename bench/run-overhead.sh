#!/usr/bin/env bash
# keyfence run's costs (DESIGN.md §4), side by side with dotenvx doing the same injection:
#   - `run -- true` when nothing needs supervising (exec in place): budget <= 1 ms over `true`
#   - supervised start-up (masking on): budget <= 5 ms over `true`
#   - masking throughput: `run -- cat` of a 1 GiB file vs `cat`: budget >= 1 GiB/s
#   - `secret get` (Claude Code's apiKeyHelper): budget <= 5 ms
# Usage: bench/run-overhead.sh   (KEYFENCE=path/to/keyfence to pick the binary; by default the
# static release build from `cargo static` when there is one, else `cargo build --release`'s.
# When both exist, exec in place is timed for both.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
static_build=$here/../target/x86_64-unknown-linux-musl/release/keyfence
glibc_build=$here/../target/release/keyfence
if [ -x "$static_build" ]; then kf=${KEYFENCE:-$static_build}; else kf=${KEYFENCE:-$glibc_build}; fi
tools=${BENCH_TOOLS:-$HOME/.cache/keyfence-bench}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 1; }
if [ ! -x "$tools/dotenvx/node_modules/.bin/dotenvx" ]; then
  mkdir -p "$tools/dotenvx"
  npm install --no-audit --no-fund --prefix "$tools/dotenvx" @dotenvx/dotenvx >/dev/null
fi
dotenvx=$tools/dotenvx/node_modules/.bin/dotenvx

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Two floors for exec in place: `env true` (a C program that execs another), and the smallest
# Rust program that does the same (std's start-up and the loader's work for libgcc_s), built
# here without dependencies (before HOME changes: cargo and rustup live in the real one).
mkdir -p "$work/floor/src"
printf '[package]\nname = "floor"\nversion = "0.1.0"\nedition = "2021"\n[workspace]\n' > "$work/floor/Cargo.toml"
cat > "$work/floor/src/main.rs" <<'RS'
use std::os::unix::process::CommandExt;
fn main() {
    let a: Vec<_> = std::env::args_os().skip(1).collect();
    eprintln!("{}", std::process::Command::new(&a[0]).args(&a[1..]).exec());
}
RS
(cd "$work/floor" && cargo build --release --offline -q)
floor=$work/floor/target/release/floor
static_floor=
if [ -x "$static_build" ]; then
  (cd "$work/floor" && cargo build --release --offline -q --target x86_64-unknown-linux-musl)
  static_floor=$work/floor/target/x86_64-unknown-linux-musl/release/floor
fi
export HOME=$work/home
mkdir -p "$HOME"
# A random stand-in value: the benchmark measures mechanics, not a real key.
value=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
printf "%s" "$value" | "$kf" secret set BENCH_TOKEN -q
printf 'BENCH_TOKEN=%s\n' "$value" > "$work/.env"


echo "== start-up (hyperfine, median of many runs; binary: $kf)"
names=() cmds=()
row() { names+=("$1"); cmds+=("$2"); }
row "true" 'true'
row "floor: env true (C, execs true)" 'env true'
row "floor: smallest Rust program that execs true" "$floor true"
[ -z "$static_floor" ] || row "floor: the same, static musl" "$static_floor true"
row "run, nothing to supervise (exec in place)" "$kf run -- true"
for other in "$static_build" "$glibc_build"; do
  if [ -x "$other" ] && [ "$(realpath "$other")" != "$(realpath "$kf")" ]; then
    case $other in
      "$static_build") row "  the same, static musl build (cargo static)" "$other run -- true" ;;
      *) row "  the same, glibc build (cargo build --release)" "$other run -- true" ;;
    esac
  fi
done
row "run, one variable scrubbed (supervised, masking)" "env SERVICE_TOKEN=$value $kf run -- true"
row "run --inject from the store (supervised, masking)" "$kf run --inject BENCH_TOKEN -- true"
row "dotenvx run -f .env (same injection)" "$dotenvx run -q -f $work/.env -- true"
row "secret get" "$kf secret get BENCH_TOKEN"
hyperfine -N --warmup 10 -r 300 --export-json "$work/startup.json" "${cmds[@]}" >/dev/null
printf '%s\n' "${names[@]}" > "$work/names"
python3 - "$work/startup.json" "$work/names" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
names = open(sys.argv[2]).read().splitlines()
base = rows[0]["median"]
print(f"{'command':52} {'median ms':>10} {'added ms':>9}")
for name, r in zip(names, rows):
    print(f"{name:52} {r['median']*1000:10.2f} {(r['median']-base)*1000:9.2f}")
PY

echo "== masking throughput: 1 GiB through run -- cat"
# base64 text, so the masker sees printable output with many near-misses of the value.
head -c 790000000 /dev/urandom | base64 -w 100 > "$work/1g"   # about 1 GiB
hyperfine -N --warmup 1 -r 5 --output=null --export-json "$work/mask.json" \
  "cat $work/1g" "$kf run --inject BENCH_TOKEN -- cat $work/1g" >/dev/null
python3 - "$work/mask.json" "$(stat -c %s "$work/1g")" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
size = int(sys.argv[2])
for name, r in zip(["cat", "keyfence run -- cat (masking)"], rows):
    print(f"{name:32} {r['median']*1000:8.1f} ms  {size/r['median']/(1<<30):.2f} GiB/s")
PY
