"""A registry that lies: a real HTTP server answering each path as a test scripts it.

Used where the real registry cannot be made to misbehave (wrong digests,
foreign Location headers, malformed JSON, silence).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes]


class Hostile:
    """``routes`` maps "METHOD /path" (or "/path" for any method) to an answer: a
    (status, headers, body) tuple, or a callable given the request handler that
    returns one, or None after answering on ``handler.wfile`` itself."""

    def __init__(self, routes: dict[str, Answer | Callable[[Any], Answer | None]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?")[0]
                hostile.seen.append((self.command, self.path, dict(self.headers)))
                answer = hostile.routes.get(f"{self.command} {path}") or hostile.routes.get(
                    path, (404, {}, b'{"errors": [{"message": "unknown"}]}')
                )
                if callable(answer):
                    answer = answer(self)
                    if answer is None:
                        return
                status, headers, body = answer
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ask_for_a_token(self, path: str, token: str = "t") -> None:
        """Answer ``path`` with a Bearer challenge whose realm is this server's /token,
        which hands out ``token`` to whoever asks."""
        self.routes[path] = (
            401,
            {"WWW-Authenticate": f'Bearer realm="http://{self.host}/token",service="s"'},
            b"{}",
        )
        self.routes["/token"] = (200, {}, b'{"token": "%s"}' % token.encode())

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
