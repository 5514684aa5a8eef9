"""Attacks on wasmhost-runtime from a review of it as an attacker would run it: each
once got through (a traceback, create blocked for ever, an init orphaned with its
cgroups, a Wasm container's ID taken over by runc, its state removed under the
engine). Each is now refused in one line and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNTIME = str(Path(sys.executable).with_name("wasmhost-runtime"))
WASMHOST = str(Path(sys.executable).with_name("wasmhost"))
# (tmp_path, the state root, the ids a test made); a config.json edit in place.
Work = tuple[Path, str, list[str]]
Edit = Callable[[Any, Path], None]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.root,
    pytest.mark.slow,
]


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Work]:
    root = tmp_path / "root"
    made: list[str] = []
    yield tmp_path, str(root), made
    for cid in made:  # best effort: leave nothing behind
        subprocess.run(
            [RUNTIME, "--root", str(root), "delete", "--force", cid], capture_output=True
        )


def bundle(tmp: Path, name: str, edit: Edit | None = None) -> str:
    path = tmp / name
    subprocess.run(
        [WASMHOST, "bundle", str(REPO / "artifacts/hello-world.wasm"), str(path)],
        check=True,
        capture_output=True,
    )
    if edit is not None:
        config = json.loads((path / "config.json").read_text())
        edit(config, path)
        (path / "config.json").write_text(json.dumps(config))
    return str(path)


def run(root: str, *args: str, timeout: float = 10) -> tuple[int | None, str]:
    out = Path(root + ".out")
    with open(out, "w+") as f:  # a file, not a pipe: the init keeps create's stdio
        try:
            rc = subprocess.run(
                [RUNTIME, "--root", root, *args],
                stdout=f,
                stderr=f,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            rc = None
        f.seek(0)
        return rc, f.read()


def assert_one_line(rc: int | None, text: str) -> None:
    assert rc == 1, (rc, text)
    assert "Traceback" not in text, text
    assert text.startswith("wasmhost-runtime: "), text
    assert text.count("\n") == 1, text


def init_pids(cid: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[-2:-1] == [cid.encode()] and b"create" in cmd:
            found.append(int(pid))
    return found


# Finding: --pid-file in a missing folder -> traceback, state removed, init orphaned
# (blocked on the exec FIFO forever) with its cgroups and the .by-id index leaked.
def test_pid_file_in_missing_folder_leaves_nothing(work: Work) -> None:
    tmp, root, _made = work
    cid = "pf-" + uuid.uuid4().hex[:8]
    rc, text = run(
        root, "create", "--bundle", bundle(tmp, "b"), "--pid-file", str(tmp / "nope" / "pid"), cid
    )
    orphans = init_pids(cid)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert_one_line(rc, text)
    assert orphans == [], "the init outlived a failed create"


# Finding: non-list where a list is expected, NUL bytes in paths -> Python tracebacks.
@pytest.mark.parametrize(
    "edit",
    [
        lambda c, d: c["linux"].__setitem__("namespaces", 5),
        lambda c, d: c["process"].__setitem__("rlimits", 5),
        lambda c, d: c["process"]["user"].__setitem__("additionalGids", 5),
        lambda c, d: c["process"].__setitem__("args", ["/hello\0.wasm"]),
        lambda c, d: c["root"].__setitem__("path", "root\0fs"),
    ],
    ids=["namespaces-int", "rlimits-int", "gids-int", "nul-arg", "nul-root"],
)
def test_bad_config_is_one_line(work: Work, edit: Edit) -> None:
    tmp, root, _made = work
    assert_one_line(*run(root, "create", "--bundle", bundle(tmp, "b", edit), "x1"))


# Finding: ID longer than NAME_MAX (the regex allows 1024) -> ENAMETOOLONG traceback.
def test_long_id_is_one_line(work: Work) -> None:
    tmp, root, _made = work
    assert_one_line(*run(root, "create", "--bundle", bundle(tmp, "b"), "a" * 300))


# Finding: parse_signal uses str.isdigit, so '²' reaches int() -> ValueError traceback.
def test_kill_superscript_digit_is_one_line(work: Work) -> None:
    tmp, root, made = work
    made.append("k1")
    assert run(root, "create", "--bundle", bundle(tmp, "b"), "k1")[0] == 0
    assert_one_line(*run(root, "kill", "k1", "\u00b2"))


# Finding: a FIFO as config.json, as the entrypoint (no handler annotation), or as a
# namespace path blocks create forever (open() without O_NONBLOCK).
@pytest.mark.parametrize("kind", ["config", "entrypoint", "namespace"])
def test_fifo_does_not_hang_create(work: Work, kind: str) -> None:
    tmp, root, made = work

    def edit(c: Any, d: Path) -> None:
        if kind == "entrypoint":
            c.pop("annotations", None)
            os.unlink(d / "rootfs/hello-world.wasm")
            os.mkfifo(d / "rootfs/hello-world.wasm")
        if kind == "namespace":
            os.mkfifo(d / "ns")
            c["linux"]["namespaces"] = [{"type": "network", "path": str(d / "ns")}]

    b = bundle(tmp, "b", edit)
    if kind == "config":
        os.unlink(b + "/config.json")
        os.mkfifo(b + "/config.json")
    made.append("f1")
    rc, _text = run(root, "create", "--bundle", b, "f1", timeout=5)
    for pid in init_pids("f1"):
        os.kill(pid, signal.SIGKILL)
    assert rc is not None, "create hung"


# Finding: a failure of the guest's set-up after start that is not OSError/WasmhostError
# (uid 2**40 -> OverflowError in setresuid) escapes init() in the forked child, which then
# runs create's `except BaseException: rmtree(folder)` and prints a traceback: the
# container's state vanishes under the engine.
def test_failure_after_start_keeps_state(work: Work) -> None:
    tmp, root, made = work
    made.append("u1")
    b = bundle(tmp, "b", lambda c, d: c["process"]["user"].__setitem__("uid", 2**40))
    rc, _ = run(root, "create", "--bundle", b, "u1")
    if rc == 1:
        return  # refused at create: fine
    run(root, "start", "u1")
    time.sleep(1.5)
    text = Path(root + ".out").read_text()
    assert "Traceback" not in text, text
    assert os.path.isdir(os.path.join(root, "u1")), "the init removed the container's state"


# Finding: `create` of an existing Wasm container's ID with a non-Wasm bundle writes the
# native marker before runc refuses; from then on state/kill/delete go to runc, and
# `delete --force` (runc removes ROOT/ID) drops the state with the Wasm init still alive.
def test_native_create_of_existing_id_does_not_hijack(work: Work) -> None:
    tmp, root, made = work
    made.append("w1")
    assert run(root, "create", "--bundle", bundle(tmp, "b"), "w1")[0] == 0
    pid = json.loads(Path(root, "w1", "wasmhost.json").read_text())["pid"]

    def native(c: Any, d: Path) -> None:
        c.pop("annotations", None)
        c["process"]["args"] = ["/bin/sh"]

    rc, _ = run(root, "create", "--bundle", bundle(tmp, "n", native), "w1")
    assert rc != 0
    try:
        assert not os.path.exists(os.path.join(root, ".native", "w1")), "native marker left"
        rc, text = run(root, "state", "w1")
        assert rc == 0, text
    finally:
        run(root, "delete", "--force", "w1")
        alive = (
            os.path.exists(f"/proc/{pid}")
            and b"Z" not in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]
        )
        if alive:
            os.kill(pid, signal.SIGKILL)
    assert not alive, "delete --force left the Wasm init running"


# Finding: create killed (or failing) before the pid is recorded: the record says pid 0,
# so `delete --force` removes the state without killing the init (here: blocked joining a
# FIFO "namespace"; in practice: a slow compile), which stays with its cgroup.
def test_delete_force_after_create_crash_kills_init(work: Work) -> None:
    tmp, root, _made = work

    def edit(c: Any, d: Path) -> None:
        os.mkfifo(d / "ns")
        c["linux"]["namespaces"] = [{"type": "ipc", "path": str(d / "ns")}]

    b = bundle(tmp, "b", edit)
    proc = subprocess.Popen(
        [RUNTIME, "--root", root, "create", "--bundle", b, "c9"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2)
    proc.kill()
    proc.wait()
    run(root, "delete", "--force", "c9")
    orphans = init_pids("c9")
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert orphans == [], "delete --force left the init of a crashed create"
