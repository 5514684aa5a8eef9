"""Attacks on the cosign-format signatures (wasmhost/_oci/signing.py, ecdsa.py, policy.py,
the signing parts of client.py and layout.py): hostile signature tags in a registry or a
layout, hostile key files, odd policy scopes and identities, a tampered store.

Each refusal the README promises is one line on stderr and exit status 1 (an error
wasmhost did not expect is exit 70, "failed unexpectedly"), with nothing written."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from itertools import count
from pathlib import Path

import pytest
from conftest import wasmhost_cli
from forged import PASSWORD, forge, signed_layer
from registry import Registry

from wasmhost import ConfigError, RegistryClient, SignatureError, WasmhostError
from wasmhost._oci.formats import sha256_digest
from wasmhost._oci.layout import OciLayout
from wasmhost._oci.policy import load_policy
from wasmhost._oci.reference import parse_reference
from wasmhost._oci.signing import (
    SIGNATURE_ANNOTATION,
    SIGNATURE_TYPE,
    check_identity,
    generate_key_pair,
    load_private_key,
    load_public_key,
    payload,
)

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
HELLO = ARTIFACTS / "hello-world.wasm"
IDENTITY = "a.example/b"
_counter = count()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = generate_key_pair(PASSWORD)
    (tmp_path / "k.key").write_bytes(private)
    (tmp_path / "k.pub").write_bytes(public)
    return tmp_path / "k.key", tmp_path / "k.pub"


def pushed(registry: Registry) -> str:
    number = next(_counter)
    reference = f"{registry.host}/attacked-{number}:v1"
    # Its own digest: two pushes in one second are otherwise the same manifest.
    RegistryClient(plain_http=True, policy=False).push(
        HELLO, reference, annotations={"n": str(number)}
    )
    return reference


def a_layout(tmp_path: Path) -> tuple[Path, str]:
    """A layout holding hello-world under v1, and its manifest digest."""
    folder = tmp_path / f"layout-{next(_counter)}"
    digest = RegistryClient(policy=False).push(HELLO, f"{folder}:v1", oci_layout=True).digest
    return folder, digest


def forge_in_layout(
    folder: Path,
    digest: str,
    layers: list[object],
    blobs: tuple[bytes, ...] = (),
    raw: bytes | None = None,
) -> None:
    """A signature manifest of our making beside ``digest`` in the layout (forged.forge)."""
    forge(OciLayout.existing(folder), digest, layers, blobs, raw)


def refused_in_one_line(done: subprocess.CompletedProcess[bytes]) -> str:
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err, err
    assert "unexpectedly" not in err, err
    return err


def no_module_stored(cache: Path) -> bool:
    return not cache.exists() or not any(
        p.is_file() and p.stat().st_size > 1000 for p in cache.rglob("*")
    )


# -- problems found by an attacker review: each failed before its fix ------------------


@pytest.mark.parametrize("annotations", [["x"], "text", 5], ids=["list", "string", "number"])
def test_a_signature_layer_whose_annotations_are_not_an_object_is_refused_in_one_line(
    keys: tuple[Path, Path], tmp_path: Path, annotations: object
) -> None:
    """verify() calls ``(layer.get("annotations") or {}).get(...)``: annotations that are a
    list, a string or a number crash it (AttributeError, exit 70) in verify, pull and run."""
    folder, digest = a_layout(tmp_path)
    body = payload(IDENTITY, digest)
    forge_in_layout(
        folder, digest, [{**signed_layer(keys[0], body), "annotations": annotations}], (body,)
    )
    done = wasmhost_cli("verify", "--oci-layout", "--key", keys[1], f"{folder}:v1")
    refused_in_one_line(done)
    cache = tmp_path / "cache"
    out = tmp_path / "out.wasm"
    done = wasmhost_cli(
        "pull", "--oci-layout", "--verify-key", keys[1], "-o", out, f"{folder}:v1",
        env={**os.environ, "WASMHOST_CACHE_DIR": str(cache)},
    )  # fmt: skip
    refused_in_one_line(done)
    assert not out.exists()
    assert no_module_stored(cache)


@pytest.mark.parametrize(
    "hostile",
    ["a layer without a digest", "annotations that are a list"],
)
def test_signing_beside_a_hostile_signature_tag_is_one_line(
    keys: tuple[Path, Path], tmp_path: Path, hostile: str
) -> None:
    """sign() keeps the layers already there: a layer dict without "digest" crashes the
    config's diff_ids (KeyError), and one with this payload's digest but annotations
    that are not an object crashes the dedup (AttributeError); both exit 70."""
    folder, digest = a_layout(tmp_path)
    body = payload(IDENTITY, digest)
    layer: dict[str, object] = (
        {"mediaType": "text/plain"}
        if hostile == "a layer without a digest"
        else {**signed_layer(keys[0], body), "annotations": ["x"]}
    )
    forge_in_layout(folder, digest, [layer], (body,))
    done = wasmhost_cli(
        "sign", "--oci-layout", "--identity", IDENTITY, keys[0], f"{folder}:v1",
        env={**os.environ, "WASMHOST_KEY_PASSWORD": PASSWORD.decode()},
    )  # fmt: skip
    refused_in_one_line(done)


def test_signing_never_writes_a_tag_that_verify_then_refuses(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """verify refuses a tag of more than 64 signatures, and sign adds a 65th without a
    word: after it, no signature of the module verifies any more."""
    folder, digest = a_layout(tmp_path)
    body = payload(IDENTITY, digest)
    forge_in_layout(folder, digest, [signed_layer(keys[0], body)] * 64, (body,))
    client = RegistryClient(policy=False)
    assert client.verify(f"{folder}:v1", [keys[1]], oci_layout=True) == digest
    try:
        client.sign(f"{folder}:v1", keys[0], PASSWORD, identity=IDENTITY, oci_layout=True)
    except WasmhostError:
        return  # refused to add past what verify reads: fine
    assert client.verify(f"{folder}:v1", [keys[1]], oci_layout=True) == digest


def _envelope_pem(envelope: bytes) -> bytes:
    kind = "ENCRYPTED SIGSTORE PRIVATE KEY"
    body = base64.b64encode(envelope).decode()
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode()


def _with_params(pem: bytes, text: str) -> bytes:
    lines = pem.decode().strip().splitlines()
    envelope = json.loads(base64.b64decode("".join(lines[1:-1])))
    envelope["kdf"]["params"] = "PARAMS"
    return _envelope_pem(json.dumps(envelope).replace('"PARAMS"', text).encode())


@pytest.mark.parametrize(
    "hostile",
    [
        '{"N": 3, "r": 8, "p": 1}',  # hashlib: "n must be a power of 2"
        '{"N": 1048576, "r": 8, "p": 1}',  # within the bounds, 1 GiB: "memory limit exceeded"
        '{"N": 1048576, "r": 32, "p": 16}',  # 4 GiB
        '{"N": Infinity, "r": 8, "p": 1}',  # int(inf): OverflowError
        '{"N": 1e400, "r": 8, "p": 1}',
        "deep",  # the envelope nested past the recursion limit: RecursionError
    ],
    ids=["N not a power of 2", "1 GiB", "4 GiB", "Infinity", "1e400", "deep nesting"],
)
def test_hostile_scrypt_parameters_and_envelopes_are_one_clear_error(
    keys: tuple[Path, Path], tmp_path: Path, hostile: str
) -> None:
    pem = (
        _envelope_pem(b"[" * 40_000)
        if hostile == "deep"
        else _with_params(keys[0].read_bytes(), hostile)
    )
    with pytest.raises(ConfigError) as caught:
        load_private_key(pem, PASSWORD, "hostile.key")
    assert PASSWORD.decode() not in str(caught.value)
    (tmp_path / "hostile.key").write_bytes(pem)
    folder, _ = a_layout(tmp_path)
    done = wasmhost_cli(
        "sign", "--oci-layout", "--identity", IDENTITY, tmp_path / "hostile.key", f"{folder}:v1",
        env={**os.environ, "WASMHOST_KEY_PASSWORD": PASSWORD.decode()},
    )  # fmt: skip
    refused_in_one_line(done)


@pytest.mark.parametrize("curve", ["secp256k1", "brainpoolP256r1"])
def test_a_public_key_on_another_256_bit_curve_is_refused(curve: str) -> None:
    """The OpenSSL path checks "EC, 256 bits", not the curve: secp256k1 and brainpool
    keys pass for P-256 (cryptography's fallback refuses them, as the README says)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    chosen = {"secp256k1": ec.SECP256K1(), "brainpoolP256r1": ec.BrainpoolP256R1()}[curve]
    pem = (
        ec.generate_private_key(chosen)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigError, match="P-256"):
        load_public_key(pem, "other-curve.pub")


def test_a_fifo_among_the_kept_signatures_does_not_hang_a_run(
    registry: Registry, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """Store.signatures() opens the kept records with open(), not open_regular: a FIFO
    in <cache>/oci/signatures/<hex>/ blocks every verified run of that module."""
    reference = pushed(registry)
    RegistryClient(plain_http=True, policy=False).sign(reference, keys[0], PASSWORD)
    env = {**os.environ, "WASMHOST_CACHE_DIR": str(tmp_path / "cache")}
    done = wasmhost_cli("run", "--plain-http", "--verify-key", keys[1], reference, env=env)
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n"), done.stderr
    (kept,) = (tmp_path / "cache" / "oci" / "signatures").iterdir()
    os.mkfifo(kept / "planted")
    try:
        done = wasmhost_cli(
            "run", "--plain-http", "--verify-key", keys[1], reference, env=env, timeout=15
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a FIFO among the kept signatures hangs `run --verify-key`")
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n"), done.stderr


def test_signing_a_layout_whose_lock_file_is_a_fifo_does_not_hang(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """update_index() opens DIR/.index.lock with open(..., "a"): a FIFO there (a layout
    received from someone else) blocks `sign --oci-layout` forever."""
    folder, _ = a_layout(tmp_path)
    (folder / ".index.lock").unlink()
    os.mkfifo(folder / ".index.lock")
    try:
        done = wasmhost_cli(
            "sign", "--oci-layout", "--identity", IDENTITY, keys[0], f"{folder}:v1",
            env={**os.environ, "WASMHOST_KEY_PASSWORD": PASSWORD.decode()}, timeout=15,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("a FIFO as the layout's .index.lock hangs `sign --oci-layout`")
    assert done.returncode in (0, 1), done.stderr


def test_signing_a_layout_creates_no_file_outside_it(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """DIR/.index.lock that is a symbolic link makes `sign --oci-layout` create the file
    it names, wherever that is (any path the user may write: an empty
    ~/.config/wasmhost/policy.json, say, breaks every later command)."""
    folder, _ = a_layout(tmp_path)
    (folder / ".index.lock").unlink()
    outside = tmp_path / "elsewhere" / "created-by-sign"
    outside.parent.mkdir()
    (folder / ".index.lock").symlink_to(outside)
    wasmhost_cli(
        "sign", "--oci-layout", "--identity", IDENTITY, keys[0], f"{folder}:v1",
        env={**os.environ, "WASMHOST_KEY_PASSWORD": PASSWORD.decode()},
    )  # fmt: skip
    assert not outside.exists()


def test_a_policy_scope_is_not_stepped_around_by_the_hosts_case(
    registry: Registry, tmp_path: Path
) -> None:
    """Host names are case-insensitive, but parse_reference keeps the case and
    rule_for compares strings: LOCALHOST:PORT/repo reaches the same registry and falls
    to the (permissive) default instead of the scope that rejects it."""
    reference = pushed(registry)
    port = registry.host.rsplit(":", 1)[1]
    repository = parse_reference(reference).repository
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "default": {"type": "insecureAcceptAnything"},
                "scopes": {f"localhost:{port}": {"type": "reject"}},
            }
        )
    )
    client = RegistryClient(plain_http=True, policy=policy, cache_dir=tmp_path / "c")
    with pytest.raises(SignatureError, match="rejects"):
        client.fetch(f"localhost:{port}/{repository}:v1")
    with pytest.raises(SignatureError, match="rejects"):
        client.fetch(f"LOCALHOST:{port}/{repository}:v1")


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from wasmhost._oci import client

    class NoSession:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the policy let this through to the network")

    monkeypatch.setattr(client, "Session", NoSession)


@pytest.mark.parametrize(
    ("scope", "reference"),
    [
        ("docker.io", "index.docker.io/library/hello:v1"),  # Docker's own alias of Hub
        ("docker.io/hello", "hello:v1"),  # docker.io/library/hello, as a reference reads
        ("hello", "hello:v1"),
        ("DOCKER.IO/library/hello", "hello:v1"),
        ("localhost:5000/team", "LocalHost:5000/team/app:v1"),
    ],
)
def test_a_scope_and_a_reference_naming_the_same_repository_meet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str, reference: str
) -> None:
    """A scope is matched as written against the reference as parsed: a scope spelled
    otherwise than parse_reference normalises (docker.io/library, the host's case,
    Docker Hub's alias index.docker.io) silently never applies. Fixed, each is either
    normalised (and rejects before the network) or refused when the policy loads."""
    _no_network(monkeypatch)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"scopes": {scope: {"type": "reject"}}}))
    try:
        client = RegistryClient(policy=policy, cache_dir=tmp_path / "c")
    except ConfigError:
        return  # a scope that cannot match is refused: fine
    with pytest.raises(SignatureError, match="rejects"):
        client.fetch(reference)


def test_scopes_that_are_one_after_normalising_are_refused(tmp_path: Path) -> None:
    """load_policy strips a trailing slash, so "r/team" and "r/team/" become one key and
    the later silently wins: here the permissive one."""
    policy = tmp_path / "policy.json"
    (tmp_path / "team.pub").write_bytes(generate_key_pair(b"x")[1])
    policy.write_text(
        json.dumps(
            {
                "scopes": {
                    "registry.example.com/team": {"type": "signedBy", "keys": ["team.pub"]},
                    "registry.example.com/team/": {"type": "insecureAcceptAnything"},
                }
            }
        )
    )
    with pytest.raises(ConfigError, match="policy"):
        load_policy(policy)


def test_a_payload_with_duplicate_keys_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    """_signed_facts says it reads "as strictly as containers/image", which refuses
    duplicate keys; json.loads keeps the last, so verifiers disagree on what a payload
    names (here: the first "image" names another digest)."""
    folder, digest = a_layout(tmp_path)
    other = "sha256:" + "0" * 64
    body = (
        f'{{"critical":{{"identity":{{"docker-reference":"{IDENTITY}"}},'
        f'"image":{{"docker-manifest-digest":"{other}"}},"type":"{SIGNATURE_TYPE}",'
        f'"image":{{"docker-manifest-digest":"{digest}"}}}},"optional":null}}'
    ).encode()
    forge_in_layout(folder, digest, [signed_layer(keys[0], body)], (body,))
    with pytest.raises(SignatureError, match="not a cosign simple-signing payload"):
        RegistryClient(policy=False).verify(f"{folder}:v1", [keys[1]], oci_layout=True)


@pytest.mark.parametrize("identity", ["a.example/b\n", "a.example\n/b"])
def test_an_identity_with_a_newline_is_refused(identity: str) -> None:
    """The reference grammar's regexes end in "$", which also matches before a final
    newline: `--identity $'a.example/b\\n'` signs for a repository no pull can name."""
    with pytest.raises(WasmhostError):
        check_identity(identity)


# -- attacks that held (cheap, and not covered in test_signing.py) ----------------------


def _hostile(
    case: str, key: Path, digest: str
) -> tuple[list[object], tuple[bytes, ...], bytes | None]:
    """The signature manifest (layers, blobs, or raw bytes) for one hostile case."""
    body = payload(IDENTITY, digest)
    good = signed_layer(key, body)
    signature = str(good["annotations"][SIGNATURE_ANNOTATION])  # type: ignore[index]

    def payload_case(document: object) -> tuple[list[object], tuple[bytes, ...], None]:
        data = json.dumps(document).encode() if not isinstance(document, bytes) else document
        return [signed_layer(key, data)], (data,), None

    critical = {
        "identity": {"docker-reference": IDENTITY},
        "image": {"docker-manifest-digest": digest},
        "type": SIGNATURE_TYPE,
    }
    cases: dict[str, tuple[list[object], tuple[bytes, ...], bytes | None]] = {
        "size over": ([{**good, "size": len(body) + 10}], (body,), None),
        "size under": ([{**good, "size": 10}], (body,), None),
        "size negative": ([{**good, "size": -1}], (body,), None),
        "size a float": ([{**good, "size": float(len(body))}], (body,), None),
        "digest malformed": ([{**good, "digest": "sha256:../../../etc/passwd"}], (), None),
        "digest of the module's manifest": ([{**good, "digest": digest}], (), None),
        "digest of no blob": ([{**good, "digest": "sha256:" + "1" * 64}], (), None),
        "base64 with a newline": (
            [{**good, "annotations": {SIGNATURE_ANNOTATION: signature[:8] + "\n" + signature[8:]}}],
            (body,),
            None,
        ),
        "DER with trailing bytes": (
            [
                {
                    **good,
                    "annotations": {
                        SIGNATURE_ANNOTATION: base64.b64encode(
                            base64.b64decode(signature) + b"\0"
                        ).decode()
                    },
                }
            ],
            (body,),
            None,
        ),
        "signature of another payload": (
            [
                {
                    **signed_layer(key, payload("a.example/c", digest)),
                    "size": len(body),
                    "digest": sha256_digest(body),
                }
            ],
            (body,),
            None,
        ),
        "manifest not JSON": ([], (), b"not json"),
        "manifest nested deep": ([], (), b"[" * 100_000),
        "manifest over 4 MiB": ([], (), b" " * (5 << 20) + b"{}"),
        "manifest a list": ([], (), b"[1]"),
        "layers not dicts": ([], (), b'{"layers": [1, "x", null]}'),
        "payload with an extra field": payload_case(
            {"critical": {**critical, "extra": 1}, "optional": None}
        ),
        "payload without optional": payload_case({"critical": critical}),
        "payload identity a list": payload_case(
            {"critical": {**critical, "identity": [IDENTITY]}, "optional": None}
        ),
        "payload not UTF-8": payload_case(b"\xff\xfe"),
        "payload nested deep": payload_case(b"[" * 30_000),
    }
    return cases[case]


HOSTILE_CASES = [
    "size over",
    "size under",
    "size negative",
    "size a float",
    "digest malformed",
    "digest of the module's manifest",
    "digest of no blob",
    "base64 with a newline",
    "DER with trailing bytes",
    "signature of another payload",
    "manifest not JSON",
    "manifest nested deep",
    "manifest over 4 MiB",
    "manifest a list",
    "layers not dicts",
    "payload with an extra field",
    "payload without optional",
    "payload identity a list",
    "payload not UTF-8",
    "payload nested deep",
]


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_held_a_hostile_signature_manifest_in_a_layout_is_refused(
    keys: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    folder, digest = a_layout(tmp_path)
    layers, blobs, raw = _hostile(case, keys[0], digest)
    forge_in_layout(folder, digest, layers, blobs, raw)
    client = RegistryClient(policy=False, cache_dir=tmp_path / "c")
    with pytest.raises(WasmhostError) as caught:
        client.verify(f"{folder}:v1", [keys[1]], oci_layout=True)
    assert "\n" not in str(caught.value)
    strict = RegistryClient(policy=False, cache_dir=tmp_path / "c", verify=[keys[1]])
    with pytest.raises(WasmhostError):
        strict.fetch(f"{folder}:v1", oci_layout=True)
    assert no_module_stored(tmp_path / "c")


def test_held_a_tag_moved_between_the_check_and_the_download(
    registry: Registry, keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag is moved to an unsigned module right after its signature checked out: what
    is fetched is the digest that was checked."""
    from wasmhost._oci import signing

    reference = pushed(registry)
    signer = RegistryClient(plain_http=True, policy=False)
    signer.sign(reference, keys[0], PASSWORD)
    checked = signer.inspect(reference).digest
    real = signing.verify

    def verify_then_move(*args: object, **kwargs: object) -> signing.Verified:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        signer.push(HELLO, reference, annotations={"moved": "yes"})
        return found

    monkeypatch.setattr(signing, "verify", verify_then_move)
    client = RegistryClient(
        plain_http=True, policy=False, cache_dir=tmp_path / "c", verify=[keys[1]]
    )
    assert client.fetch(reference).digest == checked
    assert signer.inspect(reference).digest != checked


def test_held_a_kept_signature_swapped_for_another_modules_is_refused_offline(
    registry: Registry, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The kept record is replaced by a valid signature, by the same key, of another
    module: it is checked again, and offline the module is refused."""
    first, second = pushed(registry), pushed(registry)
    signer = RegistryClient(plain_http=True, policy=False)
    for reference in (first, second):
        signer.sign(reference, keys[0], PASSWORD)
    cache = tmp_path / "c"
    client = RegistryClient(plain_http=True, policy=False, cache_dir=cache, verify=[keys[1]])
    client.fetch(first)
    client.fetch(second)
    folders = {p.name: p for p in (cache / "oci" / "signatures").iterdir()}
    first_digest = signer.inspect(first).digest.removeprefix("sha256:")
    (kept,) = folders[first_digest].iterdir()
    (other,) = next(p for name, p in folders.items() if name != first_digest).iterdir()
    kept.chmod(0o644)
    kept.write_bytes(other.read_bytes())
    with pytest.raises(SignatureError, match="offline"):
        client.fetch(first, offline=True)
    assert client.fetch(second, offline=True).path.exists()


def test_held_a_wrong_key_password_and_a_registry_password_stay_secret(
    auth_registry: Registry, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """push --sign with registry credentials on stdin and a wrong key password: neither
    secret is in what is printed."""
    from conftest import REGISTRY_PASSWORD, REGISTRY_USER

    done = wasmhost_cli(
        "push", "--plain-http", "-u", REGISTRY_USER, "--password-stdin", "--sign", keys[0],
        HELLO, f"{auth_registry.host}/secret-{next(_counter)}:v1",
        input=REGISTRY_PASSWORD.encode() + b"\n",
        env={**os.environ, "WASMHOST_KEY_PASSWORD": "not-the-password-9f3b"},
    )  # fmt: skip
    err = refused_in_one_line(done)
    assert "wrong password" in err
    output = done.stdout + done.stderr
    assert REGISTRY_PASSWORD.encode() not in output
    assert b"not-the-password-9f3b" not in output


def test_a_key_password_on_an_endless_stdin_is_one_line(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """key_password(from_stdin=True) reads stdin whole (sys.stdin.buffer.read()), where the
    registry's --password-stdin reads one line of bounded length: /dev/zero on stdin
    eats memory until MemoryError (exit 70; without a limit, until the OOM killer)."""
    import resource

    folder, _ = a_layout(tmp_path)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    with open("/dev/zero", "rb") as endless:
        done = wasmhost_cli(
            "sign", "--oci-layout", "--password-stdin", "--identity", IDENTITY, keys[0],
            f"{folder}:v1", stdin=endless, preexec_fn=limited,
        )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode in (1, 2), err
    assert "unexpectedly" not in err, err
    assert "Traceback" not in err, err
