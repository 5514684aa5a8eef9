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
from conftest import HELLO, NBODY, count_compiles, wasmhost_cli, wasmhost_in_process
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
    done = wasmhost_in_process("cache", *args)
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
    from wasmhost._numbers import parse_duration

    assert parse_duration(text) == seconds


# -- what review found ----------------------------------------------------------


def test_a_use_online_records_the_manifests_last_use_too(
    registry: Registry, isolated: Path
) -> None:
    """A run of REF asks the registry for the manifest, which is stored already: that
    use counts, or a prune by age would drop the manifest (and its tag) of an artifact
    just run, leaving its layer named by nothing."""
    ref = pulled(registry, isolated, "online", HELLO)
    store = Store(isolated / "oci")
    then = time.time() - 40 * DAY
    for entry in store.entries():
        os.utime(entry.path, (then, then))
    with RegistryClient(plain_http=True) as client:
        client.fetch(ref)  # online: the manifest comes from the registry again
    cache("prune", "--older-than", "30d")
    assert len(store.entries()) == len({e.path for e in store.entries()}) > 0
    with RegistryClient(plain_http=True) as client:
        assert _read(client.fetch(ref, offline=True).path) == HELLO.read_bytes()


def test_clear_never_follows_a_symbolic_link_out_of_the_cache(
    tmp_path: Path, isolated: Path
) -> None:
    victims = tmp_path / "victims"
    for name in ("blobs", "unpacked", "compiled", "tags"):
        (victims / name).mkdir(parents=True)
        (victims / name / "notes.txt").write_text("mine")
        (victims / name / ("ab" * 32)).write_text("mine too")  # named like a blob
    (victims / "compiled" / "sub").mkdir()
    (victims / "compiled" / "sub" / "thing.cwasm").write_text("mine")
    (victims / "compiled" / "paths").mkdir()
    (victims / "compiled" / "paths" / "k").write_text("mine")
    (isolated / "oci" / "blobs").mkdir(parents=True)
    (isolated / "oci" / "blobs" / "sha256").symlink_to(victims / "blobs")
    (isolated / "oci" / "unpacked").symlink_to(victims / "unpacked")
    (isolated / "oci" / "tags").symlink_to(victims / "tags")
    (isolated / "compiled").symlink_to(victims / "compiled")
    before = sorted(p for p in victims.rglob("*"))
    listing = cache("ls").output
    assert "notes.txt" not in listing
    cache("clear")
    assert sorted(p for p in victims.rglob("*")) == before
    # Inside the cache, what is no entry of ours is neither listed nor removed.
    (isolated / "oci" / "blobs" / "sha256").unlink()
    (isolated / "oci" / "blobs" / "sha256").mkdir()
    stray = isolated / "oci" / "blobs" / "sha256" / "notes.txt"
    stray.write_text("mine")
    (isolated / "oci" / "tags").unlink()
    (isolated / "oci" / "tags" / "_tags").mkdir(parents=True)  # a hand-made, odd tag
    (isolated / "oci" / "tags" / "_tags" / "x").write_text("sha256:" + "ab" * 32)
    assert "notes.txt" not in cache("ls").output
    cache("clear")
    assert stray.read_text() == "mine"


def test_an_empty_cache_dir_is_refused_not_taken_as_the_current_folder(
    tmp_path: Path,
) -> None:
    for argv in (["cache", "clear", "--cache-dir", ""], ["run", "--cache-dir", "", str(HELLO)]):
        done = wasmhost_cli(*argv, cwd=tmp_path)
        assert done.returncode == 2, argv
        assert "it is empty; name a folder" in done.stderr.decode()
    assert list(tmp_path.iterdir()) == []


def test_a_bad_cache_cap_does_not_matter_without_the_cache(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMHOST_CACHE_MAX_SIZE", "garbage")
    with Host(cache_dir=False) as host:
        assert host.run(HELLO).stdout == b"Hello, World!\n"
    done = wasmhost_cli("run", "--no-cache", HELLO)
    assert (done.returncode, done.stdout) == (0, b"Hello, World!\n")


def test_the_cache_commands_take_debug_after_them_too(isolated: Path) -> None:
    done = wasmhost_cli("cache", "du", "--debug")
    assert done.returncode == 0, done.stderr


# A prune elsewhere can remove a blob between the moment fetch has checked it and
# the moment pull or run opens it. The race is made certain here by removing the
# blob just as fetch returns (what a concurrent `wasmhost cache clear` would do):
# the command fetches it again instead of failing.


def _pruned_once_after_fetch(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    removed: list[Path] = []
    fetch = RegistryClient.fetch

    def fetch_then_prune(self: RegistryClient, *args: object, **kwargs: object) -> object:
        fetched = fetch(self, *args, **kwargs)  # type: ignore[arg-type]
        if not removed:
            fetched.path.unlink()
            removed.append(fetched.path)
        return fetched

    monkeypatch.setattr(RegistryClient, "fetch", fetch_then_prune)
    return removed


def test_a_pull_whose_blob_is_pruned_meanwhile_fetches_it_again(
    registry: Registry, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = pulled(registry, isolated, "raced-pull", HELLO)
    removed = _pruned_once_after_fetch(monkeypatch)
    with RegistryClient(plain_http=True) as client:
        client.pull(ref, tmp_path / "out.wasm")
    assert removed
    assert (tmp_path / "out.wasm").read_bytes() == HELLO.read_bytes()


def test_a_run_whose_blob_is_pruned_meanwhile_fetches_it_again(
    registry: Registry,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ref = pulled(registry, isolated, "raced-run", HELLO)
    removed = _pruned_once_after_fetch(monkeypatch)
    result = CliRunner().invoke(cli, ["run", "--plain-http", ref])
    assert removed
    assert result.exit_code == 0, result.output
    assert capfd.readouterr().out == "Hello, World!\n"  # the guest writes to fd 1 itself


def test_a_blob_pruned_between_its_fill_and_its_check_is_fetched_again(
    registry: Registry, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = pulled(registry, isolated, "raced-check", HELLO)
    fill = Store.fill
    removed: list[Path] = []

    def fill_then_prune(self: Store, digest: str, size: int, fetch: object) -> Path:
        path = fill(self, digest, size, fetch)  # type: ignore[arg-type]
        if not removed and digest != Store(isolated / "oci").recall_tag(parse_reference(ref)):
            path.unlink()
            removed.append(path)
        return path

    monkeypatch.setattr(Store, "fill", fill_then_prune)
    with RegistryClient(plain_http=True) as client:
        assert _read(client.fetch(ref).path) == HELLO.read_bytes()
    assert removed
