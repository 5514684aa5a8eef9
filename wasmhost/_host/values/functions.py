"""Python functions as guest imports, beyond WASI.

The caller maps import module and name to a Python callable; its wasm type is
taken from the module's own import declaration, so a plain function is
enough::

    host.run(module, imports={"env": {"add": lambda a, b: a + b}})

A function that needs the guest's memory (to read a string the guest passes
as pointer and length) is marked with :func:`host_function`
``(memory=True)`` and receives a :class:`GuestMemory` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import wasmtime

from ..._errors import ConfigError, LinkError
from .module import Import, func_types, uncallable

F = TypeVar("F", bound=Callable[..., Any])

WASI_MODULES = frozenset({"wasi_snapshot_preview1"})
# The functions wasmtime's WASI preview 1 defines (checked by the tests against its linker).
WASI_FUNCTIONS = frozenset(
    {
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_advise",
        "fd_allocate",
        "fd_close",
        "fd_datasync",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_filestat_set_times",
        "fd_pread",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_renumber",
        "fd_seek",
        "fd_sync",
        "fd_tell",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "proc_raise",
        "sched_yield",
        "random_get",
        "sock_accept",
        "sock_recv",
        "sock_send",
        "sock_shutdown",
    }
)
UNKNOWN_IMPORTS = ("error", "trap")

Imports = Mapping[str, Mapping[str, Callable[..., Any]]]


class GuestMemory:
    """The calling guest's exported linear memory, valid during one host-function call."""

    def __init__(self, caller: wasmtime.Caller, export: str = "memory") -> None:
        memory = caller.get(export)
        if not isinstance(memory, wasmtime.Memory):
            raise LinkError(f"the guest exports no memory named {export!r}.")
        self._caller = caller
        self._memory = memory

    @property
    def size(self) -> int:
        """The memory's size in bytes."""
        return self._memory.data_len(self._caller)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``."""
        self._check(offset, length)
        return bytes(self._memory.read(self._caller, offset, offset + length))

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset``."""
        self._check(offset, len(data))
        self._memory.write(self._caller, data, offset)

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise IndexError(
                f"guest memory access {offset}..{offset + length} is outside its {self.size} bytes"
            )


def host_function(*, memory: bool = False) -> Callable[[F], F]:
    """Mark a guest import that takes a :class:`GuestMemory` as its first argument.

    >>> @host_function(memory=True)
    ... def log(mem: GuestMemory, ptr: int, length: int) -> None:
    ...     print(mem.read(ptr, length).decode())
    """

    def mark(func: F) -> F:
        func.__wasmhost_memory__ = memory  # type: ignore[attr-defined]
        return func

    return mark


def check_imports(
    name: str,
    wanted: Iterable[Import],
    imports: Imports | None,
    unknown_imports: str = "error",
) -> None:
    """Refuse a module whose non-WASI imports are not all provided, naming the first
    missing, unless ``unknown_imports`` is ``"trap"`` (then they trap when called)."""
    if unknown_imports not in UNKNOWN_IMPORTS:
        raise ConfigError(
            f"unknown_imports must be one of {', '.join(UNKNOWN_IMPORTS)}, not {unknown_imports!r}."
        )
    provided = imports or {}
    for imp in wanted:
        if imp.module in WASI_MODULES and imp.name in WASI_FUNCTIONS and imp.kind == "func":
            continue
        func = provided.get(imp.module, {}).get(imp.name)
        if imp.kind != "func":
            raise LinkError(
                f"{name} imports {imp}; wasmhost provides only functions to guests, so it "
                "cannot run this module."
            )
        if func is None:
            if unknown_imports == "trap":
                continue
            raise LinkError(
                f"{name} imports {imp}, which nothing provides",
                advice=f"pass a Python function as imports={{{imp.module!r}: "
                f"{{{imp.name!r}: ...}}}}, or unknown_imports='trap' to make it trap "
                "if called",
                fix="unknown-imports",
            )
        if not callable(func):
            raise ConfigError(f"imports[{imp.module!r}][{imp.name!r}] is not callable.")


class Failure:
    """The first exception a host function raised during a run."""

    def __init__(self) -> None:
        self.error: BaseException | None = None


def define(
    linker: wasmtime.Linker, wanted: Iterable[Import], imports: Imports, failure: Failure
) -> None:
    """Define in ``linker`` each of a module's imports (``wanted``) that ``imports`` provides.

    The types come from the module's bytes (see ``read_interface``): wasmtime-py
    would end the process on reading a v128 or an anyref from the compiled module.
    """
    for imp in wanted:
        func = imports.get(imp.module, {}).get(imp.name)
        types = func_types(imp.signature) if imp.kind == "func" else None
        if func is None or types is None:
            continue
        if unknown := uncallable(types):
            raise ConfigError(
                f"{imp} takes or returns {unknown}, which a Python host function cannot."
            )
        params, results = ([_VALUE_TYPES[t]() for t in ts] for ts in types)
        wants_memory = bool(getattr(func, "__wasmhost_memory__", False))
        wrapped = _wrap(func, wants_memory, f"{imp.module}.{imp.name}", types[1], failure)
        ty = wasmtime.FuncType(params, results)
        linker.define_func(imp.module, imp.name, ty, wrapped, access_caller=True)


_VALUE_TYPES = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
    "funcref": wasmtime.ValType.funcref,
    "externref": wasmtime.ValType.externref,
}


def _wrap(
    func: Callable[..., Any],
    wants_memory: bool,
    name: str,
    results: list[str],
    failure: Failure,
) -> Callable[..., Any]:
    def call(caller: wasmtime.Caller, *args: Any) -> Any:
        try:
            value = func(GuestMemory(caller), *args) if wants_memory else func(*args)
            _check_results(name, value, results)
            return value
        except BaseException as exc:
            if failure.error is None:
                failure.error = exc
            raise wasmtime.Trap(f"host function {name} raised {type(exc).__name__}") from None

    return call


_RANGES = {"i32": (-(1 << 31), (1 << 32) - 1), "i64": (-(1 << 63), (1 << 64) - 1)}


def _check_results(name: str, value: Any, results: list[str]) -> None:
    """Refuse a return value that does not fit the import's declared results."""
    values = (
        []
        if not results and value is None
        else [value]
        if len(results) == 1
        else list(value)
        if isinstance(value, tuple | list)
        else None
    )
    if values is None or len(values) != len(results):
        expected = ", ".join(results) or "nothing"
        raise ConfigError(f"host function {name} returned {value!r}; the guest expects {expected}.")
    for item, kind in zip(values, results, strict=True):
        if kind in _RANGES:
            low, high = _RANGES[kind]
            if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
                raise ConfigError(f"host function {name} returned {item!r} where {kind} is due.")
        elif kind in ("f32", "f64") and (
            isinstance(item, bool) or not isinstance(item, int | float)
        ):
            raise ConfigError(f"host function {name} returned {item!r} where {kind} is due.")
