#!/usr/bin/env python3
"""Generate a realistic fake $HOME for the `keyfence audit` benchmark.

usage: make_home.py DIR [--seed N]

Writes .bashrc (~200 lines), .zshrc, .bash_history (2000 lines),
.aws/credentials, .npmrc, .claude/settings.json and .codex/config.toml.
A handful of places hold format-valid random fake keys (generated with the
`secrets` module by plant_keys.py's generators); the rest is ordinary shell
configuration and history. DIR/planted-home.json lists where the keys are
(file, line, kind, sha256[:12] fingerprint), never the values.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plant_keys as pk  # noqa: E402

planted: list[dict] = []


def key(kind: str):
    return pk.generate(kind)


def note(path: str, line: int, kind: str, value: str) -> None:
    planted.append({"file": path, "line": line, "kind": kind, "fingerprint": pk.fp(value)})


def write(root: str, rel: str, lines: list[str], mode: int = 0o644) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, mode)


BASHRC_HEAD = """\
# ~/.bashrc: executed by bash(1) for non-login shells.

# If not running interactively, don't do anything
case $- in
    *i*) ;;
      *) return;;
esac

# don't put duplicate lines or lines starting with space in the history.
HISTCONTROL=ignoreboth

# append to the history file, don't overwrite it
shopt -s histappend

# for setting history length see HISTSIZE and HISTFILESIZE in bash(1)
HISTSIZE=10000
HISTFILESIZE=20000

# check the window size after each command and, if necessary,
# update the values of LINES and COLUMNS.
shopt -s checkwinsize
shopt -s globstar

# make less more friendly for non-text input files, see lesspipe(1)
[ -x /usr/bin/lesspipe ] && eval "$(SHELL=/bin/sh lesspipe)"

# set variable identifying the chroot you work in (used in the prompt below)
if [ -z "${debian_chroot:-}" ] && [ -r /etc/debian_chroot ]; then
    debian_chroot=$(cat /etc/debian_chroot)
fi

case "$TERM" in
    xterm-color|*-256color) color_prompt=yes;;
esac

if [ "$color_prompt" = yes ]; then
    PS1='${debian_chroot:+($debian_chroot)}\\[\\033[01;32m\\]\\u@\\h\\[\\033[00m\\]:\\[\\033[01;34m\\]\\w\\[\\033[00m\\]\\$ '
else
    PS1='${debian_chroot:+($debian_chroot)}\\u@\\h:\\w\\$ '
fi
unset color_prompt force_color_prompt

# enable color support of ls and also add handy aliases
if [ -x /usr/bin/dircolors ]; then
    test -r ~/.dircolors && eval "$(dircolors -b ~/.dircolors)" || eval "$(dircolors -b)"
    alias ls='ls --color=auto'
    alias grep='grep --color=auto'
    alias fgrep='fgrep --color=auto'
    alias egrep='egrep --color=auto'
fi

# some more ls aliases
alias ll='ls -alF'
alias la='ls -A'
alias l='ls -CF'

# Add an "alert" alias for long running commands.  Use like so:
#   sleep 10; alert
alias alert='notify-send --urgency=low -i "$([ $? = 0 ] && echo terminal || echo error)" "$(history|tail -n1|sed -e '\\''s/^\\s*[0-9]\\+\\s*//;s/[;&|]\\s*alert$//'\\'')"'

if [ -f ~/.bash_aliases ]; then
    . ~/.bash_aliases
fi

# enable programmable completion features
if ! shopt -oq posix; then
  if [ -f /usr/share/bash-completion/bash_completion ]; then
    . /usr/share/bash-completion/bash_completion
  elif [ -f /etc/bash_completion ]; then
    . /etc/bash_completion
  fi
fi
"""

BASHRC_TAIL = """\
# --- toolchains ---------------------------------------------------------
export PATH="$HOME/.local/bin:$HOME/bin:$PATH"
export PATH="$HOME/.cargo/bin:$PATH"
. "$HOME/.cargo/env"
export GOPATH="$HOME/go"
export PATH="$GOPATH/bin:/usr/local/go/bin:$PATH"
export PYENV_ROOT="$HOME/.pyenv"
[[ -d $PYENV_ROOT/bin ]] && export PATH="$PYENV_ROOT/bin:$PATH"
eval "$(pyenv init - bash)"

export NVM_DIR="$HOME/.nvm"
[ -s "$NVM_DIR/nvm.sh" ] && \\. "$NVM_DIR/nvm.sh"
[ -s "$NVM_DIR/bash_completion" ] && \\. "$NVM_DIR/bash_completion"

export EDITOR=vim
export VISUAL=vim
export PAGER=less
export LESS='-R -F -X'
export RUST_BACKTRACE=1
export CARGO_TERM_COLOR=always
export DOCKER_BUILDKIT=1
export KUBECONFIG="$HOME/.kube/config"
export AWS_PROFILE=default
export AWS_REGION=eu-west-1

# --- aliases ------------------------------------------------------------
alias g='git'
alias gs='git status -sb'
alias gd='git diff'
alias gdc='git diff --cached'
alias gl='git log --oneline --graph --decorate -20'
alias gp='git push'
alias gpf='git push --force-with-lease'
alias gco='git checkout'
alias gcb='git checkout -b'
alias k='kubectl'
alias kgp='kubectl get pods'
alias kctx='kubectl config use-context'
alias dc='docker compose'
alias dps='docker ps --format "table {{.Names}}\\t{{.Status}}\\t{{.Ports}}"'
alias py='python3'
alias venv='python3 -m venv .venv && . .venv/bin/activate'
alias ct='cargo test'
alias cb='cargo build'
alias cr='cargo run --'
alias cc='cargo clippy --all-targets -- -D warnings'
alias ..='cd ..'
alias ...='cd ../..'
alias serve='python3 -m http.server 8000'
alias myip='curl -s ifconfig.me'
alias weather='curl -s wttr.in/?format=3'
alias tf='terraform'

# --- functions ----------------------------------------------------------
mkcd() { mkdir -p "$1" && cd "$1"; }
extract() {
    case "$1" in
        *.tar.gz|*.tgz) tar xzf "$1" ;;
        *.tar.xz) tar xJf "$1" ;;
        *.zip) unzip "$1" ;;
        *) echo "don't know how to extract $1" ;;
    esac
}
gbr() { git for-each-ref --sort=-committerdate refs/heads/ --format='%(refname:short)' | head -"${1:-10}"; }
port() { ss -ltnp | grep ":$1"; }
"""


def bashrc(root: str) -> None:
    lines = BASHRC_HEAD.splitlines() + [""] + BASHRC_TAIL.splitlines()
    lines += ["", "# --- API keys (yes, I know) ---------------------------------------"]
    for kind, var in (("openai-project-key", "OPENAI_API_KEY"),
                      ("anthropic-api-key", "ANTHROPIC_API_KEY"),
                      ("github-pat", "GITHUB_TOKEN")):
        v = key(kind)
        lines.append(f'export {var}="{v}"')
        note(".bashrc", len(lines), kind, v)
    lines += ["", "# prompt", 'PROMPT_COMMAND=\'history -a\'',
              '[ -f ~/.fzf.bash ] && source ~/.fzf.bash',
              'eval "$(direnv hook bash)"',
              'eval "$(starship init bash)"', ""]
    # Pad to ~200 lines with the kind of commented-out history rc files accrue.
    filler = [
        "# export HTTP_PROXY=http://proxy.local:3128",
        "# alias vpn='sudo openvpn --config ~/vpn/work.ovpn'",
        "# source ~/work/scripts/env.sh",
        "# export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64",
        "# export ANDROID_HOME=$HOME/Android/Sdk",
        "# export PATH=$PATH:$ANDROID_HOME/platform-tools",
    ]
    i = 0
    while len(lines) < 200:
        lines.append(filler[i % len(filler)])
        i += 1
    write(root, ".bashrc", lines)


def zshrc(root: str) -> None:
    lines = [
        "# Path to your oh-my-zsh installation.",
        'export ZSH="$HOME/.oh-my-zsh"',
        'ZSH_THEME="robbyrussell"',
        "plugins=(git docker kubectl rust fzf z)",
        "source $ZSH/oh-my-zsh.sh",
        "",
        "export LANG=en_US.UTF-8",
        "export EDITOR='nvim'",
        'export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"',
        "HISTFILE=~/.zsh_history",
        "HISTSIZE=50000",
        "SAVEHIST=50000",
        "setopt share_history hist_ignore_dups",
        "",
        "alias vim=nvim",
        "alias ll='ls -lah'",
        "alias gst='git status'",
        "",
    ]
    v = key("groq-api-key")
    lines.append(f"export GROQ_API_KEY={v}")
    note(".zshrc", len(lines), "groq-api-key", v)
    lines += ['eval "$(zoxide init zsh)"', '[ -f ~/.fzf.zsh ] && source ~/.fzf.zsh', ""]
    write(root, ".zshrc", lines)


HISTORY = [
    "ls", "ls -la", "cd ..", "cd ~/src/{p}", "git status", "git pull --rebase", "git diff",
    "git add -p", "git commit -m 'fix {w}'", "git push", "git log --oneline -10",
    "git checkout -b feature/{w}", "git stash", "git stash pop", "cargo build",
    "cargo test", "cargo clippy --all-targets", "cargo run -- --help", "cargo fmt",
    "npm install", "npm run build", "npm test", "npx tsc --noEmit", "python3 -m pytest -x",
    "pip install -r requirements.txt", "docker ps", "docker compose up -d",
    "docker compose logs -f {w}", "kubectl get pods -n {w}", "kubectl logs -f deploy/{w}",
    "ssh {w}.internal", "vim src/{w}.rs", "code .", "make", "make test", "htop",
    "du -sh *", "df -h", "grep -rn '{w}' src/", "rg {w}", "fd {w}", "cat Cargo.toml",
    "history | grep {w}", "tail -f /var/log/syslog", "curl -s localhost:8080/health",
    "jq . out.json", "terraform plan", "terraform apply", "aws s3 ls",
    "aws sts get-caller-identity", "gh pr list", "gh pr checkout {n}", "clear", "exit",
]
WORDS = ["api", "auth", "billing", "cache", "parser", "worker", "gateway", "search",
         "ingest", "web", "cli", "scheduler", "metrics", "router", "storage"]


def bash_history(root: str, rng: random.Random) -> None:
    lines: list[str] = []
    secret_at = {
        rng.randrange(100, 600): ("huggingface-token", lambda v: f"export HF_TOKEN={v}"),
        rng.randrange(700, 1300): ("openai-project-key",
                                   lambda v: f'curl https://api.openai.invalid/v1/models -H "Authorization: Bearer {v}"'),
        rng.randrange(1400, 1900): ("stripe-live-secret", lambda v: f"STRIPE_SECRET_KEY={v} npm run dev"),
    }
    for i in range(2000):
        if i in secret_at:
            kind, fmt = secret_at[i]
            v = key(kind)
            lines.append(fmt(v))
            note(".bash_history", i + 1, kind, v)
            continue
        cmd = rng.choice(HISTORY)
        lines.append(cmd.format(p=rng.choice(WORDS), w=rng.choice(WORDS), n=rng.randrange(10, 999)))
    write(root, ".bash_history", lines, 0o600)


def aws(root: str) -> None:
    akid, sak = key("aws-access-key")
    lines = ["[default]", f"aws_access_key_id = {akid}", f"aws_secret_access_key = {sak}",
             "region = eu-west-1", "", "[profile staging]", "role_arn = arn:aws:iam::123456789012:role/dev",
             "source_profile = default", "region = eu-west-1"]
    note(".aws/credentials", 2, "aws-access-key", akid)
    write(root, ".aws/credentials", lines, 0o600)
    write(root, ".aws/config", ["[default]", "region = eu-west-1", "output = json"])


def npmrc(root: str) -> None:
    v = key("npm-token")
    lines = ["//registry.corp.invalid/:_authToken=" + v, "save-exact=true", "fund=false",
             "audit=false", "init-author-name=Dev"]
    note(".npmrc", 1, "npm-token", v)
    write(root, ".npmrc", lines, 0o600)


def claude(root: str) -> None:
    v = key("anthropic-api-key")
    doc = {
        "$schema": "https://json.schemastore.org/claude-code-settings.json",
        "model": "opus",
        "permissions": {
            "allow": ["Bash(cargo test:*)", "Bash(cargo build:*)", "Bash(git status)", "Read(~/src/**)"],
            "deny": ["Read(./.env)", "Read(./secrets/**)"],
        },
        "env": {"ANTHROPIC_API_KEY": v, "DISABLE_TELEMETRY": "1"},
        "includeCoAuthoredBy": False,
    }
    text = json.dumps(doc, indent=2).splitlines()
    line = next(i for i, s in enumerate(text, 1) if '"ANTHROPIC_API_KEY"' in s)
    note(".claude/settings.json", line, "anthropic-api-key", v)
    write(root, ".claude/settings.json", text)


def codex(root: str) -> None:
    v = key("github-pat")
    lines = [
        'model = "gpt-5-codex"',
        'approval_policy = "on-request"',
        'sandbox_mode = "workspace-write"',
        "",
        "[mcp_servers.github]",
        'command = "github-mcp-server"',
        'args = ["stdio"]',
        f'env = {{ GITHUB_PERSONAL_ACCESS_TOKEN = "{v}" }}',
        "",
        "[projects.\"/home/dev/src/api\"]",
        'trust_level = "trusted"',
    ]
    note(".codex/config.toml", 8, "github-pat", v)
    write(root, ".codex/config.toml", lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    root = os.path.abspath(args.home)
    os.makedirs(root, exist_ok=True)
    rng = random.Random(args.seed)
    bashrc(root)
    zshrc(root)
    bash_history(root, rng)
    aws(root)
    npmrc(root)
    claude(root)
    codex(root)
    with open(os.path.join(root, "planted-home.json"), "w") as f:
        json.dump({"version": 1, "planted": planted}, f, indent=2)
        f.write("\n")
    print(f"make_home: {root}: {len(planted)} planted keys", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
