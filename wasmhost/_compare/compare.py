"""Running one module in-process and in external runtimes, and comparing the two.

Every runtime gets the same module, arguments, environment, stdin and
directories; each run gets fresh copies of the directories, so files the
guest writes are compared too and no runtime sees another's. The reference is
the in-process run (``wasmhost``): stdout, stderr, exit status and written
files of every other runtime are compared with it byte for byte.

Peak RSS is each external runtime's own. A process started from this one
would report at least this process's peak (Linux keeps, across exec, the
high-water mark of the memory it replaced), so one run of each runtime is
started through ``sh``, which forks the runtime from its own small memory;
the shell then becomes a small Python reporter that waits for the runtime
and hands back its status and ``ru_maxrss``, as ``/usr/bin/time -f %M``
reports it. That is one more run after the measured ones, in their
conditions (a runtime's own compile cache filled by then, as for them); wall
times never include the shell or the reporter.

Nothing a guest or a runtime does can exhaust the comparing process: every
run has a timeout and an output cap (an external runtime past either is
killed with its process group, and its row says why, not compared); the
mounted trees are compared by size and a streamed SHA-256, never read whole,
within a byte and an entry budget. A run of the reference that stops at a
limit leaves nothing to compare the others with: they are not run. The
scratch folder is removed on any exit Python sees; one left by a process
killed outright is swept by the next comparison (a file in it says its owner).
Trees are copied and removed without recursion: a guest may make them
thousands of folders deep.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from .._errors import (
    TRAP_EXIT_STATUS,
    ConfigError,
    GuestError,
    OutputLimitExceeded,
    TimeoutExceeded,
)
from .._files import copy_tree, open_regular, owned_temporary, remove_tree, sweep_orphans
from .._host.host import DEFAULT_MAX_OUTPUT, Host, check_limits
from .._host.running.run import Dir, DirSource, as_dir
from .._numbers import format_size
from .._wasm import is_component
from .runtimes import Invocation, Mount, Runtime, get_runtime
from .runtimes._base import VERSION_TIMEOUT, env_flags

DEFAULT_TIMEOUT = 60.0
# What a snapshot of the mounted trees reads (hashes) and lists at most; past the
# bytes a file is compared by size only, past the entries the rest is left out.
MAX_SNAPSHOT_BYTES = 256 << 20
MAX_SNAPSHOT_ENTRIES = 10_000
_HEAD = 1024  # a file's first bytes, kept to say where two files part
_POLL = 0.02  # how often a running runtime's output is measured, in seconds
_SCRATCH = "wasmhost-compare-"

T = TypeVar("T")

# Progress: called with the runtime's name, the run (from 1) and how many runs it gets.
Progress = Callable[[str, int, int], None]

# sh forks the runtime (its stdin kept: a background job's stdin would be /dev/null),
# then becomes the reporter, which waits for it and writes "STATUS MAXRSS_KIB" to a file.
_PROBE_SHELL = """exec 4<&0
reporter=$1 report=$2
shift 2
"$@" 0<&4 4<&- &
exec "$0" -S -I -c "$reporter" "$!" "$report" 4<&-"""
_REPORTER = (
    "import os, sys\n"
    "_, status, usage = os.wait4(int(sys.argv[1]), 0)\n"
    "with open(sys.argv[2], 'w') as f: f.write('%d %d' % (status, usage.ru_maxrss))\n"
)


class Stats(NamedTuple):
    """Wall times in milliseconds over the measured runs."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Stats:
        ms = [s * 1000 for s in seconds]
        return cls(round(min(ms), 3), round(statistics.median(ms), 3), round(max(ms), 3))


class FileState(NamedTuple):
    """A regular file in a snapshot, as it is compared: by size and SHA-256."""

    size: int
    digest: bytes | None  # None: not read, past the snapshot's byte budget
    head: bytes  # the first bytes, to say where two files part


class Tree(NamedTuple):
    """The mounted trees by guest path: a file's state, None for a directory (symbolic
    links and special files are left out)."""

    entries: Mapping[str, FileState | None]
    # False: more than MAX_SNAPSHOT_ENTRIES, or paths too long to list; the rest left out
    complete: bool = True


_NO_FILES = Tree({})


class Outcome(NamedTuple):
    """What one run produced: the part that is compared between runtimes."""

    exit_code: int | None
    signal: str | None
    stdout: bytes
    stderr: bytes
    files: Tree = _NO_FILES  # the mounted trees after the run


class _Limits(NamedTuple):
    """What one run may take: seconds and bytes of each output stream (None: no limit)."""

    timeout: float | None = DEFAULT_TIMEOUT
    max_output: int | None = DEFAULT_MAX_OUTPUT


_DEFAULT_LIMITS = _Limits()


class _Stopped(Exception):
    """A run stopped at a limit; the message says which ("timed out after 60 s")."""


class RuntimeResult(NamedTuple):
    """One runtime's row of a comparison."""

    runtime: str
    version: str | None
    available: bool
    install_hint: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    output_matches: bool | None = None
    differences: tuple[str, ...] = ()
    read_only_mounts: bool | None = None
    wall_ms: Stats | None = None
    peak_rss_mib: float | None = None
    phases_ms: dict[str, float] | None = None
    error: str | None = None
    unable: str | None = None  # why the runtime cannot run this case at all
    notes: tuple[str, ...] = ()  # how a difference that is not one was told apart


class Comparison(NamedTuple):
    """The module, its arguments, and one :class:`RuntimeResult` per runtime."""

    module: str
    args: tuple[str, ...]
    results: tuple[RuntimeResult, ...]

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.results:
            row = r._asdict()
            row["differences"] = list(r.differences)
            row["notes"] = list(r.notes)
            row["wall_ms"] = r.wall_ms._asdict() if r.wall_ms else None
            rows.append(row)
        return {"module": self.module, "args": list(self.args), "results": rows}


def compare(
    module: str | os.PathLike[str],
    args: Sequence[str] = (),
    *,
    runtimes: Sequence[Runtime | str] | None = None,
    runs: int = 5,
    warmup: int = 1,
    env: Mapping[str, str] | None = None,
    dirs: Mapping[str, DirSource] | None = None,
    stdin: bytes = b"",
    cold: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_output: int | None = DEFAULT_MAX_OUTPUT,
    host: Host | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Run ``module`` in-process and in each runtime; compare outputs and times.

    ``compare("artifacts/hello-world.wasm", runtimes=["wasmtime", "node"])``
    has a row for wasmhost, wasmhost-cold, wasmtime and node, each with its
    ``output_matches`` (``wasmhost compare`` prints them; tests/test_compare.py
    checks them). ``runtimes`` are adapters or names (all known runtimes by default; one
    that is not installed gets a row saying how to get it). ``cold`` adds a
    ``wasmhost-cold`` row: a new ``wasmhost run`` process per run. ``progress``
    is called before each run with the runtime's name, the run's number (from
    1, warm-up runs included) and the number of runs.

    Every run may take ``timeout`` seconds (60) and write ``max_output`` bytes
    (16 MiB) to stdout and to stderr (None: no limit); a runtime past either is
    stopped, and its row's ``error`` says so ("timed out after 60 s; killed"); a
    runtime's ``--version``, asked first, gets the same timeout (30 s with None).
    When the in-process run is stopped, the other runtimes are not run. With
    ``timeout=None`` the in-process runs use an engine without interruption
    checks (faster in hot loops), for trusted modules only: nothing stops them.
    """
    if runs < 1 or warmup < 0:
        raise ConfigError("runs must be at least 1 and warmup at least 0.")
    check_limits(timeout, None, None, max_output)
    limits = _Limits(timeout, max_output)
    path = os.path.abspath(os.fspath(module))
    component = _is_component(module, path)
    adapters = [get_runtime(r) if isinstance(r, str) else r for r in (runtimes or _all())]
    mounts = [_mount(guest, source) for guest, source in (dirs or {}).items()]
    invocation_env = dict(env or {})
    own = host or Host()
    with contextlib.ExitStack() as cleanup:
        if host is None:
            cleanup.callback(own.close)
        sweep_orphans(_SCRATCH)  # left by comparisons killed outright
        scratch = owned_temporary(_SCRATCH)
        cleanup.callback(remove_tree, scratch)
        work = _Workspace(scratch, mounts, stdin)
        tell = _counting(progress, "wasmhost", warmup + runs)
        reference, row = _in_process(
            own, path, tuple(args), invocation_env, work, runs, warmup, limits, tell
        )
        results = [row]
        for adapter in [_Cold()] * cold + adapters:
            if reference is None:  # stopped at a limit: nothing to compare with
                assert row.error is not None
                results.append(_not_run(adapter, row.error, limits.timeout))
                continue
            results.append(
                _external(
                    adapter,
                    path,
                    args,
                    invocation_env,
                    work,
                    runs,
                    warmup,
                    reference,
                    limits,
                    progress,
                    component,
                )
            )
    return Comparison(os.fspath(module), tuple(args), tuple(results))


def _is_component(module: str | os.PathLike[str], path: str) -> bool:
    """Whether the file at ``path`` is a component; a ConfigError if it is not a
    regular file that can be read (a FIFO would block the read, a device never end)."""
    try:
        with open_regular(path) as f:
            return is_component(f.read(8))
    except FileNotFoundError:
        raise ConfigError(f"{module}: no such file; compare takes a .wasm file.") from None
    except IsADirectoryError:
        raise ConfigError(f"{module} is a folder; compare takes a .wasm file.") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read {module}: {reason}; compare takes a .wasm file.") from None


def _not_run(runtime: Runtime, reason: str, timeout: float | None) -> RuntimeResult:
    """The row of a runtime left out because the in-process run stopped at a limit."""
    if not runtime.available():
        return RuntimeResult(runtime.name, None, False, install_hint=runtime.install_hint or None)
    version = runtime.version(VERSION_TIMEOUT if timeout is None else timeout)
    if version is None:
        return _does_not_start(runtime)
    return RuntimeResult(runtime.name, version, True, error=f"not run: in-process, {reason}")


def _does_not_start(runtime: Runtime) -> RuntimeResult:
    """The row of a runtime that is installed but whose ``--version`` failed."""
    return RuntimeResult(
        runtime.name,
        None,
        True,
        install_hint=runtime.install_hint or None,
        error=f"{runtime.locate()} --version {runtime.version_problem}",
    )


def _counting(progress: Progress | None, name: str, total: int) -> Callable[[], None]:
    """A callback that reports the next run of ``name`` to ``progress``."""
    done = 0

    def tell() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(name, done, total)

    return tell


def _all() -> list[str]:
    from .runtimes import RUNTIMES

    return list(RUNTIMES)


def _mount(guest: str, source: DirSource) -> Mount:
    spec = as_dir(source)
    host_path = os.fspath(spec.path)
    if not os.path.isdir(host_path):
        raise ConfigError(f"host directory {host_path} does not exist; create it or fix the path.")
    return Mount(os.path.abspath(host_path), guest, spec.read_only)


class _Workspace:
    """Fresh copies of the mounted directories for each run, and the stdin file."""

    def __init__(self, root: Path, mounts: list[Mount], stdin: bytes) -> None:
        self.root = root
        self.mounts = mounts
        self.stdin_path = root / "stdin"
        self.stdin_path.write_bytes(stdin)
        self.stdin = stdin
        self._count = 0
        self.initial = self.snapshot(tuple(mounts))  # what every run starts from

    def planned(self) -> tuple[Mount, ...]:
        """The mounts as a run gets them (its copies' paths), without copying."""
        return tuple(
            m._replace(host=str(self.root / "run0" / f"dir{i}")) for i, m in enumerate(self.mounts)
        )

    def fresh(self) -> tuple[Mount, ...]:
        self._count += 1
        copies = []
        for i, mount in enumerate(self.mounts):
            target = self.root / f"run{self._count}" / f"dir{i}"
            target.parent.mkdir(exist_ok=True)
            try:
                copy_tree(mount.host, target)
            except OSError as exc:
                remove_tree(target)
                reason = exc.strerror or type(exc).__name__
                if exc.filename and len(os.fspath(exc.filename)) < 256:
                    reason = f"{reason} ({os.fspath(exc.filename)})"
                raise ConfigError(
                    f"cannot copy {mount.host} (mounted at {mount.guest}) for a run: {reason}; "
                    "mount a folder whose files can all be copied."
                ) from None
            copies.append(mount._replace(host=str(target)))
        return tuple(copies)

    def snapshot(self, mounts: tuple[Mount, ...]) -> Tree:
        """The mounted trees, listed and read within MAX_SNAPSHOT_ENTRIES and
        MAX_SNAPSHOT_BYTES: a guest can make a file of any size (a sparse one costs it
        nothing) and any number of them."""
        entries: dict[str, FileState | None] = {}
        files: list[tuple[str, str]] = []  # (guest path, host path)
        complete = True
        for mount in mounts:
            base = mount.guest.rstrip("/")
            folders = [mount.host]
            while folders and complete:
                folder = folders.pop()
                try:
                    listing = os.scandir(folder)
                except OSError as exc:
                    # A guest can make a tree deeper than a path can name.
                    complete = complete and exc.errno != errno.ENAMETOOLONG
                    continue
                with listing:
                    for entry in listing:
                        if len(entries) >= MAX_SNAPSHOT_ENTRIES:
                            complete = False
                            break
                        guest = f"{base}/{os.path.relpath(entry.path, mount.host)}"
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                entries[guest] = None
                                folders.append(entry.path)
                            elif entry.is_file(follow_symlinks=False):
                                entries[guest] = FileState(0, None, b"")  # read below
                                files.append((guest, entry.path))
                        except OSError:
                            continue
        # In path order, so that the same trees spend the byte budget on the same files.
        budget = MAX_SNAPSHOT_BYTES
        for guest, host_path in sorted(files):
            state, budget = _file_state(host_path, budget)
            if state is None:
                del entries[guest]  # gone, or no longer a regular file
            else:
                entries[guest] = state
        return Tree(entries, complete)

    def discard(self, mounts: tuple[Mount, ...]) -> None:
        for mount in mounts:
            remove_tree(mount.host)


def _file_state(path: str, budget: int) -> tuple[FileState | None, int]:
    """The file at ``path``, hashed if its size fits in ``budget`` bytes; what is left
    of the budget. None when it is not a regular file that can be opened."""
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(_HEAD)
            if size > budget:
                return FileState(size, None, head), budget
            digest = hashlib.sha256(head)
            read = len(head)
            while read < size and (chunk := f.read(min(1 << 20, size - read))):
                digest.update(chunk)
                read += len(chunk)
            return FileState(read, digest.digest(), head), budget - read
    except OSError:
        return None, budget


def _in_process(
    host: Host,
    path: str,
    args: tuple[str, ...],
    env: dict[str, str],
    work: _Workspace,
    runs: int,
    warmup: int,
    limits: _Limits,
    tell: Callable[[], None],
) -> tuple[Outcome | None, RuntimeResult]:
    """The reference runs; their outcome (None when a run stopped at a limit) and row."""
    from .._host.engines.capi import wasmtime_version
    from .._version import __version__

    version = f"wasmhost {__version__} (wasmtime-py {wasmtime_version()})"
    started = time.perf_counter()
    # With a timeout, the engine that can interrupt a guest (and so also cancel it on
    # Ctrl-C); its checks cost hot loops time (nbody: 19 % here). Without, the engine
    # the wasmtime CLI runs, and nothing stops a guest that does not end.
    interruptible = limits.timeout is not None
    module = host.load(path, timeout=limits.timeout)
    load = time.perf_counter() - started

    def all_runs(cancel: threading.Event) -> tuple[Outcome, list[tuple[float, ...]]]:
        def once(mounts: tuple[Mount, ...]) -> tuple[Outcome, tuple[float, ...]]:
            tell()
            dirs = {m.guest: Dir(m.host, m.read_only) for m in mounts}
            start = time.perf_counter()
            try:
                result = host.run(
                    module,
                    args,
                    env=env,
                    dirs=dirs,
                    stdin=work.stdin,
                    timeout=limits.timeout,
                    max_output=limits.max_output,
                    cancel=cancel if interruptible else None,
                )
                outcome = Outcome(result.exit_code, None, result.stdout, result.stderr)
                inst, total = result.instantiate_time, result.elapsed
            except TimeoutExceeded:
                raise _Stopped(f"timed out after {limits.timeout:g} s") from None
            except OutputLimitExceeded as exc:
                raise _Stopped(f"output exceeded {exc.max_output} bytes on {exc.stream}") from None
            except GuestError as exc:
                outcome = Outcome(TRAP_EXIT_STATUS, None, exc.stdout, exc.stderr)
                inst = total = time.perf_counter() - start
            return outcome, (time.perf_counter() - start, inst, total - inst)

        return _repeat(work, runs, warmup, once)

    try:
        # All runs in one thread: a thread's first call into wasmtime costs more.
        reference, samples = _cancellable(all_runs)
    except _Stopped as exc:
        return None, RuntimeResult("wasmhost", version, True, error=str(exc))
    walls, instantiate, execute = (list(column) for column in zip(*samples, strict=True))
    phases = {
        "load": round(load * 1000, 3),
        "instantiate": round(statistics.median(instantiate) * 1000, 3),
        "execute": round(statistics.median(execute) * 1000, 3),
    }
    row = RuntimeResult(
        runtime="wasmhost",
        version=version,
        available=True,
        exit_code=reference.exit_code,
        output_matches=True,
        read_only_mounts=True,
        wall_ms=Stats.of(walls),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        phases_ms=phases,
    )
    return reference, row


def _cancellable(run: Callable[[threading.Event], T]) -> T:
    """``run(cancel)`` in a thread of its own, cancelled if this one is interrupted.

    Python handles a signal between bytecodes, never while a guest runs inside
    wasmtime: run there, a spinning guest would hold off Ctrl-C (and the CLI's
    SIGTERM) until its timeout. Waiting for a thread can be interrupted.
    """
    cancel = threading.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(run(cancel))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=work, name="wasmhost-compare-run", daemon=True)
    worker.start()
    try:
        worker.join()
    except BaseException:
        cancel.set()  # the guest stops at once; what interrupted us goes on
        worker.join()
        raise
    if failure:
        raise failure[0]
    return outcome[0]


class _Cold(Runtime):
    """``wasmhost run`` in a new process each time: what a shell script would pay."""

    name = "wasmhost-cold"
    executable = sys.executable
    install_hint = ""
    read_only_mounts = True
    components = True

    def locate(self) -> str | None:
        return sys.executable

    def version(self, timeout: float = VERSION_TIMEOUT) -> str | None:
        from .._version import __version__

        return f"wasmhost {__version__} (a new process per run)"

    def argv(self, invocation: Invocation) -> list[str]:
        dirs = [
            f"--dir={m.host}::{m.guest}{'::ro' if m.read_only else ''}" for m in invocation.mounts
        ]
        envs = env_flags("--env", invocation.env)
        # -I: it runs in the module's folder, whose Python files must not be imported.
        return ["-I", "-m", "wasmhost", "run", *dirs, *envs, invocation.module, *invocation.args]


def _external(
    runtime: Runtime,
    path: str,
    args: Sequence[str],
    env: dict[str, str],
    work: _Workspace,
    runs: int,
    warmup: int,
    reference: Outcome,
    limits: _Limits,
    progress: Progress | None = None,
    component: bool = False,
) -> RuntimeResult:
    if not runtime.available():
        return RuntimeResult(runtime.name, None, False, install_hint=runtime.install_hint or None)
    # Run from the module's folder and name it by its file name: every runtime then
    # gives the guest the same argv[0] (iwasm passes on the path it is given).
    folder, file_name = os.path.split(path)
    # --version may take a run's time, not more (a runtime that hangs there is killed).
    version = runtime.version(VERSION_TIMEOUT if limits.timeout is None else limits.timeout)
    if version is None:
        return _does_not_start(runtime)
    reason = runtime.unable(Invocation(file_name, tuple(args), env, work.planned()), component)
    if reason is not None:
        return RuntimeResult(runtime.name, version, True, unable=reason)

    tell = _counting(progress, runtime.name, warmup + runs + 1)

    def command(mounts: tuple[Mount, ...]) -> list[str]:
        return runtime.command(Invocation(file_name, tuple(args), env, mounts))

    def once(mounts: tuple[Mount, ...]) -> tuple[Outcome, tuple[float, ...]]:
        tell()
        outcome, wall = _spawn(command(mounts), work.stdin_path, folder, limits)
        return outcome, (wall,)

    try:
        first, samples = _repeat(work, runs, warmup, once)
        tell()
        mounts = work.fresh()  # one more run, for its own peak RSS (see the module's docstring)
        try:
            peak = _probe(command(mounts), work.stdin_path, folder, limits)[1]
        finally:
            work.discard(mounts)
    except OSError as exc:
        return RuntimeResult(runtime.name, version, True, error=f"could not start: {exc}")
    except _Stopped as exc:  # not compared: what it wrote is cut short, or it did not end
        return RuntimeResult(runtime.name, version, True, error=str(exc))
    walls = [wall for (wall,) in samples]
    differences, notes = _differences(reference, first, work.initial, runtime)
    return RuntimeResult(
        runtime.name,
        version,
        True,
        exit_code=first.exit_code,
        signal=first.signal,
        output_matches=not differences,
        differences=tuple(differences),
        notes=tuple(notes),
        read_only_mounts=runtime.read_only_mounts if work.mounts else None,
        wall_ms=Stats.of(walls),
        peak_rss_mib=None if peak is None else round(peak, 1),
    )


def _repeat(
    work: _Workspace,
    runs: int,
    warmup: int,
    once: Callable[[tuple[Mount, ...]], tuple[Outcome, tuple[float, ...]]],
) -> tuple[Outcome, list[tuple[float, ...]]]:
    """Run ``once`` on fresh directory copies, warm-up runs first; the first outcome
    (with the files it wrote) and the samples of the measured runs."""
    first: Outcome | None = None
    samples = []
    for i in range(warmup + runs):
        mounts = work.fresh()
        try:
            outcome, sample = once(mounts)
            if first is None:
                first = outcome._replace(files=work.snapshot(mounts))
        finally:
            work.discard(mounts)
        if i >= warmup:
            samples.append(sample)
    assert first is not None
    return first, samples


def _spawn(
    argv: list[str], stdin_path: Path, cwd: str | None = None, limits: _Limits = _DEFAULT_LIMITS
) -> tuple[Outcome, float]:
    """Run ``argv`` in ``cwd``; its outcome and wall seconds."""
    start = time.perf_counter()
    status, out, err = _run_process(argv, stdin_path, cwd, limits)
    return _outcome(status, out, err), time.perf_counter() - start


def _probe(
    argv: list[str], stdin_path: Path, cwd: str | None = None, limits: _Limits = _DEFAULT_LIMITS
) -> tuple[Outcome, float | None]:
    """Run ``argv`` through the shell and reporter (see the module's docstring); its
    outcome and its own peak RSS in MiB (None if the reporter did not report)."""
    report = stdin_path.with_name(f"report-{os.getpid()}-{time.monotonic_ns()}")
    shell = ["/bin/sh", "-c", _PROBE_SHELL, sys.executable, _REPORTER, str(report)]
    shell_status, out, err = _run_process([*shell, *argv], stdin_path, cwd, limits)
    try:
        fields = report.read_text().split()
        report.unlink()
    except OSError:
        fields = []
    if os.waitstatus_to_exitcode(shell_status) != 0 or len(fields) != 2:
        # No report: the shell or the reporter failed; its status is all there is.
        return _outcome(shell_status, out, err), None
    return _outcome(int(fields[0]), out, err), int(fields[1]) / 1024


def _run_process(
    argv: list[str], stdin_path: Path, cwd: str | None, limits: _Limits
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in a session of its own, stdin from the file, in ``cwd``: its wait
    status, stdout and stderr (through files: a runtime never waits for a reader).
    Past ``limits`` its session is killed and :class:`_Stopped` raised."""
    with (
        open(stdin_path, "rb") as stdin,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        process = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=out,
            stderr=err,
            env=_clean_env(),
            cwd=cwd,
            start_new_session=True,
        )
        outputs = {"stdout": out, "stderr": err}
        status = _finish(process, limits, outputs)
        if (over := _over(limits.max_output, outputs)) is not None:
            raise _Stopped(over)  # written between the last look and its end
        out.seek(0)
        err.seek(0)
        return status, out.read(), err.read()


def _finish(process: subprocess.Popen[bytes], limits: _Limits, outputs: Mapping[str, Any]) -> int:
    """Wait for ``process``, looking at the size of its ``outputs`` as it runs; past
    the timeout or the output cap (or on any exception here, such as KeyboardInterrupt)
    its whole session is killed."""
    deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
    try:
        with _exit_watch(process.pid) as ended:
            while True:
                left = _POLL if deadline is None else min(_POLL, deadline - time.monotonic())
                if ended(max(left, 0.0)):
                    break
                if (over := _over(limits.max_output, outputs)) is not None:
                    raise _Stopped(f"{over}; killed")
                if deadline is not None and time.monotonic() >= deadline:
                    raise _Stopped(f"timed out after {limits.timeout:g} s; killed")
        status = os.waitpid(process.pid, 0)[1]
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        os.waitpid(process.pid, 0)
        process.returncode = -9
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return status


def _over(max_output: int | None, outputs: Mapping[str, Any]) -> str | None:
    """Which of ``outputs`` (named open files) holds more than ``max_output`` bytes."""
    if max_output is None:
        return None
    for name, file in outputs.items():
        if os.fstat(file.fileno()).st_size > max_output:
            return f"output exceeded {max_output} bytes on {name}"
    return None


@contextlib.contextmanager
def _exit_watch(pid: int) -> Iterator[Callable[[float], bool]]:
    """A function that waits up to so many seconds for ``pid`` to end, and says whether
    it has (it is left to be reaped): a pidfd where Linux has them, else polling."""
    if hasattr(os, "pidfd_open"):
        fd = os.pidfd_open(pid)
        try:
            yield lambda seconds: bool(select.select([fd], [], [], seconds)[0])
        finally:
            os.close(fd)
        return

    def polled(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            # waitid(WNOWAIT) leaves the process to be reaped by waitpid.
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)

    yield polled


def _outcome(status: int, out: bytes, err: bytes) -> Outcome:
    """What a run produced, from its wait status and its output."""
    code: int | None = os.waitstatus_to_exitcode(status)
    sig = None
    if code is not None and code < 0:
        sig, code = signal.Signals(-code).name, None
    return Outcome(code, sig, out, err)


def _clean_env() -> dict[str, str]:
    """The runtimes' own environment: this one, less what would reach the guest or skew it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("WASMTIME_", "NODE_OPTIONS"))}


def _differences(
    expected: Outcome, actual: Outcome, initial: Tree, runtime: Runtime
) -> tuple[list[str], list[str]]:
    """How ``actual`` differs from the in-process ``expected``, and notes on what was
    told apart that is not a difference (a trap reported the runtime's own way)."""
    found: list[str] = []
    notes: list[str] = []
    stdout = actual.stdout
    compare_stderr = True
    same = actual.signal is None and (actual.exit_code, actual.stdout, actual.stderr) == (
        expected.exit_code,
        expected.stdout,
        expected.stderr,
    )
    if same:
        pass  # nothing to tell apart (a guest may print "Exception: ..." itself)
    elif actual.signal is not None:
        found.append(f"crashed with {actual.signal}")
    else:
        # Each runtime says "trapped" its own way (its exit status, a report on stdout
        # or stderr): a trap is compared by kind, and the guest's own output by bytes.
        guest_stdout = runtime.trap_report(actual.exit_code, actual.stdout, actual.stderr)
        trapped_here = guest_stdout is not None
        trapped_in_process = expected.exit_code == TRAP_EXIT_STATUS
        if trapped_here and trapped_in_process:
            assert guest_stdout is not None
            stdout, compare_stderr = guest_stdout, False
            notes.append(
                f"trapped, as in-process: compared by kind ({runtime.trap_wording}), "
                "not by bytes; stderr left out"
            )
        elif trapped_in_process:
            found.append(f"exit status {actual.exit_code}; in-process the guest trapped")
        elif trapped_here:
            found.append(
                f"trapped ({runtime.trap_wording}); in-process it exited {expected.exit_code}"
            )
        elif actual.exit_code != expected.exit_code:
            found.append(f"exit status {actual.exit_code}, expected {expected.exit_code}")
    diff = _first_difference(expected.stdout, stdout)
    if diff:
        found.append(f"stdout {diff}")
    if compare_stderr:
        errno_only = _errno_only(expected.stderr, actual.stderr)
        if errno_only is not None:  # the same behaviour, worded with another errno
            notes.append(errno_only)
        else:
            diff = _first_difference(expected.stderr, actual.stderr)
            if diff:
                found.append(f"stderr {diff}")
    in_trees, tree_notes = _tree_differences(initial, expected.files, actual.files, runtime.name)
    return found + in_trees, notes + tree_notes


# "<what the OS says> (os error N)": how Rust's std words an errno ("Operation not
# permitted", "Read-only file system"): a capitalised phrase of lower-case words.
_ERRNO_TEXT = re.compile(rb"[A-Z][a-z]+(?:[ -][a-z]+)* \(os error (\d+)\)")


def _errno_only(expected: bytes, actual: bytes) -> str | None:
    """A note when two stderrs differ only in the errors the guest was handed (the
    same refusal, another errno); None when they are equal or differ otherwise."""
    if expected == actual:
        return None
    if _ERRNO_TEXT.sub(b"ERRNO", expected) != _ERRNO_TEXT.sub(b"ERRNO", actual):
        return None
    ours = list(_ERRNO_TEXT.finditer(expected))
    theirs = list(_ERRNO_TEXT.finditer(actual))
    if len(ours) != len(theirs):
        return None
    pairs = []
    for a, b in zip(ours, theirs, strict=True):
        if a.group() == b.group():
            continue
        if a.group(1) == b.group(1):
            return None  # the same errno worded otherwise: not what this note is for
        pairs.append(f"{b.group().decode()!r} where in-process it was {a.group().decode()!r}")
    return f"stderr differs only in the error number the guest got: {'; '.join(pairs)}"


class _Absent:
    """What a tree holds at a path that is not there."""


_ABSENT = _Absent()
Entry = FileState | None | _Absent


def _tree_differences(
    initial: Tree, expected: Tree, actual: Tree, name: str
) -> tuple[list[str], list[str]]:
    """The paths of the mounted trees that ended differently, each with what the
    runtime and the in-process run did to it (created, changed, removed); and notes on
    what could not be compared in full (files past the read budget, trees past the
    entry budget)."""
    found = []
    by_size = []
    for path in sorted(set(expected.entries) | set(actual.entries)):
        ours: Entry = expected.entries.get(path, _ABSENT)
        theirs: Entry = actual.entries.get(path, _ABSENT)
        if _same(ours, theirs):
            if _unread(ours) or _unread(theirs):
                by_size.append(path)
            continue
        before: Entry = initial.entries.get(path, _ABSENT)
        line = f"{path}: {_what(before, theirs)} by {name}, {_what(before, ours)} in-process"
        if isinstance(ours, FileState) and isinstance(theirs, FileState):
            line += f"; the file {_file_difference(ours, theirs)}"
        found.append(line)
    notes = []
    if by_size:
        shown = ", ".join(by_size[:5]) + (f" and {len(by_size) - 5} more" if by_size[5:] else "")
        notes.append(
            f"compared by size only (past compare's {format_size(MAX_SNAPSHOT_BYTES)} "
            f"snapshot read limit): {shown}"
        )
    if not (expected.complete and actual.complete):
        notes.append(
            f"the mounted trees hold more than {MAX_SNAPSHOT_ENTRIES} entries, or paths too "
            "long to list: only part of them was compared"
        )
    return found, notes


def _unread(entry: Entry) -> bool:
    return isinstance(entry, FileState) and entry.digest is None


def _same(a: Entry, b: Entry) -> bool:
    """Whether two entries are alike: files by size and, where both were read, hash."""
    if isinstance(a, FileState) and isinstance(b, FileState):
        unread = a.digest is None or b.digest is None
        return a.size == b.size and (unread or a.digest == b.digest)
    return a is b


def _what(before: Entry, after: Entry) -> str:
    if after is _ABSENT:
        if before is _ABSENT:
            return "not created"
        return "directory removed" if before is None else "file removed"
    if before is _ABSENT:
        return "directory created" if after is None else "file created"
    if (before is None) != (after is None):
        return f"replaced by a {'directory' if after is None else 'file'}"
    return "left as it was" if _same(before, after) else "file changed"


def _file_difference(expected: FileState, actual: FileState) -> str:
    """Where two different files part, from their first bytes and sizes."""
    sizes = (expected.size, actual.size)
    if expected.head == actual.head and len(expected.head) < min(sizes):
        return f"differs after byte {len(expected.head)} ({sizes[0]} vs {sizes[1]} bytes)"
    return _first_difference(expected.head, actual.head, sizes) or "differs"


def _first_difference(
    expected: bytes, actual: bytes, sizes: tuple[int, int] | None = None
) -> str | None:
    """Where two outputs part, in one short phrase; None when they are equal.
    ``sizes``: the whole outputs' sizes, when these are their first bytes."""
    if expected == actual and sizes is None:
        return None
    at = next(
        (i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
        min(len(expected), len(actual)),
    )
    line = expected[:at].count(b"\n") + 1
    whole = sizes or (len(expected), len(actual))

    def around(data: bytes) -> str:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        return repr(data[start : end if end >= 0 else None][:60])[1:]

    return (
        f"differs at byte {at} (line {line}): expected {around(expected)}, "
        f"got {around(actual)} ({whole[0]} vs {whole[1]} bytes)"
    )
