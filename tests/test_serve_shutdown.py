"""`wasmhost serve` shutting down (issue 22): one SIGINT or SIGTERM cancels the
guests in flight, answers 503 to the requests they and the queue held, and the
server exits at once, with the status of its signal and no traceback. A real
server process and real clients."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from conftest import HTTP
from test_serve import Server

from wasmhost.asgi import Route, WagiApp

pytestmark = pytest.mark.server  # starts HTTP servers

# A guest timeout far beyond the bound below: a server that waits for its
# spinning guests cannot pass.
GUEST_TIMEOUT = "60"
EXIT_BOUND = 15.0  # seconds; the guests would take 60


def _responses(
    url: str, count: int
) -> tuple[list[httpx.Response | BaseException], Callable[[], None]]:
    """``count`` requests for a spinning guest, sent at once on threads; call
    the second value to wait for them all."""
    answers: list[httpx.Response | BaseException] = []

    def get() -> None:
        try:
            answers.append(httpx.get(url + "/spin", timeout=120))
        except httpx.HTTPError as exc:
            answers.append(exc)

    threads = [threading.Thread(target=get) for _ in range(count)]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join(timeout=120)

    return answers, join


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("signum", "status", "group"),
    [
        (signal.SIGINT, 130, True),  # Ctrl-C at a terminal: the whole process group
        (signal.SIGINT, 130, False),  # kill -INT
        (signal.SIGTERM, 143, False),  # kill, as a service manager does
    ],
    ids=["ctrl-c", "sigint", "sigterm"],
)
def test_one_signal_cancels_the_guests_and_ends_the_server(
    workers: int, signum: int, status: int, group: bool
) -> None:
    # One guest thread per process: of three requests, one spins, the others wait for it.
    s = Server("--timeout", GUEST_TIMEOUT, "--threads", "1", HTTP, workers=workers, own_group=group)
    try:
        answers, join = _responses(s.url, 3)
        time.sleep(3)  # the guests spin, or wait for the thread
        started = time.monotonic()
        if group:
            os.killpg(s.process.pid, signum)
        else:
            s.process.send_signal(signum)
        try:
            returncode = s.process.wait(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_BOUND} s after one signal:\n{s.output()}")
        took = time.monotonic() - started
        join()
        output = s.output()
        assert returncode == status, output
        assert "Traceback" not in output, output
        # The spinning guest's client and those queued behind it all get 503.
        assert [getattr(a, "status_code", a) for a in answers] == [503] * 3, output
        assert all(isinstance(a, httpx.Response) and a.headers["retry-after"] for a in answers)
        print(f"exited {took:.2f} s after the signal")
    finally:
        s.stop()


def test_a_second_signal_during_shutdown_is_quiet() -> None:
    s = Server("--timeout", GUEST_TIMEOUT, HTTP)
    try:
        _, join = _responses(s.url, 1)
        time.sleep(1)
        s.process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        s.process.send_signal(signal.SIGINT)
        returncode = s.process.wait(timeout=EXIT_BOUND)
        join()
        assert returncode == 130
        assert "Traceback" not in s.output(), s.output()
    finally:
        s.stop()


def test_lifespan_shutdown_stops_the_app() -> None:
    app = WagiApp([Route("/...", str(HTTP))], timeout=60)
    messages: list[dict[str, object]] = [
        {"type": "lifespan.startup"},
        {"type": "lifespan.shutdown"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def main() -> httpx.Response:
        await app({"type": "lifespan"}, receive, send)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://wasm") as client:
            return await client.get("/")

    try:
        answer = asyncio.run(main())
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
    finally:
        app.close()


def test_stop_cancels_a_running_guest() -> None:
    """The library's side: stop() ends a spinning guest's request at once, with
    503, where it would run for its whole timeout."""
    app = WagiApp([Route("/...", str(HTTP))], timeout=60)

    async def main() -> tuple[httpx.Response, float]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://wasm") as client:
            loop = asyncio.get_running_loop()
            loop.call_later(1, app.stop)
            started = time.monotonic()
            answer = await client.get("/spin", timeout=120)
            return answer, time.monotonic() - started

    try:
        answer, took = asyncio.run(main())
        assert answer.status_code == 503
        assert took < EXIT_BOUND  # the guest's timeout is 60 s
    finally:
        app.close()
