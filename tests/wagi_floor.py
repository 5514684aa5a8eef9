"""The floor `nox -s bench` serves beside `wasmhost serve`: a WAGI app on bare wasmtime-py.

Each request gets what a WAGI handler needs and nothing more, through
wasmtime-py's public API only: a fresh WasiConfig (argv, the CGI
environment, stdout and stderr to a pipe), Store and instance of a module
compiled once, and its ``_start`` called. No memory cap, timeout, output
bound, cancellation, body or header bounds, logging or thread hand-off: what
``wasmhost serve`` adds to a request is what the rows' ratios measure.
The CGI environment, the arguments and the reading of the response are wasmhost's
own (small functions, a few microseconds), so that both apps give the guest
the same input and answer alike (``tests/test_serve.py`` checks that they do).

The module is ``WAGI_FLOOR_MODULE`` (http-server.wasm if unset).
``WAGI_FLOOR=capi`` runs the same steps below wasmtime-py's wrappers, through
the C API by ctypes (its own handle on the library, so wasmtime-py's
bindings are left as they are) on a pooled engine; ``WAGI_FLOOR=capi-capped``
does so with serve's default memory cap (256 MiB) made as wasmhost makes it
(its memory creator, which rules out the pool). They measure how far any
Python host of a fresh instance per request could go:
``WAGI_FLOOR=capi python -m uvicorn --app-dir tests --workers 2 wagi_floor:app``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable
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


def _read_output() -> bytes:
    try:
        return os.read(_read, 1 << 20)
    except BlockingIOError:
        return b""


def run_wasmtime_py(args: list[str], env: dict[str, str]) -> bytes:
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
    return _read_output()


def _capi_runner(capped: bool) -> Callable[[list[str], dict[str, str]], bytes]:
    """The same run through the C API, on an engine of its own (pooled, or capped)."""
    from wasmtime import _bindings, _ffi

    from wasmhost._host.engines.capi import use_pooling_allocator
    from wasmhost._host.engines.memory import MemoryWatch, use_watched_memories

    config = wasmtime.Config()
    if capped:
        use_watched_memories(config)
    else:
        use_pooling_allocator(
            config, instances=16, slots=16, table_elements=10_000, per_component=1
        )
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    pre = linker.instantiate_pre(wasmtime.Module.from_file(engine, MODULE))
    library = ctypes.CDLL(_ffi.dll._name)
    pointer, size, flag = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_bool

    def c(name: str, result: Any, *args: Any) -> Any:
        function = getattr(library, name)
        function.restype, function.argtypes = result, list(args)
        return function

    config_new = c("wasi_config_new", pointer)
    set_argv = c("wasi_config_set_argv", flag, pointer, size, pointer)
    set_env = c("wasi_config_set_env", flag, pointer, size, pointer, pointer)
    set_stdout = c("wasi_config_set_stdout_file", flag, pointer, ctypes.c_char_p)
    set_stderr = c("wasi_config_set_stderr_file", flag, pointer, ctypes.c_char_p)
    store_new = c("wasmtime_store_new", pointer, pointer, pointer, pointer)
    store_context = c("wasmtime_store_context", pointer, pointer)
    set_wasi = c("wasmtime_context_set_wasi", pointer, pointer, pointer)
    instantiate = c(
        "wasmtime_instance_pre_instantiate", pointer, pointer, pointer, pointer, pointer
    )
    export_get = c(
        "wasmtime_instance_export_get", flag, pointer, pointer, ctypes.c_char_p, size, pointer
    )
    call = c("wasmtime_func_call", pointer, pointer, pointer, pointer, size, pointer, size, pointer)
    error_delete = c("wasmtime_error_delete", None, pointer)
    store_delete = c("wasmtime_store_delete", None, pointer)
    engine_pointer = ctypes.cast(engine.ptr(), pointer)
    pre_pointer = ctypes.cast(pre.ptr(), pointer)
    output = _OUTPUT.encode()

    def strings(items: list[str]) -> Any:
        return (ctypes.c_char_p * len(items))(*(item.encode() for item in items))

    def run(args: list[str], env: dict[str, str], _alive: Any = (engine, pre)) -> bytes:
        # (``_alive``: the raw pointers below are theirs.)
        wasi = config_new()
        set_argv(wasi, len(args) + 1, strings([_ARGV0, *args]))
        set_env(wasi, len(env), strings(list(env)), strings(list(env.values())))
        set_stdout(wasi, output)
        set_stderr(wasi, output)
        store = store_new(engine_pointer, None, None)
        context = store_context(store)
        try:
            error = set_wasi(context, wasi)
            assert not error
            instance, trap = _bindings.wasmtime_instance_t(), ctypes.c_void_p()
            with MemoryWatch(256 << 20) if capped else contextlib.nullcontext():
                error = instantiate(
                    pre_pointer, context, ctypes.byref(instance), ctypes.byref(trap)
                )
                assert not error, "the module did not instantiate"
                assert not trap.value, "the module trapped as it started"
                item = _bindings.wasmtime_extern_t()
                found = export_get(
                    context, ctypes.byref(instance), b"_start", 6, ctypes.byref(item)
                )
                assert found, "the module has no _start"
                func = ctypes.byref(item.of.func)
                error = call(context, func, None, 0, None, 0, ctypes.byref(trap))
            if error:  # its exit (a status)
                error_delete(error)
            assert not trap.value, "the module trapped"
        finally:
            store_delete(store)
        return _read_output()

    return run


_FLOOR = os.environ.get("WAGI_FLOOR", "wasmtime-py")
if _FLOOR == "wasmtime-py":
    run = run_wasmtime_py
elif _FLOOR in ("capi", "capi-capped"):
    run = _capi_runner(capped=_FLOOR == "capi-capped")
else:
    raise SystemExit(f"WAGI_FLOOR={_FLOOR!r}: wasmtime-py, capi or capi-capped")


def make_app(run: Callable[[list[str], dict[str, str]], bytes]) -> Any:
    """The ASGI app that answers every request with ``run``."""

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

    return app


app = make_app(run)
