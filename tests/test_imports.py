"""Python functions as guest imports beyond WASI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from conftest import wasmhost_cli

import wasmhost._host.host
from wasmhost import (
    ConfigError,
    GuestMemory,
    Host,
    LinkError,
    ModuleError,
    Trap,
    host_function,
)
from wasmhost._host.values.functions import WASI_FUNCTIONS

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
    result = host.call(wat(CALLS_ADD), "run", 5, imports={"env": {"add": lambda a, b: a + b}})
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
        host.call(wat(CALLS_ADD), "run", 1)
    with pytest.raises(LinkError, match=r"env\.add"):
        host.call(wat(CALLS_ADD), "run", 1, imports={"env": {"other": print}})


def test_non_function_imports_are_refused(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (import "env" "memory" (memory 1)) (func (export "_start")))')
    with pytest.raises(LinkError, match="only functions to guests, so it cannot run"):
        host.run(module)
    with pytest.raises(LinkError, match="only functions"):
        host.run(module, imports={"env": {"memory": lambda: None}})
    with pytest.raises(LinkError, match="only functions"):  # trapping covers functions only
        host.run(module, unknown_imports="trap")


def test_an_exception_in_a_host_function_reaches_the_caller(
    host: Host, wat: Callable[[str], Path]
) -> None:
    def add(a: int, b: int) -> int:
        raise KeyError("no such key")

    with pytest.raises(KeyError, match="no such key"):
        host.call(wat(CALLS_ADD), "run", 1, imports={"env": {"add": add}})


@pytest.mark.parametrize(
    "returned",
    ["x", None, 1.5, 1 << 40, (1, 2), True],
    ids=["str", "none", "float", "big", "pair", "bool"],
)
def test_a_host_function_returning_the_wrong_type(
    host: Host, wat: Callable[[str], Path], returned: object
) -> None:
    with pytest.raises(ConfigError, match=r"host function env\.add returned .* i32"):
        host.call(wat(CALLS_ADD), "run", 1, imports={"env": {"add": lambda a, b: returned}})


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
    assert host.call(wat(CALLS_ADD), "run", 1, imports={"env": {"add": max}}).values == (100,)
    assert host.run(module, imports={"env": {"boom": lambda: None}}).exit_code == 0


MISSING = """
(module
  (import "env" "missing" (func $missing (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7)))
  (func (export "calls") (drop (call $missing (i32.const 1)))))
"""


def test_a_missing_import_is_refused_before_compiling(
    host: Host, wat: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big module would take a minute to compile only to fail at linking."""

    def refuse(*args: object) -> None:
        raise AssertionError("compiled a module whose imports cannot be satisfied")

    monkeypatch.setattr(wasmhost._host.host, "compile_wasm", refuse)
    with pytest.raises(
        LinkError, match=r"imports env\.missing \(func \(i32\) -> \(i32\)\)"
    ) as info:
        host.run(wat(MISSING))
    assert info.value.fix == "unknown-imports"
    assert "unknown_imports='trap'" in str(info.value)


def test_the_cli_refuses_a_missing_import_before_compiling(
    wat: Callable[[str], Path], tmp_path: Path
) -> None:
    """Nothing was compiled: the cache stays empty."""
    cache = tmp_path / "cache"
    done = wasmhost_cli("run", wat(MISSING), env=dict(os.environ, WASMHOST_CACHE_DIR=str(cache)))
    assert done.returncode == 1
    assert b"which nothing provides" in done.stderr
    assert not list(cache.rglob("*.cwasm"))


def test_load_checks_imports_when_asked(
    host: Host, wat: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = wat(MISSING)
    monkeypatch.setattr(wasmhost._host.host, "compile_wasm", lambda *a: pytest.fail("compiled"))
    with pytest.raises(LinkError, match="which nothing provides"):
        host.load(module, unknown_imports="error")
    monkeypatch.undo()
    assert host.load(module).name == str(module)  # imports a later run may provide
    assert host.load(module, unknown_imports="trap").name == str(module)


def test_unknown_imports_can_trap_instead(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat(MISSING)
    assert host.run(module, unknown_imports="trap").exit_code == 7  # never called: runs
    with pytest.raises(Trap, match="unknown import"):
        host.call(module, "calls", unknown_imports="trap")
    with pytest.raises(ConfigError, match="unknown_imports must be one of"):
        host.run(module, unknown_imports="ignore")  # type: ignore[arg-type]


def test_the_cli_takes_wasmtimes_unknown_imports_spelling(wat: Callable[[str], Path]) -> None:
    module = wat(MISSING)
    refused = wasmhost_cli("run", module)
    assert refused.returncode == 1
    assert b"pass -W unknown-imports-trap=y to make such imports trap" in refused.stderr
    assert b"imports=" not in refused.stderr  # the CLI speaks CLI
    assert wasmhost_cli("run", "-W", "unknown-imports-trap=y", module).returncode == 7
    trapped = wasmhost_cli("run", "-W", "unknown-imports-trap", "--invoke", "calls", module)
    assert trapped.returncode == 134
    assert b"unknown import" in trapped.stderr
    assert wasmhost_cli("run", "-W", "unknown-imports-trap=n", module).returncode == 1
    last = wasmhost_cli(
        "run", "-W", "unknown-imports-trap=y", "-W", "unknown-imports-trap=n", module
    )
    assert last.returncode == 1  # the last -W wins, as in wasmtime
    wrong = wasmhost_cli("run", "-W", "max-wasm-stack=1", module)
    assert wrong.returncode == 2
    assert b"not a -W option wasmhost knows" in wrong.stderr


ARGC = """
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "run") (drop (call $sizes (i32.const 0) (i32.const 4)))
    (call $exit (i32.load (i32.const 0))))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
"""


def test_the_wasi_names_are_wasmtimes(host: Host, wat: Callable[[str], Path]) -> None:
    """WASI_FUNCTIONS is what wasmtime's linker defines; a name it lacks is not WASI."""
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    for name in WASI_FUNCTIONS:
        assert isinstance(linker.get(store, "wasi_snapshot_preview1", name), wasmtime.Func)
    bogus = wat(
        '(module (import "wasi_snapshot_preview1" "bogus" (func)) (func (export "_start")))'
    )
    with pytest.raises(LinkError, match=r"wasi_snapshot_preview1\.bogus .*which nothing provides"):
        host.run(bogus)
    assert host.run(bogus, unknown_imports="trap").exit_code == 0


def test_a_component_or_unknown_version_is_named_before_its_imports(
    host: Host, tmp_path: Path
) -> None:
    component = tmp_path / "c.wasm"
    component.write_bytes(b"\0asm\x0d\x00\x01\x00" + bytes(16))
    with pytest.raises(ModuleError, match="is not a valid WebAssembly component") as info:
        host.run(component)
    assert not isinstance(info.value, LinkError)
    future = tmp_path / "v2.wasm"
    future.write_bytes(b"\0asm\x02\x00\x00\x00" + bytes(16))
    with pytest.raises(ModuleError, match="unknown WebAssembly version"):
        host.run(future)


def test_invoke_passes_guest_args_as_argv_too(host: Host, wat: Callable[[str], Path]) -> None:
    """As the wasmtime CLI does: `--invoke run python.wasm -c CODE` reads its argv."""
    module = wat(ARGC)
    assert host.call(module, "run", "-c", "print(1)").exit_code == 3
    assert host.call(module, "add", "2", "3").values == (5,)
    done = wasmhost_cli("run", "--invoke", "run", module, "-c", "x", "y")
    assert done.returncode == 4, done.stderr
