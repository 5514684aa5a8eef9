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

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..._errors import ConfigError, ErrorResult, LinkError, ModuleError
from ..result import CALLED, Called
from . import wit
from .module import Export, Import, Module

if TYPE_CHECKING:
    import wasmtime
    import wasmtime.component as wc

    from ..engines.components import ComponentCode, WasiLinker

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
RUN_SIGNATURE = "func() -> result"  # its run function, as func_signature writes it
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
    compiled: ComponentCode,
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


# A description as the compile cache keeps it (see engines.cache): one line of items
# (an import: "i", its interface, name, kind, type; an export: "e", its name, kind,
# type), fields and items split by ASCII's unit and record separators.
_UNIT, _ITEM = "\x1f", "\x1e"
_KINDS = frozenset(["func", "instance", "resource", "module", "component", "type"])


def description(module: Module) -> bytes | None:
    """A component's imports and exports as the compile cache keeps them, or None
    where a name or type holds a separator (then it is described each time)."""
    items = [("i", *imp) for imp in module.imports] + [("e", *exp) for exp in module.exports]
    text = _ITEM.join(_UNIT.join(item) for item in items)
    if any(_UNIT in field or _ITEM in field or "\n" in field for item in items for field in item):
        return None
    return text.encode("utf-8", "surrogatepass")


def described(
    name: str,
    data: bytes | None,
    key: str,
    kept: bytes,
    compiled: ComponentCode,
    engine: wasmtime.Engine,
    *,
    size: int | None = None,
    path: str | None = None,
) -> Module | None:
    """The :class:`Module` of a component from the description the compile cache kept
    (its ``functions`` found in ``compiled`` when first asked for), or None where that
    description is not well formed."""
    try:
        text = kept.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    imports: list[Import] = []
    exports: list[Export] = []
    for item in text.split(_ITEM) if text else ():
        fields = item.split(_UNIT)
        if fields[0] == "i" and len(fields) == 5 and fields[3] in _KINDS:
            imports.append(Import(*fields[1:]))
        elif fields[0] == "e" and len(fields) == 4 and fields[2] in _KINDS:
            exports.append(Export(*fields[1:]))
        else:
            return None

    def functions() -> dict[str, Any]:
        found = describe_component(name, None, key, compiled, engine).functions
        assert found is not None
        return found

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
        stack.extend((inner, depth + 1) for inner in wit.parts(part))


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
    params = ", ".join(f"{name}: {wit.name(param)}" for name, param in ty.params)
    result = ty.result
    return f"func({params})" + ("" if result is None else f" -> {wit.name(result)}")


class RunIndex:
    """Where the ``run`` function of a command component's ``wasi:cli/run`` export is:
    found by name from the component's described exports at its first run, then kept
    (one for each compiled component: its ``Guest.pre``)."""

    __slots__ = ("_compiled", "_found", "_index")

    def __init__(self, compiled: ComponentCode) -> None:
        self._compiled = compiled
        self._found = False
        self._index: Any = None

    def find(self, module: Module) -> Any:
        """The run function's export index, or None (not what wasi:cli/run defines:
        ``execute`` says so)."""
        if not self._found:
            self._index = _run_index(self._compiled, module)
            self._found = True
        return self._index


def _run_index(compiled: ComponentCode, module: Module) -> Any:
    for export in module.exports:
        if export.name.startswith(RUN_INTERFACE) and "#" not in export.name:
            run = f"{export.name}#run"
            if not any(e.name == run and e.signature == RUN_SIGNATURE for e in module.exports):
                return None
            parent = compiled.get_export_index(export.name)
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
    linker: WasiLinker,
    compiled: ComponentCode,
    module: Module,
    invoke: str | None,
    args: Sequence[Any],
    run: RunIndex,
    *,
    instantiate: Callable[[Callable[[], Any]], Any],
) -> Called:
    """Instantiate the component in ``store`` through ``instantiate`` (which calls what
    it is given, names what wasmtime's refusal means and says when it is done) and run
    it: what its call gave. ``run`` finds where its ``run`` function is."""
    from ..engines.capi import call_component, call_component_run

    instance = instantiate(lambda: linker.instantiate(store, compiled))
    if invoke is None:
        index = run.find(module)
        if index is None:
            raise _not_a_command(module)
        ok = call_component_run(store, instance.get_func(store, index))
        return Called(exit_code=0 if ok else 1)
    ty = find_function(module, invoke)
    if ty.result is not None and wit.has_resource(ty.result):
        raise ConfigError(
            f"{invoke} returns a resource ({wit.name(ty.result)}), which cannot outlive "
            "the run's store; call it from a component instead."
        )
    func = _get_func(store, instance, compiled, invoke)
    checkpoint = _checkpoint()
    params = [
        (param_ty, wit.lower(param_ty, value, f"{invoke}: argument {param_name!r}", checkpoint))
        for (param_name, param_ty), value in zip(ty.params, _arity(ty, args, invoke), strict=True)
    ]
    result = call_component(store, func, params, ty.result, checkpoint)
    if ty.result is None:
        return CALLED
    try:
        return Called(values=(_returned(ty.result, result, module.name, invoke),))
    except ErrorResult as exc:
        return Called(error_result=exc)


def _not_a_command(module: Module) -> LinkError:
    """Why a component without a usable ``wasi:cli/run`` (which :class:`RunIndex`
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
        advice="call one of them with Host.call(module, NAME)",
        fix="invoke",
    )


def _arity(ty: wc.FuncType, args: Sequence[Any], name: str) -> Sequence[Any]:
    if len(args) != len(ty.params):
        raise ConfigError(
            f"{name} takes {len(ty.params)} argument(s) ({func_signature(ty)}), not {len(args)}."
        )
    return args


def _get_func(store: wasmtime.Store, instance: Any, compiled: ComponentCode, name: str) -> Any:
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
    if wit.kind(ty) is wit.RESULT:
        tag, payload = value
        if tag == "err":
            shown = "err" if ty.err is None else f"err({wit.format_value(ty.err, payload)})"
            raise ErrorResult(f"{func_name} of {module_name} returned {shown}.", error=payload)
        return payload
    return value


def _checkpoint() -> Callable[[], None]:
    """What conversions call every few thousand values: it raises once the run's guard
    says stop (a timeout or a cancel), as the guest's code would be stopped."""
    from ..engines.watchdog import current

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
