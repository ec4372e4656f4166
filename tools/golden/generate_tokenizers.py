#!/usr/bin/env python3
"""Regenerate the tokenizer golden data under tests/golden/tokenizer/ with mergekit.

Run by developers, not by CI:

    tools/golden/generate_tokenizers.py --venv DIR [--llmerge PATH] [CASE ...]

1. Makes the models of tests/golden/tokenizer/models.txt with `llmerge synth` and copies
   each one's tokenizer files (tests/golden/tokenizer/tokenizers/<name>/) into it.
2. Checks llmerge's tokenizer.json made from each sentencepiece-only tokenizer.model
   against transformers' conversion and sentencepiece itself (it prints the agreement)
   and stores transformers' ids of the texts in sentencepiece.json.
3. Runs mergekit on every cases/<case>/config.yaml (tokenizer built, no model card).
4. Stores, per case: expected.safetensors (mergekit's token tables: embed_tokens and
   lm_head), and expected.json: the output vocabulary (token -> id), config vocab_size,
   whether a chat template was written, the test text and the ids mergekit's output
   tokenizer gives it, as tokens.

The venv must have mergekit 0.1.5 (tests/golden/VERSIONS), e.g. the one generate.py makes.

Run from anywhere; the models' paths in the configs are relative to the work folder.
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "tokenizer"
TEXT = "<|im_start|>user the cat sat<|im_end|> <sep> zebra fox <new_token>"
# For the sentencepiece cases: ordinary words, text only byte fallback can spell, runs of
# spaces, a tab and a newline, digits, and the added tokens.
SPM_TEXT = ("<|im_start|>user the cat  sat   on the mat<|im_end|>\n café über 日本 🙂 "
            "zebra\tfox 12345 <sep> Ａ cat… ﬁsh")


def text_of(case: str) -> str:
    return SPM_TEXT if case.startswith("spm_") else TEXT


def read_models():
    for line in (GOLDEN / "models.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, tokenizer, *args = shlex.split(line)
            yield name, tokenizer, args


def make_models(llmerge: Path, work: Path) -> None:
    for name, tokenizer, args in read_models():
        subprocess.run([llmerge, "synth", f"models/{name}", *args, "--force"], cwd=work,
                       check=True, stdout=subprocess.DEVNULL)
        src = GOLDEN / "tokenizers" / tokenizer
        if (src / "tokenizer.model").exists():  # sentencepiece only: drop synth's tokenizer
            for f in ("tokenizer.json", "tokenizer_config.json"):
                (work / "models" / name / f).unlink(missing_ok=True)
        for f in src.iterdir():
            shutil.copyfile(f, work / "models" / name / f.name)


def run_cases(work: Path, names) -> None:
    import torch
    import transformers
    import yaml
    from safetensors.torch import load_file, save_file
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    options = MergeOptions(copy_tokenizer=True, write_model_card=False, quiet=True)
    cases = sorted(p.parent for p in (GOLDEN / "cases").glob("*/config.yaml"))
    if names:
        cases = [c for c in cases if c.name in names]
    os.chdir(work)
    for case in cases:
        out = work / "out" / case.name
        shutil.rmtree(out, ignore_errors=True)
        source = (case / "config.yaml").read_text()
        config = MergeConfiguration.model_validate(yaml.safe_load(source))
        run_merge(config, str(out), options=options, config_source=source)
        tensors = {}
        for shard in out.glob("*.safetensors"):
            for k, v in load_file(shard).items():
                if "embed_tokens" in k or "lm_head" in k:
                    tensors[k] = v.to(torch.float32).contiguous()
        save_file(tensors, case / "expected.safetensors")
        tok = transformers.AutoTokenizer.from_pretrained(out)
        cfg = json.loads((out / "config.json").read_text())
        text = text_of(case.name)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with_special = tok(text)["input_ids"]
        # mergekit strips the base tokenizer to its config vocab_size, but transformers 5
        # re-adds stripped special tokens on load (extra_special_tokens); llmerge strips
        # them from those lists too (docs/tokenizers.md, deviations).
        base = config.base_model or config.referenced_models()[0]
        base_dir = Path(base.model.path)
        base_limit = json.loads((base_dir / "config.json").read_text())["vocab_size"]
        base_ids = {}
        if (base_dir / "tokenizer.json").exists():  # a sentencepiece base strips nothing here
            base_vocab = json.loads((base_dir / "tokenizer.json").read_text())
            if isinstance(base_vocab["model"]["vocab"], dict):
                base_ids = dict(base_vocab["model"]["vocab"])
            base_ids.update({a["content"]: a["id"] for a in base_vocab["added_tokens"]})
        unstripped = sorted(t for t in tok.get_vocab() if base_ids.get(t, -1) >= base_limit)
        expected = {
            "mergekit_unstripped": unstripped,
            "vocab": dict(sorted(tok.get_vocab().items(), key=lambda kv: kv[1])),
            "vocab_size": cfg.get("vocab_size"),
            "chat_template": tok.chat_template,
            "text": text,
            "tokens": tok.convert_ids_to_tokens(ids),
        }
        if case.name.startswith("spm_"):
            # mergekit's ids (union ids are in hash order: the test maps them to tokens
            # through "vocab"), with the special tokens transformers adds on its own.
            expected["ids"] = ids
            expected["tokens_with_special"] = tok.convert_ids_to_tokens(with_special)
        (case / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
        print(f"{case.name}: ok ({len(expected['vocab'])} tokens, vocab_size {cfg.get('vocab_size')})",
              flush=True)


# Texts for the conversion check: words, space runs (leading, inner, trailing), newlines
# and tabs, byte fallback (CJK, emoji), digits, the Unigram model's normalization table,
# a text that starts with "▁", one longer than any piece, and the empty text.
CONVERSION_TEXTS = ["the cat sat on the mat", "Hello  world", "  leading and trailing  ",
                    "café über 日本 🙂", "a\nb\tc", "12345 and 2026", "Ａ cat… ﬁsh",
                    "▁already", "x" * 40, "quick brown fox\n\nzebra", ""]


def conversion_facts(llmerge: Path, work: Path) -> None:
    """tests/golden/tokenizer/sentencepiece.json: for each sentencepiece-only model, the
    ids transformers' converted fast tokenizer gives the texts (what the CI test checks
    llmerge's conversion against), and how llmerge, transformers and sentencepiece agree."""
    import sentencepiece
    import tokenizers
    import transformers

    facts = {}
    for name, tokenizer, _ in read_models():
        if not (GOLDEN / "tokenizers" / tokenizer / "tokenizer.model").exists() or tokenizer in facts:
            continue
        model = work / "models" / name
        ref = transformers.AutoTokenizer.from_pretrained(model)
        sp = sentencepiece.SentencePieceProcessor(model_file=str(model / "tokenizer.model"))
        config = work / f"convert_{name}.yaml"
        config.write_text(f"merge_method: linear\nmodels:\n  - model: models/{name}\n"
                          "    parameters: {weight: 1}\ndtype: float32\ntokenizer:\n  source: base\n"
                          "  tokens:\n    \"<spm_check>\": {source: {kind: zero}}\n")
        out = work / "out" / f"convert_{name}"
        subprocess.run([llmerge, "run", config, out, "--force", "--quiet"], cwd=work, check=True)
        ours = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
        want = [ref(t, add_special_tokens=False)["input_ids"] for t in CONVERSION_TEXTS]
        spm_ids = [sp.encode(t) for t in CONVERSION_TEXTS]
        got = [ours.encode(t, add_special_tokens=False).ids for t in CONVERSION_TEXTS]
        n = len(CONVERSION_TEXTS)
        agree = lambda a, b: sum(x == y for x, y in zip(a, b))  # noqa: E731
        print(f"{tokenizer} ({type(ref).__name__}): llmerge = transformers on {agree(got, want)}/{n} "
              f"texts, llmerge = sentencepiece on {agree(got, spm_ids)}/{n}, transformers = "
              f"sentencepiece on {agree(want, spm_ids)}/{n}")
        for t, a, b in zip(CONVERSION_TEXTS, want, spm_ids):
            if a != b:
                print(f"  {t!r}: transformers {ref.convert_ids_to_tokens(a)}, sentencepiece "
                      f"{sp.id_to_piece(b)}")
        facts[tokenizer] = {"model": name, "class": type(ref).__name__, "texts": CONVERSION_TEXTS,
                            "transformers": want, "sentencepiece": spm_ids,
                            "decoded": [ref.backend_tokenizer.decode(ids) for ids in want]}
    (GOLDEN / "sentencepiece.json").write_text(json.dumps(facts, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, required=True)
    ap.add_argument("--llmerge", type=Path, default=ROOT / "build/src/llmerge")
    ap.add_argument("--work", type=Path, help="keep the models and outputs here")
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    venv = args.venv.resolve()
    if Path(sys.prefix).resolve() != venv:
        py = venv / "bin" / "python"
        os.execv(py, [str(py), __file__, *sys.argv[1:]])
    work = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="llmerge-tok-"))
    work.mkdir(parents=True, exist_ok=True)
    make_models(args.llmerge.resolve(), work)
    conversion_facts(args.llmerge.resolve(), work)
    run_cases(work, args.cases)
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
