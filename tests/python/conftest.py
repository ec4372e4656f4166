"""Fixtures of the Python package's tests.

The package under test is the installed `llmerge`, or the build tree's when
LLMERGE_PYTHON_PACKAGE names the folder holding it (<build>/src/python, as
ctest sets it). The CLI to compare with is LLMERGE_CLI, else the one bundled in
the package, else `llmerge` on PATH.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if os.environ.get("LLMERGE_PYTHON_PACKAGE"):
    sys.path.insert(0, os.environ["LLMERGE_PYTHON_PACKAGE"])

import llmerge  # noqa: E402
import llmerge._cli  # noqa: E402

# Small llama-shaped models: every test merges in well under a second.
SHAPE = dict(family="llama", hidden=64, intermediate=128, heads=4, kv_heads=2, vocab=256,
             layers=2, dtype="bf16")


@pytest.fixture(scope="session")
def cli() -> str:
    for candidate in (os.environ.get("LLMERGE_CLI"), llmerge._cli.binary(),
                      shutil.which("llmerge")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no llmerge CLI: set LLMERGE_CLI")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, pathlib.Path]:
    """base, a and b: a and b are small perturbations of base."""
    root = tmp_path_factory.mktemp("models")
    llmerge.synth(root / "base", seed=1, **SHAPE)
    llmerge.synth(root / "a", like=root / "base", delta_scale=0.05, seed=2)
    llmerge.synth(root / "b", like=root / "base", delta_scale=0.05, seed=3)
    return {name: root / name for name in ("base", "a", "b")}


def ties_config(models: dict[str, pathlib.Path]) -> dict:
    return {
        "merge_method": "ties",
        "base_model": str(models["base"]),
        "models": [
            {"model": str(models["a"]), "parameters": {"weight": 0.5, "density": 0.5}},
            {"model": str(models["b"]), "parameters": {"weight": 0.5, "density": 0.3}},
        ],
        "parameters": {"normalize": True},
        "dtype": "bfloat16",
    }


def folder_bytes(folder: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
