"""The runtime's state: a folder per container under the root, what it records, and
the status it answers (``created``, ``running``, ``stopped``) from the init's pid.

``ROOT/ID/wasmhost.json`` records a Wasm container; ``ROOT/.native/ID`` names the
native runtime a container was handed to. podman asks for ``state`` and cleans up
without ``--root``: the default root keeps an index, ``.by-id/ID``, of the root each
container was created under.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from typing import Any

from .._errors import WasmhostError

DEFAULT_ROOT = "/run/wasmhost-runtime"
STATE_FILE = "wasmhost.json"
FIFO = "exec.fifo"
CGROUPS = "cgroups.json"
NATIVE = ".native"
INDEX = ".by-id"
CACHE = ".cache"
_ID = re.compile(r"^[A-Za-z0-9_+\-.]{1,250}$")  # (a file name: 255 bytes at most)


class RuntimeFailure(WasmhostError):
    """One line for the engine: printed to stderr and logged as an error."""


def check_id(container_id: str) -> None:
    """Ids as runc takes them (letters, digits, ``_+-.``), but never a path: ``..``,
    ``.`` and names starting with ``.`` (the root's own folders) are refused."""
    if not _ID.fullmatch(container_id) or container_id.startswith("."):
        raise RuntimeFailure(f"invalid container ID format: {container_id!r}")


def prepare_root(root: str) -> None:
    """Make the root (0700) if it is missing, then :func:`check_root` it."""
    try:
        os.makedirs(root, 0o700, exist_ok=True)
    except OSError as exc:
        raise RuntimeFailure(f"cannot use the state folder {root}: {exc.strerror}") from None
    check_root(root)


def check_root(root: str) -> None:
    """Refuse a root another user owns or others may write to: whoever can write there
    can forge a container (one that does not exist yet holds nothing to refuse)."""
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RuntimeFailure(f"cannot use the state folder {root}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeFailure(
            f"the state folder {root} is not a folder of uid {os.geteuid()} that only it may "
            "write (owner, mode 0700); fix it, or use another --root"
        )


def find_root(root: str | None, container_id: str) -> str:
    """The root a command works in: ``--root``, or the root the container was created
    under as the default root's index records it, or the default root."""
    if root is not None:
        return root
    if not os.path.lexists(os.path.join(DEFAULT_ROOT, container_id)):
        try:
            with open(os.path.join(DEFAULT_ROOT, INDEX, container_id), encoding="utf-8") as f:
                recorded = f.read().strip()
        except OSError:
            recorded = ""
        if recorded.startswith("/"):
            return recorded
    return DEFAULT_ROOT


def write_index(root: str, container_id: str) -> None:
    if os.path.abspath(root) == DEFAULT_ROOT:
        return
    folder = os.path.join(DEFAULT_ROOT, INDEX)
    prepare_root(DEFAULT_ROOT)
    os.makedirs(folder, 0o700, exist_ok=True)
    write_file(os.path.join(folder, container_id), os.path.abspath(root))


def drop_index(root: str, container_id: str) -> None:
    path = os.path.join(DEFAULT_ROOT, INDEX, container_id)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read().strip() != os.path.abspath(root):
                return  # another root's container of the same id
        os.unlink(path)
    except OSError:
        pass


def write_file(path: str, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` all at once: to a temporary name, then renamed."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(temporary, path)


def now() -> str:
    """The time in RFC 3339, UTC, as runc writes ``created``."""
    import time  # (datetime: ~1.5 ms more on every command's start)

    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def start_time(pid: int) -> int | None:
    """The process's start time (``/proc/PID/stat`` field 22), or None when it is gone
    or a zombie: the same pid with another start time is another process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class Container:
    """A Wasm container's record under ``ROOT/ID``."""

    def __init__(self, root: str, container_id: str) -> None:
        self.root = root
        self.id = container_id
        self.folder = os.path.join(root, container_id)
        self.record: dict[str, Any] = {}

    @property
    def fifo(self) -> str:
        return os.path.join(self.folder, FIFO)

    def exists(self) -> bool:
        return os.path.lexists(self.folder)

    def is_link(self) -> bool:
        return os.path.islink(self.folder)

    def load(self) -> Container:
        """Read the record; a container that is not there, or whose record is not ours
        (a crash before it was written, someone else's file), does not exist."""
        path = os.path.join(self.folder, STATE_FILE)
        if self.is_link():
            raise RuntimeFailure(f"{self.folder} is a symbolic link, not this runtime's")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise RuntimeFailure("container does not exist") from None
            raise RuntimeFailure(f"cannot read {path}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode):
                raise RuntimeFailure(f"{path} is not this runtime's; remove it by hand")
            data = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
        try:
            record = json.loads(data)
        except (ValueError, RecursionError):
            raise RuntimeFailure(
                f"{path} is damaged; `delete --force {self.id}` removes it"
            ) from None
        if not isinstance(record, dict) or record.get("id") != self.id:
            raise RuntimeFailure(
                f"{path} is damaged; `delete --force {self.id}` removes it"
            ) from None
        self.record = record
        return self

    def save(self) -> None:
        write_file(os.path.join(self.folder, STATE_FILE), json.dumps(self.record))

    @property
    def pid(self) -> int:
        pid = self.record.get("pid")
        return pid if isinstance(pid, int) and pid > 0 else 0

    def alive(self) -> bool:
        pid = self.pid
        return bool(pid) and start_time(pid) == self.record.get("start_time")

    def status(self) -> str:
        if not self.alive():
            return "stopped"
        return "created" if os.path.lexists(self.fifo) else "running"

    def state(self) -> dict[str, Any]:
        """The runtime-spec state, as runc prints it (pid 0 once stopped)."""
        status = self.status()
        state: dict[str, Any] = {
            "ociVersion": "1.0.2",
            "id": self.id,
            "pid": 0 if status == "stopped" else self.pid,
            "status": status,
            "bundle": self.record.get("bundle", ""),
            "rootfs": self.record.get("rootfs", ""),
            "created": self.record.get("created", ""),
        }
        if self.record.get("annotations"):
            state["annotations"] = self.record["annotations"]
        state["owner"] = ""
        return state


def native_marker(root: str, container_id: str) -> str | None:
    """The native runtime ``container_id`` was handed to, if it was."""
    try:
        with open(os.path.join(root, NATIVE, container_id), encoding="utf-8") as f:
            path = f.read().strip()
    except OSError:
        return None
    return path if path.startswith("/") else None


def mark_native(root: str, container_id: str, runtime: str) -> None:
    folder = os.path.join(root, NATIVE)
    os.makedirs(folder, 0o700, exist_ok=True)
    write_file(os.path.join(folder, container_id), runtime)


def unmark_native(root: str, container_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, NATIVE, container_id))
