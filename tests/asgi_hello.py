"""A plain ASGI hello app: the baseline `nox -s bench` serves beside wasmhost's WAGI app."""

from __future__ import annotations

from typing import Any

BODY = b"Hello, World!\n"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
