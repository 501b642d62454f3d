#!/usr/bin/env bash
# `run --trace` cost on an npm install (DESIGN.md §4: <= 15 %), with strace watching the same
# system calls (`strace -f --seccomp-bpf -e trace=execve,execveat,open,openat,connect,sendto,sendmsg,chdir,fchdir`)
# and plain `strace -f` side by side. The project installs 20 local tarballs, each with a
# postinstall script, from disk (`npm install --offline`), into a fresh node_modules each run.
# Usage: bench/trace-overhead.sh   (KEYFENCE=path/to/keyfence to pick the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/interleave.sh"
kf=${KEYFENCE:-$here/../target/release/keyfence}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
for t in strace npm; do
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
reset() {
  rm -rf "$work/app/node_modules" "$work/app/package-lock.json"
  echo '{"name":"app","version":"1.0.0"}' > "$work/app/package.json"
}
bare() { $install; }
traced() { "$kf" run --profile default --no-mask --trace="$work/trace.jsonl" -- $install; }
strace_same() { strace -f -qq --seccomp-bpf -e trace=$filter -o /dev/null $install; }
strace_all() { strace -f -qq -o /dev/null $install; }
interleave "${RUNS:-10}" "$work/times" reset bare traced strace_same strace_all
python3 - "$here" "$work/times" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[1])
from timings import load
runs = load(sys.argv[2])
# Medians as well as means: on a small VM one slow run (a preempted vCPU) moves a mean by
# several percent.
b, bm = statistics.mean(runs[0]), statistics.median(runs[0])
labels = ["bare", "keyfence --trace", "strace --seccomp-bpf (same calls)", "strace -f (every call)"]
for i, label in enumerate(labels):
    x = runs[i]
    mean, med, sd = statistics.mean(x), statistics.median(x), statistics.stdev(x)
    print(f"{label:36s} mean {mean:6.2f} s ± {sd:.2f} ({(mean/b-1)*100:+6.1f} %)"
          f"   median {med:6.2f} s ({(med/bm-1)*100:+6.1f} %)   n={len(x)}")
PY
echo "events in the last trace: $(wc -l < "$work/trace.jsonl")"

# What one open costs under the trace: 20,000 opens of one file by python3, bare and traced
# (interleaved, medians of 15). Every open is heard by keyfence's listener thread.
cat > "$work/opens.py" <<'PY'
import os
for i in range(20000):
    os.close(os.open("/etc/hostname", os.O_RDONLY))
PY
opens_bare() { python3 "$work/opens.py"; }
opens_traced() { "$kf" run --profile default --no-mask --trace="$work/o.jsonl" -- python3 "$work/opens.py"; }
interleave 15 "$work/otimes" : opens_bare opens_traced
python3 - "$here" "$work/otimes" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from timings import medians
m = medians(sys.argv[2])
print(f"20,000 opens: bare {m[0]*1e3:.0f} ms, traced {m[1]*1e3:.0f} ms: "
      f"{(m[1] - m[0]) / 20000 * 1e6:.1f} µs per open")
PY
