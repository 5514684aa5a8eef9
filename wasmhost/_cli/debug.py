"""Whether wasmhost is debugging (``--debug``, ``WASMHOST_DEBUG=1``): a leaf, which
the click group and the click-free start-up path both ask."""

from __future__ import annotations

import os


def debugging() -> bool:
    """Log what wasmhost does, and show the traceback of an unexpected error."""
    return os.environ.get("WASMHOST_DEBUG", "") not in ("", "0")
