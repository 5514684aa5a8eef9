"""The OCI artifact formats wasmhost pushes and pulls, as manifests and configs.

``wasm-to-oci`` is what wasm-to-oci pushes and Krustlet reads: config
``application/vnd.wasm.config.v1+json`` holding ``{}``, one
``application/vnd.wasm.content.layer.v1+wasm`` layer with a title annotation,
and no top-level ``mediaType`` -- Krustlet's client (oci-distribution 0.8)
rejects a manifest that has one (oras-py's ``push()``, for one, always writes
it), so this one is assembled here.

``cncf`` is the CNCF TAG-Runtime Wasm artifact (read by runwasi, wkg and
wasmCloud): config ``application/vnd.wasm.config.v0+json`` with ``created``,
``architecture: wasm``, ``os: wasip1`` and ``layerDigests``, one
``application/wasm`` layer, and the OCI manifest ``mediaType``. A WASI
preview-2 component gets ``os: wasip2`` and the ``component`` object the
format requires for it: the ``imports`` and ``exports`` of its world by name
(as wkg writes them; read here from the component's own import and export
sections, without wasmtime).

Manifests are serialized once, compactly and in a fixed key order, so their
digest is stable: the bytes pushed are the bytes whose digest is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

from .._errors import ArtifactError, IntegrityError, WasmhostError
from .._files import open_regular
from .._wasm import is_component, leb128, sections
from .._wasm import name as read_name

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))

WASM_TO_OCI_CONFIG = "application/vnd.wasm.config.v1+json"
WASM_TO_OCI_LAYER = "application/vnd.wasm.content.layer.v1+wasm"
CNCF_CONFIG = "application/vnd.wasm.config.v0+json"
CNCF_LAYER = "application/wasm"
WASM_LAYERS = (WASM_TO_OCI_LAYER, CNCF_LAYER)

TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"

FORMATS = ("wasm-to-oci", "cncf")


class Artifact(NamedTuple):
    """What a push sends: the config and manifest bytes, the one blob beside them
    (a file), and the platform an image index entry names (images only)."""

    config: bytes
    manifest: bytes
    blob_digest: str
    blob_size: int
    blob_path: str
    platform: dict[str, str] | None = None


_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
MAX_MANIFEST = 4 << 20

Progress = Callable[[int, int], None]
"""Called with the bytes done and the total, as a blob goes by."""


class Source(Protocol):
    """Where manifests and blobs are read from: a registry's ``Session`` or an ``OciLayout``.

    Both check what they hand on (a manifest hashes to its digest, a blob to
    its digest and size), so the code above them is written once.
    """

    def get_manifest(self, target: str) -> tuple[bytes, str, str]: ...

    def download_blob(
        self, digest: str, size: int, out: IO[bytes], progress: Progress | None = None
    ) -> None: ...


class Target(Source, Protocol):
    """Where manifests and blobs are written: a registry's ``Session`` or an ``OciLayout``."""

    def upload_blob(
        self,
        digest: str,
        size: int,
        content: bytes | Callable[[], IO[bytes]],
        progress: Progress | None = None,
    ) -> None: ...

    def put_manifest(
        self,
        tag_or_digest: str,
        data: bytes,
        media_type: str,
        platform: dict[str, str] | None = None,
    ) -> str: ...


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: object) -> bool:
    """Whether ``value`` is a well-formed sha256 digest (the only kind wasmhost trusts)."""
    return isinstance(value, str) and bool(_DIGEST.match(value))


def copy_checked(
    chunks: Iterable[bytes], size: int, out: IO[bytes], progress: Progress | None = None
) -> tuple[int, str]:
    """Copy ``chunks`` into ``out`` while hashing them, up to ``size`` bytes; the bytes
    seen (one chunk past ``size`` at most) and their sha256 digest, for the caller to
    compare with what the blob's descriptor says."""
    hasher = hashlib.sha256()
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > size:
            break
        hasher.update(chunk)
        out.write(chunk)
        if progress:
            progress(received, size)
    return received, "sha256:" + hasher.hexdigest()


def blob_path(root: Path, digest: str) -> Path:
    """Where blob ``digest`` lives under ``root`` (``blobs/sha256/<hex>``, as in an OCI layout).

    A digest comes from a registry or a manifest: only a well-formed one names a file.
    """
    if not is_digest(digest):
        raise IntegrityError(f"{digest!r} is not a sha256 digest; refusing it.")
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def json_object(
    data: bytes,
    what: str,
    error: Callable[..., WasmhostError] = ArtifactError,
    *,
    advice: str = "",
) -> dict[str, Any]:
    """``data`` (untrusted bytes: from a registry, a layout, a config file or a program)
    read as a JSON object, or ``error`` saying that ``what`` is not one.

    Everything ``json`` raises on hostile bytes is that error: bytes that are not
    UTF-8, nesting deep enough to exhaust the recursion limit, numbers of more
    digits than ``int`` converts.
    """
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise error(f"{what} is not JSON" + ("" if advice else "."), advice=advice) from None
    if not isinstance(value, dict):
        raise error(f"{what} is not a JSON object" + ("" if advice else "."), advice=advice)
    return value


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def timestamp(epoch: int | None) -> str:
    """RFC 3339 UTC time: now, or ``epoch`` seconds (SOURCE_DATE_EPOCH style)."""
    moment = (
        datetime.now(timezone.utc) if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def with_created(annotations: Mapping[str, str], created: str | None) -> dict[str, str]:
    """``annotations`` plus ``org.opencontainers.image.created`` (unless None or given)."""
    notes = dict(annotations)
    if created is not None:
        notes.setdefault(CREATED, created)
    return notes


def build(
    format: str,
    *,
    path: str,
    layer_digest: str,
    layer_size: int,
    annotations: Mapping[str, str],
    created: str | None,
) -> Artifact:
    """The config and manifest of the module at ``path`` in ``format``; its layer is the file.

    ``created`` (RFC 3339) goes in the ``org.opencontainers.image.created``
    annotation and, for ``cncf``, in the config; None leaves it out, for
    reproducible digests.
    """
    notes = with_created(annotations, created)
    title = os.path.basename(path)
    if format == "wasm-to-oci":
        config = b"{}"
        config_type, layer_type = WASM_TO_OCI_CONFIG, WASM_TO_OCI_LAYER
    elif format == "cncf":
        config_body: dict[str, Any] = {}
        if created is not None:
            config_body["created"] = created
        world = component_world(path)
        config_body.update(
            architecture="wasm",
            os="wasip1" if world is None else "wasip2",
            layerDigests=[layer_digest],
        )
        if world is not None:
            config_body["component"] = {"exports": world[1], "imports": world[0]}
        config = canonical_json(config_body)
        config_type, layer_type = CNCF_CONFIG, CNCF_LAYER
    else:
        raise ArtifactError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}.")
    manifest: dict[str, Any] = {"schemaVersion": 2}
    if format == "cncf":
        manifest["mediaType"] = OCI_MANIFEST
    manifest["config"] = {
        "mediaType": config_type,
        "digest": sha256_digest(config),
        "size": len(config),
    }
    manifest["layers"] = [
        {
            "mediaType": layer_type,
            "digest": layer_digest,
            "size": layer_size,
            "annotations": {TITLE: title},
        }
    ]
    if notes:
        manifest["annotations"] = dict(sorted(notes.items()))
    return Artifact(config, canonical_json(manifest), layer_digest, layer_size, path)


class WasmLayer(NamedTuple):
    """What a pulled manifest says about its module. ``packed``: the module is the one
    file of a tar(+gzip) image layer, not the layer itself."""

    format: str
    digest: str
    size: int
    title: str | None
    manifest: dict[str, Any]
    packed: bool = False


IMAGE_CONFIGS = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
IMAGE_LAYERS = (
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
)


def find_wasm_layer(manifest: dict[str, Any], where: str) -> WasmLayer:
    """The one wasm layer of ``manifest``; else an :class:`ArtifactError` naming what it holds."""
    layers = manifest.get("layers")
    config = manifest.get("config")
    if not isinstance(config, dict):
        config = {}
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ArtifactError(f"{where} is not an image or artifact manifest (it has no layers).")
    wasm = [layer for layer in layers if _is_wasm(layer)]
    if (
        not wasm
        and config.get("mediaType") in IMAGE_CONFIGS
        and len(layers) == 1
        and layers[0].get("mediaType") in IMAGE_LAYERS
    ):
        # A Wasm container image (FROM scratch + the module): the module is in the layer.
        digest, size = layers[0].get("digest"), layers[0].get("size")
        if is_digest(digest) and isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            assert isinstance(digest, str)
            return WasmLayer("image", digest, size, None, manifest, packed=True)
    if not wasm:
        held = ", ".join(sorted({str(layer.get("mediaType")) for layer in layers}))
        raise ArtifactError(
            f"{where} holds no wasm module: its config is {config.get('mediaType')!r} and "
            f"its layers are {held or 'none'}."
        )
    if len(wasm) > 1:
        raise ArtifactError(
            f"{where} holds {len(wasm)} wasm layers; wasmhost runs artifacts with one."
        )
    layer = wasm[0]
    digest, size = layer.get("digest"), layer.get("size")
    if not is_digest(digest) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArtifactError(f"{where} has a wasm layer without a valid sha256 digest and size.")
    assert isinstance(digest, str)
    config_type = str(config.get("mediaType"))
    format = {WASM_TO_OCI_CONFIG: "wasm-to-oci", CNCF_CONFIG: "cncf"}.get(config_type, "oci")
    annotations = layer.get("annotations")
    title = annotations.get(TITLE) if isinstance(annotations, dict) else None
    return WasmLayer(format, digest, size, title if isinstance(title, str) else None, manifest)


def _is_wasm(layer: dict[str, Any]) -> bool:
    if layer.get("mediaType") in WASM_LAYERS:
        return True
    # An oras push of a plain file: any media type, the file name in the title.
    annotations = layer.get("annotations")
    title = annotations.get(TITLE) if isinstance(annotations, dict) else None
    return isinstance(title, str) and title.endswith(".wasm")


def component_world(path: str) -> tuple[list[str], list[str]] | None:
    """The names a component at ``path`` imports and exports (its world's, at the top
    level: interfaces and functions, not types), or None for a core module. A
    component whose sections cannot be read is an ArtifactError."""
    with open_regular(path) as f:
        data = f.read()
    if not is_component(data):
        return None
    try:
        return _world(data)
    except (IndexError, ValueError, UnicodeDecodeError):
        raise ArtifactError(
            f"{path} starts as a WebAssembly component but its imports and exports cannot be "
            "read; it is damaged."
        ) from None


def _world(data: bytes) -> tuple[list[str], list[str]]:
    imports: list[str] = []
    exports: list[str] = []
    for section, pos, end in sections(data):
        if section not in (10, 11):  # import, export
            continue
        count, at = leb128(data, pos)
        for _ in range(count):
            name, at = _extern_name(data, at)
            if section == 10:
                if data[at] != 0x03:  # a type (a record the exports use) is not an import
                    imports.append(name)
                at = _extern_desc(data, at)
            else:
                if data[at] != 0x03:  # a type the world exports is not an export to run
                    exports.append(name)
                at = _sort_index(data, at)
                if data[at] == 0x01:  # an explicit type
                    at = _extern_desc(data, at + 1)
                elif data[at] != 0x00:
                    raise ValueError("bad export")
                else:
                    at += 1
        if at != end:
            raise ValueError("section size")
    return imports, exports


def _extern_name(data: bytes, pos: int) -> tuple[str, int]:
    tag = data[pos]
    if tag not in (0x00, 0x01):
        raise ValueError("bad name")
    name, pos = read_name(data, pos + 1)
    if tag == 0x01:  # a version suffix follows (newer encodings)
        length, pos = leb128(data, pos)
        pos += length
    return name, pos


def _extern_desc(data: bytes, pos: int) -> int:
    sort = data[pos]
    pos += 1
    if sort == 0x00:  # core module: 0x11 and a type index
        return leb128(data, pos + 1)[1]
    if sort in (0x01, 0x04, 0x05):  # func, component, instance: a type index
        return leb128(data, pos)[1]
    if sort in (0x02, 0x03):  # value or type bound
        bound = data[pos]
        if sort == 0x03 and bound == 0x01:  # sub resource
            return pos + 1
        return leb128(data, pos + 1)[1]  # an index, or a value type (LEB128 either way)
    raise ValueError("bad extern")


def _sort_index(data: bytes, pos: int) -> int:
    sort = data[pos]
    pos += 2 if sort == 0x00 else 1  # a core sort has a second byte
    return leb128(data, pos)[1]


def pick_from_index(index: dict[str, Any], where: str) -> str:
    """The digest of the wasm manifest listed in an image index."""
    manifests = index.get("manifests")
    entries = [e for e in manifests if isinstance(e, dict)] if isinstance(manifests, list) else []
    platforms = []
    for entry in entries:
        platform = entry.get("platform")
        platform = platform if isinstance(platform, dict) else {}
        platforms.append(f"{platform.get('os')}/{platform.get('architecture')}")
        if platform.get("architecture") == "wasm" or platform.get("os") in (
            "wasi",
            "wasip1",
            "wasip2",
        ):
            digest = entry.get("digest")
            if not is_digest(digest):
                raise ArtifactError(f"{where} lists a wasm manifest without a valid sha256 digest.")
            assert isinstance(digest, str)
            return digest
    raise ArtifactError(
        f"{where} is an index with no wasm platform (it lists {', '.join(platforms) or 'nothing'})."
    )
