"""Signature manifests of the tests' own making, for test_signing.py and
test_signing_attacks.py: a layer signed with a key of the tests, and a
``sha256-<hex>.sig`` manifest of any layers beside a manifest, written through
a registry's session or into an OCI layout (the one interface both take)."""

from __future__ import annotations

import base64
from pathlib import Path

from wasmhost._oci.formats import Target, canonical_json, sha256_digest
from wasmhost._oci.signing import (
    PAYLOAD_TYPE,
    SIGNATURE_ANNOTATION,
    load_private_key,
    signature_tag,
)

PASSWORD = b"secret password"  # the keys the tests make are encrypted with it
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def signed_layer(key_path: Path, body: bytes) -> dict[str, object]:
    """A signature layer: ``body`` signed with the private key at ``key_path``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = load_private_key(key_path.read_bytes(), PASSWORD, "k.key")
    signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    return {
        "mediaType": PAYLOAD_TYPE,
        "size": len(body),
        "digest": sha256_digest(body),
        "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
    }


def forge(
    target: Target,
    digest: str,
    layers: list[object],
    blobs: tuple[bytes, ...] = (),
    raw: bytes | None = None,
) -> None:
    """Store a signature manifest (``raw`` bytes, or one listing ``layers``) beside
    manifest ``digest`` in ``target``, with ``blobs``: what a hostile registry or
    layout would hold (a layout takes what a registry would refuse)."""
    for blob in blobs:
        target.upload_blob(sha256_digest(blob), len(blob), blob)
    config = canonical_json({"rootfs": {"type": "layers", "diff_ids": []}})
    target.upload_blob(sha256_digest(config), len(config), config)
    manifest = raw
    if manifest is None:
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "size": len(config),
                    "digest": sha256_digest(config),
                },
                "layers": layers,
            }
        )
    target.put_manifest(signature_tag(digest), manifest, OCI_MANIFEST)
