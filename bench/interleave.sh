# Interleaved timing for the benchmarks (sourced): each round runs every variant once, in turn.
# Run one variant after another instead, the VM's drift over a few minutes (page cache, the
# caches of the tools under test) went into the differences: `run --trace` on an npm install
# measured +12 % one after the other and +2 % interleaved, same binary (bench/README.md).
#
# interleave ROUNDS OUT PREPARE VARIANT...
#   PREPARE and each VARIANT name shell functions (PREPARE may be `:`); PREPARE runs untimed
#   before each variant. Round 0 warms up and is not recorded. Each timed run appends
#   "INDEX MICROSECONDS" to OUT, INDEX counting the variants from 0; bench/timings.py reads it.
interleave() {
  local rounds=$1 out=$2 prepare=$3 round i t0 t1
  shift 3
  local variants=("$@")
  for round in $(seq 0 "$rounds"); do
    for i in "${!variants[@]}"; do
      "$prepare"
      t0=$(date +%s%N)
      "${variants[$i]}" >/dev/null 2>&1
      t1=$(date +%s%N)
      if [ "$round" != 0 ]; then echo "$i $(((t1 - t0) / 1000))" >> "$out"; fi
    done
  done
}
