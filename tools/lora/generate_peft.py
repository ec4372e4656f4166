#!/usr/bin/env python3
"""Regenerates tests/lora/peft/: PEFT adapters and what peft makes of them.

A developer tool, not CI (it needs torch and peft: run it with the peers venv's
Python). For each case it makes the base model with `llmerge synth`
(deterministic, so the CI test remakes the same base), builds a PEFT LoRA on it
with seeded random factors, saves the adapter (adapter_config.json +
adapter_model.safetensors) and the model that `PeftModel.merge_and_unload()`
gives (expected.safetensors, every tensor). tests/unit/lora_peft_test.cpp fuses
base + adapter with llmerge and compares.

Usage: python tools/lora/generate_peft.py --llmerge build/src/llmerge [case ...]
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import peft
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "lora" / "peft"

LLAMA = ["--family", "llama", "--layers", "2", "--hidden", "32", "--intermediate", "48",
         "--heads", "4", "--kv-heads", "2", "--vocab", "100"]

CASES = {
    # Every linear and the embedding, per-module ranks and alphas, lm_head saved whole.
    "llama_f32_patterns": {
        "synth": LLAMA + ["--dtype", "f32", "--seed", "11"],
        "dtype": torch.float32,
        "lora": dict(r=4, lora_alpha=8,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj", "embed_tokens"],
                     rank_pattern={"model.layers.1.mlp.down_proj": 2, "k_proj": 3},
                     alpha_pattern={"v_proj": 16},
                     modules_to_save=["lm_head"]),
    },
    # rsLoRA scale alpha / sqrt(r) on a bf16 base (the update is rounded to bf16).
    "llama_bf16_rslora": {
        "synth": LLAMA + ["--dtype", "bf16", "--seed", "12"],
        "dtype": torch.bfloat16,
        "lora": dict(r=8, lora_alpha=4, use_rslora=True,
                     target_modules=["q_proj", "v_proj", "down_proj"]),
    },
    # GPT-2's Conv1D stores weights [in, out]: PEFT sets fan_in_fan_out.
    "gpt2_f32_fan_in_fan_out": {
        "synth": ["--family", "gpt2", "--layers", "2", "--hidden", "32", "--heads", "4",
                  "--vocab", "100", "--dtype", "f32", "--seed", "13"],
        "dtype": torch.float32,
        "lora": dict(r=4, lora_alpha=6, fan_in_fan_out=True,
                     target_modules=["c_attn", "c_fc", "mlp.c_proj"]),
    },
}


def make_case(name, case, llmerge, tmp):
    base = tmp / f"{name}-base"
    subprocess.run([llmerge, "synth", str(base), *case["synth"], "--force"], check=True,
                   capture_output=True)
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=case["dtype"])
    torch.manual_seed(1234)
    # init_lora_weights=False: random A and B, so the update is not zero.
    config = peft.LoraConfig(init_lora_weights=False, **case["lora"])
    pm = peft.get_peft_model(model, config)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.mul_(0.5)  # updates of the weights' size, not larger
            if "modules_to_save" in n:
                p.add_(torch.randn_like(p) * 0.01)
    dest = OUT / name
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "adapter").mkdir(parents=True)
    pm.save_pretrained(dest / "adapter", safe_serialization=True)
    for extra in (dest / "adapter").iterdir():
        if extra.name not in ("adapter_config.json", "adapter_model.safetensors"):
            extra.unlink()
    # The config names the base by the temporary path it was made at.
    cfg_path = dest / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = f"synth:{name}"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    merged = pm.merge_and_unload()
    tensors = {k: v.contiguous().clone() for k, v in merged.state_dict().items()
               if v.is_floating_point() and not k.endswith(".attn.bias")
               and not k.endswith(".attn.masked_bias")}
    # A tied lm_head is the embedding; the model folder stores it once.
    if getattr(merged.config, "tie_word_embeddings", False):
        tensors.pop("lm_head.weight", None)
    save_file(tensors, str(dest / "expected.safetensors"))
    (dest / "case.json").write_text(json.dumps(
        {"synth": case["synth"], "peft": peft.__version__, "torch": torch.__version__},
        indent=2) + "\n")
    print(f"{name}: {len(tensors)} tensors")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llmerge", required=True)
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases or CASES:
            make_case(name, CASES[name], args.llmerge, Path(tmp))


if __name__ == "__main__":
    main()
