#!/usr/bin/env python3
"""Regenerate the golden parity data under tests/golden/ with a pinned mergekit.

Run by developers, not by CI:

    tools/golden/generate.py [--venv DIR] [--llmerge PATH] [CASE ...]

1. Makes the input models listed in tests/golden/models.txt with `llmerge synth`
   (deterministic, so the C++ test remakes the same bytes from the same list).
2. Runs mergekit (in-process, one import for all cases) on every
   tests/golden/cases/<case>/config.yaml, from a work folder whose models/ holds
   the inputs, with --random-seed 42, no tokenizer copy and no model card.
3. Stores mergekit's model.safetensors as cases/<case>/expected.safetensors, or,
   when mergekit refuses the config, the first line of its error as
   cases/<case>/rejected.txt.

The venv is --venv, else $LLMERGE_GOLDEN_VENV, else tools/golden/.venv; when it
has no mergekit it is created and the pinned versions below are installed
(CPU-only torch). tests/golden/VERSIONS records what produced the data.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The versions the committed data was made with.
PINNED = ["mergekit==0.1.5", "torch==2.15.0", "transformers==5.24.0"]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
RANDOM_SEED = 42

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> None:
    py = venv_python(venv)
    if py.exists() and subprocess.run([py, "-c", "import mergekit"],
                                      capture_output=True).returncode == 0:
        return
    print(f"creating {venv} with {' '.join(PINNED)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([py, "-m", "pip", "install", "--extra-index-url", TORCH_CPU_INDEX, *PINNED],
                   check=True)


def read_models() -> list[tuple[str, list[str]]]:
    models = []
    for line in (GOLDEN / "models.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, *args = shlex.split(line)
            models.append((name, args))
    return models


def synth_models(llmerge: Path, work: Path) -> None:
    for name, args in read_models():
        subprocess.run([llmerge, "synth", f"models/{name}", *args, "--force"], cwd=work,
                       check=True, stdout=subprocess.DEVNULL)


def record_versions() -> None:
    import importlib.metadata as md
    lines = [f"{p}=={md.version(p)}" for p in ("mergekit", "torch", "transformers",
                                               "safetensors", "numpy")]
    lines.append(f"random_seed={RANDOM_SEED}")
    (GOLDEN / "VERSIONS").write_text("\n".join(lines) + "\n")


def run_cases(work: Path, names: list[str]) -> None:
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    options = MergeOptions(random_seed=RANDOM_SEED, copy_tokenizer=False,
                           write_model_card=False, quiet=True)
    cases = sorted(p.parent for p in (GOLDEN / "cases").glob("*/config.yaml"))
    if names:
        cases = [c for c in cases if c.name in names]
    os.chdir(work)
    for case in cases:
        for stale in ("expected.safetensors", "rejected.txt"):
            (case / stale).unlink(missing_ok=True)
        out = work / "out" / case.name
        shutil.rmtree(out, ignore_errors=True)
        source = (case / "config.yaml").read_text()
        try:
            if (case / "recipe.yaml").exists():
                # config.yaml uses llmerge's per-slice methods; recipe.yaml is the
                # same merge as a mergekit-multi recipe, which mergekit runs.
                stages = work / "stages" / case.name
                shutil.rmtree(stages, ignore_errors=True)
                subprocess.run([Path(sys.executable).parent / "mergekit-multi",
                                case / "recipe.yaml", "--intermediate-dir", stages,
                                "--out-path", out, "--no-lazy", "--random-seed",
                                str(RANDOM_SEED), "--no-copy-tokenizer",
                                "--no-write-model-card", "--quiet"],
                               check=True, capture_output=True, text=True)
            else:
                config = MergeConfiguration.model_validate(yaml.safe_load(source))
                run_merge(config, str(out), options=options, config_source=source)
        except Exception as e:  # mergekit refusing the config is a result, not a failure
            detail = getattr(e, "stderr", None) or str(e)
            first = " ".join(str(detail).split())[-300:]
            (case / "rejected.txt").write_text(f"{type(e).__name__}: {first}\n")
            print(f"{case.name}: rejected ({type(e).__name__}: {first[:100]})", flush=True)
            continue
        shards = list(out.glob("*.safetensors"))
        if len(shards) != 1:
            sys.exit(f"{case.name}: expected one output shard, got {shards}")
        shutil.copyfile(shards[0], case / "expected.safetensors")
        print(f"{case.name}: ok", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path,
                    default=os.environ.get("LLMERGE_GOLDEN_VENV", ROOT / "tools/golden/.venv"))
    ap.add_argument("--llmerge", type=Path, default=ROOT / "build/src/llmerge")
    ap.add_argument("--work", type=Path, help="keep the models and outputs here")
    ap.add_argument("cases", nargs="*", help="only these cases (default: all)")
    args = ap.parse_args()

    venv = args.venv.resolve()
    if Path(sys.prefix).resolve() != venv:
        ensure_venv(venv)
        os.execv(venv_python(venv), [str(venv_python(venv)), __file__, *sys.argv[1:]])

    work = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="llmerge-golden-"))
    work.mkdir(parents=True, exist_ok=True)
    synth_models(args.llmerge.resolve(), work)
    record_versions()
    run_cases(work, args.cases)
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
