"""click parameter types for the flags wasmhost shares with the wasmtime CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import values

if TYPE_CHECKING:
    from .._host.running.run import Dir


def _read(kind: click.ParamType, reader: Callable[[], Any], param: Any, ctx: Any) -> Any:
    """``reader()``, its ValueError a usage error about ``param``."""
    try:
        return reader()
    except ValueError as exc:
        kind.fail(str(exc), param, ctx)


class SizeType(click.ParamType):
    name = "SIZE"

    def __init__(self, maximum: int = 1 << 40) -> None:
        self.maximum = maximum  # the library's own ceiling, refused here as a usage error

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        return int(_read(self, lambda: values.size(str(value), self.maximum), param, ctx))


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
        read = lambda: values.duration(str(value), self.maximum, self.examples)  # noqa: E731
        return float(_read(self, read, param, ctx))


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
        found: tuple[str, Dir] = _read(self, lambda: values.directory(str(value)), param, ctx)
        return found


class TextType(click.ParamType):
    """Free text that wasmhost hands on: valid UTF-8 (``values.text``)."""

    name = "TEXT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(_read(self, lambda: values.text(str(value)), param, ctx))


class EnvType(click.ParamType):
    """``NAME=VALUE``, or ``NAME`` to pass this process's value on."""

    name = "NAME[=VALUE]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str | None]:
        if isinstance(value, tuple):
            return value
        found: tuple[str, str | None] = _read(self, lambda: values.env(str(value)), param, ctx)
        return found


class WholeNumberType(click.ParamType):
    name = "N"

    def __init__(self, minimum: int = 0, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        read = lambda: values.whole_number(str(value), self.minimum, self.maximum)  # noqa: E731
        return int(_read(self, read, param, ctx))


class FolderPathType(click.Path):
    """A folder's path, never empty (``values.folder``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            _read(self, lambda: values.folder(value), param, ctx)
        return super().convert(value, param, ctx)


class WasmOptionType(click.ParamType):
    """``-W KEY[=VALUE][,KEY[=VALUE]...]``, as the wasmtime CLI spells its wasm options;
    wasmhost knows ``unknown-imports-trap``."""

    name = "KEY[=VALUE]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, bool]:
        if isinstance(value, dict):
            return value
        found: dict[str, bool] = _read(self, lambda: values.wasm_options(str(value)), param, ctx)
        return found


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
