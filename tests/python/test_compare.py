"""llmerge.compare against a direct numpy computation of the same measures.

The sign-conflict rate is TIES's trim step (Yadav et al. 2023) at a density:
each task vector keeps its k = max(1, floor(d * n)) largest magnitudes per
tensor (ties at the cut: the first in flattened order, a stable sort), and
the rate is the share of opposite signs among the elements both keep
(docs/compare.md). numpy computes it here from the safetensors bytes.
"""
from __future__ import annotations

import json
import math
import pathlib
import struct
import subprocess

import numpy as np
import pytest

import llmerge

SHAPE = dict(family="llama", hidden=64, intermediate=128, heads=4, kv_heads=2, vocab=128,
             layers=2, dtype="bf16")


def load(folder: pathlib.Path) -> dict[str, np.ndarray]:
    """A single-file safetensors model as f32 arrays (bf16 widened exactly)."""
    raw = (folder / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        assert t["dtype"] == "BF16", t["dtype"]
        bits = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
        out[name] = bits.view(np.float32).reshape(t["shape"])
    return out


def kept(delta: np.ndarray, density: float) -> np.ndarray:
    flat = delta.reshape(-1)
    k = max(1, int(density * flat.size))
    order = np.argsort(-np.abs(flat), kind="stable")
    mask = np.zeros(flat.size, dtype=bool)
    mask[order[:k]] = True
    return mask


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    llmerge.synth(root / "base", seed=3, **SHAPE)
    # Deltas of bf16 models tie often at the cut: the tie rule matters.
    for name, seed in (("a", 4), ("b", 5), ("c", 6)):
        llmerge.synth(root / name, like=root / "base", delta_scale=0.02, seed=seed)
    return root


@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
def test_sign_conflict_and_overlap_equal_numpy(family, density):
    result = llmerge.compare(family / "a", family / "b", family / "c", base=family / "base",
                             density=density, per_tensor=True, threads=2)
    doc = result.json()
    base = load(family / "base")
    models = [load(family / n) for n in ("a", "b", "c")]
    totals = {}
    for t in doc["tensors"]:
        name = t["name"]
        deltas = [m[name].reshape(-1) - base[name].reshape(-1) for m in models]
        masks = [kept(d, density) for d in deltas]
        for p in t["pairs"]:
            a, b = p["a"], p["b"]
            both = masks[a] & masks[b]
            opposite = both & (np.sign(deltas[a]) * np.sign(deltas[b]) < 0)
            nz = (deltas[a] != 0) & (deltas[b] != 0)
            same = nz & (np.sign(deltas[a]) == np.sign(deltas[b]))
            k = masks[a].sum()
            acc = totals.setdefault((a, b), np.zeros(5, dtype=np.int64))
            acc += [opposite.sum(), both.sum(), same.sum(), nz.sum(), k]
            if both.sum():
                assert p["sign_conflict"] == pytest.approx(opposite.sum() / both.sum(), abs=1e-12)
            else:
                assert p["sign_conflict"] is None
            assert p["top_k_overlap"] == pytest.approx(both.sum() / k, abs=1e-12)
            if nz.sum():
                assert p["sign_agreement"] == pytest.approx(same.sum() / nz.sum(), abs=1e-12)
            da, db = deltas[a].astype(np.float64), deltas[b].astype(np.float64)
            if da.any() and db.any():
                cos = da @ db / math.sqrt((da @ da) * (db @ db))
                assert p["task_cosine"] == pytest.approx(cos, abs=1e-9)
    for p in doc["pairs"]:
        opp, both, same, nz, k = totals[(p["a"], p["b"])]
        assert p["sign_conflict"] == pytest.approx(opp / both, abs=1e-12)
        assert p["top_k_overlap"] == pytest.approx(both / k, abs=1e-12)
        assert p["sign_agreement"] == pytest.approx(same / nz, abs=1e-12)


def test_weight_cosine_and_l2_equal_numpy(family):
    doc = llmerge.compare(family / "a", family / "base", per_tensor=True).json()
    a, b = load(family / "a"), load(family / "base")
    for t in doc["tensors"]:
        x = a[t["name"]].reshape(-1).astype(np.float64)
        y = b[t["name"]].reshape(-1).astype(np.float64)
        p = t["pairs"][0]
        assert p["cosine"] == pytest.approx(x @ y / math.sqrt((x @ x) * (y @ y)), abs=1e-9)
        mean = (math.sqrt(x @ x) + math.sqrt(y @ y)) / 2
        assert p["relative_l2"] == pytest.approx(math.sqrt(((x - y) ** 2).sum()) / mean, abs=1e-9)


def test_cli_writes_the_same_document_and_a_report(family, cli, tmp_path):
    report = tmp_path / "report.html"
    out = subprocess.run([cli, "compare", str(family / "a"), str(family / "b"), "--base",
                          str(family / "base"), "--json", "-o", str(report), "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    assert doc == llmerge.compare(family / "a", family / "b", base=family / "base").json()
    assert report.read_text().startswith("<!DOCTYPE html>")
    text = llmerge.compare(family / "a", family / "b").describe()
    assert "recommended: " in text and "because" in text


def test_eval_without_python_says_what_it_needs(cli, tmp_path):
    import os
    env = dict(os.environ, LLMERGE_PYTHON=str(tmp_path / "no-python"))
    r = subprocess.run([cli, "eval", "model", "text.txt"], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert "eval needs Python" in r.stderr


def test_compare_errors_are_llmerge_errors(family):
    with pytest.raises(llmerge.ConfigError, match="density"):
        llmerge.compare(family / "a", family / "b", density=1.5)
    with pytest.raises(llmerge.FileError):
        llmerge.compare(family / "a", family / "missing")
