#!/usr/bin/env bash
# Creates a virtual environment with the pinned Python test dependencies:
# mlx (CPU backend) and mlx-lm for the checks of llmerge's MLX output, and
# nanobind, scikit-build-core, pytest and tqdm for the Python package
# (tests/python/), and playwright, which drives Debian's chromium in the
# browser tests (tests/report/, tests/server/; it never downloads a browser).
# Idempotent: does nothing when the venv already has the pinned versions.
# Usage: scripts/install-python-deps.sh VENV_DIR
set -euo pipefail
venv=${1:-build/venv-mlx}
pins=("mlx[cpu]==0.32.4" "mlx-lm==0.32.2" "numpy"
      "nanobind==3.1.0" "scikit-build-core==1.1.2" "pytest==9.2.0" "tqdm==4.70.1"
      "playwright==1.65.2")  # drives Debian's chromium (executable_path), never downloads one

if [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<'PY' 2>/dev/null; then
import importlib.metadata as m
assert m.version("mlx") == "0.32.4" and m.version("mlx-lm") == "0.32.2"
assert m.version("nanobind") == "3.1.0" and m.version("scikit-build-core") == "1.1.2"
assert m.version("pytest") == "9.2.0" and m.version("tqdm") == "4.70.1"
assert m.version("playwright") == "1.65.2"
PY
  exit 0
fi
echo "install-python-deps: creating $venv with ${pins[*]}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
