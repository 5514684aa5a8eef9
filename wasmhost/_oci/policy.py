"""Which modules a registry client takes: a policy file with a rule per registry or
repository, as containers/image's policy.json has one per scope.

    {
      "default": {"type": "insecureAcceptAnything"},
      "scopes": {
        "registry.example.com/team": {"type": "signedBy", "keys": ["team.pub"]},
        "localhost:5000": {"type": "reject"}
      }
    }

A module's rule is its repository's (``registry/repository``), else the closest
enclosing scope's (``registry/namespace``, ``registry``), else ``default`` (which is
``insecureAcceptAnything`` when the file does not say). Scopes are read as
references are (``hello`` is ``docker.io/library/hello``; a host's case does not
matter); two that name the same are refused. ``signedBy`` lists public
keys (cosign's format; relative paths are relative to the policy file): one of them
must have signed the module. The file is ``$WASMHOST_POLICY``, else
``$XDG_CONFIG_HOME/wasmhost/policy.json`` (``~/.config/...``) when it exists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from .._errors import ConfigError

POLICY_VARIABLE = "WASMHOST_POLICY"
_TYPES = ("insecureAcceptAnything", "reject", "signedBy")
_MAX_POLICY = 1 << 20


class Rule(NamedTuple):
    type: str
    keys: tuple[str, ...] = ()
    scope: str = "default"


class Policy:
    def __init__(self, path: Path, default: Rule, scopes: dict[str, Rule]) -> None:
        self.path = path
        self.default = default
        self.scopes = scopes

    def rule_for(self, registry: str, repository: str) -> Rule:
        name = f"{registry}/{repository}"
        while True:
            rule = self.scopes.get(name)
            if rule is not None:
                return rule
            if "/" not in name:
                return self.default
            name = name.rsplit("/", 1)[0]


def policy_path() -> Path | None:
    """The policy file in force: ``$WASMHOST_POLICY`` (which must exist), else the
    one in the config folder if there is one."""
    given = os.environ.get(POLICY_VARIABLE)
    if given:
        return Path(given)
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = Path(config) / "wasmhost" / "policy.json"
    return path if path.is_file() else None


def load_policy(path: Path) -> Policy:
    from .._files import read_regular

    try:
        data = read_regular(path, _MAX_POLICY)
    except OSError as exc:
        raise ConfigError(f"cannot read the policy {path}: {exc.strerror}.") from None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ConfigError(f"the policy {path} is not JSON.") from None
    if not isinstance(document, dict) or set(document) - {"default", "scopes"}:
        raise ConfigError(f"the policy {path} holds only 'default' and 'scopes'.")
    default = _rule(path, "default", document.get("default", {"type": "insecureAcceptAnything"}))
    scopes_given = document.get("scopes", {})
    if not isinstance(scopes_given, dict):
        raise ConfigError(f"the policy {path}: 'scopes' maps registries or repositories to rules.")
    scopes: dict[str, Rule] = {}
    for scope, rule in scopes_given.items():
        name = _scope(path, scope)
        if name in scopes:
            raise ConfigError(
                f"the policy {path}: the scopes {scopes[name].scope!r} and {scope!r} both name "
                f"{name}; keep one."
            )
        scopes[name] = _rule(path, scope, rule)
    return Policy(path, default, scopes)


def _scope(path: Path, scope: str) -> str:
    """A scope as references are read (the host's case, Docker Hub's names), so that a
    rule applies to every spelling of what it names; one naming nothing is refused."""
    from .._errors import InvalidReference
    from .reference import scope_name

    try:
        return scope_name(scope.rstrip("/"))
    except InvalidReference:
        raise ConfigError(
            f"the policy {path}: the scope {scope!r} names no registry, namespace or repository."
        ) from None


def _rule(path: Path, scope: str, value: Any) -> Rule:
    if not isinstance(value, dict) or value.get("type") not in _TYPES:
        raise ConfigError(
            f"the policy {path}: the rule for {scope} must be an object whose type is "
            f"{', '.join(_TYPES)}."
        )
    kind = value["type"]
    if set(value) - ({"type", "keys"} if kind == "signedBy" else {"type"}):
        raise ConfigError(
            f"the policy {path}: the rule for {scope} has fields {kind} does not take."
        )
    keys: tuple[str, ...] = ()
    if kind == "signedBy":
        listed = value.get("keys")
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(k, str) for k in listed)
        ):
            raise ConfigError(
                f"the policy {path}: signedBy for {scope} needs 'keys', a list of paths."
            )
        keys = tuple(str(path.parent / k) for k in listed)
    return Rule(kind, keys, scope)
