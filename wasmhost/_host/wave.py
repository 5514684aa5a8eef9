"""WAVE, the WebAssembly Value Encoding: component values as text.

The syntax the wasmtime CLI takes in ``--invoke 'f(ARGS)'`` and prints
results in (bytecodealliance/wasm-tools' wasm-wave): ``true``, ``-7``,
``1.5``, ``nan``, ``inf``, ``'c'``, ``"text"`` (escapes ``\\n \\t \\r \\\\ \\"
\\' \\u{1F600}``), ``[1, 2]``, ``(1, "a")``, ``{field: 1}`` (an option field
may be left out), ``some(1)``/``none``, ``ok(1)``/``err("e")``/``ok``,
``case``/``case(payload)``, ``{flag-a, flag-b}``. A name that is a keyword
is written with ``%`` (``%none``). Values are parsed *for a type*: the same
text means different things for different types.

Parsed values are the Python values of ``component`` (dicts for records,
``(case, payload)`` for variants and results, :class:`Some` for ``some`` of an
option of an option, ...); printing takes them too.
"""

from __future__ import annotations

import contextlib
import math
import re
import struct
from decimal import Decimal
from typing import Any

from .._errors import ConfigError
from .result import Some

_KEYWORDS = {"true", "false", "some", "none", "ok", "err", "inf", "nan"}
# ASCII only: str.isdigit() and float() would take other scripts' digits.
_LABEL = re.compile(r"[a-z][a-z0-9]*(?:-[a-zA-Z0-9]+)*|[A-Z][A-Z0-9]*(?:-[a-zA-Z0-9]+)*")
_NUMBER = re.compile(r"[-+]?[0-9A-Za-z.]+(?:[-+][0-9]+)?")  # (an exponent's sign too)
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_UNICODE_ESCAPE = re.compile(r"\{([0-9a-fA-F]{1,6})\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
_ESCAPED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", '"': '\\"', "'": "\\'"}


class WaveError(ConfigError):
    """Text that is not a WAVE value of the type wanted."""


def parse_call(text: str) -> tuple[str, str | None]:
    """``NAME(ARGS)`` as the function's name and the text of its arguments; a bare
    ``NAME`` gives None for the arguments."""
    text = text.strip()
    if "(" not in text:
        return text, None
    name, _, rest = text.partition("(")
    if not rest.endswith(")"):
        raise WaveError(f"--invoke {text!r}: write the call as NAME(ARGS), closed with ')'.")
    return name.strip(), rest[:-1]


def parse_args(text: str, types: list[tuple[str, Any]], where: str) -> list[Any]:
    """The comma-separated values in ``text``, one for each (name, type) of ``types``."""
    parser = _Parser(text, where)
    values = []
    for i, (_, ty) in enumerate(types):
        if i:
            parser.expect(",")
        values.append(parser.value(ty))
    if types and parser.peek(","):  # a trailing comma
        parser.pos += 1
    if not parser.done():
        raise parser.error(f"the function takes {len(types)} argument(s); more follow")
    return values


def parse_value(text: str, ty: Any, where: str = "value") -> Any:
    parser = _Parser(text, where)
    value = parser.value(ty)
    if not parser.done():
        raise parser.error("unexpected text after the value")
    return value


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.pos = 0
        self.where = where

    def error(self, what: str) -> WaveError:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return WaveError(f"{self.where}: {what} at character {self.pos + 1} of {shown!r}.")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def done(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        if not self.peek(token):
            raise self.error(f"expected {token!r}")
        self.pos += len(token)

    def label(self) -> str:
        """A name (kebab-case, ``%`` before a keyword)."""
        self.skip()
        start = self.pos
        escaped = self.peek("%")
        if escaped:
            self.pos += 1
        found = _LABEL.match(self.text, self.pos)
        if found is None:
            raise self.error("expected a name")
        self.pos = found.end()
        word = found.group()
        if word in _KEYWORDS and not escaped:
            self.pos = start
            raise self.error(f"{word} is a keyword: write the name as %{word}")
        return word

    def number(self) -> str:
        self.skip()
        found = _NUMBER.match(self.text, self.pos)
        if found is None:
            return ""
        self.pos = found.end()
        return found.group()

    def value(self, ty: Any) -> Any:
        import wasmtime.component as wc

        from .component import wit

        self.skip()
        if self.pos >= len(self.text):
            raise self.error(f"expected a value of type {wit(ty)}")
        if isinstance(ty, wc.Bool):
            if self.keyword("true"):
                return True
            if self.keyword("false"):
                return False
            raise self.error("expected true or false")
        if isinstance(ty, wc.S8 | wc.S16 | wc.S32 | wc.S64 | wc.U8 | wc.U16 | wc.U32 | wc.U64):
            start = self.pos
            word = self.number()
            if not _INTEGER.fullmatch(word):
                self.pos = start
                raise self.error(f"expected an integer ({wit(ty)})")
            if len(word.lstrip("-")) > 20:  # more digits than any 64-bit value has
                self.pos = start
                raise self.error(f"{word[:24]}... is out of range for {wit(ty)}")
            return int(word)
        if isinstance(ty, wc.F32 | wc.F64):
            start = self.pos
            word = self.number()
            if word in ("nan", "inf", "-inf"):
                return float(word)
            if not _FLOAT.fullmatch(word):
                self.pos = start
                raise self.error(f"expected a number ({wit(ty)})")
            return float(word)  # a decimal beyond the range of a double is inf, as in WAVE
        if isinstance(ty, wc.Char):
            text = self.quoted("'")
            if len(text) != 1:
                raise self.error("expected one character between ' and '")
            return text
        if isinstance(ty, wc.String):
            return self.quoted('"')
        if isinstance(ty, wc.ListType):
            items = self.sequence("[", "]", lambda i: ty.element)
            return bytes(items) if isinstance(ty.element, wc.U8) else items
        if isinstance(ty, wc.TupleType):
            elements = list(ty.elements)
            items = self.sequence("(", ")", lambda i: elements[i] if i < len(elements) else None)
            if len(items) != len(elements):
                raise self.error(f"expected a tuple of {len(elements)}")
            return tuple(items)
        if isinstance(ty, wc.RecordType):
            return self.record(dict(ty.fields))
        if isinstance(ty, wc.FlagsType):
            self.expect("{")
            names: set[str] = set()
            while not self.peek("}"):
                name = self.label()
                if name not in ty.names:
                    raise self.error(f"expected one of the flags {', '.join(ty.names)}")
                if name in names:
                    raise self.error(f"flag {name} given twice")
                names.add(name)
                if not self.peek("}"):
                    self.expect(",")
            self.expect("}")
            return names
        if isinstance(ty, wc.OptionType):
            if self.keyword("none"):
                return None
            payload = ty.payload
            if self.keyword("some"):
                self.expect("(")
                value = self.value(payload)
                self.expect(")")
            else:
                value = self.value(payload)  # WAVE's shorthand: a bare value is some(value)
            return Some(value) if isinstance(payload, wc.OptionType) else value
        if isinstance(ty, wc.EnumType):
            name = self.label()
            if name not in ty.names:
                raise self.error(f"expected one of {', '.join(ty.names)}")
            return name
        if isinstance(ty, wc.VariantType | wc.ResultType):
            cases = (
                dict(ty.cases) if isinstance(ty, wc.VariantType) else {"ok": ty.ok, "err": ty.err}
            )
            start = self.pos
            result = isinstance(ty, wc.ResultType)
            name = self.keyword_name(("ok", "err")) if result else self.label()
            if name not in cases:
                self.pos = start
                raise self.error(f"expected one of the cases {', '.join(cases)}")
            case_ty = cases[name]
            if case_ty is None:
                return (name, None)
            self.expect("(")
            payload = self.value(case_ty)
            self.expect(")")
            return (name, payload)
        raise self.error(f"values of type {wit(ty)} cannot be written")

    def keyword_name(self, words: tuple[str, ...]) -> str:
        """The one of ``words`` (keywords, as a result's cases are) that comes next."""
        for word in words:
            if self.keyword(word):
                return word
        return ""

    def keyword(self, word: str) -> bool:
        self.skip()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
            end >= len(self.text) or not (self.text[end].isalnum() or self.text[end] == "-")
        ):
            self.pos = end
            return True
        return False

    def sequence(self, open_: str, close: str, element: Any) -> list[Any]:
        self.expect(open_)
        items: list[Any] = []
        while not self.peek(close):
            ty = element(len(items))
            if ty is None:
                raise self.error(f"too many values before {close!r}")
            items.append(self.value(ty))
            if not self.peek(close):
                self.expect(",")
        self.expect(close)
        return items

    def record(self, fields: dict[str, Any]) -> dict[str, Any]:
        import wasmtime.component as wc

        self.expect("{")
        record: dict[str, Any] = {}
        while not self.peek("}"):
            start = self.pos
            name = self.label()
            if name not in fields:
                self.pos = start
                raise self.error(f"expected one of the fields {', '.join(fields)}")
            if name in record:
                raise self.error(f"field {name} given twice")
            self.expect(":")
            record[name] = self.value(fields[name])
            if not self.peek("}"):
                self.expect(",")
        self.expect("}")
        for name, ty in fields.items():
            if name not in record:
                if not isinstance(ty, wc.OptionType):
                    raise self.error(f"field {name} is missing")
                record[name] = None
        return record

    def quoted(self, quote: str) -> str:
        self.expect(quote)
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error(f"missing closing {quote}")
            ch = self.text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            escape = self.text[self.pos : self.pos + 1]
            self.pos += 1
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
            elif escape == "u":
                found = _UNICODE_ESCAPE.match(self.text, self.pos)
                code = int(found.group(1), 16) if found else -1
                if not (0 <= code <= 0x10FFFF) or 0xD800 <= code <= 0xDFFF:
                    self.pos -= 2
                    raise self.error("expected \\u{HEX} naming a Unicode scalar value")
                assert found is not None
                out.append(chr(code))
                self.pos = found.end()
            else:
                self.pos -= 2
                raise self.error("unknown escape")


def format_value(ty: Any, value: Any) -> str:
    """``value`` of type ``ty`` in WAVE, as the wasmtime CLI prints it."""
    import wasmtime.component as wc

    if isinstance(ty, wc.Bool):
        return "true" if value else "false"
    if isinstance(ty, wc.F32):
        return _float(value, single=True)
    if isinstance(ty, wc.F64):
        return _float(value)
    if isinstance(ty, wc.Char):
        return "'" + _escape(value) + "'"
    if isinstance(ty, wc.String):
        return '"' + _escape(value) + '"'
    if isinstance(ty, wc.ListType):
        return "[" + ", ".join(format_value(ty.element, v) for v in value) + "]"
    if isinstance(ty, wc.TupleType):
        shown = [format_value(t, v) for t, v in zip(ty.elements, value, strict=True)]
        return "(" + ", ".join(shown) + ")"
    if isinstance(ty, wc.RecordType):
        fields = [
            f"{_label(name)}: {format_value(t, value[name])}"
            for name, t in ty.fields
            if not (isinstance(t, wc.OptionType) and value[name] is None)
        ]
        return "{" + ", ".join(fields) + "}"
    if isinstance(ty, wc.OptionType):
        if value is None:
            return "none"
        inner = value.value if isinstance(value, Some) else value
        return f"some({format_value(ty.payload, inner)})"
    if isinstance(ty, wc.EnumType):
        return _label(value)
    if isinstance(ty, wc.FlagsType):
        return "{" + ", ".join(_label(n) for n in ty.names if n in value) + "}"
    if isinstance(ty, wc.VariantType | wc.ResultType):
        cases = dict(ty.cases) if isinstance(ty, wc.VariantType) else {"ok": ty.ok, "err": ty.err}
        name, payload = value
        case_ty = cases[name]
        case = name if isinstance(ty, wc.ResultType) else _label(name)
        return case if case_ty is None else f"{case}({format_value(case_ty, payload)})"
    return str(value)


def format_returned(ty: Any, value: Any, error: bool = False) -> str:
    """A function's result in WAVE, as the wasmtime CLI prints it: for a ``result``
    type, ``value`` is the ``ok`` payload (the ``err`` one with ``error``)."""
    import wasmtime.component as wc

    if isinstance(ty, wc.ResultType):
        value = ("err" if error else "ok", value)
    return format_value(ty, value)


def _label(name: str) -> str:
    return f"%{name}" if name in _KEYWORDS else name


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
    plain = format(Decimal(text), "f")
    if "." in plain:
        plain = plain.rstrip("0").rstrip(".")
    return plain
