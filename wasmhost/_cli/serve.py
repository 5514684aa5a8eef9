"""``wasmhost serve MODULE`` or ``wasmhost serve --config modules.toml``."""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._numbers import check_seconds
from .errors import reported, require
from .params import (
    COUNT,
    DIR,
    DIR_HELP,
    DURATION,
    ENV,
    MEMORY_SIZE,
    SERVER_DURATION,
    SIZE,
    WHOLE_NUMBER,
    examples,
)
from .registry import ProgressBar, registry_options


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (like 127.0.0.1:8080).", ctx, param)
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command(
    short_help="Serve WAGI modules over HTTP.",
    epilog=examples(
        "wasmhost serve artifacts/http-server.wasm",
        "wasmhost serve --listen 0.0.0.0:8080 --workers 2 artifacts/http-server.wasm",
    ),
)
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    callback=_listen,
    help="The address to listen on.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A WAGI-style modules.toml with several routes (instead of MODULE).",
)
@click.option("--dir", "dirs", type=DIR, multiple=True, help=f"{DIR_HELP} For MODULE.")
@click.option("--env", "envs", type=ENV, multiple=True, help="NAME=VALUE or NAME, for MODULE.")
@click.option("--timeout", type=DURATION, default=30.0, show_default=True, help="Per request.")
@click.option(
    "--max-memory",
    type=MEMORY_SIZE,
    default="256MiB",
    show_default=True,
    help="Cap each instance's linear memory, and its tables as much again; past it the "
    "client gets 500.",
)
@click.option(
    "--max-body", type=SIZE, default="10MiB", show_default=True, help="Largest request body."
)
@click.option(
    "--max-response",
    type=SIZE,
    default="4MiB",
    show_default=True,
    help="Largest response a guest may write; past it the client gets 502.",
)
@click.option(
    "--body-timeout",
    type=SERVER_DURATION,
    default=30.0,
    show_default=True,
    help="How long a request body may take to arrive (408 after).",
)
@click.option(
    "--head-timeout",
    type=SERVER_DURATION,
    default=10.0,
    show_default=True,
    help="How long a connection may take to send a request's line and headers "
    "(closed after, with 408 if part of them came).",
)
@click.option(
    "--keep-alive-timeout",
    type=SERVER_DURATION,
    default=5.0,
    show_default=True,
    help="How long a connection may stay idle after a response.",
)
@click.option(
    "--write-timeout",
    type=SERVER_DURATION,
    default=30.0,
    show_default=True,
    help="How long a client may take none of its answer before its connection is dropped.",
)
@click.option(
    "--max-connections",
    type=COUNT,
    help="Open connections in each process; past it a new one drops the one that has waited "
    "on its client longest (idle for at least 1 s, or stalled sending a body), or gets 503.",
    show_default="1000, or half the open-file limit",
)
@click.option(
    "--workers",
    type=COUNT,
    default=os.cpu_count() or 1,
    show_default="the number of cores",
    help="Server processes.",
)
@click.option(
    "--threads",
    type=COUNT,
    default=8,
    show_default=True,
    help="Guests that may run at once in each process.",
)
@click.option(
    "--backlog",
    type=WHOLE_NUMBER,
    show_default="8 x --threads",
    help="Requests that may wait for a guest thread in each process; past that a request "
    "gets 503 with Retry-After.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No access log: warnings, errors and the line 'Listening on http://HOST:PORT' only.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="For registry references: use the copies pulled before, without the registry.",
)
@registry_options(credentials=False, downloads=True)
@click.argument("module", required=False)
def serve(
    listen: tuple[str, int],
    config: Path | None,
    dirs: tuple[tuple[str, Any], ...],
    envs: tuple[tuple[str, str | None], ...],
    timeout: float,
    max_memory: int,
    max_body: int,
    max_response: int,
    body_timeout: float,
    head_timeout: float,
    keep_alive_timeout: float,
    write_timeout: float,
    max_connections: int | None,
    workers: int,
    threads: int,
    backlog: int | None,
    quiet: bool,
    offline: bool,
    connect: Callable[..., Any],
    module: str | None,
) -> None:
    """Serve MODULE (a file or registry reference) as a WAGI handler on every path.

    Each request runs in a fresh instance of the module, compiled once: the
    request in CGI variables and stdin, the response from stdout. Needs the
    'serve' extra: pip install '.[serve]' in the wasmhost folder (or
    pip install 'uvicorn[standard]').
    """
    # uvicorn[standard]: the bounded protocol (see _serve.uvicorn) is built on httptools.
    require(("uvicorn", "httptools"), "serve", "wasmhost serve")
    from .._oci.reference import looks_like_reference
    from .._serve.app import SPEC_VARIABLE, Route, WagiApp, load_config

    if (module is None) == (config is None):
        raise click.UsageError("give MODULE or --config, not both or neither.")
    with reported():
        check_seconds("head_timeout", head_timeout, 1e6)
        check_seconds("keep_alive_timeout", keep_alive_timeout, 1e6)
        check_seconds("write_timeout", write_timeout, 1e6)
        if config is not None:
            routes = load_config(config)
        else:
            assert module is not None
            env = {name: value for name, value in envs if value is not None}
            routes = [Route("/...", module, env, dict(dirs))]
        resolved = []
        for route in routes:
            if not os.path.exists(route.module) and looks_like_reference(route.module):
                with connect() as registry, ProgressBar("Pulling", quiet) as bar:
                    fetched = registry.fetch(route.module, offline=offline, progress=bar)
                    route = route._replace(module=str(fetched.path), name=route.module)
            elif getattr(connect, "verifying", False):
                raise click.UsageError(
                    f"--verify-key checks modules from a registry; {route.module} is a local "
                    "file (every route must come from a registry)."
                )
            resolved.append(route)
        # Built here once, in this process, so that a bad module fails before listening;
        # with --workers, each worker builds its own from app.config.
        app = WagiApp(
            resolved,
            timeout=timeout,
            max_memory=max_memory,
            max_body=max_body,
            max_response=max_response,
            body_timeout=body_timeout,
            threads=threads,
            backlog=backlog,
        )

    _check_free(*listen)
    import uvicorn

    from .._serve.uvicorn import Server, Supervisor, bounded_protocol, default_max_connections

    if max_connections is None:
        max_connections = default_max_connections(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s:     %(message)s",
        stream=sys.stderr,
    )
    options: dict[str, Any] = {
        "host": listen[0],
        "port": listen[1],
        "access_log": not quiet,
        "log_level": "warning" if quiet else "info",
        "server_header": False,
        "http": bounded_protocol(
            head_timeout=head_timeout, max_connections=max_connections, write_timeout=write_timeout
        ),
        "timeout_keep_alive": keep_alive_timeout,
        # No WebSockets: an Upgrade header is ignored (RFC 9110, 7.8) and the guest
        # answers over HTTP/1.1; with them, uvicorn would hand WagiApp a handshake.
        "ws": "none",
    }
    if workers == 1:
        settings = uvicorn.Config(app, **options)
        sock = _bind(settings, quiet)
        server = Server(settings, app)
        server.run(sockets=[sock])
        _exit_for(server.exit_signal)
        return
    app.close()
    os.environ[SPEC_VARIABLE] = app.config.to_json()
    settings = uvicorn.Config(
        "wasmhost._serve.uvicorn:worker_app", factory=True, workers=workers, **options
    )
    supervisor = Supervisor(settings, sockets=[_bind(settings, quiet)])
    supervisor.run()
    _exit_for(supervisor.exit_signal)


def _bind(settings: Any, quiet: bool) -> Any:
    """The listening socket (uvicorn logs where it listens); with ``-q``, that line
    still, on stderr: ``Listening on http://HOST:PORT``, the port it got for port 0."""
    sock = settings.bind_socket()
    if quiet:
        host, port = sock.getsockname()[:2]
        click.echo(f"Listening on http://{f'[{host}]' if ':' in host else host}:{port}", err=True)
    return sock


def _exit_for(signum: int | None) -> None:
    """End as the signal that shut the server down would: Ctrl-C's status (130), or
    the shell's for SIGTERM (143)."""
    import signal

    if signum == signal.SIGINT:
        raise click.Abort
    if signum is not None:
        raise SystemExit(128 + signum)


def _check_free(host: str, port: int) -> None:
    """Refuse, in one line, an address that cannot be listened on (uvicorn would end
    with its own log line and status 3). A port taken between this check and
    uvicorn's own bind still ends uvicorn's way."""
    if port == 0:
        return
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.UsageError(
            f"cannot listen on {host}:{port}: {reason}; pick another --listen address."
        ) from None
