#!/usr/bin/env python3
"""Print random, format-valid fake keys for rule examples and fixtures (never real keys).

Usage: fakekey.py KIND [COUNT]. Kinds: see KINDS below. The same generator backs the fixtures
the integration tests write (tests/it/common) so both agree on the formats.
"""
import argparse, secrets, string, sys, zlib

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
URLSAFE = string.ascii_letters + string.digits + "_-"
ALNUM = string.ascii_letters + string.digits

def rnd(alphabet, n):
    while True:
        s = "".join(secrets.choice(alphabet) for _ in range(n))
        low = s.lower()
        if not any(w in low for w in ("xxxx", "example", "your", "test", "fake", "dummy")):
            return s

def b62(n):
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(6, "0")

def crc_token(prefix):
    body = rnd(B62, 30)
    return prefix + body + b62(zlib.crc32(body.encode()))

KINDS = {
    "anthropic": lambda: "sk-ant-api03-" + rnd(URLSAFE, 93) + "AA",
    "anthropic-admin": lambda: "sk-ant-admin01-" + rnd(URLSAFE, 93) + "AA",
    "claude-oauth": lambda: "sk-ant-oat01-" + rnd(URLSAFE, 95),
    "openai-proj": lambda: "sk-proj-" + rnd(URLSAFE, 74) + "T3BlbkFJ" + rnd(URLSAFE, 74),
    "openai-svcacct": lambda: "sk-svcacct-" + rnd(URLSAFE, 74) + "T3BlbkFJ" + rnd(URLSAFE, 74),
    "openai-admin": lambda: "sk-admin-" + rnd(URLSAFE, 58) + "T3BlbkFJ" + rnd(URLSAFE, 58),
    "openai-legacy": lambda: "sk-" + rnd(ALNUM, 20) + "T3BlbkFJ" + rnd(ALNUM, 20),
    "google": lambda: "AIza" + rnd(URLSAFE, 35),
    "google-aq": lambda: "AQ.Ab8RN6" + rnd(URLSAFE, 44),
    "groq": lambda: "gsk_" + rnd(ALNUM, 20) + "WGdyb3FY" + rnd(ALNUM, 24),
    "xai": lambda: "xai-" + rnd(ALNUM, 80),
    "huggingface": lambda: "hf_" + rnd(string.ascii_letters, 34),
    "replicate": lambda: "r8_" + rnd(ALNUM, 37),
    "openrouter": lambda: "sk-or-v1-" + rnd("0123456789abcdef", 64),
    "deepseek": lambda: "sk-" + rnd("0123456789abcdef", 32),
    "mistral": lambda: rnd(ALNUM, 32),
    "cohere": lambda: rnd(ALNUM, 40),
    "aws-id": lambda: "AKIA" + rnd("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    "aws-secret": lambda: rnd(ALNUM + "/+", 40),
    "github": lambda: crc_token("ghp_"),
    "github-oauth": lambda: crc_token("gho_"),
    "github-pat": lambda: "github_pat_" + rnd(ALNUM, 22) + "_" + rnd(ALNUM, 59),
    "gitlab": lambda: "glpat-" + rnd(URLSAFE, 20),
    "npm": lambda: crc_token("npm_"),
    "pypi": lambda: "pypi-AgEIcHlwaS5vcmc" + rnd(URLSAFE, 120),
    "stripe": lambda: "sk_live_" + rnd(ALNUM, 24),
    "slack-bot": lambda: "xoxb-" + rnd(string.digits, 12) + "-" + rnd(string.digits, 12) + "-" + rnd(ALNUM, 24),
    "slack-webhook": lambda: "https://hooks.slack.com/services/T" + rnd(ALNUM, 8) + "/B" + rnd(ALNUM, 8) + "/" + rnd(ALNUM, 24),
    "databricks": lambda: "dapi" + rnd("0123456789abcdef", 32),
    "perplexity": lambda: "pplx-" + rnd(ALNUM, 48),
    "token": lambda: rnd(ALNUM, 32),
}

def main(argv):
    parser = argparse.ArgumentParser(
        prog="fakekey.py",
        description="Print random, format-valid fake keys (never real ones) for rule examples "
        "and fixtures.",
    )
    parser.add_argument("kind", choices=sorted(KINDS), metavar="KIND",
                        help="one of: " + ", ".join(sorted(KINDS)))
    parser.add_argument("count", nargs="?", type=int, default=1, metavar="COUNT",
                        help="how many keys to print, one per line (default 1)")
    args = parser.parse_args(argv)
    for _ in range(args.count):
        print(KINDS[args.kind]())

if __name__ == "__main__":
    main(sys.argv[1:])
