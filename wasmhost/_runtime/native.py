"""Containers that are not Wasm: handed to a native runtime (runc, crun), which then
runs in this process's place with the same command."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from .state import RuntimeFailure

if TYPE_CHECKING:
    from .command import Invocation

# Where a native runtime is looked for: fixed folders, never $PATH (podman calls
# the runtime with no PATH at all).
_NATIVE_FOLDERS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
NATIVE_VARIABLE = "WASMHOST_RUNTIME_NATIVE"


def native_runtime() -> str:
    configured = os.environ.get(NATIVE_VARIABLE)
    if configured:
        if not os.path.isabs(configured) or not os.access(configured, os.X_OK):
            raise RuntimeFailure(
                f"{NATIVE_VARIABLE}={configured} is not an executable's absolute path"
            )
        return configured
    for name in ("runc", "crun"):
        for folder in _NATIVE_FOLDERS:
            path = os.path.join(folder, name)
            if os.access(path, os.X_OK):
                return path
    raise RuntimeFailure(
        f"this container is not Wasm, and no native runtime (runc, crun) was found; "
        f"install runc or set {NATIVE_VARIABLE}"
    )


def hand_over(
    native: str,
    root: str,
    invocation: Invocation,
    then: Callable[[int], None] | None = None,
) -> NoReturn:
    """Run the native runtime in this process's place with the same command, and the
    root spelled out (podman asks for state and cleans up without --root). With
    ``then``, run it as a child instead and call ``then`` with its exit status before
    exiting with it (to record or forget the container once runc has answered)."""
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
    if then is None:
        _exec(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            _exec(argv)
        finally:
            os._exit(127)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    status = code if code >= 0 else 128 - code
    then(status)
    os._exit(status)


def _exec(argv: list[str]) -> NoReturn:
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        raise RuntimeFailure(f"cannot run the native runtime {argv[0]}: {exc.strerror}") from None
