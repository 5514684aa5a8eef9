"""The README's code blocks run as printed.

Every fenced block of README.md is extracted and run: the ``python`` blocks
in order in one fresh interpreter (later ones use the ``host`` of the
first), each ``sh`` block's commands in bash in a folder that holds this
checkout's ``artifacts/`` and ``rust/`` and the README's ``toml`` files, with
the test's own ``wasmhost`` first on PATH. A trailing comment states what a
command must do beyond exiting 0: ``prints X``, ``exits N``, and for
``wasmhost serve``, ``curl localhost:8080/PATH -> TEXT`` (the server is started
on a free port instead, and asked for PATH). ``localhost:5000``, the README's
local registry, is the tests' registry; a separate test starts a registry
with the README's own recipe. The two fresh-machine commands are not run
here: CI (.ci/run) runs them verbatim, which a test checks.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from registry import Registry, listening_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.lang or 'text'}-line-{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(m.group(2), textwrap.dedent(m.group(3)), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


BLOCKS = readme_blocks()
FRESH = [b for b in BLOCKS if b.lang == "sh" and "python3 -m venv" in b.text]
SETUP = [b for b in BLOCKS if b.lang == "sh" and "docker-registry serve" in b.text]
# The container recipes (podman, ctr) need root and the engines: test_runtime_engines.py
# runs them.
CONTAINERS = [
    b for b in BLOCKS if b.lang == "sh" and re.search(r"^(podman|ctr) ", b.text, flags=re.MULTILINE)
]
COMMANDS = [b for b in BLOCKS if b.lang == "sh" and b not in FRESH + SETUP + CONTAINERS]
README_REGISTRY = "localhost:5000"


def test_every_block_is_of_a_kind_this_test_runs() -> None:
    """A block in a new language would otherwise go untested."""
    assert {b.lang for b in BLOCKS} <= {"sh", "python", "toml", ""}
    assert len(COMMANDS) >= 6
    assert len([b for b in BLOCKS if b.lang == "python"]) >= 4


def test_the_fresh_machine_commands_are_two_and_ci_runs_them() -> None:
    assert len(FRESH) == 2
    install, tests = (b.text.strip() for b in FRESH)
    assert install.endswith("wasmhost run artifacts/hello-world.wasm")
    assert tests.endswith("nox -s tests")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci
    assert tests in ci


def commands(block: Block) -> list[str]:
    """The block's command lines (continuations joined), without comment lines."""
    joined = block.text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def workdir(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    for name in ("artifacts", "rust"):
        (base / name).symlink_to(ROOT / name)
    for block in BLOCKS:
        named = re.match(r"# (\S+\.toml)\b", block.text)
        if block.lang == "toml" and named:
            (base / named.group(1)).write_text(block.text)
    return base


def environment() -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def expectation(line: str) -> tuple[int, str | None]:
    """The exit status and output a command's trailing comment promises."""
    comment = line.partition("  #")[2]
    status = re.search(r"\bexits (\d+)", comment)
    printed = re.search(r"\bprints (.+)$", comment)
    return (int(status.group(1)) if status else 0), (printed.group(1) if printed else None)


def serve(line: str, work: Path, env: dict[str, str]) -> None:
    """Start ``wasmhost serve`` as the line says, on a free port, and ask what it promises."""
    before, _, rest = line.partition("wasmhost serve")
    command, _, comment = rest.partition("  #")
    promise = re.search(r"curl localhost:8080(\S*) -> (.+)$", comment)
    assert promise, f"a serve line says what to ask it: {line!r}"
    if before.strip():
        subprocess.run(["bash", "-c", before.rstrip().removesuffix("&&")], cwd=work, check=True)
    argv = shlex.split(command)
    if "--listen" in argv:
        argv[argv.index("--listen") + 1] = "127.0.0.1:0"
    else:
        argv += ["--listen", "127.0.0.1:0"]
    log = work / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["wasmhost", "serve", *argv], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        port = listening_port(process)
        assert port is not None, log.read_text()
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}{promise.group(1)}", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert answer.status_code == 200, answer.text
        assert promise.group(2).strip() in answer.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_commands(block: Block, work: Path, registry: str | None) -> None:
    env = environment()
    for line in commands(block):
        if registry:
            line = line.replace(README_REGISTRY, registry)
        if "wasmhost serve" in line:
            serve(line, work, env)
            continue
        status, printed = expectation(line)
        done = subprocess.run(
            ["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == status, f"{line}\n{done.stdout}{done.stderr}"
        if printed is not None:
            assert printed.strip() in done.stdout, f"{line}\n{done.stdout}"


def block_params(blocks: list[Block]) -> list[object]:
    return [
        pytest.param(
            b,
            id=b.id,
            marks=[pytest.mark.registry] if README_REGISTRY in b.text else [],
        )
        for b in blocks
    ]


@pytest.mark.server
@pytest.mark.parametrize("block", block_params(COMMANDS))
def test_sh_block_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    registry: Registry | None = None
    if README_REGISTRY in block.text:
        registry = request.getfixturevalue("registry")
    run_commands(block, workdir(tmp_path / "work"), registry.host if registry else None)


def test_python_blocks_run(tmp_path: Path, registry: Registry) -> None:
    parts = [
        f"# README.md, line {b.line}\n{b.text.replace(README_REGISTRY, registry.host)}"
        for b in BLOCKS
        if b.lang == "python"
    ]
    work = workdir(tmp_path / "work")
    (work / "readme_examples.py").write_text("\n".join(parts))
    done = subprocess.run(
        [sys.executable, "readme_examples.py"],
        cwd=work,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hello from the guest!" in done.stdout  # the host function was called


@pytest.mark.registry
@pytest.mark.server
def test_the_registry_recipe_starts_a_registry(tmp_path: Path) -> None:
    """The README's local registry, on a free port and in a temporary folder."""
    (block,) = SETUP
    script = block.text.replace(README_REGISTRY, "127.0.0.1:0")
    script = script.replace("/tmp/registry", str(tmp_path / "registry"))
    prepare, _, serve_line = script.rpartition("\ndocker-registry serve ")
    subprocess.run(["bash", "-e", "-c", prepare], check=True)
    config = serve_line.split()[0]
    assert serve_line.split()[1:] == ["&"]
    with open(tmp_path / "registry.log", "wb") as log:
        process = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=log)
    try:
        port = listening_port(process, timeout=30)
        assert port is not None, (tmp_path / "registry.log").read_text()
        reference = f"127.0.0.1:{port}/hello-world:oci"
        env = environment()
        hello = ROOT / "artifacts/hello-world.wasm"
        for _ in range(100):  # listening is not yet answering
            pushed = subprocess.run(
                ["wasmhost", "push", "-q", "--plain-http", hello, reference],
                env=env,
                capture_output=True,
                text=True,
            )
            if "unreachable" not in pushed.stderr:
                break
            time.sleep(0.1)
        assert pushed.returncode == 0, pushed.stderr
        ran = subprocess.run(
            ["wasmhost", "run", "--plain-http", reference], env=env, capture_output=True
        )
        assert ran.stdout == b"Hello, World!\n"
    finally:
        process.terminate()
        process.wait(timeout=30)
