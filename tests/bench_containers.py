"""Benchmarks of wasmhost-runtime under the real engines (tests/engines.py), each against
its baseline measured in the same run, interleaved:

- ``ctr run --rm`` of hello-world.wasm through wasmhost-runtime, against ``ctr run --rm``
  of a static native hello through runc (goal: at most 1.5x);
- ``podman run --rm`` of the same two (goal: at most 1.3x);
- requests per second of the WAGI handler served by the runtime in a container (``ctr
  run --net-host``, one server process) against ``wasmhost serve --workers 1`` of the
  same module outside (goal: at least 0.9x);
- SIGTERM to a guest sleeping in a container: from the signal to the init's exit
  (goal: within 100 ms), through a stand-in shim (tests/reaper.py).

Needs root and the engines (containerd, podman, runc, catatonit); run as
``python tests/bench.py`` (nox -s bench) or alone: ``python tests/bench_containers.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = Path(sys.executable).with_name("wasmhost-runtime")


def _paired_ms(
    first: Callable[[], object], second: Callable[[], object], runs: int
) -> tuple[float, float]:
    """Median wall time of each, run alternately (one warm-up each first)."""
    first()
    second()
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        for call, into in ((first, a), (second, b)):
            began = time.perf_counter()
            call()
            into.append((time.perf_counter() - began) * 1000)
    return statistics.median(a), statistics.median(b)


def _row(
    name: str, baseline: str, base: float, ours: float, goal: str, met: bool, unit: str
) -> dict[str, object]:
    return {
        "name": name,
        "baseline": baseline,
        f"baseline_{unit}": round(base, 1),
        f"wasmhost_{unit}": round(ours, 1),
        "ratio": round(ours / base, 2),
        "goal": goal,
        "met": met,
    }


def _checked(done: subprocess.CompletedProcess[str], text: str) -> None:
    if done.returncode != 0 or text not in done.stdout:
        raise SystemExit(f"bench: {done.args} gave {done.returncode}: {done.stdout}{done.stderr}")


def bench_containers(runs: int, seconds: int) -> tuple[list[dict[str, object]], list[str]]:
    from bench import _free_port_wrk_rps
    from engines import Containerd, NativeImages, Podman, missing_engines

    missing = missing_engines()
    if missing:
        return [], [
            f"containers: skipped, cannot run the engines here (missing {', '.join(missing)})"
        ]
    scratch = Path(tempfile.mkdtemp(prefix="wasmhost-bench-ctr-"))
    results: list[dict[str, object]] = []
    lines: list[str] = []
    try:
        native = NativeImages.build(scratch / "images")
        layout = scratch / "layout"
        for name in ("hello-world", "http-server"):
            subprocess.run(
                [sys.executable, "-m", "wasmhost", "push", "--format", "image", "--oci-layout",
                 str(ROOT / "artifacts" / f"{name}.wasm"), f"{layout}:{name}"],
                check=True, capture_output=True,
            )  # fmt: skip
        tar = scratch / "wasm.tar"
        subprocess.run(["tar", "-cf", str(tar), "-C", str(layout), "."], check=True)
        with Containerd(sandbox_image=native.pause) as daemon:
            daemon.import_image(native.hello)
            daemon.ctr("images", "import", "--all-platforms", "--base-name", "localhost/wasm", tar)
            wasm = "localhost/wasm:hello-world"

            def ctr_wasm() -> None:
                _checked(daemon.ctr_run(wasm, runtime_binary=RUNTIME), "Hello, World!")

            def ctr_native() -> None:
                _checked(daemon.ctr_run(native.hello.name), "Hello from native")

            base, ours = _paired_ms(ctr_native, ctr_wasm, runs)
            results.append(
                _row(
                    "ctr run --rm: hello-world.wasm via wasmhost-runtime",
                    "ctr run --rm: static native hello via runc",
                    base,
                    ours,
                    "<= 1.5x",
                    ours / base <= 1.5,
                    "ms",
                )
            )
            lines += _serve_rps(daemon, seconds, _free_port_wrk_rps, results)
        with Podman(scratch / "podman") as engine:

            def podman_wasm() -> None:
                _checked(
                    engine.podman_run(f"oci:{layout}:hello-world", runtime=RUNTIME), "Hello, World!"
                )

            def podman_native() -> None:
                _checked(engine.podman_run(native.hello.oci), "Hello from native")

            base, ours = _paired_ms(podman_native, podman_wasm, runs)
            results.append(
                _row(
                    "podman run --rm: hello-world.wasm via wasmhost-runtime",
                    "podman run --rm: static native hello via runc",
                    base,
                    ours,
                    "<= 1.3x",
                    ours / base <= 1.3,
                    "ms",
                )
            )
        results.append(_sigterm(scratch, runs))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results, lines


def _serve_rps(
    daemon: object,
    seconds: int,
    rps: Callable[[list[str], str, int], float],
    results: list[dict[str, object]],
) -> list[str]:
    """The WAGI handler in a container on the host's network, one server process,
    against ``wasmhost serve --workers 1`` of the same module: wrk's requests/second."""
    from engines import Containerd

    assert isinstance(daemon, Containerd)
    module = str(ROOT / "artifacts" / "http-server.wasm")
    # Both log each request (the container's log to a file, the outside's to /dev/null).
    outside = rps(
        [sys.executable, "-m", "wasmhost", "serve", "--workers", "1", "--listen"],
        module,
        seconds,
    )
    port = _port()
    name = f"bench-web-{os.getpid()}"
    daemon.ctr(
        "run", "-d", "--net-host", "--runc-binary", str(RUNTIME),
        "--runc-root", str(daemon.runtime_root), "--fifo-dir", str(daemon.folder / "fifo"),
        "--log-uri", f"file://{daemon.folder / 'web.log'}",
        "--annotation", f"io.wasmhost.serve=127.0.0.1:{port}", "localhost/wasm:http-server", name,
    )  # fmt: skip
    try:
        inside = rps([], f"http://127.0.0.1:{port}/", seconds)
    finally:
        daemon.remove(name)
    results.append(
        _row(
            "WAGI handler served in a container (ctr --net-host), 32 conns",
            "wasmhost serve --workers 1 of http-server.wasm outside",
            outside,
            inside,
            ">= 0.9x",
            inside / outside >= 0.9,
            "rps",
        )
    )
    return [f"containers: WAGI req/s outside {outside:.0f}, in a container {inside:.0f}"]


def _port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sigterm(scratch: Path, runs: int) -> dict[str, object]:
    """From `kill ID TERM` returning to the init's exit, a guest sleeping 60 s."""
    import wasmtime

    sleeper = scratch / "sleeper.wasm"
    sleeper.write_bytes(
        wasmtime.wat2wasm(
            """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"""
        )
    )
    times = []
    for i in range(max(3, runs // 2)):
        folder = scratch / f"sleep{i}"
        subprocess.run(
            [sys.executable, "-m", "wasmhost", "bundle", str(sleeper), str(folder)],
            check=True, capture_output=True,
        )  # fmt: skip
        report_path = folder / "report.json"
        subprocess.run(
            [sys.executable, str(ROOT / "tests" / "reaper.py"), str(RUNTIME), str(scratch / "root"),
             str(folder), f"s{i}", "TERM", "0.3"],
            env={**os.environ, "REAPER_REPORT": str(report_path)}, check=True, timeout=120,
            capture_output=True,
        )  # fmt: skip
        report = json.loads(report_path.read_text())
        if report.get("status") != 143:
            raise SystemExit(f"bench: SIGTERM gave {report}")
        times.append(report["after_signal"] * 1000)
    median = statistics.median(times)
    return {
        "name": "SIGTERM to a sleeping guest: signal to exit",
        "baseline": "the issue's bound, 100 ms",
        "baseline_ms": 100.0,
        "wasmhost_ms": round(median, 2),
        "ratio": round(median / 100.0, 3),
        "goal": "<= 100 ms",
        "met": median <= 100.0,
    }


if __name__ == "__main__":
    from bench import _report

    found, notes = bench_containers(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 10, seconds=5)
    sys.exit(_report(found, notes, "bench-containers.json"))
