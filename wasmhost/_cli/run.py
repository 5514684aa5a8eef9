"""``wasmhost run MODULE [GUEST-ARGS]...``: its flags, as click reads them (``quick``
reads a local file's run without click); what it does is ``launch.run_module``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .launch import run_module
from .params import (
    DIR,
    DIR_HELP,
    DURATION,
    ENV,
    FUEL,
    MEMORY_SIZE,
    WASM_OPTION,
    FolderPathType,
    WholeNumberType,
    examples,
)
from .registry import registry_options


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a WebAssembly module in-process.",
    epilog=examples(
        "wasmhost run --timeout 2 --max-memory 64MiB artifacts/hello-world.wasm",
        "wasmhost run --invoke 'add(1, 2)' artifacts/calc.component.wasm",
    ),
)
@click.option(
    "--dir",
    "dirs",
    type=DIR,
    multiple=True,
    help=DIR_HELP,
)
@click.option(
    "--env",
    "envs",
    type=ENV,
    multiple=True,
    help="Set NAME=VALUE in the guest, or pass NAME's value from this environment.",
)
@click.option(
    "--invoke",
    metavar="FUNC",
    help="Call this export; GUEST-ARGS are its argv, and its parameters if it takes any. "
    "For a component: 'NAME(ARGS)', the arguments in WAVE, as the wasmtime CLI takes them.",
)
@click.option(
    "-W",
    "wasm_options",
    type=WASM_OPTION,
    multiple=True,
    help="unknown-imports-trap=y: imports nothing provides trap when called (as wasmtime's).",
)
@click.option("--fuel", type=FUEL, help="Stop the guest after this much fuel.")
@click.option("--timeout", type=DURATION, help="Stop the guest after this long (2, 2.5, 500ms).")
@click.option(
    "--max-memory",
    type=MEMORY_SIZE,
    help="Cap the guest's linear memory, and its tables as much again (64MiB, 1GiB, bytes).",
)
@click.option(
    "--max-files",
    type=WholeNumberType(minimum=1, maximum=1 << 20),
    show_default="256",
    help="Files the guest may hold open at once; past it, opening fails with EMFILE.",
)
@click.option(
    "--no-symlinks", is_flag=True, help="Creating a symbolic link fails with EPERM in the guest."
)
@click.option(
    "--cache-dir",
    type=FolderPathType(),  # one that cannot be used is a warning (usable_cache)
    # Not click's envvar: the host reads WASMHOST_CACHE_DIR (and WASMHOST_NO_CACHE) itself.
    help="The wasmhost cache folder [env: WASMHOST_CACHE_DIR].",
)
@click.option("--no-cache", is_flag=True, help="Do not read or write compiled code on disk.")
@click.option(
    "--offline",
    is_flag=True,
    help="For a registry reference: use the copy pulled before, without asking the registry.",
)
@click.option(
    "--oci-layout",
    is_flag=True,
    help="MODULE is in a local OCI image layout: DIR[:TAG] or DIR@DIGEST.",
)
@registry_options(credentials=False, downloads=True)
@click.argument("module", metavar="MODULE")
@click.argument("guest_args", nargs=-1, type=click.UNPROCESSED, metavar="[GUEST-ARGS]...")
def run(
    dirs: tuple[tuple[str, object], ...],
    envs: tuple[tuple[str, str | None], ...],
    invoke: str | None,
    wasm_options: tuple[dict[str, bool], ...],
    fuel: int | None,
    timeout: float | None,
    max_memory: int | None,
    max_files: int | None,
    no_symlinks: bool,
    cache_dir: Path | None,
    no_cache: bool,
    offline: bool,
    oci_layout: bool,
    connect: Callable[..., Any],
    module: str,
    guest_args: tuple[str, ...],
) -> None:
    """Run MODULE with the terminal's stdin, stdout and stderr.

    MODULE is a .wasm file (a core module or a WASI preview-2 component), or
    a registry reference (host[:port]/repo:tag or @sha256:...) whose module
    is pulled into the local store, verified, and run. Everything after
    MODULE goes to the guest. The exit status is the guest's; a trap or a
    limit exits with 134, as the wasmtime CLI does.
    """
    if module.startswith("-") and not os.path.exists(module):
        # Options the guest should see come after MODULE; one before it is ours, misspelt.
        if module in ("-u", "--username", "--password-stdin"):
            raise click.UsageError(
                f"No such option: {module}; run takes registry credentials from "
                "`wasmhost login` (its stdin is the guest's)."
            )
        ours = [n for p in click.get_current_context().command.params for n in p.opts]
        raise click.NoSuchOption(module, possibilities=ours)
    run_module(
        module=module,
        guest_args=guest_args,
        dirs=dirs,
        envs=envs,
        invoke=invoke,
        wasm_options=wasm_options,
        fuel=fuel,
        timeout=timeout,
        max_memory=max_memory,
        max_files=max_files,
        no_symlinks=no_symlinks,
        cache_dir=cache_dir,
        no_cache=no_cache,
        offline=offline,
        oci_layout=oci_layout,
        connect=connect,
    )
