"""``wasmhost run FILE`` starts without click (wasmhost/_cli/quick.py reads its flags,
click reads them only when quick gives up): both must read every command line the
same, quick must give up on whatever click would refuse, and the process must load
none of what a run does not need and still flush what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmhost._cli.commands import cli
from wasmhost._cli.quick import read_run

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
HELLO = str(ARTIFACTS / "hello-world.wasm")
CALC = str(ARTIFACTS / "calc.wasm")


def click_reads(args: list[str]) -> dict[str, Any] | None:
    """What click's ``run`` makes of ``args`` (after ``run``): its parameters, or None
    when click refuses them (a usage error)."""
    group = click.Context(cli, info_name="wasmhost")
    command = cli.get_command(group, "run")
    assert command is not None
    try:
        with command.make_context("run", list(args), parent=group) as ctx:
            return dict(ctx.params)
    except click.exceptions.Exit:
        return None  # --help
    except click.UsageError:
        return None


def assert_same_reading(args: list[str]) -> None:
    quick = read_run(["run", *args])
    clicked = click_reads(args)
    if quick is None:
        return  # click reads it: nothing to compare
    assert clicked is not None, f"quick took {args}, which click refuses"
    for name, value in clicked.items():
        if name in ("debug",):
            continue
        ours = quick.get(name)
        if name not in quick:  # not given: click's default
            assert value in (None, False, ()), (args, name, value)
        else:
            assert ours == value, (args, name, ours, value)


@pytest.mark.parametrize(
    "args",
    [
        [HELLO],
        [HELLO, "a", "--timeout", "1"],  # after MODULE: the guest's
        ["--timeout", "2", "--max-memory", "64MiB", HELLO],
        ["--timeout=500ms", "--fuel", "1_000", HELLO],
        ["--dir", ".", "--dir", "/tmp::/data::ro", "--env", "A=1", "--env", "HOME", HELLO],
        ["-W", "unknown-imports-trap=y", "-W", "unknown-imports-trap=n", HELLO],
        ["--invoke", "add", CALC, "1", "2"],
        ["--max-files", "3", "--no-symlinks", "--no-cache", "--cache-dir", "/tmp/x", HELLO],
        ["--timeout", "1", "--timeout", "2", HELLO],  # the last one
        ["--", HELLO, "--", "x"],
        ["--env", "-X", HELLO],  # a value may start with '-'
        ["--timeout", "0", HELLO],
        ["--timeout", "x", HELLO],
        ["--max-memory", "70TiB", HELLO],
        ["--dir", "a:b", HELLO],
        ["--no-cache=1", HELLO],
        ["--help"],
        ["--debug", HELLO],
        ["--plain-http", HELLO],
        ["-Wunknown-imports-trap=y", HELLO],
        ["--timeout"],
        [],
        ["nope.wasm"],
        ["localhost:5000/x:v1"],
        ["--frobnicate", HELLO],
    ],
)
def test_quick_and_click_read_a_run_alike(args: list[str]) -> None:
    assert_same_reading(args)


def test_quick_reads_the_common_runs_itself() -> None:
    """The point of it: the usual runs of a file never load click."""
    for args in (
        [HELLO],
        ["--timeout", "2", "--max-memory", "64MiB", HELLO, "x"],
        ["--dir", ".::/w::ro", "--env", "A=1", "-W", "unknown-imports-trap=y", HELLO],
        ["--invoke", "add", CALC, "1", "2"],
    ):
        assert read_run(["run", *args]) is not None, args
    for args in (["--help"], ["--debug", HELLO], ["--timeout", "x", HELLO], ["nope.wasm"]):
        assert read_run(["run", *args]) is None, args


_VALUES = st.sampled_from(
    [
        "1",
        "0",
        "-1",
        "2.5",
        "500ms",
        "64MiB",
        "x",
        "",
        " ",
        "1_000",
        "0x10",
        "70TiB",
        "A=1",
        "A",
        "=1",
        ".",
        "/tmp::/d",
        "/tmp::/d::ro",
        "a:b",
        "unknown-imports-trap=y",
        "unknown-imports-trap=maybe",
        "--timeout",
        "-",
        "--",
        HELLO,
    ]
)
_FLAGS = st.sampled_from(
    [
        "--dir",
        "--env",
        "-W",
        "--invoke",
        "--fuel",
        "--timeout",
        "--max-memory",
        "--max-files",
        "--cache-dir",
        "--no-symlinks",
        "--no-cache",
        "--offline",
        "--debug",
        "--plain-http",
        "-h",
        "--max-size",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FLAGS, _VALUES, st.booleans()), max_size=5), st.booleans())
def test_any_mix_of_flags_is_read_alike_or_left_to_click(
    pairs: list[tuple[str, str, bool]], with_module: bool
) -> None:
    args: list[str] = []
    for flag, value, joined in pairs:
        args += [f"{flag}={value}"] if joined and flag.startswith("--") else [flag, value]
    if with_module:
        args.append(HELLO)
    assert_same_reading(args)


@pytest.mark.parametrize("module", [HELLO, str(ARTIFACTS / "hello-world.component.wasm")])
def test_a_quick_run_loads_neither_click_nor_logging_nor_inspect(module: str) -> None:
    """A run of a file pays for wasmtime and the host, and ends without the
    interpreter's teardown (os._exit, once stdout is flushed). A component compiled
    and described before loads no wasmtime.component either (see engines.components)."""
    code = (
        "import os, sys\n"
        f"sys.argv = ['wasmhost', 'run', {module!r}]\n"
        "real = os._exit\n"
        "def ending(status):\n"
        "    heavy = ('click', 'logging', 'inspect', 'dataclasses', 'httpx', 'wasmhost._oci',\n"
        "             'wasmtime.component')\n"
        "    sys.stderr.write(repr(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
        "    sys.stderr.flush()\n"
        "    real(status)\n"
        "os._exit = ending\n"
        "from wasmhost._cli import main\n"
        "main()\n"
    )
    for _ in range(2):  # (the first run of a component describes it, for the cache)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert (done.returncode, done.stdout) == (0, "Hello, World!\n"), done.stderr
    assert done.stderr == "[]"


def test_a_quick_run_flushes_what_it_printed_and_keeps_the_guests_status(
    tmp_path: Path,
) -> None:
    """An invoked function's result goes through Python's buffered stdout: os._exit
    must not lose it. A trap still exits 134 with its message."""
    env = {**os.environ, "WASMHOST_CACHE_DIR": str(tmp_path / "cache")}
    wasmhost = [sys.executable, "-m", "wasmhost"]
    done = subprocess.run(
        [*wasmhost, "run", "--invoke", "add", CALC, "40", "2"], capture_output=True, env=env
    )
    assert (done.returncode, done.stdout) == (0, b"42\n"), done.stderr
    trapped = subprocess.run([*wasmhost, "run", "--fuel", "1", HELLO], capture_output=True, env=env)
    assert trapped.returncode == 134
    assert b"fuel" in trapped.stderr
    # A mistake found by quick's fallback, click: as always, exit 2 with its hint.
    wrong = subprocess.run([*wasmhost, "run", "--timeout", "x", HELLO], capture_output=True)
    assert wrong.returncode == 2
    assert wrong.stderr.endswith(b"(see 'wasmhost run --help')\n"), wrong.stderr
