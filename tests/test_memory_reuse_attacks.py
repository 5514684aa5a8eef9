"""Attacks on the reservations capped runs give back for later runs (memory.SPARE) and
on the guest's arguments and environment passed as checked bytes (capi.set_argv_env).

Each test asserts the safe behaviour: a guest never sees what an earlier guest
wrote, out-of-bounds accesses still trap on a reused reservation, the memory limit
is still named, spares stay bounded and give way, and the guest's argv and environ
are exactly the checked UTF-8 strings, whole and in order.
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import WASI_EXIT, WASI_WRITE, in_threads

from wasmhost import (
    ConfigError,
    Host,
    Interrupted,
    MemoryLimitExceeded,
    TimeoutExceeded,
    Trap,
    WasmhostError,
)
from wasmhost._host.engines import memory as _memory

MiB = 1 << 20
CAP = 8 * MiB
SECRET = 0x5EC2E75EC2E75EC2
# A snooper's exit codes: its memory did not grow as asked; it found a byte not zero.
WRONG_SIZE, FOUND = 3, 7
# The index types of a memory.
ENDS = ("i32", "i64")


def _memory_decl(index: str) -> str:
    return '(memory (export "memory") i64 1)' if index == "i64" else '(memory (export "memory") 1)'


def _over_pages(t: str, pages: int, check: str, each: str, then: str) -> str:
    """A guest that grows to ``pages`` pages, does ``check``, then ``each`` at every
    8th byte of them (``$i`` its address), then ``then``; ``t`` its index type."""
    return f"""
    (module
      {WASI_EXIT}
      {_memory_decl(t)}
      (func (export "_start") (local $i {t}) (local $n {t})
        (drop (memory.grow ({t}.const {pages - 1})))
        {check}
        (local.set $n ({t}.mul (memory.size) ({t}.const 65536)))
        (block $done (loop $each
          (br_if $done ({t}.ge_u (local.get $i) (local.get $n)))
          {each}
          (local.set $i ({t}.add (local.get $i) ({t}.const 8)))
          (br $each)))
        {then}))
    """


def filler(pages: int, then: str = "", index: str = "i32") -> str:
    """A guest that grows to ``pages`` pages, writes SECRET over every 8 bytes of them,
    then does ``then`` (returns, traps, spins, asks for more; ``T`` its index type)."""
    each = f"(i64.store (local.get $i) (i64.const {SECRET}))"
    return _over_pages(index, pages, "", each, then.replace("T.", f"{index}."))


def snooper(pages: int, index: str = "i32") -> str:
    """A guest that grows to ``pages`` pages and exits FOUND if any byte is not zero."""
    t = index
    check = (
        f"(if ({t}.ne (memory.size) ({t}.const {pages}))"
        f" (then (call $exit (i32.const {WRONG_SIZE}))))"
    )
    each = (
        "(if (i64.ne (i64.load (local.get $i)) (i64.const 0))"
        f" (then (call $exit (i32.const {FOUND}))))"
    )
    return _over_pages(t, pages, check, each, "")


def reader(address: int, index: str = "i32", offset: int = 0) -> str:
    """A guest of one page that loads a byte at ``address`` (+ a constant ``offset``)."""
    return f"""
    (module {_memory_decl(index)}
      (func (export "_start")
        (drop (i32.load8_u offset={offset} ({index}.const {address})))))
    """


# A guest that grows one page at a time, filling each, until it is stopped.
CREEPER = f"""
(module
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32) (local $end i32)
    (loop $grow
      (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1))
        (then
          (local.set $end (i32.mul (memory.size) (i32.const 65536)))
          (local.set $i (i32.sub (local.get $end) (i32.const 65536)))
          (block $done (loop $fill
            (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
            (i64.store (local.get $i) (i64.const {SECRET}))
            (local.set $i (i32.add (local.get $i) (i32.const 8)))
            (br $fill)))))
      (br $grow))))
"""


class Reuse:
    """The reservations given back and taken, in order, while a test runs."""

    def __init__(self) -> None:
        self.given: list[int] = []
        self.taken: list[int | None] = []
        self.unmapped: list[int] = []


def _drop_spares() -> None:
    with _memory._spare_lock:
        for size, bases in list(_memory._spare.items()):
            while bases:
                _memory._munmap(bases.pop(), size)


@pytest.fixture
def reuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reuse]:
    """No spare reservations at the start (so what a run gives back is what the next
    takes), and a record of the reservations given back, taken and unmapped; at the
    end, no memory is left alive and at most SPARE are kept."""
    _drop_spares()
    record = Reuse()
    give_back, reserve, munmap = _memory._give_back, _memory._reserve, _memory._munmap

    def spied_give_back(base: int, mapped: int, accessible: int) -> None:
        record.given.append(base)
        give_back(base, mapped, accessible)

    def spied_reserve(mapped: int) -> int | None:
        base = reserve(mapped)
        record.taken.append(base)
        return base

    def spied_munmap(base: Any, size: Any) -> int:
        record.unmapped.append(int(base))
        return int(munmap(base, size))

    monkeypatch.setattr(_memory, "_give_back", spied_give_back)
    monkeypatch.setattr(_memory, "_reserve", spied_reserve)
    monkeypatch.setattr(_memory, "_munmap", spied_munmap)
    yield record
    assert _memory._memories == {}, "a memory outlived its run"
    assert _memory._spares() <= _memory.SPARE


def _clean(host: Host, module: Path, cap: int = CAP) -> None:
    result = host.run(module, max_memory=cap)
    assert result.exit_code == 0, {WRONG_SIZE: "wrong size", FOUND: "saw an earlier run"}.get(
        result.exit_code, result.exit_code
    )


# -- what an earlier run wrote ---------------------------------------------------------

ENDINGS: dict[str, tuple[str, dict[str, Any], type[BaseException] | None]] = {
    "returns": ("", {}, None),
    "exits-1": ("(call $exit (i32.const 1))", {}, None),
    "traps": ("unreachable", {}, Trap),
    "refused-growth": ("(drop (memory.grow (T.const 60000))) unreachable", {}, MemoryLimitExceeded),
    "times-out": ("(loop br 0)", {"timeout": 0.3}, TimeoutExceeded),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize(
    ("first", "then"), [("i32", "i32"), ("i64", "i32"), ("i32", "i64"), ("i64", "i64")]
)
def test_a_run_after_any_ending_sees_nothing_of_the_one_before(
    host: Host, wat: Callable[[str], Path], reuse: Reuse, ending: str, first: str, then: str
) -> None:
    """Whatever way a run ended, and whichever index type each memory has (both
    reserve 4 GiB + guard under a small cap), the next run takes its reservation and
    finds it zeroed, under a cap smaller or larger than the writer's."""
    code, options, raised = ENDINGS[ending]
    writer = wat(filler(40, code, first))
    if raised is None:
        host.run(writer, max_memory=CAP, **options)
    else:
        with pytest.raises(raised):
            host.run(writer, max_memory=CAP, **options)
    given = reuse.given[-1]
    for cap in (4 * MiB, CAP, 64 * MiB):
        _clean(host, wat(snooper(40, then)), cap)
    assert given in reuse.taken, "the snooper did not get the writer's reservation"


def test_a_run_stopped_mid_growth_leaves_nothing(
    host: Host, wat: Callable[[str], Path], reuse: Reuse
) -> None:
    """A guest stopped by its timeout while it grows and fills page after page."""
    cap = 256 * MiB
    with pytest.raises((TimeoutExceeded, MemoryLimitExceeded)):
        host.run(wat(CREEPER), max_memory=cap, timeout=0.05)
    _clean(host, wat(snooper(cap // 65536)), cap)
    assert reuse.given[-1] in reuse.taken


def test_data_written_by_a_failed_instantiation_is_gone(
    host: Host, wat: Callable[[str], Path], reuse: Reuse
) -> None:
    """Data segments copied in before a later one fails, and a start function that
    writes then traps: the memory is given back with what they wrote."""
    secret = "\\53\\45\\43\\52\\45\\54" * 100
    failing_data = f"""
    (module (memory (export "memory") 1)
      (data (i32.const 8) "{secret}")
      (data (i32.const 65530) "0123456789")
      (func (export "_start")))
    """
    with pytest.raises(WasmhostError):
        host.run(wat(failing_data), max_memory=CAP)
    _clean(host, wat(snooper(1)))
    start_traps = f"""
    (module (memory (export "memory") 1)
      (data (i32.const 8) "{secret}")
      (func $s (memory.fill (i32.const 1024) (i32.const 0xaa) (i32.const 4096)) unreachable)
      (start $s)
      (func (export "_start")))
    """
    with pytest.raises(WasmhostError):
        host.run(wat(start_traps), max_memory=CAP)
    _clean(host, wat(snooper(1)))
    assert len(reuse.given) >= 2
    assert reuse.given[0] in reuse.taken


def test_many_threads_never_see_each_others_memory(
    host: Host, wat: Callable[[str], Path], reuse: Reuse
) -> None:
    """Writers (ending every way) and snoopers in eight threads at once."""
    writers = [wat(filler(24, code, index)) for code in ("", "unreachable") for index in ENDS]
    snoopers = [wat(snooper(24, index)) for index in ENDS]

    def work(i: int) -> None:
        chance = random.Random(i)
        for _ in range(12):
            with contextlib.suppress(Trap):
                host.run(chance.choice(writers), max_memory=CAP)
            _clean(host, chance.choice(snoopers))

    in_threads(work, 8)
    assert set(reuse.given) & {b for b in reuse.taken if b is not None}, "nothing was reused"


def test_a_host_closed_and_reopened_gets_empty_reservations(
    wat: Callable[[str], Path], reuse: Reuse
) -> None:
    with Host() as first:
        first.run(wat(filler(40)), max_memory=CAP)
    with Host() as second:
        _clean(second, wat(snooper(40)))
        with pytest.raises(Trap) as caught:
            second.run(wat(reader(65536)), max_memory=CAP)
        assert caught.value.trap_code == "memory_out_of_bounds"
    assert reuse.given[0] in reuse.taken


def test_a_forked_child_sees_nothing_of_a_run_alive_at_the_fork(
    host: Host, wat: Callable[[str], Path], reuse: Reuse
) -> None:
    """A thread's guest is alive (its memory full of SECRET) when the process forks;
    the child's runs, and the parent's after it, find only empty memory."""
    spinning = wat(filler(40, "(loop br 0)"))
    snoop = wat(snooper(40))
    # Compiled before the fork: wasmtime's compiler threads are not in the child.
    for _ in range(2):
        host.run(wat(filler(40)), max_memory=CAP)
        _clean(host, snoop)
    stop = threading.Event()
    stopped: list[BaseException] = []

    def spin() -> None:
        try:
            host.run(spinning, max_memory=CAP, cancel=stop)
        except BaseException as exc:
            stopped.append(exc)

    thread = threading.Thread(target=spin)
    thread.start()
    deadline = time.monotonic() + 10
    while not _memory._memories and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # (filled by now)
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            runs = [host.run(snoop, max_memory=CAP) for _ in range(_memory.SPARE + 2)]
            code = max(r.exit_code for r in runs)
        finally:
            os._exit(code)
    stop.set()
    thread.join()
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    _clean(host, snoop)
    assert stopped, "the spinning guest was not stopped"


# -- bounds on a reused reservation ---------------------------------------------------


@pytest.mark.parametrize(
    ("address", "offset"),
    [
        (65536, 0),
        (65536 + 4095, 0),
        (40 * 65536 - 8, 0),
        (0xFFFF_FFF0, 0),
        (0, 65536),
        (0xFFFF_FFFF, 0xFFFF_FFFF),
    ],
)
@pytest.mark.parametrize("index", ENDS)
def test_past_its_own_pages_a_guest_traps_on_a_reused_reservation(
    host: Host, wat: Callable[[str], Path], reuse: Reuse, address: int, offset: int, index: str
) -> None:
    """The run before had 40 pages (of either index type); a guest of one page traps
    past it, wherever it reads, and is not let read what was there."""
    host.run(wat(filler(40, "", "i64" if index == "i32" else "i32")), max_memory=64 * MiB)
    with pytest.raises(Trap) as caught:
        host.run(wat(reader(address, index, offset)), max_memory=64 * MiB)
    assert caught.value.trap_code == "memory_out_of_bounds"
    assert reuse.given[-1] in reuse.taken


# -- the memory limit on a reused reservation --------------------------------------------


def test_a_refused_growth_is_named_on_every_reused_reservation(
    host: Host, wat: Callable[[str], Path], reuse: Reuse
) -> None:
    """The run before grew to 40 pages under a larger cap; under 1 MiB the same
    growth is refused, and named, run after run (more than SPARE of them)."""
    big, small = wat(filler(40)), wat(filler(40, "unreachable"))
    for _ in range(2 * _memory.SPARE + 2):
        host.run(big, max_memory=64 * MiB)
        with pytest.raises(MemoryLimitExceeded, match="memory limit of 1 MiB"):
            host.run(small, max_memory=1 * MiB)
    # Refused, the guest keeps its one page: past it is out of bounds.
    host.run(big, max_memory=64 * MiB)
    with pytest.raises(Trap) as caught:
        host.run(wat(reader(65536)), max_memory=1 * MiB)
    assert caught.value.trap_code == "memory_out_of_bounds"
    # A minimum past the cap is refused at the start.
    host.run(big, max_memory=64 * MiB)
    with pytest.raises(MemoryLimitExceeded):
        host.run(wat('(module (memory 40) (func (export "_start")))'), max_memory=1 * MiB)


# -- spares kept and given way -------------------------------------------------------------


def test_memories_given_back_at_once_are_kept_or_unmapped_never_lost(
    host: Host, wat: Callable[[str], Path], reuse: Reuse
) -> None:
    """Twelve runs alive at once, then all stopped together: each reservation given
    back is kept (at most SPARE of them) or unmapped."""
    spinning = wat(filler(4, "(loop br 0)"))
    stop = threading.Event()
    count = 3 * _memory.SPARE

    def work(_: int) -> None:
        with pytest.raises(Interrupted):
            host.run(spinning, max_memory=CAP, cancel=stop)

    runner = threading.Thread(target=in_threads, args=(work, count))
    runner.start()
    deadline = time.monotonic() + 20
    while len(_memory._memories) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    runner.join()
    assert len(reuse.given) == count
    kept = {b for bases in _memory._spare.values() for b in bases}
    assert len(kept) <= _memory.SPARE
    assert set(reuse.given) == kept | (set(reuse.given) & set(reuse.unmapped))
    assert not kept & set(reuse.unmapped), "a kept reservation was unmapped"


def test_reservations_of_many_sizes_stay_bounded(
    host: Host, wat: Callable[[str], Path], reuse: Reuse
) -> None:
    """64-bit memories under caps past 4 GiB reserve as much as their cap: ten sizes,
    each run twice (the second on the first's reservation, and clean)."""
    writer, snoop = wat(filler(24, "", "i64")), wat(snooper(24, "i64"))
    for gib in range(5, 15):
        cap = gib << 30
        host.run(writer, max_memory=cap)
        given = reuse.given[-1]
        _clean(host, snoop, cap)
        assert reuse.taken[-1] == given
    kept = {b for bases in _memory._spare.values() for b in bases}
    assert len(kept) <= _memory.SPARE
    assert set(reuse.given) <= kept | set(reuse.unmapped), "a reservation was lost"


SPARES_UNDER_ULIMIT = """
import resource, sys
from pathlib import Path
import wasmtime
from wasmhost import Host
from wasmhost._host.engines import memory
GiB = 1 << 30
module = Path(sys.argv[1])
module.write_bytes(wasmtime.wat2wasm(
    '(module (memory (export "memory") 1) (func (export "_start")))'))
with Host() as host:
    host.run(module, max_memory=8 << 20)
    host.run(module)
    spare = sum(size * len(bases) for size, bases in memory._spare.items())
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used - spare + 5 * GiB, resource.RLIM_INFINITY))
    assert host.run(module, max_memory=8 << 20).ok
    try:
        print("uncapped", host.run(module).ok)
    except Exception as exc:
        print("uncapped failed:", exc)
    try:
        bytearray(3 * GiB)
        print("allocated")
    except MemoryError:
        print("MemoryError for 3 GiB")
"""


def test_spares_do_not_crowd_out_the_rest_of_the_process_under_a_ulimit(
    tmp_path: Path,
) -> None:
    """Under a ulimit -v with room for one 4 GiB reservation, a capped run's spare
    must not leave an uncapped run (wasmtime's own reservation) or Python's own
    allocations without room: they fitted before reservations were kept."""
    done = subprocess.run(
        [sys.executable, "-c", SPARES_UNDER_ULIMIT, str(tmp_path / "m.wasm")],
        capture_output=True,
        timeout=120,
    )
    assert done.stdout.decode().splitlines() == ["uncapped True", "allocated"], (
        done.stdout.decode() + done.stderr.decode()
    )


# -- arguments and environment ---------------------------------------------------------------

# A guest that writes its raw argv (to stderr) and environ (to stdout) as WASI gives
# them: the count, the byte size, then the NUL-terminated strings.
DUMPER = f"""
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $asizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $aget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $esizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $eget (param i32 i32) (result i32)))
  {WASI_WRITE}
  {WASI_EXIT}
  (memory (export "memory") 1)
  (func $write_all (param $fd i32) (param $at i32) (param $left i32)
    (block $done (loop $more
      (br_if $done (i32.eqz (local.get $left)))
      (i32.store (i32.const 16) (local.get $at))
      (i32.store (i32.const 20) (local.get $left))
      (if (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 32))
        (then (call $exit (i32.const 9))))
      (if (i32.eqz (i32.load (i32.const 32))) (then (call $exit (i32.const 9))))
      (local.set $at (i32.add (local.get $at) (i32.load (i32.const 32))))
      (local.set $left (i32.sub (local.get $left) (i32.load (i32.const 32))))
      (br $more))))
  (func $dump (param $fd i32)
    (call $write_all (local.get $fd) (i32.const 0) (i32.const 8))
    (call $write_all (local.get $fd) (i32.const 0x100000) (i32.load (i32.const 4))))
  (func (export "_start")
    (drop (memory.grow (i32.const 400)))
    (drop (call $asizes (i32.const 0) (i32.const 4)))
    (drop (call $aget (i32.const 65536) (i32.const 0x100000)))
    (call $dump (i32.const 2))
    (drop (call $esizes (i32.const 0) (i32.const 4)))
    (drop (call $eget (i32.const 65536) (i32.const 0x100000)))
    (call $dump (i32.const 1))))
"""


def _strings(raw: bytes) -> list[bytes]:
    """The strings of a dump, checked to be as many and as long as the guest was told."""
    count, size = struct.unpack("<II", raw[:8])
    body = raw[8:]
    assert len(body) == size
    assert count == 0 or body.endswith(b"\0")
    strings = body.split(b"\0")[:-1]
    assert len(strings) == count
    return strings


def seen(
    host: Host, module: Path, args: list[Any], **options: Any
) -> tuple[list[bytes], list[bytes]]:
    """The argv and environ that ``module`` (DUMPER) was given."""
    result = host.run(module, args, **options)
    assert result.exit_code == 0
    return _strings(result.stderr), _strings(result.stdout)


@pytest.fixture
def dumper(wat: Callable[[str], Path]) -> Path:
    return wat(DUMPER, "dumper.wasm")


ODD = [
    "",
    " ",
    "caf\u00e9",
    "\u732b\U0001f408",
    "a=b=c",
    "=",
    "\n\t\r",
    "\x01\x7f",
    "\u200b\ufeff",
    "\U0010ffff",
    "x" * 70_000,
]


def test_argv_and_environ_arrive_whole_and_in_order(host: Host, dumper: Path) -> None:
    env = {f"N{i}_\u00e9": value for i, value in enumerate(ODD)}
    env.update({f"MANY_{i:05}": str(i) for i in range(2000)})
    env["Z_FIRST_LAST"] = "z"
    env = dict(reversed(list(env.items())))  # (not sorted: the order given is kept)
    argv, environ = seen(host, dumper, ODD, env=env, argv0="probe \u00e9")
    assert argv == [s.encode() for s in ["probe \u00e9", *ODD]]
    assert environ == [f"{k}={v}".encode() for k, v in env.items()]


def test_many_arguments_and_a_large_value(host: Host, dumper: Path) -> None:
    args = [str(i) for i in range(20_000)]
    argv, environ = seen(host, dumper, args, env={"BIG": "\u00e9" * (1 << 19)}, argv0="a")
    assert argv == [b"a", *(a.encode() for a in args)]
    assert environ == [("BIG=" + "\u00e9" * (1 << 19)).encode()]


def test_no_environment_and_an_empty_one(host: Host, dumper: Path) -> None:
    assert seen(host, dumper, [], argv0="a") == ([b"a"], [])
    assert seen(host, dumper, [], env={}, argv0="a") == ([b"a"], [])


def test_threads_each_get_their_own_arguments_and_environment(host: Host, dumper: Path) -> None:
    def work(i: int) -> None:
        for j in range(15):
            args = [f"{i}-{j}-{k}" for k in range(i + j)]
            env = {f"T{i}_{k}": f"{j}" * k for k in range(i * 3 + j)}
            argv, environ = seen(host, dumper, args, env=env, argv0=f"t{i}")
            assert argv == [f"t{i}".encode(), *(a.encode() for a in args)]
            assert environ == [f"{k}={v}".encode() for k, v in env.items()]

    in_threads(work, 8)


NUL_PLACES = ["\0", "\0x", "x\0", "x\0y", "x" * 5000 + "\0"]


@pytest.mark.parametrize("text", NUL_PLACES)
@pytest.mark.parametrize("where", ["argv0", "arg", "last-arg", "name", "value", "last-value"])
def test_a_nul_anywhere_is_refused(host: Host, dumper: Path, where: str, text: str) -> None:
    options: dict[str, Any] = {"argv0": "a", "env": {"A": "1", "B": "2"}}
    args = ["ok", "ok"]
    if where == "argv0":
        options["argv0"] = text
    elif where == "arg":
        args[0] = text
    elif where == "last-arg":
        args.append(text)
    elif where == "name":
        options["env"] = {"A": "1", "B" + text: "2"}
    elif where == "value":
        options["env"] = {"A": text, "B": "2"}
    else:
        options["env"] = {"A": "1", "B": text}
    with pytest.raises(ConfigError, match="NUL"):
        host.run(dumper, args, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"args": ["\udcff"]},
        {"args": ["ok", "a\ud800b"]},
        {"argv0": "\udfff"},
        {"env": {"A": "\udcff"}},
        {"env": {"\udcff": "1"}},
        {"env": {"": "1"}},
        {"env": {"=": "1"}},
        {"env": {"A=B": "1"}},
        {"env": {"=A": "1"}},
        {"env": {"A": "1", "B=": "2"}},
    ],
)
def test_invalid_strings_and_names_are_refused(
    host: Host, dumper: Path, options: dict[str, Any]
) -> None:
    args = options.pop("args", [])
    with pytest.raises(ConfigError):
        host.run(dumper, args, **options)


class Liar(str):
    """A str whose str() is itself, and that lies when asked what it holds."""

    __slots__ = ()

    def __str__(self) -> str:
        return self

    def __contains__(self, _: object) -> bool:
        return False

    def __len__(self) -> int:
        return 1

    def __bool__(self) -> bool:
        return True

    def count(self, *_: Any) -> int:
        return 0

    def encode(self, *_: Any, **__: Any) -> bytes:
        return b"clean"


@pytest.mark.parametrize(
    "env",
    [{Liar("A=B"): "1"}, {Liar(""): "1"}, {Liar("=X"): "1"}],
    ids=["equals", "empty", "leading-equals"],
)
def test_a_str_subclass_cannot_pass_an_invalid_name(
    host: Host, dumper: Path, env: dict[str, str]
) -> None:
    """The name checked is the text passed: a str subclass that says it holds no
    '=' (or is not empty) is refused all the same, or its name reaches the guest
    as a valid one."""
    try:
        _, environ = seen(host, dumper, [], env=env, argv0="a")
    except ConfigError:
        return
    for entry in environ:
        name = entry.split(b"=", 1)[0]
        assert name, f"the guest was given {entry!r}"
        assert name == str.__str__(next(iter(env))).encode(), f"the guest was given {entry!r}"


@pytest.mark.parametrize("where", ["argv0", "arg", "name", "value"])
def test_a_str_subclass_cannot_smuggle_other_bytes(host: Host, dumper: Path, where: str) -> None:
    """A str holding a NUL whose encode() says something else: refused, or passed as
    what it holds (never as what its encode() said, never with the NUL)."""
    sly = Liar("x\0y")
    options: dict[str, Any] = {"argv0": "a", "env": {"K": "v"}}
    args: list[Any] = []
    if where == "argv0":
        options["argv0"] = sly
    elif where == "arg":
        args = [sly]
    elif where == "name":
        options["env"] = {Liar("K\0"): "v"}
    else:
        options["env"] = {"K": sly}
    try:
        argv, environ = seen(host, dumper, args, **options)
    except ConfigError:
        return
    pytest.fail(f"the guest ran with argv {argv!r} and environ {environ!r}")


class Invalid(str):
    """A str whose encode() gives bytes that are not UTF-8."""

    __slots__ = ()

    def __str__(self) -> str:
        return self

    def encode(self, *_: Any, **__: Any) -> bytes:
        return b"\xff\xfe"


@pytest.mark.parametrize("where", ["arg", "value"])
def test_bytes_that_are_not_utf8_never_reach_the_guest(
    host: Host, dumper: Path, where: str
) -> None:
    """Forced onto the slow path (a NUL elsewhere in the list would do; here its own),
    a str subclass's encode() must not decide the bytes passed."""
    sly = Invalid("a\0b")
    args: list[Any] = [sly] if where == "arg" else []
    env = {"K": sly} if where == "value" else {"K": "v"}
    try:
        argv, environ = seen(host, dumper, args, env=env, argv0="a")
    except (ConfigError, WasmhostError):
        return
    for text in (*argv, *environ):
        text.decode()  # valid UTF-8
        assert text not in (b"\xff\xfe", b"K=\xff\xfe")


class Flip(str):
    """A str whose str() answers one thing first, something invalid after."""

    __slots__ = ()
    calls: dict[str, int] = {}  # noqa: RUF012

    def __str__(self) -> str:
        key = str.__str__(self)
        Flip.calls[key] = Flip.calls.get(key, 0) + 1
        return key if Flip.calls[key] == 1 else key + "=\0\udcff"


class FlipMapping(Mapping[str, str]):
    """A mapping whose items are valid the first time and invalid after."""

    def __init__(self) -> None:
        self.asked = 0

    def __getitem__(self, key: str) -> str:
        return {"A": "1"}[key] if self.asked <= 1 else "\0"

    def __iter__(self) -> Iterator[str]:
        self.asked += 1
        return iter(["A"] if self.asked == 1 else ["A=B", "\0"])

    def __len__(self) -> int:
        return 1

    def items(self) -> Any:
        self.asked += 1
        return [("A", "1")] if self.asked == 1 else [("A=B", "\0"), ("C", "\udcff")]


def test_what_is_checked_is_what_is_passed(host: Host, dumper: Path) -> None:
    Flip.calls.clear()
    argv, environ = seen(host, dumper, [Flip("arg")], env={Flip("NAME"): Flip("value")}, argv0="a")
    assert argv == [b"a", b"arg"]
    assert environ == [b"NAME=value"]
    assert seen(host, dumper, [], env=FlipMapping(), argv0="a")[1] == [b"A=1"]


def test_a_name_reaches_the_guest_once(host: Host, dumper: Path) -> None:
    """Keys that differ but print alike (1 and "1") would give the guest the same
    variable twice, which getenv() implementations resolve differently: refused,
    or passed once."""
    try:
        _, environ = seen(host, dumper, [], env={1: "a", "1": "b"}, argv0="a")
    except ConfigError:
        return
    names = [entry.split(b"=", 1)[0] for entry in environ]
    assert len(names) == len(set(names)), f"the guest was given {environ!r}"
