"""A registry that lies or misbehaves gets a clear error, and can do no harm."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HELLO, wasmhost_cli
from hostile import Hostile
from registry import waits_counted

from wasmhost import (
    ArtifactError,
    AuthenticationError,
    ConfigError,
    IntegrityError,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
)
from wasmhost._oci.reference import parse_reference
from wasmhost._oci.store import Store

pytestmark = pytest.mark.server  # starts HTTP servers (uvicorn, scripted registries)

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_with(layer: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.wasm.config.v1+json",
                "digest": sha256(b"{}"),
                "size": 2,
            },
            "layers": [layer],
        }
    ).encode()


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[Hostile] = []

    def start(routes: dict[str, object]) -> Hostile:
        server = Hostile(routes)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client(tmp_path: Path) -> RegistryClient:
    return RegistryClient(plain_http=True, cache_dir=tmp_path / "cache", timeout=2)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../../../victim.txt",
        "sha256:/etc/passwd",
        "md5:" + "0" * 32,
        "sha256:" + "A" * 64,
    ],
    ids=["dotdot", "absolute", "md5", "upper-case"],
)
def test_a_malformed_layer_digest_touches_no_file(
    serve: object, client: RegistryClient, tmp_path: Path, digest: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    manifest = manifest_with({"mediaType": "application/wasm", "digest": digest, "size": 8})
    server = serve({"/v2/evil/manifests/v1": (200, {"Content-Type": MANIFEST_TYPE}, manifest)})  # type: ignore[operator]
    with pytest.raises(ArtifactError, match="valid sha256 digest"):
        client.pull(f"{server.host}/evil:v1", tmp_path / "out.wasm")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.wasm").exists()


def test_a_malformed_index_entry_touches_no_file(
    serve: object, client: RegistryClient, tmp_path: Path
) -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"digest": "sha256:../../x", "platform": {"architecture": "wasm", "os": "wasip1"}}
            ],
        }
    ).encode()
    server = serve({"/v2/evil/manifests/v1": (200, {}, index)})  # type: ignore[operator]
    with pytest.raises(ArtifactError, match="without a valid sha256 digest"):
        client.pull(f"{server.host}/evil:v1", tmp_path / "o.wasm")


def test_the_store_refuses_a_malformed_digest(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="not a sha256 digest"):
        Store(tmp_path).blob_path("sha256:../../etc")


def test_credentials_never_go_to_another_host(serve: object, tmp_path: Path) -> None:
    elsewhere = serve({})  # type: ignore[operator]
    registry = serve(  # type: ignore[operator]
        {
            "/v2/app/blobs/uploads/": (
                202,
                {"Location": f"http://{elsewhere.host}/upload?x=1"},
                b"",
            ),
        }
    )

    def challenge(handler: object) -> tuple[int, dict[str, str], bytes]:
        auth = handler.headers.get("Authorization")  # type: ignore[attr-defined]
        if auth:
            return 404, {}, b"{}"
        return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b"{}"

    registry.routes["HEAD /v2/app/blobs/" + sha256(b"{}")] = challenge
    client = RegistryClient(
        plain_http=True, credentials={registry.host: ("alice", "s3cret")}, cache_dir=tmp_path
    )
    with pytest.raises(RegistryError):
        client.push(HELLO, f"{registry.host}/app:v1")
    assert any("Authorization" in headers for _, _, headers in registry.seen)
    assert elsewhere.seen, "the upload went to the Location host"
    for _, _, headers in elsewhere.seen:
        assert "Authorization" not in headers


def test_manifest_digests_are_checked(serve: object, client: RegistryClient) -> None:
    body = manifest_with({"mediaType": "application/wasm", "digest": sha256(b"x"), "size": 1})
    wrong = "sha256:" + "0" * 64
    server = serve(  # type: ignore[operator]
        {
            f"/v2/app/manifests/{wrong}": (200, {}, body),
            "/v2/app/manifests/lying": (200, {"Docker-Content-Digest": wrong}, body),
        }
    )
    with pytest.raises(IntegrityError, match=f"has digest {sha256(body)}"):
        client.pull(f"{server.host}/app@{wrong}")
    with pytest.raises(IntegrityError, match="but its bytes are"):
        client.pull(f"{server.host}/app:lying")


def test_an_oversized_manifest_is_refused(serve: object, client: RegistryClient) -> None:
    server = serve({"/v2/app/manifests/big": (200, {}, b" " * (5 << 20))})  # type: ignore[operator]
    with pytest.raises(IntegrityError, match="over 4 MiB"):
        client.inspect(f"{server.host}/app:big")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"layers": "x"}',
        b'{"layers": [1], "config": []}',
        b'{"layers": [{"mediaType": "application/wasm", "digest": 5}]}',
    ],
    ids=["not-json", "list", "layers-str", "layer-int", "digest-int"],
)
def test_malformed_manifests_are_artifact_errors(
    serve: object, client: RegistryClient, tmp_path: Path, body: bytes
) -> None:
    server = serve({"/v2/app/manifests/v1": (200, {}, body)})  # type: ignore[operator]
    with pytest.raises(ArtifactError):
        client.pull(f"{server.host}/app:v1", tmp_path / "x.wasm")
    done = wasmhost_cli(
        "pull",
        "--plain-http",
        f"{server.host}/app:v1",
        cwd=tmp_path,
        env=dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "c")),
    )
    assert done.returncode == 1
    assert len(done.stderr.decode().strip().splitlines()) == 1


def test_an_index_inside_an_index_is_not_followed(serve: object, client: RegistryClient) -> None:
    inner = json.dumps(
        {"manifests": [{"digest": "sha256:" + "1" * 64, "platform": {"architecture": "wasm"}}]}
    ).encode()
    outer = json.dumps(
        {"manifests": [{"digest": sha256(inner), "platform": {"architecture": "wasm"}}]}
    ).encode()
    server = serve(  # type: ignore[operator]
        {
            "/v2/app/manifests/v1": (200, {}, outer),
            f"/v2/app/manifests/{sha256(inner)}": (200, {}, inner),
        }
    )
    with pytest.raises(ArtifactError, match="index inside an index"):
        client.pull(f"{server.host}/app:v1")


@pytest.mark.parametrize("retry_after", ["-1", "nan", "inf", "soon", "99999"])
def test_odd_retry_after_values(serve: object, client: RegistryClient, retry_after: str) -> None:
    slept: list[float] = []
    waits_counted(client, slept)
    server = serve({"/v2/app/manifests/v1": (503, {"Retry-After": retry_after}, b"{}")})  # type: ignore[operator]
    with pytest.raises(RegistryError, match="HTTP 503"):
        client.inspect(f"{server.host}/app:v1")
    assert len(slept) == 2
    assert all(0 <= s <= 5 for s in slept)


@pytest.mark.parametrize(
    ("challenge", "token_answer"),
    [
        ("Bearer service=x", None),
        ('Bearer realm="http://{host}/token"', (200, {}, b"[]")),
        ('Bearer realm="http://{host}/token"', (200, {}, b"not json")),
        ('Bearer realm="http://{host}/token"', (500, {}, b"")),
    ],
    ids=["no-realm", "token-list", "token-garbage", "token-500"],
)
def test_broken_token_exchanges_are_authentication_errors(
    serve: object, tmp_path: Path, challenge: str, token_answer: object
) -> None:
    server = serve({})  # type: ignore[operator]
    server.routes["/v2/app/manifests/v1"] = (
        401,
        {"WWW-Authenticate": challenge.format(host=server.host)},
        b"{}",
    )
    if token_answer:
        server.routes["/token"] = token_answer
    client = RegistryClient(
        plain_http=True, credentials={server.host: ("u", "p")}, cache_dir=tmp_path
    )
    with pytest.raises(AuthenticationError):
        client.inspect(f"{server.host}/app:v1")


def test_a_silent_registry_is_given_up_after_one_wait(tmp_path: Path) -> None:
    """A server that accepts connections and never answers: one attempt, not three."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        client = RegistryClient(plain_http=True, timeout=1, cache_dir=tmp_path)
        with pytest.raises(RegistryUnreachable, match="timed out"):
            client.pull(f"127.0.0.1:{listener.getsockname()[1]}/app:v1")
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert len(accepted) == 1


def test_tags_of_nested_repositories_do_not_collide(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first, second = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    store.remember_tag(parse_reference("r.io/app:v1"), first)
    store.remember_tag(parse_reference("r.io/app/v1:latest"), second)
    assert store.recall_tag(parse_reference("r.io/app:v1")) == first
    assert store.recall_tag(parse_reference("r.io/app/v1:latest")) == second
    assert list(tmp_path.rglob(".tmp-*")) == []


def test_a_ca_file_that_is_no_certificate_is_refused_at_once(tmp_path: Path) -> None:
    not_a_cert = tmp_path / "README.md"
    not_a_cert.write_text("# not a certificate\n")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        RegistryClient(ca_file=not_a_cert, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        RegistryClient(ca_file=tmp_path / "missing.pem", cache_dir=tmp_path)
    done = wasmhost_cli("pull", "--ca-file", not_a_cert, "127.0.0.1:1/app:v1", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        f"Error: the CA file {not_a_cert} holds no PEM certificate; give a CA bundle "
        "(-----BEGIN CERTIFICATE----- blocks)."
    ]
