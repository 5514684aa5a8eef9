"""The :class:`Host`: one owner of the wasmtime engines, running WASI modules in-process."""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypedDict, cast

import wasmtime

from .._errors import (
    ConfigError,
    ErrorResult,
    Frame,
    FuelExhausted,
    GuestError,
    Interrupted,
    LinkError,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    TimeoutExceeded,
    Trap,
    WasmhostError,
)
from .._hashing import content_key
from .._numbers import check_seconds, check_size, check_whole, format_size
from .._paths import default_cache_root, max_size_from_environment
from .._text import wasi_environment, wasi_strings
from .._wasm import is_component
from .cache import CompileCache, file_state, settled
from .capi import call_nullary, export_func, set_argv, set_env
from .engine import (
    COMPONENT_WEIGHT,
    MAX_TABLES,
    EngineFlags,
    Engines,
    EngineSlot,
    table_elements,
)
from .functions import Failure, Imports, check_imports, define
from .memory import MAX_RESERVATION, MemoryWatch
from .module import (
    Import,
    Module,
    ModuleChanged,
    ModuleSource,
    check_header,
    compile_wasm,
    describe,
    func_types,
    last_line,
    read_source,
    table_limits,
    uncallable,
    wasm_imports,
)
from .result import OutputChunk, RunResult
from .stdio import CAPTURE, OutputTarget, StdinSource, Stdio
from .wasi import DEFAULT_MAX_FILES, RunWasi
from .wasi import active as wasi_active
from .watchdog import Guard, active, current

# At run time too: typing.get_type_hints (Sphinx, pydantic, typeguard) resolves it.
if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

if TYPE_CHECKING:
    from concurrent.futures import Executor
else:  # concurrent.futures imports logging: ~15 ms of `wasmhost run` start-up
    Executor = Any  # what typing.get_type_hints sees for run_async's executor

DEFAULT_MAX_OUTPUT = 16 << 20
"""How much of each captured stream a run keeps by default (16 MiB)."""

DEFAULT_MAX_CACHED_MODULES = 64
"""How many modules a :class:`Host` keeps compiled in memory by default."""

# A module's code, or a component's (wasmtime.component loads only for components).
Compiled = Any
# Compiled code and its InstancePre (a component's: where its run function is).
Entry = tuple[Compiled, Any]


class Dir(NamedTuple):
    """A host directory to preopen for the guest; ``read_only`` forbids every change in it.

    >>> host.run(module, dirs={"/data": Dir("./data", read_only=True)})
    """

    path: str | os.PathLike[str]
    read_only: bool = False


DirSource = str | os.PathLike[str] | Dir


ImportCheck = Callable[[str, Iterable[Import]], None]
"""Called with a module's name and imports before it is compiled; raises to refuse it."""


def _import_check(imports: Imports | None, unknown_imports: str) -> ImportCheck:
    """The check of a module's imports against ``imports``, as a run makes it."""

    def check(name: str, found: Iterable[Import]) -> None:
        check_imports(name, found, imports, unknown_imports)

    return check


def as_dir(source: DirSource) -> Dir:
    """A ``dirs`` value as a :class:`Dir` (a plain path is a writable mount)."""
    return source if isinstance(source, Dir) else Dir(source)


class StreamOptions(TypedDict, total=False):
    """What a run is given, but where its output goes: the options of :meth:`Host.stream`.

    Each is described, with its default, at :meth:`Host.run`.
    """

    env: Mapping[str, str] | None
    stdin: StdinSource
    dirs: Mapping[str, DirSource] | None
    invoke: str | None
    imports: Imports | None
    unknown_imports: Literal["error", "trap"]
    timeout: float | None
    fuel: int | None
    max_memory: int | None
    cancel: threading.Event | None
    argv0: str | None
    max_files: int | None
    symlinks: bool


class RunOptions(StreamOptions, total=False):
    """The options of :meth:`Host.run`, :meth:`Host.run_async` and :meth:`Host.load`,
    one definition for all: ``host.run(module, **options)`` with ``options: RunOptions``."""

    stdout: OutputTarget
    stderr: OutputTarget
    max_output: int | None


_RUN_OPTIONS = RunOptions.__optional_keys__
_STREAM_OPTIONS = StreamOptions.__optional_keys__


def _check_options(method: str, options: Mapping[str, object], allowed: frozenset[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")


def _checked(method: str, options: Mapping[str, Any]) -> EngineFlags:
    """Refuse unknown options and bad limits; the engine the runs with ``options`` need."""
    if options:
        _check_options(method, options, _RUN_OPTIONS)
    check_limits(
        options.get("timeout"),
        options.get("fuel"),
        options.get("max_memory"),
        options.get("max_output", DEFAULT_MAX_OUTPUT),
    )
    check_whole("max_files", options.get("max_files"), 1, _MAX_FILES_CEILING, "from 1 to 2**20")
    if not isinstance(options.get("symlinks", True), bool):
        raise ConfigError(f"symlinks must be True or False, not {options['symlinks']!r}.")
    return EngineFlags(
        interruptible=options.get("timeout") is not None or options.get("cancel") is not None,
        metered=options.get("fuel") is not None,
        capped=options.get("max_memory") is not None,
    )


class Host:
    """Runs WebAssembly (WASI preview 1) modules in this process.

    A host owns its wasmtime engines and compiled modules; it is safe to share
    between threads (every run gets its own store), and it works as a context
    manager::

        with Host() as host:
            result = host.run("artifacts/hello-world.wasm")
            print(result.stdout.decode())

    ``cache_dir`` is the wasmhost cache folder (compiled modules go in its
    ``compiled/`` subfolder); by default ``$WASMHOST_CACHE_DIR`` or
    ``$XDG_CACHE_HOME/wasmhost``; ``False`` keeps compiled code in memory only.
    The compiled modules there have no size bound unless
    ``$WASMHOST_CACHE_MAX_SIZE`` (``2GiB``) sets one: past it, storing a module
    removes the least recently used ones.

    ``max_cached_modules`` (default 64) is how many modules the host keeps
    compiled in memory, the most recently run ones; running another one drops
    the least recently run (a run in progress keeps what it uses), and running
    a dropped one again loads it from the disk cache (milliseconds) or compiles
    it. ``None``: no bound.
    """

    def __init__(
        self,
        *,
        cache_dir: str | os.PathLike[str] | Literal[False] | None = None,
        max_cached_modules: int | None = DEFAULT_MAX_CACHED_MODULES,
    ) -> None:
        if max_cached_modules is not None:
            check_whole(
                "max_cached_modules",
                max_cached_modules,
                1,
                1 << 20,
                "from 1 to 1,048,576 (or None)",
            )
        if cache_dir is False:
            root = None
        elif cache_dir is None:
            root = default_cache_root()
        else:
            root = Path(cache_dir)
        self._cache = CompileCache(
            root / "compiled" if root is not None else None,
            max_size_from_environment() if root is not None else None,  # unused without a cache
        )
        self._engines = Engines()
        self._paths: dict[tuple[str, int, int, int, int, int], Module] = {}
        # The streams each module (by key) has written more than a pipe holds to (see stdio).
        self._loud: dict[str, frozenset[str]] = {}
        # The modules kept compiled (by key), least recently run first.
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._recent_lock = threading.Lock()
        self._max_modules = max_cached_modules
        self._closed = False

    @property
    def cache_dir(self) -> Path | None:
        """Where compiled modules are stored on disk, or None."""
        return self._cache.directory

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the engines and compiled modules; the host cannot run anything afterwards."""
        self._closed = True
        self._engines.close()
        self._paths.clear()

    def __del__(self) -> None:
        # An engine's linker and its host functions refer to each other through
        # wasmtime, out of the garbage collector's sight: a host dropped
        # without close() would keep its engines (and their pools' address space).
        with contextlib.suppress(Exception):
            self.close()

    # -- loading -------------------------------------------------------------

    def load(
        self, source: ModuleSource, *, name: str | None = None, **options: Unpack[RunOptions]
    ) -> Module:
        """Read, check and compile a module (from a path or bytes), using the caches.

        It is compiled for the runs ``options`` describe (the same options as
        :meth:`run`'s; a ``timeout`` or ``cancel``, ``fuel`` and ``max_memory``
        each needs an engine of its own), so that the first such run does not
        wait. :meth:`run_async` and :meth:`stream` always run with a ``cancel``
        event (to stop the guest): load for them with ``cancel=`` or a timeout. With
        ``unknown_imports``, its imports are checked as :meth:`run` would check
        them (with ``imports``), before it is compiled; without, a module may
        import what only a later run provides.

        ``name`` is what errors and logs call the module (default: its path),
        e.g. the registry reference of a pulled module; runs give the guest
        its last part as argv[0] unless they pass ``argv0``.

        >>> module = host.load("artifacts/hello-world.wasm")
        >>> "_start" in module.export_names("func")
        True
        """
        flags = _checked("load", options)
        policy = options.get("unknown_imports")
        check = None if policy is None else _import_check(options.get("imports"), policy)
        slot = self._slot(flags)
        loaded = self._load(source, slot, check, name)[0]
        if loaded.kind == "component":
            if policy is not None:
                _check_component_run(loaded, options)
        elif check is not None:
            check(loaded.name, loaded.imports)
        return loaded

    def _load(
        self,
        source: ModuleSource,
        slot: EngineSlot,
        check: ImportCheck | None = None,
        name: str | None = None,
    ) -> tuple[Module, Entry]:
        """The module and its code compiled for ``slot``'s engine (compiled once per engine),
        with its InstancePre.

        A file whose content key the compile cache recorded for its current
        state is not read at all; ``check`` sees the imports of a module
        that has to be compiled, before it is. With ``name``, errors and the
        module returned carry that name (the module kept by path does not).
        """
        if name is not None and check is not None:
            named_check = check
            check = lambda _, imports: named_check(name, imports)  # noqa: E731
        module, entry = self._load_as(source, slot, check, name)
        if name is not None and module.name != name:
            module = module.renamed(name)
        return module, entry

    def _load_as(
        self, source: ModuleSource, slot: EngineSlot, check: ImportCheck | None, shown: str | None
    ) -> tuple[Module, Entry]:
        if isinstance(source, Module):
            module = source
            return module, self._compile(
                slot, shown or module.name, module.key, lambda: module.wasm, check
            )
        if not isinstance(source, bytes | bytearray | memoryview):
            name = os.fsdecode(source)
            st = _stat(name)
            if st is not None:
                if (cached := self._paths.get(_state(name, st))) is not None:
                    return cached, self._compile(
                        slot, shown or cached.name, cached.key, lambda: cached.wasm, check
                    )
                key = self._cache.known_key(name, st)
                if key is not None:
                    where = os.path.abspath(name)
                    lazy = Module(name, None, key, (), (), size=st.st_size, path=where)
                    try:
                        entry = self._compile(slot, shown or name, key, lambda: lazy.wasm, check)
                        module = _describe(slot, name, None, key, entry[0], st, where)
                    except ModuleChanged:
                        pass  # changed since its state was looked at: read it as it is now
                    else:
                        self._paths[_state(name, st)] = module
                        return module, entry
        read_at = time.time_ns()
        name, data, read = read_source(source)
        key = content_key(data)
        entry = self._compile(slot, shown or name, key, lambda: data, check)
        module = _describe(slot, name, data, key, entry[0])
        # A file that changed just before it was read could change again unseen
        # (coarse timestamps): it is read again next time rather than kept by state.
        if read is not None and settled(read, read_at):
            self._paths[_state(name, read)] = module
            self._cache.remember_key(name, read, key, read_at)
        return module, entry

    def _slot(self, flags: EngineFlags) -> EngineSlot:
        if self._closed:
            raise WasmhostError("this Host is closed; make a new one.")
        return self._engines.get(flags)

    def _compile(
        self,
        slot: EngineSlot,
        name: str,
        key: str,
        wasm: Callable[[], bytes],
        check: ImportCheck | None,
    ) -> Entry:
        """The module's (or component's) code for ``slot``'s engine and its InstancePre:
        compiled before, in the disk cache, or compiled now. It becomes the most
        recently used module; the least recently used ones past ``max_cached_modules``
        are dropped."""
        entry = slot.compiled.get(key)
        if entry is None:
            entry = self._compile_now(slot, name, key, wasm, check)
        self._used(key)
        return entry

    def _compile_now(
        self,
        slot: EngineSlot,
        name: str,
        key: str,
        wasm: Callable[[], bytes],
        check: ImportCheck | None,
    ) -> Entry:
        with slot.compile_lock(key):
            entry = slot.compiled.get(key)
            if entry is not None:
                return entry
            compiled = self._cached(slot, key)
            if compiled is None:
                data = wasm()
                check_header(name, data)
                component = is_component(data)
                found = None if component or check is None else wasm_imports(data)
                if check is not None and found is not None:
                    check(name, found)  # before a compile that can take a minute
                compiled = compile_wasm(name, data, slot.engine)
                path = self._cache.path(key, slot.fingerprint, component)
                if path is not None:
                    self._cache.store(compiled, path)
            pre = None
            if isinstance(compiled, wasmtime.Module):
                try:
                    pre = slot.linker.instantiate_pre(compiled)
                except wasmtime.WasmtimeError:
                    pre = None  # imports beyond WASI: linked per run with the caller's functions
            else:  # a component's: where its run function is, found once
                from .component import run_index

                pre = run_index(compiled, slot.engine)
            entry = slot.compiled[key] = (compiled, pre)
            return entry

    def _used(self, key: str) -> None:
        """Make ``key`` the most recently used module; drop the least recently used
        past the bound (from every engine, the file states that name them, and what
        their runs taught: they are compiled again when run again)."""
        with self._recent_lock:
            self._recent[key] = None
            self._recent.move_to_end(key)
            dropped = []
            while self._max_modules is not None and len(self._recent) > self._max_modules:
                dropped.append(self._recent.popitem(last=False)[0])
        for old in dropped:
            self._engines.forget(old)
            self._loud.pop(old, None)
            for state, module in list(self._paths.items()):
                if module.key == old:
                    self._paths.pop(state, None)

    def _cached(self, slot: EngineSlot, key: str) -> Compiled | None:
        """The code of ``key`` from the disk cache: a module's entry, else a component's."""
        for component in (False, True):
            path = self._cache.path(key, slot.fingerprint, component)
            if path is None:
                return None
            compiled = self._cache.load(slot.engine, path, component)
            if compiled is not None:
                return compiled
        return None

    # -- running -------------------------------------------------------------

    def run(
        self,
        module: ModuleSource,
        args: Sequence[str | int | float] = (),
        **options: Unpack[RunOptions],
    ) -> RunResult:
        """Run ``module``'s ``_start`` (or ``invoke``) in a fresh instance and wait for it.

        >>> r = host.run("artifacts/hello-world.wasm", args=["a"], env={"K": "V"},
        ...              dirs={"/data": "./data"}, timeout=2.0, max_memory=64 << 20)
        >>> r.exit_code, r.stdout
        (0, b'Hello, World!\\n')

        The options (:class:`RunOptions`, defaults in parentheses): ``env``,
        ``stdin`` (empty), ``stdout`` and ``stderr`` (:data:`CAPTURE`), ``dirs``,
        ``invoke``, ``imports``, ``unknown_imports`` ("error"), ``timeout``,
        ``fuel``, ``max_memory``, ``max_output`` (16 MiB), ``max_files`` (256),
        ``symlinks`` (True), ``cancel``, ``argv0``.

        The guest sees only what it is given: ``args`` (after ``argv0``, by
        default the module's file name), ``env``, ``dirs`` (guest path to host
        directory or :class:`Dir`), ``stdin``. With ``invoke``, ``args`` go
        to the guest as argv too (as the wasmtime CLI passes them), and are
        the function's parameters when it takes any; its results land in
        ``values``. ``unknown_imports="trap"`` makes imports that nothing
        provides trap when called, as wasmtime's ``-W unknown-imports-trap``.

        A captured stream keeps at most ``max_output`` bytes (16 MiB by
        default; ``None`` for no limit): past it the guest's writes fail, it is
        stopped (at once when the run has a ``timeout`` or ``cancel``, else
        when it ends), and :class:`OutputLimitExceeded` keeps what fitted.

        A module's guest holds at most ``max_files`` descriptors open at once
        (its preopened ``dirs`` and stdio not counted; ``None`` for no limit):
        past it, opening a file fails with ``EMFILE``. ``symlinks=False``
        makes creating a symbolic link fail with ``EPERM``.

        Raises :class:`Trap` when the guest traps, :class:`TimeoutExceeded`,
        :class:`FuelExhausted`, :class:`MemoryLimitExceeded` or
        :class:`OutputLimitExceeded` when a limit stops it,
        :class:`Interrupted` when ``cancel`` is set, and
        :class:`ModuleError`/:class:`LinkError`/:class:`ConfigError` before it
        starts. An exception raised by an output callback or host function is
        raised again as it was.
        """
        if isinstance(args, str | bytes):
            raise ConfigError(
                f"args must be a list of arguments, not the string {args!r}: "
                "a string would pass each of its characters."
            )
        slot = self._slot(_checked("run", options))
        timeout, fuel = options.get("timeout"), options.get("fuel")
        max_memory = options.get("max_memory")
        max_output = options.get("max_output", DEFAULT_MAX_OUTPUT)
        symlinks = options.get("symlinks", True)
        check = _import_check(options.get("imports"), options.get("unknown_imports", "error"))
        loaded, (compiled, pre) = self._load(module, slot, check)
        component = loaded.kind == "component"
        if component:
            _check_component_run(loaded, options)
        else:
            check(loaded.name, loaded.imports)
        job = _Job(slot, loaded, compiled, pre, args, options)
        wasi = job.wasi()
        stdio = Stdio(max_output, self._loud.get(loaded.key, ()))
        guard = None
        watch: MemoryWatch | None = None
        store = None
        error: Exception | None = None
        exit_code, values, consumed = 0, (), None
        lease = None
        try:
            stdio.configure(
                wasi,
                options.get("stdin"),
                options.get("stdout", CAPTURE),
                options.get("stderr", CAPTURE),
            )
            weight = COMPONENT_WEIGHT if component else 1
            lease = slot.lease(loaded.key, compiled, weight)
            if lease is not None:
                job.slot, job.compiled, job.pre = lease  # the same code, pooled (see engine)
            store = wasmtime.Store(job.slot.engine)
            store.set_wasi(wasi)
            # Tables stop where a pooled slot's do, on either engine (see engine), or
            # sooner with a memory cap: together they hold at most the cap's worth.
            # With a memory cap, one memory (see memory), or it would not bound the guest.
            # (A component made from a preview-1 module has its adapter's memory too.)
            one_memory = max_memory is not None and not component
            store.set_limits(
                table_elements=table_elements(max_memory),
                tables=MAX_TABLES,
                memories=1 if one_memory else -1,
            )
            if max_memory is not None:
                watch = MemoryWatch(max_memory)
            if fuel is not None:
                store.set_fuel(fuel)
            if slot.ticker is not None:
                guard = Guard(timeout, options.get("cancel"))
                if max_output is not None:
                    guard.watch(stdio.over_limit, "output")
                slot.ticker.guard(store, guard)
            started = time.perf_counter()
            try:
                files = RunWasi(options.get("max_files", DEFAULT_MAX_FILES), symlinks)
                with active(guard), wasi_active(files), watch or contextlib.nullcontext():
                    values = job.execute(store)
                exit_code = job.exit_code
            except wasmtime.ExitTrap as exc:
                exit_code = exc.code
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                error = exc
            elapsed = time.perf_counter() - started
            if fuel is not None:
                consumed = fuel - store.get_fuel()
        finally:
            try:
                if guard is not None and slot.ticker is not None:
                    slot.ticker.release(guard)
                # Closing the store (or, if none was made, the WASI config that
                # still owns them) closes the guest's ends of the output pipes.
                if store is not None:
                    store.close()
                else:
                    wasi.close()
            finally:
                if lease is not None:
                    slot.release(weight)  # the store that held the slot is closed
            try:
                stdio.finish()
                if (loud := stdio.loud()) and loaded.key in self._recent:  # not dropped
                    self._loud[loaded.key] = frozenset([*self._loud.get(loaded.key, ()), *loud])
                raised = job.failure.error or stdio.callback_error()
                if raised is not None:
                    raise raised
                # A guest that fails after it was refused memory, by a trap or
                # an exit status, is named as stopped by the limit.
                refused = watch is not None and watch.refused is not None and exit_code != 0
                if error is not None or refused or stdio.over_limit() is not None:
                    raise self._guest_error(error, loaded, stdio, guard, timeout, watch) from None
                out, err = stdio.collect()
                if job.error_result is not None:
                    raise ErrorResult(
                        str(job.error_result), error=job.error_result.error, stdout=out, stderr=err
                    )
            finally:
                stdio.close()
        return RunResult(
            exit_code=exit_code,
            stdout=out,
            stderr=err,
            values=values,
            fuel_consumed=consumed,
            elapsed=elapsed,
            instantiate_time=job.instantiated - started if job.instantiated else elapsed,
        )

    def _guest_error(
        self,
        exc: Exception | None,
        module: Module,
        stdio: Stdio,
        guard: Guard | None,
        timeout: float | None,
        watch: MemoryWatch | None,
    ) -> GuestError:
        out, err = stdio.collect()
        name = module.name
        if guard is not None and guard.reason == "timeout":
            return TimeoutExceeded(
                f"{name} ran past its {timeout:g} s timeout and was stopped.",
                stdout=out,
                stderr=err,
            )
        if guard is not None and guard.reason == "interrupted":
            return Interrupted(f"{name} was interrupted.", stdout=out, stderr=err)
        over = stdio.over_limit()
        if over is not None:
            limit = stdio.max_output
            assert limit is not None
            return OutputLimitExceeded(
                f"{name} wrote more than its output limit of {format_size(limit)} to {over} "
                f"and was stopped; the first {format_size(limit)} are kept.",
                stream=over,
                max_output=limit,
                stdout=out,
                stderr=err,
            )
        code = exc.trap_code if isinstance(exc, wasmtime.Trap) else _trap_code_in(exc)
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return FuelExhausted(f"{name} ran out of fuel and was stopped.", stdout=out, stderr=err)
        if watch is not None and (
            watch.refused is not None or code == wasmtime.TrapCode.ALLOCATION_TOO_LARGE
        ):
            return MemoryLimitExceeded(
                f"{name} reached its memory limit of {format_size(watch.cap)} and was stopped.",
                stdout=out,
                stderr=err,
            )
        if (
            watch is not None
            and code == wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS
            and _can_outgrow(module, table_elements(watch.cap))
        ):
            # A table.grow past the limit returns -1 and leaves no trace (wasmtime's
            # C API has no table limiter to tell): a guest that then uses the elements
            # it was refused is stopped by the limit, not by a bug of its own.
            return MemoryLimitExceeded(
                f"{name} was refused a table larger than its memory limit of "
                f"{format_size(watch.cap)} allows ({table_elements(watch.cap):,} elements) "
                "and was stopped.",
                stdout=out,
                stderr=err,
            )
        assert exc is not None  # the other ways to get here are handled above
        message, frames = _trap_details(exc)
        return Trap(
            f"{name} trapped: {message}",
            trap_code=code.name.lower() if code is not None else None,
            frames=frames,
            stdout=out,
            stderr=err,
        )

    async def run_async(
        self,
        module: ModuleSource,
        args: Sequence[str | int | float] = (),
        *,
        executor: Executor | None = None,
        **options: Unpack[RunOptions],
    ) -> RunResult:
        """:meth:`run` in a worker thread, for asyncio applications.

        The thread is one of ``executor``'s, or of the event loop's default
        executor (asyncio's thread pool) when it is ``None``. Cancelling the
        awaiting task stops the guest (through its ``cancel`` event, made here
        if none is given) before the cancellation propagates.

        >>> result = await host.run_async("artifacts/hello-world.wasm", timeout=5)
        >>> with ThreadPoolExecutor(4) as guests:
        ...     result = await host.run_async("artifacts/hello-world.wasm", executor=guests)
        """
        import asyncio  # not at module level: it costs ~18 ms of `wasmhost run` start-up
        from concurrent import futures  # (asyncio has imported it)

        _check_options("run_async", options, _RUN_OPTIONS)
        if executor is not None and (
            not isinstance(executor, futures.Executor)
            or isinstance(executor, futures.ProcessPoolExecutor)
        ):
            raise ConfigError(
                f"executor must be a thread pool (concurrent.futures.ThreadPoolExecutor), "
                f"not {type(executor).__name__}: a guest runs in this process."
            )
        cancel = options.get("cancel") or threading.Event()
        options["cancel"] = cancel
        started = threading.Event()

        def run() -> RunResult:
            started.set()
            return self.run(module, args, **options)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, run)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            if not started.is_set():
                future.cancel()  # still queued: it never runs, and nothing waits for it
            else:
                with contextlib.suppress(BaseException):
                    await future  # the guest stops at its next check
            raise

    def stream(
        self,
        module: ModuleSource,
        args: Sequence[str | int | float] = (),
        **options: Unpack[StreamOptions],
    ) -> RunStream:
        """Run ``module`` in a worker thread and iterate over its output as it comes.

        >>> with host.stream("artifacts/hello-world.wasm", ["--forever"], timeout=3) as run:
        ...     for chunk in run:
        ...         print(chunk.stream, chunk.data)
        ...         break
        >>> run.result  # None here: the guest was stopped when the block ended

        Leaving the ``with`` block early stops the guest. Once iteration ends,
        ``result`` holds the :class:`RunResult`; a trap or limit is raised by
        the iteration.
        """
        for name in ("stdout", "stderr"):
            if name in options:
                raise ConfigError(f"stream() delivers {name} itself; do not pass {name}=.")
        _check_options("stream", options, _STREAM_OPTIONS)
        return RunStream(self, module, args, options.get("cancel") or threading.Event(), options)


class _Job:
    """One run's module and options, from its WASI configuration to its call."""

    __slots__ = (
        "args",
        "compiled",
        "error_result",
        "exit_code",
        "failure",
        "instantiated",
        "module",
        "options",
        "pre",
        "slot",
    )

    def __init__(
        self,
        slot: EngineSlot,
        module: Module,
        compiled: wasmtime.Module,
        pre: wasmtime.InstancePre | None,
        args: Sequence[str | int | float],
        options: RunOptions,
    ) -> None:
        self.slot = slot
        self.module = module
        self.compiled = compiled
        self.pre = pre
        self.args = args
        self.options = options
        self.failure = Failure()  # what a host function raised, to raise again
        self.instantiated: float | None = None  # when instantiation ended (perf_counter)
        self.exit_code = 0  # a component's, from its run export
        self.error_result: ErrorResult | None = None  # what an invoked component function gave

    def wasi(self) -> wasmtime.WasiConfig:
        """The guest's argv, environment and directories (its stdio is the caller's)."""
        options = self.options
        wasi = wasmtime.WasiConfig()
        first = options.get("argv0") or os.path.basename(self.module.name)
        # A component's invoked function takes its arguments as values, not from argv.
        argv = () if self.module.kind == "component" and options.get("invoke") else self.args
        set_argv(wasi, wasi_strings("argument", [first, *map(str, argv)]))
        if env := options.get("env"):
            set_env(wasi, *wasi_environment(env))
        for guest, source in (options.get("dirs") or {}).items():
            _preopen(wasi, guest, source)
        return wasi

    def execute(self, store: wasmtime.Store) -> tuple[Any, ...]:
        """Instantiate the module in ``store`` and call ``_start`` (or ``invoke``)."""
        slot, compiled, module = self.slot, self.compiled, self.module
        if module.kind == "component":
            from .component import execute

            component = cast(Any, compiled)  # a wasmtime.component.Component
            trap_unknown = self.options.get("unknown_imports") == "trap"
            p2 = slot.component_linker(component if trap_unknown else None)
            try:
                values, self.exit_code, self.error_result = execute(
                    store,
                    p2,
                    component,
                    module,
                    self.options.get("invoke"),
                    self.args,
                    self,
                    self.pre,
                    refused=lambda text: instantiation_error(
                        text, module, self.options.get("max_memory")
                    ),
                )
            finally:
                if trap_unknown:
                    p2.close()  # made for this run (see component_linker)
            return values
        imports = self.options.get("imports")
        cap = self.options.get("max_memory")
        trap_unknown = self.options.get("unknown_imports") == "trap"
        pre = None if trap_unknown else self.pre
        if imports or (trap_unknown and pre is None):
            linker = slot.wasi_linker()
            if imports:
                define(linker, module.imports, imports, self.failure)
            if trap_unknown:
                linker.define_unknown_imports_as_traps(compiled)
            instance = _instantiate(lambda: linker.instantiate(store, compiled), module, cap)
        elif pre is not None:
            instance = _instantiate(lambda: pre.instantiate(store), module, cap)
        else:
            instance = _instantiate(lambda: slot.linker.instantiate(store, compiled), module, cap)
        self.instantiated = time.perf_counter()
        invoke = self.options.get("invoke")
        name = invoke or "_start"
        func = export_func(store, instance, name)
        if func is None:
            funcs = ", ".join(module.export_names("func")) or "no functions"
            what = (
                f"no function {name!r}"
                if invoke
                else "no _start function (it is not a WASI command)"
            )
            problem = f"{module.name} exports {what}; it exports: {funcs}"
            if invoke:
                raise LinkError(f"{problem}.")
            raise LinkError(problem, advice="call one of them with invoke=NAME", fix="invoke")
        if invoke:
            init = export_func(store, instance, "_initialize")
            if init is not None:
                if not _is_nullary(module, "_initialize"):
                    _callable(module, "_initialize")  # names a type Python cannot pass
                    raise ConfigError(
                        f"{module.name}: _initialize takes or returns values; a reactor's "
                        "_initialize is a func () -> () that wasmhost calls before invoke."
                    )
                call_nullary(store, init)
            types = _callable(module, name)
            # A function without parameters reads its arguments from argv, if at all.
            params = _convert_params(types, self.args, module.name, name) if types else []
            result = func(store, *params)
        elif _is_nullary(module, name):
            call_nullary(store, func)
            result = None
        else:
            _callable(module, name)
            result = func(store)
        if result is None:
            return ()
        return tuple(result) if isinstance(result, list) else (result,)


class RunStream:
    """A run in progress whose output is read by iterating; see :meth:`Host.stream`.

    At most ``BUFFERED`` chunks wait to be read: past that the guest waits
    in its write until the reader catches up (or the run is stopped), so a
    guest cannot fill the host's memory faster than it is read.
    """

    BUFFERED = 64

    def __init__(
        self,
        host: Host,
        module: ModuleSource,
        args: Sequence[str | int | float],
        cancel: threading.Event,
        options: StreamOptions,
    ) -> None:
        self.result: RunResult | None = None
        self._chunks: collections.deque[OutputChunk | None] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._cancel = cancel
        timeout = options.get("timeout")
        deadline: list[float] = []

        def put(chunk: OutputChunk) -> None:
            if timeout is not None and not deadline:
                # The guest writes, so its run's clock started before now: this
                # deadline is never earlier than the one that stops the run.
                deadline.append(time.monotonic() + timeout)
            with self._cond:
                if self._closed:
                    return
                while len(self._chunks) >= self.BUFFERED:
                    if self._cancel.is_set() or (deadline and time.monotonic() >= deadline[0]):
                        return  # the run is being stopped: nobody will read this
                    self._cond.wait(_POLL)
                    if self._closed:
                        return
                self._chunks.append(chunk)
                self._cond.notify_all()

        def run() -> None:
            try:
                run_options = cast(RunOptions, dict(options))
                run_options["stdout"] = lambda data: put(OutputChunk(stream="stdout", data=data))
                run_options["stderr"] = lambda data: put(OutputChunk(stream="stderr", data=data))
                run_options["cancel"] = self._cancel
                self.result = host.run(module, args, **run_options)
            except BaseException as exc:
                self._error = exc
            finally:
                with self._cond:
                    self._chunks.append(None)
                    self._cond.notify_all()

        self._thread = threading.Thread(target=run, name="wasmhost-stream", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[OutputChunk]:
        while True:
            with self._cond:
                while not self._chunks:
                    self._cond.wait()
                chunk = self._chunks[0]
                if chunk is None:
                    break  # left in place: later iterations end at once
                self._chunks.popleft()
                self._cond.notify_all()
            yield chunk
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> RunStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the guest if it still runs, and wait for it."""
        if self._thread.is_alive():
            self._cancel.set()
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            self._chunks.clear()
            self._chunks.append(None)


# How often a writer waiting for room in a full stream checks whether the run stops.
_POLL = 0.005


def _describe(
    slot: EngineSlot,
    name: str,
    data: bytes | None,
    key: str,
    compiled: Compiled,
    state: os.stat_result | None = None,
    path: str | None = None,
) -> Module:
    """The :class:`Module` for a module's or a component's compiled code (a module's
    described from its bytes: see ``read_interface``)."""
    size = None if state is None else state.st_size
    if isinstance(compiled, wasmtime.Module):
        return describe(name, data, key, size=size, path=path, state=state)
    from .component import describe_component

    return describe_component(name, data, key, compiled, slot.engine, size=size, path=path)


def _check_component_run(module: Module, options: RunOptions) -> None:
    """What a component's run cannot have, refused before it starts."""
    if options.get("symlinks") is False:
        raise ConfigError(
            f"{module.name} is a component: symlinks=False is enforced for core modules only."
        )
    if options.get("imports"):
        raise ConfigError(
            f"{module.name} is a component: host functions (imports=) are given to core "
            "modules only."
        )
    if options.get("unknown_imports", "error") != "trap":
        from .component import check_imports

        check_imports(module)


def _can_outgrow(module: Module, elements: int) -> bool:
    """Whether a table of ``module`` may grow past ``elements`` (so be refused)."""
    for signature in module.tables:
        limits = table_limits(signature)
        if limits is None or limits[1] is None or limits[1] > elements:
            return True
    return False


def _is_nullary(module: Module, name: str) -> bool:
    return any(e.name == name and e.signature == "func () -> ()" for e in module.exports)


def _callable(module: Module, name: str) -> list[str]:
    """The parameter types of ``module``'s function ``name``, which Python can call
    (wasmtime-py would end the process on a call with a v128 or an anyref)."""
    signature = next((e.signature for e in module.exports if e.name == name), "")
    types = func_types(signature)
    unknown = "types wasmhost cannot read" if types is None else uncallable(types)
    if types is None or unknown:
        raise ConfigError(
            f"{module.name}: {name} has the type {signature or 'unknown'}; wasmhost cannot "
            f"call a function with {unknown} in its parameters or results."
        )
    return types[0]


def _state(name: str, st: os.stat_result) -> tuple[str, int, int, int, int, int]:
    return (name, *file_state(st))


def _stat(name: str) -> os.stat_result | None:
    try:
        return os.stat(name)
    except OSError:
        return None


_U64 = (1 << 64) - 1


_MAX_OUTPUT_CEILING = 1 << 40
_MAX_FILES_CEILING = 1 << 20
_MAX_MEMORY_CEILING = MAX_RESERVATION


def check_limits(
    timeout: float | None, fuel: int | None, max_memory: int | None, max_output: int | None
) -> None:
    check_seconds("timeout", timeout, 1e9)
    check_whole("fuel", fuel, 0, _U64, "from 0 to 2**64-1")
    check_size("max_memory", max_memory, _MAX_MEMORY_CEILING)
    check_size("max_output", max_output, _MAX_OUTPUT_CEILING, " (or None for no limit)")


def _preopen(wasi: wasmtime.WasiConfig, guest: str, source: DirSource) -> None:
    spec = as_dir(source)
    host_path = os.fspath(spec.path)
    wasi_strings("directory", [host_path, guest])
    if not os.path.isdir(host_path):
        what = "is not a directory" if os.path.exists(host_path) else "does not exist"
        raise ConfigError(f"host directory {host_path} {what}; create it or fix the path.")
    if not guest:
        raise ConfigError(f"the guest path for {host_path} is empty.")
    try:
        wasi.preopen_dir(host_path, guest, fs_mutable=not spec.read_only)
    except wasmtime.WasmtimeError as exc:
        raise ConfigError(f"host directory {host_path} cannot be opened: {exc}.") from None


def _instantiate(make: Any, module: Module, max_memory: int | None) -> wasmtime.Instance:
    try:
        instance = make()
    except wasmtime.Trap:
        raise
    except wasmtime.WasmtimeError as exc:
        guard = current()
        if guard is not None and guard.stopped.is_set():
            # Stopped while instantiating (a deadline, a cancel, serve's inline
            # budget under a loaded machine): run() names it as the limit it was.
            raise
        raise instantiation_error(str(exc), module, max_memory) from None
    assert isinstance(instance, wasmtime.Instance)
    return instance


def instantiation_error(text: str, module: Module, max_memory: int | None) -> WasmhostError:
    """What wasmtime's refusal to instantiate ``module`` (a core module or a component)
    means: a limit it is over at start, or a link error."""
    if "exceeds memory limits" in text:
        return MemoryLimitExceeded(
            f"{module.name} needs more memory at start than its memory limit allows."
        )
    if "memory count too high" in text:
        return MemoryLimitExceeded(
            f"{module.name} has several memories; a memory limit bounds guests with one."
        )
    if "table count too high" in text:
        problem = f"{module.name} has more than {MAX_TABLES} tables, the most a run may have."
        # Under a memory cap, tables are part of what it bounds; without one,
        # the module is simply beyond what wasmhost runs.
        return (LinkError if max_memory is None else MemoryLimitExceeded)(problem)
    if "exceeds table limits" in text and max_memory is not None:
        return MemoryLimitExceeded(
            f"{module.name} needs a larger table at start than its memory limit of "
            f"{format_size(max_memory)} allows ({table_elements(max_memory):,} elements)."
        )
    return LinkError(f"{module.name} cannot be instantiated: {last_line(text)}.")


def _convert_params(
    params: list[str], args: Sequence[str | int | float], module: str, name: str
) -> list[int | float]:
    if len(args) != len(params):
        raise ConfigError(
            f"{module}: {name} takes {len(params)} argument(s) "
            f"({', '.join(params) or 'none'}), got {len(args)}."
        )
    values: list[int | float] = []
    for arg, kind in zip(args, params, strict=True):
        try:
            if kind in ("i32", "i64"):
                number = int(arg, 0) if isinstance(arg, str) else int(arg)
                bits = 32 if kind == "i32" else 64
                if not -(1 << (bits - 1)) <= number < (1 << bits):
                    raise ConfigError(f"{module}: {name} expects {kind}; {arg!r} is out of range.")
                values.append(number)
            elif kind in ("f32", "f64"):
                values.append(float(arg))
            else:
                raise ConfigError(
                    f"{module}: {name} takes a {kind} parameter, which wasmhost cannot pass."
                )
        except ValueError:
            raise ConfigError(f"{module}: {name} expects {kind}, got {arg!r}.") from None
    return values


# What wasmtime says of a trap that reaches wasmtime-py as a plain error (from a
# component's call): the message of each trap code a run names.
_TRAP_MESSAGES = {
    "all fuel consumed by WebAssembly": "OUT_OF_FUEL",
    "wasm `unreachable` instruction executed": "UNREACHABLE",
    "out of bounds memory access": "MEMORY_OUT_OF_BOUNDS",
    "call stack exhausted": "STACK_OVERFLOW",
    "integer divide by zero": "INTEGER_DIVISION_BY_ZERO",
    "integer overflow": "INTEGER_OVERFLOW",
    "interrupt": "INTERRUPT",
    "allocation size too large": "ALLOCATION_TOO_LARGE",
}


def _trap_code_in(exc: Exception | None) -> wasmtime.TrapCode | None:
    if exc is None:
        return None
    name = _TRAP_MESSAGES.get(_first_line(str(exc)))
    return None if name is None else wasmtime.TrapCode[name]


def _trap_details(exc: Exception) -> tuple[str, list[Frame]]:
    frames: list[Frame] = []
    if isinstance(exc, wasmtime.Trap):
        for f in exc.frames:
            frames.append(Frame(f.module_name, f.func_name, f.func_index, f.module_offset))
        message = exc.message
    else:
        message = str(exc)
    return _first_line(message), frames


def _first_line(text: str) -> str:
    """The cause in a wasmtime error message (which leads with its own backtrace)."""
    _, caused, cause = text.partition("Caused by:")
    lines = [line.strip() for line in (cause if caused else text).strip().splitlines()]
    for line in lines:
        if line and not line.startswith("error while executing"):
            return line.removeprefix("wasm trap: ")
    return "trap"
