#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Usage: tests/fuzz/make_corpus.py PATH/TO/llmerge
The seeds are committed; rerun this only to change them. Real-looking files
come from `llmerge synth` (tiny models), corrupt ones are written by hand
(the same kinds of damage as tests/corrupt/reader_catalogue_test.cpp).
"""
import json
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SEP = b"\n=====\n"  # fuzz_model_folder's file separator


def st(header, data=b""):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    llmerge = sys.argv[1]
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    tiny = ["--hidden", "8", "--intermediate", "8", "--heads", "2", "--kv-heads", "1", "--vocab", "4"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        run = lambda *a: subprocess.run([llmerge, "synth", *a], check=True, capture_output=True)
        run(str(tmp / "one"), "--layers", "1", *tiny)
        run(str(tmp / "sharded"), "--layers", "2", *tiny, "--out-shard-size", "600")
        run(str(tmp / "gpt2"), "--family", "gpt2", "--layers", "1", *tiny, "--dtype", "f32")
        one = (tmp / "one/model.safetensors").read_bytes()
        config = (tmp / "one/config.json").read_bytes()

        # ---- fuzz_safetensors ----
        put("fuzz_safetensors", "synth_llama.safetensors", one)
        put("fuzz_safetensors", "synth_gpt2.safetensors", (tmp / "gpt2/model.safetensors").read_bytes())
        put("fuzz_safetensors", "shard.safetensors",
            (tmp / "sharded/model-00002-of-00004.safetensors").read_bytes())
        f32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
        put("fuzz_safetensors", "one_tensor", st({"w": f32}, b"\0\0\x80\x3f"))
        put("fuzz_safetensors", "metadata", st({"__metadata__": {"format": "pt"}, "w": f32}, b"abcd"))
        put("fuzz_safetensors", "empty_header", st(b"{}"))
        put("fuzz_safetensors", "padded", st(b'{"w":' + json.dumps(f32).encode() + b"}   ", b"abcd"))
        put("fuzz_safetensors", "scalar_and_empty",
            st({"s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]},
                "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [2, 2]}}, b"xx"))
        put("fuzz_safetensors", "subbyte",
            st({"q": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}, b"xx"))
        put("fuzz_safetensors", "short", b"\x02\0\0")
        put("fuzz_safetensors", "length_past_end", struct.pack("<Q", 1 << 40) + b"{}")
        put("fuzz_safetensors", "overlap",
            st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"x" * 12))
        put("fuzz_safetensors", "gap",
            st({"a": f32, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, b"x" * 12))
        put("fuzz_safetensors", "huge_shape",
            st({"w": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}, b"x" * 8))
        put("fuzz_safetensors", "negative_shape",
            st({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"x" * 4))
        put("fuzz_safetensors", "duplicate_names", st(b'{"w":' + json.dumps(f32).encode() + b',"w":' +
                                                      json.dumps(f32).encode() + b"}", b"abcd"))
        put("fuzz_safetensors", "bad_utf8", st(b'{"\xff":' + json.dumps(f32).encode() + b"}", b"abcd"))
        put("fuzz_safetensors", "lfs_pointer",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9000\n")

        # ---- fuzz_model_folder: config.json SEP index SEP shard... ----
        sharded = tmp / "sharded"
        shards = sorted(sharded.glob("model-*.safetensors"))
        index = (sharded / "model.safetensors.index.json").read_bytes()
        put("fuzz_model_folder", "single", config + SEP + SEP + one)
        put("fuzz_model_folder", "sharded", SEP.join([(sharded / "config.json").read_bytes(), index] +
                                                     [s.read_bytes() for s in shards]))
        put("fuzz_model_folder", "lone_no_config", SEP + SEP + one)
        put("fuzz_model_folder", "gpt2", (tmp / "gpt2/config.json").read_bytes() + SEP + SEP +
            (tmp / "gpt2/model.safetensors").read_bytes())
        cfg = json.loads(config)
        mlx = dict(cfg, quantization={"bits": 4, "group_size": 64, "mode": "affine"})
        put("fuzz_model_folder", "mlx_config", json.dumps(mlx).encode() + SEP + SEP + one)
        wrong = dict(cfg, num_hidden_layers="two", tie_word_embeddings=3, text_config=[1])
        put("fuzz_model_folder", "wrong_types", json.dumps(wrong).encode() + SEP + SEP + one)
        put("fuzz_model_folder", "huge_numbers",
            b'{"num_hidden_layers": 1e999, "vocab_size": 18446744073709551616, "hidden_size": -9223372036854775809}'
            + SEP + SEP + one)
        put("fuzz_model_folder", "duplicate_keys", b'{"num_hidden_layers": 1, "num_hidden_layers": 7}' +
            SEP + SEP + one)
        idx = json.loads(index)
        idx["weight_map"]["model.norm.weight"] = "../escape.safetensors"
        put("fuzz_model_folder", "index_escape", SEP.join([config, json.dumps(idx).encode()] +
                                                          [s.read_bytes() for s in shards]))
        put("fuzz_model_folder", "index_missing_shard",
            SEP.join([config, index] + [s.read_bytes() for s in shards[:2]]))
        put("fuzz_model_folder", "index_not_object", SEP.join([config, b"[]", one]))
        put("fuzz_model_folder", "config_not_object", b"42" + SEP + SEP + one)
        put("fuzz_model_folder", "deep_json", b"[" * 5000 + b"]" * 5000 + SEP + SEP + one)

    # ---- fuzz_config_plan: the examples, plus hostile configs ----
    for example in sorted((HERE.parent.parent / "examples").glob("*.yaml")):
        put("fuzz_config_plan", example.name, example.read_bytes())
    put("fuzz_config_plan", "alias_bomb.yaml",
        "merge_method: linear\nmodels:\n  - model: demo/models/a\nparameters:\n  l0: &l0 [1, 1, 1]\n"
        "  l1: &l1 [*l0, *l0, *l0]\n  l2: [*l1, *l1, *l1]\n")
    put("fuzz_config_plan", "huge_range.yaml",
        "merge_method: passthrough\nslices:\n  - sources:\n      - model: demo/models/a\n"
        "        layer_range: [0, 9223372036854775807]\n")
    put("fuzz_config_plan", "negative_range.yaml",
        "merge_method: passthrough\nslices:\n  - sources:\n      - model: demo/models/a\n"
        "        layer_range: [-4, 2]\n")
    put("fuzz_config_plan", "nan_weight.yaml",
        "merge_method: linear\nmodels:\n  - model: demo/models/a\n    parameters: {weight: .nan}\n"
        "  - model: demo/models/b\n    parameters: {weight: .inf}\n")
    put("fuzz_config_plan", "zero_weights.yaml",
        "merge_method: linear\nmodels:\n  - model: demo/models/a\n    parameters: {weight: 1}\n"
        "  - model: demo/models/b\n    parameters: {weight: -1}\n")
    put("fuzz_config_plan", "density.yaml",
        "merge_method: ties\nbase_model: demo/models/base\nmodels:\n  - model: demo/models/a\n"
        "    parameters: {weight: 1, density: 0}\n  - model: demo/models/b\n"
        "    parameters: {weight: 1, density: 1.5}\n")
    put("fuzz_config_plan", "device_model.yaml",
        "merge_method: linear\nmodels:\n  - model: /dev/zero\n  - model: /dev/null\n")
    put("fuzz_config_plan", "hub_id.yaml",
        "merge_method: linear\nmodels:\n  - model: org/name@main\n  - model: demo/models/a\n")

    # ---- fuzz_mlx_quant: FuzzedDataProvider's layout: the mode string ends at
    # a backslash; integers are taken from the end of the input, last byte most
    # significant, offset by the type's minimum (bits, group_size, words, cols).
    def provider_int(v, n):
        return ((v + (1 << (8 * n - 1))) % (1 << (8 * n))).to_bytes(n, "little")
    for mode, bits, group in [("affine", 4, 64), ("affine", 3, 32), ("affine", 6, 128),
                              ("mxfp4", 4, 32), ("nvfp4", 4, 16), ("affine", 8, 0)]:
        tail = (provider_int(128, 8) + provider_int(16, 8) + provider_int(group, 4) +
                provider_int(bits, 4))
        put("fuzz_mlx_quant", f"{mode}_{bits}_{group}",
            mode.encode() + b"\\ " + bytes(range(256)) + tail)
    sentencepiece_seeds()

def sentencepiece_seeds():
    """fuzz_sentencepiece: the goldens' two tokenizer.model files (BPE with byte fallback;
    Unigram with a precompiled charsmap), their halves, and a tiny hand-written model."""
    golden = HERE.parent / "golden" / "tokenizer" / "tokenizers"
    for name in ("spm", "spmu"):
        data = (golden / name / "tokenizer.model").read_bytes()
        put("fuzz_sentencepiece", name, data)
        put("fuzz_sentencepiece", name + "_half", data[: len(data) // 2])

    def field(number, payload):
        if isinstance(payload, int):  # a varint field
            return varint(number << 3) + varint(payload)
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def varint(v):
        out = b""
        while True:
            out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
            v >>= 7
            if not v:
                return out
    pieces = [(b"<unk>", 2), (b"<s>", 3), ("\u2581a".encode(), 1), (b"a", 1), (b"<u>", 4)]
    model = b"".join(field(1, field(1, p) + field(3, t)) for p, t in pieces)
    put("fuzz_sentencepiece", "tiny_bpe", model + field(2, field(3, 2) + field(35, 1)))


if __name__ == "__main__":
    main()
