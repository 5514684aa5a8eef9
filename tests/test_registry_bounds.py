"""What a registry, an image layer, a Docker config or a credential helper sends cannot
exhaust or hang the process that reads it: every read is bounded, every wait ends, and
each refusal is one clear line."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HELLO, wasmhost_cli
from hostile import Hostile
from test_registry_trust import artifact, cli_env, image, manifest, one_line
from test_registry_trust import sha256 as trust_sha256

from wasmhost import (
    ArtifactError,
    AuthenticationError,
    ConfigError,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
)
from wasmhost._oci import credentials
from wasmhost._oci.image import extract_module

pytestmark = pytest.mark.server  # starts scripted HTTP servers

# Where nothing listens: the Docker config and its helper are read before any request.
NOWHERE = "127.0.0.1:9/app:v1"


@pytest.mark.parametrize(
    "config",
    [b'{"auths": {"\xff": {}}}', b"[" * 100_000, b'{"auths": ' + b"7" * 5000 + b"}"],
    ids=["not-utf8", "deep", "long-number"],
)
def test_a_hostile_docker_config_is_one_line(
    docker_config: Path, tmp_path: Path, config: bytes
) -> None:
    path = docker_config / "config.json"
    path.write_bytes(config)
    with pytest.raises(ConfigError, match="is not JSON; fix or remove it"):
        RegistryClient(plain_http=True, cache_dir=tmp_path).inspect(NOWHERE)
    env = cli_env(tmp_path, DOCKER_CONFIG=str(docker_config))
    for argv in (["pull", "--plain-http", NOWHERE], ["logout", "127.0.0.1:9"]):
        err = one_line(wasmhost_cli(*argv, env=env, cwd=tmp_path))
        assert f"the Docker config {path} is not JSON; fix or remove it." in err


def helper(folder: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A docker-credential-hostile on PATH running ``script`` (sh), named by the config."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    program = bin_dir / "docker-credential-hostile"
    program.write_text("#!/bin/sh\ncat >/dev/null\n" + script + "\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (Path(os.environ["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"credsStore": "hostile"})
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ('{"Username": 5, "Secret": "s"}', "not credentials"),
        ('{"Username": "u", "Secret": null}', "not credentials"),
        ('{"Username": "u", "Secret": ""}', "not credentials"),
        ('{"Username": "", "Secret": "s"}', "not credentials"),
        ("null", "is not a JSON object"),
        ('""', "is not a JSON object"),
        ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "is not JSON"),
        (r'{"Username": "\377"}', "is not JSON"),
    ],
    ids=[
        "number",
        "null-secret",
        "empty-secret",
        "empty-user",
        "null",
        "string",
        "cut",
        "not-utf8",
    ],
)
def test_a_credential_helper_answer_that_is_not_credentials_is_refused(
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    message: str,
) -> None:
    helper(tmp_path, f"printf '{answer}'", monkeypatch)
    with pytest.raises(AuthenticationError, match=message):
        RegistryClient(plain_http=True, cache_dir=tmp_path).inspect(NOWHERE)
    err = one_line(wasmhost_cli("pull", "--plain-http", NOWHERE, env=cli_env(tmp_path)))
    assert "docker-credential-hostile" in err


@pytest.mark.parametrize("who", ["Username", "Secret"])
def test_a_helper_answer_that_is_not_utf8_is_one_line(
    serve: Callable[[dict[str, Any]], Hostile],
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    who: str,
) -> None:
    """A lone surrogate as a JSON escape: sent as Basic credentials, it was exit 70."""
    pair = {"Username": "u", "Secret": "s", who: "\ud800"}
    helper(tmp_path, f"cat <<'END'\n{json.dumps(pair)}\nEND", monkeypatch)
    server = serve({"/v2/app/manifests/v1": (401, {"WWW-Authenticate": 'Basic realm="r"'}, b"")})
    with pytest.raises(AuthenticationError, match="answered a Username or Secret that is not"):
        RegistryClient(plain_http=True, cache_dir=tmp_path).inspect(f"{server.host}/app:v1")
    err = one_line(
        wasmhost_cli("pull", "--plain-http", f"{server.host}/app:v1", env=cli_env(tmp_path))
    )
    assert "docker-credential-hostile answered a Username or Secret that is not valid" in err
    assert "ud800" not in err
    assert all("Authorization" not in headers for _, _, headers in server.seen)


def test_a_docker_config_auth_that_is_not_utf8_is_one_line(
    docker_config: Path, tmp_path: Path
) -> None:
    """As a JSON escape in ``auths`` (base64 is ASCII), or inside the base64."""
    for auth in ("\ud800", base64.b64encode(b"u:\xed\xa0\x80").decode()):
        config = {"auths": {"127.0.0.1:9": {"auth": auth}}}
        (docker_config / "config.json").write_text(json.dumps(config))
        with pytest.raises(ConfigError, match="is not base64 of user:password"):
            credentials.lookup("127.0.0.1:9")


def test_login_with_credentials_that_are_not_utf8_is_refused(tmp_path: Path) -> None:
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="is not valid UTF-8"):
        client.login("127.0.0.1:9", "u", "\udcff")


def test_an_empty_answer_is_no_credentials(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``docker`` reads it: nothing stored, so the request goes out anonymously."""
    helper(tmp_path, """printf '{"ServerURL": "", "Username": "", "Secret": ""}'""", monkeypatch)
    assert credentials.lookup("127.0.0.1:9") is None


def test_a_helper_that_talks_forever_is_cut_off(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper(tmp_path, "exec cat /dev/zero", monkeypatch)
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="wrote more than 64 KiB"):
        credentials.lookup("127.0.0.1:9")
    assert time.monotonic() - started < 10


def test_a_helper_that_hangs_is_killed_with_its_children(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"
    # Its children keep its stdout open: waiting for that would wait for them.
    helper(
        tmp_path, f"sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait", monkeypatch
    )
    monkeypatch.setattr(credentials, "HELPER_TIMEOUT", 1.0)
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="did not answer in 1 s"):
        credentials.lookup("127.0.0.1:9")
    assert time.monotonic() - started < 10
    children = [int(line) for line in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead (its parent, the killed helper, is gone: init reaps it soon).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, Any]], Hostile]]:
    servers: list[Hostile] = []

    def start(routes: dict[str, Any]) -> Hostile:
        servers.append(Hostile(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def endless(sent: list[int], limit: int = 256 << 20, pause: float = 0.0) -> Callable[[Any], None]:
    """A route answering 200 with a body that goes on (to ``limit`` bytes, so that a
    client that reads it all ends too), counting in ``sent`` what was sent."""

    def answer(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        chunk = b"[" * (1 << 16) if not pause else b"["
        try:
            while sent[0] < limit:
                handler.wfile.write(chunk)
                sent[0] += len(chunk)
                if pause:
                    handler.wfile.flush()
                    time.sleep(pause)
        except OSError:
            pass  # the client hung up
        handler.close_connection = True

    return answer


@pytest.mark.parametrize("with_credentials", [False, True], ids=["anonymous", "credentials"])
def test_an_endless_token_answer_is_refused_after_a_bounded_read(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path, with_credentials: bool
) -> None:
    sent = [0]
    server = serve({})
    server.ask_for_a_token("/v2/app/manifests/v1")
    server.routes["/token"] = endless(sent)
    given = {server.host: ("u", "p")} if with_credentials else {}
    client = RegistryClient(plain_http=True, credentials=given, cache_dir=tmp_path, timeout=5)
    with pytest.raises(RegistryError, match="answered more than 1 MiB; refusing it"):
        client.inspect(f"{server.host}/app:v1")
    # What the socket buffers hold besides the 1 MiB read: far below the 256 MiB offered.
    assert sent[0] < 32 << 20
    sent[0] = 0
    err = one_line(
        wasmhost_cli("pull", "--plain-http", f"{server.host}/app:v1", env=cli_env(tmp_path))
    )
    assert "token service" in err


def test_a_token_is_asked_for_as_the_challenge_says(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path
) -> None:
    server = serve({})
    server.routes["/v2/app/manifests/v1"] = (
        401,
        {
            "WWW-Authenticate": f'Bearer realm="http://{server.host}/token?x=1",'
            'service="reg.example",scope="repository:app:pull"'
        },
        b"{}",
    )
    server.routes["/token"] = (200, {}, b'{"access_token": "abc.def"}')
    client = RegistryClient(
        plain_http=True, credentials={server.host: ("u", "p")}, cache_dir=tmp_path
    )
    with pytest.raises(AuthenticationError, match="refused the credentials"):
        client.inspect(f"{server.host}/app:v1")
    ((_, path, headers),) = [seen for seen in server.seen if seen[1].startswith("/token")]
    assert path == "/token?x=1&service=reg.example&scope=repository%3Aapp%3Apull"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert [h.get("Authorization") for _, p, h in server.seen if p.startswith("/v2/")] == [
        None,
        "Bearer abc.def",
    ]


@pytest.mark.parametrize(
    "answer",
    [b'{"token": "a b"}', b'{"token": "line\\nbreak"}', b'{"token": 5}', b'{"token": ""}'],
    ids=["space", "newline", "number", "empty"],
)
def test_a_token_that_cannot_be_a_header_is_refused(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path, answer: bytes
) -> None:
    server = serve({})
    server.ask_for_a_token("/v2/app/manifests/v1")
    server.routes["/token"] = (200, {}, answer)
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    with pytest.raises(AuthenticationError, match="answered without a token"):
        client.inspect(f"{server.host}/app:v1")


def tar_layer(*members: tuple[str, bytes], fmt: int = tarfile.PAX_FORMAT, gz: bool = True) -> bytes:
    """A tar layer holding ``members`` (names ending in / are folders, -> symlinks)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name.rstrip("/").split(" -> ")[0])
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            elif " -> " in name:
                info.type, info.linkname = tarfile.SYMTYPE, name.split(" -> ")[1]
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1) if gz else raw.getvalue()


def unpacked(layer: bytes, tmp_path: Path, max_size: int = 1 << 30) -> bytes:
    path = tmp_path / "layer"
    path.write_bytes(layer)

    def check(size: int) -> None:
        if size > max_size:
            raise ArtifactError("too big")

    out = io.BytesIO()
    digest = extract_module(path, out, check)
    assert digest == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
    return out.getvalue()


MODULE = b"\0asm\1\0\0\0" + bytes(range(256)) * 5
LONG = "deep/" * 30 + "module.wasm"


LAYER_MEMBERS = {
    "alone": [("module.wasm", MODULE)],
    "among-files": [
        ("etc/", b""),
        ("etc/passwd", b"x" * 600),
        ("app/", b""),
        ("app/m.wasm", MODULE),
    ],
    "long-name-and-symlink": [(LONG, MODULE), ("link.wasm -> " + LONG, b""), ("after", b"y" * 513)],
    "non-ascii": [("données/é.wasm", MODULE), ("README", b"")],
}
TAR_FORMATS = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}


def _fits(fmt: int, members: list[tuple[str, bytes]]) -> bool:
    """ustar holds only short ASCII names."""
    return fmt != tarfile.USTAR_FORMAT or all(len(n) <= 100 and n.isascii() for n, _ in members)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize(
    ("members", "fmt"),
    [
        pytest.param(members, fmt, id=f"{name}-{fmt_name}")
        for name, members in LAYER_MEMBERS.items()
        for fmt_name, fmt in TAR_FORMATS.items()
        if _fits(fmt, members)
    ],
)
def test_a_layer_is_read_as_tar_writes_it(
    tmp_path: Path, members: list[tuple[str, bytes]], fmt: int, gz: bool
) -> None:
    assert unpacked(tar_layer(*members, fmt=fmt, gz=gz), tmp_path) == MODULE


def extended_header(kind: bytes, claimed: int) -> bytes:
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, claimed
    return info.tobuf(format=tarfile.GNU_FORMAT)


def zeros_gzipped(prefix: bytes, size: int) -> bytes:
    """``prefix`` then ``size`` zero bytes, gzipped without holding them all."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as gz:
        gz.write(prefix)
        for _ in range(size >> 20):
            gz.write(bytes(1 << 20))
    return out.getvalue()


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["gnu", "pax"])
@pytest.mark.parametrize("present", [1 << 20, 64 << 20], ids=["claimed", "present"])
def test_a_huge_extended_header_is_refused_unread(
    tmp_path: Path, kind: bytes, present: int
) -> None:
    """A header claiming 2 GiB of long name or PAX records (tarfile reads them whole)."""
    layer = zeros_gzipped(extended_header(kind, 2 << 30), present)
    assert len(layer) < 1 << 20
    started = time.monotonic()
    with pytest.raises(ArtifactError, match="extended tar header of 2147483648 bytes, over 64 KiB"):
        unpacked(layer, tmp_path)
    assert time.monotonic() - started < 10


def test_a_member_count_bomb_is_refused(tmp_path: Path) -> None:
    """20,000 empty files before the module: tarfile kept every one (2,000,000: 793 MiB)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(20_000):
            tar.addfile(tarfile.TarInfo(f"f{i}"))
        info = tarfile.TarInfo("module.wasm")
        info.size = len(MODULE)
        tar.addfile(info, io.BytesIO(MODULE))
    started = time.monotonic()
    with pytest.raises(ArtifactError, match="holds over 10000 entries"):
        unpacked(gzip.compress(raw.getvalue(), compresslevel=1), tmp_path)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (tar_layer(("a.wasm", MODULE), ("b.wasm", MODULE)), "holds 2 .wasm files"),
        (tar_layer(("README", b"hi")), "holds 0 .wasm files .and 1 files in all"),
        (tar_layer(("module.wasm", MODULE), gz=False)[:700], "not a readable tar archive"),
        (gzip.compress(b"\x01" * 2048), "not a readable tar archive"),
        (b"not gzip, not tar", "not a readable tar archive"),
        (
            gzip.compress(
                extended_header(tarfile.XHDTYPE, 9)
                + b"9 size=x\n".ljust(512, b"\0")
                + tar_layer(("m.wasm", MODULE), gz=False)
            ),
            "not a readable tar archive",
        ),
    ],
    ids=["two-modules", "no-module", "cut", "garbage", "short", "bad-pax"],
)
def test_a_layer_without_one_readable_module_is_refused(
    tmp_path: Path, layer: bytes, message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        unpacked(layer, tmp_path)


def pax_header(records: list[tuple[str, str]], kind: bytes = tarfile.XHDTYPE) -> bytes:
    """A PAX extended header (``x``, or ``g`` for a global one) holding ``records``."""
    data = b""
    for key, value in records:
        body = f" {key}={value}\n".encode()
        length = len(body) + len(str(len(body)))
        length += len(str(length)) - len(str(len(body)))
        data += str(length).encode() + body
    return extended_header(kind, len(data)) + data + bytes(-len(data) % 512)


def test_extended_headers_piled_up_before_one_member_are_refused(tmp_path: Path) -> None:
    """4,000 PAX headers of 64 KiB each before one member took 266 MiB; 400 of small
    records, 7 s. Each is under the limit: together they are over it."""
    big = pax_header([("k", "A" * 40_000)])
    many = pax_header([(f"k{i}", "v") for i in range(2_000)])
    for pile in (big * 2, many * 400):
        layer = gzip.compress(pile + tar_layer(("m.wasm", MODULE), gz=False), compresslevel=1)
        started = time.monotonic()
        with pytest.raises(ArtifactError, match=r"bytes of extended tar headers before one entry"):
            unpacked(layer, tmp_path)
        assert time.monotonic() - started < 5
    # Under the limit in all, and again before the next member: read as before.
    fine = pax_header([("comment", "c" * 30_000)])
    layer = fine + _ustar(b"README", b"0", 2) + _padded(b"hi") + fine
    layer += _ustar(b"m.wasm", b"0", len(MODULE)) + _padded(MODULE) + bytes(1024)
    assert unpacked(layer, tmp_path) == MODULE


def _ustar(name: bytes, kind: bytes, size: int, sparse: int | None = None) -> bytes:
    """A tar header block; with ``sparse``, an old-GNU sparse one of one extent that says
    an extension block follows."""
    block = bytearray(512)
    block[: len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:116] = block[116:124] = b"0000000\0"
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[257:265] = b"ustar  \0" if sparse is not None else b"ustar\x0000"
    if sparse is not None:
        block[386:398] = b"%011o\0" % 0
        block[398:410] = b"%011o\0" % sparse
        block[482] = 1
        block[483:495] = b"%011o\0" % sparse
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def sparse_layer(good: bytes, evil: bytes) -> bytes:
    """Python's tarfile sees good.wasm in it, GNU tar and a reader that skips an old-GNU
    sparse member's data right after its header see evil.wasm."""
    return (
        _ustar(b"pad1", b"S", 1024, sparse=1024)
        + bytes(512)  # the extension block: no more extents
        + bytes(512)
        + _ustar(b"pad2", b"0", 512 + len(_padded(good)))
        + _ustar(b"good.wasm", b"0", len(good))
        + _padded(good)
        + _ustar(b"pad3", b"S", 512, sparse=512)
        + bytes(512)
        + _ustar(b"evil.wasm", b"0", len(evil))
        + _padded(evil)
        + bytes(1024)
    )


@pytest.mark.parametrize(
    "layer",
    [
        sparse_layer(MODULE, MODULE[::-1]),
        pax_header([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")])
        + tar_layer(("m.wasm", MODULE), gz=False),
        pax_header([("GNU.sparse.size", "1")], kind=tarfile.XGLTYPE)
        + tar_layer(("m.wasm", MODULE), gz=False),
    ],
    ids=["old-gnu", "pax", "pax-global"],
)
def test_a_layer_with_sparse_members_is_refused(tmp_path: Path, layer: bytes) -> None:
    """Tar readers disagree on where a sparse member ends: what tarfile sees as good.wasm,
    wasmhost read as evil.wasm. An OCI layer holds no sparse files."""
    with pytest.raises(ArtifactError, match="has a sparse file, which an OCI image layer does"):
        unpacked(layer, tmp_path)


@pytest.mark.parametrize("key", ["size", "path"])
def test_a_global_header_that_moves_members_is_refused(tmp_path: Path, key: str) -> None:
    """tarfile applies a global header's size or path to a member that has PAX records of
    its own (what else it holds is read after a size it chose); wasmhost did not."""
    layer = pax_header([(key, "1024" if key == "size" else "x.wasm")], kind=tarfile.XGLTYPE)
    with pytest.raises(ArtifactError, match="global tar header that sets the path or size"):
        unpacked(layer + tar_layer(("m.wasm", MODULE), gz=False), tmp_path)
    comment = pax_header([("comment", "git archive writes one")], kind=tarfile.XGLTYPE)
    assert unpacked(comment + tar_layer(("m.wasm", MODULE), gz=False), tmp_path) == MODULE


def test_a_hostile_layer_is_one_line_through_the_cli(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path
) -> None:
    server = serve(
        image(zeros_gzipped(extended_header(tarfile.GNUTYPE_LONGNAME, 2 << 30), 1 << 20))
    )
    err = one_line(
        wasmhost_cli(
            "pull", "--plain-http", f"{server.host}/img:v1", env=cli_env(tmp_path), cwd=tmp_path
        )
    )
    assert "extended tar header" in err


def damage(path: Path) -> None:
    """Flip a byte of a stored (read-only) blob, keeping its size."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_run_fetches_damaged_stored_blobs_again(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path
) -> None:
    module = HELLO.read_bytes()
    routes = artifact(module)
    server = serve(routes)
    body = routes["/v2/app/manifests/v1"][2]
    server.routes[f"/v2/app/manifests/{trust_sha256(body)}"] = routes["/v2/app/manifests/v1"]
    env = cli_env(tmp_path)
    pinned = f"{server.host}/app@{trust_sha256(body)}"
    assert (
        wasmhost_cli("pull", "--plain-http", pinned, "-o", tmp_path / "a.wasm", env=env).returncode
        == 0
    )
    blobs = tmp_path / "cache" / "oci" / "blobs" / "sha256"
    for digest in (trust_sha256(body), trust_sha256(module)):
        damage(blobs / digest.removeprefix("sha256:"))
    server.seen.clear()
    done = wasmhost_cli("run", "--plain-http", pinned, env=env)
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n"), done.stderr
    fetched = sorted(path for method, path, _ in server.seen if method == "GET")
    assert fetched == sorted(
        [f"/v2/app/manifests/{trust_sha256(body)}", f"/v2/app/blobs/{trust_sha256(module)}"]
    )
    # Offline, a damaged copy cannot be fetched again: one line, as before.
    damage(blobs / trust_sha256(module).removeprefix("sha256:"))
    err = one_line(wasmhost_cli("run", "--offline", pinned, env=env))
    assert "is damaged; it was removed" in err


def trickle(
    body: bytes, pause: float, *, headers_too: bool = False, status: int = 200, close: bool = False
) -> Callable[[Any], None]:
    """A route that sends ``body`` (or, with ``headers_too``, its headers as well) one
    byte every ``pause`` seconds, until it is all sent or the client hangs up; with
    ``close``, saying ``Connection: close`` (http.client then closes the connection
    before the body is read)."""

    ending = "Connection: close\r\n" if close else ""

    def answer(handler: Any) -> None:
        head = (
            f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{ending}\r\n"
        ).encode()
        handler.close_connection = True
        try:
            if not headers_too:
                handler.wfile.write(head)
                head = b""
            for byte in head + body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(pause)
        except OSError:
            pass  # the client hung up

    return answer


@pytest.mark.parametrize(
    "part", ["manifest", "manifest-headers", "manifest-close", "token", "blob", "blob-close"]
)
def test_a_registry_that_trickles_is_given_up_at_the_deadline(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path, part: str
) -> None:
    """One byte every 0.1 s never trips the 5 s read timeout; the 1 s deadline ends it."""
    module = HELLO.read_bytes()
    routes = artifact(module)
    server = serve(routes)
    manifest = routes["/v2/app/manifests/v1"][2]
    if part == "manifest":
        server.routes["/v2/app/manifests/v1"] = trickle(manifest, 0.1)
    elif part == "manifest-close":
        server.routes["/v2/app/manifests/v1"] = trickle(manifest, 0.1, close=True)
    elif part == "manifest-headers":
        server.routes["/v2/app/manifests/v1"] = trickle(manifest, 0.1, headers_too=True)
    elif part == "token":
        server.ask_for_a_token("/v2/app/manifests/v1")
        server.routes["/token"] = trickle(b'{"token": "' + b"t" * 200 + b'"}', 0.1)
    else:  # a small blob gets little more time than the deadline (1 s per 64 KiB)
        server.routes[f"/v2/app/blobs/{trust_sha256(module)}"] = trickle(
            module, 0.1, close=part == "blob-close"
        )
    client = RegistryClient(plain_http=True, cache_dir=tmp_path, timeout=5, deadline=1)
    started = time.monotonic()
    with pytest.raises(RegistryUnreachable, match=r"took over 1(\.\d+)? s to come from registry"):
        client.pull(f"{server.host}/app:v1", tmp_path / "out.wasm")
    assert time.monotonic() - started < 10
    assert not (tmp_path / "out.wasm").exists()


def test_a_big_blob_gets_time_in_proportion(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path
) -> None:
    """A 1 MiB blob sent at about 512 KiB/s takes longer than a 0.5 s deadline, and is
    within the 16 s more that its size earns."""
    module = MODULE + bytes((1 << 20) - len(MODULE))
    routes = artifact(module)
    server = serve(routes)

    def slowly(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(module)))
        handler.end_headers()
        for start in range(0, len(module), 64 << 10):
            handler.wfile.write(module[start : start + (64 << 10)])
            handler.wfile.flush()
            time.sleep(0.125)

    server.routes[f"/v2/app/blobs/{trust_sha256(module)}"] = slowly
    client = RegistryClient(plain_http=True, cache_dir=tmp_path, deadline=0.5)
    started = time.monotonic()
    assert client.pull(f"{server.host}/app:v1", tmp_path / "o.wasm").path.read_bytes() == module
    assert time.monotonic() - started > 1  # longer than the deadline: the size's share let it


@pytest.mark.parametrize("burst", [0, 192 << 10], ids=["trickle", "burst-then-trickle"])
def test_a_blob_that_slows_below_the_minimum_rate_is_given_up(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path, burst: int
) -> None:
    """A manifest claiming a 64 MiB layer gave a registry sending a byte a second
    1,025 s (1 GiB: 4.6 h): the time grew with the claim. Now only bytes that arrive
    earn time (one second per 64 KiB): a burst of 192 KiB earns 3 s, then it ends."""
    claimed = 64 << 20
    digest = "sha256:" + hashlib.sha256(b"never sent whole").hexdigest()
    given_up = threading.Event()

    def slow(handler: Any) -> None:
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Length", str(claimed))
        handler.end_headers()
        try:
            handler.wfile.write(bytes(burst))
            while not given_up.wait(0.05):  # a shut down socket may take writes a while
                handler.wfile.write(b"\0")
                handler.wfile.flush()
        except OSError:
            pass  # the client hung up

    server = serve({"/v2/app/manifests/v1": (200, {}, manifest(digest, claimed))})
    server.routes[f"/v2/app/blobs/{digest}"] = slow
    server.routes[f"/v2/app/blobs/{trust_sha256(b'{}')}"] = (200, {}, b"{}")
    client = RegistryClient(plain_http=True, cache_dir=tmp_path, timeout=5, deadline=1)
    started = time.monotonic()
    then = ", then moved under 64 KiB/s" if burst else ""
    with pytest.raises(RegistryUnreachable, match=f"took over 1 s to come from .*{then}, and"):
        client.pull(f"{server.host}/app:v1", tmp_path / "out.wasm")
    took = time.monotonic() - started
    given_up.set()
    assert (2.5 if burst else 0.5) < took < 20
    assert not (tmp_path / "out.wasm").exists()


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "5", True])
def test_bad_deadlines_are_config_errors(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="deadline must be"):
        RegistryClient(cache_dir=tmp_path, deadline=value)  # type: ignore[arg-type]


def test_a_damaged_module_unpacked_from_an_image_is_unpacked_again(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path
) -> None:
    module = HELLO.read_bytes()
    server = serve(image(tar_layer(("hello.wasm", module))))
    env = cli_env(tmp_path)
    ref = f"{server.host}/img:v1"
    assert (
        wasmhost_cli("pull", "--plain-http", ref, "-o", tmp_path / "a.wasm", env=env).returncode
        == 0
    )
    damage(tmp_path / "cache" / "oci" / "blobs" / "sha256" / trust_sha256(module)[7:])
    done = wasmhost_cli("run", "--offline", ref, env=env)
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n"), done.stderr


def test_inspect_fetches_a_damaged_config_again(
    serve: Callable[[dict[str, Any]], Hostile], tmp_path: Path
) -> None:
    server = serve(artifact(HELLO.read_bytes()))
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    assert client.inspect(f"{server.host}/app:v1").config == {}
    damage(client.store.blob_path(trust_sha256(b"{}")))
    assert client.inspect(f"{server.host}/app:v1").config == {}
