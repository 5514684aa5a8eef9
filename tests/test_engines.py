"""Real container engines driven by the tests (tests/engines.py): the baselines with
runc alone, and the negative control a Wasm runtime must turn around.

A native static hello runs under ctr, podman and the CRI through plain runc; the
wasmhost hello-world image does not (runc execs a .wasm file: "exec format error").
Tests of wasmhost-runtime use the same fixtures with ``runtime_binary=`` /
``runtime=`` / the ``wasmhost`` handler.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from engines import Containerd, Cri, NativeImages, Podman, processes_mentioning

HELLO_NATIVE = "Hello from native\n"


def test_native_hello_under_ctr_run(containerd: Containerd, native_images: NativeImages) -> None:
    done = containerd.ctr_run(native_images.hello.name)
    assert (done.returncode, done.stdout) == (0, HELLO_NATIVE), done.stderr


def test_ctr_run_passes_annotations_and_mounts(
    containerd: Containerd, native_images: NativeImages, tmp_path: Path
) -> None:
    """The options a Wasm test needs are accepted by ctr and runc (hello ignores them)."""
    done = containerd.ctr_run(
        native_images.hello.name,
        annotations={"io.wasmhost.timeout": "2"},
        mounts=[(native_images.hello.layout, "/data")],
    )
    assert (done.returncode, done.stdout) == (0, HELLO_NATIVE), done.stderr


def test_native_hello_under_podman_run(podman: Podman, native_images: NativeImages) -> None:
    done = podman.podman_run(native_images.hello.oci)
    assert (done.returncode, done.stdout) == (0, HELLO_NATIVE), done.stderr


def test_native_hello_under_the_cri_with_the_runc_handler(
    cri: Cri, native_images: NativeImages
) -> None:
    with cri.pod("runc") as pod:
        result = cri.run_container(pod, native_images.hello.name)
    assert (result.exit_code, result.reason) == (0, "Completed"), result
    assert result.output == HELLO_NATIVE
    assert " stdout F Hello from native" in result.log


@pytest.fixture(scope="module")
def wasm_hello(wasm_image: Callable[..., str]) -> str:
    return wasm_image("hello-world")


def test_a_wasm_image_under_plain_runc_fails_under_ctr(
    containerd: Containerd, wasm_hello: str
) -> None:
    containerd.pull(wasm_hello)
    done = containerd.ctr_run(wasm_hello)
    assert done.returncode != 0
    assert "exec format error" in done.stderr, done.stderr
    assert "Hello, World!" not in done.stdout


def test_a_wasm_image_under_plain_runc_fails_under_podman(podman: Podman, wasm_hello: str) -> None:
    done = podman.podman_run(wasm_hello)
    assert done.returncode != 0
    assert "exec format error" in done.stderr, done.stderr
    assert "Hello, World!" not in done.stdout


def test_a_wasm_image_under_plain_runc_fails_under_the_cri(cri: Cri, wasm_hello: str) -> None:
    """The CRI pulls a wasip1/wasm image (one manifest, no platform to match) and runc
    starts it: the exec of the .wasm entrypoint fails inside the container."""
    cri.pull(wasm_hello)
    with cri.pod("runc") as pod:
        result = cri.run_container(pod, wasm_hello)
    assert (result.exit_code, result.reason) == (1, "Error"), result
    assert "exec format error" in result.output, result.log
    assert "Hello, World!" not in result.output


def test_containerd_stops_with_everything_it_started(native_images: NativeImages) -> None:
    """A task still running when the daemon stops (a test that failed half-way): its
    shim and container are killed, its mounts and the folder are gone."""
    daemon = Containerd(sandbox_image=native_images.pause)
    folder = daemon.folder
    with daemon:
        daemon.import_image(native_images.pause)
        fifos = daemon.folder / "fifo"
        daemon.ctr("run", "-d", "--runc-root", daemon.runtime_root, "--fifo-dir", fifos,
                   native_images.pause.name, "left-running")  # fmt: skip
        shims = processes_mentioning(str(daemon.socket))
        assert shims, "no shim found for the running task"
    assert not [pid for pid in shims if Path(f"/proc/{pid}").exists()]
    assert not processes_mentioning(str(folder))
    assert str(folder) not in Path("/proc/self/mountinfo").read_text()
    assert not folder.exists()
