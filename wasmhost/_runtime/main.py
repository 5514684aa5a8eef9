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
from .state import Container, RuntimeFailure

# Global flags: (name, takes a value). runc's, with crun's --cgroup-manager and
# go-runc's --criu and --rootless accepted and ignored.
_GLOBAL = {
    "root": True,
    "log": True,
    "log-format": True,
    "criu": True,
    "rootless": True,
    "cgroup-manager": True,
    "systemd-cgroup": False,
    "debug": False,
}
# Each command's flags, short aliases mapped to the long name.
_COMMANDS: dict[str, dict[str, bool]] = {
    "create": {
        "bundle": True,
        "pid-file": True,
        "console-socket": True,
        "no-pivot": False,
        "no-new-keyring": False,
        "preserve-fds": True,
        "detach": False,
    },
    "start": {},
    "state": {},
    "kill": {"all": False},
    "delete": {"force": False},
    "features": {},
    "ps": {"format": True},
}
_SHORT = {"b": "bundle", "a": "all", "f": "force", "d": "detach"}
_REFUSED = ("exec", "pause", "resume", "update", "events", "checkpoint", "restore", "run")
_USAGE = (
    "usage: wasmhost-runtime [--root DIR] [--log FILE] [--log-format text|json] "
    "COMMAND [OPTIONS] ID; commands: create, start, state, kill, delete, ps, features"
)


class Invocation:
    """One command line, parsed: the global flags, the command, its flags and words,
    and where the command starts in ``argv`` (handed over as is to a native runtime)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.globals: dict[str, str | bool] = {}
        index = self._flags(0, _GLOBAL, self.globals, stop_at_word=True)
        if index >= len(self.argv):
            if not (self.globals.get("version") or self.globals.get("help")):
                raise RuntimeFailure(_USAGE)
            self.argv.append("version" if self.globals.get("version") else "help")
        self.command_at = index
        self.command = self.argv[index]
        self.flags: dict[str, str | bool] = {}
        self.words: list[str] = []
        if self.command in _COMMANDS:
            self._flags(index + 1, _COMMANDS[self.command], self.flags, stop_at_word=False)
        else:
            self.words = _container_word(self.command, self.argv[index + 1 :])

    def _flags(
        self, index: int, known: dict[str, bool], into: dict[str, str | bool], stop_at_word: bool
    ) -> int:
        argv = self.argv
        while index < len(argv):
            word = argv[index]
            if word == "--":
                self.words += argv[index + 1 :]
                return len(argv)
            if not word.startswith("-") or word == "-":
                if stop_at_word:
                    return index
                self.words.append(word)
                if self.command == "ps" and len(self.words) == 1:
                    self.words += argv[index + 1 :]  # ps ID [ps arguments]
                    return len(argv)
                index += 1
                continue
            name, equals, value = word.lstrip("-").partition("=")
            name = _SHORT.get(name, name)
            if name in ("version", "v") and stop_at_word:
                into["version"] = True
                index += 1
                continue
            if name in ("help", "h"):
                into["help"] = True
                index += 1
                continue
            if name not in known:
                raise RuntimeFailure(f"flag provided but not defined: {word.split('=')[0]}")
            if known[name] and not equals:
                if index + 1 >= len(argv):
                    raise RuntimeFailure(f"flag needs an argument: {word}")
                index += 1
                value = argv[index]
            into[name] = value if known[name] else (value or "true") != "false"
            index += 1
        return index

    def id(self) -> str:
        if len(self.words) != 1 and not (self.command in ("kill", "ps") and self.words):
            raise RuntimeFailure(f'"{self.command}" requires exactly one container ID')
        container_id = self.words[0]
        _state.check_id(container_id)
        return container_id

    @property
    def root(self) -> str | None:
        root = self.globals.get("root")
        return os.path.abspath(root) if isinstance(root, str) and root else None


# exec's flags that take a value (runc's and crun's): its ID is the first other word.
_EXEC_VALUES = frozenset(
    [
        "process",
        "p",
        "pid-file",
        "console-socket",
        "cwd",
        "env",
        "e",
        "user",
        "u",
        "additional-gids",
        "g",
        "preserve-fds",
        "cap",
        "c",
        "apparmor",
        "process-label",
        "cgroup",
    ]
)


def _container_word(command: str, args: list[str]) -> list[str]:
    """The ID of a command this runtime does not run itself (it refuses them, or hands
    them over): exec's first word, the others' last (``update --resources - ID``)."""
    words = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-") and arg != "-":
            name = arg.lstrip("-")
            skip = command == "exec" and "=" not in name and name in _EXEC_VALUES
        else:
            words.append(arg)
            if command == "exec":
                break
    return words[-1:]


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
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
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


def _dispatch(invocation: Invocation) -> int:
    if invocation.globals.get("version"):
        print(f"wasmhost-runtime version {__version__}\nspec: 1.0.2\n+WASM:wasmtime")
        return 0
    command = invocation.command
    if invocation.globals.get("help") or invocation.flags.get("help") or command == "help":
        print(_USAGE)
        return 0
    if command == "features":
        print(json.dumps(_FEATURES, indent=4))
        return 0
    if command not in _COMMANDS and command not in _REFUSED:
        raise RuntimeFailure(f"no such command: {command}; {_USAGE.partition('; ')[2]}")
    if not invocation.words:
        raise RuntimeFailure(f'"{command}" requires a container ID')
    container_id = invocation.words[0]
    _state.check_id(container_id)
    root = _state.find_root(invocation.root, container_id)
    native = _state.native_marker(root, container_id)
    if native is not None:
        _hand_over(native, root, invocation, forget=command == "delete")
    if command == "create":
        from .create import create

        return create(invocation, root, container_id)
    if command in _REFUSED:
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


def _hand_over(native: str, root: str, invocation: Invocation, forget: bool) -> NoReturn:
    """Run the native runtime in this process's place with the same command, and the
    root spelled out (podman asks for state and cleans up without --root)."""
    argv = [native, "--root", root]
    flags = invocation.globals
    if isinstance(flags.get("log"), str):
        argv += ["--log", str(flags["log"])]
    if isinstance(flags.get("log-format"), str):
        argv += ["--log-format", str(flags["log-format"])]
    if flags.get("systemd-cgroup"):
        argv.append("--systemd-cgroup")
    if flags.get("debug"):
        argv.append("--debug")
    argv += invocation.argv[invocation.command_at :]
    if forget:
        # delete: the marker goes once runc has run (a fork: exec would lose it).
        pid = os.fork()
        if pid == 0:
            _exec(argv)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if status == 0:
            _state.unmark_native(root, invocation.words[0])
            _state.drop_index(root, invocation.words[0])
        sys.stdout.flush()
        os._exit(status if status >= 0 else 128 - status)
    _exec(argv)


def _exec(argv: list[str]) -> NoReturn:
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        raise RuntimeFailure(f"cannot run the native runtime {argv[0]}: {exc.strerror}") from None


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
                data = os.read(fd, 1)
                if data:
                    break
            if not container.alive():
                raise RuntimeFailure("container process is already dead")
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(container.fifo)
    return 0


def parse_signal(text: str) -> int:
    """A signal as runc takes it: a number, or a name in any case, with or without SIG."""
    if text.isdigit():
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
