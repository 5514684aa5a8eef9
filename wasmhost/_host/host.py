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
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from .._errors import ConfigError, WasmhostError
from .._hashing import content_key
from .._numbers import check_seconds, check_size, check_whole
from .._paths import default_cache_root, max_size_from_environment
from .._text import is_utf8
from .._wasm import is_component
from .engines.cache import Cached, CompileCache, file_state, settled
from .engines.engine import EngineFlags, Engines, EngineSlot
from .engines.memory import MAX_RESERVATION
from .result import OutputChunk, RunResult
from .running.kinds import Code, Guest, compiled_kind, kind_of
from .running.run import DirSource, RunScope, conclude
from .running.stdio import OutputTarget, StdinSource
from .values.functions import Imports, check_imports
from .values.module import (
    Import,
    Module,
    ModuleChanged,
    ModuleSource,
    check_header,
    compile_wasm,
    read_source,
    wasm_imports,
)

# At run time too: typing.get_type_hints (Sphinx, pydantic, typeguard) resolves it.
if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from .running.kinds import Kind
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


ImportCheck = Callable[[str, Iterable[Import]], None]
"""Called with a module's name and imports before it is compiled; raises to refuse it."""


def _import_check(imports: Imports | None, unknown_imports: str) -> ImportCheck:
    """The check of a module's imports against ``imports``, as a run makes it."""

    def check(name: str, found: Iterable[Import]) -> None:
        check_imports(name, found, imports, unknown_imports)

    return check


class _GuestOptions(TypedDict, total=False):
    env: Mapping[str, str] | None
    stdin: StdinSource
    dirs: Mapping[str, DirSource] | None
    imports: Imports | None
    unknown_imports: Literal["error", "trap"]
    timeout: float | None
    fuel: int | None
    max_memory: int | None
    cancel: threading.Event | None
    argv0: str | None
    max_files: int | None
    symlinks: bool


class CallOptions(_GuestOptions, total=False):
    """The options of :meth:`Host.call`: those of :meth:`Host.run` but ``invoke``.

    Each is described, with its default, at :meth:`Host.run`.
    """

    stdout: OutputTarget
    stderr: OutputTarget
    max_output: int | None


class RunOptions(CallOptions, total=False):
    """The options of :meth:`Host.run`, :meth:`Host.run_async` and :meth:`Host.load`,
    one definition for all: ``host.run(module, **options)`` with ``options: RunOptions``.

    ``invoke`` is deprecated in :meth:`Host.run`: :meth:`Host.call` calls a function.
    """

    invoke: str | None


class StreamOptions(_GuestOptions, total=False):
    """What a run is given, but where its output goes: the options of :meth:`Host.stream`.

    Each is described, with its default, at :meth:`Host.run`.
    """

    invoke: str | None


_RUN_OPTIONS = RunOptions.__optional_keys__
_CALL_OPTIONS = CallOptions.__optional_keys__
_STREAM_OPTIONS = StreamOptions.__optional_keys__


def _deprecated_invoke(options: RunOptions) -> str | None:
    """``invoke=`` taken out of :meth:`Host.run`'s options, with its warning."""
    invoke = options.pop("invoke", None)
    if invoke is not None:
        import warnings

        warnings.warn(
            "Host.run(module, args, invoke=NAME) is deprecated and goes in wasmhost 0.3: "
            "call host.call(module, NAME, *values) instead.",
            DeprecationWarning,
            stacklevel=3,
        )
    return invoke


def _check_options(method: str, options: Mapping[str, object], allowed: frozenset[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")


# The options that set a limit or choose an engine; a run with none of them (as
# most are) needs no checks and runs on the plain engine.
_LIMITS = frozenset(
    ("timeout", "fuel", "max_memory", "max_output", "max_files", "symlinks", "cancel")
)
_PLAIN = EngineFlags(interruptible=False, metered=False, capped=False)


def _checked(method: str, options: Mapping[str, Any]) -> EngineFlags:
    """Refuse unknown options and bad limits; the engine the runs with ``options`` need."""
    if not options:
        return _PLAIN
    _check_options(method, options, _RUN_OPTIONS)
    if _LIMITS.isdisjoint(options):
        return _PLAIN
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
        # The descriptions of components (by key) as the compile cache keeps them.
        self._kept: dict[str, bytes] = {}
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
        if policy is not None:
            kind_of(loaded).check(loaded, options)
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
                        module = self._describe(slot, name, None, key, entry[0], st, where)
                    except ModuleChanged:
                        pass  # changed since its state was looked at: read it as it is now
                    else:
                        self._paths[_state(name, st)] = module
                        return module, entry
        read_at = time.time_ns()
        name, data, read = read_source(source)
        key = content_key(data)
        entry = self._compile(slot, shown or name, key, lambda: data, check)
        module = self._describe(slot, name, data, key, entry[0])
        # A file that changed just before it was read could change again unseen
        # (coarse timestamps): it is read again next time rather than kept by state.
        if read is not None and settled(read, read_at):
            self._paths[_state(name, read)] = module
            self._cache.remember_key(name, read, key, read_at)
        return module, entry

    def _describe(
        self,
        slot: EngineSlot,
        name: str,
        data: bytes | None,
        key: str,
        compiled: Compiled,
        state: os.stat_result | None = None,
        path: str | None = None,
    ) -> Module:
        """The :class:`Module` for a module's or a component's compiled code (a module's
        described from its bytes: see ``read_interface``; a component's from the
        description its cache record kept, which describing it from its types adds)."""
        kept = self._kept.get(key)
        size = None if state is None else state.st_size
        module = compiled_kind(compiled).describe(
            Code(name, data, key, size, path, state, kept), compiled, slot
        )
        if kept is None and module.kind == "component":
            from .values.component import description

            kept = description(module)
            where = self._cache.path(key, slot.fingerprint, component=True)
            if kept is not None and where is not None:
                self._kept[key] = kept
                self._cache.describe(where, kept)
        return module

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
            cached = self._cached(slot, key)
            if cached is not None:
                compiled = cached.compiled
                if cached.description is not None:
                    self._kept[key] = cached.description
            else:
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
            pre = compiled_kind(compiled).prepare(compiled, slot)
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
            self._kept.pop(old, None)
            for state, module in list(self._paths.items()):
                if module.key == old:
                    self._paths.pop(state, None)

    def _cached(self, slot: EngineSlot, key: str) -> Cached | None:
        """The code of ``key`` from the disk cache: a module's entry, else a component's
        (with the description its record kept)."""
        for component in (False, True):
            path = self._cache.path(key, slot.fingerprint, component)
            if path is None:
                return None
            cached = self._cache.load(slot.engine, path, component)
            if cached is not None:
                return cached
        return None

    # -- running -------------------------------------------------------------

    def run(
        self,
        module: ModuleSource,
        args: Sequence[str] = (),
        **options: Unpack[RunOptions],
    ) -> RunResult:
        """Run the command ``module`` (its ``_start``, a component's ``wasi:cli/run``) in a
        fresh instance, with ``args`` as its argv, and wait for it.

        >>> r = host.run("artifacts/hello-world.wasm", args=["a"], env={"K": "V"},
        ...              dirs={"/data": "./data"}, timeout=2.0, max_memory=64 << 20)
        >>> r.exit_code, r.stdout
        (0, b'Hello, World!\\n')

        The options (:class:`RunOptions`, defaults in parentheses): ``env``,
        ``stdin`` (empty), ``stdout`` and ``stderr`` (:data:`CAPTURE`), ``dirs``,
        ``imports``, ``unknown_imports`` ("error"), ``timeout``,
        ``fuel``, ``max_memory``, ``max_output`` (16 MiB), ``max_files`` (256),
        ``symlinks`` (True), ``cancel``, ``argv0``.

        The guest sees only what it is given: ``args`` (after ``argv0``, by
        default the module's file name), ``env``, ``dirs`` (guest path to host
        directory or :class:`Dir`), ``stdin``. To call another export with
        values, use :meth:`call` (``invoke=NAME`` here is its deprecated
        spelling). ``unknown_imports="trap"`` makes imports that nothing
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
        invoke = _deprecated_invoke(options)
        return self._run("run", module, args, invoke, options)

    def call(
        self,
        module: ModuleSource,
        name: str,
        /,
        *values: object,
        **options: Unpack[CallOptions],
    ) -> RunResult:
        """Call ``module``'s exported function ``name`` with ``values``, in a fresh instance.

        >>> host.call("artifacts/calc.wasm", "add", 2, 3).values
        (5,)
        >>> host.call("artifacts/calc.component.wasm", "summarize", [1.5, 2.5]).values
        ({'count': 2, 'mean': 2.0},)

        A core module's function takes numbers (or strings of them, as the CLI
        passes them); the values also reach the guest as its argv, as the
        wasmtime CLI passes them, for a function that reads them there. A
        reactor's ``_initialize`` is called first. A component's function takes
        Python values converted by its WIT types (see ``wasmhost.wave`` for
        them written as text); when it returns a ``result``, ``values`` holds
        its ``ok`` payload and an ``err`` raises :class:`ErrorResult`.

        The results are in the :class:`RunResult`'s ``values``; the options,
        what it raises and what its output does are those of :meth:`run`.
        """
        if options:
            _check_options("call", options, _CALL_OPTIONS)
        if not isinstance(name, str) or not name or not is_utf8(name):
            raise ConfigError(f"call() takes the name of an exported function, not {name!r}.")
        return self._run("call", module, values, name, options)

    def _run(
        self,
        method: str,
        module: ModuleSource,
        args: Sequence[object],
        invoke: str | None,
        options: Mapping[str, Any],
    ) -> RunResult:
        if isinstance(args, str | bytes):
            raise ConfigError(
                f"args must be a list of arguments, not the string {args!r}: "
                "a string would pass each of its characters."
            )
        guest, kind = self._guest(method, module, args, invoke, options)
        max_output = options.get("max_output", DEFAULT_MAX_OUTPUT)
        key = guest.module.key
        with RunScope(guest, kind, options, max_output, self._loud.get(key, ())) as scope:
            scope.call()
        if scope.loud and key in self._recent:  # (not dropped meanwhile)
            self._loud[key] = frozenset([*self._loud.get(key, ()), *scope.loud])
        return conclude(scope.outcome)

    def _guest(
        self,
        method: str,
        source: ModuleSource,
        args: Sequence[object],
        invoke: str | None,
        options: Mapping[str, Any],
    ) -> tuple[Guest, Kind]:
        """What a run calls, loaded and checked, and its kind."""
        slot = self._slot(_checked(method, options))
        imports = options.get("imports")
        policy = options.get("unknown_imports", "error")
        module, (compiled, pre) = self._load(source, slot, _import_check(imports, policy))
        kind = kind_of(module)
        kind.check(module, options)
        guest = Guest(
            slot=slot,
            module=module,
            compiled=compiled,
            pre=pre,
            args=tuple(args),
            invoke=invoke,
            imports=imports,
            trap_unknown=policy == "trap",
            max_memory=options.get("max_memory"),
        )
        return guest, kind

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

        invoke = options.pop("invoke", None)

        def run() -> RunResult:
            started.set()
            return self._run("run_async", module, args, invoke, options)

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
                invoke = run_options.pop("invoke", None)
                self.result = host._run("stream", module, args, invoke, run_options)
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
