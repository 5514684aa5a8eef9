"""``create``: decide Wasm or native, then (Wasm) fork the init and wait until it is
set up, record the container and write the pid file; the init is left waiting for
``start``, a child the engine's subreaper inherits."""

from __future__ import annotations

import json
import os
import signal
from typing import TYPE_CHECKING

from . import spec as _spec
from . import state as _state
from .native import hand_over, native_runtime
from .state import Container, RuntimeFailure

if TYPE_CHECKING:
    from .command import Invocation


def create(invocation: Invocation, root: str, container_id: str) -> int:
    flags = invocation.flags
    bundle = os.path.abspath(str(flags.get("bundle") or os.getcwd()))
    config = _spec.read_config(bundle)
    found = _spec.annotations_of(config)
    rootfs, _ = _spec.rootfs(bundle, config)
    module, _, _ = _spec.entrypoint(rootfs, config)
    _state.prepare_root(root)
    container = Container(root, container_id)
    if container.exists() or _state.native_marker(root, container_id):
        raise RuntimeFailure("container with given ID already exists")
    if not _spec.is_wasm(found, module):
        native = native_runtime()

        def record(status: int) -> None:
            if status == 0:  # runc has it: its later commands go to runc too
                _state.mark_native(root, container_id, native)
                _state.write_index(root, container_id)

        hand_over(native, root, invocation, record)
    if flags.get("console-socket"):
        raise RuntimeFailure(
            "a terminal is not supported for Wasm containers; run without -t (--tty)"
        )
    plan = _spec.plan(bundle, config, container_id, bool(invocation.globals.get("systemd-cgroup")))
    try:
        os.mkdir(container.folder, 0o700)
    except FileExistsError:
        raise RuntimeFailure("container with given ID already exists") from None
    init_pid = 0
    cgroups: list[str] = []
    try:
        from .linux import missing_cgroups

        os.mkfifo(container.fifo, 0o600)
        # What the init will make, recorded apart from the state (which is rewritten)
        # so that delete removes it whatever happens from here on.
        cgroups = missing_cgroups(plan.cgroups_path)
        _state.write_file(os.path.join(container.folder, _state.CGROUPS), json.dumps(cgroups))
        container.record = {
            "id": container.id,
            "bundle": plan.bundle,
            "rootfs": plan.rootfs,
            "created": _state.now(),
            "annotations": plan.annotations,
            "pid": 0,
        }
        container.save()
        read, write = os.pipe2(os.O_CLOEXEC)
        init_pid = os.fork()
        if init_pid == 0:  # the init: never returns
            os.close(read)
            from .init import init

            init(plan, container.id, container.root, container.fifo, write)
        os.close(write)
        # Recorded at once: a create killed from here on leaves an init delete can kill.
        container.record["pid"] = init_pid
        container.record["start_time"] = _state.start_time(init_pid)
        container.save()
        _wait_ready(read)
        pid_file = flags.get("pid-file")
        if isinstance(pid_file, str) and pid_file:
            try:
                _state.write_file(os.path.abspath(pid_file), str(init_pid), 0o644)
            except OSError as exc:
                raise RuntimeFailure(
                    f"cannot write the pid file {pid_file}: {exc.strerror}"
                ) from None
        _state.write_index(root, container_id)
    except BaseException:
        _undo(container, init_pid, cgroups)
        raise
    return 0


def _wait_ready(read: int) -> None:
    """What the init reports: ready, or the one line saying why not."""
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    try:
        message = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        message = {}
    if not isinstance(message, dict) or not message.get("ok"):
        error = message.get("error") if isinstance(message, dict) else None
        raise RuntimeFailure(str(error or "the container's init ended before it was ready"))


def _undo(container: Container, init_pid: int, cgroups: list[str]) -> None:
    """A create that failed leaves nothing: its init killed and reaped, its cgroups,
    state and index entry removed."""
    import shutil

    from .linux import remove_cgroups

    if init_pid > 0:
        try:
            os.kill(init_pid, signal.SIGKILL)
            os.waitpid(init_pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    remove_cgroups(cgroups)
    shutil.rmtree(container.folder, ignore_errors=True)
    _state.drop_index(container.root, container.id)
