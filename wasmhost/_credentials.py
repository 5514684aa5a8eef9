"""Registry credentials: explicit, from the environment, or from the Docker config.

Looked up in this order: credentials passed in; ``WASMHOST_REGISTRY_USERNAME``
and ``WASMHOST_REGISTRY_PASSWORD``; the Docker config
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``): its
``credHelpers`` entry for the host, its ``credsStore``, then its ``auths``
entry. ``login``/``logout`` write that file as ``docker login`` does (to the
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

from ._errors import AuthenticationError, ConfigError
from ._files import atomic_writer

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
        text = path.read_text()
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


def lookup(registry: str, explicit: Credentials | None = None) -> Credentials | None:
    """The credentials to use for ``registry``, or None for anonymous access."""
    if explicit is not None:
        return explicit
    user = os.environ.get("WASMHOST_REGISTRY_USERNAME")
    password = os.environ.get("WASMHOST_REGISTRY_PASSWORD")
    if user and password is not None:
        return Credentials(user, password)
    config = _read_config(docker_config_path())
    key = _config_key(registry)
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
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
    entry = (config.get("auths") or {}).get(key) or {}
    encoded = entry.get("auth") if isinstance(entry, dict) else None
    if encoded:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(
                f"the Docker config's entry for {registry} is not valid base64 user:password."
            ) from None
        return Credentials(user, password)
    return None


def store(registry: str, credentials: Credentials) -> Path:
    """Save ``credentials`` for ``registry`` as ``docker login`` does; return the config path."""
    path = docker_config_path()
    config = _read_config(path)
    key = _config_key(registry)
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    if helper:
        payload = json.dumps(
            {"ServerURL": key, "Username": credentials.username, "Secret": credentials.password}
        )
        _helper(helper, "store", payload, registry)
        config.setdefault("auths", {})[key] = {}
    else:
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        config.setdefault("auths", {})[key] = {"auth": token}
    _write_config(path, config)
    return path


def erase(registry: str) -> bool:
    """Forget the stored credentials for ``registry``; whether there were any."""
    path = docker_config_path()
    config = _read_config(path)
    key = _config_key(registry)
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    found = False
    if helper:
        with contextlib.suppress(AuthenticationError):
            _helper(helper, "erase", key, registry)
            found = True
    if key in (config.get("auths") or {}):
        del config["auths"][key]
        found = True
        _write_config(path, config)
    return found


def _write_config(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_writer(path, mode=0o600) as f:
        f.write(json.dumps(config, indent="\t").encode() + b"\n")
