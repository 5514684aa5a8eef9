"""WASI's ``poll_oneoff``, as a sleep that a timeout or cancellation can cut short.

wasmtime's own ``poll_oneoff`` blocks the calling thread for as long as the
guest asked (``std::thread::sleep`` in Rust, ``nanosleep`` in C), and epoch
interruption only reaches code running in wasm: a guest asleep would outsleep
any timeout. The engines that run with a timeout or cancel event therefore
get this one in place of wasmtime's.

A poll of clock subscriptions only (every sleep, relative or until a deadline
on either clock) waits on the run's :class:`~wasmhost.watchdog.Guard`
instead, and is woken when the guard trips; then the guest traps and the run
reports why it stopped. A deadline on the guest's monotonic clock is measured
against that clock's own reading (wasmtime's ``clock_time_get``: it starts
with the run's WASI context, not with the host's). A poll that also waits on
file descriptors is answered by wasmtime's own implementation, as WASI
defines it (files and output streams are always ready, so it returns at once;
a pipe or terminal on stdin may block until input comes).
"""

from __future__ import annotations

import struct
import time
from typing import Protocol

import wasmtime

from . import watchdog

# userdata, tag, clock id, timeout, precision, flags
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")
_TIME = struct.Struct("<Q")
_EVENT = struct.Struct("<QHBx4xQH6x")  # userdata, error, type, nbytes, flags
_CLOCK = 0
_REALTIME, _MONOTONIC = 0, 1
_ABSTIME = 1
_EINVAL = 28
# A poll is answered here under the GIL: a guest may not make it walk millions
# of subscriptions. No real program polls this many clocks at once.
_MAX_SUBSCRIPTIONS = 1024
_LONGEST_WAIT = 3600.0


class Calls(Protocol):
    """What a poll is given by ``wasi`` (its ``Calls``): the caller, the guest's memory,
    and wasmtime's own WASI functions by name."""

    caller: wasmtime.Caller

    @property
    def memory(self) -> wasmtime.Memory: ...

    def __call__(self, name: str, *args: int) -> int: ...


class _Delegate(Exception):
    """This poll is for wasmtime's own implementation."""


def poll_oneoff(call: Calls, subs: int, out: int, count: int, nout: int) -> int:
    """WASI's ``poll_oneoff``: a sleep on the run's guard, or wasmtime's answer."""
    guard = watchdog.current()
    if guard is not None:
        try:
            return _sleep(call, guard, subs, out, count, nout)
        except _Delegate:
            pass
    return call("poll_oneoff", subs, out, count, nout)


def _sleep(
    call: Calls,
    guard: watchdog.Guard,
    subs: int,
    out: int,
    count: int,
    nout: int,
) -> int:
    caller, memory = call.caller, call.memory
    size = memory.data_len(caller)
    end = subs + count * _SUBSCRIPTION.size
    if count == 0 or end > size or out + count * _EVENT.size > size or nout + 4 > size:
        raise _Delegate  # wasmtime's answer: EINVAL, or a trap for memory out of bounds
    if count > _MAX_SUBSCRIPTIONS:
        return _EINVAL
    raw = bytes(memory.read(caller, subs, end))
    now = time.monotonic()
    clocks: list[tuple[float, int]] = []
    guest_now: int | None = None
    read_at = now
    for i in range(count):
        userdata, tag, clock, timeout, _precision, flags = _SUBSCRIPTION.unpack_from(
            raw, i * _SUBSCRIPTION.size
        )
        if tag != _CLOCK:
            raise _Delegate
        if clock == _MONOTONIC and flags & _ABSTIME:
            # The guest's monotonic clock starts with its WASI context: its
            # "now" is asked of wasmtime (written where the events go later).
            if guest_now is None:
                if call("clock_time_get", _MONOTONIC, 1, out) != 0:
                    raise _Delegate
                (guest_now,) = _TIME.unpack(bytes(memory.read(caller, out, out + 8)))
                # Our clock read after the guest's: waking early is impossible,
                # even when asking the guest's clock took a while.
                read_at = time.monotonic()
            wait = (timeout - guest_now) / 1e9 + (read_at - now)
        elif clock == _REALTIME and flags & _ABSTIME:
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
        # In slices: a wait past threading.TIMEOUT_MAX (a guest asking for
        # 2**64-1 ns, Rust's Duration::MAX) would raise instead of sleeping.
        guard.stopped.wait(min(max(until - now, 0.0005), _LONGEST_WAIT))
    if guard.reason is not None:
        raise wasmtime.Trap(f"wasmhost: {guard.reason}")
    events = [userdata for deadline, userdata in clocks if deadline <= now]
    data = b"".join(_EVENT.pack(userdata, 0, _CLOCK, 0, 0) for userdata in events)
    memory.write(caller, data, out)
    memory.write(caller, struct.pack("<I", len(events)), nout)
    return 0
