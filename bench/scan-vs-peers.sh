#!/usr/bin/env bash
# Tree-scan benchmark: `keyfence scan` vs peer secret scanners on one corpus.
#
# usage: scan-vs-peers.sh [CORPUS_DIR]
#
#   CORPUS_DIR   a tree made by make-corpus.sh (must hold planted.json). When
#                omitted, a fresh corpus is built in a temp dir and removed at
#                exit (KEEP_CORPUS=1 keeps it).
#
# Environment:
#   KEYFENCE     keyfence binary (default: <repo>/target/release/keyfence);
#                skipped with a message when missing. Nothing is built here.
#   PEERS        peers to run (default: "kingfisher secretlint detect-secrets";
#                detect-secrets alone takes ~13 min on the default corpus)
#   RUNS         timed runs of keyfence and kingfisher (default 5)
#   SLOW_RUNS    timed runs of secretlint and detect-secrets (default 1);
#                the run with the median wall time is reported
#   BENCH_TOOLS  where install-peers.sh put the peers (default ~/.cache/keyfence-bench)
#   SECRETLINT_FORMAT  compact (default) or json; see README for why
#   KEEP_OUTPUT=1 keep the raw scanner outputs (they contain the planted key
#                values) in the work dir instead of deleting them
#
# Every tool runs on the same tree with a warm page cache (one untimed `cat`
# of every file first; keyfence and kingfisher also get one untimed warm-up
# run, which for kingfisher builds its compiled-rule cache). Each timed run is
# wrapped in `/usr/bin/time -v` for wall time and peak RSS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
KEYFENCE=${KEYFENCE:-$repo/target/release/keyfence}
BENCH_TOOLS=${BENCH_TOOLS:-$HOME/.cache/keyfence-bench}
PEERS=${PEERS:-kingfisher secretlint detect-secrets}
RUNS=${RUNS:-5}
SLOW_RUNS=${SLOW_RUNS:-1}
SECRETLINT_FORMAT=${SECRETLINT_FORMAT:-compact}
export BENCH_TOOLS

log() { printf '[scan-vs-peers] %s\n' "$*" >&2; }

work=$(mktemp -d /tmp/keyfence-scan-bench.XXXXXX)
corpus_tmp=
cleanup() {
    if [[ ${KEEP_OUTPUT:-0} == 1 ]]; then
        log "raw outputs kept in $work (they contain the planted key values)"
    else
        rm -rf -- "$work"
    fi
    if [[ -n $corpus_tmp ]]; then
        if [[ ${KEEP_CORPUS:-0} == 1 ]]; then
            log "corpus kept in $corpus_tmp"
        else
            rm -rf -- "$corpus_tmp"
        fi
    fi
}
trap cleanup EXIT

# --- corpus ---------------------------------------------------------------
if [[ $# -ge 1 ]]; then
    corpus=$(cd "$1" && pwd)
else
    corpus_tmp=$(mktemp -d /tmp/keyfence-corpus.XXXXXX)
    corpus=$corpus_tmp
    "$here/make-corpus.sh" --force "$corpus"
fi
[[ -f $corpus/planted.json ]] || { echo "$corpus/planted.json missing: not a make-corpus.sh tree" >&2; exit 2; }

# --- tools ----------------------------------------------------------------
tool_bin() {
    case $1 in
        kingfisher) echo "$BENCH_TOOLS/bin/kingfisher" ;;
        secretlint) echo "$BENCH_TOOLS/bin/secretlint" ;;
        detect-secrets) echo "$BENCH_TOOLS/bin/detect-secrets" ;;
        *) echo "unknown peer: $1" >&2; return 1 ;;
    esac
}
missing=0
for p in $PEERS; do [[ -x $(tool_bin "$p") ]] || missing=1; done
if ((missing)) || ! command -v hyperfine >/dev/null || [[ ! -x /usr/bin/time ]]; then
    log "installing peers into $BENCH_TOOLS"
    "$here/install-peers.sh"
fi
# Keep kingfisher's compiled-rule cache with the other bench tools.
export KF_RULE_CACHE_DIR=$BENCH_TOOLS/kingfisher-rule-cache

# The command line for each tool, as an array in $cmd; run with cwd=$corpus.
set_cmd() {
    case $1 in
        keyfence)
            cmd=("$KEYFENCE" scan "$corpus" --format json) ;;
        kingfisher)
            # --no-validate: no network validation; --git-history none: plain tree.
            cmd=("$(tool_bin kingfisher)" scan "$corpus" --no-validate --no-update-check
                 --git-history none --format json --quiet) ;;
        secretlint)
            cmd=("$(tool_bin secretlint)" '**/*' --secretlintrc "$BENCH_TOOLS/node/.secretlintrc.json"
                 --format "$SECRETLINT_FORMAT" --no-color --no-terminalLink) ;;
        detect-secrets)
            # -n: never verify findings over the network.
            cmd=("$(tool_bin detect-secrets)" scan --all-files -n .) ;;
    esac
}
# Exit codes that mean "scan completed" (with or without findings).
ok_rc() {
    case $1 in
        keyfence) [[ $2 == 0 || $2 == 1 ]] ;;
        kingfisher) [[ $2 == 0 || $2 == 200 ]] ;;
        secretlint) [[ $2 == 0 || $2 == 1 ]] ;;
        detect-secrets) [[ $2 == 0 ]] ;;
    esac
}
parser_for() {
    case $1 in
        secretlint) [[ $SECRETLINT_FORMAT == json ]] && echo secretlint-json || echo secretlint ;;
        *) echo "$1" ;;
    esac
}
version_of() {
    case $1 in
        keyfence) "$KEYFENCE" --version 2>&1 | head -1 ;;
        kingfisher) "$(tool_bin kingfisher)" --version 2>&1 | head -1 ;;
        secretlint) echo "secretlint $("$(tool_bin secretlint)" --version 2>&1 | head -1)" ;;
        detect-secrets) echo "detect-secrets $("$(tool_bin detect-secrets)" --version 2>&1 | head -1)" ;;
    esac
}

tools=()
if [[ -x $KEYFENCE ]]; then
    tools+=(keyfence)
else
    log "keyfence binary not found at $KEYFENCE: skipping it (build with cargo build --release, or set KEYFENCE)"
fi
for p in $PEERS; do tools+=("$p"); done

read -r load1 _ </proc/loadavg
psi=
if [[ -r /proc/pressure/cpu ]]; then
    psi=$(sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' /proc/pressure/cpu)
fi
if python3 -c 'import sys; sys.exit(float(sys.argv[1]) < 0.5 and float(sys.argv[2] or 0) < 5)' "$load1" "$psi"; then
    log "WARNING: load average $load1${psi:+, CPU pressure ${psi}%} before starting: other work on this machine will skew the timings"
fi
files=$(find "$corpus" -type f | wc -l)
bytes=$(du -sb --apparent-size "$corpus" | cut -f1)
log "corpus $corpus: $files files, $((bytes / 1048576)) MiB; warming the page cache"
find "$corpus" -type f -print0 | xargs -0 cat >/dev/null

# --- runs -----------------------------------------------------------------
declare -A result
for t in "${tools[@]}"; do
    set_cmd "$t"
    log "$t: $(version_of "$t")"
    if [[ $t == keyfence || $t == kingfisher ]]; then
        log "$t: untimed warm-up run"
        (cd "$corpus" && "${cmd[@]}" >/dev/null 2>&1) || true
    fi
    runs=$SLOW_RUNS
    [[ $t == keyfence || $t == kingfisher ]] && runs=$RUNS
    failed=0
    : >"$work/$t.walls"
    for ((i = 1; i <= runs; i++)); do
        log "$t: timed run $i/$runs: ${cmd[*]}"
        rc=0
        t0=$(date +%s%N)
        (cd "$corpus" && exec /usr/bin/time -v -o "$work/$t.time.$i" "${cmd[@]}" \
            >"$work/$t.out.$i" 2>"$work/$t.err.$i") || rc=$?
        t1=$(date +%s%N)
        if ! ok_rc "$t" "$rc"; then
            log "$t: FAILED with exit code $rc; stderr tail:"
            tail -n 5 "$work/$t.err.$i" >&2
            failed=1
            break
        fi
        # Nanosecond wall clock (time -v only has 10 ms resolution).
        echo "$i $(((t1 - t0) / 1000000))" >>"$work/$t.walls"
    done
    if ((failed)); then
        result[$t]='{"tool":"'"$t"'","failed":true}'
        continue
    fi
    # Report the run with the median wall time.
    read -r pick wall_ms < <(sort -k2,2n "$work/$t.walls" | sed -n "$(((runs + 1) / 2))p")
    result[$t]=$(python3 "$here/score.py" "$(parser_for "$t")" "$work/$t.out.$pick" "$corpus" \
        --cwd "$corpus" --time "$work/$t.time.$pick" --wall-ms "$wall_ms" --runs "$runs")
    # Never keep raw outputs around longer than needed unless asked.
    if [[ ${KEEP_OUTPUT:-0} != 1 ]]; then rm -f "$work/$t".out.*; fi
    log "$t: ${result[$t]}"
done

# --- report ---------------------------------------------------------------
{
    for t in "${tools[@]}"; do
        printf '%s\t%s\t%s\n' "$t" "$(version_of "$t")" "${result[$t]}"
    done
} | python3 "$here/report.py"
