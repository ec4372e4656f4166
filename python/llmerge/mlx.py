"""mlx-lm integration: merge (or quantize) and load the result in one call.

    model, tokenizer = llmerge.mlx.merge_and_load(config, "merged", quantize=4)
    from mlx_lm import generate
    print(generate(model, tokenizer, prompt="Hello", max_tokens=20))

llmerge writes what ``mlx_lm.load`` reads: dense safetensors, or MLX-quantized
weights with the ``quantization`` block in config.json (docs/formats.md). The
same folders load in transformers with ``AutoModelForCausalLM.from_pretrained``
when dense.
"""
from __future__ import annotations

import os
from typing import Any

from . import ConfigLike, merge


def merge_and_load(config: ConfigLike, out: str | os.PathLike[str], **options: Any) -> Any:
    """``llmerge.merge(config, out, **options)`` then ``mlx_lm.load(out)``: returns
    mlx-lm's (model, tokenizer). Needs mlx-lm (``pip install mlx-lm``)."""
    try:
        import mlx_lm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("llmerge.mlx needs mlx-lm: pip install mlx-lm") from e
    merge(config, out, **options)
    return mlx_lm.load(os.fspath(out))
