#!/usr/bin/env bash
# extract-lora benchmark: time and peak RSS of `llmerge extract-lora` on a synthetic
# fine-tune pair, next to mergekit-extract-lora on the same models when a mergekit venv is
# given (MERGEKIT_VENV, e.g. the peers venv; skipped otherwise).
#
#   bench/lora/run.sh [--llmerge PATH] [--work DIR] [--rank R] [--shape "synth args"]
#
# Models: llama-shaped bf16, made with `llmerge synth` under --work (default
# ${TMPDIR:-/tmp}/llmerge-bench-lora); the fine-tune is `--like base --delta-scale 0.05`.
# Writes bench/lora/results.md (the table) and prints it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
llmerge="${here}/../../build/src/llmerge"
work="${TMPDIR:-/tmp}/llmerge-bench-lora"
rank=32
shape="--family llama --layers 8 --hidden 1024 --intermediate 2816 --heads 16 --kv-heads 8 --vocab 32000"
while [ $# -gt 0 ]; do
  case "$1" in
    --llmerge) llmerge="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --rank) rank="$2"; shift 2 ;;
    --shape) shape="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
# shellcheck disable=SC2086
[ -d "$work/base" ] || "$llmerge" synth "$work/base" $shape --dtype bf16 --seed 1 >/dev/null
[ -d "$work/ft" ] || "$llmerge" synth "$work/ft" --like "$work/base" --delta-scale 0.05 --seed 2 >/dev/null
params=$("$llmerge" inspect "$work/base" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["parameters"])')

measure() {  # label, command...: prints "label|seconds|peak MiB"
  local label="$1"; shift
  local log="$work/time-$label.txt"
  /usr/bin/time -v "$@" >"$work/out-$label.txt" 2>"$log" || { echo "$label|failed|-|-"; return; }
  local secs cpu rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log")
  cpu=$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.1f", s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$log")
  echo "$label|$secs|$cpu|$rss"
}

rows=()
rows+=("$(measure llmerge-peft "$llmerge" extract-lora --model "$work/ft" --base "$work/base" \
  -o "$work/llmerge-peft" --rank "$rank" --force --quiet)")
rows+=("$(measure llmerge-mlx "$llmerge" extract-lora --model "$work/ft" --base "$work/base" \
  -o "$work/llmerge-mlx" --rank "$rank" --format mlx --force --quiet)")
if [ -n "${MERGEKIT_VENV:-}" ] && [ -x "$MERGEKIT_VENV/bin/mergekit-extract-lora" ]; then
  rm -rf "$work/mergekit"
  rows+=("$(measure mergekit "$MERGEKIT_VENV/bin/mergekit-extract-lora" --model "$work/ft" \
    --base-model "$work/base" --out-path "$work/mergekit" --max-rank "$rank")")
fi
{
  echo "# extract-lora benchmark"
  echo
  echo "Models: \`llmerge synth $shape --dtype bf16\` ($params parameters) and a fine-tune of it"
  echo "(\`--delta-scale 0.05\`); rank $rank; $(nproc) cores; $(date -u +%Y-%m-%d)."
  echo
  echo "| tool | wall seconds | CPU seconds | peak RSS (MiB) |"
  echo "|---|---|---|---|"
  for r in "${rows[@]}"; do echo "| ${r//|/ | } |"; done
} | tee "$here/results.md"
