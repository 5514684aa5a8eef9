"""The annotations wasmhost-runtime reads from a container's spec (an image's, through
podman; a pod's or container's, through the CRI; ``ctr run --annotation``), shared by
the runtime, ``push --serve`` and ``wasmhost k8s``. A leaf: the runtime's ``create``
imports it, and it imports nothing of wasmhost but the errors.
"""

from __future__ import annotations

from ._errors import ConfigError

# io.wasmhost.serve = PORT or HOST:PORT serves the module as a WAGI handler there.
SERVE = "io.wasmhost.serve"
TIMEOUT = "io.wasmhost.timeout"
FUEL = "io.wasmhost.fuel"
MAX_MEMORY = "io.wasmhost.max-memory"
RUNTIME_ANNOTATIONS = (SERVE, TIMEOUT, FUEL, MAX_MEMORY)


def serve_address(value: str) -> tuple[str, int]:
    """The address in an ``io.wasmhost.serve`` value: ``PORT`` (on every interface,
    ``0.0.0.0``) or ``HOST:PORT``, an IPv6 host in brackets.

    >>> serve_address("8080"), serve_address("127.0.0.1:80"), serve_address("[::1]:80")
    (('0.0.0.0', 8080), ('127.0.0.1', 80), ('::1', 80))
    """
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address without brackets: which colon ends it is unclear
    valid_port = port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not valid_port or (colon and (not host or any(c.isspace() for c in host))):
        raise ConfigError(
            f"{value!r} is not PORT or HOST:PORT (like 8080, 127.0.0.1:8080 or [::1]:8080), "
            "with a port from 1 to 65535"
        )
    return (host if colon else "0.0.0.0"), int(port)
