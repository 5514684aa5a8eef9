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
    if not _spec.is_wasm(found, module):
        native = native_runtime()
        _state.mark_native(root, container_id, native)
        _state.write_index(root, container_id)
        hand_over(native, root, invocation, forget=False)
    if flags.get("console-socket"):
        raise RuntimeFailure(
            "a terminal is not supported for Wasm containers; run without -t (--tty)"
        )
    plan = _spec.plan(bundle, config, container_id, bool(invocation.globals.get("systemd-cgroup")))
    container = Container(root, container_id)
    try:
        os.mkdir(container.folder, 0o700)
    except FileExistsError:
        raise RuntimeFailure("container with given ID already exists") from None
    try:
        return _fork_init(container, plan, flags.get("pid-file"))
    except BaseException:
        import shutil

        shutil.rmtree(container.folder, ignore_errors=True)
        raise


def _fork_init(container: Container, plan: _spec.Plan, pid_file: object) -> int:
    from .linux import missing_cgroups, remove_cgroups

    os.mkfifo(container.fifo, 0o600)
    # What the init will make, recorded apart from the state (which is rewritten) so
    # that delete removes it whatever happens from here on.
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
    pid = os.fork()
    if pid == 0:  # the init
        os.close(read)
        from .init import init

        init(plan, container.id, container.root, container.fifo, write)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    try:
        message = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        message = {}
    if not message.get("ok"):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        remove_cgroups(cgroups)
        raise RuntimeFailure(
            message.get("error") or "the container's init ended before it was ready"
        )
    container.record["pid"] = pid
    container.record["start_time"] = _state.start_time(pid)
    container.save()
    _state.write_index(container.root, container.id)
    if isinstance(pid_file, str) and pid_file:
        path = os.path.abspath(pid_file)
        _state.write_file(path, str(pid), 0o644)
    return 0
