"""The compile cache: reused across processes, robust to damage and to races."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime
from conftest import HELLO, NBODY, count_compiles

import wasmhost
import wasmhost._hashing
import wasmhost._host.engines.cache
import wasmhost._host.engines.engine
import wasmhost._host.host
import wasmhost._host.values.component
import wasmhost._host.values.module
import wasmhost.wave
from wasmhost import Host, ModuleError

HEADER = 0  # an entry is wasmtime's serialization, exactly (its checks live in .meta)

pytestmark = pytest.mark.own_cache  # the compile cache is under test: it starts empty


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "compiled").rglob("*.cwasm"))


def no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("compiled although the cache holds the module")

    monkeypatch.setattr(wasmhost._host.host, "compile_wasm", refuse)


def test_a_new_host_loads_compiled_code_from_disk(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Host() as first:
        first.run(HELLO)
    [entry] = entries(isolated)
    assert entry.stat().st_size > HELLO.stat().st_size
    no_compiling(monkeypatch)
    with Host() as second:
        assert second.run(HELLO).stdout == b"Hello, World!\n"


def test_a_new_process_loads_compiled_code_from_disk(isolated: Path) -> None:
    script = (
        "import sys, wasmhost._host.host as h\n"
        "from wasmhost import Host\n"
        "if sys.argv[1] == 'reuse':\n"
        "    h.compile_wasm = lambda *a: sys.exit('recompiled')\n"
        "sys.stdout.buffer.write(Host().run(sys.argv[2]).stdout)\n"
    )
    for mode in ("fill", "reuse"):
        done = subprocess.run(
            [sys.executable, "-c", script, mode, str(HELLO)], capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"Hello, World!\n"


def test_the_key_holds_content_version_and_engine_settings(isolated: Path) -> None:
    with Host() as host:
        host.run(HELLO)
        host.run(HELLO, fuel=10**9)
        host.run(HELLO, timeout=10)
        key = host.load(HELLO).key
    names = [p.name for p in entries(isolated)]
    assert len(names) == 3
    for name in names:
        assert name.startswith(key)
        assert f"wasmtime{wasmhost._host.engines.engine.wasmtime_version()}" in name
    assert len({name.split("-")[-2] for name in names}) == 3  # e0f0, e0f1, e1f0


def damage_truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def damage_flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def damage_garbage(data: bytes) -> bytes:
    return b"not a cache entry at all"


def damage_empty(data: bytes) -> bytes:
    return b""


@pytest.mark.parametrize(
    "damage", [damage_truncate, damage_flip, damage_garbage, damage_empty], ids=lambda f: f.__name__
)
def test_a_damaged_entry_is_ignored_and_rebuilt(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, damage: object
) -> None:
    with Host() as host:
        host.run(HELLO)
    [entry] = entries(isolated)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))  # type: ignore[operator]
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    assert entry.read_bytes() == good  # rebuilt: serialization is deterministic
    no_compiling(monkeypatch)
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"


def test_a_foreign_entry_is_ignored_and_rebuilt(isolated: Path) -> None:
    """A well-formed entry holding code serialized for another engine configuration."""
    with Host() as host:
        host.run(HELLO)
        host.run(HELLO, fuel=10**9)
    plain, metered = sorted(entries(isolated), key=lambda p: "f1" in p.name)
    good = plain.read_bytes()
    plain.write_bytes(metered.read_bytes())
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    config = wasmtime.Config()
    assert wasmtime.Module.deserialize(wasmtime.Engine(config), plain.read_bytes()[HEADER:])
    assert plain.read_bytes() != metered.read_bytes()
    assert len(plain.read_bytes()) == len(good)


def test_an_entry_moved_under_another_modules_name_is_refused(isolated: Path) -> None:
    with Host() as host:
        host.run(HELLO)
        host.run(NBODY, ["10"])
        hello_key, nbody_key = host.load(HELLO).key, host.load(NBODY).key
    [hello_entry] = [p for p in entries(isolated) if p.name.startswith(hello_key)]
    [nbody_entry] = [p for p in entries(isolated) if p.name.startswith(nbody_key)]
    nbody_entry.write_bytes(hello_entry.read_bytes())
    with Host() as host:
        assert host.run(NBODY, ["10"]).stdout.startswith(b"-0.169075164")


def test_an_entry_moved_with_its_record_under_another_modules_name_is_refused(
    isolated: Path,
) -> None:
    """The record names the entry it describes: a moved one is a miss, never run."""
    with Host() as host:
        host.run(HELLO)
        host.run(NBODY, ["10"])
        hello_key, nbody_key = host.load(HELLO).key, host.load(NBODY).key
    [hello_entry] = [p for p in entries(isolated) if p.name.startswith(hello_key)]
    [nbody_entry] = [p for p in entries(isolated) if p.name.startswith(nbody_key)]
    hello_entry.rename(nbody_entry)
    hello_entry.with_name(hello_entry.name + ".meta").rename(
        nbody_entry.with_name(nbody_entry.name + ".meta")
    )
    with Host() as host:
        assert host.run(NBODY, ["10"]).stdout.startswith(b"-0.169075164")
    with Host() as host:  # compiled again and stored: now a hit
        assert host.run(NBODY, ["10"]).stdout.startswith(b"-0.169075164")


def test_concurrent_processes_never_leave_a_broken_entry(isolated: Path) -> None:
    script = (
        "import sys; from wasmhost import Host; "
        "sys.stdout.buffer.write(Host().run(sys.argv[1], ['2000']).stdout)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(NBODY)], stdout=subprocess.PIPE)
        for _ in range(6)
    ]
    outputs = {p.communicate(timeout=120)[0] for p in procs}
    assert [p.returncode for p in procs] == [0] * 6
    assert len(outputs) == 1
    [entry] = entries(isolated)
    assert not [p for p in (isolated / "compiled").rglob(".tmp-*")]
    engine = wasmtime.Engine()
    assert wasmtime.Module.deserialize(engine, entry.read_bytes()[HEADER:])


def test_a_wasmtime_upgrade_recompiles_instead_of_loading_old_code(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Host() as host:
        host.run(HELLO)
    [old] = entries(isolated)
    monkeypatch.setattr(wasmhost._host.engines.engine, "wasmtime_version", lambda: "99.0.0")
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    [new] = [p for p in entries(isolated) if p != old]
    assert "wasmtime99.0.0" in new.name
    assert old.exists()


def test_caching_can_be_turned_off(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Host(cache_dir=False) as host:
        assert host.cache_dir is None
        host.run(HELLO)
    monkeypatch.setenv("WASMHOST_NO_CACHE", "1")
    with Host() as host:
        assert host.cache_dir is None
        host.run(HELLO)
    assert entries(isolated) == []


def test_the_cli_honours_no_cache_beside_a_cache_dir(isolated: Path) -> None:
    """WASMHOST_CACHE_DIR fills in run's --cache-dir; WASMHOST_NO_CACHE still turns it off."""
    env = dict(os.environ, WASMHOST_NO_CACHE="1")
    done = subprocess.run(
        [sys.executable, "-m", "wasmhost", "run", str(HELLO)], env=env, capture_output=True
    )
    assert done.stdout == b"Hello, World!\n"
    assert entries(isolated) == []


def test_cache_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WASMHOST_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Host().cache_dir == tmp_path / "xdg" / "wasmhost" / "compiled"
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(tmp_path / "moved"))
    assert Host().cache_dir == tmp_path / "moved" / "compiled"
    assert Host(cache_dir=tmp_path / "arg").cache_dir == tmp_path / "arg" / "compiled"


def test_an_unwritable_cache_does_not_stop_a_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with Host(cache_dir=blocker) as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"


# -- loading by memory map, checked without reading the entry ------------------


def refuse_reading_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load must map the entry (deserialize_file), never read it into memory."""

    def refuse(*args: object) -> None:
        raise AssertionError("read an entry into memory instead of mapping it")

    monkeypatch.setattr(wasmtime.Module, "deserialize", refuse)


def test_entries_are_mapped_and_private(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Host() as host:
        host.run(HELLO)
    [entry] = entries(isolated)
    assert entry.stat().st_mode & 0o777 == 0o600
    assert entry.with_name(entry.name + ".meta").stat().st_mode & 0o777 == 0o600
    assert (isolated / "compiled").stat().st_mode & 0o777 == 0o700
    assert entry.parent.stat().st_mode & 0o777 == 0o700
    no_compiling(monkeypatch)
    refuse_reading_entries(monkeypatch)
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"


def swap(entry: Path, other: Path) -> None:
    """Another entry renamed over this one: same bytes as a valid entry, another inode."""
    copy = other.with_name("copy")
    copy.write_bytes(other.read_bytes())
    os.replace(copy, entry)


def loosen(entry: Path, other: Path) -> None:
    entry.chmod(0o666)


def drop_meta(entry: Path, other: Path) -> None:
    entry.with_name(entry.name + ".meta").unlink()


def flip_in_place(entry: Path, other: Path) -> None:
    """One byte of code changed in place, the size kept: the change time moves."""
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))


def open_folder(entry: Path, other: Path) -> None:
    """The entry's folder made writable by others: anyone could have put code there."""
    entry.parent.chmod(0o777)


@pytest.mark.parametrize(
    "change", [swap, loosen, drop_meta, flip_in_place, open_folder], ids=lambda f: f.__name__
)
def test_an_entry_changed_since_it_was_written_is_rebuilt(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, change: object
) -> None:
    with Host() as host:
        host.run(HELLO)
        host.run(NBODY, ["10"])
        hello_key = host.load(HELLO).key
    [hello] = [p for p in entries(isolated) if p.name.startswith(hello_key)]
    [nbody] = [p for p in entries(isolated) if p != hello]
    change(hello, nbody)  # type: ignore[operator]
    compiled = count_compiles(monkeypatch)
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    assert compiled == [str(HELLO)]
    assert hello.stat().st_mode & 0o777 == 0o600
    assert hello.parent.stat().st_mode & 0o777 == 0o700


def test_a_loose_entry_is_refused_even_with_a_matching_record(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not by its changed times: the record is rewritten to match, the mode still tells."""
    with Host() as host:
        host.run(HELLO)
    [entry] = entries(isolated)
    entry.chmod(0o644 | 0o022)
    fd = os.open(entry, os.O_RDONLY)
    try:
        whole = wasmhost._hashing.checksum_of_file(fd)
        wasmhost._host.engines.cache.CompileCache._record(entry, fd, os.fstat(fd), whole)
    finally:
        os.close(fd)
    with Host() as host:
        compiled = count_compiles(monkeypatch)
        host.run(HELLO)
    assert compiled == [str(HELLO)]


def test_a_copied_cache_is_checked_once_by_content_and_used(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cp -a of a cache (an image, a CI restore): new inodes and times, same content."""
    with Host() as host:
        host.run(HELLO)
    copy = tmp_path / "copied"
    shutil.copytree(isolated, copy)
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(copy))
    [entry] = entries(copy)
    before = entry.with_name(entry.name + ".meta").read_bytes()
    no_compiling(monkeypatch)
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    assert entry.with_name(entry.name + ".meta").read_bytes() != before  # recorded anew


def test_an_old_cache_folder_is_made_private(isolated: Path) -> None:
    """Folders made 0755 by an older wasmhost are tightened on the next store."""
    folder = isolated / "compiled"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with Host() as host:
        host.run(HELLO)
    assert folder.stat().st_mode & 0o777 == 0o700


def settled_copy(monkeypatch: pytest.MonkeyPatch, path: Path) -> Path:
    """hello-world copied to ``path``, counted as settled at once (files written by the
    test changed just now)."""
    monkeypatch.setattr(wasmhost._host.engines.cache, "_RACY_NS", 0)
    path.write_bytes(HELLO.read_bytes())
    return path


def test_a_module_named_by_path_is_not_read_once_its_key_is_recorded(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = settled_copy(monkeypatch, tmp_path / "hello.wasm")
    with Host() as host:
        host.run(module)
    assert len(list((isolated / "compiled" / "paths").iterdir())) == 1

    def refuse(*args: object) -> None:
        raise AssertionError("read the module although its key is recorded")

    monkeypatch.setattr(wasmhost._host.host, "read_source", refuse)
    with Host() as host:
        loaded = host.load(module)
        assert host.run(loaded).stdout == b"Hello, World!\n"
        assert loaded.size == HELLO.stat().st_size
    monkeypatch.setattr(
        wasmhost._host.host, "read_source", wasmhost._host.values.module.read_source
    )
    assert loaded.wasm == HELLO.read_bytes()  # read when asked for, and checked


def test_a_changed_file_never_runs_from_a_stale_entry(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size, same modification time put back: the change time still tells."""
    module = settled_copy(monkeypatch, tmp_path / "m.wasm")
    old = time.time() - 10
    os.utime(module, (old, old))
    with Host() as kept:
        assert kept.run(module).stdout == b"Hello, World!\n"
        data = bytearray(HELLO.read_bytes())
        at = data.find(b"Hello, World!")
        data[at : at + 5] = b"Jello"
        module.write_bytes(bytes(data))
        os.utime(module, (old, old))
        assert kept.run(module).stdout == b"Jello, World!\n"  # the same Host
        with Host() as host:
            assert host.run(module).stdout == b"Jello, World!\n"  # a new one


def test_a_file_changed_moments_before_it_was_read_is_not_recorded(
    isolated: Path, tmp_path: Path
) -> None:
    module = tmp_path / "fresh.wasm"
    module.write_bytes(HELLO.read_bytes())
    with Host() as host:
        host.run(module)
    assert not (isolated / "compiled" / "paths").exists()


def test_a_module_changed_after_loading_refuses_its_stale_bytes(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = settled_copy(monkeypatch, tmp_path / "m.wasm")
    with Host() as host:
        host.run(module)
    with Host() as host:
        loaded = host.load(module)
        module.write_bytes(NBODY.read_bytes())
        with pytest.raises(ModuleError, match="changed since it was loaded"):
            loaded.wasm  # noqa: B018


def test_entries_of_an_older_cache_format_are_removed_when_rebuilt(isolated: Path) -> None:
    with Host() as host:
        host.run(HELLO)
    [entry] = entries(isolated)
    current = f"-v{wasmhost._host.engines.cache.CACHE_FORMAT}.cwasm"
    older = entry.with_name(entry.name.replace(current, "-v1.cwasm"))
    older.write_bytes(b"an entry of the first format")
    other_version = entry.with_name(entry.name.replace("wasmtime", "wasmtime0.0.1-"))
    other_version.write_bytes(b"another wasmtime's entry")
    entry.unlink()
    with Host() as host:
        host.run(HELLO)
    assert entry.exists()
    assert not older.exists()
    assert other_version.exists()  # another install sharing the cache may still use it


# -- the bound on modules a Host keeps compiled in memory -----------------------


def distinct(n: int) -> bytes:
    """A tiny WASI command of its own (its constant makes its content key)."""
    return wasmtime.wat2wasm(
        f'(module (memory (export "memory") 1) (func (export "_start") i32.const {n} drop))'
    )


def kept(host: Host) -> set[str]:
    """The keys of the modules ``host`` keeps compiled, on any engine."""
    return {key for slot in host._engines._slots.values() for key in slot.compiled}


def test_a_host_keeps_at_most_max_cached_modules_the_most_recently_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    modules = [distinct(n) for n in range(8)]
    with Host(cache_dir=False, max_cached_modules=3) as host:
        for wasm in modules:
            host.run(wasm)
        host.run(modules[5])  # 5 becomes the most recent: 6 is dropped next, not 5
        host.run(distinct(100))
        keys = [host.load(wasm).key for wasm in (modules[5], modules[7], distinct(100))]
        assert kept(host) == set(keys)
        compiled = count_compiles(monkeypatch)
        host.run(modules[0])  # dropped: compiled again, and runs as before
        assert len(compiled) == 1
        assert len(kept(host)) == 3


def test_a_host_is_bounded_by_default() -> None:
    with Host(cache_dir=False) as host:
        for n in range(wasmhost._host.host.DEFAULT_MAX_CACHED_MODULES + 20):
            host.run(distinct(n))
        assert len(kept(host)) == wasmhost._host.host.DEFAULT_MAX_CACHED_MODULES
        assert len(host._paths) <= wasmhost._host.host.DEFAULT_MAX_CACHED_MODULES


def test_modules_run_by_path_are_dropped_with_their_file_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wasmhost._host.engines.cache, "_RACY_NS", 0)  # kept by file state at once
    with Host(max_cached_modules=2) as host:
        for n in range(6):
            path = tmp_path / f"m{n}.wasm"
            path.write_bytes(distinct(n))
            host.run(path)
            host.run(path)  # twice: a pooled twin holds it too
        assert len(kept(host)) == 2
        assert len(host._paths) == 2
        twins = [s._twin for s in host._engines._slots.values() if s._twin is not None]
        assert all(len(twin.compiled) <= 2 for twin in twins)


def test_dropping_a_module_does_not_disturb_its_run_in_progress() -> None:
    import threading

    from conftest import printer

    started, go_on = threading.Event(), threading.Event()
    out: list[bytes] = []

    def slow_stdout(data: bytes) -> None:
        started.set()
        go_on.wait(30)
        out.append(data)

    with Host(cache_dir=False, max_cached_modules=1) as host:
        waiting = wasmtime.wat2wasm(printer("still here"))
        result: list[int] = []
        worker = threading.Thread(
            target=lambda: result.append(host.run(waiting, stdout=slow_stdout).exit_code)
        )
        worker.start()
        assert started.wait(30)
        for n in range(3):  # drop the module the worker runs
            host.run(distinct(n))
        assert len(kept(host)) == 1
        go_on.set()
        worker.join(30)
        assert result == [0]
        assert b"".join(out) == b"still here"
        assert host.run(waiting).stdout == b"still here"


def test_threads_running_more_modules_than_the_bound_all_succeed() -> None:
    from conftest import in_threads, printer

    modules = [wasmtime.wat2wasm(printer(f"module {n}")) for n in range(6)]
    with Host(cache_dir=False, max_cached_modules=2) as host:

        def work(i: int) -> None:
            for round in range(8):
                n = (i + round) % len(modules)
                assert host.run(modules[n]).stdout == f"module {n}".encode()

        in_threads(work, 6)
        assert len(kept(host)) <= 2  # fewer when a drop raced a run of the same module


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"], ids=repr)
def test_max_cached_modules_is_checked(bad: object) -> None:
    with pytest.raises(wasmhost.ConfigError, match="max_cached_modules"):
        Host(max_cached_modules=bad)  # type: ignore[arg-type]


# -- the compile cache's size cap (WASMHOST_CACHE_MAX_SIZE) -----------------------


def on_disk(cache: Path) -> int:
    return sum(f.stat().st_size for f in (cache / "compiled").rglob("*") if f.is_file())


def test_the_compile_cache_stays_under_its_cap_dropping_the_least_recently_used(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Host() as host:
        host.run(distinct(0))
    one = on_disk(isolated)
    cap = 3 * one + one // 2  # room for three entries
    monkeypatch.setenv("WASMHOST_CACHE_MAX_SIZE", str(cap))
    keys = []
    for n in range(1, 8):
        with Host() as host:
            host.run(distinct(n))
            keys.append(host.load(distinct(n)).key)
            assert on_disk(isolated) <= cap
    assert sorted(e.name[:64] for e in entries(isolated)) == sorted(keys[-3:])
    # A use makes an entry recent (recorded to the minute): it stays when the next
    # one is written.
    [fifth] = [e for e in entries(isolated) if e.name.startswith(keys[-3])]
    os.utime(fifth.with_name(fifth.name + ".meta"), (time.time() - 3600,) * 2)
    with Host() as host:
        host.run(distinct(5))
    with Host() as host:
        host.run(distinct(8))
    kept_keys = {e.name[:64] for e in entries(isolated)}
    assert keys[-3] in kept_keys
    assert keys[-2] not in kept_keys


def test_an_entry_over_the_cap_by_itself_is_still_stored(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMHOST_CACHE_MAX_SIZE", "1")
    for n in range(3):
        with Host() as host:
            host.run(distinct(n))
            key = host.load(distinct(n)).key
        [entry] = entries(isolated)
        assert entry.name.startswith(key)


@pytest.mark.parametrize("bad", ["lots", "0", "-5", "1.5G"])
def test_a_bad_cache_cap_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("WASMHOST_CACHE_MAX_SIZE", bad)
    with pytest.raises(wasmhost.ConfigError, match="WASMHOST_CACHE_MAX_SIZE"):
        Host()


def test_a_server_keeps_every_routes_module_compiled(tmp_path: Path) -> None:
    from wasmhost.asgi import Route, WagiApp

    count = wasmhost._host.host.DEFAULT_MAX_CACHED_MODULES + 6
    routes = []
    for n in range(count):
        path = tmp_path / f"m{n}.wasm"
        path.write_bytes(distinct(n))
        routes.append(Route(f"/m{n}", str(path)))
    app = WagiApp(routes)
    try:
        assert len(kept(app.host)) == count
    finally:
        app.close()


def test_entries_linked_into_another_cache_folder_load_there_without_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the tests share the compiled artifacts (conftest's share_entries): an entry
    hard-linked, with its record, into another cache's folder is loaded there."""
    from conftest import share_entries

    with Host(cache_dir=tmp_path / "a") as host:
        assert host.run(HELLO).exit_code == 0
    share_entries(tmp_path / "a" / "compiled", tmp_path / "shared")
    share_entries(tmp_path / "shared", tmp_path / "b" / "compiled")
    (made,) = entries(tmp_path / "a")
    (linked,) = entries(tmp_path / "b")
    assert linked.stat().st_ino == made.stat().st_ino
    compiled = count_compiles(monkeypatch)
    with Host(cache_dir=tmp_path / "b") as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    assert compiled == []


# -- a component's description, kept in its record ---------------------------------

HELLO_COMPONENT = HELLO.with_name("hello-world.component.wasm")
CALC = HELLO.with_name("calc.component.wasm")


def component_record(cache: Path, source: Path) -> Path:
    key = wasmhost._hashing.content_key(source.read_bytes())
    [entry] = [e for e in entries(cache) if e.name.startswith(key)]
    assert "-component-" in entry.name
    return entry.with_name(entry.name + ".meta")


def no_describing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("described from its types although its record kept it")

    monkeypatch.setattr(wasmhost._host.values.component, "describe_component", refuse)


def test_a_components_description_is_kept_with_it_and_used_by_a_new_host(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A component is described from its types once; the record keeps that, so a later
    process neither walks its types nor imports wasmtime.component to run it, and
    finds its functions' types only when a call needs them."""
    with Host() as first:
        described = first.load(CALC)
        functions = sorted(described.functions or {})
    assert b"\ndescription 1 " in component_record(isolated, CALC).read_bytes()
    with monkeypatch.context() as patched:
        no_describing(patched)
        with Host() as second:
            module = second.load(CALC)
            assert (module.kind, module.imports, module.exports) == (
                "component",
                described.imports,
                described.exports,
            )
            assert module.as_dict() == described.as_dict()
    with Host() as third:
        module = third.load(CALC)
        assert third.call(module, "add", 2, 3).values == (5,)
        assert sorted(module.functions or {}) == functions
        assert wasmhost.wave.parse(module, "summarize([1.5, 2.5])") == (
            "summarize",
            [[1.5, 2.5]],
        )


def test_a_cached_component_runs_in_a_new_process_without_wasmtime_component(
    isolated: Path,
) -> None:
    code = (
        "import sys\n"
        "from wasmhost import Host\n"
        f"sys.stdout.buffer.write(Host().run({str(HELLO_COMPONENT)!r}).stdout)\n"
        "heavy = ('wasmtime.component', 'dataclasses', 'inspect')\n"
        "sys.stderr.write(repr(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )
    for _ in range(2):  # the first describes the component, and its record keeps that
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert (done.returncode, done.stdout) == (0, "Hello, World!\n"), done.stderr
    assert done.stderr == "[]"


@pytest.mark.parametrize(
    "kept",
    [
        b"description 1 \xff\xfe\n",  # not UTF-8
        b"description 1 i\x1fwasi:io/poll@0.2.12\x1f\x1finstance\n",  # a field short
        b"description 1 e\x1fadd\x1fweird\x1ffunc()\n",  # no such kind
        b"description 1 x\x1fadd\x1ffunc\x1ffunc()\n",  # neither an import nor an export
        b"description 1 e\x1fadd\x1ffunc\x1ffunc()",  # cut off: no newline
        b"description 9 e\x1fadd\x1ffunc\x1ffunc()\n",  # another version
        b"\n" * 3,
    ],
)
def test_a_malformed_description_is_ignored_and_the_component_described_again(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, kept: bytes
) -> None:
    with Host() as first:
        expected = first.load(CALC).as_dict()
    record = component_record(isolated, CALC)
    first_line = record.read_bytes().split(b"\n")[:2]
    record.write_bytes(b"\n".join(first_line) + b"\n" + kept)
    no_compiling(monkeypatch)  # the entry itself is still good
    with Host() as second:
        module = second.load(CALC)
        assert module.as_dict() == expected
        assert second.call(module, "add", 2, 3).values == (5,)


def test_a_renewed_record_keeps_the_description(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copied cache's record is made anew from the entry's content: with its
    description, which the next host uses."""
    with Host() as host:
        host.run(HELLO_COMPONENT)
    copy = tmp_path / "copied"
    shutil.copytree(isolated, copy)
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(copy))
    before = component_record(copy, HELLO_COMPONENT).read_bytes()
    with Host() as host:
        assert host.run(HELLO_COMPONENT).stdout == b"Hello, World!\n"
    after = component_record(copy, HELLO_COMPONENT).read_bytes()
    assert after != before
    assert after.split(b"\n")[2] == before.split(b"\n")[2]  # the same description
    no_describing(monkeypatch)
    with Host() as host:
        assert host.run(HELLO_COMPONENT).stdout == b"Hello, World!\n"
