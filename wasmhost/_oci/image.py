"""The OCI image form of a module, as ``FROM scratch`` + ``COPY module.wasm /`` builds it.

One tar+gzip layer holding the module at the root (uid/gid 0, mode 0755,
a fixed mtime, gzip without a timestamp, so the digest depends only on the
module), an image config with ``architecture: wasm``, ``os: wasip1`` (or
``wasi``, Docker's ``--platform wasi/wasm``) and an ``Entrypoint`` naming
the module, and the manifest annotation ``module.wasm.image/variant`` that
crun and youki look for to run the module with their Wasm handler.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

from .._files import open_regular
from .formats import OCI_MANIFEST, Artifact, canonical_json, sha256_digest, with_created

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
VARIANT = "module.wasm.image/variant"
VARIANTS = ("compat", "compat-smart")
IMAGE_OSES = ("wasip1", "wasi")
# The largest module an image layer may unpack to (a gzip bomb stops here).


class Layer(NamedTuple):
    """A built layer: the gzip file, its digest and size, and the tar's digest (diff id)."""

    path: Path
    digest: str
    size: int
    diff_id: str


class _Hashing:
    """A write-through file wrapper that hashes and counts what passes."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()


def build_layer(module: str | os.PathLike[str], folder: Path, mtime: int = 0) -> Layer:
    """Write the layer of ``module`` into ``folder``, streamed (memory stays flat)."""
    name = os.path.basename(os.fspath(module))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="layer-", suffix=".tar.gz")
    with os.fdopen(fd, "wb") as raw:
        compressed = _Hashing(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as gz:
            plain = _Hashing(gz)  # type: ignore[arg-type]
            # PAX: names of any length; the mtime, uid and gid are set, so it is reproducible.
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                info = tarfile.TarInfo(name)
                info.size = os.path.getsize(module)
                info.mode = 0o755
                info.mtime = mtime
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open_regular(module) as src:
                    tar.addfile(info, src)
    return Layer(
        Path(tmp),
        "sha256:" + compressed.hasher.hexdigest(),
        compressed.size,
        "sha256:" + plain.hasher.hexdigest(),
    )


def build_image(
    path: str,
    folder: Path,
    *,
    os_name: str,
    variant: str,
    annotations: dict[str, str],
    created: str | None,
    mtime: int,
) -> Artifact:
    """The image of the module at ``path``: its layer is written into ``folder``."""
    layer = build_layer(path, folder, mtime=mtime)
    config = image_config(os.path.basename(path), layer, os_name=os_name, created=created)
    notes = with_created(annotations, created)
    manifest = image_manifest(config, layer, variant=variant, annotations=notes)
    platform = {"architecture": "wasm", "os": os_name}
    return Artifact(config, manifest, layer.digest, layer.size, str(layer.path), platform)


def image_config(name: str, layer: Layer, *, os_name: str, created: str | None) -> bytes:
    """The image config: platform wasm/OS, Entrypoint the module, one layer."""
    config: dict[str, Any] = {}
    if created is not None:
        config["created"] = created
    config.update(
        architecture="wasm",
        os=os_name,
        config={"Entrypoint": [f"/{name}"]},
        rootfs={"type": "layers", "diff_ids": [layer.diff_id]},
        history=[{"created_by": f"COPY {name} /", **({"created": created} if created else {})}],
    )
    return canonical_json(config)


def image_manifest(
    config: bytes, layer: Layer, *, variant: str, annotations: dict[str, str]
) -> bytes:
    notes = {VARIANT: variant, **annotations}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": TAR_GZIP, "digest": layer.digest, "size": layer.size}],
        "annotations": dict(sorted(notes.items())),
    }
    return canonical_json(manifest)


# What a layer may hold besides its module, read header by header (as a stream, never
# whole): tarfile reads an extended header whole (a 2 GiB GNU long name is 2 GiB of
# memory) and keeps every member it has seen (2,000,000 empty ones took 793 MiB).
# MAX_EXTENDED_HEADER bounds all the extended headers before one member together:
# 4,000 PAX headers of 64 KiB each, one after another, took 266 MiB.
MAX_EXTENDED_HEADER = 64 << 10
MAX_MEMBERS = 10_000
_BLOCK = 512
_EXTENDED = (b"L", b"K", b"x", b"g")  # GNU long name and link; PAX, global PAX
_FILES = (b"0", b"\0", b"7")
# Sparse members are read differently by different tar readers (an old GNU one has
# extension blocks after its header; PAX ones keep their map in the data): an OCI
# layer has none, so one is refused rather than read one way of several.
_SPARSE = b"S"
_SPARSE_KEY = b"GNU.sparse."
# A global PAX header applies to the members after it in some readers and not in
# others; what it may not set is what decides where a member is and what it holds.
_MEMBER_KEYS = (b"path", b"size")


def extract_module(layer: Path, out: IO[bytes], check_size: Callable[[int], None]) -> str:
    """Copy the one ``.wasm`` file of an image layer (tar, gzipped or not) to ``out``.

    Only a regular file counts; its name inside the archive is never used as
    a path here. ``check_size`` is given the module's size first, and raises
    if it is too big. Returns the module's sha256 digest. The archive is read
    once, as a stream: extended headers over MAX_EXTENDED_HEADER in all before
    one member, sparse members, and archives of over MAX_MEMBERS entries are
    refused.
    """
    from .._errors import ArtifactError

    with open(layer, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        src: IO[bytes] = gzip.GzipFile(fileobj=raw) if gzipped else raw  # type: ignore[assignment]
        module: str | None = None
        files = modules = 0
        extended: dict[bytes, bytes] = {}
        extended_size = 0  # of the extended headers since the last member
        for entry in range(MAX_MEMBERS + 1):
            header = _read(src, _BLOCK, end_ok=True)
            if not header or header.count(0) == _BLOCK:  # the end marker, or no more
                break
            if entry == MAX_MEMBERS:
                raise ArtifactError(
                    f"the image's layer holds over {MAX_MEMBERS} entries; refusing it."
                )
            kind, size, name = _header(header)
            if kind == _SPARSE:
                raise _sparse()
            if kind in _EXTENDED:
                extended_size += size
                if extended_size > MAX_EXTENDED_HEADER:
                    what = (
                        f"an extended tar header of {size} bytes"
                        if extended_size == size
                        else f"{extended_size} bytes of extended tar headers before one entry"
                    )
                    raise ArtifactError(
                        f"the image's layer has {what}, over "
                        f"{MAX_EXTENDED_HEADER >> 10} KiB; refusing it."
                    )
                data = _read(src, size + -size % _BLOCK)[:size]
                if kind == b"L":
                    extended[b"path"] = data.split(b"\0", 1)[0]
                elif kind in (b"x", b"g"):
                    records = _pax(data)
                    if any(key.startswith(_SPARSE_KEY) for key in records):
                        raise _sparse()
                    if kind == b"x":
                        extended.update(records)
                    elif any(key in records for key in _MEMBER_KEYS):
                        raise ArtifactError(
                            "the image's layer has a global tar header that sets the path or "
                            "size of the entries after it; refusing it."
                        )
                continue
            name = extended.get(b"path", name)
            if b"size" in extended:  # PAX: decimal, for sizes the header cannot hold
                if not extended[b"size"].isdigit():
                    raise _damaged()
                size = int(extended[b"size"])
            extended = {}
            extended_size = 0
            wasm = kind in _FILES and name.endswith(b".wasm")
            files += kind in _FILES
            if wasm:
                modules += 1
                check_size(size)  # before the module is read: a small layer may claim a huge one
            if wasm and modules == 1:
                module = _copy(src, size, out)
                _read(src, -size % _BLOCK)
            else:
                _skip(src, size + -size % _BLOCK)
    if modules != 1 or module is None:
        raise ArtifactError(
            f"the image's layer holds {modules} .wasm files (and {files} files in all); "
            "wasmhost runs images whose layer holds one module."
        )
    return module


def _sparse() -> Exception:
    from .._errors import ArtifactError

    return ArtifactError(
        "the image's layer has a sparse file, which an OCI image layer does not hold; "
        "refusing it (rebuild the layer without sparse files)."
    )


def _damaged() -> Exception:
    from .._errors import ArtifactError

    return ArtifactError("the image's layer is not a readable tar archive, or is truncated.")


def _read(src: IO[bytes], size: int, *, end_ok: bool = False) -> bytes:
    """``size`` bytes of the layer (fewer only at its end, when ``end_ok``)."""
    try:
        data = src.read(size)
    except (OSError, EOFError, zlib.error):
        raise _damaged() from None
    if len(data) != size and not (end_ok and not data):
        raise _damaged()
    return data


def _skip(src: IO[bytes], size: int) -> None:
    while size > 0:
        size -= len(_read(src, min(size, 1 << 20)))


def _copy(src: IO[bytes], size: int, out: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    while size > 0:
        chunk = _read(src, min(size, 1 << 20))
        size -= len(chunk)
        hasher.update(chunk)
        out.write(chunk)  # a full disk is an OSError of its own, not the layer's fault
    return "sha256:" + hasher.hexdigest()


def _header(block: bytes) -> tuple[bytes, int, bytes]:
    """The type, size and name of a tar header block, checked against its checksum."""
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + b" " * 8 + block[156:])
    if _number(block[148:156]) not in (unsigned, signed):
        raise _damaged()
    name = block[:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\0" and prefix:  # POSIX ustar: a long name's folder
        name = prefix + b"/" + name
    size = _number(block[124:136])
    if size < 0:
        raise _damaged()
    return block[156:157], size, name


def _number(field: bytes) -> int:
    """A tar number: octal digits, or base-256 when the first bit is set (GNU)."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    try:
        return int(field.strip(b" \0") or b"0", 8)
    except ValueError:
        raise _damaged() from None


def _pax(data: bytes) -> dict[bytes, bytes]:
    """The records of a PAX extended header: ``LENGTH KEY=VALUE\\n`` each (read in place:
    cutting the rest off after each record made many small records quadratic)."""
    records: dict[bytes, bytes] = {}
    at = 0
    while at < len(data):
        length, space, _ = data[at : at + 20].partition(b" ")
        if not space or not length.isdigit() or not 0 < int(length) <= len(data) - at:
            raise _damaged()
        end = at + int(length)
        key, equals, value = data[at + len(length) + 1 : end - 1].partition(b"=")
        if not equals or data[end - 1 : end] != b"\n":
            raise _damaged()
        records[key] = value
        at = end
    return records


__all__ = [
    "IMAGE_OSES",
    "VARIANTS",
    "Layer",
    "build_image",
    "build_layer",
    "extract_module",
    "image_config",
    "image_manifest",
]
