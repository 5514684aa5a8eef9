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
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .._errors import TRAP_EXIT_STATUS, ConfigError, GuestError
from .._host.host import Dir, DirSource, Host, as_dir
from .._wasm import is_component
from .runtimes import Invocation, Mount, Runtime, get_runtime
from .runtimes._base import env_flags

RUN_TIMEOUT = 300.0

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


class Outcome(NamedTuple):
    """What one run produced: the part that is compared between runtimes."""

    exit_code: int | None
    signal: str | None
    stdout: bytes
    stderr: bytes
    files: dict[str, bytes | None]  # the mounted trees after the run: None for a directory


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
    """
    if runs < 1 or warmup < 0:
        raise ConfigError("runs must be at least 1 and warmup at least 0.")
    path = os.path.abspath(os.fspath(module))
    if not os.path.isfile(path):
        raise ConfigError(f"{module}: no such file; compare takes a .wasm file.")
    adapters = [get_runtime(r) if isinstance(r, str) else r for r in (runtimes or _all())]
    mounts = [_mount(guest, source) for guest, source in (dirs or {}).items()]
    invocation_env = dict(env or {})
    own = host or Host()
    with contextlib.ExitStack() as cleanup:
        if host is None:
            cleanup.callback(own.close)
        scratch = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="wasmhost-compare-"))
        work = _Workspace(Path(scratch), mounts, stdin)
        tell = _counting(progress, "wasmhost", warmup + runs)
        reference, row = _in_process(
            own, path, tuple(args), invocation_env, work, runs, warmup, tell
        )
        results = [row]
        with open(path, "rb") as f:
            component = is_component(f.read(8))
        for adapter in [_Cold()] * cold + adapters:
            row = _external(
                adapter,
                path,
                args,
                invocation_env,
                work,
                runs,
                warmup,
                reference,
                progress,
                component,
            )
            results.append(row)
    return Comparison(os.fspath(module), tuple(args), tuple(results))


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
            shutil.copytree(mount.host, target, symlinks=True)
            copies.append(mount._replace(host=str(target)))
        return tuple(copies)

    def snapshot(self, mounts: tuple[Mount, ...]) -> dict[str, bytes | None]:
        """The mounted trees by guest path: file contents, None for a directory
        (symbolic links are left out)."""
        tree: dict[str, bytes | None] = {}
        for mount in mounts:
            for folder, dirs, names in os.walk(mount.host):
                for name in dirs + names:
                    full = os.path.join(folder, name)
                    if os.path.islink(full):
                        continue
                    guest = f"{mount.guest.rstrip('/')}/{os.path.relpath(full, mount.host)}"
                    if name in dirs:
                        tree[guest] = None
                    else:
                        with open(full, "rb") as f:
                            tree[guest] = f.read()
        return tree

    def discard(self, mounts: tuple[Mount, ...]) -> None:
        for mount in mounts:
            shutil.rmtree(mount.host, ignore_errors=True)


def _in_process(
    host: Host,
    path: str,
    args: tuple[str, ...],
    env: dict[str, str],
    work: _Workspace,
    runs: int,
    warmup: int,
    tell: Callable[[], None],
) -> tuple[Outcome, RuntimeResult]:
    started = time.perf_counter()
    module = host.load(path)
    load = time.perf_counter() - started

    def once(mounts: tuple[Mount, ...]) -> tuple[Outcome, tuple[float, ...]]:
        tell()
        dirs = {m.guest: Dir(m.host, m.read_only) for m in mounts}
        start = time.perf_counter()
        try:
            result = host.run(module, args, env=env, dirs=dirs, stdin=work.stdin)
            outcome = Outcome(result.exit_code, None, result.stdout, result.stderr, {})
            inst, total = result.instantiate_time, result.elapsed
        except GuestError as exc:
            outcome = Outcome(TRAP_EXIT_STATUS, None, exc.stdout, exc.stderr, {})
            inst = total = time.perf_counter() - start
        return outcome, (time.perf_counter() - start, inst, total - inst)

    reference, samples = _repeat(work, runs, warmup, once)
    walls, instantiate, execute = (list(column) for column in zip(*samples, strict=True))
    phases = {
        "load": round(load * 1000, 3),
        "instantiate": round(statistics.median(instantiate) * 1000, 3),
        "execute": round(statistics.median(execute) * 1000, 3),
    }
    from .._host.capi import wasmtime_version
    from .._version import __version__

    row = RuntimeResult(
        runtime="wasmhost",
        version=f"wasmhost {__version__} (wasmtime-py {wasmtime_version()})",
        available=True,
        exit_code=reference.exit_code,
        output_matches=True,
        read_only_mounts=True,
        wall_ms=Stats.of(walls),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        phases_ms=phases,
    )
    return reference, row


class _Cold(Runtime):
    """``wasmhost run`` in a new process each time: what a shell script would pay."""

    name = "wasmhost-cold"
    executable = sys.executable
    install_hint = ""
    read_only_mounts = True
    components = True

    def locate(self) -> str | None:
        return sys.executable

    def version(self) -> str | None:
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
    progress: Progress | None = None,
    component: bool = False,
) -> RuntimeResult:
    if not runtime.available():
        return RuntimeResult(runtime.name, None, False, install_hint=runtime.install_hint or None)
    # Run from the module's folder and name it by its file name: every runtime then
    # gives the guest the same argv[0] (iwasm passes on the path it is given).
    folder, file_name = os.path.split(path)
    reason = runtime.unable(Invocation(file_name, tuple(args), env, work.planned()), component)
    if reason is not None:
        return RuntimeResult(runtime.name, runtime.version(), True, unable=reason)
    version = runtime.version()
    if version is None:
        return RuntimeResult(
            runtime.name,
            None,
            True,
            install_hint=runtime.install_hint or None,
            error=f"{runtime.locate()} --version failed: the runtime is installed but does not run",
        )

    tell = _counting(progress, runtime.name, warmup + runs + 1)

    def command(mounts: tuple[Mount, ...]) -> list[str]:
        return runtime.command(Invocation(file_name, tuple(args), env, mounts))

    def once(mounts: tuple[Mount, ...]) -> tuple[Outcome, tuple[float, ...]]:
        tell()
        outcome, wall = _spawn(command(mounts), work.stdin_path, folder)
        return outcome, (wall,)

    try:
        first, samples = _repeat(work, runs, warmup, once)
        tell()
        mounts = work.fresh()  # one more run, for its own peak RSS (see the module's docstring)
        try:
            peak = _probe(command(mounts), work.stdin_path, folder)[1]
        finally:
            work.discard(mounts)
    except OSError as exc:
        return RuntimeResult(runtime.name, version, True, error=f"could not start: {exc}")
    except subprocess.TimeoutExpired:
        return RuntimeResult(
            runtime.name, version, True, error=f"no answer after {RUN_TIMEOUT:g} s; killed"
        )
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


def _spawn(argv: list[str], stdin_path: Path, cwd: str | None = None) -> tuple[Outcome, float]:
    """Run ``argv`` in ``cwd``; its outcome and wall seconds."""
    start = time.perf_counter()
    status, out, err = _run_process(argv, stdin_path, cwd)
    return _outcome(status, out, err), time.perf_counter() - start


def _probe(
    argv: list[str], stdin_path: Path, cwd: str | None = None
) -> tuple[Outcome, float | None]:
    """Run ``argv`` through the shell and reporter (see the module's docstring); its
    outcome and its own peak RSS in MiB (None if the reporter did not report)."""
    report = stdin_path.with_name(f"report-{os.getpid()}-{time.monotonic_ns()}")
    shell = ["/bin/sh", "-c", _PROBE_SHELL, sys.executable, _REPORTER, str(report)]
    shell_status, out, err = _run_process([*shell, *argv], stdin_path, cwd)
    try:
        fields = report.read_text().split()
        report.unlink()
    except OSError:
        fields = []
    if os.waitstatus_to_exitcode(shell_status) != 0 or len(fields) != 2:
        # No report: the shell or the reporter failed; its status is all there is.
        return _outcome(shell_status, out, err), None
    return _outcome(int(fields[0]), out, err), int(fields[1]) / 1024


def _run_process(argv: list[str], stdin_path: Path, cwd: str | None) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in a session of its own, stdin from the file, in ``cwd``: its wait
    status, stdout and stderr (through files: a runtime never waits for a reader)."""
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
        status = _finish(process)
        out.seek(0)
        err.seek(0)
        return status, out.read(), err.read()


def _finish(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process`` (RUN_TIMEOUT at most, then its whole session is killed)."""
    try:
        status = _wait(process.pid, RUN_TIMEOUT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        os.waitpid(process.pid, 0)
        process.returncode = -9
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return status


def _outcome(status: int, out: bytes, err: bytes) -> Outcome:
    """What a run produced, from its wait status and its output."""
    code: int | None = os.waitstatus_to_exitcode(status)
    sig = None
    if code is not None and code < 0:
        sig, code = signal.Signals(-code).name, None
    return Outcome(code, sig, out, err, {})


def _wait(pid: int, timeout: float) -> int:
    """Wait for ``pid`` without polling (a pidfd where Linux has them); its wait status."""
    if hasattr(os, "pidfd_open"):
        fd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        if not ready:
            raise subprocess.TimeoutExpired(str(pid), timeout)
        return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    while True:
        found, status = os.waitpid(pid, os.WNOHANG)
        if found:
            return status
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(str(pid), timeout)
        time.sleep(0.001)


def _clean_env() -> dict[str, str]:
    """The runtimes' own environment: this one, less what would reach the guest or skew it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("WASMTIME_", "NODE_OPTIONS"))}


def _differences(
    expected: Outcome, actual: Outcome, initial: dict[str, bytes | None], runtime: Runtime
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
    found += _tree_differences(initial, expected.files, actual.files, runtime.name)
    return found, notes


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
Entry = bytes | None | _Absent


def _tree_differences(
    initial: dict[str, bytes | None],
    expected: dict[str, bytes | None],
    actual: dict[str, bytes | None],
    name: str,
) -> list[str]:
    """The paths of the mounted trees that ended differently, each with what the
    runtime and the in-process run did to it (created, changed, removed)."""
    found = []
    for path in sorted(set(expected) | set(actual)):
        ours: Entry = expected.get(path, _ABSENT)
        theirs: Entry = actual.get(path, _ABSENT)
        if ours == theirs:
            continue
        before: Entry = initial.get(path, _ABSENT)
        line = f"{path}: {_what(before, theirs)} by {name}, {_what(before, ours)} in-process"
        if isinstance(ours, bytes) and isinstance(theirs, bytes):
            line += f"; the file {_first_difference(ours, theirs)}"
        found.append(line)
    return found


def _what(before: Entry, after: Entry) -> str:
    if after is _ABSENT:
        if before is _ABSENT:
            return "not created"
        return "directory removed" if before is None else "file removed"
    if before is _ABSENT:
        return "directory created" if after is None else "file created"
    if (before is None) != (after is None):
        return f"replaced by a {'directory' if after is None else 'file'}"
    return "left as it was" if before == after else "file changed"


def _first_difference(expected: bytes, actual: bytes) -> str | None:
    """Where two outputs part, in one short phrase; None when they are equal."""
    if expected == actual:
        return None
    at = next(
        (i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
        min(len(expected), len(actual)),
    )
    line = expected[:at].count(b"\n") + 1

    def around(data: bytes) -> str:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        return repr(data[start : end if end >= 0 else None][:60])[1:]

    return (
        f"differs at byte {at} (line {line}): expected {around(expected)}, "
        f"got {around(actual)} ({len(expected)} vs {len(actual)} bytes)"
    )
