#!/usr/bin/env bash
# What the hardening of issue #14 costs, old build against new in one run (DESIGN.md §4):
#   - `run -- true` (exec in place; budget <= 1 ms over `true`): the project file's search, the
#     command line read as the Claude Code hook reads it;
#   - `run --sandbox -- true`: the derived deny list, the mount namespace that keeps `.git` and
#     PATH directories read-only, the hidden agent sockets;
#   - `keyfence run -- npm install` of 20 local tarballs with a postinstall each, in a git
#     repository (the built-in install profile, chosen by command line), beside npm alone,
#     interleaved (bench/interleave.sh).
# Usage: OLD=path/to/old/keyfence NEW=path/to/new/keyfence bench/hardening-cost.sh
#   (NEW defaults to the static build from `cargo static`, else `cargo build --release`'s; OLD has
#   no default: build the commit before the change, e.g. in a `git worktree`.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/interleave.sh"
static_build=$here/../target/x86_64-unknown-linux-musl/release/keyfence
if [ -x "$static_build" ]; then new=${NEW:-$static_build}; else new=${NEW:-$here/../target/release/keyfence}; fi
old=${OLD:?set OLD to the keyfence binary built before the change}
for b in "$old" "$new"; do [ -x "$b" ] || { echo "no keyfence binary at $b" >&2; exit 1; }; done
for t in hyperfine npm git; do
  command -v $t >/dev/null || { echo "$t missing" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME=$work/home npm_config_cache=$work/home/.npm
export XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state XDG_CONFIG_HOME=$work/config
mkdir -p "$HOME" "$work/app" "$work/pkgs"
cd "$work/app"
git init -q .

echo "== start-up (hyperfine, medians of 300, in a git repository, HOME=$HOME)"
hyperfine -N --warmup 20 -r 300 --export-json "$work/start.json" true \
  "$old run -- true" "$new run -- true" \
  "$old run --sandbox -- true" "$new run --sandbox -- true" >/dev/null
python3 - "$work/start.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
base = rows[0]["median"]
names = ["true", "old run -- true", "new run -- true", "old run --sandbox -- true",
         "new run --sandbox -- true"]
for name, r in zip(names, rows):
    print(f"{name:28} {r['median']*1000:7.2f} ms  ({(r['median']-base)*1000:+.2f} over true)")
print(f"new - old, exec in place: {(rows[2]['median']-rows[1]['median'])*1000:+.2f} ms; "
      f"sandbox: {(rows[4]['median']-rows[3]['median'])*1000:+.2f} ms")
PY

echo "== npm install of 20 local tarballs with a postinstall each (interleaved, ${RUNS:-10} rounds)"
deps=()
for i in $(seq -w 1 20); do
  d=$work/src/pkg$i
  mkdir -p "$d"
  printf '{"name":"bench-pkg%s","version":"1.0.0","scripts":{"postinstall":"node install.js"}}\n' "$i" > "$d/package.json"
  echo "require('fs').writeFileSync('built.txt', 'ok')" > "$d/install.js"
  (cd "$d" && npm pack --silent --pack-destination "$work/pkgs" >/dev/null)
  deps+=("$work/pkgs/bench-pkg$i-1.0.0.tgz")
done
allow=$(printf '"bench-pkg%s": true,' $(seq -w 1 20))
reset() {
  rm -rf "$work/app/node_modules" "$work/app/package-lock.json"
  printf '{"name":"app","version":"1.0.0","allowScripts":{%s}}\n' "${allow%,}" > "$work/app/package.json"
}
reset
install=(npm install --offline --no-audit --no-fund --foreground-scripts --silent "${deps[@]}")
"${install[@]}" >/dev/null 2>&1 || true # warm the cache
bare() { "${install[@]}"; }
old_run() { "$old" run -- "${install[@]}"; }
new_run() { "$new" run -- "${install[@]}"; }
interleave "${RUNS:-10}" "$work/times" reset bare old_run new_run
ls "$work/app/node_modules" | grep -c bench-pkg >/dev/null || { echo "the install did not happen" >&2; exit 1; }
python3 - "$here" "$work/times" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[1])
from timings import load
runs = load(sys.argv[2])
bm = statistics.median(runs[0])
for i, label in enumerate(["npm alone", "old keyfence run -- npm install", "new keyfence run -- npm install"]):
    med = statistics.median(runs[i])
    print(f"{label:34s} median {med:6.3f} s ({(med/bm-1)*100:+5.1f} % over npm)  n={len(runs[i])}")
print(f"new - old: {(statistics.median(runs[2])-statistics.median(runs[1]))*1000:+.0f} ms")
PY
