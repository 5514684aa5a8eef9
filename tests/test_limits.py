"""Timeouts, fuel, memory caps and cancellation: each reported distinctly, the host survives."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FSPROBE, HELLO, NBODY, SPIN, wasmhost_cli

from wasmhost import (
    DEVNULL,
    ConfigError,
    FuelExhausted,
    Host,
    Interrupted,
    LimitExceeded,
    LinkError,
    MemoryLimitExceeded,
    OutputChunk,
    TimeoutExceeded,
    Trap,
)


def test_timeout_stops_an_endless_loop(host: Host, wat: Callable[[str], Path]) -> None:
    with pytest.raises(TimeoutExceeded, match=r"ran past its 0\.2 s timeout") as info:
        host.run(wat(SPIN), timeout=0.2)
    assert info.value.limit == "timeout"
    assert isinstance(info.value, LimitExceeded)
    assert host.run(HELLO).stdout == b"Hello, World!\n"


def test_a_timeout_does_not_touch_other_runs(host: Host, wat: Callable[[str], Path]) -> None:
    spin = wat(SPIN)
    outcome: list[object] = []

    def long_run() -> None:
        outcome.append(host.run(NBODY, ["200000"], timeout=60).stdout)

    worker = threading.Thread(target=long_run)
    worker.start()
    for _ in range(3):
        with pytest.raises(TimeoutExceeded):
            host.run(spin, timeout=0.05)
    worker.join()
    assert outcome == [host.run(NBODY, ["200000"]).stdout]


def test_closing_the_host_ends_its_epoch_thread(wat: Callable[[str], Path]) -> None:
    def tickers() -> int:
        return sum(t.name == "wasmhost-epoch" for t in threading.enumerate())

    before = tickers()
    host = Host()
    host.run(HELLO, timeout=10)
    assert tickers() == before + 1
    host.close()
    assert tickers() == before


def test_a_run_that_ends_in_time_is_unaffected(host: Host) -> None:
    assert host.run(HELLO, timeout=30).stdout == b"Hello, World!\n"


def test_fuel_exhaustion(host: Host, wat: Callable[[str], Path]) -> None:
    with pytest.raises(FuelExhausted, match="ran out of fuel") as info:
        host.run(wat(SPIN), fuel=100_000)
    assert info.value.limit == "fuel"


def test_fuel_consumed_is_reported_and_deterministic(host: Host) -> None:
    first = host.run(NBODY, ["1000"], fuel=10**9)
    second = host.run(NBODY, ["1000"], fuel=10**9)
    assert first.fuel_consumed is not None
    assert 0 < first.fuel_consumed == second.fuel_consumed
    assert host.run(NBODY, ["1000"]).fuel_consumed is None
    with pytest.raises(FuelExhausted):
        host.run(NBODY, ["1000"], fuel=first.fuel_consumed - 1)
    assert host.run(NBODY, ["1000"], fuel=first.fuel_consumed + 1).ok


def test_memory_cap_refuses_a_rust_allocation(host: Host) -> None:
    with pytest.raises(MemoryLimitExceeded, match="memory limit of 16 MiB") as info:
        host.run(FSPROBE, ["alloc", "64"], max_memory=16 << 20)
    assert info.value.limit == "memory"
    assert b"memory allocation of" in info.value.stderr
    ok = host.run(FSPROBE, ["alloc", "8"], max_memory=32 << 20)
    assert ok.stdout.startswith(b"allocated 8 MiB")


def test_memory_cap_is_reported_even_when_stderr_is_not_captured(
    host: Host, tmp_path: Path
) -> None:
    seen: list[bytes] = []
    with pytest.raises(MemoryLimitExceeded):
        host.run(FSPROBE, ["alloc", "64"], max_memory=16 << 20, stderr=seen.append)
    assert b"memory allocation of" in b"".join(seen)
    with pytest.raises(MemoryLimitExceeded):
        host.run(FSPROBE, ["alloc", "64"], max_memory=16 << 20, stderr=DEVNULL)
    log = tmp_path / "stderr.log"
    with pytest.raises(MemoryLimitExceeded):
        host.run(FSPROBE, ["alloc", "64"], max_memory=16 << 20, stderr=log)
    assert log.read_bytes().startswith(b"memory allocation of")


def test_memory_cap_bounds_every_memory(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (memory 200) (memory 200) (func (export "_start")))')
    with pytest.raises(MemoryLimitExceeded, match="several memories"):
        host.run(module, max_memory=16 << 20)


def test_memory_cap_below_the_initial_memory(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (memory (export "memory") 32) (func (export "_start")))')
    with pytest.raises(MemoryLimitExceeded, match="at start"):
        host.run(module, max_memory=1 << 20)
    assert host.run(module, max_memory=2 << 20).ok


def test_a_trap_under_a_memory_cap_is_still_a_trap(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (memory 1) (func (export "_start") unreachable))')
    with pytest.raises(Trap) as info:
        host.run(module, max_memory=16 << 20)
    assert not isinstance(info.value, LimitExceeded)


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"timeout": -1}, {"fuel": -5}, {"max_memory": 0}, {"fuel": 1.5}],
    ids=str,
)
def test_bad_limits_are_config_errors(host: Host, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        host.run(HELLO, **options)  # type: ignore[arg-type]


def test_cancel_event_interrupts_a_run(host: Host, wat: Callable[[str], Path]) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(Interrupted):
        host.run(wat(SPIN), cancel=cancel)


def test_stream_yields_output_as_it_is_written(host: Host) -> None:
    with host.stream(HELLO, ["--forever"]) as run:
        chunks = []
        for chunk in run:
            chunks.append(chunk)
            if len(chunks) == 2:
                break
    assert chunks == [OutputChunk(stream="stdout", data=b"Hello, World!\n")] * 2
    assert run.result is None


def test_stream_of_a_run_that_ends(host: Host) -> None:
    with host.stream(FSPROBE, ["read", "/x"]) as run:
        chunks = list(run)
    assert {c.stream for c in chunks} == {"stderr"}
    assert b"".join(c.data for c in chunks).startswith(b"fsprobe: ")
    assert run.result is not None
    assert run.result.exit_code == 1


def test_stream_raises_what_stopped_the_guest(host: Host, wat: Callable[[str], Path]) -> None:
    with pytest.raises(TimeoutExceeded), host.stream(wat(SPIN), timeout=0.1) as run:
        list(run)


def test_run_async_returns_the_result(host: Host) -> None:
    async def main() -> list[bytes]:
        results = await asyncio.gather(
            *(host.run_async(FSPROBE, ["args", str(i)]) for i in range(5))
        )
        return [r.stdout for r in results]

    outputs = asyncio.run(main())
    assert outputs == [f"fsprobe.wasm\nargs\n{i}\n".encode() for i in range(5)]


def test_cancelling_the_awaiting_task_stops_the_guest(
    host: Host, wat: Callable[[str], Path]
) -> None:
    spin = wat(SPIN)
    cancel = threading.Event()

    async def main() -> None:
        task = asyncio.create_task(host.run_async(spin, cancel=cancel))
        await asyncio.sleep(0.2)
        task.cancel()
        # run_async waits for the guest to stop before it lets the cancellation
        # through; the outer bound only turns a guest that ignores it into a failure.
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)

    asyncio.run(main())
    assert cancel.is_set()


def test_async_timeout_via_wait_for(host: Host, wat: Callable[[str], Path]) -> None:
    cancel = threading.Event()

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(host.run_async(wat(SPIN), cancel=cancel), 0.2)

    asyncio.run(main())
    assert cancel.is_set()


def test_closing_the_host_keeps_timeouts_of_runs_in_flight(wat: Callable[[str], Path]) -> None:
    host = Host()
    spin = wat(SPIN)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            host.run(spin, timeout=0.5)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.1)
    host.close()
    worker.join(60)
    assert not worker.is_alive()
    assert [type(e) for e in outcome] == [TimeoutExceeded]


def test_a_deadline_during_instantiation_is_a_timeout(
    host: Host, wat: Callable[[str], Path]
) -> None:
    """A start function that never returns: stopped while instantiating, named as the
    limit (serve's inline budget meets this on a loaded machine)."""
    module = wat('(module (func $spin (loop br 0)) (start $spin) (func (export "_start")))')
    with pytest.raises(TimeoutExceeded):
        host.run(module, timeout=0.2)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(Interrupted):
        host.run(module, cancel=cancel)


def table_grower(elements: int, then: str, table: str = "(table $t 0 funcref)") -> str:
    """A guest that grows its table by ``elements`` and fills them; ``then`` runs if refused
    (before the fill, which then reaches past the table)."""
    return f"""
    (module
      {table}
      (func $f) (elem declare func $f)
      (func (export "_start")
        (if (i32.eq (table.grow $t (ref.null func) (i32.const {elements})) (i32.const -1))
          (then {then}))
        (table.fill $t (i32.const 0) (ref.func $f) (i32.const {elements}))))
    """


def test_tables_count_against_the_memory_cap(host: Host, wat: Callable[[str], Path]) -> None:
    # 16 MiB bounds 16 tables of 131,072 elements (8 bytes each): 1M elements, 8 MB, is
    # refused. Without the bound, a guest grew 30 tables of 10M elements (2.3 GB).
    with pytest.raises(MemoryLimitExceeded, match="refused a table larger than its memory limit"):
        host.run(wat(table_grower(1_000_000, "nop")), max_memory=16 << 20)
    assert host.run(wat(table_grower(131_072, "unreachable")), max_memory=16 << 20).ok
    coping = table_grower(1_000_000, "(return)")
    assert host.run(wat(coping), max_memory=16 << 20).ok
    assert host.run(wat(table_grower(1_000_000, "unreachable"))).ok  # no cap: no such bound


def test_a_table_larger_than_the_cap_at_start(host: Host, wat: Callable[[str], Path]) -> None:
    module = wat('(module (table 1000000 funcref) (func (export "_start")))')
    with pytest.raises(MemoryLimitExceeded, match="larger table at start than its memory limit"):
        host.run(module, max_memory=16 << 20)
    assert host.run(module, max_memory=128 << 20).ok


@pytest.mark.parametrize("max_memory", [None, 64 << 20], ids=["no cap", "cap"])
def test_a_run_has_at_most_16_tables(
    host: Host, wat: Callable[[str], Path], max_memory: int | None
) -> None:
    tables = " ".join("(table 1 funcref)" for _ in range(100))
    refused = LinkError if max_memory is None else MemoryLimitExceeded
    with pytest.raises(refused, match="more than 16 tables"):
        host.run(wat(f'(module {tables} (func (export "_start")))'), max_memory=max_memory)
    tables = " ".join("(table 1 funcref)" for _ in range(16))
    assert host.run(wat(f'(module {tables} (func (export "_start")))'), max_memory=max_memory).ok


def test_a_table_bug_under_a_memory_cap_is_still_a_trap(
    host: Host, wat: Callable[[str], Path]
) -> None:
    fixed = table_grower(1_000_000, "nop", table="(table $t 1 1 funcref)")
    with pytest.raises(Trap, match="out of bounds table access") as info:
        host.run(wat(fixed), max_memory=16 << 20)
    assert not isinstance(info.value, LimitExceeded)


def test_cli_names_a_refused_table(wat: Callable[[str], Path]) -> None:
    done = wasmhost_cli("run", "--max-memory", "16MiB", wat(table_grower(1_000_000, "nop")))
    assert done.returncode == 134
    [line] = done.stderr.decode().strip().splitlines()
    assert "refused a table larger than its memory limit of 16 MiB allows" in line


# -- after a fork (issue 21, D5) ----------------------------------------------


def _spin_with_timeout(path: str) -> int:
    """In a forked child, on the parent's host: 0 if the spinning guest timed out."""
    try:
        _forked_host.run(path, timeout=0.5)
    except TimeoutExceeded:
        return 0
    except BaseException:
        return 2
    return 1


_forked_host: Host


@pytest.mark.filterwarnings("ignore:This process .* fork:DeprecationWarning")
def test_timeouts_fire_in_a_forked_child(host: Host, wat: Callable[[str], Path]) -> None:
    global _forked_host
    _forked_host = host
    spin = str(wat(SPIN))
    with pytest.raises(TimeoutExceeded):  # the parent's ticker has run
        host.run(spin, timeout=0.2)
    pid = os.fork()
    if pid == 0:  # the child: reports through its exit status, never returns to pytest
        code = 3
        try:
            code = _spin_with_timeout(spin)
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child's guest was never stopped")
    assert os.waitstatus_to_exitcode(done[1]) == 0


@pytest.mark.filterwarnings("ignore:This process .* fork:DeprecationWarning")
def test_timeouts_fire_in_a_multiprocessing_fork_child(
    host: Host, wat: Callable[[str], Path]
) -> None:
    global _forked_host
    _forked_host = host
    spin = str(wat(SPIN))
    with pytest.raises(TimeoutExceeded):
        host.run(spin, timeout=0.2)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        outcome = pool.apply_async(_spin_with_timeout, (spin,))
        assert outcome.get(60) == 0


def test_closed_hosts_that_slept_guests_leave_no_descriptors(
    wat: Callable[[str], Path],
) -> None:
    # A poll_oneoff-importing module run with a timeout (issue 21, D14): its
    # host functions and InstancePre kept each other, the engine and a memfd.
    import gc

    module = wat(
        """
        (module
          (import "wasi_snapshot_preview1" "poll_oneoff"
            (func $poll (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            ;; a 1 ms sleep, then a poll of stdout (wasmtime's, through the helper)
            (i32.store (i32.const 16) (i32.const 1))
            (i64.store (i32.const 24) (i64.const 1000000))
            (drop (call $poll (i32.const 0) (i32.const 4096) (i32.const 1) (i32.const 8192)))
            (i32.store8 (i32.const 8) (i32.const 2))
            (drop (call $poll (i32.const 0) (i32.const 4096) (i32.const 1) (i32.const 8192)))))
        """
    )

    def descriptors() -> int:
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    def cycle() -> None:
        with Host() as host:  # its compiled code from the disk cache
            host.run(module, timeout=5)

    cycle()
    before = descriptors()
    for _ in range(50):
        cycle()
    assert descriptors() - before < 10


def test_run_async_runs_in_the_executor_given(host: Host, wat: Callable[[str], Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    spin = wat(SPIN)
    cancel = threading.Event()

    async def main(guests: ThreadPoolExecutor) -> None:
        result = await host.run_async(FSPROBE, ["args", "x"], executor=guests)
        assert result.stdout == b"fsprobe.wasm\nargs\nx\n"
        # The one worker is busy with the spinning guest: a run on the loop's
        # default executor is not held up by it, and cancelling stops it.
        task = asyncio.create_task(host.run_async(spin, cancel=cancel, executor=guests))
        await asyncio.sleep(0.2)
        assert [t.name for t in threading.enumerate()].count("guest_0") == 1
        assert (await host.run_async(FSPROBE, ["args", "y"])).stdout.endswith(b"y\n")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="guest") as guests:
        asyncio.run(main(guests))
        assert guests.submit(lambda: 1).result(timeout=60) == 1  # the worker is free again
    assert cancel.is_set()


def test_cancelling_a_run_async_still_queued_does_not_wait_for_the_queue(
    host: Host, wat: Callable[[str], Path]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    spin = wat(SPIN)
    ahead = threading.Event()

    async def main(guests: ThreadPoolExecutor) -> None:
        first = asyncio.create_task(host.run_async(spin, cancel=ahead, executor=guests))
        await asyncio.sleep(0.2)
        queued = asyncio.create_task(host.run_async(spin, executor=guests, timeout=600))
        await asyncio.sleep(0.2)
        queued.cancel()
        # Before, the cancellation waited for the guest ahead, which never ends here.
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(queued, 60)
        ahead.set()
        with pytest.raises(Interrupted):
            await first

    with ThreadPoolExecutor(max_workers=1) as guests:
        asyncio.run(main(guests))


@pytest.mark.parametrize("executor", ["x", "process"])
def test_run_async_refuses_what_is_no_thread_pool(host: Host, executor: str) -> None:
    from concurrent.futures import ProcessPoolExecutor

    async def main() -> None:
        if executor == "process":
            with ProcessPoolExecutor(1) as pool:
                await host.run_async(HELLO, executor=pool)
        else:
            await host.run_async(HELLO, executor=executor)  # type: ignore[arg-type]

    with pytest.raises(ConfigError, match="executor must be a thread pool"):
        asyncio.run(main())
