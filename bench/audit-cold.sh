#!/usr/bin/env bash
# Cold-start benchmark of `keyfence audit` (no tree walk) on a generated home.
#
# usage: audit-cold.sh [FIXTURE_HOME]
#
#   FIXTURE_HOME  a home made by make_home.py; when omitted one is generated in
#                 a temp dir and removed at exit (KEEP_HOME=1 keeps it).
#
# Environment:
#   KEYFENCE     keyfence binary (default: <repo>/target/release/keyfence);
#                when missing only the baselines are timed
#   MIN_RUNS     hyperfine --min-runs (default 50)
#   BUDGET_MS    budget for the mean (default 20)
#
# Each command is one fresh process per run (hyperfine --shell=none, so no
# shell start-up is included), with --warmup 3, under a fixed minimal
# environment (env -i PATH=... HOME=FIXTURE_HOME) so the machine's own
# variables neither leak into nor change the measurement. Baselines:
# `env -i ... true` (the cost of starting any process through env) and, when
# the binary exists, `keyfence --version` (keyfence's own start-up).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
KEYFENCE=${KEYFENCE:-$repo/target/release/keyfence}
MIN_RUNS=${MIN_RUNS:-50}
BUDGET_MS=${BUDGET_MS:-20}

log() { printf '[audit-cold] %s\n' "$*" >&2; }

if ! command -v hyperfine >/dev/null; then
    log "hyperfine missing: installing it via apt"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq hyperfine
fi

work=$(mktemp -d /tmp/keyfence-audit-bench.XXXXXX)
home_tmp=
cleanup() {
    rm -rf -- "$work"
    if [[ -n $home_tmp ]]; then
        if [[ ${KEEP_HOME:-0} == 1 ]]; then log "fixture home kept in $home_tmp"; else rm -rf -- "$home_tmp"; fi
    fi
}
trap cleanup EXIT

if [[ $# -ge 1 ]]; then
    home=$(cd "$1" && pwd)
else
    home_tmp=$(mktemp -d /tmp/keyfence-home.XXXXXX)
    home=$home_tmp
    python3 "$here/make_home.py" "$home"
fi

q() { printf '%q' "$1"; }
envp="env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=$(q "$home") LANG=C.UTF-8"
audit_cmd="$envp $(q "$KEYFENCE") audit --home $(q "$home") --skip file,dotenv"

cmds=(-n 'baseline: env -i true' "$envp true")
if [[ -x $KEYFENCE ]]; then
    # Pre-flight: audit must complete (0 = clean, 1 = findings) and say something.
    rc=0
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" LANG=C.UTF-8 \
        "$KEYFENCE" audit --home "$home" --skip file,dotenv >"$work/preflight.out" 2>"$work/preflight.err" || rc=$?
    if [[ $rc -ne 0 && $rc -ne 1 ]]; then
        log "keyfence audit failed (exit $rc):"
        tail -n 5 "$work/preflight.err" >&2
        exit 1
    fi
    log "keyfence audit pre-flight: exit $rc"
    # Coverage check (not timed): which of the fixture's planted keys the JSON
    # output names by fingerprint.
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" LANG=C.UTF-8 \
        "$KEYFENCE" audit --home "$home" --skip file,dotenv --format json >"$work/preflight.json" 2>/dev/null || true
    if [[ -f $home/planted-home.json ]]; then
        python3 - "$work/preflight.json" "$home/planted-home.json" <<'PY' >&2 || true
import json, sys
out = json.load(open(sys.argv[1]))
planted = json.load(open(sys.argv[2]))["planted"]
fps = {(f.get("secret") or {}).get("fingerprint") for f in out.get("findings", [])}
missed = [f"{p['kind']}@{p['file']}:{p['line']}" for p in planted if p["fingerprint"] not in fps]
print(f"[audit-cold] pre-flight: {len(out.get('findings', []))} findings, "
      f"{len(planted) - len(missed)}/{len(planted)} planted home keys found by fingerprint")
if missed:
    print("[audit-cold] missed: " + ", ".join(missed))
PY
    fi
    cmds+=(-n 'baseline: keyfence --version' "$envp $(q "$KEYFENCE") --version")
    cmds+=(-n 'keyfence audit --skip file,dotenv' "$audit_cmd")
else
    log "keyfence binary not found at $KEYFENCE: timing the baselines only"
fi

cd "$work"  # an empty project dir: nothing for the skipped tree sources to see
# -i: `keyfence audit` exits 1 when it has findings, which the fixture ensures.
hyperfine --shell=none --warmup 3 --min-runs "$MIN_RUNS" -i --style basic \
    --export-json "$work/hyperfine.json" "${cmds[@]}" >&2

python3 - "$work/hyperfine.json" "$BUDGET_MS" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
budget = float(sys.argv[2])
print()
print(f"{'command':<36}{'mean ms':>9}{'± ms':>8}{'median':>9}{'min':>8}{'max':>8}{'runs':>6}")
for r in res:
    ms = lambda v: v * 1000  # noqa: E731
    print(f"{r['command'][:35]:<36}{ms(r['mean']):>9.2f}{ms(r['stddev'] or 0):>8.2f}"
          f"{ms(r['median']):>9.2f}{ms(r['min']):>8.2f}{ms(r['max']):>8.2f}{len(r['times']):>6}")
audit = [r for r in res if r["command"].startswith("keyfence audit")]
if audit:
    mean = audit[0]["mean"] * 1000
    verdict = "PASS" if mean <= budget else "FAIL"
    print(f"\nkeyfence audit mean: {mean:.2f} ms (budget {budget:g} ms): {verdict}")
else:
    print(f"\nkeyfence audit: not run (no binary); budget {budget:g} ms")
PY
