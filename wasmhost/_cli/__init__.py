"""The ``wasmhost`` command: a thin click layer over the public API.

Subcommands live in their own modules and are imported only when invoked,
so ``wasmhost run`` pays for nothing but the host (no registry client).
Every :class:`~wasmhost.WasmhostError` becomes one line on stderr and a
non-zero status; the guest's own exit status passes through. An unexpected
error is one line too, with its traceback under ``--debug`` (or
``WASMHOST_DEBUG=1``), which also logs what wasmhost does to stderr.
"""

from __future__ import annotations

import errno
import importlib
import io
import logging
import os
import sys
import traceback
from typing import NoReturn

import click

from .._version import __version__
from .params import examples

_COMMANDS = {
    "bundle": ("wasmhost._cli.deploy", "bundle"),
    "cache": ("wasmhost._cli.cache", "cache"),
    "compare": ("wasmhost._cli.compare", "compare"),
    "inspect": ("wasmhost._cli.publish", "inspect"),
    "k8s": ("wasmhost._cli.deploy", "k8s"),
    "key": ("wasmhost._cli.signing", "key"),
    "login": ("wasmhost._cli.publish", "login"),
    "logout": ("wasmhost._cli.publish", "logout"),
    "pull": ("wasmhost._cli.publish", "pull"),
    "push": ("wasmhost._cli.publish", "push"),
    "run": ("wasmhost._cli.run", "run"),
    "serve": ("wasmhost._cli.serve", "serve"),
    "sign": ("wasmhost._cli.signing", "sign"),
    "verify": ("wasmhost._cli.signing", "verify"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        command = getattr(importlib.import_module(target[0]), target[1])
        assert isinstance(command, click.Command)
        # `wasmhost run --debug ...` as `wasmhost --debug run ...`, and `cache ls --debug`
        subcommands = command.commands.values() if isinstance(command, click.Group) else ()
        for each in (command, *subcommands):
            if not any(param.name == "debug" for param in each.params):
                each.params.append(_debug_option())
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click suggests only among the commands it has loaded: none, in a lazy group.
        name = args[0]
        if name not in _COMMANDS and not name.startswith("-") and not ctx.resilient_parsing:
            import difflib  # not at start-up: only a misspelt command needs it

            close = difflib.get_close_matches(name, _COMMANDS)
            ctx.fail(
                f"No such command {name!r}." + (f" Did you mean {close[0]!r}?" if close else "")
            )
        return super().resolve_command(ctx, args)


def _version() -> str:
    from .._host.engines.capi import wasmtime_version

    return f"wasmhost {__version__} (wasmtime-py {wasmtime_version()})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version())
        ctx.exit()


def _debugging() -> bool:
    return os.environ.get("WASMHOST_DEBUG", "") not in ("", "0")


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if (value or _debugging()) and not ctx.resilient_parsing:
        os.environ["WASMHOST_DEBUG"] = "1"  # for main's handler, and uvicorn's workers
        wasmhost_log = logging.getLogger("wasmhost")
        if any(h.get_name() == "wasmhost-debug" for h in wasmhost_log.handlers):
            return  # given before the command and after it
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name("wasmhost-debug")
        handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
        wasmhost_log.addHandler(handler)
        wasmhost_log.setLevel(logging.DEBUG)


def _debug_option() -> click.Option:
    """``--debug``, which the group and each command take (before or after the command)."""
    return click.Option(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Log what wasmhost does, and show the traceback of an unexpected error "
        "[env: WASMHOST_DEBUG=1].",
    )


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "wasmhost run artifacts/hello-world.wasm",
        "wasmhost inspect artifacts/hello-world.component.wasm",
    ),
)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """Run WebAssembly from Python: WASI preview 1 modules and preview 2
    components. Push, pull and inspect them as OCI artifacts, serve them over
    HTTP (WAGI), compare them with other runtimes, and deploy them.
    """


cli.params.append(_debug_option())


def main(argv: list[str] | None = None) -> NoReturn:
    """The console entry point: every error is one line on stderr and a non-zero status."""
    _tag_stdout()
    try:
        status = cli.main(args=argv, prog_name="wasmhost", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # `wasmhost` (or a group) alone: its help, as click prints it, and its status.
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except _StdoutError as exc:
        _stdout_lost(exc)
    except Exception as exc:
        _unexpected(exc)
    try:
        if sys.stdout is not None:  # None when started with stdout closed (>&-)
            sys.stdout.flush()  # here, not at exit, where Python would only say "Exception ignored"
    except _StdoutError as exc:
        _stdout_lost(exc)
    sys.exit(status if isinstance(status, int) else 0)


def _unexpected(exc: Exception) -> NoReturn:
    """A bug of ours: one line, and a traceback when debugging."""
    if _debugging():
        traceback.print_exc()
    click.echo(
        f"Error: wasmhost failed unexpectedly ({type(exc).__name__}: {exc}); please "
        "report this with the command you ran"
        + ("." if _debugging() else " and the traceback that `wasmhost --debug ...` shows."),
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
        click.echo(f"Error: cannot write to stdout: {exc.strerror or exc}.", err=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)
