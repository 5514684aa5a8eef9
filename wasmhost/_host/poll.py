"""WASI's ``poll_oneoff``, as a sleep that a timeout or cancellation can cut short.

wasmtime's own ``poll_oneoff`` blocks the calling thread for as long as the
guest asked (``std::thread::sleep`` in Rust, ``nanosleep`` in C), and epoch
interruption only reaches code running in wasm: a guest asleep would outsleep
any timeout. The engines that run with a timeout or cancel event therefore
get this one in place of wasmtime's.

A poll of clock subscriptions only (every sleep) waits on the run's
:class:`~wasmhost.watchdog.Guard` instead, and is woken when the guard
trips; then the guest traps and the run reports why it stopped. A poll that
also waits on file descriptors is answered by wasmtime's own implementation,
as WASI defines it (files and output streams are always ready; a pipe or
terminal on stdin may block until input comes).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from . import watchdog

WASI = "wasi_snapshot_preview1"
# userdata, tag, clock id, timeout, precision, flags
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")
_EVENT = struct.Struct("<QHBx4xQH6x")  # userdata, error, type, nbytes, flags
_CLOCK = 0
_REALTIME, _MONOTONIC = 0, 1
_ABSTIME = 1
_EINVAL = 28
# A poll is answered here under the GIL: a guest may not make it walk millions
# of subscriptions. No real program polls this many clocks at once.
_MAX_SUBSCRIPTIONS = 1024


class _Delegate(Exception):
    """This poll is for wasmtime's own implementation."""


# wasmtime's WASI functions read the memory their caller exports, so a host
# function cannot call them directly: it calls them through this module,
# which exports the guest's memory as its own.
_TRAMPOLINE = """
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory 0))
  (export "memory" (memory 0))
  (func (export "poll_oneoff") (param i32 i32 i32 i32) (result i32)
    (call $poll (local.get 0) (local.get 1) (local.get 2) (local.get 3))))
"""


def trampoline(engine: wasmtime.Engine) -> wasmtime.Module:
    """The helper module :func:`install` needs, compiled for ``engine`` (once per engine)."""
    return wasmtime.Module(engine, bytes(wasmtime.wat2wasm(_TRAMPOLINE)))


def install(
    linker: wasmtime.Linker, engine: wasmtime.Engine, helper: Callable[[], wasmtime.Module]
) -> None:
    """Put the interruptible ``poll_oneoff`` in ``linker`` (which already has WASI).

    ``helper()`` returns :func:`trampoline` for ``engine``; it is asked for
    only when a poll goes to wasmtime.
    """

    def poll_oneoff(caller: wasmtime.Caller, subs: int, out: int, count: int, nout: int) -> int:
        guard = watchdog.current()
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise wasmtime.Trap("poll_oneoff: the guest exports no memory")
        if guard is not None:
            try:
                return _sleep(caller, memory, guard, subs, out, count, nout)
            except _Delegate:
                pass
        wasi_poll = guard.saved.get("wasi_poll") if guard is not None else None
        if wasi_poll is None:  # once per run: a store keeps every instance made in it
            wasi = wasmtime.Linker(engine)
            wasi.define_wasi()
            wasi.define(caller, "env", "memory", memory)
            wasi_poll = wasi.instantiate(caller, helper()).exports(caller)["poll_oneoff"]
            if guard is not None:
                guard.saved["wasi_poll"] = wasi_poll
        assert isinstance(wasi_poll, wasmtime.Func)
        result: Any = wasi_poll(caller, subs, out, count, nout)
        return int(result)

    i32 = wasmtime.ValType.i32()
    ty = wasmtime.FuncType([i32, i32, i32, i32], [i32])  # a type is bound to its engine
    linker.allow_shadowing = True
    linker.define_func(WASI, "poll_oneoff", ty, poll_oneoff, access_caller=True)
    linker.allow_shadowing = False


def _sleep(
    caller: wasmtime.Caller,
    memory: wasmtime.Memory,
    guard: watchdog.Guard,
    subs: int,
    out: int,
    count: int,
    nout: int,
) -> int:
    size = memory.data_len(caller)
    end = subs + count * _SUBSCRIPTION.size
    if count == 0 or end > size or out + count * _EVENT.size > size or nout + 4 > size:
        raise _Delegate  # wasmtime's answer: EINVAL, or a trap for memory out of bounds
    if count > _MAX_SUBSCRIPTIONS:
        return _EINVAL
    raw = bytes(memory.read(caller, subs, end))
    now = time.monotonic()
    clocks: list[tuple[float, int]] = []
    for i in range(count):
        userdata, tag, clock, timeout, _precision, flags = _SUBSCRIPTION.unpack_from(
            raw, i * _SUBSCRIPTION.size
        )
        if tag != _CLOCK:
            raise _Delegate
        if clock == _MONOTONIC and flags & _ABSTIME:
            # The guest's monotonic clock starts with its WASI context; we do
            # not know that origin exactly, so wasmtime answers this one.
            raise _Delegate
        if clock == _REALTIME and flags & _ABSTIME:
            wait = (timeout - time.time_ns()) / 1e9
        elif clock in (_REALTIME, _MONOTONIC):
            wait = timeout / 1e9
        else:
            return _EINVAL
        clocks.append((now + max(wait, 0.0), userdata))
    wake = min(deadline for deadline, _ in clocks)
    # Also wake at the run's own deadline, rather than a tick after it.
    until = wake if guard.deadline is None else min(wake, guard.deadline)
    while guard.check() is None and (now := time.monotonic()) < wake:
        guard.stopped.wait(max(until - now, 0.0005))
    if guard.reason is not None:
        raise wasmtime.Trap(f"wasmhost: {guard.reason}")
    events = [userdata for deadline, userdata in clocks if deadline <= now]
    data = b"".join(_EVENT.pack(userdata, 0, _CLOCK, 0, 0) for userdata in events)
    memory.write(caller, data, out)
    memory.write(caller, struct.pack("<I", len(events)), nout)
    return 0
