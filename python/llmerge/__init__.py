"""llmerge: merge LLMs from Python with the same engine as the ``llmerge`` CLI.

    import llmerge
    config = {"merge_method": "linear", "dtype": "bfloat16",
              "models": [{"model": "a", "parameters": {"weight": 0.5}},
                         {"model": "b", "parameters": {"weight": 0.5}}]}
    plan = llmerge.plan(config)          # checks everything; raises llmerge.Error
    print(plan.describe())
    result = llmerge.merge(config, "merged", threads=4, progress=print)

Keyword options are those of the C++ options table (``llmerge.options()``, the
CLI's ``--help``): the names are checked against it at every call, and the
stub (``__init__.pyi``) is checked against it by the tests. ``None`` keeps an
option's default.

Threads: ``plan``, ``merge``, ``quantize`` and ``Plan.run`` release the GIL, so
other Python threads keep running and several merges can run in threads at once
(on different outputs; they share the cores). ``progress`` is called on the
thread that called ``merge`` (about every ``progress_interval`` seconds and once
at the end) with a :class:`Progress`. On the main thread, Ctrl-C cancels the
merge within ``progress_interval`` and raises ``KeyboardInterrupt``; nothing is
left behind. An exception raised by ``progress`` cancels the merge the same way
and propagates. (On the last call, once every tensor is written, there is nothing
left to cancel: the exception still propagates and the finished output stays.)
"""
from __future__ import annotations

import json as _json
import os
from typing import Any, Callable, Mapping, Union

from . import _core
from ._core import CancelToken, PlannedTensor, Progress, RunResult
from ._errors import (ConfigError, Error, FileError, FormatError, InternalError, Interrupted,
                      Problem, ShapeError, UnsupportedError)

__version__: str = _core.__version__

__all__ = [
    "CancelToken", "Config", "ConfigError", "Error", "FileError", "FormatError", "InternalError",
    "Interrupted", "ModelInfo", "Plan", "PlannedTensor", "Problem", "Progress", "RunResult",
    "ShapeError", "UnsupportedError", "inspect", "load_config", "merge", "methods", "options",
    "plan", "quantize", "synth", "moe", "plan_moe", "moe_gate_request",
    "Comparison", "compare", "evaluate", "divergence", "fuse",
]

Config = _core.Config
ConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any], Config]
ProgressCallback = Callable[[Progress], None]

# ------------------------------------------------------------------ options

_TABLE: list[dict[str, Any]] = _core.option_table()
_BY_NAME: dict[str, dict[str, Any]] = {}
for _o in _TABLE:
    _BY_NAME[_o["name"]] = _o
    for _a in _o["aliases"]:
        _BY_NAME[_a.replace("-", "_")] = _o


def options(command: str | None = None) -> list[dict[str, Any]]:
    """The options table: name, type, scope ("plan", "run" or "recipe"), default_text, help,
    choices, commands (the CLI subcommands that take it) and aliases. ``command``
    ("run", "plan", "quantize") keeps the options of that command (and base_dir,
    which every Python call takes)."""
    return [dict(o) for o in _TABLE
            if command is None or command in o["commands"] or not o["commands"]]


def _option_text(func: str, command: str, given: Mapping[str, Any],
                 scope: str | None = None) -> dict[str, str]:
    """Keyword arguments -> {table name: text} for set_option(), which validates values.

    Options of scope "recipe" (intermediate_dir, lazy, staged) are refused: they apply to
    multi-stage recipes, which ``llmerge run RECIPE`` takes and no Python call does."""
    out: dict[str, str] = {}
    for key, value in given.items():
        o = _BY_NAME.get(key)
        if o is None or (o["commands"] and command not in o["commands"]) or \
                (scope is not None and o["scope"] != scope) or o["scope"] == "recipe":
            raise TypeError(f"{func}() got an unexpected keyword argument '{key}'")
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, os.PathLike):
            text = os.fspath(value)
        else:
            text = str(value)
        out[o["name"]] = text
    return out


# ------------------------------------------------------------------ configs


def load_config(path: str | os.PathLike[str]) -> Config:
    """Reads and parses a mergekit YAML file (schema and YAML syntax are checked here,
    with file:line:column locations; models are not touched)."""
    return _core.Config.load(os.fspath(path))


def _config(config: ConfigLike) -> Config:
    """A Config from a Config, a path, a YAML string or a dict.

    A ``str`` is a path when it names an existing file or has no newline and no
    colon; otherwise it is YAML text. A dict is written as JSON, which is YAML."""
    if isinstance(config, _core.Config):
        return config
    if isinstance(config, Mapping):
        return _core.Config.parse(_json.dumps(config, indent=1), "<dict>")
    if isinstance(config, os.PathLike):
        return load_config(config)
    if isinstance(config, str):
        if os.path.isfile(config) or ("\n" not in config and ":" not in config):
            return load_config(config)
        return _core.Config.parse(config, "<string>")
    raise TypeError(f"config must be a path, a YAML string, a dict or a Config, "
                    f"not {type(config).__name__}")


# ------------------------------------------------------------------ plans


class Plan:
    """A checked merge: every output tensor with its inputs and parameters. A Plan
    that exists is valid (llmerge.plan raises otherwise); run it with :meth:`run`."""

    def __init__(self, native: _core.Plan, options: dict[str, str]):
        self._native = native
        self._options = options

    def json(self) -> dict[str, Any]:
        """Every output tensor with its inputs and resolved parameters (parsed JSON)."""
        return _json.loads(self._native.json())

    def describe(self) -> str:
        """The layer map, sample parameters, sizes and memory estimate, as text
        (what ``llmerge plan`` prints)."""
        return self._native.describe()

    @property
    def tensors(self) -> list[PlannedTensor]:
        """The output tensors: name, dtype, shape, method, inputs, layer, quantize_bits."""
        return self._native.tensors()

    @property
    def problems(self) -> list[Problem]:
        """Non-fatal remarks (kind "note"); fatal problems raise at llmerge.plan()."""
        return [Problem(kind="note", message=n) for n in self._native.notes()]

    @property
    def output_bytes(self) -> int:
        return self._native.output_bytes

    @property
    def output_layers(self) -> int:
        return self._native.output_layers

    def memory_estimate(self, **run_options: Any) -> int:
        """Upper bound of the run's memory in bytes, for these run options (threads, ...)."""
        return self._native.memory_estimate(
            _option_text("memory_estimate", "run", run_options, scope="run"))

    def run(self, out: str | os.PathLike[str], *, progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None, progress_interval: float = 0.1,
            **run_options: Any) -> RunResult:
        """Writes the merged model into ``out`` (see :func:`merge`); takes the run options."""
        opts = _option_text("run", "run", run_options, scope="run")
        return _core.run(self._native, os.fspath(out), opts, progress, cancel, progress_interval)

    def __repr__(self) -> str:
        return f"<llmerge.Plan: {len(self._native.tensors())} tensors, {self.output_bytes} bytes>"


def plan(config: ConfigLike, *, cancel: CancelToken | None = None, **plan_options: Any) -> Plan:
    """Checks ``config`` against the models' headers (no weights are read) and returns
    the Plan. Raises an :class:`Error` listing every problem at once."""
    opts = _option_text("plan", "plan", plan_options, scope="plan")
    return Plan(_core.plan(_config(config), opts, cancel), opts)


# ------------------------------------------------------------------ merges


def merge(config: ConfigLike, out: str | os.PathLike[str], *,
          progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
          progress_interval: float = 0.1, **options: Any) -> RunResult:
    """Plans and runs a merge into the folder ``out``, atomically: the folder appears
    only when complete. Returns a RunResult (output, tensors, bytes, layers, seconds,
    memory_estimate). Options: see the module docstring and ``llmerge.options("run")``."""
    opts = _option_text("merge", "run", options)
    return _core.merge(_config(config), os.fspath(out), opts, progress, cancel,
                       progress_interval)


def quantize(model: str | os.PathLike[str], out: str | os.PathLike[str], bits: int = 4,
             group_size: int = 64, *, progress: ProgressCallback | None = None,
             cancel: CancelToken | None = None, progress_interval: float = 0.1,
             **options: Any) -> RunResult:
    """Writes ``model`` MLX-quantized (``bits``, ``group_size``) into ``out``, as
    ``mlx_lm.convert -q`` would. ``dequantize=True`` writes it dense instead (bits and
    group_size are then ignored)."""
    opts = _option_text("quantize", "quantize", options)
    for taken in ("quantize", "q_bits", "q_group_size"):
        if taken in opts:
            raise TypeError(f"quantize() takes bits= and group_size=, not {taken}=")
    if opts.get("dequantize") != "true":
        opts["q_bits"] = str(bits)
        opts["q_group_size"] = str(group_size)
    return _core.quantize(os.fspath(model), os.fspath(out), opts, progress, cancel,
                          progress_interval)


def fuse(model: str | os.PathLike[str], adapter: str | os.PathLike[str],
         out: str | os.PathLike[str], *, progress: ProgressCallback | None = None,
         cancel: CancelToken | None = None, progress_interval: float = 0.1,
         **options: Any) -> RunResult:
    """Fuses a LoRA ``adapter`` (a PEFT or mlx-lm folder) into ``model`` and writes the result
    into ``out``, as ``mlx_lm.fuse`` or peft's ``merge_and_unload`` would. A quantized base
    stays quantized unless ``dequantize=True``; ``quantize=True`` (``q_bits``) quantizes any."""
    opts = _option_text("fuse", "fuse", options)
    return _core.fuse(os.fspath(model), os.fspath(adapter), os.fspath(out), opts, progress,
                      cancel, progress_interval)


# ------------------------------------------------------------------ models


class ModelInfo:
    """What a model folder holds, from config.json and the safetensors headers."""

    def __init__(self, json_text: str, text: str):
        self._json = json_text
        self._text = text

    def json(self) -> dict[str, Any]:
        """Architecture, layers, hidden/vocab size, dtypes, size, quantization (parsed)."""
        return _json.loads(self._json)

    def describe(self) -> str:
        """The same as aligned text (what ``llmerge inspect`` prints)."""
        return self._text

    def __repr__(self) -> str:
        return self._text


def inspect(model: str | os.PathLike[str], *, tensors: bool = False,
            base_dir: str | os.PathLike[str] | None = None) -> ModelInfo:
    """Describes a model folder, a .safetensors file or an org/name in the local HF cache.
    ``tensors=True`` lists every tensor too."""
    json_text, text = _core.inspect(os.fspath(model), tensors,
                                    os.fspath(base_dir) if base_dir is not None else "")
    return ModelInfo(json_text, text)


def methods() -> list[dict[str, Any]]:
    """Every merge method with its parameters and defaults."""
    data = _json.loads(_core.methods_json())
    return data["methods"] if isinstance(data, dict) and "methods" in data else data


def synth(out: str | os.PathLike[str], **spec: Any) -> int:
    """Writes a small synthetic model folder (real architecture names and shapes, seeded
    random weights) for tests and demos; returns its tensor count. Keywords as
    ``llmerge synth --help``: params, family, layers, hidden, intermediate, heads,
    kv_heads, vocab, tied, dtype, seed, like, delta_scale, shard_size, threads, force."""
    if "like" in spec and spec["like"] is not None:
        spec["like"] = os.fspath(spec["like"])
    return _core.synth(os.fspath(out), **spec)


from ._moe import moe, moe_gate_request, plan_moe  # noqa: E402
from . import mlx  # noqa: E402  (llmerge.mlx.merge_and_load; imports mlx-lm only when called)


# ------------------------------------------------------------------ compare


class Comparison:
    """What :func:`compare` found: ``json()`` is the document of docs/compare.md."""

    def __init__(self, document: str) -> None:
        self._document = document

    def json(self) -> dict[str, Any]:
        return _json.loads(self._document)

    def describe(self) -> str:
        return _core.compare_text(self._document)

    def html(self) -> str:
        return _core.compare_report_html(self._document)

    @property
    def recommendation(self) -> dict[str, Any]:
        return self.json()["recommendation"]


def compare(*models: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
            density: float = 0.2, threads: int = 0, per_tensor: bool = False,
            base_dir: str | os.PathLike[str] | None = None,
            cancel: CancelToken | None = None) -> Comparison:
    """Compares two or more models tensor by tensor, as ``llmerge compare`` (GIL released)."""
    return Comparison(_core.compare([os.fspath(m) for m in models],
                                    os.fspath(base) if base is not None else "", density, threads,
                                    per_tensor, os.fspath(base_dir) if base_dir else "", cancel))


def evaluate(model: str | os.PathLike[str], texts: Any, *, backend: str = "mlx",
             **kwargs: Any) -> dict[str, float]:
    """Perplexity of ``model`` on each text file (``llmerge.quality.evaluate``)."""
    from . import quality
    return quality.evaluate(model, texts, backend=backend, **kwargs)


def divergence(merged: str | os.PathLike[str], parents: Any, texts: Any, *,
               backend: str = "mlx", **kwargs: Any) -> dict[str, dict[str, float]]:
    """Next-token KL(parent || merged) per parent and text (``llmerge.quality.divergence``)."""
    from . import quality
    return quality.divergence(merged, parents, texts, backend=backend, **kwargs)
