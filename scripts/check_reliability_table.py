#!/usr/bin/env python3
"""Checks docs/RELIABILITY.md against the test sources, so the table cannot drift.

Every test the table names must exist:
  Suite.Name     a TEST/TEST_F/TEST_P(Suite, Name) in tests/
  Corrupt/Name   a case named "Name" in tests/corrupt/reader_catalogue_test.cpp
  fuzz_name      tests/fuzz/fuzz_name.cpp
and every test of the fault and hostile-input files must be named in the table.
Usage: scripts/check_reliability_table.py [REPO_ROOT]; exit 1 listing each problem.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
table = (root / "docs/RELIABILITY.md").read_text()
TEST_RE = re.compile(r"\bTEST(?:_F|_P)?\(\s*(\w+)\s*,\s*(\w+)\s*\)")

defined = {}
for src in (root / "tests").rglob("*.cpp"):
    for suite, name in TEST_RE.findall(src.read_text()):
        defined[f"{suite}.{name}"] = src
catalogue = (root / "tests/corrupt/reader_catalogue_test.cpp").read_text()

named = set()
problems = []
for line in table.splitlines():
    if not line.startswith("|"):
        continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    for ref in re.findall(r"`([^`]+)`", cells[-1]):
        named.add(ref)
        if re.fullmatch(r"\w+\.\w+", ref):
            if ref not in defined:
                problems.append(f"table names {ref}, which no TEST in tests/ defines")
        elif ref.startswith("Corrupt/"):
            if f'"{ref[len("Corrupt/"):]}"' not in catalogue:
                problems.append(f"table names {ref}, which the reader catalogue lacks")
        elif ref.startswith("fuzz_"):
            if not (root / "tests/fuzz" / f"{ref}.cpp").exists():
                problems.append(f"table names {ref}, but tests/fuzz/{ref}.cpp does not exist")
        else:
            problems.append(f"cannot tell what kind of test `{ref}` is")

for required in ("tests/unit/faults_test.cpp", "tests/unit/hostile_inputs_test.cpp"):
    for suite, name in TEST_RE.findall((root / required).read_text()):
        if f"{suite}.{name}" not in named:
            problems.append(f"{suite}.{name} ({required}) is missing from docs/RELIABILITY.md")
for fuzzer in (root / "tests/fuzz").glob("fuzz_*.cpp"):
    if fuzzer.stem not in named:
        problems.append(f"{fuzzer.stem} is missing from docs/RELIABILITY.md")

for p in problems:
    print(p)
print(f"{len(named)} tests named, {len(problems)} problems")
sys.exit(1 if problems else 0)
