#!/usr/bin/env python3
"""Regenerates tests/lora/extract/: mergekit-extract-lora's singular values.

A developer tool, not CI (it needs mergekit and torch: run it with the peers
venv's Python, whose bin/ has mergekit-extract-lora). It makes a base and a
fine-tune with `llmerge synth` (deterministic, so the CI test remakes them),
runs mergekit-extract-lora on them, and writes each module's singular values
as mergekit kept them (with --distribute-scale the squared column norms of
lora_B) to singular_values.json, with the command it ran.
tests/unit/extract_lora_test.cpp extracts with llmerge and compares.

Usage: python tools/lora/generate_extract_golden.py --llmerge build/src/llmerge
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import mergekit
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "lora" / "extract"
BASE = ["--family", "llama", "--layers", "2", "--hidden", "64", "--intermediate", "96",
        "--heads", "4", "--kv-heads", "2", "--vocab", "100", "--dtype", "f32", "--seed", "21"]
TUNE = ["--delta-scale", "0.2", "--seed", "22"]
RANK = 8


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llmerge", required=True)
    args = parser.parse_args()
    exe = Path(sys.executable).parent / "mergekit-extract-lora"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([args.llmerge, "synth", str(tmp / "base"), *BASE, "--force"], check=True)
        subprocess.run([args.llmerge, "synth", str(tmp / "ft"), "--like", str(tmp / "base"), *TUNE,
                        "--force"], check=True)
        cmd = ["--model", "ft", "--base-model", "base", "--out-path", "out",
               "--max-rank", str(RANK)]
        subprocess.run([str(exe), *[str(tmp / c) if c in ("ft", "base", "out") else c
                                    for c in cmd]], check=True, cwd=tmp)
        tensors = load_file(str(tmp / "out" / "adapter_model.safetensors"))
        config = json.loads((tmp / "out" / "adapter_config.json").read_text())
    values = {}
    for name, b in sorted(tensors.items()):
        if not name.endswith(".lora_B.weight"):
            continue
        module = name[len("base_model.model."):-len(".lora_B.weight")]
        values[module] = (b.to(torch.float64) ** 2).sum(0).tolist()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "singular_values.json").write_text(json.dumps({
        "mergekit": mergekit.__version__ if hasattr(mergekit, "__version__") else "0.1.5",
        "base": BASE, "tune": TUNE, "args": cmd,
        "modules_to_save": config.get("modules_to_save"),
        "target_modules": sorted(config.get("target_modules", [])),
        "r": config["r"], "singular_values": values}, indent=1) + "\n")
    print(f"{len(values)} modules")


if __name__ == "__main__":
    main()
