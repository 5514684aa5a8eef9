"""The wasmtime engines a :class:`~wasmhost.Host` owns.

Epoch interruption (needed for timeouts and cancellation) and fuel metering
each slow compiled code down (measured on the nbody artifact: +32 % and
+21 %), and watched memories (for a memory cap, see ``memory``) give up
wasmtime's copy-on-write memory images; so a run only pays for what it
asks: there is one engine per combination of the three, made on first use,
each with its own WASI linker, compiled modules and cache fingerprint.

An engine allocates each instance's memory and tables on demand: a few
mappings made and dropped per run (~17 us of a 70 us hello-world run). A
module that a host runs again also gets a *pooled twin*: the same compiled
code, deserialized into a sibling engine whose pooling allocator keeps slots
for ``POOL_RUNS`` instances and reuses them (wasmtime resets a slot's memory
before reuse). Runs use the twin when it has a free slot and the plain
engine otherwise; a module that does not fit a slot (more than one memory
or table, a memory64) keeps running on the plain engine. A one-shot ``wasmhost run``
never makes the twin. Engines with a memory cap have no twin: their memory
creator and the pool exclude each other.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import wasmtime

if TYPE_CHECKING:
    from .components import ComponentCode, WasiLinker

from . import wasi
from .cache import CACHE_FORMAT
from .capi import check_version, use_pooling_allocator, wasmtime_version
from .memory import TABLE_ELEMENTS, can_reserve, use_watched_memories
from .watchdog import Ticker


class EngineFlags(NamedTuple):
    """What a run needs from its engine."""

    interruptible: bool = False
    metered: bool = False
    capped: bool = False  # memories that report a refused growth (see memory)


# How much of the pool a component's run takes: a component made from a
# preview-1 module has four core instances (the module, the adapter, two shims),
# and at most this many core instances, memories and tables fit a pooled run.
COMPONENT_WEIGHT = 4
# Runs that the pooled twin of an engine holds at once; more wait for no one
# but run on the plain engine. Each slot reserves address space only (about
# 4 GiB of it, as any wasm32 memory does); touched pages are given back when
# the instance ends.
POOL_RUNS = 16
# What a run's slot may reserve, over-counted: a wasm32 memory (4 GiB and its
# guard), a GC heap as big, a table, instance state. A twin is made only where
# twice its reservation is free: plain runs need address space too.
_SLOT_RESERVATION = 16 << 30


class Lease(NamedTuple):
    """A run's place in a pooled twin: its engine slot, the module there, its InstancePre."""

    slot: EngineSlot
    compiled: wasmtime.Module
    pre: wasmtime.InstancePre | None


class EngineSlot:
    """One engine, its WASI linker, and the modules compiled for it (by cache key)."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        fingerprint: str,
        ticker: Ticker | None,
        flags: EngineFlags | None = None,
    ) -> None:
        self.engine = engine
        self.fingerprint = fingerprint
        self.ticker = ticker
        self._trampoline = wasi.Trampoline(engine)
        self.linker = self.wasi_linker()
        self._component_linker: WasiLinker | None = None
        # A module's code and InstancePre, or a component's code and None.
        self.compiled: dict[str, tuple[Any, wasmtime.InstancePre | None]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        # The pooled twin (flags is None for a twin itself, which has none).
        self._flags = flags
        self._twin: EngineSlot | None = None
        self._poolable = flags is not None and not flags.capped
        self._ran: set[str] = set()
        self._unfit: set[str] = set()
        self._leased = 0

    def wasi_linker(self) -> wasmtime.Linker:
        """A new linker with WASI as this engine's runs get it (for per-run definitions)."""
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        # wasmhost's WASI functions in front of wasmtime's: sleeps that a timeout
        # cuts short, the max_files cap, symlinks=False (see wasi).
        wasi.install(linker, self._trampoline, interruptible=self.ticker is not None)
        return linker

    def component_linker(self, trap_unknown: ComponentCode | None = None) -> WasiLinker:
        """The linker with WASI preview 2 for components (a new one that defines
        ``trap_unknown``'s unknown imports as traps, if given)."""
        from .components import WasiLinker

        if trap_unknown is not None:
            return WasiLinker(self.engine, trap_unknown)
        if self._component_linker is None:
            self._component_linker = WasiLinker(self.engine)  # a race makes two: harmless
        return self._component_linker

    def close(self) -> None:
        """Let the engine go, and what wasmtime holds out of the garbage collector's
        sight: the linker's and InstancePres' host functions."""
        for _, pre in self.compiled.values():
            if isinstance(pre, wasmtime.InstancePre):
                pre.close()
        self.compiled.clear()
        self.linker.close()
        if self._component_linker is not None:
            self._component_linker.close()
        if self._twin is not None:
            self._twin.close()

    def forget(self, key: str) -> None:
        """Drop the module ``key`` (here and in the twin): a run that holds its code or
        InstancePre keeps them alive until it ends; a later run compiles it again (from
        the disk cache). The InstancePre is not closed: a run may still use it, and it
        is freed when the last run holding it lets it go."""
        with self._lock:
            self.compiled.pop(key, None)
            self._locks.pop(key, None)
            self._ran.discard(key)
            self._unfit.discard(key)
            twin = self._twin
        if twin is not None:
            twin.forget(key)

    def compile_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def lease(
        self, key: str, compiled: Any, prepare: Callable[[Any, EngineSlot], Any], weight: int = 1
    ) -> Lease | None:
        """A free slot of the pooled twin for a run of ``compiled``, or None (run it here).

        The first run of a module is not pooled; the second makes the twin
        (once per engine) and copies the module's code into it (once per
        module), where ``prepare`` finds what its runs find once (its
        ``Guest.pre``: see ``kinds``). Give the lease back with :meth:`release`
        after the run's store is closed. A component's run weighs
        ``COMPONENT_WEIGHT`` runs.
        """
        if not self._poolable or key in self._unfit:
            return None
        twin = self._twin
        entry = twin.compiled.get(key) if twin is not None else None
        if twin is None or entry is None:
            if key not in self._ran:
                self._ran.add(key)
                return None
            pooled = self._pool(key, compiled, prepare)
            if pooled is None:
                return None
            twin, entry = pooled
        with self._lock:
            if self._leased + weight > POOL_RUNS:
                return None
            self._leased += weight
        return Lease(twin, *entry)

    def release(self, weight: int = 1) -> None:
        with self._lock:
            self._leased -= weight

    def _pool(
        self, key: str, compiled: Any, prepare: Callable[[Any, EngineSlot], Any]
    ) -> tuple[EngineSlot, tuple[Any, Any]] | None:
        """The twin and ``compiled`` copied into it, or None where it cannot be pooled."""
        with self._lock:  # one twin per engine, whichever module asks first
            if self._twin is None and self._poolable:
                assert self._flags is not None
                self._twin = _make_twin(self._flags, self.fingerprint, self.ticker)
                self._poolable = self._twin is not None
            twin = self._twin
        if twin is None:
            return None
        with self.compile_lock(key):
            entry = twin.compiled.get(key)
            if entry is None:
                try:
                    # The same code (a module's or a component's): a pooled engine
                    # compiles as its plain sibling does.
                    copy = type(compiled).deserialize(twin.engine, compiled.serialize())
                except wasmtime.WasmtimeError:
                    # Its memories or tables do not fit a slot (a component: more
                    # than COMPONENT_WEIGHT core instances, memories or tables).
                    self._unfit.add(key)
                    return None
                entry = twin.compiled[key] = (copy, prepare(copy, twin))
            return twin, entry


def _make(flags: EngineFlags) -> EngineSlot:
    config = _config(flags)
    # wasmtime's own cache would compete with ours; ours is keyed and checked.
    engine = wasmtime.Engine(config)
    fingerprint = "-".join(
        [
            f"wasmtime{wasmtime_version()}",
            os.uname().machine or "unknown",
            f"e{int(flags.interruptible)}f{int(flags.metered)}" + ("c1" if flags.capped else ""),
            f"v{CACHE_FORMAT}",
        ]
    )
    ticker = Ticker(engine) if flags.interruptible else None
    return EngineSlot(engine, fingerprint, ticker, flags)


def _make_twin(flags: EngineFlags, fingerprint: str, ticker: Ticker | None) -> EngineSlot | None:
    """The pooled twin of the engine made for ``flags``, or None where the pool cannot be made.

    wasmtime ends the process (a panic in its C API) when it cannot reserve
    the pool's address space, so that is tried first: with a ``ulimit -v``,
    or where the reservation fails, there is no pool.
    """
    if not can_reserve(2 * POOL_RUNS * _SLOT_RESERVATION):
        return None
    config = _config(flags)
    # Twice the instances: a run may add a helper instance (see wasi).
    use_pooling_allocator(
        config,
        instances=2 * POOL_RUNS,
        slots=POOL_RUNS,
        table_elements=TABLE_ELEMENTS,
        per_component=COMPONENT_WEIGHT,
    )
    engine = wasmtime.Engine(config)
    if ticker is not None:
        ticker.add(engine)
    return EngineSlot(engine, fingerprint, ticker)


def _config(flags: EngineFlags) -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = flags.interruptible
    config.consume_fuel = flags.metered
    if flags.capped:
        use_watched_memories(config)
    return config


class Engines:
    """The engines of one host, one per :class:`EngineFlags`, made on first use."""

    def __init__(self) -> None:
        check_version()
        self._slots: dict[EngineFlags, EngineSlot] = {}
        self._lock = threading.Lock()

    def get(self, flags: EngineFlags) -> EngineSlot:
        slot = self._slots.get(flags)
        if slot is None:
            with self._lock:
                slot = self._slots.get(flags)
                if slot is None:
                    slot = self._slots[flags] = _make(flags)
        return slot

    def forget(self, key: str) -> None:
        """Drop the module ``key`` from every engine (see :meth:`EngineSlot.forget`)."""
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            slot.forget(key)

    def close(self) -> None:
        with self._lock:
            for slot in self._slots.values():
                if slot.ticker is not None:
                    slot.ticker.stop()
                slot.close()
            self._slots.clear()
