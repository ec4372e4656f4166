#!/usr/bin/env python3
"""Developer script (not CI): the expected perplexity of a deterministic synth
model, from transformers' own loss, for tests/python/test_quality.py.

Run with a Python that has torch and transformers (the peers venv):

    PYTHON_WITH_TORCH tools/quality/make_expected.py --llmerge build/src/llmerge

It makes the model with `llmerge synth` (seeded: the CI test remakes the same
bytes), computes exp(model(ids, labels=ids).loss) with transformers, checks that
llmerge.quality.evaluate(backend="torch") gives the same figure, and writes
tests/golden/quality/expected_perplexity.json. CI then checks the mlx backend
against it.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from quality_case import SYNTH_ARGS, TEXTS  # noqa: E402


def load_quality():
    # Only the pure-Python module: the package's __init__ needs the extension.
    spec = importlib.util.spec_from_file_location("quality", ROOT / "python/llmerge/quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmerge", required=True)
    a = ap.parse_args()
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quality = load_quality()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = pathlib.Path(tmp) / "model"
        subprocess.run([a.llmerge, "synth", str(model_dir), *SYNTH_ARGS], check=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(model_dir)
        expected = {}
        for name, text in TEXTS.items():
            ids = torch.tensor([tok(text)["input_ids"]])
            with torch.no_grad():
                loss = model(ids, labels=ids).loss.item()
            expected[name] = math.exp(loss)
        ours = quality.evaluate(model_dir, TEXTS, backend="torch")
        for name in TEXTS:
            rel = abs(ours[name] - expected[name]) / expected[name]
            print(f"{name}: transformers loss {expected[name]:.6f}, evaluate(torch) "
                  f"{ours[name]:.6f}, relative difference {rel:.2e}")
            assert rel < 1e-6, name
    out = ROOT / "tests/golden/quality/expected_perplexity.json"
    out.write_text(json.dumps({
        "about": "exp(loss) from transformers on the synth model of tests/python/quality_case.py",
        "transformers": transformers.__version__, "torch": torch.__version__,
        "synth_args": SYNTH_ARGS, "perplexity": expected}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
