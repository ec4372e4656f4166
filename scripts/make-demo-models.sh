#!/usr/bin/env bash
# Writes the small synthetic models that examples/*.yaml refer to, under demo/models/.
# Usage: scripts/make-demo-models.sh PATH/TO/llmerge [DEST_DIR]
set -euo pipefail
llmerge=$1
dest=${2:-demo/models}
shape=(--family llama --hidden 256 --intermediate 688 --heads 8 --kv-heads 4 --vocab 1024 --dtype bf16)

"$llmerge" synth "$dest/base" "${shape[@]}" --layers 6 --seed 1 --force >/dev/null
"$llmerge" synth "$dest/a" --like "$dest/base" --delta-scale 0.02 --seed 2 --force >/dev/null
"$llmerge" synth "$dest/b" --like "$dest/base" --delta-scale 0.02 --seed 3 --force >/dev/null
"$llmerge" synth "$dest/shallow" "${shape[@]}" --layers 4 --seed 4 --force >/dev/null
