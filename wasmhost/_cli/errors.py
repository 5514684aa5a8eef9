"""How the CLI reports a :class:`~wasmhost.WasmhostError`: one line (a short block for traps)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from .._errors import TRAP_EXIT_STATUS as TRAP_STATUS
from .._errors import GuestError, Interrupted, Trap, WasmhostError

INTERRUPTED_STATUS = 130
ERROR_STATUS = 1
MAX_FRAMES = 20


def describe(exc: WasmhostError) -> tuple[str, int]:
    """The message to print for ``exc``, and the exit status."""
    if isinstance(exc, Trap):
        lines = [str(exc)]
        if exc.frames:
            lines.append("wasm backtrace:")
            lines += [f"  {i:>3}: {frame}" for i, frame in enumerate(exc.frames[:MAX_FRAMES])]
            if len(exc.frames) > MAX_FRAMES:
                lines.append(f"       ... {len(exc.frames) - MAX_FRAMES} more frames")
        return "\n".join(lines), TRAP_STATUS
    if isinstance(exc, Interrupted):
        return str(exc), INTERRUPTED_STATUS
    if isinstance(exc, GuestError):
        return str(exc), TRAP_STATUS
    return str(exc), ERROR_STATUS


@contextmanager
def reported() -> Iterator[None]:
    """Print a WasmhostError raised inside as ``Error: ...`` and exit with its status."""
    try:
        yield
    except WasmhostError as exc:
        message, status = describe(exc)
        click.echo(f"Error: {message}", err=True)
        sys.exit(status)
