"""A FIFO or a device where wasmhost expects a file: refused at once, never read.

Opening a FIFO that has no writer blocks forever, and ``/dev/zero`` never
ends; each case runs in a process of its own, with a timeout far beyond what
a refusal takes, so that a hang fails the test instead of stopping the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HELLO, wasmhost_cli
from test_cli import one_error_line

FIFO = "it is a FIFO, not a regular file"
DEVICE = "it is a character device, not a regular file"


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def python(code: str, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``code`` in a new Python process (the environment is the test's)."""
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, timeout=60
    )


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_host_load_refuses_what_is_not_a_file(tmp_path: Path, kind: str) -> None:
    path = fifo(tmp_path / "m.wasm") if kind == "fifo" else Path("/dev/zero")
    code = (
        "import sys\nfrom wasmhost import Host, ModuleError\n"
        "try:\n    Host().load(sys.argv[1])\n"
        "except ModuleError as exc:\n    print(exc)\n"
    )
    done = python(code, path)
    assert done.stderr == b""
    assert done.stdout.decode().strip() == f"{path} cannot be read: " + (
        f"{FIFO}." if kind == "fifo" else f"{DEVICE}."
    )


def cli_cases(t: Path) -> dict[str, tuple[list[str | Path], str]]:
    """Each command given a FIFO ``t/f.wasm`` (or /dev/zero) as a file to read: its
    arguments and what its one line of error says."""
    f = t / "f.wasm"
    return {
        "run": (["run", f], f"{f} cannot be read: {FIFO}"),
        "run-dev-zero": (["run", "/dev/zero"], f"/dev/zero cannot be read: {DEVICE}"),
        "push": (["push", "--oci-layout", f, t / "layout:v1"], f"{f} cannot be read: {FIFO}"),
        "push-image": (
            ["push", "--oci-layout", "--format", "image", f, t / "layout:v1"],
            f"{f} cannot be read: {FIFO}",
        ),
        "bundle": (["bundle", f, t / "bundle"], f"{f} cannot be read: {FIFO}"),
        "compare-stdin": (
            ["compare", "--runtime", "wasmtime", "--stdin", f, HELLO],
            f"{f} cannot be read: {FIFO}",
        ),
    }


@pytest.mark.parametrize("case", list(cli_cases(Path("t"))))
def test_cli_refuses_a_fifo_as_a_file(tmp_path: Path, case: str) -> None:
    fifo(tmp_path / "f.wasm")
    args, message = cli_cases(tmp_path)[case]
    done = wasmhost_cli(*args)
    assert done.returncode == 1
    assert message in one_error_line(done)


def test_a_fifo_as_the_docker_config(docker_config: Path) -> None:
    fifo(docker_config / "config.json")
    done = wasmhost_cli("logout", "registry.example")
    assert done.returncode == 1
    line = one_error_line(done)
    assert f"cannot read the Docker config {docker_config / 'config.json'}: {FIFO}" in line


def test_a_docker_config_too_large(docker_config: Path) -> None:
    with open(docker_config / "config.json", "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of NULs, no disk
    done = wasmhost_cli("logout", "registry.example")
    assert done.returncode == 1
    assert "cannot read the Docker config" in one_error_line(done)
    assert "it is over" in one_error_line(done)


def test_a_fifo_as_modules_toml(tmp_path: Path) -> None:
    config = fifo(tmp_path / "modules.toml")
    done = wasmhost_cli("serve", "--config", config)
    assert done.returncode == 1
    assert f"cannot read {config}: {FIFO}" in one_error_line(done)


def test_a_fifo_as_an_oci_layout_index(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    assert wasmhost_cli("push", "--oci-layout", HELLO, f"{layout}:v1").returncode == 0
    (layout / "index.json").unlink()
    fifo(layout / "index.json")
    done = wasmhost_cli("push", "--oci-layout", HELLO, f"{layout}:v2")
    assert done.returncode == 1
    assert f"the index.json in {layout} cannot be read: {FIFO}" in one_error_line(done)


@pytest.mark.own_cache  # fills the cache with one entry and damages it
@pytest.mark.parametrize("which", ["entry", "meta", "path-record"])
def test_a_fifo_in_the_compile_cache_is_a_miss(isolated: Path, which: str) -> None:
    assert wasmhost_cli("run", HELLO).returncode == 0  # fills the cache
    compiled = isolated / "compiled"
    entries = {
        "entry": list(compiled.glob("*/*.cwasm")),
        "meta": list(compiled.glob("*/*.cwasm.meta")),
        "path-record": list((compiled / "paths").iterdir()),
    }[which]
    assert len(entries) == 1
    entries[0].unlink()
    fifo(entries[0])
    done = wasmhost_cli("run", HELLO)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"Hello, World!\n", b"")
