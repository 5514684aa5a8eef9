"""The exceptions wasmhost raises: one root, :class:`WasmhostError`.

Nothing from wasmtime leaks through the public API; every failure is mapped
to the most specific class below with ``raise ... from exc``::

    WasmhostError
    ├── ModuleError            the module cannot be read, is not wasm, or is invalid
    │   └── LinkError          it imports something nobody provides, or lacks the export asked for
    ├── ConfigError            a run was configured wrongly (a missing host directory, ...)
    ├── StorageError           a file wasmhost writes cannot be written (read-only, full, ...)
    ├── InvalidReference       a registry reference that does not parse
    ├── ArtifactError          an OCI artifact that holds no runnable wasm module
    ├── RegistryError          talking to a registry failed; .reference names what was asked
    │   ├── AuthenticationError   the registry refused our credentials, or wants some
    │   ├── NotFoundError         no such repository, tag or digest
    │   ├── IntegrityError        content whose size or sha256 is not what its digest says
    │   └── RegistryUnreachable   no answer: refused, unresolvable, timed out, TLS failed
    └── GuestError             the guest started and then failed; carries its output so far
        ├── Trap               a WebAssembly trap (trap code, message, wasm backtrace)
        ├── Interrupted        the run was cancelled from outside
        └── LimitExceeded      a limit set for the run stopped the guest
            ├── TimeoutExceeded
            ├── FuelExhausted
            ├── MemoryLimitExceeded
            └── OutputLimitExceeded
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

__all__ = [
    "ArtifactError",
    "AuthenticationError",
    "ConfigError",
    "Frame",
    "FuelExhausted",
    "GuestError",
    "IntegrityError",
    "Interrupted",
    "InvalidReference",
    "LimitExceeded",
    "LinkError",
    "MemoryLimitExceeded",
    "ModuleError",
    "NotFoundError",
    "OutputLimitExceeded",
    "RegistryError",
    "RegistryUnreachable",
    "StorageError",
    "TimeoutExceeded",
    "Trap",
    "WasmhostError",
]


# The exit status of a guest stopped by a trap or a limit: 128 + SIGABRT, as the
# wasmtime CLI exits then.
TRAP_EXIT_STATUS = 134


class WasmhostError(Exception):
    """The root of every exception wasmhost raises.

    ``problem`` says what went wrong and ``advice`` what would help, in terms
    of the Python API; the message is both. ``fix`` names that help as a
    keyword, which the CLI words in its own flags (``"max-size"``,
    ``"credentials"``, ...; several separated by spaces when each would help,
    such as ``"tls offline"``; empty when there is none).
    """

    def __init__(self, message: str, *, advice: str = "", fix: str = "") -> None:
        super().__init__(f"{message}; {advice}." if advice else message)
        self.problem = message
        self.advice = advice
        self.fix = fix


class ModuleError(WasmhostError):
    """The module cannot be read, is not WebAssembly, or does not validate."""


class LinkError(ModuleError):
    """The module cannot be linked: an import nobody provides, or a missing export."""


class ConfigError(WasmhostError):
    """A run was configured wrongly: a host directory that does not exist, a bad value."""


class Frame(NamedTuple):
    """One frame of a wasm backtrace, innermost first."""

    module: str | None
    function: str | None
    function_index: int
    module_offset: int

    def __str__(self) -> str:
        name = self.function or f"<wasm function {self.function_index}>"
        module = self.module or "<unknown>"
        return f"{self.module_offset:#x} - {module}!{name}"


class InvalidReference(WasmhostError):
    """A registry reference that does not parse (``host[:port]/repo[:tag][@digest]``)."""


class ArtifactError(WasmhostError):
    """An OCI artifact that holds no runnable wasm module, or is not one wasmhost knows."""


class StorageError(WasmhostError):
    """A file or folder wasmhost writes cannot be written: the store, a pulled module,
    an OCI layout, a bundle. ``path`` names it; ``reason`` is the system's word for
    why (``"No space left on device"``, ``"Read-only file system"``, ...)."""

    def __init__(
        self, message: str, *, path: str = "", reason: str = "", advice: str = "", fix: str = ""
    ) -> None:
        super().__init__(message, advice=advice, fix=fix)
        self.path = path
        self.reason = reason


class RegistryError(WasmhostError):
    """Talking to a registry failed.

    The facts, for a caller that acts on them: ``reference`` names what was
    asked for, ``registry`` the registry host, ``status`` the HTTP status
    when one came. ``fix`` is one of ``"credentials"`` (none were given),
    ``"login"`` (these were refused), ``"tls"`` (TLS failed: a CA file, no
    verification, or plain HTTP would help), ``"http"`` (the registry answered
    in plain HTTP where TLS was expected), ``"plain-http"`` (the registry
    may not speak TLS), ``"offline"`` (a copy pulled before is stored), or
    ``""``.
    """

    def __init__(
        self,
        message: str,
        *,
        reference: str = "",
        registry: str = "",
        status: int | None = None,
        advice: str = "",
        fix: str = "",
    ) -> None:
        super().__init__(message, advice=advice, fix=fix)
        self.reference = reference
        self.registry = registry
        self.status = status


class AuthenticationError(RegistryError):
    """The registry refused the credentials, or wants credentials and has none."""


class NotFoundError(RegistryError):
    """No such repository, tag, manifest or blob."""


class IntegrityError(RegistryError):
    """Content whose size or sha256 is not what its digest says; nothing was kept."""


class SignatureError(IntegrityError):
    """A module is not signed as required: no signature, another key's, one for another
    digest or repository, or a malformed one. The message names the reference and why."""


class RegistryUnreachable(RegistryError):
    """The registry did not answer: connection refused, unknown host, timeout, TLS failure."""


class GuestError(WasmhostError):
    """The guest started and then failed.

    ``stdout`` and ``stderr`` hold what the guest wrote before it failed, when
    the run captured them (empty otherwise).
    """

    def __init__(self, message: str, *, stdout: bytes = b"", stderr: bytes = b"") -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr


class ErrorResult(GuestError):
    """A component's function, called with ``invoke``, returned ``err``.

    ``error`` is the error's payload as a Python value (None for a bare
    ``err``); the message shows it in WAVE.
    """

    def __init__(
        self, message: str, *, error: Any = None, stdout: bytes = b"", stderr: bytes = b""
    ) -> None:
        super().__init__(message, stdout=stdout, stderr=stderr)
        self.error = error


class Trap(GuestError):
    """The guest trapped: an ``unreachable``, an out-of-bounds access, a stack overflow...

    ``trap_code`` is the lower-case name of wasmtime's trap code
    (``"unreachable"``, ``"memory_out_of_bounds"``, ...) or ``None`` when the
    trap came from a host function; ``frames`` is the wasm backtrace.
    """

    def __init__(
        self,
        message: str,
        *,
        trap_code: str | None = None,
        frames: Sequence[Frame] = (),
        stdout: bytes = b"",
        stderr: bytes = b"",
    ) -> None:
        super().__init__(message, stdout=stdout, stderr=stderr)
        self.trap_code = trap_code
        self.frames = tuple(frames)


class Interrupted(GuestError):
    """The run was cancelled from outside (its ``cancel`` event was set)."""


class LimitExceeded(GuestError):
    """A limit set for the run stopped the guest. ``limit`` names it."""

    limit: str = ""


class TimeoutExceeded(LimitExceeded):
    """The guest ran past its wall-clock ``timeout``."""

    limit = "timeout"


class FuelExhausted(LimitExceeded):
    """The guest used up the ``fuel`` it was given."""

    limit = "fuel"


class MemoryLimitExceeded(LimitExceeded):
    """The guest needed more linear memory than ``max_memory`` allows."""

    limit = "memory"


class OutputLimitExceeded(LimitExceeded):
    """The guest wrote more to a captured stream than ``max_output`` allows.

    ``stream`` names it (``"stdout"`` or ``"stderr"``); its first
    ``max_output`` bytes are kept in ``stdout``/``stderr``.
    """

    limit = "output"

    def __init__(
        self,
        message: str,
        *,
        stream: str,
        max_output: int,
        stdout: bytes = b"",
        stderr: bytes = b"",
    ) -> None:
        super().__init__(message, stdout=stdout, stderr=stderr)
        self.stream = stream
        self.max_output = max_output


@contextmanager
def reading_module(name: str) -> Iterator[None]:
    """Turn the errors of reading the module file ``name`` into a :class:`ModuleError`."""
    try:
        yield
    except FileNotFoundError:
        raise ModuleError(f"{name}: no such file; check the path to the module.") from None
    except IsADirectoryError:
        raise ModuleError(f"{name} is a directory, not a WebAssembly module.") from None
    except OSError as exc:
        raise ModuleError(f"{name} cannot be read: {exc.strerror or exc}.") from None
