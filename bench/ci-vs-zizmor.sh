#!/usr/bin/env bash
# `keyfence audit --only ci,package` against zizmor on the CI fixtures, and on a
# generated large workflow.
#
# usage: ci-vs-zizmor.sh [STEPS]
#
#   STEPS  steps in the generated workflow (default 1000), each expanding a
#          secret in its script, so every step is a finding for both tools
#
# Environment: KEYFENCE (default <repo>/target/release/keyfence), RUNS (default 20).
# zizmor comes from PyPI (`pip install zizmor`; .ci/run installs it). Timings are
# medians of fresh processes; outputs go to /dev/null.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
kf="${KEYFENCE:-$repo/target/release/keyfence}"
runs="${RUNS:-20}"
steps="${1:-1000}"
command -v zizmor >/dev/null || { echo "zizmor not installed: pip install zizmor" >&2; exit 1; }
[ -x "$kf" ] || { echo "no $kf: cargo build --release first" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/big/.github/workflows"
python3 - "$work/big/.github/workflows/big.yml" "$steps" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n")
    for i in range(n):
        f.write(f"      - name: step {i}\n        run: ./x ${{{{ secrets.S{i} }}}}\n")
PY

median() { # command... → median wall ms over $runs runs
  python3 - "$runs" "$@" <<'PY'
import subprocess, sys, time, statistics
runs, cmd = int(sys.argv[1]), sys.argv[2:]
xs = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    xs.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(xs):.1f}")
PY
}

fixture="$repo/tests/fixtures/ci/project"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "zizmor $(zizmor --version | awk '{print $2}'), keyfence $("$kf" --version | awk '{print $2}')"
printf '%-40s %10s %10s\n' "input" "keyfence" "zizmor"
cd "$fixture"
printf '%-40s %8s ms %7s ms\n' "tests/fixtures/ci (10 files)" \
  "$(median "$kf" audit --only ci,package --format json .)" \
  "$(median zizmor --offline --no-progress --format json .)"
cd "$work/big"
bytes=$(stat -c %s .github/workflows/big.yml)
runs=3
printf '%-40s %8s ms %7s ms\n' "big.yml ($steps steps, $((bytes / 1024)) KiB)" \
  "$(median "$kf" audit --only ci --format json .)" \
  "$(median zizmor --offline --no-progress --format json .)"
# How many findings each reported there (zizmor gives up on very large files).
k=$( ("$kf" audit --only ci --format json . || true) | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["findings"]))')
z=$( (zizmor --offline --no-progress --format json . 2>"$work/z.err" || true) \
  | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)))
except ValueError: print("none")')
echo "big.yml findings: keyfence $k, zizmor $z"
grep -m2 -E "fatal|error:" "$work/z.err" || true
