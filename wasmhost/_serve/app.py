"""WAGI handlers as an ASGI application: :class:`WagiApp` (public as ``wasmhost.asgi``).

Every request gets a fresh, isolated instance of a module compiled once::

    from wasmhost.asgi import Route, WagiApp
    app = WagiApp([Route("/...", "artifacts/http-server.wasm")])

Run it under any ASGI server (``uvicorn module:app``), or mount it in a
Starlette or FastAPI application (``app.mount("/wasm", wagi_app)``).
``wasmhost serve`` does the former.

A guest that traps, runs past its timeout or its memory cap (``max_memory``,
256 MiB unless given; None lifts it) answers 500
(details go to the ``wasmhost.serve`` log, never to the client); output that
is not a CGI response, or more of it than ``max_response``, answers 502; a
body over ``max_body`` answers 413, and one that does not arrive within
``body_timeout`` 408; more than ``MAX_HEADERS`` request headers answer 431;
a request that finds every guest slot and the backlog busy answers 503 with
``Retry-After``, and so does every request once the app is stopped
(:meth:`WagiApp.stop`, or the ASGI lifespan's shutdown), the requests whose
guests it cancelled included; a NUL in the path or query, which WASI cannot pass, 400.
A guest's ``Date`` header is dropped for the server's. A WebSocket handshake
is refused (the server answers 403). Log lines write control characters as
``\\xNN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from .._errors import (
    ConfigError,
    GuestError,
    Interrupted,
    OutputLimitExceeded,
    TimeoutExceeded,
    WasmhostError,
)
from .._files import MAX_CONFIG, read_regular
from .._host.host import DEFAULT_MAX_CACHED_MODULES, Host, check_limits
from .._host.result import RunResult
from .._host.running.run import Dir, DirSource, as_dir
from .._host.values.module import Module
from .._numbers import check_seconds, check_whole, parse_size
from .._paths import module_file_name
from .._text import wasi_environment
from .guests import Busy, GuestPool, InlineGate, Stopped
from .wagi import (
    MalformedResponse,
    Request,
    arguments,
    environment,
    parse_response,
    split_route,
)

log = logging.getLogger("wasmhost.serve")


class _EscapeControl(logging.Filter):
    """Control characters in what a log line quotes (a client's path, a guest's
    message) written as ``\\xNN``: a decoded ``%0a`` in a path cannot start a
    forged line, nor an escape sequence drive the terminal that shows the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _escape_control(str(a)) if isinstance(a, str | BaseException) else a
                for a in record.args
            )
        return True


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape_control(text: str) -> str:
    """``text`` with C0 and C1 control characters and DEL as ``\\xNN``."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


log.addFilter(_EscapeControl())

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_TIMEOUT = 30.0
# Every guest is capped, so that one request cannot take the server's memory:
# WAGI handlers need a few MiB, and 8 threads x 256 MiB (the worst case of one
# worker process, all touched at once) is 2 GiB.
DEFAULT_MAX_MEMORY = 256 << 20
DEFAULT_MAX_BODY = 10 << 20
DEFAULT_MAX_RESPONSE = 4 << 20
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_THREADS = 8
MAX_HEADERS = 100
# Where `wasmhost serve --workers N` puts its ServeConfig for the worker processes.
SPEC_VARIABLE = "WASMHOST_SERVE_SPEC"
# How long a guest may run on the event loop's thread before it is moved.
INLINE_BUDGET = 0.002
# Statuses whose responses never have a body (RFC 9110, 6.4.1).
_NO_BODY = {204, 304}


class Route(NamedTuple):
    """One route: ``path`` (exact, or ``/prefix/...`` for everything below), the
    module (a path or, in a config file, a registry reference), what the guest
    gets besides the request, and the ``name`` that logs and errors give the
    module (default: its path; ``wasmhost serve`` names a pulled module by its
    reference, and its guests get the file name a pull gives as argv[0]), and
    ``max_memory``, this route's cap on a guest's memory instead of the app's."""

    path: str
    module: str
    env: Mapping[str, str] = {}
    dirs: Mapping[str, DirSource] = {}
    name: str | None = None
    max_memory: int | None = None


class _Loaded(NamedTuple):
    route: Route
    module: Module
    # Set when nothing the guest does outlives its run except its answer (no
    # writable directory): such a run can be stopped and started again elsewhere.
    gate: InlineGate | None
    argv0: str | None  # for a route named by a reference: the file name a pull gives
    max_memory: int | None


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """What a :class:`WagiApp` serves and within which bounds, as one value: its routes
    and the keyword arguments of :class:`WagiApp` but ``host``, with the same defaults.

    A WagiApp keeps its own as ``config``. ``wasmhost serve`` builds it once, from
    its options (as its app's); with ``--workers`` each worker process gets it as
    JSON (:meth:`to_json`, :meth:`from_json`) and builds its app from it
    (:meth:`WagiApp.from_config`).
    """

    routes: tuple[Route, ...]
    timeout: float = DEFAULT_TIMEOUT
    max_memory: int | None = DEFAULT_MAX_MEMORY
    max_body: int = DEFAULT_MAX_BODY
    max_response: int = DEFAULT_MAX_RESPONSE
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    threads: int = DEFAULT_THREADS
    backlog: int | None = None

    def to_json(self) -> str:
        """The config as JSON text (a directory as its path and whether it is read-only)."""
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["routes"] = [
            {
                **route._asdict(),
                "env": dict(route.env),
                "dirs": {guest: _dir_json(source) for guest, source in route.dirs.items()},
            }
            for route in self.routes
        ]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """The config that :meth:`to_json` wrote."""
        data = json.loads(text)
        routes = tuple(
            Route(**{**route, "dirs": {g: Dir(h, ro) for g, (h, ro) in route["dirs"].items()}})
            for route in data.pop("routes")
        )
        return cls(routes=routes, **data)


def _dir_json(source: DirSource) -> tuple[str, bool]:
    folder = as_dir(source)
    return os.fspath(folder.path), folder.read_only


class WagiApp:
    """An ASGI application serving WAGI modules; see the module docstring.

    Guests run on a pool of ``threads`` threads (see ``wasmhost._serve.guests``):
    a fast guest answers as if it ran on the event loop, while a slow,
    sleeping or spinning one holds up no other request for more than a few
    milliseconds. At most ``threads`` guests run at once; up to ``backlog``
    more requests (by default 8 times as many) wait for a thread, and past
    that a request is answered 503 at once.

    :meth:`stop` (called on the ASGI lifespan's shutdown, and by
    ``wasmhost serve`` on SIGINT or SIGTERM) cancels the guests running and
    answers 503 to every request from then on, so that a server shutting
    down need not wait for guests that run until their timeout.
    """

    def __init__(
        self,
        routes: Sequence[Route] | str | os.PathLike[str],
        *,
        host: Host | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        max_body: int = DEFAULT_MAX_BODY,
        max_response: int = DEFAULT_MAX_RESPONSE,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        threads: int = DEFAULT_THREADS,
        backlog: int | None = None,
    ) -> None:
        if isinstance(routes, str | os.PathLike):
            routes = [Route("/...", os.fspath(routes))]
        config = ServeConfig(
            routes=tuple(routes),
            timeout=timeout,
            max_memory=max_memory,
            max_body=max_body,
            max_response=max_response,
            body_timeout=body_timeout,
            threads=threads,
            backlog=backlog,
        )
        self._start(config, host)

    @classmethod
    def from_config(cls, config: ServeConfig, *, host: Host | None = None) -> WagiApp:
        """The app ``config`` describes (``WagiApp(routes, **options)`` is the same)."""
        app = cls.__new__(cls)
        app._start(config, host)
        return app

    def _start(self, config: ServeConfig, host: Host | None) -> None:
        self.config = config
        routes, timeout, max_memory = config.routes, config.timeout, config.max_memory
        threads, backlog, body_timeout = config.threads, config.backlog, config.body_timeout
        if not routes:
            raise ConfigError("a WAGI app needs at least one route.")
        check_whole("threads", threads, 0, 8192, "up to 8192")
        check_whole("backlog", backlog, 0, 8192, "up to 8192")
        if threads == 0:
            raise ConfigError("threads must be at least 1.")
        if timeout is None:  # every request is bounded: the pool and the gate rely on it
            raise ConfigError("timeout must be a positive number of seconds, not None.")
        check_limits(timeout, None, max_memory, config.max_response)
        if body_timeout is None:
            raise ConfigError("body_timeout must be a positive number of seconds, not None.")
        check_seconds("body_timeout", body_timeout, 1e6)
        self._own_host = host is None
        # Its own host keeps every route's module compiled, however many there are.
        self.host = host or Host(max_cached_modules=max(DEFAULT_MAX_CACHED_MODULES, len(routes)))
        self.timeout = timeout
        self.max_memory = max_memory
        self.max_body = config.max_body
        self.max_response = config.max_response
        self.body_timeout = body_timeout
        self._pool = GuestPool(threads, 8 * threads if backlog is None else backlog)
        self._cancel = threading.Event()  # every guest's: set by stop()
        loaded = []
        for route in routes:
            _check_route(route.path)
            cap = max_memory if route.max_memory is None else route.max_memory
            check_limits(None, None, cap, None)
            # What every request would fail on (a value inherited from this process
            # that is not UTF-8, say) fails here, before anything listens.
            wasi_environment(route.env)
            for source in route.dirs.values():
                folder = os.fspath(as_dir(source).path)
                if not os.path.isdir(folder):
                    raise ConfigError(
                        f"route {route.path}: host directory {folder} does not exist."
                    )
            # Compiled now, for the engine its requests run on; a module importing
            # what no guest is given fails here, before anything listens.
            module = self.host.load(
                route.module,
                name=route.name,
                timeout=timeout,
                max_memory=cap,
                unknown_imports="error",
            )
            if module.kind == "component":
                # A component asleep in WASI's poll outlives its deadline (see
                # _host.component), and guests first run on the event loop: one
                # could hold every request up. WAGI handlers are preview-1 modules.
                raise ConfigError(
                    f"route {route.path}: {module.name} is a WASI preview-2 component; "
                    "WAGI handlers are preview-1 modules (wasm32-wasi)."
                )
            restartable = all(as_dir(d).read_only for d in route.dirs.values())
            gate = InlineGate() if restartable and timeout > INLINE_BUDGET else None
            argv0 = module_file_name(route.name) if route.name else None
            loaded.append(_Loaded(route, module, gate, argv0, cap))
        # The most specific route first: exact before wildcard, longer before shorter.
        self._routes = sorted(
            loaded, key=lambda r: (r.route.path.endswith("/..."), -len(r.route.path))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.stop)
            return
        if scope["type"] == "websocket":
            # Closed before it is accepted: the server answers the handshake 403.
            # (``wasmhost serve`` runs uvicorn without WebSockets: an Upgrade header
            # is ignored there, as RFC 9110, 7.8 allows, and the guest answers.)
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        status, headers, body = await self._respond(scope, receive)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if status in _NO_BODY:
            body = b""  # a body here would be read as the next response on the connection
        else:
            raw.append((b"content-length", str(len(body)).encode()))
        if scope["method"] == "HEAD":
            body = b""  # the length stays: it is the one a GET would get
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _respond(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        args = arguments(query)
        if "\0" in path or any("\0" in arg for arg in args):
            # WASI cannot pass a NUL in a variable or an argument; every other
            # character reaches the guest as the client sent it.
            return _plain(400, "Bad Request")
        # Mounted under a prefix (Starlette's Mount, uvicorn's --root-path): routes
        # are matched below it, and SCRIPT_NAME keeps it. Servers differ on
        # whether ``path`` repeats it.
        root = scope.get("root_path", "").rstrip("/")
        if root and (path == root or path.startswith(root + "/")):
            path = path[len(root) :] or "/"
        for loaded in self._routes:
            parts = split_route(path, loaded.route.path)
            if parts is not None:
                break
        else:
            return _plain(404, "Not Found")
        if len(scope["headers"]) > MAX_HEADERS:
            return _plain(431, "Request Header Fields Too Large")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        declared = next((v for k, v in headers if k.lower() == "content-length"), None)
        if declared is not None and (
            not declared.isascii() or not declared.isdigit() or int(declared) > self.max_body
        ):
            return _plain(413, "Payload Too Large")
        reading = _read_body(receive, self.max_body)
        has_body = (declared is not None and declared != "0") or any(
            k.lower() == "transfer-encoding" for k, _ in headers
        )
        try:
            # Only a request that has a body gets a timer (it costs a task).
            body = await (asyncio.wait_for(reading, self.body_timeout) if has_body else reading)
        except asyncio.TimeoutError:
            log.warning("%s %s: the request body did not arrive in time", scope["method"], path)
            return _plain(408, "Request Timeout", [("connection", "close")])
        if body is None:
            return _plain(413, "Payload Too Large")
        if body is _GONE:
            return _plain(400, "Client Disconnected")  # nobody reads it; the guest is not run
        request = Request(
            method=scope["method"],
            script_name=root + parts[0],
            path_info=parts[1],
            query_string=query,
            headers=headers,
            client=scope.get("client"),
            server=scope.get("server"),
            scheme=scope.get("scheme", "http"),
            protocol=f"HTTP/{scope.get('http_version', '1.1')}",
            content_length=len(body),
        )
        route = loaded.route
        env = {**environment(request, route.path), **route.env}
        run = functools.partial(
            self.host.run,
            loaded.module,
            args,
            env=env,
            stdin=body,
            dirs=route.dirs,
            argv0=loaded.argv0,
            max_memory=loaded.max_memory,
            max_output=self.max_response,
            cancel=self._cancel,
        )
        try:
            result = await self._run(run, loaded, path)
        except Busy:
            log.warning("%s %s: every guest slot is busy; answered 503", scope["method"], path)
            return _plain(503, "Service Unavailable", [("retry-after", "1")])
        except (Stopped, Interrupted):  # Interrupted: its guest was cancelled by stop()
            log.info("%s %s: the server is shutting down; answered 503", scope["method"], path)
            return _plain(
                503, "Service Unavailable", [("retry-after", "1"), ("connection", "close")]
            )
        except OutputLimitExceeded as exc:
            log.error("%s %s: %s", scope["method"], path, exc)
            return _plain(502, "Bad Gateway")
        except GuestError as exc:
            log.error("%s %s: %s", scope["method"], path, exc)
            if exc.stderr:
                log.error("guest stderr: %s", exc.stderr[-2000:].decode("utf-8", "replace"))
            return _plain(500, "Internal Server Error")
        except WasmhostError as exc:
            log.error("%s %s: %s", scope["method"], path, exc)
            return _plain(500, "Internal Server Error")
        if result.stderr:
            log.info(
                "%s %s: guest stderr: %s",
                scope["method"],
                path,
                result.stderr[-2000:].decode("utf-8", "replace").rstrip(),
            )
        try:
            status, response_headers, response_body = parse_response(result.stdout)
        except MalformedResponse as exc:
            log.error(
                "%s %s: %s answered no CGI response: %s",
                scope["method"],
                path,
                loaded.module.name,
                exc,
            )
            return _plain(502, "Bad Gateway")
        if result.exit_code != 0:
            log.warning(
                "%s %s: %s exited with %d",
                scope["method"],
                path,
                loaded.module.name,
                result.exit_code,
            )
        return status, response_headers, response_body

    async def _run(self, run: Callable[..., RunResult], loaded: _Loaded, path: str) -> RunResult:
        """Run a guest without holding up the event loop for more than a moment.

        A restartable guest may first run right here, on the loop's thread,
        for at most ``INLINE_BUDGET``: most handlers are done well within
        it, at no hand-off cost. One that is not is stopped and run again
        from the start on the pool (see ``wasmhost._serve.guests``); the route's
        :class:`~wasmhost._serve.guests.InlineGate` decides, from what it has
        seen, which requests are tried inline. A guest that can write to a
        directory is never run twice: it goes to the pool at once.
        """
        if self._cancel.is_set():
            raise Stopped
        gate = loaded.gate
        if gate is not None and gate.inline(path):
            try:
                result = run(timeout=INLINE_BUDGET)
            except TimeoutExceeded:
                gate.slow(path)
            else:
                gate.fast(path)
                return result
        # The whole timeout again: a run moved here took at most INLINE_BUDGET more.
        # A restartable guest that gets here overran, or its route lately did:
        # the loop does not wait for it inline either.
        return await self._pool.run(functools.partial(run, timeout=self.timeout), wait=gate is None)

    def stop(self) -> None:
        """Cancel the guests running now (their clients get 503), and answer 503 to
        every request from now on. For a server shutting down: it waits for the
        requests in flight, and a guest would otherwise run until its timeout.

        Safe from another thread or a signal handler (it takes no lock the
        event loop's thread holds), and to call again; :meth:`close` is still
        needed to end the threads."""
        if not self._cancel.is_set():
            self._cancel.set()
        self._pool.stop()

    def close(self) -> None:
        """Stop the thread pool, and the host if this app made it."""
        self._pool.close()
        if self._own_host:
            self.host.close()


def _check_route(path: str) -> None:
    if not path.startswith("/"):
        raise ConfigError(f"route {path!r} must start with '/'.")


def _plain(
    status: int, text: str, extra: Sequence[tuple[str, str]] = ()
) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [("content-type", "text/plain; charset=utf-8"), *extra]
    return status, headers, f"{text}\n".encode()


_GONE = b"\0gone"


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body; None once it passes ``limit`` bytes; _GONE if the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _GONE
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send, stop: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


def load_config(path: str | os.PathLike[str]) -> list[Route]:
    """Routes from a WAGI-style ``modules.toml``.

    ::

        [[module]]
        route = "/hello"                       # or "/static/..." for a prefix
        module = "artifacts/http-server.wasm"  # or a registry reference
        environment = { GREETING = "hi" }
        volumes = { "/data" = "./data" }       # guest path = host directory
        max_memory = "64MiB"                   # instead of the app's cap

    Relative paths are relative to the file's folder. Any other key, at the top
    or in a ``[[module]]``, is an error that names it (a misspelt key would
    otherwise be ignored).
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    where = Path(path)
    try:
        data = tomllib.loads(read_regular(where, MAX_CONFIG).decode())
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{where} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}.") from None
    _check_keys(data, ("module",), f"{where}:", "it holds [[module]] tables only")
    entries = data.get("module")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where} has no [[module]] entries.")
    routes = []
    for i, entry in enumerate(entries, 1):
        if isinstance(entry, dict):
            keys = f"the keys are {', '.join(_MODULE_KEYS)}"
            _check_keys(entry, _MODULE_KEYS, f"{where}: [[module]] number {i}:", keys)
        if not isinstance(entry, dict) or not isinstance(entry.get("module"), str):
            raise ConfigError(f'{where}: [[module]] number {i} has no module = "...".')
        route = entry.get("route", "/...")
        env = entry.get("environment", {})
        volumes = entry.get("volumes", {})
        if not isinstance(route, str) or not isinstance(env, dict) or not isinstance(volumes, dict):
            raise ConfigError(
                f"{where}: [[module]] number {i} has a route, environment or "
                "volumes of the wrong type."
            )
        env = {str(k): str(v) for k, v in env.items()}
        volumes = {str(k): str(v) for k, v in volumes.items()}
        # Neither a path nor a WASI variable can hold a NUL: said here, naming the
        # file, rather than by whatever first trips over it.
        texts = [("route", route), ("module", entry["module"])]
        texts += [("environment", text) for pair in env.items() for text in pair]
        texts += [("volumes", text) for pair in volumes.items() for text in pair]
        for what, text in texts:
            if "\0" in text:
                raise ConfigError(f"{where}: [[module]] number {i} has a NUL character in {what}.")
        for name in env:
            if not name or "=" in name:
                raise ConfigError(
                    f"{where}: [[module]] number {i} has the environment name {name!r}; "
                    "a name is not empty and has no '='."
                )
        cap = entry.get("max_memory")
        if cap is not None:
            with contextlib.suppress(ValueError):  # still text: refused below
                cap = parse_size(cap) if isinstance(cap, str) else cap
            if not isinstance(cap, int) or isinstance(cap, bool):
                raise ConfigError(
                    f"{where}: [[module]] number {i} has max_memory = "
                    f'{entry["max_memory"]!r}; give a size like "64MiB".'
                )
        module = entry["module"]
        if not os.path.isabs(module) and (where.parent / module).exists():
            module = str(where.parent / module)
        dirs = {
            guest: Dir(str(where.parent / host) if not os.path.isabs(host) else host)
            for guest, host in volumes.items()
        }
        routes.append(Route(route, module, env, dirs, max_memory=cap))
    return routes


_MODULE_KEYS = ("route", "module", "environment", "volumes", "max_memory")


def _check_keys(table: Mapping[str, object], known: Sequence[str], where: str, keys: str) -> None:
    """A ConfigError naming the first key of ``table`` not in ``known``, and the
    known key it is closest to, if one is close; ``keys`` says which are known."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where} unknown key {key!r}{hint}; {keys}.")


def app_from_environment() -> WagiApp:
    """The app ``wasmhost serve --workers N`` starts in each worker (its config in the
    environment, as ``WASMHOST_SERVE_SPEC``)."""
    return WagiApp.from_config(ServeConfig.from_json(os.environ[SPEC_VARIABLE]))
