"""llmerge.evaluate / llmerge.divergence with the mlx backend (skipped without mlx-lm).

The expected perplexity comes from transformers' own loss on the same synth
model (tools/quality/make_expected.py, run by a developer with torch): the mlx
backend must agree within float32 rounding.
"""
from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

import llmerge
from quality_case import SYNTH_ARGS, TEXTS

pytest.importorskip("mlx_lm")
EXPECTED = json.loads((pathlib.Path(__file__).parents[1] / "golden/quality/"
                       "expected_perplexity.json").read_text())


@pytest.fixture(scope="module")
def model(tmp_path_factory, cli):
    folder = tmp_path_factory.mktemp("quality") / "model"
    subprocess.run([cli, "synth", str(folder), *SYNTH_ARGS], check=True, capture_output=True)
    return folder


def test_mlx_perplexity_equals_transformers_loss(model):
    assert EXPECTED["synth_args"] == SYNTH_ARGS
    got = llmerge.evaluate(model, TEXTS, backend="mlx")
    for name, want in EXPECTED["perplexity"].items():
        assert got[name] == pytest.approx(want, rel=1e-4), name


def test_windows_split_long_texts_and_weight_by_tokens(model):
    whole = llmerge.evaluate(model, TEXTS, backend="mlx")
    split = llmerge.evaluate(model, TEXTS, backend="mlx", context=16)
    for name in TEXTS:
        # Shorter contexts see less history: a different figure, same order of size.
        assert split[name] != whole[name]
        assert 0.2 < split[name] / whole[name] < 5


def test_divergence_is_zero_against_itself_and_positive_against_another(model, tmp_path, cli):
    other = tmp_path / "other"
    subprocess.run([cli, "synth", str(other), "--like", str(model), "--delta-scale", "0.5",
                    "--seed", "9"], check=True, capture_output=True)
    kl = llmerge.divergence(model, [model, other], TEXTS, backend="mlx")
    for name in TEXTS:
        assert kl[str(model)][name] == pytest.approx(0.0, abs=1e-9)
        assert kl[str(other)][name] > 1e-4


def test_texts_from_files_and_folders(model, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for name, text in TEXTS.items():
        (folder / name).write_text(text)
    assert llmerge.evaluate(model, folder) == pytest.approx(llmerge.evaluate(model, TEXTS))
    with pytest.raises(ValueError):
        llmerge.evaluate(model, TEXTS, backend="jax")


def test_llmerge_eval_command_runs_the_probe(model, tmp_path, cli):
    import os
    import sys
    text = tmp_path / "words.txt"
    text.write_text(TEXTS["words.txt"])
    env = dict(os.environ, LLMERGE_PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([cli, "eval", str(model), str(text), "--json"], check=True,
                         capture_output=True, text=True, env=env).stdout
    got = json.loads(out)["perplexity"]["words.txt"]
    assert got == pytest.approx(EXPECTED["perplexity"]["words.txt"], rel=1e-4)
