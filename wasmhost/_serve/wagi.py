"""WAGI: CGI 1.1 over WASI, as deislabs/wagi defined it.

The request goes to the guest as environment variables (``REQUEST_METHOD``,
``PATH_INFO``, ``QUERY_STRING``, ``HTTP_*``...), the body as stdin and the
query's ``&``-separated parts as arguments; the response comes back on
stdout as CGI headers (``Content-Type``, ``Status``, ``Location``...), a
blank line and the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import unquote_plus

SERVER_SOFTWARE = "wasmhost-wagi"


class Request(NamedTuple):
    """The parts of an HTTP request that a WAGI handler sees."""

    method: str
    script_name: str
    path_info: str
    query_string: str
    headers: Iterable[tuple[str, str]]
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    scheme: str = "http"
    protocol: str = "HTTP/1.1"
    content_length: int = 0


class Response(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MalformedResponse(Exception):
    """The guest's stdout is not a CGI response (said why in the message)."""


def environment(request: Request, route: str) -> dict[str, str]:
    """The CGI variables of ``request`` (plus WAGI's ``X_*`` ones) for a guest."""
    server_name, server_port = request.server or ("localhost", 80)
    client_addr, _ = request.client or ("", 0)
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "SERVER_PROTOCOL": request.protocol,
        "SERVER_NAME": str(server_name),
        "SERVER_PORT": str(server_port),
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": request.script_name,
        "PATH_INFO": request.path_info,
        "PATH_TRANSLATED": request.path_info,
        "QUERY_STRING": request.query_string,
        "REMOTE_ADDR": client_addr,
        "REMOTE_HOST": client_addr,
        "REMOTE_USER": "",
        "AUTH_TYPE": "",
        "CONTENT_LENGTH": str(request.content_length),
        "CONTENT_TYPE": "",
        "X_MATCHED_ROUTE": route,
        "X_RAW_PATH_INFO": request.path_info,
    }
    host_header = ""
    for name, value in request.headers:
        lower = name.lower()
        if lower == "content-type":
            env["CONTENT_TYPE"] = value
            continue
        if lower in ("content-length", "authorization", "proxy-authorization"):
            # The length is CONTENT_LENGTH; credentials are not the guest's business
            # (CGI servers withhold them too).
            continue
        if lower == "host":
            host_header = value
        if "_" in name:
            # X_Foo would become HTTP_X_FOO, as X-Foo does: a client could pass
            # off its own header as one a proxy in front of us sets.
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        env[key] = f"{env[key]}, {value}" if key in env else value
    path = request.script_name + request.path_info
    query = f"?{request.query_string}" if request.query_string else ""
    env["X_FULL_URL"] = f"{request.scheme}://{host_header or server_name}{path}{query}"
    return env


def arguments(query_string: str) -> list[str]:
    """The guest's arguments after argv[0]: the query's ``&``-separated parts, decoded."""
    return [unquote_plus(part) for part in query_string.split("&") if part]


# The server frames the response itself: a guest's framing headers could
# contradict it (a wrong length, a chunked body that is not) or split it.
_FRAMING = {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"}
# The origin server's clock dates a response (RFC 9110, 6.6.1), and ASGI servers
# add their own Date: a guest's would make two, telling different clocks.
_SERVER_OWNED = _FRAMING | {"date"}
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_STATUS = re.compile(r"[0-9]{3}")


def parse_response(output: bytes) -> Response:
    """Read CGI headers, a blank line and the body from a guest's stdout."""
    blank = _BLANK_LINE.search(output)
    if blank is None:
        raise MalformedResponse("no blank line after the headers")
    head, body = output[: blank.start()], output[blank.end() :]
    status = 200
    located = False
    headers: list[tuple[str, str]] = []
    for raw in head.replace(b"\r\n", b"\n").split(b"\n"):
        name, colon, value = raw.partition(b":")
        value = value.strip(b" \t")
        if not colon or not _TOKEN.match(name):
            raise MalformedResponse(f"header line {raw[:60]!r} is not NAME: VALUE")
        if _CONTROL.search(value):
            raise MalformedResponse(f"header {name[:60]!r} has control characters in its value")
        key, text = name.decode("ascii"), value.decode("latin-1")
        lower = key.lower()
        if lower == "status":
            code = text.split(" ", 1)[0]
            if not _STATUS.fullmatch(code) or not 200 <= int(code) <= 599:
                raise MalformedResponse(f"status {text!r} is not an HTTP status from 200 to 599")
            status = int(code)
            continue
        if lower in _SERVER_OWNED:
            continue
        if lower == "location":
            located = True
        headers.append((key, text))
    if located and status == 200:
        status = 302
    if not headers and status == 200:
        raise MalformedResponse("no Content-Type, Location or Status header")
    return Response(status, headers, body)


def split_route(path: str, route: str) -> tuple[str, str] | None:
    """(SCRIPT_NAME, PATH_INFO) if ``path`` matches ``route``; None if it does not.

    A route matches exactly, or with a ``/...`` suffix matches itself and
    everything below it (WAGI's wildcard).
    """
    if route.endswith("/..."):
        prefix = route[: -len("/...")]
        if path == prefix or path.startswith(prefix + "/") or prefix == "":
            return prefix, path[len(prefix) :]
        return None
    return (route, "") if path == route else None
