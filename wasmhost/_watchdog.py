"""Wall-clock timeouts and cancellation through epoch interruption.

wasmtime checks an engine-wide epoch counter in compiled code; a store traps
(or calls back) when the epoch passes its deadline. A ticker thread per
interruptible engine bumps the epoch every ``TICK`` seconds while at least one
guarded run is in progress, and each guarded store gets a deadline callback
that decides, at every tick, whether its own run has to stop: past its
timeout, or cancelled. Runs of the same engine therefore never disturb each
other, and a host shared between threads keeps working.

Blocking host calls (a guest sleeping in ``poll_oneoff``) are not
interrupted: the check happens when control returns to wasm code.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import wasmtime

from ._capi import CONTINUE, EpochCallback, EpochFinalizer, error_pointer, set_epoch_callback

TICK = 0.005
LINGER = 1.0

_guards: dict[int, Guard] = {}
_tokens = itertools.count(1)


class Guard:
    """The deadline and cancel event of one run; ``reason`` says why it stopped."""

    def __init__(self, timeout: float | None, cancel: threading.Event | None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.cancel = cancel
        self.reason: str | None = None
        self.token = next(_tokens)

    def check(self) -> str | None:
        if self.cancel is not None and self.cancel.is_set():
            return "interrupted"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "timeout"
        return None


@EpochCallback  # type: ignore[untyped-decorator]
def _on_deadline(_ctx: Any, data: int | None, delta: Any, kind: Any) -> int:
    guard = _guards.get(data or 0)
    reason = guard.check() if guard is not None else None
    if reason is None:
        delta[0] = 1
        kind[0] = CONTINUE
        return 0
    assert guard is not None
    guard.reason = reason
    return error_pointer(f"wasmhost: {reason}")


@EpochFinalizer  # type: ignore[untyped-decorator]
def _forget(data: int | None) -> None:
    _guards.pop(data or 0, None)


class Ticker:
    """Bumps one engine's epoch every TICK seconds while guarded runs are active.

    After the last guarded run ends it keeps ticking for LINGER seconds
    before it sleeps: a server running one short guarded guest after another
    would otherwise wake the thread (and hand it the GIL) for every request.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active = 0
        self._idle_since = 0.0
        self._sleeping = False
        self._stopped = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._active == 0 and (
                    self._stopped or time.monotonic() - self._idle_since > LINGER
                ):
                    if self._stopped:
                        return
                    self._sleeping = True
                    self._cond.wait()
                    self._sleeping = False
            time.sleep(TICK)
            self._engine.increment_epoch()

    def stop(self) -> None:
        """End the ticker thread once no guarded run is left (the engine is being dropped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
            idle = self._active == 0
        if idle and self._thread is not None:
            self._thread.join()

    def guard(self, store: wasmtime.Store, guard: Guard) -> None:
        """Attach ``guard`` to ``store`` and keep the epoch moving until :meth:`release`."""
        _guards[guard.token] = guard
        store.set_epoch_deadline(1)
        set_epoch_callback(store, _on_deadline, guard.token, _forget)
        with self._cond:
            self._active += 1
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
            self._active -= 1
            if self._active == 0:
                self._idle_since = time.monotonic()
            if self._stopped:
                self._cond.notify()
