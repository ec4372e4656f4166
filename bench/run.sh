#!/usr/bin/env bash
# End-to-end benchmark: llmerge against the I/O floor (and mergekit, if installed), one command.
#
#   bench/run.sh [--size tiny|mini|small|large] [--methods "linear ties ..."] [--out DIR]
#                [--inputs "fine_tune unrelated"] [--work DIR] [--llmerge PATH] [--repeat N]
#                [--mergekit-venv DIR] [--mergekit-timeout SECONDS] [--mergekit-reuse]
#                [--kernels PATH] [--one-thread yes|no] [--callgrind]
#
# In one run it
#   1. makes (or reuses) synthetic llama-shaped bf16 models with `llmerge synth` under the work
#      dir (default ${TMPDIR:-/tmp}/llmerge-bench/SIZE, outside the repository): a base, and for
#      each input kind of --inputs two more models, either fine-tunes of the base
#      (`fine_tune`: `--like base --delta-scale 0.01`, task vectors of a few bf16 ulps) or
#      independent random weights (`unrelated`: plain `synth` with other seeds, task vectors as
#      wide as the weights: different fine-tunes, continued pre-training);
#   2. measures the I/O floor: reading every input file with the page cache cold (the inputs'
#      pages are evicted with POSIX_FADV_DONTNEED through `dd iflag=nocache count=0`, no root
#      needed) and warm, and writing one model's worth of bytes with `dd ... conv=fsync` (llmerge
#      also fsyncs what it writes);
#   3. runs `llmerge run` for each method and input kind with all cores and with --threads 1,
#      inputs warm (the fastest of --repeat N, and their median; runs of 20 s or more are not
#      repeated; --one-thread no skips the --threads 1 runs), plus
#      one cold-cache run of the first method, under /usr/bin/time (peak RSS, CPU %), and records
#      the planner's peak memory estimate (`llmerge plan --json`) next to the measured peak RSS;
#   4. runs `mergekit-yaml` on the same configs if a mergekit venv is given (MERGEKIT_VENV or
#      --mergekit-venv; otherwise skipped). Its rows are kept with the models, and
#      --mergekit-reuse puts them in later reports without running mergekit again (mergekit's
#      times do not change when llmerge does);
#   5. writes results.json, results.md and results.svg into --out (default: bench/SIZE), with
#      bench/report.py (Python standard library only).
#
# Floor for a merge = input bytes / warm read rate + output bytes / write rate, where the input
# bytes are the safetensors files of every distinct model the config names (passthrough: the
# bytes it copies, i.e. the output size). Ratio to floor = wall time / floor.
#
# With --callgrind, each method and input kind also runs once more at --threads 1 under
# `valgrind --tool=callgrind`, and the report gets its instructions per output element: a figure
# that does not depend on the machine's load. Use it with --size cg (one decoder layer with
# Qwen2.5-0.5B's shapes and a 4096-token vocabulary, 43 MB per model; a few minutes for every
# method): callgrind runs some 50 times slower than the machine.
#
# Exit status: 0, or 1 when an llmerge run failed (the report is still written; mergekit failures
# and timeouts are only reported), or 2 for bad arguments.
#
# Sizes: tiny (a few MB; seconds; run by ctest so the harness cannot rot), cg (see --callgrind), mini (Qwen2.5-0.5B
# shapes, ~1 GB per model), small (Llama-3.2-1B shapes, ~2.5 GB per model), large (Llama-3.2-3B
# shapes, ~6.4 GB per model).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size=small
methods_arg=""
out_dir=""  # default: bench/SIZE
work_root="${LLMERGE_BENCH_WORK:-${TMPDIR:-/tmp}/llmerge-bench}"
work_dir=""
llmerge="${LLMERGE:-$repo/build/src/llmerge}"
repeat=1
mergekit_venv="${MERGEKIT_VENV:-}"
mergekit_timeout=1200
mergekit_reuse=0
kernels_bench=""
input_kinds="fine_tune unrelated"
one_thread=yes
callgrind=0
callgrind_size=""

usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --methods) methods_arg=$2; shift 2 ;;
    --inputs) input_kinds=$2; shift 2 ;;
    --out) out_dir=$2; shift 2 ;;
    --work) work_dir=$2; shift 2 ;;
    --llmerge) llmerge=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --mergekit-venv) mergekit_venv=$2; shift 2 ;;
    --mergekit-timeout) mergekit_timeout=$2; shift 2 ;;
    --mergekit-reuse) mergekit_reuse=1; shift ;;
    --kernels) kernels_bench=$2; shift 2 ;;
    --one-thread) one_thread=$2; shift 2 ;;
    --callgrind) callgrind=1; shift ;;
    --callgrind-size) callgrind=1; callgrind_size=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

# shape_of SIZE: sets `shape` to the synth arguments of SIZE; returns 1 for an unknown size.
shape_of() {
  case "$1" in
    tiny) shape=(--layers 2 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --vocab 2048) ;;
    cgs) shape=(--layers 1 --hidden 896 --intermediate 608 --heads 14 --kv-heads 2 --vocab 512) ;;
    cg) shape=(--layers 1 --hidden 896 --intermediate 4864 --heads 14 --kv-heads 2 --vocab 4096) ;;
    mini) shape=(--layers 24 --hidden 896 --intermediate 4864 --heads 14 --kv-heads 2 --vocab 151936) ;;
    small) shape=(--params 1B) ;;
    large) shape=(--params 3B) ;;
    *) return 1 ;;
  esac
}
shape_of "$size" || { echo "run.sh: --size must be tiny, cgs, cg, mini, small or large, not '$size'" >&2; exit 2; }
synth_shape=("${shape[@]}")
if [ -n "$callgrind_size" ]; then
  shape_of "$callgrind_size" || { echo "run.sh: --callgrind-size must be tiny, cgs, cg, mini, small or large" >&2; exit 2; }
  callgrind_shape=("${shape[@]}")
fi
for k in $input_kinds; do
  case "$k" in fine_tune | unrelated) ;; *) echo "run.sh: --inputs takes fine_tune and/or unrelated, not '$k'" >&2; exit 2 ;; esac
done
case "$repeat" in '' | *[!0-9]* | 0) echo "run.sh: --repeat must be a positive integer" >&2; exit 2 ;; esac
case "$one_thread" in yes | no) ;; *) echo "run.sh: --one-thread takes yes or no" >&2; exit 2 ;; esac
if [ "$callgrind" = 1 ] && ! command -v valgrind >/dev/null; then
  echo "run.sh: --callgrind needs valgrind (apt-get install valgrind)" >&2; exit 2
fi

[ -x "$llmerge" ] || { echo "run.sh: no llmerge at $llmerge (build first, or pass --llmerge)" >&2; exit 2; }
llmerge=$(cd "$(dirname "$llmerge")" && pwd)/$(basename "$llmerge")
time_bin=/usr/bin/time
[ -x "$time_bin" ] || { echo "run.sh: $time_bin is missing (apt-get install time)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "run.sh: python3 is needed for the report" >&2; exit 2; }
mergekit_yaml=""
if [ -n "$mergekit_venv" ]; then
  mergekit_yaml="$mergekit_venv/bin/mergekit-yaml"
  [ -x "$mergekit_yaml" ] || { echo "run.sh: no mergekit-yaml in $mergekit_venv/bin" >&2; exit 2; }
fi

work_dir=${work_dir:-$work_root/$size}
out_dir=${out_dir:-$repo/bench/$size}
mkdir -p "$work_dir" "$out_dir"
work_dir=$(cd "$work_dir" && pwd)
out_dir=$(cd "$out_dir" && pwd)
models="$work_dir/models"
configs="$work_dir/configs"
runs="$work_dir/runs"
raw="$work_dir/raw.jsonl"
log="$work_dir/log.txt"
mkdir -p "$models" "$configs" "$runs"
: >"$raw"
: >"$log"
all_cores=$(nproc)

say() { echo "bench: $*" | tee -a "$log" >&2; }
now_ns() { date +%s%N; }
load1() { cut -d' ' -f1 /proc/loadavg; }
safetensors_of() { find "$1" -maxdepth 1 -name '*.safetensors' | sort; }
bytes_of() { local s=0 f; for f in $(safetensors_of "$1"); do s=$((s + $(stat -c %s "$f"))); done; echo $s; }
# Fraction of the given files' bytes that are in the page cache, e.g. 0.98.
cached_fraction() {
  command -v fincore >/dev/null || { echo null; return; }
  fincore --bytes --noheadings --output RES,SIZE "$@" 2>/dev/null |
    awk '{r += $1; s += $2} END {if (s > 0) printf "%.3f", r / s; else print "null"}'
}
evict() { local f; sync; for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none; done; }

# One JSON object per measurement, appended to raw.jsonl (fields are numbers or plain words).
record() { echo "$1" >>"$raw"; }

# measure NAME -- CMD...: runs CMD under /usr/bin/time; sets m_wall m_rss_kb m_cpu (percent)
# m_cpu_s (user + system seconds) m_status m_load (1-minute load average before the run).
measure() {
  local name=$1; shift 2
  local tfile="$work_dir/time.txt" start end
  sync
  m_load=$(load1)
  start=$(now_ns)
  set +e
  "$time_bin" -f '%M %P %U %S' -o "$tfile" "$@" >>"$log" 2>&1
  m_status=$?
  set -e
  end=$(now_ns)
  m_wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  # /usr/bin/time prefixes a "Command exited with non-zero status" line on failure.
  read -r m_rss_kb m_cpu m_user m_sys < <(tail -n 1 "$tfile")
  m_cpu_s=$(awk -v u="$m_user" -v s="$m_sys" 'BEGIN {printf "%.2f", u + s}')
  m_cpu=${m_cpu%\%}
  [[ "$m_cpu" =~ ^[0-9]+$ ]] || m_cpu=null
  [[ "$m_rss_kb" =~ ^[0-9]+$ ]] || m_rss_kb=null
  say "$name: ${m_wall} s, peak RSS ${m_rss_kb} KiB, CPU ${m_cpu}% (${m_cpu_s} s), exit ${m_status}, load ${m_load}"
}

# ---- 1. models ----------------------------------------------------------------------------
# Models: base; fine_tune: a, b (fine-tunes of base); unrelated: ua, ub (independent weights).
# make_models DIR SYNTH_ARGS...: makes them in DIR, or reuses them while the options and
# llmerge's version are unchanged.
make_models() {
  local dir=$1 stamp; shift
  stamp="synth $* | a: --like base --delta-scale 0.01 --seed 1 | b: --seed 2 | $("$llmerge" --version 2>/dev/null || echo unknown)"
  if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] && [ -f "$dir/b/config.json" ]; then
    say "reusing models in $dir"
  else
    say "making models in $dir ($*)"
    rm -rf "$dir" && mkdir -p "$dir"
    "$llmerge" synth "$dir/base" "$@" --seed 0 | tee -a "$log"
    "$llmerge" synth "$dir/a" --like "$dir/base" --delta-scale 0.01 --seed 1 | tee -a "$log"
    "$llmerge" synth "$dir/b" --like "$dir/base" --delta-scale 0.01 --seed 2 | tee -a "$log"
    echo "$stamp" >"$dir/stamp"
  fi
  if [[ " $input_kinds " == *" unrelated "* ]] && ! [ -f "$dir/ub/config.json" ]; then
    say "making unrelated models in $dir ($*, seeds 11 and 12)"
    "$llmerge" synth "$dir/ua" "$@" --seed 11 | tee -a "$log"
    "$llmerge" synth "$dir/ub" "$@" --seed 12 | tee -a "$log"
  fi
}
record "{\"kind\":\"meta\",\"key\":\"uptime_start\",\"value\":\"$(uptime | sed 's/.*load average/load average/')\"}"
make_models "$models" "${synth_shape[@]}"
[ -n "$callgrind_size" ] && make_models "$work_dir/callgrind-$callgrind_size/models" "${callgrind_shape[@]}"
layers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' \
  "$models/base/config.json")
model_bytes=$(bytes_of "$models/base")
mapfile -t input_files < <(for m in base a b; do safetensors_of "$models/$m"; done)
# Every input of every kind (kept warm for the runs; the floor is measured on base, a and b).
mapfile -t all_input_files < <(for m in base a b ua ub; do [ -d "$models/$m" ] && safetensors_of "$models/$m"; done)
input_bytes_all=0
for f in "${input_files[@]}"; do input_bytes_all=$((input_bytes_all + $(stat -c %s "$f"))); done

# ---- 2. I/O floor -------------------------------------------------------------------------
evict "${input_files[@]}"
cold_fraction=$(cached_fraction "${input_files[@]}")
measure "read inputs, cold (cached before: $cold_fraction)" -- sh -c 'cat "$@" >/dev/null' sh "${input_files[@]}"
record "{\"kind\":\"floor\",\"op\":\"read\",\"cache\":\"cold\",\"cached_before\":$cold_fraction,\"bytes\":$input_bytes_all,\"wall_s\":$m_wall,\"load1\":$m_load,\"command\":\"cat INPUTS >/dev/null\"}"
# Warm: read until the inputs are (nearly) all cached before the timed read, at most 4 times.
for i in 1 2 3 4; do
  warm_fraction=$(cached_fraction "${input_files[@]}")
  measure "read inputs, warm #$i (cached before: $warm_fraction)" -- sh -c 'cat "$@" >/dev/null' sh "${input_files[@]}"
  [ "$i" -ge 2 ] && awk -v f="$warm_fraction" 'BEGIN {exit !(f == "null" || f >= 0.99)}' && break
done
record "{\"kind\":\"floor\",\"op\":\"read\",\"cache\":\"warm\",\"cached_before\":$warm_fraction,\"bytes\":$input_bytes_all,\"wall_s\":$m_wall,\"load1\":$m_load,\"command\":\"cat INPUTS >/dev/null\"}"
copy_dir="$work_dir/floor-copy"
best_write=""
for i in $(seq "$repeat"); do
  rm -rf "$copy_dir" && mkdir -p "$copy_dir" && sync
  measure "write $model_bytes bytes #$i" -- sh -c 'for f in "$@"; do dd if="$f" of="$0/$(basename "$f")" bs=8M conv=fsync status=none || exit 1; done' \
    "$copy_dir" $(safetensors_of "$models/base")
  if [ -z "$best_write" ] || awk -v a="$m_wall" -v b="$best_write" 'BEGIN {exit !(a < b)}'; then
    best_write=$m_wall
  fi
done
rm -rf "$copy_dir"
record "{\"kind\":\"floor\",\"op\":\"write\",\"cache\":\"warm\",\"bytes\":$model_bytes,\"wall_s\":$best_write,\"load1\":$m_load,\"command\":\"dd if=BASE_SHARD of=NEW bs=8M conv=fsync\"}"

# ---- 3. configs ---------------------------------------------------------------------------
candidates="linear slerp nuslerp multislerp karcher task_arithmetic ties dare_ties dare_linear breadcrumbs breadcrumbs_ties della della_linear model_stock sce ram ramplus_tl nearswap arcee_fusion passthrough"
if [ -n "$methods_arg" ]; then
  candidates=$methods_arg
fi

# write_config METHOD FILE [KIND]: a mergekit-schema config over the bench models (both tools
# read it); KIND fine_tune (default) merges a and b, unrelated merges ua and ub.
write_config() {
  local m=$1 f=$2 B="$models/base" A="$models/a" C="$models/b" half=$((layers / 2))
  if [ "${3:-fine_tune}" = unrelated ]; then A="$models/ua" C="$models/ub"; fi
  case "$m" in
    linear)
      printf 'merge_method: linear\nmodels:\n  - model: %s\n    parameters: {weight: 0.5}\n  - model: %s\n    parameters: {weight: 0.5}\ndtype: bfloat16\n' "$A" "$C" ;;
    slerp)
      printf 'merge_method: slerp\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\nparameters: {t: 0.5}\ndtype: bfloat16\n' "$B" "$B" "$A" ;;
    nuslerp)
      printf 'merge_method: nuslerp\nmodels:\n  - model: %s\n    parameters: {weight: 0.5}\n  - model: %s\n    parameters: {weight: 0.5}\ndtype: bfloat16\n' "$A" "$C" ;;
    multislerp)
      printf 'merge_method: multislerp\nmodels:\n  - model: %s\n    parameters: {weight: 0.5}\n  - model: %s\n    parameters: {weight: 0.5}\ndtype: bfloat16\n' "$A" "$C" ;;
    karcher)
      printf 'merge_method: karcher\nmodels:\n  - model: %s\n  - model: %s\ndtype: bfloat16\n' "$A" "$C" ;;
    sce)
      printf 'merge_method: sce\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\nparameters: {select_topk: 0.5}\ndtype: bfloat16\n' "$B" "$A" "$C" ;;
    ram | ramplus_tl)
      printf "merge_method: $m\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\ndtype: bfloat16\n" "$B" "$A" "$C" ;;
    nearswap)
      printf 'merge_method: nearswap\nbase_model: %s\nmodels:\n  - model: %s\nparameters: {t: 0.001}\ndtype: bfloat16\n' "$B" "$A" ;;
    arcee_fusion)
      printf 'merge_method: arcee_fusion\nbase_model: %s\nmodels:\n  - model: %s\ndtype: bfloat16\n' "$B" "$A" ;;
    task_arithmetic | model_stock)
      local p=""; [ "$m" = task_arithmetic ] && p='    parameters: {weight: 0.5}\n'
      printf "merge_method: $m\nbase_model: %s\nmodels:\n  - model: %s\n$p  - model: %s\n${p}dtype: bfloat16\n" "$B" "$A" "$C" ;;
    ties | dare_ties | dare_linear)
      printf "merge_method: $m\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.5, density: 0.5}\n  - model: %s\n    parameters: {weight: 0.5, density: 0.5}\ndtype: bfloat16\n" "$B" "$A" "$C" ;;
    breadcrumbs | breadcrumbs_ties)
      printf "merge_method: $m\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.5, density: 0.9, gamma: 0.01}\n  - model: %s\n    parameters: {weight: 0.5, density: 0.9, gamma: 0.01}\ndtype: bfloat16\n" "$B" "$A" "$C" ;;
    della | della_linear)
      printf "merge_method: $m\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}\n  - model: %s\n    parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}\nparameters: {lambda: 1.0}\ndtype: bfloat16\n" "$B" "$A" "$C" ;;
    passthrough)
      # One-layer models (cgs, cg): one slice, since an empty layer range is an error.
      [ "$half" -lt 1 ] && { printf 'merge_method: passthrough\nslices:\n  - sources:\n      - model: %s\n        layer_range: [0, %d]\ndtype: bfloat16\n' "$A" "$layers"; return; }
      printf 'merge_method: passthrough\nslices:\n  - sources:\n      - model: %s\n        layer_range: [0, %d]\n  - sources:\n      - model: %s\n        layer_range: [%d, %d]\ndtype: bfloat16\n' "$A" "$half" "$C" "$half" "$layers" ;;
    *) return 1 ;;
  esac >"$f"
}

# Bytes a merge must read: every distinct model named in the config (passthrough: what it copies).
config_input_bytes() {
  local m=$1 f=$2
  if [ "$m" = passthrough ]; then echo "$model_bytes"; return; fi
  local s=0 d
  for d in base a b ua ub; do grep -q "$models/$d\$" "$f" && s=$((s + $(bytes_of "$models/$d"))); done
  echo $s
}

methods=()
for m in $candidates; do
  cfg="$configs/$m.yaml"
  if ! write_config "$m" "$cfg"; then
    say "$m: no config template for this method; skipped"
    record "{\"kind\":\"skip\",\"method\":\"$m\",\"reason\":\"no config template in run.sh\"}"
    continue
  fi
  write_config "$m" "$configs/unrelated-$m.yaml" unrelated
  methods+=("$m")
done

# ---- 4. llmerge ---------------------------------------------------------------------------
# The planner's peak memory estimate in bytes for CONFIG at THREADS threads ("null" if unknown).
plan_estimate() {
  "$llmerge" plan "$1" --json --threads "$2" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("peak_memory_estimate", "null"))' 2>/dev/null ||
    echo null
}

# Elements of the output: the sum of its tensors' element counts, from the safetensors headers.
output_elements() {
  python3 - "$@" <<'PY'
import json, struct, sys
n = 0
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    for name, t in header.items():
        if name != "__metadata__":
            e = 1
            for d in t["shape"]:
                e *= d
            n += e
print(n)
PY
}

run_one() { # TOOL METHOD THREADS CACHE [KIND]
  local tool=$1 m=$2 threads=$3 cache=$4 kind=${5:-fine_tune}
  local cfg="$configs/$2.yaml" dest="$runs/$1-$2" estimate=null
  [ "$kind" = unrelated ] && cfg="$configs/unrelated-$2.yaml"
  [ "$tool" = llmerge ] && estimate=$(plan_estimate "$cfg" "$threads")
  local in_bytes out_bytes best="" best_rss="" best_cpu="" best_cpu_s="" best_load="" status=0 cached
  local flush=0 best_flush=0 t0 walls=""
  in_bytes=$(config_input_bytes "$m" "$cfg")
  for i in $(seq "$repeat"); do
    rm -rf "$dest"
    [ "$cache" = cold ] && evict "${input_files[@]}"
    cached=$(cached_fraction "${input_files[@]}")
    if [ "$tool" = llmerge ]; then
      measure "llmerge $m threads=$threads $cache #$i" -- "$llmerge" run "$cfg" -o "$dest" --quiet --threads "$threads"
    else
      # Offline: the bench models are local, and mergekit must not wait on the network.
      measure "mergekit $m $cache #$i" -- env HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
        timeout "$mergekit_timeout" "$mergekit_yaml" "$cfg" "$dest" --quiet
    fi
    status=$m_status
    [ "$status" -ne 0 ] && break
    walls="$walls $m_wall"
    # mergekit does not fsync its output, llmerge does: time the flush of mergekit's files apart.
    if [ "$tool" = mergekit ]; then
      t0=$(now_ns)
      sync $(safetensors_of "$dest")
      flush=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
      say "mergekit $m: sync of its output: $flush s"
    fi
    if [ -z "$best" ] || awk -v a="$m_wall" -v b="$best" 'BEGIN {exit !(a < b)}'; then
      best=$m_wall best_rss=$m_rss_kb best_cpu=$m_cpu best_cpu_s=$m_cpu_s best_load=$m_load
      best_flush=$flush
    fi
    # A run of 20 s or more is CPU-bound and steady enough; repeating it costs too much.
    awk -v a="$m_wall" 'BEGIN {exit !(a >= 20)}' && break
  done
  if [ "$status" -ne 0 ]; then
    local why=failed
    [ "$status" -eq 124 ] && why=timeout
    say "$tool $m: $why (exit $status); see $log"
    [ "$tool" = llmerge ] && llmerge_failures=$((llmerge_failures + 1))
    record "{\"kind\":\"run\",\"tool\":\"$tool\",\"method\":\"$m\",\"inputs\":\"$kind\",\"threads\":$threads,\"cache\":\"$cache\",\"status\":\"$why\",\"exit\":$status,\"wall_s\":$m_wall,\"input_bytes\":$in_bytes,\"load1\":$m_load}"
    rm -rf "$dest"
    return 0
  fi
  out_bytes=$(bytes_of "$dest")
  local elements
  elements=$(output_elements $(safetensors_of "$dest"))
  local median
  median=$(echo $walls | tr ' ' '\n' | sort -g | awk '{w[NR] = $1} END {printf "%.3f", NR % 2 ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2}')
  record "{\"kind\":\"run\",\"tool\":\"$tool\",\"method\":\"$m\",\"inputs\":\"$kind\",\"threads\":$threads,\"cache\":\"$cache\",\"estimate_bytes\":$estimate,\"cached_before\":$cached,\"status\":\"ok\",\"wall_s\":$best,\"wall_median_s\":$median,\"runs_done\":$(echo $walls | wc -w),\"repeats\":$repeat,\"peak_rss_kb\":$best_rss,\"cpu_pct\":$best_cpu,\"cpu_s\":$best_cpu_s,\"flush_s\":$best_flush,\"input_bytes\":$in_bytes,\"output_bytes\":$out_bytes,\"output_elements\":$elements,\"load1\":$best_load}"
  rm -rf "$dest"
}

llmerge_failures=0
llmerge_methods=()
for m in "${methods[@]}"; do
  if err=$("$llmerge" plan "$configs/$m.yaml" 2>&1 >/dev/null); then
    llmerge_methods+=("$m")
  else
    # First line, without the "llmerge: error: PATH:" prefix (no machine paths in the report).
    reason=$(echo "$err" | head -n 1 | sed -e 's/^llmerge: error: //' -e 's|^[^ ]*\.yaml:[0-9:]* *||' |
      tr -d '"\\' | cut -c1-160)
    say "llmerge $m: the planner refuses it ($reason); skipped"
    record "{\"kind\":\"skip\",\"tool\":\"llmerge\",\"method\":\"$m\",\"reason\":\"planner: $reason\"}"
  fi
done

# Expected duration, from what each method cost on the 2-core VM bench/results.md was made on:
# CPU ns per output element at 2 threads (mini, both kinds averaged) and callgrind instructions
# per element; callgrind simulates about 80 M instructions a second there.
expected_duration() {
  local elements=$(($1 / 2)) cg_elements=$(($2 / 2)) m ns ir total=0 cg=0
  for kind in $input_kinds; do
    for m in "${llmerge_methods[@]}"; do
      case "$m" in
        linear | passthrough | task_arithmetic) ns=2 ir=10 ;;
        slerp | nearswap) ns=2.5 ir=25 ;;
        nuslerp | karcher | multislerp) ns=3 ir=45 ;;
        ties | dare_ties | dare_linear | breadcrumbs | breadcrumbs_ties | model_stock) ns=6 ir=95 ;;
        ram | ramplus_tl) ns=6 ir=95 ;;
        della | della_linear) ns=12 ir=190 ;;
        sce) ns=10 ir=160 ;;
        arcee_fusion) ns=25 ir=350 ;;
        *) ns=10 ir=100 ;;
      esac
      total=$(awk -v t="$total" -v n="$ns" -v e="$elements" -v c="$all_cores" -v r="$repeat" \
        -v one="$one_thread" 'BEGIN {s = n * e / 1e9; w = s / c + 1.5; if (w < 2) w = 2;
          t += r * w + 1; if (one == "yes" && c > 1) t += r * (s + 1.5); printf "%.0f", t}')
      [ "$callgrind" = 1 ] && cg=$(awk -v t="$cg" -v i="$ir" -v e="$cg_elements" \
        'BEGIN {printf "%.0f", t + (i * e / 80e6) + 2}')
    done
  done
  echo "$((total + 30)) $cg"
}
cg_bytes=$model_bytes
[ -n "$callgrind_size" ] && cg_bytes=$(bytes_of "$work_dir/callgrind-$callgrind_size/models/base")
read -r expect_timed expect_cg < <(expected_duration "$model_bytes" "$cg_bytes")
say "expected duration on a 2-core machine like the one bench/results.md records: about" \
  "$(((expect_timed + 59) / 60)) min of timed runs${callgrind:+}$([ "$callgrind" = 1 ] && echo " + $(((expect_cg + 59) / 60)) min under callgrind")" \
  "(the models and the floor, done above, come on top)"

# Warm the inputs once more (the floor's writes may have pushed some out).
cat "${all_input_files[@]}" >/dev/null
for kind in $input_kinds; do
  for m in "${llmerge_methods[@]}"; do
    run_one llmerge "$m" "$all_cores" warm "$kind"
    [ "$all_cores" -gt 1 ] && [ "$one_thread" = yes ] && run_one llmerge "$m" 1 warm "$kind"
  done
done
if [ ${#llmerge_methods[@]} -gt 0 ]; then
  run_one llmerge "${llmerge_methods[0]}" "$all_cores" cold
  cat "${all_input_files[@]}" >/dev/null
fi

# ---- 4b. instruction counts (--callgrind) -------------------------------------------------
if [ "$callgrind" = 1 ]; then
  # --callgrind-size: the counts come from models of that size (made or reused here), with the
  # same config templates; the timed runs above keep --size's.
  cg_configs=$configs
  if [ -n "$callgrind_size" ]; then
    cg_configs="$work_dir/callgrind-$callgrind_size/configs"
    mkdir -p "$cg_configs"
    make_models "$work_dir/callgrind-$callgrind_size/models" "${callgrind_shape[@]}"
    saved_models=$models saved_layers=$layers
    models="$work_dir/callgrind-$callgrind_size/models"
    layers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' \
      "$models/base/config.json")
    for m in "${llmerge_methods[@]}"; do
      write_config "$m" "$cg_configs/$m.yaml"
      write_config "$m" "$cg_configs/unrelated-$m.yaml" unrelated
    done
    models=$saved_models layers=$saved_layers
    record "{\"kind\":\"meta\",\"key\":\"callgrind_synth\",\"value\":\"${callgrind_shape[*]}\"}"
  fi
  for kind in $input_kinds; do
    for m in "${llmerge_methods[@]}"; do
      cfg="$cg_configs/$m.yaml"
      [ "$kind" = unrelated ] && cfg="$cg_configs/unrelated-$m.yaml"
      dest="$runs/callgrind-$m" cg_out="$work_dir/callgrind-$kind-$m.out"
      rm -rf "$dest"
      if valgrind --tool=callgrind --callgrind-out-file="$cg_out" \
        "$llmerge" run "$cfg" -o "$dest" --quiet --threads 1 >>"$log" 2>&1; then
        ir=$(awk '/^summary:/ {print $2; exit}' "$cg_out")
        elements=$(output_elements $(safetensors_of "$dest"))
        say "callgrind $m $kind: $ir instructions, $elements output elements"
        record "{\"kind\":\"callgrind\",\"method\":\"$m\",\"inputs\":\"$kind\",\"instructions\":$ir,\"elements\":$elements}"
      else
        say "callgrind $m $kind: failed; see $log"
      fi
      rm -rf "$dest"
    done
  done
fi

# ---- 5. mergekit --------------------------------------------------------------------------
mk_cache="$models/mergekit-results.jsonl"
if [ -n "$mergekit_yaml" ]; then
  mk_version=$("$mergekit_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mergekit"))' 2>/dev/null || echo unknown)
  record "{\"kind\":\"meta\",\"key\":\"mergekit_version\",\"value\":\"$mk_version\"}"
  for m in "${methods[@]}"; do
    run_one mergekit "$m" "$all_cores" warm
  done
  # Update the kept rows: this run's methods replace their earlier rows, the others stay.
  ran=$(IFS='|'; echo "${methods[*]}")
  {
    [ -f "$mk_cache" ] && grep -v -E -e '"key":"mergekit_version"' -e "\"method\":\"($ran)\"," "$mk_cache"
    grep -e '"key":"mergekit_version"' -e '"tool":"mergekit"' "$raw"
  } >"$mk_cache.new" || true
  mv "$mk_cache.new" "$mk_cache"
elif [ "$mergekit_reuse" = 1 ] && [ -s "$mk_cache" ]; then
  mk_date=$(date -r "$mk_cache" '+%F %T')
  say "mergekit: reusing the rows of an earlier run on these models ($mk_cache, $mk_date)"
  grep -e '"key":"mergekit_version"' "$mk_cache" >>"$raw" || true
  for m in "${methods[@]}"; do grep -e "\"tool\":\"mergekit\",\"method\":\"$m\"," "$mk_cache" >>"$raw" || true; done
  record "{\"kind\":\"meta\",\"key\":\"mergekit_reused\",\"value\":\"$mk_date\"}"
else
  say "mergekit: skipped (set MERGEKIT_VENV or pass --mergekit-venv to compare)"
fi

# ---- 6. kernel micro-benchmarks (optional) -----------------------------------------------
kernels_json=""
if [ -n "$kernels_bench" ]; then
  kernels_json="$work_dir/kernels.json"
  say "kernel micro-benchmarks: $kernels_bench"
  "$kernels_bench" --benchmark_format=json --benchmark_out="$kernels_json" \
    --benchmark_out_format=json >>"$log" 2>&1 || { say "kernel benchmarks failed"; kernels_json=""; }
fi
# Whole methods on one tensor, no I/O: methods_bench, built next to kernels_bench.
methods_json=""
methods_bench="$(dirname "${kernels_bench:-.}")/methods_bench"
if [ -n "$kernels_bench" ] && [ -x "$methods_bench" ]; then
  methods_json="$work_dir/methods.json"
  say "method micro-benchmarks: $methods_bench"
  "$methods_bench" --benchmark_format=json --benchmark_out="$methods_json" \
    --benchmark_out_format=json >>"$log" 2>&1 || { say "method benchmarks failed"; methods_json=""; }
fi

# ---- 7. report ----------------------------------------------------------------------------
record "{\"kind\":\"meta\",\"key\":\"uptime_end\",\"value\":\"$(uptime | sed 's/.*load average/load average/')\"}"
args=(--raw "$raw" --out "$out_dir" --size "$size" --llmerge "$llmerge" --work "$work_dir"
  --synth "${synth_shape[*]}" --command "${BENCH_COMMAND:-bench/run.sh --size $size${methods_arg:+ --methods \"$methods_arg\"} --inputs \"$input_kinds\" --repeat $repeat --one-thread $one_thread${callgrind_size:+ --callgrind-size $callgrind_size}}${mergekit_yaml:+ (MERGEKIT_VENV set)}")
[ -n "$kernels_json" ] && args+=(--kernels "$kernels_json")
[ -n "$methods_json" ] && args+=(--methods-bench "$methods_json")
[ -f "$repo/bench/notes.md" ] && args+=(--notes "$repo/bench/notes.md")
python3 "$repo/bench/report.py" "${args[@]}"
say "wrote $out_dir/results.md, results.json, results.svg"
if [ "$llmerge_failures" -gt 0 ]; then
  say "$llmerge_failures llmerge run(s) failed; see $log"
  exit 1
fi
