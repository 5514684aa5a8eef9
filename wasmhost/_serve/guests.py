"""Running guests for an event loop without holding it up: :class:`GuestPool`.

A guest runs on one of the pool's threads (wasmtime releases the GIL while
wasm runs). Handing every request to a thread and back through the event
loop costs more than a small guest itself: the loop must be woken through
its self-pipe, and the two threads trade the GIL twice. So the loop first
waits for the guest's thread itself, for up to ``INLINE_WAIT``: a guest that
answers within that time (a hello handler takes ~0.1 ms) comes back as a
plain function call would, and the GIL passes straight between the two
threads. A guest still running after that is awaited like any future, and
the loop serves other requests meanwhile. A slow, sleeping or spinning guest
therefore holds up its worker's loop for at most ``INLINE_WAIT``.

At most ``threads`` guests run at once; up to ``backlog`` more wait for a
thread, and past that :meth:`GuestPool.run` refuses at once (:class:`Busy`).
Once the pool is stopped (:meth:`GuestPool.stop`, when the server shuts
down), a guest waiting for a thread is not started (:class:`Stopped`).

A guest that runs on for more than a moment (50 ms, see ``wasmhost._host.engines.watchdog``)
is moved to the lowest CPU priority (nice 19, per thread on Linux): a guest
spinning for seconds then takes the CPU only when the event loops do not
want it. Only its wasm code runs so: the Python code around a run takes the
GIL, and a thread starved of CPU while it holds the GIL would hold up every
thread of the process (nice 19 for whole runs measured a worse p99 than no
nice at all). Afterwards the thread goes back to its priority, or, where
lowering nice again needs a privilege the process lacks, it ends and the
pool starts another.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .._host.engines import watchdog

T = TypeVar("T")

INLINE_WAIT = 0.002
_NICE = 19


class Busy(Exception):
    """Every thread of the pool is running a guest and the backlog is full."""


class Stopped(Exception):
    """The pool was stopped before this guest started."""


class _Job(Generic[T]):
    __slots__ = ("done", "error", "func", "future", "lock", "loop", "value")

    def __init__(self, func: Callable[[], T]) -> None:
        self.func = func
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future[None] | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class GuestPool:
    """Threads that run guests for one event loop; see the module docstring."""

    def __init__(self, threads: int, backlog: int) -> None:
        self.threads = threads
        self.backlog = backlog
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._pending = 0  # jobs submitted and not finished
        self._lock = threading.Lock()
        self._stopped = False

    async def run(self, func: Callable[[], T], *, wait: bool = True) -> T:
        """``func()`` on a pool thread; raises :class:`Busy` when the pool is full.

        With ``wait=False`` the loop does not wait for it inline at all (for a
        guest known to be slow). Raises :class:`Stopped` once the pool is stopped.
        """
        if self._stopped:
            raise Stopped
        with self._lock:
            if self._pending >= self.threads + self.backlog:
                raise Busy
            idle = self._pending < len(self._workers)
            self._pending += 1
            if not idle and len(self._workers) < self.threads:
                self._start_worker()
                idle = True
        job: _Job[T] = _Job(func)
        self._jobs.put(job)
        if wait and idle and job.done.wait(INLINE_WAIT):
            return job.outcome()
        loop = asyncio.get_running_loop()
        with job.lock:
            if not job.done.is_set():
                job.loop = loop
                job.future = loop.create_future()
        if job.future is not None:
            await asyncio.shield(job.future)
        return job.outcome()

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._work, name="wasmhost-guest", daemon=True)
        self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        me = threading.get_native_id()
        base: int | None = None  # the priority to go back to, once lowered

        def lower() -> None:
            nonlocal base
            with contextlib.suppress(AttributeError, OSError):  # Linux: nice is per thread
                was = os.getpriority(os.PRIO_PROCESS, me)
                os.setpriority(os.PRIO_PROCESS, me, _NICE)
                base = was if was != _NICE else None

        watchdog.on_long_run(lower)
        while (job := self._jobs.get()) is not None:
            try:
                if self._stopped:
                    raise Stopped
                job.value = job.func()
            except BaseException as exc:  # handed to the awaiting request
                job.error = exc
            with self._lock:
                self._pending -= 1
            with job.lock:
                job.done.set()
                future, loop = job.future, job.loop
            if future is not None and loop is not None:
                # A closed loop raises RuntimeError: nobody awaits the answer any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, future)
            if base is not None:
                try:
                    os.setpriority(os.PRIO_PROCESS, me, base)
                    base = None
                except OSError:  # raising priority needs a privilege: make way for a new thread
                    with self._lock:
                        if threading.current_thread() in self._workers:
                            self._workers.remove(threading.current_thread())
                    return

    def stop(self) -> None:
        """Start no more guests: those waiting for a thread, and any asked for later,
        end in :class:`Stopped`. Those running carry on (stop them through their
        ``cancel`` event). Takes no lock: a signal handler may call it."""
        self._stopped = True

    def close(self) -> None:
        """Let the threads finish the guests they run, and end them."""
        with self._lock:
            workers, self._workers = self._workers, []
        for _ in workers:
            self._jobs.put(None)
        for worker in workers:
            worker.join()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class InlineGate:
    """Which requests of one route may first run on the event loop's thread.

    A guest tried there and found slow (it overran its inline budget) is
    started again on the pool; this remembers what was learnt, so that the
    loop pays for few such tries:

    - a path whose guest was fast lately (up to ``FAST_PATHS`` of them, the
      most recent) is always tried inline, until it overruns twice in a row
      (once can be a hiccup: the thread preempted on a busy machine);
    - any other path is tried inline only while the route is not *slow*: an
      overrun makes it slow for ``SLOW_FOR`` seconds, twice as long after
      each further overrun (up to ``SLOW_MAX``), and back to ``SLOW_FOR``
      only once ``SLOW_MAX`` seconds pass without one.

    So a client cannot keep the loop busy with first tries by making up
    paths, and steady slow traffic costs one try per ``SLOW_MAX`` at most.
    """

    FAST_PATHS = 64
    SLOW_FOR = 1.0
    SLOW_MAX = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # fast path: whether its last inline run overran
        self._fast: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self._slow_until = 0.0
        self._slow_for = self.SLOW_FOR
        self._last_overrun = -float("inf")

    def inline(self, path: str) -> bool:
        """Whether to try ``path`` on the loop's thread first."""
        return path in self._fast or self._clock() >= self._slow_until

    def fast(self, path: str) -> None:
        """``path``'s guest ran inline within its budget."""
        self._fast[path] = False
        self._fast.move_to_end(path)
        if len(self._fast) > self.FAST_PATHS:
            self._fast.popitem(last=False)

    def slow(self, path: str) -> None:
        """``path``'s guest overran its inline budget."""
        if self._fast.get(path) is False:
            self._fast[path] = True  # its first miss: a hiccup, or a warning
            return
        self._fast.pop(path, None)
        now = self._clock()
        if now - self._last_overrun > self.SLOW_MAX:
            self._slow_for = self.SLOW_FOR  # a quiet spell: start over
        self._last_overrun = now
        self._slow_until = now + self._slow_for
        self._slow_for = min(self._slow_for * 2, self.SLOW_MAX)
