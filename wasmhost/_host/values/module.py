"""Reading a WebAssembly module from a path or from bytes, and checking it.

A :class:`Module` is the checked bytes plus what the module imports and
exports; each engine of the host compiles it on first use (see ``host``).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, NamedTuple, Union

if TYPE_CHECKING:
    from collections.abc import Callable

    import wasmtime

from ..._errors import ModuleError, reading_module
from ..._files import open_regular
from ..._wasm import CORE_VERSION, MAGIC, is_component, leb128, sections, sleb128
from ..._wasm import name as read_name

ModuleSource = Union[str, "os.PathLike[str]", bytes, "Module"]


class ModuleChanged(ModuleError):
    """The file of a module loaded without reading it changed before it was read."""


class Import(NamedTuple):
    """One import of a module: ``module.name``, its kind (``func``, ``memory``...) and type."""

    module: str
    name: str
    kind: str
    signature: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name} ({self.signature})"


class Export(NamedTuple):
    """One export of a module: its name, kind and type."""

    name: str
    kind: str
    signature: str


class Module:
    """A checked WebAssembly module, ready to run on a :class:`~wasmhost.Host`.

    >>> module = host.load("artifacts/hello-world.wasm")
    >>> module.digest
    'sha256:...'
    >>> host.run(module).stdout
    b'Hello, World!\\n'
    """

    __slots__ = (
        "_digest",
        "_functions",
        "_path",
        "_size",
        "_wasm",
        "exports",
        "imports",
        "key",
        "kind",
        "name",
        "tables",
    )

    def __init__(
        self,
        name: str,
        wasm: bytes | None,
        key: str,
        imports: tuple[Import, ...],
        exports: tuple[Export, ...],
        *,
        size: int | None = None,
        path: str | None = None,
        functions: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
        tables: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self._wasm = wasm
        self._path = path  # where the bytes are, when they were not read (see wasm)
        self._size = len(wasm) if wasm is not None else size or 0
        self.key = key
        self.imports = imports
        self.exports = exports
        self._digest: str | None = None
        # A WASI preview-2 component's functions, their types by name (None: a module),
        # or what finds them when first asked for (a component described from the
        # compile cache's record: see component.described).
        self._functions = functions
        # The type of each table of a module, imported or its own (``table 1 10 funcref``).
        self.tables = tables
        self.kind = "module" if functions is None else "component"

    def renamed(self, name: str) -> Module:
        """The same module, called ``name`` in errors and logs."""
        twin = Module(
            name,
            self._wasm,
            self.key,
            self.imports,
            self.exports,
            size=self._size,
            path=self._path,
            functions=self._functions,
            tables=self.tables,
        )
        twin._digest = self._digest
        return twin

    def __repr__(self) -> str:
        return f"<Module {self.name} ({self.size} bytes)>"

    @property
    def functions(self) -> dict[str, Any] | None:
        """A component's functions and their types by name (None for a core module)."""
        functions = self._functions
        if callable(functions):
            functions = self._functions = functions()
        return functions

    @property
    def wasm(self) -> bytes:
        """The module's bytes. A module loaded from the compile cache by path reads
        them only when asked, and refuses them if the file changed meanwhile."""
        if self._wasm is None:
            from ..._hashing import content_key

            assert self._path is not None
            with reading_module(self._path), open_regular(self._path) as f:
                data = f.read()
            if content_key(data) != self.key:
                raise ModuleChanged(f"{self._path} changed since it was loaded; load it again.")
            self._wasm = data
        return self._wasm

    @property
    def digest(self) -> str:
        """The module's OCI-style digest, ``sha256:<hex>``."""
        if self._digest is None:
            import hashlib

            self._digest = "sha256:" + hashlib.sha256(self.wasm).hexdigest()
        return self._digest

    @property
    def size(self) -> int:
        """The module's size in bytes."""
        return self._size

    def as_dict(self) -> dict[str, Any]:
        """What ``wasmhost inspect FILE --json`` prints: kind, size, digest, and
        each import and export with its kind and type (a component's by interface
        name, its functions with their WIT types)."""

        def imported(imp: Import) -> str:
            return imp.module if self.kind == "component" else f"{imp.module}.{imp.name}"

        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "digest": self.digest,
            "imports": [
                {"name": imported(i), "kind": i.kind, "type": i.signature} for i in self.imports
            ],
            "exports": [
                {"name": e.name, "kind": e.kind, "type": e.signature} for e in self.exports
            ],
        }

    def export_names(self, kind: str = "func") -> list[str]:
        """The names of the exports of one kind (``func``, ``memory``, ``table``, ``global``)."""
        return [e.name for e in self.exports if e.kind == kind]


def read_source(
    source: str | os.PathLike[str] | bytes,
) -> tuple[str, bytes, os.stat_result | None]:
    """The display name and bytes of a module given as a path or as bytes, and the
    state of the file as it was read (None for bytes)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>", bytes(source), None
    name = os.fsdecode(source)
    with reading_module(name), open_regular(name) as f:
        st = os.fstat(f.fileno())
        return name, f.read(), st


def check_header(name: str, data: bytes) -> None:
    """Refuse what is plainly not a core WebAssembly module, with a message that says why."""
    if not data:
        raise ModuleError(f"{name} is empty; expected a WebAssembly module (.wasm).")
    if data[:4] != MAGIC:
        if data.lstrip()[:1] == b"(":
            raise ModuleError(
                f"{name} looks like WebAssembly text (.wat); compile it to .wasm first "
                "(for example with wasm-tools parse or wat2wasm)."
            )
        raise ModuleError(
            f"{name} is not a WebAssembly module (it does not start with the \\0asm magic)."
        )
    if len(data) < 8:
        raise ModuleError(f"{name} is truncated: it ends inside the WebAssembly header.")
    if data[4:8] != CORE_VERSION and not is_component(data):
        raise ModuleError(f"{name} has an unknown WebAssembly version {data[4:8].hex()}.")


def compile_wasm(name: str, data: bytes, engine: wasmtime.Engine) -> Any:
    """Check and compile ``data``, a core module or a component (a ``wasmtime.Module``
    or a ``ComponentCode``), mapping wasmtime's errors to
    :class:`ModuleError`."""
    import wasmtime

    from ..engines.failures import last_line

    check_header(name, data)
    try:
        if is_component(data):
            from ..engines.components import ComponentCode

            return ComponentCode(engine, data)
        return wasmtime.Module(engine, data)
    except wasmtime.WasmtimeError as exc:
        what = "component" if is_component(data) else "module"
        reason = last_line(str(exc)) or f"invalid {what}"
        raise ModuleError(f"{name} is not a valid WebAssembly {what}: {reason}.") from None


def describe(
    name: str,
    data: bytes | None,
    key: str,
    *,
    size: int | None = None,
    path: str | None = None,
    state: os.stat_result | None = None,
) -> Module:
    """The :class:`Module` for ``data``, or for the file at ``path`` as ``state``
    shows it, unread but for its imports and exports (:class:`ModuleChanged` if
    it is no longer so), with what it imports and exports."""
    if data is None:
        assert path is not None
        assert state is not None
        header = _interface_sections(path, state)
    else:
        header = data
    try:
        imports, exports, tables = read_interface(header)
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise ModuleError(
            f"{name}: wasmhost cannot read its imports and exports ({exc})."
        ) from None
    return Module(name, data, key, imports, exports, size=size, path=path, tables=tables)


# The sections past which a module says nothing of its imports and exports: code, data.
_CODE_SECTIONS = (10, 11)
# The sections read_interface reads: types, imports, functions, tables, memories,
# globals, exports, tags.
_INTERFACE_SECTIONS = (1, 2, 3, 4, 5, 6, 7, 13)


def _interface_sections(path: str, state: os.stat_result) -> bytes:
    """The header and the sections before the code of the module file at ``path``,
    if it is still the file ``state`` describes."""
    from ..engines.cache import file_state

    parts = []
    with reading_module(path), open_regular(path) as f:
        if file_state(os.fstat(f.fileno())) != file_state(state):
            raise ModuleChanged(f"{path} changed since it was loaded; load it again.")
        parts.append(f.read(8))
        # A section's id and its size (a u32: at most five LEB128 bytes).
        while head := f.read(6):
            try:
                size, start = leb128(head, 1)
            except (IndexError, ValueError):
                raise ModuleChanged(f"{path} is not the module it was; load it again.") from None
            f.seek(start - len(head), os.SEEK_CUR)  # back to the section's content
            if head[0] in _CODE_SECTIONS:
                break
            if head[0] in _INTERFACE_SECTIONS:
                parts.append(head[:start] + f.read(size))
            else:  # custom sections, elements...
                f.seek(size, os.SEEK_CUR)
    return b"".join(parts)


_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}


def wasm_imports(data: bytes) -> tuple[Import, ...] | None:
    """The imports of a module, read from its bytes without compiling it. None if
    the bytes do not parse: then compiling will say why."""
    try:
        return read_interface(data)[0]
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


# The value types a call from Python can pass and return (wasmtime-py's C layer
# ends the process on any other, such as v128 or anyref, when it meets one).
CALLABLE_TYPES = frozenset({"i32", "i64", "f32", "f64", "funcref", "externref"})
UNKNOWN = "(not described)"


def func_types(signature: str) -> tuple[list[str], list[str]] | None:
    """The parameter and result types of a function signature as :class:`Export` writes
    it (``func (i32, i32) -> (i32)``), or None for one that is not described."""
    if not signature.startswith("func (") or ") -> (" not in signature:
        return None
    params, _, results = signature[len("func (") : -1].partition(") -> (")
    return _split(params), _split(results)


def uncallable(types: tuple[list[str], list[str]]) -> str:
    """The types among a function's parameters and results (:func:`func_types`) that a
    call from Python cannot pass, each once ("" when there are none)."""
    return ", ".join(dict.fromkeys(t for t in types[0] + types[1] if t not in CALLABLE_TYPES))


def _split(types: str) -> list[str]:
    return types.split(", ") if types else []


def read_interface(
    data: bytes,
) -> tuple[tuple[Import, ...], tuple[Export, ...], tuple[str, ...]]:
    """A module's imports and exports with their types, and the type of each of its
    tables (imported or its own), read from its bytes alone.

    wasmtime-py cannot be asked: its C layer ends the process on a ``v128``, an
    ``anyref`` or a typed reference in a signature. Types are written as
    wasmtime-py writes the ones it knows (``func (i32, i32) -> (i32)``,
    ``global i64``) and in the text format's words past those (``v128``,
    ``(ref null 0)``). A type this reader cannot read is named ``(not
    described)``; imports or exports it cannot read raise ValueError or IndexError.
    """
    types: list[str] = []
    spaces: dict[int, list[str]] = {kind: [] for kind in _KINDS}
    imports: list[Import] = []
    exports: list[Export] = []
    for section, pos, _end in sections(data):
        # The readers of types append as they go: a type they cannot read is
        # named as not described when it is looked up (past the end of its list).
        if section == 1:
            with contextlib.suppress(IndexError, ValueError):
                _read_types(data, pos, types)
        elif section == 2:
            count, pos = leb128(data, pos)
            for _ in range(count):
                module, pos = read_name(data, pos)
                field, pos = read_name(data, pos)
                kind = data[pos]
                if kind not in _KINDS:
                    raise ValueError(f"unknown import kind {kind}")
                signature, pos = _DESCRIPTIONS[kind](data, pos + 1, types)
                spaces[kind].append(signature)
                imports.append(Import(module, field, _KINDS[kind], signature))
        elif section == 3:  # each function's type index
            count, pos = leb128(data, pos)
            for _ in range(count):
                index, pos = leb128(data, pos)
                spaces[0].append(_func_type(types, index))
        elif section in (4, 5, 6, 13):  # tables, memories, globals, tags
            kind = {4: 1, 5: 2, 6: 3, 13: 4}[section]
            with contextlib.suppress(IndexError, ValueError):
                _read_definitions(data, pos, types, kind, spaces[kind])
        elif section == 7:
            count, pos = leb128(data, pos)
            for _ in range(count):
                field, pos = read_name(data, pos)
                kind = data[pos]
                if kind not in _KINDS:
                    raise ValueError(f"unknown export kind {kind}")
                index, pos = leb128(data, pos + 1)
                space = spaces[kind]
                signature = space[index] if index < len(space) else f"{_KINDS[kind]} {UNKNOWN}"
                exports.append(Export(field, _KINDS[kind], signature))
    return tuple(imports), tuple(exports), tuple(spaces[1])


def _read_types(data: bytes, pos: int, types: list[str]) -> None:
    """Each type of the type section, as it is written in a signature (a recursion
    group's types and subtypes by their structure)."""
    count, pos = leb128(data, pos)
    for _ in range(count):
        if data[pos] == 0x4E:  # rec: several types
            n, pos = leb128(data, pos + 1)
            for _ in range(n):
                pos = _read_subtype(data, pos, types)
        else:
            pos = _read_subtype(data, pos, types)


def _read_subtype(data: bytes, pos: int, types: list[str]) -> int:
    if data[pos] in (0x50, 0x4F):  # sub, sub final: supertypes first
        n, pos = leb128(data, pos + 1)
        for _ in range(n):
            pos = leb128(data, pos)[1]
    if data[pos] == 0x65:  # shared
        pos += 1
    form = data[pos]
    pos += 1
    if form == 0x60:
        lists = []
        for _ in range(2):
            n, pos = leb128(data, pos)
            values = []
            for _ in range(n):
                value, pos = _value_type(data, pos)
                values.append(value)
            lists.append(", ".join(values))
        types.append(f"func ({lists[0]}) -> ({lists[1]})")
    elif form == 0x5F:  # struct: its fields
        n, pos = leb128(data, pos)
        for _ in range(n):
            pos = _field_type(data, pos)
        types.append("struct")
    elif form == 0x5E:  # array: one field
        pos = _field_type(data, pos)
        types.append("array")
    elif form == 0x5D:  # cont: a function type index
        pos = sleb128(data, pos, 33)[1]
        types.append("cont")
    else:
        raise ValueError(f"unknown type form {form:#x}")
    return pos


def _field_type(data: bytes, pos: int) -> int:
    if data[pos] in (0x78, 0x77):  # i8, i16
        pos += 1
    else:
        pos = _value_type(data, pos)[1]
    return pos + 1  # mutability


_NUMBERS = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
# Abstract heap types by their code, and the short name of their nullable reference.
_HEAPS = {
    0x70: ("func", "funcref"),
    0x6F: ("extern", "externref"),
    0x6E: ("any", "anyref"),
    0x6D: ("eq", "eqref"),
    0x6C: ("i31", "i31ref"),
    0x6B: ("struct", "structref"),
    0x6A: ("array", "arrayref"),
    0x69: ("exn", "exnref"),
    0x68: ("cont", "contref"),
    0x71: ("none", "nullref"),
    0x72: ("noextern", "nullexternref"),
    0x73: ("nofunc", "nullfuncref"),
    0x74: ("noexn", "nullexnref"),
    0x75: ("nocont", "nullcontref"),
}


def _value_type(data: bytes, pos: int) -> tuple[str, int]:
    """A value type, as its name (``i32``, ``v128``, ``anyref``, ``(ref null 3)``)."""
    code = data[pos]
    if code in _NUMBERS:
        return _NUMBERS[code], pos + 1
    if code in _HEAPS:
        return _HEAPS[code][1], pos + 1
    if code == 0x65 and data[pos + 1] in _HEAPS:  # a shared abstract reference
        return f"(ref null (shared {_HEAPS[data[pos + 1]][0]}))", pos + 2
    if code in (0x63, 0x64):  # (ref null? heaptype)
        heap, pos = _heap_type(data, pos + 1)
        if code == 0x63:
            for short, long in _HEAPS.values():
                if heap == short:
                    return long, pos
            return f"(ref null {heap})", pos
        return f"(ref {heap})", pos
    raise ValueError(f"unknown value type {code:#x}")


def _heap_type(data: bytes, pos: int) -> tuple[str, int]:
    shared = data[pos] == 0x65
    pos += shared
    code = data[pos]
    if code in _HEAPS:
        heap, pos = _HEAPS[code][0], pos + 1
    else:
        index, pos = sleb128(data, pos, 33)
        if index < 0:
            raise ValueError(f"unknown heap type {code:#x}")
        heap = str(index)
    return (f"(shared {heap})" if shared else heap), pos


def _func_type(types: list[str], index: int) -> str:
    return types[index] if index < len(types) else f"func {UNKNOWN}"


def _describe_func(data: bytes, pos: int, types: list[str]) -> tuple[str, int]:
    index, pos = leb128(data, pos)
    return _func_type(types, index), pos


def _describe_table(data: bytes, pos: int, _types: list[str]) -> tuple[str, int]:
    element, pos = _value_type(data, pos)
    low, high, pos = _limits(data, pos)
    bounds = str(low) if high is None else f"{low} {high}"
    return f"table {bounds} {element}", pos


def _describe_memory(data: bytes, pos: int, _types: list[str]) -> tuple[str, int]:
    return "memory", _limits(data, pos)[2]


def _describe_global(data: bytes, pos: int, _types: list[str]) -> tuple[str, int]:
    value, pos = _value_type(data, pos)
    return f"global {value}", pos + 1  # then its mutability


def _describe_tag(data: bytes, pos: int, types: list[str]) -> tuple[str, int]:
    index, pos = leb128(data, pos + 1)  # an attribute, then a function type index
    return "tag " + _func_type(types, index).removeprefix("func "), pos


_DESCRIPTIONS = {
    0: _describe_func,
    1: _describe_table,
    2: _describe_memory,
    3: _describe_global,
    4: _describe_tag,
}


def _limits(data: bytes, pos: int) -> tuple[int, int | None, int]:
    """A table's or memory's minimum and maximum (None: none), and where they end."""
    flags = data[pos]
    low, pos = leb128(data, pos + 1)
    high = None
    if flags & 1:  # a maximum
        high, pos = leb128(data, pos)
    if flags & 8:  # a custom page size
        pos = leb128(data, pos)[1]
    return low, high, pos


def table_limits(signature: str) -> tuple[int, int | None] | None:
    """A table's minimum and maximum size (None: unbounded) from its signature as
    :class:`Export` writes it (``table 1 10 funcref``), or None if not described."""
    words = signature.split(" ")
    if len(words) < 3 or words[0] != "table" or not words[1].isdigit():
        return None
    return int(words[1]), int(words[2]) if words[2].isdigit() else None


def _read_definitions(data: bytes, pos: int, types: list[str], kind: int, space: list[str]) -> None:
    """The types of a module's own tables, memories, globals or tags, appended to ``space``."""
    count, pos = leb128(data, pos)
    for _ in range(count):
        if kind == 1 and data[pos] == 0x40:  # a table with an initial value
            signature, pos = _describe_table(data, pos + 2, types)
            pos = _skip_expression(data, pos)
        else:
            signature, pos = _DESCRIPTIONS[kind](data, pos, types)
            if kind == 3:
                pos = _skip_expression(data, pos)
        space.append(signature)


# The constant instructions by opcode, and how many immediates (LEB128 numbers) follow.
_CONSTANTS = {0x41: 1, 0x42: 1, 0x23: 1, 0xD2: 1, 0x6A: 0, 0x6B: 0, 0x6C: 0}
_CONSTANTS.update({0x7C: 0, 0x7D: 0, 0x7E: 0})
# GC's constant instructions (after 0xFB), likewise.
_GC_CONSTANTS = {0: 1, 1: 1, 6: 1, 7: 1, 8: 2, 0x1A: 0, 0x1B: 0, 0x1C: 0}


def _skip_expression(data: bytes, pos: int) -> int:
    """Past a constant expression (an initial value) and its ``end``."""
    while True:
        op = data[pos]
        pos += 1
        if op == 0x0B:
            return pos
        if op in _CONSTANTS:
            for _ in range(_CONSTANTS[op]):
                pos = leb128(data, pos)[1]
        elif op == 0x43:  # f32.const
            pos += 4
        elif op == 0x44:  # f64.const
            pos += 8
        elif op == 0xD0:  # ref.null heaptype
            pos = _heap_type(data, pos)[1]
        elif op == 0xFD:  # v128.const
            sub, pos = leb128(data, pos)
            if sub != 12:
                raise ValueError(f"unknown constant instruction 0xfd {sub}")
            pos += 16
        elif op == 0xFB:
            sub, pos = leb128(data, pos)
            if sub not in _GC_CONSTANTS:
                raise ValueError(f"unknown constant instruction 0xfb {sub}")
            for _ in range(_GC_CONSTANTS[sub]):
                pos = leb128(data, pos)[1]
        else:
            raise ValueError(f"unknown constant instruction {op:#x}")
