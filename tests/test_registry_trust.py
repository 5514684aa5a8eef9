"""The registry client and store under attack: credentials stay home, pulled files are
the user's own, downloads are bounded, and every failure is one clear line."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HELLO, HTTP, wasmhost_cli
from hostile import Hostile
from registry import Registry, waits_counted

from wasmhost import (
    ArtifactError,
    AuthenticationError,
    ConfigError,
    IntegrityError,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
)

pytestmark = pytest.mark.server  # starts HTTP servers (uvicorn, scripted registries)

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
USER, SECRET = "alice", "correct-horse-battery-staple"
BASIC = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest(
    layer_digest: str,
    layer_size: int,
    media_type: str = "application/wasm",
    config_type: str = "application/vnd.wasm.config.v1+json",
) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": config_type,
                "digest": sha256(b"{}"),
                "size": 2,
            },
            "layers": [{"mediaType": media_type, "digest": layer_digest, "size": layer_size}],
        }
    ).encode()


def artifact(module: bytes, repo: str = "app", tag: str = "v1") -> dict[str, Any]:
    """Routes that serve ``module`` as ``repo:tag``, as a registry would."""
    body = manifest(sha256(module), len(module))
    return {
        f"/v2/{repo}/manifests/{tag}": (200, {"Content-Type": MANIFEST}, body),
        f"/v2/{repo}/blobs/{sha256(module)}": (200, {}, module),
        f"/v2/{repo}/blobs/{sha256(b'{}')}": (200, {}, b"{}"),
    }


def image(layer: bytes) -> dict[str, Any]:
    """Routes that serve a Wasm container image ``img:v1`` with this (gzipped tar) layer."""
    body = manifest(
        sha256(layer),
        len(layer),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.config.v1+json",
    )
    return {
        "/v2/img/manifests/v1": (200, {}, body),
        f"/v2/img/blobs/{sha256(layer)}": (200, {}, layer),
    }


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Hostile] = []

    def start(routes: dict[str, Any]) -> Hostile:
        server = Hostile(routes)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "cache"), **extra)
    for name in ("WASMHOST_REGISTRY", "WASMHOST_REGISTRY_USERNAME", "WASMHOST_REGISTRY_PASSWORD"):
        env.pop(name, None)
    return env


def one_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The single ``Error:`` line of a failed command (and no traceback)."""
    err = done.stderr.decode()
    assert done.returncode == 1, (done.returncode, err)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: "), err
    assert "unexpectedly" not in err, err
    return err


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- 1. credentials go only where they belong -----------------------------------


def basic_registry(serve: Any, routes: dict[str, Any]) -> Hostile:
    """A registry that wants Basic credentials on every request, then answers ``routes``."""

    def guarded(answer: Any) -> Any:
        def check(handler: Any) -> Any:
            if handler.headers.get("Authorization") != BASIC:
                return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b"{}"
            return answer(handler) if callable(answer) else answer

        return check

    return serve({path: guarded(answer) for path, answer in routes.items()})  # type: ignore[no-any-return]


def test_a_redirect_target_never_gets_credentials(serve: Any, tmp_path: Path) -> None:
    """A blob redirected to a host that asks for credentials (naming itself as realm):
    nothing is sent to it, and the error names it."""
    module = HELLO.read_bytes()
    elsewhere = serve({})
    elsewhere.ask_for_a_token("/blob", "harvested")
    routes = artifact(module)
    routes[f"/v2/app/blobs/{sha256(module)}"] = (
        307,
        {"Location": f"http://{elsewhere.host}/blob"},
        b"",
    )
    registry = basic_registry(serve, routes)
    client = RegistryClient(
        plain_http=True, credentials={registry.host: (USER, SECRET)}, cache_dir=tmp_path
    )
    with pytest.raises(AuthenticationError, match=f"{elsewhere.host}, where registry") as info:
        client.pull(f"{registry.host}/app:v1", tmp_path / "out.wasm")
    assert info.value.registry == registry.host
    assert [path for _, path, _ in elsewhere.seen] == ["/blob"]  # no token request
    assert all("Authorization" not in headers for _, _, headers in elsewhere.seen)
    assert not (tmp_path / "out.wasm").exists()


def test_a_redirect_within_the_registry_keeps_its_credentials(serve: Any, tmp_path: Path) -> None:
    module = HELLO.read_bytes()
    routes = artifact(module)
    routes[f"/v2/app/blobs/{sha256(module)}"] = (302, {"Location": "/storage/blob"}, b"")
    routes["/storage/blob"] = (200, {}, module)
    registry = basic_registry(serve, routes)
    client = RegistryClient(
        plain_http=True, credentials={registry.host: (USER, SECRET)}, cache_dir=tmp_path
    )
    pulled = client.pull(f"{registry.host}/app:v1", tmp_path / "out.wasm")
    assert pulled.path.read_bytes() == module


def test_netrc_credentials_never_reach_a_redirect_target(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would add ~/.netrc's credentials to any request without some, and
    replace the registry's own with them."""
    netrc = tmp_path / "netrc"
    netrc.write_text("default login netrcuser password netrcsecret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    module = HELLO.read_bytes()
    cdn = serve({"/blob": (200, {}, module)})
    routes = artifact(module)
    routes[f"/v2/app/blobs/{sha256(module)}"] = (307, {"Location": f"http://{cdn.host}/blob"}, b"")
    registry = basic_registry(serve, routes)
    client = RegistryClient(
        plain_http=True, credentials={registry.host: (USER, SECRET)}, cache_dir=tmp_path
    )
    assert client.pull(f"{registry.host}/app:v1", tmp_path / "o.wasm").path.read_bytes() == module
    assert cdn.seen
    assert all("Authorization" not in headers for _, _, headers in cdn.seen)


def test_an_unreachable_redirect_target_is_named_and_not_blamed_on_tls(
    serve: Any, tmp_path: Path
) -> None:
    module = HELLO.read_bytes()
    routes = artifact(module)
    routes[f"/v2/app/blobs/{sha256(module)}"] = (307, {"Location": "http://127.0.0.1:1/b"}, b"")
    server = serve(routes)
    client = waits_counted(RegistryClient(plain_http=True, cache_dir=tmp_path))
    with pytest.raises(RegistryUnreachable, match=r"127\.0\.0\.1:1, where registry") as info:
        client.pull(f"{server.host}/app:v1", tmp_path / "o.wasm")
    assert info.value.fix == ""


def test_a_303_after_an_upload_is_followed_without_a_body(serve: Any, tmp_path: Path) -> None:
    server = serve(
        {
            "POST /v2/app/blobs/uploads/": (202, {"Location": "/upload/1"}, b""),
            "PUT /upload/1": (303, {"Location": "/done"}, b""),
            "GET /done": (201, {}, b""),
            "PUT /v2/app/manifests/v1": (201, {}, b""),
        }
    )
    client = RegistryClient(plain_http=True, cache_dir=tmp_path, timeout=2)
    client.push(HELLO, f"{server.host}/app:v1")
    done = [headers for method, path, headers in server.seen if path == "/done"]
    assert done
    assert all("Content-Length" not in headers for headers in done)


def test_a_registry_message_cannot_forge_lines(serve: Any, tmp_path: Path) -> None:
    message = json.dumps({"errors": [{"message": "gone\nError: fake second line\r"}]}).encode()
    server = serve({"/v2/app/manifests/v1": (404, {}, message)})
    err = one_line(
        wasmhost_cli("inspect", "--plain-http", f"{server.host}/app:v1", env=cli_env(tmp_path))
    )
    assert "gone Error: fake second line" in err


def test_redirect_loops_and_downgrades_are_refused(serve: Any, tmp_path: Path) -> None:
    module = HELLO.read_bytes()
    routes = artifact(module)
    routes[f"/v2/app/blobs/{sha256(module)}"] = (307, {"Location": "/loop"}, b"")
    routes["/loop"] = (307, {"Location": "/loop"}, b"")
    server = serve(routes)
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    with pytest.raises(RegistryError, match=r"redirected blob .* more than 5 times"):
        client.pull(f"{server.host}/app:v1", tmp_path / "out.wasm")
    routes[f"/v2/app/blobs/{sha256(module)}"] = (307, {"Location": "file:///etc/passwd"}, b"")
    with pytest.raises(RegistryError, match="not HTTPS; refusing"):
        client.pull(f"{server.host}/app:v1", tmp_path / "out.wasm")


def test_secrets_never_reach_errors_logs_debug_output_or_reprs(
    serve: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = serve({})
    refusing.routes["/v2/app/manifests/v1"] = (
        401,
        {"WWW-Authenticate": 'Basic realm="registry"'},
        b'{"errors": [{"message": "denied"}]}',
    )
    ref = f"{refusing.host}/app:v1"
    caplog.set_level(logging.DEBUG)
    client = RegistryClient(
        plain_http=True, credentials={refusing.host: (USER, SECRET)}, cache_dir=tmp_path
    )
    with pytest.raises(AuthenticationError, match="refused the credentials") as info:
        client.inspect(ref)
    done = wasmhost_cli(
        "--debug",
        "inspect",
        "--plain-http",
        "-u",
        USER,
        "--password-stdin",
        ref,
        input=SECRET.encode() + b"\n",
        env=cli_env(tmp_path),
    )
    assert b"debug: wasmhost.registry: GET" in done.stderr  # --debug did log
    seen = [
        str(info.value),
        repr(info.value),
        repr(info.value.args),
        repr(client),
        caplog.text,
        done.stdout.decode(),
        done.stderr.decode(),
    ]
    encoded = BASIC.split()[1]
    for text in seen:
        assert SECRET not in text, text
        assert encoded not in text, text


# -- 2. pulled files are independent files --------------------------------------


def test_pulled_files_are_the_users_own_copies(registry: Registry, tmp_path: Path) -> None:
    client = RegistryClient(plain_http=True, cache_dir=tmp_path / "cache")
    ref = client.push(HELLO, f"{registry.host}/copies:v1").reference
    first = client.pull(ref, tmp_path / "a.wasm").path
    second = client.pull(ref, tmp_path / "b.wasm").path
    blob = client.fetch(ref).path
    inodes = {os.stat(p).st_ino for p in (first, second, blob)}
    assert len(inodes) == 3
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    with open(first, "r+b") as f:  # edited in place, as a careless user would
        f.seek(100)
        f.write(b"XXXX")
    assert second.read_bytes() == HELLO.read_bytes()
    assert client.fetch(ref).path.read_bytes() == HELLO.read_bytes()
    done = wasmhost_cli("run", "--plain-http", ref, env=cli_env(tmp_path))
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n"), done.stderr
    for _ in range(3):
        client.pull(ref, tmp_path / "a.wasm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wasm", "b.wasm", "cache"]
    assert (tmp_path / "a.wasm").read_bytes() == HELLO.read_bytes()


def test_a_pull_killed_mid_download_leaves_no_temporary_file(serve: Any, tmp_path: Path) -> None:
    size = 64 << 20
    module = b"\0asm\x01\0\0\0" + bytes(size - 8)
    routes = artifact(module)
    started = []

    def trickle(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        started.append(time.monotonic())
        try:
            for offset in range(0, size, 1 << 20):  # 1 MiB every 50 ms: ~3 s in all
                handler.wfile.write(module[offset : offset + (1 << 20)])
                time.sleep(0.05)
        except OSError:
            pass

    routes[f"/v2/app/blobs/{sha256(module)}"] = trickle
    server = serve(routes)
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "wasmhost", "pull", "--plain-http", f"{server.host}/app:v1"],
        cwd=out,
        env=cli_env(tmp_path),
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while (not started or time.monotonic() - started[0] < 0.5) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started, "the download never started"
    child.send_signal(signal.SIGKILL)
    child.wait()
    stored = files_under(tmp_path / "cache" / "oci")
    assert all(".tmp-" not in name for name in stored), stored
    assert [name for name in stored if name.startswith("blobs/")] == [
        f"blobs/sha256/{sha256(manifest(sha256(module), size))[7:]}"
    ]
    assert list(out.iterdir()) == []


def test_stale_temporary_files_are_swept(registry: Registry, tmp_path: Path) -> None:
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    ref = client.push(HELLO, f"{registry.host}/sweep:v1").reference
    folder = tmp_path / "oci" / "blobs" / "sha256"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".tmp-killed", folder / ".tmp-writing"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    hours_ago = time.time() - 7200
    os.utime(stale, (hours_ago, hours_ago))
    client.pull(ref, tmp_path / "h.wasm")
    assert not stale.exists()
    assert fresh.exists()  # perhaps another pull's, still being written


# -- 3. downloads are bounded ----------------------------------------------------


def test_a_module_over_max_size_is_refused_before_download(serve: Any, tmp_path: Path) -> None:
    routes = artifact(HELLO.read_bytes())
    routes["/v2/app/manifests/huge"] = (200, {}, manifest(sha256(b"never"), 1 << 40))
    server = serve(routes)
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    with pytest.raises(ArtifactError, match=r"is 1 TiB, over the maximum of 1 GiB") as info:
        client.pull(f"{server.host}/app:huge", tmp_path / "x.wasm")
    assert info.value.fix == "max-size"
    assert "--" not in str(info.value)
    assert not any("/blobs/" in path for _, path, _ in server.seen)
    small = RegistryClient(plain_http=True, cache_dir=tmp_path, max_size=1000)
    with pytest.raises(ArtifactError, match="over the maximum of 1000 bytes"):
        small.pull(f"{server.host}/app:v1", tmp_path / "x.wasm")
    with pytest.raises(ConfigError, match="max_size"):
        RegistryClient(max_size=0)
    err = one_line(
        wasmhost_cli("pull", "--plain-http", f"{server.host}/app:huge", env=cli_env(tmp_path))
    )
    assert "pass a larger --max-size" in err
    done = wasmhost_cli(
        "run", "--plain-http", "--max-size", "1KiB", f"{server.host}/app:v1", env=cli_env(tmp_path)
    )
    assert "over the maximum of 1 KiB" in one_line(done)
    done = wasmhost_cli(
        "run", "--plain-http", "--max-size", "1MiB", f"{server.host}/app:v1", env=cli_env(tmp_path)
    )
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n")


def test_a_download_stops_at_its_declared_size(serve: Any, tmp_path: Path) -> None:
    module = HELLO.read_bytes()
    routes = artifact(module)
    sent: list[int] = []

    def endless(handler: Any) -> None:  # no Content-Length: bytes until the client hangs up
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(module)
        try:
            for _ in range(1024):
                handler.wfile.write(bytes(1 << 20))
                sent.append(1)
        except OSError:
            pass

    routes[f"/v2/app/blobs/{sha256(module)}"] = endless
    server = serve(routes)
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    with pytest.raises(IntegrityError, match=r"expected .* bytes"):
        client.pull(f"{server.host}/app:v1", tmp_path / "x.wasm")
    assert len(sent) < 1024  # the client hung up long before the server was done
    routes[f"/v2/app/blobs/{sha256(module)}"] = (200, {}, module + bytes(1 << 20))
    with pytest.raises(IntegrityError, match=f"is {len(module) + (1 << 20)} bytes, not the"):
        client.pull(f"{server.host}/app:v1", tmp_path / "x.wasm")
    assert not client.store.has_blob(sha256(module))
    assert not (tmp_path / "x.wasm").exists()


def test_an_image_layer_holding_a_module_over_max_size_is_refused(
    serve: Any, tmp_path: Path
) -> None:
    """A small layer whose tar header claims a huge module: refused before unpacking."""
    header = tarfile.TarInfo("module.wasm")
    header.size = 8 << 30
    layer = gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024))
    server = serve(image(layer))
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    with pytest.raises(ArtifactError, match="is 8 GiB, over the maximum of 1 GiB"):
        client.fetch(f"{server.host}/img:v1")
    assert [p for p in files_under(tmp_path) if "unpacked" in p or ".tmp" in p] == []


def _in_small_mount(options: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run wasmhost with its cache on a tmpfs mounted with ``options`` (or, for
    ``bind-ro``, on the folder as it is, read-only), in a private mount namespace (so
    nothing outlives the test): a real full or read-only file system."""
    cache = tmp_path / "mnt"
    cache.mkdir(exist_ok=True)
    mount = (
        f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache}"
        if options == "bind-ro"
        else f"mount -t tmpfs -o {options} tmpfs {cache}"
    )
    script = (
        f"{mount} && {sys.executable} -m wasmhost {' '.join(argv)}; status=$?; "
        f"find {cache} -type f | sort; exit $status"
    )
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        capture_output=True,
        env=dict(os.environ, WASMHOST_CACHE_DIR=str(cache)),
        timeout=120,
    )


@pytest.mark.root
def test_a_full_store_is_one_line_and_keeps_no_partial_blob(serve: Any, tmp_path: Path) -> None:
    module = b"\0asm\x01\0\0\0" + bytes((2 << 20) - 8)
    server = serve(artifact(module))
    done = _in_small_mount("size=1m", tmp_path, "pull", "--plain-http", f"{server.host}/app:v1")
    err = one_line(done)
    assert "cannot write the store" in err, err
    assert "No space left on device" in err, err
    assert "--cache-dir" not in err
    assert "WASMHOST_CACHE_DIR" in err
    stored = done.stdout.decode().split()
    assert not any(sha256(module)[7:] in name or ".tmp-" in name for name in stored), stored


@pytest.mark.root
def test_a_full_store_while_unpacking_an_image_is_one_line(serve: Any, tmp_path: Path) -> None:
    """A 3 MiB module in a layer of a few KB: the download fits, the unpacked module not."""
    module = b"\0asm\x01\0\0\0" + bytes((3 << 20) - 8)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("module.wasm")
        info.size = len(module)
        tar.addfile(info, io.BytesIO(module))
    server = serve(image(gzip.compress(raw.getvalue())))
    done = _in_small_mount("size=1m", tmp_path, "pull", "--plain-http", f"{server.host}/img:v1")
    err = one_line(done)
    assert "cannot write the store" in err
    assert "No space left on device" in err


@pytest.mark.root
def test_a_damaged_blob_in_a_read_only_store_is_one_line(serve: Any, tmp_path: Path) -> None:
    server = serve(artifact(HELLO.read_bytes()))
    ref = f"{server.host}/app:v1"
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "mnt"))
    assert (
        wasmhost_cli("pull", "--plain-http", ref, "-o", tmp_path / "h.wasm", env=env).returncode
        == 0
    )
    blob = tmp_path / "mnt" / "oci" / "blobs" / "sha256" / sha256(HELLO.read_bytes())[7:]
    blob.chmod(0o644)
    blob.write_bytes(b"\0asm\x01\0\0\0" + bytes(blob.stat().st_size - 8))
    err = one_line(_in_small_mount("bind-ro", tmp_path, "run", "--offline", ref))
    assert "is damaged (and could not be removed: Read-only file system)" in err


@pytest.mark.root
def test_a_read_only_store_is_one_line(serve: Any, tmp_path: Path) -> None:
    server = serve(artifact(HELLO.read_bytes()))
    done = _in_small_mount("ro", tmp_path, "run", "--plain-http", f"{server.host}/app:v1")
    err = one_line(done)
    assert "Read-only file system" in err
    assert "pass --cache-dir (or set WASMHOST_CACHE_DIR) with a writable folder" in err


# -- 4. every failure is one clear line -----------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pull", "127.0.0.1:99999/x:y"], "port 99999 is not between 1 and 65535"),
        (
            ["push", "--oci-layout", str(HELLO), "/proc/layout:img"],
            "cannot write the OCI layout at /proc/layout",
        ),
        (["bundle", str(HELLO), "/proc/bundle"], "cannot write the bundle at /proc/bundle"),
        (  # (an existing file is described: see test_components.py)
            ["inspect", "artifacts/missing.wasm"],
            "artifacts/missing.wasm: no such file; check the path to the module.",
        ),
        (
            ["k8s", "--runtime", "crun", "artifacts/http-server.wasm"],
            "is a file here, not a registry reference; push it as an image first",
        ),
        (["pull", "hello.wasm"], "hello.wasm looks like a file name, not a registry reference"),
    ],
    ids=["bad-port", "layout-in-proc", "bundle-in-proc", "inspect-file", "k8s-file", "pull-file"],
)
def test_careless_input_is_one_clear_line(tmp_path: Path, argv: list[str], message: str) -> None:
    started = time.monotonic()
    done = wasmhost_cli(*argv, cwd=HTTP.parent.parent, env=cli_env(tmp_path))
    assert message in one_line(done)
    assert time.monotonic() - started < 20  # nothing was tried on Docker Hub (no retries)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (5, "the auth of {host} is not base64 of user:password"),
        ("not base64!", "the auth of {host} is not base64 of user:password"),
        (base64.b64encode(b"no-colon").decode(), "is not base64 of user:password"),
        ({"x": 1}, "is not base64 of user:password"),
    ],
    ids=["number", "not-base64", "no-colon", "object"],
)
def test_a_broken_docker_config_entry_names_the_file(
    serve: Any, docker_config: Path, tmp_path: Path, auth: object, message: str
) -> None:
    server = serve(artifact(HELLO.read_bytes()))
    config = docker_config / "config.json"
    config.write_text(json.dumps({"auths": {server.host: {"auth": auth}}}))
    with pytest.raises(ConfigError, match=str(config)) as info:
        RegistryClient(plain_http=True, cache_dir=tmp_path).inspect(f"{server.host}/app:v1")
    assert message.format(host=server.host) in str(info.value)
    env = cli_env(tmp_path, DOCKER_CONFIG=str(docker_config))
    err = one_line(wasmhost_cli("inspect", "--plain-http", f"{server.host}/app:v1", env=env))
    assert str(config) in err


def test_offline_hints_name_options_the_command_has(serve: Any, tmp_path: Path) -> None:
    server = serve(artifact(HELLO.read_bytes()))
    ref = f"{server.host}/app:v1"
    env = cli_env(tmp_path)
    assert (
        wasmhost_cli("pull", "--plain-http", ref, "-o", tmp_path / "a.wasm", env=env).returncode
        == 0
    )
    assert wasmhost_cli("inspect", "--plain-http", ref, env=env).returncode == 0
    server.stop()
    client = RegistryClient(plain_http=True, cache_dir=tmp_path / "cache", timeout=1)
    with pytest.raises(RegistryUnreachable, match="a copy pulled earlier is stored") as info:
        client.pull(ref, tmp_path / "b.wasm")
    assert info.value.fix == "offline"
    assert "--offline" not in str(info.value)
    assert "offline=True" in str(info.value)
    for command in ("pull", "inspect", "run"):
        err = one_line(wasmhost_cli(command, "--plain-http", ref, env=env))
        assert "a copy pulled earlier is stored; pass --offline to use it" in err, err
    pulled = wasmhost_cli("pull", "--offline", ref, "-o", tmp_path / "b.wasm", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "b.wasm").read_bytes() == HELLO.read_bytes()
    inspected = wasmhost_cli("inspect", "--offline", "--json", ref, env=env)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["config"] == {}
    for command in ("pull", "serve"):
        never = wasmhost_cli(command, "--offline", f"{server.host}/other:v1", env=env)
        assert "has not been pulled before" in one_line(never)
        assert "run once without --offline" in one_line(never)


def test_tls_to_a_plain_http_registry_says_plain_http_with_a_stored_copy_too(
    registry: Registry, tmp_path: Path
) -> None:
    ref = f"{registry.host}/speaks-http:v1"
    env = cli_env(tmp_path)
    RegistryClient(plain_http=True, cache_dir=tmp_path / "push").push(HELLO, ref)
    hint = "failed: it answers in plain HTTP; "
    never = one_line(wasmhost_cli("pull", ref, "-o", tmp_path / "a.wasm", env=env))
    assert f"{hint}pass --plain-http to talk to it without TLS." in never, never
    pulled = wasmhost_cli("pull", "--plain-http", ref, "-o", tmp_path / "a.wasm", env=env)
    assert pulled.returncode == 0, pulled.stderr
    client = RegistryClient(cache_dir=tmp_path / "cache")
    with pytest.raises(RegistryUnreachable, match=r"use plain_http.*offline=True") as info:
        client.pull(ref, tmp_path / "b.wasm")
    assert info.value.fix == "http offline"
    for command in ("pull", "inspect", "run"):
        err = one_line(wasmhost_cli(command, ref, env=env))
        assert f"{hint}a copy pulled earlier is stored; pass --plain-http" in err, err
        assert "; or pass --offline to use it." in err, err


@pytest.mark.parametrize(
    ("flag", "hint"),
    [("-u", "registry credentials from `wasmhost login`"), ("--bogus", "No such option '--bogus'")],
    ids=["username", "unknown"],
)
def test_an_option_run_lacks_is_not_taken_for_the_module(
    tmp_path: Path, flag: str, hint: str
) -> None:
    done = wasmhost_cli("run", flag, "alice", "r.example/app:v1", env=cli_env(tmp_path))
    err = done.stderr.decode()
    assert done.returncode == 2
    assert hint in err
    assert "no such file" not in err


_BUG = (
    "import sys, wasmhost._oci.client as a, wasmhost._cli as cli\n"
    "a.RegistryClient.inspect = lambda *args, **kwargs: 1 / 0\n"
    "cli.main(sys.argv[1:])\n"
)


@pytest.mark.parametrize("switch", ["flag", "env", "off"])
def test_debug_shows_the_traceback_of_an_unexpected_error(tmp_path: Path, switch: str) -> None:
    """A bug of ours cannot be had on purpose: one is put in, in the child process only."""
    argv = ["--debug"] if switch == "flag" else []
    env = cli_env(tmp_path, **({"WASMHOST_DEBUG": "1"} if switch == "env" else {}))
    done = subprocess.run(
        [sys.executable, "-c", _BUG, *argv, "inspect", "r.example/app:v1"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    err = done.stderr.decode()
    assert done.returncode == 70
    assert "wasmhost failed unexpectedly (ZeroDivisionError: division by zero)" in err
    if switch == "off":
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert "--debug" in err
    else:
        assert "Traceback (most recent call last)" in err
        assert "in <lambda>" in err


def test_the_environment_registry_is_matched_without_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wasmhost._oci.credentials import Credentials, lookup

    monkeypatch.setenv("WASMHOST_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("WASMHOST_REGISTRY_PASSWORD", SECRET)
    monkeypatch.setenv("WASMHOST_REGISTRY", "https://GHCR.io/")
    assert lookup("ghcr.io") == Credentials(USER, SECRET)
    assert lookup("example.org") is None
