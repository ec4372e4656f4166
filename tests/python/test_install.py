"""`pip install .` from the clone into a fresh venv: import, merge, console command.

Slow (it builds the engine): set LLMERGE_TEST_INSTALL=0 to skip it. The wheel's
CMake build folder is LLMERGE_WHEEL_BUILD_DIR (default build/py-wheel), kept
between runs so that a second run rebuilds only what changed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, folder_bytes, ties_config

pytestmark = pytest.mark.skipif(os.environ.get("LLMERGE_TEST_INSTALL") == "0",
                                reason="LLMERGE_TEST_INSTALL=0")


def test_pip_install_from_the_clone_into_a_fresh_venv_merges(models, cli, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, console = venv / "bin" / "python", venv / "bin" / "llmerge"
    build_dir = os.environ.get("LLMERGE_WHEEL_BUILD_DIR", str(ROOT / "build" / "py-wheel"))
    env = {k: v for k, v in os.environ.items() if k != "LLMERGE_PYTHON_PACKAGE"}
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", os.environ.get("JOBS", "2"))
    start = time.monotonic()
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    f"--config-settings=build-dir={build_dir}", str(ROOT)],
                   check=True, env=env)
    print(f"pip install . took {time.monotonic() - start:.0f} s")

    script = ("import json, sys, llmerge\n"
              "r = llmerge.merge(json.loads(sys.argv[1]), sys.argv[2], model_card=False)\n"
              "print(llmerge.__file__, r.tensors)\n")
    run = subprocess.run([str(python), "-c", script, json.dumps(ties_config(models)),
                          str(tmp_path / "py")], check=True, cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert str(venv) in run.stdout, "imported llmerge from outside the fresh venv"
    subprocess.run([cli, "run", str(_write(tmp_path, ties_config(models))), "-o",
                    str(tmp_path / "cli"), "--quiet", "--no-write-model-card"], check=True)
    assert folder_bytes(tmp_path / "py") == folder_bytes(tmp_path / "cli")

    methods = subprocess.run([str(console), "methods"], check=True, capture_output=True,
                             text=True, env=env).stdout
    assert "ties" in methods


def _write(folder, config):
    path = folder / "ties.yaml"
    path.write_text(json.dumps(config))
    return path
