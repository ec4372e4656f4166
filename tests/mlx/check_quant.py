#!/usr/bin/env python3
"""Checks llmerge's MLX quantisation math bit for bit against real mlx.

Writes seeded cases (inputs plus mlx's outputs, raw little-endian .bin files
and a manifest) to a temporary directory, then runs the gtest
MlxQuant.MatchesMlxBitForBit with LLMERGE_MLX_CASES pointing at it.

  quantize cases:   w -> mx.quantize -> (wq, scales, biases) -> mx.dequantize
                    for every bits x group size x dtype, on awkward rows;
  dequantize cases: random packed words, scales (negative too) and biases ->
                    mx.dequantize, for every bits x group size x dtype, plus
                    mxfp4 with every E8M0 scale code.

Usage: check_quant.py [path/to/mlx_quant_test] [--keep DIR]
"""

import argparse
import os
import subprocess
import sys
import tempfile

import mlx.core as mx
import numpy as np

BITS = [2, 3, 4, 5, 6, 8]
GROUP_SIZES = [32, 64, 128]
DTYPES = {"F16": mx.float16, "BF16": mx.bfloat16, "F32": mx.float32}


def raw_bytes(a: mx.array) -> bytes:
    """The array's bytes, as mlx stores them (little-endian, row-major)."""
    if a.dtype == mx.bfloat16 or a.dtype == mx.float16:
        a = a.view(mx.uint16)
    return np.ascontiguousarray(np.array(a)).tobytes()


def awkward_rows(rng: np.random.Generator, cols: int, gs: int, dtype_name: str) -> np.ndarray:
    """Rows that exercise every branch of the affine quantiser."""
    big = 6.0e4 if dtype_name == "F16" else 3.0e38
    tiny = 1e-6 if dtype_name == "F16" else 1e-30
    subnormal = 3e-7 if dtype_name == "F16" else 1e-40
    rows = [
        rng.standard_normal(cols),
        rng.standard_normal(cols) * 0.02 + 0.01,  # typical LLM weight scale
        np.full(cols, 0.7),  # constant
        np.zeros(cols),
        np.full(cols, -1.25),  # constant, negative
        rng.standard_normal(cols) * tiny,
        rng.uniform(-1, 1, cols) * subnormal,
        rng.uniform(-1, 1, cols) * big,  # range may overflow f32 to Inf
        rng.uniform(0.5, 2.0, cols),  # all positive: negative scale
        -rng.uniform(0.5, 2.0, cols),  # all negative
        np.round(rng.uniform(-8, 8, cols) * 2) / 2,  # half-integers: rounding ties
        np.where(rng.random(cols) < 0.5, 0.0, rng.standard_normal(cols)),  # many exact zeros
    ]
    mixed = rng.standard_normal(cols)  # one group of each kind in a single row
    for g in range(cols // gs):
        kind = g % 4
        seg = slice(g * gs, (g + 1) * gs)
        if kind == 1:
            mixed[seg] = 3.5
        elif kind == 2:
            mixed[seg] = 0.0
        elif kind == 3:
            mixed[seg] *= 1000.0
    rows.append(mixed)
    outlier = rng.standard_normal(cols) * 0.1
    outlier[::gs] = 50.0
    rows.append(outlier)
    return np.stack(rows).astype(np.float32)


def write_case(out_dir, manifest, name, kind, mode, bits, gs, dtype_name, deq_dtype_name, arrays):
    rows, cols = arrays["deq"].shape
    for key, arr in arrays.items():
        with open(os.path.join(out_dir, f"{name}.{key}.bin"), "wb") as f:
            f.write(raw_bytes(arr))
    manifest.append(f"{name} {kind} {mode} {bits} {gs} {dtype_name} {rows} {cols} {deq_dtype_name}")


def make_cases(out_dir: str) -> int:
    rng = np.random.default_rng(20250611)
    manifest = []
    for dtype_name, dtype in DTYPES.items():
        for bits in BITS:
            for gs in GROUP_SIZES:
                tag = f"{dtype_name}_b{bits}_g{gs}"
                # quantize: awkward rows, 4 groups each
                w = mx.array(awkward_rows(rng, 4 * gs, gs, dtype_name)).astype(dtype)
                wq, scales, biases = mx.quantize(w, group_size=gs, bits=bits)
                deq = mx.dequantize(wq, scales, biases, group_size=gs, bits=bits)
                arrays = {"w": w, "wq": wq, "scales": scales, "biases": biases, "deq": deq}
                if dtype_name == "F32":
                    arrays["deq32"] = deq
                write_case(out_dir, manifest, f"q_{tag}", "quantize", "affine", bits, gs,
                           dtype_name, dtype_name, arrays)
                # dequantize: random codes, signed scales, biases
                rows, cols = 8, 3 * gs
                wq = mx.array(rng.integers(0, 2**32, (rows, cols * bits // 32), dtype=np.uint32))
                scales = mx.array(rng.standard_normal((rows, cols // gs)) * 0.05).astype(dtype)
                biases = mx.array(rng.standard_normal((rows, cols // gs))).astype(dtype)
                deq = mx.dequantize(wq, scales, biases, group_size=gs, bits=bits)
                arrays = {"wq": wq, "scales": scales, "biases": biases, "deq": deq}
                if dtype_name == "F32":
                    arrays["deq32"] = deq
                write_case(out_dir, manifest, f"d_{tag}", "dequantize", "affine", bits, gs,
                           dtype_name, dtype_name, arrays)
    # mxfp4: every scale code (0..255) and every E2M1 code, in each output dtype
    for out_name, out_dtype in DTYPES.items():
        rows, cols = 16, 16 * 32
        wq = mx.array(rng.integers(0, 2**32, (rows, cols // 8), dtype=np.uint32))
        scales = mx.array(np.arange(256, dtype=np.uint8).reshape(rows, cols // 32))
        deq = mx.dequantize(wq, scales, group_size=32, bits=4, mode="mxfp4", dtype=out_dtype)
        deq32 = mx.dequantize(wq, scales, group_size=32, bits=4, mode="mxfp4", dtype=mx.float32)
        write_case(out_dir, manifest, f"d_mxfp4_{out_name}", "dequantize", "mxfp4", 4, 32, "U8",
                   out_name, {"wq": wq, "scales": scales, "deq": deq, "deq32": deq32})
    # mxfp4 from mx.quantize (realistic scales), default bf16 output
    w = mx.array(awkward_rows(rng, 128, 32, "BF16")).astype(mx.bfloat16)
    wq, scales = mx.quantize(w, group_size=32, bits=4, mode="mxfp4")
    deq = mx.dequantize(wq, scales, group_size=32, bits=4, mode="mxfp4")
    deq32 = mx.dequantize(wq, scales, group_size=32, bits=4, mode="mxfp4", dtype=mx.float32)
    write_case(out_dir, manifest, "q_mxfp4_BF16", "dequantize", "mxfp4", 4, 32, "U8", "BF16",
               {"wq": wq, "scales": scales, "deq": deq, "deq32": deq32})
    with open(os.path.join(out_dir, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    return len(manifest)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_binary = os.path.join(here, "..", "..", "build", "tests", "mlx_quant_test")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", nargs="?", default=default_binary,
                        help="the mlx_quant_test gtest binary (default: build/tests/mlx_quant_test)")
    parser.add_argument("--keep", metavar="DIR", help="write the cases to DIR and keep them")
    args = parser.parse_args()

    mx.set_default_device(mx.cpu)  # the CPU kernel is the one we match bit for bit
    print(f"mlx {mx.__version__}, numpy {np.__version__}, device {mx.default_device()}")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or tmp
        os.makedirs(out_dir, exist_ok=True)
        count = make_cases(out_dir)
        print(f"wrote {count} cases to {out_dir}")
        env = dict(os.environ, LLMERGE_MLX_CASES=out_dir)
        result = subprocess.run(
            [args.binary, "--gtest_filter=MlxQuant.MatchesMlxBitForBit"], env=env)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
