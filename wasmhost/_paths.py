"""Where wasmhost keeps its files: the cache folder shared by the compile
cache, the registry client's store and the runtimes ``compare`` copies."""

from __future__ import annotations

import os
from pathlib import Path


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


def unusable(folder: Path) -> str | None:
    """Why the cache cannot be kept in ``folder``, or None: the nearest part of its path
    that exists is no folder, or cannot be written."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
