"""Signatures in cosign's format: key pairs, simple-signing payloads, and the
``sha256-<hex>.sig`` tag that cosign, and containers/image (skopeo, podman, CRI-O)
through a ``sigstoreSigned`` policy, read beside an image.

- A private key is an ECDSA P-256 key, PKCS#8, encrypted as cosign encrypts it:
  scrypt (N=32768, r=8, p=1) derives a key from the password, NaCl's secretbox
  seals the key with it, and the JSON envelope is PEM-armoured as ``ENCRYPTED
  SIGSTORE PRIVATE KEY`` (cosign's older ``ENCRYPTED COSIGN PRIVATE KEY`` loads
  too). The public key is a PEM ``PUBLIC KEY``.
- A signature is an OCI manifest under the tag ``sha256-<hex of the signed
  manifest's digest>.sig``: one layer per signature, each layer a simple-signing
  payload (``critical.identity.docker-reference``, ``critical.image
  .docker-manifest-digest``, ``critical.type``) with its ECDSA signature, base64,
  in the ``dev.cosignproject.cosign/signature`` annotation. Signing again adds a
  layer.

``cryptography`` (and ``nacl`` for private keys) are imported here only, when a
command signs or verifies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import ConfigError, NotFoundError, SignatureError
from .formats import OCI_MANIFEST, Source, Target, canonical_json, is_digest, sha256_digest

if TYPE_CHECKING:
    from .ecdsa import PublicKey
    from .reference import Reference
    from .store import Store

PRIVATE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
PRIVATE_PEMS = (PRIVATE_PEM, "ENCRYPTED COSIGN PRIVATE KEY")
PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
# What is read of a signature tag: its layers and each payload.
MAX_SIGNATURES = 64
MAX_PAYLOAD = 64 << 10
MAX_KEY_FILE = 64 << 10
_SCRYPT = {"N": 32768, "r": 8, "p": 1}
_SCRYPT_WORK = 1 << 20  # N * r * p: 4x cosign's


class Verified(NamedTuple):
    """A signature that checked out: the manifest digest it signs, and for whom."""

    digest: str
    docker_reference: str
    key: str  # the public key file's name (or "key N" for keys given as bytes)


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


# -- keys -----------------------------------------------------------------------


def generate_key_pair(password: bytes) -> tuple[bytes, bytes]:
    """A new key pair as PEM: (encrypted private key, public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(32)
    sealed, nonce = _seal(der, _derive(password, salt, _SCRYPT))
    envelope = {
        "kdf": {"name": "scrypt", "params": _SCRYPT, "salt": _b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(sealed),
    }
    private = _pem(PRIVATE_PEM, json.dumps(envelope).encode())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def load_private_key(pem: bytes, password: bytes, name: str) -> Any:
    """The private key in ``pem`` (cosign's encrypted format), opened with ``password``.
    A wrong password, another format or a damaged file is a ConfigError naming
    ``name``, never the password."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    kind, body = _unpem(pem, name)
    if kind not in PRIVATE_PEMS:
        raise ConfigError(
            f"{name} is not a cosign private key (its PEM type is {kind!r}); "
            "make one with `wasmhost key generate`."
        )
    try:
        envelope = json.loads(body)
        kdf, cipher = envelope["kdf"], envelope["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise ValueError
        params = {k: int(kdf["params"][k]) for k in ("N", "r", "p")}
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        sealed = base64.b64decode(envelope["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        raise ConfigError(f"{name} is damaged: its envelope is not cosign's.") from None
    n, r, p = params["N"], params["r"], params["p"]
    # cosign's own are N=32768, r=8, p=1: work N*r*p of 2^18, 32 MiB. Up to 4x that
    # work (and so at most 128 MiB) is taken; a file asking for more is refused
    # before any is done, and so is an N scrypt cannot take (not a power of 2).
    if not (n > 1 and n & (n - 1) == 0 and r > 0 and p > 0 and n * r * p <= _SCRYPT_WORK):
        raise ConfigError(f"{name} asks for scrypt parameters out of bounds; refusing it.")
    der = _open(sealed, nonce, _derive(password, salt, params))
    if der is None:
        raise ConfigError(f"{name}: wrong password, or the key is damaged.")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise ConfigError(f"{name} is damaged: no key inside.") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(
            f"{name} holds a key other than ECDSA P-256, which is all this signs with."
        )
    return key


def load_public_key(pem: bytes, name: str) -> PublicKey:
    """A public key (PEM), checked to be ECDSA P-256."""
    from .ecdsa import PublicKey

    return PublicKey(pem, name)


def read_key_file(path: str) -> bytes:
    """A key file: a regular file (not a FIFO, a device) of at most 64 KiB."""
    from .._files import read_regular

    try:
        return read_regular(path, MAX_KEY_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read the key {path}: {exc.strerror}.") from None


def _derive(password: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    n, r, p = params["N"], params["r"], params["p"]
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=32)


def _seal(data: bytes, key: bytes) -> tuple[bytes, bytes]:
    import nacl.secret
    import nacl.utils

    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    return nacl.secret.SecretBox(key).encrypt(data, nonce).ciphertext, nonce


def _open(sealed: bytes, nonce: bytes, key: bytes) -> bytes | None:
    import nacl.exceptions
    import nacl.secret

    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(sealed, nonce))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pem(kind: str, body: bytes) -> bytes:
    lines = [_b64(body)[i : i + 64] for i in range(0, len(_b64(body)), 64)]
    return f"-----BEGIN {kind}-----\n{chr(10).join(lines)}\n-----END {kind}-----\n".encode()


def _unpem(pem: bytes, name: str) -> tuple[str, bytes]:
    text = pem.decode("ascii", "replace").strip().splitlines()
    if (
        len(text) < 2
        or not text[0].startswith("-----BEGIN ")
        or not text[-1].startswith("-----END ")
    ):
        raise ConfigError(f"{name} is not a PEM file.")
    kind = text[0].removeprefix("-----BEGIN ").removesuffix("-----")
    try:
        return kind, base64.b64decode("".join(text[1:-1]), validate=True)
    except ValueError:
        raise ConfigError(f"{name} is not a PEM file (its base64 is broken).") from None


# -- payloads -------------------------------------------------------------------


def payload(docker_reference: str, digest: str) -> bytes:
    """The simple-signing payload cosign signs: the repository and the manifest digest."""
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _signed_facts(data: bytes) -> tuple[str, str]:
    """(docker-reference, digest) of a payload, read as strictly as containers/image."""
    try:
        document = json.loads(data, object_pairs_hook=_no_duplicates)
        critical = document["critical"]
        if set(document) != {"critical", "optional"} or set(critical) != {
            "identity",
            "image",
            "type",
        }:
            raise ValueError
        if critical["type"] != SIGNATURE_TYPE:
            raise ValueError
        if set(critical["identity"]) != {"docker-reference"} or set(critical["image"]) != {
            "docker-manifest-digest"
        }:
            raise ValueError
        reference = critical["identity"]["docker-reference"]
        digest = critical["image"]["docker-manifest-digest"]
        if not isinstance(reference, str) or not isinstance(digest, str):
            raise ValueError
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ValueError("its payload is not a cosign simple-signing payload") from None
    return reference, digest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of ``pairs``; a key given twice is a ValueError (two readers could
    each take another of them, as containers/image refuses)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("a key is given twice")
    return document


def docker_reference(reference: Reference) -> str:
    return f"{reference.registry}/{reference.repository}"


def check_identity(identity: str) -> str:
    """``identity`` (``registry/repository``, as a signature names what it is for),
    normalised as a reference's; a ConfigError if it is not one (or has a tag)."""
    from .reference import parse_reference

    if "@" in identity or ":" in identity.rpartition("/")[2]:
        raise ConfigError(
            f"the identity {identity} names a tag or digest; give the repository only "
            "(registry/repository)."
        )
    return docker_reference(parse_reference(identity))


# -- beside the manifest: a registry or an OCI layout ---------------------------------


def sign(target: Target, identity: str, digest: str, key: Any) -> str:
    """Sign manifest ``digest`` for ``identity`` (``registry/repository``) and store the
    signature beside it in ``target`` (a registry's session or an OCI layout), keeping
    the signatures already there. Returns the signature tag."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from .image import OCI_CONFIG

    data = payload(identity, digest)
    signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    tag = signature_tag(digest)
    layers = [
        layer
        for layer in _existing_layers(target, tag)
        if layer["digest"] != sha256_digest(data)
        or layer.get("annotations", {}).get(SIGNATURE_ANNOTATION) != _b64(signature)
    ]
    if len(layers) >= MAX_SIGNATURES:
        raise SignatureError(
            f"{tag} holds {len(layers)} signatures already, the most verify reads; not "
            "adding one that would make it refuse them all."
        )
    target.upload_blob(sha256_digest(data), len(data), data)
    layers.append(
        {
            "mediaType": PAYLOAD_TYPE,
            "size": len(data),
            "digest": sha256_digest(data),
            "annotations": {SIGNATURE_ANNOTATION: _b64(signature)},
        }
    )
    config = canonical_json(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        }
    )
    target.upload_blob(sha256_digest(config), len(config), config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "size": len(config),
                "digest": sha256_digest(config),
            },
            "layers": layers,
        }
    )
    target.put_manifest(tag, manifest, OCI_MANIFEST)
    return tag


def _existing_layers(target: Target, tag: str) -> list[dict[str, Any]]:
    try:
        data, _, _ = target.get_manifest(tag)
    except NotFoundError:
        return []
    layers = _layers(data)
    if layers is None or not all(_well_formed(layer) for layer in layers):
        raise SignatureError(
            f"the signature tag {tag} holds no cosign signatures, or malformed ones; not "
            "adding to it."
        )
    return layers


def _layers(data: bytes) -> list[dict[str, Any]] | None:
    try:
        manifest = json.loads(data)
        layers = manifest["layers"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        return None
    return layers


def _well_formed(layer: dict[str, Any]) -> bool:
    """A layer a manifest may list: a string media type and digest, a whole size,
    annotations (if any) an object of strings."""
    annotations = layer.get("annotations", {})
    return (
        isinstance(layer.get("mediaType"), str)
        and is_digest(layer.get("digest"))
        and type(layer.get("size")) is int
        and isinstance(annotations, dict)
        and all(isinstance(v, str) for v in annotations.values())
    )


def verify(
    source: Source | None,
    identity: str | None,
    where: str,
    digest: str,
    keys: list[tuple[str, PublicKey]],
    store: Store | None = None,
) -> Verified:
    """The first signature of manifest ``digest`` made by one of ``keys`` for
    ``identity`` (``registry/repository``; None: for any, as cosign takes a local
    image); a SignatureError naming ``where`` and saying why none is. Signatures
    kept in ``store`` (ones that checked out before) are tried first and need no
    ``source``; without one (offline) they are all there is. One that checks out
    from ``source`` is kept."""
    where = f"{where}@{digest}"
    reasons: list[str] = []
    kept = store.signatures(digest) if store is not None else []
    for body, signature in kept:
        found = _check(body, signature, identity, digest, keys, "a kept signature", reasons)
        if found is not None:
            return found
    if source is None:
        raise SignatureError(
            f"{where}: no signature of it by these keys is kept in the store, and offline "
            "the registry cannot be asked; run once without --offline."
        )
    reasons = []
    tag = signature_tag(digest)
    try:
        data, _, _ = source.get_manifest(tag)
    except NotFoundError:
        raise SignatureError(f"{where} is not signed (no {tag} beside it).") from None
    layers = _layers(data)
    if layers is None:
        raise SignatureError(f"{where}: its signature manifest {tag} is malformed.")
    if len(layers) > MAX_SIGNATURES:
        raise SignatureError(
            f"{where}: {tag} holds {len(layers)} signatures, more than the "
            f"{MAX_SIGNATURES} read; refusing it."
        )
    for index, layer in enumerate(layers):
        if layer.get("mediaType") != PAYLOAD_TYPE:
            continue
        label = f"signature {index + 1}"
        if not _well_formed(layer):
            reasons.append(f"{label} is malformed")
            continue
        size, blob = layer["size"], layer["digest"]
        encoded = layer.get("annotations", {}).get(SIGNATURE_ANNOTATION)
        if not isinstance(encoded, str):
            reasons.append(f"{label} is malformed")
            continue
        if size > MAX_PAYLOAD:
            reasons.append(f"{label}'s payload is over {MAX_PAYLOAD >> 10} KiB")
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except ValueError:
            reasons.append(f"{label} is not base64")
            continue
        body = _download(source, blob, size)
        found = _check(body, signature, identity, digest, keys, label, reasons)
        if found is not None:
            if store is not None:
                store.remember_signature(digest, body, signature)
            return found
    if not reasons:
        raise SignatureError(f"{where}: {tag} holds no cosign signatures.")
    raise SignatureError(f"{where} is not signed as required: {'; '.join(reasons)}.")


def _check(
    body: bytes,
    signature: bytes,
    identity: str | None,
    digest: str,
    keys: list[tuple[str, PublicKey]],
    label: str,
    reasons: list[str],
) -> Verified | None:
    """The signature, if one of ``keys`` made it for this digest and ``identity`` (None:
    any); else None, with the reason added to ``reasons``."""
    for name, key in keys:
        if not key.verify(signature, body):
            continue
        try:
            signed_reference, signed_digest = _signed_facts(body)
        except ValueError as exc:
            reasons.append(f"{label} by {name}: {exc}")
            return None
        if signed_digest != digest:
            reasons.append(f"{label} by {name} is for {signed_digest}")
        elif identity is not None and signed_reference != identity:
            reasons.append(f"{label} by {name} is for {signed_reference}")
        else:
            return Verified(digest, signed_reference, name)
        return None
    reasons.append(f"{label} is by none of the keys given")
    return None


def _download(source: Source, digest: str, size: int) -> bytes:
    import io

    out = io.BytesIO()
    source.download_blob(digest, size, out)
    return out.getvalue()
