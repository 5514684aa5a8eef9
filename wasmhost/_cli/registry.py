"""The options and helpers that every registry command shares."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def transport_options(func: F) -> F:
    """``--plain-http``, ``--insecure``, ``--ca-file``, spelled as the oras CLI spells them."""
    for option in reversed(
        [
            click.option("--plain-http", is_flag=True, help="Talk plain HTTP, without TLS."),
            click.option(
                "--insecure", is_flag=True, help="Use TLS but do not verify the certificate."
            ),
            click.option(
                "--ca-file",
                type=click.Path(dir_okay=False, exists=True, path_type=Path),
                help="Verify the registry's certificate with this CA bundle.",
            ),
        ]
    ):
        func = option(func)
    return func


def credential_options(func: F) -> F:
    """``--username`` with ``--password-stdin``, as ``docker login`` takes them."""
    func = click.option(
        "--password-stdin", is_flag=True, help="Read the password (or token) from stdin."
    )(func)
    func = click.option("-u", "--username", help="The registry user name.")(func)
    return func


def read_password(username: str | None, password_stdin: bool) -> str | None:
    if password_stdin and not username:
        raise click.UsageError("--password-stdin goes with --username.")
    if username and not password_stdin:
        raise click.UsageError("--username needs --password-stdin (a password is never a flag).")
    if not password_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.UsageError("--password-stdin read an empty password.")
    return password


def client(
    plain_http: bool,
    insecure: bool,
    ca_file: Path | None,
    username: str | None = None,
    password: str | None = None,
    cache_dir: Path | None = None,
) -> Any:
    from .._artifacts import RegistryClient

    return RegistryClient(
        plain_http=plain_http,
        insecure=insecure,
        ca_file=ca_file,
        username=username,
        password=password,
        cache_dir=cache_dir,
    )


class ProgressBar:
    """A progress callback that draws a bar on a terminal and nothing elsewhere."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self._label = label
        self._enabled = not quiet and sys.stderr.isatty()
        self._bar: Any = None
        self._done = 0

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled or total < (1 << 20):
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self._label, file=sys.stderr)
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
