#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan, and
# runs each for a fixed time budget from its seed corpus.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 30 s, all targets)
# Environment: BUILD_DIR (default build-fuzz), JOBS (default 2).
#
# Fails on any crash, leak, timeout (> 10 s on one input), out-of-memory
# (> 2 GB) or sanitizer report. New inputs found during the run go to
# BUILD_DIR/fuzz-work/<target>/ (the committed corpus is left alone); a
# crashing input is saved there as crash-*/leak-*/timeout-* and its path
# printed. Turn each one into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-30}
shift || true
build=${BUILD_DIR:-build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
jobs=${JOBS:-2}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_safetensors fuzz_model_folder fuzz_config_plan fuzz_mlx_quant
                                  fuzz_sentencepiece)

cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLLMERGE_BUILD_TESTS=OFF -DLLMERGE_BUILD_FUZZERS=ON >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
  work="$build/fuzz-work/$t"
  mkdir -p "$work/corpus"
  start=$(date +%s)
  rc=0
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$root/tests/fuzz/corpus/$t" \
    >"$work/log.txt" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log.txt" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$work/log.txt" | tail -1 || true)
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "FAIL $t after ${elapsed}s (exit $rc); log: $work/log.txt"
    grep -E 'ERROR:|SUMMARY:|invariant failed|Test unit written to' "$work/log.txt" | head -20 || true
  else
    echo "ok   $t: ${elapsed}s, ${runs:-?} inputs, ${cov:-cov: ?}"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}"
  exit 1
fi
