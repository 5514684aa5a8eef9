"""The options and helpers that every registry command shares."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .params import DOWNLOAD_SIZE, TEXT

F = TypeVar("F", bound=Callable[..., Any])
_MAX_PASSWORD = 64 << 10  # a token is a few KiB; a stdin without end is not read to its end


def registry_options(
    *, credentials: bool = True, required: bool = False, downloads: bool = False
) -> Callable[[F], F]:
    """Add the registry flags to a command and hand it one ``connect`` instead.

    The flags: ``--plain-http``, ``--insecure``, ``--ca-file`` as the oras CLI
    spells them; with ``credentials``, ``--username`` with
    ``--password-stdin`` as ``docker login`` takes them (``required`` makes
    them mandatory: on a terminal they are asked for, the password without
    echo, as ``docker login`` asks); with ``downloads``, ``--max-size`` and
    ``--verify-key`` (``connect.verifying`` says whether it was given). The
    command receives ``connect(reference=None, registry=None, **options)``,
    which opens a :class:`~wasmhost.RegistryClient` with them; the
    credentials given are for the registry of ``reference`` (or
    ``registry``, a server address) only. The password is read from stdin
    (or asked for) before the command runs.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def command(
            *args: Any,
            plain_http: bool,
            insecure: bool,
            ca_file: Path | None,
            username: str | None = None,
            password_stdin: bool = False,
            max_size: int | None = None,
            verify_keys: tuple[str, ...] = (),
            **kwargs: Any,
        ) -> Any:
            password: str | None
            if required and not password_stdin and sys.stdin.isatty():
                username, password = ask_credentials(username)
            elif required and not username:
                name = click.get_current_context().info_name
                raise click.UsageError(
                    f"{name} asks for the username and password on a terminal, and stdin is "
                    "not one; pass --username with --password-stdin (the password on stdin)."
                )
            else:
                password = read_password(username, password_stdin)

            def connect(
                reference: str | None = None, registry: str | None = None, **options: Any
            ) -> Any:
                from .._oci.client import DEFAULT_MAX_SIZE, RegistryClient
                from .._oci.reference import parse_reference, parse_registry

                given = {}
                if username and password and (reference or registry):
                    host = parse_reference(reference).registry if reference else registry
                    given[parse_registry(host or "")] = (username, password)
                return RegistryClient(
                    plain_http=plain_http,
                    insecure=insecure,
                    ca_file=ca_file,
                    credentials=given,
                    max_size=max_size or DEFAULT_MAX_SIZE,
                    verify=list(verify_keys) or None,
                    **options,
                )

            connect.verifying = bool(verify_keys)  # type: ignore[attr-defined]
            return func(*args, connect=connect, **kwargs)

        options = [
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
        if credentials:
            options += [
                click.option(
                    "-u",
                    "--username",
                    type=TEXT,
                    help="The registry user name (for this registry only).",
                ),
                click.option(
                    "--password-stdin",
                    is_flag=True,
                    help="Read the password (or token) from stdin.",
                ),
            ]
        if downloads:
            options.append(
                click.option(
                    "--max-size",
                    type=DOWNLOAD_SIZE,
                    show_default="1GiB",
                    help="Refuse a module bigger than this, before downloading it.",
                )
            )
            options.append(
                click.option(
                    "--verify-key",
                    "verify_keys",
                    multiple=True,
                    type=click.Path(dir_okay=False, exists=True),
                    help="Take a registry module only if one of these public keys signed it "
                    "(cosign's format); repeatable.",
                )
            )
        decorated: Any = command
        for option in reversed(options):
            decorated = option(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate


def ask_credentials(username: str | None) -> tuple[str, str]:
    """The username (unless given) and the password, asked for on the terminal (on
    stderr, so that stdout keeps only the result); the password is not echoed."""
    if not username:
        username = click.prompt("Username", type=TEXT, err=True)
    password = click.prompt("Password", hide_input=True, err=True)
    return str(username), str(password)


def read_password(username: str | None, password_stdin: bool) -> str | None:
    if password_stdin and not username:
        raise click.UsageError("--password-stdin goes with --username.")
    if username and not password_stdin:
        raise click.UsageError("--username needs --password-stdin (a password is never a flag).")
    if not password_stdin:
        return None
    # Bytes, whatever the locale says; one line, and never a stdin without end.
    line = sys.stdin.buffer.readline(_MAX_PASSWORD + 1).rstrip(b"\r\n")
    if len(line) > _MAX_PASSWORD:
        raise click.UsageError(f"--password-stdin read more than {_MAX_PASSWORD} bytes on a line.")
    if not line:
        raise click.UsageError("--password-stdin read an empty password.")
    try:
        return line.decode()
    except UnicodeDecodeError:
        what = "a password that is not valid UTF-8"
        raise click.UsageError(f"--password-stdin read {what}.") from None


class ProgressBar:
    """A progress callback that draws a bar on a terminal and nothing elsewhere.

    Used as a context manager, the bar is closed (its line ended) on leaving::

        with ProgressBar("Pulling", quiet) as bar:
            registry.fetch(reference, progress=bar)
    """

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

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
