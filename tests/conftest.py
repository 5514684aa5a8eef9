"""Shared fixtures: real modules (the artifacts and small WAT modules), an isolated cache.

Every test has a cache folder of its own, but the artifacts come into it compiled:
the session keeps one folder of the artifacts' compiled entries (shared by the
xdist workers), hard-links them into each test's folder, and takes back the ones
a test compiled that it lacked; the same for the runnable copy of the wasmtime
CLI that compare keeps there (71 MB, copied once per folder). A test that puts
the compile cache itself under test (counts compiles or entries, lists, prunes
or corrupts it) is marked ``own_cache`` and starts from an empty folder, as a
user's first run does.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner
from engines import Containerd, Cri, NativeImages, Podman, missing_engines, push_wasm
from registry import Registry, htpasswd

from wasmhost import Host
from wasmhost._files import TEMP_PREFIX
from wasmhost._hashing import content_key

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
HELLO = ARTIFACTS / "hello-world.wasm"
HTTP = ARTIFACTS / "http-server.wasm"
WORDCOUNT = ARTIFACTS / "wordcount.wasm"
NBODY = ARTIFACTS / "nbody.wasm"
FSPROBE = ARTIFACTS / "fsprobe.wasm"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache folder whose artifacts' compiled entries (in ``compiled/``) and runtime
    copies (in ``runtimes/``) the session's tests share (one for all xdist workers:
    each is a process of its own, and files are only ever added by rename)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "shared-cache"
    (folder / "compiled").mkdir(parents=True, exist_ok=True)
    (folder / "runtimes").mkdir(exist_ok=True)
    return folder


# The content keys of the artifacts: only their entries are shared (a test's own
# small modules compile in milliseconds, and thousands of them would make every
# test's seeding slow).
ARTIFACT_KEYS = tuple(content_key(p.read_bytes()) for p in sorted(ARTIFACTS.glob("*.wasm")))


def _entries(compiled: Path) -> Iterator[Path]:
    """The compiled artifacts in ``compiled`` that have their record beside them."""
    for key in ARTIFACT_KEYS:
        try:
            names = os.listdir(compiled / key[:2])
        except OSError:
            continue
        for name in names:
            if name.startswith(key) and name.endswith(".cwasm") and f"{name}.meta" in names:
                yield compiled / key[:2] / name


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target`` by rename (never a half-made name), unless
    ``target`` is there already."""
    if target.exists():
        return
    temporary = target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{target.name}")
    try:
        os.link(source, temporary)
        os.replace(temporary, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def share_entries(source: Path, target: Path) -> None:
    """Hard-link the compiled artifacts (each with its record) of the compile cache folder
    ``source`` into ``target``, in folders as private as the cache wants them.

    A link changes the entry's change time, so the first load of a linked entry
    checks it by its whole hash (as for a copied cache) and renews its record:
    the record is replaced by rename, in that folder only.
    """
    for entry in _entries(source):
        folder = target / entry.parent.name
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _link(entry.with_name(f"{entry.name}.meta"), folder / f"{entry.name}.meta")
        _link(entry, folder / entry.name)


def share_runtimes(source: Path, target: Path) -> None:
    """Hard-link the runtimes that compare made runnable in ``source`` into ``target``."""
    try:
        names = [n for n in os.listdir(source) if not n.startswith(TEMP_PREFIX)]
    except OSError:
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        _link(source / name, target / name)


@pytest.fixture(autouse=True)
def isolated(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """Every test gets its own cache folder and no wasmhost settings from the caller; the
    artifacts are compiled in it already unless the test is marked ``own_cache``."""
    for name in list(os.environ):
        if name.startswith("WASMHOST_") or name in ("DOCKER_CONFIG", "SOURCE_DATE_EPOCH"):
            monkeypatch.delenv(name)
    # Never read the developer's own Docker credentials.
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("no-docker-config")))
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(cache))
    if request.node.get_closest_marker("own_cache"):
        yield cache
        return
    shared = request.getfixturevalue("shared_cache")
    share_entries(shared / "compiled", cache / "compiled")
    share_runtimes(shared / "runtimes", cache / "runtimes")
    yield cache
    share_entries(cache / "compiled", shared / "compiled")
    share_runtimes(cache / "runtimes", shared / "runtimes")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real registry without authentication, for the whole session."""
    server = Registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


REGISTRY_USER, REGISTRY_PASSWORD = "wasm-user", "s3cr3t-p4ss"


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real registry that wants Basic credentials (htpasswd)."""
    folder = tmp_path_factory.mktemp("auth-registry")
    server = Registry(folder, htpasswd(folder / "htpasswd", REGISTRY_USER, REGISTRY_PASSWORD))
    yield server
    server.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Docker config folder of the test's own."""
    folder = tmp_path / "docker"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


@pytest.fixture
def host() -> Iterator[Host]:
    with Host() as h:
        yield h


@pytest.fixture
def wat(tmp_path: Path) -> Callable[[str], Path]:
    """Write a WAT module as a .wasm file in the test's folder and return its path."""
    counter = iter(range(1000))

    def make(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"module{next(counter)}.wasm")
        path.write_bytes(wasmtime.wat2wasm(text))
        return path

    return make


def wasmhost_cli(
    *args: str | bytes | os.PathLike[str],
    input: bytes | None = None,
    timeout: float = 60,
    **kwargs: object,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m wasmhost ARGS`` as a real process."""
    argv = [a if isinstance(a, bytes) else os.fsencode(a) for a in args]
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "wasmhost", *argv],
        input=input,
        capture_output=True,
        timeout=timeout,
        **kwargs,
    )


# click >= 8.2 keeps stderr apart always; 8.1 when asked.
_SEPARATE = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}


def wasmhost_in_process(
    *args: str | os.PathLike[str], input: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``wasmhost ARGS`` through the CLI's entry point in this process, for tests of what
    a command says, exits with and writes rather than of the process (its signals, its
    start, its own stdout descriptor, a guest writing to an inherited descriptor): the
    same answer as :func:`wasmhost_cli` without ~0.1-0.2 s of CPU for a new Python.

    What a command changes in the process (SIGINT's handler, os.environ) is put back,
    and so is the working folder when ``cwd`` is given.
    """
    from wasmhost._cli import main

    argv = [os.fspath(a) for a in args]
    status: object = None
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    environ = dict(os.environ)
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with CliRunner(**_SEPARATE).isolation(input=input) as streams:
            try:
                main(argv)
            except SystemExit as exc:
                status = exc.code
            out, err = streams[0].getvalue(), streams[1].getvalue()
    finally:
        os.chdir(here)
        for number, handler in handlers.items():
            signal.signal(number, handler)
        os.environ.clear()
        os.environ.update(environ)
    code = status if isinstance(status, int) else 0 if status is None else 1
    return subprocess.CompletedProcess(["wasmhost", *argv], code, out, err)


# WAT snippets the tests share.
SPIN = '(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))'
WASI_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
WASI_WRITE = (
    '(import "wasi_snapshot_preview1" "fd_write" '
    "(func $fd_write (param i32 i32 i32 i32) (result i32)))"
)


def printer(text: str, fd: int = 1) -> str:
    """A WASI command that writes ``text`` to ``fd`` and returns."""
    data = text.encode()
    escaped = "".join(f"\\{b:02x}" for b in data)
    return f"""
    (module
      {WASI_WRITE}
      (memory (export "memory") 1)
      (data (i32.const 16) "{escaped}")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const {len(data)}))
        (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))))
    """


def in_threads(work: Callable[[int], object], count: int) -> None:
    """Run ``work(i)`` for i in range(count) at once, and re-raise the first failure."""
    import threading

    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


ENGINE_FIXTURES = {"engines", "native_images", "containerd", "cri", "podman", "wasm_image"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real registry (through any fixture) ``registry``,
    and every one that uses a container engine ``engines``."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if {"registry", "auth_registry"} & names:
            item.add_marker(pytest.mark.registry)
        if ENGINE_FIXTURES & names:
            item.add_marker(pytest.mark.engines)


# -- container engines (tests/engines.py) ------------------------------------------

# What the CRI's `wasmhost` runtime handler runs (the issue-24 contract).
WASMHOST_RUNTIME = Path(sys.executable).with_name("wasmhost-runtime")


@pytest.fixture(scope="session")
def engines() -> None:
    """Skip when this machine cannot run the engines (not root, a command missing);
    in CI (CI=true) fail instead: there a missing engine is a broken job."""
    missing = missing_engines()
    if missing:
        reason = "container engines cannot run here: missing " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: not skipped)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def native_images(engines: None, tmp_path_factory: pytest.TempPathFactory) -> NativeImages:
    """The static native hello and pause images, built once per session."""
    return NativeImages.build(tmp_path_factory.mktemp("native-images"))


@pytest.fixture(scope="session")
def containerd(native_images: NativeImages, registry: Registry) -> Iterator[Containerd]:
    """A containerd of the session's own, with the native hello imported (as
    ``native_images.hello.name``) in its ``default`` and ``k8s.io`` namespaces; its CRI
    has the runtime handlers ``runc`` and ``wasmhost`` (WASMHOST_RUNTIME) and pulls
    from ``registry`` over plain HTTP."""
    daemon = Containerd(
        sandbox_image=native_images.pause,
        runtime_binary=WASMHOST_RUNTIME,
        registry_host=registry.host,
    )
    with daemon:
        daemon.import_image(native_images.hello)
        daemon.import_image(native_images.hello, namespace="k8s.io")
        yield daemon


@pytest.fixture(scope="session")
def cri(containerd: Containerd) -> Iterator[Cri]:
    """A CRI client on the session's containerd."""
    client = containerd.cri()
    yield client
    client.close()


@pytest.fixture(scope="session")
def podman(
    engines: None, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Podman]:
    """podman with storage and configuration of the session's own."""
    with Podman(tmp_path_factory.mktemp("podman"), registry_host=registry.host) as engine:
        yield engine


@pytest.fixture(scope="session")
def wasm_image(registry: Registry) -> Callable[..., str]:
    """``wasm_image("hello-world", *push_args)``: artifacts/NAME.wasm pushed to the
    session's registry as an OCI image (``wasmhost push --format image``), once per
    name and arguments; returns its reference."""
    pushed: dict[tuple[str, ...], str] = {}

    def push(name: str, *extra: str) -> str:
        key = (name, *extra)
        if key not in pushed:
            reference = f"{registry.host}/{name}:v{len(pushed) + 1}"
            pushed[key] = push_wasm(ARTIFACTS / f"{name}.wasm", reference, *extra)
        return pushed[key]

    return push


def count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the modules compiled from now on, in order."""
    import wasmhost._host.host as host_module

    compiled: list[str] = []
    real = host_module.compile_wasm

    def counted(name: str, *args: object) -> object:
        compiled.append(name)
        return real(name, *args)

    monkeypatch.setattr(host_module, "compile_wasm", counted)
    return compiled
