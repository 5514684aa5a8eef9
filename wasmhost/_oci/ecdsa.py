"""ECDSA P-256 signature checks through the OpenSSL that Python's hashlib already
loaded (ctypes): the check on ``run REF --verify-key`` costs well under a
millisecond, where importing ``cryptography`` costs ~40 ms. Signing, and reading
private keys, stay with ``cryptography`` (wasmhost/_oci/signing.py).

Where no OpenSSL 1.1 or 3 can be found, :class:`PublicKey` falls back to
``cryptography``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

from .._errors import ConfigError

_EVP_PKEY_EC = 408  # NID_X9_62_id_ecPublicKey
_NID_P256 = 415  # NID_X9_62_prime256v1


@functools.cache
def _libcrypto() -> Any:
    for name in ("libcrypto.so.3", "libcrypto.so.1.1", ctypes.util.find_library("crypto")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        p = ctypes.c_void_p
        lib.BIO_new_mem_buf.restype = p
        lib.BIO_new_mem_buf.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.BIO_free.argtypes = [p]
        lib.PEM_read_bio_PUBKEY.restype = p
        lib.PEM_read_bio_PUBKEY.argtypes = [p, p, p, p]
        lib.EVP_PKEY_free.argtypes = [p]
        base_id = getattr(lib, "EVP_PKEY_get_base_id", None) or lib.EVP_PKEY_base_id
        base_id.argtypes = [p]
        bits = getattr(lib, "EVP_PKEY_get_bits", None) or lib.EVP_PKEY_bits
        bits.argtypes = [p]
        group_name = getattr(lib, "EVP_PKEY_get_group_name", None)  # OpenSSL 3
        if group_name is not None:
            group_name.argtypes = [p, ctypes.c_char_p, ctypes.c_size_t, p]
        else:  # OpenSSL 1.1
            lib.EVP_PKEY_get0_EC_KEY.restype = p
            lib.EVP_PKEY_get0_EC_KEY.argtypes = [p]
            lib.EC_KEY_get0_group.restype = p
            lib.EC_KEY_get0_group.argtypes = [p]
            lib.EC_GROUP_get_curve_name.argtypes = [p]
        lib.EVP_MD_CTX_new.restype = p
        lib.EVP_MD_CTX_free.argtypes = [p]
        lib.EVP_sha256.restype = p
        lib.EVP_DigestVerifyInit.argtypes = [p, p, p, p, p]
        lib.EVP_DigestVerify.argtypes = [
            p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        return lib, base_id, bits
    return None


class PublicKey:
    """An ECDSA P-256 public key from PEM, that checks SHA-256 ECDSA signatures."""

    def __init__(self, pem: bytes, name: str) -> None:
        self.name = name
        self._pkey: int | None = None
        self._fallback: Any = None
        found = _libcrypto()
        if found is None:
            self._fallback = _cryptography_key(pem, name)
            return
        lib, base_id, bits = found
        bio = lib.BIO_new_mem_buf(pem, len(pem))
        try:
            pkey = lib.PEM_read_bio_PUBKEY(bio, None, None, None)
        finally:
            lib.BIO_free(bio)
        if not pkey:
            raise ConfigError(f"{name} is not a PEM public key.")
        if base_id(pkey) != _EVP_PKEY_EC or bits(pkey) != 256 or not _p256(lib, pkey):
            lib.EVP_PKEY_free(pkey)
            raise ConfigError(f"{name} is not an ECDSA P-256 public key.")
        self._pkey = pkey

    def verify(self, signature: bytes, data: bytes) -> bool:
        if self._fallback is not None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            try:
                self._fallback.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                return False
            return True
        lib = _libcrypto()[0]
        ctx = lib.EVP_MD_CTX_new()
        try:
            if lib.EVP_DigestVerifyInit(ctx, None, lib.EVP_sha256(), None, self._pkey) != 1:
                return False
            return bool(lib.EVP_DigestVerify(ctx, signature, len(signature), data, len(data)) == 1)
        finally:
            lib.EVP_MD_CTX_free(ctx)

    def __del__(self) -> None:
        if self._pkey:
            found = _libcrypto()
            if found is not None:
                found[0].EVP_PKEY_free(self._pkey)
            self._pkey = None


def _p256(lib: Any, pkey: int) -> bool:
    """Whether the EC key ``pkey`` is on P-256 (not only 256 bits long: secp256k1 and
    brainpoolP256r1 are too)."""
    group_name = getattr(lib, "EVP_PKEY_get_group_name", None)
    if group_name is not None:
        name = ctypes.create_string_buffer(64)
        return bool(group_name(pkey, name, len(name), None) == 1 and name.value == b"prime256v1")
    group = lib.EC_KEY_get0_group(lib.EVP_PKEY_get0_EC_KEY(pkey))
    return bool(group) and lib.EC_GROUP_get_curve_name(group) == _NID_P256


def _cryptography_key(pem: bytes, name: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ConfigError(f"{name} is not a PEM public key.") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{name} is not an ECDSA P-256 public key.")
    return key
