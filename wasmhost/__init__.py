"""wasmhost: run WebAssembly (WASI preview 1) modules from Python, and ship them.

>>> from wasmhost import Host
>>> result = Host().run("artifacts/hello-world.wasm")
>>> result.stdout
b'Hello, World!\\n'
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._errors import (
    ArtifactError,
    AuthenticationError,
    ConfigError,
    Frame,
    FuelExhausted,
    GuestError,
    IntegrityError,
    Interrupted,
    InvalidReference,
    LimitExceeded,
    LinkError,
    MemoryLimitExceeded,
    ModuleError,
    NotFoundError,
    OutputLimitExceeded,
    RegistryError,
    RegistryUnreachable,
    StorageError,
    TimeoutExceeded,
    Trap,
    WasmhostError,
)
from ._host import Dir, Host, RunStream
from ._imports import GuestMemory, host_function
from ._module import Export, Import, Module
from ._result import OutputChunk, RunResult
from ._version import __version__

if _TYPE_CHECKING:
    from ._artifacts import ArtifactInfo, Layer, PullResult, PushResult, RegistryClient

# The registry side imports oras-py and requests (~170 ms): only when used.
_LAZY = {"ArtifactInfo", "Layer", "PullResult", "PushResult", "RegistryClient"}


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        from . import _artifacts

        return getattr(_artifacts, name)
    raise AttributeError(f"module 'wasmhost' has no attribute {name!r}")


__all__ = [
    "ArtifactError",
    "ArtifactInfo",
    "AuthenticationError",
    "ConfigError",
    "Dir",
    "Export",
    "Frame",
    "FuelExhausted",
    "GuestError",
    "GuestMemory",
    "Host",
    "Import",
    "IntegrityError",
    "Interrupted",
    "InvalidReference",
    "Layer",
    "LimitExceeded",
    "LinkError",
    "MemoryLimitExceeded",
    "Module",
    "ModuleError",
    "NotFoundError",
    "OutputChunk",
    "OutputLimitExceeded",
    "PullResult",
    "PushResult",
    "RegistryClient",
    "RegistryError",
    "RegistryUnreachable",
    "RunResult",
    "RunStream",
    "StorageError",
    "TimeoutExceeded",
    "Trap",
    "WasmhostError",
    "__version__",
    "host_function",
]
