#!/usr/bin/env bash
# compare's peak RSS from a tiny model to a 3B one (docs/compare.md): the
# streaming claim, measured. Not run by CI (the 3B models are 3 x 6.4 GB of bf16
# and take minutes to write and read on a small machine).
#
#   bench/compare_memory.sh [--llmerge build/src/llmerge] [--work DIR] [--sizes "tiny 1B 3B"]
#
# For each size: a synth llama base (preset sizes "1B", "3B"; "tiny" is 4 layers
# of hidden 64) and two fine-tunes (synth --like, delta 0.05), then
# `/usr/bin/time -f %M llmerge compare A B --base BASE -j 2`. Prints one line per
# size: parameters, peak RSS, wall seconds. Removes each size's models after.
set -euo pipefail
llmerge=build/src/llmerge
work=${TMPDIR:-/tmp}/llmerge-compare-mem
sizes="tiny 1B 3B"
while [ $# -gt 0 ]; do
  case "$1" in
    --llmerge) llmerge=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
printf '%-6s %14s %12s %10s\n' size parameters peak_rss_MiB seconds
for size in $sizes; do
  dir=$work/$size
  rm -rf "$dir"
  if [ "$size" = tiny ]; then
    "$llmerge" synth "$dir/base" --layers 4 --hidden 64 --intermediate 128 --vocab 128 >/dev/null
  else
    "$llmerge" synth "$dir/base" --params "$size" >/dev/null
  fi
  "$llmerge" synth "$dir/a" --like "$dir/base" --delta-scale 0.05 --seed 1 >/dev/null
  "$llmerge" synth "$dir/b" --like "$dir/base" --delta-scale 0.05 --seed 2 >/dev/null
  params=$("$llmerge" inspect "$dir/base" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["parameters"])')
  start=$(date +%s.%N)
  /usr/bin/time -f %M -o "$dir/rss" "$llmerge" compare "$dir/a" "$dir/b" --base "$dir/base" \
    -j 2 --quiet --json >"$dir/compare.json"
  end=$(date +%s.%N)
  printf '%-6s %14s %12.1f %10.1f\n' "$size" "$params" "$(echo "$(cat "$dir/rss") / 1024" | bc -l)" \
    "$(echo "$end - $start" | bc -l)"
  rm -rf "$dir/base" "$dir/a" "$dir/b"
done
