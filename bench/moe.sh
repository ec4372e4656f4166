#!/usr/bin/env bash
# `llmerge moe` benchmark: a 4-expert Mixtral from synthetic llama experts, time and peak RSS,
# next to mergekit-moe when a venv with mergekit is given.
#
#   bench/moe.sh [--llmerge PATH] [--mergekit-venv DIR] [--work DIR] [--out FILE]
#                [--hidden N] [--intermediate N] [--layers N] [--vocab N]
#
# Models: a base and three --like fine-tunes (bf16, llama shapes given by the flags; the
# defaults make ~0.2 GB experts and a ~0.75 GB MoE). Gates: random (no model run), so both
# tools only read and write. Each tool runs once with the inputs warm (read once before),
# under /usr/bin/time -v. The table goes to --out (default bench/moe-results.md).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
llmerge="${LLMERGE:-$repo/build/src/llmerge}"
mergekit_venv="${MERGEKIT_VENV:-}"
work="${TMPDIR:-/tmp}/llmerge-bench-moe"
out="$repo/bench/moe-results.md"
hidden=1024 intermediate=2816 layers=8 vocab=32000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --llmerge) llmerge=$2; shift 2 ;;
    --mergekit-venv) mergekit_venv=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --hidden) hidden=$2; shift 2 ;;
    --intermediate) intermediate=$2; shift 2 ;;
    --layers) layers=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$work"
shape=(--family llama --hidden "$hidden" --intermediate "$intermediate" --layers "$layers"
       --vocab "$vocab" --heads 16 --kv-heads 4)
tag="h${hidden}-i${intermediate}-l${layers}-v${vocab}"
if [[ ! -f "$work/$tag.done" ]]; then
  "$llmerge" synth "$work/base" "${shape[@]}" --seed 1 --force >/dev/null
  for i in 1 2 3; do
    "$llmerge" synth "$work/e$i" --like "$work/base" --delta-scale 0.05 --seed $((i + 1)) \
      --force >/dev/null
  done
  touch "$work/$tag.done"
fi
cat > "$work/moe.yaml" <<YAML
base_model: $work/base
gate_mode: random
dtype: bfloat16
experts_per_token: 2
experts:
  - source_model: $work/base
  - source_model: $work/e1
  - source_model: $work/e2
  - source_model: $work/e3
YAML
cat "$work"/base/*.safetensors "$work"/e*/*.safetensors >/dev/null  # warm

# Runs a command under /usr/bin/time -v; prints "seconds peak_MiB".
measure() {
  local log="$work/time.log"
  /usr/bin/time -v "$@" >"$work/cmd.log" 2>"$log" || { tail -n 5 "$work/cmd.log" "$log" >&2; echo "failed"; return; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  python3 -c "import sys; p=sys.argv[1].split(':'); s=sum(float(x)*60**i for i,x in enumerate(reversed(p))); print(f'{s:.2f} {int(sys.argv[2])/1024:.0f}')" "$wall" "$rss"
}

rm -rf "$work/out-llmerge"
read -r l_s l_mib < <(measure "$llmerge" moe "$work/moe.yaml" -o "$work/out-llmerge" --quiet --force)
read -r l1_s l1_mib < <(measure "$llmerge" moe "$work/moe.yaml" -o "$work/out-llmerge" --quiet --force -j 1)
out_bytes=$(du -sb "$work/out-llmerge" | cut -f1)
m_s="-" m_mib="-"
if [[ -n "$mergekit_venv" && -x "$mergekit_venv/bin/mergekit-moe" ]]; then
  rm -rf "$work/out-mergekit"
  read -r m_s m_mib < <(measure "$mergekit_venv/bin/mergekit-moe" "$work/moe.yaml" \
    "$work/out-mergekit" --i-understand-this-is-not-useful-without-training) || true
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# \`llmerge moe\`: a 4-expert Mixtral (bench/moe.sh)"
  echo
  echo "Synthetic llama experts ($tag, bf16), random gates, inputs warm, one run each."
  echo "Output $(python3 -c "print(f'{$out_bytes/1e9:.2f}')") GB. Load average at the end: $load"
  echo "($(nproc) cores; other jobs were running, so times are indicative only)."
  echo
  echo "| tool | wall s | peak RSS MiB |"
  echo "|---|---|---|"
  echo "| llmerge moe (all cores) | $l_s | $l_mib |"
  echo "| llmerge moe -j 1 | $l1_s | $l1_mib |"
  echo "| mergekit-moe 0.1.5 | $m_s | $m_mib |"
} > "$out"
cat "$out"
