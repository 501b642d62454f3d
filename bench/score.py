#!/usr/bin/env python3
"""Score one scanner's output against a corpus's planted.json.

usage: score.py TOOL OUTPUT CORPUS [--cwd DIR] [--time TIMEFILE] [--json]

TOOL is one of keyfence, kingfisher, secretlint, secretlint-json,
detect-secrets. Findings are matched to planted keys by file and line, with a
tolerance of +-1 line around the key's line (and around the AWS secret line;
any line inside a PEM block counts). Prints one JSON object:

  {"tool", "total", "found", "planted", "other", "missed": [kind@file:line],
   "wall_s", "rss_mib", "fingerprint_matches" (keyfence only)}

Scanner outputs can hold raw secret values; this script never prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys


def norm(path: str, cwd: str, root: str) -> str:
    p = path if os.path.isabs(path) else os.path.join(cwd, path)
    return os.path.relpath(os.path.normpath(p), root)


def parse_keyfence(text: str):
    doc = json.loads(text)
    for f in doc.get("findings", []):
        loc = f.get("location") or {}
        if "path" not in loc:
            continue  # non-file sources (env, history...) are not tree findings
        yield loc["path"], int(loc.get("line") or 0), {
            "rule": f.get("rule"),
            "fingerprint": (f.get("secret") or {}).get("fingerprint"),
        }


def parse_kingfisher(text: str):
    text = text.strip()
    if not text:
        return
    if text.startswith("{"):
        docs = [json.loads(text)]
    else:  # jsonl fallback
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    for doc in docs:
        for f in doc.get("findings", [doc] if "finding" in doc else []):
            fin = f.get("finding", {})
            yield fin.get("path", ""), int(fin.get("line") or 0), {
                "rule": (f.get("rule") or {}).get("id"),
            }


COMPACT = re.compile(r"^(?P<path>.+?): line (?P<line>\d+), col \d+, (?:Error|Warning|Info) - (?P<msg>.*)$")


def parse_secretlint(text: str):
    """`--format compact` lines: PATH: line N, col M, Error - MSG (preset > rule)"""
    for line in text.splitlines():
        m = COMPACT.match(line)
        if m:
            rule = re.search(r"\(([^()]*)\)\s*$", m["msg"])
            yield m["path"], int(m["line"]), {"rule": rule.group(1).split(" > ")[-1] if rule else None}


def parse_secretlint_json(text: str):
    """`--format json`: [{filePath, sourceContent, messages: [{ruleId, loc:{start:{line}}}]}]"""
    for res in json.loads(text):
        for m in res.get("messages", []):
            yield res["filePath"], int(m["loc"]["start"]["line"]), {"rule": m.get("ruleId")}


def parse_detect_secrets(text: str):
    doc = json.loads(text)
    for path, items in doc.get("results", {}).items():
        for f in items:
            yield path, int(f["line_number"]), {"rule": f.get("type")}


PARSERS = {
    "keyfence": parse_keyfence,
    "kingfisher": parse_kingfisher,
    "secretlint": parse_secretlint,
    "secretlint-json": parse_secretlint_json,
    "detect-secrets": parse_detect_secrets,
}


def parse_time(path: str):
    """Wall seconds and max RSS (MiB) from `/usr/bin/time -v -o FILE`."""
    wall = rss = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("Elapsed (wall clock) time"):
                t = line.rsplit(": ", 1)[1]
                secs = 0.0
                for part in t.split(":"):
                    secs = secs * 60 + float(part)
                wall = secs
            elif line.startswith("Maximum resident set size"):
                rss = int(line.rsplit(": ", 1)[1]) / 1024
    return wall, rss


def matches(p: dict, line: int) -> bool:
    if abs(line - p["line"]) <= 1:
        return True
    if "secret_line" in p and abs(line - p["secret_line"]) <= 1:
        return True
    if "end_line" in p and p["line"] <= line <= p["end_line"]:
        return True
    return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tool", choices=sorted(PARSERS))
    ap.add_argument("output")
    ap.add_argument("corpus")
    ap.add_argument("--cwd", help="directory the scanner ran in (for relative paths); default CORPUS")
    ap.add_argument("--time", help="/usr/bin/time -v output file")
    ap.add_argument("--wall-ms", type=int, help="wall time measured outside /usr/bin/time (overrides it)")
    ap.add_argument("--runs", type=int, help="number of timed runs this one was picked from")
    args = ap.parse_args()

    root = os.path.realpath(args.corpus)
    cwd = os.path.realpath(args.cwd or args.corpus)
    with open(os.path.join(root, "planted.json")) as f:
        planted = json.load(f)["planted"]
    by_file: dict[str, list[int]] = {}
    for i, p in enumerate(planted):
        by_file.setdefault(p["file"], []).append(i)

    with open(args.output, encoding="utf-8", errors="replace") as f:
        text = f.read()
    total = other = fp_ok = 0
    hit: set[int] = set()
    other_rules: dict[str, int] = {}
    for path, line, extra in PARSERS[args.tool](text):
        total += 1
        rel = norm(path, cwd, root)
        got = [i for i in by_file.get(rel, []) if matches(planted[i], line)]
        if got:
            hit.update(got)
            fpr = extra.get("fingerprint")
            if fpr and any(fpr in (planted[i]["fingerprint"], planted[i].get("secret_fingerprint")) for i in got):
                fp_ok += 1
        else:
            other += 1
            r = str(extra.get("rule"))
            other_rules[r] = other_rules.get(r, 0) + 1

    out = {
        "tool": args.tool,
        "total": total,
        "planted": len(planted),
        "found": len(hit),
        "other": other,
        "other_by_rule": dict(sorted(other_rules.items(), key=lambda kv: -kv[1])),
        "missed": [f'{p["kind"]}@{p["file"]}:{p["line"]}' for i, p in enumerate(planted) if i not in hit],
    }
    if args.tool == "keyfence":
        out["fingerprint_matches"] = fp_ok
    if args.time:
        out["wall_s"], out["rss_mib"] = parse_time(args.time)
    if args.wall_ms is not None:
        out["wall_s"] = args.wall_ms / 1000
    if args.runs:
        out["runs"] = args.runs
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
