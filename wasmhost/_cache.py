"""The on-disk cache of compiled modules.

An entry is the wasmtime serialization of a module, stored under a hash of
the wasm bytes and the engine's fingerprint (wasmtime version, machine,
engine settings). Every entry starts with a magic line and a BLAKE2b hash of
its own file name and the serialized payload (so an entry copied under
another module's name is refused too): wasmtime trusts what it deserializes, so a corrupt,
truncated or foreign file is detected here, dropped and rebuilt, never loaded.
Entries are written to a temporary file in the same folder and renamed into
place, so concurrent processes never see a half-written entry.

Location: ``$WASMHOST_CACHE_DIR/compiled`` if set, else
``$XDG_CACHE_HOME/wasmhost/compiled`` (``~/.cache/wasmhost/compiled``).
``WASMHOST_NO_CACHE=1`` turns the disk cache off.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import wasmtime

from ._hashing import KEY_BYTES, checksum

_MAGIC = b"wasmhost-compiled-module\n"


def default_cache_root() -> Path | None:
    """The compile cache's folder the environment asks for, or None when it is off."""
    if os.environ.get("WASMHOST_NO_CACHE", "") not in ("", "0"):
        return None
    return cache_root()


def cache_root() -> Path:
    """The wasmhost cache folder: ``$WASMHOST_CACHE_DIR``, else ``$XDG_CACHE_HOME/wasmhost``."""
    explicit = os.environ.get("WASMHOST_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "wasmhost"


class CompileCache:
    """Compiled modules on disk, in ``directory`` (``None``: nothing is stored)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def path(self, key: str, fingerprint: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / key[:2] / f"{key}-{fingerprint}.cwasm"

    def load(self, engine: wasmtime.Engine, path: Path) -> wasmtime.Module | None:
        """The module stored at ``path``, or None (absent, damaged or foreign: then removed)."""
        import wasmtime  # not at the top: the registry side uses cache_root without wasmtime

        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        head = len(_MAGIC) + KEY_BYTES
        payload = memoryview(data)[head:]
        expected = checksum(path.name.encode(), payload)
        if data[: len(_MAGIC)] != _MAGIC or expected != data[len(_MAGIC) : head]:
            self._discard(path)
            return None
        try:
            return wasmtime.Module.deserialize(engine, bytes(payload))
        except wasmtime.WasmtimeError:
            self._discard(path)
            return None

    def store(self, module: wasmtime.Module, path: Path) -> None:
        """Write ``module`` at ``path`` atomically; a failure to write is not an error."""
        import wasmtime

        from ._errors import StorageError
        from ._files import atomic_writer, sweep  # only on a cache miss: ~3 ms of imports

        try:
            payload = module.serialize()
            with atomic_writer(path, what="the compile cache") as f:
                f.write(_MAGIC)
                f.write(checksum(path.name.encode(), payload))
                f.write(payload)
        except (StorageError, wasmtime.WasmtimeError):
            pass
        finally:
            sweep(path.parent)

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()
