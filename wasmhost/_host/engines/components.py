"""Compiled components, their WASI linker and instances, through wasmtime's C API.

wasmtime-py's ``wasmtime.component`` takes ~15 ms to import (its type classes
are dataclasses, and ``dataclasses`` imports ``inspect``): more than a tenth
of a new process that runs a cached component, where the wasmtime CLI pays
nothing of the kind. A run needs none of its types: the compiled code, a
linker with WASI preview 2, an instance, and the run function. These are
those, over the same C functions wasmtime-py calls (``wasmtime._ffi``), so
a run of a component compiled before loads no ``wasmtime.component`` at all.
Its types, to describe a component or convert a function's values, still
come from ``wasmtime.component`` (:attr:`ComponentCode.type`), imported then.

Each wrapper owns what wasmtime gave it and deletes it once (``Managed``);
an instance and a function are plain structs that live in their store.
"""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING, Any, TypeVar

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._managed import Managed

if TYPE_CHECKING:
    import wasmtime.component as wc

_Owner = TypeVar("_Owner", bound=Managed[Any])


class ComponentCode(Managed["ctypes._Pointer[ffi.wasmtime_component_t]"]):
    """A component's compiled code, as ``wasmtime.component.Component`` holds it."""

    def __init__(self, engine: wasmtime.Engine, wasm: bytes) -> None:
        """Compile ``wasm``."""
        binary = (ctypes.c_uint8 * len(wasm)).from_buffer_copy(wasm)
        ptr = ctypes.POINTER(ffi.wasmtime_component_t)()
        _check(ffi.wasmtime_component_new(engine.ptr(), binary, len(wasm), ctypes.byref(ptr)))
        self._set_ptr(ptr)

    def _delete(self, ptr: ctypes._Pointer[ffi.wasmtime_component_t]) -> None:
        ffi.wasmtime_component_delete(ptr)

    @classmethod
    def deserialize_file(cls, engine: wasmtime.Engine, path: str) -> ComponentCode:
        """The code serialized in the file at ``path`` (mapped, not read)."""
        ptr = ctypes.POINTER(ffi.wasmtime_component_t)()
        _check(
            ffi.wasmtime_component_deserialize_file(
                engine.ptr(), os.fsencode(path), ctypes.byref(ptr)
            )
        )
        return _owning(cls, ptr)

    @classmethod
    def deserialize(cls, engine: wasmtime.Engine, encoded: bytes | bytearray) -> ComponentCode:
        """The code :meth:`serialize` gave, for ``engine``."""
        buffer = (ctypes.c_uint8 * len(encoded)).from_buffer_copy(encoded)
        ptr = ctypes.POINTER(ffi.wasmtime_component_t)()
        _check(
            ffi.wasmtime_component_deserialize(
                engine.ptr(), buffer, len(encoded), ctypes.byref(ptr)
            )
        )
        return _owning(cls, ptr)

    def serialize(self) -> bytearray:
        raw = ffi.wasm_byte_vec_t()
        _check(ffi.wasmtime_component_serialize(self.ptr(), ctypes.byref(raw)))
        try:
            return ffi.to_bytes(raw)
        finally:
            ffi.wasm_byte_vec_delete(ctypes.byref(raw))

    def get_export_index(self, name: str, parent: ExportIndex | None = None) -> ExportIndex | None:
        """Where the export ``name`` is (inside the exported instance ``parent``), or None."""
        encoded = name.encode()
        ptr = ffi.wasmtime_component_get_export_index(
            self.ptr(), parent.ptr() if parent is not None else None, encoded, len(encoded)
        )
        return _owning(ExportIndex, ptr) if ptr else None

    @property
    def type(self) -> wc.ComponentType:
        """The component's type, as ``wasmtime.component`` describes it (importing it)."""
        import wasmtime.component as wc

        return wc.ComponentType._from_ptr(ffi.wasmtime_component_type(self.ptr()))


class ExportIndex(Managed["ctypes._Pointer[ffi.wasmtime_component_export_index_t]"]):
    """Where one export of a component is, to find it in an instance."""

    def _delete(self, ptr: ctypes._Pointer[ffi.wasmtime_component_export_index_t]) -> None:
        ffi.wasmtime_component_export_index_delete(ptr)


class WasiLinker(Managed["ctypes._Pointer[ffi.wasmtime_component_linker_t]"]):
    """A component linker with WASI preview 2 (and, if given, ``trap_unknown``'s other
    imports as functions that trap)."""

    def __init__(self, engine: wasmtime.Engine, trap_unknown: ComponentCode | None = None) -> None:
        self._set_ptr(ffi.wasmtime_component_linker_new(engine.ptr()))
        try:
            _check(ffi.wasmtime_component_linker_add_wasip2(self.ptr()))
            if trap_unknown is not None:
                _check(
                    ffi.wasmtime_component_linker_define_unknown_imports_as_traps(
                        self.ptr(), trap_unknown.ptr()
                    )
                )
        except BaseException:
            self.close()
            raise

    def _delete(self, ptr: ctypes._Pointer[ffi.wasmtime_component_linker_t]) -> None:
        ffi.wasmtime_component_linker_delete(ptr)

    def instantiate(self, store: wasmtime.Store, code: ComponentCode) -> Instance:
        """An instance of ``code`` in ``store``; raises what wasmtime raised."""
        instance = ffi.wasmtime_component_instance_t()
        _check(
            ffi.wasmtime_component_linker_instantiate(
                self.ptr(), store._context(), code.ptr(), ctypes.byref(instance)
            )
        )
        return Instance(instance)


class Instance:
    """An instance of a component, in its store."""

    __slots__ = ("_instance",)

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def get_func(self, store: wasmtime.Store, index: ExportIndex) -> Func | None:
        """The function at ``index``, or None if what is there is not a function."""
        func = ffi.wasmtime_component_func_t()
        found = ffi.wasmtime_component_instance_get_func(
            ctypes.byref(self._instance), store._context(), index.ptr(), ctypes.byref(func)
        )
        return Func(func) if found else None


class Func:
    """A function of a component's instance (called through ``capi``)."""

    __slots__ = ("_func",)

    def __init__(self, func: Any) -> None:
        self._func = func


def _owning(kind: type[_Owner], ptr: Any) -> _Owner:
    """A ``kind`` that owns ``ptr`` (made without its constructor, which makes one)."""
    made = kind.__new__(kind)
    made._set_ptr(ptr)
    return made


def _check(error: Any) -> None:
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
