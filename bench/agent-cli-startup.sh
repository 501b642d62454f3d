#!/usr/bin/env bash
# What `keyfence run --profile agent` adds to the start-up of Codex CLI and Gemini CLI (issue
# #18), beside each CLI's own start-up: `codex --version` and `gemini --version` run the whole
# launcher chain (Codex's Node launcher starts the native binary as a child; Gemini CLI's first
# Node process starts a second one), plain with the key exported, and under
# `keyfence run --profile agent --inject KEY --`, where guard follows the launcher to the agent.
# `keyfence run --profile agent --inject KEY -- true` is keyfence's own part. Run as nobody
# (the fence and the hidden session services take the ordinary user's path), in a home in
# /home with the keys in keyfence's store (fresh random placeholders), interleaved
# (bench/interleave.sh), STARTUP_N runs of each command per round.
# Usage: bench/agent-cli-startup.sh   (KF: the keyfence binary, default the static build, else
#   target/release/keyfence; TOOLS: where scripts/test-all installs the CLIs; RUNS (10),
#   STARTUP_N (3))
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/interleave.sh"
static_build=$here/../target/x86_64-unknown-linux-musl/release/keyfence
if [ -x "$static_build" ]; then kf=${KF:-$static_build}; else kf=${KF:-$here/../target/release/keyfence}; fi
kf=$(realpath "$kf")
tools=$(realpath "${TOOLS:-$here/../target/test-tools}")
codex=$tools/node_modules/.bin/codex gemini=$tools/node_modules/.bin/gemini
for b in "$kf" "$codex" "$gemini"; do [ -x "$b" ] || { echo "missing: $b (scripts/test-all installs the CLIs)" >&2; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "run as root: the runs switch to nobody" >&2; exit 1; }
runs=${RUNS:-10} n=${STARTUP_N:-3}

unset XDG_DATA_HOME XDG_STATE_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS \
  SSH_AUTH_SOCK TMUX
work=$(mktemp -d "${BENCH_HOMES:-/home}/kf-agent-cli.XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
home=$work/home
mkdir -p "$home/.gemini"
echo '{"security":{"auth":{"selectedType":"gemini-api-key"},"folderTrust":{"enabled":false}}}' \
  > "$home/.gemini/settings.json"
chown -R 65534:65534 "$work"
as_nobody() {
  setpriv --reuid=65534 --regid=65534 --clear-groups env -i HOME="$home" PATH=/usr/bin:/bin \
    NO_COLOR=1 "$@"
}
# Placeholders of the keys' shapes, never printed: the benchmark measures start-up, not keys.
openai="sk-proj-$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)"
google="AIza$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 35)"
printf %s "$openai" | as_nobody "$kf" secret set OPENAI_API_KEY >/dev/null 2>&1
printf %s "$google" | as_nobody "$kf" secret set GEMINI_API_KEY >/dev/null 2>&1

times() { local i; for i in $(seq "$n"); do "$@"; done; }
codex_plain() { times as_nobody OPENAI_API_KEY="$openai" "$codex" --version; }
codex_kf() { times as_nobody "$kf" run --profile agent --inject OPENAI_API_KEY -- "$codex" --version; }
gemini_plain() { times as_nobody GEMINI_API_KEY="$google" "$gemini" --version; }
gemini_kf() { times as_nobody "$kf" run --profile agent --inject GEMINI_API_KEY -- "$gemini" --version; }
kf_true() { times as_nobody "$kf" run --profile agent --inject OPENAI_API_KEY -- true; }

# Each works before it is timed (a failing variant would time its error).
codex_kf | grep -q codex-cli || { echo "codex under keyfence failed" >&2; exit 1; }
gemini_kf | grep -qx '[0-9.]*' || { echo "gemini under keyfence failed" >&2; exit 1; }

out=$work/timings
interleave "$runs" "$out" : codex_plain codex_kf gemini_plain gemini_kf kf_true
python3 - "$out" "$n" "$here" <<'EOF'
import statistics, sys
sys.path.insert(0, sys.argv[3])
from timings import load
runs, n = load(sys.argv[1]), int(sys.argv[2])
names = ["codex --version", "keyfence run --profile agent -- codex --version",
         "gemini --version", "keyfence run --profile agent -- gemini --version",
         "keyfence run --profile agent -- true"]
med = {i: statistics.median(x) / n * 1000 for i, x in runs.items()}
for i, name in enumerate(names):
    lo, hi = min(runs[i]) / n * 1000, max(runs[i]) / n * 1000
    print(f"{name:52} {med[i]:8.1f} ms  (min {lo:.1f}, max {hi:.1f})")
for plain, kf, what in [(0, 1, "codex"), (2, 3, "gemini")]:
    print(f"added to {what}: {med[kf] - med[plain]:+.1f} ms ({(med[kf] / med[plain] - 1) * 100:+.0f} %)")
EOF
