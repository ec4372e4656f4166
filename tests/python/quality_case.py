"""The deterministic case of the quality probe's tests (tests/golden/quality/):
a seeded synth llama and two texts its word-level tokenizer covers."""
SYNTH_ARGS = ["--family", "llama", "--layers", "2", "--hidden", "64", "--intermediate", "128",
              "--heads", "4", "--kv-heads", "2", "--vocab", "256", "--dtype", "f32",
              "--seed", "42"]
TEXTS = {
    "words.txt": " ".join(f"w{100 + (i * 37) % 150}" for i in range(120)),
    "symbols.txt": " ".join(chr(33 + (i * 11) % 90) for i in range(80)),
}
