"""uvicorn's HTTP protocol with bounds on request heads and connections, for ``wasmhost serve``.

uvicorn's httptools protocol (the fast one, and the default with
``uvicorn[standard]``) keeps a request line and headers of any size while
they arrive, for as long as they take, and accepts every connection. h11 has
a size bound but costs ~15 % of the hello service's throughput; this keeps
httptools and adds:

- a size bound: a head past ``MAX_HEAD`` bytes is refused with 431 and the
  connection closed. It counts what arrives while the head is incomplete,
  so the parser holds at most ``MAX_HEAD`` plus one read (asyncio reads up
  to 256 KiB at a time);
- a time bound: a connection that has not sent a whole head ``head_timeout``
  seconds after it opened, or after a head began, is closed (with 408 if
  part of a head came). uvicorn's own ``timeout_keep_alive`` closes a
  connection idle after a response;
- a write bound: a connection whose client takes nothing of what it was sent
  for ``write_timeout`` seconds (its transport paused for writing, or closed
  with data left in its buffer) is aborted. uvicorn hands a whole response
  to the transport; a client that never reads would otherwise hold it, and
  the socket, for ever (a close waits for the buffer to drain). On shutdown,
  connections still waiting on their client are aborted after
  ``SHUTDOWN_GRACE`` seconds (or ``write_timeout`` if shorter);
- a connection cap: past ``max_connections`` open connections (closing ones
  count until they are gone), a new one aborts the connection that has
  waited on its client longest: one with no request running (silent, kept
  alive, sending a head, or closing), or one whose request body has stalled
  (no byte of it for ``EVICT_GRACE``). A connection is never evicted in its
  first ``EVICT_GRACE`` seconds of waiting, so clients opening connections
  fast cannot close one whose request is on its way. So idle sockets cannot
  shut new clients out; when no connection can be evicted, the new one is
  answered 503 with ``Retry-After`` and closed. (uvicorn's
  ``limit_concurrency`` answers 503 to requests past its limit but keeps
  every idle connection, and the descriptor it holds.)

Build one with :func:`bounded_protocol`.

Shutting down (SIGINT or SIGTERM), uvicorn waits for the requests in flight;
:class:`Server` and :class:`Supervisor` (for ``--workers``) first stop the
app's guests (:meth:`~wasmhost._serve.app.WagiApp.stop`), so that it need not
wait for a guest spinning until its timeout, and remember the signal for the
exit status. A second signal during the shutdown is not needed.
"""

from __future__ import annotations

import functools
import heapq
import signal
import threading
from asyncio import TimerHandle, Transport
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from .app import WagiApp, app_from_environment

MAX_HEAD = 64 << 10
HEAD_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5.0  # uvicorn's default
MAX_CONNECTIONS = 1000
WRITE_TIMEOUT = 30.0
EVICT_GRACE = 1.0  # seconds a connection waits on its client before it may be evicted
SHUTDOWN_GRACE = 5.0

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\nconnection: close\r\n\r\n"
    b"Request Header Fields Too Large\n"
)
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\n"
    b"Request Timeout\n"
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 20\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    b"Service Unavailable\n"
)


def default_max_connections(open_files: int) -> int:
    """``MAX_CONNECTIONS``, or half of a process's descriptor limit if that is lower
    (guests and the server need descriptors of their own)."""
    return max(1, min(MAX_CONNECTIONS, open_files // 2))


def bounded_protocol(
    *, head_timeout: float, max_connections: int, write_timeout: float = WRITE_TIMEOUT
) -> Any:
    """The protocol factory to give uvicorn as ``http=`` (a partial: it pickles,
    so ``--workers`` processes get it too)."""
    return functools.partial(
        BoundedHttpToolsProtocol,
        head_timeout=head_timeout,
        max_connections=max_connections,
        write_timeout=write_timeout,
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the bounds of the module docstring."""

    def __init__(
        self,
        *args: Any,
        head_timeout: float = HEAD_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        write_timeout: float = WRITE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._head = 0  # bytes received since the current request's head began
        self._in_head = True
        self._head_timeout = head_timeout
        self._head_timer: TimerHandle | None = None
        self._max_connections = max_connections
        self._idle_since = 0.0  # when the last response ended, or the connection opened
        self._body_since = 0.0  # when the last byte of a request body came, or its head
        self._write_timeout = write_timeout
        self._write_timer: TimerHandle | None = None
        self._stalled_since: float | None = None  # since when the client takes nothing
        self._shutdown_timer: TimerHandle | None = None
        self._aborted = False

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._watch_writes()
        if len(self.connections) > self._max_connections and not self._make_room():
            self.logger.warning("No connection can make way for a new one; answered 503.")
            transport.write(_BUSY)
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        for timer in (self._write_timer, self._shutdown_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled_since is None:
            self._stalled_since = self.loop.time()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stalled_since = None

    def shutdown(self) -> None:
        super().shutdown()
        grace = min(SHUTDOWN_GRACE, self._write_timeout)
        self._shutdown_timer = self.loop.call_later(grace, self._shutdown_timed_out)

    def on_body(self, body: bytes) -> None:
        self._body_since = self.loop.time()
        super().on_body(body)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head += len(data)
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        # Still in the head after this piece (a body that came with it does
        # not count): the parser holds at most MAX_HEAD plus one read.
        if self._head > MAX_HEAD:
            self.transport.write(_TOO_LARGE)
            self.transport.close()
        elif self._head:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head = 0
        self._body_since = self.loop.time()
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()

    def _unsupported_upgrade_warning(self) -> None:
        # serve runs uvicorn without WebSockets: an Upgrade header is ignored and the
        # request answered over HTTP/1.1 (RFC 9110, 7.8). That is no cause for a
        # warning per request, nor for uvicorn's advice to install a WebSocket library.
        pass

    def _idle(self) -> bool:
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _waiting_since(self) -> float | None:
        """Since when this connection has waited on its client (see the module
        docstring), or None if it has a request running that waits on no one else."""
        if self._idle() or self.transport.is_closing():
            return self._idle_since
        if (
            self.cycle is not None
            and self.cycle.more_body
            and not self.pipeline
            and not self.flow.read_paused  # held back by the app, not by the client
        ):
            return self._body_since
        return None

    def _make_room(self) -> bool:
        """Abort the connections that have waited on their clients longest, to keep
        within the cap with this one; False if too few may be evicted."""
        others = [c for c in self.connections if c is not self and not getattr(c, "_aborted", 0)]
        excess = len(others) + 1 - self._max_connections
        if excess <= 0:
            return True
        now = self.loop.time()
        waiting: list[tuple[float, BoundedHttpToolsProtocol]] = []
        for c in others:
            since = c._waiting_since() if isinstance(c, BoundedHttpToolsProtocol) else None
            if since is not None and now - since >= EVICT_GRACE:
                assert isinstance(c, BoundedHttpToolsProtocol)
                waiting.append((since, c))
        if len(waiting) < excess:
            return False
        for _, connection in heapq.nsmallest(excess, waiting, key=lambda pair: pair[0]):
            connection._abort()
        return True

    def _abort(self) -> None:
        """Drop the connection now, with whatever its buffer holds (a close would wait
        for a client that may never read)."""
        self._aborted = True
        self.transport.abort()

    def _watch_writes(self) -> None:
        """Abort the connection once its client has taken nothing for write_timeout
        (checked every half of it): its transport paused for writing and not resumed,
        or closing with data left to send."""
        now = self.loop.time()
        if self.transport.is_closing() and self._stalled_since is None:
            self._stalled_since = now
        if self._stalled_since is not None and now - self._stalled_since >= self._write_timeout:
            self._write_timer = None
            self._abort()
            return
        self._write_timer = self.loop.call_later(self._write_timeout / 2, self._watch_writes)

    def _shutdown_timed_out(self) -> None:
        self._shutdown_timer = None
        if self.flow.write_paused or self.transport.is_closing():
            self._abort()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._idle():
            # The next head of a pipelined request, behind a response still running:
            # uvicorn's keep-alive timeout takes over once that response is sent.
            self._arm_head_timer()
            return
        if self._head:
            self.transport.write(_TIMED_OUT)
        self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server for one :class:`WagiApp`, whose exit signals stop the app's
    guests first; ``exit_signal`` is the first such signal (uvicorn's own would raise
    it again once it has shut down)."""

    def __init__(self, config: uvicorn.Config, app: WagiApp) -> None:
        super().__init__(config)
        self._app = app
        self.exit_signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.stop()
        if self.exit_signal is None:
            self.exit_signal = sig
        # uvicorn's handler, but for the signals it keeps to raise again.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


class Supervisor(Multiprocess):
    """uvicorn's supervisor of ``--workers`` processes; ``exit_signal`` is the first
    SIGINT or SIGTERM it got. (Each worker stops its guests: see :func:`worker_app`.)"""

    exit_signal: int | None = None

    def handle_int(self) -> None:
        self.exit_signal = self.exit_signal or signal.SIGINT
        super().handle_int()

    def handle_term(self) -> None:
        self.exit_signal = self.exit_signal or signal.SIGTERM
        super().handle_term()


def worker_app() -> WagiApp:
    """The app of a ``--workers`` process (from ``WASMHOST_SERVE_SPEC``), whose
    SIGINT and SIGTERM stop its guests before uvicorn's handler shuts the server down.

    uvicorn builds it once its server has set its signal handlers (and it puts
    back the ones before once it has shut down)."""
    app = app_from_environment()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if callable(handler):
                signal.signal(sig, functools.partial(_stop_first, app, handler))
    return app


def _stop_first(app: WagiApp, handler: Any, sig: int, frame: FrameType | None) -> None:
    app.stop()
    handler(sig, frame)
