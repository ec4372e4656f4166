"""A quick quality probe for merged models: perplexity and next-token KL.

    import llmerge
    llmerge.evaluate("merged", ["held-out/legal.txt", "held-out/code.txt"])
    # {"legal.txt": 12.3, "code.txt": 40.1}
    llmerge.divergence("merged", ["parent-a", "parent-b"], ["held-out/legal.txt"])
    # {"parent-a": {"legal.txt": 0.08}, "parent-b": {"legal.txt": 0.31}}

Both run the model themselves with one of two backends: ``"mlx"`` (mlx-lm,
CPU or Apple GPU) or ``"torch"`` (transformers, CPU, float32). Neither is a
dependency of llmerge: install the one you use.

Perplexity is exp of the mean next-token negative log-likelihood over a text,
the same quantity as ``exp(model(ids, labels=ids).loss)`` in transformers: the
text is tokenized with the model's own tokenizer (special tokens as the
tokenizer adds them), cut into consecutive windows of ``context`` tokens, and
every token of a window but its first is predicted from those before it. With
one window (a text shorter than ``context``) the figure equals transformers'
exactly; with more, it is the token-weighted mean over windows.

The divergence is KL(P_parent || P_merged) of the next-token distributions,
averaged over the same predicted positions: how much of what a parent would
say the merged model has lost. Zero means the same distribution.

Texts are file paths (a folder means every regular file in it, sorted), or a
mapping from a name to the text itself. Results are keyed by the file's name.
"""
from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

TextsLike = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]],
                  Mapping[str, str]]

__all__ = ["evaluate", "divergence", "read_texts", "main"]


def read_texts(texts: TextsLike) -> dict[str, str]:
    """Name -> text, from paths, folders or a mapping (see the module doc)."""
    if isinstance(texts, Mapping):
        return {str(k): str(v) for k, v in texts.items()}
    if isinstance(texts, (str, os.PathLike)):
        texts = [texts]
    out: dict[str, str] = {}
    for t in texts:
        p = pathlib.Path(t)
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        for f in files:
            out[f.name] = f.read_text(encoding="utf-8", errors="replace")
    if not out:
        raise ValueError(f"no texts found in {texts!r}")
    return out


class _Mlx:
    def __init__(self, path: str) -> None:
        try:
            import mlx.core as mx
            import mlx_lm
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("backend='mlx' needs mlx-lm: pip install mlx-lm") from e
        self.mx = mx
        self.model, self.tokenizer = mlx_lm.load(path)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def log_probs(self, ids: Sequence[int]) -> Any:
        """Next-token log-probabilities, float64 numpy [len(ids), vocab]."""
        import numpy as np
        mx = self.mx
        logits = self.model(mx.array([list(ids)]))[0].astype(mx.float32)
        lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        return np.array(lp, dtype=np.float64)


class _Torch:
    def __init__(self, path: str) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("backend='torch' needs torch and transformers") from e
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def log_probs(self, ids: Sequence[int]) -> Any:
        torch = self.torch
        with torch.no_grad():
            logits = self.model(torch.tensor([list(ids)])).logits[0].to(torch.float64)
        return torch.log_softmax(logits, dim=-1).numpy()


_BACKENDS: dict[str, Callable[[str], Any]] = {"mlx": _Mlx, "torch": _Torch}


def _backend(model: Any, backend: str) -> Any:
    if not isinstance(model, (str, os.PathLike)):
        return model  # already loaded (a backend object)
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {sorted(_BACKENDS)}, not {backend!r}")
    return _BACKENDS[backend](os.fspath(model))


def _windows(ids: list[int], context: int) -> list[list[int]]:
    if context < 2:
        raise ValueError("context must be at least 2 tokens")
    return [ids[i:i + context] for i in range(0, len(ids), context) if len(ids[i:i + context]) > 1]


def evaluate(model: Any, texts: TextsLike, *, backend: str = "mlx", context: int = 1024,
             max_tokens: int | None = None) -> dict[str, float]:
    """Perplexity of ``model`` (a folder) on each text; see the module doc.

    ``max_tokens`` cuts each text's tokens first (for a quick probe)."""
    m = _backend(model, backend)
    out: dict[str, float] = {}
    for name, text in read_texts(texts).items():
        ids = m.encode(text)[:max_tokens]
        nll, count = 0.0, 0
        for w in _windows(ids, context):
            lp = m.log_probs(w)
            nll -= float(sum(lp[i, w[i + 1]] for i in range(len(w) - 1)))
            count += len(w) - 1
        out[name] = math.exp(nll / count) if count else float("nan")
    return out


def divergence(merged: Any, parents: Any, texts: TextsLike, *, backend: str = "mlx",
               context: int = 1024, max_tokens: int | None = None) -> dict[str, dict[str, float]]:
    """Mean next-token KL(parent || merged) per parent and text; see the module doc.

    ``parents``: one folder or a list. The merged model tokenizes the texts;
    the parents must share its vocabulary (the merge's inputs do)."""
    import numpy as np
    if isinstance(parents, (str, os.PathLike)):
        parents = [parents]
    m = _backend(merged, backend)
    named = {os.fspath(p) if isinstance(p, (str, os.PathLike)) else f"parent{i}": p
             for i, p in enumerate(parents)}
    corpus = read_texts(texts)
    windows = {name: _windows(m.encode(t)[:max_tokens], context) for name, t in corpus.items()}
    merged_lp = {name: [m.log_probs(w) for w in ws] for name, ws in windows.items()}
    out: dict[str, dict[str, float]] = {}
    for pname, parent in named.items():
        p = _backend(parent, backend)
        out[pname] = {}
        for name, ws in windows.items():
            kl, count = 0.0, 0
            for w, q in zip(ws, merged_lp[name]):
                lp = p.log_probs(w)
                vocab = min(lp.shape[1], q.shape[1])
                a, b = lp[:-1, :vocab], q[:-1, :vocab]
                kl += float((np.exp(a) * (a - b)).sum())
                count += len(w) - 1
            out[pname][name] = kl / count if count else float("nan")
        del p
    return out


def main(argv: list[str] | None = None) -> int:
    """``llmerge eval MODEL TEXT... [--parents P ...] [--backend mlx|torch] [--json]``."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="llmerge eval",
                                 description="Perplexity per text file, and with --parents the "
                                             "next-token KL of MODEL against each parent.")
    ap.add_argument("model")
    ap.add_argument("texts", nargs="+", help="text files or folders of them")
    ap.add_argument("--parents", nargs="*", default=[], help="models to measure KL against")
    ap.add_argument("--backend", choices=sorted(_BACKENDS), default="mlx")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--max-tokens", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    result: dict[str, Any] = {
        "perplexity": evaluate(a.model, a.texts, backend=a.backend, context=a.context,
                               max_tokens=a.max_tokens)}
    if a.parents:
        result["kl"] = divergence(a.model, a.parents, a.texts, backend=a.backend,
                                  context=a.context, max_tokens=a.max_tokens)
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    for name, ppl in result["perplexity"].items():
        print(f"perplexity {ppl:10.4f}  {name}")
    for parent, per_text in result.get("kl", {}).items():
        for name, kl in per_text.items():
            print(f"KL(parent || model) {kl:.6f}  {parent}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
