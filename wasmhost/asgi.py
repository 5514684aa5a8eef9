"""WAGI handlers as an ASGI application: :class:`WagiApp`.

Every request gets a fresh, isolated instance of a module compiled once::

    from wasmhost.asgi import Route, WagiApp
    app = WagiApp([Route("/...", "artifacts/http-server.wasm")])

Run it under any ASGI server (``uvicorn module:app``), or mount it in a
Starlette or FastAPI application (``app.mount("/wasm", wagi_app)``).
``wasmhost serve`` does the former. The implementation, and what each
answer means, is in ``wasmhost._serve.app``.
"""

from __future__ import annotations

from ._serve.app import Receive, Route, Scope, Send, ServeConfig, WagiApp, load_config

__all__ = ["Receive", "Route", "Scope", "Send", "ServeConfig", "WagiApp", "load_config"]
