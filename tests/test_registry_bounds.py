"""What a registry, an image layer, a Docker config or a credential helper sends cannot
exhaust or hang the process that reads it: every read is bounded, every wait ends, and
each refusal is one clear line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import wasmhost_cli
from test_registry_trust import cli_env, one_line

from wasmhost import AuthenticationError, ConfigError, RegistryClient
from wasmhost._oci import credentials

# Where nothing listens: the Docker config and its helper are read before any request.
NOWHERE = "127.0.0.1:9/app:v1"


@pytest.mark.parametrize(
    "config",
    [b'{"auths": {"\xff": {}}}', b"[" * 100_000, b'{"auths": ' + b"7" * 5000 + b"}"],
    ids=["not-utf8", "deep", "long-number"],
)
def test_a_hostile_docker_config_is_one_line(
    docker_config: Path, tmp_path: Path, config: bytes
) -> None:
    path = docker_config / "config.json"
    path.write_bytes(config)
    with pytest.raises(ConfigError, match="is not JSON; fix or remove it"):
        RegistryClient(plain_http=True, cache_dir=tmp_path).inspect(NOWHERE)
    env = cli_env(tmp_path, DOCKER_CONFIG=str(docker_config))
    for argv in (["pull", "--plain-http", NOWHERE], ["logout", "127.0.0.1:9"]):
        err = one_line(wasmhost_cli(*argv, env=env, cwd=tmp_path))
        assert f"the Docker config {path} is not JSON; fix or remove it." in err


def helper(folder: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A docker-credential-hostile on PATH running ``script`` (sh), named by the config."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    program = bin_dir / "docker-credential-hostile"
    program.write_text("#!/bin/sh\ncat >/dev/null\n" + script + "\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (Path(os.environ["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"credsStore": "hostile"})
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ('{"Username": 5, "Secret": "s"}', "not credentials"),
        ('{"Username": "u", "Secret": null}', "not credentials"),
        ('{"Username": "u", "Secret": ""}', "not credentials"),
        ('{"Username": "", "Secret": "s"}', "not credentials"),
        ("null", "is not a JSON object"),
        ('""', "is not a JSON object"),
        ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "is not JSON"),
        (r'{"Username": "\377"}', "is not JSON"),
    ],
    ids=[
        "number",
        "null-secret",
        "empty-secret",
        "empty-user",
        "null",
        "string",
        "cut",
        "not-utf8",
    ],
)
def test_a_credential_helper_answer_that_is_not_credentials_is_refused(
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    message: str,
) -> None:
    helper(tmp_path, f"printf '{answer}'", monkeypatch)
    with pytest.raises(AuthenticationError, match=message):
        RegistryClient(plain_http=True, cache_dir=tmp_path).inspect(NOWHERE)
    err = one_line(wasmhost_cli("pull", "--plain-http", NOWHERE, env=cli_env(tmp_path)))
    assert "docker-credential-hostile" in err


def test_an_empty_answer_is_no_credentials(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``docker`` reads it: nothing stored, so the request goes out anonymously."""
    helper(tmp_path, """printf '{"ServerURL": "", "Username": "", "Secret": ""}'""", monkeypatch)
    assert credentials.lookup("127.0.0.1:9") is None


def test_a_helper_that_talks_forever_is_cut_off(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper(tmp_path, "exec cat /dev/zero", monkeypatch)
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="wrote more than 64 KiB"):
        credentials.lookup("127.0.0.1:9")
    assert time.monotonic() - started < 10


def test_a_helper_that_hangs_is_killed_with_its_children(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"
    # Its children keep its stdout open: waiting for that would wait for them.
    helper(
        tmp_path, f"sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait", monkeypatch
    )
    monkeypatch.setattr(credentials, "HELPER_TIMEOUT", 1.0)
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="did not answer in 1 s"):
        credentials.lookup("127.0.0.1:9")
    assert time.monotonic() - started < 10
    children = [int(line) for line in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead (its parent, the killed helper, is gone: init reaps it soon).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
