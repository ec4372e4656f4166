#!/usr/bin/env bash
# A 3-stage recipe (mergekit-multi's multi-document YAML) run stage by stage, against one merge
# of the same output size: what the stages cost in time and in intermediate disk.
#
#   bench/recipe.sh [--llmerge PATH] [--work DIR] [--layers N] [--hidden N] [--intermediate N]
#
# Stages: `mix` = linear(a, b); `tuned` = ties(base; mix, c); output = slerp(base, tuned).
# Each named stage is written to <work>/stages/<name> (--no-lazy, so every run merges them) and
# read back by the next. The single merge (slerp of base and a) reads and writes as much as
# the last stage alone: a lower bound for a one-pass run (no intermediate models), which is not
# built yet; this script measures what it would save.
# Prints the wall time of each (best of 3), the intermediate bytes, and their ratio. Timings
# depend on the machine's load; the bytes do not.
set -euo pipefail
LLMERGE=build/src/llmerge
WORK=${TMPDIR:-/tmp}/llmerge-bench-recipe
LAYERS=8
HIDDEN=512
INTERMEDIATE=1408
while [ $# -gt 0 ]; do
  case "$1" in
    --llmerge) LLMERGE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --hidden) HIDDEN=$2; shift 2 ;;
    --intermediate) INTERMEDIATE=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
LLMERGE=$(realpath "$LLMERGE")
mkdir -p "$WORK"
cd "$WORK"
shape="--family llama --layers $LAYERS --hidden $HIDDEN --intermediate $INTERMEDIATE --heads 8 --kv-heads 4 --vocab 4096"
[ -f base/config.json ] || "$LLMERGE" synth base $shape --seed 1 --force >/dev/null
for m in a:2 b:3 c:4; do
  name=${m%%:*}
  [ -f "$name/config.json" ] || "$LLMERGE" synth "$name" --like base --delta-scale 0.05 --seed "${m##*:}" --force >/dev/null
done
cat > recipe.yaml <<YAML
name: mix
merge_method: linear
models:
  - {model: a, parameters: {weight: 0.5}}
  - {model: b, parameters: {weight: 0.5}}
---
name: tuned
merge_method: ties
base_model: base
models:
  - {model: mix, parameters: {weight: 1.0, density: 0.5}}
  - {model: c, parameters: {weight: 0.5, density: 0.5}}
---
merge_method: slerp
base_model: base
models: [{model: base}, {model: tuned}]
parameters: {t: 0.5}
YAML
cat > single.yaml <<YAML
merge_method: slerp
base_model: base
models: [{model: base}, {model: a}]
parameters: {t: 0.5}
YAML
best() {  # best wall time of 3 runs of "$@", in seconds
  local best=""
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    best=$(python3 -c "import sys; a=float(sys.argv[1]); b=sys.argv[2]; print(a if not b or a < float(b) else b)" "$(python3 -c "print($t1-$t0)")" "$best")
  done
  echo "$best"
}
staged=$(best "$LLMERGE" run recipe.yaml -o out-recipe --intermediate-dir stages --no-lazy --force --quiet)
single=$(best "$LLMERGE" run single.yaml -o out-single --force --quiet)
stage_bytes=$(du -sb stages | cut -f1)
out_bytes=$(du -sb out-recipe | cut -f1)
python3 - "$staged" "$single" "$stage_bytes" "$out_bytes" <<'PY'
import sys
staged, single, stage_bytes, out_bytes = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"3-stage recipe, staged:     {staged:.2f} s, intermediate models {stage_bytes/1e6:.1f} MB "
      f"({stage_bytes/out_bytes:.1f}x the output's {out_bytes/1e6:.1f} MB)")
print(f"one merge of the same size: {single:.2f} s  (staged / single = {staged/single:.2f})")
print(f"intermediate models not written by a one-pass run: {stage_bytes/1e6:.1f} MB; its time lies "
      f"between the two (it reads all four inputs, once)")
PY
