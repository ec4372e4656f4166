"""The Python API: merges, plans, errors, progress, threads and Ctrl-C."""
from __future__ import annotations

import ast
import json
import os
import pathlib
import signal
import subprocess
import threading
import time

import pytest

import llmerge
from conftest import ROOT, folder_bytes, ties_config


def test_merge_of_a_dict_config_writes_the_same_bytes_as_the_cli(models, cli, tmp_path):
    config = ties_config(models)
    result = llmerge.merge(config, tmp_path / "py", threads=2, model_card=False)
    (tmp_path / "ties.yaml").write_text(json.dumps(config))
    subprocess.run([cli, "run", str(tmp_path / "ties.yaml"), "-o", str(tmp_path / "cli"), "--quiet",
                    "--no-write-model-card"], check=True)
    ours, theirs = folder_bytes(tmp_path / "py"), folder_bytes(tmp_path / "cli")
    assert "model.safetensors" in ours and "config.json" in ours
    assert "README.md" not in ours  # model_card=False is write_model_card's alias
    assert ours == theirs
    assert result.output == str(tmp_path / "py")
    assert result.tensors == len(llmerge.plan(config).tensors) > 0
    assert result.bytes > 0 and result.seconds >= 0 and result.memory_estimate > 0


def test_config_may_be_a_path_a_yaml_string_or_a_dict(models, tmp_path):
    config = ties_config(models)
    path = tmp_path / "ties.yaml"
    path.write_text(json.dumps(config, indent=1))
    yaml = path.read_text()
    expected = llmerge.plan(config).json()
    assert llmerge.plan(path).json() == expected
    assert llmerge.plan(str(path)).json() == expected
    assert llmerge.plan(yaml).json() == expected
    assert llmerge.plan(llmerge.load_config(path)).json() == expected
    assert llmerge.load_config(path).merge_method == "ties"


def test_plan_describes_lists_tensors_and_checks_options(models):
    plan = llmerge.plan(ties_config(models), out_dtype="float16")
    names = [t.name for t in plan.tensors]
    assert "model.layers.1.mlp.down_proj.weight" in names
    assert {t.dtype for t in plan.tensors} == {"float16"}
    assert "ties" in plan.describe()
    assert isinstance(plan.json(), dict)
    assert all(p.kind == "note" for p in plan.problems)
    assert plan.output_layers == 2
    assert plan.memory_estimate(threads=1) <= plan.memory_estimate(threads=8)


def test_plan_run_writes_the_plan(models, tmp_path):
    plan = llmerge.plan(ties_config(models))
    result = plan.run(tmp_path / "out", threads=1)
    assert result.tensors == len(plan.tensors)
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_unknown_keywords_raise_type_error_and_bad_values_config_error(models, tmp_path):
    config = ties_config(models)
    with pytest.raises(TypeError, match="thread"):
        llmerge.merge(config, tmp_path / "x", thread=2)
    with pytest.raises(TypeError, match="threads"):
        llmerge.plan(config, threads=2)  # a run option: plan() does not take it
    with pytest.raises(llmerge.ConfigError, match="q_mode"):
        llmerge.merge(config, tmp_path / "x", q_mode="nope")
    assert not (tmp_path / "x").exists()


def test_errors_carry_the_yaml_line_and_column():
    yaml = "merge_method: linear\nmodels:\n  - model: a\n    paramters: {weight: 1}\n"
    with pytest.raises(llmerge.ConfigError) as info:
        llmerge.plan(yaml)
    e = info.value
    assert isinstance(e, llmerge.Error) and isinstance(e, ValueError)
    assert e.kind == "config"
    first = e.problems[0]
    assert (first.file, first.line) == ("<string>", 4)
    assert first.column >= 5
    assert "paramters" in first.message
    assert str(e).startswith("<string>:4:")


def test_missing_models_raise_file_error_with_every_problem(tmp_path):
    config = {"merge_method": "linear",
              "models": [{"model": str(tmp_path / "nope1"), "parameters": {"weight": 1}},
                         {"model": str(tmp_path / "nope2"), "parameters": {"weight": 1}}]}
    with pytest.raises(llmerge.Error) as info:
        llmerge.plan(config)
    assert info.value.kind in ("io", "config")
    assert "nope1" in str(info.value)
    assert all(isinstance(p, llmerge.Problem) for p in info.value.problems)


def test_shape_mismatch_raises_shape_error(models, tmp_path):
    llmerge.synth(tmp_path / "wide", family="llama", hidden=128, intermediate=128, heads=4,
                  kv_heads=2, vocab=256, layers=2)
    config = {"merge_method": "linear",
              "models": [{"model": str(models["a"]), "parameters": {"weight": 0.5}},
                         {"model": str(tmp_path / "wide"), "parameters": {"weight": 0.5}}]}
    with pytest.raises(llmerge.ShapeError) as info:
        llmerge.plan(config)
    first = info.value.problems[0]
    assert "hidden size 64" in first.message and "128" in first.message
    assert first.hint


def test_progress_is_called_on_the_calling_thread_and_ends_complete(models, tmp_path):
    seen: list[tuple[int, llmerge.Progress]] = []
    llmerge.merge(ties_config(models), tmp_path / "out", threads=1,
                  progress=lambda p: seen.append((threading.get_ident(), p)))
    assert seen, "progress was never called"
    assert {ident for ident, _ in seen} == {threading.get_ident()}
    last = seen[-1][1]
    assert last.tensors_done == last.tensors_total > 0
    assert last.bytes_done == last.bytes_total > 0


def test_an_exception_in_progress_cancels_the_merge_and_leaves_nothing(slow_models, tmp_path):
    class Stop(Exception):
        pass

    calls: list[llmerge.Progress] = []

    def stop(p):
        calls.append(p)
        raise Stop()

    with pytest.raises(Stop):
        llmerge.merge(slow_config(slow_models), tmp_path / "out", threads=1, progress=stop)
    assert len(calls) == 1 and calls[0].tensors_done < calls[0].tensors_total
    assert os.listdir(tmp_path) == [], "a cancelled merge left files behind"


def test_a_cancel_token_raises_interrupted(models, tmp_path):
    token = llmerge.CancelToken()
    token.cancel()
    with pytest.raises(llmerge.Interrupted):
        llmerge.merge(ties_config(models), tmp_path / "out", cancel=token)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def slow_models(tmp_path_factory):
    """Models large enough that a one-thread DELLA merge takes a second or more."""
    root = tmp_path_factory.mktemp("slow")
    shape = dict(family="llama", hidden=512, intermediate=1536, heads=8, kv_heads=4, vocab=512,
                 layers=16, dtype="bf16")
    llmerge.synth(root / "base", seed=1, **shape)
    llmerge.synth(root / "a", like=root / "base", delta_scale=0.05, seed=2)
    llmerge.synth(root / "b", like=root / "base", delta_scale=0.05, seed=3)
    return {name: root / name for name in ("base", "a", "b")}


def slow_config(models):
    params = {"weight": 0.5, "density": 0.5, "epsilon": 0.1}
    return {"merge_method": "della", "base_model": str(models["base"]), "dtype": "bfloat16",
            "models": [{"model": str(models["a"]), "parameters": params},
                       {"model": str(models["b"]), "parameters": params}]}


def test_ctrl_c_cancels_within_a_second_and_leaves_nothing(slow_models, tmp_path):
    """SIGINT while the merge runs with the GIL released and no Python callback: the
    progress hook's signal check cancels the run and re-raises KeyboardInterrupt."""
    out = tmp_path / "out"
    sent: list[float] = []

    def sigint():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.3, sigint)
    default = signal.getsignal(signal.SIGINT)
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            llmerge.merge(slow_config(slow_models), out, threads=1)
        stopped = time.monotonic()
    finally:
        # A SIGINT that comes after a merge that finished first must not hit pytest.
        signal.signal(signal.SIGINT, lambda *_: None)
        timer.join()
        signal.signal(signal.SIGINT, default)
    assert sent, "the merge ended before the interrupt was sent"
    assert stopped - sent[0] < 1.0
    assert os.listdir(tmp_path) == [], "a cancelled merge left files behind"


def test_two_merges_in_threads_while_python_keeps_running(slow_models, tmp_path):
    config = slow_config(slow_models)
    results: dict[str, llmerge.RunResult] = {}
    errors: list[BaseException] = []
    ticks = 0
    running = threading.Event()
    done = threading.Event()

    def count():
        nonlocal ticks
        running.set()
        while not done.is_set():
            ticks += 1

    def merge(name):
        try:
            results[name] = llmerge.merge(config, tmp_path / name, threads=1,
                                          write_model_card=False)
        except BaseException as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)

    counter = threading.Thread(target=count)
    counter.start()
    running.wait()
    workers = [threading.Thread(target=merge, args=(n,)) for n in ("one", "two")]
    start_ticks = ticks
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    merged_ticks = ticks - start_ticks
    done.set()
    counter.join()
    assert not errors, errors
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "two")
    # With the GIL held through the merges the counter would barely move.
    assert merged_ticks > 10_000, merged_ticks


def test_quantize_writes_mlx_quantized_weights(models, tmp_path):
    result = llmerge.quantize(models["a"], tmp_path / "q4", bits=4, group_size=32)
    config = json.loads((tmp_path / "q4" / "config.json").read_text())
    assert config["quantization"]["bits"] == 4
    assert config["quantization"]["group_size"] == 32
    assert result.tensors > 0
    llmerge.quantize(tmp_path / "q4", tmp_path / "dense", dequantize=True)
    assert "quantization" not in json.loads((tmp_path / "dense" / "config.json").read_text())


def test_inspect_and_methods(models):
    info = llmerge.inspect(models["base"])
    data = info.json()
    assert "llama" in json.dumps(data).lower()
    assert "64" in info.describe()  # the hidden size
    names = {m["name"] for m in llmerge.methods()}
    assert {"linear", "ties", "slerp", "passthrough"} <= names


def test_keyword_options_follow_the_options_table():
    """The stub's keywords are the C++ table's, call by call (no hand-kept copy to drift)."""
    stub = ast.parse((pathlib.Path(llmerge.__file__).with_name("__init__.pyi")).read_text())
    funcs = {n.name: n for n in ast.walk(stub) if isinstance(n, ast.FunctionDef)}
    common = {"progress", "cancel", "progress_interval"}

    def kw(name):
        return {a.arg for a in funcs[name].args.kwonlyargs} - common

    def table(command, scope=None, drop=()):
        # Scope "recipe" (intermediate_dir, lazy, staged): recipes only, which no Python call runs.
        return {o["name"] for o in llmerge.options()
                if (command in o["commands"] or not o["commands"])
                and (scope is None or o["scope"] == scope) and o["scope"] != "recipe"} - set(drop)

    assert kw("merge") == table("run")
    assert kw("plan") == table("plan", scope="plan")
    assert kw("run") == table("run", scope="run")  # Plan.run
    assert kw("quantize") == table("quantize", drop=("quantize", "q_bits", "q_group_size"))
    assert kw("moe") == table("moe")
    assert kw("plan_moe") == table("moe", scope="plan")
    assert kw("moe_gate_request") == table("moe", scope="plan")
    assert kw("fuse") == table("fuse")


def test_console_script_runs_the_bundled_cli(cli):
    out = subprocess.run([cli, "methods"], check=True, capture_output=True, text=True).stdout
    assert "ties" in out


def test_the_extension_stub_names_everything_the_extension_defines():
    import llmerge._core as core

    stub = ast.parse(pathlib.Path(core.__file__).with_name("_core.pyi").read_text())
    declared = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    declared |= {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign)}
    defined = {name for name in dir(core) if not name.startswith("_")} | {"__version__"}
    assert defined == declared
