"""Writes the sentencepiece-only tokenizers of the tokenizer golden cases.

A developer tool, not CI: run it with a Python that has `sentencepiece` (the peers venv)
from the repository root, then commit the folders. Training with one thread on a fixed
corpus is deterministic, but the committed files are what the tests use.

  spm    BPE, 320 pieces: <unk> <s> </s>, the 256 byte pieces (byte_fallback, as llama),
         then merged pieces and characters; identity normalization, a dummy prefix, extra
         spaces kept (llama's settings); tokenizer_config.json as llama's (LlamaTokenizer)
  spmu   Unigram, 72 pieces, no byte fallback, a small custom normalization table (a
         precompiled charsmap: full-width A, the ellipsis and the fi ligature) and
         extra-space removal (T5-like settings); pad/eos/unk at ids 0/1/2, no bos; only
         tokenizer.model, so transformers uses the file's own settings
"""
import io
import json
import sys
import tempfile
from pathlib import Path

import sentencepiece as spm

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/tokenizer/tokenizers")
CORPUS = ["the cat sat on the mat", "a dog ran to the park", "cats and dogs are pets",
          "the sun is hot and the moon is cold", "birds sing in the morning light",
          "rivers flow down to the sea", "winter brings snow and quiet nights",
          "zebra quartz jumps over lazy fox", "quick brown fox", "my xylophone is loud",
          "numbers 12345 and 2026", "café naïve über"] * 8


RULES = "FF21\t41\n2026\t2E 2E 2E\nFB01\t66 69\n"  # Ａ -> A, … -> ..., ﬁ -> fi


def train(**kw) -> bytes:
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=out,
                                   character_coverage=1.0, num_threads=1, minloglevel=2, **kw)
    return out.getvalue()


(OUT / "spm").mkdir(parents=True, exist_ok=True)
(OUT / "spm" / "tokenizer.model").write_bytes(train(
    model_type="bpe", vocab_size=320, byte_fallback=True, split_digits=True,
    normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
    unk_id=0, bos_id=1, eos_id=2, pad_id=-1))
(OUT / "spm" / "tokenizer_config.json").write_text(json.dumps({
    "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
    "unk_token": "<unk>", "clean_up_tokenization_spaces": False, "legacy": False,
    "model_max_length": 4096, "tokenizer_class": "LlamaTokenizer"}, indent=2) + "\n")
(OUT / "spmu").mkdir(parents=True, exist_ok=True)
rules = Path(tempfile.mkdtemp()) / "rules.tsv"
rules.write_text(RULES)
(OUT / "spmu" / "tokenizer.model").write_bytes(train(
    model_type="unigram", vocab_size=72, normalization_rule_tsv=str(rules), pad_id=0, eos_id=1, unk_id=2, bos_id=-1))
for name in ("spm", "spmu"):
    sp = spm.SentencePieceProcessor(model_file=str(OUT / name / "tokenizer.model"))
    print(name, sp.get_piece_size(), (OUT / name / "tokenizer.model").stat().st_size, "bytes")
