"""Reading a WebAssembly module from a path or from bytes, and checking it.

A :class:`Module` is the checked bytes plus what the module imports and
exports; each engine of the host compiles it on first use (see ``host``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple, Union

if TYPE_CHECKING:
    import wasmtime

from .._errors import ModuleError, reading_module
from .._files import open_regular
from .._wasm import CORE_VERSION, MAGIC, is_component, leb128, sections
from .._wasm import name as read_name

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
        "_path",
        "_size",
        "_wasm",
        "exports",
        "functions",
        "imports",
        "key",
        "kind",
        "name",
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
        functions: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._wasm = wasm
        self._path = path  # where the bytes are, when they were not read (see wasm)
        self._size = len(wasm) if wasm is not None else size or 0
        self.key = key
        self.imports = imports
        self.exports = exports
        self._digest: str | None = None
        # A WASI preview-2 component's functions, their types by name (None: a module).
        self.functions = functions
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
            functions=self.functions,
        )
        twin._digest = self._digest
        return twin

    def __repr__(self) -> str:
        return f"<Module {self.name} ({self.size} bytes)>"

    @property
    def wasm(self) -> bytes:
        """The module's bytes. A module loaded from the compile cache by path reads
        them only when asked, and refuses them if the file changed meanwhile."""
        if self._wasm is None:
            from .._hashing import content_key

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


def _describe(ty: object) -> tuple[str, str]:
    import wasmtime  # wasmtime loads only where modules are compiled: not for push or pull

    if isinstance(ty, wasmtime.FuncType):
        params = ", ".join(str(p) for p in ty.params)
        results = ", ".join(str(r) for r in ty.results)
        return "func", f"func ({params}) -> ({results})"
    if isinstance(ty, wasmtime.MemoryType):
        return "memory", "memory"
    if isinstance(ty, wasmtime.TableType):
        return "table", "table"
    if isinstance(ty, wasmtime.GlobalType):
        return "global", f"global {ty.content}"
    return "other", type(ty).__name__


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
    or a ``wasmtime.component.Component``), mapping wasmtime's errors to
    :class:`ModuleError`."""
    import wasmtime

    check_header(name, data)
    try:
        if is_component(data):
            import wasmtime.component

            return wasmtime.component.Component(engine, data)
        return wasmtime.Module(engine, data)
    except wasmtime.WasmtimeError as exc:
        what = "component" if is_component(data) else "module"
        reason = last_line(str(exc)) or f"invalid {what}"
        raise ModuleError(f"{name} is not a valid WebAssembly {what}: {reason}.") from None


def last_line(text: str) -> str:
    """The last line of a wasmtime error message: the innermost cause."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else ""


def describe(
    name: str,
    data: bytes | None,
    key: str,
    compiled: wasmtime.Module,
    *,
    size: int | None = None,
    path: str | None = None,
) -> Module:
    """The :class:`Module` for ``data`` (or the file at ``path``, unread), with what
    ``compiled`` imports and exports."""
    imports = []
    for imp in compiled.imports:
        kind, sig = _describe(imp.type)
        imports.append(Import(imp.module, imp.name or "", kind, sig))
    exports = []
    for exp in compiled.exports:
        kind, sig = _describe(exp.type)
        exports.append(Export(exp.name, kind, sig))
    return Module(name, data, key, tuple(imports), tuple(exports), size=size, path=path)


_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}


def wasm_imports(data: bytes) -> tuple[Import, ...] | None:
    """The imports of a module, read from its import section without compiling it
    (names and kinds; the signature is the kind). None if the bytes do not parse:
    then compiling will say why."""
    try:
        return _read_imports(data)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def _read_imports(data: bytes) -> tuple[Import, ...]:
    types: list[str] = []
    for section, pos, _end in sections(data):
        if section == 1:
            types = _read_types(data, pos)
        elif section == 2:
            count, pos = leb128(data, pos)
            found = []
            for _ in range(count):
                module, pos = read_name(data, pos)
                field, pos = read_name(data, pos)
                kind = data[pos]
                what = _KINDS.get(kind, "other")
                signature = what
                if kind == 0:
                    index, _ = leb128(data, pos + 1)
                    signature = types[index] if index < len(types) else what
                pos = _skip_description(data, kind, pos + 1)
                found.append(Import(module, field, what, signature))
            return tuple(found)
        elif section != 0:  # sections come in order: past the types, no imports
            return ()
    return ()


_VALUES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
_VALUES.update({0x70: "funcref", 0x6F: "externref"})


def _read_types(data: bytes, pos: int) -> list[str]:
    """Function types as ``_describe`` writes them; [] past what a plain MVP module has."""
    count, pos = leb128(data, pos)
    found = []
    for _ in range(count):
        if data[pos] != 0x60:
            return []  # a GC type or a recursion group: not described here
        pos += 1
        lists = []
        for _ in range(2):
            n, pos = leb128(data, pos)
            values = [_VALUES.get(data[pos + i]) for i in range(n)]
            if None in values:
                return []
            lists.append(", ".join(str(v) for v in values))
            pos += n
        found.append(f"func ({lists[0]}) -> ({lists[1]})")
    return found


def _skip_description(data: bytes, kind: int, pos: int) -> int:
    if kind == 0:  # func: a type index
        return leb128(data, pos)[1]
    if kind == 1:  # table: a reference type, then limits
        pos += 1
    elif kind == 3:  # global: a value type and mutability
        if data[pos] in (0x63, 0x64):  # (ref null? heaptype)
            pos = leb128(data, pos + 1)[1]
        else:
            pos += 1
        return pos + 1
    elif kind == 4:  # tag: an attribute, then a type index
        return leb128(data, pos + 1)[1]
    elif kind != 2:
        raise ValueError(f"unknown import kind {kind}")
    flags = data[pos]
    pos = leb128(data, pos + 1)[1]
    if flags & 1:
        pos = leb128(data, pos)[1]
    return pos
