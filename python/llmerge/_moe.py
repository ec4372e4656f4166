"""``llmerge.moe``: a mixture-of-experts model from dense models (mergekit-moe's config).

    llmerge.moe("moe.yaml", "out")                           # any gate_mode
    llmerge.moe("moe.yaml", "out", gate_backend="torch")     # hidden states from transformers
    plan = llmerge.plan_moe("moe.yaml", gates="gates.safetensors")

Random gates (random, uniform_random) are computed by the C++ engine from
``random_seed``. For the prompt modes (cheap_embed, hidden, hidden_avg,
hidden_last), :func:`moe` asks the engine what to compute
(:func:`moe_gate_request`), computes the router vectors with
:mod:`llmerge.moe_gates` (mlx-lm or transformers), and hands the gate file to the
engine's planner. docs/moe.md has the details.
"""
from __future__ import annotations

import json as _json
import os
import tempfile
from typing import Any, Mapping, Union

from . import _core

MoeConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any], "_core.MoeConfig"]


def _moe_config(config: MoeConfigLike) -> _core.MoeConfig:
    if isinstance(config, _core.MoeConfig):
        return config
    if isinstance(config, Mapping):
        return _core.MoeConfig.parse(_json.dumps(config, indent=1), "<dict>")
    if isinstance(config, os.PathLike):
        return _core.MoeConfig.load(os.fspath(config))
    if isinstance(config, str):
        if os.path.isfile(config) or ("\n" not in config and ":" not in config):
            return _core.MoeConfig.load(config)
        return _core.MoeConfig.parse(config, "<string>")
    raise TypeError(f"config must be a path, a YAML string, a dict or a MoeConfig, "
                    f"not {type(config).__name__}")


def moe_gate_request(config: MoeConfigLike, **plan_options: Any) -> dict[str, Any]:
    """What the prompt gates need (base model folder, layers, hidden size, prompts), after
    the same checks as :func:`plan_moe`; raises :class:`llmerge.Error` on a bad config."""
    from . import _option_text
    opts = _option_text("moe_gate_request", "moe", plan_options, scope="plan")
    return _json.loads(_core.moe_gate_request(_moe_config(config), opts))


def plan_moe(config: MoeConfigLike, *, cancel: Any = None, **plan_options: Any) -> Any:
    """Checks a mergekit-moe config against the models and returns the :class:`llmerge.Plan`.
    A prompt gate_mode needs ``gates=`` (a gate file); :func:`moe` makes one for you."""
    from . import Plan, _option_text
    opts = _option_text("plan_moe", "moe", plan_options, scope="plan")
    return Plan(_core.plan_moe(_moe_config(config), opts, cancel), opts)


def moe(config: MoeConfigLike, out: str | os.PathLike[str], *, progress: Any = None,
        cancel: Any = None, progress_interval: float = 0.1, **options: Any) -> Any:
    """Builds the MoE model into ``out`` (atomically) and returns a RunResult. Options:
    those of ``llmerge.options("moe")``: gate_backend (auto, mlx, torch) picks who runs
    the base model for prompt gates; gates= gives a gate file instead."""
    from . import _option_text
    opts = _option_text("moe", "moe", options)
    native = _moe_config(config)
    plan_opts = {k: v for k, v in opts.items() if _scope(k) == "plan"}
    run_opts = {k: v for k, v in opts.items() if _scope(k) == "run"}
    with tempfile.TemporaryDirectory(prefix="llmerge-gates-") as tmp:
        if native.needs_prompt_gates and "gates" not in plan_opts:
            from . import moe_gates
            request = _json.loads(_core.moe_gate_request(native, plan_opts))
            gates = moe_gates.compute_gates(request, plan_opts.get("gate_backend", "auto"))
            plan_opts["gates"] = os.path.join(tmp, "gates.safetensors")
            moe_gates.write_safetensors(plan_opts["gates"], gates)
        plan = _core.plan_moe(native, plan_opts, cancel)
        return _core.run(plan, os.fspath(out), run_opts, progress, cancel, progress_interval)


def _scope(name: str) -> str:
    from . import _BY_NAME
    return _BY_NAME[name]["scope"]
