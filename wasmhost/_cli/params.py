"""click parameter types for the flags wasmhost shares with the wasmtime CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .._numbers import format_size, parse_duration, parse_size
from .._text import is_utf8

if TYPE_CHECKING:
    from .._host.running.run import Dir


class SizeType(click.ParamType):
    name = "SIZE"

    def __init__(self, maximum: int = 1 << 40) -> None:
        self.maximum = maximum  # the library's own ceiling, refused here as a usage error

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a size; write it like 64MiB, 1GiB or 65536.", param, ctx)
        if size <= 0:
            self.fail("the size must be more than zero.", param, ctx)
        if size > self.maximum:
            self.fail(
                f"{value!r} is too large; the most is {format_size(self.maximum)}.", param, ctx
            )
        return size


class DurationType(click.ParamType):
    name = "SECONDS"
    examples = "2, 2.5, 500ms or 1m"

    def __init__(self, maximum: float = 1e9) -> None:
        self.maximum = maximum  # exclusive, as the library's check_seconds

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            seconds = parse_duration(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a duration; write it like {self.examples}.", param, ctx)
        if seconds <= 0:
            self.fail("the duration must be more than zero.", param, ctx)
        if seconds >= self.maximum:
            self.fail(
                f"{value!r} is too large; it must be under {self.maximum:,.0f} seconds.", param, ctx
            )
        return seconds


class AgeType(DurationType):
    """How long ago: ``30d``, ``12h``, ``90m`` (or seconds)."""

    name = "AGE"
    examples = "30d, 12h or 90m"


class DirType(click.ParamType):
    """``HOST``, ``HOST::GUEST`` or ``HOST::GUEST::ro`` (read-only), as wasmtime#9608 proposed."""

    name = "HOST[::GUEST[::ro]]"

    def get_metavar(self, *args: Any, **kwargs: Any) -> str:
        return self.name  # as written: click would upper-case the "ro"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, Dir]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        if "::" not in text and ":" in text and not os.path.exists(text):
            self.fail(
                f"{text!r} has a single ':' and is no directory; to map HOST as GUEST, "
                "write HOST::GUEST (as wasmtime does).",
                param,
                ctx,
            )
        parts = text.split("::")
        mode = "rw"
        if len(parts) == 3:
            mode = parts.pop()
        if len(parts) > 2 or mode not in ("ro", "rw") or not all(parts):
            self.fail(
                f"{value!r} is not a directory mapping; "
                "write HOST, HOST::GUEST or HOST::GUEST::ro.",
                param,
                ctx,
            )
        from .._host.running.run import Dir  # here: the registry commands never load the host

        host = parts[0]
        guest = parts[1] if len(parts) == 2 else host
        return guest, Dir(host, read_only=mode == "ro")


class TextType(click.ParamType):
    """Free text that wasmhost hands on (into JSON, an HTTP request, a guest's
    environment): valid UTF-8, which argv need not be. Bytes that are not reach
    Python as lone surrogates; here they are a usage error, before anything runs."""

    name = "TEXT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not is_utf8(text):
            self.fail(f"{text!r} is not valid UTF-8.", param, ctx)
        return text


class EnvType(click.ParamType):
    """``NAME=VALUE``, or ``NAME`` to pass this process's value on."""

    name = "NAME[=VALUE]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str | None]:
        if isinstance(value, tuple):
            return value
        name, eq, val = TEXT.convert(value, param, ctx).partition("=")
        if not name or "\0" in value:
            self.fail(f"{value!r} is not NAME=VALUE or NAME.", param, ctx)
        return name, (val if eq else os.environ.get(name))


class WholeNumberType(click.ParamType):
    name = "N"

    def __init__(self, minimum: int = 0, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = int(str(value).replace("_", ""), 0)
        except ValueError:
            self.fail(f"{value!r} is not a whole number.", param, ctx)
        if number < self.minimum:
            self.fail(
                "it cannot be negative."
                if self.minimum == 0
                else f"it must be at least {self.minimum}.",
                param,
                ctx,
            )
        if self.maximum is not None and number > self.maximum:
            self.fail(f"{value!r} is too large; the most is {self.maximum:,}.", param, ctx)
        return number


class FolderPathType(click.Path):
    """A folder's path, never empty: an unset shell variable (``--cache-dir "$UNSET"``)
    would otherwise name the current folder."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("it is empty; name a folder.", param, ctx)
        return super().convert(value, param, ctx)


_YES_NO = {"": True, "y": True, "yes": True, "true": True, "n": False, "no": False, "false": False}


class WasmOptionType(click.ParamType):
    """``-W KEY[=VALUE][,KEY[=VALUE]...]``, as the wasmtime CLI spells its wasm options;
    wasmhost knows ``unknown-imports-trap``."""

    name = "KEY[=VALUE]"
    known = ("unknown-imports-trap",)

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, bool]:
        if isinstance(value, dict):
            return value
        options = {}
        for item in str(value).split(","):
            key, _, text = item.strip().partition("=")
            if key not in self.known:
                self.fail(
                    f"{key!r} is not a -W option wasmhost knows; "
                    f"it knows: {', '.join(self.known)}.",
                    param,
                    ctx,
                )
            if text.lower() not in _YES_NO:
                self.fail(f"{item!r}: write {key}=y or {key}=n.", param, ctx)
            options[key] = _YES_NO[text.lower()]
        return options


TEXT = TextType()
SIZE = SizeType()
MEMORY_SIZE = SizeType(maximum=1 << 46)  # the host's MAX_RESERVATION
DOWNLOAD_SIZE = SizeType(maximum=1 << 50)  # the registry client's max_size ceiling
DURATION = DurationType()
SERVER_DURATION = DurationType(maximum=1e6)  # serve's connection and body timeouts
AGE = AgeType()
DIR = DirType()
ENV = EnvType()
WHOLE_NUMBER = WholeNumberType()
COUNT = WholeNumberType(minimum=1)
PORT = WholeNumberType(minimum=1, maximum=65535)
FUEL = WholeNumberType(maximum=(1 << 64) - 1)
RUNS = WholeNumberType(minimum=1, maximum=100_000)  # compare's runs: each one is a process
WARMUP = WholeNumberType(maximum=100_000)
WASM_OPTION = WasmOptionType()


# --dir's help in every command that takes it, with what the command adds.
DIR_HELP = (
    "Give the guest a host folder: HOST (seen at the same path), HOST::GUEST (seen as GUEST), "
    "or HOST::GUEST::ro (read-only); repeatable."
)

FC = TypeVar("FC", bound=Callable[..., Any])


def variant_option(help: str) -> Callable[[FC], FC]:
    """``--variant``: the module.wasm.image/variant annotation (push and bundle)."""
    from .._oci.image import VARIANTS

    return click.option(
        "--variant", type=click.Choice(VARIANTS), default="compat", show_default=True, help=help
    )


def examples(*commands: str) -> str:
    """A command's epilog: the examples its help ends with (runnable from the
    checkout's folder, tests/test_cli.py runs those that need no registry)."""
    return "\b\nExamples:\n" + "\n".join(f"  {command}" for command in commands)
