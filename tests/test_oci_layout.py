"""Reading modules from a local OCI image layout (issue 12, part 2): pull, inspect
and run take DIR[:TAG] or DIR@DIGEST with oci_layout, through the same code as a
registry (the Source interface), and a layout is checked as a registry is: a
tampered, truncated or swapped blob, a malformed index or digest is refused and
nothing is written."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from conftest import FSPROBE, HELLO, wasmhost_cli, wasmhost_in_process

from wasmhost import ArtifactError, ConfigError, IntegrityError, RegistryClient

FORMATS = ["wasm-to-oci", "cncf", "image"]


@pytest.fixture
def client(tmp_path: Path) -> RegistryClient:
    return RegistryClient(cache_dir=tmp_path / "cache")


def pushed(client: RegistryClient, folder: Path, tag: str = "v1", fmt: str = "wasm-to-oci") -> str:
    return client.push(FSPROBE, f"{folder}:{tag}", format=fmt, oci_layout=True).digest


def blob(folder: Path, digest: str) -> Path:
    return folder / "blobs" / "sha256" / digest.removeprefix("sha256:")


def layer_of(folder: Path, manifest_digest: str) -> str:
    manifest = json.loads(blob(folder, manifest_digest).read_bytes())
    return str(manifest["layers"][0]["digest"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_pull_inspect_and_run_from_a_layout(
    client: RegistryClient, tmp_path: Path, fmt: str
) -> None:
    folder = tmp_path / "layout"
    digest = pushed(client, folder, fmt=fmt)
    for ref in (f"{folder}:v1", f"{folder}@{digest}"):
        out = tmp_path / f"out-{fmt}.wasm"
        result = client.pull(ref, out, oci_layout=True)
        assert out.read_bytes() == FSPROBE.read_bytes()
        assert (result.digest, result.format) == (digest, fmt)
        info = client.inspect(ref, oci_layout=True)
        assert (info.digest, info.format) == (digest, fmt)
    done = wasmhost_cli("run", "--oci-layout", f"{folder}:v1", "args", "x")
    assert (done.returncode, done.stdout) == (0, b"layout.wasm\nargs\nx\n")


def test_a_missing_tag_names_the_tags_there(client: RegistryClient, tmp_path: Path) -> None:
    folder = tmp_path / "layout"
    pushed(client, folder, "v1")
    pushed(client, folder, "v2")
    with pytest.raises(ArtifactError, match=r"no image tagged 'v3'; it has: v1, v2"):
        client.pull(f"{folder}:v3", tmp_path / "o.wasm", oci_layout=True)
    done = wasmhost_in_process("pull", "--oci-layout", f"{folder}:v3")
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        f"Error: {folder} has no image tagged 'v3'; it has: v1, v2."
    ]


def test_a_folder_that_is_no_layout_is_not_made_one(client: RegistryClient, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is not an OCI image layout"):
        client.inspect(f"{tmp_path / 'nothing'}:v1", oci_layout=True)
    assert not (tmp_path / "nothing").exists()


def tamper(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


@pytest.mark.parametrize(
    "damage",
    ["module-changed", "module-truncated", "module-longer", "manifest-changed", "layer-missing"],
)
def test_a_damaged_layout_is_refused_and_nothing_is_written(
    client: RegistryClient, tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / "layout"
    digest = pushed(client, folder)
    module = blob(folder, layer_of(folder, digest))
    data = module.read_bytes()
    if damage == "module-changed":
        tamper(module, data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "module-truncated":
        tamper(module, data[:-100])
    elif damage == "module-longer":
        tamper(module, data + b"\0" * 100)
    elif damage == "manifest-changed":
        manifest = blob(folder, digest)
        tamper(manifest, manifest.read_bytes().replace(b'"size"', b'"size" ', 1))
    else:
        module.unlink()
    expected = ArtifactError if damage == "layer-missing" else IntegrityError
    out = tmp_path / "out.wasm"
    with pytest.raises(expected):
        client.pull(f"{folder}:v1", out, oci_layout=True)
    assert not out.exists()
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize(
    ("index", "error", "message"),
    [
        (b"not json", ArtifactError, "is not JSON"),
        (b"[]", ArtifactError, "is not a JSON object"),
        (b"[" * 100_000, ArtifactError, "is not JSON"),
        (b'{"schemaVersion": ' + b"9" * 5000 + b"}", ArtifactError, "is not JSON"),
        (b'{"manifests": "\xff"}', ArtifactError, "is not JSON"),
        (
            json.dumps(
                {
                    "manifests": [
                        {
                            "digest": "sha256:../../../etc/passwd",
                            "annotations": {"org.opencontainers.image.ref.name": "v1"},
                        }
                    ]
                }
            ).encode(),
            IntegrityError,
            "malformed",
        ),
        (b" " * (5 << 20), IntegrityError, "over 4 MiB"),
    ],
    ids=["garbage", "a-list", "deep", "long-number", "not-utf8", "traversal-digest", "huge"],
)
def test_a_hostile_index_is_refused_in_one_line(
    client: RegistryClient,
    tmp_path: Path,
    index: bytes,
    error: type[Exception],
    message: str,
) -> None:
    folder = tmp_path / "layout"
    pushed(client, folder)
    tamper(folder / "index.json", index)
    with pytest.raises(error, match=message):
        client.inspect(f"{folder}:v1", oci_layout=True)
    done = wasmhost_in_process("inspect", "--oci-layout", f"{folder}:v1")
    assert done.returncode == 1
    assert len(done.stderr.decode().strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (b"[" * 100_000, "index.json is not"),
        (b'{"schemaVersion": ' + b"9" * 5000 + b"}", "index.json is not"),
        (b'{"a": "\xff"}', "index.json is not"),
        (b"[]", "index.json is not"),
        (b" " * (5 << 20), "index.json in .* is over 4 MiB; refusing it"),
    ],
    ids=["deep", "long-number", "not-utf8", "a-list", "huge"],
)
def test_a_push_into_a_layout_with_a_hostile_index_is_one_line(
    client: RegistryClient, tmp_path: Path, index: bytes, message: str
) -> None:
    folder = tmp_path / "layout"
    pushed(client, folder)
    tamper(folder / "index.json", index)
    done = wasmhost_in_process("push", "--oci-layout", HELLO, f"{folder}:v2")
    assert done.returncode == 1, done.stderr
    said = done.stderr.decode().strip()
    assert len(said.splitlines()) == 1
    assert re.search(message, said), said
    assert (folder / "index.json").read_bytes() == index  # refused, not rewritten


_TAGGER = """
import sys
from pathlib import Path
from wasmhost._oci.formats import OCI_MANIFEST
from wasmhost._oci.layout import OciLayout

layout = OciLayout(Path(sys.argv[1]))
for j in range(int(sys.argv[3])):
    layout.put_manifest(f"{sys.argv[2]}-{j}", b'{"schemaVersion":2,"n":%d}' % j, OCI_MANIFEST)
"""


def test_two_processes_tagging_one_layout_lose_no_tag(tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = tmp_path / "layout"
    writers = [
        subprocess.Popen([sys.executable, "-c", _TAGGER, str(folder), name, "60"])
        for name in ("a", "b", "c")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    index = json.loads((folder / "index.json").read_bytes())
    names = [e["annotations"]["org.opencontainers.image.ref.name"] for e in index["manifests"]]
    assert sorted(names) == sorted(f"{n}-{j}" for n in "abc" for j in range(60))


def test_a_digest_that_names_no_blob(client: RegistryClient, tmp_path: Path) -> None:
    folder = tmp_path / "layout"
    pushed(client, folder)
    missing = "sha256:" + hashlib.sha256(b"nothing").hexdigest()
    with pytest.raises(ArtifactError, match="has no manifest"):
        client.pull(f"{folder}@{missing}", tmp_path / "o.wasm", oci_layout=True)


def test_an_image_layout_runs_hello_world(client: RegistryClient, tmp_path: Path) -> None:
    folder = tmp_path / "layout"
    client.push(HELLO, f"{folder}:img", format="image", oci_layout=True)
    done = wasmhost_cli("run", "--oci-layout", f"{folder}:img")
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n")


def test_the_stores_index_loses_no_entry_to_concurrent_pulls(tmp_path: Path) -> None:
    from conftest import in_threads

    from wasmhost._oci.reference import parse_reference
    from wasmhost._oci.store import Store

    store = Store(tmp_path / "oci")
    digest = store.put_bytes(b'{"schemaVersion":2}')

    def remember(i: int) -> None:
        for j in range(10):
            store.remember_tag(parse_reference(f"localhost:5000/app{i}:v{j}"), digest)

    in_threads(remember, 8)
    index = json.loads((tmp_path / "oci" / "index.json").read_bytes())
    names = [e["annotations"]["org.opencontainers.image.ref.name"] for e in index["manifests"]]
    assert sorted(names) == sorted(
        f"localhost:5000/app{i}:v{j}" for i in range(8) for j in range(10)
    )
    assert (tmp_path / "oci" / "oci-layout").is_file()


def swap_for_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("which", ["index", "manifest", "layer"])
def test_a_fifo_in_a_layout_is_refused_not_waited_on(
    client: RegistryClient, tmp_path: Path, which: str
) -> None:
    folder = tmp_path / "layout"
    digest = pushed(client, folder)
    path = {
        "index": folder / "index.json",
        "manifest": blob(folder, digest),
        "layer": blob(folder, layer_of(folder, digest)),
    }[which]
    swap_for_fifo(path)
    # Were the FIFO opened for reading, the call would wait for a writer forever.
    done = wasmhost_cli("pull", "--oci-layout", f"{folder}:v1", "-o", str(tmp_path / "o.wasm"))
    assert done.returncode == 1
    assert "not a regular file" in done.stderr.decode()
    assert len(done.stderr.decode().strip().splitlines()) == 1


def test_a_folder_where_a_blob_should_be_is_one_line(
    client: RegistryClient, tmp_path: Path
) -> None:
    folder = tmp_path / "layout"
    digest = pushed(client, folder)
    layer = blob(folder, layer_of(folder, digest))
    layer.unlink()
    layer.mkdir()
    done = wasmhost_in_process(
        "pull", "--oci-layout", f"{folder}:v1", "-o", str(tmp_path / "o.wasm")
    )
    assert done.returncode == 1
    assert len(done.stderr.decode().strip().splitlines()) == 1


@pytest.mark.parametrize(
    "index",
    [
        {"manifests": 5},
        {"manifests": [{"digest": "x", "annotations": "oops"}]},
        "[" * 100_000,
    ],
    ids=["manifests-a-number", "annotations-a-string", "deep-nesting"],
)
def test_an_index_of_the_wrong_shape_is_one_line(
    client: RegistryClient, tmp_path: Path, index: object
) -> None:
    folder = tmp_path / "layout"
    pushed(client, folder)
    text = index if isinstance(index, str) else json.dumps(index)
    tamper(folder / "index.json", text.encode())
    with pytest.raises(ArtifactError):
        client.inspect(f"{folder}:v1", oci_layout=True)


def test_a_folder_with_colons_and_an_output_folder(client: RegistryClient, tmp_path: Path) -> None:
    folder = tmp_path / "my:layout"
    digest = pushed(client, folder)
    # A tag as the pull store lists one: a whole reference, colons and slashes.
    index = json.loads((folder / "index.json").read_bytes())
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "host:5000/repo:v1"
    tamper(folder / "index.json", json.dumps(index).encode())
    assert client.inspect(f"{folder}:host:5000/repo:v1", oci_layout=True).digest == digest
    out = tmp_path / "out"
    out.mkdir()
    result = client.pull(f"{folder}@{digest}", out, oci_layout=True)
    assert result.path == out / "my:layout.wasm"
    with pytest.raises(ConfigError, match="64 lowercase hex digits"):
        client.inspect(f"{folder}@SHA256:{digest[7:].upper()}", oci_layout=True)


def test_a_damaged_store_index_is_started_again(tmp_path: Path) -> None:
    from wasmhost._oci.reference import parse_reference
    from wasmhost._oci.store import Store

    store = Store(tmp_path / "oci")
    digest = store.put_bytes(b'{"schemaVersion":2}')
    store.remember_tag(parse_reference("localhost:5000/a:v1"), digest)
    for damage in (b'{"manifests":[{"annotations":"x"}]}', b"[" * 100_000):
        (tmp_path / "oci" / "index.json").write_bytes(damage)
        store.remember_tag(parse_reference("localhost:5000/b:v1"), digest)
        index = json.loads((tmp_path / "oci" / "index.json").read_bytes())
        assert [
            e["annotations"]["org.opencontainers.image.ref.name"] for e in index["manifests"]
        ] == ["localhost:5000/b:v1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["localhost:5000/x:v1"], "localhost:5000/x:v1 names a registry, not a folder"),
        (["example.com/x:v1"], "example.com/x:v1 names a registry, not a folder"),
        (["registry:5000/x"], "registry:5000/x names a registry, not a folder"),
        (["--plain-http", "out:v1"], "--plain-http is for a registry; --oci-layout writes"),
        (["--insecure", "out:v1"], "--insecure is for a registry; --oci-layout writes"),
    ],
    ids=["localhost", "dotted", "port", "plain-http", "insecure"],
)
def test_a_layout_push_meant_for_a_registry_is_refused(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    done = wasmhost_in_process("push", "--oci-layout", HELLO, *argv, cwd=tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"Error: {message}"), err
    assert list(tmp_path.iterdir()) == []


def test_a_layout_folder_named_like_a_registry_is_written_when_spelled_as_a_path(
    tmp_path: Path,
) -> None:
    done = wasmhost_cli("push", "--oci-layout", HELLO, "./localhost:5000/x:v1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "localhost:5000" / "x" / "oci-layout").is_file()


@pytest.mark.parametrize("spec", ["lay:", "lay@"])
def test_an_empty_tag_or_digest_of_a_layout_is_refused(tmp_path: Path, spec: str) -> None:
    done = wasmhost_in_process("push", "--oci-layout", HELLO, spec, cwd=tmp_path)
    assert done.returncode == 1
    assert "ends with an empty tag or digest" in done.stderr.decode()
    assert list(tmp_path.iterdir()) == []  # no folder named `lay:` or `lay@`
