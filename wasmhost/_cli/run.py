"""``wasmhost run MODULE [GUEST-ARGS]...``"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._errors import WasmhostError
from .errors import reported, usable_cache
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
from .registry import ProgressBar, registry_options


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
    from .._host.host import CallOptions, Host, check_limits
    from .._host.running.stdio import INHERIT

    # A guest runs inside wasmtime, where Python cannot raise KeyboardInterrupt:
    # let Ctrl-C end the process at once, as it ends the wasmtime CLI.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if module.startswith("-") and not os.path.exists(module):
        # Options the guest should see come after MODULE; one before it is ours, misspelt.
        if module in ("-u", "--username", "--password-stdin"):
            raise click.UsageError(
                f"No such option: {module}; run takes registry credentials from "
                "`wasmhost login` (its stdin is the guest's)."
            )
        ours = [n for p in click.get_current_context().command.params for n in p.opts]
        raise click.NoSuchOption(module, possibilities=ours)
    env = {name: value for name, value in envs if value is not None}
    trap_unknown = False  # the last -W that says wins, as in wasmtime
    for options in wasm_options:
        trap_unknown = options.get("unknown-imports-trap", trap_unknown)
    # argv[0] is the module's file name, as the wasmtime CLI gives it.
    source, argv0 = module, os.path.basename(module)
    name = None  # a module pulled from a registry or layout is called by its reference
    fetch: Callable[[], str] | None = None  # for a registry or layout module

    def fetch_layout() -> str:
        with connect(cache_dir=cache_dir) as registry, ProgressBar("Pulling") as bar:
            return str(registry.fetch(module, oci_layout=True, progress=bar).path)

    def fetch_reference() -> str:
        with connect(cache_dir=cache_dir) as registry, ProgressBar("Pulling") as bar:
            return str(registry.fetch(module, offline=offline, progress=bar).path)

    with reported():
        if oci_layout:
            from .._oci.layout import layout_file_name

            fetch, name = fetch_layout, module
            argv0 = layout_file_name(module)
        elif not os.path.exists(module) and _is_reference(module):
            from .._paths import module_file_name

            fetch, name = fetch_reference, module
            argv0 = module_file_name(module)
        if fetch is not None:
            source = fetch()
        elif getattr(connect, "verifying", False):
            raise click.UsageError(
                f"--verify-key checks modules from a registry; {module} is a local file."
            )
    backstop = None
    try:
        with reported(), Host(cache_dir=False if no_cache else usable_cache(cache_dir)) as host:
            check_limits(timeout, fuel, max_memory, None)
            run_options = CallOptions(
                env=env,
                dirs=dict(dirs),  # type: ignore[arg-type]
                unknown_imports="trap" if trap_unknown else "error",
                fuel=fuel,
                timeout=timeout,
                max_memory=max_memory,
                stdin=INHERIT,
                stdout=INHERIT,
                stderr=INHERIT,
                argv0=argv0,
            )
            if max_files is not None:
                run_options["max_files"] = max_files
            if no_symlinks:
                run_options["symlinks"] = False
            # Compiled for the engine these options need; its imports checked first.
            try:
                loaded = host.load(source, name=name, **run_options)
            except WasmhostError:
                if fetch is None or os.path.exists(source):
                    raise
                # Removed since it was checked (`wasmhost cache prune` elsewhere): again.
                loaded = host.load(fetch(), name=name, **run_options)
            if loaded.kind == "module" and invoke is not None:
                _check_core_invoke(loaded, invoke, module)
            if timeout is not None:
                # Counted from the start, as the host does.
                backstop = _backstop(name or module, timeout)
            if invoke is None:
                result = host.run(loaded, guest_args, **run_options)
            elif loaded.kind == "component":
                _invoke_component(host, loaded, invoke, guest_args, run_options)
            else:
                result = host.call(loaded, invoke, *guest_args, **run_options)
    finally:
        if backstop is not None:
            backstop.cancel()
    for value in result.values:
        click.echo(value)
    if sys.stdout is not None:  # None when started with stdout closed (>&-)
        sys.stdout.flush()
    sys.exit(result.exit_code)


def _check_core_invoke(loaded: Any, invoke: str, module: str) -> None:
    """Refuse a component's ``--invoke 'NAME(ARGS)'`` on a core module, saying how it is
    written there: a core function's arguments follow MODULE."""
    name, paren, rest = invoke.partition("(")
    if not paren or invoke in loaded.export_names("func"):
        return
    args = " ".join(arg.strip() for arg in rest.removesuffix(")").split(",") if arg.strip())
    raise click.UsageError(
        f"--invoke {invoke!r}: a core module's function is named alone, its arguments "
        f"after MODULE: --invoke {name.strip()} {module} {args}".rstrip()
        + " ('NAME(ARGS)' is for components)."
    )


def _invoke_component(
    host: Any, loaded: Any, invoke: str, guest_args: tuple[str, ...], options: Any
) -> None:
    """Call a component's function as ``--invoke 'NAME(ARGS)'`` says, print its result in
    WAVE (an ``err`` too, exiting 1) and exit."""
    from .. import wave
    from .._errors import ErrorResult

    if guest_args:
        raise click.UsageError(
            f"a component's function takes its arguments in --invoke 'NAME(ARGS)' (WAVE), "
            f"not after the component: {' '.join(guest_args)}"
        )
    try:
        name, values = wave.parse(loaded, invoke)
    except wave.WaveError as exc:
        raise click.UsageError(f"--invoke {str(exc).removesuffix('.')}") from None
    try:
        result = host.call(loaded, name, *values, **options)
    except ErrorResult as exc:
        click.echo(wave.format(loaded, name, exc.error, error=True))
        sys.exit(1)
    if result.values:  # (none when the function returns none, or the guest exited instead)
        click.echo(wave.format(loaded, name, result.values[0]))
    if sys.stdout is not None:  # None when started with stdout closed (>&-)
        sys.stdout.flush()
    sys.exit(result.exit_code)


# The host stops a guest within a few ms of its deadline, whether it computes
# or sleeps; one blocked reading the terminal (or a pipe) is out of its reach
# until input comes. This process ends such a run itself, a little later.
_BACKSTOP_GRACE = 0.25


def _backstop(name: str, timeout: float) -> threading.Timer:
    from .._errors import TRAP_EXIT_STATUS

    def stop() -> None:
        click.echo(f"Error: {name} ran past its {timeout:g} s timeout and was stopped.", err=True)
        os._exit(TRAP_EXIT_STATUS)

    timer = threading.Timer(timeout + _BACKSTOP_GRACE, stop)
    timer.daemon = True
    timer.start()
    return timer


def _is_reference(module: str) -> bool:
    from .._oci.reference import looks_like_reference  # not on a local file's start-up path

    return looks_like_reference(module)
