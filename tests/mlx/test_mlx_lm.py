"""llmerge's MLX output against real MLX and mlx-lm (CPU backend).

Checks, on small synthetic models:
  1. `llmerge quantize` equals mx.quantize bit for bit (packed words, scales,
     biases) for every bits x group size;
  2. `--dequantize` of f32-scaled weights equals mx.dequantize bit for bit;
  3. mlx-lm loads and generates with merged models, quantized and dense.

Usage: python test_mlx_lm.py --llmerge build/src/llmerge
Prints "N passed, N failed" and exits non-zero on any failure.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np

SHAPE = ["--family", "llama", "--hidden", "128", "--intermediate", "256", "--heads", "4",
         "--kv-heads", "2", "--vocab", "256", "--layers", "2"]
CHECKED = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
           "model.embed_tokens.weight"]

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")


def llmerge(binary, *args):
    subprocess.run([binary, *args, "--force", "--quiet"], check=True)


def same_bits(a, b):
    a, b = np.array(a), np.array(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes()


def bf16_bits(x):
    return np.array(x.view(mx.uint16))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llmerge", required=True)
    args = parser.parse_args()
    bin_ = args.llmerge
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([bin_, "synth", str(tmp / "base"), *SHAPE, "--seed", "1", "--force"],
                       check=True, capture_output=True)
        subprocess.run([bin_, "synth", str(tmp / "a"), "--like", str(tmp / "base"),
                        "--delta-scale", "0.05", "--seed", "2", "--force"],
                       check=True, capture_output=True)
        dense = mx.load(str(tmp / "base" / "model.safetensors"))

        # 1. quantize == mx.quantize, bit for bit.
        for bits in (2, 3, 4, 5, 6, 8):
            for group in (32, 64, 128):
                out = tmp / f"q{bits}_{group}"
                llmerge(bin_, "quantize", str(tmp / "base"), "-o", str(out), "-q", "--q-bits", str(bits),
                        "--q-group-size", str(group))
                ours = mx.load(str(out / "model.safetensors"))
                for name in CHECKED:
                    module = name[: -len(".weight")]
                    w, s, b = mx.quantize(dense[name], group_size=group, bits=bits)
                    ok = (same_bits(ours[name], w)
                          and same_bits(bf16_bits(ours[module + ".scales"]), bf16_bits(s))
                          and same_bits(bf16_bits(ours[module + ".biases"]), bf16_bits(b)))
                    check(f"quantize bits={bits} group={group} {name}", ok)

        # 2. dequantize == mx.dequantize for f32 scales (one rounding in both).
        subprocess.run([bin_, "synth", str(tmp / "f32"), *SHAPE, "--dtype", "f32", "--seed", "3",
                        "--force"], check=True, capture_output=True)
        llmerge(bin_, "quantize", str(tmp / "f32"), "-o", str(tmp / "f32q"), "-q")
        llmerge(bin_, "quantize", str(tmp / "f32q"), "-o", str(tmp / "f32d"), "--dequantize")
        q = mx.load(str(tmp / "f32q" / "model.safetensors"))
        d = mx.load(str(tmp / "f32d" / "model.safetensors"))
        for name in CHECKED:
            module = name[: -len(".weight")]
            ref = mx.dequantize(q[name], q[module + ".scales"], q[module + ".biases"],
                                group_size=64, bits=4)
            check(f"dequantize f32 {name}", same_bits(d[name], ref))

        # 3. mlx-lm loads and runs merged models.
        from mlx_lm import generate, load

        llmerge(bin_, "quantize", str(tmp / "a"), "-o", str(tmp / "a4"), "-q")
        config = tmp / "merge.yaml"
        config.write_text(
            "merge_method: slerp\n"
            f"base_model: {tmp / 'base'}\n"
            f"models:\n  - model: {tmp / 'base'}\n  - model: {tmp / 'a4'}\n"
            "parameters: {t: 0.3}\n")
        llmerge(bin_, "run", str(config), "-o", str(tmp / "merged-q"))
        llmerge(bin_, "run", str(config), "-o", str(tmp / "merged-dense"), "--dequantize")
        for name in ("merged-q", "merged-dense"):
            try:
                model, tokenizer = load(str(tmp / name))
                text = generate(model, tokenizer, prompt="w1 w2", max_tokens=4, verbose=False)
                check(f"mlx_lm loads and generates with {name}", isinstance(text, str))
            except Exception as e:  # noqa: BLE001 - report any loader failure as a test failure
                check(f"mlx_lm loads and generates with {name}", False, repr(e))

    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
