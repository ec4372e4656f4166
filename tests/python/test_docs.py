"""docs/python.md runs as written: its ```python cells, in order, in one namespace."""
from __future__ import annotations

import re

import pytest

from conftest import ROOT


def test_the_python_walk_through_runs(capsys):
    pytest.importorskip("mlx_lm")
    pytest.importorskip("tqdm")
    text = (ROOT / "docs" / "python.md").read_text()
    cells = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(cells) >= 5
    namespace: dict = {}
    for i, cell in enumerate(cells):
        exec(compile(cell, f"docs/python.md cell {i + 1}", "exec"), namespace)  # noqa: S102
    assert namespace["result"].tensors == len(namespace["plan"].tensors)
    assert "ties" in capsys.readouterr().out
