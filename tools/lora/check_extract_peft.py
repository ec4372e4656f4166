#!/usr/bin/env python3
"""Developer check (not CI: needs torch and peft): an adapter from
`llmerge extract-lora` loads in peft, and peft's merge_and_unload of it equals
`llmerge fuse` of it and reconstructs the fine-tune with the error that the
dropped singular values predict.

Usage: python tools/lora/check_extract_peft.py --llmerge build/src/llmerge
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

import peft
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

SHAPE = ["--family", "llama", "--layers", "2", "--hidden", "64", "--intermediate", "96",
         "--heads", "4", "--kv-heads", "2", "--vocab", "100", "--dtype", "f32", "--seed", "31"]
RANK = 6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llmerge", required=True)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = lambda *a: subprocess.run([args.llmerge, *a], check=True, capture_output=True)
        run("synth", str(tmp / "base"), *SHAPE, "--force")
        run("synth", str(tmp / "ft"), "--like", str(tmp / "base"), "--delta-scale", "0.2",
            "--seed", "32", "--force")
        run("extract-lora", "--model", str(tmp / "ft"), "--base", str(tmp / "base"), "-o",
            str(tmp / "ad"), "--rank", str(RANK), "--quiet")
        run("fuse", str(tmp / "base"), "--adapter", str(tmp / "ad"), "-o", str(tmp / "fused"),
            "--quiet")
        model = AutoModelForCausalLM.from_pretrained(tmp / "base", dtype=torch.float32)
        pm = peft.PeftModel.from_pretrained(model, tmp / "ad")
        merged = pm.merge_and_unload().state_dict()
        ours = load_file(str(tmp / "fused" / "model.safetensors"))
        ft = load_file(str(tmp / "ft" / "model.safetensors"))
        base = load_file(str(tmp / "base" / "model.safetensors"))
        for name, w in ours.items():
            diff = (merged[name] - w).abs().max().item()
            good = diff <= 1e-6 * max(w.abs().max().item(), 1e-6)
            ok &= good
            if name.endswith("q_proj.weight") or not good:
                d = (ft[name] - base[name]).double()
                s = torch.linalg.svdvals(d) if d.dim() == 2 else torch.zeros(1)
                predicted = s[RANK:].pow(2).sum().sqrt().item()
                actual = (merged[name].double() - ft[name].double()).norm().item()
                print(f"{name}: peft vs llmerge max diff {diff:.3g}; error {actual:.6g}, "
                      f"predicted {predicted:.6g}")
    print("peft loads the adapter; merge_and_unload equals llmerge fuse:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
