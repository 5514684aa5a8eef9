"""Python functions as guest imports beyond WASI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wasmhost import ConfigError, GuestMemory, Host, LinkError, host_function

CALLS_ADD = """
(module
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (func (export "run") (param i32) (result i32) (call $add (local.get 0) (i32.const 100))))
"""

LOGS = """
(module
  (import "env" "log" (func $log (param i32 i32)))
  (import "env" "fill" (func $fill (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 8) "hello from the guest")
  (func (export "_start")
    (call $log (i32.const 8) (i32.const 20))
    (call $log (i32.const 64) (call $fill (i32.const 64)))))
"""


def test_a_plain_function_is_typed_from_the_import(host: Host, wat: Callable[[str], Path]) -> None:
    result = host.run(
        wat(CALLS_ADD), [5], invoke="run", imports={"env": {"add": lambda a, b: a + b}}
    )
    assert result.values == (105,)


def test_a_function_with_memory_access(host: Host, wat: Callable[[str], Path]) -> None:
    lines: list[bytes] = []

    @host_function(memory=True)
    def log(memory: GuestMemory, ptr: int, length: int) -> None:
        lines.append(memory.read(ptr, length))

    @host_function(memory=True)
    def fill(memory: GuestMemory, ptr: int) -> int:
        memory.write(ptr, b"written by the host")
        return len(b"written by the host")

    host.run(wat(LOGS), imports={"env": {"log": log, "fill": fill}})
    assert lines == [b"hello from the guest", b"written by the host"]


def test_guest_memory_access_is_bounds_checked(host: Host, wat: Callable[[str], Path]) -> None:
    @host_function(memory=True)
    def log(memory: GuestMemory, ptr: int, length: int) -> None:
        memory.read(65530, 100)

    with pytest.raises(IndexError, match="outside its 65536 bytes"):
        host.run(wat(LOGS), imports={"env": {"log": log, "fill": lambda p: 0}})


def test_an_import_nobody_provides_is_named(host: Host, wat: Callable[[str], Path]) -> None:
    with pytest.raises(
        LinkError,
        match=r"imports env\.add \(func \(i32, i32\) -> \(i32\)\), which nothing provides",
    ):
        host.run(wat(CALLS_ADD), [1], invoke="run")
    with pytest.raises(LinkError, match=r"env\.add"):
        host.run(wat(CALLS_ADD), [1], invoke="run", imports={"env": {"other": print}})


def test_non_function_imports_are_refused(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (import "env" "memory" (memory 1)) (func (export "_start")))')
    with pytest.raises(LinkError, match="which nothing provides"):
        host.run(module)
    with pytest.raises(LinkError, match="only functions"):
        host.run(module, imports={"env": {"memory": lambda: None}})


def test_an_exception_in_a_host_function_reaches_the_caller(
    host: Host, wat: Callable[[str], Path]
) -> None:
    def add(a: int, b: int) -> int:
        raise KeyError("no such key")

    with pytest.raises(KeyError, match="no such key"):
        host.run(wat(CALLS_ADD), [1], invoke="run", imports={"env": {"add": add}})


@pytest.mark.parametrize(
    "returned",
    ["x", None, 1.5, 1 << 40, (1, 2), True],
    ids=["str", "none", "float", "big", "pair", "bool"],
)
def test_a_host_function_returning_the_wrong_type(
    host: Host, wat: Callable[[str], Path], returned: object
) -> None:
    with pytest.raises(ConfigError, match=r"host function env\.add returned .* i32"):
        host.run(wat(CALLS_ADD), [1], invoke="run", imports={"env": {"add": lambda a, b: returned}})


def test_imports_and_wasi_together(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat("""
      (module
        (import "env" "answer" (func $answer (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start") (call $exit (call $answer))))
    """)
    assert host.run(module, imports={"env": {"answer": lambda: 42}}).exit_code == 42


def test_an_exception_during_start_is_raised_once(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat("""
      (module
        (import "env" "boom" (func $boom))
        (memory (export "memory") 1)
        (func (export "_start") (call $boom)))
    """)

    def boom() -> None:
        raise LookupError("from the host")

    with pytest.raises(LookupError, match="from the host"):
        host.run(module, imports={"env": {"boom": boom}})
    # Nothing of it is left over for the next run, through either call path.
    assert host.run(wat(CALLS_ADD), [1], invoke="run", imports={"env": {"add": max}}).values == (
        100,
    )
    assert host.run(module, imports={"env": {"boom": lambda: None}}).exit_code == 0
