"""The ``wasmhost`` click group: its commands, each in its own module and imported only
when invoked (so ``wasmhost push`` pays for no host, ``run`` for no registry client),
``--version`` and ``--debug``."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from .._version import __version__
from .debug import debugging
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


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if (value or debugging()) and not ctx.resilient_parsing:
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
