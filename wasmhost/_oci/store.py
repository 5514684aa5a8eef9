"""The local content-addressed store of pulled artifacts.

``<cache>/oci/blobs/sha256/<hex>`` holds manifests and modules by digest;
``<cache>/oci/tags/<registry>/<repository>/<tag>`` records the manifest
digest a tag resolved to, for ``--offline`` runs; ``index.json`` (and the
``oci-layout`` marker) list the same under each full reference, so that the
store is an OCI image layout other tools read. Every file is written to a
temporary name in the same folder and renamed into place once its size and
sha256 are verified, so a reader never sees a partial or unverified blob and
concurrent pulls of the same reference share it safely. Blobs are read-only
(0444): a pulled module is a copy of one, never the stored file itself.

A blob's modification time is its last use: it is set when the blob is
verified for a use. :meth:`Store.remove` removes blobs (``wasmhost cache
prune``) and then what named them: the tags and index.json entries of a
manifest removed, the record of a layer's module removed; a reader that has a
removed blob open keeps reading it, one that had not yet opened it fetches
it again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .._errors import IntegrityError, StorageError
from .._files import (
    TEMP_PREFIX,
    atomic_writer,
    is_folder,
    listing,
    open_regular,
    read_regular,
    sweep,
    writing,
)
from .._hashing import sha256_of
from .._paths import CacheEntry
from .formats import OCI_MANIFEST, blob_path, is_digest, sha256_digest
from .layout import list_tag, update_index
from .reference import Reference

# The store's index.json is read up to this (it lists every tag pulled).
MAX_INDEX = 64 << 20
_RECORD = 256  # a tag's or an unpacked layer's record: one digest


class Store:
    """Blobs by digest and tags by reference under ``root`` (``<cache>/oci``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob_path(self, digest: str) -> Path:
        return blob_path(self.root, digest)

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        """Whether a blob is stored with the expected size (its sha256 is checked on use)."""
        path = self.blob_path(digest)
        try:
            actual = path.stat().st_size
        except OSError:
            return False
        return size is None or actual == size

    def read_verified(self, digest: str) -> bytes:
        """A stored blob's bytes, after checking them against ``digest``."""
        path = self.blob_path(digest)
        with self._reading(path) as f:
            data = f.read()
            if sha256_digest(data) != digest:
                raise self._damaged(digest, path, f)
        _used(path)
        return data

    def verify_file(self, digest: str) -> Path:
        """The path of a stored blob, after checking its sha256 (streamed)."""
        path = self.blob_path(digest)
        with self._reading(path) as f:
            if sha256_of(f)[0] != digest:
                raise self._damaged(digest, path, f)
        _used(path)
        return path

    @contextmanager
    def _reading(self, path: Path) -> Iterator[IO[bytes]]:
        with writing(path, "the store", "read"), open_regular(path) as f:
            yield f

    @staticmethod
    def _damaged(digest: str, path: Path, f: IO[bytes]) -> IntegrityError:
        """The error for a damaged blob, removed unless another writer replaced it since."""
        removed = "; it was removed"
        try:
            if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                path.unlink()
        except OSError as exc:
            removed = f" (and could not be removed: {exc.strerror})"
        return IntegrityError(
            f"the stored copy of {digest} is damaged{removed}; pull it again.",
        )

    @contextmanager
    def writer(self, digest: str) -> Iterator[IO[bytes]]:
        """A temporary file that becomes blob ``digest`` if the block ends without error.

        The caller verifies the content while writing (see
        ``Session.download_blob``); an exception leaves nothing behind.
        """
        path = self.blob_path(digest)
        with atomic_writer(path, 0o444, what="the store") as f:
            yield f
        sweep(path.parent)

    def put_bytes(self, data: bytes) -> str:
        digest = sha256_digest(data)
        if not self.has_blob(digest, len(data)):
            with self.writer(digest) as f:
                f.write(data)
        else:
            _used(self.blob_path(digest))  # a manifest asked for again: in use
        return digest

    def fill(self, digest: str, size: int, fetch: Callable[[IO[bytes]], None]) -> Path:
        """The stored blob ``digest``, fetched through ``fetch(file)`` if not stored yet."""
        if not self.has_blob(digest, size):
            with self.writer(digest) as f:
                fetch(f)
        return self.blob_path(digest)

    def verified(
        self, digest: str, size: int, fetch: Callable[[IO[bytes]], None], *, again: bool
    ) -> Path:
        """The stored blob ``digest``, its sha256 checked; fetched through ``fetch(file)``
        when it is not stored, and, with ``again``, when the stored copy is damaged
        (which the check removes)."""
        for _ in range(3):
            self.fill(digest, size, fetch)
            try:
                return self.verify_file(digest)
            except IntegrityError:
                if not again:
                    raise
                again = False
            except StorageError:
                if self.has_blob(digest):
                    raise
                # Removed between its fill and its check (`wasmhost cache prune`
                # elsewhere): fetched again.
        self.fill(digest, size, fetch)
        return self.verify_file(digest)

    def _unpacked_path(self, layer_digest: str) -> Path:
        self.blob_path(layer_digest)  # refuses a malformed digest
        return self.root / "unpacked" / layer_digest.removeprefix("sha256:")

    def remember_unpacked(self, layer_digest: str, module_digest: str) -> None:
        """Record which module an image layer holds, so it is not unpacked again."""
        path = self._unpacked_path(layer_digest)
        with atomic_writer(path, what="the store") as f:
            f.write(module_digest.encode() + b"\n")

    def unpacked(self, layer_digest: str) -> str | None:
        """The module digest an image layer was found to hold, if recorded."""
        return _recorded(self._unpacked_path(layer_digest))

    def _signatures_path(self, digest: str) -> Path:
        self.blob_path(digest)  # refuses a malformed digest
        return self.root / "signatures" / digest.removeprefix("sha256:")

    def remember_signature(self, digest: str, payload: bytes, signature: bytes) -> None:
        """Keep a signature of manifest ``digest`` that checked out: a signature is a
        fact that does not change, and with it a run checks the key without the
        registry (and offline)."""
        record = json.dumps(
            {
                "payload": base64.b64encode(payload).decode(),
                "signature": base64.b64encode(signature).decode(),
            }
        ).encode()
        path = self._signatures_path(digest) / sha256_digest(record).removeprefix("sha256:")
        if not path.exists():
            with atomic_writer(path, 0o444, what="the store") as f:
                f.write(record)

    def signatures(self, digest: str, limit: int = 16) -> list[tuple[bytes, bytes]]:
        """The signatures of manifest ``digest`` kept by :meth:`remember_signature`
        (payload, signature); damaged records are skipped."""
        found = []
        for entry in listing(self._signatures_path(digest))[:limit]:
            try:  # a regular file only: a FIFO planted here would block the read
                record = json.loads(read_regular(entry.path, 256 << 10))
                found.append(
                    (base64.b64decode(record["payload"]), base64.b64decode(record["signature"]))
                )
            except (OSError, ValueError, KeyError, TypeError, RecursionError):
                continue
        return found

    def _tag_path(self, reference: Reference) -> Path:
        assert reference.tag is not None
        # Tags in a folder of their own (repository names never start with "_"),
        # so that repo "app" tag "v1" and repo "app/v1" cannot collide.
        registry = reference.registry.replace(":", "_")
        return self.root / "tags" / registry / reference.repository / "_tags" / reference.tag

    def remember_tag(
        self, reference: Reference, digest: str, media_type: str = "", size: int | None = None
    ) -> None:
        """Record what ``reference`` resolved to, for offline use, and list it in the
        store's index.json (see :meth:`_list`)."""
        if reference.tag is None:
            return
        path = self._tag_path(reference)
        with atomic_writer(path, what="the store") as f:
            f.write(digest.encode() + b"\n")
        self._list(str(reference), digest, media_type or OCI_MANIFEST, size)

    def _list(self, name: str, digest: str, media_type: str, size: int | None) -> None:
        """Put ``name`` in index.json: the store is an OCI image layout that skopeo and
        umoci read (``umoci ls --layout <cache>/oci``). Written by the layouts' one
        writer (locked: concurrent pulls lose no entry); a damaged index is started
        again, as the tags/ records, not it, are what wasmhost itself reads."""
        if size is None:
            try:
                size = self.blob_path(digest).stat().st_size
            except OSError:
                return  # a manifest not stored cannot be described
        descriptor = {"mediaType": media_type, "digest": digest, "size": size}
        list_tag(self.root, name, descriptor, what="the store", limit=MAX_INDEX, rebuild=True)

    def recall_tag(self, reference: Reference) -> str | None:
        if reference.tag is None:
            return None
        return _recorded(self._tag_path(reference))

    # -- what it holds, for `wasmhost cache` -----------------------------------

    def entries(self) -> list[CacheEntry]:
        """Its blobs, each named by its digest and the references whose tags name it."""
        names: dict[str, list[str]] = {}
        for reference, _, digest in self._tags():
            names.setdefault(digest, []).append(reference)
        found = []
        blobs = self.root / "blobs"
        for folder in listing(blobs) if _real_folder(self.root, blobs) else []:
            algorithm = folder.name
            if not folder.is_dir(follow_symlinks=False):
                continue
            for blob in listing(Path(folder.path)):
                with contextlib.suppress(OSError):
                    st = blob.stat(follow_symlinks=False)
                    digest = f"{algorithm}:{blob.name}"
                    if not (stat.S_ISREG(st.st_mode) and is_digest(digest)):
                        continue  # not a blob: never listed, so never removed
                    refs = sorted(names.get(digest, []))
                    name = f"{digest} ({', '.join(refs)})" if refs else digest
                    found.append(CacheEntry("oci", name, st.st_size, st.st_mtime, Path(blob.path)))
        return found

    def remove(self, entries: Sequence[CacheEntry]) -> list[CacheEntry]:
        """Remove the blobs ``entries`` name, each by one unlink, then the tags, index.json
        entries and unpacked-layer records that named a blob now gone; those removed."""
        removed = []
        for entry in entries:
            with contextlib.suppress(OSError):
                entry.path.unlink()
                removed.append(entry)
        if removed:
            self._tidy()
        return removed

    def _tidy(self) -> None:
        """Drop what names a blob no longer stored: a tag (offline use would find no
        manifest), an index.json entry (other tools would find none), an unpacked
        layer's record."""
        for _, tag, digest in self._tags():
            if not self.has_blob(digest):
                with contextlib.suppress(OSError):
                    tag.unlink()
        records = self.root / "unpacked"
        for unpacked in listing(records) if _real_folder(self.root, records) else []:
            module = _recorded(Path(unpacked.path))
            layer = "sha256:" + unpacked.name
            if not is_digest(layer) or unpacked.is_symlink():
                continue  # not a record of ours
            if module is None or not (self.has_blob(module) and self.has_blob(layer)):
                with contextlib.suppress(OSError):
                    os.unlink(unpacked.path)
        index_path = self.root / "index.json"
        if not index_path.exists():
            return

        def held(entries: list[Any]) -> list[Any] | None:
            kept = [e for e in entries if self._holds(e.get("digest"))]
            return kept if len(kept) != len(entries) else None

        update_index(self.root, held, what="the store", limit=MAX_INDEX, rebuild=True)

    def _holds(self, digest: object) -> bool:
        return isinstance(digest, str) and is_digest(digest) and self.has_blob(digest)

    def _tags(self) -> Iterator[tuple[str, Path, str]]:
        """Each tag recorded: its reference, its record and the digest it names."""
        top = self.root / "tags"
        if not _real_folder(self.root, top):
            return
        for folder, _, files in os.walk(top):
            where = Path(folder)
            if where.name != "_tags":
                continue
            parts = where.parent.relative_to(top).parts
            if len(parts) < 2:
                continue  # not where remember_tag writes: not a tag of ours
            registry, *repository = parts
            for tag in files:
                digest = _recorded(where / tag)
                if digest is not None and not tag.startswith(TEMP_PREFIX):
                    name = f"{registry.replace('_', ':')}/{'/'.join(repository)}:{tag}"
                    yield name, where / tag, digest


def _real_folder(*folders: Path) -> bool:
    """Whether each of ``folders`` is a folder itself, not a symbolic link to one: what
    `wasmhost cache` lists and removes lies in the store, never behind a link."""
    return all(is_folder(folder) for folder in folders)


def _used(path: Path) -> None:
    """Record a blob's use (its modification time) for pruning the least recently used."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _recorded(path: Path) -> str | None:
    """The digest a record holds (a tag's, an unpacked layer's), if it is there and one."""
    try:
        digest = read_regular(path, _RECORD).decode(errors="replace").strip()
    except OSError:
        return None
    return digest if is_digest(digest) else None
