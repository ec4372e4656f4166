"""The exceptions of llmerge, one class per llmerge::ErrorKind (include/llmerge/error.h).

Every exception the engine raises is an :class:`Error`; its ``problems`` hold the
structured diagnostics (file, line, column, YAML path, hint, ...), one per cause.
Each class also derives from the closest built-in exception, so ``except ValueError``
or ``except OSError`` keep working for code that does not know llmerge.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class Problem:
    """One cause of failure, as the planner reports it."""

    kind: str  #: "config", "io", "format", "shape", "unsupported", "interrupted", "internal", "note"
    message: str  #: what is wrong, without the location
    file: str = ""  #: the config (or model file) that line and column refer to
    line: int = 0  #: 1-based; 0 when unknown
    column: int = 0  #: 1-based; 0 when unknown
    yaml_path: str = ""  #: e.g. "slices[0].sources[1].parameters"
    hint: str = ""  #: how to fix it, when one is likely
    values: tuple[str, ...] = ()  #: the distinct values involved (first few)
    tensors: tuple[str, ...] = ()  #: the tensors concerned (first few)
    count: int = 0  #: how many tensors it concerns (0: not about tensors)

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> "Problem":
        return cls(kind=d.get("kind", ""), message=d.get("message", ""), file=d.get("file", ""),
                   line=d.get("line", 0), column=d.get("column", 0),
                   yaml_path=d.get("yaml_path", ""), hint=d.get("hint", ""),
                   values=tuple(d.get("values", ())), tensors=tuple(d.get("tensors", ())),
                   count=d.get("count", 0))

    def __str__(self) -> str:
        where = ":".join(str(x) for x in (self.file, self.line, self.column) if x)
        text = f"{where}: " if where else ""
        if self.yaml_path:
            text += f"{self.yaml_path}: "
        text += self.message
        if self.count > 1:
            text += f" (applies to {self.count} tensors)"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class Error(Exception):
    """Base of every llmerge exception. ``str(e)`` is the engine's message (every problem,
    with its location); ``e.problems`` lists them as :class:`Problem`; ``e.kind`` is the
    first problem's kind."""

    kind: str = "internal"

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = problems or []

    def __str__(self) -> str:
        return self.message  # the engine's what(): every problem, with locations


class ConfigError(Error, ValueError):
    """The YAML config or an option is wrong (unknown key, bad value, ...)."""

    kind = "config"


class FileError(Error, OSError):
    """The OS refused: a missing file, permission, disk full, a short read (kind "io")."""

    kind = "io"


class FormatError(Error, ValueError):
    """A file is malformed: corrupt safetensors, bad JSON, ..."""

    kind = "format"


class ShapeError(Error, ValueError):
    """Tensors that must agree do not (shapes, dtypes, missing tensors)."""

    kind = "shape"


class UnsupportedError(Error, NotImplementedError):
    """Valid input that llmerge does not handle (yet)."""

    kind = "unsupported"


class Interrupted(Error):
    """The run was cancelled through its CancelToken. (Ctrl-C raises KeyboardInterrupt
    itself.) Nothing is left behind."""

    kind = "interrupted"


class InternalError(Error, RuntimeError):
    """A bug in llmerge: please report it."""

    kind = "internal"


_BY_KIND: dict[str, type[Error]] = {
    c.kind: c
    for c in (ConfigError, FileError, FormatError, ShapeError, UnsupportedError, Interrupted,
              InternalError)
}


def _from_native(kind: str, message: str, problems_json: str) -> Error:
    """Called by the extension (src/python/module.cpp) for every llmerge::Error."""
    try:
        problems = [Problem._from_json(p) for p in json.loads(problems_json).get("problems", [])]
    except ValueError:
        problems = []
    return _BY_KIND.get(kind, InternalError)(message, problems)
