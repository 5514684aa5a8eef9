"""``wasmhost cache``: ls, du, prune and clear over the compile cache and the store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner, Result
from conftest import HELLO, NBODY, count_compiles, wasmhost_cli
from registry import Registry

from wasmhost import Host, RegistryClient
from wasmhost._cli import cli
from wasmhost._oci.reference import parse_reference
from wasmhost._oci.store import Store

DAY = 86400

pytestmark = pytest.mark.own_cache  # lists, prunes and clears it: it starts empty


def cache(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["cache", *args])
    assert result.exit_code == 0, result.output
    return result


def compiled(root: Path) -> list[Path]:
    return sorted((root / "compiled").rglob("*.cwasm"))


def distinct(n: int) -> bytes:
    return wasmtime.wat2wasm(
        f'(module (memory (export "memory") 1) (func (export "_start") i32.const {n} drop))'
    )


def last_used(entry: Path, days_ago: float) -> None:
    """Make a compile cache entry look last used ``days_ago`` (its record's time: the
    entry's own is part of what the record checks)."""
    then = time.time() - days_ago * DAY
    os.utime(entry.with_name(entry.name + ".meta"), (then, then))


def test_ls_and_du_show_entries_sizes_and_totals(isolated: Path) -> None:
    with Host() as host:
        host.run(HELLO)
        host.run(NBODY, ["1"])
    listing = cache("ls").output
    lines = listing.splitlines()
    assert lines[0].split() == ["CACHE", "LAST", "USED", "SIZE", "NAME"]
    entries = compiled(isolated)
    assert len(entries) == 2
    for entry in entries:
        assert entry.name.removesuffix(".cwasm") in listing
    assert "paths (keys of module files)" in listing  # the files' keys: one entry
    assert "compile: 3 entries" in listing
    assert "oci: 0 entries, 0 bytes" in listing
    assert f"in {isolated}" in listing
    du = cache("du", "--compile").output
    assert "compile: 3 entries" in du
    assert "oci:" not in du


def test_prune_older_than_removes_only_entries_not_used_since(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Host() as host:
        host.run(HELLO)
        host.run(NBODY, ["1"])
    old, recent = compiled(isolated)
    last_used(old, 40)
    last_used(recent, 10)
    out = cache("prune", "--older-than", "30d").output
    assert "Removed 1 entry" in out
    assert compiled(isolated) == [recent]
    assert not old.with_name(old.name + ".meta").exists()
    # What is left loads as before, without compiling.
    compiles = count_compiles(monkeypatch)
    with Host() as host:
        for module in (HELLO, NBODY):
            host.run(module, ["1"])
    assert len(compiles) == 1


def test_a_load_records_the_entrys_last_use(isolated: Path) -> None:
    with Host() as host:
        host.run(HELLO)
    [entry] = compiled(isolated)
    last_used(entry, 40)
    with Host() as host:
        host.run(HELLO)
    cache("prune", "--older-than", "30d")
    assert compiled(isolated) == [entry]


def test_prune_max_size_keeps_the_most_recently_used(isolated: Path) -> None:
    with Host() as host:
        for n in range(4):
            host.run(distinct(n))
    entries = compiled(isolated)
    for entry, days in zip(entries, [4, 1, 3, 2], strict=True):
        last_used(entry, days)
    biggest = max(e.stat().st_size + e.with_name(e.name + ".meta").stat().st_size for e in entries)
    cache("prune", "--max-size", str(2 * biggest + 100), "--compile")
    assert compiled(isolated) == [entries[1], entries[3]]  # used 1 and 2 days ago


def test_clear_removes_everything_and_runs_still_work(isolated: Path) -> None:
    with Host() as host:
        host.run(HELLO)
    assert compiled(isolated)
    out = cache("clear").output
    assert "0 left" in out
    assert list((isolated / "compiled").rglob("*.meta")) == []
    assert not (isolated / "compiled" / "paths").exists()
    with Host() as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    assert len(compiled(isolated)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune"], "--older-than AGE, --max-size SIZE or both"),
        (["prune", "--older-than", "3x"], "'3x' is not a duration"),
        (["prune", "--max-size", "big"], "'big' is not a size"),
    ],
    ids=["nothing", "bad-age", "bad-size"],
)
def test_prune_refuses_a_missing_or_bad_bound(args: list[str], message: str) -> None:
    done = wasmhost_cli("cache", *args)
    assert done.returncode == 2
    [line] = done.stderr.decode().splitlines()
    assert message in line


def test_cache_commands_run_as_a_process(isolated: Path, tmp_path: Path) -> None:
    with Host() as host:
        host.run(HELLO)
    other = tmp_path / "other"
    done = wasmhost_cli("cache", "ls", "--cache-dir", other)
    assert done.returncode == 0, done.stderr
    assert b"total: 0 entries, 0 bytes" in done.stdout
    done = wasmhost_cli("cache", "clear")
    assert done.returncode == 0, done.stderr
    assert b"Removed 2 entries" in done.stdout  # the entry, and the key of its path
    assert compiled(isolated) == []


# -- the store of pulled artifacts ---------------------------------------------


def pulled(registry: Registry, isolated: Path, name: str, module: Path) -> str:
    ref = f"{registry.host}/cache-cli/{name}:v1"
    with RegistryClient(plain_http=True) as client:
        client.push(module, ref)
        client.fetch(ref)
    return ref


def test_prune_removes_a_stored_artifact_with_its_tag_and_index_entry(
    registry: Registry, isolated: Path
) -> None:
    old = pulled(registry, isolated, "old", HELLO)
    new = pulled(registry, isolated, "new", NBODY)
    store = Store(isolated / "oci")
    listing = cache("ls", "--oci").output
    assert old in listing
    assert new in listing
    assert "compile:" not in listing
    old_manifest = store.recall_tag(parse_reference(old))
    assert old_manifest is not None
    old_blobs = [e.path for e in store.entries() if HELLO.read_bytes() == _read(e.path)]
    old_blobs.append(store.blob_path(old_manifest))
    then = time.time() - 40 * DAY
    for blob in old_blobs:
        os.utime(blob, (then, then))
    cache("prune", "--older-than", "30d", "--oci")
    assert not any(blob.exists() for blob in old_blobs)
    assert store.recall_tag(parse_reference(old)) is None
    assert store.recall_tag(parse_reference(new)) is not None
    index = json.loads((isolated / "oci" / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert names == [new]
    # The one kept runs offline; the one pruned is fetched again.
    with RegistryClient(plain_http=True) as client:
        assert client.fetch(new, offline=True).path.exists()
        assert _read(client.fetch(old).path) == HELLO.read_bytes()


def test_a_use_of_a_stored_artifact_records_its_last_use(
    registry: Registry, isolated: Path
) -> None:
    ref = pulled(registry, isolated, "used", HELLO)
    store = Store(isolated / "oci")
    then = time.time() - 40 * DAY
    for entry in store.entries():
        os.utime(entry.path, (then, then))
    with RegistryClient(plain_http=True) as client:
        client.fetch(ref, offline=True)  # a run of REF, offline: no download
    cache("prune", "--older-than", "30d")
    with RegistryClient(plain_http=True) as client:
        assert _read(client.fetch(ref, offline=True).path) == HELLO.read_bytes()


def test_clear_oci_leaves_an_empty_store_and_the_compile_cache(
    registry: Registry, isolated: Path
) -> None:
    ref = pulled(registry, isolated, "clear", HELLO)
    with Host() as host:
        host.run(HELLO)
    cache("clear", "--oci")
    assert Store(isolated / "oci").entries() == []
    assert json.loads((isolated / "oci" / "index.json").read_text())["manifests"] == []
    assert len(compiled(isolated)) == 1
    with RegistryClient(plain_http=True) as client:
        assert _read(client.fetch(ref).path) == HELLO.read_bytes()


def _read(path: Path) -> bytes:
    return path.read_bytes()


# -- pruning while another process uses an entry --------------------------------

_HOLDER = """
import sys, hashlib
import wasmhost._host.host as h
from wasmhost import Host
host = Host()
module = host.load(sys.argv[1])              # from the disk cache: mapped, not compiled
h.compile_wasm = lambda *a: sys.exit("recompiled")
blob = open(sys.argv[2], "rb")               # a stored blob, open
print("ready", flush=True)
sys.stdin.readline()                          # the parent clears both caches meanwhile
sys.stdout.write(host.run(module).stdout.decode())
print(hashlib.sha256(blob.read()).hexdigest(), flush=True)
"""


def test_an_entry_pruned_while_another_process_uses_it_stays_readable_to_it(
    registry: Registry, isolated: Path
) -> None:
    ref = pulled(registry, isolated, "held", HELLO)
    with RegistryClient(plain_http=True) as client:
        blob = client.fetch(ref).path
    with Host() as host:
        host.run(HELLO)  # compiled and stored
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(HELLO), str(blob)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"ready\n"
        done = wasmhost_cli("cache", "clear")
        assert done.returncode == 0, done.stderr
        assert compiled(isolated) == []
        assert not blob.exists()
        out, err = holder.communicate(b"go\n", timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode == 0, err
    expected = hashlib.sha256(HELLO.read_bytes()).hexdigest()
    assert out.decode().splitlines() == ["Hello, World!", expected]


@pytest.mark.parametrize(
    ("text", "seconds"), [("12h", 12 * 3600), ("30d", 30 * DAY), ("2w", 14 * DAY), ("90m", 5400)]
)
def test_ages_take_hours_days_and_weeks(text: str, seconds: float) -> None:
    from wasmhost._cli.params import parse_duration

    assert parse_duration(text) == seconds
