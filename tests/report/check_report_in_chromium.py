#!/usr/bin/env python3
"""The compare report opens in headless Chromium with no console errors.

Makes three small models (a base and two fine-tunes, one of them a layer
deeper), writes `llmerge compare ... -o report.html`, opens the file in
Debian's chromium through playwright (executable_path: playwright downloads no
browser) with the network blocked, and fails on any console error, page
error or request. Keeps a screenshot at OUT/compare-report.png.
Exits 77 (ctest: skipped) without chromium or playwright.

    check_report_in_chromium.py --llmerge build/src/llmerge --out build/report-check
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmerge", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    a = ap.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: playwright is not installed (scripts/install-python-deps.sh)")
        return 77
    if not pathlib.Path(a.chromium).exists():
        print("skipped: no chromium (scripts/install-deps.sh installs Debian's)")
        return 77
    out = pathlib.Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    def llmerge(*args: str) -> str:
        return subprocess.run([a.llmerge, *args], check=True, capture_output=True,
                              text=True).stdout

    shape = ["--family", "llama", "--layers", "6", "--hidden", "64", "--intermediate", "128",
             "--vocab", "128"]
    llmerge("synth", str(out / "base"), *shape, "--seed", "1")
    llmerge("synth", str(out / "a"), "--like", str(out / "base"), "--delta-scale", "0.05",
            "--seed", "2")
    llmerge("synth", str(out / "b"), "--like", str(out / "base"), "--delta-scale", "0.05",
            "--seed", "3")
    report = out / "report.html"
    llmerge("compare", str(out / "a"), str(out / "b"), "--base", str(out / "base"),
            "-o", str(report), "--quiet")
    deep = out / "deep.yaml"
    deep.write_text("merge_method: passthrough\nslices:\n"
                    f"  - sources: [{{model: {out / 'a'}, layer_range: [0, 4]}}]\n"
                    f"  - sources: [{{model: {out / 'a'}, layer_range: [3, 6]}}]\n"
                    "dtype: bfloat16\n")
    llmerge("run", str(deep), "-o", str(out / "a-deep"), "--quiet")
    aligned = out / "aligned.html"
    llmerge("compare", str(out / "a"), str(out / "a-deep"), "-o", str(aligned), "--quiet")

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, headless=True,
                                    args=["--no-sandbox"])
        for page_file, shot in ((report, "compare-report.png"),
                                (aligned, "compare-alignment.png")):
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: problems.append(f"request: {r.url}")
                    if not r.url.startswith("file:") else None)
            page.goto(page_file.resolve().as_uri())
            svgs = page.locator("svg").count()
            if svgs < 3:
                problems.append(f"{page_file.name}: {svgs} SVG figures, expected at least 3")
            title = page.title()
            if title != "llmerge compare":
                problems.append(f"{page_file.name}: title {title!r}")
            page.screenshot(path=str(out / shot), full_page=True)
            page.close()
        browser.close()
    for line in problems:
        print(line)
    print(f"report check: {len(problems)} problem(s); screenshots in {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
