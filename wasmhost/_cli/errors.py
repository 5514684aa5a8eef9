"""How the CLI reports a :class:`~wasmhost.WasmhostError`: one line (a short block for traps)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from .._errors import GuestError, Interrupted, Trap, WasmhostError

# wasmtime's CLI exits with 128 + SIGABRT when a guest traps (a timeout or
# fuel exhaustion is a trap there too); we follow it.
TRAP_STATUS = 134
INTERRUPTED_STATUS = 130
ERROR_STATUS = 1


class CliError(click.ClickException):
    """An error already worded for the terminal, with its exit status."""

    def __init__(self, message: str, exit_code: int = ERROR_STATUS) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: object = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def _describe(exc: WasmhostError) -> tuple[str, int]:
    if isinstance(exc, Trap):
        lines = [str(exc)]
        if exc.frames:
            lines.append("wasm backtrace:")
            lines += [f"  {i:>3}: {frame}" for i, frame in enumerate(exc.frames[:20])]
            if len(exc.frames) > 20:
                lines.append(f"       ... {len(exc.frames) - 20} more frames")
        return "\n".join(lines), TRAP_STATUS
    if isinstance(exc, Interrupted):
        return str(exc), INTERRUPTED_STATUS
    if isinstance(exc, GuestError):
        return str(exc), TRAP_STATUS
    return str(exc), ERROR_STATUS


@contextmanager
def reported() -> Iterator[None]:
    """Turn a WasmhostError raised inside into a :class:`CliError`."""
    try:
        yield
    except WasmhostError as exc:
        message, status = _describe(exc)
        raise CliError(message, status) from None
