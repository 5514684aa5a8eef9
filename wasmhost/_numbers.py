"""The numbers a caller passes (sizes, counts, seconds), each kind checked by
one rule, and sizes read from and written for people.

A whole number is an ``int`` and not a ``bool``; seconds are an ``int`` or a
``float`` (not a ``bool``, not NaN or infinite) above zero."""

from __future__ import annotations

import re

from ._errors import ConfigError

_UNITS = (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def format_size(n: int) -> str:
    """``16 MiB`` for a whole number of a unit, else ``1.5 GiB``; small ones in bytes."""
    for unit, scale in _UNITS:
        if n >= scale:
            return f"{n // scale} {unit}" if n % scale == 0 else f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_size(name: str, value: object, ceiling: int, none: str = "") -> None:
    """Refuse ``value`` unless it is a whole number of bytes in 1..``ceiling`` (or None)."""
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= ceiling
    ):
        raise ConfigError(
            f"{name} must be a positive number of bytes up to {format_size(ceiling)}{none}, "
            f"not {value!r}."
        )


def check_whole(name: str, value: object, low: int, high: int, span: str) -> None:
    """Refuse ``value`` unless it is a whole number in ``low``..``high`` (or None).

    ``span`` says the range in the message: ``"up to 8192"``.
    """
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high
    ):
        raise ConfigError(f"{name} must be a whole number {span}, not {value!r}.")


def check_seconds(name: str, value: object, below: float) -> None:
    """Refuse ``value`` unless it is a number of seconds above 0 and below ``below`` (or None)."""
    if value is not None and (
        not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < below
    ):
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}.")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds as a number, or with a unit: ``500ms``, ``2s``, ``1m``, ``12h``, ``30d``,
    ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNIT_SECONDS.get(match.group(2), 1.0)


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``64MiB``, ``64M`` or ``64m`` (binary), ``64MB`` (decimal), or plain bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    number, unit, binary, byte = match.groups()
    if not unit:
        if binary:
            raise ValueError(text)
        return int(number)
    power = "kmgt".index(unit.lower()) + 1
    base: int = 1000 if byte and not binary else 1024
    multiplier: int = base**power
    return int(number) * multiplier
