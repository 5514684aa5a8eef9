"""The on-disk cache of compiled modules, loaded by memory map.

An entry is wasmtime's serialization of a module, exactly (so that
``Module.deserialize_file`` can map it without reading it), stored under the
module's content key and the engine's fingerprint (wasmtime version, machine,
engine settings). Beside it, a small ``.meta`` file records what the entry
was when it was written: its name (so the content key and fingerprint it was
stored under), its inode, size, modification and change times (to the
nanosecond), a BLAKE2b of its first and last 4 KiB, and one of its whole
content. An entry is loaded only if it is private to this user (0600, in
folders nobody else can write), its record names it, and its identity and
times still hold, or, for a copied cache, its whole content still hashes as
recorded (then the record is renewed). It is mapped through the descriptor
that was checked. So a truncated, replaced, swapped, rewritten or foreign
entry, or one moved with its record under another module's name, is never
loaded, at the cost of two small reads and a ``stat``.

A component's record also keeps what describing it found (its imports and
exports, see ``Host``), on a line after the entry's: a later process takes
that description instead of walking the component's types again (5 ms for an
18 MB CPython component). It is read as untrusted: a description that is not
well formed is ignored, and the component described again.

What this does not check: bytes in the middle of an entry that changed
without its change time moving (a disk's silent corruption; a user with this
account's rights can write anything anyway). wasmtime runs what it maps as
trusted code. A mapped entry truncated in place kills the process with
SIGBUS: entries are only ever replaced by rename, never written in place.

Modules named by path are keyed without reading them: ``paths/`` records,
for a file's path, its device, inode, size and times with the content key
computed once (as git's index does), so a changed file is hashed again and
never run from a stale entry. A file that changed less than ``_RACY_NS``
before it was read is not recorded: with coarse timestamps a change within
one tick would not show.

Location: ``$WASMHOST_CACHE_DIR/compiled`` if set, else
``$XDG_CACHE_HOME/wasmhost/compiled`` (``~/.cache/wasmhost/compiled``).
``WASMHOST_NO_CACHE=1`` turns the disk cache off.

Its size: without bound, unless ``max_size`` (``$WASMHOST_CACHE_MAX_SIZE``)
caps it; then writing an entry removes the least recently used ones past the
cap. An entry's last use is its record's modification time, set when it is
loaded (one ``utime``, at most once a minute; the record's own times are not
part of what it checks, the entry's are).
``wasmhost cache`` lists, prunes and clears it (see ``_paths``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import wasmtime

    from .components import ComponentCode

from ..._files import (
    PROC_FD,
    atomic_writer,
    fd_path,
    is_folder,
    listing,
    open_regular,
    regular_fd,
    remove_tree,
    sweep,
)
from ..._hashing import KEY_BYTES, checksum, checksum_of_file, content_key
from ..._paths import CacheEntry, least_recently_used

# The layout of entries, part of every entry's name: 1 had a checksum inside the
# entry; 2 is wasmtime's serialization alone, with a .meta beside it.
CACHE_FORMAT = 2
# 3 names the entry in its record; an older record is refused (the entry is rebuilt).
_MAGIC = b"wasmhost-cache-meta 3\n"
_PATH_MAGIC = b"wasmhost-path 1\n"
# A component's description, on the record's second line (see Host).
_DESCRIPTION = b"description 1 "
# How much of a record is read: its first line and a description of at most this.
_RECORD_MAX = 1 << 18
_EDGE = 4096  # the bytes at each end of an entry whose hash is recorded
# A file is keyed by its state only if it had not changed for this long before it was
# read: a later change then shows in its times even where they are coarse (FAT: 2 s).
_RACY_NS = 3_000_000_000
# An entry's last use is recorded to the minute: a load within a minute of the last
# one costs no write (measured: the utime is ~11 us of a ~250 us load).
_TOUCH_EVERY = 60.0


class Cached(NamedTuple):
    """An entry as loaded: the compiled code, and the description its record kept."""

    compiled: wasmtime.Module | ComponentCode
    description: bytes | None


class CompileCache:
    """Compiled modules on disk, in ``directory`` (``None``: nothing is stored), at most
    ``max_size`` bytes of them if given."""

    def __init__(self, directory: Path | None, max_size: int | None = None) -> None:
        self.directory = directory
        self.max_size = max_size

    def path(self, key: str, fingerprint: str, component: bool = False) -> Path | None:
        if self.directory is None:
            return None
        kind = "-component" if component else ""
        return self.directory / key[:2] / f"{key}{kind}-{fingerprint}.cwasm"

    def load(self, engine: wasmtime.Engine, path: Path, component: bool = False) -> Cached | None:
        """The module (or component) stored at ``path`` with the description its record
        kept, or None (absent, changed, not private or foreign: then removed)."""
        import wasmtime  # not at the top: importing the cache costs no wasmtime

        if not _trusted_folders(path.parent):
            return None
        try:
            with open_regular(_meta_path(path)) as f:
                recorded = f.read(_RECORD_MAX)
                touched = os.fstat(f.fileno()).st_mtime
            fd = regular_fd(path, os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not _private(st) or not self._checked(fd, st, recorded, path):
                self._discard(path)
                return None
            # Mapped through the descriptor just checked (the path may name another
            # file by now), where /proc is mounted.
            source = fd_path(fd) if PROC_FD else str(path)
            loaded: wasmtime.Module | ComponentCode
            if component:
                from .components import ComponentCode

                loaded = ComponentCode.deserialize_file(engine, source)
            else:
                loaded = wasmtime.Module.deserialize_file(engine, source)
        except wasmtime.WasmtimeError:
            self._discard(path)
            return None
        except OSError:
            return None
        finally:
            os.close(fd)
        if time.time() - touched > _TOUCH_EVERY:
            with contextlib.suppress(OSError):
                os.utime(_meta_path(path))  # its last use, for pruning the least recently used
        return Cached(loaded, _description(recorded) if component else None)

    def _checked(self, fd: int, st: os.stat_result, recorded: bytes, path: Path) -> bool:
        """Whether the entry open at ``fd`` is the one ``recorded`` describes.

        Its identity, times and edges, or else (a copied or restored cache) the
        hash of its whole content, which then becomes the record.
        """
        fields = _fields(recorded, path)
        if fields is None:
            return False
        if fields[1:6] == _identity(fd, st):
            return True
        if fields[2] != str(st.st_size).encode() or fields[6] != checksum_of_file(fd).encode():
            return False
        self._record(path, fd, st, fields[6].decode(), _description(recorded))
        return True

    def describe(self, path: Path, description: bytes) -> None:
        """Keep ``description`` (one line) in the record of the entry at ``path``, if
        that record is still the entry's; a failure to write is not an error."""
        if b"\n" in description or len(description) + 1024 > _RECORD_MAX:
            return  # (a description larger than a record holds is made again each time)
        try:
            with open_regular(_meta_path(path)) as f:
                recorded = f.read(_RECORD_MAX)
        except OSError:
            return
        if _fields(recorded, path) is not None:
            line = recorded[len(_MAGIC) :].partition(b"\n")[0]
            kept = _MAGIC + line + b"\n" + _DESCRIPTION + description + b"\n"
            _write_private(_meta_path(path), kept)

    def store(self, module: wasmtime.Module | ComponentCode, path: Path) -> None:
        """Write ``module`` at ``path`` atomically; a failure to write is not an error."""
        import wasmtime

        try:
            payload = module.serialize()
            if _write_private(path, payload):
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    self._record(path, fd, os.fstat(fd), checksum(payload).hex())
                finally:
                    os.close(fd)
        except (OSError, wasmtime.WasmtimeError):
            pass
        finally:
            sweep(path.parent)
            _drop_older_formats(path)
        if self.max_size is not None:
            self.remove(least_recently_used(self.entries(), max_size=self.max_size, keep=path))

    @staticmethod
    def _record(
        path: Path, fd: int, st: os.stat_result, whole: str, description: bytes | None = None
    ) -> None:
        line = b" ".join([os.fsencode(path.name), *_identity(fd, st), whole.encode()])
        kept = b"" if description is None else _DESCRIPTION + description + b"\n"
        _write_private(_meta_path(path), _MAGIC + line + b"\n" + kept)

    # -- keys of modules named by path -----------------------------------------

    def known_key(self, source: str, st: os.stat_result) -> str | None:
        """The content key recorded for file ``source`` in the state ``st`` shows, if any."""
        record = self._path_record(source)
        if record is None or not _trusted_folders(record.parent):
            return None
        try:
            with open_regular(record) as f:
                if not _private(os.fstat(f.fileno())):
                    return None  # a record names the entry that runs: only ours count
                data = f.read(512)
        except OSError:
            return None
        if not data.startswith(_PATH_MAGIC):
            return None
        fields = data[len(_PATH_MAGIC) :].split()
        if len(fields) != 6 or fields[:5] != [str(v).encode() for v in file_state(st)]:
            return None
        key = fields[5].decode("ascii", "replace")
        return key if len(key) == 2 * KEY_BYTES and key.isalnum() else None

    def remember_key(self, source: str, st: os.stat_result, key: str, read_at: int) -> None:
        """Record ``key`` for file ``source`` as ``st`` shows it, if it had settled when it
        was read (``read_at``, ``time.time_ns()`` just before reading it)."""
        record = self._path_record(source)
        if record is None or not settled(st, read_at):
            return
        state = " ".join(str(v) for v in file_state(st))
        _write_private(record, _PATH_MAGIC + f"{state} {key}\n".encode())

    def _path_record(self, source: str) -> Path | None:
        if self.directory is None:
            return None
        name = os.path.realpath(source).encode("utf-8", "surrogateescape")
        return self.directory / "paths" / content_key(name)

    # -- what it holds, for `wasmhost cache` -----------------------------------

    def entries(self) -> list[CacheEntry]:
        """Its entries (an entry and its record are one; a record left alone is one too),
        and the records of modules' keys by path as one entry (``paths``)."""
        if self.directory is None or not is_folder(self.directory):
            return []  # none, or a symbolic link: what is behind it is not listed, nor removed
        found = []
        for folder in listing(self.directory):
            if not folder.is_dir(follow_symlinks=False):
                continue
            files = _stats(Path(folder.path))
            if folder.name == "paths":
                if files:
                    what = "paths (keys of module files)"
                    records = list(files.values())
                    found.append(_entry(Path(folder.path), what, records, newest=True))
                continue
            for name, st in files.items():
                record = files.get(name + ".meta")
                if name.endswith(".cwasm"):
                    # Its last use is its record's time (see load), the entry's own
                    # times being part of what the record checks.
                    parts = [st] if record is None else [record, st]
                    found.append(_entry(Path(folder.path, name), name[: -len(".cwasm")], parts))
                elif name.endswith(".cwasm.meta") and name[: -len(".meta")] not in files:
                    found.append(_entry(Path(folder.path, name[: -len(".meta")]), name, [st]))
        return found

    def remove(self, entries: Sequence[CacheEntry]) -> list[CacheEntry]:
        """Remove ``entries``: each entry before its record (a record without its entry
        is a miss, as no record is), each by one unlink; those it removed."""
        removed = []
        for entry in entries:
            if entry.path.name == "paths":
                gone = remove_tree(entry.path)
            else:
                gone = _unlinked(entry.path)
                gone = _unlinked(_meta_path(entry.path)) or gone
            if gone:
                removed.append(entry)
        for folder in {entry.path.parent for entry in removed}:
            sweep(folder)
        return removed

    @staticmethod
    def _discard(path: Path) -> None:
        for stale in (path, _meta_path(path)):
            with contextlib.suppress(OSError):
                stale.unlink()


def _stats(folder: Path) -> dict[str, os.stat_result]:
    """The files in ``folder`` by name, as they are (one removed meanwhile is left out)."""
    found = {}
    for each in listing(folder):
        with contextlib.suppress(OSError):
            st = each.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):  # what the cache writes; a link is never followed
                found[each.name] = st
    return found


def _entry(path: Path, name: str, parts: list[os.stat_result], newest: bool = False) -> CacheEntry:
    """The entry at ``path`` made of the files ``parts``, last used when the first was
    modified (``newest``: when the newest was)."""
    size = sum(st.st_size for st in parts)
    used = max(st.st_mtime for st in parts) if newest else parts[0].st_mtime
    return CacheEntry("compile", name, size, used, path)


def _unlinked(path: Path) -> bool:
    """Whether ``path`` was there and this unlinked it."""
    try:
        path.unlink()
    except OSError:
        return False
    return True


def _drop_older_formats(path: Path) -> None:
    """Remove this entry's copies in older cache formats: nothing reads them any more
    (entries of other wasmtime versions stay, for another install sharing the cache)."""
    suffix = f"-v{CACHE_FORMAT}.cwasm"
    if not path.name.endswith(suffix):
        return
    for old in range(1, CACHE_FORMAT):
        stale = path.with_name(path.name[: -len(suffix)] + f"-v{old}.cwasm")
        for each in (stale, _meta_path(stale)):
            with contextlib.suppress(OSError):
                each.unlink()


def settled(st: os.stat_result, read_at: int) -> bool:
    """Whether a file with state ``st``, read at ``read_at``, had stopped changing long
    enough before that any later change shows in its times (git's "racily clean")."""
    return read_at - max(st.st_mtime_ns, st.st_ctime_ns) >= _RACY_NS


def _fields(recorded: bytes, path: Path) -> list[bytes] | None:
    """The fields of a record's first line, if it is a record of the entry at ``path``."""
    if not recorded.startswith(_MAGIC):
        return None
    fields = recorded[len(_MAGIC) :].partition(b"\n")[0].split()
    # The name binds the record to the content key and engine it was stored for:
    # an entry moved with its record under another module's name is not that module.
    if len(fields) != 7 or fields[0] != os.fsencode(path.name):
        return None
    return fields


def _description(recorded: bytes) -> bytes | None:
    """The description a record keeps on its second line, if any (whole: ended by a
    newline, not cut off by the read)."""
    second = recorded[len(_MAGIC) :].split(b"\n", 2)
    if len(second) < 3 or not second[1].startswith(_DESCRIPTION):
        return None
    return second[1][len(_DESCRIPTION) :]


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta")


def file_state(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What tells a file's versions apart without reading it: device, inode, size, times."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _identity(fd: int, st: os.stat_result) -> list[bytes]:
    """What a .meta records of an entry to know it again without reading it: its inode,
    size, times, and a hash of its first and last 4 KiB."""
    head = os.pread(fd, _EDGE, 0)
    tail = os.pread(fd, _EDGE, max(st.st_size - _EDGE, 0))
    state = [str(v).encode() for v in (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)]
    return [*state, checksum(head, tail).hex().encode()]


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _write_private(path: Path, data: bytes | bytearray) -> bool:
    """Write ``data`` at ``path`` atomically, 0600 in 0700 folders; whether it was
    written (a cache that cannot be written is not an error)."""
    from ..._errors import StorageError

    try:
        for folder in (path.parent.parent, path.parent):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = folder.stat()
            if st.st_mode & 0o077 and st.st_uid == os.geteuid():
                os.chmod(folder, 0o700)  # an older wasmhost made it 0755
        with atomic_writer(path, 0o600, what="the compile cache") as f:
            f.write(data)
    except (StorageError, OSError):
        return False
    return True


def _trusted_folders(folder: Path) -> bool:
    """Whether ``folder`` and its parent (the cache's own) are this user's and written
    by nobody else: an entry is code that runs as trusted."""
    for each in (folder, folder.parent):
        try:
            st = os.lstat(each)
        except OSError:
            return False
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not stat.S_ISDIR(st.st_mode):
            return False
    return True
