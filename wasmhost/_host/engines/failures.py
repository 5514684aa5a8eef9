"""wasmtime's failures, read in one place: what ended or refused a guest, as facts.

wasmtime-py gives a core module's trap as a :class:`wasmtime.Trap`, with its
code and frames: those are read from the object. A component's call, and
every instantiation, fail with a plain :class:`wasmtime.WasmtimeError` whose
only content is its message: those messages are matched here and nowhere
else, each against one of the tables below, which ``tests/test_failures.py``
checks against what every supported wasmtime-py says.

What the facts mean to a user (which exception, which sentence) is decided
by :func:`instantiation_error` here and by ``run.conclude`` after a run.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import wasmtime

from ..._errors import Frame, LinkError, MemoryLimitExceeded, WasmhostError
from ..._numbers import format_size
from .memory import MAX_TABLES, table_elements

# What wasmtime writes, as the first line of its cause, for a trap that reaches
# wasmtime-py as a plain error (a component's call): the trap code of each.
TRAP_TEXTS: Final = {
    "wasm `unreachable` instruction executed": "unreachable",
    "out of bounds memory access": "memory_out_of_bounds",
    "call stack exhausted": "stack_overflow",
    "integer divide by zero": "integer_division_by_zero",
    "integer overflow": "integer_overflow",
    "all fuel consumed by WebAssembly": "out_of_fuel",
    "interrupt": "interrupt",
    "allocation size too large": "allocation_too_large",
}

# What an error raised while instantiating holds when the guest trapped (its
# start function or a component's start) rather than failed to link.
TRAP_MARK: Final = "wasm backtrace"

# What wasmtime's store limits say when they refuse an instantiation: the fact each is.
REFUSAL_TEXTS: Final = {
    "memory count too high": "memories",
    "table count too high": "tables",
    "exceeds table limits": "table_size",
}


class TrapFacts(NamedTuple):
    """What ended a guest that trapped: its trap code (``"unreachable"``, … or None
    when wasmtime gives none), the cause in one line, and its wasm frames."""

    code: str | None
    message: str
    frames: tuple[Frame, ...] = ()


def read_trap(exc: Exception) -> TrapFacts:
    """The facts of a trap (or of a plain wasmtime error that ended a call)."""
    if isinstance(exc, wasmtime.Trap):
        code = exc.trap_code
        frames = tuple(
            Frame(f.module_name, f.func_name, f.func_index, f.module_offset) for f in exc.frames
        )
        return TrapFacts(
            code.name.lower() if code is not None else None, first_line(exc.message), frames
        )
    message = first_line(str(exc))
    return TrapFacts(TRAP_TEXTS.get(message), message)


def trapped(exc: wasmtime.WasmtimeError) -> bool:
    """Whether a failed instantiation was a trap while starting, not a refusal."""
    return isinstance(exc, wasmtime.Trap) or TRAP_MARK in str(exc)


def refusal(text: str) -> str | None:
    """Which store limit refused an instantiation (``"memories"``, ``"tables"``,
    ``"table_size"``), if one did."""
    return next((fact for match, fact in REFUSAL_TEXTS.items() if match in text), None)


def instantiation_error(
    text: str, name: str, max_memory: int | None, refused_memory: bool
) -> WasmhostError:
    """What wasmtime's refusal to instantiate ``name`` (a core module or a component)
    means: a limit it is over at start, or a link error. ``refused_memory``: the
    run's memory watch refused a memory's minimum (see ``memory``)."""
    if refused_memory:
        return MemoryLimitExceeded(
            f"{name} needs more memory at start than its memory limit allows."
        )
    fact = refusal(text)
    if fact == "memories":
        return MemoryLimitExceeded(
            f"{name} has several memories; a memory limit bounds guests with one."
        )
    if fact == "tables":
        problem = f"{name} has more than {MAX_TABLES} tables, the most a run may have."
        # Under a memory cap, tables are part of what it bounds; without one,
        # the module is simply beyond what wasmhost runs.
        return (LinkError if max_memory is None else MemoryLimitExceeded)(problem)
    if fact == "table_size" and max_memory is not None:
        return MemoryLimitExceeded(
            f"{name} needs a larger table at start than its memory limit of "
            f"{format_size(max_memory)} allows ({table_elements(max_memory):,} elements)."
        )
    return LinkError(f"{name} cannot be instantiated: {last_line(text) or 'unknown error'}.")


# The numbering of a cause chain's lines, and what leads a trap's own line.
_NUMBERED = re.compile(r"^\d+:\s*")
_TRAP_PREFIX = "wasm trap: "


def first_line(text: str) -> str:
    """The cause in a wasmtime error message: it leads with its own backtrace, and its
    causes may be a numbered chain (``0: memory fault at ...``, ``1: wasm trap: out of
    bounds memory access``), where the trap's own line is the one that names it."""
    _, caused, cause = text.partition("Caused by:")
    lines = [
        _NUMBERED.sub("", line.strip()) for line in (cause if caused else text).strip().splitlines()
    ]
    for line in lines:
        if line.startswith(_TRAP_PREFIX):
            return line.removeprefix(_TRAP_PREFIX)
    for line in lines:
        if line and not line.startswith("error while executing"):
            return line
    return "trap"


def last_line(text: str) -> str:
    """The last line of a wasmtime error message: the innermost cause."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else ""
