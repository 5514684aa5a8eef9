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
import json
import os
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

from .._errors import AuthenticationError, ConfigError, WasmhostError
from .._files import MAX_CONFIG, atomic_writer, read_regular, writing
from .._text import is_utf8

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


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
        text = read_regular(path, MAX_CONFIG).decode()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the Docker config {path}: {exc.strerror}.") from None
    try:
        config = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        raise ConfigError(
            f"the Docker config {path} is not valid JSON; fix or remove it."
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"the Docker config {path} is not a JSON object; fix or remove it.")
    return config


def _helper(name: str, action: str, payload: str, registry: str) -> str | None:
    binary = f"docker-credential-{name}"
    try:
        done = subprocess.run(
            [binary, action], input=payload, capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        raise AuthenticationError(
            f"the Docker config names the credential helper {binary}, which is not on PATH.",
            reference=registry,
        ) from None
    except subprocess.TimeoutExpired:
        raise AuthenticationError(
            f"{binary} {action} did not answer in 30 s.", reference=registry
        ) from None
    if done.returncode != 0:
        if action == "get" and "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        # The helper's own words may echo what it was given: show only its status.
        raise AuthenticationError(
            f"{binary} {action} failed with status {done.returncode}.", reference=registry
        )
    return done.stdout


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
        if answer:
            try:
                data = json.loads(answer)
                return Credentials(data["Username"], data["Secret"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AuthenticationError(
                    f"docker-credential-{helper} answered something that is not credentials.",
                    reference=registry,
                ) from None
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
