"""Registry references as Docker writes them: ``host[:port]/repo[:tag][@sha256:...]``.

A reference without a registry host names Docker Hub (``hello:1`` is
``docker.io/library/hello:1``), as ``docker pull`` reads it.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from .._errors import InvalidReference
from .formats import is_digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

# The grammar of github.com/distribution/reference, in short.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)


class Reference(NamedTuple):
    """A parsed reference. ``tag`` is None when only a digest was given."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """The host to send API requests to (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def target(self) -> str:
        """The manifest to ask the registry for: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return self._replace(digest=digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse ``text`` as Docker does; raise :class:`InvalidReference` saying what is off.

    >>> parse_reference("localhost:5000/hello:v1")
    Reference(registry='localhost:5000', repository='hello', tag='v1', digest=None)
    >>> str(parse_reference("hello"))
    'docker.io/library/hello:latest'
    """
    if _names_a_file(text):
        what = "is a file here" if os.path.isfile(text) else "looks like a file name"
        raise InvalidReference(
            f"{text} {what}, not a registry reference",
            advice="give one like registry.example.com/repo:tag, after pushing the file there",
            fix="file",
        )
    rest, at, digest = text.partition("@")
    if at and not digest:
        raise InvalidReference(
            f"{text!r}: the digest after '@' is empty; give sha256: and 64 hex digits."
        )
    if digest and not is_digest(digest):
        raise InvalidReference(f"{text!r}: the digest must be sha256: and 64 hex digits.")
    first, slash, remainder = rest.partition("/")
    if slash and _is_host(first):
        registry, path = _normal_host(first), remainder
        _check_port(text, registry)
    else:
        registry, path = DOCKER_HUB, rest
    name, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if not colon:
        name, tag = path, ""
    elif not tag:
        raise InvalidReference(
            f"{text!r}: the tag after ':' is empty; give one, or leave out the ':' for latest."
        )
    if tag and not _TAG.fullmatch(tag):
        raise InvalidReference(f"{text!r}: {tag!r} is not a valid tag.")
    if registry == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    if not name or not _REPOSITORY.fullmatch(name):
        raise InvalidReference(
            f"{text!r} is not a reference; write it like registry.example.com/repo:tag "
            "(repository names are lower-case)."
        )
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(registry, name, tag or None, digest or None)


_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


def parse_registry(text: str) -> str:
    """A registry server address as ``docker login`` takes it, as its host[:port].

    >>> parse_registry("https://ghcr.io/")
    'ghcr.io'
    >>> parse_registry("https://index.docker.io/v1/")
    'docker.io'
    """
    host = text.strip()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.removesuffix("/").removesuffix("/v1").removesuffix("/v2").removesuffix("/")
    if not host or "/" in host or not _HOST.fullmatch(host):
        raise InvalidReference(
            f"{text!r} is not a registry address; write it like ghcr.io or localhost:5000."
        )
    _check_port(text, host)
    return _normal_host(host)


def _normal_host(host: str) -> str:
    """A registry host as one name: lower-case (host names are not case-sensitive),
    Docker Hub's aliases as ``docker.io``."""
    host = host.lower()
    return DOCKER_HUB if host in _HUB_NAMES else host


def scope_name(text: str) -> str:
    """A policy scope (``registry``, ``registry/namespace`` or ``registry/repository``)
    as a reference naming it is read: ``hello`` is ``docker.io/library/hello``, and
    ``LocalHost:5000/team`` is ``localhost:5000/team``. InvalidReference if it names
    none, or names a tag or digest."""
    first, slash, _ = text.partition("/")
    if not slash and _is_host(first):
        return parse_registry(text)
    if "@" in text or ":" in text.rpartition("/")[2]:
        raise InvalidReference(f"{text!r} names a tag or digest; a scope names repositories.")
    ref = parse_reference(text)
    return f"{ref.registry}/{ref.repository}"


def _check_port(text: str, host: str) -> None:
    port = host.rpartition("]")[2].partition(":")[2]
    if port and not 0 < int(port) < 65536:
        raise InvalidReference(f"{text!r}: port {port} is not between 1 and 65535.")


def _names_a_file(text: str) -> bool:
    """Whether ``text``, without a registry host, names a ``.wasm`` file. Decided from the
    text alone (what is in the current folder does not change what a reference means)."""
    first, slash, _ = text.partition("/")
    if slash and _is_host(first):
        return False
    return text.endswith(".wasm") and "@" not in text


def _is_host(first: str) -> bool:
    """Whether a reference's first component names a registry (as Docker decides)."""
    marked = "." in first or ":" in first or first == "localhost" or first.startswith("[")
    return marked and bool(_HOST.fullmatch(first))


def names_a_registry(text: str) -> bool:
    """Whether ``text`` starts with a registry host (``localhost:5000/x:v1``, ``example.com/x``):
    a first component, before a ``/``, with a dot or a colon, or ``localhost``, as Docker reads it.
    """
    first, slash, _ = text.partition("/")
    return bool(slash) and _is_host(first)


def looks_like_reference(text: str) -> bool:
    """Whether ``text`` (which is not an existing file) is meant as a registry reference.

    A name ending in ``.wasm`` without a tag or digest is taken for a missing
    file; anything with a tag, a digest or a registry host is a reference.
    """
    rest = text.partition("@")[0]
    first, slash, remainder = rest.partition("/")
    has_host = bool(slash) and _is_host(first)
    last = (remainder if has_host else rest).rsplit("/", 1)[-1]
    has_tag = ":" in last
    if "@" in text or has_tag:
        return True
    return has_host and not text.endswith(".wasm")
