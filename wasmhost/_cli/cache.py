"""``wasmhost cache``: list, prune and clear the compile cache and the store of pulled
artifacts (each lists and removes its own entries; which to remove is
``_paths.least_recently_used``'s choice, over the caches chosen together)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .._numbers import format_size
from .._paths import CacheEntry, cache_root, least_recently_used
from .errors import reported
from .params import AGE, SIZE, FolderPathType, examples

if TYPE_CHECKING:
    from .._host.engines.cache import CompileCache
    from .._oci.store import Store

FC = TypeVar("FC", bound=Callable[..., Any])

_WHAT = {"compile": "the compile cache", "oci": "the store of pulled artifacts"}


def _choice(func: FC) -> FC:
    """The options every cache command shares: which caches, and where they are."""
    for option in reversed(
        [
            click.option(
                "--compile",
                "compile_cache",
                is_flag=True,
                help="Only the compile cache (compiled modules).",
            ),
            click.option(
                "--oci", is_flag=True, help="Only the store of pulled artifacts (OCI blobs)."
            ),
            click.option(
                "--cache-dir",
                type=FolderPathType(file_okay=False),
                help="The wasmhost cache folder [env: WASMHOST_CACHE_DIR; "
                "default: ~/.cache/wasmhost].",
            ),
        ]
    ):
        func = option(func)
    return func


def _caches(compile_cache: bool, oci: bool, cache_dir: Path | None) -> list[CompileCache | Store]:
    """The caches chosen (neither flag or both: both), in the cache folder."""
    from .._host.engines.cache import CompileCache
    from .._oci.store import Store

    root = cache_dir or cache_root()
    both = compile_cache == oci
    chosen: list[CompileCache | Store] = []
    if both or compile_cache:
        chosen.append(CompileCache(root / "compiled"))
    if both or oci:
        chosen.append(Store(root / "oci"))
    return chosen


def _entries(caches: Sequence[CompileCache | Store]) -> list[CacheEntry]:
    """The entries of ``caches``, the most recently used first."""
    found = [entry for cache in caches for entry in cache.entries()]
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _totals(
    found: Sequence[CacheEntry], caches: Sequence[CompileCache | Store], folder: Path
) -> None:
    from .._host.engines.cache import CompileCache

    for cache in caches:
        kind = "compile" if isinstance(cache, CompileCache) else "oci"
        mine = [e for e in found if e.cache == kind]
        size = format_size(sum(e.size for e in mine))
        click.echo(f"{kind}: {_count(len(mine))}, {size} ({_WHAT[kind]})")
    total = format_size(sum(e.size for e in found))
    click.echo(f"total: {_count(len(found))}, {total} in {folder}")


@click.group(
    short_help="List, prune and clear the compile cache and the store.",
    epilog=examples("wasmhost cache du", "wasmhost cache prune --older-than 30d --max-size 1GiB"),
)
def cache() -> None:
    """List, prune and clear wasmhost's disk caches: the compile cache (compiled
    modules) and the store of pulled artifacts (what `pull` and `run REF` fetched).

    Both are safe to prune while wasmhost runs elsewhere: a run that is using an
    entry keeps it; a later run compiles or fetches it again. The compile cache
    can also cap itself: set WASMHOST_CACHE_MAX_SIZE (e.g. 2GiB).
    """


@cache.command(
    "ls",
    short_help="List the entries, their last use and size.",
    epilog=examples("wasmhost cache ls", "wasmhost cache ls --oci"),
)
@_choice
def ls(compile_cache: bool, oci: bool, cache_dir: Path | None) -> None:
    """List each entry (the most recently used first) with its last use and size, then
    the totals.

    An entry of the compile cache is named by the module's content key and the
    engine it was compiled for; one of the store by its digest, and the references
    whose tags name it.
    """
    chosen = _caches(compile_cache, oci, cache_dir)
    with reported():
        found = _entries(chosen)
    if found:
        click.echo(f"{'CACHE':<8} {'LAST USED':<16} {'SIZE':>10}  NAME")
    for entry in found:
        size = format_size(entry.size)
        click.echo(f"{entry.cache:<8} {_when(entry.last_used):<16} {size:>10}  {entry.name}")
    _totals(found, chosen, cache_dir or cache_root())


@cache.command(
    "du",
    short_help="Show each cache's size.",
    epilog=examples("wasmhost cache du", "wasmhost cache du --compile"),
)
@_choice
def du(compile_cache: bool, oci: bool, cache_dir: Path | None) -> None:
    """Show how many entries each cache holds and their size."""
    chosen = _caches(compile_cache, oci, cache_dir)
    with reported():
        found = _entries(chosen)
    _totals(found, chosen, cache_dir or cache_root())


@cache.command(
    "prune",
    short_help="Remove old entries, or the least recently used.",
    epilog=examples(
        "wasmhost cache prune --older-than 30d", "wasmhost cache prune --max-size 1GiB --compile"
    ),
)
@click.option(
    "--older-than",
    type=AGE,
    help="Remove the entries last used longer ago than AGE (30d, 12h, 90m or seconds).",
)
@click.option(
    "--max-size",
    type=SIZE,
    help="Then remove the least recently used entries until the caches chosen hold "
    "SIZE at most, together (1GiB, 500MB or bytes).",
)
@_choice
def prune_command(
    older_than: float | None,
    max_size: int | None,
    compile_cache: bool,
    oci: bool,
    cache_dir: Path | None,
) -> None:
    """Remove the entries not used lately, or the least recently used ones past a size,
    keeping the most recently used.

    Each entry goes whole: a compiled module with its integrity record; a blob of
    the store with the tags and index.json entries that named it.
    """
    if older_than is None and max_size is None:
        raise click.UsageError(
            "say what to prune with --older-than AGE, --max-size SIZE or both "
            "(`wasmhost cache clear` removes everything)."
        )
    chosen = _caches(compile_cache, oci, cache_dir)
    with reported():
        listed = [(cache, cache.entries()) for cache in chosen]
        every = [entry for _, found in listed for entry in found]
        doomed = {e.path for e in least_recently_used(every, older_than, max_size)}
        removed = [
            gone
            for cache, found in listed
            for gone in cache.remove([e for e in found if e.path in doomed])
        ]
        left = _entries(chosen)
    _report(removed, left)


@cache.command(
    "clear",
    short_help="Remove every entry.",
    epilog=examples("wasmhost cache clear", "wasmhost cache clear --oci"),
)
@_choice
def clear_command(compile_cache: bool, oci: bool, cache_dir: Path | None) -> None:
    """Remove every entry: modules are compiled again and artifacts fetched again when
    next run.
    """
    chosen = _caches(compile_cache, oci, cache_dir)
    with reported():
        removed = [gone for cache in chosen for gone in cache.remove(cache.entries())]
        left = _entries(chosen)
    _report(removed, left)


def _report(removed: Sequence[CacheEntry], left: Sequence[CacheEntry]) -> None:
    freed = format_size(sum(e.size for e in removed))
    kept = format_size(sum(e.size for e in left))
    click.echo(f"Removed {_count(len(removed))} ({freed}); {len(left)} left ({kept}).")


def _count(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"
