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


def extract_module(layer: Path, out: IO[bytes], check_size: Callable[[int], None]) -> str:
    """Copy the one ``.wasm`` file of an image layer (tar, gzipped or not) to ``out``.

    Only a regular file counts; its name inside the archive is never used as
    a path here. ``check_size`` is given the module's size first, and raises
    if it is too big. Returns the module's sha256 digest.
    """
    from .._errors import ArtifactError

    hasher = hashlib.sha256()
    try:
        tar = tarfile.open(layer, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, EOFError, OSError):
        raise ArtifactError("the image's layer is not a readable tar archive.") from None
    with tar:
        files = []
        try:
            for member in tar:
                if member.isfile():
                    if member.name.endswith(".wasm"):
                        # Before the archive is read past it: a small layer may claim
                        # a huge module, and reading on would inflate all of it.
                        check_size(member.size)
                    files.append(member)
        except (tarfile.TarError, EOFError, OSError, zlib.error):
            raise ArtifactError("the image's layer is not a readable tar archive.") from None
        members = [m for m in files if m.name.endswith(".wasm")]
        if len(members) != 1:
            raise ArtifactError(
                f"the image's layer holds {len(members)} .wasm files (and {len(files)} files "
                "in all); wasmhost runs images whose layer holds one module."
            )
        source = tar.extractfile(members[0])
        assert source is not None
        while True:
            try:
                chunk = source.read(1 << 20)
            except (tarfile.TarError, EOFError, zlib.error):
                raise ArtifactError("the image's layer is truncated or damaged.") from None
            if not chunk:
                break
            hasher.update(chunk)
            out.write(chunk)  # a full disk is an OSError of its own, not the layer's fault
    return "sha256:" + hasher.hexdigest()


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
