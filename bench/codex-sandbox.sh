#!/usr/bin/env bash
# What guard adds to one command of Codex CLI's own sandbox (issue #18): `codex sandbox --
# true` runs the whole chain Codex runs each sandboxed command through (the native binary as
# `codex-linux-sandbox`, bubblewrap's preflight and sandbox, the helper again inside, then the
# command), plain, and under `keyfence run --profile agent --inject OPENAI_API_KEY --`, where
# guard lets the chain through one link at a time, checks bubblewrap's binds, and fences the
# command at its exec (src/guard/agent_sandbox.rs). `keyfence run --profile agent -- true` is
# keyfence's own part. Run as nobody in a home in /home with the key in keyfence's store (a
# fresh random placeholder), interleaved (bench/interleave.sh), STARTUP_N runs each per round.
# Usage: bench/codex-sandbox.sh   (KF: the keyfence binary, default target/release/keyfence;
#   TOOLS: where scripts/test-all installs Codex; RUNS (10), STARTUP_N (3))
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/interleave.sh"
kf=$(realpath "${KF:-$here/../target/release/keyfence}")
tools=$(realpath "${TOOLS:-$here/../target/test-tools}")
codex=$tools/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex
for b in "$kf" "$codex"; do [ -x "$b" ] || { echo "missing: $b (scripts/test-all installs Codex)" >&2; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "run as root: the runs switch to nobody" >&2; exit 1; }
runs=${RUNS:-10} n=${STARTUP_N:-3}

unset XDG_DATA_HOME XDG_STATE_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS \
  SSH_AUTH_SOCK TMUX
work=$(mktemp -d "${BENCH_HOMES:-/home}/kf-codex-sandbox.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
home=$work/home project=$work/project
mkdir -p "$home/.codex" "$project"
echo '{"OPENAI_API_KEY": null}' > "$home/.codex/auth.json"
chown -R 65534:65534 "$work"
as_nobody() {
  (cd "$project" && setpriv --reuid=65534 --regid=65534 --clear-groups env -i HOME="$home" \
    PATH=/usr/bin:/bin NO_COLOR=1 "$@")
}
# A placeholder of the key's shape, never printed: the benchmark measures the chain, not keys.
openai="sk-proj-$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)"
printf %s "$openai" | as_nobody "$kf" secret set OPENAI_API_KEY >/dev/null 2>&1

times() { local i; for i in $(seq "$n"); do "$@"; done; }
plain() { times as_nobody OPENAI_API_KEY="$openai" "$codex" sandbox -- true 2>/dev/null; }
fenced() { times as_nobody "$kf" run --profile agent --inject OPENAI_API_KEY -- "$codex" sandbox -- true 2>/dev/null; }
kf_true() { times as_nobody "$kf" run --profile agent --inject OPENAI_API_KEY -- true; }

# Each works before it is timed (a failing variant would time its error): the sandbox's
# command runs, and under keyfence it cannot write outside the sandbox's workspace.
as_nobody "$codex" sandbox -- sh -c 'echo ran' 2>/dev/null | grep -qx ran \
  || { echo "codex sandbox fails here (user namespaces?)" >&2; exit 1; }
as_nobody "$kf" run --profile agent --inject OPENAI_API_KEY -- "$codex" sandbox -- \
  sh -c 'echo ran; cat "$HOME/.codex/auth.json" 2>/dev/null || echo fenced' 2>/dev/null \
  | tr '\n' ' ' | grep -qx 'ran fenced ' \
  || { echo "codex sandbox under keyfence failed" >&2; exit 1; }

out=$work/timings
interleave "$runs" "$out" : plain fenced kf_true
python3 - "$out" "$n" "$here" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[3])
from timings import load
runs, n = load(sys.argv[1]), int(sys.argv[2])
names = ["codex sandbox -- true", "keyfence run --profile agent -- codex sandbox -- true",
         "keyfence run --profile agent -- true"]
med = {i: statistics.median(x) / n * 1000 for i, x in runs.items()}
for i, name in enumerate(names):
    lo, hi = min(runs[i]) / n * 1000, max(runs[i]) / n * 1000
    print(f"{name:56} {med[i]:8.1f} ms  (min {lo:.1f}, max {hi:.1f})")
print(f"added to one sandboxed command: {med[1] - med[0]:+.1f} ms (ratio {med[1] / med[0]:.2f})")
PY
