"""Expected prompt-gate vectors for tests/mlx/test_moe.py, from mergekit-moe itself.

Developer tool, not CI (it needs torch and mergekit 0.1.5):

    python tools/golden/moe_gates.py --llmerge build/src/llmerge

It makes the synthetic models test_moe.py makes (same shapes and seeds), runs
mergekit's get_gate_params (mergekit/moe/router.py) for cheap_embed and hidden
on them with the tokenizer set up as scripts/moe.py does, and writes
tests/golden/moe/expected_gates.json ([layers, experts, hidden] per mode). It
also prints how far llmerge.moe_gates' torch backend is from mergekit's
vectors on the same request (it should be float noise).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mlx"))
sys.path.insert(0, str(ROOT / "python"))

from moe_cases import PROMPTS, SHAPE  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--llmerge", required=True)
    parser.add_argument("--out", default=str(ROOT / "tests" / "golden" / "moe" /
                                             "expected_gates.json"))
    args = parser.parse_args()
    import mergekit
    import torch
    import transformers
    from mergekit.common import ModelReference
    from mergekit.moe.config import Expert
    from mergekit.moe.router import get_gate_params

    # llmerge.moe_gates without the package's C++ extension.
    import importlib.util
    spec = importlib.util.spec_from_file_location("moe_gates",
                                                  ROOT / "python" / "llmerge" / "moe_gates.py")
    moe_gates = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(moe_gates)

    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "llama_base"
        subprocess.run([args.llmerge, "synth", str(base), "--family", "llama", *SHAPE, "--seed",
                        "1", "--force"], check=True, capture_output=True)
        tok = transformers.AutoTokenizer.from_pretrained(str(base))
        tok.padding_side = "left"
        tok.pad_token_id = tok.bos_token_id
        experts = [Expert(source_model=ModelReference.parse(str(base)),
                          positive_prompts=PROMPTS[n][0], negative_prompts=PROMPTS[n][1] or None)
                   for n in ("e1", "e2")]
        for mode in ("cheap_embed", "hidden"):
            torch.manual_seed(0)
            gates = get_gate_params(ModelReference.parse(str(base)), tok, experts, mode=mode,
                                    device="cpu")
            want = gates.float().numpy()
            expected[mode] = {"gates": want.round(7).tolist(),
                              "mergekit": mergekit.__version__ if hasattr(mergekit, "__version__")
                              else "0.1.5", "torch": torch.__version__,
                              "transformers": transformers.__version__}
            request = {"gate_mode": mode, "base_model": str(base), "num_layers": want.shape[0],
                       "hidden_size": want.shape[2],
                       "experts": [{"shared": False, "positive_prompts": PROMPTS[n][0],
                                    "negative_prompts": PROMPTS[n][1]} for n in ("e1", "e2")]}
            ours = moe_gates.compute_gates(request, "torch")
            got = np.stack([ours[f"layers.{l}.router"] for l in range(want.shape[0])])
            print(f"{mode}: torch backend vs mergekit max |diff| = "
                  f"{float(np.max(np.abs(got - want))):.3g}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
