"""Imports and exports with every value type: described from the module's bytes, never
read through wasmtime-py, whose C layer ends the process on a v128 or an anyref."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from conftest import HELLO, NBODY, wasmhost_cli, wasmhost_in_process
from hypothesis import given
from hypothesis import strategies as st

from wasmhost import ConfigError, Host, LinkError
from wasmhost._host.values.module import read_interface, wasm_imports

START = '(func (export "_start"))'

# A module per type that wasmtime-py cannot describe, and the signature wasmhost gives.
EXOTIC = {
    "v128 result": (
        '(func (export "f") (result v128) (v128.const i64x2 1 2))',
        "func () -> (v128)",
    ),
    "anyref": ('(func (export "f") (param anyref))', "func (anyref) -> ()"),
    "i31ref": ('(func (export "f") (param i31ref))', "func (i31ref) -> ()"),
    "exnref": ('(func (export "f") (param exnref))', "func (exnref) -> ()"),
    "typed reference": (
        '(type $t (func)) (func (export "f") (param (ref null $t)) (param (ref func)))',
        "func ((ref null 0), (ref func)) -> ()",
    ),
    "v128 global": (
        '(global (export "f") v128 (v128.const i64x2 1 2))',
        "global v128",
    ),
    "v128 import": ('(import "m" "f" (func (param v128)))', "func (v128) -> ()"),
}


def exotic(wat: Callable[[str], Path], case: str) -> Path:
    return wat(f"(module {EXOTIC[case][0]} {START})")


# What wasmhost does with it in a child process: a SIGABRT would kill pytest itself.
LOAD_AND_RUN = """
import sys
from wasmhost import Host
with Host() as host:
    module = host.load(sys.argv[1])
    print([(i.name, i.signature) for i in module.imports + module.exports])
    print(host.run(module, unknown_imports="trap").exit_code)
"""


@pytest.mark.parametrize("case", EXOTIC)
def test_a_module_with_any_value_type_loads_and_runs(wat: Callable[[str], Path], case: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN, exotic(wat, case)], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    described, exit_code = done.stdout.decode().splitlines()
    assert ("f", EXOTIC[case][1]) in eval(described)
    assert exit_code == "0"


@pytest.mark.parametrize("case", EXOTIC)
def test_the_cli_runs_and_inspects_a_module_with_any_value_type(
    wat: Callable[[str], Path], case: str
) -> None:
    module = exotic(wat, case)
    run = wasmhost_cli("run", "-W", "unknown-imports-trap=y", module)
    assert (run.returncode, run.stderr) == (0, b"")
    text = wasmhost_in_process("inspect", module)
    assert text.returncode == 0, text.stderr
    assert f"f: {EXOTIC[case][1]}" in text.stdout.decode()
    as_json = wasmhost_in_process("inspect", "--json", module)
    assert as_json.returncode == 0, as_json.stderr
    described = json.loads(as_json.stdout)
    types = {item["name"]: item["type"] for item in described["imports"] + described["exports"]}
    assert types["m.f" if "import" in case else "f"] == EXOTIC[case][1]


def test_invoking_a_v128_function_is_refused_with_one_line(wat: Callable[[str], Path]) -> None:
    module = exotic(wat, "v128 result")
    done = wasmhost_cli("run", "--invoke", "f", module)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"Error: {module}: f has the type func () -> (v128); wasmhost cannot call a "
        "function with v128 in its parameters or results."
    ]


def test_the_api_refuses_calls_python_cannot_make(host: Host, wat: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match="cannot call a function with v128"):
        host.call(exotic(wat, "v128 result"), "f")
    with pytest.raises(ConfigError, match="cannot call a function with anyref"):
        host.call(exotic(wat, "anyref"), "f")
    start = wat('(module (func (export "_start") (result v128) (v128.const i64x2 1 2)))')
    with pytest.raises(ConfigError, match=re.escape("_start has the type func () -> (v128)")):
        host.run(start)
    with pytest.raises(ConfigError, match=r"m\.f .* takes or returns v128"):
        host.run(exotic(wat, "v128 import"), imports={"m": {"f": lambda v: None}})
    with pytest.raises(LinkError, match=re.escape("imports m.f (func (v128) -> ())")):
        host.run(exotic(wat, "v128 import"))


def test_host_functions_get_their_types_from_the_module(
    host: Host, wat: Callable[[str], Path]
) -> None:
    module = wat(
        '(module (import "m" "f" (func $f (param i64 f32) (result f64)))'
        ' (func (export "g") (result f64) (call $f (i64.const -3) (f32.const 0.5))))'
    )
    result = host.call(module, "g", imports={"m": {"f": lambda a, b: a * b}})
    assert result.values == (-1.5,)


@pytest.mark.own_cache  # what the cache recorded of a path is under test
def test_a_module_named_by_path_is_described_without_reading_its_code(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wasmhost._host.engines.cache

    monkeypatch.setattr(wasmhost._host.engines.cache, "_RACY_NS", 0)
    module = tmp_path / "v.wasm"
    module.write_bytes(
        wasmtime.wat2wasm(f'(module {EXOTIC["v128 result"][0]} {START} (@custom "x" "y"))')
    )
    with Host() as host:
        first = host.load(module)
    with Host() as host:
        again = host.load(module)
        assert again._wasm is None  # known by its recorded key: not read whole
        assert again.exports == first.exports


# Each case: module fields, and the imports and exports it has, as (name, kind, type).
SHAPES = {
    "GC types in a recursion group": (
        "(rec (type $s (struct (field i8) (field (mut (ref null $s)))))"
        " (type $f (func (param (ref $s)) (result i32))))"
        ' (type $a (sub (array i16))) (func (export "f") (type $f) i32.const 0)',
        [("f", "func", "func ((ref 0)) -> (i32)")],
    ),
    "constant expressions": (
        '(type $s (struct (field i32))) (global (export "a") (ref null struct) (ref.null struct))'
        ' (global (export "b") i32 (i32.add (i32.const 1) (i32.const 2)))'
        ' (global (export "c") (mut i64) (i64.const -5)) (global (export "d") f32 (f32.const 1))'
        ' (global (export "e") f64 (f64.const 1))'
        ' (global (export "f") i31ref (ref.i31 (i32.const 1)))'
        ' (global (export "g") (ref $s) (struct.new $s (i32.const 1)))'
        ' (global (export "h") anyref (any.convert_extern (ref.null extern)))',
        [
            ("a", "global", "global structref"),
            ("b", "global", "global i32"),
            ("c", "global", "global i64"),
            ("d", "global", "global f32"),
            ("e", "global", "global f64"),
            ("f", "global", "global i31ref"),
            ("g", "global", "global (ref 0)"),
            ("h", "global", "global anyref"),
        ],
    ),
    "every kind imported and exported": (
        '(import "a" "tag" (tag (param f64))) (import "a" "g" (global (mut externref)))'
        ' (import "a" "t" (table 1 funcref)) (import "a" "m" (memory 1 2 shared))'
        ' (import "a" "f" (func (param i32)))'
        ' (type $t (func)) (table (export "t") 1 (ref $t) (ref.func $f)) (func $f)'
        ' (memory (export "m") i64 1 2) (tag (export "e") (param i32))'
        ' (export "g" (global 0)) (export "tag" (tag 0)) (export "f" (func 0))',
        [
            ("a.tag", "tag", "tag (f64) -> ()"),
            ("a.g", "global", "global externref"),
            ("a.t", "table", "table 1 funcref"),
            ("a.m", "memory", "memory"),
            ("a.f", "func", "func (i32) -> ()"),
            ("t", "table", "table 1 (ref 0)"),
            ("m", "memory", "memory"),
            ("e", "tag", "tag (i32) -> ()"),
            ("g", "global", "global externref"),
            ("tag", "tag", "tag (f64) -> ()"),
            ("f", "func", "func (i32) -> ()"),
        ],
    ),
}


@pytest.mark.parametrize("case", SHAPES)
def test_read_interface(case: str) -> None:
    fields, expected = SHAPES[case]
    imports, exports, _ = read_interface(wasmtime.wat2wasm(f"(module {fields})"))
    found = [(f"{i.module}.{i.name}", i.kind, i.signature) for i in imports]
    found += [(e.name, e.kind, e.signature) for e in exports]
    assert found == expected


def described_by_wasmtime(data: bytes) -> list[tuple[str, str]]:
    """What wasmtime-py says of a module whose types it knows."""

    def text(ty: object) -> str:
        if isinstance(ty, wasmtime.FuncType):
            params = ", ".join(str(p) for p in ty.params)
            return f"func ({params}) -> ({', '.join(str(r) for r in ty.results)})"
        if isinstance(ty, wasmtime.GlobalType):
            return f"global {ty.content}"
        if isinstance(ty, wasmtime.TableType):
            high = "" if ty.limits.max is None else f" {ty.limits.max}"
            return f"table {ty.limits.min}{high} {ty.element}"
        return "memory"

    compiled = wasmtime.Module(wasmtime.Engine(), data)
    said = [(i.name or "", text(i.type)) for i in compiled.imports]
    said += [(e.name, text(e.type)) for e in compiled.exports]
    # wasmtime-py calls externref "anyref" (the C API's old name): wasmhost says externref,
    # anyref being another type since the GC proposal.
    return [(name, ty.replace("anyref", "externref")) for name, ty in said]


@pytest.mark.parametrize("path", [HELLO, NBODY], ids=lambda p: p.name)
def test_signatures_read_from_bytes_match_wasmtimes(path: Path) -> None:
    data = path.read_bytes()
    imports, exports, _ = read_interface(data)
    ours = [(i.name, i.signature) for i in imports] + [(e.name, e.signature) for e in exports]
    assert ours == described_by_wasmtime(data)


def test_signatures_of_the_mvp_types_match_wasmtimes() -> None:
    data = wasmtime.wat2wasm(
        '(module (import "m" "f" (func (param i32 i64 f32 f64) (result funcref externref)))'
        ' (import "m" "g" (global (mut f64))) (import "m" "t" (table 1 externref))'
        ' (import "m" "mem" (memory 1)) (global (export "h") i64 (i64.const 1))'
        ' (func (export "f2") (param i32 i32) (result i32) (i32.const 0))'
        ' (table (export "t2") 1 2 funcref) (export "f" (func 0)))'
    )
    imports, exports, _ = read_interface(data)
    ours = [(i.name, i.signature) for i in imports] + [(e.name, e.signature) for e in exports]
    assert ours == described_by_wasmtime(data)


# What the reader may raise on bytes it cannot read: anything else would escape as a crash.
EXPECTED = (IndexError, ValueError, UnicodeDecodeError)
SEEDS = [
    HELLO.read_bytes()[:4096],
    wasmtime.wat2wasm(f"(module {SHAPES['every kind imported and exported'][0]})"),
    wasmtime.wat2wasm(f"(module {SHAPES['GC types in a recursion group'][0]})"),
    wasmtime.wat2wasm(f"(module {SHAPES['constant expressions'][0]})"),
]


@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(8, 4095), st.integers(0, 255)), max_size=8),
    cut=st.integers(8, 4096),
)
def test_the_reader_fails_only_as_it_says_on_damaged_modules(
    seed: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(seed[:cut])
    for at, value in edits:
        if at < len(data):
            data[at] = value
    with contextlib.suppress(*EXPECTED):
        read_interface(bytes(data))
    assert wasm_imports(bytes(data)) is None or isinstance(wasm_imports(bytes(data)), tuple)


@given(body=st.binary(max_size=512))
def test_the_reader_fails_only_as_it_says_on_any_bytes(body: bytes) -> None:
    with contextlib.suppress(*EXPECTED):
        read_interface(b"\0asm\x01\0\0\0" + body)


def test_the_reader_refuses_a_chain_of_shared_prefixes() -> None:
    """A heap type of 5,000 'shared' prefixes (not valid, and not read as one)."""
    body = b"\x01\x60\x01\x63" + b"\x65" * 5000 + b"\x70\x00"
    size = bytes([len(body) & 0x7F | 0x80, len(body) >> 7])
    assert wasm_imports(b"\0asm\x01\0\0\0\x01" + size + body) == ()


def test_such_a_module_runs_from_an_oci_layout(wat: Callable[[str], Path], tmp_path: Path) -> None:
    layout = f"{tmp_path / 'layout'}:v1"
    assert wasmhost_cli("push", "--oci-layout", exotic(wat, "v128 result"), layout).returncode == 0
    run = wasmhost_cli("run", "--oci-layout", layout)
    assert (run.returncode, run.stderr) == (0, b"")
    invoke = wasmhost_cli("run", "--oci-layout", "--invoke", "f", layout)
    assert invoke.returncode == 1
    assert b"wasmhost cannot call a function with v128" in invoke.stderr


@pytest.mark.parametrize(
    "initialize",
    [
        '(func (export "_initialize") (param i32))',
        '(func (export "_initialize") (result v128) (v128.const i64x2 0 0))',
    ],
    ids=["param", "v128"],
)
def test_a_reactor_initializer_that_is_not_nullary_is_refused(initialize: str) -> None:
    # It was called through wasmtime-py, whose messages named its own internals.
    module = bytes(
        wasmtime.wat2wasm(f'(module {initialize} (func (export "f") (result i32) (i32.const 7)))')
    )
    with pytest.raises(ConfigError, match="_initialize"):
        Host(cache_dir=False).call(module, "f")
    ok = bytes(
        wasmtime.wat2wasm(
            '(module (func (export "_initialize")) (func (export "f") (result i32) (i32.const 7)))'
        )
    )
    assert Host(cache_dir=False).call(ok, "f").values == (7,)
