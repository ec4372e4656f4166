"""Developer check (not CI: needs torch): transformers 5.x loads `llmerge moe` outputs,
generates, and the fused experts it builds on load equal the sources.

    python tools/golden/moe_transformers_check.py OUT,EXPERT_MODEL,EXPERT_INDEX ...

For each output folder: AutoModelForCausalLM (bf16) generates 4 tokens after
"w100 w101", and layer 1's mlp.experts.gate_up_proj[e] / down_proj[e] must equal
cat(gate_proj, up_proj) / down_proj of the expert's model.safetensors.
"""
import sys, torch, json
from pathlib import Path
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
ok = True
for out, src, e in [a.split(",") for a in sys.argv[1:]]:
    e = int(e)
    m = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("w100 w101", return_tensors="pt")
    g = m.generate(**ids, max_new_tokens=4, do_sample=False)
    s = load_file(str(Path(src) / "model.safetensors"))
    mlp = m.model.layers[1].mlp
    gu = mlp.experts.gate_up_proj[e]
    want = torch.cat([s["model.layers.1.mlp.gate_proj.weight"], s["model.layers.1.mlp.up_proj.weight"]])
    eq = torch.equal(gu, want) and torch.equal(mlp.experts.down_proj[e], s["model.layers.1.mlp.down_proj.weight"])
    print(f"{out}: {type(m).__name__} generated {g.shape[1]-ids['input_ids'].shape[1]} tokens; expert {e} equals source: {eq}")
    ok &= eq
sys.exit(0 if ok else 1)
