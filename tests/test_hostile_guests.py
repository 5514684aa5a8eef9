"""A guest that floods its output, sleeps past its timeout, blocks its reader or
is refused memory: the host keeps its memory and time, and names the limit
(issue 9). Real guests: the Rust fsprobe and
hello-world artifacts, and WAT modules for what Rust does not do on purpose."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FSPROBE,
    HELLO,
    ROOT,
    WASI_EXIT,
    WASI_WRITE,
    in_threads,
    wasmhost_cli,
    wasmhost_in_process,
)

from wasmhost import (
    ConfigError,
    Dir,
    Host,
    Interrupted,
    LimitExceeded,
    MemoryLimitExceeded,
    OutputChunk,
    OutputLimitExceeded,
    RunResult,
    TimeoutExceeded,
    Trap,
)

MiB = 1 << 20

# A guest that ignores failed writes and writes 1 MiB to ``fd`` forever.
ENDLESS_WRITER = f"""
(module
  {WASI_WRITE}
  (memory (export "memory") 17)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 1048576))
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 1048576))
    (loop $again
      (drop (call $fd_write (i32.const FD) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $again))))
"""

POLL = (
    '(import "wasi_snapshot_preview1" "poll_oneoff" '
    "(func $poll (param i32 i32 i32 i32) (result i32)))"
)


def clock(at: int, userdata: int, ns: int, clock_id: int = 1, flags: int = 0) -> str:
    """WAT that writes a clock subscription at ``at``."""
    return f"""
      (i64.store (i32.const {at}) (i64.const {userdata}))
      (i32.store8 (i32.const {at + 8}) (i32.const 0))
      (i32.store (i32.const {at + 16}) (i32.const {clock_id}))
      (i64.store (i32.const {at + 24}) (i64.const {ns}))
      (i32.store16 (i32.const {at + 40}) (i32.const {flags}))"""


def poller(subscriptions: str, count: int) -> str:
    """A guest that polls ``count`` subscriptions at 0 and exits with the errno
    if there is one, else ``30 + nevents * 10 + the first event's userdata``."""
    return f"""
    (module
      {POLL}
      {WASI_EXIT}
      (memory (export "memory") 1)
      (func (export "_start") (local $errno i32)
        {subscriptions}
        (local.set $errno
          (call $poll (i32.const 0) (i32.const 4096) (i32.const {count}) (i32.const 8192)))
        (if (local.get $errno) (then (call $exit (local.get $errno))))
        (call $exit
          (i32.add (i32.const 30)
            (i32.add (i32.mul (i32.load (i32.const 8192)) (i32.const 10))
              (i32.load (i32.const 4096)))))))
    """


# -- output caps ------------------------------------------------------------


def test_captured_output_stops_at_the_cap_and_keeps_what_fitted(host: Host) -> None:
    with pytest.raises(OutputLimitExceeded, match=r"output limit of 1 MiB to stdout") as info:
        host.run(FSPROBE, ["flood", "64"], max_output=MiB)
    error = info.value
    assert isinstance(error, LimitExceeded)
    assert (error.limit, error.stream, error.max_output) == ("output", "stdout", MiB)
    assert error.stdout == b"x" * MiB
    assert b"fsprobe:" in error.stderr  # the guest saw its writes fail
    assert host.run(HELLO).stdout == b"Hello, World!\n"


def test_the_cap_is_on_by_default_and_none_lifts_it(host: Host) -> None:
    with pytest.raises(OutputLimitExceeded, match="16 MiB") as info:
        host.run(FSPROBE, ["flood", "17"])
    assert len(info.value.stdout) == 16 * MiB
    assert len(host.run(FSPROBE, ["flood", "17"], max_output=None).stdout) == 17 * MiB


def test_output_exactly_at_the_cap_is_fine(host: Host) -> None:
    assert host.run(FSPROBE, ["flood", "2"], max_output=2 * MiB).stdout == b"x" * (2 * MiB)


def test_the_cap_applies_to_stderr_too(host: Host, wat: Callable[[str], Path]) -> None:
    writer = wat(ENDLESS_WRITER.replace("FD", "2"))
    with pytest.raises(OutputLimitExceeded) as info:
        host.run(writer, max_output=3 * MiB, timeout=60)
    assert info.value.stream == "stderr"
    assert len(info.value.stderr) == 3 * MiB


def test_a_guest_ignoring_failed_writes_is_stopped(host: Host, wat: Callable[[str], Path]) -> None:
    # It would write until its 60 s timeout; the cap stops it first.
    with pytest.raises(OutputLimitExceeded):
        host.run(wat(ENDLESS_WRITER.replace("FD", "1")), max_output=MiB, timeout=60)


def test_output_to_other_targets_is_not_capped(host: Host, tmp_path: Path) -> None:
    out = tmp_path / "out"
    host.run(FSPROBE, ["flood", "3"], stdout=out, max_output=MiB)
    assert out.stat().st_size == 3 * MiB


def test_a_gigabyte_of_output_costs_the_host_about_the_cap() -> None:
    # In a process of its own, to read its peak RSS (VmHWM: getrusage's
    # ru_maxrss starts from the parent's at fork). On the memfd copy-back of
    # before, 1 GiB of output cost ~3 GiB.
    code = (
        "import sys\n"
        "from wasmhost import Host, OutputLimitExceeded\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(status.split('VmHWM:')[1].split()[0])\n"
        "host = Host(cache_dir=False)\n"
        "host.run(sys.argv[1], ['flood', '1'])\n"
        "before = peak()\n"
        "try:\n"
        "    host.run(sys.argv[1], ['flood', '1024'])\n"
        "except OutputLimitExceeded as exc:\n"
        "    assert len(exc.stdout) == 16 << 20\n"
        "print((peak() - before) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(FSPROBE)], capture_output=True, text=True, check=True
    )
    grown_mib = int(done.stdout)
    assert grown_mib < 64, f"peak RSS grew by {grown_mib} MiB for a 16 MiB cap"


@pytest.mark.parametrize("value", [0, -1, True, 1.5, 1 << 41], ids=repr)
def test_bad_output_caps_are_config_errors(host: Host, value: object) -> None:
    with pytest.raises(ConfigError, match="max_output"):
        host.run(HELLO, max_output=value)  # type: ignore[arg-type]


def test_stream_holds_back_a_guest_that_writes_faster_than_it_is_read(host: Host) -> None:
    run = host.stream(FSPROBE, ["flood", "4096"])
    chunks = iter(run)
    first = next(chunks)
    assert first.stream == "stdout"
    time.sleep(0.5)  # the guest writes on while nobody reads
    assert len(run._chunks) <= run.BUFFERED
    closer = threading.Thread(target=run.close)
    closer.start()
    closer.join(60)
    assert not closer.is_alive()
    assert run.result is None  # stopped, not run to its end


# -- sleeping guests and timeouts ---------------------------------------------


def test_a_sleeping_guest_is_stopped_at_its_timeout(host: Host) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutExceeded, match=r"0\.3 s timeout"):
        host.run(FSPROBE, ["sleep", "600000"], timeout=0.3)
    # Not a speed claim (see nox -s bench): the guest asked for ten minutes.
    assert time.monotonic() - started < 60


def test_a_guest_sleeping_within_its_budget_sleeps_the_whole_time(host: Host) -> None:
    started = time.monotonic()
    assert host.run(FSPROBE, ["sleep", "300"], timeout=30).stdout == b"slept\n"
    assert time.monotonic() - started >= 0.3


def test_cancel_wakes_a_sleeping_guest(host: Host) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(Interrupted):
        host.run(FSPROBE, ["sleep", "600000"], cancel=cancel)


def test_cancelling_the_task_wakes_a_sleeping_guest(host: Host) -> None:
    async def main() -> None:
        task = asyncio.create_task(host.run_async(FSPROBE, ["sleep", "600000"]))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)

    asyncio.run(main())


def test_leaving_a_stream_stops_a_sleeping_guest(host: Host) -> None:
    run = host.stream(HELLO, ["--forever"])
    assert next(iter(run)) == OutputChunk(stream="stdout", data=b"Hello, World!\n")
    closer = threading.Thread(target=run.close)
    closer.start()
    closer.join(60)
    assert not closer.is_alive()
    assert run.result is None


def test_sleeping_guests_on_one_host_do_not_disturb_each_other(host: Host) -> None:
    outcomes: dict[int, object] = {}

    def sleeper(i: int) -> None:
        try:
            outcomes[i] = host.run(FSPROBE, ["sleep", "200"], timeout=30).stdout
        except TimeoutExceeded as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=sleeper, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    with pytest.raises(TimeoutExceeded):
        host.run(FSPROBE, ["sleep", "600000"], timeout=0.1)
    for t in threads:
        t.join()
    assert outcomes == {i: b"slept\n" for i in range(4)}


@pytest.mark.parametrize(
    ("subscriptions", "count", "expected"),
    [
        # the earlier of two relative clocks fires: one event, its userdata
        (clock(0, 7, 10_000_000) + clock(48, 9, 600_000_000_000), 2, 47),
        # a realtime clock at an absolute time in the past fires at once
        (clock(0, 5, 1, clock_id=0, flags=1), 1, 45),
        # an unknown clock id is EINVAL (28), as wasmtime answers
        (clock(0, 5, 1, clock_id=9), 1, 28),
        # no subscriptions: EINVAL from wasmtime's own implementation
        ("", 0, 28),
    ],
    ids=["two-clocks", "realtime-abstime", "bad-clock", "none"],
)
def test_poll_oneoff_answers_as_wasi_does(
    host: Host, wat: Callable[[str], Path], subscriptions: str, count: int, expected: int
) -> None:
    module = wat(poller(subscriptions, count))
    assert host.run(module, timeout=30).exit_code == expected
    if count:  # the same answer from wasmtime's own poll_oneoff, without a timeout
        assert host.run(module).exit_code == expected


def test_polling_a_descriptor_is_left_to_wasmtime(host: Host, wat: Callable[[str], Path]) -> None:
    fd_read = """
      (i64.store (i32.const 48) (i64.const 3))
      (i32.store8 (i32.const 56) (i32.const 1))
      (i32.store (i32.const 64) (i32.const 0))"""
    # stdin has data: the fd event comes at once, long before the 600 s clock
    module = wat(poller(clock(0, 7, 600_000_000_000) + fd_read, 2))
    assert host.run(module, stdin=b"ready", timeout=30).exit_code == 43


def test_many_descriptor_polls_in_one_run(host: Host, wat: Callable[[str], Path]) -> None:
    # Each is answered by wasmtime through one helper instance per run: a
    # store holds at most 10,000 instances.
    module = wat(f"""
    (module
      {POLL}
      (memory (export "memory") 1)
      (func (export "_start") (local $i i32)
        (i64.store (i32.const 0) (i64.const 1))
        (i32.store8 (i32.const 8) (i32.const 2))
        (i32.store (i32.const 16) (i32.const 1))
        (loop $again
          (drop (call $poll (i32.const 0) (i32.const 4096) (i32.const 1) (i32.const 8192)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 20000))))))
    """)
    assert host.run(module, timeout=60).exit_code == 0


# -- sleeps until a deadline on the guest's monotonic clock (issue 21, D2) ----

NOW = (
    '(import "wasi_snapshot_preview1" "clock_time_get" '
    "(func $now (param i32 i64 i32) (result i32)))"
)


def monotonic_deadline(at: int, userdata: int, ns_from_now: int) -> str:
    """WAT that writes a MONOTONIC, ABSTIME clock subscription at ``at`` whose
    deadline is ``ns_from_now`` after the guest's monotonic clock reads now, as
    wasi-libc's ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` makes it."""
    return f"""
      (drop (call $now (i32.const 1) (i64.const 1) (i32.const 12000)))
      {clock(at, userdata, 0, clock_id=1, flags=1)}
      (i64.store (i32.const {at + 24})
        (i64.add (i64.load (i32.const 12000)) (i64.const {ns_from_now})))"""


def deadline_sleeper(seconds: float) -> str:
    return poller(monotonic_deadline(0, 7, int(seconds * 1e9)), 1).replace(
        "(module", f"(module\n      {NOW}", 1
    )


def _stop_by_timeout(host: Host, module: Path) -> None:
    with pytest.raises(TimeoutExceeded):
        host.run(module, timeout=0.5)


def _stop_by_cancel(host: Host, module: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(Interrupted):
        host.run(module, cancel=cancel)


def _stop_by_cancelling_the_task(host: Host, module: Path) -> None:
    async def main() -> None:
        task = asyncio.create_task(host.run_async(module))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)

    asyncio.run(main())


def _stop_in_threads(host: Host, module: Path) -> None:
    # As serve runs guests: several at once on one host, each with a timeout.
    in_threads(lambda _: _stop_by_timeout(host, module), 6)


@pytest.mark.parametrize(
    "stop",
    [_stop_by_timeout, _stop_by_cancel, _stop_by_cancelling_the_task, _stop_in_threads],
    ids=["timeout", "cancel", "task-cancelled", "threads"],
)
def test_a_monotonic_deadline_sleep_is_stopped(
    host: Host, wat: Callable[[str], Path], stop: Callable[[Host, Path], None]
) -> None:
    module = wat(deadline_sleeper(100))
    started = time.monotonic()
    stop(host, module)
    # The guest asked for 100 s; stopped, it returns long before.
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("timeout", [30, None], ids=["guarded", "unguarded"])
def test_a_short_monotonic_deadline_sleep_sleeps_until_its_deadline(
    host: Host, wat: Callable[[str], Path], timeout: float | None
) -> None:
    module = wat(deadline_sleeper(0.2))
    started = time.monotonic()
    assert host.run(module, timeout=timeout).exit_code == 47  # one event, userdata 7
    assert time.monotonic() - started >= 0.2


def test_a_monotonic_deadline_in_the_past_fires_at_once(
    host: Host, wat: Callable[[str], Path]
) -> None:
    # The guest's monotonic clock starts near 0 with its run: 1 ns is past.
    module = wat(poller(clock(0, 7, 1, clock_id=1, flags=1), 1))
    assert host.run(module, timeout=30).exit_code == 47


def test_a_monotonic_deadline_polled_with_a_descriptor(
    host: Host, wat: Callable[[str], Path]
) -> None:
    # stdout is always ready for writing: the fd event comes before the deadline
    fd_write = """
      (i64.store (i32.const 48) (i64.const 3))
      (i32.store8 (i32.const 56) (i32.const 2))
      (i32.store (i32.const 64) (i32.const 1))"""
    source = poller(monotonic_deadline(0, 7, 100 * 10**9) + fd_write, 2)
    module = wat(source.replace("(module", f"(module\n      {NOW}", 1))
    started = time.monotonic()
    assert host.run(module, timeout=30).exit_code == 43
    assert host.run(module).exit_code == 43
    assert time.monotonic() - started < 30


@pytest.mark.server
def test_serve_stops_monotonic_deadline_sleepers(wat: Callable[[str], Path]) -> None:
    import httpx
    from test_serve import Server

    # More sleepers than serve has guest threads: each is stopped at its timeout.
    s = Server("--timeout", "1", "--threads", "2", "-q", wat(deadline_sleeper(100)))
    try:

        async def main() -> list[int]:
            async with httpx.AsyncClient(base_url=s.url, timeout=60) as client:
                answers = await asyncio.gather(*(client.get("/") for _ in range(6)))
                return [answer.status_code for answer in answers]

        started = time.monotonic()
        statuses = asyncio.run(main())
        assert all(status >= 500 for status in statuses), statuses
        assert time.monotonic() - started < 30
    finally:
        s.stop()


# -- descriptors (issue 21, D4) -----------------------------------------------

OPEN = (
    '(import "wasi_snapshot_preview1" "path_open" '
    "(func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"
)
CLOSE = '(import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))'


def opener(times: int, close: bool = False, then_write: int = 0) -> str:
    """A guest that opens "f.txt" in its preopened directory ``times`` times (closing
    each if ``close``) until an open fails, then writes ``done\\n``, how many it
    opened (4 bytes, little-endian) and ``then_write`` bytes of "x" (64 KiB at a
    time) to stdout, and
    exits with the failed open's errno (0 if none failed)."""
    closing = "(drop (call $close (i32.load (i32.const 300))))" if close else ""
    return f"""
    (module
      {OPEN}
      {CLOSE}
      {WASI_WRITE}
      {WASI_EXIT}
      (memory (export "memory") 2)
      (data (i32.const 100) "f.txt")
      (data (i32.const 200) "done\\n")
      (func (export "_start") (local $i i32) (local $errno i32)
        (block $failed
          (loop $again
            (local.set $errno
              (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 5)
                (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))
            (br_if $failed (local.get $errno))
            {closing}
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $again (i32.lt_u (local.get $i) (i32.const {times})))))
        (i32.store (i32.const 205) (local.get $i))
        (i32.store (i32.const 16) (i32.const 200))
        (i32.store (i32.const 20) (i32.const 9))
        (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 8)))
        (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
        (i32.store (i32.const 16) (i32.const 65536))
        (i32.store (i32.const 20) (i32.const 65536))
        (local.set $i (i32.const 0))
        (block $written
          (loop $more
            (br_if $written (i32.ge_u (local.get $i) (i32.const {then_write // 65536})))
            (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 8)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $more)))
        (call $exit (local.get $errno))))
    """


EMFILE, ENFILE = 33, 41


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("a file\n")
    return tmp_path / "data"


@pytest.mark.parametrize(
    ("options", "opened"),
    [({}, 256), ({"max_files": 10}, 10), ({"max_files": 10, "timeout": 30}, 10)],
    ids=["default", "max_files", "guarded-engine"],
)
@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_a_guest_opening_files_in_a_loop_gets_emfile_at_its_cap(
    host: Host,
    wat: Callable[[str], Path],
    folder: Path,
    options: dict[str, Any],
    opened: int,
    read_only: bool,
) -> None:
    dirs = {"/d": Dir(folder, read_only=read_only)}
    result = host.run(wat(opener(10_000)), dirs=dirs, **options)
    assert result.exit_code == EMFILE
    assert result.stdout == b"done\n" + opened.to_bytes(4, "little")
    # The host process has its descriptors: the run's are closed with it.
    os.close(os.open(folder / "f.txt", os.O_RDONLY))


def test_closed_descriptors_do_not_count(
    host: Host, wat: Callable[[str], Path], folder: Path
) -> None:
    result = host.run(wat(opener(10_000, close=True)), dirs={"/d": folder}, max_files=4)
    assert result.exit_code == 0
    assert result.stdout == b"done\n" + (10_000).to_bytes(4, "little")


def test_all_runs_together_stop_at_half_the_process_limit(
    host: Host, wat: Callable[[str], Path], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server's guests, each under its cap, could still take every descriptor
    # of the process: past half its limit, opening a file fails with ENFILE.
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (300, limit[1]))
    module = wat(opener(10_000))
    for _ in range(2):  # what a run held is given back when it ends
        result = host.run(module, dirs={"/d": folder})
        assert result.exit_code == ENFILE
        assert result.stdout == b"done\n" + (150).to_bytes(4, "little")


def test_a_renumbered_descriptor_counts_once(
    host: Host, wat: Callable[[str], Path], folder: Path
) -> None:
    # Each new file is moved onto the first one's number (which closes it).
    module = wat(f"""
    (module
      {OPEN}
      (import "wasi_snapshot_preview1" "fd_renumber"
        (func $renumber (param i32 i32) (result i32)))
      {WASI_EXIT}
      (memory (export "memory") 1)
      (data (i32.const 100) "f.txt")
      (func $open_one (result i32)
        (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))
      (func (export "_start") (local $i i32) (local $kept i32) (local $errno i32)
        (if (local.tee $errno (call $open_one)) (then (call $exit (local.get $errno))))
        (local.set $kept (i32.load (i32.const 300)))
        (loop $again
          (if (local.tee $errno (call $open_one)) (then (call $exit (local.get $errno))))
          (if (local.tee $errno (call $renumber (i32.load (i32.const 300)) (local.get $kept)))
            (then (call $exit (i32.add (i32.const 100) (local.get $errno)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))))
    """)
    assert host.run(module, dirs={"/d": folder}, max_files=2).exit_code == 0


def test_max_files_none_lifts_the_cap(host: Host, wat: Callable[[str], Path], folder: Path) -> None:
    result = host.run(wat(opener(1_000)), dirs={"/d": folder}, max_files=None)
    assert result.exit_code == 0


@pytest.mark.parametrize("value", [0, -1, True, 1.5, 1 << 21], ids=repr)
def test_bad_file_caps_are_config_errors(host: Host, value: object) -> None:
    with pytest.raises(ConfigError, match="max_files"):
        host.run(HELLO, max_files=value)  # type: ignore[arg-type]


def test_captured_output_survives_a_host_out_of_descriptors(
    wat: Callable[[str], Path], folder: Path
) -> None:
    # In a process of its own with few descriptors and no cap: the guest takes
    # every descriptor it can, then writes more than a pipe holds, which the
    # host drains in a thread. A host out of descriptors cannot import a module
    # (it opens its file): the drain imports nothing while a guest runs.
    module = wat(opener(10_000, then_write=4 * MiB))
    script = f"""
import os, resource, sys
from wasmhost import Host
host = Host(cache_dir=False)
host.load({str(module)!r})

class NoImports:
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"no descriptor left to import {{name}}")

resource.setrlimit(resource.RLIMIT_NOFILE, (200, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
sys.meta_path.insert(0, NoImports())
result = host.run({str(module)!r}, dirs={{"/d": {str(folder)!r}}}, max_files=None)
sys.meta_path.pop(0)
out = result.stdout
assert out[:5] == b"done\\n" and out[9:] == b"x" * {4 * MiB}, (len(out), out[:20])
os.close(os.open({str(folder / "f.txt")!r}, os.O_RDONLY))
print("exit", result.exit_code, "opened", int.from_bytes(out[5:9], "little"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.startswith(b"exit ")


# -- symbolic links (issue 21, D24) -------------------------------------------

SYMLINKER = f"""
(module
  (import "wasi_snapshot_preview1" "path_symlink"
    (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  {WASI_EXIT}
  (memory (export "memory") 1)
  (data (i32.const 100) "../../../etc/passwd")
  (data (i32.const 200) "link")
  (func (export "_start")
    (call $exit
      (call $symlink (i32.const 100) (i32.const 19) (i32.const 3) (i32.const 200) (i32.const 4)))))
"""
EPERM = 63


@pytest.mark.parametrize("timeout", [None, 30], ids=["plain", "guarded"])
def test_symlinks_false_refuses_a_link_out_of_the_directory(
    host: Host, wat: Callable[[str], Path], folder: Path, timeout: float | None
) -> None:
    module = wat(SYMLINKER)
    assert host.run(module, dirs={"/d": folder}, symlinks=False, timeout=timeout).exit_code == EPERM
    assert not (folder / "link").is_symlink()
    # Allowed by default, as WASI allows it: wasmtime never follows it out.
    assert host.run(module, dirs={"/d": folder}, timeout=timeout).exit_code == 0
    assert os.readlink(folder / "link") == "../../../etc/passwd"


def test_a_component_run_refuses_symlinks_false(host: Host) -> None:
    # wasmhost cannot stand in front of WASI preview 2: it says so, not ignores it.
    with pytest.raises(ConfigError, match="component: symlinks=False"):
        host.run(ROOT / "artifacts" / "hello-world.component.wasm", symlinks=False)


def test_symlinks_must_be_a_bool(host: Host) -> None:
    with pytest.raises(ConfigError, match="symlinks"):
        host.run(HELLO, symlinks="no")  # type: ignore[typeddict-item]


def test_cli_timeout_stops_a_sleeping_guest() -> None:
    done = wasmhost_cli("run", "--timeout", "0.3", FSPROBE, "sleep", "600000", cwd=ROOT)
    assert done.returncode == 134
    assert done.stderr.decode().strip() == (
        f"Error: {FSPROBE} ran past its 0.3 s timeout and was stopped."
    )


def test_cli_timeout_ends_a_guest_blocked_reading_a_pipe() -> None:
    # A read of a pipe that nobody writes is out of the host's reach: the
    # command ends the process itself.
    writer = subprocess.Popen(["sleep", "600"], stdout=subprocess.PIPE)
    try:
        done = wasmhost_cli("run", "--timeout", "0.3", FSPROBE, "stdin", stdin=writer.stdout)
    finally:
        writer.kill()
        writer.wait()
        assert writer.stdout is not None
        writer.stdout.close()
    assert done.returncode == 134
    assert "ran past its 0.3 s timeout" in done.stderr.decode()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "9999999999"], ids=str)
def test_cli_refuses_bad_timeouts(value: str) -> None:
    done = wasmhost_in_process("run", "--timeout", value, HELLO)
    assert done.returncode in (1, 2)
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error:")
    assert "Traceback" not in done.stderr.decode()


# -- memory caps: a refused growth is named whatever the guest does next ---------


def grower(pages: int, then: str) -> str:
    """A guest with one page that asks for ``pages`` more; ``then`` runs if refused."""
    return f"""
    (module
      {WASI_EXIT}
      (memory (export "memory") 1)
      (func (export "_start")
        (if (i32.eq (memory.grow (i32.const {pages})) (i32.const -1)) (then {then}))))
    """


@pytest.mark.parametrize(
    "then", ["unreachable", "(call $exit (i32.const 1))"], ids=["trap", "exit-1"]
)
def test_a_refused_growth_is_the_memory_limit(
    host: Host, wat: Callable[[str], Path], then: str
) -> None:
    with pytest.raises(MemoryLimitExceeded, match="memory limit of 16 MiB"):
        host.run(wat(grower(1000, then)), max_memory=16 << 20)


def test_a_guest_that_copes_with_a_refused_growth_ends_normally(
    host: Host, wat: Callable[[str], Path]
) -> None:
    assert host.run(wat(grower(1000, "nop")), max_memory=16 << 20).exit_code == 0


def test_growing_up_to_the_cap_is_allowed(host: Host, wat: Callable[[str], Path]) -> None:
    # 1 page + 31 = 2 MiB exactly; one more page is refused.
    assert host.run(wat(grower(31, "unreachable")), max_memory=2 << 20).ok
    with pytest.raises(MemoryLimitExceeded):
        host.run(wat(grower(32, "unreachable")), max_memory=2 << 20)


def test_memory_caps_of_concurrent_runs_stay_apart(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat(grower(100, "unreachable"))  # 101 pages: about 6.3 MiB
    outcomes: dict[int, str] = {}

    def run(i: int) -> None:
        cap = (4 << 20) if i % 2 else (8 << 20)
        try:
            host.run(module, max_memory=cap)
            outcomes[i] = "ok"
        except MemoryLimitExceeded:
            outcomes[i] = "limit"

    in_threads(run, 8)
    assert outcomes == {i: "limit" if i % 2 else "ok" for i in range(8)}


def test_watched_memories_are_freed_with_their_run(host: Host) -> None:
    from wasmhost._host.engines import memory as _memory

    for _ in range(20):
        host.run(FSPROBE, ["alloc", "8"], max_memory=32 << 20)
    assert _memory._memories == {}


# A guest that traps if its memory holds anything at three places (its first
# page, and two it grows into), then writes there: a run of it after another
# sees what that one left if a memory is reused unemptied.
SNOOPER = """
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (memory.grow (i32.const 40)))
    (if (i32.or (i32.or (i32.load (i32.const 1000)) (i32.load (i32.const 65544)))
                (i32.load (i32.const 2621444)))
      (then unreachable))
    (i32.store (i32.const 1000) (i32.const 0xdeadbeef))
    (i32.store (i32.const 65544) (i32.const 0xdeadbeef))
    (i32.store (i32.const 2621444) (i32.const 0xdeadbeef))))
"""


def test_a_memory_used_again_holds_nothing_of_the_run_before(
    host: Host, wat: Callable[[str], Path]
) -> None:
    """Capped runs take the reservations earlier runs gave back (memory.SPARE):
    emptied first, from one thread or many at once."""
    from wasmhost._host.engines import memory as _memory

    module = wat(SNOOPER)
    for _ in range(10):
        assert host.run(module, max_memory=8 << 20).ok
    assert any(_memory._spare.values()), "no reservation was kept to be used again"
    in_threads(lambda _: [host.run(module, max_memory=8 << 20) for _ in range(10)], 8)
    assert _memory._memories == {}
    assert sum(map(len, _memory._spare.values())) <= _memory.SPARE
    # Past its one page a guest traps, where the run before had 41 pages.
    reader = wat(
        '(module (memory (export "memory") 1)'
        ' (func (export "_start") (drop (i32.load (i32.const 2621444)))))'
    )
    with pytest.raises(Trap) as caught:
        host.run(reader, max_memory=8 << 20)
    assert caught.value.trap_code == "memory_out_of_bounds"


def test_a_forked_child_runs_on_the_reservations_it_inherited(
    host: Host, wat: Callable[[str], Path]
) -> None:
    from wasmhost._host.engines import memory as _memory

    module = wat(SNOOPER)
    for _ in range(3):
        host.run(module, max_memory=8 << 20)
    assert any(_memory._spare.values())
    pid = os.fork()
    if pid == 0:  # the child: its copies of the spares, emptied as the parent left them
        try:
            ok = all(host.run(module, max_memory=8 << 20).ok for _ in range(3))
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert host.run(module, max_memory=8 << 20).ok


def test_spare_reservations_make_way_under_an_address_space_limit() -> None:
    """Under a ulimit -v, the reservations kept for later runs are given up when a
    new one does not fit (in a process of its own: the limit is process-wide)."""
    script = """
import resource
from wasmhost._host.engines import memory
GiB = 1 << 30
for _ in range(memory.SPARE):
    memory._spare.setdefault(2 * GiB, []).append(memory._reserve(2 * GiB))
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 3 * GiB, resource.RLIM_INFINITY))
assert memory._reserve(5 * GiB) is not None, "no room was made"
assert not any(memory._spare.values())
print("made way")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.stdout == b"made way\n", done.stderr.decode()


def test_cli_names_the_memory_limit(wat: Callable[[str], Path]) -> None:
    done = wasmhost_cli("run", "--max-memory", "16MiB", wat(grower(1000, "unreachable")))
    assert done.returncode == 134
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "memory limit of 16 MiB" in lines[0]


@pytest.mark.parametrize("value", [1 << 47, 2**64 - 1, True], ids=repr)
def test_absurd_memory_caps_are_config_errors(host: Host, value: object) -> None:
    with pytest.raises(ConfigError, match="max_memory"):
        host.run(HELLO, max_memory=value)  # type: ignore[arg-type]


def test_cli_caps_open_files_and_refuses_symlinks(wat: Callable[[str], Path], folder: Path) -> None:
    opens = wat(opener(10_000))
    done = wasmhost_cli("run", "--max-files", "5", "--dir", f"{folder}::/d", opens)
    assert done.returncode == EMFILE
    assert done.stdout == b"done\n" + (5).to_bytes(4, "little")
    links = wat(SYMLINKER)
    done = wasmhost_cli("run", "--no-symlinks", "--dir", f"{folder}::/d", links)
    assert done.returncode == EPERM
    assert not (folder / "link").is_symlink()
    done = wasmhost_cli("run", "--max-files", "0", "--dir", f"{folder}::/d", opens)
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines()[-1] == (
        "Error: Invalid value for '--max-files': it must be at least 1. (see 'wasmhost run --help')"
    )


def test_opens_that_trap_give_their_slot_back(
    host: Host, wat: Callable[[str], Path], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A path_open that wasmtime refuses by raising (a path pointer past the
    # guest's memory) took a slot of the process-wide count and kept it: 150
    # such runs left every later capped run in the process failing with ENFILE.
    import resource

    from wasmhost import Trap

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (300, limit[1]))
    hostile = wat(f"""
    (module
      {OPEN}
      (memory (export "memory") 1)
      (func (export "_start")
        (drop (call $open (i32.const 3) (i32.const 0) (i32.const 0xfffffff0) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))))
    """)
    for _ in range(200):
        with pytest.raises(Trap):
            host.run(hostile, dirs={"/d": folder})
    result = host.run(wat(opener(10)), dirs={"/d": folder})
    assert (result.exit_code, result.stdout) == (0, b"done\n" + (10).to_bytes(4, "little"))


@pytest.mark.parametrize(
    ("clock_id", "flags"),
    [(1, 0), (0, 0), (1, 1), (0, 1)],
    ids=["mono", "real", "mono-abs", "real-abs"],
)
def test_the_longest_sleep_waits_for_cancel(
    host: Host, wat: Callable[[str], Path], clock_id: int, flags: int
) -> None:
    # 2**64-1 ns is Rust's Duration::MAX; a wait that long overflowed Python's
    # timeout and the guest trapped at once instead of sleeping until cancelled.
    module = wat(poller(clock(0, 1, -1, clock_id=clock_id, flags=flags), 1))
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    try:
        with pytest.raises(Interrupted):
            host.run(module, cancel=cancel)
    finally:
        timer.cancel()


# -- the table of hostile guests (issue 21): each asserts that its limit holds ---
#
# Every run here is bounded: it runs in a thread given BOUND seconds, so a guest
# that escapes its limit fails the test instead of hanging it (its thread is
# left asleep and its Host unclosed); memory-hungry guests get small caps.

BOUND = 5.0  # seconds; each guest below would take ten minutes or more if unchecked
FAR = 600_000_000_000  # ns: ten minutes
_escaped_hosts: list[Host] = []  # hosts with a guest still running: never closed

CLOCK_TIME_GET = (
    '(import "wasi_snapshot_preview1" "clock_time_get" '
    "(func $clock_time_get (param i32 i64 i32) (result i32)))"
)


def bounded(host: Host, call: Callable[[], object]) -> object:
    """What ``call()`` returns or raises, or a test failure if it is still running
    after BOUND seconds."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(BOUND)
    if worker.is_alive():
        _escaped_hosts.append(host)
        pytest.fail(f"the guest still runs after {BOUND} s")
    return outcome[0]


def bounded_run(host: Host, module: Path, **options: object) -> object:
    return bounded(host, lambda: host.run(module, **options))  # type: ignore[arg-type]


def sleeper(clock_id: int, absolute: bool) -> str:
    """A guest that sleeps ten minutes on ``clock_id`` in one poll_oneoff: relative,
    or until an absolute deadline read from that clock (as wasi-libc's
    clock_nanosleep(..., TIMER_ABSTIME) asks); exits with poll's errno."""
    deadline = f"(i64.const {FAR})"
    if absolute:
        deadline = f"(i64.add (i64.load (i32.const 2048)) {deadline})"
    return f"""
    (module
      {POLL}
      {CLOCK_TIME_GET}
      {WASI_EXIT}
      (memory (export "memory") 1)
      (func (export "_start")
        (drop (call $clock_time_get (i32.const {clock_id}) (i64.const 1) (i32.const 2048)))
        (i64.store (i32.const 0) (i64.const 1))
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const {clock_id}))
        (i64.store (i32.const 24) {deadline})
        (i32.store16 (i32.const 40) (i32.const {int(absolute)}))
        (call $exit
          (call $poll (i32.const 0) (i32.const 4096) (i32.const 1) (i32.const 8192)))))
    """


CLOCKS = {"realtime": 0, "monotonic": 1, "process-cputime": 2, "thread-cputime": 3}


def sleep_cases() -> list[object]:
    cases = []
    for clock_name, clock_id in CLOCKS.items():
        for flag in ("relative", "abstime"):
            for stop in ("timeout", "cancel", "task-cancel"):
                if stop == "task-cancel" and clock_name != "monotonic":
                    continue
                cases.append(
                    pytest.param(
                        clock_id, flag == "abstime", stop, id=f"{clock_name}-{flag}-{stop}"
                    )
                )
    return cases


@pytest.mark.parametrize(("clock_id", "absolute", "stop"), sleep_cases())
def test_a_sleep_on_any_clock_ends_at_the_limit(
    wat: Callable[[str], Path], clock_id: int, absolute: bool, stop: str
) -> None:
    """The guest is stopped by the limit, or its poll fails at once (a clock WASI
    does not sleep on): it never sleeps its ten minutes."""
    host = Host()
    module = wat(sleeper(clock_id, absolute))
    if stop == "timeout":
        outcome = bounded_run(host, module, timeout=0.2)
        allowed: tuple[type, ...] = (TimeoutExceeded,)
    elif stop == "cancel":
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        outcome = bounded_run(host, module, cancel=cancel)
        allowed = (Interrupted,)
    else:

        async def main() -> object:
            task = asyncio.create_task(host.run_async(module))
            await asyncio.sleep(0.2)
            task.cancel()
            return await task

        outcome = bounded(host, lambda: asyncio.run(main()))
        allowed = (asyncio.CancelledError,)
    if isinstance(outcome, RunResult):
        # Not slept: poll_oneoff refused this clock (an errno, not 0).
        assert outcome.exit_code != 0
    else:
        assert isinstance(outcome, allowed), outcome
    host.close()


def flooder(fd: int, chunk: int, iovecs: int) -> str:
    """A guest that writes, forever and ignoring failures, ``iovecs`` iovecs of
    ``chunk`` bytes each (all the same bytes) per fd_write to ``fd``."""
    return f"""
    (module
      {WASI_WRITE}
      (memory (export "memory") 2)
      (func (export "_start") (local $i i32)
        (loop $iovecs
          (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 65536))
          (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4))
                     (i32.const {chunk}))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $iovecs (i32.lt_u (local.get $i) (i32.const {iovecs}))))
        (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
        (loop $again
          (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const {iovecs})
                                (i32.const 60000)))
          (br $again))))
    """


@pytest.mark.parametrize(
    ("fd", "chunk", "iovecs"),
    [(1, 1, 1), (2, 1, 1), (1, 65536, 4096), (2, 65536, 4096), (1, 0, 4096)],
    ids=[
        "stdout-bytes",
        "stderr-bytes",
        "stdout-256MiB-writes",
        "stderr-256MiB-writes",
        "stdout-empty-iovecs",
    ],
)
def test_an_output_flood_stops_at_max_output(
    wat: Callable[[str], Path], fd: int, chunk: int, iovecs: int
) -> None:
    cap = 64 << 10
    host = Host()
    # Nothing written: the timeout ends it, and a short one shows that as well as a long.
    timeout = 0.5 if chunk == 0 else 3
    outcome = bounded_run(host, wat(flooder(fd, chunk, iovecs)), max_output=cap, timeout=timeout)
    if chunk == 0:  # nothing to write: the timeout is the limit that holds
        assert isinstance(outcome, TimeoutExceeded), outcome
    else:
        assert isinstance(outcome, OutputLimitExceeded), outcome
        kept = outcome.stdout if fd == 1 else outcome.stderr
        assert kept == b"x" * cap
    host.close()


def grow_and_fill(count: int, elements: int, kind: str) -> str:
    """A guest with ``count`` empty tables or memories that grows each by ``elements``
    (table elements or pages) and fills it; a refused growth traps."""
    if kind == "table":
        declared = "".join(f"(table ${i} 0 funcref)" for i in range(count))
        grow = "".join(
            f"(br_if $refused (i32.eq (table.grow ${i} (ref.null func) (i32.const {elements}))"
            f" (i32.const -1)))"
            f"(table.fill ${i} (i32.const 0) (ref.func $f) (i32.const {elements}))"
            for i in range(count)
        )
    else:
        declared = "".join(f"(memory ${i} 0)" for i in range(count))
        grow = "".join(
            f"(br_if $refused (i32.eq (memory.grow ${i} (i32.const {elements})) (i32.const -1)))"
            f"(memory.fill ${i} (i32.const 0) (i32.const 1) (i32.const {elements * 65536}))"
            for i in range(count)
        )
    return f"""
    (module
      {declared}
      (func $f)
      (elem declare func $f)
      (func (export "_start")
        (block $refused {grow} (return))
        unreachable))
    """


@pytest.mark.parametrize(
    ("count", "elements", "kind"),
    [
        pytest.param(1, 4_000_000, "table", id="one-table-of-4M"),
        pytest.param(20, 400_000, "table", id="20-tables-of-400k"),
        pytest.param(1, 400, "memory", id="one-memory-of-25MiB"),
        pytest.param(4, 100, "memory", id="4-memories-of-6MiB"),
    ],
)
def test_tables_and_memories_stay_under_max_memory(
    wat: Callable[[str], Path], count: int, elements: int, kind: str
) -> None:
    host = Host()
    outcome = bounded_run(host, wat(grow_and_fill(count, elements, kind)), max_memory=16 << 20)
    if kind == "table" and isinstance(outcome, Trap):
        # wasmtime tells the host nothing of a refused table.grow (see the README):
        # the guest reached `unreachable` because its growth was refused.
        assert "unreachable" in str(outcome), outcome
    else:
        assert isinstance(outcome, MemoryLimitExceeded), outcome
    host.close()


@pytest.mark.parametrize(
    "body",
    [
        '(func $f (call $f)) (func (export "_start") (call $f))',
        "(func $f (param i64 i64 i64 i64) (local v128 v128 v128 v128)"
        " (call $f (local.get 0) (local.get 1) (local.get 2) (local.get 3)))"
        ' (func (export "_start") (call $f (i64.const 1) (i64.const 2) (i64.const 3)'
        " (i64.const 4)))",
        "(type $t (func)) (table 1 funcref) (elem (i32.const 0) $f)"
        ' (func $f (call_indirect (type $t) (i32.const 0))) (func (export "_start") (call $f))',
    ],
    ids=["direct", "big-frames", "indirect"],
)
def test_deep_recursion_is_a_trap(wat: Callable[[str], Path], body: str) -> None:
    host = Host()
    outcome = bounded_run(host, wat(f"(module {body})"), timeout=30)
    assert isinstance(outcome, Trap), outcome
    assert outcome.trap_code == "stack_overflow"
    assert host.run(HELLO).stdout == b"Hello, World!\n"
    host.close()


@pytest.mark.parametrize("signal_number", [0, 2, 6, 9, 15, 19, 255])
def test_proc_raise_never_reaches_the_host(wat: Callable[[str], Path], signal_number: int) -> None:
    # WASI preview 1's only call near fork or kill: the guest may end, the host lives on.
    host = Host()
    raiser = f"""
    (module
      (import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))
      {WASI_EXIT}
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (call $raise (i32.const {signal_number})))))
    """
    outcome = bounded_run(host, wat(raiser), timeout=30)
    assert isinstance(outcome, RunResult | Trap), outcome
    assert host.run(HELLO).stdout == b"Hello, World!\n"
    host.close()


# A guest that opens the file "f" of its preopened directory until it is refused
# (at most 100,000 times), then writes how many opens succeeded (4 bytes, little-endian).
OPENER = f"""
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  {WASI_WRITE}
  (memory (export "memory") 1)
  (data (i32.const 100) "f")
  (func (export "_start") (local $n i32)
    (block $refused
      (loop $again
        (br_if $refused (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1)
                                    (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0)
                                    (i32.const 200)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $n) (i32.const 100000)))))
    (i32.store (i32.const 300) (local.get $n))
    (i32.store (i32.const 0) (i32.const 300))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

# In a process of its own, whose descriptor limit is DESCRIPTORS: the guest's
# output must come back whole, its opens be refused well before the process runs
# out, and the process still open files afterwards.
DESCRIPTORS = 4096
OPEN_MANY = """
import resource, sys
from wasmhost import Host
module, folder, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
host = Host(cache_dir=False)
result = host.run(module, dirs={"/d": folder}, timeout=60)
others = [open(module, "rb") for _ in range(64)]
again = host.run(module, dirs={"/d": folder}, timeout=60)
print(result.exit_code, result.stdout.hex(), again.stdout.hex())
"""


def test_a_guest_cannot_use_up_the_host_descriptors(
    wat: Callable[[str], Path], tmp_path: Path
) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "f").write_text("x")
    module = wat(OPENER)
    done = subprocess.run(
        [sys.executable, "-c", OPEN_MANY, str(module), str(folder), str(DESCRIPTORS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    exit_code, first, second = done.stdout.split()
    opened = int.from_bytes(bytes.fromhex(first), "little")
    assert exit_code == "0"
    assert 0 < opened < DESCRIPTORS - 256  # refused by a cap, not by the process's limit
    assert first == second  # the cap is per run: the second run gets as many
