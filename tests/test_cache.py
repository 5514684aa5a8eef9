"""The compile cache: reused across processes, robust to damage and to races."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from conftest import HELLO, NBODY

import wasmhost._cache
import wasmhost._engine
import wasmhost._host
from wasmhost import Host

HEADER = 0  # an entry is wasmtime's serialization, exactly (its checks live in .meta)


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "compiled").rglob("*.cwasm"))


def no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("compiled although the cache holds the module")

    monkeypatch.setattr(wasmhost._host, "compile_wasm", refuse)


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
        "import sys, wasmhost._host as h\n"
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
        assert f"wasmtime{wasmhost._engine.wasmtime_version()}" in name
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
    monkeypatch.setattr(wasmhost._engine, "wasmtime_version", lambda: "99.0.0")
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
