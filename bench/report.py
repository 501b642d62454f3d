#!/usr/bin/env python3
"""Print the scan-vs-peers table. stdin: lines of TOOL<TAB>VERSION<TAB>score.py-JSON."""

import json
import sys


def main() -> int:
    rows = []
    for line in sys.stdin:
        if not line.strip():
            continue
        tool, version, res = line.rstrip("\n").split("\t", 2)
        rows.append((tool, version, json.loads(res)))

    print()
    print(f"{'tool':<16}{'version':<28}{'wall s':>9}{'RSS MiB':>10}{'planted':>9}{'other':>7}{'total':>7}")
    for tool, version, r in rows:
        if r.get("failed"):
            print(f"{tool:<16}{version[:27]:<28}{'FAILED':>9}")
            continue
        planted = f"{r['found']}/{r['planted']}"
        print(f"{tool:<16}{version[:27]:<28}{r['wall_s']:>9.2f}{r['rss_mib']:>10.1f}"
              f"{planted:>9}{r['other']:>7}{r['total']:>7}")
    print()
    for tool, _, r in rows:
        if r.get("missed"):
            print(f"{tool} missed: " + ", ".join(r["missed"]))
        if r.get("other_by_rule"):
            top = ", ".join(f"{k} x{v}" for k, v in list(r["other_by_rule"].items())[:6])
            print(f"{tool} other findings by rule: {top}")
        if "fingerprint_matches" in r:
            print(f"{tool} findings whose fingerprint equals the planted sha256[:12]: "
                  f"{r['fingerprint_matches']}")

    ok = {t: r for t, _, r in rows if not r.get("failed")}
    peers = {t: r for t, r in ok.items() if t != "keyfence"}
    if not peers:
        print("\nno peer completed: no ratio")
        return 0
    fastest = min(peers, key=lambda t: peers[t]["wall_s"])
    print(f"\nfastest peer: {fastest} ({peers[fastest]['wall_s']:.2f} s)")
    if "keyfence" not in ok:
        print("speed ratio: n/a (keyfence was not run)")
        return 0
    k = ok["keyfence"]
    ratio = peers[fastest]["wall_s"] / max(k["wall_s"], 1e-9)
    print(f"speed ratio (fastest peer time / keyfence time): {ratio:.2f}x")
    passed = ratio >= 5 and k["found"] == k["planted"] and k["other"] <= 5
    print(f"budget (>=5x faster, {k['planted']}/{k['planted']} planted found, <=5 other findings): "
          f"{'PASS' if passed else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
