"""The values of the flags wasmhost shares with the wasmtime CLI, read from text
without click: each reader returns the value, or raises ValueError with the
message click then shows (``params`` wraps them as click types; ``quick`` reads
``wasmhost run``'s flags with them before click is loaded)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._numbers import format_size, parse_duration, parse_size
from .._text import is_utf8

if TYPE_CHECKING:
    from .._host.running.run import Dir

_YES_NO = {"": True, "y": True, "yes": True, "true": True, "n": False, "no": False, "false": False}
WASM_OPTIONS = ("unknown-imports-trap",)


def size(value: str, maximum: int) -> int:
    try:
        found = parse_size(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a size; write it like 64MiB, 1GiB or 65536.") from None
    if found <= 0:
        raise ValueError("the size must be more than zero.")
    if found > maximum:
        raise ValueError(f"{value!r} is too large; the most is {format_size(maximum)}.")
    return found


def duration(value: str, maximum: float, examples: str) -> float:
    """Seconds, under ``maximum`` (exclusive, as the library's check_seconds)."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a duration; write it like {examples}.") from None
    if seconds <= 0:
        raise ValueError("the duration must be more than zero.")
    if seconds >= maximum:
        raise ValueError(f"{value!r} is too large; it must be under {maximum:,.0f} seconds.")
    return seconds


def directory(text: str) -> tuple[str, Dir]:
    """``HOST``, ``HOST::GUEST`` or ``HOST::GUEST::ro`` (read-only), as wasmtime#9608
    proposed: (the guest's path, the Dir)."""
    if "::" not in text and ":" in text and not os.path.exists(text):
        raise ValueError(
            f"{text!r} has a single ':' and is no directory; to map HOST as GUEST, "
            "write HOST::GUEST (as wasmtime does)."
        )
    parts = text.split("::")
    mode = "rw"
    if len(parts) == 3:
        mode = parts.pop()
    if len(parts) > 2 or mode not in ("ro", "rw") or not all(parts):
        raise ValueError(
            f"{text!r} is not a directory mapping; write HOST, HOST::GUEST or HOST::GUEST::ro."
        )
    from .._host.running.run import Dir  # here: the registry commands never load the host

    host = parts[0]
    guest = parts[1] if len(parts) == 2 else host
    return guest, Dir(host, read_only=mode == "ro")


def text(value: str) -> str:
    """Free text that wasmhost hands on (into JSON, an HTTP request, a guest's
    environment): valid UTF-8, which argv need not be (bytes that are not reach
    Python as lone surrogates)."""
    if not is_utf8(value):
        raise ValueError(f"{value!r} is not valid UTF-8.")
    return value


def env(value: str) -> tuple[str, str | None]:
    """``NAME=VALUE``, or ``NAME`` to pass this process's value on."""
    name, eq, val = text(value).partition("=")
    if not name or "\0" in value:
        raise ValueError(f"{value!r} is not NAME=VALUE or NAME.")
    return name, (val if eq else os.environ.get(name))


def whole_number(value: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(value.replace("_", ""), 0)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number.") from None
    if number < minimum:
        raise ValueError(
            "it cannot be negative." if minimum == 0 else f"it must be at least {minimum}."
        )
    if maximum is not None and number > maximum:
        raise ValueError(f"{value!r} is too large; the most is {maximum:,}.")
    return number


def wasm_options(value: str) -> dict[str, bool]:
    """``KEY[=VALUE][,KEY[=VALUE]...]``, as the wasmtime CLI spells its ``-W`` options."""
    options = {}
    for item in value.split(","):
        key, _, answer = item.strip().partition("=")
        if key not in WASM_OPTIONS:
            raise ValueError(
                f"{key!r} is not a -W option wasmhost knows; it knows: {', '.join(WASM_OPTIONS)}."
            )
        if answer.lower() not in _YES_NO:
            raise ValueError(f"{item!r}: write {key}=y or {key}=n.")
        options[key] = _YES_NO[answer.lower()]
    return options


def folder(value: str) -> str:
    """A folder's path, never empty: an unset shell variable (``--cache-dir "$UNSET"``)
    would otherwise name the current folder."""
    if not value.strip():
        raise ValueError("it is empty; name a folder.")
    return value
