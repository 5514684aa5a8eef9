"""What every external runtime adapter provides: see :class:`Runtime`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from ..._errors import TRAP_EXIT_STATUS

# How long `RUNTIME --version` may take by default, in seconds.
VERSION_TIMEOUT = 30.0


class Mount(NamedTuple):
    """A host directory made visible to the guest at ``guest``."""

    host: str
    guest: str
    read_only: bool = False


class Invocation(NamedTuple):
    """One run of a module: the same for every runtime."""

    module: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = {}
    mounts: tuple[Mount, ...] = ()


class Runtime(ABC):
    """An external WebAssembly runtime: how to find it and how to spell a run for it.

    Subclasses set ``name`` (the name users pass to ``--runtime``),
    ``executable`` (what to look for on PATH), ``install_hint`` and
    ``read_only_mounts`` (whether ``argv`` can mount a directory read-only),
    ``components`` (whether it runs WASI preview-2 components), and implement
    :meth:`argv`. :meth:`unable` says why a case is beyond the runtime;
    :meth:`trap_report` tells its way of saying "the guest trapped" (by
    default the wasmtime CLI's: exit status 134, the report on stderr).
    """

    name: str
    executable: str
    install_hint: str
    read_only_mounts: bool = False
    components: bool = False
    trap_wording = f"exit status {TRAP_EXIT_STATUS}, its report on stderr"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._explicit = os.fspath(path) if path is not None else None
        self._version: str | None = None
        self.version_problem: str | None = None
        if self._explicit is not None and not os.access(self._explicit, os.X_OK):
            # A path given by the user: the hint is about that path, not how to install.
            what = "is not executable" if os.path.exists(self._explicit) else "does not exist"
            self.install_hint = f"{self._explicit} {what}; give the path to the {self.name} binary"

    def unable(self, invocation: Invocation, component: bool) -> str | None:
        """Why this runtime cannot run ``invocation`` at all (None: it can). Such a
        case is reported as beyond the runtime, not as a difference."""
        if component and not self.components:
            return "it runs core modules, not WASI preview-2 components"
        return None

    def trap_report(self, exit_code: int | None, stdout: bytes, stderr: bytes) -> bytes | None:
        """If this outcome is the runtime saying the guest trapped, what the guest
        itself wrote to stdout (the runtime's report taken out); else None."""
        return stdout if exit_code == TRAP_EXIT_STATUS else None

    def locate(self) -> str | None:
        """The runtime's executable, or None when it is not installed."""
        if self._explicit is not None:
            return self._explicit if os.access(self._explicit, os.X_OK) else None
        return shutil.which(self.executable)

    def available(self) -> bool:
        return self.locate() is not None

    def version(self, timeout: float = VERSION_TIMEOUT) -> str | None:
        """The runtime's own version line; None when it cannot run, ``--version`` fails, or
        it takes more than ``timeout`` seconds (then its process group is killed). Why it
        is None for an installed runtime is left in :attr:`version_problem`."""
        if self._version is None:
            binary = self.locate()
            if binary is None:
                return None
            try:
                status, out = _version_output([*self.launcher(binary), "--version"], timeout)
            except OSError as exc:
                self.version_problem = f"failed: {exc.strerror or exc}"
                return None
            except subprocess.TimeoutExpired:
                self.version_problem = f"timed out after {timeout:g} s; killed"
                return None
            if status != 0:  # installed, but broken: it cannot say what it is
                self.version_problem = "failed: the runtime is installed but does not run"
                return None
            lines = out.strip().splitlines()
            self._version = lines[0].strip() if lines else "unknown"
        return self._version

    def launcher(self, binary: str) -> list[str]:
        """The command that starts the runtime (the binary itself, for most)."""
        return [binary]

    @abstractmethod
    def argv(self, invocation: Invocation) -> list[str]:
        """The arguments after the launcher that run ``invocation``."""

    def command(self, invocation: Invocation) -> list[str]:
        """The whole command line for ``invocation``; the runtime must be available."""
        binary = self.locate()
        if binary is None:
            raise FileNotFoundError(self.executable)
        return [*self.launcher(binary), *self.argv(invocation)]


def _version_output(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run ``argv`` in a session of its own: its exit status and its stdout, or its stderr
    when stdout is empty. Past ``timeout`` seconds (or on Ctrl-C) the session is killed,
    children included, and the exception raised."""
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise  # leaving the with block closes the pipes and reaps it
    return process.returncode, out or err


def env_flags(flag: str, env: Mapping[str, str]) -> list[str]:
    return [part for name, value in env.items() for part in (flag, f"{name}={value}")]


PACKAGE_DIR = Path(__file__).parent
