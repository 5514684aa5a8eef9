"""``wasmhost compare MODULE [GUEST-ARGS]...``"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from .errors import reported, require
from .params import DIR, DIR_HELP, DURATION, ENV, RUNS, SIZE, WARMUP, examples


def _runtime_specs(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[tuple[str, str | None]]:
    specs = []
    for value in values:
        name, eq, path = value.partition("=")
        if not name or (eq and not path):
            raise click.BadParameter(f"{value!r} is not NAME or NAME=/path/to/binary.", ctx, param)
        specs.append((name, path or None))
    return specs


@click.command(
    # Options before MODULE are checked (a misspelt one gets click's suggestion); from
    # MODULE on, everything is the guest's.
    context_settings={"allow_interspersed_args": False},
    short_help="Compare in-process runs with external runtimes.",
    epilog=examples(
        "wasmhost compare --runtime wasmtime --runs 3 artifacts/hello-world.wasm",
        "wasmhost compare --runtime wasmtime --json artifacts/nbody.wasm 1000",
    ),
)
@click.option(
    "--runtime",
    "runtime_specs",
    multiple=True,
    callback=_runtime_specs,
    metavar="NAME[=PATH]",
    show_default="all",
    help="wasmtime, wasmedge, wasmer, iwasm or node, optionally with its binary (repeatable).",
)
@click.option("--runs", type=RUNS, default=5, show_default=True, help="Measured runs.")
@click.option("--warmup", type=WARMUP, default=1, show_default=True, help="Unmeasured runs.")
@click.option(
    "--dir", "dirs", type=DIR, multiple=True, help=f"{DIR_HELP} Copied afresh for each run."
)
@click.option("--env", "envs", type=ENV, multiple=True, help="NAME=VALUE or NAME.")
@click.option(
    "--stdin",
    "stdin_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A file fed to every run's stdin (a regular file: read once, before the runs).",
)
@click.option(
    "--timeout",
    type=DURATION,
    default=60.0,
    show_default=True,
    help="Stop any run after this long (2, 2.5, 500ms, 1m); a runtime is killed.",
)
@click.option(
    "--max-output",
    type=SIZE,
    default="16MiB",
    show_default=True,
    help="Stop any run that writes more than this to stdout or to stderr.",
)
@click.option("--no-cold", is_flag=True, help="Leave out wasmhost-cold (a process per run).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG bar chart of the wall times (needs matplotlib).",
)
@click.argument("module", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("guest_args", nargs=-1, type=click.UNPROCESSED, metavar="[GUEST-ARGS]...")
def compare(
    runtime_specs: list[tuple[str, str | None]],
    runs: int,
    warmup: int,
    dirs: tuple[tuple[str, Any], ...],
    envs: tuple[tuple[str, str | None], ...],
    stdin_file: Path | None,
    timeout: float,
    max_output: int,
    no_cold: bool,
    as_json: bool,
    plot: Path | None,
    module: Path,
    guest_args: tuple[str, ...],
) -> None:
    """Run MODULE in-process and in external runtimes; check outputs byte for byte.

    A runtime that is not installed is listed with how to get it. The exit
    status is 0 when every available runtime matched the in-process run, 1
    otherwise (a run stopped by --timeout or --max-output is not a match), and
    1 when a runtime named with --runtime is not installed or does not start.
    """
    from .._compare.compare import compare as run_comparison
    from .._compare.runtimes import get_runtime

    # Which runtime and run is going on (a long module shows nothing else until the
    # end), on stderr: on a terminal one line rewritten (not in --json mode), else a
    # line per run (a CI log); stdout is the results'.
    progress: Callable[[str, int, int], None] | None = _log_progress
    if _is_terminal():
        progress = None if as_json else _show_progress
    with reported(), _progress_line(progress is _show_progress), _terminate_as_exit():
        if plot is not None:
            _check_plot(plot)
        adapters = [get_runtime(name, path) for name, path in runtime_specs] or None
        result = run_comparison(
            module,
            guest_args,
            runtimes=adapters,
            runs=runs,
            warmup=warmup,
            env={name: value for name, value in envs if value is not None},
            dirs=dict(dirs),
            stdin=_read_stdin(stdin_file) if stdin_file else b"",
            cold=not no_cold,
            timeout=timeout,
            max_output=max_output,
            progress=progress,
        )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        _table(result)
    if plot is not None:
        with reported():
            _plot(result, plot)
    failed = [
        r
        for r in result.results
        if r.error or (r.available and not r.unable and not r.output_matches)
    ]
    # A runtime named with --runtime is a demand (one found by looking may be absent):
    # compared with nothing, a CI gate must not pass. The rows of the named runtimes
    # come last, in the order named.
    named_rows = result.results[len(result.results) - len(runtime_specs) :]
    named = zip(runtime_specs, named_rows, strict=True)
    missing = [line for spec, row in named if (line := _missing(spec, row))]
    for line in missing:
        click.echo(f"Error: {line}", err=True)
    raise SystemExit(1 if failed or missing else 0)


def _missing(spec: tuple[str, str | None], row: Any) -> str | None:
    """One line when the runtime named ``spec`` is not installed or does not start."""
    name, path = spec
    option = f"--runtime {name}={path}" if path else f"--runtime {name}"
    if not row.available:
        return f"{option}: {'' if path else 'not installed; '}{row.install_hint}."
    if row.version is None or (row.error or "").startswith("could not start"):
        return f"{option}: does not start: {row.error}."
    return None


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM ends the comparison as Ctrl-C does: by an exception, so that its
    scratch folder is removed and its runtimes killed (the default would end the
    process at once). The exit status is the shell's for SIGTERM, 143."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler (and it gets the signals)
        return

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_terminal() -> bool:
    return sys.stderr.isatty()


def _show_progress(runtime: str, run: int, runs: int) -> None:
    click.echo(f"\r\x1b[K{runtime}: run {run} of {runs}", err=True, nl=False)


def _log_progress(runtime: str, run: int, runs: int) -> None:
    click.echo(f"{runtime}: run {run} of {runs}", err=True)


@contextlib.contextmanager
def _progress_line(shown: bool) -> Iterator[None]:
    """Clear the progress line at the end, whatever happens."""
    try:
        yield
    finally:
        if shown:
            click.echo("\r\x1b[K", err=True, nl=False)


_COLUMNS = (
    "runtime",
    "version",
    "status",
    "output",
    "min ms",
    "median ms",
    "max ms",
    "peak RSS MiB",
)


def _table(result: Any) -> None:
    """The comparison as an aligned text table, then one note per line."""
    rows = []
    notes = []
    for r in result.results:
        if not r.available:
            rows.append([r.runtime, "-", "not installed", "-", "-", "-", "-", "-"])
            notes.append(f"{r.runtime}: {r.install_hint}")
            continue
        if r.error:
            rows.append([r.runtime, r.version or "?", "error", "-", "-", "-", "-", "-"])
            notes.append(f"{r.runtime}: {r.error}")
            continue
        if r.unable:
            rows.append([r.runtime, r.version or "?", "unable", "-", "-", "-", "-", "-"])
            notes.append(f"{r.runtime}: cannot run this case: {r.unable}")
            continue
        status = f"killed by {r.signal}" if r.signal else f"exit {r.exit_code}"
        output = "matches" if r.output_matches else "DIFFERS"
        wall = r.wall_ms
        rows.append(
            [
                r.runtime,
                r.version or "?",
                status,
                output,
                f"{wall.min:.3f}",
                f"{wall.median:.3f}",
                f"{wall.max:.3f}",
                "-" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.1f}",
            ]
        )
        for difference in r.differences:
            notes.append(f"{r.runtime}: {difference}")
        for note in r.notes:  # told apart, and not a difference
            notes.append(f"{r.runtime}: {note}")
        if r.read_only_mounts is False:
            notes.append(f"{r.runtime}: cannot mount read-only; its copies were mounted read-write")
        if r.phases_ms:
            phases = ", ".join(f"{k} {v:.3f} ms" for k, v in r.phases_ms.items())
            notes.append(f"{r.runtime}: {phases} (load once; median per run)")
    widths = [max(len(row[i]) for row in [list(_COLUMNS), *rows]) for i in range(len(_COLUMNS))]

    def line(cells: list[str]) -> str:
        aligned = [
            cell.rjust(width) if "ms" in name or "MiB" in name else cell.ljust(width)
            for cell, width, name in zip(cells, widths, _COLUMNS, strict=True)
        ]
        return "  ".join(aligned).rstrip()

    title = f"{result.module} {' '.join(result.args)}".strip()
    click.echo(title)
    click.echo(line(list(_COLUMNS)))
    click.echo(line(["-" * width for width in widths]))
    for row in rows:
        click.echo(line(row))
    for note in notes:
        click.echo(f"  {note}")


def _read_stdin(path: Path) -> bytes:
    from .._errors import ConfigError
    from .._files import open_regular

    try:
        with open_regular(path) as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"--stdin {path} cannot be read: {exc.strerror}.") from None


def _check_plot(path: Path) -> None:
    """Refuse --plot before the comparison runs, not after: matplotlib, the folder, and
    what is at the path (a link, a FIFO or a device is never written over)."""
    from .._errors import ConfigError
    from .._files import check_output

    require("matplotlib", "plot", "wasmhost compare --plot")
    check_output(path, "the plot")
    if not path.parent.is_dir():
        raise ConfigError(f"--plot {path}: the folder {path.parent} does not exist.")


def _plot(result: Any, path: Path) -> None:
    """Write the chart to ``path`` as the other outputs are written (whole or not at
    all, never over a link or a device), and say so on stderr (stdout has the table)."""
    import matplotlib

    from .._files import atomic_writer

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.results if r.wall_ms is not None]
    fig, ax = plt.subplots(figsize=(8, 1 + 0.5 * len(rows)))
    ax.barh([r.runtime for r in rows], [r.wall_ms.median for r in rows], color="#4c72b0")
    ax.set_xscale("log")
    ax.set_xlabel("median wall time per run (ms, log scale)")
    ax.invert_yaxis()
    ax.set_title(os.path.basename(result.module))
    fig.tight_layout()
    try:
        # The format from the name's suffix (svg, pdf, ...), as savefig(path) took it,
        # else PNG: written at the name given, never given an added ".png".
        kind = path.suffix[1:].lower()
        kind = kind if kind in fig.canvas.get_supported_filetypes() else "png"
        with atomic_writer(path, None, what="the plot", output=True) as out:
            fig.savefig(out, format=kind, dpi=100)
    finally:
        plt.close(fig)
    click.echo(f"Wrote {path}", err=True)
