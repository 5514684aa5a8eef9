"""Where wasmhost keeps its files: the cache folder shared by the compile
cache, the registry client's store and the runtimes ``compare`` copies; and
what the disk caches hold, as ``wasmhost cache`` shows and prunes it.

The compile cache (``compiled/``, see ``_host.cache``) and the store of
pulled artifacts (``oci/``, see ``_oci.store``) each list their entries
(:class:`CacheEntry`: what, how big, when last used) and remove whole
entries; :func:`least_recently_used` picks which to remove, by age and by
size, the least recently used first.

Removing is safe while other processes use the caches: an entry is one
file, or a file and its record, each removed by one ``unlink`` (atomic); a
reader that has the file open or mapped keeps reading it (Linux frees it
when the last descriptor or mapping goes), and one that finds it gone
compiles or fetches it again, as on a first use. The last use is recorded
in the entry's modification time: the compile cache sets its record's when
it loads an entry, the store a blob's when it verifies it (access times are
not kept by ``noatime`` or ``relatime`` mounts).

:func:`module_file_name` is the name a module pulled from a reference gets
(``pull``'s default output, the argv[0] of a pulled module's guest).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from ._errors import ConfigError
from ._numbers import parse_size

MAX_SIZE_ENV = "WASMHOST_CACHE_MAX_SIZE"


def module_file_name(reference: str) -> str:
    """The file name a module pulled from ``reference`` gets: the repository's last
    part and ``.wasm`` (``localhost:5000/team/app:v1`` gives ``app.wasm``). Any other
    name gives what its last ``/`` part holds before a tag or digest."""
    repository = reference.partition("@")[0].rsplit("/", 1)[-1].partition(":")[0]
    return repository + ".wasm"


def default_cache_root() -> Path | None:
    """The compile cache's folder the environment asks for, or None when it is off."""
    if os.environ.get("WASMHOST_NO_CACHE", "") not in ("", "0"):
        return None
    return cache_root()


def cache_root() -> Path:
    """The wasmhost cache folder: ``$WASMHOST_CACHE_DIR``, else ``$XDG_CACHE_HOME/wasmhost``."""
    explicit = os.environ.get("WASMHOST_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "wasmhost"


def unusable(folder: Path) -> str | None:
    """Why the cache cannot be kept in ``folder``, or None: the nearest part of its path
    that exists is no folder, or cannot be written."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


class CacheEntry(NamedTuple):
    """One entry of a disk cache: a compiled module (with its record) or a stored blob."""

    cache: Literal["compile", "oci"]
    name: str
    """What it is: a compiled module's key and engine, a blob's digest (and the
    references that name it)."""
    size: int
    """Bytes on disk."""
    last_used: float
    """When it was last used (or written), in seconds since the epoch."""
    path: Path


def least_recently_used(
    found: Sequence[CacheEntry],
    older_than: float | None = None,
    max_size: int | None = None,
    now: float | None = None,
    keep: Path | None = None,
) -> list[CacheEntry]:
    """Which of ``found`` to remove: those last used more than ``older_than`` seconds
    before ``now``, then the least recently used until the rest hold ``max_size``
    bytes at most; never the entry at ``keep`` (one just written)."""
    cutoff = None if older_than is None else (now if now is not None else time.time()) - older_than
    doomed: list[CacheEntry] = []
    kept: list[CacheEntry] = []
    for entry in sorted(found, key=lambda e: e.last_used):
        if cutoff is not None and entry.last_used < cutoff and entry.path != keep:
            doomed.append(entry)
        else:
            kept.append(entry)
    if max_size is not None:
        total = sum(e.size for e in kept)
        for entry in kept:  # the least recently used first
            if total <= max_size:
                break
            if entry.path != keep:
                doomed.append(entry)
                total -= entry.size
    return doomed


def max_size_from_environment() -> int | None:
    """The compile cache's size cap ``$WASMHOST_CACHE_MAX_SIZE`` asks for (``2GiB``), if any."""
    text = os.environ.get(MAX_SIZE_ENV, "")
    if not text:
        return None
    try:
        size = parse_size(text)
    except ValueError:
        size = 0
    if size <= 0:
        raise ConfigError(
            f"{MAX_SIZE_ENV}={text!r} is not a size; set it like 2GiB, 500MB or 1073741824."
        )
    return size
