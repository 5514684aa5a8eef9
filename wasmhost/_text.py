"""Text that wasmhost hands on, to a guest through WASI or into an artifact's or a
bundle's JSON, is UTF-8: one rule, checked before anything runs or is written.

Python hands on the bytes of argv, the environment and file names that are not
UTF-8 as lone surrogates (``b"\\xff"`` becomes ``"\\udcff"``); they cannot be
encoded, and JSON would carry them as ``"\\udcff"``, which is no character.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ._errors import ConfigError


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (holds no lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def utf8(what: str, values: Iterable[str]) -> list[bytes]:
    """``values`` in UTF-8; the first that is not valid UTF-8 is a ConfigError that
    names it as ``what`` ("argument", "annotation", ...)."""
    encoded = []
    for value in values:
        try:
            encoded.append(value.encode())
        except UnicodeEncodeError:
            raise ConfigError(f"{what} {value!r} is not valid UTF-8.") from None
    return encoded


def text(value: object) -> str:
    """``str(value)`` as a plain str: what is checked is then what is passed, whatever
    a str subclass's own methods (``__contains__``, ``encode``...) would answer."""
    string = str(value)
    return string if type(string) is str else str.__str__(string)


def wasi_strings(what: str, values: Sequence[str]) -> list[bytes]:
    """``values`` as WASI passes them (argv, the environment, preopened paths): UTF-8
    text without NUL bytes."""
    values = [value if type(value) is str else text(value) for value in values]
    if values:
        # All at once (a request's CGI environment: 2 us, not 11): joined by the one
        # character no value may hold, then encoded; a refusal is named below.
        joined = "\0".join(values)
        if joined.count("\0") == len(values) - 1:
            try:
                return joined.encode().split(b"\0")
            except UnicodeEncodeError:
                pass  # (named below)
    encoded = utf8(what, values)
    for value, raw in zip(values, encoded, strict=True):
        if b"\0" in raw:
            raise ConfigError(f"{what} {value!r} contains a NUL byte, which WASI cannot pass.")
    return encoded


def wasi_environment(env: Mapping[str, str]) -> tuple[list[bytes], list[bytes]]:
    """The names and values of ``env`` as WASI passes them (UTF-8 without NUL bytes; a
    name not empty and without ``=``): what was checked, encoded, to be passed."""
    pairs = [(text(k), text(v)) for k, v in env.items()]
    names, values = [k for k, _ in pairs], [v for _, v in pairs]
    for name in names:
        if not name or "=" in name:
            raise ConfigError(f"environment variable name {name!r} is empty or contains '='.")
    if len(set(names)) < len(names):  # ({1: ..., "1": ...}): which one a guest reads varies
        twice = next(name for name in names if names.count(name) > 1)
        raise ConfigError(f"environment variable {twice!r} is given twice.")
    what = "environment variable"
    return wasi_strings(what, names), wasi_strings(what, values)
