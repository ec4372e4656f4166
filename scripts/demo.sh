#!/usr/bin/env bash
# `make demo`: two small synthetic models and a real TIES merge of them.
set -euo pipefail
llmerge=${1:-build/src/llmerge}
cd "$(dirname "$0")/.."

echo "== making synthetic models under demo/models/"
bash scripts/make-demo-models.sh "$llmerge" demo/models
"$llmerge" inspect demo/models/a

echo
echo "== plan: examples/ties.yaml"
"$llmerge" plan examples/ties.yaml

echo
echo "== run: examples/ties.yaml"
"$llmerge" run examples/ties.yaml -o demo/out/ties --force
"$llmerge" inspect demo/out/ties

echo
echo "Demo done. The merged model is in demo/out/ties/"
