"""`wasmhost run` as users run it: real processes, real exit statuses and signals."""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner
from conftest import (
    ARTIFACTS,
    FSPROBE,
    HELLO,
    HTTP,
    NBODY,
    SPIN,
    wasmhost_cli,
    wasmhost_in_process,
)
from hypothesis import given
from hypothesis import strategies as st

from wasmhost import RegistryClient
from wasmhost._cli import cli
from wasmhost._numbers import parse_duration, parse_size

CALC = ARTIFACTS / "calc.wasm"
COMPONENT = ARTIFACTS / "calc.component.wasm"


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_hello_world() -> None:
    done = wasmhost_cli("run", HELLO)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"Hello, World!\n", b"")


def test_everything_after_the_module_goes_to_the_guest() -> None:
    done = wasmhost_cli("run", FSPROBE, "args", "--help", "--dir", "x", "-v")
    assert done.stdout.decode().splitlines()[1:] == ["args", "--help", "--dir", "x", "-v"]
    # argv[0] is the file's name, whatever the path: as the wasmtime CLI gives it.
    assert done.stdout.decode().splitlines()[0] == "fsprobe.wasm"


def test_env_flags() -> None:
    env = dict(os.environ, FROM_HOST="passed", UNRELATED="hidden")
    done = wasmhost_cli(
        "run",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--env",
        "FROM_HOST",
        "--env",
        "NOT_SET",
        FSPROBE,
        "env",
        env=env,
    )
    assert done.stdout == b"A=1\nB=x=y\nFROM_HOST=passed\n"


def test_dir_flags(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("content")
    mapped = wasmhost_cli("run", "--dir", f"{tmp_path}::/data", FSPROBE, "read", "/data/f.txt")
    assert mapped.stdout == b"content"
    same = wasmhost_cli("run", "--dir", str(tmp_path), FSPROBE, "read", f"{tmp_path}/f.txt")
    assert same.stdout == b"content"
    ro = wasmhost_cli(
        "run", "--dir", f"{tmp_path}::/data::ro", FSPROBE, "write", "/data/f.txt", "x"
    )
    assert ro.returncode == 1
    assert (tmp_path / "f.txt").read_text() == "content"


def test_stdin_passes_through() -> None:
    assert wasmhost_cli("run", FSPROBE, "stdin", input=b"typed input").stdout == b"typed input"


@pytest.mark.parametrize("code", [0, 1, 7, 99])
def test_exit_status_is_the_guests(code: int) -> None:
    assert wasmhost_cli("run", FSPROBE, "exit", str(code)).returncode == code


def test_invoke_prints_results(wat: Callable[[str], Path]) -> None:
    module = wat(
        '(module (func (export "mul") (param i32 i32) (result i32) '
        "(i32.mul (local.get 0) (local.get 1))))"
    )
    done = wasmhost_cli("run", "--invoke", "mul", module, "6", "7")
    assert (done.returncode, done.stdout) == (0, b"42\n")


def test_a_trap_prints_message_and_backtrace(wat: Callable[[str], Path]) -> None:
    module = wat('(module (func $deep unreachable) (func (export "_start") (call $deep)))')
    done = wasmhost_cli("run", module)
    err = done.stderr.decode()
    assert done.returncode == 134
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == f"Error: {module} trapped: wasm `unreachable` instruction executed"
    assert lines[1] == "wasm backtrace:"
    assert "deep" in lines[2]
    assert len(lines) == 4


@pytest.mark.parametrize(
    ("flags", "module", "message"),
    [
        (["--timeout", "200ms"], "spin", "ran past its 0.2 s timeout"),
        (["--fuel", "10000"], "spin", "ran out of fuel"),
        (["--max-memory", "16MiB"], "alloc", "reached its memory limit of 16 MiB"),
    ],
    ids=["timeout", "fuel", "memory"],
)
def test_limits_are_one_line(
    wat: Callable[[str], Path], flags: list[str], module: str, message: str
) -> None:
    args = [wat(SPIN)] if module == "spin" else [FSPROBE, "alloc", "64"]
    done = wasmhost_cli("run", *flags, *args)
    assert done.returncode == 134
    lines = done.stderr.decode().strip().splitlines()
    if module == "alloc":  # the guest's own words come first
        assert lines.pop(0) == "memory allocation of 67108864 bytes failed"
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert message in lines[0]


def write_bad_files(folder: Path) -> None:
    (folder / "text.wasm").write_text("just text\n")
    (folder / "empty.wasm").write_bytes(b"")
    (folder / "half.wasm").write_bytes(HELLO.read_bytes()[:1000])
    (folder / "invalid.wasm").write_bytes(b"\0asm\x01\0\0\0\x0a\x05\x01\x03\x00\x00\x0b")
    (folder / "lib.wasm").write_bytes(
        wasmtime.wat2wasm('(module (func (export "add") (param i32) (result i32) (local.get 0)))')
    )


def bad_input(t: str) -> dict[str, tuple[list[str], str, int]]:
    """Each bad input (files in folder ``t``): arguments, what the error says, exit status."""
    return {
        "missing": (["run", f"{t}/nope.wasm"], "no such file", 1),
        "directory": (["run", t], "is a directory", 1),
        "not-wasm": (["run", f"{t}/text.wasm"], "not a WebAssembly module", 1),
        "empty": (["run", f"{t}/empty.wasm"], "is empty", 1),
        "truncated": (["run", f"{t}/half.wasm"], "not a valid WebAssembly module", 1),
        "invalid": (["run", f"{t}/invalid.wasm"], "not a valid WebAssembly module", 1),
        "no-start": (["run", f"{t}/lib.wasm"], "; pass --invoke NAME to call one of them", 1),
        "bad-dir": (["run", "--dir", "a::b::c::d", str(HELLO)], "not a directory mapping", 2),
        "bad-ro": (["run", "--dir", f"{t}::/x::rx", str(HELLO)], "not a directory mapping", 2),
        "no-host-dir": (["run", "--dir", f"{t}/gone", str(HELLO)], "does not exist", 1),
        "bad-env": (["run", "--env", "=x", str(HELLO)], "not NAME=VALUE", 2),
        "bad-size": (["run", "--max-memory", "lots", str(HELLO)], "not a size", 2),
        "zero-size": (["run", "--max-memory", "0", str(HELLO)], "more than zero", 2),
        "bad-fuel": (["run", "--fuel", "many", str(HELLO)], "not a whole number", 2),
        "negative-fuel": (["run", "--fuel", "-1", str(HELLO)], "cannot be negative", 2),
        "huge-fuel": (["run", "--fuel", str(1 << 64), str(HELLO)], "too large", 2),
        "bad-timeout": (["run", "--timeout", "soon", str(HELLO)], "not a duration", 2),
        "no-module": (["run"], "Missing argument 'MODULE'", 2),
        "unknown-command": (["rnu"], "No such command", 2),
        "invoke-missing": (["run", "--invoke", "nope", f"{t}/lib.wasm"], "no function 'nope'", 1),
        "invoke-args": (["run", "--invoke", "add", f"{t}/lib.wasm"], "takes 1 argument", 1),
        "non-utf8-arg": (["run", str(FSPROBE), "args", "\udcff"], "not valid UTF-8", 1),
    }


@pytest.mark.parametrize("case", list(bad_input("")))
def test_bad_input_is_one_line_and_no_traceback(tmp_path: Path, case: str) -> None:
    write_bad_files(tmp_path)
    args, message, status = bad_input(str(tmp_path))[case]
    done = wasmhost_in_process(*args)
    assert done.returncode == status
    assert message in one_error_line(done)


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("wasmhost 0.")
    assert "wasmtime-py" in result.output


def test_run_does_not_import_the_registry_client() -> None:
    code = (
        "import sys; from wasmhost._cli import main\n"
        "try:\n    main(['run', sys.argv[1]])\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('oras', 'requests', 'httpx') if m in sys.modules)\n"
        "print(heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(HELLO)], capture_output=True)
    assert done.stdout == b"Hello, World!\n"
    assert done.stderr.strip() == b"[]"


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else b""


def guest_process(*args: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "wasmhost", "run", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def interrupt(proc: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


@pytest.mark.slow
def test_output_streams_live_and_ctrl_c_stops_the_guest() -> None:
    with guest_process(HELLO, "--forever") as proc:
        assert read_line(proc, 30) == b"Hello, World!\n"
        assert read_line(proc, 30) == b"Hello, World!\n"
        assert proc.poll() is None  # lines arrive while the guest still runs
        status, err = interrupt(proc)
    assert status == -signal.SIGINT
    assert b"Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_stops_a_busy_guest() -> None:
    with guest_process(NBODY, "1000000000") as proc:
        assert read_line(proc, 30).startswith(b"-0.169")  # the guest is computing
        status, err = interrupt(proc)
    assert status == -signal.SIGINT
    assert b"Traceback" not in err


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("65536", 65536),
        ("64MiB", 64 << 20),
        ("64M", 64 << 20),
        ("64m", 64 << 20),
        ("1GiB", 1 << 30),
        ("10KB", 10_000),
        ("2k", 2048),
        ("1 GiB", 1 << 30),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@given(
    st.integers(min_value=1, max_value=1 << 40),
    st.sampled_from(["", "K", "KiB", "M", "MiB", "G", "GiB"]),
)
def test_parse_size_binary_units(number: int, unit: str) -> None:
    power = {"": 0, "K": 1, "M": 2, "G": 3}[unit[:1]]
    assert parse_size(f"{number}{unit}") == number * 1024**power


@pytest.mark.parametrize("text", ["", "MiB", "1.5MiB", "-1", "12q", "64i"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(text)}$"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("2", 2.0), ("2.5", 2.5), ("500ms", 0.5), ("1m", 60.0), (".5s", 0.5)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("missing", "argv", "extra"),
    [
        ("uvicorn", ["serve", str(HELLO)], "serve"),
        ("httptools", ["serve", str(HELLO)], "serve"),  # plain uvicorn, not uvicorn[standard]
        ("yaml", ["k8s", "--runtime", "crun", "ghcr.io/example/hello:v1"], "k8s"),
        ("matplotlib", ["compare", "--plot", "plot.png", str(HELLO)], "plot"),
    ],
    ids=["serve", "serve-httptools", "k8s", "plot"],
)
def test_a_command_whose_extra_is_missing_names_it(
    missing: str, argv: list[str], extra: str, tmp_path: Path
) -> None:
    # Each extra is installed here (the test extra pulls them all): its absence
    # is made by blocking the import (sys.modules[name] = None), as Python does
    # for a module that is not there.
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None\n"
        "from wasmhost._cli import main\n"
        "sys.argv = ['wasmhost', *sys.argv[1:]]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1
    line = one_error_line(done)
    assert f"pip install '.[{extra}]' in the wasmhost folder" in line, line
    if missing == "yaml":  # named as the package to install, not as the module
        assert "needs PyYAML," in line
    assert "pip install 'wasmhost" not in line  # the name on PyPI is another project's


def test_no_command_prints_the_help_as_click_does() -> None:
    done = wasmhost_cli()
    assert done.returncode == 2
    out = done.stdout.decode()
    assert out.startswith("Usage: wasmhost [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in out
    assert done.stderr == b""


def test_dash_capital_v_prints_the_version() -> None:
    done = wasmhost_cli("-V")
    assert done.returncode == 0
    assert done.stdout.decode().startswith("wasmhost ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["push", "--variant", "compat-smart", str(HELLO), "localhost:1/x:v1"],
            "--variant is for --format image",
        ),
        (
            ["push", "--os", "wasi", "--format", "cncf", str(HELLO), "localhost:1/x:v1"],
            "--os is for --format image",
        ),
        (
            ["push", "--serve", "8080", "--format", "cncf", str(HELLO), "localhost:1/x:v1"],
            "--serve is for --format image",
        ),
        (
            ["k8s", "--runtime", "crun", "--replicas", "3", "ghcr.io/x/y:v1"],
            "--replicas is for --kind deployment",
        ),
        (
            ["k8s", "--runtime", "wasmhost", "--kind", "job", "--replicas", "2", "r.io/x:y"],
            "--replicas is for --kind deployment; a job runs one Pod",
        ),
    ],
    ids=["push-variant", "push-os", "push-serve", "k8s-replicas", "k8s-job-replicas"],
)
def test_options_that_would_be_ignored_are_refused(argv: list[str], message: str) -> None:
    done = wasmhost_in_process(*argv)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_dir_help_and_a_single_colon() -> None:
    help_text = wasmhost_in_process("run", "--help").stdout.decode()
    assert "--dir HOST[::GUEST[::ro]]" in help_text
    done = wasmhost_cli("run", "--dir", "/tmp:/t", HELLO)
    assert done.returncode == 2
    assert "write HOST::GUEST" in done.stderr.decode()


@pytest.mark.parametrize("runs", ["0", "-1"])
def test_compare_runs_below_one_are_the_same_usage_error(runs: str) -> None:
    done = wasmhost_in_process("compare", "--runs", runs, HELLO)
    assert done.returncode == 2
    assert len(done.stderr.decode().strip().splitlines()) == 1


def test_serve_on_a_port_in_use_is_one_line() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = wasmhost_cli("serve", "--listen", f"127.0.0.1:{port}", HTTP)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot listen on 127.0.0.1" in lines[0]
    assert "in use" in lines[0]


def test_compare_with_a_runtime_path_that_does_not_exist(tmp_path: Path) -> None:
    done = wasmhost_cli("compare", "--runs", "1", "--runtime", f"node={tmp_path / 'nope'}", HELLO)
    out = done.stdout.decode()
    assert f"node: {tmp_path / 'nope'} does not exist; give the path to the node binary" in out
    assert "apt-get" not in out


# -- honest limits and I/O (issue 22, item 7) ----------------------------------


def with_stdout(fd: int, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "wasmhost", *argv], stdout=fd, stderr=subprocess.PIPE, timeout=60
    )


@pytest.mark.parametrize(
    "argv",
    [["inspect", str(HELLO)], ["inspect", "--json", str(HELLO)], ["--help"], ["-V"]],
    ids=["inspect", "inspect-json", "help", "version"],
)
def test_a_full_stdout_is_one_line_and_status_1(argv: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        done = with_stdout(full.fileno(), argv)
    assert done.returncode == 1
    assert one_error_line(done) == "Error: cannot write to stdout: No space left on device."


@pytest.mark.parametrize(
    "argv",
    [["inspect", str(HELLO)], ["--help"], ["run", "--invoke", "add", str(CALC), "1", "2"]],
    ids=["inspect", "help", "run-invoke"],
)
def test_a_closed_pipe_on_stdout_ends_quietly_with_status_1(argv: list[str]) -> None:
    # As Python's documentation recommends for EPIPE: no message, no traceback,
    # and no "Exception ignored" from the flush at exit.
    read, write = os.pipe()
    os.close(read)
    try:
        done = with_stdout(write, argv)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, b"")


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--timeout", "99999999999", str(HELLO)],
        ["run", "--timeout", "1000000000", str(HELLO)],
        ["run", "--max-memory", "100TiB", str(HELLO)],
        ["run", "--fuel", str(1 << 64), str(HELLO)],
        ["run", "--max-files", str(1 << 21), str(HELLO)],
        ["serve", "--timeout", "99999999999", str(HELLO)],
        ["serve", "--max-memory", "100TiB", str(HELLO)],
        ["serve", "--max-body", "2000TiB", str(HELLO)],
        ["serve", "--max-response", "2000TiB", str(HELLO)],
        ["serve", "--body-timeout", "9999999", str(HELLO)],
        ["serve", "--head-timeout", "9999999", str(HELLO)],
        ["serve", "--keep-alive-timeout", "9999999", str(HELLO)],
        ["serve", "--write-timeout", "9999999", str(HELLO)],
        ["compare", "--timeout", "99999999999", str(HELLO)],
        ["compare", "--max-output", "2000TiB", str(HELLO)],
        ["pull", "--max-size", "2000TiB", "localhost:1/x:v1"],
    ],
    ids=lambda argv: "-".join(argv[:2]),
)
def test_a_value_beyond_a_limit_is_a_usage_error(argv: list[str]) -> None:
    done = wasmhost_in_process(*argv)
    assert done.returncode == 2
    assert "is too large" in one_error_line(done)


def test_the_cli_ceilings_are_the_librarys() -> None:
    from wasmhost._cli import params
    from wasmhost._host.host import (
        _MAX_FILES_CEILING,
        _MAX_MEMORY_CEILING,
        _MAX_OUTPUT_CEILING,
        _U64,
    )
    from wasmhost._oci.client import _MAX_SIZE_CEILING

    assert params.MEMORY_SIZE.maximum == _MAX_MEMORY_CEILING
    assert params.SIZE.maximum == _MAX_OUTPUT_CEILING
    assert params.DOWNLOAD_SIZE.maximum == _MAX_SIZE_CEILING
    assert params.FUEL.maximum == _U64
    assert _MAX_FILES_CEILING == 1 << 20


@pytest.mark.parametrize("module", [HELLO, COMPONENT], ids=["module", "component"])
def test_over_max_memory_at_start_is_the_same_for_a_component(
    module: Path, wat: Callable[[str], Path]
) -> None:
    if module == HELLO:  # a core module whose initial memory (2 MiB) is over the cap
        module = wat('(module (memory 32) (func (export "_start")))')
    done = wasmhost_cli("run", "--max-memory", "64KiB", module)
    assert done.returncode == 134
    assert one_error_line(done).endswith("needs more memory at start than its memory limit allows.")


@pytest.mark.parametrize(
    ("what", "message"),
    [("nope.wasm", "nope.wasm: no such file"), ("folder", "is a directory")],
    ids=["missing", "directory"],
)
def test_inspect_of_a_missing_file_or_a_directory_says_so(
    tmp_path: Path, what: str, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    done = wasmhost_in_process("inspect", tmp_path / what)
    assert done.returncode == 1
    assert message in one_error_line(done)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_cache_folder_that_cannot_be_used_is_one_warning(tmp_path: Path, how: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    cache = tmp_path / "file" / "cache" if how == "env" else tmp_path / "file"
    if how == "flag":
        done = wasmhost_cli("run", "--cache-dir", cache, HELLO)
    else:
        done = wasmhost_cli("run", HELLO, env={**os.environ, "WASMHOST_CACHE_DIR": str(cache)})
    assert done.returncode == 0
    assert done.stdout == b"Hello, World!\n"
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    given = "--cache-dir" if how == "flag" else "WASMHOST_CACHE_DIR"
    assert lines[0].startswith(f"warning: {given}: {tmp_path / 'file'} is not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any folder")
def test_an_unwritable_cache_folder_is_one_warning(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o500)
    done = wasmhost_cli("run", "--cache-dir", cache, HELLO)
    assert done.returncode == 0
    assert "is not writable" in done.stderr.decode()


def test_invoke_with_arguments_in_parentheses_on_a_core_module_hints() -> None:
    done = wasmhost_in_process("run", "--invoke", "add(1,2)", CALC)
    assert done.returncode == 2
    assert f"--invoke add {CALC} 1 2" in one_error_line(done)


def test_debug_after_the_command_is_the_same_as_before_it(tmp_path: Path) -> None:
    # A refused registry: what it tried is logged under --debug.
    pull = ["pull", "--plain-http", "127.0.0.1:1/x:v1", "-o", str(tmp_path / "x.wasm")]
    before = wasmhost_cli("--debug", *pull)
    after = wasmhost_cli(pull[0], "--debug", *pull[1:])
    assert after.returncode == before.returncode == 1
    assert "debug: wasmhost.registry: retrying GET" in before.stderr.decode()
    assert after.stderr == before.stderr
    guest = wasmhost_cli("run", FSPROBE, "args", "--debug")  # after MODULE: the guest's
    assert guest.stdout.decode().split() == ["fsprobe.wasm", "args", "--debug"]


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["rn", str(HELLO)], "Did you mean 'run'?"),
        (["inspec", str(HELLO)], "Did you mean 'inspect'?"),
        (["run", "--timeot", "1", str(HELLO)], "Did you mean '--timeout'?"),
    ],
    ids=["command", "command-2", "run-option"],
)
def test_typos_get_suggestions(argv: list[str], suggestion: str) -> None:
    done = wasmhost_in_process(*argv)
    assert done.returncode == 2
    assert suggestion in one_error_line(done)


# -- help texts (issue 22, item 9) ---------------------------------------------


def command_help(name: str) -> str:
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


COMMANDS = cli.list_commands(None)  # type: ignore[arg-type]


def test_the_top_level_help_names_both_wasi_previews() -> None:
    text = CliRunner().invoke(cli, ["--help"]).output
    assert "WASI preview 1" in text
    assert "preview 2" in text


@pytest.mark.parametrize("name", COMMANDS)
def test_one_placeholder_and_one_default_style(name: str) -> None:
    text = command_help(name)
    # Numbers are N, sizes SIZE, durations SECONDS: never click's own type names.
    assert not re.search(r"\b(INTEGER|FLOAT)( RANGE)?\b", text), text
    assert "x>=" not in text  # click's range note
    # Defaults as click shows them ([default: ...]), never in the help's own words.
    assert not re.search(r"\(default|; default|\[\d[^\]]*\]", text, re.IGNORECASE), text


@pytest.mark.parametrize("name", [name for name in COMMANDS if "--dir" in command_help(name)])
def test_dir_is_explained_wherever_it_is_taken(name: str) -> None:
    text = " ".join(command_help(name).split())
    for form in ("HOST (seen at the same path)", "HOST::GUEST (seen as GUEST)", "HOST::GUEST::ro"):
        assert form in text


def test_serve_help_names_its_extra() -> None:
    text = " ".join(command_help("serve").split())
    assert "'serve' extra" in text
    assert "pip install '.[serve]'" in text


def help_examples(name: str) -> list[str]:
    """The examples a command's help ends with."""
    text = command_help(name)
    parts = re.split(r"\n *Examples:\n", text)
    assert len(parts) == 2, f"wasmhost {name} --help has no examples (or several blocks)"
    block = parts[1]
    lines = [line.strip() for line in block.strip().splitlines()]
    assert 1 <= len(lines) <= 2, lines
    assert all(line.startswith(f"wasmhost {name} ") for line in lines), lines
    return lines


# What the examples test runs: none that needs a registry (login, logout, and
# any example naming localhost:5000) and none that does not end (serve's).
NOT_RUN = {
    "login",
    "logout",
    "serve",
    "key",
}  # key generate asks for a password (test_signing runs it)


@pytest.mark.parametrize(
    "name",
    # compare's examples time several runtimes (7-10 s): slow.
    [pytest.param(n, marks=pytest.mark.slow) if n == "compare" else n for n in COMMANDS],
)
def test_each_commands_help_ends_with_examples_that_run(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = help_examples(name)
    if name in NOT_RUN:
        return
    (tmp_path / "artifacts").symlink_to(ARTIFACTS)
    if name in ("sign", "verify"):  # their layout examples: a key, and a layout out:v1
        from wasmhost._oci.signing import generate_key_pair

        monkeypatch.setenv("WASMHOST_KEY_PASSWORD", "example")
        private, public = generate_key_pair(b"example")
        (tmp_path / "wasmhost.key").write_bytes(private)
        (tmp_path / "wasmhost.pub").write_bytes(public)
        client = RegistryClient(cache_dir=tmp_path / "cache")
        client.push(HELLO, f"{tmp_path}/out:v1", oci_layout=True)
        if name == "verify":
            key = tmp_path / "wasmhost.key"
            client.sign(
                f"{tmp_path}/out:v1", key, b"example", identity="x.example/y", oci_layout=True
            )
    for example in examples:
        if "localhost:5000" in example:
            continue
        argv = shlex.split(example)
        done = wasmhost_in_process(*argv[1:], cwd=tmp_path)
        assert done.returncode == 0, (example, done.stderr.decode())


@pytest.mark.parametrize("argv", [["inspect", str(HELLO)], ["cache", "du"]])
def test_a_closed_stdout_is_no_traceback(argv: list[str], tmp_path: Path) -> None:
    """Started with stdout closed (`>&-`), Python has no sys.stdout at all."""
    done = subprocess.run(
        [sys.executable, "-m", "wasmhost", *argv],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "WASMHOST_CACHE_DIR": str(tmp_path)},
        preexec_fn=lambda: os.close(1),
        timeout=60,
    )
    assert b"Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("option", ["--runs", "--warmup"])
def test_compare_counts_have_a_ceiling(option: str) -> None:
    done = wasmhost_in_process("compare", option, "99999999999", HELLO)
    assert done.returncode == 2
    assert "too large" in done.stderr.decode()
