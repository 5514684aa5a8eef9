"""Bad modules get a ModuleError that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HELLO

from wasmhost import Host, ModuleError

GOOD = HELLO.read_bytes()

BAD = {
    "empty": (b"", "is empty"),
    "text": (b"hello, I am a text file\n", "not a WebAssembly module"),
    "wat": (b'(module (func (export "_start")))', "looks like WebAssembly text"),
    "elf": (b"\x7fELF\x02\x01\x01" + b"\0" * 64, "not a WebAssembly module"),
    "header-only": (b"\0asm", "truncated"),
    "component": (b"\0asm\x0d\x00\x01\x00\xff", "is not a valid WebAssembly component"),
    "unknown-version": (b"\0asm\x02\x00\x00\x00", "unknown WebAssembly version"),
    "truncated": (GOOD[: len(GOOD) // 2], "not a valid WebAssembly module"),
    "garbage-section": (b"\0asm\x01\x00\x00\x00\x01\xff\xff", "not a valid WebAssembly module"),
}


@pytest.mark.parametrize(("data", "message"), BAD.values(), ids=BAD.keys())
def test_bad_bytes(host: Host, tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(data)
    with pytest.raises(ModuleError, match=message) as info:
        host.run(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(ModuleError, match=message):
        host.load(data)


def test_missing_file(host: Host, tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match="no such file"):
        host.run(tmp_path / "nope.wasm")


def test_a_directory(host: Host, tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match="is a directory"):
        host.run(tmp_path)


def test_unreadable_file(host: Host) -> None:
    # Root reads any file whatever its mode; /proc/self/mem refuses a read at offset 0 to anyone.
    with pytest.raises(ModuleError, match="cannot be read"):
        host.run("/proc/self/mem")
