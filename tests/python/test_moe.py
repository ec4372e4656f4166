"""llmerge.moe from Python: random gates, errors as exceptions, prompt gates (mlx-lm)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import llmerge
from llmerge import moe_gates


def moe_config(models, mode="random", prompts=False):
    experts = []
    for name, prompt in (("a", "w100 w101"), ("b", "x y z")):
        e = {"source_model": str(models[name])}
        if prompts:
            e["positive_prompts"] = [prompt]
        experts.append(e)
    return {"base_model": str(models["base"]), "gate_mode": mode, "experts": experts}


def test_random_moe_is_reproducible_for_a_seed(models, tmp_path):
    r = llmerge.moe(moe_config(models), tmp_path / "one", random_seed=4)
    llmerge.moe(moe_config(models), tmp_path / "two", random_seed=4, threads=1)
    assert r.layers == 2
    one = (tmp_path / "one" / "model.safetensors").read_bytes()
    assert one == (tmp_path / "two" / "model.safetensors").read_bytes()
    cfg = json.loads((tmp_path / "one" / "config.json").read_text())
    assert cfg["model_type"] == "mixtral" and cfg["num_local_experts"] == 2


def test_bad_moe_config_raises_with_location(models):
    config = moe_config(models)
    config["experts_per_token"] = 5
    with pytest.raises(llmerge.ConfigError) as info:
        llmerge.plan_moe(config)
    assert "experts_per_token" in str(info.value)
    with pytest.raises(TypeError):
        llmerge.plan_moe(moe_config(models), threads=2)  # a run option


def test_gate_request_lists_the_prompts(models):
    request = llmerge.moe_gate_request(moe_config(models, "hidden", prompts=True))
    assert request["num_layers"] == 2 and request["gate_mode"] == "hidden"
    assert [e["positive_prompts"] for e in request["experts"]] == [["w100 w101"], ["x y z"]]


def test_gate_file_round_trips_through_the_planner(models, tmp_path):
    config = moe_config(models, "cheap_embed", prompts=True)
    request = llmerge.moe_gate_request(config)
    rng = np.random.default_rng(0)
    gates = {f"layers.{l}.router": rng.standard_normal((2, request["hidden_size"]))
             .astype(np.float32) for l in range(request["num_layers"])}
    moe_gates.write_safetensors(tmp_path / "g.safetensors", gates)
    plan = llmerge.plan_moe(config, gates=tmp_path / "g.safetensors")
    assert any(t.name.endswith("block_sparse_moe.gate.weight") for t in plan.tensors)


@pytest.mark.parametrize("mode", ["cheap_embed", "hidden", "hidden_avg"])
def test_prompt_gates_with_mlx_are_unit_rows_per_layer(models, tmp_path, mode):
    pytest.importorskip("mlx_lm")
    request = llmerge.moe_gate_request(moe_config(models, mode, prompts=True))
    gates = moe_gates.compute_gates(request, "mlx")
    assert sorted(gates) == ["layers.0.router", "layers.1.router"]
    for g in gates.values():
        assert g.shape == (2, request["hidden_size"])
        np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, rtol=1e-5)
    if mode == "cheap_embed":  # the same vector for every layer
        np.testing.assert_array_equal(gates["layers.0.router"], gates["layers.1.router"])
    r = llmerge.moe(moe_config(models, mode, prompts=True), tmp_path / "out",
                    gate_backend="mlx")
    assert r.tensors > 0
