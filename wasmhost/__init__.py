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
    ErrorResult,
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
    SignatureError,
    StorageError,
    TimeoutExceeded,
    Trap,
    WasmhostError,
)
from ._version import __version__

if _TYPE_CHECKING:
    from ._host.host import CallOptions, Host, RunOptions, RunStream, StreamOptions
    from ._host.result import OutputChunk, RunResult, Some
    from ._host.running.run import Dir, DirSource
    from ._host.running.stdio import CAPTURE, DEVNULL, INHERIT, OutputTarget, StdinSource
    from ._host.values.functions import GuestMemory, Imports, host_function
    from ._host.values.module import Export, Import, Module, ModuleSource
    from ._oci.client import ArtifactInfo, Layer, PullResult, PushResult, RegistryClient
    from ._oci.formats import Progress

# Imported when first used: the host side loads wasmtime (~50 ms), which the
# registry commands never need; the registry side loads requests, which a run
# never needs.
_LAZY = {
    "ArtifactInfo": "_oci.client",
    "Layer": "_oci.client",
    "PullResult": "_oci.client",
    "PushResult": "_oci.client",
    "RegistryClient": "_oci.client",
    "Progress": "_oci.formats",
    "CallOptions": "_host.host",
    "Dir": "_host.running.run",
    "DirSource": "_host.running.run",
    "Host": "_host.host",
    "RunOptions": "_host.host",
    "RunStream": "_host.host",
    "StreamOptions": "_host.host",
    "CAPTURE": "_host.running.stdio",
    "DEVNULL": "_host.running.stdio",
    "INHERIT": "_host.running.stdio",
    "OutputTarget": "_host.running.stdio",
    "StdinSource": "_host.running.stdio",
    "GuestMemory": "_host.values.functions",
    "host_function": "_host.values.functions",
    "Imports": "_host.values.functions",
    "Export": "_host.values.module",
    "Import": "_host.values.module",
    "Module": "_host.values.module",
    "ModuleSource": "_host.values.module",
    "OutputChunk": "_host.result",
    "RunResult": "_host.result",
    "Some": "_host.result",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module 'wasmhost' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ArtifactError",
    "ArtifactInfo",
    "AuthenticationError",
    "CAPTURE",
    "CallOptions",
    "ConfigError",
    "DEVNULL",
    "Dir",
    "DirSource",
    "ErrorResult",
    "Export",
    "Frame",
    "FuelExhausted",
    "GuestError",
    "GuestMemory",
    "Host",
    "INHERIT",
    "Import",
    "Imports",
    "IntegrityError",
    "Interrupted",
    "InvalidReference",
    "Layer",
    "LimitExceeded",
    "LinkError",
    "MemoryLimitExceeded",
    "Module",
    "ModuleError",
    "ModuleSource",
    "NotFoundError",
    "OutputChunk",
    "OutputLimitExceeded",
    "OutputTarget",
    "Progress",
    "PullResult",
    "PushResult",
    "RegistryClient",
    "RegistryError",
    "RegistryUnreachable",
    "RunOptions",
    "RunResult",
    "RunStream",
    "SignatureError",
    "Some",
    "StdinSource",
    "StorageError",
    "StreamOptions",
    "TimeoutExceeded",
    "Trap",
    "WasmhostError",
    "__version__",
    "host_function",
]
