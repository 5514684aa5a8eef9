"""WasmEdge, wasmer and WAMR's iwasm: runtimes found on PATH when installed."""

from __future__ import annotations

from ._base import Invocation, Runtime, env_flags


class WasmEdge(Runtime):
    name = "wasmedge"
    executable = "wasmedge"
    install_hint = "install WasmEdge (its installer or your distribution's package) on PATH"
    read_only_mounts = True

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

    def argv(self, invocation: Invocation) -> list[str]:
        dirs = [f"--map-dir={m.guest}::{m.host}" for m in invocation.mounts]
        envs = [f"--env={name}={value}" for name, value in invocation.env.items()]
        return [*dirs, *envs, invocation.module, *invocation.args]
