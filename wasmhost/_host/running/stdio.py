"""Wiring a guest's stdin, stdout and stderr.

Capturing output through a Python callback costs ~100 us per run (wasmtime-py
calls back through ctypes for every write), while a file-backed stream costs
a few, and wasmtime opens output files only by path. So :data:`CAPTURE` hands
wasmtime ``/proc/self/fd/N`` of a pipe that is used again by later runs
(:class:`_Capture`: ~6 us a stream, where a new sealed memfd costs ~15 us),
read after the run; streams that outgrow a pipe, and processes that do not
ignore SIGPIPE, get a sealed memfd (:class:`_Sink`), and where there is no
``/proc``, a temporary file.
Streamed output (a callable or a file object) goes through a pipe that a
thread drains.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import io
import os
import select
import signal
import stat
import sys
import termios
import threading
import time
import weakref
from collections.abc import Callable, Collection
from typing import IO, Final, Literal, Union

import wasmtime

from ..._errors import ConfigError, WasmhostError
from ..._files import PROC_FD, fd_path
from ..engines.capi import open_output, set_stdin_bytes


class Special(enum.Enum):
    """The stdio targets that are not files (as ``subprocess.PIPE`` and ``DEVNULL``)."""

    CAPTURE = "capture"
    INHERIT = "inherit"
    DEVNULL = "devnull"

    def __repr__(self) -> str:
        return f"wasmhost.{self.name}"


CAPTURE: Final = Special.CAPTURE
"""stdout/stderr: keep what the guest writes, in the :class:`RunResult` (the default)."""
INHERIT: Final = Special.INHERIT
"""stdin/stdout/stderr: this process's own stream."""
DEVNULL: Final = Special.DEVNULL
"""stdout/stderr: discard what the guest writes."""

StdinSource = Union[bytes, Literal[Special.INHERIT], str, "os.PathLike[str]", IO[bytes], None]
"""Bytes (the default, empty), :data:`INHERIT`, a path, or a binary file."""

OutputTarget = Union[
    Literal[Special.CAPTURE, Special.INHERIT, Special.DEVNULL],
    Callable[[bytes], object],
    str,
    "os.PathLike[str]",
    IO[bytes],
]
""":data:`CAPTURE` (the default), :data:`INHERIT`, :data:`DEVNULL`, a callable that receives
each chunk as it is written, a path (created or truncated), or a binary file object."""

# The strings that named the special targets before they were constants (and
# DEVNULL's own name): as paths they would be files of these names, which is
# never what was meant.
_OUTPUT_NAMES = {
    "capture": "CAPTURE",
    "inherit": "INHERIT",
    "null": "DEVNULL",
    "devnull": "DEVNULL",
}
_STDIN_NAMES = {"inherit": "INHERIT"}


def _refuse_old_name(name: str, value: object) -> None:
    names = _STDIN_NAMES if name == "stdin" else _OUTPUT_NAMES
    if isinstance(value, str) and value in names:
        raise ConfigError(
            f"{name}={value!r} would be a file of that name; for the special target "
            f"pass wasmhost.{names[value]} (for such a file, a Path)."
        )


class _Sink:
    """A captured output stream: an anonymous file read back after the run.

    For the streams that a module has written more than a pipe holds to
    (see :class:`_Capture`), and where there is no ``/proc``.

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
            _set_output(wasi, name, path)
            return
        # wasmtime opens (and truncates) the file when it is configured.
        writer = open_output(wasi, name, self.fd)
        if writer is None:
            raise ConfigError(f"{name} {path} cannot be opened for writing.")
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


class _Pipe:
    """The reading end of a pipe that captures one stream; wasmtime opens its writing end.

    Opening ``/proc/self/fd/N`` of a pipe's reading end for writing gives a
    new writing end of the same pipe, so no writing end is kept here: when
    the guest's store closes the one wasmtime opened, the pipe reads as
    ended. A pipe read to that end is clean, and goes back to the free list
    for the next run (a pipe costs a third of a new memfd).
    """

    def __init__(self) -> None:
        self.fd = -1
        self.fd, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.close(write_end)
        self.path = fd_path(self.fd).encode()
        self.clean = True  # read to its end: holds nothing, nobody writes to it
        _open_pipes.add(self)

    def pending(self) -> int:
        """Bytes written and not yet read."""
        return int.from_bytes(fcntl.ioctl(self.fd, termios.FIONREAD, bytes(4)), sys.byteorder)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


# Every pipe not yet closed (a forked child closes its copies), and the clean
# ones that wait for a run: a few, so that idle threads hold no descriptors.
_open_pipes: weakref.WeakSet[_Pipe] = weakref.WeakSet()
_free_pipes: list[_Pipe] = []
_MAX_FREE = 16


def _take_pipe() -> _Pipe:
    try:
        return _free_pipes.pop()
    except IndexError:
        return _Pipe()


def _give_back(pipe: _Pipe) -> None:
    if pipe.clean and pipe.fd >= 0 and len(_free_pipes) < _MAX_FREE:
        _free_pipes.append(pipe)
    else:
        pipe.close()


class _Capture:
    """A captured output stream: a pipe, read after the run.

    What fits in the pipe (64 KiB) waits there until the store is closed,
    and is then read in one go: no thread is involved, and a pipe costs a
    third of a memfd. When a pipe fills up, or a run goes on for a tick with
    output waiting, the monitor (:class:`_Monitor`) gives it a thread that
    reads the pipe as the guest fills it, so that a guest writing more than
    the pipe holds is never left blocked; a guest that filled half a pipe
    is *loud*, and its host captures that stream of its later runs in a
    memfd (:class:`_Sink`), which never makes the guest wait. At most
    ``limit`` bytes are kept; past it, the reading end is closed, so the
    guest's writes fail (EPIPE: pipes are used only where SIGPIPE is
    ignored, as Python does), and the pipe is not used again. Were SIGPIPE
    let through meanwhile, the rest is read and dropped instead: the host
    holds the limit and a pipe's worth either way.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.error: BaseException | None = None
        self.started = 0.0
        self._pipe = _take_pipe()
        self._pipe.clean = False  # until it is read to its end
        # BytesIO grows in place and hands its buffer out without a copy:
        # the host holds the output once, not twice, when it is read.
        self._kept = io.BytesIO()
        self._count = 0
        self._done = False
        self._drainer: threading.Thread | None = None
        self._lock = threading.Lock()

    def attach(self, wasi: wasmtime.WasiConfig, name: str) -> None:
        if not _open_output(wasi, name, self._pipe.path):
            raise WasmhostError(
                f"wasmtime could not open the pipe that captures {name}",
                advice="the process may be out of file descriptors (see ulimit -n)",
            )
        self.started = time.monotonic()

    # -- while the guest runs (the monitor's and the watchdog's threads) -------

    def waiting(self, now: float) -> bool:
        """Whether a thread should read the pipe: it is half full, or output has waited a tick."""
        if self._done or self._drainer is not None or self._pipe.fd < 0:
            return False
        pending = self._pipe.pending()
        return pending >= _LOUD or (pending > 0 and now - self.started >= _Monitor.TICK)

    @property
    def loud(self) -> bool:
        """The guest wrote half a pipe or more: capture this stream in a memfd next time."""
        return self._count >= _LOUD

    def drain_in_thread(self) -> None:
        with self._lock:
            if self._done or self._drainer is not None:
                return  # the run has ended meanwhile: its own thread reads what is left
            drainer = threading.Thread(target=self._stream, name="wasmhost-output", daemon=True)
            try:
                drainer.start()
            except RuntimeError:  # no more threads: the monitor reads a pipe's worth a tick
                if self._pipe.fd >= 0:
                    self._read_available()
                return
            self._drainer = drainer

    def _stream(self) -> None:
        # select and termios are imported up front: a process whose descriptors
        # a guest has taken cannot import (it opens files), and this thread must
        # not die, or the guest waits on a full pipe for ever.
        poller = select.poll()
        poller.register(self._pipe.fd, select.POLLIN)
        while self._pipe.fd >= 0:
            if not poller.poll(50):
                if self._done:  # a writing end outlived the store: take what is there
                    self._read_available()
                    return
                continue
            if not self._read_available(until_empty=False):
                return

    def exceeded(self) -> bool:
        if self.limit is None:
            return False
        if self._count > self.limit:
            return True
        pipe = self._pipe
        # Not read yet, but already too much (a limit smaller than the pipe).
        return self._drainer is None and pipe.fd >= 0 and pipe.pending() > self.limit

    # -- reading ---------------------------------------------------------------

    def _read_available(self, until_empty: bool = True) -> bool:
        """Read what the pipe holds; False once it has ended (or was closed at the limit).

        Only a pipe read to its end (every writing end closed, nothing left)
        is clean, and only a clean pipe is used again.
        """
        pipe = self._pipe
        while True:
            try:
                data = os.read(pipe.fd, 1 << 16)
            except BlockingIOError:
                return True  # a writing end is still open: the guest's, or one that outlived it
            except OSError:
                pipe.close()  # not expected: the pipe is given up, not used again
                return False
            if not data:
                pipe.clean = True
                return False
            self._keep(data)
            if self.limit is not None and self._count > self.limit and _epipe_is_safe():
                pipe.close()  # the guest's further writes fail
                return False
            if not until_empty:
                return True

    def _keep(self, data: bytes) -> None:
        if self.limit is None:
            self._kept.write(data)
        elif (room := self.limit - self._count) > 0:
            self._kept.write(data if len(data) <= room else memoryview(data)[:room])
        self._count += len(data)

    def finish(self) -> None:
        """The guest's store is closed: read the rest of its output."""
        with self._lock:
            self._done = True
            drainer = self._drainer
        if drainer is not None:
            drainer.join()
        elif self._pipe.fd >= 0:
            self._read_available()

    def read(self) -> bytes:
        return self._kept.getvalue()

    def close(self) -> None:
        _give_back(self._pipe)


# Half of a pipe's default 64 KiB: output that may have filled it.
_LOUD = 32 << 10


def _epipe_is_safe() -> bool:
    """Whether a write to a closed pipe fails with EPIPE (else SIGPIPE would end the process)."""
    return signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN


class _Monitor:
    """Hands a drain thread to each captured run that has left output waiting for a tick.

    It ticks only while captured runs are in progress, and for ``LINGER``
    seconds after the last one, so that one run after another does not
    wake it each time.
    """

    TICK = 0.005
    LINGER = 1.0

    def __init__(self) -> None:
        self._active: set[_Capture] = set()
        self._cond = threading.Condition()
        self._idle_since = 0.0
        self._sleeping = False
        self._thread: threading.Thread | None = None

    def running(self) -> bool:
        """Whether the monitor's thread runs (started now if need be; False if it cannot be)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return True
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(
                    target=self._loop, name="wasmhost-output-monitor", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:
                    return False  # no more threads: runs capture into memfds meanwhile
                self._thread = thread
        return True

    def add(self, captures: list[_Capture]) -> None:
        with self._cond:
            self._active.update(captures)
            if self._sleeping:
                self._cond.notify()

    def remove(self, captures: list[_Capture]) -> None:
        with self._cond:
            self._active.difference_update(captures)
            if not self._active:
                self._idle_since = time.monotonic()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._active and time.monotonic() - self._idle_since > self.LINGER:
                    self._sleeping = True
                    self._cond.wait()
                    self._sleeping = False
                captures = list(self._active)
            time.sleep(self.TICK)
            now = time.monotonic()
            for capture in captures:
                # A run may end, and its pipe go back, meanwhile: that is no error
                # here; and nothing may end this thread, on which big outputs rely.
                with contextlib.suppress(Exception):
                    if capture.waiting(now):
                        capture.drain_in_thread()


_monitor = _Monitor()


def _after_fork() -> None:
    # The child has none of the parent's threads, and its copies of the
    # parent's pipes would keep them open: a guest past its limit, or done,
    # would wait for a reader that is gone.
    global _monitor
    for pipe in list(_open_pipes):
        pipe.close()
    _free_pipes.clear()
    _monitor = _Monitor()


os.register_at_fork(after_in_child=_after_fork)


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

    def __init__(self, max_output: int | None = None, loud: Collection[str] = ()) -> None:
        self._sinks: dict[str, _Sink | _Capture] = {}
        self._captures: list[_Capture] = []
        self.max_output = max_output
        self._loud = loud
        self._pipes: bool | None = None

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
        if self._captures:
            _monitor.add(self._captures)

    def _stdin(self, wasi: wasmtime.WasiConfig, stdin: StdinSource) -> None:
        if stdin is None:
            return
        if isinstance(stdin, bytes | bytearray | memoryview):
            if stdin:
                set_stdin_bytes(wasi, bytes(stdin))
            return
        if stdin is INHERIT:
            wasi.inherit_stdin()
            return
        _refuse_old_name("stdin", stdin)
        if isinstance(stdin, str | os.PathLike):
            path = os.fspath(stdin)
            if not os.path.isfile(path) and not _is_stream(path):
                raise ConfigError(f"stdin {path}: no such file.")
            _set_stdin_file(wasi, path, path)
            return
        if not hasattr(stdin, "read"):
            raise ConfigError(
                f"stdin must be bytes, wasmhost.INHERIT, a path or a binary file, not {stdin!r}."
            )
        fileno = _fileno(stdin)
        if fileno is not None and _is_stream(fileno):
            # A pipe or terminal: the guest reads it as it arrives.
            _set_stdin_file(wasi, fd_path(fileno), repr(stdin))
            return
        data = stdin.read()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigError("stdin must be a binary file (open it with 'rb'), not a text one.")
        self._stdin(wasi, bytes(data))

    def _output(self, wasi: wasmtime.WasiConfig, name: str, target: OutputTarget) -> None:
        if target is CAPTURE:
            self._capture(wasi, name)
        elif target is INHERIT:
            getattr(wasi, f"inherit_{name}")()
        elif target is DEVNULL:
            _set_output(wasi, name, os.devnull)
        elif isinstance(target, str | os.PathLike):
            _refuse_old_name(name, target)
            _set_output(wasi, name, os.fspath(target))
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
                f"{name} must be wasmhost.CAPTURE, INHERIT or DEVNULL, a path, a callable "
                f"or a binary file, not {target!r}."
            )

    def _capture(self, wasi: wasmtime.WasiConfig, name: str) -> None:
        if self._pipes is None:
            # Pipes need /proc (wasmtime opens them by path), a process that
            # ignores SIGPIPE (see _Capture) and the monitor's thread.
            self._pipes = PROC_FD and _epipe_is_safe() and _monitor.running()
        try:
            if self._pipes and name not in self._loud:
                capture = self._sinks[name] = _Capture(self.max_output)
                capture.attach(wasi, name)
                self._captures.append(capture)
            else:
                self._sinks[name] = _Sink(self.max_output)
                self._sinks[name].attach(wasi, name)
        except OSError as exc:
            raise WasmhostError(
                f"cannot capture {name}: {exc.strerror or exc}",
                advice="the process may be out of file descriptors (see ulimit -n)",
            ) from None

    def _callback(
        self, wasi: wasmtime.WasiConfig, name: str, callback: Callable[[bytes], object]
    ) -> None:
        # Not wasmtime-py's stdout_custom: besides its ~100 us per run, its
        # finalizer runs on a wasmtime worker thread whenever the stream is
        # dropped, and at interpreter exit that panics inside libwasmtime.
        # A pipe drained by a thread of ours streams the same chunks.
        sink = self._sinks[name] = _PipeSink(callback)
        _set_output(wasi, name, fd_path(sink.write_fd))

    def finish(self) -> None:
        """Collect captured output, and wait for streamed output to be delivered.

        Called once the guest's store is closed.
        """
        if self._captures:
            _monitor.remove(self._captures)
        for sink in self._sinks.values():
            sink.finish()

    def loud(self) -> list[str]:
        """The captured streams that the guest wrote half a pipe or more to (see _Capture)."""
        sinks = self._sinks.items()
        return [name for name, sink in sinks if isinstance(sink, _Capture) and sink.loud]

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


def _is_stream(file: str | int) -> bool:
    """A pipe or a terminal (by path or descriptor), which the guest can read as it arrives."""
    try:
        mode = os.stat(file).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _set_output(wasi: wasmtime.WasiConfig, name: str, path: str | bytes) -> None:
    """Make the file at ``path`` the guest's ``name`` (stdout or stderr)."""
    if not _open_output(wasi, name, path):
        shown = os.fsdecode(path)
        raise ConfigError(f"{name} {shown} cannot be opened for writing.")


def _open_output(wasi: wasmtime.WasiConfig, name: str, path: str | bytes) -> bool:
    """Open ``path`` (created or truncated) as the guest's ``name``: whether it could."""
    try:
        setattr(wasi, f"{name}_file", path)
    except (wasmtime.WasmtimeError, UnicodeError):  # (wasmtime-py encodes a str as UTF-8)
        return False
    return True


def _set_stdin_file(wasi: wasmtime.WasiConfig, path: str, name: str) -> None:
    try:
        wasi.stdin_file = path
    except (wasmtime.WasmtimeError, UnicodeError):  # (wasmtime-py encodes a str as UTF-8)
        raise ConfigError(f"stdin {name} cannot be opened for reading.") from None
