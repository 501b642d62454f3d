#!/usr/bin/env bash
# What the descendant fence of issue #15 costs guard, an old build (before #15) against the new
# one in one run (DESIGN.md §4: guard <= 200 us per exec, <= 5 % on a build):
#   - start-up of `run --guard --inject BENCH_TOKEN -- true` and of `run --profile agent -- true`
#     with ANTHROPIC_API_KEY in the store (new: the phantom proxy; both: guard), as root and as
#     nobody (the mount namespace that hides the session's sockets takes the user-namespace path
#     only for an ordinary user), in a realistic home with a session (D-Bus bus, ssh agent and
#     tmux sockets): the new supervisor computes the cover of / minus every credential path and
#     builds a Landlock ruleset of it before the command starts; the number of rules is counted
#     (strace of the supervisor's landlock_add_rule calls), and guard is timed again in a home
#     of 300 entries; `--profile agent --inject ANTHROPIC_API_KEY` (no phantom) shows what the
#     phantom adds;
#   - per exec: 2,000 execs of /bin/true by the command and by a grandchild (guard-overhead.sh's
#     loops), old against new: each child of the command restricts itself with the shared
#     ruleset (one injected call, as before #15, but the ruleset now has the cover's rules;
#     bench/landlock-rules.py times that call alone against the number of rules);
#   - `cargo build --offline` of guard-overhead.sh's small crate from a clean target dir, plain,
#     under the old and the new `--guard`, and under the new `--profile agent`.
# Everything is timed in interleaved rounds (bench/interleave.sh); start-up runs each command
# STARTUP_N times per round. Generated homes and the crate go to a mktemp dir in /home
# (BENCH_HOMES), deleted at exit.
# Usage: OLD=path/to/old/keyfence NEW=path/to/new/keyfence bench/fence-cost.sh
#   (NEW defaults to the static build from `cargo static`, else `cargo build --release`'s; OLD has
#   no default: build 26b7f22, the commit before #15, e.g. in a `git worktree`.)
#   RUNS (start-up rounds, 15), STARTUP_N (10), EXEC_RUNS (6), BUILD_RUNS (4);
#   ONLY="startup execs build" (any of them) to run fewer parts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/interleave.sh"
static_build=$here/../target/x86_64-unknown-linux-musl/release/keyfence
if [ -x "$static_build" ]; then new=${NEW:-$static_build}; else new=${NEW:-$here/../target/release/keyfence}; fi
old=${OLD:?set OLD to the keyfence binary built before #15 (26b7f22)}
for b in "$old" "$new"; do [ -x "$b" ] || { echo "no keyfence binary at $b" >&2; exit 1; }; done
# Absolute: the runs as nobody start in nobody's home.
old=$(realpath "$old") new=$(realpath "$new")
for t in strace cargo python3 setpriv; do
  command -v $t >/dev/null || { echo "$t missing" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root: the script switches to nobody for one half" >&2; exit 1; }

# The toolchain stays where it is when HOME moves to the generated homes.
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
# The store goes where a user's is, inside the home: the fence denies it there.
unset XDG_DATA_HOME XDG_STATE_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS \
  SSH_AUTH_SOCK TMUX TMUX_TMPDIR GNUPGHOME GPG_AGENT_INFO HISTFILE
# Not in /tmp: every directory on the way to a denied path is only listable for the tree, so
# with a home in /tmp the descendants could not read what they create there (mktemp, the
# linker's temporary files: the build below fails). A real home is not in /tmp.
work=$(mktemp -d "${BENCH_HOMES:-/home}/kf-fence.XXXXXX")
chmod 755 "$work"
mkdir -m 1777 "$work/out" # for what runs as nobody writes
trap 'rm -rf "$work"' EXIT

# A home as a developer's looks: make_home.py's shell files, history and credential files, the
# other credential files the fence denies, and a few dozen ordinary dotfiles and directories
# (the cover has one rule per sibling on the way to each denied path). Placeholder contents: the
# benchmark measures paths, not keys.
make_home() {
  local h=$1 f
  python3 "$here/make_home.py" "$h" 2>/dev/null
  rm -f "$h/planted-home.json"
  for f in .ssh/id_ed25519 .ssh/id_ed25519.pub .ssh/known_hosts .ssh/config .gnupg/pubring.kbx \
    .kube/config .docker/config.json .config/gh/hosts.yml .config/gh/config.yml .git-credentials \
    .netrc .pypirc .claude/.credentials.json .claude.json .codex/auth.json .gemini/oauth_creds.json \
    .gemini/settings.json .cargo/credentials.toml .cargo/config.toml .vault-token .gitconfig \
    .config/git/config .config/nvim/init.lua .config/htop/htoprc .config/fish/config.fish \
    .config/Code/User/settings.json .local/share/recently-used.xbel .profile .bash_logout \
    .viminfo .vimrc .tmux.conf .lesshst .wget-hsts .python_history .node_repl_history \
    .psql_history .sqlite_history .selected_editor .sudo_as_admin_successful .zsh_history \
    .npm/_cacache/index-v5/00 .cache/pip/http/0 .cache/node-gyp/22/include .yarnrc.yml \
    .rustup/settings.toml .cargo/bin/cargo-watch .vscode/extensions/extensions.json \
    .mozilla/firefox/profiles.ini .terraform.d/checkpoint_signature go/bin/gopls \
    snap/README projects/api/README.md projects/web/package.json projects/infra/main.tf \
    Documents/notes.md Downloads/x.tar.gz Desktop/.keep Pictures/.keep Music/.keep \
    Videos/.keep Public/.keep Templates/.keep .local/bin/pipx .local/state/less/history; do
    mkdir -p "$h/$(dirname "$f")"
    echo "placeholder" > "$h/$f"
  done
}

# A session's sockets, which guard hides from the tree (src/isolate/sandbox.rs agent_sockets):
# the D-Bus session bus and an ssh agent in XDG_RUNTIME_DIR, and a tmux server's socket
# (TMUX_TMPDIR keeps it away from other users of /tmp/tmux-UID). Bound once, then left: the
# socket files are what guard looks for.
make_session() {
  local rt=$1 tmux=$2 uid=$3
  mkdir -p "$rt" "$tmux/tmux-$uid"
  python3 - "$rt/bus" "$rt/ssh-agent.socket" "$tmux/tmux-$uid/default" <<'PY'
import socket, sys
for p in sys.argv[1:]:
    socket.socket(socket.AF_UNIX).bind(p)
PY
  chmod 700 "$rt" "$tmux/tmux-$uid"
}

# A home with 250 more entries, to see what the size of the cover costs.
make_big_home() {
  local h=$1 i
  make_home "$h"
  for i in $(seq 1 125); do
    echo "placeholder" > "$h/.dotfile$i"
    mkdir -p "$h/dir$i"
  done
}

for who in root nobody; do
  uid=$([ $who = root ] && echo 0 || echo 65534)
  make_home "$work/home-$who"
  make_big_home "$work/big-$who"
  make_session "$work/run-$who" "$work/tmux-$who" $uid
  [ $who = root ] || chown -R 65534:65534 "$work/home-$who" "$work/big-$who" "$work/run-$who" "$work/tmux-$who"
done

# as WHO [--bare] CMD...: CMD as WHO, in WHO's home and session (--bare: no session sockets).
as() {
  local who=$1 session=1
  shift
  if [ "$1" = --bare ]; then session=0; shift; fi
  local e=(env HOME="$work/home-$who")
  if [ $session = 1 ]; then
    e+=(XDG_RUNTIME_DIR="$work/run-$who" DBUS_SESSION_BUS_ADDRESS="unix:path=$work/run-$who/bus"
      SSH_AUTH_SOCK="$work/run-$who/ssh-agent.socket" TMUX_TMPDIR="$work/tmux-$who")
  fi
  if [ "$who" = root ]; then
    "${e[@]}" "$@"
  else
    (cd "$work/home-$who" && setpriv --reuid=65534 --regid=65534 --clear-groups "${e[@]}" "$@")
  fi
}

# Random stand-in values: the benchmark measures mechanics, not keys.
rand() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
for who in root nobody; do
  rand 32 | as $who "$new" secret set BENCH_TOKEN -q
  rand 32 | as $who env HOME="$work/big-$who" "$new" secret set BENCH_TOKEN -q
  printf 'sk-ant-api03-%s' "$(rand 40)" | as $who "$new" secret set ANTHROPIC_API_KEY -q
  as $who "$old" run --guard --no-mask --inject BENCH_TOKEN -- true ||
    { echo "the old build cannot use the store or guard as $who" >&2; exit 1; }
done

want() { [[ " ${ONLY:-startup execs build} " == *" $1 "* ]]; }
guard=(run --guard --no-mask --inject BENCH_TOKEN --)
agent=(run --profile agent --)

# The old build's helper shares a ruleset of one rule (`/`: make-block and refer); the new
# supervisor builds the cover before it starts the helper, so strace without -f sees it all.
echo "== rules in the new descendants' ruleset (the supervisor's landlock_add_rule calls; old: 1)"
for who in root nobody; do
  for h in home big; do
    as $who env HOME="$work/$h-$who" strace -qq -e trace=landlock_create_ruleset,landlock_add_rule \
      -o "$work/out/rules-$h-$who" "$new" "${guard[@]}" true
    printf '%-7s %s (%s entries): rulesets %s, rules %s\n' $who $h \
      "$(find "$work/$h-$who" -mindepth 1 -maxdepth 1 | wc -l)" \
      "$(grep '^landlock_create_ruleset' "$work/out/rules-$h-$who" | grep -vc VERSION || true)" \
      "$(grep -c '^landlock_add_rule' "$work/out/rules-$h-$who" || true)"
  done
done

# Every variant once, with its messages: interleave discards output, and a refused run would
# time as fast as a failure.
for who in root nobody; do
  for b in "$old" "$new"; do
    for args in "${guard[*]}" "${agent[*]}" "run --profile agent --inject ANTHROPIC_API_KEY --"; do
      # shellcheck disable=SC2086 # the words of $args are the options
      as $who "$b" $args true 2>"$work/err" ||
        { echo "failed as $who: $b $args true:" >&2; cat "$work/err" >&2; exit 1; }
    done
  done
done

if want startup; then
n=${STARTUP_N:-10}
rep() { local i; for ((i = 0; i < n; i++)); do "$@"; done; }
for who in root nobody; do
  echo "== start-up as $who (interleaved, ${RUNS:-15} rounds of $n runs each; medians of the rounds)"
  s_true() { rep as $who true; }
  s_old_guard() { rep as $who "$old" "${guard[@]}" true; }
  s_new_guard() { rep as $who "$new" "${guard[@]}" true; }
  s_old_agent() { rep as $who "$old" "${agent[@]}" true; }
  s_new_agent() { rep as $who "$new" "${agent[@]}" true; }
  s_new_agent_inject() { rep as $who "$new" run --profile agent --inject ANTHROPIC_API_KEY -- true; }
  s_new_guard_bare() { rep as $who --bare "$new" "${guard[@]}" true; }
  s_true_bare() { rep as $who --bare true; }
  s_old_guard_big() { rep as $who env HOME="$work/big-$who" "$old" "${guard[@]}" true; }
  s_new_guard_big() { rep as $who env HOME="$work/big-$who" "$new" "${guard[@]}" true; }
  interleave "${RUNS:-15}" "$work/start-$who" : s_true s_old_guard s_new_guard s_old_agent \
    s_new_agent s_true_bare s_new_guard_bare s_new_agent_inject s_old_guard_big s_new_guard_big
  python3 - "$here" "$work/start-$who" "$n" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from timings import medians
m = medians(sys.argv[2])
n = int(sys.argv[3])
ms = {i: v / n * 1e3 for i, v in m.items()}
def row(label, i, base=0):
    print(f"{label:46s} {ms[i]-ms[base]:7.2f} ms over true")
row("old run --guard --inject -- true", 1)
row("new run --guard --inject -- true", 2)
row("old run --profile agent -- true", 3)
row("new run --profile agent -- true", 4)
row("new run --guard, no session sockets to hide", 6, 5)
row("new run --profile agent --inject (no phantom)", 7)
row("old run --guard, home of 300 entries", 8)
row("new run --guard, home of 300 entries", 9)
print(f"new - old: guard {ms[2]-ms[1]:+.2f} ms, agent profile {ms[4]-ms[3]:+.2f} ms; "
      f"hiding the sockets {ms[2]-ms[6]-(ms[0]-ms[5]):+.2f} ms, the phantom proxy {ms[4]-ms[7]:+.2f} ms; "
      f"guard in the big home {ms[9]-ms[8]:+.2f} ms")
PY
done
fi

if want execs; then
echo "== 2,000 execs as root (interleaved, medians of ${EXEC_RUNS:-6} rounds)"
loop='i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done'
deep="sh -c '$loop'"
children() { as root sh -c "$loop"; }
children_old() { as root "$old" "${guard[@]}" sh -c "$loop"; }
children_new() { as root "$new" "${guard[@]}" sh -c "$loop"; }
children_agent() { as root "$new" "${agent[@]}" sh -c "$loop"; }
children_big() { as root env HOME="$work/big-root" "$new" "${guard[@]}" sh -c "$loop"; }
grandchildren() { as root sh -c "$deep"; }
grandchildren_old() { as root "$old" "${guard[@]}" sh -c "$deep"; }
grandchildren_new() { as root "$new" "${guard[@]}" sh -c "$deep"; }
interleave "${EXEC_RUNS:-6}" "$work/execs" : children children_old children_new children_agent \
  grandchildren grandchildren_old grandchildren_new children_big
python3 - "$here" "$work/execs" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from timings import medians
m = medians(sys.argv[2])
def row(label, bare, other):
    per = (m[other] - m[bare]) / 2000 * 1e6
    print(f"{label:44s} {m[other]*1e3:8.1f} ms  (+{per:6.1f} us per exec over {m[bare]*1e3:.1f} ms bare)")
row("old guard, children of the command", 0, 1)
row("new guard, children of the command", 0, 2)
row("new --profile agent, children", 0, 3)
row("old guard, grandchildren (already contained)", 4, 5)
row("new guard, grandchildren", 4, 6)
row("new guard, children, home of 300 entries", 0, 7)
print(f"new - old per exec: children {(m[2]-m[1])/2000*1e6:+.1f} us, "
      f"grandchildren {(m[6]-m[5])/2000*1e6:+.1f} us")
PY
fi

if want build; then
echo "== cargo build --offline of a small crate (memchr + itoa), clean target dir, as root (interleaved)"
crate=$work/crate
mkdir -p "$crate/src"
cat > "$crate/Cargo.toml" <<'TOML'
[package]
name = "guardbench"
version = "0.1.0"
edition = "2021"
[dependencies]
memchr = "2"
itoa = "1"
TOML
echo 'fn main() { let mut b = itoa::Buffer::new(); println!("{:?}", memchr::memchr(b0, b.format(42).as_bytes())); }' \
  | sed 's/b0/b'"'"'4'"'"'/' > "$crate/src/main.rs"
(cd "$crate" && cargo generate-lockfile --offline -q && cargo build --offline -q) # warm the registry
clean() { rm -rf "$crate/target"; }
build() { (cd "$crate" && as root cargo build --offline -q); }
build_old() { (cd "$crate" && as root "$old" "${guard[@]}" cargo build --offline -q); }
build_new() { (cd "$crate" && as root "$new" "${guard[@]}" cargo build --offline -q); }
build_agent() { (cd "$crate" && as root "$new" "${agent[@]}" cargo build --offline -q); }
# Each variant must build: interleave hides the messages, and a refused build would time as
# fast as a failure.
for v in build build_old build_new build_agent; do
  clean
  $v 2>"$work/err" && [ -x "$crate/target/debug/guardbench" ] ||
    { echo "$v failed:" >&2; cat "$work/err" >&2; exit 1; }
done
interleave "${BUILD_RUNS:-4}" "$work/btimes" clean build build_old build_new build_agent
python3 - "$here" "$work/btimes" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[1])
from timings import load
runs = load(sys.argv[2])
b = statistics.median(runs[0])
labels = ["plain", "old run --guard", "new run --guard", "new run --profile agent"]
for i, label in enumerate(labels):
    x = runs[i]
    m = statistics.median(x)
    sd = statistics.stdev(x) if len(x) > 1 else 0.0
    print(f"{label:26s} median {m:6.2f} s ± {sd:.2f}  ({(m/b-1)*100:+5.1f} %)  n={len(x)}")
PY
fi
