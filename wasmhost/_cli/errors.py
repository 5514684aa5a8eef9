"""How the CLI reports a :class:`~wasmhost.WasmhostError`: one line (a short block for traps).

click is imported only where a message is printed: ``wasmhost run FILE`` starts
without it (see ``quick``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from .._errors import TRAP_EXIT_STATUS as TRAP_STATUS
from .._errors import GuestError, Interrupted, Trap, WasmhostError

INTERRUPTED_STATUS = 130
ERROR_STATUS = 1
MAX_FRAMES = 20


def describe(exc: WasmhostError, command: str | None = None) -> tuple[str, int]:
    """The message to print for ``exc``, and the exit status (``command``: see
    :func:`reported`)."""
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
    return _worded(exc, command), ERROR_STATUS


def _worded(exc: WasmhostError, command: str | None) -> str:
    """The message, with the library's advice in API terms put in this command's flags."""
    if not exc.fix:
        return str(exc)
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        command = ctx.info_name
        options = {p.name for p in ctx.command.params if p.name}
    elif command is not None:  # started without click (quick): its flags are still these
        from .commands import cli

        found = cli.get_command(click.Context(cli), command)
        options = {p.name for p in found.params if p.name} if found else set()
    else:
        options = set()
    advice = "; or ".join(
        filter(None, (_advice(exc, fix, options, command) for fix in exc.fix.split()))
    )
    return f"{exc.problem}; {advice}." if advice else f"{exc.problem}."


def _advice(exc: WasmhostError, fix: str, options: set[str], command: str | None) -> str | None:
    """What ``fix`` (one of ``exc``'s) says to do, naming only options that ``command`` has."""
    registry = getattr(exc, "registry", "") or "REGISTRY"
    if fix == "credentials":
        if "username" in options:
            return f"run `wasmhost login {registry}`, or pass --username with --password-stdin"
        return (
            f"run `wasmhost login {registry}` first, or set WASMHOST_REGISTRY={registry} "
            "with WASMHOST_REGISTRY_USERNAME and WASMHOST_REGISTRY_PASSWORD"
        )
    if fix == "login":
        if command == "login":  # the check that just failed: no use sending the user back to it
            return "check the username and password"
        return f"check them with `wasmhost login {registry}`"
    if fix == "tls" and "ca_file" in options:
        return (
            "pass --ca-file with its CA, --insecure to skip verification, or --plain-http "
            "for a registry without TLS"
        )
    if fix == "http" and "plain_http" in options:
        return "pass --plain-http to talk to it without TLS"
    if fix == "plain-http":
        more = (
            ", or pass --plain-http for a registry without TLS" if "plain_http" in options else ""
        )
        return f"check the address and that it is running{more}"
    if fix == "offline" and "offline" in options:
        return "pass --offline to use it"
    if fix == "online":
        return "run once without --offline"
    if fix == "max-size" and "max_size" in options:
        return "pass a larger --max-size if it is trusted"
    if fix == "cache-dir":
        if "cache_dir" in options:
            return "pass --cache-dir (or set WASMHOST_CACHE_DIR) with a writable folder"
        return "set WASMHOST_CACHE_DIR to a writable folder"
    if fix == "unknown-imports" and "wasm_options" in options:
        return "pass -W unknown-imports-trap=y to make such imports trap if called"
    if fix == "invoke" and "invoke" in options:
        return "pass --invoke NAME to call one of them"
    if fix == "file":
        if command == "k8s":
            return "push it as an image first (`wasmhost push --format image FILE HOST/REPO:TAG`)"
        return "push it to a registry first (`wasmhost push FILE HOST/REPO:TAG`)"
    return None


@contextmanager
def reported(command: str | None = None) -> Iterator[None]:
    """Print a WasmhostError raised inside as ``Error: ...`` and exit with its status.
    Its advice names the flags of the command click is running, or else of
    ``command`` (one started without click)."""
    try:
        yield
    except WasmhostError as exc:
        import click

        message, status = describe(exc, command)
        click.echo(f"Error: {message}", err=True)
        sys.exit(status)


def usable_cache(cache_dir: Path | None) -> Path | Literal[False] | None:
    """``cache_dir`` for a Host, or False (no compile cache on disk) with one warning
    line when it, or WASMHOST_CACHE_DIR, cannot be used."""
    from .._paths import default_cache_root, unusable

    folder = cache_dir if cache_dir is not None else default_cache_root()
    why = unusable(folder) if folder is not None else None
    if why is None:
        return cache_dir
    import click

    given = "--cache-dir" if cache_dir is not None else "WASMHOST_CACHE_DIR"
    click.echo(
        f"warning: {given}: {why}; running without the compile cache "
        "(name a writable folder to keep compiled code).",
        err=True,
    )
    return False


_PACKAGES = {
    "yaml": "PyYAML",
    "uvicorn": "uvicorn[standard]",
    "httptools": "uvicorn[standard]",
}


def require(modules: str | tuple[str, ...], extra: str, what: str) -> None:
    """Exit with one line naming the extra to install when ``what`` lacks one of ``modules``."""
    import importlib.util

    for module in (modules,) if isinstance(modules, str) else modules:
        if importlib.util.find_spec(module) is not None:
            continue
        # Named by package, not as `pip install wasmhost[...]`: the name wasmhost
        # on PyPI is another project's, which that would install.
        package = _PACKAGES.get(module, module)
        import click

        click.echo(
            f"Error: {what} needs {package}, which is not installed; install it "
            f"(pip install '{package}'), or this checkout's '{extra}' extra "
            f"(pip install '.[{extra}]' in the wasmhost folder).",
            err=True,
        )
        sys.exit(ERROR_STATUS)
