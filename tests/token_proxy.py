"""A registry front that wants Bearer tokens, as Docker Hub and ghcr.io do.

Debian's docker-registry can only check tokens signed by a token server with
its own certificates; this small real HTTP server plays both parts instead:
``/token`` hands out a token for valid Basic credentials (and refuses
anonymous requests), and every ``/v2/`` request with a valid token is
passed on to a real registry behind it. Tokens are not tied to a scope.
"""

from __future__ import annotations

import base64
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx


class TokenProxy:
    def __init__(self, upstream: str, user: str, password: str) -> None:
        self.upstream = upstream
        self.tokens: set[str] = set()
        self.token_requests: list[dict[str, list[str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_token(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                proxy.token_requests.append(query)
                expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = secrets.token_hex(16)
                proxy.tokens.add(token)
                body = f'{{"token": "{token}", "access_token": "{token}"}}'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle_any(self) -> None:
                if self.path.startswith("/token"):
                    self.do_token()
                    return
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in proxy.tokens:
                    self.send_response(401)
                    self.send_header(
                        "WWW-Authenticate",
                        f'Bearer realm="http://{proxy.host}/token",service="wasmhost-test",'
                        'scope="repository:any:pull,push"',
                    )
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("authorization", "host", "content-length", "connection")
                }
                answer = httpx.request(
                    self.command,
                    f"http://{proxy.upstream}{self.path}",
                    headers=headers,
                    content=body,
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() in ("content-length", "transfer-encoding", "connection"):
                        continue
                    if key.lower() == "location":
                        value = value.replace(proxy.upstream, proxy.host)
                    self.send_header(key, value)
                payload = answer.content if self.command != "HEAD" else b""
                length_header = answer.headers.get("Content-Length", str(len(payload)))
                self.send_header(
                    "Content-Length", length_header if self.command == "HEAD" else str(len(payload))
                )
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        # Port 0: the server takes a free port itself, with no window for a race.
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
