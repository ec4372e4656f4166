#!/usr/bin/env python3
"""The web UI in headless Chromium (Debian's `chromium`, driven by playwright
through executable_path: no browser download).

Builds a config in the form, sees a validation error at its YAML line and
fixes it, bends a per-layer curve by dragging, runs the merge and watches its
progress to the end, checks the history, inspects a model, and compares two
models against their base (the layer heatmap and the alignment). Screenshots go to --shots (kept
as test artifacts under build/; look at them).

Usage: browser_test.py --llmerge PATH --work DIR --shots DIR [--chromium PATH]
Every wait has a timeout; the server is stopped whatever happens.
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys

from playwright.sync_api import expect, sync_playwright

TIMEOUT_MS = 30_000


def synth(llmerge, out, seed, like=None):
    # Fine-tunes of one base (--like): what a merge starts from.
    shape = (["--like", str(like), "--delta-scale", "0.05"] if like else
             ["--layers", "8", "--hidden", "256", "--intermediate", "512", "--vocab", "4096"])
    subprocess.run([llmerge, "synth", str(out), *shape, "--seed", str(seed), "--force"],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmerge", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = ap.parse_args()
    if not args.chromium:
        sys.exit("browser_test: no chromium found (scripts/install-deps.sh installs Debian's)")

    work = pathlib.Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    root = work / "root"
    root.mkdir(parents=True)
    shots = pathlib.Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    synth(args.llmerge, root / "base", 1)
    synth(args.llmerge, root / "chat", 2, like=root / "base")
    synth(args.llmerge, root / "code", 3, like=root / "base")

    token = "browser-test-token-0123456789abcdef"
    server = subprocess.Popen([args.llmerge, "serve", "--root", str(root), "--port", "0",
                               "--token", token, "--state", str(work / "state")],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_CACHE": ""})
    try:
        line = server.stdout.readline()
        m = re.search(r"(http://\S+)", line)
        assert m, f"no URL in {line!r}"
        url = m.group(1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            try:
                steps(page, root, shots, url)
            except Exception:
                page.screenshot(path=str(shots / "failed.png"), full_page=True)
                print("page errors:", errors, file=sys.stderr)
                raise
            assert not errors, errors
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print("browser test: 1 passed, 0 failed")


def steps(page, root, shots, url):
    page.goto(url)
    expect(page.locator("#version")).to_contain_text("roots")

    # Build a TIES config in the form: only TIES's fields are shown.
    page.select_option("#f-method", "ties")
    page.fill("#f-base", str(root / "base"))
    page.fill("#f-model-0", str(root / "chat"))
    page.fill("#f-model-1", str(root / "code"))
    expect(page.locator("#f-m0-density")).to_be_visible()
    expect(page.locator("#f-m0-t")).to_have_count(0)  # slerp's t is not a TIES field
    page.fill("#f-m0-weight", "0.6")
    page.fill("#f-m1-weight", "0.4")
    page.fill("#f-m1-density", "0.5")
    # A density above 1: the plan refuses it, at its line in the YAML.
    page.fill("#f-m0-density", "1.7")
    expect(page.locator("#validation")).to_contain_text("problem")
    expect(page.locator("#problems li")).to_have_count(1)
    problem = page.locator("#problems li").first
    expect(problem).to_contain_text("density")
    yaml = page.input_value("#yaml")
    bad_line = next(i + 1 for i, l in enumerate(yaml.splitlines()) if "1.7" in l)
    expect(problem).to_contain_text(f"line {bad_line}")
    expect(page.locator("#gutter .bad")).to_have_text(str(bad_line))
    expect(page.locator("#backdrop .msg")).to_contain_text("density")
    page.screenshot(path=str(shots / "1-validation-error.png"))

    # Fix it in the YAML editor: the form follows.
    page.fill("#yaml", yaml.replace("1.7", "0.5"))
    expect(page.locator("#validation")).to_contain_text("Valid")
    expect(page.locator("#f-m0-density")).to_have_value("0.5")

    # A per-layer weight curve for the first model, bent by dragging.
    page.fill("#f-layers", "8")
    page.click("#f-model-rows .model-row >> nth=0 >> button.curve-toggle >> nth=0")
    point = page.locator(".curve svg .pt").first
    expect(point).to_be_visible()
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 60, steps=5)
    page.mouse.up()
    # Keyboard too: the other anchor is a slider.
    page.locator(".curve svg .pt").nth(1).focus()
    page.keyboard.press("Shift+ArrowUp")
    expect(page.locator("#yaml")).to_have_value(re.compile(r"weight: \[[0-9.]+, [0-9.]+\]"))
    expect(page.locator("#validation")).to_contain_text("Valid")
    weights = re.search(r"weight: \[([0-9.]+), ([0-9.]+)\]", page.input_value("#yaml"))
    assert float(weights.group(1)) < 0.6 and float(weights.group(2)) > 0.6, weights.group(0)
    page.screenshot(path=str(shots / "2-form-curve-valid.png"), full_page=True)

    # Run it (one thread, so there is progress to watch) and follow it.
    page.fill("#r-output", "merged")
    page.locator("details:has(#r-options) summary").click()
    page.fill("#o-threads", "1")
    page.dispatch_event("#o-threads", "change")
    page.click("#r-start")
    expect(page.locator("#page-runs")).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("done", timeout=120_000)
    expect(page.locator("#live-rate")).to_contain_text("/s")
    expect(page.locator("#live-floor")).to_contain_text("/s")
    expect(page.locator("#live-tensors")).to_contain_text("/")
    expect(page.locator("#live-result .card")).to_contain_text("ties")
    expect(page.locator("#history tbody tr")).to_have_count(1)
    expect(page.locator("#history tbody tr").first).to_contain_text("done")
    assert (root / "merged" / "config.json").exists()
    page.screenshot(path=str(shots / "3-run-done.png"), full_page=True)

    # The Models page: browse the root and inspect a model.
    page.click("#tab-models")
    page.get_by_role("button", name=f"folder {root}").click()
    expect(page.locator("#browse-path")).to_have_text(str(root))
    page.get_by_role("button", name="model base", exact=True).click()
    expect(page.locator("#inspect-out")).to_contain_text("LlamaForCausalLM")
    expect(page.locator("#inspect-out")).to_contain_text("tokenizer")
    page.screenshot(path=str(shots / "4-models.png"))

    # Compare two of the models against the base: the heatmap and the alignment.
    page.click("#tab-compare")
    page.get_by_label(str(root / "chat"), exact=True).check()
    page.get_by_label(str(root / "code"), exact=True).check()
    page.select_option("#c-base", str(root / "base"))
    page.click("#c-start")
    expect(page.locator("#c-status")).to_contain_text("Compared", timeout=120_000)
    expect(page.locator("#c-heatmap svg rect")).to_have_count(8)  # 8 layers x 1 pair
    page.select_option("#c-measure", "sign_conflict")
    expect(page.locator("#c-heatmap svg rect").first).to_have_attribute(
        "aria-label", re.compile(r"chat · code, 0: [0-9.]+"))
    expect(page.locator("#c-alignment svg .path")).to_have_count(1)
    page.screenshot(path=str(shots / "5-compare.png"), full_page=True)


if __name__ == "__main__":
    main()
