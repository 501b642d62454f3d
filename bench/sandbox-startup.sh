#!/usr/bin/env bash
# What the sandbox adds to a command's start-up (DESIGN.md §4, isolation): `run -- true` with
# nothing to supervise, beside `--sandbox` (Landlock rules computed from the profile and
# applied before the exec), `--net none` (a new network namespace), and both, and beside
# `bwrap` doing a comparable read-only bind of / when it is installed. Also the built-in
# install profile in a project with two .env files (its deny_read hides them: a mount
# namespace and two mounts besides the sandbox), and `--deny-read` alone (the mounts and a
# Landlock seal of their own).
# Usage: bench/sandbox-startup.sh   (KEYFENCE=path/to/keyfence to pick the binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kf=${KEYFENCE:-$here/../target/release/keyfence}
[ -x "$kf" ] || { echo "no keyfence binary at $kf: cargo build --release" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state XDG_CONFIG_HOME=$work/config
mkdir -p "$work/project"
cd "$work/project"
: > .env.example
printf 'KEY=not-a-secret\n' > .env
printf 'KEY=not-a-secret\n' > .env.local
cmds=(true "$kf run -- true" "$kf run --sandbox -- true" "$kf run --net none -- true"
      "$kf run --sandbox --net none -- true"
      "$kf run --profile install -- true"
      "$kf run --deny-read .env.example -- true")
names=("true" "run (exec in place)" "run --sandbox" "run --net none" "run --sandbox --net none"
       "run, install profile, .env hidden" "run --deny-read FILE")
if command -v bwrap >/dev/null; then
  cmds+=("bwrap --ro-bind / / --dev /dev --unshare-net true")
  names+=("bwrap --ro-bind / / --unshare-net")
fi
hyperfine -N --warmup 20 -r 300 --export-json "$work/sandbox.json" "${cmds[@]}" >/dev/null
python3 - "$work/sandbox.json" "${names[@]}" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
base = rows[0]["median"]
print(f"{'command':36} {'median ms':>10} {'added ms':>9}")
for name, r in zip(names, rows):
    print(f"{name:36} {r['median']*1000:10.2f} {(r['median']-base)*1000:9.2f}")
PY

# The install profile's `**/.env` walk in a repository of some size: 20,000 source files in
# 400 directories, beside a node_modules of 50,000 that the walk skips, and an .env per app.
mono=$work/mono
python3 - "$mono" <<'PY'
import os, sys
root = sys.argv[1]
os.makedirs(os.path.join(root, ".git"))
for d in range(400):
    base = os.path.join(root, "apps" if d % 2 else "packages", f"p{d}", "src")
    os.makedirs(base)
    for f in range(50):
        open(os.path.join(base, f"f{f}.ts"), "w").close()
    if d % 40 == 0:
        open(os.path.join(base, "..", ".env"), "w").write("KEY=not-a-secret\n")
for d in range(500):
    base = os.path.join(root, "node_modules", f"dep{d}")
    os.makedirs(base)
    for f in range(100):
        open(os.path.join(base, f"f{f}.js"), "w").close()
PY
cd "$mono"
hyperfine -N --warmup 10 -r 100 --export-json "$work/mono.json" \
  "$kf run --sandbox -- true" "$kf run --profile install -- true" >/dev/null
python3 - "$work/mono.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1]))["results"]
print(f"in a 20,000-file repository (10 .env files): run --sandbox {a['median']*1000:.2f} ms, "
      f"run --profile install {b['median']*1000:.2f} ms (+{(b['median']-a['median'])*1000:.2f} ms "
      f"for the walk and the mounts)")
PY
