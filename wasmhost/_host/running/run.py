"""One run of a guest, as a scope: what it holds, released when it ends; what it gave, as facts.

:class:`RunScope` holds a run's stdio, WASI configuration, pool lease, store,
guard and memory watch, and releases all of them when its block ends,
whatever happened in it. Its :attr:`~RunScope.outcome`, read after, is an
immutable record of what the run gave; :func:`conclude` turns it into a
:class:`RunResult`, or into the exception that names what stopped the guest.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import wasmtime

from ..._errors import (
    ConfigError,
    ErrorResult,
    FuelExhausted,
    GuestError,
    Interrupted,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    TimeoutExceeded,
    Trap,
)
from ..._numbers import format_size
from ..._text import wasi_environment, wasi_strings
from ..engines.capi import set_argv_env
from ..engines.engine import EngineSlot
from ..engines.memory import MAX_TABLES, MemoryWatch, table_elements
from ..engines.wasi import DEFAULT_MAX_FILES, RunWasi
from ..engines.wasi import active as wasi_active
from ..engines.watchdog import Guard, active
from ..result import CALLED, Called, RunResult
from ..values.functions import Failure
from ..values.module import Module, table_limits
from .kinds import Guest
from .stdio import CAPTURE, Stdio

if TYPE_CHECKING:
    from ..engines.failures import TrapFacts
    from .kinds import Kind


class Dir(NamedTuple):
    """A host directory to preopen for the guest; ``read_only`` forbids every change in it.

    >>> host.run(module, dirs={"/data": Dir("./data", read_only=True)})
    """

    path: str | os.PathLike[str]
    read_only: bool = False


DirSource = str | os.PathLike[str] | Dir


def as_dir(source: DirSource) -> Dir:
    """A ``dirs`` value as a :class:`Dir` (a plain path is a writable mount)."""
    return source if isinstance(source, Dir) else Dir(source)


class Outcome(NamedTuple):
    """What a run gave, once it has ended and released what it held. (A tuple: one is
    made on every run, and a frozen dataclass takes microseconds more to make.)"""

    module: Module
    called: Called
    exit_code: int
    trap: TrapFacts | None  # wasmtime's trap (or error) that ended the guest
    raised: BaseException | None  # what a host function or an output callback raised
    stopped: str | None  # why the guard stopped it: "timeout", "interrupted", ...
    timeout: float | None
    over: str | None  # the stream that went past the output limit
    max_output: int | None
    memory_cap: int | None
    refused_growth: bool  # the memory watch refused the guest more memory
    stdout: bytes
    stderr: bytes
    fuel_consumed: int | None
    elapsed: float
    instantiate_time: float


class RunScope:
    """Everything one run holds, from its WASI configuration to its store, as a
    context manager: ``with RunScope(...) as scope: scope.call()``, then
    :attr:`outcome`."""

    # What a run has not taken (yet), or not recorded: class-level defaults, so that
    # making a scope, once a run, sets only what it is given.
    watch: MemoryWatch | None = None
    loud: Collection[str] = ()  # the streams that wrote more than a pipe holds
    _wasi: wasmtime.WasiConfig | None = None
    _store: wasmtime.Store | None = None
    _guard: Guard | None = None
    _leased: EngineSlot | None = None  # the slot whose pool lent this run a place
    _called: Called = CALLED
    _exit_code = 0
    _trap: TrapFacts | None = None
    _instantiated: float | None = None
    _elapsed = 0.0
    _instantiate_time = 0.0
    _consumed: int | None = None
    _callback_error: BaseException | None = None
    _over: str | None = None
    _out = b""
    _err = b""
    _outcome: Outcome | None = None

    def __init__(
        self,
        guest: Guest,
        kind: Kind,
        options: Mapping[str, Any],
        max_output: int | None,
        loud: Collection[str] = (),
    ) -> None:
        self._guest = guest
        self._kind = kind
        self._options = options
        self.stdio = Stdio(max_output, loud)
        self.failure = Failure()  # what a host function raised, to raise again

    # -- holding -------------------------------------------------------------

    def __enter__(self) -> RunScope:
        try:
            self._open()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self._release()
        if exc_type is None:
            self._outcome = self._make_outcome()

    def _open(self) -> None:
        guest, options = self._guest, self._options
        wasi = self._wasi = guest_wasi(guest.module, self._kind.argv(guest), options)
        self.stdio.configure(
            wasi,
            options.get("stdin"),
            options.get("stdout", CAPTURE),
            options.get("stderr", CAPTURE),
        )
        slot = guest.slot
        lease = slot.lease(guest.module.key, guest.compiled, self._kind.prepare, self._kind.weight)
        if lease is not None:
            self._leased = slot
            guest = self._guest = guest.pooled(*lease)  # the same code, pooled (see engine)
        store = self._store = wasmtime.Store(guest.slot.engine)
        store.set_wasi(wasi)
        self._wasi = None  # the store owns it now
        max_memory = guest.max_memory
        # Tables stop where a pooled slot's do, on either engine (see engine), or
        # sooner with a memory cap: together they hold at most the cap's worth.
        # With a memory cap, one memory (see memory), or it would not bound the guest.
        store.set_limits(
            table_elements=table_elements(max_memory),
            tables=MAX_TABLES,
            memories=1 if max_memory is not None and self._kind.one_memory else -1,
        )
        if max_memory is not None:
            self.watch = MemoryWatch(max_memory)
        fuel = options.get("fuel")
        if fuel is not None:
            store.set_fuel(fuel)
        if slot.ticker is not None:
            guard = Guard(options.get("timeout"), options.get("cancel"))
            if self.stdio.max_output is not None:
                guard.watch(self.stdio.over_limit, "output")
            slot.ticker.guard(store, guard)
            self._guard = guard  # (a pooled twin shares its sibling's ticker)

    def _release(self) -> None:
        """Give back what the run holds, in the order each needs (a store before its
        pool slot; the guest's ends of the output pipes before they are read)."""
        try:
            try:
                ticker = self._guest.slot.ticker
                if self._guard is not None and ticker is not None:
                    ticker.release(self._guard)
                # Closing the store (or, if none was made, the WASI configuration
                # that still owns them) closes the guest's ends of the output pipes.
                if self._store is not None:
                    self._store.close()
                elif self._wasi is not None:
                    self._wasi.close()
            finally:
                if self._leased is not None:
                    self._leased.release(self._kind.weight)  # its store is closed
            stdio = self.stdio
            stdio.finish()
            self.loud = stdio.loud()
            self._callback_error = stdio.callback_error()
            self._over = stdio.over_limit()
            self._out, self._err = stdio.collect()
        finally:
            self.stdio.close()

    # -- running -------------------------------------------------------------

    def started(self) -> None:
        """The guest is instantiated (see ``kinds.Running``)."""
        self._instantiated = time.perf_counter()

    def call(self) -> None:
        """Call the guest, recording how it ended (a trap, an exit, values)."""
        assert self._store is not None, "call() inside the with block"
        store, options = self._store, self._options
        started = time.perf_counter()
        try:
            files = RunWasi(
                options.get("max_files", DEFAULT_MAX_FILES), options.get("symlinks", True)
            )
            with active(self._guard), wasi_active(files), self.watch or contextlib.nullcontext():
                self._called = self._kind.call(store, self._guest, self)
            self._exit_code = self._called.exit_code
        except wasmtime.ExitTrap as exc:
            self._exit_code = exc.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            from ..engines.failures import read_trap  # (only a failed run needs it)

            self._trap = read_trap(exc)
        end = time.perf_counter()
        self._elapsed = end - started
        self._instantiate_time = (self._instantiated or end) - started
        fuel = options.get("fuel")
        if fuel is not None:
            self._consumed = fuel - store.get_fuel()

    @property
    def outcome(self) -> Outcome:
        """What the run gave (once its block has ended)."""
        assert self._outcome is not None, "outcome is read after the with block"
        return self._outcome

    def _make_outcome(self) -> Outcome:
        guard, watch = self._guard, self.watch
        return Outcome(  # (in Outcome's order: positional is faster, on every run)
            self._guest.module,
            self._called,
            self._exit_code,
            self._trap,
            self.failure.error or self._callback_error,
            guard.reason if guard is not None else None,
            self._options.get("timeout"),
            self._over,
            self.stdio.max_output,
            watch.cap if watch is not None else None,
            watch is not None and watch.refused_growth is not None,
            self._out,
            self._err,
            self._consumed,
            self._elapsed,
            self._instantiate_time,
        )


def conclude(outcome: Outcome) -> RunResult:
    """The :class:`RunResult` of a run that ended well, else the exception that names
    what ended it: what a host function or callback raised, a limit, a trap, or a
    component's ``err``."""
    if outcome.raised is not None:
        raise outcome.raised
    # A guest that fails after it was refused memory, by a trap or an exit status,
    # is named as stopped by the limit.
    refused = outcome.refused_growth and outcome.exit_code != 0
    if outcome.trap is not None or refused or outcome.over is not None:
        raise guest_error(outcome)
    called = outcome.called
    if called.error_result is not None:
        raise ErrorResult(
            str(called.error_result),
            error=called.error_result.error,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
        )
    return RunResult(
        exit_code=outcome.exit_code,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        values=called.values,
        fuel_consumed=outcome.fuel_consumed,
        elapsed=outcome.elapsed,
        instantiate_time=outcome.instantiate_time,
    )


def guest_error(outcome: Outcome) -> GuestError:
    """What stopped a guest: a limit (timeout, cancel, output, fuel, memory) or its trap."""
    out, err = outcome.stdout, outcome.stderr
    name = outcome.module.name
    if outcome.stopped == "timeout":
        return TimeoutExceeded(
            f"{name} ran past its {outcome.timeout:g} s timeout and was stopped.",
            stdout=out,
            stderr=err,
        )
    if outcome.stopped == "interrupted":
        return Interrupted(f"{name} was interrupted.", stdout=out, stderr=err)
    if outcome.over is not None:
        limit = outcome.max_output
        assert limit is not None
        return OutputLimitExceeded(
            f"{name} wrote more than its output limit of {format_size(limit)} to "
            f"{outcome.over} and was stopped; the first {format_size(limit)} are kept.",
            stream=outcome.over,
            max_output=limit,
            stdout=out,
            stderr=err,
        )
    trap = outcome.trap
    code = trap.code if trap is not None else None
    if code == "out_of_fuel":
        return FuelExhausted(f"{name} ran out of fuel and was stopped.", stdout=out, stderr=err)
    cap = outcome.memory_cap
    if cap is not None and (outcome.refused_growth or code == "allocation_too_large"):
        return MemoryLimitExceeded(
            f"{name} reached its memory limit of {format_size(cap)} and was stopped.",
            stdout=out,
            stderr=err,
        )
    if (
        cap is not None
        and code == "table_out_of_bounds"
        and _can_outgrow(outcome.module, table_elements(cap))
    ):
        # A table.grow past the limit returns -1 and leaves no trace (wasmtime's
        # C API has no table limiter to tell): a guest that then uses the elements
        # it was refused is stopped by the limit, not by a bug of its own.
        return MemoryLimitExceeded(
            f"{name} was refused a table larger than its memory limit of "
            f"{format_size(cap)} allows ({table_elements(cap):,} elements) and was stopped.",
            stdout=out,
            stderr=err,
        )
    assert trap is not None  # the other ways to get here are handled above
    return Trap(
        f"{name} trapped: {trap.message}",
        trap_code=code,
        frames=list(trap.frames),
        stdout=out,
        stderr=err,
    )


def _can_outgrow(module: Module, elements: int) -> bool:
    """Whether a table of ``module`` may grow past ``elements`` (so be refused)."""
    for signature in module.tables:
        limits = table_limits(signature)
        if limits is None or limits[1] is None or limits[1] > elements:
            return True
    return False


def guest_wasi(
    module: Module, args: Collection[object], options: Mapping[str, Any]
) -> wasmtime.WasiConfig:
    """The guest's argv, environment and directories (its stdio is the run's)."""
    wasi = wasmtime.WasiConfig()
    try:
        first = options.get("argv0") or os.path.basename(module.name)
        # Refused here, with the argument or variable named; what was checked is
        # what is passed (a mapping may not answer twice alike).
        argv = wasi_strings("argument", [first, *map(str, args)])
        env = options.get("env")
        names, values = wasi_environment(env) if env else ([], [])
        set_argv_env(wasi, argv, names, values)
        for guest, source in (options.get("dirs") or {}).items():
            _preopen(wasi, guest, source)
    except BaseException:
        wasi.close()
        raise
    return wasi


def _preopen(wasi: wasmtime.WasiConfig, guest: str, source: DirSource) -> None:
    spec = as_dir(source)
    host_path = os.fspath(spec.path)
    wasi_strings("directory", [host_path, guest])
    if not os.path.isdir(host_path):
        what = "is not a directory" if os.path.exists(host_path) else "does not exist"
        raise ConfigError(f"host directory {host_path} {what}; create it or fix the path.")
    if not guest:
        raise ConfigError(f"the guest path for {host_path} is empty.")
    try:
        wasi.preopen_dir(host_path, guest, fs_mutable=not spec.read_only)
    except wasmtime.WasmtimeError as exc:
        raise ConfigError(f"host directory {host_path} cannot be opened: {exc}.") from None
