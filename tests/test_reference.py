"""Registry references, parsed as Docker parses them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import wasmhost_cli

from wasmhost import InvalidReference
from wasmhost._oci.reference import Reference, looks_like_reference, parse_reference, parse_registry

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", Reference("docker.io", "library/hello", "latest", None)),
        ("hello:1.0", Reference("docker.io", "library/hello", "1.0", None)),
        ("user/hello", Reference("docker.io", "user/hello", "latest", None)),
        ("ghcr.io/org/app:oci", Reference("ghcr.io", "org/app", "oci", None)),
        ("localhost/app", Reference("localhost", "app", "latest", None)),
        ("localhost:5000/a/b/c:t", Reference("localhost:5000", "a/b/c", "t", None)),
        ("127.0.0.1:5000/x@" + DIGEST, Reference("127.0.0.1:5000", "x", None, DIGEST)),
        ("r.io/x:t@" + DIGEST, Reference("r.io", "x", "t", DIGEST)),
        ("[::1]:5000/x:y", Reference("[::1]:5000", "x", "y", None)),
    ],
)
def test_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_docker_hub_talks_to_its_api_host() -> None:
    assert parse_reference("hello").api_host == "registry-1.docker.io"
    assert parse_reference("ghcr.io/a/b").api_host == "ghcr.io"


def test_str_round_trips() -> None:
    for text in ("ghcr.io/org/app:oci", "r.io/x:t@" + DIGEST, "localhost:5000/a@" + DIGEST):
        assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hello", "lower-case"),
        ("", "not a reference"),
        ("ghcr.io/a:b:c", "not a reference"),
        ("x@sha256:12", "64 hex digits"),
        ("x@md5:" + "a" * 32, "64 hex digits"),
        ("r.io/a:" + "t" * 200, "not a valid tag"),
        ("r.io/a:-bad", "not a valid tag"),
        ("r.io/UPPER", "lower-case"),
        ("r.io//a", "not a reference"),
        ("repo:", "the tag after ':' is empty"),
        ("localhost:5000/x:", "the tag after ':' is empty"),
        ("r.io/x:@" + DIGEST, "the tag after ':' is empty"),
        ("repo@", "the digest after '@' is empty"),
        ("localhost:5000/x:v1@", "the digest after '@' is empty"),
    ],
)
def test_bad_references(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("artifacts/hello.wasm", False),
        ("hello.wasm", False),
        ("./a/b", False),
        ("../a/b", False),
        ("/abs/path/x", False),
        ("a/b", False),
        ("hello:latest", True),
        ("ghcr.io/org/app", True),
        ("localhost:5000/app", True),
        ("x@" + DIGEST, True),
        ("ghcr.io/org/app.wasm", False),
        ("ghcr.io/org/app.wasm:v1", True),
    ],
)
def test_what_run_takes_for_a_reference(text: str, meant: bool) -> None:
    assert looks_like_reference(text) is meant


def test_an_empty_tag_is_one_line_at_the_cli(tmp_path: Path) -> None:
    for command in ("pull", "inspect", "run"):
        done = wasmhost_cli(command, "r.example/app:", env=dict(os.environ, HOME=str(tmp_path)))
        err = done.stderr.decode()
        assert done.returncode == 1, err
        assert err.splitlines() == [
            "Error: 'r.example/app:': the tag after ':' is empty; "
            "give one, or leave out the ':' for latest."
        ], err


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("ghcr.io", "ghcr.io"),
        ("https://ghcr.io/", "ghcr.io"),
        ("localhost:5000", "localhost:5000"),
        ("myregistry", "myregistry"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
    ],
)
def test_registry_addresses_as_docker_login_takes_them(text: str, host: str) -> None:
    assert parse_registry(text) == host


@pytest.mark.parametrize("text", ["", "ghcr.io/org", "https://", "bad host"])
def test_bad_registry_addresses(text: str) -> None:
    with pytest.raises(InvalidReference, match="not a registry address"):
        parse_registry(text)


def test_the_examples_in_the_docstrings_hold() -> None:
    import doctest

    import wasmhost._oci.reference

    failed, tried = doctest.testmod(wasmhost._oci.reference)
    assert (failed, tried > 0) == (0, True)


@pytest.mark.parametrize(
    "text",
    [
        "localhost:5000/team/app:v1",
        "localhost:5000/app@sha256:" + "a" * 64,
        "localhost:5000/app:v1@sha256:" + "a" * 64,
        "hello:1",
        "ghcr.io/o/r/deep/name",
    ],
)
def test_a_pulled_module_is_named_after_the_repository_everywhere(text: str) -> None:
    """pull's default file name, serve's and run's argv[0]: one function."""
    from wasmhost._paths import module_file_name

    expected = os.path.basename(parse_reference(text).repository) + ".wasm"
    assert module_file_name(text) == module_file_name(str(parse_reference(text))) == expected
