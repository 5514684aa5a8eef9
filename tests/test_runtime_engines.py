"""wasmhost-runtime under the real engines (tests/engines.py): containerd's ``ctr run``,
podman, and containerd's CRI called as a kubelet calls it, with a ``wasmhost``
runtime handler. The images are wasmhost's own (``wasmhost push --format image``),
run as they are: no annotation says they are Wasm."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WASMHOST_RUNTIME
from engines import Containerd, Cri, NativeImages, Podman, push_wasm
from registry import Registry
from test_readme import (
    CONTAINERS,
    README_REGISTRY,
    Block,
    commands,
    environment,
    expectation,
    workdir,
)
from test_runtime import get_in_namespace

HELLO = "Hello, World!\n"
HELLO_NATIVE = "Hello from native\n"
ARTIFACTS = Path(__file__).parent.parent / "artifacts"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(wasm_image: Callable[..., str]) -> dict[str, str]:
    return {
        name: wasm_image(name)
        for name in ("hello-world", "hello-world.component", "fsprobe", "wordcount")
    }


@pytest.fixture(scope="module")
def trap_image(registry_host: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    import wasmtime

    module = tmp_path_factory.mktemp("trap") / "trap.wasm"
    module.write_bytes(wasmtime.wat2wasm('(module (func (export "_start") unreachable))'))
    return push_wasm(module, f"{registry_host}/trap:v1")


@pytest.fixture(scope="module")
def registry_host(registry: Registry) -> str:
    return registry.host


# -- ctr run -----------------------------------------------------------------------


def test_ctr_runs_hello_world(containerd: Containerd, images: dict[str, str]) -> None:
    containerd.pull(images["hello-world"])
    done = containerd.ctr_run(images["hello-world"], runtime_binary=WASMHOST_RUNTIME)
    assert (done.returncode, done.stdout) == (0, HELLO), done.stderr


def test_ctr_runs_a_component(containerd: Containerd, images: dict[str, str]) -> None:
    containerd.pull(images["hello-world.component"])
    done = containerd.ctr_run(images["hello-world.component"], runtime_binary=WASMHOST_RUNTIME)
    assert (done.returncode, done.stdout) == (0, HELLO), done.stderr


def wordcount_folders(tmp_path: Path) -> tuple[Path, Path]:
    """An input folder holding a.txt (four words) and an empty output folder."""
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (inside / "a.txt").write_text("one two three\nfour\n")
    return inside, outside


def test_ctr_wordcount_reads_a_read_only_mount_and_writes_a_writable_one(
    containerd: Containerd, images: dict[str, str], tmp_path: Path
) -> None:
    inside, outside = wordcount_folders(tmp_path)
    containerd.pull(images["wordcount"])
    done = containerd.ctr_run(
        images["wordcount"],
        runtime_binary=WASMHOST_RUNTIME,
        mounts=[(inside, "/input")],
        extra=["--mount", f"type=bind,src={outside},dst=/output,options=rbind:rw"],
    )
    assert done.returncode == 0, done.stderr
    report = (outside / "report.txt").read_text()
    assert "a.txt" in report
    assert "4" in report.split()  # four words
    assert sorted(p.name for p in inside.iterdir()) == ["a.txt"]  # nothing written there


def test_ctr_a_trapping_guest_exits_134(containerd: Containerd, trap_image: str) -> None:
    containerd.pull(trap_image)
    done = containerd.ctr_run(trap_image, runtime_binary=WASMHOST_RUNTIME)
    assert done.returncode == 134, done.stderr
    assert "unreachable" in done.stderr


def test_ctr_the_guest_sees_only_its_rootfs_and_mounts(
    containerd: Containerd, images: dict[str, str]
) -> None:
    containerd.pull(images["fsprobe"])
    for path in ("/etc/passwd", "/proc/self/environ", "/../../etc/passwd"):
        done = containerd.ctr_run(
            images["fsprobe"], runtime_binary=WASMHOST_RUNTIME, args=["/fsprobe.wasm", "read", path]
        )
        assert done.returncode == 1, (path, done.stdout)
        assert done.stdout == ""
    listing = containerd.ctr_run(
        images["fsprobe"], runtime_binary=WASMHOST_RUNTIME, args=["/fsprobe.wasm", "list", "/"]
    )
    assert listing.stdout.split() == ["fsprobe.wasm"], listing.stderr


def test_ctr_sigterm_stops_a_sleeping_guest(containerd: Containerd, images: dict[str, str]) -> None:
    containerd.pull(images["fsprobe"])
    name = f"sleeper-{time.monotonic_ns()}"
    argv = ["ctr", "--address", str(containerd.socket), "run", "--rm"]
    argv += ["--runc-binary", str(WASMHOST_RUNTIME), "--runc-root", str(containerd.runtime_root)]
    argv += ["--fifo-dir", str(containerd.folder / "fifo")]
    argv += [images["fsprobe"], name, "/fsprobe.wasm", "sleep", "60000"]
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(500):
            tasks = containerd.ctr("tasks", "list").stdout
            if name in tasks and "RUNNING" in tasks:
                break
            time.sleep(0.02)
        containerd.ctr("tasks", "kill", "--signal", "SIGTERM", name)
        sent = time.monotonic()
        out, err = run.communicate(timeout=30)
        # Not a timing test (nox -s bench measures it): left alone it sleeps 60 s.
        assert time.monotonic() - sent < 10
        assert run.returncode == 143, err
        assert "slept" not in out
    finally:
        run.kill()
        run.wait()


def test_ctr_a_native_container_is_handed_to_runc(
    containerd: Containerd, native_images: NativeImages
) -> None:
    done = containerd.ctr_run(native_images.hello.name, runtime_binary=WASMHOST_RUNTIME)
    assert (done.returncode, done.stdout) == (0, HELLO_NATIVE), done.stderr
    # Nothing of it is left in the runtime's root once ctr has removed it.
    leftover = list((containerd.runtime_root / "default").glob("t-*"))
    assert leftover == []
    assert list((containerd.runtime_root / "default" / ".native").iterdir()) == []


def test_ctr_serves_a_wagi_handler_in_the_containers_network(
    containerd: Containerd, wasm_image: Callable[..., str]
) -> None:
    image = wasm_image("http-server")
    containerd.pull(image)
    name = f"web-{time.monotonic_ns()}"
    containerd.ctr(
        "run", "-d", "--runc-binary", str(WASMHOST_RUNTIME),
        "--runc-root", str(containerd.runtime_root), "--fifo-dir", str(containerd.folder / "fifo"),
        "--annotation", "io.wasmhost.serve=8080", image, name,
    )  # fmt: skip
    try:
        pid = int(containerd.ctr("tasks", "list").stdout.split(name)[1].split()[0])
        assert get_in_namespace(pid, "http://127.0.0.1:8080/") == HELLO
    finally:
        containerd.remove(name)


# -- podman -------------------------------------------------------------------------


def test_podman_runs_hello_world_and_a_component(podman: Podman, images: dict[str, str]) -> None:
    for name in ("hello-world", "hello-world.component"):
        done = podman.podman_run(images[name], runtime=WASMHOST_RUNTIME)
        assert (done.returncode, done.stdout) == (0, HELLO), done.stderr


def test_podman_wordcount_with_volumes(
    podman: Podman, images: dict[str, str], tmp_path: Path
) -> None:
    inside, outside = wordcount_folders(tmp_path)
    done = podman.podman_run(
        images["wordcount"],
        runtime=WASMHOST_RUNTIME,
        extra=["-v", f"{inside}:/input:ro", "-v", f"{outside}:/output"],
    )
    assert done.returncode == 0, done.stderr
    assert "a.txt" in (outside / "report.txt").read_text()


def test_podman_a_trap_is_134_and_a_native_image_goes_to_runc(
    podman: Podman, trap_image: str, native_images: NativeImages
) -> None:
    done = podman.podman_run(trap_image, runtime=WASMHOST_RUNTIME)
    assert done.returncode == 134, done.stderr
    native = podman.podman_run(native_images.hello.oci, runtime=WASMHOST_RUNTIME)
    assert (native.returncode, native.stdout) == (0, HELLO_NATIVE), native.stderr


def test_podman_stop_ends_a_sleeping_guest_with_sigterm(
    podman: Podman, images: dict[str, str]
) -> None:
    name = f"sleeper{time.monotonic_ns()}"
    flags = ["--runtime", str(WASMHOST_RUNTIME), "--runtime-flag", f"root={podman.runtime_root}"]
    started = podman.podman(
        *flags, "run", "-d", "--name", name, "--network=none",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
        images["fsprobe"], "sleep", "60000",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        state = json.loads(podman.podman(*flags, "inspect", name).stdout)[0]["State"]
        assert state["Status"] == "running"
        began = time.monotonic()
        podman.podman(*flags, "stop", "--time", "30", name)
        assert time.monotonic() - began < 10  # SIGTERM worked: no wait for the 30 s SIGKILL
        state = json.loads(podman.podman(*flags, "inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 143
    finally:
        podman.podman(*flags, "rm", "-f", name, check=False)


def test_podman_publishes_a_served_wagi_handler(
    podman: Podman, wasm_image: Callable[..., str]
) -> None:
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    image = wasm_image("http-server")
    name = f"web{time.monotonic_ns()}"
    flags = ["--runtime", str(WASMHOST_RUNTIME), "--runtime-flag", f"root={podman.runtime_root}"]
    started = podman.podman(
        *flags, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
        "--annotation", "io.wasmhost.serve=8080",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image,
        check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        text = ""
        for _ in range(200):
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert text == HELLO
    finally:
        podman.podman(*flags, "rm", "-f", name, check=False)


# -- the CRI, as a kubelet calls it ------------------------------------------------


def test_cri_a_pod_of_the_wasmhost_handler_runs_wasm_and_native(
    cri: Cri, images: dict[str, str], native_images: NativeImages
) -> None:
    """The pod's sandbox (pause, native) and a native container go to runc; the Wasm
    container runs in wasmhost-runtime: one handler for the whole pod."""
    cri.pull(images["hello-world"])
    with cri.pod("wasmhost") as pod:
        wasm = cri.run_container(pod, images["hello-world"])
        native = cri.run_container(pod, native_images.hello.name)
    assert (wasm.exit_code, wasm.reason) == (0, "Completed"), wasm
    assert wasm.output == HELLO
    assert (native.exit_code, native.output) == (0, HELLO_NATIVE), native


def test_cri_a_trap_and_a_limit_from_pod_annotations(
    cri: Cri, trap_image: str, images: dict[str, str]
) -> None:
    cri.pull(trap_image)
    cri.pull(images["fsprobe"])
    with cri.pod("wasmhost", annotations={"io.wasmhost.timeout": "300ms"}) as pod:
        trapped = cri.run_container(pod, trap_image)
        limited = cri.run_container(pod, images["fsprobe"], args=["sleep", "60000"])
    assert trapped.exit_code == 134, trapped
    assert limited.exit_code == 134, limited
    assert "timeout" in limited.output


# -- the README's recipes, as printed --------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("block", CONTAINERS, ids=[b.id for b in CONTAINERS])
def test_the_readmes_container_recipes_run_as_printed(
    block: Block, containerd: Containerd, podman: Podman, registry: Registry, tmp_path: Path
) -> None:
    """Each command of the README's container blocks, in bash as root, with the tests'
    registry for localhost:5000, the session's containerd (CONTAINERD_ADDRESS) and
    podman (its configuration files, and the ulimits this machine needs by default),
    a free port for 8080; what a trailing ``prints`` promises is checked."""
    work = workdir(tmp_path / "work")
    push_wasm(ARTIFACTS / "hello-world.wasm", f"{registry.host}/hello-world:img")  # "as above"
    conf = podman.folder / "readme-containers.conf"
    conf.write_text(
        Path(podman.env["CONTAINERS_CONF"]).read_text()
        + '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
    )
    env = {
        **environment(),
        **{k: v for k, v in podman.env.items() if k.startswith("CONTAINERS_")},
        "CONTAINERS_CONF": str(conf),
        "CONTAINERD_ADDRESS": str(containerd.socket),
        "CONTAINERD_SNAPSHOTTER": "native",
    }
    env.pop("DOCKER_CONFIG", None)  # the tests' empty one, which podman refuses to read
    port = str(_free_port())
    try:
        for line in commands(block):
            line = line.replace(README_REGISTRY, registry.host)
            line = line.replace("8080:8080", f"{port}:8080").replace(
                "localhost:8080", f"localhost:{port}"
            )
            status, printed = expectation(line)
            done = subprocess.run(
                ["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == status, f"{line}\n{done.stdout}\n{done.stderr}"
            if printed is not None:
                assert printed in done.stdout, f"{line}\n{done.stdout}\n{done.stderr}"
    finally:
        subprocess.run(
            ["bash", "-c", "podman rm -f web"], env=env, capture_output=True, timeout=120
        )


def test_the_k8s_node_config_is_what_containerd_runs_pods_with(
    native_images: NativeImages, registry: Registry, images: dict[str, str], tmp_path: Path
) -> None:
    """The containerd table `wasmhost k8s --node-config containerd` prints, added to a
    node's config as it is: a pod of its handler runs a Wasm container."""
    table = subprocess.run(
        [sys.executable, "-m", "wasmhost", "k8s", "--runtime", "wasmhost", "--node-config",
         "containerd", "--runtime-path", str(WASMHOST_RUNTIME)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    with Containerd(
        sandbox_image=native_images.pause, registry_host=registry.host, node_config=table
    ) as node:
        client = node.cri()
        try:
            client.pull(images["hello-world"])
            with client.pod("wasmhost") as pod:
                result = client.run_container(pod, images["hello-world"])
        finally:
            client.close()
    assert (result.exit_code, result.output) == (0, HELLO), result


def test_cri_a_component_and_wordcount_with_a_pods_volumes(
    cri: Cri, images: dict[str, str], tmp_path: Path
) -> None:
    inside, outside = wordcount_folders(tmp_path)
    cri.pull(images["hello-world.component"])
    cri.pull(images["wordcount"])
    with cri.pod("wasmhost") as pod:
        component = cri.run_container(pod, images["hello-world.component"])
        counted = cri.run_container(
            pod, images["wordcount"], mounts=[(inside, "/input", True), (outside, "/output", False)]
        )
    assert (component.exit_code, component.output) == (0, HELLO), component
    assert counted.exit_code == 0, counted
    assert "a.txt" in (outside / "report.txt").read_text()


def test_cri_stop_sends_sigterm_and_a_served_handler_answers_on_the_pods_network(
    cri: Cri, images: dict[str, str], wasm_image: Callable[..., str]
) -> None:
    """A pod on the node's network: the handler listens there; StopContainer (SIGTERM
    first, SIGKILL after the grace period) ends it at once with 143."""
    import httpx

    image = wasm_image("http-server")
    cri.pull(image)
    cri.pull(images["fsprobe"])
    port = _free_port()
    with cri.pod("wasmhost") as pod:
        served = cri.start_container(
            pod, image, annotations={"io.wasmhost.serve": f"127.0.0.1:{port}"}
        )
        try:
            text = ""
            for _ in range(200):
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            assert text == HELLO
        finally:
            cri.stop_container(served)
        sleeper = cri.start_container(pod, images["fsprobe"], args=["sleep", "60000"])
        began = time.monotonic()
        stopped = cri.stop_container(sleeper, grace=30)
        assert time.monotonic() - began < 10  # SIGTERM did it, not the SIGKILL 30 s later
    assert stopped.exit_code == 143, stopped
