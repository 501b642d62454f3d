#!/usr/bin/env bash
# `run --trace` cost on an npm install (DESIGN.md §4: <= 15 %), with strace watching the same
# system calls (`strace -f --seccomp-bpf -e trace=execve,execveat,open,openat,connect,sendto,sendmsg,chdir,fchdir`)
# and plain `strace -f` side by side. The project installs 20 local tarballs, each with a
# postinstall script, from disk (`npm install --offline`), into a fresh node_modules each run.
# Usage: bench/trace-overhead.sh   (KEYFENCE=path/to/keyfence to pick the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kf=${KEYFENCE:-$here/../target/release/keyfence}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
for t in hyperfine strace npm; do
  command -v $t >/dev/null || { echo "$t missing" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export npm_config_cache=$work/cache XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state
mkdir -p "$work/pkgs" "$work/app"
deps=()
for i in $(seq -w 1 20); do
  d=$work/src/pkg$i
  mkdir -p "$d"
  printf '{"name":"bench-pkg%s","version":"1.0.0","scripts":{"postinstall":"node install.js"}}\n' "$i" > "$d/package.json"
  echo "require('fs').writeFileSync('built.txt', require('os').homedir())" > "$d/install.js"
  (cd "$d" && npm pack --silent --pack-destination "$work/pkgs" >/dev/null)
  deps+=("$work/pkgs/bench-pkg$i-1.0.0.tgz")
done
echo '{"name":"app","version":"1.0.0"}' > "$work/app/package.json"
install="npm install --offline --no-audit --no-fund --foreground-scripts --silent ${deps[*]}"
cd "$work/app"
$install >/dev/null 2>&1 # warm the cache
filter=execve,execveat,open,openat,connect,sendto,sendmsg,chdir,fchdir
hyperfine --warmup 1 -r ${RUNS:-10} --prepare "rm -rf $work/app/node_modules $work/app/package-lock.json; git checkout -q -- . 2>/dev/null || true; echo '{\"name\":\"app\",\"version\":\"1.0.0\"}' > $work/app/package.json" \
  --export-json "$work/r.json" \
  "$install" \
  "$kf run --profile default --no-mask --trace=$work/trace.jsonl -- $install" \
  "strace -f -qq --seccomp-bpf -e trace=$filter -o /dev/null $install" \
  "strace -f -qq -o /dev/null $install" >/dev/null
python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
# Medians as well as means: on a small VM one slow run (a preempted vCPU) moves a mean by
# several percent.
b, bm = r[0]["mean"], r[0]["median"]
for label, x in zip(["bare", "keyfence --trace", "strace --seccomp-bpf (same calls)", "strace -f (every call)"], r):
    print(f"{label:36s} mean {x['mean']:6.2f} s ± {x['stddev']:.2f} ({(x['mean']/b-1)*100:+6.1f} %)"
          f"   median {x['median']:6.2f} s ({(x['median']/bm-1)*100:+6.1f} %)")
PY
echo "events in the last trace: $(wc -l < "$work/trace.jsonl")"
