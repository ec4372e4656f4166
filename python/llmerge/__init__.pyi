# Typed signatures of the llmerge package (the implementation, __init__.py,
# takes the options as **kwargs checked against the C++ options table).
# tests/python/test_api.py checks that the keyword options below are exactly
# the table's, command by command, so this stub cannot drift from it.
import os
from typing import Any, Callable, Literal, Mapping, Union

from ._core import CancelToken as CancelToken
from ._core import Config as Config
from ._core import MoeConfig as MoeConfig
from ._core import PlannedTensor as PlannedTensor
from ._core import Progress as Progress
from ._core import RunResult as RunResult
from ._errors import ConfigError as ConfigError
from ._errors import Error as Error
from ._errors import FileError as FileError
from ._errors import FormatError as FormatError
from ._errors import InternalError as InternalError
from ._errors import Interrupted as Interrupted
from ._errors import Problem as Problem
from ._errors import ShapeError as ShapeError
from ._errors import UnsupportedError as UnsupportedError

__version__: str

PathLike = Union[str, os.PathLike[str]]
ConfigLike = Union[str, os.PathLike[str], Mapping[str, Any], Config]
ProgressCallback = Callable[[Progress], None]
Dtype = Literal["bfloat16", "float16", "float32", "bf16", "f16", "f32"]

def options(command: str | None = None) -> list[dict[str, Any]]: ...
def load_config(path: PathLike) -> Config: ...

class Plan:
    def json(self) -> dict[str, Any]: ...
    def describe(self) -> str: ...
    @property
    def tensors(self) -> list[PlannedTensor]: ...
    @property
    def problems(self) -> list[Problem]: ...
    @property
    def output_bytes(self) -> int: ...
    @property
    def output_layers(self) -> int: ...
    def memory_estimate(self, *, threads: int | None = None,
                        chunk_elements: int | None = None) -> int: ...
    def run(self, out: PathLike, *, progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None, progress_interval: float = 0.1,
            # run options (scope "run", command "run")
            threads: int | None = None, chunk_elements: int | None = None,
            random_seed: int | None = None, copy_tokenizer: bool | None = None,
            write_model_card: bool | None = None, force: bool | None = None) -> RunResult: ...

def plan(config: ConfigLike, *, cancel: CancelToken | None = None,
         # plan options (command "plan")
         dtype: str | None = None, out_dtype: str | None = None,
         allow_crimes: bool | None = None, out_shard_size: str | None = None,
         quantize: int | bool | None = None, q_bits: int | None = None,
         q_group_size: int | None = None,
         q_mode: Literal["affine", "mxfp4"] | None = None, dequantize: bool | None = None,
         base_dir: PathLike | None = None, strict_mergekit: bool | None = None) -> Plan: ...

def merge(config: ConfigLike, out: PathLike, *, progress: ProgressCallback | None = None,
          cancel: CancelToken | None = None, progress_interval: float = 0.1,
          # options of command "run"
          dtype: str | None = None, out_dtype: str | None = None,
          allow_crimes: bool | None = None, out_shard_size: str | None = None,
          quantize: int | bool | None = None, q_bits: int | None = None,
         q_group_size: int | None = None,
          q_mode: Literal["affine", "mxfp4"] | None = None, dequantize: bool | None = None,
          base_dir: PathLike | None = None, threads: int | None = None,
          chunk_elements: int | None = None, random_seed: int | None = None,
          copy_tokenizer: bool | None = None, write_model_card: bool | None = None,
          force: bool | None = None, strict_mergekit: bool | None = None) -> RunResult: ...

def quantize(model: PathLike, out: PathLike, bits: int = 4, group_size: int = 64, *,
             progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
             progress_interval: float = 0.1,
             # options of command "quantize" (bits and group_size are q_bits and q_group_size)
             dtype: str | None = None, out_shard_size: str | None = None,
             q_mode: Literal["affine", "mxfp4"] | None = None, dequantize: bool | None = None,
             base_dir: PathLike | None = None, threads: int | None = None,
             chunk_elements: int | None = None, copy_tokenizer: bool | None = None,
             write_model_card: bool | None = None, force: bool | None = None) -> RunResult: ...

def fuse(model: PathLike, adapter: PathLike, out: PathLike, *,
         progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
         progress_interval: float = 0.1,
         # options of command "fuse"
         dtype: str | None = None, out_shard_size: str | None = None,
         quantize: bool | None = None, q_bits: int | None = None,
         q_group_size: int | None = None, q_mode: Literal["affine", "mxfp4"] | None = None,
         dequantize: bool | None = None, base_dir: PathLike | None = None,
         threads: int | None = None, chunk_elements: int | None = None,
         copy_tokenizer: bool | None = None, write_model_card: bool | None = None,
         force: bool | None = None) -> RunResult: ...

class ModelInfo:
    def json(self) -> dict[str, Any]: ...
    def describe(self) -> str: ...

def inspect(model: PathLike, *, tensors: bool = False,
            base_dir: PathLike | None = None) -> ModelInfo: ...
def methods() -> list[dict[str, Any]]: ...
def synth(out: PathLike, *, params: str | None = None, family: str | None = None,
          layers: int | None = None, hidden: int | None = None,
          intermediate: int | None = None, heads: int | None = None,
          kv_heads: int | None = None, vocab: int | None = None, tied: bool = False,
          dtype: str | None = None, seed: int | None = None, like: PathLike | None = None,
          delta_scale: float | None = None, shard_size: str | None = None,
          threads: int | None = None, force: bool = False) -> int: ...
class Comparison:
    def json(self) -> dict[str, Any]: ...
    def describe(self) -> str: ...
    def html(self) -> str: ...
    @property
    def recommendation(self) -> dict[str, Any]: ...

def compare(*models: PathLike, base: PathLike | None = None, density: float = 0.2,
            threads: int = 0, per_tensor: bool = False, base_dir: PathLike | None = None,
            cancel: CancelToken | None = None) -> Comparison: ...
def evaluate(model: PathLike, texts: Any, *, backend: str = "mlx",
             **kwargs: Any) -> dict[str, float]: ...
def divergence(merged: PathLike, parents: Any, texts: Any, *, backend: str = "mlx",
               **kwargs: Any) -> dict[str, dict[str, float]]: ...
from . import mlx as mlx

# Mixture of experts (docs/moe.md); the config is a path, YAML text, a dict or a MoeConfig.
MoeConfigLike = Union[str, os.PathLike[str], Mapping[str, Any], MoeConfig]

def moe(config: MoeConfigLike, out: PathLike, *, progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None, progress_interval: float = 0.1,
        # options of command "moe"
        dtype: str | None = None, out_shard_size: str | None = None,
        quantize: int | bool | None = None, q_bits: int | None = None,
        q_group_size: int | None = None,
        q_mode: Literal["affine", "mxfp4"] | None = None, dequantize: bool | None = None,
        base_dir: PathLike | None = None, allow_all_same: bool | None = None,
        gates: PathLike | None = None,
        gate_backend: Literal["auto", "mlx", "torch"] | None = None,
        threads: int | None = None, chunk_elements: int | None = None,
        random_seed: int | None = None, copy_tokenizer: bool | None = None,
        write_model_card: bool | None = None, force: bool | None = None) -> RunResult: ...

def plan_moe(config: MoeConfigLike, *, cancel: CancelToken | None = None,
             # plan options (command "moe")
             dtype: str | None = None, out_shard_size: str | None = None,
             quantize: int | bool | None = None, q_bits: int | None = None,
             q_group_size: int | None = None,
             q_mode: Literal["affine", "mxfp4"] | None = None, dequantize: bool | None = None,
             base_dir: PathLike | None = None, allow_all_same: bool | None = None,
             gates: PathLike | None = None,
             gate_backend: Literal["auto", "mlx", "torch"] | None = None) -> Plan: ...

def moe_gate_request(config: MoeConfigLike, *,
                     # plan options (command "moe")
                     dtype: str | None = None, out_shard_size: str | None = None,
                     quantize: int | bool | None = None, q_bits: int | None = None,
                     q_group_size: int | None = None,
                     q_mode: Literal["affine", "mxfp4"] | None = None,
                     dequantize: bool | None = None, base_dir: PathLike | None = None,
                     allow_all_same: bool | None = None, gates: PathLike | None = None,
                     gate_backend: Literal["auto", "mlx", "torch"] | None = None
                     ) -> dict[str, Any]: ...
