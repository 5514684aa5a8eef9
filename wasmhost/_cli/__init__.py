"""The ``wasmhost`` command: a thin click layer over the public API.

Subcommands live in their own modules and are imported only when invoked,
so ``wasmhost run`` pays for nothing but the host (no registry client).
Every :class:`~wasmhost.WasmhostError` becomes one line on stderr and a
non-zero status; the guest's own exit status passes through. An unexpected
error is one line too, with its traceback under ``--debug`` (or
``WASMHOST_DEBUG=1``), which also logs what wasmhost does to stderr.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from typing import NoReturn

import click

from .._version import __version__

_COMMANDS = {
    "bundle": ("wasmhost._cli.deploy", "bundle"),
    "cache": ("wasmhost._cli.cache", "cache"),
    "compare": ("wasmhost._cli.compare", "compare"),
    "inspect": ("wasmhost._cli.publish", "inspect"),
    "k8s": ("wasmhost._cli.deploy", "k8s"),
    "login": ("wasmhost._cli.publish", "login"),
    "logout": ("wasmhost._cli.publish", "logout"),
    "pull": ("wasmhost._cli.publish", "pull"),
    "push": ("wasmhost._cli.publish", "push"),
    "run": ("wasmhost._cli.run", "run"),
    "serve": ("wasmhost._cli.serve", "serve"),
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
        return command


def _version() -> str:
    from .._host.capi import wasmtime_version

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
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
        wasmhost_log = logging.getLogger("wasmhost")
        wasmhost_log.addHandler(handler)
        wasmhost_log.setLevel(logging.DEBUG)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Log what wasmhost does, and show the traceback of an unexpected error "
    "[env: WASMHOST_DEBUG=1].",
)
def cli() -> None:
    """Run WebAssembly (WASI preview 1) modules from Python, and ship them."""


def main(argv: list[str] | None = None) -> NoReturn:
    """The console entry point: every error is one line on stderr and a non-zero status."""
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
    except Exception as exc:  # a bug of ours: one line, and a traceback when debugging
        if _debugging():
            traceback.print_exc()
        click.echo(
            f"Error: wasmhost failed unexpectedly ({type(exc).__name__}: {exc}); please "
            "report this with the command you ran"
            + ("." if _debugging() else " and the traceback that `wasmhost --debug ...` shows."),
            err=True,
        )
        sys.exit(70)
    sys.exit(status if isinstance(status, int) else 0)
