"""What bench/interleave.sh recorded, read back for the benchmarks' summaries."""

import statistics


def load(path):
    """{variant index: [seconds, ...]}"""
    runs = {}
    for line in open(path):
        i, us = line.split()
        runs.setdefault(int(i), []).append(int(us) / 1e6)
    return runs


def medians(path):
    """{variant index: median seconds}"""
    return {i: statistics.median(x) for i, x in load(path).items()}
