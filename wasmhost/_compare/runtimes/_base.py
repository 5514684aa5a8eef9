"""What every external runtime adapter provides: see :class:`Runtime`."""

from __future__ import annotations

import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

# What the wasmtime CLI (and wasmhost) exit with when the guest traps.
TRAP_EXIT_STATUS = 134


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
    trap_wording = "exit status 134, its report on stderr"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._explicit = os.fspath(path) if path is not None else None
        self._version: str | None = None
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

    def version(self) -> str | None:
        """The runtime's own version line; None when it cannot run or ``--version`` fails."""
        if self._version is None:
            binary = self.locate()
            if binary is None:
                return None
            try:
                done = subprocess.run(
                    [*self.launcher(binary), "--version"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
            except (OSError, subprocess.TimeoutExpired):
                return None
            if done.returncode != 0:  # installed, but broken: it cannot say what it is
                return None
            lines = (done.stdout or done.stderr).strip().splitlines()
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


def env_flags(flag: str, env: Mapping[str, str]) -> list[str]:
    return [part for name, value in env.items() for part in (flag, f"{name}={value}")]


PACKAGE_DIR = Path(__file__).parent
