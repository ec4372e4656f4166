#!/usr/bin/env python3
"""The demonstration of docs/quality.md: does `llmerge compare` predict how merges behave?

Run with a Python that has torch and transformers (CPU is enough, ~10 minutes on 2 busy cores):

    PYTHON_WITH_TORCH bench/quality_demo.py --llmerge build/src/llmerge --out build/quality-demo

1. Three text domains from files every Debian system has: licences
   (/usr/share/common-licenses), Python source (the standard library) and C headers
   (/usr/include). Each is split into training text and held-out text (whole files).
2. A tiny llama (byte-level tokenizer, 4 layers, hidden 128) is trained from scratch
   on licences: the base. Two copies are fine-tuned, one on Python, one on C.
3. `llmerge compare` runs on the two fine-tunes with the base, before any merge.
4. llmerge merges them with several methods.
5. llmerge.quality.evaluate (torch backend) measures held-out perplexity per domain
   for the base, both fine-tunes and every merge.

Writes OUT/results.json, OUT/results.md (the table) and OUT/perplexity.svg (the plot).
Seeds are fixed; torch on CPU with one thread is deterministic run to run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import pathlib
import random
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

DOMAINS = {
    "licences": sorted(pathlib.Path("/usr/share/common-licenses").glob("*")),
    "python": sorted(pathlib.Path(sys.base_prefix, "lib").glob("python3*/[a-m]*.py")),
    "c": sorted(pathlib.Path("/usr/include").glob("*.h")),
}
METHODS = {
    "linear": "merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n"
              "  - model: {b}\n    parameters: {{weight: 0.5}}\n",
    "slerp": "merge_method: slerp\nbase_model: {a}\nmodels:\n  - model: {a}\n  - model: {b}\n"
             "parameters: {{t: 0.5}}\n",
    "task_arithmetic": "merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n"
                       "  - model: {a}\n    parameters: {{weight: 1.0}}\n"
                       "  - model: {b}\n    parameters: {{weight: 1.0}}\n",
    "task_arithmetic_w0.5": "merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n"
                            "  - model: {a}\n    parameters: {{weight: 0.5}}\n"
                            "  - model: {b}\n    parameters: {{weight: 0.5}}\n",
    "ties_0.2": "merge_method: ties\nbase_model: {base}\nmodels:\n"
                "  - model: {a}\n    parameters: {{weight: 1.0, density: 0.2}}\n"
                "  - model: {b}\n    parameters: {{weight: 1.0, density: 0.2}}\n",
    "ties_0.5": "merge_method: ties\nbase_model: {base}\nmodels:\n"
                "  - model: {a}\n    parameters: {{weight: 1.0, density: 0.5}}\n"
                "  - model: {b}\n    parameters: {{weight: 1.0, density: 0.5}}\n",
    "dare_ties_0.5": "merge_method: dare_ties\nbase_model: {base}\nmodels:\n"
                     "  - model: {a}\n    parameters: {{weight: 1.0, density: 0.5}}\n"
                     "  - model: {b}\n    parameters: {{weight: 1.0, density: 0.5}}\n",
    "dare_ties_0.5_w0.5": "merge_method: dare_ties\nbase_model: {base}\nmodels:\n"
                          "  - model: {a}\n    parameters: {{weight: 0.5, density: 0.5}}\n"
                          "  - model: {b}\n    parameters: {{weight: 0.5, density: 0.5}}\n",
}


def load_quality():
    spec = importlib.util.spec_from_file_location("quality", ROOT / "python/llmerge/quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def split_domain(files: list[pathlib.Path], held_out_every: int = 4) -> tuple[str, str]:
    """Every fourth file is held out; the rest is training text."""
    train, held = [], []
    for i, f in enumerate(files):
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        (held if i % held_out_every == held_out_every - 1 else train).append(text)
    return "\n".join(train), "\n".join(held)


def save_tokenizer(folder: pathlib.Path) -> None:
    """A byte-level BPE tokenizer with no merges: one token per byte (vocab 256)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(folder)


def train(model, ids, steps: int, lr: float, seq: int, batch: int, seed: int) -> list[float]:
    import torch
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(ids, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    model.train()
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=g)
        x = torch.stack([data[s:s + seq] for s in starts])
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            print(f"  step {step}/{steps}: loss {loss.item():.3f}", flush=True)
    model.eval()
    return losses


def svg_plot(rows: dict[str, dict[str, float]], domains: list[str]) -> str:
    """Grouped bars: one group per model, one bar per domain, log-scaled perplexity."""
    colours = ["#1f77b4", "#d62728", "#2ca02c"]
    names = list(rows)
    lo = min(math.log(v) for r in rows.values() for v in r.values())
    hi = max(math.log(v) for r in rows.values() for v in r.values())
    lo = math.floor(lo * 2) / 2
    left, top, ph, gw = 60, 30, 260, 70
    width = left + gw * len(names) + 120
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + ph + 90}" '
         'font-family="sans-serif" font-size="11">',
         f'<text x="{left}" y="16" font-size="13" font-weight="600">held-out perplexity '
         '(log scale; lower is better)</text>']
    for t in range(int(lo * 2), int(math.ceil(hi * 2)) + 1):
        v = t / 2
        y = top + ph - ph * (v - lo) / (hi - lo + 1e-9)
        s.append(f'<line x1="{left}" x2="{width - 120}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        s.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{math.exp(v):.1f}</text>')
    bw = (gw - 10) / len(domains)
    for gi, name in enumerate(names):
        x0 = left + gi * gw + 5
        for di, d in enumerate(domains):
            v = math.log(rows[name][d])
            h = ph * (v - lo) / (hi - lo + 1e-9)
            s.append(f'<rect x="{x0 + di * bw:.1f}" y="{top + ph - h:.1f}" width="{bw - 1:.1f}" '
                     f'height="{h:.1f}" fill="{colours[di]}"><title>{name} {d}: '
                     f'{rows[name][d]:.2f}</title></rect>')
        s.append(f'<text transform="translate({x0 + gw / 2 - 5:.1f},{top + ph + 8}) rotate(35)">'
                 f'{name}</text>')
    for di, d in enumerate(domains):
        s.append(f'<rect x="{width - 110}" y="{top + 14 * di}" width="10" height="10" '
                 f'fill="{colours[di]}"/><text x="{width - 95}" y="{top + 9 + 14 * di}">{d}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmerge", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--base-steps", type=int, default=400)
    ap.add_argument("--tune-steps", type=int, default=200)
    ap.add_argument("--reuse", action="store_true",
                    help="keep OUT's trained models (from an earlier run) and redo the rest")
    ap.add_argument("--eval-tokens", type=int, default=4096)
    a = ap.parse_args()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)
    quality = load_quality()
    out = pathlib.Path(a.out).resolve()
    reuse = a.reuse and (out / "models" / "ft_c" / "config.json").exists()
    if not reuse:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    held = {}
    train_text = {}
    for d, files in DOMAINS.items():
        train_text[d], held[d] = split_domain(files)
        (out / "held-out").mkdir(exist_ok=True)
        (out / "held-out" / f"{d}.txt").write_text(held[d][: a.eval_tokens * 2])
    folders = {n: out / "models" / n for n in ("base", "ft_python", "ft_c")}
    log = {"losses": {}}
    if reuse:
        if (out / "train.json").exists():
            log = json.loads((out / "train.json").read_text())
    else:
        tok_dir = out / "tokenizer"
        save_tokenizer(tok_dir)
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(tok_dir)
        ids = {d: tok(t)["input_ids"] for d, t in train_text.items()}
        config = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=352,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                             max_position_embeddings=512, tie_word_embeddings=False)
        base = LlamaForCausalLM(config)
        log["losses"]["base"] = train(base, ids["licences"], a.base_steps, 3e-3, 128, 16, 1)

        def save(model, name):
            model.save_pretrained(folders[name], safe_serialization=True)
            tok.save_pretrained(folders[name])

        save(base, "base")
        for name, domain, seed in (("ft_python", "python", 2), ("ft_c", "c", 3)):
            model = LlamaForCausalLM(config)
            model.load_state_dict(base.state_dict())
            log["losses"][name] = train(model, ids[domain], a.tune_steps, 1e-3, 128, 16, seed)
            save(model, name)
        (out / "train.json").write_text(json.dumps(log) + "\n")
    print(f"trained in {time.time() - started:.0f} s", flush=True)

    cmp = subprocess.run([a.llmerge, "compare", str(folders["ft_python"]), str(folders["ft_c"]),
                          "--base", str(folders["base"]), "--density", "0.2", "--json",
                          "-o", str(out / "compare.html"), "--quiet"],
                         check=True, capture_output=True, text=True).stdout
    compare = json.loads(cmp)
    (out / "compare.json").write_text(cmp)

    configs = {m: t.format(a=folders["ft_python"], b=folders["ft_c"], base=folders["base"]) +
               "dtype: float32\n" for m, t in METHODS.items()}
    # What compare recommended, as it wrote it.
    configs["recommended"] = compare["recommendation"]["config"]
    for method, text in configs.items():
        cfg = out / "configs" / f"{method}.yaml"
        cfg.parent.mkdir(exist_ok=True)
        cfg.write_text(text)
        shutil.rmtree(out / "models" / method, ignore_errors=True)
        folders[method] = out / "models" / method
        subprocess.run([a.llmerge, "run", str(cfg), "-o", str(folders[method]), "--quiet"],
                       check=True)
    print(f"merged in {time.time() - started:.0f} s", flush=True)

    table = {}
    for name, folder in folders.items():
        table[name] = quality.evaluate(folder, out / "held-out", backend="torch", context=256,
                                       max_tokens=a.eval_tokens)
        table[name] = {k.removesuffix(".txt"): v for k, v in table[name].items()}
        print(name, {k: round(v, 3) for k, v in table[name].items()}, flush=True)
    domains = list(DOMAINS)
    pair = compare["pairs"][0]
    results = {"perplexity": table, "compare": {k: pair[k] for k in pair if k not in "ab"},
               "recommendation": compare["recommendation"],
               "recommended_config": configs["recommended"],
               "train_loss_last": {k: sum(v[-20:]) / 20 for k, v in log["losses"].items()},
               "seconds": time.time() - started}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| model | " + " | ".join(domains) + " | mean |", "|---" * (len(domains) + 2) + "|"]
    for name, row in table.items():
        mean = math.exp(sum(math.log(row[d]) for d in domains) / len(domains))
        lines.append(f"| {name} | " + " | ".join(f"{row[d]:.3f}" for d in domains) +
                     f" | {mean:.3f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "perplexity.svg").write_text(svg_plot(table, domains))
    print("\n".join(lines))
    print(f"compare: {json.dumps(results['compare'])}")
    print(f"recommended: {compare['recommendation']['method']} "
          f"{compare['recommendation']['reasons']}")
    print(f"done in {time.time() - started:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
