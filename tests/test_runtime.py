"""wasmhost-runtime driven as containerd's runc shim drives it (tests/reaper.py plays the
shim: a subreaper that calls create, start, kill, state and delete), and its command
line's answers to wrong, hostile and careless calls. The engines themselves
(containerd, podman, the CRI) are in test_engines.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from wasmhost._runtime import spec as runtime_spec
from wasmhost._runtime.linux import cgroup_path
from wasmhost._runtime.main import parse_signal
from wasmhost._runtime.state import RuntimeFailure

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
REAPER = Path(__file__).parent / "reaper.py"
RUNTIME = str(Path(sys.executable).with_name("wasmhost-runtime"))

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="an OCI runtime's tests need root")
pytestmark = [pytest.mark.root, pytest.mark.slow]


def config(args: list[str], **changes: Any) -> dict[str, Any]:
    """A bundle's config.json as engines write it, for the module at ``args[0]``."""
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
            "cwd": "/",
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        },
    }
    for key, value in changes.items():
        spec[key] = value
    return spec


def bundle(folder: Path, module: Path, args: list[str] | None = None, **changes: Any) -> Path:
    (folder / "rootfs").mkdir(parents=True)
    shutil.copy(module, folder / "rootfs" / module.name)
    (folder / "config.json").write_text(json.dumps(config(args or [f"/{module.name}"], **changes)))
    return folder


def runtime(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One runtime command. Its output goes to files, not pipes: a container's init
    keeps create's stdio (they are the container's), and would hold a pipe open."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(
            [RUNTIME, "--root", str(root), *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            done.args, done.returncode, out.read().decode(), err.read().decode()
        )


def drive(
    root: Path, folder: Path, container_id: str = "c1", kill: tuple[str, float] | None = None
) -> tuple[dict[str, Any], str, str]:
    """Run the container through the stand-in shim: its report, stdout and stderr."""
    report_path = folder / "report.json"
    proc = subprocess.run(
        [sys.executable, str(REAPER), RUNTIME, str(root), str(folder), container_id]
        + ([kill[0], str(kill[1])] if kill else []),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "REAPER_REPORT": str(report_path)},
        timeout=120,
    )
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return report, proc.stdout.decode(), proc.stderr.decode()


def unique_id() -> str:
    """A container id no other test (in another xdist worker) uses: with no cgroupsPath,
    the cgroup is named after the id alone, as runc names it."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "state"


@needs_root
def test_hello_world_runs_as_an_engine_runs_it(tmp_path: Path, root: Path) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm")
    cid = unique_id()
    report, out, err = drive(root, folder, cid)
    assert out == "Hello, World!\n", err
    assert report["status"] == 0
    # The pid file as go-runc reads it: digits, no newline.
    assert report["pid_file"].isdigit()
    created = report["created_state"]
    assert created["status"] == "created"
    assert created["pid"] == int(report["pid_file"])
    assert created["bundle"] == str(folder)
    assert created["ociVersion"].startswith("1.0")
    assert report["stopped_state"]["status"] == "stopped"
    assert report["stopped_state"]["pid"] == 0
    assert report["start"] == 0
    assert report["delete"] == 0
    # delete leaves nothing: no state, no cgroup.
    assert sorted(p.name for p in root.iterdir()) == [".cache"]
    assert not any(Path("/sys/fs/cgroup").glob(f"*/wasmhost-runtime/{cid}"))


@needs_root
def test_the_state_folder_is_private(tmp_path: Path, root: Path) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm")
    created = runtime(root, "create", "--bundle", str(folder), "c1")
    assert created.returncode == 0, created.stderr
    try:
        assert root.stat().st_mode & 0o777 == 0o700
        assert (root / "c1").stat().st_mode & 0o777 == 0o700
        assert json.loads(runtime(root, "state", "c1").stdout)["status"] == "created"
    finally:
        assert runtime(root, "delete", "c1").returncode == 0  # a created one is killed
    assert not (root / "c1").exists()


@needs_root
def test_a_component_runs(tmp_path: Path, root: Path) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.component.wasm")
    report, out, err = drive(root, folder)
    assert (out, report["status"]) == ("Hello, World!\n", 0), err


@needs_root
def test_the_guest_gets_its_args_and_env(tmp_path: Path, root: Path) -> None:
    folder = bundle(tmp_path / "a", ARTIFACTS / "fsprobe.wasm", ["/fsprobe.wasm", "env"])
    report, out, _ = drive(root, folder)
    assert report["status"] == 0
    assert "GREETING=hello" in out.splitlines()
    folder = bundle(tmp_path / "b", ARTIFACTS / "fsprobe.wasm", ["fsprobe.wasm", "args"])
    # A bare name is looked up on the spec's PATH inside the rootfs, as runc does: not there.
    (folder / "rootfs" / "bin").mkdir()
    shutil.move(folder / "rootfs" / "fsprobe.wasm", folder / "rootfs" / "bin" / "fsprobe.wasm")
    report, out, _ = drive(root, folder)
    assert report["status"] == 0
    assert out.split() == ["fsprobe.wasm", "args"]


@needs_root
@pytest.mark.parametrize(("code", "expected"), [("0", 0), ("7", 7)])
def test_the_guests_exit_status_is_the_containers(
    tmp_path: Path, root: Path, code: str, expected: int
) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "fsprobe.wasm", ["/fsprobe.wasm", "exit", code])
    assert drive(root, folder)[0]["status"] == expected


@needs_root
def test_a_trap_exits_134(tmp_path: Path, root: Path, wat: Any) -> None:
    module = wat('(module (func (export "_start") unreachable))', "trap.wasm")
    report, _, err = drive(root, bundle(tmp_path / "b", module))
    assert report["status"] == 134
    assert "wasmhost-runtime:" in err
    assert "unreachable" in err


@needs_root
@pytest.mark.parametrize(("signal", "status"), [("TERM", 143), ("SIGINT", 130), ("9", 137)])
def test_kill_stops_a_sleeping_guest_at_once(
    tmp_path: Path, root: Path, signal: str, status: int
) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "fsprobe.wasm", ["/fsprobe.wasm", "sleep", "60000"])
    report, out, _ = drive(root, folder, kill=(signal, 0.3))
    assert report["status"] == status
    assert "slept" not in out
    # Not a timing test (nox -s bench measures it): a guest left to sleep takes 60 s.
    assert report["after_signal"] < 10


@needs_root
def test_mounts_are_preopened_folders_read_only_as_asked(tmp_path: Path, root: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (inside / "a.txt").write_text("from the host\n")
    mounts = [
        {
            "destination": "/input",
            "type": "bind",
            "source": str(inside),
            "options": ["rbind", "ro"],
        },
        {
            "destination": "/output",
            "type": "bind",
            "source": str(outside),
            "options": ["rbind", "rw"],
        },
        {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["bind"]},
    ]

    def probe(name: str, *args: str) -> tuple[int, str, str]:
        folder = bundle(
            tmp_path / name, ARTIFACTS / "fsprobe.wasm", ["/fsprobe.wasm", *args], mounts=mounts
        )
        report, out, err = drive(root, folder, name)
        return report["status"], out, err

    assert probe("r", "read", "/input/a.txt")[:2] == (0, "from the host\n")
    assert probe("w", "write", "/output/b.txt", "made")[0] == 0
    assert (outside / "b.txt").read_text() == "made"
    assert probe("ro", "write", "/input/c.txt", "no")[0] == 1
    assert not (inside / "c.txt").exists()
    # The root file system is read-only as root.readonly says, and nothing else is there:
    # not the host's files, nor a bind of a single file.
    assert probe("root", "write", "/d.txt", "no")[0] == 1
    assert probe("hosts", "read", "/etc/hosts")[0] == 1
    assert probe("passwd", "read", "/etc/passwd")[0] == 1
    assert probe("up", "read", "/../../../../etc/passwd")[0] == 1


@needs_root
def test_a_symlink_in_the_rootfs_cannot_lead_out(tmp_path: Path, root: Path) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm", ["/entry"])
    # An absolute link is resolved inside the rootfs: /entry -> /hello-world.wasm works...
    (folder / "rootfs" / "entry").symlink_to("/hello-world.wasm")
    report, out, err = drive(root, folder)
    assert (report["status"], out) == (0, "Hello, World!\n"), err
    # ...and one that climbs out finds nothing outside it.
    outside = tmp_path / "outside.wasm"
    shutil.copy(ARTIFACTS / "hello-world.wasm", outside)
    escape = f"../../../../../..{outside}"
    marked = {"run.oci.handler": "wasm"}
    folder = bundle(tmp_path / "c", ARTIFACTS / "hello-world.wasm", ["/entry"], annotations=marked)
    (folder / "rootfs" / "entry").symlink_to(escape)
    report, _, err = drive(root, folder, "c2")
    assert report == {"create": 1}
    assert "/entry: no such module in the container's root file system" in err
    # Not marked Wasm, it is not Wasm (its entrypoint is not there): runc is given it.
    folder = bundle(tmp_path / "d", ARTIFACTS / "hello-world.wasm", ["/entry"])
    (folder / "rootfs" / "entry").symlink_to(escape)
    report, _, err = drive(root, folder, "c3")
    assert report == {"create": 1}
    assert "runc create failed" in err


@needs_root
def test_wasmhost_limits_come_from_annotations(tmp_path: Path, root: Path) -> None:
    folder = bundle(
        tmp_path / "t",
        ARTIFACTS / "fsprobe.wasm",
        ["/fsprobe.wasm", "sleep", "60000"],
        annotations={"io.wasmhost.timeout": "300ms"},
    )
    report, _, err = drive(root, folder, "t")
    assert report["status"] == 134
    assert "timeout" in err
    folder = bundle(
        tmp_path / "m",
        ARTIFACTS / "fsprobe.wasm",
        ["/fsprobe.wasm", "alloc", "64"],
        annotations={"io.wasmhost.max-memory": "16MiB"},
    )
    report, _, err = drive(root, folder, "m")
    assert report["status"] == 134, err


@needs_root
def test_a_cgroup_memory_limit_caps_the_guest(tmp_path: Path, root: Path) -> None:
    linux = {"resources": {"memory": {"limit": 96 << 20}}, "cgroupsPath": "/wasmhost-test/m1"}
    folder = bundle(
        tmp_path / "m", ARTIFACTS / "fsprobe.wasm", ["/fsprobe.wasm", "alloc", "128"], linux=linux
    )
    report, _, err = drive(root, folder, "m1")
    assert report["status"] == 134, err
    assert "memory" in err
    assert not any(Path("/sys/fs/cgroup").glob("*/wasmhost-test"))


@needs_root
def test_privileges_are_dropped_to_the_specs_user(root: Path) -> None:
    # A bundle the guest's user may read (pytest's own folders are root's alone).
    tmp_path = Path(tempfile.mkdtemp(prefix="wasmhost-runtime-"))
    tmp_path.chmod(0o755)
    writable = tmp_path / "w"
    writable.mkdir(mode=0o755)  # root's: only root may write
    mounts = [{"destination": "/w", "type": "bind", "source": str(writable), "options": ["rbind"]}]
    spec = config(["/fsprobe.wasm", "write", "/w/x", "no"])
    spec["process"]["user"] = {"uid": 65534, "gid": 65534}
    folder = bundle(
        tmp_path / "b",
        ARTIFACTS / "fsprobe.wasm",
        spec["process"]["args"],
        mounts=mounts,
        process=spec["process"],
    )
    try:
        report, _, err = drive(root, folder)
        assert report["status"] == 1
        assert "denied" in err.lower()
        assert not (writable / "x").exists()
    finally:
        shutil.rmtree(tmp_path)


# The command line's answers -------------------------------------------------------


@needs_root
@pytest.mark.parametrize("bad", ["a/b", "..", ".cache", "a b", "", "x" * 251, "a\u0663"])
def test_an_id_that_is_a_path_is_refused(tmp_path: Path, root: Path, bad: str) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm")
    log = tmp_path / "log.json"
    done = subprocess.run(
        [
            RUNTIME,
            "--root",
            str(root),
            "--log",
            str(log),
            "--log-format",
            "json",
            "create",
            "--bundle",
            str(folder),
            bad,
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr
    # containerd's shim reads the last JSON error line of --log.
    assert json.loads(log.read_text().splitlines()[-1])["level"] == "error"
    assert not root.exists() or list(root.iterdir()) == []


HOSTILE = {
    "not json": b"{",
    "not an object": b"[1]",
    "deeply nested": b"[" * 100000 + b"]" * 100000,
    "too large": b'{"ociVersion": "1.0.2", "x": "' + b"a" * (5 << 20) + b'"}',
    "old version": json.dumps({**config(["/hello-world.wasm"]), "ociVersion": "0.9"}).encode(),
    "root leaves the bundle": json.dumps(
        {**config(["/hello-world.wasm"]), "root": {"path": "../.."}}
    ).encode(),
    "no module": json.dumps(
        config(["/nothing.wasm"], annotations={"run.oci.handler": "wasm"})
    ).encode(),
    "user namespace": json.dumps(
        config(["/hello-world.wasm"], linux={"namespaces": [{"type": "user"}]})
    ).encode(),
    "unknown namespace": json.dumps(
        config(["/hello-world.wasm"], linux={"namespaces": [{"type": "nope"}]})
    ).encode(),
    "hooks": json.dumps(
        config(["/hello-world.wasm"], hooks={"prestart": [{"path": "/bin/true"}]})
    ).encode(),
    "typo in an annotation": json.dumps(
        config(["/hello-world.wasm"], annotations={"io.wasmhost.timout": "1"})
    ).encode(),
    "bad limit": json.dumps(
        config(["/hello-world.wasm"], annotations={"io.wasmhost.fuel": "-1"})
    ).encode(),
    "bad rlimit": json.dumps(
        config(
            ["/hello-world.wasm"],
            process={
                **config(["/hello-world.wasm"])["process"],
                "rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}],
            },
        )
    ).encode(),
    "rlimit above the hard limit": json.dumps(
        config(
            ["/hello-world.wasm"],
            process={
                **config(["/hello-world.wasm"])["process"],
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1 << 40, "hard": 1 << 40}],
            },
        )
    ).encode(),
    "cgroup path out of the hierarchy": json.dumps(
        config(["/hello-world.wasm"], linux={"cgroupsPath": "/../../x"})
    ).encode(),
    "terminal": json.dumps(
        config(
            ["/hello-world.wasm"],
            process={**config(["/hello-world.wasm"])["process"], "terminal": True},
        )
    ).encode(),
}


@needs_root
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_or_broken_config_gets_one_line(tmp_path: Path, root: Path, case: str) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm")
    (folder / "config.json").write_bytes(HOSTILE[case])
    cid = unique_id()
    done = runtime(root, "create", "--bundle", str(folder), cid)
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("wasmhost-runtime: ")
    assert "Traceback" not in done.stderr
    # Nothing is left behind: no container, no cgroup.
    assert not (root / cid).exists()
    assert not any(Path("/sys/fs/cgroup").glob(f"*/wasmhost-runtime/{cid}"))


@needs_root
@pytest.mark.parametrize("what", ["config", "entrypoint"])
def test_a_fifo_where_a_file_should_be_does_not_block(
    tmp_path: Path, root: Path, what: str
) -> None:
    folder = bundle(
        tmp_path / "b", ARTIFACTS / "hello-world.wasm", annotations={"run.oci.handler": "wasm"}
    )
    target = folder / "config.json" if what == "config" else folder / "rootfs" / "hello-world.wasm"
    target.unlink()
    os.mkfifo(target)
    done = runtime(root, "create", "--bundle", str(folder), unique_id())
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "not a regular file" in done.stderr or "not a WebAssembly module" in done.stderr


@needs_root
def test_a_state_folder_someone_else_owns_is_refused(tmp_path: Path, root: Path) -> None:
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm")
    done = runtime(root, "create", "--bundle", str(folder), "c1")
    assert done.returncode == 1
    assert "is not a folder of uid 0 that only it may write" in done.stderr
    root.chmod(0o777)
    os.chown(root, 0, 0)
    done = runtime(root, "create", "--bundle", str(folder), "c1")
    assert done.returncode == 1
    assert "is not a folder of uid 0 that only it may write" in done.stderr
    # The commands that only read and signal refuse it too.
    assert "only it may write" in runtime(root, "state", "c1").stderr


@needs_root
def test_commands_answer_as_runc_does(tmp_path: Path, root: Path) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "fsprobe.wasm", ["/fsprobe.wasm", "sleep", "60000"])
    # Unknown ids: delete --force succeeds (podman cleans up so), the rest fail.
    assert runtime(root, "delete", "--force", "nosuch").returncode == 0
    for args in (
        ["delete", "nosuch"],
        ["state", "nosuch"],
        ["kill", "nosuch", "9"],
        ["start", "nosuch"],
    ):
        done = runtime(root, *args)
        assert (done.returncode, done.stdout) == (1, ""), args
        assert done.stderr == "wasmhost-runtime: container does not exist\n"
    assert runtime(root, "create", "--bundle", str(folder), "c1").returncode == 0
    try:
        again = runtime(root, "create", "--bundle", str(folder), "c1")
        assert again.returncode == 1
        assert "already exists" in again.stderr
        assert runtime(root, "start", "c1").returncode == 0
        assert json.loads(runtime(root, "state", "c1").stdout)["status"] == "running"
        assert "already running" in runtime(root, "start", "c1").stderr
        assert "not stopped" in runtime(root, "delete", "c1").stderr
        ps = runtime(root, "ps", "--format", "json", "c1")
        assert json.loads(ps.stdout) == [json.loads(runtime(root, "state", "c1").stdout)["pid"]]
        assert "not supported for a Wasm container" in runtime(root, "exec", "c1").stderr
        assert runtime(root, "kill", "c1", "KILL").returncode == 0
        for _ in range(100):
            if json.loads(runtime(root, "state", "c1").stdout)["status"] == "stopped":
                break
        stopped = runtime(root, "kill", "c1", "9")
        assert stopped.returncode == 1
        assert "container not running" in stopped.stderr
        assert runtime(root, "kill", "--all", "c1", "9").returncode == 0
        assert "has stopped" in runtime(root, "start", "c1").stderr
    finally:
        assert runtime(root, "delete", "--force", "c1").returncode == 0
    assert not (root / "c1").exists()


@needs_root
def test_a_crash_between_create_and_start_is_cleaned_up_by_delete(
    tmp_path: Path, root: Path
) -> None:
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm")
    assert runtime(root, "create", "--bundle", str(folder), "c1").returncode == 0
    state = json.loads(runtime(root, "state", "c1").stdout)
    os.kill(state["pid"], 9)  # the init dies before start (and create's record is half there)
    (root / "c1" / "wasmhost.json").write_text("{half")
    done = runtime(root, "state", "c1")
    assert done.returncode == 1
    assert "delete --force c1" in done.stderr
    assert runtime(root, "delete", "--force", "c1").returncode == 0
    assert not (root / "c1").exists()


@needs_root
def test_state_and_delete_without_root_find_the_container(tmp_path: Path, root: Path) -> None:
    """podman asks for state and cleans up without --root (and with no PATH)."""
    folder = bundle(tmp_path / "b", ARTIFACTS / "hello-world.wasm")
    name = f"wasmhost-test-{os.getpid()}"
    assert runtime(root, "create", "--bundle", str(folder), name).returncode == 0
    bare = {"env": {}, "capture_output": True, "text": True, "timeout": 60}
    state = subprocess.run([RUNTIME, "state", name], **bare)  # type: ignore[call-overload]
    assert json.loads(state.stdout)["status"] == "created"
    assert subprocess.run([RUNTIME, "delete", "--force", name], **bare).returncode == 0  # type: ignore[call-overload]
    assert not (root / name).exists()
    assert not Path(f"/run/wasmhost-runtime/.by-id/{name}").exists()


def test_the_command_line_and_its_mistakes() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RUNTIME, *args], capture_output=True, text=True, timeout=60)

    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("wasmhost-runtime version ")
    features = json.loads(run("features").stdout)
    assert features["ociVersionMin"] == "1.0.0"
    assert "bind" in features["mountOptions"]
    for args, text in [
        ((), "usage:"),
        (("--nope", "state", "x"), "flag provided but not defined: --nope"),
        (("frobnicate", "x"), "no such command: frobnicate"),
        (("state",), "requires a container ID"),
        (("--root",), "flag needs an argument"),
    ]:
        done = run(*args)
        assert done.returncode == 1, args
        assert text in done.stderr, (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1


def test_signals_are_read_as_runc_reads_them() -> None:
    assert [parse_signal(s) for s in ("9", "KILL", "sigterm", "SIGINT", "hup")] == [9, 9, 15, 2, 1]
    for bad in ("0", "99", "NOPE", "-9"):
        with pytest.raises(RuntimeFailure):
            parse_signal(bad)


def test_which_containers_are_wasm(tmp_path: Path) -> None:
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(b"\0asm\x01\0\0\0")
    native = tmp_path / "pause"
    native.write_bytes(b"\x7fELF")
    is_wasm = runtime_spec.is_wasm
    assert is_wasm({}, str(wasm))
    assert not is_wasm({}, str(native))
    assert not is_wasm({}, None)
    # crun's annotations, its -smart variants by the module's bytes.
    assert is_wasm({"run.oci.handler": "wasm"}, str(native))
    assert not is_wasm({"run.oci.handler": "krun"}, str(wasm))
    assert is_wasm({"run.oci.handler": "wasm-smart"}, str(wasm))
    assert not is_wasm({"run.oci.handler": "wasm-smart"}, str(native))
    assert is_wasm({"module.wasm.image/variant": "compat"}, str(native))
    assert not is_wasm({"module.wasm.image/variant": "compat-smart"}, str(native))
    # The pod's sandbox is native whatever the pod's annotations say.
    sandbox = {"io.kubernetes.cri.container-type": "sandbox", "run.oci.handler": "wasm"}
    assert not is_wasm(sandbox, str(wasm))


def test_cgroup_paths_as_engines_write_them() -> None:
    assert cgroup_path("/default/c1", "c1", False) == "default/c1"
    assert cgroup_path("", "c1", False) == "wasmhost-runtime/c1"
    assert (
        cgroup_path("kubepods-besteffort.slice:cri-containerd:abc", "abc", True)
        == "kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope"
    )


def get_in_namespace(pid: int, url: str) -> str:
    """GET ``url`` from inside process ``pid``'s network namespace (nsenter, util-linux),
    retrying while the server starts."""
    fetch = (
        "import sys, time, urllib.request\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.05)\n"
    )
    done = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", fetch, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout


@needs_root
def test_a_wagi_handler_is_served_in_the_containers_network(tmp_path: Path, root: Path) -> None:
    folder = bundle(
        tmp_path / "b",
        ARTIFACTS / "http-server.wasm",
        annotations={"io.wasmhost.serve": "8080"},
    )
    assert runtime(root, "create", "--bundle", str(folder), "web").returncode == 0
    try:
        assert runtime(root, "start", "web").returncode == 0
        pid = json.loads(runtime(root, "state", "web").stdout)["pid"]
        assert get_in_namespace(pid, "http://127.0.0.1:8080/") == "Hello, World!\n"
        # Its own network namespace: nothing listens on the host's 8080 for it.
        host_ns = os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{pid}/ns/net") != host_ns
        assert runtime(root, "kill", "web", "TERM").returncode == 0
        for _ in range(200):
            if json.loads(runtime(root, "state", "web").stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert json.loads(runtime(root, "state", "web").stdout)["status"] == "stopped"
    finally:
        assert runtime(root, "delete", "--force", "web").returncode == 0


@needs_root
def test_a_serving_container_joins_the_network_it_is_given(tmp_path: Path, root: Path) -> None:
    """A pod's containers share the sandbox's network namespace: the spec names it."""
    sleeper = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    try:
        for _ in range(100):
            netns = f"/proc/{sleeper.pid}/ns/net"
            if os.readlink(netns) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.02)
        linux = {"namespaces": [{"type": "network", "path": netns}, {"type": "pid"}]}
        folder = bundle(
            tmp_path / "b",
            ARTIFACTS / "http-server.wasm",
            annotations={"io.wasmhost.serve": "127.0.0.1:8081"},
            linux=linux,
        )
        assert runtime(root, "create", "--bundle", str(folder), "web").returncode == 0
        try:
            assert runtime(root, "start", "web").returncode == 0
            pid = json.loads(runtime(root, "state", "web").stdout)["pid"]
            assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(netns)
            # The pod's loopback was down (a bare new namespace): bring it up as CNI would.
            subprocess.run(
                ["nsenter", f"--net={netns}", "ip", "link", "set", "lo", "up"], check=True
            )
            assert get_in_namespace(sleeper.pid, "http://127.0.0.1:8081/") == "Hello, World!\n"
        finally:
            assert runtime(root, "delete", "--force", "web").returncode == 0
    finally:
        sleeper.kill()
        sleeper.wait()
