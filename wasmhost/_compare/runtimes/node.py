"""Node.js's WASI (``node:wasi``), through the launcher bundled beside this file."""

from __future__ import annotations

import json

from ._base import PACKAGE_DIR, VERSION_TIMEOUT, Invocation, Runtime

LAUNCHER = PACKAGE_DIR / "node_wasi.mjs"


class Node(Runtime):
    name = "node"
    executable = "node"
    install_hint = "install Node.js 20 or newer (apt-get install nodejs)"
    trap_wording = "exit status 1, a RuntimeError on stderr"

    def trap_report(self, exit_code: int | None, stdout: bytes, stderr: bytes) -> bytes | None:
        # A trap is an uncaught WebAssembly.RuntimeError: node prints it and exits 1.
        return stdout if exit_code == 1 and b"RuntimeError: " in stderr else None

    def version(self, timeout: float = VERSION_TIMEOUT) -> str | None:
        version = super().version(timeout)
        return f"node {version} (node:wasi preview1)" if version else None

    def argv(self, invocation: Invocation) -> list[str]:
        spec = {
            "module": invocation.module,
            "args": list(invocation.args),
            "env": dict(invocation.env),
            "preopens": {m.guest: m.host for m in invocation.mounts},
        }
        # --no-warnings: node:wasi prints an ExperimentalWarning on every run.
        return ["--no-warnings", str(LAUNCHER), json.dumps(spec)]
