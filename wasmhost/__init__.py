"""wasmhost: run WebAssembly (WASI preview 1) modules from Python, and ship them.

>>> from wasmhost import Host
>>> result = Host().run("artifacts/hello-world.wasm")
>>> result.stdout
b'Hello, World!\\n'
"""

from ._errors import (
    ConfigError,
    Frame,
    FuelExhausted,
    GuestError,
    Interrupted,
    LimitExceeded,
    LinkError,
    MemoryLimitExceeded,
    ModuleError,
    TimeoutExceeded,
    Trap,
    WasmhostError,
)
from ._host import Dir, Host, RunStream
from ._imports import GuestMemory, host_function
from ._module import Export, Import, Module
from ._result import OutputChunk, RunResult
from ._version import __version__

__all__ = [
    "ConfigError",
    "Dir",
    "Export",
    "Frame",
    "FuelExhausted",
    "GuestError",
    "GuestMemory",
    "Host",
    "Import",
    "Interrupted",
    "LimitExceeded",
    "LinkError",
    "MemoryLimitExceeded",
    "Module",
    "ModuleError",
    "OutputChunk",
    "RunResult",
    "RunStream",
    "TimeoutExceeded",
    "Trap",
    "WasmhostError",
    "__version__",
    "host_function",
]
