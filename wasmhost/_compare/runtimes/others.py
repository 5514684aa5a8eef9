"""WasmEdge, wasmer and WAMR's iwasm: runtimes found on PATH when installed.

What each does beyond its flags was seen on real builds (see the issue-15
notes in README's compare section): WasmEdge 0.17.1 (interpreter build) and
iwasm 2.4.5 (WAMR product-mini, fast-interp).
"""

from __future__ import annotations

import re

from ..._errors import TRAP_EXIT_STATUS
from ._base import VERSION_TIMEOUT, Invocation, Runtime, env_flags

# WasmEdge's log lines: "[2025-01-01 12:00:00.000] [error] execution failed: ..."
_WASMEDGE_LOG = re.compile(rb"^\[\d{4}-\d\d-\d\d [^\]]*\] \[error\] .*$\n?", re.MULTILINE)


_IWASM_REPORT = re.compile(rb"Exception: [^\n]*\n?\Z")


class WasmEdge(Runtime):
    name = "wasmedge"
    executable = "wasmedge"
    install_hint = "install WasmEdge (its installer or your distribution's package) on PATH"
    read_only_mounts = True
    trap_wording = f"exit status {TRAP_EXIT_STATUS}, its error report on stdout"

    def version(self, timeout: float = VERSION_TIMEOUT) -> str | None:
        # `wasmedge --version` prints its own path first: "/usr/bin/wasmedge version 0.17.1".
        line = super().version(timeout)
        found = re.search(r"\bversion\s+(\S+)", line or "")
        return f"wasmedge {found.group(1)}" if found else line

    def unable(self, invocation: Invocation, component: bool) -> str | None:
        for mount in invocation.mounts:
            if ":" in mount.host or ":" in mount.guest:
                # Its --dir=GUEST:HOST has no escape: it logs "Bind guest directory failed".
                path = mount.host if ":" in mount.host else mount.guest
                return f"its --dir cannot name a path containing ':' ({path})"
        return super().unable(invocation, component)

    def trap_report(self, exit_code: int | None, stdout: bytes, stderr: bytes) -> bytes | None:
        if exit_code != TRAP_EXIT_STATUS:
            return None
        return _WASMEDGE_LOG.sub(b"", stdout)

    def argv(self, invocation: Invocation) -> list[str]:
        # WasmEdge spells a mount GUEST:HOST, with :readonly for a read-only one.
        dirs = [
            f"--dir={m.guest}:{m.host}{':readonly' if m.read_only else ''}"
            for m in invocation.mounts
        ]
        return [*dirs, *env_flags("--env", invocation.env), invocation.module, *invocation.args]


class Wasmer(Runtime):
    name = "wasmer"
    executable = "wasmer"
    install_hint = "install the wasmer CLI on PATH (PyPI's wasmer has no wheels for Python 3.11)"

    def argv(self, invocation: Invocation) -> list[str]:
        dirs = [f"--mapdir={m.guest}:{m.host}" for m in invocation.mounts]
        return [
            "run",
            *dirs,
            *env_flags("--env", invocation.env),
            invocation.module,
            "--",
            *invocation.args,
        ]


class IWasm(Runtime):
    name = "iwasm"
    executable = "iwasm"
    install_hint = "build WAMR's iwasm (product-mini) and put it on PATH"
    trap_wording = "exit status 1, 'Exception: ...' on stdout"
    # product-mini's main.c keeps --env and --map-dir in arrays of this size.
    MAX_ENVS = MAX_DIRS = 8

    def unable(self, invocation: Invocation, component: bool) -> str | None:
        for mount in invocation.mounts:
            if "::" in mount.host or "::" in mount.guest:
                path = mount.host if "::" in mount.host else mount.guest
                return f"its --map-dir=GUEST::HOST cannot name a path containing '::' ({path})"
        if len(invocation.env) > self.MAX_ENVS:
            return f"it takes at most {self.MAX_ENVS} --env, this case has {len(invocation.env)}"
        if len(invocation.mounts) > self.MAX_DIRS:
            return (
                f"it takes at most {self.MAX_DIRS} --map-dir, "
                f"this case has {len(invocation.mounts)}"
            )
        return super().unable(invocation, component)

    def trap_report(self, exit_code: int | None, stdout: bytes, stderr: bytes) -> bytes | None:
        # iwasm exits 1 and ends stdout with its report, "Exception: unreachable",
        # right after what the guest wrote.
        found = _IWASM_REPORT.search(stdout) if exit_code == 1 else None
        return None if found is None else stdout[: found.start()]

    def argv(self, invocation: Invocation) -> list[str]:
        dirs = [f"--map-dir={m.guest}::{m.host}" for m in invocation.mounts]
        envs = [f"--env={name}={value}" for name, value in invocation.env.items()]
        return [*dirs, *envs, invocation.module, *invocation.args]
