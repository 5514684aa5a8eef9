"""Bytes that are not UTF-8 in argv, the environment, stdin or a file name, where
wasmhost hands text on (to a guest, into a bundle's config.json, an artifact's
JSON, an HTTP request): refused with one line, never written as lone surrogates
nor met as an unexpected error (exit 70).

Real processes with bytes argv: click's CliRunner cannot pass such bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import HELLO, HTTP, wasmhost_cli
from test_cli import one_error_line

from wasmhost import ConfigError
from wasmhost._deploy.bundle import bundle_config, make_bundle

XFF = os.fsdecode(b"\xff")  # what Python makes of the byte 0xff in argv: '\udcff'
XFE = os.fsdecode(b"\xfe")


def usage_cases(t: Path) -> dict[str, tuple[list[str | bytes | Path], str]]:
    """Flags given non-UTF-8 text: a usage error (exit 2) naming the flag."""
    layout = f"{t}/layout:v1"
    return {
        "annotation-value": (["push", "--oci-layout", "-a", b"k=\xff", HELLO, layout], "'-a'"),
        "annotation-key": (["push", "--oci-layout", "-a", b"k\xff=v", HELLO, layout], "'-a'"),
        "username": (
            ["push", "-u", b"me\xff", "--password-stdin", HELLO, "127.0.0.1:1/x:1"],
            "'--username'",
        ),
        "run-env": (["run", "--env", b"A=\xff", HELLO], "'--env'"),
        "bundle-env": (["bundle", "--env", b"A=\xff", HELLO, f"{t}/bundle"], "'--env'"),
        "bundle-env-name": (["bundle", "--env", b"\xff=1", HELLO, f"{t}/bundle"], "'--env'"),
        "serve-env": (["serve", "--env", b"A=\xff", HELLO], "'--env'"),
        "compare-env": (["compare", "--env", b"A=\xff", HELLO], "'--env'"),
        "k8s-name": (["k8s", "--runtime", "crun", "--name", b"a\xff", "r.example/x:1"], "'--name'"),
        "k8s-image": (["k8s", "--runtime", "crun", b"r.example/x\xff:1"], "'IMAGE'"),
    }


@pytest.mark.parametrize("case", list(usage_cases(Path("t"))))
def test_non_utf8_flags_are_usage_errors(tmp_path: Path, case: str) -> None:
    args, flag = usage_cases(tmp_path)[case]
    done = wasmhost_cli(*args, input=b"secret\n")
    line = one_error_line(done)
    assert done.returncode == 2, line
    assert flag in line
    assert "is not valid UTF-8" in line
    assert not (tmp_path / "layout").exists()
    assert not (tmp_path / "bundle").exists()


def test_a_non_utf8_password_on_stdin_is_a_usage_error() -> None:
    done = wasmhost_cli("login", "-u", "me", "--password-stdin", "127.0.0.1:1", input=b"s3cr\xff\n")
    assert done.returncode == 2
    line = one_error_line(done)
    assert "--password-stdin read a password that is not valid UTF-8" in line
    assert "s3cr" not in line  # never echoed


def test_an_endless_password_on_stdin_is_refused() -> None:
    done = wasmhost_cli(
        "login", "-u", "me", "--password-stdin", "127.0.0.1:1", input=b"x" * (1 << 20)
    )
    assert done.returncode == 2
    assert "--password-stdin read more than" in one_error_line(done)


def library_cases(t: Path) -> dict[str, tuple[list[str | bytes | Path], str]]:
    """What only the library can judge (guest arguments, a layout's tag, a file's
    name, a value taken from the environment): a ConfigError, exit 1. Messages
    show the text as Python's repr does (``'\\udcff'``)."""
    odd = t / os.fsdecode(b"m\xff.wasm")
    return {
        "bundle-arg": (
            ["bundle", HELLO, f"{t}/bundle", "--", b"x\xfe"],
            f"argument {'x' + XFE!r} is not valid UTF-8",
        ),
        "bundle-second-arg": (
            ["bundle", HELLO, f"{t}/bundle", "--", "ok", b"\xff"],
            f"argument {XFF!r} is not valid UTF-8",
        ),
        "bundle-inherited-env": (
            ["bundle", "--env", "ODD", HELLO, f"{t}/bundle"],
            f"environment variable {XFF!r} is not valid UTF-8",
        ),
        "serve-inherited-env": (
            ["serve", "--listen", "127.0.0.1:0", "--env", "ODD", HTTP],
            f"environment variable {XFF!r} is not valid UTF-8",
        ),
        "bundle-file-name": (
            ["bundle", odd, f"{t}/bundle"],
            f"argument {'/' + odd.name!r} is not valid UTF-8",
        ),
        "push-layout-tag": (
            ["push", "--oci-layout", HELLO, f"{t}/layout:v".encode() + b"\xff"],
            f"tag {'v' + XFF!r} is not valid UTF-8",
        ),
        "push-file-name": (
            ["push", "--oci-layout", odd, f"{t}/layout:v1"],
            f"file name {odd.name!r} is not valid UTF-8",
        ),
        "push-image-file-name": (
            ["push", "--oci-layout", "--format", "image", odd, f"{t}/layout:v1"],
            f"file name {odd.name!r} is not valid UTF-8",
        ),
    }


@pytest.mark.parametrize("case", list(library_cases(Path("t"))))
def test_non_utf8_text_the_library_refuses(tmp_path: Path, case: str) -> None:
    shutil.copyfile(HELLO, tmp_path / os.fsdecode(b"m\xff.wasm"))
    args, message = library_cases(tmp_path)[case]
    done = wasmhost_cli(*args, env={**os.environ, "ODD": XFF})
    line = one_error_line(done)
    assert done.returncode == 1, line
    assert message in line
    assert not (tmp_path / "layout").exists()
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"args": [XFF]}, "argument"),
        ({"args": ["a\0b"]}, "NUL"),
        ({"env": {"A": XFF}}, "environment variable"),
        ({"env": {XFF: "1"}}, "environment variable"),
        ({"env": {"A=B": "1"}}, "contains '='"),
    ],
    ids=["arg", "nul-arg", "env-value", "env-name", "env-name-with-equals"],
)
def test_bundle_config_refuses_what_wasi_cannot_pass(given: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        bundle_config("m.wasm", **given)


def test_bundle_config_keeps_utf8_text(tmp_path: Path) -> None:
    config = make_bundle(HELLO, tmp_path / "b", args=["héllo", "☃"], env={"GRÜSS": "dich"})
    written = json.loads(config.read_bytes())
    assert written["process"]["args"] == ["/hello-world.wasm", "héllo", "☃"]
    assert "GRÜSS=dich" in written["process"]["env"]


def test_non_utf8_registry_credentials_from_the_environment() -> None:
    env = {
        **os.environ,
        "WASMHOST_REGISTRY": "127.0.0.1:1",
        "WASMHOST_REGISTRY_USERNAME": "me",
        "WASMHOST_REGISTRY_PASSWORD": "s3cr" + XFF,
    }
    done = wasmhost_cli("pull", "--plain-http", "127.0.0.1:1/x:1", env=env)
    line = one_error_line(done)
    assert done.returncode == 1
    assert "WASMHOST_REGISTRY_USERNAME or _PASSWORD is not valid UTF-8" in line
    assert "s3cr" not in line


def test_non_utf8_registry_credentials_from_python() -> None:
    from wasmhost import RegistryClient

    with pytest.raises(ConfigError, match="UTF-8"):
        RegistryClient(credentials={"127.0.0.1:1": ("me", "s3cr" + XFF)})
