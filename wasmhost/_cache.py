"""The on-disk cache of compiled modules, loaded by memory map.

An entry is wasmtime's serialization of a module, exactly (so that
``Module.deserialize_file`` can map it without reading it), stored under the
module's content key and the engine's fingerprint (wasmtime version, machine,
engine settings). Beside it, a small ``.meta`` file records what the entry
was when it was written: its inode, size, modification and change times
(to the nanosecond), and a BLAKE2b of its first and last 4 KiB. An entry is
loaded only if all of these still hold and it is private to this user (mode
0600 in 0700 folders, owned by the user); otherwise it is dropped and
rebuilt. So a truncated, replaced, swapped, rewritten or foreign entry is
never loaded, at the cost of two small reads and two ``stat`` calls.

What this does not check: the bytes in the middle of an entry that changed
without its change time moving (a disk's silent corruption; a user with this
account's rights can write anything anyway). wasmtime runs what it maps as
trusted code; the defence is that only this user can write the entries, and
that no write goes unnoticed by the change time (with nanosecond timestamps;
on kernels with coarse timestamps, two writes within one tick look the same).
wasmtime also checks that an entry was made by its own version and settings.

Modules named by path are keyed without reading them: ``paths/`` records,
for a file's path, its device, inode, size and times with the content key
computed once (as git's index does), so a changed file is hashed again and
never run from a stale entry. A file changed in the last second is not
recorded (its times could still repeat).

Location: ``$WASMHOST_CACHE_DIR/compiled`` if set, else
``$XDG_CACHE_HOME/wasmhost/compiled`` (``~/.cache/wasmhost/compiled``).
``WASMHOST_NO_CACHE=1`` turns the disk cache off.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import wasmtime

from ._hashing import KEY_BYTES, checksum, content_key


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


_MAGIC = b"wasmhost-cache-meta 2\n"
_PATH_MAGIC = b"wasmhost-path 1\n"
_EDGE = 4096  # the bytes at each end of an entry whose hash is recorded
_RACY_NS = 1_000_000_000


class CompileCache:
    """Compiled modules on disk, in ``directory`` (``None``: nothing is stored)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def path(self, key: str, fingerprint: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / key[:2] / f"{key}-{fingerprint}.cwasm"

    def load(self, engine: wasmtime.Engine, path: Path) -> wasmtime.Module | None:
        """The module stored at ``path``, or None (absent, changed, not private or
        foreign: then removed)."""
        import wasmtime  # not at the top: the registry side uses cache_root without wasmtime

        meta = _meta_path(path)
        try:
            with open(meta, "rb") as f:
                recorded = f.read(256)
            with open(path, "rb") as entry:
                st = os.fstat(entry.fileno())
                seen = _describe_entry(entry, st)
        except OSError:
            return None
        if recorded != seen or not _private(st):
            self._discard(path)
            return None
        try:
            return wasmtime.Module.deserialize_file(engine, str(path))
        except wasmtime.WasmtimeError:
            self._discard(path)
            return None

    def store(self, module: wasmtime.Module, path: Path) -> None:
        """Write ``module`` at ``path`` atomically; a failure to write is not an error."""
        import wasmtime

        from ._errors import StorageError
        from ._files import atomic_writer, sweep  # only on a cache miss: ~3 ms of imports

        try:
            payload = module.serialize()
            _private_folders(path.parent)
            with atomic_writer(path, 0o600, what="the compile cache") as f:
                f.write(payload)
            with open(path, "rb") as entry:
                description = _describe_entry(entry, os.fstat(entry.fileno()))
            with atomic_writer(_meta_path(path), 0o600, what="the compile cache") as f:
                f.write(description)
        except (StorageError, OSError, wasmtime.WasmtimeError):
            pass
        finally:
            sweep(path.parent)

    # -- keys of modules named by path -----------------------------------------

    def known_key(self, source: str, st: os.stat_result) -> str | None:
        """The content key recorded for file ``source`` in the state ``st`` shows, if any."""
        record = self._path_record(source)
        if record is None:
            return None
        try:
            with open(record, "rb") as f:
                data = f.read(512)
        except OSError:
            return None
        if not data.startswith(_PATH_MAGIC):
            return None
        fields = data[len(_PATH_MAGIC) :].split()
        if len(fields) != 6 or fields[:5] != [str(v).encode() for v in _file_state(st)]:
            return None
        key = fields[5].decode("ascii", "replace")
        return key if len(key) == 2 * KEY_BYTES and key.isalnum() else None

    def remember_key(self, source: str, st: os.stat_result, key: str) -> None:
        """Record ``key`` for file ``source`` as ``st`` shows it, unless it changed lately."""
        import time

        record = self._path_record(source)
        if record is None or time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
            return
        from ._errors import StorageError
        from ._files import atomic_writer

        state = " ".join(str(v) for v in _file_state(st))
        try:
            _private_folders(record.parent)
            with atomic_writer(record, 0o600, what="the compile cache") as f:
                f.write(_PATH_MAGIC + f"{state} {key}\n".encode())
        except (StorageError, OSError):
            pass

    def _path_record(self, source: str) -> Path | None:
        if self.directory is None:
            return None
        name = os.path.realpath(source).encode("utf-8", "surrogateescape")
        return self.directory / "paths" / content_key(name)

    @staticmethod
    def _discard(path: Path) -> None:
        for stale in (path, _meta_path(path)):
            with contextlib.suppress(OSError):
                stale.unlink()


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta")


def _file_state(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _describe_entry(entry: BinaryIO, st: os.stat_result) -> bytes:
    """What the .meta file records of an entry: its identity, times and edges' hash."""
    head = os.pread(entry.fileno(), _EDGE, 0)
    tail = os.pread(entry.fileno(), _EDGE, max(st.st_size - _EDGE, 0))
    state = " ".join(str(v) for v in (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return _MAGIC + f"{state} {checksum(head, tail).hex()}\n".encode()


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _private_folders(folder: Path) -> None:
    """Make ``folder`` and its parent (the cache's) 0700: entries are code run as trusted."""
    for each in (folder.parent, folder):
        each.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = each.stat()
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(each, 0o700)
