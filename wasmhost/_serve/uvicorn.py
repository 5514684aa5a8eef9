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
- a connection cap: past ``max_connections`` open connections, a new one
  closes the connection idle longest (one with no request running: silent,
  kept alive, or sending a head), so idle sockets cannot shut new clients
  out; when every connection has a request running, the new one is
  answered 503 with ``Retry-After`` and closed. (uvicorn's
  ``limit_concurrency`` answers 503 to requests past its limit but keeps
  every idle connection, and the descriptor it holds.)

Build one with :func:`bounded_protocol`.
"""

from __future__ import annotations

import functools
import heapq
from asyncio import TimerHandle, Transport
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD = 64 << 10
HEAD_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5.0  # uvicorn's default
MAX_CONNECTIONS = 1000

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


def bounded_protocol(*, head_timeout: float, max_connections: int) -> Any:
    """The protocol factory to give uvicorn as ``http=`` (a partial: it pickles,
    so ``--workers`` processes get it too)."""
    return functools.partial(
        BoundedHttpToolsProtocol, head_timeout=head_timeout, max_connections=max_connections
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the bounds of the module docstring."""

    def __init__(
        self,
        *args: Any,
        head_timeout: float = HEAD_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._head = 0  # bytes received since the current request's head began
        self._in_head = True
        self._head_timeout = head_timeout
        self._head_timer: TimerHandle | None = None
        self._max_connections = max_connections
        self._idle_since = 0.0  # when the last response ended, or the connection opened

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        if len(self.connections) > self._max_connections and not self._make_room():
            self.logger.warning("Every connection has a request running; answered 503.")
            transport.write(_BUSY)
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

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

    def _make_room(self) -> bool:
        """Close the connections idle longest, to keep within the cap with this one;
        False if too few are idle (every other connection has a request running)."""
        others = [c for c in self.connections if c is not self and not c.transport.is_closing()]
        excess = len(others) + 1 - self._max_connections
        if excess <= 0:
            return True
        idle = [c for c in others if isinstance(c, BoundedHttpToolsProtocol) and c._idle()]
        if len(idle) < excess:
            return False
        for connection in heapq.nsmallest(excess, idle, key=lambda c: c._idle_since):
            connection.transport.close()
        return True

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
