"""What wasmhost knows about each WIT type, in one table keyed by wasmtime's type class.

A component function's parameter and result types come from wasmtime-py as
instances of ``wasmtime.component`` classes (``S32``, ``ListType``,
``RecordType``...). :func:`kind` finds the :class:`Kind` of one by its class,
and each kind knows, for types of its kind:

- ``name``: the type as WIT writes it (``list<u8>``; records and variants
  spelled out, as their names are not kept in a compiled component);
- ``parts``: the types directly inside it (what the size limits walk);
- ``lower``: a Python value (see ``component``) checked against the type and
  made into what ``capi`` writes for wasmtime; a result comes back from
  ``capi`` already in that form, told by the C value's own kind;
- ``parse`` and ``format``: the type's WAVE, read through a :class:`Reader`
  (``wave``'s parser) and printed as the wasmtime CLI prints it.

``component`` and ``wave`` look types up here; this module imports neither.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import reprlib
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..._errors import ConfigError
from ..result import Some

Checkpoint = Callable[[], None]
# How many list elements are checked between two calls of a checkpoint.
CHECK_EVERY = 4096
# WAVE's keywords: a label spelled as one is written with a ``%`` before it.
KEYWORDS = frozenset({"true", "false", "some", "none", "ok", "err", "inf", "nan"})
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_ESCAPED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", '"': '\\"', "'": "\\'"}


class Reader(Protocol):
    """The WAVE text being read, as a kind sees it (``wave``'s parser)."""

    pos: int

    def error(self, what: str, at: int | None = None) -> Exception:
        """The error to raise: ``what`` is wrong at ``at`` (by default, here)."""
        ...

    def value(self, ty: Any) -> Any:
        """The next value, of type ``ty``."""
        ...

    def peek(self, token: str) -> bool: ...

    def expect(self, token: str) -> None: ...

    def keyword(self, word: str) -> bool:
        """Whether ``word`` comes next, as a whole word (then read)."""
        ...

    def label(self) -> str:
        """A name (kebab-case, ``%`` before a keyword)."""
        ...

    def number(self) -> str:
        """The text of the number that comes next ("" when none does)."""
        ...

    def quoted(self, quote: str) -> str:
        """The text between two ``quote``s, its escapes read."""
        ...

    def sequence(self, open_: str, close: str, element: Callable[[int], Any]) -> list[Any]:
        """Values between ``open_`` and ``close``, the i-th of type ``element(i)`` (None:
        no more may come)."""
        ...


def kind(ty: Any) -> Kind:
    """The kind of the WIT type ``ty`` (a ``wasmtime.component`` type)."""
    return _table().get(type(ty), OTHER)


def name(ty: Any) -> str:
    """``ty`` as WIT writes it."""
    return kind(ty).name(ty)


def parts(ty: Any) -> list[Any]:
    """The types directly inside ``ty``."""
    return kind(ty).parts(ty)


def has_resource(ty: Any) -> bool:
    """Whether a value of type ``ty`` can hold a resource."""
    found = kind(ty)
    return found is RESOURCE or any(has_resource(t) for t in found.parts(ty))


def lower(ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
    """``value`` checked against ``ty`` and made as ``capi`` lowers it; ConfigError,
    naming ``where``, when it is not a value of that type."""
    return kind(ty).lower(ty, value, where, checkpoint)


def format_value(ty: Any, value: Any) -> str:
    """``value`` of type ``ty`` in WAVE, as the wasmtime CLI prints it."""
    return kind(ty).format(ty, value)


class Kind:
    """One kind of WIT type: what wasmhost does with types and values of that kind.

    The base is the kind of types wasmhost does not convert (futures, streams,
    error contexts): named by their class, refused as values.
    """

    wit = ""

    def name(self, ty: Any) -> str:
        return self.wit or type(ty).__name__.lower()

    def parts(self, ty: Any) -> list[Any]:
        return []

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        raise ConfigError(f"{where}: values of type {name(ty)} cannot be passed from Python.")

    def parse(self, ty: Any, reader: Reader) -> Any:
        raise reader.error(f"values of type {name(ty)} cannot be written")

    def format(self, ty: Any, value: Any) -> str:
        return str(value)


def _bad(ty: Any, value: Any, where: str, expected: str) -> ConfigError:
    return ConfigError(f"{where}: expected {expected} ({name(ty)}), got {reprlib.repr(value)}.")


class _Bool(Kind):
    wit = "bool"

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if not isinstance(value, bool):
            raise _bad(ty, value, where, "a bool")
        return value

    def parse(self, ty: Any, reader: Reader) -> Any:
        if reader.keyword("true"):
            return True
        if reader.keyword("false"):
            return False
        raise reader.error("expected true or false")

    def format(self, ty: Any, value: Any) -> str:
        return "true" if value else "false"


class _Integer(Kind):
    def __init__(self, bits: int, signed: bool) -> None:
        self.wit = f"{'s' if signed else 'u'}{bits}"
        self.low = -(1 << (bits - 1)) if signed else 0
        self.high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(ty, value, where, "an integer")
        if not self.low <= value <= self.high:
            raise _bad(ty, value, where, f"an integer from {self.low} to {self.high}")
        return value

    def parse(self, ty: Any, reader: Reader) -> Any:
        start = reader.pos
        word = reader.number()
        if not _INTEGER.fullmatch(word):
            raise reader.error(f"expected an integer ({self.wit})", at=start)
        if len(word.lstrip("-")) > 20:  # more digits than any 64-bit value has
            raise reader.error(f"{word[:24]}... is out of range for {self.wit}", at=start)
        return int(word)


class _Float(Kind):
    def __init__(self, bits: int) -> None:
        self.wit = f"f{bits}"
        self.single = bits == 32

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(ty, value, where, "a number")
        try:
            return float(value)
        except OverflowError:
            raise _bad(ty, value, where, "a number within a double's range") from None

    def parse(self, ty: Any, reader: Reader) -> Any:
        start = reader.pos
        word = reader.number()
        if word in ("nan", "inf", "-inf"):
            return float(word)
        if not _FLOAT.fullmatch(word):
            raise reader.error(f"expected a number ({self.wit})", at=start)
        return float(word)  # a decimal beyond the range of a double is inf, as in WAVE

    def format(self, ty: Any, value: Any) -> str:
        return _float(value, self.single)


class _Char(Kind):
    wit = "char"

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if not isinstance(value, str) or len(value) != 1 or not _encodable(value):
            raise _bad(ty, value, where, "one Unicode scalar value")
        return value

    def parse(self, ty: Any, reader: Reader) -> Any:
        text = reader.quoted("'")
        if len(text) != 1:
            raise reader.error("expected one character between ' and '")
        return text

    def format(self, ty: Any, value: Any) -> str:
        return "'" + _escape(value) + "'"


class _String(Kind):
    wit = "string"

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if not isinstance(value, str) or not _encodable(value):
            raise _bad(ty, value, where, "a string of Unicode scalar values (no lone surrogates)")
        return value

    def parse(self, ty: Any, reader: Reader) -> Any:
        return reader.quoted('"')

    def format(self, ty: Any, value: Any) -> str:
        return '"' + _escape(value) + '"'


class _List(Kind):
    def name(self, ty: Any) -> str:
        return f"list<{name(ty.element)}>"

    def parts(self, ty: Any) -> list[Any]:
        return [ty.element]

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        element = ty.element
        as_bytes = kind(element) is U8
        if as_bytes and isinstance(value, bytes | bytearray):
            return bytes(value)
        if not isinstance(value, list | tuple):
            raise _bad(ty, value, where, "a list")
        fast = _scalar_list(element, value)
        if fast is not None:
            return fast
        items = []
        for i, v in enumerate(value):
            if i % CHECK_EVERY == 0:
                checkpoint()
            items.append(lower(element, v, f"{where}[{i}]", checkpoint))
        return bytes(items) if as_bytes else items

    def parse(self, ty: Any, reader: Reader) -> Any:
        element = ty.element
        items = reader.sequence("[", "]", lambda i: element)
        return bytes(items) if kind(element) is U8 else items

    def format(self, ty: Any, value: Any) -> str:
        element = ty.element
        return "[" + ", ".join(format_value(element, v) for v in value) + "]"


def _scalar_list(element: Any, value: Sequence[Any]) -> Any:
    """A list of numbers checked at C speed (element by element, a million floats took
    seconds); None when the slow path has to say what is wrong."""
    of = kind(element)
    kinds = set(map(type, value))  # bools are not ints here
    if isinstance(of, _Float) and kinds <= {float, int}:
        try:
            return list(map(float, value))
        except OverflowError:
            return None
    if not isinstance(of, _Integer) or not kinds <= {int}:
        return None
    if value and not (of.low <= min(value) and max(value) <= of.high):
        return None
    return bytes(value) if of is U8 else list(value)


class _Tuple(Kind):
    def name(self, ty: Any) -> str:
        return "tuple<" + ", ".join(name(e) for e in ty.elements) + ">"

    def parts(self, ty: Any) -> list[Any]:
        return list(ty.elements)

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        elements = ty.elements
        if not isinstance(value, list | tuple) or len(value) != len(elements):
            raise _bad(ty, value, where, f"a tuple of {len(elements)}")
        return tuple(
            lower(t, v, f"{where}[{i}]", checkpoint)
            for i, (t, v) in enumerate(zip(elements, value, strict=True))
        )

    def parse(self, ty: Any, reader: Reader) -> Any:
        elements = list(ty.elements)
        items = reader.sequence("(", ")", lambda i: elements[i] if i < len(elements) else None)
        if len(items) != len(elements):
            raise reader.error(f"expected a tuple of {len(elements)}")
        return tuple(items)

    def format(self, ty: Any, value: Any) -> str:
        shown = [format_value(t, v) for t, v in zip(ty.elements, value, strict=True)]
        return "(" + ", ".join(shown) + ")"


class _Record(Kind):
    def name(self, ty: Any) -> str:
        return "record { " + ", ".join(f"{n}: {name(t)}" for n, t in ty.fields) + " }"

    def parts(self, ty: Any) -> list[Any]:
        return [t for _, t in ty.fields]

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if not isinstance(value, dict):
            raise _bad(ty, value, where, "a dict of fields")
        fields = dict(ty.fields)
        if set(value) - set(fields):
            raise _bad(ty, value, where, f"only the fields {', '.join(fields)}")
        record = {}
        for field, field_ty in fields.items():
            if field not in value and kind(field_ty) is not OPTION:
                raise _bad(ty, value, where, f"a value for field {field!r}")
            record[field] = lower(field_ty, value.get(field), f"{where}.{field}", checkpoint)
        return record

    def parse(self, ty: Any, reader: Reader) -> Any:
        fields = dict(ty.fields)
        reader.expect("{")
        record: dict[str, Any] = {}
        while not reader.peek("}"):
            start = reader.pos
            field = reader.label()
            if field not in fields:
                raise reader.error(f"expected one of the fields {', '.join(fields)}", at=start)
            if field in record:
                raise reader.error(f"field {field} given twice")
            reader.expect(":")
            record[field] = reader.value(fields[field])
            if not reader.peek("}"):
                reader.expect(",")
        reader.expect("}")
        for field, field_ty in fields.items():
            if field not in record:
                if kind(field_ty) is not OPTION:
                    raise reader.error(f"field {field} is missing")
                record[field] = None
        return record

    def format(self, ty: Any, value: Any) -> str:
        fields = [
            f"{label(field)}: {format_value(t, value[field])}"
            for field, t in ty.fields
            if not (kind(t) is OPTION and value[field] is None)
        ]
        return "{" + ", ".join(fields) + "}"


class _Option(Kind):
    def name(self, ty: Any) -> str:
        return f"option<{name(ty.payload)}>"

    def parts(self, ty: Any) -> list[Any]:
        return [ty.payload]

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if value is None:
            return None
        payload = ty.payload
        if isinstance(value, Some):
            return Some(lower(payload, value.value, where, checkpoint))
        if kind(payload) is OPTION:  # a bare value would be ambiguous
            raise _bad(ty, value, where, "None or Some(...)")
        return Some(lower(payload, value, where, checkpoint))

    def parse(self, ty: Any, reader: Reader) -> Any:
        if reader.keyword("none"):
            return None
        payload = ty.payload
        if reader.keyword("some"):
            reader.expect("(")
            value = reader.value(payload)
            reader.expect(")")
        else:
            value = reader.value(payload)  # WAVE's shorthand: a bare value is some(value)
        return Some(value) if kind(payload) is OPTION else value

    def format(self, ty: Any, value: Any) -> str:
        if value is None:
            return "none"
        inner = value.value if isinstance(value, Some) else value
        return f"some({format_value(ty.payload, inner)})"


class _Enum(Kind):
    def name(self, ty: Any) -> str:
        return "enum { " + ", ".join(ty.names) + " }"

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        if not isinstance(value, str) or value not in ty.names:
            raise _bad(ty, value, where, f"one of {', '.join(ty.names)}")
        return value

    def parse(self, ty: Any, reader: Reader) -> Any:
        case = reader.label()
        if case not in ty.names:
            raise reader.error(f"expected one of {', '.join(ty.names)}")
        return case

    def format(self, ty: Any, value: Any) -> str:
        return label(value)


class _Flags(Kind):
    def name(self, ty: Any) -> str:
        return "flags { " + ", ".join(ty.names) + " }"

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        names = list(value) if isinstance(value, set | frozenset | list | tuple) else None
        if names is None or not all(isinstance(n, str) and n in ty.names for n in names):
            raise _bad(ty, value, where, f"a set of {', '.join(ty.names)}")
        return sorted(set(names))

    def parse(self, ty: Any, reader: Reader) -> Any:
        reader.expect("{")
        names: set[str] = set()
        while not reader.peek("}"):
            flag = reader.label()
            if flag not in ty.names:
                raise reader.error(f"expected one of the flags {', '.join(ty.names)}")
            if flag in names:
                raise reader.error(f"flag {flag} given twice")
            names.add(flag)
            if not reader.peek("}"):
                reader.expect(",")
        reader.expect("}")
        return names

    def format(self, ty: Any, value: Any) -> str:
        return "{" + ", ".join(label(n) for n in ty.names if n in value) + "}"


class _Variant(Kind):
    """A variant: ``(case, payload)``; a result is one whose cases are ``ok`` and ``err``."""

    def cases(self, ty: Any) -> dict[str, Any]:
        return dict(ty.cases)

    def name(self, ty: Any) -> str:
        cases = [n if t is None else f"{n}({name(t)})" for n, t in ty.cases]
        return "variant { " + ", ".join(cases) + " }"

    def parts(self, ty: Any) -> list[Any]:
        return [t for t in self.cases(ty).values() if t is not None]

    def lower(self, ty: Any, value: Any, where: str, checkpoint: Checkpoint) -> Any:
        cases = self.cases(ty)
        if not (
            isinstance(value, tuple)
            and len(value) == 2
            and isinstance(value[0], str)
            and value[0] in cases
        ):
            expected = f"a (case, payload) pair, the case one of {', '.join(cases)}"
            raise _bad(ty, value, where, expected)
        case, payload = value
        case_ty = cases[case]
        if case_ty is None and payload is not None:
            raise _bad(ty, value, where, f"no payload for case {case}")
        lowered = (
            None if case_ty is None else lower(case_ty, payload, f"{where}.{case}", checkpoint)
        )
        return (case, lowered)

    def read_case(self, reader: Reader) -> str:
        return reader.label()

    def parse(self, ty: Any, reader: Reader) -> Any:
        cases = self.cases(ty)
        start = reader.pos
        case = self.read_case(reader)
        if case not in cases:
            raise reader.error(f"expected one of the cases {', '.join(cases)}", at=start)
        case_ty = cases[case]
        if case_ty is None:
            return (case, None)
        reader.expect("(")
        payload = reader.value(case_ty)
        reader.expect(")")
        return (case, payload)

    def format(self, ty: Any, value: Any) -> str:
        case, payload = value
        case_ty = self.cases(ty)[case]
        shown = self.case_label(case)
        return shown if case_ty is None else f"{shown}({format_value(case_ty, payload)})"

    def case_label(self, case: str) -> str:
        return label(case)


class _Result(_Variant):
    def cases(self, ty: Any) -> dict[str, Any]:
        return {"ok": ty.ok, "err": ty.err}

    def name(self, ty: Any) -> str:
        if ty.ok is None and ty.err is None:
            return "result"
        ok = "_" if ty.ok is None else name(ty.ok)
        err = "_" if ty.err is None else name(ty.err)
        return f"result<{ok}, {err}>"

    def read_case(self, reader: Reader) -> str:
        for word in ("ok", "err"):  # keywords, not labels
            if reader.keyword(word):
                return word
        return ""

    def case_label(self, case: str) -> str:
        return case


class _Resource(Kind):
    """An ``own`` or ``borrow`` handle: it lives in a store, never in Python."""

    wit = "resource"


OTHER = Kind()
U8 = _Integer(8, signed=False)
OPTION = _Option()
RESOURCE = _Resource()
RESULT = _Result()


@functools.cache
def _table() -> dict[type, Kind]:
    """The kind of each of wasmtime's type classes (made when first used: wasmtime loads
    only with the host)."""
    import wasmtime.component as wc

    return {
        wc.Bool: _Bool(),
        wc.S8: _Integer(8, signed=True),
        wc.S16: _Integer(16, signed=True),
        wc.S32: _Integer(32, signed=True),
        wc.S64: _Integer(64, signed=True),
        wc.U8: U8,
        wc.U16: _Integer(16, signed=False),
        wc.U32: _Integer(32, signed=False),
        wc.U64: _Integer(64, signed=False),
        wc.F32: _Float(32),
        wc.F64: _Float(64),
        wc.Char: _Char(),
        wc.String: _String(),
        wc.ListType: _List(),
        wc.TupleType: _Tuple(),
        wc.RecordType: _Record(),
        wc.VariantType: _Variant(),
        wc.EnumType: _Enum(),
        wc.OptionType: OPTION,
        wc.ResultType: RESULT,
        wc.FlagsType: _Flags(),
        wc.OwnType: RESOURCE,
        wc.BorrowType: RESOURCE,
    }


def label(word: str) -> str:
    """A name in WAVE: ``%`` before one spelled as a keyword."""
    return f"%{word}" if word in KEYWORDS else word


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPED:
            out.append(_ESCAPED[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    return "".join(out)


def _float(value: float, single: bool = False) -> str:
    """The shortest decimal that reads back as ``value``, without an exponent."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if single:  # the shortest text that is the same f32
        packed = struct.pack("<f", value)
        for digits in range(1, 10):
            candidate = f"{value:.{digits}g}"
            # Near the largest f32, a rounded candidate may be past it.
            with contextlib.suppress(OverflowError):
                if struct.pack("<f", float(candidate)) == packed:
                    text = candidate
                    break
    from decimal import Decimal  # (1 ms to import, for a float written in WAVE)

    plain = format(Decimal(text), "f")
    if "." in plain:
        plain = plain.rstrip("0").rstrip(".")
    return plain


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
