"""What an OCI runtime asks of Linux that Python 3.11's ``os`` does not give: joining
and making namespaces, ``no_new_privs``, an interface brought up, and cgroups.

Everything here runs as root in the container's init before the guest starts (or in
``delete``, to remove the cgroups the init made).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from .state import RuntimeFailure

# linux/sched.h
NAMESPACE_FLAGS = {
    "mount": 0x00020000,
    "cgroup": 0x02000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "network": 0x40000000,
    "time": 0x00000080,
}
_PR_SET_NAME = 15
_PR_SET_NO_NEW_PRIVS = 38
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
CGROUP_ROOT = "/sys/fs/cgroup"


class LinuxError(RuntimeFailure):
    """A system call the container's set-up needs failed; the text says which and why."""


def _libc() -> Any:
    import ctypes  # ~5 ms: only the init (and not delete) needs libc

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        code = ctypes.get_errno()
        raise LinuxError(f"{what}: {os.strerror(code)}")


def join_namespace(kind: str, path: str) -> None:
    """Enter the namespace of ``kind`` that ``path`` (``/proc/PID/ns/net``, a bind
    mount under ``/run/netns``) names."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # (a FIFO never blocks)
    except OSError as exc:
        raise LinuxError(f"cannot open the {kind} namespace {path}: {exc.strerror}") from None
    try:
        _check(_libc().setns(fd, NAMESPACE_FLAGS[kind]), f"cannot join the {kind} namespace {path}")
    finally:
        os.close(fd)


def new_namespace(kind: str) -> None:
    _check(_libc().unshare(NAMESPACE_FLAGS[kind]), f"cannot make a {kind} namespace")


def loopback_up() -> None:
    """Bring ``lo`` up, as a new network namespace has it down."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def no_new_privileges() -> None:
    _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "cannot set no_new_privs")


def set_process_name(name: str) -> None:
    _libc().prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


# cgroups ---------------------------------------------------------------------------


def hierarchies() -> list[str]:
    """The mount points of the cgroup hierarchies a process joins: the cgroup2 root on a
    unified machine; every v1 hierarchy (and the unified one beside them) otherwise."""
    mounts: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as info:
        for line in info:
            fields = line.split()
            try:
                fstype = fields[fields.index("-") + 1]
            except (ValueError, IndexError):
                continue
            point = fields[4].replace("\\040", " ")
            if fstype in ("cgroup", "cgroup2") and (
                point == CGROUP_ROOT or point.startswith(CGROUP_ROOT + "/")
            ):
                mounts.append(point)
    return sorted(set(mounts))


def cgroup_path(spec_path: str, container_id: str, systemd: bool) -> str:
    """The cgroup (relative to each hierarchy) for the spec's ``cgroupsPath``.

    With ``--systemd-cgroup`` the path is ``slice:prefix:name``; there is no systemd to
    ask here, so it is laid out as systemd would: ``a-b.slice`` under ``a.slice``, then
    ``prefix-name.scope``."""
    if not spec_path:
        return f"wasmhost-runtime/{container_id}"
    if systemd and spec_path.count(":") == 2:
        slice_, prefix, name = spec_path.split(":")
        parts: list[str] = []
        if slice_ and slice_ != "-.slice":
            words = slice_.removesuffix(".slice").split("-")
            parts = ["-".join(words[: i + 1]) + ".slice" for i in range(len(words))]
        return "/".join([*parts, f"{prefix}-{name}.scope" if prefix else f"{name}.scope"])
    return spec_path.strip("/")


def _parts(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise LinuxError(f"the cgroup path {path!r} leaves the cgroup hierarchy")
    return parts


def missing_cgroups(path: str) -> list[str]:
    """The folders :func:`join_cgroup` will make for ``path``: create records them
    before the init runs, so that ``delete`` removes them whatever happens after."""
    missing = []
    for mount in hierarchies():
        folder = mount
        for part in _parts(path):
            folder = os.path.join(folder, part)
            if not os.path.lexists(folder):
                missing.append(folder)
    return missing


def join_cgroup(path: str, memory_limit: int | None, pids_limit: int | None) -> None:
    """Put this process in cgroup ``path`` of every hierarchy, making what is missing."""
    parts = _parts(path)
    pid = str(os.getpid())
    for mount in hierarchies():
        folder = mount
        for part in parts:
            parent, folder = folder, os.path.join(folder, part)
            try:
                os.mkdir(folder, 0o755)
            except FileExistsError:
                continue
            except OSError as exc:
                raise LinuxError(f"cannot make the cgroup {folder}: {exc.strerror}") from None
            for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: empty until copied
                _copy_setting(parent, folder, name)
        if memory_limit is not None and memory_limit > 0:
            _limit(folder, ("memory.max", "memory.limit_in_bytes"), memory_limit)
        if pids_limit is not None and pids_limit > 0:
            _limit(folder, ("pids.max",), pids_limit)
        try:
            with open(os.path.join(folder, "cgroup.procs"), "w") as procs:
                procs.write(pid)
        except OSError as exc:
            raise LinuxError(f"cannot join the cgroup {folder}: {exc.strerror}") from None


def _copy_setting(parent: str, folder: str, name: str) -> None:
    try:
        with open(os.path.join(parent, name)) as source:
            value = source.read().strip()
        if value:
            with open(os.path.join(folder, name), "w") as target:
                target.write(value)
    except OSError:
        pass  # not the cpuset hierarchy


def _limit(folder: str, names: tuple[str, ...], value: int) -> None:
    for name in names:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            try:
                with open(path, "w") as setting:
                    setting.write(str(value))
            except OSError as exc:
                raise LinuxError(f"cannot set {path} to {value}: {exc.strerror}") from None


def remove_cgroups(folders: list[str]) -> None:
    """Remove the cgroup folders :func:`join_cgroup` made, deepest first; one still in
    use (EBUSY) or already gone is left."""
    for folder in sorted(folders, key=len, reverse=True):
        if not folder.startswith(CGROUP_ROOT + "/"):
            continue  # a state file that names something else is not obeyed
        try:
            os.rmdir(folder)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                raise
