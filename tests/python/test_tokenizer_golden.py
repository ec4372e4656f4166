"""Tokenizer merging against mergekit 0.1.5 (tests/golden/tokenizer/).

For every case: llmerge merges the synth models of models.txt (each with the committed
tokenizer of tokenizers/), then
  - every token of mergekit's output vocabulary has the same embedding and lm_head row
    in llmerge's output (looked up by token: mergekit numbers union tokens in hash order),
    and the padding rows match;
  - config.json's vocab_size is the number of rows, and no row is missing for any id;
  - transformers' AutoTokenizer loads llmerge's tokenizer, encodes the test text (with the
    added tokens) to the same tokens as mergekit's output tokenizer, and has the same
    chat template.
The one deviation: mergekit keeps the base's tokens past its vocab_size when they are
listed as special tokens (transformers re-adds them on load); llmerge strips them
(docs/tokenizers.md). expected.json lists them as mergekit_unstripped.
"""
from __future__ import annotations

import json
import pathlib
import shlex
import shutil
import subprocess

import pytest

np = pytest.importorskip("numpy")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden" / "tokenizer"
CASES = sorted(p.parent.name for p in GOLDEN.glob("cases/*/config.yaml"))


@pytest.fixture(scope="module")
def work(cli, tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("tokenizer-golden")
    for line in (GOLDEN / "models.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, tokenizer, *args = shlex.split(line)
        subprocess.run([cli, "synth", f"models/{name}", *args, "--force"], cwd=root, check=True,
                       stdout=subprocess.DEVNULL)
        src = GOLDEN / "tokenizers" / tokenizer
        if (src / "tokenizer.model").exists():  # sentencepiece only: drop synth's tokenizer
            for f in ("tokenizer.json", "tokenizer_config.json"):
                (root / "models" / name / f).unlink(missing_ok=True)
        for f in src.iterdir():
            shutil.copyfile(f, root / "models" / name / f.name)
    return root


def load_tables(path: pathlib.Path) -> dict:
    tables = {}
    for shard in path.glob("*.safetensors"):
        for k, v in safetensors_numpy.load_file(str(shard)).items():
            if "embed_tokens" in k or "lm_head" in k:
                tables[k] = v.astype(np.float32)
    return tables


@pytest.mark.parametrize("case", CASES)
def test_matches_mergekit(cli, work, case):
    expected = json.loads((GOLDEN / "cases" / case / "expected.json").read_text())
    want = load_tables(GOLDEN / "cases" / case)
    out = work / "out" / case
    subprocess.run([cli, "run", str(GOLDEN / "cases" / case / "config.yaml"), str(out), "--force",
                    "--quiet"], cwd=work, check=True)
    got = load_tables(out)
    assert sorted(got) == sorted(want)
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    vocab = tok.get_vocab()
    skipped = set(expected["mergekit_unstripped"])
    assert not skipped & set(vocab)
    assert set(vocab) == set(expected["vocab"]) - skipped
    config = json.loads((out / "config.json").read_text())
    for name, table in got.items():
        # Every id has a row, and vocab_size counts them all.
        assert table.shape[0] == config["vocab_size"] >= max(vocab.values()) + 1
        for token, mk_id in expected["vocab"].items():
            if token in skipped:
                continue
            np.testing.assert_allclose(table[vocab[token]], want[name][mk_id], rtol=1e-5,
                                       atol=1e-6, err_msg=f"{name} row of {token!r}")
        if not skipped:
            assert table.shape == want[name].shape
            n = len(expected["vocab"])
            np.testing.assert_allclose(table[n:], want[name][n:], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} padding rows")
    ids = tok(expected["text"], add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == expected["tokens"]
    assert tok.chat_template == expected["chat_template"]
    if "ids" in expected:  # the sentencepiece cases: mergekit's ids, read through its vocab
        by_id = {i: t for t, i in expected["vocab"].items()}
        assert [by_id[i] for i in expected["ids"]] == tok.convert_ids_to_tokens(ids)
        with_special = tok(expected["text"])["input_ids"]
        assert tok.convert_ids_to_tokens(with_special) == expected["tokens_with_special"]
        assert not (out / "tokenizer.model").exists()  # it would disagree with tokenizer.json


SPM = json.loads((GOLDEN / "sentencepiece.json").read_text())


@pytest.mark.parametrize("name", sorted(SPM))
def test_sentencepiece_conversion_encodes_as_transformers(cli, work, name):
    """llmerge's tokenizer.json made from a tokenizer.model encodes every text as the fast
    tokenizer transformers makes from that file (the developer script also compares both
    with sentencepiece itself)."""
    tokenizers = pytest.importorskip("tokenizers")
    facts = SPM[name]
    config = work / f"convert_{name}.yaml"
    config.write_text(f"merge_method: linear\nmodels:\n  - model: models/{facts['model']}\n"
                      "    parameters: {weight: 1}\ndtype: float32\ntokenizer:\n  source: base\n"
                      "  tokens:\n    \"<spm_check>\": {source: {kind: zero}}\n")
    out = work / "out" / f"convert_{name}"
    subprocess.run([cli, "run", str(config), str(out), "--force", "--quiet"], cwd=work, check=True)
    raw = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    auto = transformers.AutoTokenizer.from_pretrained(str(out))
    for text, want, decoded in zip(facts["texts"], facts["transformers"], facts["decoded"]):
        assert auto(text, add_special_tokens=False)["input_ids"] == want, text
        assert raw.encode(text, add_special_tokens=False).ids == want, text
        assert raw.decode(want) == decoded, text


@pytest.mark.parametrize("case", ["union", "tied_union", "spm_base_union"])
def test_merged_model_generates_from_a_prompt_with_added_tokens(cli, work, case):
    """The union output loads and generates in mlx-lm and (with torch) transformers."""
    expected = json.loads((GOLDEN / "cases" / case / "expected.json").read_text())
    out = work / "gen" / case
    subprocess.run([cli, "run", str(GOLDEN / "cases" / case / "config.yaml"), str(out), "--force",
                    "--quiet"], cwd=work, check=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    prompt = tok(expected["text"], add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<|im_start|>") in prompt
    ran = 0
    try:
        import mlx.core as mx
        import mlx_lm
    except ImportError:
        pass
    else:
        model, _ = mlx_lm.load(str(out))
        logits = model(mx.array([prompt]))
        assert logits.shape[-1] == json.loads((out / "config.json").read_text())["vocab_size"]
        assert mx.all(mx.isfinite(logits)).item()
        ran += 1
    try:
        import torch
    except ImportError:
        pass
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(out))
        ids = model.generate(torch.tensor([prompt]), max_new_tokens=3, do_sample=False)
        assert ids.shape[1] == len(prompt) + 3
        assert int(ids.max()) < model.config.vocab_size
        ran += 1
    if not ran:
        pytest.skip("neither mlx-lm nor torch is installed")
