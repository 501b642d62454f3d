#!/usr/bin/env python3
"""Plant format-valid but random fake credentials into a benchmark corpus.

Used by make-corpus.sh. Every secret value is generated here, at corpus
creation time, with the `secrets` module: none is real and none is copied
from anywhere. Which files receive a key, and where in the file, comes from a
seeded RNG so that the *positions* are reproducible for a given corpus tree.

Writes CORPUS/planted.json:

    {"version": 1, "seed": N, "planted": [
        {"file": "nm/x/y.js", "line": 12, "kind": "github-pat",
         "fingerprint": "<sha256(secret)[:12]>", ...}, ...]}

`line` is 1-based and points at the line holding the key (for PEM blocks the
BEGIN line, for AWS pairs the access-key-id line; the secret access key is on
line+1). Raw key values are never written to planted.json.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import secrets
import string
import sys
import zlib

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
B32UP = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
AWS_SECRET = ALNUM + "/+"

# Lower-cased substrings that make a value look like a placeholder; many
# scanners (rightly) suppress such values, so a planted key never contains one.
PLACEHOLDER_WORDS = (
    "test", "fake", "example", "xxxx", "sample", "dummy", "demo", "mock",
    "placeholder", "changeme", "secret", "password", "token", "abcd", "1234",
    "0000", "aaaa",
)
# Paths that some scanners down-rank as test/fixture material: never plant there.
SKIP_PATH = re.compile(r"(test|spec|fixture|example|sample|mock|demo|__snapshots__)", re.I)
EXTENSIONS = (".js", ".json", ".md", ".ts")
MAX_FILE_BYTES = 256 * 1024


def rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def clean(value: str) -> bool:
    low = value.lower()
    return not any(w in low for w in PLACEHOLDER_WORDS)


def base62_checksum(body: str) -> str:
    n = zlib.crc32(body.encode()) & 0xFFFFFFFF
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = BASE62[r] + out
    return out.rjust(6, "0")


def gen_anthropic() -> str:
    return "sk-ant-api03-" + rand(URLSAFE, 93) + "AA"


def gen_openai() -> str:
    return "sk-proj-" + rand(URLSAFE, 74) + "T3BlbkFJ" + rand(URLSAFE, 74)


def gen_github() -> str:
    body = rand(BASE62, 30)
    return "ghp_" + body + base62_checksum(body)


def gen_npm() -> str:
    body = rand(BASE62, 30)
    return "npm_" + body + base62_checksum(body)


def gen_aws() -> tuple[str, str]:
    return "AKIA" + rand(B32UP, 16), rand(AWS_SECRET, 40)


def gen_groq() -> str:
    return "gsk_" + rand(ALNUM, 20) + "WGdyb3FY" + rand(ALNUM, 24)


def gen_stripe() -> str:
    return "sk_live_" + rand(ALNUM, 24)


def gen_slack() -> str:
    # First digit non-zero so the numeric ids look like real workspace ids.
    d = lambda: secrets.choice("123456789") + rand(string.digits, 11)  # noqa: E731
    return f"xoxb-{d()}-{d()}-{rand(ALNUM, 24)}"


def gen_gitlab() -> str:
    return "glpat-" + rand(URLSAFE, 20)


def gen_google() -> str:
    return "AIza" + rand(URLSAFE, 35)


def gen_hf() -> str:
    return "hf_" + rand(string.ascii_letters, 34)


def gen_pem() -> str:
    # DER prefix of a 2048-bit PKCS#1 RSAPrivateKey (SEQUENCE, version 0,
    # INTEGER modulus ...) followed by random bytes: looks like a real key to
    # a pattern matcher, is not a parseable key.
    der = bytes.fromhex("308204a40201000282010100") + secrets.token_bytes(1180)
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *lines, "-----END RSA PRIVATE KEY-----"])


# kind -> (generator, env-var name used in the inserted line)
KINDS = {
    "anthropic-api-key": (gen_anthropic, "ANTHROPIC_API_KEY"),
    "openai-project-key": (gen_openai, "OPENAI_API_KEY"),
    "github-pat": (gen_github, "GITHUB_TOKEN"),
    "npm-token": (gen_npm, "NPM_TOKEN"),
    "aws-access-key": (gen_aws, "AWS_ACCESS_KEY_ID"),
    "groq-api-key": (gen_groq, "GROQ_API_KEY"),
    "stripe-live-secret": (gen_stripe, "STRIPE_SECRET_KEY"),
    "slack-bot-token": (gen_slack, "SLACK_BOT_TOKEN"),
    "gitlab-pat": (gen_gitlab, "GITLAB_TOKEN"),
    "google-api-key": (gen_google, "GOOGLE_API_KEY"),
    "huggingface-token": (gen_hf, "HF_TOKEN"),
    "rsa-private-key": (gen_pem, "PRIVATE_KEY"),
}
# 20 plants: every kind once, the most common leak kinds a second time.
PLAN = list(KINDS) + [
    "anthropic-api-key", "openai-project-key", "github-pat", "aws-access-key",
    "npm-token", "stripe-live-secret", "slack-bot-token", "google-api-key",
]


def generate(kind: str):
    gen = KINDS[kind][0]
    while True:
        v = gen()
        parts = v if isinstance(v, tuple) else (v,)
        if all(clean(p) for p in parts):
            return v


def fp(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def render(kind: str, value, ext: str) -> list[str]:
    """Lines to insert (without newlines) for a key of `kind` in a file of `ext`."""
    var = KINDS[kind][1]
    if kind == "aws-access-key":
        akid, sak = value
        if ext in (".js", ".ts"):
            return [f'const {var} = "{akid}";', f'const aws_secret_access_key = "{sak}";']
        if ext == ".json":
            return [f'  "aws_access_key_id": "{akid}",', f'  "aws_secret_access_key": "{sak}",']
        return [f"aws_access_key_id = {akid}", f"aws_secret_access_key = {sak}"]
    if kind == "rsa-private-key":
        pem_lines = value.split("\n")
        if ext in (".js", ".ts"):
            return [f"const {var} = `{pem_lines[0]}", *pem_lines[1:-1], f"{pem_lines[-1]}`;"]
        return pem_lines  # .md (PEM is never assigned to .json files)
    if ext in (".js", ".ts"):
        return [f'const {var} = "{value}";']
    if ext == ".json":
        return [f'  "{var}": "{value}",']
    return [f"{var}={value}"]


def candidates(root: str, scan_root: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(scan_root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if not name.endswith(EXTENSIONS) or name.endswith((".min.js", ".d.ts")):
                continue
            if name in ("package-lock.json", ".package-lock.json") or SKIP_PATH.search(rel):
                continue
            if os.path.islink(path):
                continue
            size = os.path.getsize(path)
            if size == 0 or size > MAX_FILE_BYTES:
                continue
            out.append(rel)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", help="corpus root; planted.json is written here")
    ap.add_argument("--under", default="nm", help="subdirectory to plant into (default: nm)")
    ap.add_argument("--seed", type=int, default=20240601, help="RNG seed for file/line choice")
    args = ap.parse_args()

    root = os.path.abspath(args.corpus)
    pool = candidates(root, os.path.join(root, args.under))
    if len(pool) < len(PLAN):
        print(f"plant_keys: only {len(pool)} candidate files under {args.under}", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    by_ext = {e: [p for p in pool if p.endswith(e)] for e in EXTENSIONS}
    used: set[str] = set()
    planted = []
    for kind in PLAN:
        exts = (".js", ".ts", ".md") if kind == "rsa-private-key" else EXTENSIONS
        ext = rng.choice([e for e in exts if by_ext[e]])
        while True:
            rel = rng.choice(by_ext[ext])
            if rel not in used:
                break
        used.add(rel)
        path = os.path.join(root, rel)
        with open(path, "rb") as f:
            data = f.read()
        lines = data.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            lines[-1] += b"\n"
        # Insert after line k (1..n): never before a shebang or an opening '{'.
        k = rng.randint(1, len(lines)) if lines else 0
        value = generate(kind)
        new = [(s + "\n").encode() for s in render(kind, value, ext)]
        lines[k:k] = new
        with open(path, "wb") as f:
            f.write(b"".join(lines))
        rec = {"file": rel, "line": k + 1, "kind": kind}
        if kind == "aws-access-key":
            rec["fingerprint"] = fp(value[0])
            rec["secret_line"] = k + 2
            rec["secret_fingerprint"] = fp(value[1])
        else:
            rec["fingerprint"] = fp(value)
        if kind == "rsa-private-key":
            rec["end_line"] = k + len(new)
            rec["fingerprint_note"] = "sha256 of the whole PEM block, BEGIN..END lines joined by \\n"
        planted.append(rec)

    # Positions shift when two plants share a file; they never do (used set).
    with open(os.path.join(root, "planted.json"), "w") as f:
        json.dump({"version": 1, "seed": args.seed, "under": args.under, "planted": planted}, f, indent=2)
        f.write("\n")
    print(f"plant_keys: planted {len(planted)} keys in {len(used)} files (seed {args.seed})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
