"""Linear memories that tell the host when the guest was refused more.

wasmtime answers a ``memory.grow`` past a store's limit with -1 and keeps no
record of it: a guest that then fails its own way (Rust aborts after
"memory allocation of N bytes failed"; C code may just trap) looks like any
other failure. So the engines that run with ``max_memory`` create their
linear memories here, through wasmtime's host memory creator: each memory
is reserved as wasmtime asks (the reservation plus its guard region, no
access) and made accessible as it grows, and a growth past the run's cap is
refused *here*, where it is written down on the run's :class:`MemoryWatch`.
A run's reservations are emptied and kept for the next runs (see ``SPARE``).
The cap bounds all the memories of a run together, the guest's and any
wasmtime makes for it (a GC heap).

The callbacks run on the thread that instantiates or runs the guest; the
run's watch is found through a thread-local. Such engines cannot use
wasmtime's copy-on-write memory images (data segments are copied in at
instantiation instead), which is why only capped runs use them.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import resource
import threading
from typing import Any

import wasmtime

from .capi import (
    MemoryCreator,
    MemoryGetCallback,
    MemoryGrowCallback,
    NewMemoryCallback,
    error_pointer,
    set_memory_creator,
)

_PAGE = 4096
_PROT_NONE, _PROT_READ_WRITE = 0, 3
_MAP_PRIVATE, _MAP_ANONYMOUS, _MAP_NORESERVE = 0x02, 0x20, 0x4000

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_mprotect = _libc.mprotect
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_MADV_DONTNEED = 4
_MAP_FAILED = ctypes.c_void_p(-1).value

# Reservations a run gave back, kept for the next run by their size: taking one
# instead of mapping a new one and unmapping it after saves a capped run of
# hello-world-sized guests ~30-40 us (unmapping a reservation of gigabytes is
# the dear part). Each is emptied as it is given back: its pages dropped (what
# the run wrote is gone: they read as zeros, as a new mapping's do) and made
# inaccessible again. They hold address space, not memory; at most SPARE in
# all, none under a ulimit -v, and all are unmapped when a reservation cannot
# be made.
SPARE = 4
_spare: dict[int, list[int]] = {}
_spare_lock = threading.Lock()

_local = threading.local()
_memories: dict[int, _Memory] = {}
_tokens = itertools.count(1)


# The most elements a table may grow to, on every engine: a pooled slot has
# room for this many (80 MB), and the plain engine stops at the same point,
# so that a run behaves the same whichever engine it lands on.
TABLE_ELEMENTS = 10_000_000
# The most tables a run may have (wasmtime allows 10,000 a store, each of up to
# TABLE_ELEMENTS): programs have one or two, a component a few more.
MAX_TABLES = 16
# What wasmtime keeps per table element: a pointer (measured: ten million funcref
# elements filled, 80 MB; externref ones take 4 bytes).
TABLE_ELEMENT_BYTES = 8
# The fewest elements a table may have under any memory cap (80 KB).
_MIN_TABLE_ELEMENTS = 10_000


def table_elements(max_memory: int | None) -> int:
    """The most elements a table of a run may grow to: with a memory cap, so many that
    its tables together (at most MAX_TABLES) hold at most ``max_memory`` bytes."""
    if max_memory is None:
        return TABLE_ELEMENTS
    share = max_memory // (TABLE_ELEMENT_BYTES * MAX_TABLES)
    return min(TABLE_ELEMENTS, max(_MIN_TABLE_ELEMENTS, share))


class MemoryWatch:
    """The memory cap of one run, what its memories hold, and the growth it refused.

    The cap bounds the run's memories together (``used``), whatever wasmtime
    makes them for. What it refused is recorded as facts, for the host to name:
    ``refused_at_start`` when a memory's minimum did not fit (instantiation
    fails), ``refused_growth`` the total that a refused growth asked for.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.refused_at_start = False
        self.refused_growth: int | None = None

    def __enter__(self) -> MemoryWatch:
        self._outer = getattr(_local, "watch", None)
        _local.watch = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        _local.watch = self._outer


class _Memory:
    __slots__ = ("base", "capacity", "mapped", "size", "watch")

    def __init__(self, base: int, size: int, capacity: int, mapped: int, watch: MemoryWatch):
        self.base = base
        self.size = size
        self.capacity = capacity
        self.mapped = mapped
        self.watch = watch


def _pages(size: int) -> int:
    return -(-size // _PAGE) * _PAGE


# The most address space one memory may reserve. Far above any cap a guest
# can use, and it keeps every size below in range of a size_t (ctypes would
# wrap an overflowing one silently).
MAX_RESERVATION = 1 << 46


# Every callback catches everything: an exception escaping a ctypes callback
# is printed and turned into 0, which here would mean "success" (or a NULL
# base) to wasmtime.


@MemoryGetCallback  # type: ignore[untyped-decorator]
def _get(env: int | None, size: Any, capacity: Any) -> int:
    memory = _memories[env or 0]  # a plain dict look-up: it cannot raise for a live memory
    size[0] = memory.size
    capacity[0] = memory.capacity
    return memory.base


@MemoryGrowCallback  # type: ignore[untyped-decorator]
def _grow(env: int | None, new_size: int) -> int:
    try:
        memory = _memories[env or 0]
        watch = memory.watch
        if watch.used - memory.size + new_size > watch.cap:
            watch.refused_growth = watch.used - memory.size + new_size
            return error_pointer(f"wasmhost: the memory limit of {watch.cap} bytes")
        if new_size > memory.capacity:
            return error_pointer("wasmhost: memory growth past its reservation")
        if new_size > memory.size:
            if _mprotect(memory.base, _pages(new_size), _PROT_READ_WRITE):
                return error_pointer(f"wasmhost: mprotect failed (errno {ctypes.get_errno()})")
            watch.used += new_size - memory.size
            memory.size = new_size
        return 0
    except BaseException as exc:
        return error_pointer(f"wasmhost: memory growth failed: {exc!r}")


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _free(env: int | None) -> None:
    with contextlib.suppress(BaseException):
        memory = _memories.pop(env or 0, None)
        if memory is not None:
            _give_back(memory.base, memory.mapped, _pages(memory.size))


def _give_back(base: int, mapped: int, accessible: int) -> None:
    """Keep the reservation at ``base`` for another run, emptied, or unmap it."""
    if (
        _spares() < SPARE
        # Under a ulimit -v, address space kept here is taken from the rest of
        # the process (wasmtime's own reservations, Python's allocations).
        and resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
        and _madvise(base, accessible, _MADV_DONTNEED) == 0
        and _mprotect(base, accessible, _PROT_NONE) == 0
    ):
        with _spare_lock:  # (runs on other threads may give theirs back meanwhile)
            if _spares() < SPARE:
                _spare.setdefault(mapped, []).append(base)
                return
    _munmap(base, mapped)


def _spares() -> int:
    return sum(map(len, _spare.values()))


def _after_fork() -> None:
    # A thread of the parent may have held the lock at the fork; none runs here.
    global _spare_lock
    _spare_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _reserve(mapped: int) -> int | None:
    """A reservation of ``mapped`` bytes, inaccessible and empty: a spare one, or new."""
    try:
        return _spare[mapped].pop()  # (another thread may take the last one first)
    except (KeyError, IndexError):
        pass
    flags = _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE
    base = _mmap(None, mapped, _PROT_NONE, flags, -1, 0)
    if base is None or base == _MAP_FAILED:
        # Under a ulimit -v the spares may be what is in the way.
        for size, bases in list(_spare.items()):
            while bases:
                with contextlib.suppress(IndexError):
                    _munmap(bases.pop(), size)
        base = _mmap(None, mapped, _PROT_NONE, flags, -1, 0)
        if base is None or base == _MAP_FAILED:
            return None
    return int(base)


@NewMemoryCallback  # type: ignore[untyped-decorator]
def _new(
    _env: Any, _ty: Any, minimum: int, maximum: int, reserved: int, guard: int, out: Any
) -> int:
    try:
        return _make(minimum, maximum, reserved, guard, out)
    except BaseException as exc:
        return error_pointer(f"wasmhost: memory creation failed: {exc!r}")


def _make(minimum: int, maximum: int, reserved: int, guard: int, out: Any) -> int:
    watch: MemoryWatch | None = getattr(_local, "watch", None)
    if watch is None:  # only runs with a cap use these engines, and they set one
        return error_pointer("wasmhost: a memory outside a run with a memory limit")
    if watch.used + minimum > watch.cap:
        watch.refused_at_start = True  # what the host names (see failures)
        return error_pointer(f"wasmhost: the memory at start exceeds the limit of {watch.cap}")
    # wasmtime's compiled code may rely on the whole reservation and guard
    # region being mapped (inaccessible) for its bounds checks.
    capacity = max(reserved, _pages(min(maximum, watch.cap)))
    mapped = capacity + guard
    if mapped > MAX_RESERVATION:
        return error_pointer(f"wasmhost: a memory reservation of {mapped} bytes is too large")
    base = _reserve(mapped)
    if base is None:
        return error_pointer(f"wasmhost: cannot reserve {mapped} bytes of address space")
    if minimum and _mprotect(base, _pages(minimum), _PROT_READ_WRITE):
        _munmap(base, mapped)
        return error_pointer("wasmhost: mprotect failed")
    token = next(_tokens)
    _memories[token] = _Memory(base, minimum, capacity, mapped, watch)
    watch.used += minimum
    memory = out[0]
    memory.env = token
    memory.get_memory = _get
    memory.grow_memory = _grow
    memory.finalizer = _free
    return 0


# wasmtime copies the struct; the callbacks it points to live as long as this module.
_creator = MemoryCreator(
    None,
    _new,
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(),  # no finalizer
)


def use_watched_memories(config: wasmtime.Config) -> None:
    """Make the engines of ``config`` create their memories here."""
    config.memory_init_cow = False  # copy-on-write images need wasmtime's own mmaps
    set_memory_creator(config, _creator)


def can_reserve(size: int) -> bool:
    """Whether ``size`` bytes of address space can be reserved (tried, then given back)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        return False  # a ulimit -v: the reservation would count against it
    flags = _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE
    address = _mmap(None, size, _PROT_NONE, flags, -1, 0)
    if address in (None, _MAP_FAILED):
        return False
    _munmap(address, size)
    return True
