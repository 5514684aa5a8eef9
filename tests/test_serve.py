"""`wasmhost serve` and `wasmhost.asgi`: a real uvicorn server, a real HTTP client."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import wasmtime
from conftest import HELLO, HTTP, printer, wasmhost_cli
from registry import Registry, listening_port

from wasmhost import ConfigError, LinkError, RegistryClient
from wasmhost._serve.wagi import MalformedResponse, parse_response, split_route
from wasmhost.asgi import Route, WagiApp, load_config

pytestmark = pytest.mark.server  # starts HTTP servers (uvicorn, scripted registries)


class Server:
    """`wasmhost serve ARGS` on a free port, until stop()."""

    def __init__(
        self, *args: str | os.PathLike[str], workers: int = 1, own_group: bool = False
    ) -> None:
        self.log_path = Path(tempfile.mkdtemp(prefix="wasmhost-serve-")) / "server.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wasmhost",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                str(workers),
                *map(str, args),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,  # a group of its own, to signal as a terminal does
        )
        port = listening_port(self.process)
        if port is None:
            self.stop()
            raise RuntimeError(f"wasmhost serve did not start:\n{self.output()}")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/", timeout=2)
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"wasmhost serve did not start:\n{self.output()}") from None
                time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server("--timeout", "2", "--max-memory", "16MiB", "--max-body", "1KiB", HTTP)
    yield s
    s.stop()


def test_hello_world_as_curl_sees_it(server: Server) -> None:
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "Hello, World!\n"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["content-length"] == "14"


def test_method_query_and_body_reach_the_guest(server: Server) -> None:
    response = httpx.post(server.url + "/echo?a=1&b=two", content=b"the body")
    assert response.text == "method=POST\nquery=a=1&b=two\nbody=the body"


def test_cgi_variables_headers_and_arguments(server: Server) -> None:
    response = httpx.get(
        server.url + "/env?x=1&name=J%C3%BCrgen+B",
        headers={"X-Custom": "yes", "Authorization": "Bearer secret-token"},
    )
    lines = set(response.text.splitlines())
    assert {
        "REQUEST_METHOD=GET",
        "PATH_INFO=/env",
        "SCRIPT_NAME=",
        "QUERY_STRING=x=1&name=J%C3%BCrgen+B",
        "SERVER_PROTOCOL=HTTP/1.1",
        "SERVER_NAME=127.0.0.1",
        f"SERVER_PORT={server.port}",
        "REMOTE_ADDR=127.0.0.1",
        "HTTP_X_CUSTOM=yes",
        "GATEWAY_INTERFACE=CGI/1.1",
        "argv[1]=x=1",
        "argv[2]=name=Jürgen B",
        f"X_FULL_URL=http://127.0.0.1:{server.port}/env?x=1&name=J%C3%BCrgen+B",
    } <= lines
    assert not any("secret-token" in line for line in lines)  # credentials stay with the server


def test_status_and_location_headers(server: Server) -> None:
    teapot = httpx.get(server.url + "/teapot")
    assert (teapot.status_code, teapot.text) == (418, "short and stout\n")
    redirect = httpx.get(server.url + "/redirect", follow_redirects=False)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "/"
    assert httpx.get(server.url + "/nowhere").status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "logged"),
    [
        ("/panic", 500, "trapped"),
        ("/spin", 500, "ran past its 2 s timeout"),
        ("/alloc", 500, "memory limit of 16 MiB"),
        ("/malformed", 502, "no CGI response"),
    ],
)
def test_failing_guests_answer_without_leaking_details(
    server: Server, path: str, status: int, logged: str
) -> None:
    response = httpx.get(server.url + path, timeout=30)
    assert response.status_code == status
    assert response.text in ("Internal Server Error\n", "Bad Gateway\n")
    for detail in ("trap", "panicked", "timeout", "memory", "http-server"):
        assert detail not in response.text.lower()
    assert logged in server.output()
    assert httpx.get(server.url + "/").text == "Hello, World!\n"  # still serving


def test_a_body_over_the_limit_is_413(server: Server) -> None:
    assert httpx.post(server.url + "/echo", content=b"x" * 2048).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield b"y" * 512

    assert httpx.post(server.url + "/echo", content=chunks()).status_code == 413
    assert httpx.post(server.url + "/echo", content=b"z" * 1000).status_code == 200


def test_access_log_on_by_default(server: Server) -> None:
    httpx.get(server.url + "/?logged=1")
    assert '"GET /?logged=1 HTTP/1.1" 200' in server.output()


def test_parallel_requests_each_get_their_own_instance(server: Server) -> None:
    async def main() -> list[tuple[str, str]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

            async def one(i: int) -> tuple[str, str]:
                echo = await client.post(f"/echo?i={i}", content=f"body {i}".encode())
                counter = await client.get("/counter")
                return echo.text, counter.text

            return await asyncio.gather(*(one(i) for i in range(60)))

    results = asyncio.run(main())
    for i, (echo, counter) in enumerate(results):
        assert echo == f"method=POST\nquery=i={i}\nbody=body {i}"
        assert counter == "1\n"


def test_routes_from_a_config_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "modules.toml").write_text(
        f"""
[[module]]
route = "/hello"
module = "{HELLO}"

[[module]]
route = "/api/..."
module = "{HTTP}"
environment = {{ GREETING = "hi" }}
volumes = {{ "/data" = "data" }}
"""
    )
    s = Server("--config", tmp_path / "modules.toml", "-q")
    try:
        env = httpx.get(s.url + "/api/env").text.splitlines()
        assert "SCRIPT_NAME=/api" in env
        assert "PATH_INFO=/env" in env
        assert "X_MATCHED_ROUTE=/api/..." in env
        assert "GREETING=hi" in env
        assert httpx.get(s.url + "/api/echo?q").text.startswith("method=GET")
        # hello-world is no WAGI handler: its output has no headers.
        assert httpx.get(s.url + "/hello").status_code == 502
        assert httpx.get(s.url + "/hello/more").status_code == 404
        assert httpx.get(s.url + "/other").status_code == 404
        assert '"GET' not in s.output()  # --quiet: no access log
    finally:
        s.stop()


def test_several_workers(tmp_path: Path) -> None:
    s = Server(HTTP, workers=2)
    try:
        texts = {httpx.get(s.url + "/").text for _ in range(20)}
        assert texts == {"Hello, World!\n"}
    finally:
        s.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give MODULE or --config"),
        (["--listen", "nowhere", str(HTTP)], "not HOST:PORT"),
        (["/nonexistent.wasm"], "no such file"),
        (["--workers", "0", str(HTTP)], "at least 1"),
        (
            [str(HTTP.with_name("hello-world.component.wasm"))],
            "is a WASI preview-2 component; WAGI handlers are preview-1 modules",
        ),
    ],
)
def test_serve_bad_input(args: list[str], message: str) -> None:
    done = wasmhost_cli("serve", *args, timeout=60)
    assert done.returncode in (1, 2)
    err = done.stderr.decode()
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


# -- the ASGI app in-process, through httpx's ASGI transport ---------------------


def test_the_asgi_app_mounts_in_another_application() -> None:
    """A Starlette/FastAPI Mount passes the full path with the prefix in root_path; shown
    with a tiny router (Starlette itself is not a dependency)."""
    wagi = WagiApp([Route("/...", str(HTTP))])

    async def router(scope: dict[str, object], receive: object, send: object) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and path.startswith("/wasm"):
            scope = dict(scope, root_path="/wasm")
            await wagi(scope, receive, send)  # type: ignore[arg-type]
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"python"})  # type: ignore[operator]

    async def main() -> tuple[str, str]:
        transport = httpx.ASGITransport(app=router)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return (await client.get("/wasm/")).text, (await client.get("/py")).text

    assert asyncio.run(main()) == ("Hello, World!\n", "python")
    wagi.close()


@pytest.mark.parametrize("floor", ["wasmtime-py", "capi", "capi-capped"])
def test_the_bench_floor_answers_as_serve_does(floor: str) -> None:
    """`nox -s bench` measures serve against a WAGI app on bare wasmtime-py
    (tests/wagi_floor.py; by hand, its C-API variants): a baseline that answered
    otherwise, or not at all, would make the ratio meaningless."""
    import wagi_floor

    run = wagi_floor.run_wasmtime_py
    if floor != "wasmtime-py":
        run = wagi_floor._capi_runner(capped=floor == "capi-capped")
    wagi = WagiApp([Route("/...", str(HTTP))])

    async def answers(app: object) -> list[tuple[int, str | None, str | None, str]]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            got = []
            for path in ("/", "/env?a=1&b=two", "/teapot", "/redirect", "/nowhere"):
                response = await client.get(path, headers={"x-probe": "1"})
                headers = response.headers
                got.append(
                    (
                        response.status_code,
                        headers.get("content-type"),
                        headers.get("location"),
                        response.text,
                    )
                )
            return got

    ours, theirs = asyncio.run(answers(wagi)), asyncio.run(answers(wagi_floor.make_app(run)))
    wagi.close()
    assert theirs == ours
    assert ours[0][3] == "Hello, World!\n"
    assert "HTTP_X_PROBE=1" in ours[1][3]
    assert "QUERY_STRING=a=1&b=two" in ours[1][3]
    assert ours[2][0] == 418
    assert ours[3][2] is not None  # the redirect's Location


def test_mounted_under_a_prefix_the_guest_sees_it_in_script_name() -> None:
    wagi = WagiApp([Route("/api/...", str(HTTP))])

    async def main() -> list[str]:
        transport = httpx.ASGITransport(app=wagi, root_path="/wasm")  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            env = (await client.get("/wasm/api/env")).text.splitlines()
            outside = await client.get("/wasmx/api/env")
            return [*env, f"outside={outside.status_code}"]

    lines = asyncio.run(main())
    wagi.close()
    assert "SCRIPT_NAME=/wasm/api" in lines
    assert "PATH_INFO=/env" in lines
    assert "X_FULL_URL=http://app/wasm/api/env" in lines
    assert "outside=404" in lines


def test_a_missing_volume_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        WagiApp([Route("/...", str(HTTP), dirs={"/data": str(tmp_path / "gone")})])


def test_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[module]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    bad.write_text('[[module]]\nroute = "/"\n')
    with pytest.raises(ConfigError, match="has no module"):
        load_config(bad)
    bad.write_text("# nothing\n")
    with pytest.raises(ConfigError, match=r"no \[\[module\]\]"):
        load_config(bad)


@pytest.mark.parametrize(
    ("output", "status", "headers", "body"),
    [
        (b"Content-Type: text/plain\n\nhi", 200, [("Content-Type", "text/plain")], b"hi"),
        (b"Content-Type: a\r\nStatus: 201 Created\r\n\r\n", 201, [("Content-Type", "a")], b""),
        (b"Location: /x\n\n", 302, [("Location", "/x")], b""),
        (b"Status: 204\n\n", 204, [], b""),
        (b"Content-Type: a\n\nl1\r\n\r\nl2", 200, [("Content-Type", "a")], b"l1\r\n\r\nl2"),
        (
            b"Content-Type: a\nContent-Length: 1\nTransfer-Encoding: chunked\n"
            b"Connection: x\n\nbody",
            200,
            [("Content-Type", "a")],
            b"body",
        ),
    ],
)
def test_parse_response(
    output: bytes, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    assert parse_response(output) == (status, headers, body)


@pytest.mark.parametrize(
    "output",
    [
        b"no blank line",
        b"\n\nbody",
        b"Bad Header Line\n\n",
        b"Status: abc\n\n",
        b"Status: 999\n\n",
        b"Status: 101 Switching Protocols\nUpgrade: h2c\n\n",
        b"X-A: b\rSet-Cookie: x\n\n",
        b"X-A: b\x00c\n\n",
    ],
)
def test_malformed_responses(output: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_response(output)


@pytest.mark.parametrize(
    ("path", "route", "expected"),
    [
        ("/", "/", ("/", "")),
        ("/a", "/", None),
        ("/api", "/api/...", ("/api", "")),
        ("/api/x/y", "/api/...", ("/api", "/x/y")),
        ("/apix", "/api/...", None),
        ("/anything", "/...", ("", "/anything")),
    ],
)
def test_routes(path: str, route: str, expected: tuple[str, str] | None) -> None:
    assert split_route(path, route) == expected


def test_a_module_importing_what_no_guest_is_given_fails_before_listening(
    tmp_path: Path,
) -> None:
    module = tmp_path / "needs-env.wasm"
    module.write_bytes(
        wasmtime.wat2wasm('(module (import "env" "f" (func)) (func (export "_start")))')
    )
    with pytest.raises(LinkError, match="which nothing provides"):
        WagiApp([Route("/...", str(module), {}, {})])
    done = wasmhost_cli("serve", "--listen", "127.0.0.1:0", module, timeout=30)
    assert done.returncode == 1
    assert b"which nothing provides" in done.stderr


def test_a_module_served_by_reference_is_named_by_it(registry: Registry) -> None:
    """Logs and argv[0] name the reference and the file a pull gives, not the store's blob."""
    reference = f"{registry.host}/wagi-handler:v1"
    RegistryClient(plain_http=True).push(HTTP, reference)
    s = Server("--plain-http", reference, workers=2)
    try:
        assert "argv[0]=wagi-handler.wasm" in httpx.get(s.url + "/env").text.splitlines()
        assert httpx.get(s.url + "/panic").status_code == 500
        time.sleep(0.5)  # the log line is written after the answer
        log = s.output()
    finally:
        s.stop()
    assert f"GET /panic: {reference} trapped" in log
    assert "blobs" not in log
    assert "sha256" not in log


def test_a_route_name_names_the_module_in_errors(tmp_path: Path) -> None:
    calls = Path(HTTP).with_name("host-calls.wasm")
    with pytest.raises(LinkError, match=r"^ghcr.io/x/calls:v1 imports env.log"):
        WagiApp([Route("/...", str(calls), name="ghcr.io/x/calls:v1")])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'[[module]]\nmodule = "caf\xe9.wasm"\n', "is not UTF-8 text"),
        (b'[[module]]\nmodule = "a\\u0000b.wasm"\n', "a NUL character"),
        (b'[[module]]\nmodule = "x.wasm"\nvolumes = { "/d" = "a\\u0000b" }\n', "a NUL character"),
        (b'[[module]]\nmodule = "x.wasm"\nroute = "/\\u0000"\n', "a NUL character"),
        (b'[[module]]\nmodule = "x.wasm"\nenvironment = { A = "\\u0000" }\n', "a NUL character"),
        (b'[[module]]\nmodule = "x.wasm"\nenvironment = { "A=B" = "c" }\n', "'='"),
        (b'[[module]]\nmodule = "x.wasm"\nmax_memory = "lots"\n', "give a size like"),
    ],
    ids=["not-utf8", "nul-module", "nul-volume", "nul-route", "nul-env", "env-name", "size"],
)
def test_a_modules_toml_it_cannot_use_is_one_line(
    tmp_path: Path, text: bytes, message: str
) -> None:
    config = tmp_path / "modules.toml"
    config.write_bytes(text)
    done = wasmhost_cli("serve", "--config", config)
    err = done.stderr.decode()
    assert done.returncode in (1, 2), err
    assert len(err.strip().splitlines()) == 1, err
    assert str(config) in err
    assert message in err


def test_the_server_date_header_wins_over_a_guests(tmp_path: Path) -> None:
    guest = tmp_path / "dated.wasm"
    answer = "Date: Thu, 01 Jan 1970 00:00:00 GMT\nContent-Type: text/plain\n\nhi"
    guest.write_bytes(wasmtime.wat2wasm(printer(answer)))
    s = Server(guest, "-q")
    try:
        response = httpx.get(s.url + "/")
        assert response.text == "hi"
        dates = response.headers.get_list("date")
        assert len(dates) == 1
        assert "1970" not in dates[0]
    finally:
        s.stop()
