"""The WASI functions wasmhost answers in front of wasmtime's, and what a run keeps for them.

- ``poll_oneoff``, on engines that run with a timeout or cancel event: a
  sleep that the run's guard can cut short (see :mod:`.poll`).
- ``path_open``, ``fd_close``, ``fd_renumber``: a cap on the descriptors a
  guest holds open (``max_files``). wasmtime's WASI table has no bound, so a
  guest with any preopened directory could open files until the host process
  has no descriptor left for anything else. Past the cap, ``path_open``
  answers ``EMFILE``; and past half of the process's own descriptor limit,
  counted over all its runs (a server's guests each under their cap),
  ``ENFILE``.
- ``path_symlink``: refused with ``EPERM`` when the run says
  ``symlinks=False``. wasmtime never follows a link out of a preopened
  directory, but host code that later reads the directory may.

Each does its own part and calls wasmtime's implementation for the rest.
wasmtime's WASI functions read the memory their caller exports, so a host
function cannot call them directly: it calls them through a small helper
module, the *trampoline*, which exports the guest's memory as its own. A
run instantiates it once, on the first call that needs it (a store keeps
every instance made in it).

Each host function finds its run's :class:`RunWasi` through :func:`current`
(set by :class:`active` around the run, on the guest's thread).
"""

from __future__ import annotations

import resource
import struct
import threading
from typing import Any

import wasmtime

from . import poll
from .capi import call_int, define_int_func

WASI = "wasi_snapshot_preview1"

DEFAULT_MAX_FILES = 256
"""How many descriptors a guest may hold open at once by default (its
preopened directories and stdio not counted)."""

_EMFILE = 33
_ENFILE = 41
_EPERM = 63

# The functions wasmhost puts in front of wasmtime's, by their WASI types.
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "poll_oneoff": ("i32", "i32", "i32", "i32"),
    "clock_time_get": ("i32", "i64", "i32"),
    # dirfd, lookupflags, path, path_len, oflags, rights, inheriting, fdflags, out
    "path_open": ("i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"),
    "fd_close": ("i32",),
    "fd_renumber": ("i32", "i32"),
    "path_symlink": ("i32", "i32", "i32", "i32", "i32"),
}


_WIDE = {name: tuple(p == "i64" for p in params) for name, params in _SIGNATURES.items()}


def _trampoline_wat() -> str:
    imports, funcs = [], []
    for name, params in _SIGNATURES.items():
        types = " ".join(params)
        imports.append(f'(import "{WASI}" "{name}" (func ${name} (param {types}) (result i32)))')
        args = " ".join(f"(local.get {i})" for i in range(len(params)))
        funcs.append(f'(func (export "{name}") (param {types}) (result i32) (call ${name} {args}))')
    memory = ['(import "env" "memory" (memory 0))', '(export "memory" (memory 0))']
    return "\n".join(["(module", *imports, *memory, *funcs, ")"])


class Trampoline:
    """The helper module for one engine, compiled on first use.

    The host functions keep this, not the engine's slot: the slot holds the
    InstancePres that hold the host functions, and wasmtime holds those out of
    the garbage collector's sight, so a function that held the slot would keep
    the whole engine alive after its host closed.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self._module: wasmtime.Module | None = None

    def module(self) -> wasmtime.Module:
        if self._module is None:  # a race compiles it twice: harmless
            self._module = wasmtime.Module(self.engine, bytes(wasmtime.wat2wasm(_trampoline_wat())))
        return self._module

    def instantiate(self, caller: wasmtime.Caller, memory: wasmtime.Memory) -> dict[str, Any]:
        """wasmtime's own functions, callable on ``caller``'s store with its memory."""
        linker = wasmtime.Linker(self.engine)
        try:
            linker.define_wasi()
            linker.define(caller, "env", "memory", memory)
            exports = linker.instantiate(caller, self.module()).exports(caller)
        finally:
            linker.close()
        return {name: exports[name] for name in _SIGNATURES}


class RunWasi:
    """What one run's WASI functions keep: its limits and its descriptors."""

    def __init__(self, max_files: int | None = DEFAULT_MAX_FILES, symlinks: bool = True) -> None:
        self.max_files = max_files
        self.symlinks = symlinks
        self.opened: set[int] = set()  # descriptors the guest opened and has not closed
        self.wasmtime: dict[str, Any] | None = None  # the trampoline's functions, once made


class _Budget:
    """The descriptors all capped runs of this process hold, against half of its limit."""

    def __init__(self) -> None:
        self.held = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        with self._lock:
            if soft != resource.RLIM_INFINITY and self.held >= soft // 2:
                return False
            self.held += 1
            return True

    def give(self, count: int = 1) -> None:
        with self._lock:
            self.held -= count


_budget = _Budget()
_local = threading.local()


def current() -> RunWasi | None:
    return getattr(_local, "run", None)


class active:
    """Make ``run`` this thread's current run for the length of a ``with`` block."""

    def __init__(self, run: RunWasi) -> None:
        self._run = run
        self._outer: RunWasi | None = None

    def __enter__(self) -> None:
        self._outer = current()
        _local.run = self._run

    def __exit__(self, *exc_info: object) -> None:
        _local.run = self._outer
        # The run's store, closed next, closes what the guest left open.
        _budget.give(len(self._run.opened))
        self._run.opened.clear()


def memory_of(caller: wasmtime.Caller) -> wasmtime.Memory:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise wasmtime.Trap("wasmhost: the guest exports no memory")
    return memory


class Calls:
    """wasmtime's WASI functions, for one call of a host function by ``caller``."""

    def __init__(self, trampoline: Trampoline, caller: wasmtime.Caller) -> None:
        self.caller = caller
        self.run = current()
        self._trampoline = trampoline
        self._memory: wasmtime.Memory | None = None

    @property
    def memory(self) -> wasmtime.Memory:
        """The guest's memory."""
        if self._memory is None:
            self._memory = memory_of(self.caller)
        return self._memory

    def __call__(self, name: str, *args: int) -> int:
        run = self.run
        funcs = run.wasmtime if run is not None else None
        if funcs is None:
            funcs = self._trampoline.instantiate(self.caller, self.memory)
            if run is not None:
                run.wasmtime = funcs
        return call_int(self.caller, funcs[name], args, _WIDE[name])


def install(linker: wasmtime.Linker, trampoline: Trampoline, *, interruptible: bool) -> None:
    """Put wasmhost's WASI functions in ``linker`` (which already has WASI);
    ``poll_oneoff`` only where runs have a timeout or cancel event."""
    funcs: dict[str, Any] = {
        "path_open": _path_open,
        "fd_close": _fd_close,
        "fd_renumber": _fd_renumber,
        "path_symlink": _path_symlink,
    }
    if interruptible:
        funcs["poll_oneoff"] = poll.poll_oneoff
    _define(linker, trampoline, funcs)


def _define(linker: wasmtime.Linker, trampoline: Trampoline, funcs: dict[str, Any]) -> None:
    types = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64()}
    linker.allow_shadowing = True
    try:
        for name, func in funcs.items():
            # A type is bound to its engine: made for each linker.
            ty = wasmtime.FuncType([types[p] for p in _SIGNATURES[name]], [types["i32"]])
            define_int_func(linker, WASI, name, ty, _bind(func, trampoline))
    finally:
        linker.allow_shadowing = False


def _bind(func: Any, trampoline: Trampoline) -> Any:
    def call(caller: wasmtime.Caller, *args: int) -> int:
        return int(func(Calls(trampoline, caller), *args))

    return call


_FD = struct.Struct("<I")


def _path_open(call: Calls, dirfd: int, *args: int) -> int:
    run = call.run
    if run is None or run.max_files is None:
        return call("path_open", dirfd, *args)
    if len(run.opened) >= run.max_files:
        return _EMFILE
    if not _budget.take():
        return _ENFILE
    counted = False
    try:
        errno = call("path_open", dirfd, *args)
        if errno == 0:
            out = args[-1]
            fd = _FD.unpack(bytes(call.memory.read(call.caller, out, out + 4)))[0]
            counted = fd not in run.opened
            run.opened.add(fd)
    finally:
        # A failed open, one that raised (a bad pointer, the run stopped inside
        # it) or a number already counted holds no new slot.
        if not counted:
            _budget.give()
    return errno


def _fd_close(call: Calls, fd: int) -> int:
    errno = call("fd_close", fd)
    if errno == 0 and call.run is not None and fd in call.run.opened:
        call.run.opened.discard(fd)
        _budget.give()
    return errno


def _fd_renumber(call: Calls, source: int, target: int) -> int:
    errno = call("fd_renumber", source, target)
    run = call.run
    if errno == 0 and run is not None and source != target:
        # ``target`` is closed, and ``source`` moves there.
        if target in run.opened:
            run.opened.discard(target)
            _budget.give()
        if source in run.opened:
            run.opened.discard(source)
            run.opened.add(target)
    return errno


def _path_symlink(call: Calls, *args: int) -> int:
    if call.run is not None and not call.run.symlinks:
        return _EPERM
    return call("path_symlink", *args)
