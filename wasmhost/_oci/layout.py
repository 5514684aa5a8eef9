"""Writing artifacts into a local OCI image layout (``--oci-layout``, as the oras CLI does).

``DIR[:TAG]``: blobs under ``DIR/blobs/sha256/``, the ``oci-layout`` marker,
and ``index.json`` listing each manifest with its tag in the
``org.opencontainers.image.ref.name`` annotation (an entry with the same tag
is replaced). Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .._errors import ConfigError
from .._files import atomic_writer, writing
from .formats import OCI_INDEX, blob_path, sha256_digest

if TYPE_CHECKING:
    from .remote import Progress

REF_NAME = "org.opencontainers.image.ref.name"


def parse_layout(spec: str) -> tuple[Path, str]:
    """``DIR[:TAG]`` as the oras CLI reads it; the tag defaults to ``latest``."""
    folder, colon, tag = spec.rpartition(":")
    if not colon or "/" in tag or not tag:
        folder, tag = spec, "latest"
    if not folder:
        raise ConfigError(f"{spec!r} is not DIR[:TAG], an OCI layout folder and a tag.")
    return Path(folder), tag


class OciLayout:
    """An OCI image layout folder, created when missing."""

    def __init__(self, root: Path) -> None:
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root} exists and is not a folder; an OCI layout is a folder.")
        self.root = root
        with writing(root, "the OCI layout"):
            (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = root / "oci-layout"
        if not marker.exists():
            with atomic_writer(marker, what="the OCI layout") as f:
                f.write(b'{"imageLayoutVersion":"1.0.0"}')

    def blob_path(self, digest: str) -> Path:
        return blob_path(self.root, digest)

    def upload_blob(
        self,
        digest: str,
        size: int,
        content: bytes | Callable[[], IO[bytes]],
        progress: Progress | None = None,
    ) -> None:
        """Store a blob (as ``Session.upload_blob`` sends one), unless it is there."""
        path = self.blob_path(digest)
        if path.exists() and path.stat().st_size == size:
            return
        with atomic_writer(path, what="the OCI layout") as out:
            if isinstance(content, bytes):
                out.write(content)
            else:
                with content() as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        if progress:
            progress(size, size)

    def put_manifest(
        self, tag: str, data: bytes, media_type: str, platform: dict[str, str] | None = None
    ) -> str:
        """Store a manifest and list it in index.json under ``tag`` (with its platform)."""
        digest = sha256_digest(data)
        self.upload_blob(digest, len(data), data)
        index_path = self.root / "index.json"
        try:
            index: dict[str, Any] = json.loads(index_path.read_text())
        except FileNotFoundError:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        except (OSError, ValueError):
            raise ConfigError(f"{index_path} is not a readable OCI index.") from None
        entries = [
            e
            for e in index.get("manifests", [])
            if (e.get("annotations") or {}).get(REF_NAME) != tag
        ]
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if platform:
            entry["platform"] = platform
        entry["annotations"] = {REF_NAME: tag}
        entries.append(entry)
        index["manifests"] = entries
        with atomic_writer(index_path, what="the OCI layout") as f:
            f.write(json.dumps(index, indent=2).encode() + b"\n")
        return digest
