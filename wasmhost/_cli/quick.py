"""``wasmhost run FILE [FLAGS]`` read without click: what a run needs to start is
wasmtime, not a command-line toolkit (click costs ~20 ms a process, more than a
hello-world guest takes to run).

:func:`read_run` reads the flags of a run of a local file when each is one it
knows, written as click takes it, with a value the shared readers (``values``)
accept; it gives up (None) on anything else: help, ``--debug``, a registry
reference or layout, a flag it does not know, a value that is wrong. Then
click reads the command line from the start, and reports any mistake as it
always does. tests/test_cli_quick.py checks that both read the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import values
from .debug import debugging

# Flags of `run` read here: (click's parameter name, reader of the value; None for
# a flag without one, True when given), and whether it may be repeated.
_MAX_FILES = 1 << 20
_FUEL = (1 << 64) - 1
_MEMORY = 1 << 46  # the host's MAX_RESERVATION, as params.MEMORY_SIZE
_Reader = Callable[[str], Any] | None
_FLAGS: dict[str, tuple[str, _Reader, bool]] = {
    "--dir": ("dirs", values.directory, True),
    "--env": ("envs", values.env, True),
    "-W": ("wasm_options", values.wasm_options, True),
    "--invoke": ("invoke", str, False),
    "--fuel": ("fuel", lambda v: values.whole_number(v, 0, _FUEL), False),
    "--timeout": ("timeout", lambda v: values.duration(v, 1e9, ""), False),
    "--max-memory": ("max_memory", lambda v: values.size(v, _MEMORY), False),
    "--max-files": ("max_files", lambda v: values.whole_number(v, 1, _MAX_FILES), False),
    "--cache-dir": ("cache_dir", lambda v: Path(values.folder(v)), False),
    "--no-symlinks": ("no_symlinks", None, False),
    "--no-cache": ("no_cache", None, False),
}


def read_run(args: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments of ``launch.run_module`` for ``args`` (``sys.argv[1:]``),
    or None when click is to read them."""
    if not args or args[0] != "run" or debugging():
        return None
    read: dict[str, Any] = {}
    rest = list(args[1:])
    while rest:
        token = rest.pop(0)
        if token == "--":
            break
        if not token.startswith("-") or token == "-":
            rest.insert(0, token)
            break
        flag, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        known = _FLAGS.get(flag)
        if known is None:
            return None
        name, reader, repeated = known
        if reader is None:
            if eq:
                return None  # click refuses a value for a flag
            read[name] = True
            continue
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        try:
            converted = reader(value)
        except ValueError:
            return None
        if repeated:
            read[name] = (*read.get(name, ()), converted)
        else:
            read[name] = converted  # the last one given, as click takes it
    if not rest or not os.path.exists(rest[0]):
        return None  # no MODULE, or not a local file: a reference, a mistake
    return {**read, "module": rest[0], "guest_args": tuple(rest[1:])}
