"""Wall-clock timeouts and cancellation through epoch interruption.

wasmtime checks an engine-wide epoch counter in compiled code; a store traps
(or calls back) when the epoch passes its deadline. A ticker thread per
interruptible engine bumps the epoch every ``TICK`` seconds while at least one
guarded run is in progress, and each guarded store gets a deadline callback
that decides, at every tick, whether its own run has to stop: past its
timeout, or cancelled. Runs of the same engine therefore never disturb each
other, and a host shared between threads keeps working.

A guest blocked in a host call is not executing wasm code, so the epoch alone
cannot reach it: the ticker also checks every guard itself and *trips* the
ones whose run has to stop. Tripping wakes whatever waits on the guard
(``Guard.stopped``: an interruptible ``poll_oneoff`` sleep), and the guest is
stopped as soon as control is back in wasm code.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import wasmtime

from .capi import CONTINUE, EpochCallback, EpochFinalizer, error_pointer, set_epoch_callback

TICK = 0.005
LINGER = 1.0
DENSE_FOR = 0.05
SPARSE = 64  # ticks

_guards: dict[int, Guard] = {}
_tokens = itertools.count(1)
_local = threading.local()


class Guard:
    """The deadline and cancel event of one run; ``reason`` says why it stopped.

    ``reason`` is ``"timeout"``, ``"interrupted"``, or a reason given to
    :meth:`trip` (such as ``"output"``); ``stopped`` is set when it is.
    """

    def __init__(self, timeout: float | None, cancel: threading.Event | None) -> None:
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.cancel = cancel
        self.reason: str | None = None
        self.stopped = threading.Event()
        self.token = next(_tokens)
        self._watches: list[tuple[Callable[[], object], str]] = []
        self._long = False
        self._lock = threading.Lock()

    def next_check(self) -> int:
        """In how many ticks the running guest should call back again.

        Every tick at first; a run that has gone on for a while only every
        ``SPARSE`` ticks (its deadline still at the tick), so that a
        long-running guest rarely takes the GIL: on a busy machine a thread
        preempted while it holds the GIL holds up every thread of the
        process. A cancellation or another limit still stops it within a
        tick: the ticker, which sees the guard trip, moves the epoch on by
        ``SPARSE`` ticks at once (see :meth:`Ticker._loop`).
        """
        now = time.monotonic()
        if now - self.started < DENSE_FOR:
            return 1
        if not self._long:
            self._long = True
            hook = getattr(_local, "long_run_hook", None)
            if hook is not None:
                hook()
        if self.deadline is None:
            return SPARSE
        return max(1, min(SPARSE, int((self.deadline - now) / TICK)))

    def watch(self, probe: Callable[[], object], reason: str) -> None:
        """Also stop the run, for ``reason``, as soon as ``probe()`` is true."""
        self._watches.append((probe, reason))

    def check(self) -> str | None:
        """The reason this run has to stop, if it has to; trips the guard then."""
        if self.reason is not None:
            return self.reason
        if self.cancel is not None and self.cancel.is_set():
            self.trip("interrupted")
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self.trip("timeout")
        else:
            for probe, reason in self._watches:
                if probe():
                    self.trip(reason)
                    break
        return self.reason

    def trip(self, reason: str) -> None:
        """Stop the run for ``reason`` (the first reason given wins) and wake its waiters."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
        self.stopped.set()


def on_long_run(hook: Callable[[], object] | None) -> None:
    """Call ``hook`` on this thread once a run on it has gone on for ``DENSE_FOR``.

    It is called from the run's epoch callback, on the guest's own thread.
    """
    _local.long_run_hook = hook


def current() -> Guard | None:
    """The guard of the run executing on this thread, if it has one."""
    return getattr(_local, "guard", None)


class active:
    """Make ``guard`` this thread's current guard for the length of a ``with`` block."""

    def __init__(self, guard: Guard | None) -> None:
        self._guard = guard
        self._outer: Guard | None = None

    def __enter__(self) -> None:
        self._outer = current()
        _local.guard = self._guard

    def __exit__(self, *exc_info: object) -> None:
        _local.guard = self._outer


@EpochCallback  # type: ignore[untyped-decorator]
def _on_deadline(_ctx: Any, data: int | None, delta: Any, kind: Any) -> int:
    try:
        guard = _guards.get(data or 0)
        reason = guard.check() if guard is not None else None
        if reason is not None:
            return error_pointer(f"wasmhost: {reason}")
        ticks = guard.next_check() if guard is not None else 1
    except Exception:  # an exception must not escape a ctypes callback: check again soon
        ticks = 1
    delta[0] = ticks
    kind[0] = CONTINUE
    return 0


@EpochFinalizer  # type: ignore[untyped-decorator]
def _forget(data: int | None) -> None:
    _guards.pop(data or 0, None)


class Ticker:
    """Bumps an engine's epoch (and its twin's) every TICK seconds while guarded runs are active.

    At every tick it also checks the active guards, so that a guest waiting in
    a host call is woken within a tick of its deadline or cancellation. After
    the last guarded run ends it keeps ticking for LINGER seconds before it
    sleeps: a server running one short guarded guest after another would
    otherwise wake the thread (and hand it the GIL) for every request.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engines = [engine]
        self._stopped = False
        self._reset()
        _tickers.add(self)

    def _reset(self) -> None:
        """Start afresh: no thread, no runs (a forked child has neither of the parent's)."""
        self._active: set[Guard] = set()
        self._idle_since = 0.0
        self._sleeping = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._active and (
                    self._stopped or time.monotonic() - self._idle_since > LINGER
                ):
                    if self._stopped:
                        return
                    self._sleeping = True
                    self._cond.wait()
                    self._sleeping = False
                guards = list(self._active)
            time.sleep(TICK)
            engines = self._engines
            for engine in engines:
                engine.increment_epoch()
            tripped = False
            for guard in guards:
                with self._cond:
                    if guard not in self._active:
                        continue  # its run ended during the tick: nothing to stop
                # A probe may fail for a run that ends right now; the ticker must not.
                with contextlib.suppress(Exception):
                    was = guard.reason
                    tripped |= was is None and guard.check() not in (None, "timeout")
            if tripped:
                # Bring every store of the engine to its deadline callback now:
                # the tripped run stops, the others carry on. (Not for a
                # timeout: a run's callbacks are timed to reach its deadline.)
                for _ in range(SPARSE):
                    for engine in engines:
                        engine.increment_epoch()

    def add(self, engine: wasmtime.Engine) -> None:
        """Also bump ``engine``'s epoch (a pooled twin's: its stores are guarded here too)."""
        self._engines = [*self._engines, engine]

    def stop(self) -> None:
        """End the ticker thread once no guarded run is left (the engine is being dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
            idle = not self._active
        if idle and self._thread is not None:
            self._thread.join()

    def guard(self, store: wasmtime.Store, guard: Guard) -> None:
        """Attach ``guard`` to ``store`` and keep the epoch moving until :meth:`release`."""
        _guards[guard.token] = guard
        store.set_epoch_deadline(1)
        set_epoch_callback(store, _on_deadline, guard.token, _forget)
        with self._cond:
            self._active.add(guard)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="wasmhost-epoch", daemon=True
                )
                self._thread.start()
            elif self._sleeping:
                self._cond.notify()

    def release(self, guard: Guard) -> None:
        _guards.pop(guard.token, None)
        with self._cond:
            self._active.discard(guard)
            if not self._active:
                self._idle_since = time.monotonic()
            if self._stopped:
                self._cond.notify()


# A forked child has only the forking thread: each ticker's thread object is
# copied dead (and its lock possibly held), and no timeout or cancel would
# ever fire there. Pre-fork servers, celery's prefork pool and multiprocessing's
# fork context all run guests in such children.
_tickers: weakref.WeakSet[Ticker] = weakref.WeakSet()


def _after_fork() -> None:
    for ticker in list(_tickers):
        ticker._reset()


os.register_at_fork(after_in_child=_after_fork)
