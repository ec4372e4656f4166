"""Router vectors for ``llmerge moe``'s prompt gate modes.

    python -m llmerge.moe_gates --request request.json --out gates.safetensors [--backend mlx]

The request is what ``llmerge.moe_gate_request`` (C++: ``llmerge::moe_gate_request``)
returns for a config: the base model folder, its layer count and hidden size, the
gate mode, and each expert's prompts. The gate file holds ``layers.L.router``
``[experts, hidden]`` (and ``layers.L.shared_router`` ``[1, hidden]`` with a shared
expert) in float32; ``llmerge moe --gates FILE`` builds the model from it.

The vectors follow mergekit-moe 0.1.5 (``mergekit/moe/router.py``), per expert:

- prompts are ``bos + prompt``, tokenized without other special tokens and padded
  on the left with the bos token;
- ``cheap_embed``: the sum over prompts and real tokens of the token embeddings,
  L2-normalized; the same vector for every layer;
- ``hidden`` / ``hidden_last``: the residual stream entering each layer at the last
  position, averaged over prompts; ``hidden_avg``: averaged over all positions
  (pads included, as mergekit);
- negative prompts' vector is subtracted, then each layer's vector is L2-normalized
  (norm clamped at 1e-8).

Backends: ``torch`` runs transformers' AutoModelForCausalLM in bfloat16, as
mergekit-moe does; ``mlx`` runs mlx-lm's model in its stored dtype. ``auto`` takes
mlx-lm if it is installed, else torch. Only the tokenizer needs ``transformers``
(without torch). Exit status 3 means no backend is installed.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from typing import Any, Sequence

import numpy as np

PROMPT_MODES = ("cheap_embed", "hidden", "hidden_avg", "hidden_last")


class BackendMissing(RuntimeError):
    """No installed package can compute this gate mode."""


def _tokenizer(path: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise BackendMissing("the prompt gates need transformers' tokenizer: pip install "
                             "transformers") from e
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    tok.pad_token_id = tok.bos_token_id
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def tokenize(tok: Any, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as mergekit-moe's tokenize_prompts makes them."""
    enc = tok([(tok.bos_token or "") + p for p in prompts], padding=True,
              add_special_tokens=False, return_tensors="np")
    return np.asarray(enc["input_ids"], dtype=np.int64), np.asarray(enc["attention_mask"])


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)


# ---------------------------------------------------------------- backends

class _MlxBackend:
    name = "mlx"

    def __init__(self, path: str):
        import mlx.core as mx
        from mlx_lm import load
        self.mx = mx
        self.model, _ = load(path)
        self.inner = getattr(self.model, "model", self.model)

    def embed_rows(self, ids: np.ndarray) -> np.ndarray:
        mx = self.mx
        return np.array(self.inner.embed_tokens(mx.array(ids)).astype(mx.float32))

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[layers, batch, seq, hidden]: the residual stream entering each layer."""
        mx = self.mx
        h = self.inner.embed_tokens(mx.array(ids))
        batch, seq = ids.shape
        # Causal, and no attention to left pads (transformers' 4-D mask); a pad row
        # with nothing to attend to keeps a finite score instead of NaN.
        causal = np.tril(np.ones((seq, seq), dtype=bool))
        keep = causal[None, None] & mask.astype(bool)[:, None, None, :]
        additive = np.where(keep, 0.0, np.finfo(np.float32).min).astype(np.float32)
        m = mx.array(additive).astype(h.dtype)
        out = []
        for layer in self.inner.layers:
            out.append(h.astype(mx.float32))
            h = layer(h, m, None)
        stacked = mx.stack(out)
        mx.eval(stacked)
        return np.array(stacked)


class _TorchBackend:
    name = "torch"

    def __init__(self, path: str, need_model: bool):
        import torch
        self.torch = torch
        self.path = path
        self.model = None
        if need_model:
            from transformers import AutoModelForCausalLM
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
            self.model.eval()

    def embed_rows(self, ids: np.ndarray) -> np.ndarray:
        torch = self.torch
        if not hasattr(self, "_embed"):
            self._embed = _load_tensor_torch(self.path, "model.embed_tokens.weight")
        # onehot.float() @ embed.float(), as mergekit: a row gather in f32.
        return self._embed.float()[torch.from_numpy(ids)].numpy()

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            out = self.model(input_ids=torch.from_numpy(ids),
                             attention_mask=torch.from_numpy(mask.astype(np.int64)),
                             output_hidden_states=True, return_dict=True)
        return torch.stack(out.hidden_states[:-1]).float().numpy()


def _load_tensor_torch(path: str, name: str) -> Any:
    from safetensors import safe_open
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            shard = json.load(f)["weight_map"][name]
    else:
        shard = "model.safetensors"
    with safe_open(os.path.join(path, shard), framework="pt") as f:
        return f.get_tensor(name)


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def make_backend(choice: str, path: str, mode: str) -> Any:
    if choice not in ("auto", "mlx", "torch"):
        raise ValueError(f"backend must be auto, mlx or torch, not {choice!r}")
    if choice in ("auto", "mlx") and _has("mlx_lm"):
        return _MlxBackend(path)
    if choice in ("auto", "torch") and _has("torch") and _has("transformers"):
        return _TorchBackend(path, need_model=mode != "cheap_embed")
    wanted = {"auto": "mlx-lm, or torch and transformers", "mlx": "mlx-lm",
              "torch": "torch and transformers"}[choice]
    raise BackendMissing(f"gate_mode {mode} runs the base model on the prompts, which needs "
                         f"{wanted}: pip install {'mlx-lm' if choice != 'torch' else 'torch transformers'}")


# ------------------------------------------------------------------ vectors

def _prompt_vector(backend: Any, tok: Any, prompts: Sequence[str], mode: str,
                   layers: int) -> np.ndarray:
    ids, mask = tokenize(tok, prompts)
    if mode == "cheap_embed":
        h = backend.embed_rows(ids) * mask[..., None]
        v = h.sum(axis=1).sum(axis=0, keepdims=True)
        return np.repeat(_normalize(v), layers, axis=0)
    hs = backend.hidden_states(ids, mask)  # [layers, batch, seq, hidden]
    per_prompt = hs.mean(axis=2) if mode == "hidden_avg" else hs[:, :, -1, :]
    return per_prompt.mean(axis=1)


def compute_gates(request: dict[str, Any], backend: str = "auto") -> dict[str, np.ndarray]:
    """The gate file's tensors for a request (see the module docstring)."""
    mode = request["gate_mode"]
    if mode not in PROMPT_MODES:
        raise ValueError(f"gate_mode {mode} needs no prompts: llmerge computes it in C++")
    layers = int(request["num_layers"])
    path = request["base_model"]
    tok = _tokenizer(path)
    engine = make_backend(backend, path, mode)
    routed, shared = [], []
    for expert in request["experts"]:
        v = _prompt_vector(engine, tok, expert["positive_prompts"], mode, layers)
        if expert["negative_prompts"]:
            v = v - _prompt_vector(engine, tok, expert["negative_prompts"], mode, layers)
        (shared if expert["shared"] else routed).append(_normalize(v).astype(np.float32))
    out: dict[str, np.ndarray] = {}
    for layer in range(layers):
        out[f"layers.{layer}.router"] = np.stack([v[layer] for v in routed])
        if shared:
            out[f"layers.{layer}.shared_router"] = np.stack([v[layer] for v in shared])
    return out


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, np.ndarray]) -> None:
    """float32 tensors in the safetensors format (8-byte header length, JSON, data)."""
    header: dict[str, Any] = {}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmerge.moe_gates",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--request", help="the JSON of llmerge.moe_gate_request")
    parser.add_argument("--config", help="a mergekit-moe config (needs llmerge's extension)")
    parser.add_argument("--out", required=True, help="gate file to write (.safetensors)")
    parser.add_argument("--backend", default="auto", choices=("auto", "mlx", "torch"))
    args = parser.parse_args(argv)
    if bool(args.request) == bool(args.config):
        parser.error("give --request or --config")
    if args.request:
        with open(args.request, encoding="utf-8") as f:
            request = json.load(f)
    else:
        from . import moe_gate_request
        request = moe_gate_request(args.config)
    try:
        gates = compute_gates(request, args.backend)
    except BackendMissing as e:
        print(f"llmerge.moe_gates: error: {e}", file=sys.stderr)
        return 3
    write_safetensors(args.out, gates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
