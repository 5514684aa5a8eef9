"""The few wasmtime C-API calls that wasmtime-py does not wrap, in one place.

wasmtime-py exposes them only through its ctypes bindings (``wasmtime._ffi``);
the pinned ``wasmtime`` range in pyproject.toml is what these are checked
against, and the tests exercise every one.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import _func

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
