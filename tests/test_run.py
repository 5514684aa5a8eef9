"""Running modules in-process: outputs, exit codes, stdio forms, traps, invoke."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from conftest import (
    ARTIFACTS,
    FSPROBE,
    HELLO,
    HTTP,
    NBODY,
    WASI_EXIT,
    WORDCOUNT,
    count_compiles,
    in_threads,
    printer,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import wasmhost._host.engines.cache
from wasmhost import (
    DEVNULL,
    ConfigError,
    Host,
    LinkError,
    Module,
    RunOptions,
    RunResult,
    Trap,
    WasmhostError,
)

CALC = ARTIFACTS / "calc.wasm"


def test_hello_world(host: Host) -> None:
    result = host.run(HELLO)
    assert result == RunResult(
        exit_code=0,
        stdout=b"Hello, World!\n",
        stderr=b"",
        elapsed=result.elapsed,
        instantiate_time=result.instantiate_time,
    )
    assert result.ok
    assert 0 < result.instantiate_time < result.elapsed


def test_args_reach_the_guest_after_argv0(host: Host) -> None:
    result = host.run(FSPROBE, ["args", "a b", "ü"])
    assert result.stdout.decode().splitlines() == ["fsprobe.wasm", "args", "a b", "ü"]
    assert host.run(FSPROBE, ["args"], argv0="probe").stdout == b"probe\nargs\n"


def test_guest_sees_only_the_environment_it_is_given(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_SECRET", "s3cret")
    assert host.run(FSPROBE, ["env"]).stdout == b""
    assert host.run(FSPROBE, ["env"], env={"K": "V", "X": "a=b"}).stdout == b"K=V\nX=a=b\n"


def test_arguments_and_environment_reach_the_guest_exactly(host: Host) -> None:
    """They go to wasmtime as the bytes wasmhost encoded to check them: every
    string arrives whole and in order, whatever it holds."""
    values = ["", "ascii", "caf\u00e9", "\u732b\U0001f408", "a=b=c", " spaced  ", "x" * 5000]
    argv0 = "probe \u00e9"
    result = host.run(FSPROBE, ["args", *values], argv0=argv0)
    assert result.stdout.decode().split("\n")[:-1] == [argv0, "args", *values]
    env = {f"V{i}_\u00e9": value for i, value in enumerate(values)}
    env.update({f"MANY_{i}": str(i) for i in range(300)})
    lines = host.run(FSPROBE, ["env"], env=env).stdout.decode().split("\n")[:-1]
    assert lines == sorted(f"{name}={value}" for name, value in env.items())  # (it sorts)


def test_stdin_bytes(host: Host) -> None:
    data = bytes(range(256)) * 1000
    assert host.run(FSPROBE, ["stdin"], stdin=data).stdout == data
    assert host.run(FSPROBE, ["stdin"]).stdout == b""


def test_stdin_from_a_file_object_and_a_path(host: Host, tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"from a file\n")
    assert host.run(FSPROBE, ["stdin"], stdin=path).stdout == b"from a file\n"
    with open(path, "rb") as f:
        assert host.run(FSPROBE, ["stdin"], stdin=f).stdout == b"from a file\n"
    assert host.run(FSPROBE, ["stdin"], stdin=io.BytesIO(b"buffered")).stdout == b"buffered"


def test_stdin_from_a_pipe(host: Host) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"piped data")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        assert host.run(FSPROBE, ["stdin"], stdin=reader).stdout == b"piped data"


def test_stdout_and_stderr_are_separate(host: Host) -> None:
    result = host.run(FSPROBE, ["read", "/nowhere"])
    assert result.exit_code == 1
    assert result.stdout == b""
    assert result.stderr.startswith(b"fsprobe: ")


@pytest.mark.parametrize("code", [0, 1, 3, 42, 125])
def test_exit_code_passes_through(host: Host, wat: Callable[[str], Path], code: int) -> None:
    module = wat(
        f'(module {WASI_EXIT} (memory (export "memory") 1) '
        f'(func (export "_start") (call $exit (i32.const {code}))))'
    )
    assert host.run(module).exit_code == code
    assert host.run(FSPROBE, ["exit", str(code)]).exit_code == code


def test_exit_status_outside_wasi_range_is_a_trap(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat(
        f'(module {WASI_EXIT} (memory (export "memory") 1) '
        '(func (export "_start") (call $exit (i32.const 200))))'
    )
    with pytest.raises(Trap, match=r"exit with invalid exit status outside of \[0\.\.126\)"):
        host.run(module)


def test_output_callbacks_receive_each_stream(host: Host) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    result = host.run(
        FSPROBE, ["stdin"], stdin=b"x" * 200_000, stdout=out.append, stderr=err.append
    )
    assert result.stdout == result.stderr == b""
    assert b"".join(out) == b"x" * 200_000
    assert len(out) > 1  # delivered in pieces as written, not at the end in one
    assert err == []
    host.run(FSPROBE, ["read", "/x"], stdout=out.append, stderr=err.append)
    assert b"".join(err).startswith(b"fsprobe: ")


def test_output_to_file_objects_and_paths(host: Host, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    host.run(HELLO, stdout=buffer)
    assert buffer.getvalue() == b"Hello, World!\n"
    target = tmp_path / "out.txt"
    host.run(HELLO, stdout=target)
    assert target.read_bytes() == b"Hello, World!\n"
    assert host.run(HELLO, stdout=DEVNULL).stdout == b""


def test_a_failing_output_callback_is_raised_again(host: Host) -> None:
    class Full(Exception):
        pass

    def refuse(data: bytes) -> None:
        raise Full(data)

    with pytest.raises(Full):
        host.run(HELLO, stdout=refuse)


def test_a_bad_output_target_is_a_config_error(host: Host) -> None:
    with pytest.raises(ConfigError, match="stdout must be"):
        host.run(HELLO, stdout=42)  # type: ignore[arg-type]


def test_wagi_handler_reads_cgi_environment_and_body(host: Host) -> None:
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/echo", "QUERY_STRING": "a=1"}
    result = host.run(HTTP, env=env, stdin=b"payload")
    assert result.stdout == b"Content-Type: text/plain\n\nmethod=POST\nquery=a=1\nbody=payload"
    hello = host.run(HTTP, env={"REQUEST_METHOD": "GET", "PATH_INFO": "/"})
    assert hello.stdout == b"Content-Type: text/plain\n\nHello, World!\n"
    missing = host.run(HTTP, env={"PATH_INFO": "/nope"})
    assert b"Status: 404 Not Found\n" in missing.stdout


def test_wordcount_reads_one_directory_and_writes_another(host: Host, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "a.txt").write_text("one two\nthree\n")
    (src / "b.txt").write_text("four")
    result = host.run(WORDCOUNT, dirs={"/input": src, "/output": out})
    assert result.stdout == b"2 4 18 total\n"
    assert (out / "report.txt").read_text() == "2 3 14 a.txt\n0 1 4 b.txt\n2 4 18 total\n"


def test_nbody_is_deterministic(host: Host) -> None:
    first = host.run(NBODY, ["1000"]).stdout
    assert first == b"-0.169075164\n-0.169087605\n"
    assert host.run(NBODY, ["1000"]).stdout == first


def test_run_from_bytes_and_from_a_loaded_module(host: Host) -> None:
    module = host.load(HELLO.read_bytes())
    assert isinstance(module, Module)
    assert module.name == "<bytes>"
    assert module.digest.startswith("sha256:")
    assert "_start" in module.export_names("func")
    assert host.run(module).stdout == b"Hello, World!\n"
    assert host.run(HELLO.read_bytes()).stdout == b"Hello, World!\n"


def test_a_changed_file_is_read_again(
    host: Host, tmp_path: Path, wat: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Files written by the test count as settled at once (see _cache.settled).
    monkeypatch.setattr(wasmhost._host.engines.cache, "_RACY_NS", 0)
    target = tmp_path / "m.wasm"
    wat(printer("one"), name="m.wasm")
    assert host.run(target).stdout == b"one"
    assert host.load(target) is host.load(target)  # unchanged: not read again
    wat(printer("second"), name="m.wasm")
    assert host.run(target).stdout == b"second"


def test_a_file_that_just_changed_is_not_kept_by_its_state(
    host: Host, tmp_path: Path, wat: Callable[..., Path]
) -> None:
    """Written a moment ago, its times may not move on a change within the same tick."""
    target = tmp_path / "m.wasm"
    wat(printer("one"), name="m.wasm")
    assert host.load(target) is not host.load(target)


def test_invoke_calls_an_export_with_typed_parameters(
    host: Host, wat: Callable[[str], Path]
) -> None:
    module = wat("""
      (module
        (func (export "add") (param i32 i64) (result i64)
          (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1)))
        (func (export "half") (param f64) (result f64) (f64.div (local.get 0) (f64.const 2)))
        (func (export "pair") (result i32 i32) (i32.const 1) (i32.const 2)))
    """)
    assert host.call(module, "add", "2", "0x10").values == (18,)
    assert host.call(module, "half", 3).values == (1.5,)
    assert host.call(module, "pair").values == (1, 2)
    with pytest.raises(ConfigError, match="takes 2 argument"):
        host.call(module, "add", "1")
    with pytest.raises(ConfigError, match="expects i32"):
        host.call(module, "add", "x", "1")


def test_call_refuses_what_is_not_a_number_for_a_core_parameter(
    host: Host, wat: Callable[[str], Path]
) -> None:
    module = wat('(module (func (export "id") (param i32) (result i32) (local.get 0)))')
    for value in ([1], None, "1.5", float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="expects i32"):
            host.call(module, "id", value)
    with pytest.raises(TypeError, match="invoke"):
        host.call(module, "id", 1, invoke="id")  # type: ignore[call-arg]


def test_call_refuses_what_is_not_a_function_name(host: Host) -> None:
    for name in ("", None, 5, b"add", "\udcff"):
        with pytest.raises(ConfigError, match="takes the name of an exported function"):
            host.call(CALC, name)  # type: ignore[arg-type]


def test_an_output_path_that_is_not_utf8_is_a_config_error(host: Host, tmp_path: Path) -> None:
    """wasmtime takes paths as UTF-8; a name os.listdir hands back with surrogates is
    refused in one line, not with Python's encoding error."""
    odd = tmp_path / "out-\udcff.txt"
    for option in ("stdout", "stderr", "stdin"):
        if option == "stdin":
            odd.touch()
        with pytest.raises(ConfigError, match="cannot be opened"):
            host.run(HELLO, **{option: odd})  # type: ignore[arg-type]


def test_invoke_is_a_deprecated_spelling_of_call(host: Host) -> None:
    with pytest.warns(DeprecationWarning, match=r"host\.call\(module, NAME") as warned:
        result = host.run(CALC, ["2", "3"], invoke="add")
    assert result.values == host.call(CALC, "add", 2, 3).values == (5,)
    assert warned[0].filename == __file__  # it points at the caller's line


def test_a_run_that_fails_inside_releases_what_it_held(host: Host) -> None:
    """Refused after its store, stdio and pool slot were taken (an argument that is not
    a number), a run gives them all back: the descriptors open stay as many."""

    def fail() -> None:
        with pytest.raises(ConfigError):
            host.call(CALC, "add", "one", "two")

    for _ in range(5):  # compiled, the pool made, reused pipes kept (see stdio)
        fail()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        fail()
    assert len(os.listdir("/proc/self/fd")) <= before
    assert host.call(CALC, "add", 1, 2, timeout=5).values == (3,)


def test_invoke_runs_initialize_first(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat("""
      (module
        (global $g (mut i32) (i32.const 0))
        (func (export "_initialize") (global.set $g (i32.const 41)))
        (func (export "get") (result i32) (i32.add (global.get $g) (i32.const 1))))
    """)
    assert host.call(module, "get").values == (42,)


def test_missing_start_names_the_exports(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (func (export "add") (param i32 i32) (result i32) (local.get 0)))')
    with pytest.raises(LinkError, match=r"no _start function.*exports: add") as info:
        host.run(module)
    assert str(info.value).endswith("; call one of them with Host.call(module, NAME).")
    assert info.value.fix == "invoke"
    with pytest.raises(LinkError, match="no function 'nope'"):
        host.call(module, "nope")


def test_traps_carry_code_message_and_frames(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat("""
      (module
        (memory (export "memory") 1)
        (func $inner (unreachable))
        (func $outer (call $inner))
        (func (export "_start") (call $outer)))
    """)
    with pytest.raises(Trap) as info:
        host.run(module)
    trap = info.value
    assert trap.trap_code == "unreachable"
    assert "unreachable" in str(trap)
    assert [f.function for f in trap.frames] == ["inner", "outer", None]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("(drop (i32.div_u (i32.const 1) (i32.const 0)))", "integer_division_by_zero"),
        ("(drop (i32.load (i32.const 70000)))", "memory_out_of_bounds"),
        ("(call $rec)", "stack_overflow"),
    ],
    ids=["div-by-zero", "out-of-bounds", "stack-overflow"],
)
def test_trap_codes(host: Host, wat: Callable[[str], Path], body: str, code: str) -> None:
    module = wat(f"""
      (module (memory 1)
        (func $rec (call $rec))
        (func (export "_start") {body}))
    """)
    with pytest.raises(Trap) as info:
        host.run(module)
    assert info.value.trap_code == code


def test_a_trap_keeps_the_output_written_before_it(host: Host, wat: Callable[[str], Path]) -> None:
    text = printer("before the trap").replace(
        "(i32.const 8)))))", "(i32.const 8))) (unreachable)))"
    )
    with pytest.raises(Trap) as info:
        host.run(wat(text))
    assert info.value.stdout == b"before the trap"


def test_host_survives_and_runs_again_after_a_trap(host: Host, wat: Callable[[str], Path]) -> None:
    with pytest.raises(Trap):
        host.run(wat('(module (func (export "_start") unreachable))'))
    assert host.run(HELLO).stdout == b"Hello, World!\n"


def test_one_host_shared_between_threads(host: Host) -> None:
    results: list[bytes] = []

    def work(i: int) -> None:
        for j in range(20):
            out = host.run(FSPROBE, ["args", str(i), str(j)]).stdout
            results.append(out)
            assert out == f"fsprobe.wasm\nargs\n{i}\n{j}\n".encode()

    in_threads(work, 8)
    assert len(results) == 160


def test_a_closed_host_refuses_to_run() -> None:
    host = Host()
    host.close()
    with pytest.raises(WasmhostError, match="closed"):
        host.run(HELLO)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"args": ["a\0b"]}, "NUL byte"),
        ({"args": ["\udcff"]}, "not valid UTF-8"),
        ({"env": {"A\0B": "x"}}, "NUL byte"),
        ({"env": {"A=B": "x"}}, "contains '='"),
        ({"env": {"": "x"}}, "is empty"),
        ({"env": {"A": "\udcff"}}, "not valid UTF-8"),
        ({"stdin": io.StringIO("/etc/hostname")}, "binary file"),
        ({"stdin": 42}, "stdin must be"),
        ({"stdout": "/nonexistent/dir/out"}, "cannot be opened"),
        ({"stderr": "/nonexistent/dir/err", "stdout": print}, "cannot be opened"),
        ({"timeout": "1"}, "timeout must be"),
        ({"fuel": 1 << 64}, "fuel must be"),
        ({"max_memory": 1 << 70}, "max_memory must be"),
    ],
    ids=[
        "nul-arg",
        "non-utf8-arg",
        "nul-env",
        "eq-env",
        "empty-env",
        "non-utf8-env",
        "text-stdin",
        "bad-stdin",
        "bad-stdout",
        "bad-stderr-after-streamed-stdout",
        "text-timeout",
        "huge-fuel",
        "huge-memory",
    ],
)
def test_bad_run_options_are_config_errors(
    host: Host, options: dict[str, object], message: str
) -> None:
    args = options.pop("args", ["args"])
    with pytest.raises(ConfigError, match=message):
        host.run(FSPROBE, args, **options)  # type: ignore[arg-type]
    assert host.run(HELLO).stdout == b"Hello, World!\n"  # nothing was left hanging


def test_invoke_parameters_are_range_checked(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (func (export "id") (param i32) (result i32) (local.get 0)))')
    assert host.call(module, "id", "4294967295").values == (-1,)
    with pytest.raises(ConfigError, match="out of range"):
        host.call(module, "id", "99999999999")


# -- the run API: one set of options, named stdio targets, results by name (issue 12) -----


@pytest.mark.parametrize(
    ("option", "old", "new"),
    [
        ("stdout", "capture", "CAPTURE"),
        ("stderr", "null", "DEVNULL"),
        ("stdout", "inherit", "INHERIT"),
        ("stdin", "inherit", "INHERIT"),
    ],
)
def test_the_old_target_names_are_refused_with_the_constant_to_use(
    host: Host, option: str, old: str, new: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{option}='{old}' would be a file.*wasmhost\.{new}"):
        host.run(HELLO, **{option: old})  # type: ignore[misc]


def test_a_file_of_such_a_name_is_a_path(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    host.run(HELLO, stdout=Path("capture"))
    assert (tmp_path / "capture").read_bytes() == b"Hello, World!\n"


@pytest.mark.parametrize("method", ["run", "load", "stream"])
def test_an_unknown_option_is_a_type_error_naming_it(host: Host, method: str) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'timeuot'"):
        getattr(host, method)(HELLO, timeuot=1)


def test_an_unknown_option_of_run_async_too(host: Host) -> None:
    import asyncio

    with pytest.raises(TypeError, match="'max_outptu'"):
        asyncio.run(host.run_async(HELLO, max_outptu=1))  # type: ignore[call-arg]


@pytest.mark.own_cache  # counts compiles
def test_one_options_value_loads_and_runs(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    options = RunOptions(timeout=5, fuel=10**9, stdout=DEVNULL, argv0="probe")
    module = host.load(FSPROBE, **options)
    compiled = count_compiles(monkeypatch)
    result = host.run(module, ["args"], **options)
    assert compiled == []  # load compiled it for the engine these options need
    assert (result.stdout, result.fuel_consumed is not None) == (b"", True)


def test_a_result_is_named_fields_not_a_tuple(host: Host) -> None:
    result = host.run(HELLO)
    assert not isinstance(result, tuple)
    with pytest.raises(AttributeError):
        result.exit_code = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        RunResult(0, b"")  # type: ignore[misc]  # keywords only: field order is no API


def test_stdin_refuses_only_its_own_old_name_and_devnull_is_refused_for_output(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "null").write_bytes(b"from a file named null")
    # "null" was never special for stdin: it is a path, as any other string.
    assert host.run(FSPROBE, ["stdin"], stdin="null").stdout == b"from a file named null"
    with pytest.raises(ConfigError, match=r"stdout='devnull' would be a file.*wasmhost\.DEVNULL"):
        host.run(HELLO, stdout="devnull")
    assert not (tmp_path / "devnull").exists()


def test_load_refuses_what_run_refuses(host: Host) -> None:
    with pytest.raises(ConfigError, match="timeout must be a positive number"):
        host.load(HELLO, timeout=-1)
    with pytest.raises(ConfigError, match="max_output"):
        host.load(HELLO, max_output=-1)


def test_the_options_resolve_as_type_hints() -> None:
    import typing

    for method in (Host.run, Host.load, Host.stream, Host.run_async):
        assert "options" in typing.get_type_hints(method), method


def test_results_of_the_same_outcome_are_equal_whatever_their_timing(host: Host) -> None:
    first, second = host.run(HELLO), host.run(HELLO)
    assert first.elapsed != second.elapsed or first.instantiate_time != second.instantiate_time
    assert first == second
    assert hash(first) == hash(second)


def test_a_string_for_args_is_refused(host: Host) -> None:
    with pytest.raises(ConfigError, match="args must be a list of arguments, not the string 'abc'"):
        host.run(FSPROBE, "abc")  # type: ignore[arg-type]


def test_a_loaded_module_can_be_named(host: Host, tmp_path: Path) -> None:
    """What errors call a module pulled into a store: its reference, not the blob's path."""
    calls = HELLO.with_name("host-calls.wasm")
    with pytest.raises(LinkError, match=r"^localhost:5000/calls:v1 imports env.log"):
        host.load(calls, name="localhost:5000/calls:v1", unknown_imports="error")
    named = host.load(HELLO, name="localhost:5000/hello:v1")
    assert named.name == "localhost:5000/hello:v1"
    assert host.load(HELLO).name == str(HELLO)  # the name is not kept for the path
    assert host.run(named).stdout == b"Hello, World!\n"
    trap = tmp_path / "trap.wasm"
    trap.write_bytes(wasmtime.wat2wasm('(module (func (export "_start") unreachable))'))
    with pytest.raises(Trap, match=r"^ghcr.io/x/trap:v1 trapped"):
        host.run(host.load(trap, name="ghcr.io/x/trap:v1"))
    assert host.run(named, argv0="x").exit_code == 0


def test_wasmtime_opens_an_output_as_wasmhost_assumes(wat: Callable[[str], Path]) -> None:
    """What capi.open_output assumes of wasmtime, on the wasmtime-py this runs on: it
    opens an output file when configured, as one descriptor it keeps until its store is
    dropped, and writes the guest's output at that descriptor's own offset."""
    from wasmhost._host.engines.capi import open_output

    module = wat("""
      (module
        (import "wasi_snapshot_preview1" "fd_write"
          (func $write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "0123456789")
        (func (export "_start")
          (i32.store (i32.const 0) (i32.const 16))
          (i32.store (i32.const 4) (i32.const 10))
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
    """)
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    ours = os.memfd_create("test-output")
    try:
        wasi = wasmtime.WasiConfig()
        writer = open_output(wasi, "stdout", ours)
        assert writer is not None
        assert writer != ours
        assert os.path.samestat(os.fstat(writer), os.fstat(ours))
        cursor = os.dup(writer)  # as stdio keeps it, to read after the store is gone
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(module)))
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
        assert os.lseek(cursor, 0, os.SEEK_CUR) == 10
        store.close()
        with pytest.raises(OSError, match="Bad file descriptor"):  # went with its store
            os.fstat(writer)
        assert os.pread(ours, 100, 0) == b"0123456789"
        os.close(cursor)
    finally:
        os.close(ours)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("a=\0\udcff\u00e9 \U0001f600"), max_size=6)))
def test_wasi_strings_checks_all_at_once_as_one_by_one(values: list[str]) -> None:
    """WASI's strings are checked all at once (a CGI environment per request): what
    is taken and what is refused, and the message naming the first offender, are the
    same as checking each in turn."""
    from wasmhost._text import utf8, wasi_strings

    try:
        expected: list[bytes] | str = utf8("argument", values)
        for value, raw in zip(values, expected, strict=True):
            if b"\0" in raw:
                expected = f"argument {value!r} contains a NUL byte, which WASI cannot pass."
                break
    except ConfigError as exc:
        expected = str(exc)
    try:
        got: list[bytes] | str = wasi_strings("argument", values)
    except ConfigError as exc:
        got = str(exc)
    assert got == expected
