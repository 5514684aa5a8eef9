"""WASI preview-2 components: what they import and export, their values, their runs.

A component is told from a core module by its header (layer 1, version
0x0d). It compiles on the same engines as modules and runs through a
component linker with WASI preview 2 (``add_wasip2``), under the same
``WasiConfig`` (argv, environment, directories, stdio) and store limits.

A command component runs its ``wasi:cli/run`` export: ``ok`` is exit status
0, ``err`` 1 (as the wasmtime CLI has it; a preview-1 module made into a
component exits 1 for any non-zero ``proc_exit``). ``invoke`` calls any
exported function, top-level (``add``) or in an exported interface
(``wasi:cli/run@0.2.3#run``), with Python values converted by the
function's types:

    bool, s8..u64, f32/f64, char, string    bool, int, float, str
    list<T> (list<u8>: bytes too), tuple    list, tuple
    record                                  dict by field name
    option<T>                               None or the value; Some(value) too,
                                            and only that when T is an option
                                            (Some(None) is some(none))
    enum / flags                            str / set of str
    variant                                 (case, payload)
    result<T, E>                            ("ok", T) or ("err", E); as the
                                            function's own result: T, or
                                            ErrorResult raised with E

``wasmhost run --invoke 'f(ARGS)'`` writes them in WAVE (see ``wave``).

A function's types nest at most ``MAX_TYPE_DEPTH`` levels and have at most
``MAX_TYPE_PARTS`` parts in all (wasmtime takes up to 100 levels and a
million parts, which in Python take minutes to convert or describe): past
that, the component is refused when loaded, naming the function. Values are
converted under the run's guard: a timeout or cancel stops a conversion too.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, ErrorResult, LinkError, ModuleError
from .module import Export, Import, Module
from .result import Some

if TYPE_CHECKING:
    import wasmtime
    import wasmtime.component as wc

# The preview-2 interfaces add_wasip2 provides (any 0.2.x release).
WASI_P2 = (
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
)
RUN_INTERFACE = "wasi:cli/run@0.2"
# Real worlds nest far less (wasi:http's deepest result, an option of results of
# a variant of records of options, is 8 levels) and have a few hundred parts.
MAX_TYPE_DEPTH = 32
MAX_TYPE_PARTS = 10_000


def item_type(item: Any) -> Any:
    """An import's or export's type (wasmtime-py 50 wraps it in a ComponentExtern)."""
    return getattr(item, "ty", item)


def describe_component(
    name: str,
    data: bytes | None,
    key: str,
    compiled: wc.Component,
    engine: wasmtime.Engine,
    *,
    size: int | None = None,
    path: str | None = None,
) -> Module:
    """The :class:`Module` for a component: its imports by interface, its exports
    (instances, and each function with its WIT type, ``INTERFACE#NAME`` inside one)."""
    import wasmtime.component as wc

    ty = compiled.type
    imports = []
    for import_name, item in ty.imports(engine).items():
        import_ty = item_type(item)
        if isinstance(import_ty, wc.FuncType):
            check_size(name, import_name, import_ty)
        imports.append(Import(import_name, "", _kind(import_ty), _signature(import_ty, engine)))
    exports: list[Export] = []
    functions: dict[str, Any] = {}
    for export_name, item in ty.exports(engine).items():
        export_ty = item_type(item)
        if isinstance(export_ty, wc.FuncType):
            check_size(name, export_name, export_ty)
            functions[export_name] = export_ty
        exports.append(Export(export_name, _kind(export_ty), _signature(export_ty, engine)))
        if isinstance(export_ty, wc.ComponentInstanceType):
            for inner, inner_item in export_ty.exports(engine).items():
                inner_ty = item_type(inner_item)
                if isinstance(inner_ty, wc.FuncType):
                    full = f"{export_name}#{inner}"
                    check_size(name, full, inner_ty)
                    functions[full] = inner_ty
                    exports.append(Export(full, "func", _signature(inner_ty, engine)))
    return Module(
        name, data, key, tuple(imports), tuple(exports), size=size, path=path, functions=functions
    )


def check_size(module_name: str, func_name: str, ty: wc.FuncType) -> None:
    """Refuse a function whose types nest deeper than ``MAX_TYPE_DEPTH`` or have more
    than ``MAX_TYPE_PARTS`` parts, looking at no more of them than that."""
    roots = [t for _, t in ty.params] + ([] if ty.result is None else [ty.result])
    stack = [(t, 1) for t in roots]
    parts = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if depth > MAX_TYPE_DEPTH:
            raise ModuleError(
                f"{module_name}: {func_name}'s type nests more than {MAX_TYPE_DEPTH} levels "
                f"deep; wasmhost converts types of up to {MAX_TYPE_DEPTH} levels."
            )
        if parts > MAX_TYPE_PARTS:
            raise ModuleError(
                f"{module_name}: {func_name}'s type has more than {MAX_TYPE_PARTS} parts; "
                f"wasmhost converts types of up to {MAX_TYPE_PARTS} parts."
            )
        stack.extend((inner, depth + 1) for inner in _parts(part))


def _parts(ty: Any) -> list[Any]:
    """The types directly inside ``ty``."""
    import wasmtime.component as wc

    inner: list[Any] = []
    if isinstance(ty, wc.ListType):
        inner = [ty.element]
    elif isinstance(ty, wc.TupleType):
        inner = list(ty.elements)
    elif isinstance(ty, wc.RecordType):
        inner = [t for _, t in ty.fields]
    elif isinstance(ty, wc.VariantType):
        inner = [t for _, t in ty.cases]
    elif isinstance(ty, wc.OptionType):
        inner = [ty.payload]
    elif isinstance(ty, wc.ResultType):
        inner = [ty.ok, ty.err]
    return [t for t in inner if t is not None]


def _kind(ty: Any) -> str:
    import wasmtime.component as wc

    if isinstance(ty, wc.FuncType):
        return "func"
    if isinstance(ty, wc.ComponentInstanceType):
        return "instance"
    if isinstance(ty, wc.ResourceType):
        return "resource"
    if isinstance(ty, wc.ModuleType):
        return "module"
    if isinstance(ty, wc.ComponentType):
        return "component"
    return "type"


def _signature(ty: Any, engine: wasmtime.Engine) -> str:
    import wasmtime.component as wc

    if isinstance(ty, wc.FuncType):
        return func_signature(ty)
    if isinstance(ty, wc.ComponentInstanceType):
        names = list(ty.exports(engine))
        return "instance {" + ", ".join(names) + "}"
    return _kind(ty)


def func_signature(ty: wc.FuncType) -> str:
    params = ", ".join(f"{name}: {wit(param)}" for name, param in ty.params)
    result = ty.result
    return f"func({params})" + ("" if result is None else f" -> {wit(result)}")


def wit(ty: Any) -> str:
    """A value type written as WIT writes it (records and variants spelled out: their
    names are not kept in the compiled component)."""
    import wasmtime.component as wc

    simple = {
        wc.Bool: "bool",
        wc.S8: "s8",
        wc.S16: "s16",
        wc.S32: "s32",
        wc.S64: "s64",
        wc.U8: "u8",
        wc.U16: "u16",
        wc.U32: "u32",
        wc.U64: "u64",
        wc.F32: "f32",
        wc.F64: "f64",
        wc.Char: "char",
        wc.String: "string",
    }
    for cls, text in simple.items():
        if isinstance(ty, cls):
            return text
    if isinstance(ty, wc.ListType):
        return f"list<{wit(ty.element)}>"
    if isinstance(ty, wc.TupleType):
        return "tuple<" + ", ".join(wit(e) for e in ty.elements) + ">"
    if isinstance(ty, wc.OptionType):
        return f"option<{wit(ty.payload)}>"
    if isinstance(ty, wc.ResultType):
        ok = "_" if ty.ok is None else wit(ty.ok)
        err = "_" if ty.err is None else wit(ty.err)
        return "result" if ty.ok is None and ty.err is None else f"result<{ok}, {err}>"
    if isinstance(ty, wc.RecordType):
        return "record { " + ", ".join(f"{n}: {wit(t)}" for n, t in ty.fields) + " }"
    if isinstance(ty, wc.VariantType):
        cases = [n if t is None else f"{n}({wit(t)})" for n, t in ty.cases]
        return "variant { " + ", ".join(cases) + " }"
    if isinstance(ty, wc.EnumType):
        return "enum { " + ", ".join(ty.names) + " }"
    if isinstance(ty, wc.FlagsType):
        return "flags { " + ", ".join(ty.names) + " }"
    if isinstance(ty, wc.OwnType | wc.BorrowType):
        return "resource"
    return type(ty).__name__.lower()


def run_index(compiled: wc.Component, engine: wasmtime.Engine) -> Any:
    """Where the ``run`` function of a command component's ``wasi:cli/run`` export is
    (found once per compiled component), or None."""
    for name, item in compiled.type.exports(engine).items():
        if name.startswith(RUN_INTERFACE):
            run = item_type(item).exports(engine).get("run")
            ty = item_type(run) if run is not None else None
            if ty is None or ty.params or not _is_run_result(ty.result):
                return None  # not what wasi:cli/run defines: execute() says so
            parent = compiled.get_export_index(name)
            return compiled.get_export_index("run", parent) if parent is not None else None
    return None


def check_imports(module: Module) -> None:
    """Refuse a component importing what WASI preview 2 does not provide, naming it."""
    for imp in module.imports:
        if not imp.module.startswith(WASI_P2):
            raise LinkError(
                f"{module.name} imports {imp.module} ({imp.kind}), which wasmhost does not "
                "provide: components get the WASI preview-2 CLI interfaces only."
            )


def find_function(module: Module, name: str) -> Any:
    """The type of the exported function ``name`` (top-level, or ``INTERFACE#NAME``)."""
    functions = module.functions or {}
    found = functions.get(name)
    if found is None:
        names = ", ".join(functions) or "no functions"
        raise LinkError(f"{module.name} exports no function {name!r}; it exports: {names}.")
    return found


def execute(
    store: wasmtime.Store,
    linker: wc.Linker,
    compiled: wc.Component,
    module: Module,
    invoke: str | None,
    args: Sequence[Any],
    job: Any,
    run: Any = None,
) -> tuple[tuple[Any, ...], int, ErrorResult | None]:
    """Instantiate the component in ``store`` and run it (``job.instantiated`` set when
    instantiated): its values, its exit status, and the ErrorResult of an invoked
    function that returned ``err``. ``run`` is where the ``run`` function is, if
    :func:`run_index` found it."""
    import time

    import wasmtime

    from .capi import call_component, call_component_run

    try:
        instance = linker.instantiate(store, compiled)
    except wasmtime.WasmtimeError as exc:
        from .watchdog import current

        guard = current()
        text = str(exc)
        if (guard is not None and guard.stopped.is_set()) or "wasm backtrace" in text:
            raise  # a trap or a limit while it started: run() names it
        from .host import instantiation_error

        raise instantiation_error(text, module, job.options.get("max_memory")) from None
    job.instantiated = time.perf_counter()
    if invoke is None:
        if run is None:
            raise _not_a_command(module)
        ok = call_component_run(store, instance.get_func(store, run))
        return (), 0 if ok else 1, None
    ty = find_function(module, invoke)
    if ty.result is not None and _has_resource(ty.result):
        raise ConfigError(
            f"{invoke} returns a resource ({wit(ty.result)}), which cannot outlive "
            "the run's store; call it from a component instead."
        )
    func = _get_func(store, instance, compiled, invoke)
    checkpoint = _checkpoint()
    params = [
        (param_ty, to_wasm(param_ty, value, f"{invoke}: argument {param_name!r}", checkpoint))
        for (param_name, param_ty), value in zip(ty.params, _arity(ty, args, invoke), strict=True)
    ]
    result = call_component(store, func, params, ty.result, checkpoint)
    if ty.result is None:
        return (), 0, None
    try:
        return (_returned(ty.result, result, module.name, invoke),), 0, None
    except ErrorResult as exc:
        return (), 0, exc


def _not_a_command(module: Module) -> LinkError:
    """Why a component without a usable ``wasi:cli/run`` (which :func:`run_index`
    found none of) cannot run as a command."""
    functions = module.functions or {}
    for name, ty in functions.items():
        if name.startswith(RUN_INTERFACE) and name.endswith("#run"):
            return LinkError(
                f"{module.name} exports {name} as {func_signature(ty)}, not as "
                "wasi:cli/run defines it: func() -> result."
            )
    return LinkError(
        f"{module.name} has no {RUN_INTERFACE}.x export (it is not a WASI command "
        f"component); it exports: {', '.join(functions) or 'no functions'}",
        advice="call one of them with invoke=NAME",
        fix="invoke",
    )


def _is_run_result(ty: Any) -> bool:
    import wasmtime.component as wc

    return isinstance(ty, wc.ResultType) and ty.ok is None and ty.err is None


def _has_resource(ty: Any) -> bool:
    import wasmtime.component as wc

    if isinstance(ty, wc.OwnType | wc.BorrowType):
        return True
    return any(_has_resource(t) for t in _parts(ty))


def _arity(ty: wc.FuncType, args: Sequence[Any], name: str) -> Sequence[Any]:
    if len(args) != len(ty.params):
        raise ConfigError(
            f"{name} takes {len(ty.params)} argument(s) ({func_signature(ty)}), not {len(args)}."
        )
    return args


def _get_func(store: wasmtime.Store, instance: Any, compiled: wc.Component, name: str) -> Any:
    interface, _, inner = name.rpartition("#")
    if interface:
        parent = compiled.get_export_index(interface)
        index = compiled.get_export_index(inner, parent) if parent is not None else None
    else:
        index = compiled.get_export_index(name)
    func = instance.get_func(store, index) if index is not None else None
    if func is None:  # described but not a function after all
        raise LinkError(f"{name} is not an exported function.")
    return func


def _returned(ty: Any, value: Any, module_name: str, func_name: str) -> Any:
    """The function's own result: a ``result``'s ``ok`` payload; ``err`` raised as
    ErrorResult."""
    import wasmtime.component as wc

    if isinstance(ty, wc.ResultType):
        tag, payload = value
        if tag == "err":
            from .wave import format_value

            shown = "err" if ty.err is None else f"err({format_value(ty.err, payload)})"
            raise ErrorResult(f"{func_name} of {module_name} returned {shown}.", error=payload)
        return payload
    return value


def _checkpoint() -> Callable[[], None]:
    """What conversions call every few thousand values: it raises once the run's guard
    says stop (a timeout or a cancel), as the guest's code would be stopped."""
    from .watchdog import current

    guard = current()
    if guard is None:
        return _carry_on

    def check() -> None:
        if guard.check() is not None:
            import wasmtime

            # As a stopped guest's: run() names it by the guard's reason.
            raise wasmtime.WasmtimeError("stopped while converting values")

    return check


def _carry_on() -> None:
    pass


def to_wasm(ty: Any, value: Any, where: str, checkpoint: Callable[[], None] = _carry_on) -> Any:
    """``value`` (see the module's docstring) checked against ``ty``, as ``capi`` lowers
    it: lists, tuples, dicts, ``(case, payload)``, an option as None or :class:`Some`.
    ``checkpoint`` is called every few thousand list elements."""
    import wasmtime.component as wc

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: expected {expected} ({wit(ty)}), got {reprlib.repr(value)}.")

    if isinstance(ty, wc.Bool):
        if not isinstance(value, bool):
            raise bad("a bool")
        return value
    for cls, bits, signed in _int_types():
        if isinstance(ty, cls):
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad("an integer")
            low, high = _int_range(bits, signed)
            if not low <= value <= high:
                raise bad(f"an integer from {low} to {high}")
            return value
    if isinstance(ty, wc.F32 | wc.F64):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        try:
            return float(value)
        except OverflowError:
            raise bad("a number within a double's range") from None
    if isinstance(ty, wc.Char):
        if not isinstance(value, str) or len(value) != 1 or not _encodable(value):
            raise bad("one Unicode scalar value")
        return value
    if isinstance(ty, wc.String):
        if not isinstance(value, str) or not _encodable(value):
            raise bad("a string of Unicode scalar values (no lone surrogates)")
        return value
    if isinstance(ty, wc.ListType):
        element = ty.element
        if isinstance(element, wc.U8) and isinstance(value, bytes | bytearray):
            return bytes(value)
        if not isinstance(value, list | tuple):
            raise bad("a list")
        fast = _scalar_list(element, value)
        if fast is not None:
            return fast
        items = []
        for i, v in enumerate(value):
            if i % 4096 == 0:
                checkpoint()
            items.append(to_wasm(element, v, f"{where}[{i}]", checkpoint))
        return bytes(items) if isinstance(element, wc.U8) else items
    if isinstance(ty, wc.TupleType):
        elements = ty.elements
        if not isinstance(value, list | tuple) or len(value) != len(elements):
            raise bad(f"a tuple of {len(elements)}")
        return tuple(
            to_wasm(t, v, f"{where}[{i}]", checkpoint)
            for i, (t, v) in enumerate(zip(elements, value, strict=True))
        )
    if isinstance(ty, wc.RecordType):
        if not isinstance(value, dict):
            raise bad("a dict of fields")
        fields = dict(ty.fields)
        unknown = set(value) - set(fields)
        if unknown:
            raise bad(f"only the fields {', '.join(fields)}")
        record = {}
        for field, field_ty in fields.items():
            if field not in value and not isinstance(field_ty, wc.OptionType):
                raise bad(f"a value for field {field!r}")
            record[field] = to_wasm(field_ty, value.get(field), f"{where}.{field}", checkpoint)
        return record
    if isinstance(ty, wc.OptionType):
        if value is None:
            return None
        payload = ty.payload
        if isinstance(value, Some):
            return Some(to_wasm(payload, value.value, where, checkpoint))
        if isinstance(payload, wc.OptionType):  # a bare value would be ambiguous
            raise bad("None or Some(...)")
        return Some(to_wasm(payload, value, where, checkpoint))
    if isinstance(ty, wc.EnumType):
        if not isinstance(value, str) or value not in ty.names:
            raise bad(f"one of {', '.join(ty.names)}")
        return value
    if isinstance(ty, wc.FlagsType):
        names = list(value) if isinstance(value, set | frozenset | list | tuple) else None
        if names is None or not all(isinstance(n, str) and n in ty.names for n in names):
            raise bad(f"a set of {', '.join(ty.names)}")
        return sorted(set(names))
    if isinstance(ty, wc.VariantType | wc.ResultType):
        cases = dict(ty.cases) if isinstance(ty, wc.VariantType) else {"ok": ty.ok, "err": ty.err}
        if not (
            isinstance(value, tuple)
            and len(value) == 2
            and isinstance(value[0], str)
            and value[0] in cases
        ):
            raise bad(f"a (case, payload) pair, the case one of {', '.join(cases)}")
        case, payload = value
        case_ty = cases[case]
        if case_ty is None and payload is not None:
            raise bad(f"no payload for case {case}")
        lowered = (
            None if case_ty is None else to_wasm(case_ty, payload, f"{where}.{case}", checkpoint)
        )
        return (case, lowered)
    raise ConfigError(f"{where}: values of type {wit(ty)} cannot be passed from Python.")


def _scalar_list(element: Any, value: Sequence[Any]) -> Any:
    """A list of numbers checked at C speed (element by element, a million floats took
    seconds); None when the slow path has to say what is wrong."""
    import wasmtime.component as wc

    kinds = set(map(type, value))  # bools are not ints here
    if isinstance(element, wc.F32 | wc.F64) and kinds <= {float, int}:
        try:
            return list(map(float, value))
        except OverflowError:
            return None
    if not kinds <= {int}:
        return None
    for cls, bits, signed in _int_types():
        if isinstance(element, cls):
            low, high = _int_range(bits, signed)
            if value and not (low <= min(value) and max(value) <= high):
                return None
            return bytes(value) if isinstance(element, wc.U8) else list(value)
    return None


def _int_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _int_types() -> list[tuple[type, int, bool]]:
    """The integer types, their widths and signedness (made when used: wasmtime loads
    only with the host)."""
    import wasmtime.component as wc

    return [
        (wc.S8, 8, True),
        (wc.S16, 16, True),
        (wc.S32, 32, True),
        (wc.S64, 64, True),
        (wc.U8, 8, False),
        (wc.U16, 16, False),
        (wc.U32, 32, False),
        (wc.U64, 64, False),
    ]
