"""A path the user names for wasmhost to write: a new name or what would be written
(a regular file; a real folder for a folder), nothing else.

``pull -o``, ``bundle``, ``push --oci-layout`` and ``compare --plot`` each
given a symbolic link, a FIFO, a character device, a socket (and a file where
a folder goes): refused in one line, exit status 1, and the thing at the path
left exactly as it was (same inode, same link target, the target's content).
Each case runs in a process of its own with a timeout: writing into a FIFO
without a reader blocks forever.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import HELLO, wasmhost_cli, wasmhost_in_process
from registry import Registry
from test_cli import one_error_line

from wasmhost import RegistryClient, StorageError
from wasmhost._deploy.bundle import make_bundle
from wasmhost._files import atomic_writer

KEEP = b"the link's target: keep me\n"


def _symlink(path: Path) -> None:
    target = path.with_name("target")
    target.write_bytes(KEEP)
    path.symlink_to(target)


def _folder_symlink(path: Path) -> None:
    target = path.with_name("target-folder")
    target.mkdir()
    path.symlink_to(target)


def _dangling(path: Path) -> None:
    path.symlink_to(path.with_name("nowhere"))


def _device(path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # /dev/full's numbers


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the name stays


def _file(path: Path) -> None:
    path.write_bytes(KEEP)


MAKERS: dict[str, Callable[[Path], None]] = {
    "symlink": _symlink,
    "dangling-symlink": _dangling,
    "fifo": os.mkfifo,
    "char-device": _device,
    "socket": _socket,
}
# What stands where a folder goes: a link to a folder too, and a regular file.
FOLDER_MAKERS = {**MAKERS, "folder-symlink": _folder_symlink, "file": _file}
SAID = {
    "symlink": "it is a symbolic link (to ",
    "dangling-symlink": "it is a symbolic link (to ",
    "folder-symlink": "it is a symbolic link (to ",
    "fifo": "it is a FIFO",
    "char-device": "it is a character device",
    "socket": "it is a socket",
    "file": "it is a file",
}


def snapshot(path: Path) -> tuple[object, ...]:
    """What is at ``path``, as a refusal must leave it: the name's inode and kind, a
    link's target, and what the target holds."""
    st = os.lstat(path)
    seen: tuple[object, ...] = (st.st_ino, st.st_mode, st.st_rdev, st.st_size)
    if path.is_symlink():
        seen += (os.readlink(path),)
        if path.resolve().is_file():
            seen += (path.resolve().read_bytes(),)
        elif path.resolve().is_dir():
            seen += (sorted(os.listdir(path.resolve())),)
    return seen


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout holding hello-world as ``v1``: pulled from, no registry needed."""
    folder = tmp_path_factory.mktemp("layout") / "hello"
    done = wasmhost_in_process("push", "--oci-layout", HELLO, f"{folder}:v1")
    assert done.returncode == 0, done.stderr
    return folder


def commands(t: Path, layout: Path) -> dict[str, list[str | Path]]:
    """Each command that writes ``t/out``, a path the user named."""
    out = t / "out"
    return {
        "pull": ["pull", "--oci-layout", f"{layout}:v1", "-o", out],
        "compare-plot": ["compare", "--runtime", "wasmtime", "--plot", out, HELLO],
        "bundle": ["bundle", HELLO, out],
        "push-layout": ["push", "--oci-layout", HELLO, f"{out}:v1"],
    }


FILE_OUTPUTS = ["pull", "compare-plot"]
FOLDER_OUTPUTS = ["bundle", "push-layout"]
CASES = [(c, k) for c in FILE_OUTPUTS for k in MAKERS] + [
    (c, k) for c in FOLDER_OUTPUTS for k in FOLDER_MAKERS
]


@pytest.mark.parametrize(("command", "kind"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_what_is_not_a_file_is_refused_and_left_alone(
    tmp_path: Path, layout: Path, command: str, kind: str
) -> None:
    if command == "compare-plot":
        pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    FOLDER_MAKERS[kind](out)
    before = snapshot(out)
    done = wasmhost_in_process(*commands(tmp_path, layout)[command])
    line = one_error_line(done)
    if command == "bundle" and kind in ("symlink", "file"):
        # click's own check of FOLDER (file_okay=False) comes first: a usage error.
        assert done.returncode == 2
        assert f"'{out}' is a file" in line
    else:
        assert done.returncode == 1
        assert f"at {out}: {SAID[kind]}" in line
        assert "it was left untouched; name a new " in line
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_regular_file_is_replaced_and_a_folder_written_into(tmp_path: Path, layout: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"old")
    done = wasmhost_cli("pull", "--oci-layout", f"{layout}:v1", "-o", out)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == HELLO.read_bytes()
    folder = tmp_path / "folder"
    folder.mkdir()
    done = wasmhost_cli("pull", "--oci-layout", f"{layout}:v1", "-o", folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "hello.wasm").read_bytes() == HELLO.read_bytes()


def test_the_library_refuses_too(tmp_path: Path, layout: Path) -> None:
    out = tmp_path / "out"
    out.symlink_to(HELLO)
    with RegistryClient() as client, pytest.raises(StorageError) as caught:
        client.pull(f"{layout}:v1", out, oci_layout=True)
    assert caught.value.path == str(out)
    assert caught.value.reason == f"it is a symbolic link (to {HELLO})"
    assert os.readlink(out) == str(HELLO)
    folder = tmp_path / "bundle"
    folder.symlink_to(tmp_path)
    with pytest.raises(StorageError, match="it is a symbolic link"):
        make_bundle(HELLO, folder)
    assert folder.is_symlink()


def test_what_appears_during_the_write_is_left_alone(tmp_path: Path) -> None:
    """Checked again just before the rename: a pull takes minutes, the name may change."""
    out = tmp_path / "out"

    def write() -> None:
        with atomic_writer(out, what="the module", output=True) as f:
            f.write(b"data")
            os.mkfifo(out)

    with pytest.raises(StorageError, match="it is a FIFO"):
        write()
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert os.listdir(tmp_path) == ["out"]


def test_compare_plot_says_what_it_wrote(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "c.png"
    done = wasmhost_in_process(
        "compare", "--runs", "1", "--runtime", "wasmtime", "--plot", png, HELLO
    )
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.stderr.decode().splitlines()[-1] == f"Wrote {png}"
    assert f"Wrote {png}" not in done.stdout.decode()  # stdout is the table (or the JSON)


def test_compare_plot_writes_the_name_given(tmp_path: Path) -> None:
    """No ".png" added to a name without it (matplotlib's savefig adds one); the format
    follows a known suffix."""
    pytest.importorskip("matplotlib")
    chart, svg = tmp_path / "chart", tmp_path / "chart.svg"
    for path in (chart, svg):
        done = wasmhost_in_process(
            "compare", "--runs", "1", "--runtime", "wasmtime", "--plot", path, HELLO
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.decode().splitlines()[-1] == f"Wrote {path}"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:1000]
    assert sorted(os.listdir(tmp_path)) == ["chart", "chart.svg"]


def test_compare_plot_fails_when_the_write_fails(tmp_path: Path) -> None:
    """The folder is replaced by a file while the runtimes run: the write fails after
    the comparison, in one line and exit status 1, and the table is still printed."""
    pytest.importorskip("matplotlib")
    folder = tmp_path / "plots"
    folder.mkdir()
    png = folder / "c.png"
    runtime = tmp_path / "swap"
    runtime.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version) echo swap 1.0; exit;; esac\n'
        f"rm -rf '{folder}'; touch '{folder}'; echo 'Hello, World!'\n"
    )
    runtime.chmod(0o755)
    done = wasmhost_in_process(
        "compare", "--runs", "1", "--warmup", "0", "--runtime", f"wasmedge={runtime}",
        "--plot", png, HELLO,
    )  # fmt: skip
    assert done.returncode == 1
    # Into a pipe, compare says which run is going on, one line each: the rest is the error.
    progress = re.compile(r"^[\w-]+: run \d+ of \d+$")
    lines = [x for x in done.stderr.decode().splitlines() if not progress.match(x)]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("Error: ")
    assert str(png) in line
    assert "Not a directory" in line
    assert b"wasmedge" in done.stdout
    assert folder.is_file()


def test_a_pull_from_a_registry_refuses_a_device_before_downloading(
    registry: Registry, tmp_path: Path, isolated: Path
) -> None:
    ref = f"{registry.host}/output-paths:v1"
    with RegistryClient(plain_http=True, cache_dir=tmp_path / "push-cache") as client:
        client.push(HELLO, ref)
    out = tmp_path / "null"
    _device(out)
    before = snapshot(out)
    done = wasmhost_cli("pull", "--plain-http", ref, "-o", out)
    assert done.returncode == 1
    line = one_error_line(done)
    assert line == (
        f"Error: will not write the module at {out}: it is a character device; "
        "it was left untouched; name a new file or a regular file."
    )
    assert snapshot(out) == before
    assert not list(isolated.rglob("sha256/*"))  # refused before anything was fetched
