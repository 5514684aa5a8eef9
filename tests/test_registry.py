"""Publishing and fetching modules through a real registry, checked by third-party clients."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import (
    FSPROBE,
    HELLO,
    NBODY,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    in_threads,
    wasmhost_cli,
)
from hostile import Hostile
from registry import Registry, self_signed, waits_counted
from terminal import on_terminal
from token_proxy import TokenProxy

from wasmhost import (
    ArtifactError,
    AuthenticationError,
    ConfigError,
    IntegrityError,
    ModuleError,
    NotFoundError,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
)

_counter = iter(range(10_000))


def repo(registry: Registry, name: str = "mod") -> str:
    """A fresh repository reference, so tests never see each other's tags."""
    return f"{registry.host}/{name}-{next(_counter)}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo_raw(reference: str) -> dict[str, object]:
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def client(tmp_path: Path) -> RegistryClient:
    return RegistryClient(plain_http=True, cache_dir=tmp_path / "cache")


@pytest.mark.oci_tools
def test_wasm_to_oci_round_trip_as_krustlet_reads_it(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    ref = repo(registry) + ":oci"
    pushed = client.push(HELLO, ref)
    manifest = skopeo_raw(ref)
    # What wasm-to-oci writes: no top-level mediaType (Krustlet refuses one).
    assert "mediaType" not in manifest
    assert manifest["schemaVersion"] == 2
    assert manifest["config"] == {
        "mediaType": "application/vnd.wasm.config.v1+json",
        "digest": sha256(b"{}"),
        "size": 2,
    }
    assert manifest["layers"] == [
        {
            "mediaType": "application/vnd.wasm.content.layer.v1+wasm",
            "digest": sha256(HELLO.read_bytes()),
            "size": HELLO.stat().st_size,
            "annotations": {"org.opencontainers.image.title": "hello-world.wasm"},
        }
    ]
    assert pushed.digest == sha256(
        subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
            capture_output=True,
            check=True,
        ).stdout
    )
    out = client.pull(ref, tmp_path / "out.wasm")
    assert out.path.read_bytes() == HELLO.read_bytes()
    assert out.format == "wasm-to-oci"
    assert out.digest == pushed.digest


@pytest.mark.oci_tools
def test_cncf_round_trip(registry: Registry, client: RegistryClient, tmp_path: Path) -> None:
    ref = repo(registry) + ":cncf"
    pushed = client.push(NBODY, ref, format="cncf")
    manifest = skopeo_raw(ref)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"  # type: ignore[index]
    [layer] = manifest["layers"]  # type: ignore[misc]
    assert layer["mediaType"] == "application/wasm"
    config_digest = manifest["config"]["digest"]  # type: ignore[index]
    host, _, path = ref.partition("/")
    config = httpx.get(f"http://{host}/v2/{path.split(':')[0]}/blobs/{config_digest}").json()
    assert config["architecture"] == "wasm"
    assert config["os"] == "wasip1"
    assert config["layerDigests"] == [sha256(NBODY.read_bytes())]
    assert "created" in config
    info = client.inspect(ref)
    assert (info.format, info.digest) == ("cncf", pushed.digest)
    assert client.pull(ref, tmp_path / "n.wasm").path.read_bytes() == NBODY.read_bytes()


@pytest.mark.oci_tools
def test_skopeo_copies_what_we_push_to_an_oci_layout(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    ref = repo(registry) + ":v1"
    client.push(HELLO, ref)
    layout = tmp_path / "layout"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:v1"],
        capture_output=True,
        check=True,
    )
    blob = layout / "blobs" / "sha256" / hashlib.sha256(HELLO.read_bytes()).hexdigest()
    assert blob.read_bytes() == HELLO.read_bytes()
    # And back: what skopeo pushes from the layout, we pull.
    ref2 = repo(registry) + ":copied"
    subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{ref2}"],
        capture_output=True,
        check=True,
    )
    assert client.pull(ref2, tmp_path / "back.wasm").path.read_bytes() == HELLO.read_bytes()


def test_a_plain_oras_push_of_a_wasm_file_is_pulled(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    import oras.client

    module = tmp_path / "plain.wasm"
    module.write_bytes(HELLO.read_bytes())
    ref = repo(registry) + ":oras"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # oras-py wants relative paths for the title annotation
    try:
        oras.client.OrasClient(insecure=True).push(files=["plain.wasm"], target=ref)
    finally:
        os.chdir(cwd)
    assert client.pull(ref, tmp_path / "got.wasm").path.read_bytes() == HELLO.read_bytes()


@pytest.mark.oci_tools
def test_annotations_created_and_reproducible(
    registry: Registry, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = repo(registry)
    first = client.push(
        HELLO, ref + ":a", annotations={"org.example.team": "wasm"}, reproducible=True
    )
    second = client.push(
        HELLO, ref + ":b", annotations={"org.example.team": "wasm"}, reproducible=True
    )
    assert first.digest == second.digest
    notes = skopeo_raw(ref + ":a")["annotations"]
    assert notes == {"org.example.team": "wasm"}
    stamped = skopeo_raw(f"{ref}@{client.push(HELLO, ref + ':c').digest}")
    assert "org.opencontainers.image.created" in stamped["annotations"]  # type: ignore[operator]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    epoch = skopeo_raw(f"{ref}@{client.push(HELLO, ref + ':d').digest}")
    assert epoch["annotations"] == {"org.opencontainers.image.created": "1970-01-02T00:00:00Z"}


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"#!/bin/sh\necho hi\n", "not a WebAssembly module")],
    ids=["empty", "script"],
)
def test_push_refuses_what_is_not_wasm(
    tmp_path: Path, client: RegistryClient, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(content)
    # No registry is contacted: the port is closed, and the error is about the file.
    with pytest.raises(ModuleError, match=message):
        client.push(path, "127.0.0.1:1/never:1")


def test_a_missing_tag_is_not_found(registry: Registry, client: RegistryClient) -> None:
    with pytest.raises(NotFoundError, match="was not found"):
        client.pull(repo(registry) + ":missing")


def test_a_manifest_without_wasm_is_refused_naming_what_it_holds(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    ref = repo(registry)
    host, _, name = ref.partition("/")
    base = f"http://{host}/v2/{name}"
    layer, config = b"not wasm", b"{}"
    for blob in (layer, config):
        location = httpx.post(f"{base}/blobs/uploads/").headers["Location"]
        joiner = "&" if "?" in location else "?"
        httpx.put(f"{location}{joiner}digest={sha256(blob)}", content=blob).raise_for_status()

    def put(tag: str, config_type: str, layers: list[dict[str, object]]) -> None:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_type, "digest": sha256(config), "size": 2},
            "layers": layers,
        }
        httpx.put(
            f"{base}/manifests/{tag}",
            content=json.dumps(manifest),
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ).raise_for_status()

    blob_desc = {"digest": sha256(layer), "size": len(layer)}
    put(
        "helm",
        "application/vnd.cncf.helm.config.v1+json",
        [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", **blob_desc}],
    )
    with pytest.raises(ArtifactError, match=r"holds no wasm module.*helm\.chart"):
        client.pull(ref + ":helm", tmp_path / "x.wasm")
    put(
        "image",
        "application/vnd.oci.image.config.v1+json",
        [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob_desc}],
    )
    with pytest.raises(ArtifactError, match="not a readable tar archive"):
        client.pull(ref + ":image", tmp_path / "x.wasm")
    assert not (tmp_path / "x.wasm").exists()


def test_a_tampered_blob_is_refused_and_nothing_is_kept(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    module = tmp_path / "victim.wasm"
    module.write_bytes(FSPROBE.read_bytes())
    ref = repo(registry) + ":v1"
    pushed = client.push(module, ref)
    blob = registry.blob_file(pushed.module_digest)
    original = blob.read_bytes()
    blob.write_bytes(original[:-4] + b"EVIL")
    try:
        with pytest.raises(IntegrityError, match=pushed.module_digest):
            client.pull(ref, tmp_path / "out.wasm")
        assert not (tmp_path / "out.wasm").exists()
        assert not client.store.has_blob(pushed.module_digest)
        leftovers = list((client.store.root / "blobs").rglob(".tmp-*"))
        assert leftovers == []
        done = wasmhost_cli(
            "run",
            "--plain-http",
            ref,
            env=dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "c2")),
        )
        assert done.returncode == 1
        assert b"does not match its digest" in done.stderr
        assert b"Traceback" not in done.stderr
    finally:
        blob.write_bytes(original)


def test_a_damaged_stored_copy_is_refused_offline_and_fetched_again_online(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    ref = repo(registry) + ":v1"
    fetched = client.fetch(client.push(HELLO, ref).reference)
    damaged = b"\0asm\x01\0\0\0" + b"\0" * (fetched.module_size - 8)
    fetched.path.write_bytes(damaged)
    with pytest.raises(IntegrityError, match="damaged"):
        client.fetch(fetched.reference, offline=True)
    fetched.path.write_bytes(damaged)
    assert client.fetch(fetched.reference).path.read_bytes() == HELLO.read_bytes()


@pytest.mark.registry
def test_run_by_reference_and_offline(tmp_path: Path) -> None:
    own = Registry(tmp_path / "own")
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "cache"))
    ref = f"{own.host}/hello:v1"
    try:
        pushed = RegistryClient(plain_http=True).push(HELLO, ref)
        done = wasmhost_cli("run", "--plain-http", ref, env=env)
        assert (done.returncode, done.stdout) == (0, b"Hello, World!\n")
    finally:
        own.stop()
    # By digest, once stored: the registry is gone and it still runs.
    by_digest = wasmhost_cli("run", "--plain-http", pushed.reference, env=env)
    assert (by_digest.returncode, by_digest.stdout) == (0, b"Hello, World!\n")
    # By tag: resolved again, so it fails, saying how to run the stored copy.
    by_tag = wasmhost_cli("run", "--plain-http", ref, env=env)
    assert by_tag.returncode == 1
    assert b"refused or unreachable" in by_tag.stderr
    assert b"--offline" in by_tag.stderr
    offline = wasmhost_cli("run", "--offline", ref, env=env)
    assert (offline.returncode, offline.stdout) == (0, b"Hello, World!\n")
    never = wasmhost_cli("run", "--offline", f"{own.host}/other:v1", env=env)
    assert never.returncode == 1
    assert b"has not been pulled before" in never.stderr


def test_a_dead_registry_fails_fast_with_one_line(tmp_path: Path) -> None:
    slept: list[float] = []
    client = waits_counted(RegistryClient(plain_http=True, cache_dir=tmp_path), slept)
    with pytest.raises(RegistryUnreachable, match="refused or unreachable"):
        client.pull("127.0.0.1:1/dead:v1")
    assert len(slept) == 2  # three attempts in all
    assert sum(slept) < 2
    done = wasmhost_cli("pull", "--plain-http", "127.0.0.1:1/dead:v1")
    assert done.returncode == 1
    assert len(done.stderr.decode().strip().splitlines()) == 1


def test_concurrent_pulls_share_the_store(registry: Registry, tmp_path: Path) -> None:
    ref = repo(registry) + ":v1"
    RegistryClient(plain_http=True).push(NBODY, ref)
    results: list[bytes] = []

    def pull(i: int) -> None:
        with RegistryClient(plain_http=True, cache_dir=tmp_path / "shared") as client:
            results.append(client.pull(ref, tmp_path / f"out{i}.wasm").path.read_bytes())

    in_threads(pull, 8)
    assert results == [NBODY.read_bytes()] * 8
    assert list((tmp_path / "shared").rglob(".tmp-*")) == []


# -- credentials -------------------------------------------------------------


def test_anonymous_access_is_refused_with_facts_and_advice(
    auth_registry: Registry, tmp_path: Path
) -> None:
    """The library speaks of its API; each command names only flags it has."""
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    ref = f"{auth_registry.host}/private:v1"
    with pytest.raises(AuthenticationError, match=r"requires credentials.*credentials for") as info:
        client.push(HELLO, ref)
    error = info.value
    assert (error.registry, error.status, error.fix) == (auth_registry.host, 401, "credentials")
    assert "wasmhost" not in str(error)
    assert "--" not in str(error)
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "c"))
    pushed = wasmhost_cli("push", "--plain-http", HELLO, ref, env=env)
    assert b"pass --username with --password-stdin" in pushed.stderr
    for command in (["run"], ["serve"]):
        done = wasmhost_cli(*command, "--plain-http", ref, env=env)
        err = done.stderr.decode()
        assert done.returncode == 1
        assert f"run `wasmhost login {auth_registry.host}` first" in err, err
        assert "--username" not in err
        assert "--password-stdin" not in err


def test_wrong_credentials_are_refused_and_never_shown(
    auth_registry: Registry, tmp_path: Path
) -> None:
    secret = "wrong-but-secret-password"
    client = RegistryClient(
        plain_http=True,
        credentials={auth_registry.host: (REGISTRY_USER, secret)},
        cache_dir=tmp_path,
    )
    with pytest.raises(AuthenticationError, match="refused the credentials") as info:
        client.push(HELLO, f"{auth_registry.host}/private:v1")
    assert secret not in str(info.value)
    done = wasmhost_cli(
        "push",
        "--plain-http",
        "-u",
        REGISTRY_USER,
        "--password-stdin",
        HELLO,
        f"{auth_registry.host}/private:v1",
        input=secret.encode() + b"\n",
    )
    assert done.returncode == 1
    assert secret.encode() not in done.stderr + done.stdout


def test_docker_config_credentials_are_used(
    auth_registry: Registry, docker_config: Path, tmp_path: Path
) -> None:
    import base64

    token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    (docker_config / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": token}}})
    )
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    ref = f"{auth_registry.host}/private-{next(_counter)}:v1"
    client.push(HELLO, ref)
    assert client.pull(ref, tmp_path / "p.wasm").path.read_bytes() == HELLO.read_bytes()


def login_cli(
    registry: Registry, docker_config: Path, password: str
) -> subprocess.CompletedProcess[bytes]:
    """`wasmhost login` as the test user, with the password on stdin, into ``docker_config``."""
    return wasmhost_cli(
        "login",
        "--plain-http",
        "-u",
        REGISTRY_USER,
        "--password-stdin",
        registry.host,
        input=password.encode() + b"\n",
        env=dict(os.environ, DOCKER_CONFIG=str(docker_config)),
    )


def test_login_and_logout_write_the_docker_config(
    auth_registry: Registry, docker_config: Path, tmp_path: Path
) -> None:
    login = login_cli(auth_registry, docker_config, REGISTRY_PASSWORD)
    assert login.returncode == 0, login.stderr
    assert b"Login Succeeded" in login.stdout
    config_file = docker_config / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert auth_registry.host in json.loads(config_file.read_text())["auths"]
    assert REGISTRY_PASSWORD.encode() not in login.stdout + login.stderr
    push = wasmhost_cli(
        "push",
        "--plain-http",
        HELLO,
        f"{auth_registry.host}/after-login:v1",
        env=dict(os.environ, DOCKER_CONFIG=str(docker_config)),
    )
    assert push.returncode == 0, push.stderr
    logout = wasmhost_cli(
        "logout", auth_registry.host, env=dict(os.environ, DOCKER_CONFIG=str(docker_config))
    )
    assert logout.returncode == 0
    assert json.loads(config_file.read_text())["auths"] == {}
    bad = login_cli(auth_registry, docker_config, "nope")
    assert bad.returncode == 1
    assert json.loads(config_file.read_text())["auths"] == {}


def test_login_on_a_terminal_asks_and_never_shows_the_password(
    auth_registry: Registry, docker_config: Path
) -> None:
    user, password = REGISTRY_USER.encode(), REGISTRY_PASSWORD.encode()
    status, shown = on_terminal(
        ["login", "--plain-http", auth_registry.host],
        [(b"Username:", user + b"\n"), (b"Password:", password + b"\n")],
    )
    assert status == 0, shown
    assert b"Username: " + user in shown  # what is typed is echoed ...
    assert password not in shown  # ... but the password
    assert b"Login Succeeded" in shown
    auths = json.loads((docker_config / "config.json").read_text())["auths"]
    assert list(auths) == [auth_registry.host]
    # --username given: only the password is asked for; a wrong one is refused.
    status, shown = on_terminal(
        ["login", "--plain-http", "-u", REGISTRY_USER, auth_registry.host],
        [(b"Password:", b"not-the-password\n")],
    )
    assert status == 1, shown
    assert b"Username" not in shown
    assert b"not-the-password" not in shown
    assert b"check the username and password" in shown


def test_login_without_a_terminal_says_to_use_password_stdin() -> None:
    done = wasmhost_cli("login", "127.0.0.1:9", stdin=subprocess.DEVNULL)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "stdin is not one; pass --username with --password-stdin" in err, err


def credential_helper(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real docker-credential-* program on PATH (a tiny one of the test's own) that keeps
    what it is given in a file, as the real helpers keep it in a keychain."""
    bin_dir.mkdir()
    keychain = bin_dir / "keychain.json"
    helper = bin_dir / "docker-credential-wasmtest"
    helper.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"keychain = {str(keychain)!r}\n"
        "try:\n    store = json.load(open(keychain))\nexcept OSError:\n    store = {}\n"
        "action, data = sys.argv[1], sys.stdin.read().strip()\n"
        "if action == 'store':\n"
        "    entry = json.loads(data)\n    store[entry['ServerURL']] = entry\n"
        "elif action == 'erase':\n    store.pop(data, None)\n"
        "elif action == 'get':\n"
        "    if data not in store:\n"
        "        print('credentials not found in native keychain'); sys.exit(1)\n"
        "    print(json.dumps(store[data]))\n"
        "json.dump(store, open(keychain, 'w'))\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return keychain


@pytest.mark.parametrize("key", ["credsStore", "credHelpers"])
def test_a_credential_helper_from_the_docker_config(
    auth_registry: Registry,
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
) -> None:
    keychain = credential_helper(tmp_path / "bin", monkeypatch)
    if key == "credsStore":
        config: dict[str, object] = {"credsStore": "wasmtest"}
    else:
        config = {"credHelpers": {auth_registry.host: "wasmtest"}}
    (docker_config / "config.json").write_text(json.dumps(config))
    ref = f"{auth_registry.host}/helper-{next(_counter)}:v1"
    with pytest.raises(AuthenticationError, match="requires credentials"):
        RegistryClient(plain_http=True, cache_dir=tmp_path / "c").push(HELLO, ref)
    login = login_cli(auth_registry, docker_config, REGISTRY_PASSWORD)
    assert login.returncode == 0, login.stderr
    assert json.loads(keychain.read_text())[auth_registry.host]["Secret"] == REGISTRY_PASSWORD
    assert REGISTRY_PASSWORD not in (docker_config / "config.json").read_text()
    RegistryClient(plain_http=True, cache_dir=tmp_path / "c").push(HELLO, ref)
    assert RegistryClient.logout(auth_registry.host)
    assert json.loads(keychain.read_text()) == {}


def test_environment_credentials(
    auth_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"{auth_registry.host}/env-{next(_counter)}:v1"
    monkeypatch.setenv("WASMHOST_REGISTRY_USERNAME", REGISTRY_USER)
    monkeypatch.setenv("WASMHOST_REGISTRY_PASSWORD", REGISTRY_PASSWORD)
    # Without WASMHOST_REGISTRY they are for no registry in particular: refused, not sent.
    with pytest.raises(ConfigError, match="WASMHOST_REGISTRY does not say"):
        RegistryClient(plain_http=True, cache_dir=tmp_path).push(HELLO, ref)
    # Named for another registry: not sent here.
    monkeypatch.setenv("WASMHOST_REGISTRY", "other.example")
    with pytest.raises(AuthenticationError, match="requires credentials"):
        RegistryClient(plain_http=True, cache_dir=tmp_path).push(HELLO, ref)
    monkeypatch.setenv("WASMHOST_REGISTRY", f"http://{auth_registry.host}/")
    RegistryClient(plain_http=True, cache_dir=tmp_path).push(HELLO, ref)
    # Credentials given for the registry come first.
    wrong = RegistryClient(
        plain_http=True, credentials={auth_registry.host: ("nobody", "x")}, cache_dir=tmp_path
    )
    with pytest.raises(AuthenticationError, match="refused the credentials"):
        wrong.push(HELLO, ref)


def test_explicit_credentials_go_to_their_registry_only(
    auth_registry: Registry, registry: Registry, tmp_path: Path
) -> None:
    """Credentials given for one registry are never offered to another one."""
    stranger = Hostile({})
    stranger.ask_for_a_token("/v2/app/manifests/v1")
    try:
        client = RegistryClient(
            plain_http=True,
            credentials={auth_registry.host: (REGISTRY_USER, REGISTRY_PASSWORD)},
            cache_dir=tmp_path,
        )
        client.push(HELLO, f"{auth_registry.host}/scoped:v1")
        client.push(HELLO, f"{registry.host}/scoped:v1")
        with pytest.raises(RegistryError):
            client.inspect(f"{stranger.host}/app:v1")
    finally:
        stranger.stop()
    assert any(path.startswith("/token") for _, path, _ in stranger.seen)
    for _, _, headers in stranger.seen:
        # Its own anonymous token at most, never a Basic header with our password.
        assert not headers.get("Authorization", "").startswith("Basic"), headers


# -- the CLI -----------------------------------------------------------------


def test_cli_push_pull_inspect(registry: Registry, tmp_path: Path) -> None:
    ref = repo(registry, "cli") + ":v1"
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "cache"))
    push = wasmhost_cli(
        "push", "--plain-http", "--format", "cncf", "-a", "team=wasm", HELLO, ref, env=env
    )
    assert push.returncode == 0, push.stderr
    digest = push.stdout.decode().split("Digest: ")[1].strip()
    inspect = wasmhost_cli("inspect", "--plain-http", "--json", ref, env=env)
    info = json.loads(inspect.stdout)
    assert info["digest"] == digest
    assert info["format"] == "cncf"
    assert info["annotations"]["team"] == "wasm"
    assert info["layers"][0]["media_type"] == "application/wasm"
    pull = wasmhost_cli("pull", "--plain-http", ref, cwd=tmp_path, env=env)
    assert pull.returncode == 0, pull.stderr
    name = ref.rsplit("/", 1)[1].split(":")[0] + ".wasm"
    assert (tmp_path / name).read_bytes() == HELLO.read_bytes()
    quiet = wasmhost_cli("push", "--plain-http", "-q", HELLO, ref, env=env)
    assert quiet.stdout.decode().strip().startswith("sha256:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["push", "--plain-http", "x.wasm", "Bad Ref"], "not a reference"),
        (["pull", "--plain-http", "127.0.0.1:1/x@sha256:123"], "64 hex digits"),
        (["push", "-u", "someone", "x.wasm", "127.0.0.1:1/x:1"], "--password-stdin"),
        (["push", "--format", "zip", "x.wasm", "127.0.0.1:1/x:1"], "'zip' is not one of"),
    ],
    ids=["bad-reference", "bad-digest", "no-password", "bad-format"],
)
def test_cli_bad_registry_input(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.wasm").write_bytes(HELLO.read_bytes())
    done = wasmhost_cli(*args, cwd=tmp_path)
    assert done.returncode in (1, 2)
    err = done.stderr.decode()
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_bearer_token_challenges(registry: Registry, tmp_path: Path) -> None:
    proxy = TokenProxy(registry.host, REGISTRY_USER, REGISTRY_PASSWORD)
    try:
        ref = f"{proxy.host}/bearer-{next(_counter)}:v1"
        anonymous = RegistryClient(plain_http=True, cache_dir=tmp_path / "a")
        with pytest.raises(AuthenticationError, match="requires credentials"):
            anonymous.push(HELLO, ref)
        client = RegistryClient(
            plain_http=True,
            credentials={proxy.host: (REGISTRY_USER, REGISTRY_PASSWORD)},
            cache_dir=tmp_path,
        )
        client.push(HELLO, ref)
        assert client.pull(ref, tmp_path / "b.wasm").path.read_bytes() == HELLO.read_bytes()
        assert proxy.token_requests
        assert proxy.token_requests[0]["service"] == ["wasmhost-test"]
    finally:
        proxy.stop()


@pytest.mark.oci_tools
def test_an_index_resolves_to_its_wasm_manifest(
    registry: Registry, client: RegistryClient, tmp_path: Path
) -> None:
    ref = repo(registry)
    pushed = client.push(HELLO, ref + ":single")
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}:single"],
        capture_output=True,
        check=True,
    ).stdout
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": pushed.digest,
                "size": len(raw),
                "platform": {"architecture": "wasm", "os": "wasip1"},
            }
        ],
    }
    host, _, name = ref.partition("/")
    httpx.put(
        f"http://{host}/v2/{name}/manifests/multi",
        content=json.dumps(index),
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    ).raise_for_status()
    pulled = client.pull(ref + ":multi", tmp_path / "m.wasm")
    assert pulled.digest == pushed.digest
    assert pulled.path.read_bytes() == HELLO.read_bytes()


# -- transport: TLS and HTTP failures ------------------------------------------


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Path]]:
    folder = tmp_path_factory.mktemp("tls-registry")
    cert, key = self_signed(folder)
    server = Registry(folder, tls=(cert, key))
    yield server, cert
    server.stop()


def test_https_by_default_with_a_ca_file_or_insecure(
    tls_registry: tuple[Registry, Path], tmp_path: Path
) -> None:
    server, cert = tls_registry
    ref = f"{server.host}/tls-{next(_counter)}:v1"
    with pytest.raises(RegistryUnreachable, match=r"TLS with .* failed.*ca_file") as info:
        RegistryClient(cache_dir=tmp_path).push(HELLO, ref)
    assert info.value.fix == "tls"
    done = wasmhost_cli("push", HELLO, ref, env=dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path)))
    assert b"pass --ca-file with its CA, --insecure" in done.stderr
    RegistryClient(ca_file=cert, cache_dir=tmp_path).push(HELLO, ref)
    pulled = RegistryClient(insecure=True, cache_dir=tmp_path / "i").pull(ref, tmp_path / "h.wasm")
    assert pulled.path.read_bytes() == HELLO.read_bytes()
    # Plain HTTP against a TLS port gets the registry's HTTP 400: one line that
    # says the registry speaks TLS, not only the status.
    done = wasmhost_cli("pull", "--plain-http", ref, cwd=tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert b"speaks HTTPS (TLS) where plain HTTP was asked" in done.stderr


@pytest.mark.parametrize(
    ("statuses", "error", "message", "requests"),
    [
        ([403], AuthenticationError, "denied access.*check that this account", 1),
        ([404], NotFoundError, "was not found.*the registry explains", 1),
        ([500], RegistryError, "failed with HTTP 500.*try again later", 1),
        ([503, 503, 503], RegistryError, "failed with HTTP 503", 3),
        ([429, 502], RegistryError, "failed with HTTP 500", 3),
        ([418], RegistryError, "answered HTTP 418", 1),
    ],
    ids=["403", "404", "500-not-retried", "503-retried", "transient-then-500", "418"],
)
def test_http_failures_say_what_to_do_and_retry_only_transient_ones(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    statuses: list[int],
    error: type[Exception],
    message: str,
    requests: int,
) -> None:
    remaining = list(statuses)
    body = b'{"errors": [{"code": "X", "message": "the registry explains"}]}'
    server = Hostile(
        {"/v2/x/manifests/v1": lambda _: (remaining.pop(0) if remaining else 500, {}, body)}
    )
    client = waits_counted(RegistryClient(plain_http=True, cache_dir=tmp_path))
    try:
        with (
            caplog.at_level(logging.INFO, logger="wasmhost.registry"),
            pytest.raises(error, match=message),
        ):
            client.inspect(f"{server.host}/x:v1")
    finally:
        server.stop()
    assert len(server.seen) == requests
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == requests - 1


def test_push_returns_and_prints_the_reference_with_its_tag_and_digest(
    registry: Registry, tmp_path: Path
) -> None:
    ref = repo(registry) + ":v1"
    client = RegistryClient(plain_http=True, cache_dir=tmp_path)
    pushed = client.push(HELLO, ref, reproducible=True)
    assert pushed.reference == f"{ref}@{pushed.digest}"
    done = wasmhost_cli("push", "--plain-http", "--reproducible", HELLO, ref)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        f"Pushed {pushed.reference} (wasm-to-oci)",
        f"Digest: {pushed.digest}",
    ]
    assert client.pull(pushed.reference, tmp_path / "back.wasm").reference == pushed.reference


def padded(module: Path, size: int, folder: Path) -> Path:
    """``module`` with a custom section that makes it ``size`` bytes bigger (it still runs)."""
    payload = b"\x03pad" + bytes(size)
    length, leb = len(payload), bytearray()
    while length > 0x7F:
        leb.append(length & 0x7F | 0x80)
        length >>= 7
    leb.append(length)
    path = folder / module.name
    path.write_bytes(module.read_bytes() + b"\x00" + bytes(leb) + payload)
    return path


def test_run_and_serve_show_pulls_progress_bar_on_a_terminal_only(
    registry: Registry, tmp_path: Path
) -> None:
    ref = repo(registry, "big") + ":v1"
    RegistryClient(plain_http=True, cache_dir=tmp_path / "push").push(
        padded(HELLO, 2 << 20, tmp_path), ref
    )

    def env(name: str) -> dict[str, str]:  # an empty store each time: the module is fetched
        return dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / name))

    full = b"Pulling  [" + b"#" * 36 + b"]  100%"  # the bar, as pull draws it, at its end
    status, shown = on_terminal(
        ["pull", "--plain-http", ref, "-o", tmp_path / "p.wasm"], env=env("pull")
    )
    assert status == 0, shown
    assert full in shown.split(b"\r\n")[0], shown
    status, shown = on_terminal(["run", "--plain-http", ref], env=env("run"))
    assert status == 0, shown
    assert full in shown.split(b"\r\n")[0], shown
    assert shown.endswith(b"\r\nHello, World!\r\n"), shown  # the bar's line was ended
    status, shown = on_terminal(
        ["serve", "--plain-http", "--listen", "127.0.0.1:0", ref],
        [(b"http://127.0.0.1:", b"\x03")],  # Ctrl-C once it listens
        env=env("serve"),
    )
    assert status in (0, 130), shown  # stopped by the Ctrl-C
    assert full in shown.split(b"\r\n")[0], shown
    piped = wasmhost_cli("run", "--plain-http", ref, env=env("piped"))
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, b"Hello, World!\n", b"")


def test_run_by_digest_names_the_module_after_its_repository(
    registry: Registry, tmp_path: Path
) -> None:
    ref = repo(registry, "probe") + ":v1"
    pushed = RegistryClient(plain_http=True, cache_dir=tmp_path).push(FSPROBE, ref)
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "run"))
    done = wasmhost_cli("run", "--plain-http", pushed.reference, "args", env=env)
    assert done.returncode == 0, done.stderr
    name = ref.rsplit("/", 1)[1].split(":")[0]
    assert done.stdout.decode().splitlines() == [f"{name}.wasm", "args"]
    assert (tmp_path / "run" / "oci" / "blobs").is_dir()  # --cache-dir/WASMHOST_CACHE_DIR holds it


def test_concurrent_pull_processes_share_the_store(registry: Registry, tmp_path: Path) -> None:
    ref = repo(registry) + ":v1"
    RegistryClient(plain_http=True).push(NBODY, ref)
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "shared"))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wasmhost",
                "pull",
                "--plain-http",
                "-q",
                ref,
                "-o",
                str(tmp_path / f"out{i}.wasm"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for i in range(6):
        assert (tmp_path / f"out{i}.wasm").read_bytes() == NBODY.read_bytes()
    assert list((tmp_path / "shared").rglob(".tmp-*")) == []


@pytest.mark.oci_tools
def test_the_pull_store_is_an_oci_layout_that_umoci_and_skopeo_read(
    registry: Registry, tmp_path: Path
) -> None:
    client = RegistryClient(plain_http=True, cache_dir=tmp_path / "cache")
    refs = [repo(registry, "one") + ":v1", repo(registry, "two") + ":v2"]
    modules = [HELLO, FSPROBE]
    digests = [client.push(m, ref).digest for m, ref in zip(modules, refs, strict=True)]
    for ref in refs:
        client.fetch(ref)
    client.fetch(refs[0])  # again: listed once
    store = tmp_path / "cache" / "oci"
    listed = subprocess.run(
        ["umoci", "ls", "--layout", str(store)], capture_output=True, text=True, check=True
    )
    assert sorted(listed.stdout.split()) == sorted(refs)
    for ref, digest in zip(refs, digests, strict=True):
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{store}:{ref}"], capture_output=True, check=True
        ).stdout
        assert hashlib.sha256(raw).hexdigest() == digest.removeprefix("sha256:")


def test_a_wrong_password_at_login_does_not_point_back_at_login(
    auth_registry: Registry, tmp_path: Path
) -> None:
    done = wasmhost_cli(
        "login",
        "--plain-http",
        "-u",
        "nobody",
        "--password-stdin",
        auth_registry.host,
        input=b"wrong\n",
        env=dict(os.environ, DOCKER_CONFIG=str(tmp_path)),
    )
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith("; check the username and password.")
    assert "wasmhost login" not in lines[0]


def test_errors_of_a_module_run_by_reference_name_the_reference(registry: Registry) -> None:
    reference = f"{registry.host}/calls-{next(_counter)}:v1"
    RegistryClient(plain_http=True).push(HELLO.with_name("host-calls.wasm"), reference)
    done = wasmhost_cli("run", "--plain-http", reference)
    assert done.returncode == 1
    assert done.stderr.decode().startswith(f"Error: {reference} imports env.log")
    assert b"blobs" not in done.stderr
