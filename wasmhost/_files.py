"""Writing files so that readers see the old one or the whole new one, never a part;
reading only regular files.

A new file is written without a name (``O_TMPFILE``, on Linux's local file
systems) and linked into place only once complete, so a process killed
mid-write leaves nothing behind. Where that is not available it is written
under a ``.tmp-`` name, and :func:`sweep` removes such names that a killed
process left. A failure to write is a :class:`~wasmhost.StorageError` naming
the file.

A path the user names for wasmhost to write (``pull -o``, ``compare --plot``,
a bundle's or an OCI layout's folder) goes through :func:`check_output`: a new
name, or a regular file (a real folder) to replace; a symbolic link, a FIFO, a
device or a socket there is refused and left as it was.

Every path wasmhost reads that a user or a folder supplies (a module, a
config, a cache entry, a layout's files) is opened with :func:`open_regular`
(or :func:`regular_fd`, :func:`read_regular`): a FIFO there would block the
read forever, a device such as ``/dev/zero`` would never end. The compile
cache reads through them on every ``wasmhost run``, so this module imports
nothing that ``run`` does not load anyway (tempfile and shutil only when a
write needs them).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ._errors import StorageError
from ._numbers import format_size

TEMP_PREFIX = ".tmp-"
# The largest config file (the Docker config, modules.toml) read: they are a few KiB.
MAX_CONFIG = 4 << 20
STALE = 3600.0
# Errors that writing into an open file can meet; others inside a writer's
# block belong to whatever the caller was doing (reading its source, say).
_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
_FICLONE = 0x40049409  # linux/fs.h: share the source's extents (btrfs, xfs, bcachefs)


def storage_error(exc: OSError, path: Path | str, what: str, verb: str = "write") -> StorageError:
    """The StorageError for ``exc``, met when wasmhost went to ``verb`` ``what`` at ``path``."""
    reason = exc.strerror or type(exc).__name__
    store = what in ("the store", "the compile cache")
    if store:
        advice, fix = "point cache_dir (or WASMHOST_CACHE_DIR) at a writable folder", "cache-dir"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice, fix = "free some space there, or write elsewhere", ""
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice, fix = "write to a folder this user may write to", ""
    else:
        advice, fix = "check the path", ""
    return StorageError(
        f"cannot {verb} {what} at {path}: {reason}",
        path=str(path),
        reason=reason,
        advice=advice,
        fix=fix,
    )


@contextmanager
def writing(path: Path | str, what: str, verb: str = "write") -> Iterator[None]:
    """Report an OSError of the block as a StorageError about ``what`` at ``path``."""
    try:
        yield
    except OSError as exc:
        if type(exc).__module__ != "builtins":  # a library's OSError (requests'), not ours
            raise
        raise storage_error(exc, path, what, verb) from exc


@contextmanager
def atomic_writer(
    path: Path, mode: int | None = 0o644, *, what: str = "", output: bool = False
) -> Iterator[IO[bytes]]:
    """A file that appears at ``path``, whole, when the block ends without error.

    ``mode`` is the file's mode; None gives what ``open()`` would (0666 less
    the umask). On an error (or an interrupt) ``path`` is left as it was.
    ``what`` names the file in errors ("the store", "the module"). ``output``
    is for a name the user gave: what is there must be a regular file (or
    nothing), checked with :func:`check_output` before the write and again
    just before the rename, which replaces a name and never follows a link.
    """
    what = what or "the file"
    folder = path.parent
    if output:
        check_output(path, what)
    with writing(path, what):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_unnamed(folder)
    f = os.fdopen(fd, "wb")
    try:
        try:
            yield f
            f.flush()
        except OSError as exc:
            # Only a write's own errors are the file's; others belong to the block.
            if type(exc).__module__ == "builtins" and exc.errno in _WRITE_ERRORS:
                raise storage_error(exc, path, what) from exc
            raise
        with writing(path, what):
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            elif tmp is not None:
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            if tmp is None:
                tmp = _link_unnamed(f.fileno(), folder)
            f.close()  # first: an error on close leaves the old file in place
        if output:  # again: the write may have taken minutes (a pull)
            check_output(path, what)
        with writing(path, what):
            os.replace(tmp, path)
        tmp = None
    finally:
        with contextlib.suppress(OSError):
            f.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _open_unnamed(folder: Path) -> tuple[int, str | None]:
    """A new file in ``folder``: without a name if the system can (then None), else named."""
    flag = getattr(os, "O_TMPFILE", 0)
    if flag and os.path.isdir("/proc/self/fd"):
        try:
            return os.open(folder, flag | os.O_WRONLY | os.O_CLOEXEC, 0o666), None
        except OSError as exc:
            # EOPNOTSUPP/EISDIR/EINVAL: a file system (or kernel) without O_TMPFILE.
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    import tempfile

    return tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)


def _link_unnamed(fd: int, folder: Path) -> str:
    """Give the unnamed file ``fd`` a temporary name in ``folder``, for a rename."""
    # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N; os.link calls plain link(),
    # which does not follow the magic link, unless given a src_dir_fd.
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for _ in range(100):
            name = os.path.join(folder, f"{TEMP_PREFIX}{os.urandom(6).hex()}")
            try:
                os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
            except FileExistsError:
                continue
            return name
    finally:
        os.close(proc)
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def copy_into(source: Path, out: IO[bytes]) -> None:
    """Copy the file ``source`` into the empty file ``out``: sharing its extents where
    the file system can (a reflink costs no space), else copied by the kernel."""
    out.flush()
    with open(source, "rb") as src:
        try:
            import fcntl

            fcntl.ioctl(out.fileno(), _FICLONE, src.fileno())
            return
        except (OSError, ImportError):
            pass
        size = os.fstat(src.fileno()).st_size
        done = 0
        try:
            while done < size:
                copied = os.copy_file_range(src.fileno(), out.fileno(), size - done)
                if copied == 0:
                    break
                done += copied
            if done == size:
                return
            if done:
                raise OSError(errno.EIO, f"{source} ended after {done} of {size} bytes")
        except OSError as exc:
            if exc.errno in _WRITE_ERRORS or done:
                raise
        import shutil

        shutil.copyfileobj(src, out, 1 << 20)


def sweep(folder: Path, older_than: float = STALE) -> None:
    """Remove the ``.tmp-`` files in ``folder`` that a killed process left (over an hour
    old: a live writer keeps its file's time fresh)."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith(TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > older_than:
                        os.unlink(entry.path)


def listing(folder: Path) -> list[os.DirEntry[str]]:
    """What ``folder`` holds but temporary files; nothing if it cannot be read."""
    try:
        with os.scandir(folder) as found:
            return [e for e in found if not e.name.startswith(TEMP_PREFIX)]
    except OSError:
        return []


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def is_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a folder itself (not a symbolic link to one)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def check_output(path: str | os.PathLike[str], what: str, *, folder: bool = False) -> None:
    """Refuse to write ``what`` at ``path``, a name the user gave, unless it is new or is
    what would be written: a regular file (a real folder, with ``folder``).

    Anything else there is left as it is and raises a StorageError saying what it is:
    a symbolic link (writing would replace the link, not its target), a FIFO, a
    device (``-o /dev/null`` as root would replace the machine's own), a socket, a
    folder where a file goes or a file where a folder goes. The name itself is
    looked at (lstat), never what a link there points to.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:  # a parent that is a file (ENOTDIR), a loop, no permission
        raise storage_error(exc, os.fspath(path), what) from exc
    if stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        try:
            kind = f"a symbolic link (to {os.readlink(path)})"
        except OSError:
            kind = "a symbolic link"
    elif stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISREG(mode):
        kind = "a file"
    else:
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    wanted = "a new folder or an existing one" if folder else "a new file or a regular file"
    raise StorageError(
        f"will not write {what} at {path}: it is {kind}",
        path=os.fspath(path),
        reason=f"it is {kind}",
        advice=f"it was left untouched; name {wanted}",
    )


def regular_fd(path: str | os.PathLike[str], flags: int = 0) -> int:
    """A descriptor open for reading on ``path``, only if it is a regular file (``flags``
    adds to ``O_RDONLY``: ``O_NOFOLLOW``, say).

    The open does not block (a FIFO without a writer would, forever) and the
    check is made on what was opened, not on the name. A folder raises
    ``IsADirectoryError``; a FIFO, a device or a socket an ``OSError``
    (EINVAL) whose ``strerror`` says what it is: "it is a FIFO, not a regular file".
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | flags, 0o644)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, _not_regular(mode), os.fspath(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_regular(mode: int) -> str:
    """What a file of ``mode`` is, said as the reason it is not read: "it is a FIFO, not
    a regular file"."""
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"it is {kind}, not a regular file"


def open_regular(path: str | os.PathLike[str], flags: int = 0) -> IO[bytes]:
    """``path`` open for reading in binary, only if it is a regular file (see
    :func:`regular_fd`, which takes ``flags``)."""
    return os.fdopen(regular_fd(path, flags), "rb")


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The content of the regular file ``path``; over ``limit`` bytes is an ``OSError``
    (EFBIG) that says so, for files (configs) that are small unless something is wrong."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"it is over {format_size(limit)}", os.fspath(path))
    return data


# A folder made by owned_temporary holds this file, written by wasmhost, saying who
# owns it: "wasmhost-owner PID START PIDNS BOOT" (START: the process's start time,
# telling a live owner from a later process given the same id; PIDNS: the inode of
# its pid namespace, in which PID means something; BOOT: the kernel's boot id).
# Only folders holding one are ever swept: a user's own folder of the same prefix
# has none. "-" stands for what this system does not say.
OWNER_FILE = ".wasmhost-owner"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def owned_temporary(prefix: str) -> Path:
    """A new private folder in the system's temporary folder, holding a file that says
    which process owns it, so that :func:`sweep_orphans` can tell when that process is
    gone. Its name says the owner too (``PREFIX<pid>.<start>-...``), for people."""
    import tempfile

    pid, start, namespace, boot = _identity()
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}.{start}-"))
    try:
        fd = os.open(
            folder / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "w") as f:
            f.write(f"wasmhost-owner {pid} {start} {namespace} {boot}\n")
    except BaseException:
        remove_tree(folder)
        raise
    return folder


def sweep_orphans(prefix: str) -> None:
    """Remove this user's ``prefix`` folders made by :func:`owned_temporary` whose owner
    has ended: a process killed by SIGKILL has no chance to clean up. A folder without
    the owner file is not wasmhost's to remove; one whose owner runs in another pid
    namespace cannot be checked and is left, unless the machine has rebooted since.
    Never raises: what cannot be removed is left."""
    import tempfile

    me = _identity()
    if me[1] is None:  # /proc is not this namespace's: no owner can be checked
        return
    with contextlib.suppress(OSError):
        for entry in os.scandir(tempfile.gettempdir()):
            if not entry.name.startswith(prefix):
                continue
            with contextlib.suppress(OSError, ValueError):
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                    continue
                if _owner_ended(os.path.join(entry.path, OWNER_FILE), me):
                    remove_tree(entry.path)


def _owner_ended(owner_file: str, me: tuple[int, int | None, str, str]) -> bool:
    """Whether the owner that ``owner_file`` names has ended, as far as this process
    can tell (False when the file is not there or not one wasmhost wrote)."""
    fd = regular_fd(owner_file, os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        fields = f.read(512).decode("ascii").split()
    if len(fields) != 5 or fields[0] != "wasmhost-owner":
        return False
    pid, start, namespace, boot = int(fields[1]), int(fields[2]), fields[3], fields[4]
    if "-" not in (boot, me[3]) and boot != me[3]:
        return True  # made before the machine last booted
    if namespace != me[2]:
        return False  # its pid means something only in its own namespace
    return _start_time(pid) != start


def _identity() -> tuple[int, int | None, str, str]:
    """This process's id, start time (None when /proc is another pid namespace's:
    ``unshare --pid`` without a /proc of its own), pid namespace and boot id."""
    pid = os.getpid()
    namespace = boot = "-"
    with contextlib.suppress(OSError):
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    with (
        contextlib.suppress(OSError, UnicodeDecodeError),
        open("/proc/sys/kernel/random/boot_id", "rb") as f,
    ):
        boot = "".join(f.read(100).decode("ascii").split()) or "-"
    try:
        seen = int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        seen = pid  # no /proc: _start_time says 0 for a live process
    return pid, _start_time(pid) if seen == pid else None, namespace, boot


def remove_tree(path: str | os.PathLike[str]) -> bool:
    """Remove the folder ``path`` and everything in it, without recursion (a guest can
    make a tree thousands of folders deep, or deeper than a path can name), never
    following a symbolic link, holding two descriptors at most. What cannot be
    removed is left; never raises. Whether ``path`` is gone."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    # The folders above the current one: its name in each, the parent's (device,
    # inode), checked on the way back up through "..", and what the parent keeps.
    above: list[tuple[str, tuple[int, int], set[str]]] = []
    kept: set[str] = set()
    try:
        while True:
            sub = _clear_files(fd, kept)
            if sub is not None:
                try:
                    child = os.open(sub, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    kept.add(sub)
                    continue
                st = os.fstat(fd)
                above.append((sub, (st.st_dev, st.st_ino), kept))
                os.close(fd)
                fd, kept = child, set()
                continue
            if not above:
                break
            name, parent_id, kept = above.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != parent_id:
                return False  # moved while it was being removed: go no further
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                kept.add(name)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _clear_files(fd: int, kept: set[str]) -> str | None:
    """Remove what is not a folder in the open folder ``fd`` (but ``kept``, to which
    what cannot be removed is added); the name of a folder left in it, if any."""
    with os.scandir(fd) as listing:
        for entry in listing:
            if entry.name in kept:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    return entry.name
                os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                pass
            except OSError:
                kept.add(entry.name)
    return None


def copy_tree(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy the folder ``source`` to the new folder ``target`` as ``shutil.copytree(...,
    symlinks=True)`` does, without recursion (a tree may be deeper than Python's stack).
    A file that cannot be copied (a FIFO, a device) raises an OSError naming it."""
    import shutil

    folders = [(os.fspath(source), os.fspath(target))]
    made: list[tuple[str, str]] = []
    while folders:
        src, dst = folders.pop()
        os.mkdir(dst)
        made.append((src, dst))
        with os.scandir(src) as listing:
            for entry in listing:
                to = os.path.join(dst, entry.name)
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), to)
                    shutil.copystat(entry.path, to, follow_symlinks=False)
                elif entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, to))
                elif entry.is_file(follow_symlinks=False):
                    shutil.copy2(entry.path, to, follow_symlinks=False)
                else:  # copying a FIFO would block, a device never end
                    raise OSError(errno.EINVAL, _not_regular(entry.stat().st_mode), entry.path)
    for src, dst in reversed(made):  # after their content: writing it changed their times
        shutil.copystat(src, dst)


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc); None if
    there is no such process. Where there is no /proc, 0 for any live process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Field 22, counted after the command name (which may hold spaces or ')').
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except FileNotFoundError:
        return None
    except (OSError, IndexError, ValueError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass  # alive, another user's
        return 0


PROC_FD = os.path.isdir("/proc/self/fd")
"""Whether this system has ``/proc/self/fd`` (Linux)."""


def fd_path(fd: int) -> str:
    """A path that opens ``fd``'s file again."""
    return f"/proc/self/fd/{fd}" if PROC_FD else f"/dev/fd/{fd}"
