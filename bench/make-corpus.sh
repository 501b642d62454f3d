#!/usr/bin/env bash
# Build the tree-scan benchmark corpus in DIR:
#   1. `npm ci` of the pinned dependency set in bench/corpus/ (package.json +
#      lockfile, optional/platform-specific packages omitted, no install scripts)
#   2. every node_modules directory renamed to `nm` (so scanners that skip
#      node_modules scan it too) and the .bin symlink farms removed
#   3. 20 random, format-valid fake keys planted by plant_keys.py, which writes
#      DIR/planted.json (file, line, kind, 12-hex sha256 fingerprint)
#
# usage: make-corpus.sh [--force] DIR
#   CORPUS_SEED   seed for which files/lines receive keys (default 20240601)
#
# The dependency set gives ~147 MB (apparent size; ~184 MB on disk) in
# ~13,200 files. The planted key values differ on every run; their positions
# do not.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
if [[ ${1:-} == --force ]]; then force=1; shift; fi
if [[ $# -ne 1 ]]; then
    echo "usage: $0 [--force] DIR" >&2
    exit 2
fi
dir=$1
seed=${CORPUS_SEED:-20240601}

log() { printf '[make-corpus] %s\n' "$*" >&2; }

case $(realpath -m "$dir") in
    "$(realpath "$here/..")"|"$(realpath "$here/..")"/*)
        echo "refusing to build the corpus inside the repository ($dir); use /tmp or similar" >&2
        exit 2 ;;
esac
if [[ -e $dir && -n $(ls -A "$dir" 2>/dev/null) ]]; then
    if ((force)); then
        rm -rf -- "$dir"
    else
        echo "$dir exists and is not empty (pass --force to replace it)" >&2
        exit 2
    fi
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

log "npm ci of the pinned set into $dir"
cp "$here/corpus/package.json" "$here/corpus/package-lock.json" "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --omit=optional \
    --loglevel=error --no-update-notifier >&2)

# Rename node_modules -> nm, deepest first so parent paths stay valid.
find "$dir" -depth -type d -name node_modules -print0 |
    while IFS= read -r -d '' d; do mv -- "$d" "$(dirname "$d")/nm"; done
find "$dir" -depth -type d -name .bin -path '*/nm/.bin' -exec rm -rf {} +

log "planting keys (seed $seed)"
python3 "$here/plant_keys.py" "$dir" --under nm --seed "$seed"

bytes=$(du -sb --apparent-size "$dir" | cut -f1)
files=$(find "$dir" -type f | wc -l)
log "corpus ready: $dir  $((bytes / 1048576)) MiB (apparent), $files files, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["planted"]))' "$dir/planted.json") planted keys"
