"""Real container engines for the tests: containerd (ctr and the CRI) and podman.

Each engine is started by the tests in a temporary folder of its own (its root,
state, socket and storage there), and stopped with everything it started: tasks,
shims, mounts and the folder itself. Nothing here is a fixture; tests/conftest.py
wraps these in session fixtures.

Example::

    images = NativeImages.build(tmp / "images")
    with Containerd(sandbox_image=images.pause) as containerd:
        containerd.import_image(images.hello)
        done = containerd.ctr_run(images.hello.name)
        assert done.stdout == "Hello from native\\n"

What these engines need on this machine (see /work/shared/ENVIRONMENT.md):
root; podman's default rlimits are above root's hard limits, so every run gets
``--ulimit nofile=1024:1024 --ulimit nproc=1024:1024``; the CRI needs
``restrict_oom_score_adj``; a pause image is built here, since nothing is pulled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNC = Path("/usr/sbin/runc")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"

# The commands each engine needs, and the Debian package that has each.
NEEDED = {
    "containerd": "containerd",
    "ctr": "containerd",
    "podman": "podman",
    "conmon": "conmon",
    "runc": "runc",
    "catatonit": "catatonit",
    "unshare": "util-linux",
    "gcc": "gcc",
    "umoci": "umoci",
    "skopeo": "skopeo",
}

# The annotations the CRI passes on to a runtime handler (the issue-24 contract).
WASM_ANNOTATIONS = ("module.wasm.image/*", "run.oci.handler", "io.wasmhost.*")


def missing_engines() -> list[str]:
    """Why the engines cannot run here: "not root" and each missing command (package)."""
    missing = [] if os.geteuid() == 0 else ["root"]
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    for command, package in NEEDED.items():
        if shutil.which(command, path=path) is None:
            missing.append(f"{command} (Debian package {package})")
    if not Path(RUNC).exists():
        missing.append(f"{RUNC} (Debian package runc)")
    return missing


def _run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 120,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [os.fspath(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(done.args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


# -- images built here ------------------------------------------------------------

HELLO_C = r"""
#include <unistd.h>
int main(void) {
    static const char text[] = "Hello from native\n";
    return write(1, text, sizeof text - 1) == sizeof text - 1 ? 0 : 1;
}
"""

# A pause that exits 0 on SIGTERM or SIGINT: as PID 1 of its namespace it would
# ignore them without handlers.
PAUSE_C = r"""
#include <signal.h>
#include <unistd.h>
static void done(int sig) { (void)sig; _exit(0); }
int main(void) {
    signal(SIGTERM, done);
    signal(SIGINT, done);
    for (;;) pause();
}
"""


@dataclass(frozen=True)
class Image:
    """An image made here: an OCI layout ``layout:tag``, the same as a tar (what
    ``ctr images import`` reads), and ``name``, the reference engines know it by
    once imported (``localhost/NAME:TAG``)."""

    layout: Path
    tag: str
    tar: Path
    name: str

    @property
    def oci(self) -> str:
        """The layout as podman and skopeo name it: ``oci:DIR:TAG``."""
        return f"oci:{self.layout}:{self.tag}"


def static_binary(source: str, output: Path) -> Path:
    """Compile C ``source`` to a static executable at ``output``."""
    c_file = output.with_suffix(".c")
    c_file.write_text(source)
    _run(["gcc", "-static", "-Os", "-o", output, c_file])
    return output


def make_image(folder: Path, name: str, binary: Path, *, tag: str = "1") -> Image:
    """An image of one static ``binary`` at ``/NAME``, its entrypoint, for linux/amd64."""
    layout = folder / name
    ref = f"{layout}:{tag}"
    _run(["umoci", "init", "--layout", layout])
    _run(["umoci", "new", "--image", ref])
    _run(["umoci", "insert", "--image", ref, binary, f"/{name}"])
    _run(
        [
            "umoci",
            "config",
            "--image",
            ref,
            "--os",
            "linux",
            "--architecture",
            "amd64",
            "--config.entrypoint",
            f"/{name}",
        ]
    )
    _run(["umoci", "gc", "--layout", layout])
    tar = folder / f"{name}.tar"
    with tarfile.open(tar, "w") as out:
        for entry in sorted(layout.iterdir()):
            out.add(entry, arcname=entry.name)
    return Image(layout, tag, tar, f"localhost/{name}:{tag}")


@dataclass(frozen=True)
class NativeImages:
    """The native images the engine tests use: ``hello`` prints "Hello from native" and
    exits 0; ``pause`` sleeps until SIGTERM or SIGINT, then exits 0."""

    hello: Image
    pause: Image

    @classmethod
    def build(cls, folder: Path) -> NativeImages:
        folder.mkdir(parents=True, exist_ok=True)
        images = {}
        for name, source in (("hello", HELLO_C), ("pause", PAUSE_C)):
            binary = static_binary(source, folder / f"{name}.bin")
            images[name] = make_image(folder, name, binary)
        return cls(**images)


def push_layout(image: Image, reference: str) -> str:
    """Copy ``image`` to ``reference`` (``HOST:PORT/REPO:TAG``, plain HTTP) with skopeo."""
    _run(["skopeo", "copy", "--dest-tls-verify=false", image.oci, f"docker://{reference}"])
    return reference


def push_wasm(module: Path, reference: str, *extra: str) -> str:
    """Push ``module`` (e.g. ``artifacts/hello-world.wasm``) to ``reference`` over plain
    HTTP as an OCI image (``wasmhost push --format image``); ``extra`` goes to push
    (``--serve 8080``, ``-a K=V``, ``--os wasi``)."""
    _run(
        [sys.executable, "-m", "wasmhost", "push", "--format", "image", "--plain-http",
         *extra, str(module), reference]
    )  # fmt: skip
    return reference


# -- processes and mounts left behind -------------------------------------------------


def _processes() -> Iterator[tuple[int, int, list[str]]]:
    """(pid, ppid, argv) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        yield int(entry.name), ppid, [os.fsdecode(a) for a in argv if a]


def kill_tree(pids: Sequence[int]) -> None:
    """SIGKILL ``pids`` and all their descendants (those found now)."""
    found = set(pids)
    table = list(_processes())
    grew = True
    while grew:
        more = {pid for pid, ppid, _ in table if ppid in found} - found
        found |= more
        grew = bool(more)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def processes_mentioning(text: str) -> list[int]:
    """The processes with ``text`` in an argument (a shim names its daemon's socket)."""
    return [pid for pid, _, argv in _processes() if any(text in a for a in argv)]


def unmount_under(folder: Path) -> None:
    """Unmount everything mounted under ``folder`` in this mount namespace, deepest first."""
    prefix = str(folder.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def remove_folder(folder: Path) -> None:
    unmount_under(folder)
    shutil.rmtree(folder, ignore_errors=True)


# -- containerd -------------------------------------------------------------------------


def containerd_config(
    folder: Path,
    *,
    sandbox_image: str,
    runtime_binary: Path | None,
    registry_host: str | None,
) -> str:
    """containerd's config.toml: everything under ``folder``; the CRI with a ``runc``
    handler and, when ``runtime_binary`` is given, a ``wasmhost`` handler running it."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    handlers: dict[str, tuple[Path, tuple[str, ...]]] = {"runc": (RUNC, ())}
    if runtime_binary is not None:
        handlers["wasmhost"] = (runtime_binary, WASM_ANNOTATIONS)
    lines = [
        "version = 2",
        f'root = "{folder / "root"}"',
        f'state = "{folder / "state"}"',
        "[grpc]",
        f'  address = "{folder / "containerd.sock"}"',
        "[ttrpc]",
        f'  address = "{folder / "containerd.sock.ttrpc"}"',
        f"[{cri}]",
        f'  sandbox_image = "{sandbox_image}"',
        # Root lacks CAP_SYS_RESOURCE here: without this the CRI's oom_score_adj fails.
        "  restrict_oom_score_adj = true",
        f"[{cri}.containerd]",
        '  snapshotter = "native"',
        '  default_runtime_name = "runc"',
    ]
    for name, (binary, passed) in handlers.items():
        listed = json.dumps(list(passed))
        lines += [
            f"[{cri}.containerd.runtimes.{name}]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"  pod_annotations = {listed}",
            f"  container_annotations = {listed}",
            f"[{cri}.containerd.runtimes.{name}.options]",
            f'  BinaryName = "{binary}"',
            # The runtime's --root (NAMESPACE is added), not /run/containerd/runc.
            f'  Root = "{folder / "runtime-root"}"',
        ]
    # A folder of our own, so the CRI never reads the machine's /etc/cni/net.d.
    lines += [f"[{cri}.cni]", '  bin_dir = "/usr/lib/cni"', f'  conf_dir = "{folder / "cni"}"']
    if registry_host is not None:
        lines += [
            f'[{cri}.registry.mirrors."{registry_host}"]',
            f'  endpoint = ["http://{registry_host}"]',
        ]
    return "\n".join(lines) + "\n"


class Containerd:
    """A containerd daemon of the tests' own, in a private mount namespace (the rootfs
    mounts of its containers never show outside it), under catatonit: the shims it
    starts are orphaned on purpose, and on a machine whose PID 1 reaps no orphans
    they would stay zombies.

    ``runtime_binary`` is what the CRI's ``wasmhost`` handler runs; ``registry_host``
    (``127.0.0.1:PORT``) is pulled from over plain HTTP. ``start_seconds`` is how long
    the daemon took to answer.
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        sandbox_image: Image,
        runtime_binary: Path | None = None,
        registry_host: str | None = None,
        node_config: str = "",
    ) -> None:
        # containerd refuses a socket path over 104 bytes ("unix socket path too long"),
        # which pytest's tmp_path under xdist passes: by default a short folder in /tmp.
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
        self.folder = folder.resolve()
        if len(os.fsencode(self.folder / "containerd.sock.ttrpc")) > 104:
            raise ValueError(f"{self.folder} is too long for containerd's sockets (104 bytes)")
        self.sandbox_image = sandbox_image
        self.socket = self.folder / "containerd.sock"
        self.runtime_root = self.folder / "runtime-root"
        self.runtime_binary = runtime_binary
        self.node_config = node_config  # appended to config.toml as it is (a node's tables)
        self.registry_host = registry_host
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0

    def __enter__(self) -> Containerd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        (self.folder / "cni").mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.toml"
        config.write_text(
            containerd_config(
                self.folder,
                sandbox_image=self.sandbox_image.name,
                runtime_binary=self.runtime_binary,
                registry_host=self.registry_host,
            )
            + self.node_config
        )
        log = self.folder / "containerd.log"
        began = time.monotonic()
        argv = ["catatonit", "--", "unshare", "--mount", "--propagation", "private"]
        argv += ["containerd", "--config", str(config)]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        deadline = began + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-4000:]
                self.stop()
                raise RuntimeError(f"containerd did not start:\n{text}")
            time.sleep(0.02)
        self.start_seconds = time.monotonic() - began
        self.import_image(self.sandbox_image, namespace="k8s.io")

    def _answers(self) -> bool:
        try:
            return self.ctr("version", check=False, timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        """Stop every task and the daemon, kill what is left (shims, containers),
        unmount and remove the folder. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):
                self._delete_everything()
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        # A shim (and its containers) outlives its daemon by design.
        kill_tree(processes_mentioning(str(self.socket)))
        remove_folder(self.folder)

    def _delete_everything(self) -> None:
        namespaces = self.ctr("namespaces", "list", "-q", timeout=20).stdout.split()
        for namespace in namespaces:
            tasks = self.ctr("tasks", "list", "-q", namespace=namespace, timeout=20)
            for task in tasks.stdout.split():
                self.ctr("tasks", "delete", "--force", task, namespace=namespace, check=False)
            containers = self.ctr("containers", "list", "-q", namespace=namespace, timeout=20)
            if containers.stdout.split():
                self.ctr("containers", "delete", *containers.stdout.split(), namespace=namespace)

    def ctr(
        self,
        *args: str | os.PathLike[str],
        namespace: str = "default",
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``ctr --address SOCKET --namespace NAMESPACE ARGS`` (native snapshotter)."""
        env = dict(os.environ, CONTAINERD_SNAPSHOTTER="native")
        argv = ["ctr", "--address", str(self.socket), "--namespace", namespace, *args]
        return _run(argv, timeout=timeout, check=check, env=env)

    def import_image(self, image: Image, *, namespace: str = "default") -> str:
        """Import ``image``'s tar as ``image.name``; ``--all-platforms``, since without it
        ctr skips an image for another platform (a wasip1 one) without a word."""
        base = image.name.rsplit(":", 1)[0]
        self.ctr(
            "images", "import", "--all-platforms", "--base-name", base, image.tar,
            namespace=namespace,
        )  # fmt: skip
        return image.name

    def pull(self, reference: str, *, namespace: str = "default") -> str:
        """Pull ``reference`` from the local registry over plain HTTP (all platforms:
        a Wasm image is not linux/amd64)."""
        self.ctr(
            "images", "pull", "--plain-http", "--all-platforms", reference, namespace=namespace
        )
        return reference

    def ctr_run(
        self,
        image: str,
        *,
        runtime_binary: Path = RUNC,
        annotations: Mapping[str, str] | None = None,
        mounts: Sequence[tuple[Path, str]] = (),
        args: Sequence[str] = (),
        timeout: float = 60,
        extra: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """``ctr run --rm --runc-binary RUNTIME [--annotation K=V] [--mount ...] IMAGE ID
        ARGS``: its exit status is the container's. ``mounts`` are (host path, container
        path) pairs, bound read-only."""
        options = ["--rm", "--runc-binary", str(runtime_binary)]
        # The runtime's --root (NAMESPACE is added) and the stdio FIFOs under our folder,
        # not /run/containerd/runc and /run/containerd/fifo.
        options += ["--runc-root", str(self.runtime_root), "--fifo-dir", str(self.folder / "fifo")]
        options += extra
        for key, value in (annotations or {}).items():
            options += ["--annotation", f"{key}={value}"]
        for source, target in mounts:
            options += ["--mount", f"type=bind,src={source},dst={target},options=rbind:ro"]
        name = f"t-{uuid.uuid4().hex[:12]}"
        return self.ctr("run", *options, image, name, *args, timeout=timeout, check=False)

    def remove(self, name: str) -> None:
        """Kill a task started with ``ctr run -d`` and remove it and its container."""
        self.ctr("tasks", "kill", "--signal", "SIGKILL", name, check=False)
        for _ in range(200):
            if self.ctr("tasks", "delete", name, check=False).returncode == 0:
                break
            time.sleep(0.05)
        self.ctr("containers", "delete", name, check=False)

    def cri(self) -> Cri:
        """A CRI client on this daemon's socket."""
        return Cri(self.socket, self.folder / "pod-logs")


# -- the CRI, as a kubelet calls it ---------------------------------------------------


@dataclass(frozen=True)
class ContainerResult:
    exit_code: int
    reason: str
    log: str
    """The container's log as the CRI writes it: ``TIME STREAM TAG TEXT`` lines."""

    @property
    def output(self) -> str:
        """The text of the log lines (stdout and stderr, as they came)."""
        texts = []
        for line in self.log.splitlines():
            parts = line.split(" ", 3)
            texts.append(parts[3] if len(parts) == 4 else "")
        return "\n".join(texts) + ("\n" if texts else "")


def _result(status: Any) -> ContainerResult:
    """An exited container's ContainerStatus, with its log read."""
    log = Path(status.log_path).read_text(errors="replace")
    return ContainerResult(status.exit_code, status.reason, log)


class Cri:
    """The CRI's runtime and image services over gRPC (``cri_api.v1``), called as a
    kubelet does: a pod sandbox, then containers in it."""

    def __init__(self, socket: Path, log_folder: Path) -> None:
        # grpc and the generated stubs are untyped: the stubs and messages are Any here.
        import grpc  # type: ignore[import-untyped]
        from cri_api.v1 import api_pb2, api_pb2_grpc

        self.api: Any = api_pb2
        self.channel: Any = grpc.insecure_channel(f"unix://{socket}")
        stubs: Any = api_pb2_grpc
        self.runtime: Any = stubs.RuntimeServiceStub(self.channel)
        self.images: Any = stubs.ImageServiceStub(self.channel)
        self.log_folder = log_folder

    def close(self) -> None:
        self.channel.close()

    def pull(self, reference: str) -> str:
        """PullImage (the config's registry mirror makes the local registry plain HTTP)."""
        request = self.api.PullImageRequest(image=self.api.ImageSpec(image=reference))
        return str(self.images.PullImage(request, timeout=120).image_ref)

    @contextlib.contextmanager
    def pod(
        self,
        handler: str,
        *,
        host_network: bool = True,
        annotations: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """RunPodSandbox with ``runtime_handler=handler``; yields (sandbox id, its config)
        and stops and removes the sandbox afterwards. The pod network needs a CNI
        configuration in the daemon's cni folder; host network needs none."""
        api = self.api
        name = f"pod-{uuid.uuid4().hex[:10]}"
        log_directory = self.log_folder / name
        log_directory.mkdir(parents=True, exist_ok=True)
        options = api.NamespaceOption(network=api.NODE if host_network else api.POD)
        config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, uid=name, namespace="default"),
            # No hostname: with the host's network runc refuses one ("unable to set
            # hostname without a private UTS namespace").
            hostname="" if host_network else name,
            log_directory=str(log_directory),
            annotations=dict(annotations or {}),
            linux=api.LinuxPodSandboxConfig(
                security_context=api.LinuxSandboxSecurityContext(namespace_options=options)
            ),
        )
        request = api.RunPodSandboxRequest(config=config, runtime_handler=handler)
        sandbox = self.runtime.RunPodSandbox(request, timeout=60).pod_sandbox_id
        try:
            yield sandbox, config
        finally:
            self.runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox))
            self.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox))

    def run_container(
        self,
        pod: tuple[str, Any],
        image: str,
        *,
        args: Sequence[str] = (),
        annotations: Mapping[str, str] | None = None,
        mounts: Sequence[tuple[Path, str, bool]] = (),
        timeout: float = 60,
    ) -> ContainerResult:
        """CreateContainer, StartContainer, then ContainerStatus until it exits; its log
        is read and the container removed. ``mounts``: (host path, container path,
        read-only)."""
        api = self.api
        container = self.start_container(
            pod, image, args=args, annotations=annotations, mounts=mounts
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                status = self.runtime.ContainerStatus(
                    api.ContainerStatusRequest(container_id=container)
                ).status
                if status.state == api.CONTAINER_EXITED:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"container {container} still runs after {timeout} s")
                time.sleep(0.02)
            return _result(status)
        finally:
            self.runtime.StopContainer(api.StopContainerRequest(container_id=container))
            self.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=container))

    def start_container(
        self,
        pod: tuple[str, Any],
        image: str,
        *,
        args: Sequence[str] = (),
        annotations: Mapping[str, str] | None = None,
        mounts: Sequence[tuple[Path, str, bool]] = (),
    ) -> str:
        """CreateContainer and StartContainer: the container's id (stop and remove it
        with :meth:`stop_container`)."""
        api = self.api
        sandbox, sandbox_config = pod
        name = f"c-{uuid.uuid4().hex[:10]}"
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name),
            image=api.ImageSpec(image=image),
            args=list(args),
            annotations=dict(annotations or {}),
            mounts=[
                api.Mount(host_path=str(host), container_path=inside, readonly=readonly)
                for host, inside, readonly in mounts
            ],
            log_path=f"{name}.log",
        )
        request = api.CreateContainerRequest(
            pod_sandbox_id=sandbox, config=config, sandbox_config=sandbox_config
        )
        container = str(self.runtime.CreateContainer(request, timeout=60).container_id)
        try:
            self.runtime.StartContainer(api.StartContainerRequest(container_id=container))
        except BaseException:
            self.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=container))
            raise
        return container

    def stop_container(self, container: str, grace: int = 30) -> ContainerResult:
        """StopContainer as a kubelet stops one (SIGTERM, then SIGKILL after ``grace``
        seconds), then its status and log; the container is removed."""
        api = self.api
        try:
            self.runtime.StopContainer(
                api.StopContainerRequest(container_id=container, timeout=grace), timeout=grace + 30
            )
            return _result(
                self.runtime.ContainerStatus(
                    api.ContainerStatusRequest(container_id=container)
                ).status
            )
        finally:
            self.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=container))


# -- podman -------------------------------------------------------------------------------


class Podman:
    """podman with configuration and storage of its own under ``folder`` (vfs: no
    mounts to leave behind); ``registry_host`` is trusted over plain HTTP."""

    def __init__(self, folder: Path, *, registry_host: str | None = None) -> None:
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.runtime_root = self.folder / "runtime-root"
        conf = self.folder / "containers.conf"
        conf.write_text(
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.folder / "events.log"}"\n'
            f'tmp_dir = "{self.folder / "tmp"}"\n'
        )
        storage = self.folder / "storage.conf"
        storage.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'graphroot = "{self.folder / "graph"}"\n'
            f'runroot = "{self.folder / "run"}"\n'
        )
        registries = self.folder / "registries.conf"
        text = "unqualified-search-registries = []\n"
        if registry_host is not None:
            text += f'[[registry]]\nlocation = "{registry_host}"\ninsecure = true\n'
        registries.write_text(text)
        self.env = dict(
            os.environ,
            CONTAINERS_CONF=str(conf),
            CONTAINERS_STORAGE_CONF=str(storage),
            CONTAINERS_REGISTRIES_CONF=str(registries),
        )

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def podman(
        self, *args: str | os.PathLike[str], timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``podman ARGS`` under catatonit, which reaps conmon: conmon double-forks,
        and this machine's PID 1 reaps orphans only seconds later (zombies meanwhile)."""
        argv = ["catatonit", "--", "podman", *args]
        return _run(argv, timeout=timeout, check=check, env=self.env)

    def podman_run(
        self,
        image: str,
        *,
        runtime: Path = RUNC,
        args: Sequence[str] = (),
        extra: Sequence[str] = (),
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """``podman --runtime RUNTIME --runtime-flag root=DIR run --rm ... IMAGE ARGS``;
        ``image`` is ``oci:DIR:TAG`` or a registry reference. The network is ``none``
        unless ``extra`` says otherwise (no bridge left on the host); stderr has
        podman's copy progress too."""
        options = ["--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        if not any(e.startswith(("--network", "--net")) for e in extra):
            options.append("--network=none")
        return self.podman(
            "--runtime", runtime, "--runtime-flag", f"root={self.runtime_root}",
            "run", *options, *extra, image, *args,
            timeout=timeout, check=False,
        )  # fmt: skip

    def stop(self) -> None:
        """Remove every container (podman has no daemon) and the folder."""
        with contextlib.suppress(Exception):
            self.podman("--runtime", RUNC, "--runtime-flag", f"root={self.runtime_root}",
                        "rm", "--all", "--force", timeout=60, check=False)  # fmt: skip
        kill_tree(processes_mentioning(str(self.folder)))
        remove_folder(self.folder)
