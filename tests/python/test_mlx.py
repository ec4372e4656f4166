"""mlx-lm loads what llmerge writes from Python, dense and quantized (skipped without mlx-lm)."""
from __future__ import annotations

import pytest

import llmerge
from conftest import ties_config

mlx_lm = pytest.importorskip("mlx_lm")


@pytest.mark.parametrize("options", [{}, {"quantize": 4}], ids=["dense", "q4"])
def test_merge_and_load_returns_a_model_that_generates(models, tmp_path, options):
    import llmerge.mlx

    model, tokenizer = llmerge.mlx.merge_and_load(ties_config(models), tmp_path / "out",
                                                  **options)
    text = mlx_lm.generate(model, tokenizer, prompt="w1 w2", max_tokens=4, verbose=False)
    assert isinstance(text, str)


def test_merge_then_mlx_lm_load(models, tmp_path):
    llmerge.merge(ties_config(models), tmp_path / "out")
    model, tokenizer = mlx_lm.load(str(tmp_path / "out"))
    assert model is not None and tokenizer is not None
