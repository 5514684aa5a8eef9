"""The ``wasmhost`` command: a thin click layer over the public API.

Subcommands live in their own modules and are imported only when invoked
(``commands``). ``wasmhost run FILE`` starts without click at all: its flags
are read by ``quick`` when they are ones it knows, and by click otherwise (for
help, and for every mistake, which click reports). Every
:class:`~wasmhost.WasmhostError` becomes one line on stderr and a non-zero
status; the guest's own exit status passes through. An unexpected error is one
line too, with its traceback under ``--debug`` (or ``WASMHOST_DEBUG=1``), which
also logs what wasmhost does to stderr.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from .debug import debugging

if TYPE_CHECKING:
    import click


def __getattr__(name: str) -> click.Group:
    if name == "cli":  # the click group, loaded when asked for
        from .commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> NoReturn:
    """The console entry point: every error is one line on stderr and a non-zero status."""
    from .quick import read_run

    _tag_stdout()
    quick = read_run(sys.argv[1:] if argv is None else argv)
    try:
        if quick is not None:
            from .launch import run_module

            if argv is None:  # this process is the command's own
                _at_once(run_module, quick)
            run_module(**quick)
        from .commands import cli

        status = cli.main(args=argv, prog_name="wasmhost", standalone_mode=False)
    except KeyboardInterrupt:
        _say("Aborted.")
        sys.exit(130)
    except Exception as exc:
        _failed(exc, quick is not None)
    try:
        if sys.stdout is not None:  # None when started with stdout closed (>&-)
            sys.stdout.flush()  # here, not at exit, where Python would only say "Exception ignored"
    except _StdoutError as exc:
        _stdout_lost(exc)
    sys.exit(status if isinstance(status, int) else 0)


def _at_once(run: Callable[..., NoReturn], options: dict[str, Any]) -> NoReturn:
    """``run(**options)``, then end the process as the wasmtime CLI's ends: stdout and
    stderr flushed, without the interpreter's teardown (freeing every module and
    wasmtime object: ~10 ms, a sixth of a hello-world run). Nothing of the run is
    left to it: the guest wrote through its own descriptors, the compile cache
    renamed its files in place, and the threads still alive are the run's timers."""
    try:
        run(**options)
    except SystemExit as end:
        status = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except _StdoutError as exc:
            _stdout_lost(exc)
        if sys.stderr is not None:
            sys.stderr.flush()
        os._exit(status)


def _failed(exc: Exception, quick: bool) -> NoReturn:
    """How the command ended, when not by its own exit: click's usage errors and
    aborts as click reports them, a lost stdout, or a bug of ours."""
    import click

    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        # `wasmhost` (or a group) alone: its help, as click prints it, and its status.
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(exc.exit_code)
    if isinstance(exc, click.UsageError):
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        else:  # raised by run_module, started without click by quick
            hint = " (see 'wasmhost run --help')" if quick else ""
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    if isinstance(exc, click.ClickException):
        exc.show()
        sys.exit(exc.exit_code)
    if isinstance(exc, click.Abort):
        _say("Aborted.")
        sys.exit(130)
    if isinstance(exc, _StdoutError):
        _stdout_lost(exc)
    _unexpected(exc)


def _say(line: str) -> None:
    if sys.stderr is not None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _unexpected(exc: Exception) -> NoReturn:
    """A bug of ours: one line, and a traceback when debugging."""
    import traceback

    import click

    if debugging():
        traceback.print_exc()
    click.echo(
        f"Error: wasmhost failed unexpectedly ({type(exc).__name__}: {exc}); please "
        "report this with the command you ran"
        + ("." if debugging() else " and the traceback that `wasmhost --debug ...` shows."),
        err=True,
    )
    sys.exit(70)


class _StdoutError(OSError):
    """Writing this process's stdout failed: a full disk, a pipe closed by its reader."""


class _Stdout(io.TextIOWrapper):
    """The process's stdout, whose failures are told apart from the OSErrors of a bug."""

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except OSError as exc:
            raise _StdoutError(exc.errno, exc.strerror) from exc

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            raise _StdoutError(exc.errno, exc.strerror) from exc


def _tag_stdout() -> None:
    """Make sys.stdout a :class:`_Stdout` over the same buffer, nothing written yet."""
    out = sys.stdout
    if type(out) is io.TextIOWrapper:  # not when replaced (a test's capture) or closed (None)
        sys.stdout = _Stdout(
            out.buffer,
            encoding=out.encoding,
            errors=out.errors,
            line_buffering=out.line_buffering,
            write_through=out.write_through,
        )


def _stdout_lost(exc: OSError) -> NoReturn:
    """Stdout cannot be written (a full disk, a closed pipe): one line, status 1.

    A closed pipe (``| head``) is no error to report, as Python's documentation
    recommends: quiet. Either way stdout becomes /dev/null, so that the flush at
    exit does not fail again.
    """
    if exc.errno != errno.EPIPE:
        _say(f"Error: cannot write to stdout: {exc.strerror or exc}.")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)
