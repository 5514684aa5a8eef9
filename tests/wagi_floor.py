"""The floor `nox -s bench` serves beside `wasmhost serve`: a WAGI app on bare wasmtime-py.

Each request gets what a WAGI handler needs and nothing more, through
wasmtime-py's public API only: a fresh WasiConfig (argv, the CGI
environment, stdout and stderr to a pipe), Store and instance of a module
compiled once, and its ``_start`` called. No memory cap, timeout, output
bound, cancellation, body or header bounds, logging or thread hand-off: what
``wasmhost serve`` adds to a request is what the two rows' ratio measures.
The CGI environment, the arguments and the reading of the response are wasmhost's
own (small functions, a few microseconds), so that both apps give the guest
the same input and answer alike (``tests/test_serve.py`` checks that they do).

The module is ``WAGI_FLOOR_MODULE`` (http-server.wasm if unset).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import wasmtime

from wasmhost._serve.wagi import Request, arguments, environment, parse_response

MODULE = os.environ.get(
    "WAGI_FLOOR_MODULE", str(Path(__file__).parent.parent / "artifacts" / "http-server.wasm")
)

_engine = wasmtime.Engine()
_linker = wasmtime.Linker(_engine)
_linker.define_wasi()
_pre = _linker.instantiate_pre(wasmtime.Module.from_file(_engine, MODULE))
_read, _write = os.pipe()
os.set_blocking(_read, False)
_OUTPUT = f"/proc/self/fd/{_write}"
_ARGV0 = os.path.basename(MODULE)


def run(args: list[str], env: dict[str, str]) -> bytes:
    """One fresh instance of the module run with ``args`` and ``env``: what it wrote to
    stdout and stderr (a hello handler writes far less than a pipe holds)."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = [_ARGV0, *args]
    wasi.env = list(env.items())
    wasi.stdout_file = _OUTPUT
    wasi.stderr_file = _OUTPUT
    store = wasmtime.Store(_engine)
    store.set_wasi(wasi)
    try:
        start = _pre.instantiate(store).exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
    except wasmtime.ExitTrap:
        pass
    finally:
        store.close()
    try:
        return os.read(_read, 1 << 20)
    except BlockingIOError:
        return b""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    query = scope["query_string"].decode("latin-1")
    request = Request(
        method=scope["method"],
        script_name="",
        path_info=scope["path"],
        query_string=query,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        client=scope.get("client"),
        server=scope.get("server"),
        scheme=scope.get("scheme", "http"),
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        content_length=0,
    )
    status, headers, body = parse_response(run(arguments(query), environment(request, "/...")))
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
