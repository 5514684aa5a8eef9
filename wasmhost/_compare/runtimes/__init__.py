"""External WebAssembly runtimes, one small adapter each, for ``wasmhost compare``.

:func:`get_runtime` returns an adapter by name (``wasmtime``, ``wasmedge``,
``wasmer``, ``iwasm``, ``node``), optionally for an explicit executable; an
unknown name is a :class:`~wasmhost.ConfigError` listing the valid ones.
"""

from __future__ import annotations

import os

from ..._errors import ConfigError
from ._base import Invocation, Mount, Runtime
from .node import Node
from .others import IWasm, WasmEdge, Wasmer
from .wasmtime import WasmtimeCLI

RUNTIMES: dict[str, type[Runtime]] = {
    cls.name: cls for cls in (WasmtimeCLI, WasmEdge, Wasmer, IWasm, Node)
}


def get_runtime(name: str, path: str | os.PathLike[str] | None = None) -> Runtime:
    cls = RUNTIMES.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown runtime {name!r}; choose from: {', '.join(RUNTIMES)} "
            "(or NAME=/path/to/binary)."
        )
    return cls(path)


__all__ = ["RUNTIMES", "Invocation", "Mount", "Runtime", "get_runtime"]
