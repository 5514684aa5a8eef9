"""Wiring a guest's stdin, stdout and stderr.

Capturing output through a Python callback costs ~100 us per run (wasmtime-py
calls back through ctypes for every write), while a file-backed stream costs
a few; so ``"capture"`` hands wasmtime an anonymous in-memory file (memfd on
Linux, a temporary file elsewhere) and reads it back after the run. Streamed
output (a callable or a file object) goes through a pipe that a thread drains.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Callable
from typing import IO, Literal, Union

import wasmtime

from ._capi import set_stdin_bytes
from ._errors import ConfigError

StdinSource = Union[bytes, Literal["inherit"], "os.PathLike[str]", IO[bytes], None]
"""Bytes (the default, empty), ``"inherit"`` (this process's stdin), a path, or a binary file."""

OutputTarget = Union[
    Literal["capture", "inherit", "null"],
    Callable[[bytes], object],
    "os.PathLike[str]",
    IO[bytes],
]
"""``"capture"`` (into the result, the default), ``"inherit"`` (this process's own stream),
``"null"`` (discard), a callable that receives each chunk as it is written, a path
(created or truncated), or a binary file object."""


class _Sink:
    """A captured output stream: an anonymous file read back after the run.

    With a ``limit``, the file is sized to the limit plus ``_SLACK`` and
    sealed against growing, so the kernel refuses every write past it: the
    guest cannot make the host hold more, however much it writes. wasmtime
    writes stdio in pieces of at most 4 KiB at its own file offset, which we
    read through a duplicate of its descriptor (:meth:`attach`); an offset
    past the limit means the guest wrote more than it was allowed.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.fd: int | None = None
        self.path: str | None = None
        self.error: BaseException | None = None
        self.limit = limit
        self._cursor: int | None = None
        self._final: int | None = None

    def attach(self, wasi: wasmtime.WasiConfig, name: str) -> None:
        """Make this file ``name`` (stdout or stderr) of ``wasi``."""
        self.fd, path, self.path = _anonymous_file(sealable=self.limit is not None)
        if self.limit is None or self.path is not None:
            setattr(wasi, f"{name}_file", path)
            return
        # wasmtime opens (and truncates) the file when it is configured; its
        # descriptor is the lowest free one, unless another thread took it.
        probe = os.dup(self.fd)
        os.close(probe)
        setattr(wasi, f"{name}_file", path)
        writer = probe if _same_file(probe, self.fd) else _find_other(self.fd)
        self._cursor = os.dup(writer)
        os.ftruncate(self.fd, self.limit + _SLACK)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)

    def written(self) -> int:
        """How many bytes the guest has written (past the limit when it wrote too much)."""
        if self._final is not None:
            return self._final
        if self.fd is None:
            return 0
        if self._cursor is not None:
            return os.lseek(self._cursor, 0, os.SEEK_CUR)
        return os.fstat(self.fd).st_size

    def exceeded(self) -> bool:
        return self.limit is not None and self.written() > self.limit

    def finish(self) -> None:
        """The guest's store is closed: what it wrote is final (asked once, not per look)."""
        self._final = self.written()

    def read(self) -> bytes:
        return self._pread(0, self._end())

    def _end(self) -> int:
        written = self.written()
        return written if self.limit is None else min(written, self.limit)

    def _pread(self, start: int, end: int) -> bytes:
        if self.fd is None or end <= start:
            return b""
        data = os.pread(self.fd, end - start, start)
        if len(data) == end - start:
            return data
        chunks = [data]  # a short read: only from files other than our memfd
        start += len(data)
        while start < end and (chunk := os.pread(self.fd, end - start, start)):
            chunks.append(chunk)
            start += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        fds = (self.fd, self._cursor)
        self.fd = self._cursor = None  # before closing: a probe may look at them meanwhile
        for fd in fds:
            if fd is not None:
                os.close(fd)
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


# Room past a limit for the write that crosses it, so that it lands whole and
# shows in the offset (wasmtime writes stdio in pieces of at most 4 KiB).
_SLACK = 64 << 10


def _same_file(fd: int, other: int) -> bool:
    if fd == other:
        return False
    try:
        a, b = os.fstat(fd), os.fstat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _find_other(fd: int) -> int:
    """The descriptor, other than ``fd``, of the same file (wasmtime's)."""
    for name in os.listdir("/proc/self/fd"):
        if _same_file(int(name), fd):
            return int(name)
    raise RuntimeError("wasmtime did not open the output file")  # not reached


class _PipeSink(_Sink):
    """A streamed output: a pipe whose reading end a thread hands to ``callback``."""

    def __init__(self, callback: Callable[[bytes], object]) -> None:
        super().__init__()
        self._callback = callback
        self._read_fd, self.write_fd = os.pipe()
        os.set_inheritable(self._read_fd, False)
        self._thread = threading.Thread(target=self._drain, name="wasmhost-output", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while data := os.read(self._read_fd, 1 << 16):
            if self.error is None:
                try:
                    self._callback(data)
                except BaseException as exc:  # handed back to the caller after the run
                    self.error = exc

    def finish(self) -> None:
        """Wait until everything the guest wrote has been handed on."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1
        self._thread.join()

    def read(self) -> bytes:
        return b""

    def close(self) -> None:
        self.finish()
        os.close(self._read_fd)


def _anonymous_file(sealable: bool = False) -> tuple[int, str, str | None]:
    """An fd, the path wasmtime opens for it, and a path to unlink afterwards."""
    if PROC_FD and hasattr(os, "memfd_create"):
        flags = os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if sealable else 0)
        fd = os.memfd_create("wasmhost-output", flags)
        return fd, fd_path(fd), None
    import tempfile  # only where there is no memfd: it costs ~3 ms of start-up

    fd, path = tempfile.mkstemp(prefix="wasmhost-output-")
    return fd, path, path


class Stdio:
    """The stdio of one run: configures a ``WasiConfig``, then collects what was captured."""

    def __init__(self, max_output: int | None = None) -> None:
        self._sinks: dict[str, _Sink] = {}
        self.max_output = max_output

    def configure(
        self,
        wasi: wasmtime.WasiConfig,
        stdin: StdinSource,
        stdout: OutputTarget,
        stderr: OutputTarget,
    ) -> None:
        self._stdin(wasi, stdin)
        self._output(wasi, "stdout", stdout)
        self._output(wasi, "stderr", stderr)

    def _stdin(self, wasi: wasmtime.WasiConfig, stdin: StdinSource) -> None:
        if stdin is None:
            return
        if isinstance(stdin, bytes | bytearray | memoryview):
            if stdin:
                set_stdin_bytes(wasi, bytes(stdin))
            return
        if stdin == "inherit":
            wasi.inherit_stdin()
            return
        if isinstance(stdin, str | os.PathLike):
            path = os.fspath(stdin)
            if not os.path.isfile(path) and not _is_stream(path):
                raise ConfigError(f"stdin {path}: no such file.")
            _set_stdin_file(wasi, path, path)
            return
        if not hasattr(stdin, "read"):
            raise ConfigError(
                f"stdin must be bytes, 'inherit', a path or a binary file, not {stdin!r}."
            )
        fileno = _fileno(stdin)
        if fileno is not None and _is_stream_fd(fileno):
            # A pipe or terminal: the guest reads it as it arrives.
            _set_stdin_file(wasi, fd_path(fileno), repr(stdin))
            return
        data = stdin.read()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigError("stdin must be a binary file (open it with 'rb'), not a text one.")
        self._stdin(wasi, bytes(data))

    def _output(self, wasi: wasmtime.WasiConfig, name: str, target: OutputTarget) -> None:
        set_file = f"{name}_file"
        if target == "capture":
            sink = self._sinks[name] = _Sink(self.max_output)
            sink.attach(wasi, name)
        elif target == "inherit":
            getattr(wasi, f"inherit_{name}")()
        elif target == "null":
            setattr(wasi, set_file, os.devnull)
        elif isinstance(target, str | os.PathLike):
            path = os.fspath(target)
            try:
                setattr(wasi, set_file, path)
            except wasmtime.WasmtimeError:
                raise ConfigError(f"{name} {path} cannot be opened for writing.") from None
        elif callable(target):
            self._callback(wasi, name, target)
        elif hasattr(target, "write"):
            file = target

            def write(data: bytes) -> None:
                file.write(data)
                file.flush()

            self._callback(wasi, name, write)
        else:
            raise ConfigError(
                f"{name} must be 'capture', 'inherit', 'null', a path, a callable "
                f"or a binary file, not {target!r}."
            )

    def _callback(
        self, wasi: wasmtime.WasiConfig, name: str, callback: Callable[[bytes], object]
    ) -> None:
        # Not wasmtime-py's stdout_custom: besides its ~100 us per run, its
        # finalizer runs on a wasmtime worker thread whenever the stream is
        # dropped, and at interpreter exit that panics inside libwasmtime.
        # A pipe drained by a thread of ours streams the same chunks.
        sink = self._sinks[name] = _PipeSink(callback)
        setattr(wasi, f"{name}_file", fd_path(sink.write_fd))

    def finish(self) -> None:
        """Wait for streamed output to be delivered (after the guest's store is closed)."""
        for sink in self._sinks.values():
            sink.finish()

    def callback_error(self) -> BaseException | None:
        """The first exception an output callback raised, if any."""
        for sink in self._sinks.values():
            if sink.error is not None:
                return sink.error
        return None

    def collect(self) -> tuple[bytes, bytes]:
        """What was captured of stdout and stderr (empty for streams not captured)."""
        out = self._sinks.get("stdout")
        err = self._sinks.get("stderr")
        return (out.read() if out else b""), (err.read() if err else b"")

    def over_limit(self) -> str | None:
        """The name of a captured stream the guest wrote more to than the limit, if any."""
        for name, sink in self._sinks.items():
            if sink.exceeded():
                return name
        return None

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()


def _fileno(file: object) -> int | None:
    try:
        return int(file.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _is_stream_fd(fd: int) -> bool:
    """A pipe or a terminal, which the guest can read as it arrives."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _set_stdin_file(wasi: wasmtime.WasiConfig, path: str, name: str) -> None:
    try:
        wasi.stdin_file = path
    except wasmtime.WasmtimeError:
        raise ConfigError(f"stdin {name} cannot be opened for reading.") from None


def _is_stream(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


PROC_FD = os.path.isdir("/proc/self/fd")


def fd_path(fd: int) -> str:
    """A path that opens ``fd``'s file again."""
    return f"/proc/self/fd/{fd}" if PROC_FD else f"/dev/fd/{fd}"
