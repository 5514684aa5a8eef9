"""Registry credentials: explicit, from the environment, or from the Docker config.

Credentials belong to one registry host. For a registry they are looked up
in this order: the ones passed in for that host; ``WASMHOST_REGISTRY_USERNAME``
and ``WASMHOST_REGISTRY_PASSWORD``, when ``WASMHOST_REGISTRY`` names that
host; the Docker config (``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``): its ``credHelpers`` entry for the host, its
``credsStore``, then its ``auths`` entry. ``login``/``logout`` write that
file as ``docker login`` does (to the
credential store when one is configured). Secrets never appear in messages.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path
from select import PIPE_BUF
from typing import Any, NamedTuple

from .._errors import AuthenticationError, ConfigError, WasmhostError
from .._files import MAX_CONFIG, atomic_writer, read_regular, writing
from .._text import is_utf8
from .formats import json_object

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 30.0
# A helper's answer is a few hundred bytes of JSON; what is larger is not an answer.
MAX_HELPER_OUTPUT = 64 << 10


class Credentials(NamedTuple):
    """A username and a password (or token) for one registry."""

    username: str
    password: str

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials(username={self.username!r}, password='***')"


def docker_config_path() -> Path:
    """The Docker config file: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    folder = os.environ.get("DOCKER_CONFIG")
    return Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"


def _config_key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry == "docker.io" else registry


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = read_regular(path, MAX_CONFIG)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the Docker config {path}: {exc.strerror}.") from None
    if not data.strip():
        return {}
    return json_object(data, f"the Docker config {path}", ConfigError, advice="fix or remove it")


def _helper(name: str, action: str, payload: str, registry: str) -> bytes | None:
    """Run ``docker-credential-NAME ACTION`` with ``payload`` on its stdin; its stdout,
    or None when it says it has no credentials.

    It runs in a session of its own, so that when it overruns HELPER_TIMEOUT or
    writes more than MAX_HELPER_OUTPUT, it is killed with all it started.
    """
    binary = f"docker-credential-{name}"
    try:
        process = subprocess.Popen(
            [binary, action],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise AuthenticationError(
            f"the Docker config names the credential helper {binary}, which is not on PATH.",
            reference=registry,
        ) from None
    except OSError as exc:
        raise AuthenticationError(
            f"the credential helper {binary} cannot be run: {exc.strerror}.", reference=registry
        ) from None
    try:
        stdout, stderr = _exchange(process, payload.encode(), time.monotonic() + HELPER_TIMEOUT)
    except _Overrun as exc:
        raise AuthenticationError(f"{binary} {action} {exc}.", reference=registry) from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0:
        said = (stdout + stderr).decode(errors="replace").lower()
        if action == "get" and "credentials not found" in said:
            return None
        # The helper's own words may echo what it was given: show only its status.
        raise AuthenticationError(
            f"{binary} {action} failed with status {process.returncode}.", reference=registry
        )
    return stdout


class _Overrun(Exception):
    """A credential helper took too long or said too much (the message says which)."""


def _exchange(
    process: subprocess.Popen[bytes], payload: bytes, deadline: float
) -> tuple[bytes, bytes]:
    """Write ``payload`` to ``process`` and read its stdout and stderr until both end and it
    exits, each up to MAX_HELPER_OUTPUT bytes, before ``deadline``; else raise _Overrun."""
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
    assert stdin is not None
    assert stdout is not None
    assert stderr is not None
    outputs = {stdout: bytearray(), stderr: bytearray()}
    pending = memoryview(payload)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(stdin, selectors.EVENT_WRITE)
            for stream in outputs:
                selector.register(stream, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Overrun(f"did not answer in {HELPER_TIMEOUT:g} s")
                for key, _ in selector.select(remaining):
                    if key.fileobj is stdin:
                        try:
                            pending = pending[os.write(stdin.fileno(), pending[:PIPE_BUF]) :]
                        except BrokenPipeError:
                            pending = pending[:0]  # it reads no more: its answer says why
                        if not pending:
                            selector.unregister(stdin)
                            stdin.close()
                        continue
                    output = outputs[stdout if key.fileobj is stdout else stderr]
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    output += chunk
                    if len(output) > MAX_HELPER_OUTPUT:
                        raise _Overrun(f"wrote more than {MAX_HELPER_OUTPUT >> 10} KiB")
        try:
            process.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            raise _Overrun(f"did not answer in {HELPER_TIMEOUT:g} s") from None
    finally:
        for stream in (stdin, stdout, stderr):
            stream.close()
    return bytes(outputs[stdout]), bytes(outputs[stderr])


def _helper_credentials(answer: bytes, helper: str, registry: str) -> Credentials | None:
    """The credentials in a helper's answer to ``get``; None for an empty pair."""
    binary = f"docker-credential-{helper}"
    refused = functools.partial(AuthenticationError, reference=registry)
    data = json_object(answer, f"what {binary} answered", refused)
    user, secret = data.get("Username"), data.get("Secret")
    if user == "" and secret == "":
        return None
    if not (isinstance(user, str) and isinstance(secret, str) and user and secret):
        raise AuthenticationError(
            f"{binary} answered something that is not credentials (a Username and a Secret, "
            "both non-empty strings).",
            reference=registry,
        )
    if not is_utf8(user + secret):  # never shown: a secret
        raise AuthenticationError(
            f"{binary} answered a Username or Secret that is not valid UTF-8 (a lone "
            "surrogate escape); store the credentials again.",
            reference=registry,
        )
    return Credentials(user, secret)


def _from_environment(registry: str) -> Credentials | None:
    """``WASMHOST_REGISTRY_USERNAME``/``_PASSWORD``, if ``WASMHOST_REGISTRY`` names ``registry``."""
    from .reference import parse_registry

    user = os.environ.get("WASMHOST_REGISTRY_USERNAME")
    password = os.environ.get("WASMHOST_REGISTRY_PASSWORD")
    if not user and password is None:
        return None
    scope = os.environ.get("WASMHOST_REGISTRY", "")
    if not scope:
        raise ConfigError(
            "WASMHOST_REGISTRY_USERNAME/WASMHOST_REGISTRY_PASSWORD are set, but "
            "WASMHOST_REGISTRY does not say which registry they are for; set it to that "
            "registry's host[:port]."
        )
    try:
        scoped = parse_registry(scope)
    except WasmhostError:
        raise ConfigError(
            f"WASMHOST_REGISTRY={scope!r} is not a registry address; write it like ghcr.io "
            "or localhost:5000."
        ) from None
    if scoped.lower() != registry.lower():
        return None
    if not user or password is None:
        raise ConfigError(
            "set both WASMHOST_REGISTRY_USERNAME and WASMHOST_REGISTRY_PASSWORD, or neither."
        )
    if not is_utf8(user + password):  # never shown: a secret
        raise ConfigError("WASMHOST_REGISTRY_USERNAME or _PASSWORD is not valid UTF-8.")
    return Credentials(user, password)


def lookup(registry: str, explicit: Credentials | None = None) -> Credentials | None:
    """The credentials to use for ``registry``, or None for anonymous access.

    ``explicit`` are the ones given for this registry, if any.
    """
    if explicit is not None:
        return explicit
    found = _from_environment(registry)
    if found is not None:
        return found
    path = docker_config_path()
    config = _read_config(path)
    key = _config_key(registry)
    auths = _section(config, "auths", path)
    helper = _helper_for(config, key, path)
    if helper:
        answer = _helper(helper, "get", key, registry)
        if answer and answer.strip():
            found = _helper_credentials(answer, helper, registry)
            if found is not None:
                return found
    entry = auths.get(key) or {}
    encoded = entry.get("auth") if isinstance(entry, dict) else None
    if encoded is None or encoded == "":
        return None
    try:
        if not isinstance(encoded, str):
            raise ValueError
        user, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        if not colon or not user:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(
            f"the Docker config {path}: the auth of {key} is not base64 of user:password; "
            "fix it, or log in again."
        ) from None
    return Credentials(user, password)


def _helper_for(config: dict[str, Any], key: str, path: Path) -> str | None:
    """The credential helper the Docker config names for registry ``key``, if any."""
    helper = _section(config, "credHelpers", path).get(key) or config.get("credsStore")
    if helper is not None and not isinstance(helper, str):
        raise ConfigError(f"the Docker config {path}: a credential helper is not a string; fix it.")
    return helper or None


def _section(config: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    section = config.get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"the Docker config {path}: {name} is not a JSON object; fix it.")
    return section


def store(registry: str, credentials: Credentials) -> Path:
    """Save ``credentials`` for ``registry`` as ``docker login`` does; return the config path."""
    path = docker_config_path()
    config = _read_config(path)
    key = _config_key(registry)
    helper = _helper_for(config, key, path)
    auths = config["auths"] = _section(config, "auths", path)
    if helper:
        payload = json.dumps(
            {"ServerURL": key, "Username": credentials.username, "Secret": credentials.password}
        )
        _helper(helper, "store", payload, registry)
        auths[key] = {}
    else:
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        auths[key] = {"auth": token}
    _write_config(path, config)
    return path


def erase(registry: str) -> bool:
    """Forget the stored credentials for ``registry``; whether there were any."""
    path = docker_config_path()
    config = _read_config(path)
    key = _config_key(registry)
    helper = _helper_for(config, key, path)
    found = False
    if helper:
        with contextlib.suppress(AuthenticationError):
            _helper(helper, "erase", key, registry)
            found = True
    if key in _section(config, "auths", path):
        del config["auths"][key]
        found = True
        _write_config(path, config)
    return found


def _write_config(path: Path, config: dict[str, Any]) -> None:
    with writing(path, "the Docker config"):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_writer(path, mode=0o600, what="the Docker config") as f:
        f.write(json.dumps(config, indent="\t").encode() + b"\n")
