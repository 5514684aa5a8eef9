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

import re
from collections.abc import Callable
from typing import Any

from ..._errors import ConfigError
from . import wit
from .component import find_function
from .module import Module

# ASCII only: str.isdigit() and float() would take other scripts' digits.
_LABEL = re.compile(r"[a-z][a-z0-9]*(?:-[a-zA-Z0-9]+)*|[A-Z][A-Z0-9]*(?:-[a-zA-Z0-9]+)*")
_NUMBER = re.compile(r"[-+]?[0-9A-Za-z.]+(?:[-+][0-9]+)?")  # (an exponent's sign too)
_UNICODE_ESCAPE = re.compile(r"\{([0-9a-fA-F]{1,6})\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


class WaveError(ConfigError):
    """Text that is not a WAVE value of the type wanted."""


def parse(module: Module, call: str) -> tuple[str, list[Any]]:
    """The function ``NAME(ARGS)`` calls and its arguments, read for its parameters'
    types: ``module`` is a component that exports the function.

    >>> name, args = wave.parse(calc, 'summarize([1.5, 2.5])')
    >>> name, args
    ('summarize', [[1.5, 2.5]])

    Raises :class:`WaveError` (a :class:`~wasmhost.ConfigError`) for text that is not
    such a call, :class:`~wasmhost.LinkError` when ``module`` exports no such function.
    """
    where = repr(call)
    name, text = parse_call(call, where)
    ty = _function(module, name)
    return name, parse_args(text or "", list(ty.params), where)


def format(module: Module, function: str, value: object, *, error: bool = False) -> str:
    """The result ``value`` of ``module``'s function ``function`` in WAVE, as the
    wasmtime CLI prints it: for a ``result`` type, ``value`` is the ``ok`` payload, or
    with ``error`` the ``err`` one (an :class:`~wasmhost.ErrorResult`'s ``error``).

    >>> wave.format(calc, "summarize", {"count": 2, "mean": 2.0})
    '{count: 2, mean: some(2)}'
    """
    ty = _function(module, function)
    if ty.result is None:
        raise ConfigError(f"{function} of {module.name} returns no value.")
    return format_returned(ty.result, value, error)


def _function(module: Module, name: str) -> Any:
    if module.kind != "component":
        raise ConfigError(
            f"{module.name} is a core module; WAVE writes the values of a component's functions."
        )
    return find_function(module, name)


def parse_call(text: str, where: str | None = None) -> tuple[str, str | None]:
    """``NAME(ARGS)`` as the function's name and the text of its arguments; a bare
    ``NAME`` gives None for the arguments. Errors name ``where`` (by default, the text)."""
    where = repr(text) if where is None else where
    text = text.strip()
    if "(" not in text:
        return text, None
    name, _, rest = text.partition("(")
    if not rest.endswith(")"):
        raise WaveError(f"{where}: write the call as NAME(ARGS), closed with ')'.")
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

    def error(self, what: str, at: int | None = None) -> WaveError:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        where = self.pos if at is None else at
        return WaveError(f"{self.where}: {what} at character {where + 1} of {shown!r}.")

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
        if word in wit.KEYWORDS and not escaped:
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
        self.skip()
        if self.pos >= len(self.text):
            raise self.error(f"expected a value of type {wit.name(ty)}")
        return wit.kind(ty).parse(ty, self)

    def keyword(self, word: str) -> bool:
        self.skip()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
            end >= len(self.text) or not (self.text[end].isalnum() or self.text[end] == "-")
        ):
            self.pos = end
            return True
        return False

    def sequence(self, open_: str, close: str, element: Callable[[int], Any]) -> list[Any]:
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


format_value = wit.format_value


def format_returned(ty: Any, value: Any, error: bool = False) -> str:
    """A function's result in WAVE, as the wasmtime CLI prints it: for a ``result``
    type, ``value`` is the ``ok`` payload (the ``err`` one with ``error``)."""
    if wit.kind(ty) is wit.RESULT:
        value = ("err" if error else "ok", value)
    return format_value(ty, value)
