"""llmerge's LoRA fuse against mlx_lm.fuse (CPU backend, no network).

On small synthetic models, for an mlx-lm adapter (lora_a [in, r], lora_b
[r, out], absolute scale) on q_proj, v_proj and up_proj of every layer:
  1. a dense f32 base: `llmerge fuse` equals `mlx_lm fuse` within f32 rounding;
  2. a 4-bit base: both dequantize (with mx.dequantize's roundings), add and
     quantize again; the packed codes agree except where the two f32 sums fall
     on opposite sides of a rounding boundary (at most 0.5%), and scales and
     biases agree;
  3. mlx-lm loads and generates with llmerge's fused model;
  4. `llmerge extract-lora --format mlx` writes an adapter that mlx_lm.load
     takes (adapter_path=) and generates with, and that mlx_lm.fuse applies
     with the error its dropped singular values predict.

Usage: python test_lora.py --llmerge build/src/llmerge
Prints "N passed, N failed" and exits non-zero on any failure.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np

SHAPE = ["--family", "llama", "--hidden", "128", "--intermediate", "256", "--heads", "4",
         "--kv-heads", "2", "--vocab", "256", "--layers", "2"]
KEYS = ["self_attn.q_proj", "self_attn.v_proj", "mlp.up_proj"]
RANK = 4
SCALE = 2.0

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")


def run(*args):
    subprocess.run(list(args), check=True, capture_output=True)


def make_adapter(base, out):
    weights = mx.load(str(base / "model.safetensors"))
    rng = np.random.default_rng(7)
    tensors = {}
    for layer in range(2):
        for key in KEYS:
            name = f"model.layers.{layer}.{key}"
            w = weights[name + ".weight"]
            rows, cols = w.shape
            tensors[name + ".lora_a"] = mx.array(rng.normal(0, 0.05, (cols, RANK)).astype(np.float32))
            tensors[name + ".lora_b"] = mx.array(rng.normal(0, 0.05, (RANK, rows)).astype(np.float32))
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), tensors)
    (out / "adapter_config.json").write_text(json.dumps({
        "fine_tune_type": "lora", "num_layers": 2,
        "lora_parameters": {"rank": RANK, "scale": SCALE, "dropout": 0.0, "keys": KEYS}}))


def as_np(x):
    if x.dtype == mx.bfloat16:
        x = x.astype(mx.float32)
    return np.array(x)


def compare_dense(tag, ours, theirs, names):
    for name in names:
        a, b = as_np(ours[name]), as_np(theirs[name])
        if ours[name].dtype == mx.float32:
            ok = np.allclose(a, b, rtol=1e-6, atol=1e-7)
            check(f"{tag} {name} within f32 rounding", ok, f"max diff {np.abs(a - b).max()}")
        else:
            differ = a != b
            step = np.abs(b) / 128 * 1.01
            ok = (np.abs(a - b) <= step).all() and differ.mean() <= 0.01
            check(f"{tag} {name} within one bf16 step", ok, f"{differ.mean():.4f} differ")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llmerge", required=True)
    args = parser.parse_args()
    bin_ = args.llmerge
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(bin_, "synth", str(tmp / "f32"), *SHAPE, "--dtype", "f32", "--seed", "1", "--force")
        run(bin_, "synth", str(tmp / "bf16"), *SHAPE, "--dtype", "bf16", "--seed", "2", "--force")
        run(bin_, "quantize", str(tmp / "bf16"), "-o", str(tmp / "q4"), "-q", "--q-bits", "4",
            "--quiet")
        make_adapter(tmp / "f32", tmp / "adapter")
        changed = [f"model.layers.{i}.{k}.weight" for i in range(2) for k in KEYS]

        # (bf16 bases: the q4 case adds in bf16, its scales' dtype; peft's bf16 rule is
        # tests/unit/lora_test.cpp's.)
        for base in ("f32", "q4"):
            ours_dir, theirs_dir = tmp / f"ours-{base}", tmp / f"theirs-{base}"
            run(bin_, "fuse", str(tmp / base), "--adapter", str(tmp / "adapter"), "-o",
                str(ours_dir), "--quiet")
            run(py, "-m", "mlx_lm", "fuse", "--model", str(tmp / base), "--adapter-path",
                str(tmp / "adapter"), "--save-path", str(theirs_dir))
            ours = mx.load(str(ours_dir / "model.safetensors"))
            theirs = mx.load(str(theirs_dir / "model.safetensors"))
            base_w = mx.load(str(tmp / base / "model.safetensors"))
            if base != "q4":
                compare_dense(base, ours, theirs, changed)
                moved = not np.array_equal(as_np(ours[changed[0]]), as_np(base_w[changed[0]]))
                check(f"{base} the adapter changed the weights", moved)
                continue
            for name in changed:
                module = name[: -len(".weight")]
                codes_a = np.array(ours[name]).view(np.uint8)
                codes_b = np.array(theirs[name]).view(np.uint8)
                # Nibbles: 4-bit codes two to a byte.
                qa = np.stack([codes_a & 15, codes_a >> 4])
                qb = np.stack([codes_b & 15, codes_b >> 4])
                frac = (qa != qb).mean()
                check(f"q4 {name} codes agree", frac <= 0.005, f"{frac:.4f} differ")
                for part in ("scales", "biases"):
                    a = as_np(ours[f"{module}.{part}"])
                    b = as_np(theirs[f"{module}.{part}"])
                    close = np.abs(a - b) <= np.abs(b) / 128 * 1.01 + 1e-6
                    check(f"q4 {module}.{part} agree", close.mean() >= 0.99,
                          f"{1 - close.mean():.4f} differ")
            cfg = json.loads((ours_dir / "config.json").read_text())
            check("q4 output stays 4-bit", cfg.get("quantization", {}).get("bits") == 4)

        # 4. An adapter extracted with --format mlx loads in mlx-lm and generates, and
        #    what mlx_lm.fuse makes of it is the fine-tune's low-rank approximation.
        run(bin_, "synth", str(tmp / "ft"), "--like", str(tmp / "f32"), "--delta-scale", "0.1",
            "--seed", "9", "--force")
        run(bin_, "extract-lora", "--model", str(tmp / "ft"), "--base", str(tmp / "f32"), "-o",
            str(tmp / "extracted"), "--rank", "8", "--format", "mlx", "--quiet")
        run(py, "-m", "mlx_lm", "fuse", "--model", str(tmp / "f32"), "--adapter-path",
            str(tmp / "extracted"), "--save-path", str(tmp / "theirs-extracted"))
        run(bin_, "fuse", str(tmp / "f32"), "--adapter", str(tmp / "extracted"), "-o",
            str(tmp / "ours-extracted"), "--quiet")
        ours = mx.load(str(tmp / "ours-extracted" / "model.safetensors"))
        theirs = mx.load(str(tmp / "theirs-extracted" / "model.safetensors"))
        compare_dense("extracted", ours, theirs, changed)
        ft = mx.load(str(tmp / "ft" / "model.safetensors"))
        base_w = mx.load(str(tmp / "f32" / "model.safetensors"))
        name = changed[0]
        d = as_np(ft[name]) - as_np(base_w[name])
        s = np.linalg.svd(d.astype(np.float64), compute_uv=False)
        err = np.linalg.norm(as_np(theirs[name]) - as_np(ft[name]))
        want = np.sqrt((s[8:] ** 2).sum())
        check("extracted mlx adapter: error is the dropped singular values",
              abs(err - want) <= 1e-3 * want, f"{err} vs {want}")

        from mlx_lm import generate, load

        try:
            model, tokenizer = load(str(tmp / "f32"), adapter_path=str(tmp / "extracted"))
            text = generate(model, tokenizer, prompt="w1 w2", max_tokens=4, verbose=False)
            check("mlx_lm loads an extracted adapter and generates", isinstance(text, str))
        except Exception as e:  # noqa: BLE001 - report any loader failure as a test failure
            check("mlx_lm loads an extracted adapter and generates", False, repr(e))

        try:
            model, tokenizer = load(str(tmp / "ours-q4"))
            text = generate(model, tokenizer, prompt="w1 w2", max_tokens=4, verbose=False)
            check("mlx_lm loads and generates with the fused 4-bit model", isinstance(text, str))
        except Exception as e:  # noqa: BLE001 - report any loader failure as a test failure
            check("mlx_lm loads and generates with the fused 4-bit model", False, repr(e))

    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
