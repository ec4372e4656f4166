#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds examples/minimal_merge.cpp
# as a separate CMake project against it (find_package(llmerge)), runs it on two
# synthetic models, and checks that its weights equal the CLI's, byte for byte.
set -euo pipefail
build=$1 source=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/examples" -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null

cli=$work/prefix/bin/llmerge
"$cli" synth "$work/base" --layers 2 >/dev/null
"$cli" synth "$work/a" --like "$work/base" --seed 1 >/dev/null
cat >"$work/slerp.yaml" <<YAML
merge_method: slerp
base_model: $work/base
models:
  - model: $work/base
  - model: $work/a
parameters:
  t: [0, 0.5, 1]
YAML
"$work/example/minimal_merge" "$work/slerp.yaml" "$work/out-api" >/dev/null 2>&1
"$cli" run "$work/slerp.yaml" -o "$work/out-cli" --quiet
for f in model.safetensors config.json; do
  cmp "$work/out-api/$f" "$work/out-cli/$f"
done
echo "installed package: minimal_merge output equals the CLI's"
rm -rf "$work"
