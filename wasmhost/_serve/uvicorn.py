"""uvicorn's HTTP protocol with a bound on a request's head, for ``wasmhost serve``.

uvicorn's httptools protocol (the fast one, and the default with
``uvicorn[standard]``) keeps a request line and headers of any size while
they arrive. h11 has a bound but costs ~15 % of the hello service's
throughput; this keeps httptools and refuses a head past ``MAX_HEAD`` bytes
with 431, closing the connection. It counts what arrives while the head is
incomplete, so the parser holds at most ``MAX_HEAD`` plus one read (asyncio
reads up to 256 KiB at a time).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD = 64 << 10

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\nconnection: close\r\n\r\n"
    b"Request Header Fields Too Large\n"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol refusing a request line and headers over MAX_HEAD bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head = 0  # bytes received since the current request's head began
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head += len(data)
        super().data_received(data)
        # Still in the head after this piece (a body that came with it does
        # not count): the parser holds at most MAX_HEAD plus one read.
        if self._in_head and self._head > MAX_HEAD:
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
