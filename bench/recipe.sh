#!/usr/bin/env bash
# A 3-stage recipe (mergekit-multi's multi-document YAML) run stage by stage and in one pass, in
# one run: what writing the intermediate models costs in time, memory and disk.
#
#   bench/recipe.sh [--llmerge PATH] [--work DIR] [--layers N] [--hidden N] [--intermediate N]
#                   [--threads N] [--repeat N]
#
# Stages, all element-wise (docs/recipes.md §3): `mix` = linear(a, b);
# `tuned` = task_arithmetic(base; mix, c); output = dare_linear(base; tuned, a) with a seed and
# rescale: false. Staged (--staged --no-lazy): every named stage is written to <work>/stages and
# read back by the next. One pass (the default): no intermediate model is written. The I/O floor
# is one linear merge of the same four inputs into an output of the same size: it reads and
# writes what the one-pass run must, with the least arithmetic.
# For each: wall time and CPU time (user + system; best of --repeat runs by wall time), peak RSS,
# and the bytes left in the intermediate folder. The one-pass output is compared byte for byte
# with the staged one (model.safetensors and config.json). Timings depend on the machine's
# load; bytes do not.
set -euo pipefail
LLMERGE=build/src/llmerge
WORK=${TMPDIR:-/tmp}/llmerge-bench-recipe
LAYERS=8
HIDDEN=512
INTERMEDIATE=1408
THREADS=2
REPEAT=3
while [ $# -gt 0 ]; do
  case "$1" in
    --llmerge) LLMERGE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --hidden) HIDDEN=$2; shift 2 ;;
    --intermediate) INTERMEDIATE=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
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
merge_method: task_arithmetic
base_model: base
models:
  - {model: mix, parameters: {weight: 1.0}}
  - {model: c, parameters: {weight: 0.5}}
---
merge_method: dare_linear
base_model: base
parameters: {rescale: false}
models:
  - {model: tuned, parameters: {weight: 1.0, density: 0.5}}
  - {model: a, parameters: {weight: 0.3, density: 0.5}}
YAML
cat > floor.yaml <<YAML
merge_method: linear
models:
  - {model: base, parameters: {weight: 0.25}}
  - {model: a, parameters: {weight: 0.25}}
  - {model: b, parameters: {weight: 0.25}}
  - {model: c, parameters: {weight: 0.25}}
YAML
common=(--force --quiet --threads "$THREADS" --random-seed 1)
python3 - "$REPEAT" "$LLMERGE" "${common[@]}" <<'PY'
import filecmp, os, shutil, subprocess, sys, time

repeat, llmerge, common = int(sys.argv[1]), sys.argv[2], sys.argv[3:]

def du(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total

def measure(args, before=None):
    """Best of `repeat` runs by wall time: (wall, cpu, peak RSS in bytes)."""
    best = None
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        p = subprocess.Popen([llmerge] + args + common)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if status != 0:
            sys.exit(f"llmerge {' '.join(args)} failed")
        run = (wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024)
        best = run if best is None or run[0] < best[0] else best
    return best

clear = lambda: shutil.rmtree("stages", ignore_errors=True)
staged = measure(["run", "recipe.yaml", "-o", "out-staged", "--staged", "--intermediate-dir",
                  "stages", "--no-lazy"], clear)
stage_bytes = du("stages")
clear()
one = measure(["run", "recipe.yaml", "-o", "out-one-pass", "--intermediate-dir", "stages"])
one_bytes = du("stages")  # one pass writes nothing there: 0
floor = measure(["run", "floor.yaml", "-o", "out-floor"])
out_bytes = du("out-staged")
same = all(filecmp.cmp(os.path.join("out-staged", f), os.path.join("out-one-pass", f), shallow=False)
           for f in ("model.safetensors", "config.json")
           if os.path.exists(os.path.join("out-staged", f)))
print(f"3-stage recipe, output {out_bytes/1e6:.1f} MB, best of {repeat}:")
for name, (wall, cpu, rss), written in (("staged", staged, stage_bytes),
                                       ("one pass", one, one_bytes),
                                       ("I/O floor (one linear merge of the 4 inputs)", floor, 0)):
    print(f"  {name:46s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  peak RSS {rss/2**20:6.1f} MiB  "
          f"intermediate models {written/1e6:6.1f} MB")
print(f"  one pass / staged: wall {one[0]/staged[0]:.2f}, cpu {one[1]/staged[1]:.2f}; "
      f"{stage_bytes/1e6:.1f} MB of intermediate models not written")
print(f"  one-pass output equals the staged output byte for byte: {'yes' if same else 'NO'}")
sys.exit(0 if same else 1)
PY
