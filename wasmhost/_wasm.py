"""The WebAssembly binary format, as far as wasmhost reads it without wasmtime.

The header that tells a core module from a component, LEB128 numbers, names,
and the top-level sections: ``_host.module`` reads a module's imports with
them (before compiling it), ``_oci.formats`` a component's world (for the
artifact config, where wasmtime never loads). Malformed bytes raise
ValueError or IndexError; the callers say what that means for them.
"""

from __future__ import annotations

from collections.abc import Iterator

MAGIC = b"\0asm"
CORE_VERSION = b"\x01\x00\x00\x00"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"


def is_component(data: bytes) -> bool:
    """Whether ``data`` starts as a WebAssembly component (not a core module) does."""
    return data[:4] == MAGIC and data[4:8] == COMPONENT_VERSION


def leb128(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned LEB128 number at ``pos``, and where it ends."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("LEB128 too long")


def sleb128(data: bytes, pos: int, bits: int = 64) -> tuple[int, int]:
    """The signed LEB128 number at ``pos`` (at most ``bits`` wide), and where it ends."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos
        if shift >= bits + 7:
            raise ValueError("LEB128 too long")


def name(data: bytes, pos: int) -> tuple[str, int]:
    """The length-prefixed UTF-8 name at ``pos``, and where it ends."""
    length, pos = leb128(data, pos)
    if pos + length > len(data):
        raise ValueError("name past the end")
    return data[pos : pos + length].decode("utf-8"), pos + length


def sections(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Each top-level section after the header: its id, where its content starts
    and where it ends."""
    pos = 8
    while pos < len(data):
        section = data[pos]
        size, pos = leb128(data, pos + 1)
        end = pos + size
        if end > len(data):
            raise ValueError("section past the end")
        yield section, pos, end
        pos = end
