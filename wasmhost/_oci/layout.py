"""Writing artifacts into a local OCI image layout (``--oci-layout``, as the oras CLI does).

``DIR[:TAG]``: blobs under ``DIR/blobs/sha256/``, the ``oci-layout`` marker,
and ``index.json`` listing each manifest with its tag in the
``org.opencontainers.image.ref.name`` annotation (an entry with the same tag
is replaced). Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .._errors import ArtifactError, ConfigError, IntegrityError, NotFoundError, WasmhostError
from .._files import atomic_writer, check_output, open_regular, writing
from .._text import utf8
from .formats import (
    MAX_MANIFEST,
    OCI_INDEX,
    Progress,
    blob_path,
    copy_checked,
    is_digest,
    json_object,
    sha256_digest,
)

REF_NAME = "org.opencontainers.image.ref.name"
# Taken (flock) by every writer of a layout's index.json: see update_index.
INDEX_LOCK = ".index.lock"


class NoSuchTag(ArtifactError, NotFoundError):
    """A tag the layout does not list: an ArtifactError (what a layout's faults are),
    and a NotFoundError as a registry's missing tag is, so that code reading either
    (signatures beside a manifest) asks one question."""


def parse_layout(spec: str) -> tuple[Path, str]:
    """``DIR[:TAG]`` as the oras CLI reads it; the tag defaults to ``latest``."""
    if spec.endswith((":", "@")):  # as `repo:` for a registry: never a folder named so
        raise ConfigError(
            f"{spec!r} ends with an empty tag or digest; write DIR, DIR:TAG or DIR@sha256:..."
        )
    folder, colon, tag = spec.rpartition(":")
    if not colon or "/" in tag or not tag:
        folder, tag = spec, "latest"
    if not folder:
        raise ConfigError(f"{spec!r} is not DIR[:TAG], an OCI layout folder and a tag.")
    utf8("tag", [tag])  # written into index.json
    return Path(folder), tag


def parse_layout_reference(spec: str) -> tuple[Path, str]:
    """``DIR[:TAG]`` or ``DIR@sha256:...``, to read from: the folder and the tag or digest.

    A tag may hold colons and slashes (the pull store lists ``host:5000/repo:v1``):
    the folder is the longest prefix that is a layout, else what precedes the
    last colon, as ``DIR[:TAG]`` reads.
    """
    folder, at, digest = spec.rpartition("@")
    if at and ":" in digest and "/" not in digest:
        if not is_digest(digest):
            raise ConfigError(f"{spec!r}: the digest must be sha256: and 64 lowercase hex digits.")
        if not folder:
            raise ConfigError(f"{spec!r} is not DIR@DIGEST, an OCI layout folder and a digest.")
        return Path(folder), digest
    if (Path(spec) / "oci-layout").is_file():
        return Path(spec), "latest"
    for i in range(len(spec) - 1, 0, -1):
        if spec[i] == ":" and (Path(spec[:i]) / "oci-layout").is_file():
            return Path(spec[:i]), spec[i + 1 :] or "latest"
    return parse_layout(spec)


def layout_file_name(spec: str) -> str:
    """The file name a module pulled from the layout ``spec`` gets: its folder's name,
    with ``.wasm`` unless it ends so."""
    name = parse_layout_reference(spec)[0].resolve().name
    return name if name.endswith(".wasm") else name + ".wasm"


class OciLayout:
    """An OCI image layout folder: pushed to (and then created when missing), or read from.

    It takes the calls a registry's :class:`~wasmhost._oci.remote.Session` takes
    (``get_manifest``, ``download_blob``, ``upload_blob``, ``put_manifest``), so
    that push, pull and inspect are written once for both (see ``client``).
    What is read is checked as from a registry: a manifest or blob must hash to
    its digest, and a manifest or the index is read up to ``MAX_MANIFEST``.
    """

    @classmethod
    def existing(cls, root: Path) -> OciLayout:
        """The layout at ``root``, to read from: never created."""
        if not (root / "oci-layout").is_file():
            raise ArtifactError(f"{root} is not an OCI image layout (it has no oci-layout file).")
        layout = cls.__new__(cls)
        layout.root = root
        return layout

    def __init__(self, root: Path) -> None:
        check_output(root, "the OCI layout", folder=True)
        self.root = root
        with writing(root, "the OCI layout"):
            (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        mark_layout(root, "the OCI layout")

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
        for folder in (path.parent.parent, path.parent):
            if folder.is_symlink():  # writing through it would write outside the layout
                raise ArtifactError(f"{folder} is a symbolic link; not writing through it.")
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
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if platform:
            entry["platform"] = platform
        list_tag(self.root, tag, entry, what="the OCI layout")
        return digest

    # -- reading, as from a registry --------------------------------------------

    def get_manifest(self, target: str) -> tuple[bytes, str, str]:
        """The bytes, media type and digest of the manifest ``target`` names: a tag in
        index.json, or a digest."""
        media_type = ""
        if is_digest(target):
            digest = target
        else:
            entry = self._tagged(target)
            digest, media_type = str(entry.get("digest")), str(entry.get("mediaType") or "")
        data = self._read(digest, MAX_MANIFEST, f"the manifest {digest}")
        return data, media_type, digest

    def download_blob(
        self, digest: str, size: int, out: IO[bytes], progress: Progress | None = None
    ) -> None:
        """Copy blob ``digest`` into ``out``, checking its size and sha256 on the way."""
        try:
            with open_regular(self.blob_path(digest)) as f:
                chunks = iter(lambda: f.read(1 << 20), b"")
                copied, actual = copy_checked(chunks, size, out, progress)
        except FileNotFoundError:
            raise ArtifactError(f"{self.root} has no blob {digest}.") from None
        except OSError as exc:
            if exc.filename is None:
                raise  # the writing side's (a full store): not the layout's fault
            raise ArtifactError(
                f"blob {digest} in {self.root} cannot be read: {exc.strerror}."
            ) from None
        if copied != size or actual != digest:
            got = f"{copied}+ bytes" if copied > size else f"{copied} bytes, digest {actual}"
            raise IntegrityError(
                f"blob {digest} in {self.root} does not match its descriptor "
                f"(expected {size} bytes, got {got}); nothing was kept."
            )

    def _tagged(self, tag: str) -> dict[str, Any]:
        index = _parse(self._read_file(self.root / "index.json", "the index.json"), self.root)
        listed = index.get("manifests")
        if not isinstance(listed, list):
            raise ArtifactError(f"{self.root}/index.json lists no manifests.")
        named = [(_ref_name(e), e) for e in listed if isinstance(e, dict)]
        for name, entry in named:
            if name == tag:
                if not is_digest(entry.get("digest")):
                    raise IntegrityError(f"{self.root}: the digest of tag {tag!r} is malformed.")
                return entry
        tags = sorted(name for name, _ in named if name)
        listed = ", ".join(tags) if tags else "no tags"
        raise NoSuchTag(f"{self.root} has no image tagged {tag!r}; it has: {listed}.")

    def _read(self, digest: str, limit: int, what: str) -> bytes:
        data = self._read_file(self.blob_path(digest), what, limit)
        if sha256_digest(data) != digest:
            raise IntegrityError(f"{what} in {self.root} does not match its digest; refusing it.")
        return data

    def _read_file(self, path: Path, what: str, limit: int = MAX_MANIFEST) -> bytes:
        return _read_file(self.root, path, what, limit)


def _read_file(root: Path, path: Path, what: str, limit: int) -> bytes:
    """The bytes of a layout's file, up to ``limit`` (past it, refused): an
    ArtifactError or IntegrityError in one line otherwise."""
    try:
        with open_regular(path) as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ArtifactError(f"{root} has no {what.removeprefix('the ')}.") from None
    except OSError as exc:
        raise ArtifactError(f"{what} in {root} cannot be read: {exc.strerror}.") from None
    if len(data) > limit:
        raise IntegrityError(f"{what} in {root} is over {limit >> 20} MiB; refusing it.")
    return data


# -- writing index.json: the one writer, for a layout and for the pull store -------

Entries = list[Any]  # index.json's "manifests", as read: untrusted JSON values


def list_tag(
    root: Path,
    tag: str,
    descriptor: dict[str, Any],
    *,
    what: str,
    limit: int = MAX_MANIFEST,
    rebuild: bool = False,
) -> None:
    """List ``descriptor`` in ``root``'s index.json under ``tag``, in place of the
    entry that had that tag (see :func:`update_index`)."""
    entry = {**descriptor, "annotations": {REF_NAME: tag}}

    def put(entries: Entries) -> Entries:
        kept = [e for e in entries if not isinstance(e, dict) or _ref_name(e) != tag]
        return [*kept, entry]

    update_index(root, put, what=what, limit=limit, rebuild=rebuild)


def update_index(
    root: Path,
    change: Callable[[Entries], Entries | None],
    *,
    what: str,
    limit: int = MAX_MANIFEST,
    rebuild: bool = False,
) -> None:
    """Write ``root``'s index.json with its manifests as ``change(manifests)`` returns
    them (None: left as it is), and the ``oci-layout`` marker if it is missing.

    Updates are serialised by a lock on ``root/.index.lock``, so that writers in
    several threads or processes lose no entry; the index is read up to ``limit``
    bytes and written whole (to a temporary name, renamed). A missing index starts
    empty. One that is damaged (not JSON, of the wrong shape, over ``limit``, not a
    regular file) is refused in one line, an ArtifactError or IntegrityError,
    and left as it is; with ``rebuild``, for an index that is only a view of
    something else (the pull store's, of its tags), it is started again, and
    entries without a tag are dropped. ``what`` names the folder in errors.
    """
    index_path = root / "index.json"
    # The lock is a regular file of the folder: not followed out of it if a symlink,
    # never a FIFO to block on.
    with writing(root, what), open_regular(root / INDEX_LOCK, os.O_CREAT | os.O_NOFOLLOW) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mark_layout(root, what)
        damaged = False
        try:
            index = _read_index(root, limit)
        except WasmhostError:
            if not rebuild:
                raise
            index, damaged = _empty_index(), True
        entries = index["manifests"]
        if rebuild:
            entries = [e for e in entries if isinstance(e, dict) and _ref_name(e) is not None]
        changed = change(entries)
        if changed is None:
            if not damaged and len(entries) == len(index["manifests"]):
                return
            changed = entries  # healed: written even though the change left it
        index["manifests"] = changed
        with atomic_writer(index_path, what=what) as f:
            f.write(json.dumps(index, indent=2).encode() + b"\n")


def mark_layout(root: Path, what: str) -> None:
    """Write the ``oci-layout`` marker in ``root`` if it is not there."""
    marker = root / "oci-layout"
    if not marker.exists():
        with atomic_writer(marker, what=what) as f:
            f.write(b'{"imageLayoutVersion":"1.0.0"}')


def _read_index(root: Path, limit: int) -> dict[str, Any]:
    """``root``'s index.json (a new, empty one if there is none), with a list of manifests."""
    index_path = root / "index.json"
    if not os.path.lexists(index_path):
        return _empty_index()
    index = _parse(_read_file(root, index_path, "the index.json", limit), root)
    index.setdefault("manifests", [])
    if not isinstance(index["manifests"], list):
        raise ArtifactError(f"{index_path} lists no manifests.")
    return index


def _empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def _ref_name(entry: dict[str, Any]) -> str | None:
    """The tag of an index entry, if it has a well-formed one."""
    annotations = entry.get("annotations")
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def _parse(data: bytes, root: Path) -> dict[str, Any]:
    return json_object(data, f"{root}/index.json")
