#!/usr/bin/env python3
"""The folder tree is the architecture: no folder includes from a stage above it.

Stages, lowest first. A folder may include its own headers and those of
folders before it. The CLI sees only the public API (include/llmerge/) and its
own headers, and so do the Python extension (src/python/) and the web server
(src/server/, which the CLI's `serve` may include); src/api/ is the one folder that converts between public and
internal types. Exits non-zero, listing each offending include.
"""
import pathlib
import re
import sys

ORDER = ["core", "io", "config", "merge", "plan", "exec", "output", "analysis", "extract", "api"]
# Tools built beside the engine: they may use any engine stage, nothing above.
TOOLS = {"synth": set(ORDER)}
# Front ends: they see only the public API (include/llmerge/) and their own headers.
FRONT_ENDS = {"cli": "the CLI", "python": "the Python extension", "server": "the web server"}
# Front ends a front end may use: the CLI's `serve` starts the web server.
FRONT_END_USES = {"cli": {"server"}}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main(root: pathlib.Path) -> int:
    src = root / "src"
    bad = []
    for path in sorted(src.rglob("*")):
        if path.suffix not in {".h", ".cpp"}:
            continue
        folder = path.relative_to(src).parts[0]
        for target in INCLUDE.findall(path.read_text(encoding="utf-8")):
            top = target.split("/")[0]
            if top == "llmerge":
                continue  # the public API may be used everywhere
            if folder in FRONT_ENDS:
                if "/" in target and top != "nanobind" and top not in FRONT_END_USES.get(folder, ()):
                    bad.append(f"{path.relative_to(root)}: {FRONT_ENDS[folder]} includes "
                               f"internal '{target}'")
                continue
            if "/" not in target or not (src / top).is_dir():
                continue  # a generated or third-party header (hwy/...)
            if top == folder:
                continue
            if folder in TOOLS:
                if top not in TOOLS[folder]:
                    bad.append(f"{path.relative_to(root)}: '{target}' ({top}) is not an engine stage")
                continue
            if folder not in ORDER or top not in ORDER:
                bad.append(f"{path.relative_to(root)}: '{target}': unknown stage")
            elif ORDER.index(top) > ORDER.index(folder):
                bad.append(f"{path.relative_to(root)}: {folder}/ includes '{target}' from a later stage")
    # Public headers include only public headers and the standard library.
    for path in sorted((root / "include" / "llmerge").glob("*.h")):
        for target in INCLUDE.findall(path.read_text(encoding="utf-8")):
            if not target.startswith("llmerge/"):
                bad.append(f"{path.relative_to(root)}: public header includes '{target}'")
    for line in bad:
        print(line)
    print(f"layering: {len(bad)} problem(s); stage order {' < '.join(ORDER)} < cli, python, server (cli may use server)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
