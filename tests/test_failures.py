"""wasmtime's failures, read in one place (wasmhost/_host/engines/failures.py): every text it
matches is checked here against what this wasmtime-py really says (nox -s wasmtime
runs this file on each supported release), and each becomes the right exception."""

from __future__ import annotations

import pytest
import wasmtime
import wasmtime.component as wc

from wasmhost import FuelExhausted, Host, LinkError, MemoryLimitExceeded, Trap
from wasmhost._host.engines import failures

# A component whose `run` export's core function has BODY (and a memory, and a
# function $rec calling itself): a trap inside a component's call reaches
# wasmtime-py as a plain WasmtimeError, whose text is all there is to read.
COMPONENT = """
(component
  (core module $m
    (memory 1)
    (type $bytes (array (mut i8)))
    (func $rec (call $rec))
    (func (export "run") (result i32) {body} i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $e (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $e)))
"""

BODIES = {
    "unreachable": "unreachable",
    "memory_out_of_bounds": "(drop (i32.load (i32.const 0x7fff0000)))",
    "stack_overflow": "(call $rec)",
    "integer_division_by_zero": "(drop (i32.div_u (i32.const 1) (i32.const 0)))",
    "integer_overflow": "(drop (i32.div_s (i32.const 0x80000000) (i32.const -1)))",
    "out_of_fuel": "(loop br 0)",
    "interrupt": "(loop br 0)",
    "allocation_too_large": "(drop (array.new_default $bytes (i32.const -1)))",
}


def test_every_trap_text_is_tested() -> None:
    assert sorted(BODIES) == sorted(failures.TRAP_TEXTS.values())


def component_error(code: str) -> wasmtime.WasmtimeError:
    """What wasmtime-py raises for a component's call that traps with ``code``:
    called through wasmtime-py's public API, not wasmhost's."""
    config = wasmtime.Config()
    config.consume_fuel = code == "out_of_fuel"
    config.epoch_interruption = code == "interrupt"
    config.wasm_gc = True  # (the array of allocation_too_large)
    engine = wasmtime.Engine(config)
    component = wc.Component(engine, wasmtime.wat2wasm(COMPONENT.format(body=BODIES[code])))
    store = wasmtime.Store(engine)
    if code == "out_of_fuel":
        store.set_fuel(10_000)
    if code == "interrupt":
        store.set_epoch_deadline(1)
        engine.increment_epoch()
    linker = wc.Linker(engine)
    instance = linker.instantiate(store, component)
    interface = component.get_export_index("wasi:cli/run@0.2.0")
    func = instance.get_func(store, component.get_export_index("run", interface))
    with pytest.raises(wasmtime.WasmtimeError) as info:
        func(store)
    return info.value


@pytest.mark.parametrize("code", sorted(BODIES))
def test_each_trap_text_is_what_wasmtime_says(code: str) -> None:
    exc = component_error(code)
    assert not isinstance(exc, wasmtime.Trap)  # (else its code would be read instead)
    assert failures.read_trap(exc).code == code


@pytest.mark.parametrize("code", ["unreachable", "integer_overflow", "stack_overflow"])
def test_a_components_trap_is_named_by_its_code(host: Host, code: str) -> None:
    with pytest.raises(Trap) as info:
        host.run(bytes(wasmtime.wat2wasm(COMPONENT.format(body=BODIES[code]))))
    assert info.value.trap_code == code


def test_a_component_out_of_fuel_is_fuel_exhausted(host: Host) -> None:
    looping = bytes(wasmtime.wat2wasm(COMPONENT.format(body=BODIES["out_of_fuel"])))
    with pytest.raises(FuelExhausted):
        host.run(looping, fuel=100_000)


def test_a_core_trap_is_read_from_the_trap_object(host: Host) -> None:
    module = wasmtime.wat2wasm('(module (func (export "_start") unreachable))')
    with pytest.raises(Trap) as info:
        host.run(bytes(module))
    assert info.value.trap_code == "unreachable"
    assert info.value.frames
    assert info.value.frames[0].function_index == 0


def test_an_unknown_text_has_no_code() -> None:
    facts = failures.read_trap(wasmtime.WasmtimeError("something new\n"))
    assert (facts.code, facts.message) == (None, "something new")


def refusal_of(wat: str, **limits: int) -> str:
    """The text of wasmtime's refusal to instantiate ``wat`` under store ``limits``."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_limits(**limits)
    linker = wasmtime.Linker(engine)
    with pytest.raises(wasmtime.WasmtimeError) as info:
        linker.instantiate(store, wasmtime.Module(engine, wasmtime.wat2wasm(wat)))
    return str(info.value)


REFUSED = {
    "memories": ("(module (memory 1) (memory 1))", {"memories": 1}),
    "tables": ("(module (table 1 funcref) (table 1 funcref))", {"tables": 1}),
    "table_size": ("(module (table 100 funcref))", {"table_elements": 10}),
}


def test_every_refusal_text_is_tested() -> None:
    assert sorted(REFUSED) == sorted(failures.REFUSAL_TEXTS.values())


@pytest.mark.parametrize("fact", sorted(REFUSED))
def test_each_refusal_text_is_what_wasmtime_says(fact: str) -> None:
    wat, limits = REFUSED[fact]
    assert failures.refusal(refusal_of(wat, **limits)) == fact


def test_refusals_become_limits_or_link_errors(host: Host) -> None:
    two = bytes(wasmtime.wat2wasm('(module (memory 1) (memory 1) (func (export "_start")))'))
    with pytest.raises(MemoryLimitExceeded, match="several memories"):
        host.run(two, max_memory=16 << 20)
    tables = "".join(" (table 1 funcref)" for _ in range(17))
    many = bytes(wasmtime.wat2wasm(f'(module{tables} (func (export "_start")))'))
    with pytest.raises(LinkError, match="more than 16 tables"):
        host.run(many)
    with pytest.raises(MemoryLimitExceeded, match="more than 16 tables"):
        host.run(many, max_memory=16 << 20)
    big = bytes(wasmtime.wat2wasm('(module (table 1000000 funcref) (func (export "_start")))'))
    with pytest.raises(MemoryLimitExceeded, match="larger table at start"):
        host.run(big, max_memory=1 << 20)


def test_the_memory_watch_records_a_refusal_at_start_as_a_fact(host: Host) -> None:
    hungry = bytes(wasmtime.wat2wasm('(module (memory 64) (func (export "_start")))'))
    with pytest.raises(MemoryLimitExceeded, match="needs more memory at start"):
        host.run(hungry, max_memory=1 << 20)


def test_a_trap_while_starting_is_not_a_refusal() -> None:
    assert failures.trapped(wasmtime.Trap("boom"))
    assert not failures.trapped(wasmtime.WasmtimeError("unknown import: `a::b`"))
