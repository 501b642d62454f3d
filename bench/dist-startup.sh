#!/usr/bin/env bash
# What each install path costs (issue #19): the artifacts' sizes, and the start-up of
# `keyfence --version` through each entry point users get, side by side:
#   - the release binary itself (tarball, `cargo install`);
#   - the wheel's command, installed by pip into a venv (the binary itself: no Python);
#   - the npm launcher (`node_modules/.bin/keyfence`, a Node start-up, then the binary);
#   - `npx keyfence` (npm's own start-up, then the launcher, then the binary);
#   - `uvx --from WHEEL keyfence` (uv finds or builds its cached venv, then the binary).
# Usage: bench/dist-startup.sh [DIST]   (DIST: what scripts/package wrote, by default
# target/dist; nothing here builds keyfence). Everything is installed offline into a temp dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dist=$(realpath "${1:-$here/../target/dist}")
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/../Cargo.toml" | head -n1)
[ -f "$dist/SHA256SUMS" ] || { echo "no artifacts in $dist: scripts/package" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
triple=x86_64-unknown-linux-musl
wheel=$dist/keyfence-$version-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.musllinux_1_1_x86_64.whl
tar -xzf "$dist/keyfence-$version-$triple.tar.gz" -C "$work"
native=$work/keyfence-$version-$triple/keyfence
python3 -m venv "$work/venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv/bin/pip" install -q --no-index --no-deps "$wheel"
mkdir -p "$work/npm"
cat >"$work/npm/package.json" <<JSON
{ "name": "bench", "version": "1.0.0", "private": true,
  "dependencies": { "keyfence": "file:$dist/keyfence-$version.tgz" },
  "overrides": { "@keyfence/linux-x64": "file:$dist/keyfence-linux-x64-$version.tgz",
                 "@keyfence/linux-arm64": "file:$dist/keyfence-linux-arm64-$version.tgz" } }
JSON
(cd "$work/npm" && npm_config_cache=$work/npm-cache npm install --offline --ignore-scripts \
  --no-audit --no-fund -q >/dev/null)
export UV_CACHE_DIR=$work/uv-cache npm_config_cache=$work/npm-cache npm_config_update_notifier=false
# uv's own uvx, not a version manager's shim in front of it (pyenv's is a shell script).
uvx=$(python3 -c 'import os, sysconfig; print(os.path.join(sysconfig.get_path("scripts"), "uvx"))')
[ -x "$uvx" ] || uvx=$(command -v uvx)
"$uvx" --offline --from "$wheel" keyfence --version >/dev/null # fills uv's cache: timed warm

echo "## sizes"
size() {
  stat -c %s "$1" | awk -v what="$2" '{
    if ($1 >= 1048576) printf "%-50s %7.2f MiB\n", what, $1 / 1048576
    else printf "%-50s %7.1f KiB\n", what, $1 / 1024 }'
}
size "$native" "stripped static binary (x86_64)"
size "$dist/keyfence-$version-aarch64-unknown-linux-musl.tar.gz" "tarball (aarch64)"
size "$dist/keyfence-$version-$triple.tar.gz" "tarball (x86_64)"
size "$wheel" "wheel (x86_64)"
size "$dist/keyfence-linux-x64-$version.tgz" "npm platform package (@keyfence/linux-x64)"
size "$dist/keyfence-$version.tgz" "npm main package (keyfence: the launcher)"
[ -f "$dist/keyfence-$version.crate" ] && size "$dist/keyfence-$version.crate" "crate"
tar -xzf "$dist/keyfence-$version-aarch64-unknown-linux-musl.tar.gz" -C "$work"
size "$work/keyfence-$version-aarch64-unknown-linux-musl/keyfence" "stripped static binary (aarch64)"

echo
echo "## start-up: keyfence --version"
cd "$work/npm"
hyperfine -N --warmup 5 --runs "${RUNS:-50}" \
  -n native "$native --version" \
  -n "wheel (venv/bin/keyfence)" "$work/venv/bin/keyfence --version" \
  -n "npm launcher (.bin/keyfence)" "$work/npm/node_modules/.bin/keyfence --version" \
  -n "npx keyfence" "npx --offline keyfence --version" \
  -n "uvx keyfence" "$uvx --offline --from $wheel keyfence --version"
