"""``wasmhost-runtime``: an OCI runtime with runc's command line, for Wasm containers.

containerd's runc shim, conmon (podman, CRI-O) call it as they call runc::

    wasmhost-runtime [--root DIR] [--log FILE] [--log-format text|json]
                     [--systemd-cgroup] [--debug] COMMAND [OPTIONS] ID

A container whose entrypoint is Wasm (or that crun's Wasm annotations mark) runs here,
in a forked init, through wasmhost's :class:`~wasmhost.Host`; every other container is
handed to a native runtime (runc) with the same arguments, so one runtime serves a
whole pod. ``state``, ``kill`` and ``delete`` are called several times a container:
this module and the ones it imports on their path load neither wasmtime nor click.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from . import state as _state
from .command import COMMANDS, REFUSED, USAGE, Invocation
from .native import hand_over
from .state import Container, RuntimeFailure


class Log:
    """Where errors go: stderr always (conmon reads them there), and the ``--log`` file
    as runc writes it (containerd's shim reads the last JSON ``error`` line)."""

    def __init__(self, path: object, form: object) -> None:
        self.path = path if isinstance(path, str) and path else None
        self.json = form == "json"

    def error(self, message: str) -> None:
        sys.stderr.write(f"wasmhost-runtime: {message}\n")
        sys.stderr.flush()
        if self.path is None:
            return
        if self.json:
            line = json.dumps({"level": "error", "msg": message, "time": _state.now()})
        else:
            line = f'time="{_state.now()}" level=error msg={json.dumps(message)}'
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError:
            pass  # the message is on stderr


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else list(argv)
    log = Log(None, None)
    try:
        invocation = Invocation(args)
        log = Log(invocation.globals.get("log"), invocation.globals.get("log-format"))
        sys.exit(_dispatch(invocation))
    except RuntimeFailure as exc:
        log.error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:  # a file system refusing what the state needs (full, read-only)
        where = f" ({exc.filename})" if exc.filename else ""
        log.error(f"{exc.strerror or exc}{where}")
        sys.exit(1)
    except Exception as exc:  # a bug: still one line for the engine, not a traceback
        log.error(f"unexpected error: {type(exc).__name__}: {exc}")
        sys.exit(1)


def _dispatch(invocation: Invocation) -> int:
    if invocation.globals.get("version"):
        print(f"wasmhost-runtime version {__version__}\nspec: 1.0.2\n+WASM:wasmtime")
        return 0
    command = invocation.command
    if invocation.globals.get("help") or invocation.flags.get("help") or command == "help":
        print(USAGE)
        return 0
    if command == "features":
        print(json.dumps(_FEATURES, indent=4))
        return 0
    if command not in COMMANDS and command not in REFUSED:
        raise RuntimeFailure(f"no such command: {command}; {USAGE.partition('; ')[2]}")
    if not invocation.words:
        raise RuntimeFailure(f'"{command}" requires a container ID')
    container_id = invocation.words[0]
    _state.check_id(container_id)
    root = _state.find_root(invocation.root, container_id)
    _state.check_root(root)
    native = _state.native_marker(root, container_id)
    if native is not None:
        if command != "delete":
            hand_over(native, root, invocation)

        def forget(status: int) -> None:
            if status == 0:  # runc deleted it: its later commands are no one's
                _state.unmark_native(root, container_id)
                _state.drop_index(root, container_id)

        hand_over(native, root, invocation, forget)
    if command == "create":
        from .create import create

        return create(invocation, root, container_id)
    if command in REFUSED:
        raise RuntimeFailure(f"{command} is not supported for a Wasm container")
    container = Container(root, container_id)
    if command == "delete":
        return _delete(container, bool(invocation.flags.get("force")))
    container.load()
    if command == "state":
        sys.stdout.write(json.dumps(container.state(), indent=2))
        return 0
    if command == "start":
        return _start(container)
    if command == "kill":
        return _kill(container, invocation)
    if command == "ps":
        return _ps(container, invocation)
    raise AssertionError(command)


def _start(container: Container) -> int:
    status = container.status()
    if status == "stopped":
        raise RuntimeFailure("cannot start a container that has stopped")
    if status != "created":
        raise RuntimeFailure("cannot start an already running container")
    import select

    try:
        fd = os.open(container.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RuntimeFailure("cannot start an already running container") from None
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                if os.read(fd, 1):
                    break
                # End of file: another start took the byte, or the init wrote none.
                raise RuntimeFailure("cannot start an already running container")
            if not container.alive():
                raise RuntimeFailure("container process is already dead")
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(container.fifo)
    return 0


def parse_signal(text: str) -> int:
    """A signal as runc takes it: a number, or a name in any case, with or without SIG."""
    if text.isascii() and text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        found = getattr(signal.Signals, name, None)
        if found is not None:
            return int(found)
    raise RuntimeFailure(f"unknown signal {text!r}")


def _kill(container: Container, invocation: Invocation) -> int:
    words = invocation.words
    if len(words) > 2:
        raise RuntimeFailure('"kill" takes a container ID and a signal')
    number = parse_signal(words[1]) if len(words) == 2 else signal.SIGTERM
    if not container.alive():
        if invocation.flags.get("all"):
            return 0
        raise RuntimeFailure("container not running")
    _signal(container, number, group=bool(invocation.flags.get("all")))
    return 0


def _signal(container: Container, number: int, group: bool = False) -> None:
    """Signal the init (``group``: its whole process group, the serving container's
    workers too) through a pidfd, so a reused pid is never signalled."""
    try:
        pidfd = os.pidfd_open(container.pid)
    except ProcessLookupError:
        return
    try:
        if _state.start_time(container.pid) != container.record.get("start_time"):
            return
        if group:
            os.killpg(container.pid, number)  # the init leads its own session and group
        else:
            signal.pidfd_send_signal(pidfd, number)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def _delete(container: Container, force: bool) -> int:
    if container.is_link():
        if not force:
            raise RuntimeFailure(f"{container.folder} is a symbolic link, not this runtime's")
        os.unlink(container.folder)  # removed, never followed
        _state.drop_index(container.root, container.id)
        return 0
    try:
        container.load()
    except RuntimeFailure as exc:
        if str(exc) != "container does not exist":
            if not force:
                raise
        elif not container.exists():
            _state.drop_index(container.root, container.id)
            if force:
                return 0
            raise
        # A crash of create (no record) or a damaged record: remove what is there.
        _remove(container)
        return 0
    status = container.status()
    if status == "running" and not force:
        raise RuntimeFailure(f"cannot delete container {container.id} that is not stopped: running")
    if status != "stopped":
        _signal(container, signal.SIGKILL, group=True)
        import time

        for _ in range(100):
            if not container.alive():
                break
            time.sleep(0.1)
        else:
            raise RuntimeFailure("container init still running")
    _remove(container)
    return 0


def _remove(container: Container) -> None:
    import shutil

    from .linux import remove_cgroups

    try:
        with open(os.path.join(container.folder, _state.CGROUPS), encoding="utf-8") as f:
            cgroups = json.load(f)
    except (OSError, ValueError):
        cgroups = []
    if isinstance(cgroups, list):
        remove_cgroups([c for c in cgroups if isinstance(c, str)])
    shutil.rmtree(container.folder, ignore_errors=True)
    _state.drop_index(container.root, container.id)


def _ps(container: Container, invocation: Invocation) -> int:
    pids = [container.pid] if container.alive() else []
    if invocation.flags.get("format", "table") == "json":
        print(json.dumps(pids))
        return 0
    print("UID          PID    PPID  C STIME TTY          TIME CMD")
    for pid in pids:
        print(f"root     {pid:>7}       0  0 00:00 ?        00:00:00 wasmhost-init")
    return 0


_FEATURES = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.1.0",
    "hooks": [],
    "mountOptions": ["bind", "rbind", "ro", "rw"],
    "linux": {
        "namespaces": ["network", "uts", "ipc"],
        "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
    },
    "annotations": {"io.wasmhost.runtime.version": __version__},
}
