"""transformers loads what llmerge writes (skipped without transformers and torch)."""
from __future__ import annotations

import pytest

import llmerge
from conftest import ties_config

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


def test_auto_model_loads_a_dense_merge(models, tmp_path):
    llmerge.merge(ties_config(models), tmp_path / "out")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape[-1] == 256
