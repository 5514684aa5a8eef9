"""The wasmtime engines a :class:`~wasmhost.Host` owns.

Epoch interruption (needed for timeouts and cancellation) and fuel metering
each slow compiled code down (measured on the nbody artifact: +32 % and
+21 %), and watched memories (for a memory cap, see ``_memory``) give up
wasmtime's copy-on-write memory images; so a run only pays for what it
asks: there is one engine per combination of the three, made on first use,
each with its own WASI linker, compiled modules and cache fingerprint.
"""

from __future__ import annotations

import os
import threading
from typing import NamedTuple

import wasmtime

from . import _poll
from ._cache import CACHE_FORMAT
from ._memory import use_watched_memories
from ._watchdog import Ticker


class EngineFlags(NamedTuple):
    """What a run needs from its engine."""

    interruptible: bool = False
    metered: bool = False
    capped: bool = False  # memories that report a refused growth (see _memory)


class EngineSlot:
    """One engine, its WASI linker, and the modules compiled for it (by cache key)."""

    def __init__(self, engine: wasmtime.Engine, fingerprint: str, ticker: Ticker | None) -> None:
        self.engine = engine
        self.fingerprint = fingerprint
        self.ticker = ticker
        self._poll_helper: wasmtime.Module | None = None
        self.linker = self.wasi_linker()
        self.compiled: dict[str, tuple[wasmtime.Module, wasmtime.InstancePre | None]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def wasi_linker(self) -> wasmtime.Linker:
        """A new linker with WASI as this engine's runs get it (for per-run definitions)."""
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        if self.ticker is not None:
            # A sleeping guest would otherwise outsleep its timeout (see _poll).
            _poll.install(linker, self.engine, self._poll_trampoline)
        return linker

    def _poll_trampoline(self) -> wasmtime.Module:
        if self._poll_helper is None:
            self._poll_helper = _poll.trampoline(self.engine)  # a race compiles it twice: harmless
        return self._poll_helper

    def compile_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())


def wasmtime_version() -> str:
    """The installed wasmtime-py version, read without importing importlib.metadata.

    Serialized modules load only in the wasmtime version and configuration
    that made them, so the version is part of every cache key. Reading the
    dist-info folder's name costs a directory listing; importlib.metadata
    costs ~12 ms of start-up.
    """
    site = os.path.dirname(os.path.dirname(wasmtime.__file__))
    try:
        for name in os.listdir(site):
            if name.startswith("wasmtime-") and name.endswith(".dist-info"):
                return name[len("wasmtime-") : -len(".dist-info")]
    except OSError:
        pass
    from importlib.metadata import version

    return version("wasmtime")


def _make(flags: EngineFlags) -> EngineSlot:
    config = wasmtime.Config()
    config.epoch_interruption = flags.interruptible
    config.consume_fuel = flags.metered
    if flags.capped:
        use_watched_memories(config)
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
    return EngineSlot(engine, fingerprint, ticker)


class Engines:
    """The engines of one host, one per :class:`EngineFlags`, made on first use."""

    def __init__(self) -> None:
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

    def close(self) -> None:
        with self._lock:
            for slot in self._slots.values():
                if slot.ticker is not None:
                    slot.ticker.stop()
            self._slots.clear()
