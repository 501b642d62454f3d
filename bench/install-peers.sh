#!/usr/bin/env bash
# Install the peer secret scanners used by scan-vs-peers.sh into a cache dir
# outside the repository. Idempotent: re-running only installs what is missing.
#
#   BENCH_TOOLS   install root (default: $HOME/.cache/keyfence-bench)
#
# Layout:
#   $BENCH_TOOLS/venv/                 PyPI: kingfisher-bin, detect-secrets
#   $BENCH_TOOLS/node/                 npm: secretlint + recommended preset,
#                                      and .secretlintrc.json enabling the preset
#   $BENCH_TOOLS/bin/{kingfisher,detect-secrets,secretlint}   entry points
set -euo pipefail

BENCH_TOOLS=${BENCH_TOOLS:-$HOME/.cache/keyfence-bench}

# Pinned peer versions (override via environment to try newer ones).
KINGFISHER_VERSION=${KINGFISHER_VERSION:-2.14.0}
DETECT_SECRETS_VERSION=${DETECT_SECRETS_VERSION:-1.5.0}
SECRETLINT_VERSION=${SECRETLINT_VERSION:-13.0.6}

log() { printf '[install-peers] %s\n' "$*" >&2; }

mkdir -p "$BENCH_TOOLS"

# --- system tools ---------------------------------------------------------
need_apt=()
command -v hyperfine >/dev/null 2>&1 || need_apt+=(hyperfine)
[[ -x /usr/bin/time ]] || need_apt+=(time)
if ((${#need_apt[@]})); then
    log "apt-get install ${need_apt[*]}"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

# --- PyPI: kingfisher-bin, detect-secrets ---------------------------------
VENV=$BENCH_TOOLS/venv
if [[ ! -x $VENV/bin/python ]]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
fi
py_version() { "$VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
want_py=()
[[ $(py_version kingfisher-bin) == "$KINGFISHER_VERSION" ]] || want_py+=("kingfisher-bin==$KINGFISHER_VERSION")
[[ $(py_version detect-secrets) == "$DETECT_SECRETS_VERSION" ]] || want_py+=("detect-secrets==$DETECT_SECRETS_VERSION")
if ((${#want_py[@]})); then
    log "pip install ${want_py[*]}"
    "$VENV/bin/python" -m pip install -q "${want_py[@]}"
fi

# --- npm: secretlint + recommended preset ---------------------------------
NODE_DIR=$BENCH_TOOLS/node
mkdir -p "$NODE_DIR"
if [[ ! -f $NODE_DIR/package.json ]]; then
    printf '{"name":"keyfence-bench-tools","private":true}\n' >"$NODE_DIR/package.json"
fi
have_sl=$(node -p "try{require('$NODE_DIR/node_modules/secretlint/package.json').version}catch(e){''}" 2>/dev/null || true)
if [[ $have_sl != "$SECRETLINT_VERSION" ]]; then
    log "npm install secretlint@$SECRETLINT_VERSION"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact --loglevel=error \
        "secretlint@$SECRETLINT_VERSION" \
        "@secretlint/secretlint-rule-preset-recommend@$SECRETLINT_VERSION" >/dev/null
fi
# Config enabling the recommended preset (scan-vs-peers.sh passes it explicitly).
cat >"$NODE_DIR/.secretlintrc.json" <<'JSON'
{
  "rules": [
    { "id": "@secretlint/secretlint-rule-preset-recommend" }
  ]
}
JSON

# --- stable entry points ---------------------------------------------------
# kingfisher-bin's console script is a Python wrapper around a native binary;
# link the binary itself so timings don't include a Python interpreter start.
mkdir -p "$BENCH_TOOLS/bin"
kf_native=$("$VENV/bin/python" -c 'import kingfisher, os; print(os.path.join(os.path.dirname(kingfisher.__file__), "bin", "kingfisher"))')
[[ -x $kf_native ]] || { log "kingfisher native binary not found at $kf_native"; exit 1; }
ln -sfn "$kf_native" "$BENCH_TOOLS/bin/kingfisher"
ln -sfn "$VENV/bin/detect-secrets" "$BENCH_TOOLS/bin/detect-secrets"
ln -sfn "$NODE_DIR/node_modules/.bin/secretlint" "$BENCH_TOOLS/bin/secretlint"

# --- report ----------------------------------------------------------------
log "installed into $BENCH_TOOLS:"
for t in kingfisher detect-secrets secretlint; do
    printf '  %-15s%s\n' "$t" "$("$BENCH_TOOLS/bin/$t" --version 2>&1 | head -1)"
done
printf '  hyperfine      %s\n' "$(hyperfine --version)"
