"""What ``wasmhost run`` does once its flags are read: load the module (a file, a
registry reference or a layout's), run it with the terminal's stdio, and exit with
its status. Called by the click command (``run``) and, for a local file, by the
start-up path that reads the flags without click (``quick``): nothing here loads
click but an error's message."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from .._errors import WasmhostError
from .errors import reported, usable_cache


def run_module(
    *,
    module: str,
    guest_args: tuple[str, ...] = (),
    dirs: tuple[tuple[str, object], ...] = (),
    envs: tuple[tuple[str, str | None], ...] = (),
    invoke: str | None = None,
    wasm_options: tuple[dict[str, bool], ...] = (),
    fuel: int | None = None,
    timeout: float | None = None,
    max_memory: int | None = None,
    max_files: int | None = None,
    no_symlinks: bool = False,
    cache_dir: Path | None = None,
    no_cache: bool = False,
    offline: bool = False,
    oci_layout: bool = False,
    connect: Callable[..., Any] | None = None,
) -> NoReturn:
    """Run MODULE as ``wasmhost run`` does and exit with the guest's status
    (``connect`` opens a registry client, for a module that is not a local file)."""
    from .._host.host import CallOptions, Host, check_limits
    from .._host.running.stdio import INHERIT

    # A guest runs inside wasmtime, where Python cannot raise KeyboardInterrupt:
    # let Ctrl-C end the process at once, as it ends the wasmtime CLI.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    env = {name: value for name, value in envs if value is not None}
    trap_unknown = False  # the last -W that says wins, as in wasmtime
    for options in wasm_options:
        trap_unknown = options.get("unknown-imports-trap", trap_unknown)
    # argv[0] is the module's file name, as the wasmtime CLI gives it.
    source, argv0 = module, os.path.basename(module)
    name = None  # a module pulled from a registry or layout is called by its reference
    fetch: Callable[[], str] | None = None  # for a registry or layout module

    def fetch_layout() -> str:
        from .registry import ProgressBar

        assert connect is not None
        with connect(cache_dir=cache_dir) as registry, ProgressBar("Pulling") as bar:
            return str(registry.fetch(module, oci_layout=True, progress=bar).path)

    def fetch_reference() -> str:
        from .registry import ProgressBar

        assert connect is not None
        with connect(cache_dir=cache_dir) as registry, ProgressBar("Pulling") as bar:
            return str(registry.fetch(module, offline=offline, progress=bar).path)

    with reported("run"):
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
            _usage_error(f"--verify-key checks modules from a registry; {module} is a local file.")
    backstop = None
    try:
        with (
            reported("run"),
            Host(cache_dir=False if no_cache else usable_cache(cache_dir)) as host,
        ):
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
    _print(*result.values)
    if sys.stdout is not None:  # None when started with stdout closed (>&-)
        sys.stdout.flush()
    sys.exit(result.exit_code)


def _usage_error(message: str) -> NoReturn:
    """A mistake in the command line, as click reports one (exit 2)."""
    import click

    raise click.UsageError(message)


def _print(*values: object) -> None:
    """An invoked function's results, one a line (as click.echo writes them)."""
    if sys.stdout is not None:  # None when started with stdout closed (>&-)
        for value in values:
            sys.stdout.write(f"{value}\n")
        sys.stdout.flush()


def _check_core_invoke(loaded: Any, invoke: str, module: str) -> None:
    """Refuse a component's ``--invoke 'NAME(ARGS)'`` on a core module, saying how it is
    written there: a core function's arguments follow MODULE."""
    name, paren, rest = invoke.partition("(")
    if not paren or invoke in loaded.export_names("func"):
        return
    args = " ".join(arg.strip() for arg in rest.removesuffix(")").split(",") if arg.strip())
    _usage_error(
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
        _usage_error(
            f"a component's function takes its arguments in --invoke 'NAME(ARGS)' (WAVE), "
            f"not after the component: {' '.join(guest_args)}"
        )
    try:
        name, values = wave.parse(loaded, invoke)
    except wave.WaveError as exc:
        _usage_error(f"--invoke {str(exc).removesuffix('.')}")
    try:
        result = host.call(loaded, name, *values, **options)
    except ErrorResult as exc:
        _print(wave.format(loaded, name, exc.error, error=True))
        sys.exit(1)
    if result.values:  # (none when the function returns none, or the guest exited instead)
        _print(wave.format(loaded, name, result.values[0]))
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
        message = f"Error: {name} ran past its {timeout:g} s timeout and was stopped.\n"
        if sys.stderr is not None:
            sys.stderr.write(message)
            sys.stderr.flush()
        os._exit(TRAP_EXIT_STATUS)

    timer = threading.Timer(timeout + _BACKSTOP_GRACE, stop)
    timer.daemon = True
    timer.start()
    return timer


def _is_reference(module: str) -> bool:
    from .._oci.reference import looks_like_reference  # not on a local file's start-up path

    return looks_like_reference(module)
