#!/usr/bin/env bash
# The whole of bench/results.md in one run (issue 21): every method on both input kinds at
# Qwen2.5-0.5B's shapes (size mini, 1.26 GB per bf16 model, five models: 6.3 GB, which stay in
# the page cache of a 24 GB machine), the I/O floor measured in the same run, ratio to the
# floor, peak RSS against the planner's estimate, CPU ns per element, and instructions per
# element under callgrind on small models of the same row lengths (size cgs).
#
#   bench/results.sh [any run.sh option, e.g. --repeat 3 or --llmerge PATH]
#
# Writes bench/results.md, results.json and results.svg. See bench/README.md.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_COMMAND="bench/results.sh${*:+ $*}"
exec "$repo/bench/run.sh" --size mini --repeat 2 --one-thread no --callgrind-size cgs \
  --out "$repo/bench" "$@"
