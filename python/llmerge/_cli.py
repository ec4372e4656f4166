"""The ``llmerge`` console script: runs the C++ CLI bundled in the package (bin/llmerge)."""
from __future__ import annotations

import os
import sys


def binary() -> str:
    """The path of the bundled CLI."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "llmerge")


def main() -> None:
    exe = binary()
    if not os.access(exe, os.X_OK):
        sys.exit(f"llmerge: the CLI binary is missing from the package ({exe}); reinstall llmerge")
    # exec, not subprocess: signals, exit codes and the terminal go straight to the CLI.
    os.execv(exe, [exe, *sys.argv[1:]])


if __name__ == "__main__":
    main()
