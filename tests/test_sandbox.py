"""The guest gets nothing it was not given: directories, read-only mounts, escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FSPROBE, WORDCOUNT

from wasmhost import ConfigError, Dir, Host


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "file.txt").write_text("original\n")
    (root / "sub").mkdir()
    return root


def probe(host: Host, *args: str, **options: object) -> tuple[int, bytes, bytes]:
    result = host.run(FSPROBE, list(args), **options)  # type: ignore[arg-type]
    return result.exit_code, result.stdout, result.stderr


def test_no_directory_unless_given(host: Host) -> None:
    code, _, err = probe(host, "list", "/")
    assert code == 1
    assert b"fsprobe:" in err
    code, _, _ = probe(host, "read", "/etc/passwd")
    assert code == 1


def test_a_mounted_directory_is_readable_and_writable(host: Host, data: Path) -> None:
    assert probe(host, "read", "/data/file.txt", dirs={"/data": data})[1] == b"original\n"
    assert probe(host, "write", "/data/new.txt", "hi", dirs={"/data": data})[0] == 0
    assert (data / "new.txt").read_text() == "hi"
    assert probe(host, "list", "/data", dirs={"/data": data})[1] == b"file.txt\nnew.txt\nsub\n"


@pytest.mark.parametrize(
    "operation",
    [
        ("create", "/data/created.txt"),
        ("write", "/data/file.txt", "changed"),
        ("append", "/data/file.txt", "more"),
        ("truncate", "/data/file.txt"),
        ("rename", "/data/file.txt", "/data/moved.txt"),
        ("remove", "/data/file.txt"),
        ("mkdir", "/data/newdir"),
        ("rmdir", "/data/sub"),
    ],
    ids=lambda op: op[0],
)
def test_a_read_only_mount_refuses_every_change(
    host: Host, data: Path, operation: tuple[str, ...]
) -> None:
    before = sorted(os.listdir(data))
    code, out, err = probe(host, *operation, dirs={"/data": Dir(data, read_only=True)})
    assert code == 1, out
    assert err.startswith(b"fsprobe: ")
    assert sorted(os.listdir(data)) == before
    assert (data / "file.txt").read_text() == "original\n"
    # Reading still works.
    ro = {"/data": Dir(data, read_only=True)}
    assert probe(host, "read", "/data/file.txt", dirs=ro)[1] == b"original\n"


def test_dotdot_does_not_leave_the_mount(host: Host, data: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    code, out, _ = probe(host, "read", "/data/../secret.txt", dirs={"/data": data})
    assert code == 1
    assert b"secret" not in out
    code, out, _ = probe(host, "read", "/data/sub/../../secret.txt", dirs={"/data": data})
    assert code == 1


def test_symlinks_do_not_leave_the_mount(host: Host, data: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (data / "abs-link").symlink_to(tmp_path / "secret.txt")
    (data / "rel-link").symlink_to("../secret.txt")
    (data / "dir-link").symlink_to(tmp_path)
    (data / "inside-link").symlink_to("file.txt")
    for path in ("/data/abs-link", "/data/rel-link", "/data/dir-link/secret.txt"):
        code, out, _ = probe(host, "read", path, dirs={"/data": data})
        assert code == 1, path
        assert b"secret" not in out
    # A link that stays inside is followed.
    assert probe(host, "read", "/data/inside-link", dirs={"/data": data})[1] == b"original\n"
    # Writing through an escaping link does not reach the target either.
    probe(host, "write", "/data/rel-link", "pwned", dirs={"/data": data})
    assert (tmp_path / "secret.txt").read_text() == "secret"


def test_read_only_input_and_writable_output(host: Host, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = host.run(WORDCOUNT, dirs={"/input": Dir(data, read_only=True), "/output": out})
    assert result.exit_code == 0
    assert (out / "report.txt").read_text().endswith("1 1 9 total\n")
    refused = host.run(WORDCOUNT, dirs={"/input": data, "/output": Dir(out, read_only=True)})
    assert refused.exit_code == 2
    assert b"cannot write /output/report.txt" in refused.stderr


def test_a_missing_host_directory_is_a_config_error(host: Host, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        host.run(FSPROBE, ["list", "/x"], dirs={"/x": tmp_path / "missing"})
    (tmp_path / "plain").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        host.run(FSPROBE, ["list", "/x"], dirs={"/x": tmp_path / "plain"})


def test_no_network_sockets(host: Host, wat: object) -> None:
    """WASI preview 1 has sock_accept/recv/send only on preopened sockets; none are given."""
    import wasmtime

    module = wasmtime.wat2wasm("""
      (module
        (import "wasi_snapshot_preview1" "sock_accept"
          (func $accept (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (call $exit (call $accept (i32.const 3) (i32.const 0) (i32.const 0)))))
    """)
    # errno 8 is EBADF: descriptor 3 does not exist because nothing was preopened.
    assert host.run(module).exit_code == 8
