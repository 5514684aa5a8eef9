"""Warm runs at the floor (issue 11): captured output goes through pipes that a
thread reuses, read after the run (a monitor gives a drain thread to a run that
leaves output waiting), and a module run again is instantiated in a pooled twin
engine. What that must not change: every byte, in order, per run and stream;
nothing of one instance seen by the next; more runs at once than the pool
holds; modules that do not fit it; a process where the pool cannot be made."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FSPROBE, HELLO, WASI_EXIT, WASI_WRITE, in_threads

import wasmhost._host.engines.engine
import wasmhost._host.running.stdio
from wasmhost import Host, OutputLimitExceeded

MiB = 1 << 20

# Writes ``n`` bytes (byte i is i % 251: a pattern that shows loss or reordering)
# to fd 1 in one call, and the two-byte pieces of ``words`` around a busy loop.
PATTERN = f"""
(module
  {WASI_WRITE}
  (memory (export "memory") 60)
  (func (export "_start") (local $i i32)
    (loop $fill
      (i32.store8 (i32.add (i32.const 4096) (local.get $i))
                  (i32.rem_u (local.get $i) (i32.const 251)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const N))))
    (i32.store (i32.const 0) (i32.const 4096))
    (i32.store (i32.const 4) (i32.const N))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


# Writes "early\n" to stdout and "e\n" to stderr, computes for tens of
# milliseconds (several of the monitor's ticks), then writes "late\n".
EARLY_LATE = f"""
(module
  {WASI_WRITE}
  (memory (export "memory") 1)
  (data (i32.const 100) "early\\n")
  (data (i32.const 200) "late\\n")
  (data (i32.const 300) "e\\n")
  (func $say (param $fd i32) (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (local $i i32)
    (call $say (i32.const 1) (i32.const 100) (i32.const 6))
    (call $say (i32.const 2) (i32.const 300) (i32.const 2))
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const 40000000))))
    (call $say (i32.const 1) (i32.const 200) (i32.const 5))))
"""

# Reads the i32 at 1024 and the byte at 2048 (a data segment's "s"), then
# dirties both, and exits with 0 only if it found them as a new instance has them.
DIRTIES_ITS_MEMORY = f"""
(module
  {WASI_EXIT}
  (memory (export "memory") 1)
  (data (i32.const 2048) "s")
  (func (export "_start") (local $dirty i32)
    (local.set $dirty
      (i32.or (i32.ne (i32.load (i32.const 1024)) (i32.const 0))
              (i32.ne (i32.load8_u (i32.const 2048)) (i32.const 115))))
    (i32.store (i32.const 1024) (i32.const 42))
    (i32.store8 (i32.const 2048) (i32.const 0))
    (call $exit (local.get $dirty))))
"""

# Says "outer1", calls the host (which runs another guest), says "outer2".
NESTS = f"""
(module
  {WASI_WRITE}
  (import "env" "inner" (func $inner))
  (memory (export "memory") 1)
  (data (i32.const 100) "outer1\\nouter2\\n")
  (func $say (param $at i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (i32.const 7))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $say (i32.const 100))
    (call $inner)
    (call $say (i32.const 107))))
"""

# Two memories: more than a pool slot has.
TWO_MEMORIES = f"""
(module
  {WASI_WRITE}
  (memory (export "memory") 1)
  (memory $other 1)
  (data (i32.const 100) "ok\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

# Grows its table by the i32 given as a parameter and returns table.grow's answer.
GROWS_ITS_TABLE = """
(module
  (table 1 funcref)
  (func (export "grow") (param i32) (result i32)
    (table.grow (ref.null func) (local.get 0))))
"""


@pytest.fixture
def host() -> Host:
    with Host(cache_dir=False) as h:
        yield h


def open_pipes() -> int:
    gc.collect()  # the pipes of threads that ended in earlier tests are closed when collected
    found = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found += os.readlink(f"/proc/self/fd/{name}").startswith("pipe:")
    return found


# -- captured output ------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 4096, 65536, 65537, 3 * MiB + 7], ids=str)
def test_captured_output_arrives_whole_and_in_order(
    host: Host, wat: Callable[[str], Path], size: int
) -> None:
    module = wat(PATTERN.replace("(i32.const N)", f"(i32.const {size})"))
    for _ in range(3):  # the first run, then warm ones on reused pipes and the pool
        assert host.run(module).stdout == pattern(size)


def test_output_left_waiting_while_the_guest_computes_is_kept(
    host: Host, wat: Callable[[str], Path]
) -> None:
    module = wat(EARLY_LATE)
    for _ in range(3):
        result = host.run(module)
        assert (result.stdout, result.stderr) == (b"early\nlate\n", b"e\n")


def test_a_run_sees_nothing_of_the_run_before(host: Host) -> None:
    assert host.run(FSPROBE, ["args", "first"]).stdout == b"fsprobe.wasm\nargs\nfirst\n"
    with pytest.raises(OutputLimitExceeded):
        host.run(FSPROBE, ["flood", "4"], max_output=MiB)
    with pytest.raises(OutputLimitExceeded):
        host.run(FSPROBE, ["args", "x" * 100], max_output=50)  # a limit smaller than a pipe
    assert host.run(FSPROBE, ["args", "second"]).stdout == b"fsprobe.wasm\nargs\nsecond\n"
    assert host.run(HELLO).stderr == b""


def test_a_limit_smaller_than_a_pipe_keeps_what_fitted(host: Host) -> None:
    with pytest.raises(OutputLimitExceeded) as info:
        host.run(FSPROBE, ["args", "y" * 100], max_output=20)
    assert info.value.stdout == b"fsprobe.wasm\nargs\nyy"


def test_a_run_inside_a_host_function_has_its_own_output(
    host: Host, wat: Callable[[str], Path]
) -> None:
    inner: list[bytes] = []
    module = wat(NESTS)

    def run_another() -> None:
        inner.append(host.run(HELLO).stdout)

    for _ in range(3):
        result = host.run(module, imports={"env": {"inner": run_another}})
        assert result.stdout == b"outer1\nouter2\n"
    assert inner == [b"Hello, World!\n"] * 3


def test_threads_each_get_their_own_output(host: Host) -> None:
    def work(i: int) -> None:
        for j in range(30):
            out = host.run(FSPROBE, ["args", f"{i}-{j}"]).stdout
            assert out == f"fsprobe.wasm\nargs\n{i}-{j}\n".encode()

    in_threads(work, 8)


def test_warm_runs_keep_no_pipes(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat(EARLY_LATE)
    for _ in range(2):  # each module in both engines (wasmtime keeps a memfd per memory image)
        host.run(HELLO), host.run(module), host.run(FSPROBE, ["args"])
    before = open_pipes()
    for _ in range(200):
        host.run(HELLO)
    host.run(module)
    with pytest.raises(OutputLimitExceeded):
        host.run(FSPROBE, ["flood", "2"], max_output=MiB)
    host.run(HELLO)
    assert open_pipes() <= before  # were a run to keep one, 200 would show


def run_python(code: str, *more: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, str(FSPROBE), str(HELLO), *map(str, more)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_where_sigpipe_would_kill_the_process_writes_past_the_limit_still_fail() -> None:
    # With SIGPIPE at its default, closing a pipe under the guest would end
    # the host: such a process captures into sealed memfds, whose writes fail.
    done = run_python(
        "import signal, sys\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "from wasmhost import Host, OutputLimitExceeded\n"
        "with Host(cache_dir=False) as host:\n"
        "    for _ in range(2):\n"
        "        try:\n"
        "            host.run(sys.argv[1], ['flood', '64'], max_output=1 << 20)\n"
        "        except OutputLimitExceeded as exc:\n"
        "            print(len(exc.stdout), exc.stream, b'fsprobe:' in exc.stderr)\n"
        "    print(host.run(sys.argv[2]).stdout.decode(), end='')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{MiB} stdout True\n" * 2 + "Hello, World!\n"


# Writes 64 KiB chunks forever, the first four slowly (a busy loop between
# them), and exits with 3 at its first failed write.
SLOW_THEN_FLOODING = f"""
(module
  {WASI_WRITE}
  {WASI_EXIT}
  (memory (export "memory") 2)
  (func (export "_start") (local $i i32) (local $n i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $again
      (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
        (then (call $exit (i32.const 3))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $i (i32.const 0))
      (if (i32.lt_u (local.get $n) (i32.const 4))
        (then (loop $spin
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $spin (i32.lt_u (local.get $i) (i32.const 100000000))))))
      (br $again))))
"""


def test_a_forked_child_does_not_keep_a_flooding_guest_writing(
    wat: Callable[[str], Path],
) -> None:
    # A child forked mid-run (as multiprocessing's fork does) holds copies of
    # the parent's descriptors; were its copy of the reading end open, the
    # guest would block on a full pipe past its limit, out of the timeout's reach.
    done = run_python(
        "import os, sys, threading, time\n"
        "from wasmhost import Host, OutputLimitExceeded\n"
        "host = Host(cache_dir=False)\n"
        "out = []\n"
        "def work():\n"
        "    try:\n"
        "        host.run(sys.argv[3], max_output=1 << 20, timeout=30)\n"
        "    except OutputLimitExceeded as exc:\n"
        "        out.append(len(exc.stdout))\n"
        "thread = threading.Thread(target=work)\n"
        "thread.start()\n"
        "time.sleep(0.05)  # the guest is in its slow start: its pipe is open\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(20)\n"
        "    os._exit(0)\n"
        "thread.join(15)\n"
        "print(out, thread.is_alive())\n"
        "os.kill(pid, 9)\n"
        "os.waitpid(pid, 0)\n",
        wat(SLOW_THEN_FLOODING),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"[{MiB}] False\n"


def test_idle_threads_hold_no_pipes(host: Host) -> None:
    host.run(HELLO)
    before = open_pipes()
    ran, release = threading.Barrier(41), threading.Event()

    def work(i: int) -> None:
        assert host.run(FSPROBE, ["args", str(i)]).stdout.endswith(f"{i}\n".encode())
        ran.wait()
        release.wait()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    ran.wait()
    idle = open_pipes()
    release.set()
    for thread in threads:
        thread.join()
    assert idle <= before + wasmhost._host.running.stdio._MAX_FREE


def test_output_is_read_when_no_thread_can_be_started(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulated: a thread limit (as a pids cgroup sets) cannot be reached
    # here without starving the machine, so Thread.start fails on purpose,
    # for the monitor's first start and then for a drain thread.
    real = threading.Thread.start
    failures = {"wasmhost-output-monitor": 1, "wasmhost-output": 1}

    def start(thread: threading.Thread) -> None:
        if failures.get(thread.name):
            failures[thread.name] -= 1
            raise RuntimeError("can't start new thread")
        real(thread)

    monkeypatch.setattr(
        wasmhost._host.running.stdio, "_monitor", wasmhost._host.running.stdio._Monitor()
    )
    monkeypatch.setattr(threading.Thread, "start", start)
    for _ in range(3):
        assert host.run(FSPROBE, ["flood", "1"]).stdout == b"x" * MiB
    assert failures == {"wasmhost-output-monitor": 0, "wasmhost-output": 0}


def test_a_forked_child_captures_apart_from_its_parent() -> None:
    done = run_python(
        "import os, sys\n"
        "from wasmhost import Host\n"
        "host = Host(cache_dir=False)\n"
        "for _ in range(3):\n"
        "    host.run(sys.argv[1], ['args', 'warm'])\n"
        "pid = os.fork()\n"
        "who = 'child' if pid == 0 else 'parent'\n"
        "outs = {host.run(sys.argv[1], ['args', who]).stdout for _ in range(200)}\n"
        "ok = outs == {f'fsprobe.wasm\\nargs\\n{who}\\n'.encode()}\n"
        "if pid == 0:\n"
        "    os._exit(0 if ok else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(ok, os.waitstatus_to_exitcode(status))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True 0\n"


# -- pooled instances ---------------------------------------------------------------


def test_a_pooled_instance_starts_from_a_clean_memory(
    host: Host, wat: Callable[[str], Path]
) -> None:
    module = wat(DIRTIES_ITS_MEMORY)
    assert [host.run(module).exit_code for _ in range(10)] == [0] * 10
    assert [host.run(module, timeout=5).exit_code for _ in range(10)] == [0] * 10


def test_more_runs_at_once_than_the_pool_holds(
    monkeypatch: pytest.MonkeyPatch, wat: Callable[[str], Path]
) -> None:
    monkeypatch.setattr(wasmhost._host.engines.engine, "POOL_RUNS", 2)
    with Host(cache_dir=False) as host:
        host.run(FSPROBE, ["args", "warm"])

        def work(i: int) -> None:
            for _ in range(3):
                result = host.run(FSPROBE, ["sleep", "30"], timeout=30)
                assert result.stdout == b"slept\n"

        in_threads(work, 6)
        for flags, slot in host._engines._slots.items():
            assert slot._leased == 0, flags  # every run gave its slot back


def test_a_module_that_does_not_fit_a_pool_slot_runs_unpooled(
    host: Host, wat: Callable[[str], Path]
) -> None:
    module = wat(TWO_MEMORIES)
    assert [host.run(module).stdout for _ in range(4)] == [b"ok\n"] * 4


@pytest.mark.parametrize(
    ("by", "answer"),
    [(30_000, 1), (1_000_000, 1), (wasmhost._host.engines.memory.TABLE_ELEMENTS, -1)],
    ids=["30k", "1M", "past-the-limit"],
)
def test_a_table_grows_alike_on_every_run(
    host: Host, wat: Callable[[str], Path], by: int, answer: int
) -> None:
    # The first run is on the plain engine, the later ones in the pool.
    module = wat(GROWS_ITS_TABLE)
    assert [host.call(module, "grow", by).values for _ in range(4)] == [(answer,)] * 4


def test_runs_go_on_where_the_pool_cannot_be_reserved() -> None:
    # 40 GiB of address space: room for a few unpooled instances (each
    # reserves ~8 GiB), not for a pool of 64 slots.
    done = run_python(
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (40 << 30, 40 << 30))\n"
        "from wasmhost import Host\n"
        "with Host(cache_dir=False) as host:\n"
        "    outs = [host.run(sys.argv[2]).stdout for _ in range(5)]\n"
        "    outs += [host.run(sys.argv[2], timeout=5).stdout for _ in range(3)]\n"
        "    slot = next(iter(host._engines._slots.values()))\n"
        "print(outs == [b'Hello, World!\\n'] * 8, slot._twin is None)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True True\n"


def test_two_modules_pooled_at_once_share_one_twin(
    monkeypatch: pytest.MonkeyPatch, wat: Callable[[str], Path]
) -> None:
    # Each module is copied into the twin under its own lock; the twin itself
    # must be made once, or the second would hold its own pool of address space.
    real = wasmhost._host.engines.engine._make_twin
    made: list[object] = []
    ready = threading.Barrier(2)

    def slow_twin(*args: object) -> object:
        made.append(args)
        time.sleep(0.05)  # the window another module's promotion would race into
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(wasmhost._host.engines.engine, "_make_twin", slow_twin)
    modules = [HELLO, wat(DIRTIES_ITS_MEMORY)]
    with Host(cache_dir=False) as host:
        for module in modules:
            host.run(module)  # first runs: not pooled

        def second_run(i: int) -> None:
            ready.wait()
            host.run(modules[i])

        in_threads(second_run, 2)
    assert len(made) == 1
