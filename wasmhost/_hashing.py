"""Hashes: BLAKE2b for cache keys and cache-entry checksums, sha256 for OCI digests.

CPython's own BLAKE2 module loads in ~0.2 ms where hashlib loads OpenSSL in
~3 ms, a tenth of the `wasmhost run` start-up budget; sha256 (for OCI
digests) is imported only where a digest is asked for.
"""

from __future__ import annotations

import os
from typing import IO

try:
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - Pythons without the builtin module
    from hashlib import blake2b

KEY_BYTES = 32


def content_key(data: bytes | bytearray | memoryview) -> str:
    """A 256-bit BLAKE2b of ``data``, hex: the key of a module in the compile caches."""
    return blake2b(data, digest_size=KEY_BYTES).hexdigest()


def checksum(*parts: bytes | bytearray | memoryview) -> bytes:
    """A 256-bit BLAKE2b of ``parts`` in turn, raw: the integrity check of a cache entry."""
    hasher = blake2b(digest_size=KEY_BYTES)
    for part in parts:
        hasher.update(part)
    return hasher.digest()


def checksum_of_file(fd: int) -> str:
    """The BLAKE2b of everything in the open file ``fd`` (read with pread), hex."""
    hasher = blake2b(digest_size=KEY_BYTES)
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        hasher.update(chunk)
        offset += len(chunk)
    return hasher.hexdigest()


def sha256_of(f: IO[bytes]) -> tuple[str, int]:
    """The OCI digest (``sha256:...``) and size of what is left to read in ``f``."""
    import hashlib

    hasher = hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        hasher.update(chunk)
        size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size
