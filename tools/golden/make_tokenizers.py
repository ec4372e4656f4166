"""Writes the small tokenizers of the tokenizer golden cases (tests/golden/tokenizer/tokenizers/).

A developer tool, not CI: run it with a Python that has `tokenizers` and `transformers`
(the peers venv), then commit the folders. BPE training on a fixed corpus is
deterministic, but the committed files are what the tests use.

  base   BPE, 62 trained tokens + 4 "<UNUSED_n>" added tokens (ids 62..65); its model's
         config vocab_size is 64, so a stripped base keeps ids < 64
  chat   the same 62 tokens + "<|im_start|>", "<|im_end|>" (ids 62, 63) and a ChatML template
  other  BPE trained on a different corpus (62 tokens) + "<sep>" (special) + "<|im_end|>"
  wp     WordPiece over words of both corpora (64 tokens)
"""
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
from transformers import PreTrainedTokenizerFast

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/tokenizer/tokenizers")
CORPUS_A = ["the cat sat on the mat", "a dog ran to the park", "cats and dogs are pets",
            "the sun is hot and the moon is cold", "birds sing in the morning light",
            "rivers flow down to the sea", "winter brings snow and quiet nights"] * 8
CORPUS_B = ["zebra quartz jumps over lazy fox", "quick brown fox", "my xylophone is loud",
            "the cat and the fox", "vexing wizards box jolly quips", "pack my bag with five jugs",
            "grumpy kings fight over velvet"] * 8
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
          "%}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def bpe(corpus, size):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=["<unk>", "<s>"],
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    assert tok.get_vocab_size() == size, tok.get_vocab_size()
    return tok


def save(tok, name, added, special_added, template=None):
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>")
    if added:
        fast.add_tokens(added)
    if special_added:
        fast.add_special_tokens({"additional_special_tokens": special_added})
    if template:
        fast.chat_template = template
    fast.save_pretrained(OUT / name)
    for extra in ("chat_template.jinja",):  # keep the template in tokenizer_config.json only
        (OUT / name / extra).unlink(missing_ok=True)
    if template:
        import json
        p = OUT / name / "tokenizer_config.json"
        cfg = json.loads(p.read_text())
        cfg["chat_template"] = template
        p.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


save(bpe(CORPUS_A, 62), "base", [], [f"<UNUSED_{i}>" for i in range(4)])
save(bpe(CORPUS_A, 62), "chat", [], ["<|im_start|>", "<|im_end|>"], CHATML)
save(bpe(CORPUS_B, 62), "other", ["<|im_end|>"], ["<sep>"])

words = sorted({w for line in CORPUS_A + CORPUS_B for w in line.split()})
vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}
for w in words:
    vocab.setdefault(w, len(vocab))
for c in "abcdefghijklmnopqrstuvwxyz":
    if len(vocab) < 64:
        vocab.setdefault("##" + c, len(vocab))
wp = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
wp.pre_tokenizer = pre_tokenizers.Whitespace()
fast = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]")
fast.save_pretrained(OUT / "wp")
print({n: len(Tokenizer.from_file(str(OUT / n / "tokenizer.json")).get_vocab())
       for n in ("base", "chat", "other", "wp")})
