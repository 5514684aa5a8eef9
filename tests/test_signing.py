"""Signatures in cosign's format (wasmhost key generate, sign, verify) against the real
registry: what is stored is cosign's layout (the sha256-<hex>.sig tag, simple-signing
layers), the signature verifies with OpenSSL (an independent ECDSA implementation),
and hostile signature tags are refused in one line.

Not here, because it cannot run on this machine: containers/image's check of these
signatures. Debian 12's skopeo and podman are built with sigstore disabled; skopeo
1.9.3 refuses both to sign and to verify ("Debian-local change: sigstore disabled"),
which test_skopeo_here_cannot_check_sigstore_signatures pins, so that the day it can,
the interoperability tests the issue asks for are written against it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from itertools import count
from pathlib import Path

import pytest
from conftest import wasmhost_cli
from forged import forge, signed_layer
from registry import Registry

from wasmhost import ConfigError, NotFoundError, RegistryClient, SignatureError, WasmhostError
from wasmhost._oci.layout import OciLayout
from wasmhost._oci.reference import parse_reference
from wasmhost._oci.signing import (
    PAYLOAD_TYPE,
    SIGNATURE_ANNOTATION,
    generate_key_pair,
    load_private_key,
    load_public_key,
    payload,
    signature_tag,
)

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
HELLO = ARTIFACTS / "hello-world.wasm"
_counter = count()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = generate_key_pair(b"secret password")
    (tmp_path / "k.key").write_bytes(private)
    (tmp_path / "k.pub").write_bytes(public)
    return tmp_path / "k.key", tmp_path / "k.pub"


@pytest.fixture
def other_public(tmp_path: Path) -> Path:
    _, public = generate_key_pair(b"x")
    (tmp_path / "other.pub").write_bytes(public)
    return tmp_path / "other.pub"


def pushed(registry: Registry, module: Path = HELLO) -> str:
    reference = f"{registry.host}/signed-{next(_counter)}:v1"
    RegistryClient(plain_http=True).push(module, reference)
    return reference


def test_a_key_pair_is_cosigns_format(keys: tuple[Path, Path]) -> None:
    private, public = keys
    text = private.read_text()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    envelope = json.loads(base64.b64decode("".join(text.strip().splitlines()[1:-1])))
    assert envelope["kdf"]["name"] == "scrypt"
    assert envelope["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert envelope["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(envelope["cipher"]["nonce"])) == 24
    key = load_private_key(private.read_bytes(), b"secret password", "k.key")
    assert key.curve.name == "secp256r1"
    # OpenSSL reads the public key: a plain PEM SubjectPublicKeyInfo.
    shown = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(public), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "prime256v1" in shown.stdout
    # cosign's older PEM type loads too.
    older = text.replace("SIGSTORE", "COSIGN")
    assert load_private_key(older.encode(), b"secret password", "old.key").curve.name == "secp256r1"


@pytest.mark.parametrize(
    ("data", "password", "message"),
    [
        (None, b"wrong", "wrong password"),
        (b"not a key", b"x", "is not a PEM file"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", b"x", "PEM type"),
        (
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
            + base64.b64encode(b'{"kdf": 1}')
            + b"\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            b"x",
            "is damaged",
        ),
    ],
)
def test_a_bad_private_key_or_password_is_one_clear_error(
    keys: tuple[Path, Path], data: bytes | None, password: bytes, message: str
) -> None:
    text = keys[0].read_bytes() if data is None else data
    with pytest.raises(ConfigError, match=message) as caught:
        load_private_key(text, password, "the.key")
    assert "secret password" not in str(caught.value)


def test_a_hostile_scrypt_cost_is_refused(keys: tuple[Path, Path]) -> None:
    text = keys[0].read_text()
    envelope = json.loads(base64.b64decode("".join(text.strip().splitlines()[1:-1])))
    envelope["kdf"]["params"]["N"] = 1 << 30  # gigabytes of memory, minutes of CPU
    body = base64.b64encode(json.dumps(envelope).encode()).decode()
    kind = "ENCRYPTED SIGSTORE PRIVATE KEY"
    pem = f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"
    with pytest.raises(ConfigError, match="out of bounds"):
        load_private_key(pem.encode(), b"secret password", "k.key")


def test_sign_then_verify_and_cosigns_layout(
    registry: Registry, keys: tuple[Path, Path], other_public: Path
) -> None:
    reference = pushed(registry)
    client = RegistryClient(plain_http=True)
    digest, tag = client.sign(reference, keys[0], b"secret password")
    assert tag == signature_tag(digest) == digest.replace(":", "-") + ".sig"
    assert client.verify(reference, [keys[1]]) == digest
    assert client.verify(reference, [other_public, keys[1]]) == digest
    with pytest.raises(SignatureError, match="by none of the keys given"):
        client.verify(reference, [other_public])
    # What is stored is cosign's: one simple-signing layer, the signature annotated.
    ref = parse_reference(reference)
    session = client._session(ref)
    manifest = json.loads(session.get_manifest(tag)[0])
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == PAYLOAD_TYPE
    body = _blob(session, layer)
    assert json.loads(body) == {
        "critical": {
            "identity": {"docker-reference": f"{ref.registry}/{ref.repository}"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    # OpenSSL verifies the signature over the payload with the public key.
    folder = keys[0].parent
    (folder / "payload").write_bytes(body)
    (folder / "sig").write_bytes(base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION]))
    checked = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(keys[1]), "-signature",
         str(folder / "sig"), str(folder / "payload")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.stdout.strip() == "Verified OK", checked.stderr
    # Signing again adds a signature; the first stays.
    client.sign(reference, keys[0], b"secret password")
    assert len(json.loads(session.get_manifest(tag)[0])["layers"]) == 2
    assert client.verify(reference, [keys[1]]) == digest


def _blob(session: object, layer: dict[str, object]) -> bytes:
    import io

    out = io.BytesIO()
    session.download_blob(layer["digest"], layer["size"], out)  # type: ignore[attr-defined]
    return out.getvalue()


def _forge(
    registry: Registry, reference: str, layers: list[dict[str, object]], blobs: dict[str, bytes]
) -> None:
    """Store a signature manifest of our making beside ``reference``'s manifest."""
    ref = parse_reference(reference)
    session = RegistryClient(plain_http=True)._session(ref)
    _, _, digest = session.get_manifest(ref.target)
    forge(session, digest, list(layers), tuple(blobs.values()))


@pytest.mark.parametrize(
    "case",
    [
        "another digest",
        "another repository",
        "not a payload",
        "too many",
        "too large",
        "not base64",
    ],
)
def test_a_hostile_signature_tag_is_refused_in_one_line(
    registry: Registry, keys: tuple[Path, Path], case: str
) -> None:
    reference = pushed(registry)
    ref = parse_reference(reference)
    digest = RegistryClient(plain_http=True)._session(ref).get_manifest(ref.target)[2]
    here = f"{ref.registry}/{ref.repository}"
    bodies = {
        "another digest": payload(here, "sha256:" + "0" * 64),
        "another repository": payload(f"{ref.registry}/elsewhere", digest),
        "not a payload": b'{"critical": {"type": "something else"}, "optional": null}',
    }
    if case in bodies:
        body = bodies[case]
        _forge(registry, reference, [signed_layer(keys[0], body)], {"b": body})
        expected = {"another digest": "is for sha256:000", "another repository": "elsewhere",
                    "not a payload": "not a cosign simple-signing payload"}[case]  # fmt: skip
    elif case == "too many":
        body = payload(here, digest)
        layer = signed_layer(keys[0], body)
        _forge(registry, reference, [layer] * 10_000, {"b": body})
        expected = "holds 10000 signatures"
    elif case == "too large":
        body = payload(here, digest)
        layer = {**signed_layer(keys[0], body), "size": 10 << 20}
        _forge(registry, reference, [layer], {"b": body})
        expected = "payload is over 64 KiB"
    else:
        body = payload(here, digest)
        layer = {**signed_layer(keys[0], body), "annotations": {SIGNATURE_ANNOTATION: "%%%"}}
        _forge(registry, reference, [layer], {"b": body})
        expected = "is not base64"
    done = wasmhost_cli("verify", "--plain-http", "--key", keys[1], reference)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert err.count("\n") == 1, err
    assert expected in err, err
    assert "Traceback" not in err


def test_the_cli_signs_and_verifies(registry: Registry, tmp_path: Path) -> None:
    env = {**os.environ, "WASMHOST_KEY_PASSWORD": "pw"}
    made = wasmhost_cli("key", "generate", tmp_path / "ci", env=env)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "ci.key").stat().st_mode & 0o777 == 0o600
    again = wasmhost_cli("key", "generate", tmp_path / "ci", env=env)
    assert again.returncode == 2
    assert b"exists; not replacing a key" in again.stderr
    reference = pushed(registry)
    unsigned = wasmhost_cli("verify", "--plain-http", "--key", tmp_path / "ci.pub", reference)
    assert unsigned.returncode == 1
    assert b"is not signed (no sha256-" in unsigned.stderr
    wrong = wasmhost_cli(
        "sign", "--plain-http", "--password-stdin", tmp_path / "ci.key", reference, input=b"nope\n"
    )
    assert wrong.returncode == 1
    assert b"wrong password" in wrong.stderr
    assert b"nope" not in wrong.stderr + wrong.stdout
    signed = wasmhost_cli("sign", "--plain-http", tmp_path / "ci.key", reference, env=env)
    assert signed.returncode == 0, signed.stderr
    checked = wasmhost_cli(
        "verify", "--json", "--plain-http", "--key", tmp_path / "ci.pub", reference
    )
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["verified"] is True
    # No password and no terminal: the command says how to give one.
    asked = wasmhost_cli(
        "sign", "--plain-http", tmp_path / "ci.key", reference, stdin=subprocess.DEVNULL
    )
    assert asked.returncode == 2
    assert b"WASMHOST_KEY_PASSWORD" in asked.stderr


@pytest.mark.oci_tools
def test_skopeo_here_cannot_check_sigstore_signatures(
    registry: Registry, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """Debian's skopeo refuses sigstore signatures altogether; when this fails, skopeo can
    check them, and the interoperability tests of issue 25 can be written."""
    reference = pushed(registry)
    RegistryClient(plain_http=True).sign(reference, keys[0], b"secret password")
    (tmp_path / "registries.d").mkdir()
    (tmp_path / "registries.d" / "default.yaml").write_text(
        "default-docker:\n  use-sigstore-attachments: true\n"
    )
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                registry.host: [
                    {
                        "type": "sigstoreSigned",
                        "keyPath": str(keys[1]),
                        "signedIdentity": {"type": "matchRepository"},
                    }
                ]
            }
        },
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    done = subprocess.run(
        ["skopeo", "--policy", str(tmp_path / "policy.json"), "--registries.d",
         str(tmp_path / "registries.d"), "copy", "--src-tls-verify=false",
         f"docker://{reference}", f"oci:{tmp_path / 'out'}:x"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "sigstore disabled" in done.stderr, done.stderr


def test_pull_and_run_with_verify_keys_take_only_signed_modules(
    registry: Registry, keys: tuple[Path, Path], other_public: Path, tmp_path: Path
) -> None:
    signed, unsigned = pushed(registry), pushed(registry)
    RegistryClient(plain_http=True).sign(signed, keys[0], b"secret password")
    cache = tmp_path / "cache"
    env = {**os.environ, "WASMHOST_CACHE_DIR": str(cache)}
    # Signed by the key: pulled, and run.
    done = wasmhost_cli(
        "pull", "--plain-http", "--verify-key", keys[1], "-o", tmp_path / "a.wasm", signed, env=env
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.wasm").read_bytes() == HELLO.read_bytes()
    ran = wasmhost_cli("run", "--plain-http", "--verify-key", keys[1], signed, env=env)
    assert (ran.returncode, ran.stdout) == (0, b"Hello, World!\n"), ran.stderr
    # Unsigned, or signed by another key: refused before anything is stored or written.
    for reference, key in ((unsigned, keys[1]), (signed, other_public)):
        fresh = {**env, "WASMHOST_CACHE_DIR": str(tmp_path / "fresh")}
        refused = wasmhost_cli(
            "pull",
            "--plain-http",
            "--verify-key",
            key,
            "-o",
            tmp_path / "b.wasm",
            reference,
            env=fresh,
        )
        assert refused.returncode == 1
        assert refused.stderr.decode().count("\n") == 1, refused.stderr
        assert not (tmp_path / "b.wasm").exists()
        blobs = tmp_path / "fresh" / "oci"
        assert not blobs.exists() or not any(
            p.is_file() and p.stat().st_size > 1000 for p in blobs.rglob("*")
        )
        ran = wasmhost_cli("run", "--plain-http", "--verify-key", key, reference, env=fresh)
        assert ran.returncode == 1
        assert b"Hello" not in ran.stdout
    # Keys are for registry modules: a local file with one is refused, not run unchecked.
    local = wasmhost_cli("run", "--verify-key", keys[1], HELLO, env=env)
    assert local.returncode == 2
    assert b"is a local file" in local.stderr
    # Offline, the signature kept when it checked out is checked again: no registry.
    offline = wasmhost_cli(
        "run", "--offline", "--plain-http", "--verify-key", keys[1], signed, env=env
    )
    assert (offline.returncode, offline.stdout) == (0, b"Hello, World!\n"), offline.stderr
    refused = wasmhost_cli(
        "run", "--offline", "--plain-http", "--verify-key", other_public, signed, env=env
    )
    assert refused.returncode == 1
    assert b"offline the registry cannot be asked" in refused.stderr


def test_push_sign_signs_what_it_pushed(
    registry: Registry, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    reference = f"{registry.host}/pushed-signed-{next(_counter)}:v1"
    env = {**os.environ, "WASMHOST_KEY_PASSWORD": "secret password"}
    done = wasmhost_cli("push", "--plain-http", "--sign", keys[0], HELLO, reference, env=env)
    assert done.returncode == 0, done.stderr
    assert b"Signed: sha256-" in done.stdout
    assert RegistryClient(plain_http=True).verify(reference, [keys[1]]).startswith("sha256:")
    # A wrong password stops the push before anything is sent.
    other = f"{registry.host}/pushed-signed-{next(_counter)}:v1"
    wrong = wasmhost_cli(
        "push",
        "--plain-http",
        "--sign",
        keys[0],
        HELLO,
        other,
        env={**env, "WASMHOST_KEY_PASSWORD": "no"},
    )
    assert wrong.returncode == 1
    assert b"wrong password" in wrong.stderr
    with pytest.raises(NotFoundError):
        RegistryClient(plain_http=True).inspect(other)


def test_openssls_check_and_cryptographys_agree(keys: tuple[Path, Path], tmp_path: Path) -> None:
    """verify checks signatures through the OpenSSL hashlib loaded (fast to start);
    cryptography signs. The two agree, and a key that is not ECDSA P-256 is refused."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from wasmhost._oci import ecdsa

    private = load_private_key(keys[0].read_bytes(), b"secret password", "k.key")
    public = load_public_key(keys[1].read_bytes(), "k.pub")
    assert ecdsa._libcrypto() is not None  # the fast path is the one tested here
    data = b"a payload"
    signature = private.sign(data, ec.ECDSA(hashes.SHA256()))
    assert public.verify(signature, data)
    assert not public.verify(signature, data + b"!")
    assert not public.verify(b"\x30\x02\x02\x00", data)  # a malformed DER signature
    fallback = ecdsa._cryptography_key(keys[1].read_bytes(), "k.pub")
    fallback.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for pem in (rsa_pem, p384, b"garbage"):
        with pytest.raises(ConfigError, match="not"):
            load_public_key(pem, "x.pub")


def test_a_policy_file_rules_each_registry_and_repository(
    registry: Registry, keys: tuple[Path, Path], other_public: Path, tmp_path: Path
) -> None:
    signed, unsigned = pushed(registry), pushed(registry)
    RegistryClient(plain_http=True).sign(signed, keys[0], b"secret password")
    shutil.copy(keys[1], tmp_path / "team.pub")
    policy = tmp_path / "policy.json"
    unsigned_repo = parse_reference(unsigned).repository
    policy.write_text(
        json.dumps(
            {
                "default": {"type": "reject"},
                "scopes": {
                    registry.host: {"type": "signedBy", "keys": ["team.pub"]},
                    f"{registry.host}/{unsigned_repo}": {"type": "insecureAcceptAnything"},
                },
            }
        )
    )
    env = {**os.environ, "WASMHOST_POLICY": str(policy), "WASMHOST_CACHE_DIR": str(tmp_path / "c")}
    # The registry's rule: signed by team.pub (a path relative to the policy file).
    done = wasmhost_cli("run", "--plain-http", signed, env=env)
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n"), done.stderr
    # The repository's own rule beats the registry's: accepted unsigned.
    done = wasmhost_cli("run", "--plain-http", unsigned, env=env)
    assert done.returncode == 0, done.stderr
    # Elsewhere the default: rejected, before anything is fetched.
    with pytest.raises(SignatureError, match="rejects default"):
        RegistryClient(plain_http=True, policy=policy).fetch("elsewhere.invalid/x:v1")
    # A policy and --verify-key both apply.
    done = wasmhost_cli("run", "--plain-http", "--verify-key", other_public, signed, env=env)
    assert done.returncode == 1
    assert b"by none of the keys given" in done.stderr
    # policy=False: no policy at all.
    assert RegistryClient(plain_http=True, policy=False).fetch(unsigned).path.exists()


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"default": {"type": "maybe"}}',
        '{"scopes": {"x": {"type": "signedBy"}}}',
        '{"scopes": {"x": {"type": "reject", "keys": ["a"]}}}',
        '{"defaults": {}}',
    ],
)
def test_a_broken_policy_is_one_clear_error(tmp_path: Path, text: str) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(text)
    with pytest.raises(ConfigError, match="policy"):
        RegistryClient(policy=policy)
    done = wasmhost_cli(
        "pull",
        "--plain-http",
        "localhost:5000/x:v1",
        env={**os.environ, "WASMHOST_POLICY": str(policy)},
    )
    assert done.returncode == 1
    assert done.stderr.decode().count("\n") == 1, done.stderr


def test_a_layout_is_signed_checked_and_its_signature_travels_with_skopeo(
    registry: Registry, keys: tuple[Path, Path], other_public: Path, tmp_path: Path
) -> None:
    """push --oci-layout --sign writes the signature beside the module in the layout,
    under the tag a registry holds it with; run, pull and verify check it there, and
    skopeo, copying both tags to a registry, carries a signature verify takes there."""
    layout = tmp_path / "out"
    repository = f"{registry.host}/carried-{next(_counter)}"
    env = {
        **os.environ,
        "WASMHOST_KEY_PASSWORD": "secret password",
        "WASMHOST_CACHE_DIR": str(tmp_path / "cache"),
    }
    # A layout names no repository: the signature's identity must be given, and
    # without it nothing is written.
    bare = wasmhost_cli("push", "--oci-layout", "--sign", keys[0], HELLO, f"{layout}:v1", env=env)
    assert bare.returncode == 2
    assert b"needs --identity" in bare.stderr
    assert not layout.exists()
    done = wasmhost_cli(
        "push",
        "--oci-layout",
        "--sign",
        keys[0],
        "--identity",
        repository,
        HELLO,
        f"{layout}:v1",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    digest = RegistryClient().inspect(f"{layout}:v1", oci_layout=True).digest
    index = json.loads((layout / "index.json").read_text())
    tags = {e["annotations"]["org.opencontainers.image.ref.name"] for e in index["manifests"]}
    assert tags == {"v1", signature_tag(digest)}
    # Checked in the layout: by the key; for the identity when one is asked for.
    ok = wasmhost_cli("verify", "--oci-layout", "--key", keys[1], f"{layout}:v1")
    assert ok.returncode == 0, ok.stderr
    cases: list[tuple[list[str | Path], bytes]] = [
        (["--key", other_public], b"by none of the keys given"),
        (
            ["--key", keys[1], "--identity", f"{registry.host}/else"],
            b"is for " + repository.encode(),
        ),
    ]
    for argv, why in cases:
        refused = wasmhost_cli("verify", "--oci-layout", *argv, f"{layout}:v1")
        assert refused.returncode == 1
        assert why in refused.stderr, refused.stderr
        assert refused.stderr.count(b"\n") == 1, refused.stderr
    ran = wasmhost_cli("run", "--oci-layout", "--verify-key", keys[1], f"{layout}:v1", env=env)
    assert (ran.returncode, ran.stdout) == (0, b"Hello, World!\n"), ran.stderr
    # An unsigned tag, and a key that did not sign: refused before anything is stored.
    RegistryClient().push(HELLO, f"{layout}:v2", oci_layout=True, annotations={"x": "2"})
    fresh = {**env, "WASMHOST_CACHE_DIR": str(tmp_path / "fresh")}
    for tag, key, why in (
        ("v2", keys[1], b"is not signed (no sha256-"),
        ("v1", other_public, b"by none"),
    ):
        refused = wasmhost_cli(
            "pull",
            "--oci-layout",
            "--verify-key",
            key,
            "-o",
            tmp_path / "x.wasm",
            f"{layout}:{tag}",
            env=fresh,
        )
        assert refused.returncode == 1
        assert why in refused.stderr, refused.stderr
        assert not (tmp_path / "x.wasm").exists()
        assert not (tmp_path / "fresh").exists() or not any(
            p.is_file() and p.stat().st_size > 1000 for p in (tmp_path / "fresh").rglob("*")
        )
    # Signing again adds a signature; both keys' signatures verify.
    _, second = generate_key_pair(b"two")
    (tmp_path / "two.key").write_bytes(_)
    (tmp_path / "two.pub").write_bytes(second)
    again = RegistryClient().sign(
        f"{layout}:v1", tmp_path / "two.key", b"two", identity=repository, oci_layout=True
    )
    assert again == (digest, signature_tag(digest))
    for key in (keys[1], tmp_path / "two.pub"):
        assert RegistryClient().verify(f"{layout}:v1", [key], oci_layout=True) == digest
    # skopeo copies the module and its signature tag to a registry as they are:
    # there, verify finds the signature and its identity is the repository's.
    for tag in ("v1", signature_tag(digest)):
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--dest-tls-verify=false",
                "--preserve-digests",
                f"oci:{layout}:{tag}",
                f"docker://{repository}:{tag}",
            ],
            check=True,
            capture_output=True,
        )
    client = RegistryClient(plain_http=True)
    assert client.verify(f"{repository}:v1", [keys[1]]) == digest
    assert client.verify(f"{repository}:v1", [tmp_path / "two.pub"]) == digest
    with pytest.raises(SignatureError, match="by none of the keys given"):
        client.verify(f"{repository}:v1", [other_public])


def test_a_tampered_layout_signature_and_bad_identities_are_one_line(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    layout = tmp_path / "out"
    client = RegistryClient()
    digest = client.push(HELLO, f"{layout}:v1", oci_layout=True).digest
    client.sign(
        f"{layout}:v1", keys[0], b"secret password", identity="example.com/a", oci_layout=True
    )
    for identity in ("example.com/a:v1", f"example.com/a@{digest}", "Not A Name"):
        with pytest.raises(WasmhostError, match=r"identity|invalid|reference"):
            client.sign(
                f"{layout}:v1", keys[0], b"secret password", identity=identity, oci_layout=True
            )
    with pytest.raises(ConfigError, match="names no repository"):
        client.sign(f"{layout}:v1", keys[0], b"secret password", oci_layout=True)
    # The payload's bytes changed in the layout: refused, not trusted.
    sig_manifest, _, _ = OciLayout.existing(layout).get_manifest(signature_tag(digest))
    blob = json.loads(sig_manifest)["layers"][0]["digest"].split(":")[1]
    path = layout / "blobs" / "sha256" / blob
    path.write_bytes(path.read_bytes().replace(b"example.com/a", b"example.com/b"))
    done = wasmhost_cli("verify", "--oci-layout", "--key", keys[1], f"{layout}:v1")
    assert done.returncode == 1
    assert b"does not match its descriptor" in done.stderr
    assert done.stderr.count(b"\n") == 1, done.stderr
    # --identity means nothing without --sign.
    done = wasmhost_cli(
        "push", "--oci-layout", "--identity", "example.com/a", HELLO, f"{layout}:v3"
    )
    assert done.returncode == 2
    assert b"give --sign KEY too" in done.stderr


def test_the_policys_default_rules_layouts(keys: tuple[Path, Path], tmp_path: Path) -> None:
    """A layout names no registry: the policy's default applies to it, so that packing
    a module into a layout does not step around a policy that asks for signatures."""
    layout = tmp_path / "out"
    client = RegistryClient()
    client.push(HELLO, f"{layout}:signed", oci_layout=True)
    client.push(HELLO, f"{layout}:unsigned", oci_layout=True, annotations={"x": "y"})
    client.sign(
        f"{layout}:signed", keys[0], b"secret password", identity="a.example/b", oci_layout=True
    )
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": {"type": "signedBy", "keys": [str(keys[1])]}}))
    strict = RegistryClient(policy=policy, cache_dir=tmp_path / "c")
    assert strict.fetch(f"{layout}:signed", oci_layout=True).path.read_bytes() == HELLO.read_bytes()
    with pytest.raises(SignatureError, match="is not signed"):
        strict.fetch(f"{layout}:unsigned", oci_layout=True)
    policy.write_text(json.dumps({"default": {"type": "reject"}}))
    with pytest.raises(SignatureError, match="rejects OCI layouts"):
        RegistryClient(policy=policy).fetch(f"{layout}:signed", oci_layout=True)


def test_a_verified_run_records_where_the_tag_pointed_for_offline(
    registry: Registry, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The tag moves to another signed module, and back to one fetched before: a
    verified fetch takes the one it names, and afterwards --offline means that one
    too, not the digest the tag had the time before."""
    reference = f"{registry.host}/moving-{next(_counter)}:v1"
    signer = RegistryClient(plain_http=True)
    client = RegistryClient(plain_http=True, cache_dir=tmp_path / "c", verify=[keys[1]])
    plain = RegistryClient(plain_http=True, cache_dir=tmp_path / "c", policy=False)
    seen = []
    for notes in ({}, {"moved": "yes"}, {}):
        signer.push(HELLO, reference, annotations=notes, reproducible=True)
        signer.sign(reference, keys[0], b"secret password")
        seen.append(client.fetch(reference).digest)
        assert client.fetch(reference, offline=True).digest == seen[-1]
        assert plain.fetch(reference, offline=True).digest == seen[-1]
    assert seen[0] == seen[2] != seen[1]
