"""The kinds of guest a run calls, as strategies: a core module, or a component.

A :class:`Kind` knows what its guests cannot be given (checked before a run
starts), which argv they see, how many pool slots a run takes, and how one is
linked, instantiated and called in a store: it returns what the call gave as
a :class:`Called`, or raises what wasmtime raised for the run to read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import wasmtime

from ..._errors import ConfigError, LinkError
from ..engines.capi import call_nullary, export_func
from ..engines.engine import COMPONENT_WEIGHT, EngineSlot
from ..engines.watchdog import current
from ..result import CALLED, Called
from ..values.functions import Failure, Imports, check_imports, define
from ..values.module import Module, describe, func_types, uncallable

if TYPE_CHECKING:  # (Protocols cost start-up time to make, and are only for the checker)
    from typing import Protocol

    from ..engines.memory import MemoryWatch

    class Running(Protocol):
        """What a kind is given of the run it calls in (see ``run.RunScope``)."""

        failure: Failure  # what a host function raised, to raise again
        watch: MemoryWatch | None

        def started(self) -> None:
            """The guest is instantiated (for ``RunResult.instantiate_time``)."""

    class Kind(Protocol):
        """How a guest of one kind is described, prepared, checked, given argv, and called."""

        weight: int  # pool slots a run takes (see engine)
        one_memory: bool  # whether a memory cap bounds it as one memory

        def describe(self, code: Code, compiled: Any, slot: EngineSlot) -> Module:
            """The :class:`Module` for ``code`` (compiled for ``slot``)."""

        def prepare(self, compiled: Any, slot: EngineSlot) -> Any:
            """What runs of the compiled code find once: its ``Guest.pre``."""

        def check(self, module: Module, options: Mapping[str, Any]) -> None:
            """Refuse what this kind of guest cannot be given, before it runs."""

        def argv(self, guest: Guest) -> Sequence[object]:
            """What the guest sees after argv[0]."""

        def call(self, store: wasmtime.Store, guest: Guest, run: Running) -> Called:
            """Link, instantiate and call ``guest`` in ``store``."""


class Code(NamedTuple):
    """A module's or a component's code as read: what its :class:`Module` describes."""

    name: str
    data: bytes | None  # None when it was not read (its compiled code came from the cache)
    key: str
    size: int | None
    path: str | None
    state: os.stat_result | None
    kept: bytes | None = None  # a component's description, as the compile cache kept it


class Guest(NamedTuple):
    """What one run calls: the module, its code for the run's engine, and how. (A
    tuple: made on every run.)"""

    slot: EngineSlot
    module: Module
    compiled: Any  # a wasmtime.Module or a wasmtime.component.Component
    pre: Any  # a module's InstancePre, a component's run function index, or None
    args: Sequence[object]
    invoke: str | None  # the function to call instead of a command's entry
    imports: Imports | None = None
    trap_unknown: bool = False  # imports nobody provides trap when called
    max_memory: int | None = None

    def pooled(self, slot: EngineSlot, compiled: Any, pre: Any) -> Guest:
        """The same guest on a pooled engine's slot (see ``engine``)."""
        return Guest(slot, self.module, compiled, pre, *self[4:])


class CoreModule:
    """A WASI preview-1 module: its ``_start``, or an exported function."""

    weight = 1
    one_memory = True

    def describe(self, code: Code, compiled: Any, slot: EngineSlot) -> Module:
        # (from its bytes, not wasmtime-py's types: see module.read_interface)
        name, data, key, size, path, state, _ = code
        return describe(name, data, key, size=size, path=path, state=state)

    def prepare(self, compiled: Any, slot: EngineSlot) -> Any:
        try:
            return slot.linker.instantiate_pre(compiled)
        except wasmtime.WasmtimeError:
            return None  # imports beyond WASI: linked per run with the caller's functions

    def check(self, module: Module, options: Mapping[str, Any]) -> None:
        check_imports(
            module.name,
            module.imports,
            options.get("imports"),
            options.get("unknown_imports", "error"),
        )

    def argv(self, guest: Guest) -> Sequence[object]:
        return guest.args  # (an invoked function's arguments too, as the wasmtime CLI has it)

    def call(self, store: wasmtime.Store, guest: Guest, run: Running) -> Called:
        module, compiled, slot = guest.module, guest.compiled, guest.slot
        pre = None if guest.trap_unknown else guest.pre
        if guest.imports or (guest.trap_unknown and pre is None):
            linker = slot.wasi_linker()
            if guest.imports:
                define(linker, module.imports, guest.imports, run.failure)
            if guest.trap_unknown:
                linker.define_unknown_imports_as_traps(compiled)
            instance = _instantiate(lambda: linker.instantiate(store, compiled), guest, run)
        elif pre is not None:
            instance = _instantiate(lambda: pre.instantiate(store), guest, run)
        else:
            instance = _instantiate(lambda: slot.linker.instantiate(store, compiled), guest, run)
        name = guest.invoke or "_start"
        func = export_func(store, instance, name)
        if func is None:
            raise _no_function(module, guest.invoke)
        if guest.invoke is None:
            if _is_nullary(module, name):
                call_nullary(store, func)
                return CALLED
            callable_types(module, name)
            return Called(values=_values(func(store)))
        init = export_func(store, instance, "_initialize")
        if init is not None:
            if not _is_nullary(module, "_initialize"):
                callable_types(module, "_initialize")  # names a type Python cannot pass
                raise ConfigError(
                    f"{module.name}: _initialize takes or returns values; a reactor's "
                    "_initialize is a func () -> () that wasmhost calls before invoke."
                )
            call_nullary(store, init)
        types = callable_types(module, name)
        # A function without parameters reads its arguments from argv, if at all.
        params = convert_params(types, guest.args, module.name, name) if types else []
        return Called(values=_values(func(store, *params)))


class Component:
    """A WASI preview-2 component: its ``wasi:cli/run``, or an exported function."""

    weight = COMPONENT_WEIGHT
    # (A component made from a preview-1 module has its adapter's memory too.)
    one_memory = False

    def describe(self, code: Code, compiled: Any, slot: EngineSlot) -> Module:
        from ..values.component import describe_component, described

        name, data, key, size, path, _, kept = code
        if kept is not None:
            found = described(name, data, key, kept, compiled, slot.engine, size=size, path=path)
            if found is not None:
                return found
        return describe_component(name, data, key, compiled, slot.engine, size=size, path=path)

    def prepare(self, compiled: Any, slot: EngineSlot) -> Any:
        from ..values.component import RunIndex

        return RunIndex(compiled)  # where its run function is, found once

    def check(self, module: Module, options: Mapping[str, Any]) -> None:
        if options.get("symlinks") is False:
            raise ConfigError(
                f"{module.name} is a component: symlinks=False is enforced for core modules only."
            )
        if options.get("imports"):
            raise ConfigError(
                f"{module.name} is a component: host functions (imports=) are given to core "
                "modules only."
            )
        if options.get("unknown_imports", "error") != "trap":
            from ..values.component import check_imports as check_component_imports

            check_component_imports(module)

    def argv(self, guest: Guest) -> Sequence[object]:
        # An invoked function takes its arguments as values, not from argv.
        return () if guest.invoke else guest.args

    def call(self, store: wasmtime.Store, guest: Guest, run: Running) -> Called:
        from ..values.component import execute

        linker = guest.slot.component_linker(guest.compiled if guest.trap_unknown else None)
        try:
            return execute(
                store,
                linker,
                guest.compiled,
                guest.module,
                guest.invoke,
                guest.args,
                guest.pre,
                instantiate=lambda make: _instantiate(make, guest, run),
            )
        finally:
            if guest.trap_unknown:
                linker.close()  # made for this run (see component_linker)


CORE_MODULE = CoreModule()
COMPONENT = Component()


def kind_of(module: Module) -> Kind:
    return COMPONENT if module.kind == "component" else CORE_MODULE


def compiled_kind(compiled: Any) -> Kind:
    """The kind of a module's or a component's compiled code."""
    return CORE_MODULE if isinstance(compiled, wasmtime.Module) else COMPONENT


def _values(result: object) -> tuple[Any, ...]:
    if result is None:
        return ()
    return tuple(result) if isinstance(result, list) else (result,)


def _no_function(module: Module, invoke: str | None) -> LinkError:
    name = invoke or "_start"
    funcs = ", ".join(module.export_names("func")) or "no functions"
    what = f"no function {name!r}" if invoke else "no _start function (it is not a WASI command)"
    problem = f"{module.name} exports {what}; it exports: {funcs}"
    if invoke:
        return LinkError(f"{problem}.")
    return LinkError(problem, advice="call one of them with Host.call(module, NAME)", fix="invoke")


def _instantiate(make: Callable[[], Any], guest: Guest, run: Running) -> Any:
    """``make()``'s instance, the run told when it is made; a refusal to instantiate
    raised as what it means, a trap or a stop while starting as wasmtime raised it
    (the run reads it)."""
    try:
        instance = make()
    except wasmtime.WasmtimeError as exc:
        from ..engines.failures import instantiation_error, trapped  # (only on failure)

        guard = current()
        if trapped(exc) or (guard is not None and guard.stopped.is_set()):
            # A trap in a start function, or stopped while instantiating (a deadline,
            # a cancel, serve's inline budget under a loaded machine).
            raise
        refused_memory = run.watch is not None and run.watch.refused_at_start
        raise instantiation_error(
            str(exc), guest.module.name, guest.max_memory, refused_memory
        ) from None
    run.started()
    return instance


def _is_nullary(module: Module, name: str) -> bool:
    return any(e.name == name and e.signature == "func () -> ()" for e in module.exports)


def callable_types(module: Module, name: str) -> list[str]:
    """The parameter types of ``module``'s function ``name``, which Python can call
    (wasmtime-py would end the process on a call with a v128 or an anyref)."""
    signature = next((e.signature for e in module.exports if e.name == name), "")
    types = func_types(signature)
    unknown = "types wasmhost cannot read" if types is None else uncallable(types)
    if types is None or unknown:
        raise ConfigError(
            f"{module.name}: {name} has the type {signature or 'unknown'}; wasmhost cannot "
            f"call a function with {unknown} in its parameters or results."
        )
    return types[0]


def convert_params(
    params: list[str], args: Sequence[object], module: str, name: str
) -> list[int | float]:
    """A core function's arguments (numbers, or strings as the CLI gives them) as
    the values of its parameter types."""
    if len(args) != len(params):
        raise ConfigError(
            f"{module}: {name} takes {len(params)} argument(s) "
            f"({', '.join(params) or 'none'}), got {len(args)}."
        )
    values: list[int | float] = []
    for arg, kind in zip(args, params, strict=True):
        try:
            if kind in ("i32", "i64"):
                number = int(arg, 0) if isinstance(arg, str) else int(arg)  # type: ignore[call-overload]
                bits = 32 if kind == "i32" else 64
                if not -(1 << (bits - 1)) <= number < (1 << bits):
                    raise ConfigError(f"{module}: {name} expects {kind}; {arg!r} is out of range.")
                values.append(number)
            elif kind in ("f32", "f64"):
                values.append(float(arg))  # type: ignore[arg-type]
            else:
                raise ConfigError(
                    f"{module}: {name} takes a {kind} parameter, which wasmhost cannot pass."
                )
        except (ValueError, TypeError, OverflowError):  # (int(inf) overflows)
            raise ConfigError(f"{module}: {name} expects {kind}, got {arg!r}.") from None
    return values
