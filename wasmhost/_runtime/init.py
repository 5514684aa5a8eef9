"""A Wasm container's init: the process ``create`` forks, whose pid the engine waits on.

In order: its own session (conmon kills the init's process group); the namespaces the
spec names, while this process has one thread; the cgroup (the engine reads it from
the init's pid once ``create`` returns); rlimits; the module loaded and compiled
(from the cache); then "ready" to ``create``. It waits on the exec FIFO for ``start``,
drops privileges, and runs the guest with the container's stdio, exiting with the
guest's status. A serving container (``io.wasmhost.serve``) runs ``wasmhost serve``
instead, in the container's network namespace.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, NoReturn

from . import linux
from .spec import Plan
from .state import CACHE

# Exits of the init that are not the guest's: set-up failed after start.
_FAILED = 1


def init(plan: Plan, container_id: str, root: str, fifo: str, ready: int) -> NoReturn:
    """The forked child. Reports ``{"ok": true}`` or ``{"error": ...}`` on ``ready``
    (a pipe ``create`` reads) and never returns."""
    try:
        os.setsid()
        linux.set_process_name("wasmhost-init")
        for kind, path in plan.join:
            linux.join_namespace(kind, path)
        if plan.new_network:
            linux.new_namespace("network")
            linux.loopback_up()
        linux.join_cgroup(plan.cgroups_path, plan.memory_limit, plan.pids_limit)
        import resource

        for name, number, soft, hard in plan.rlimits:
            try:
                resource.setrlimit(number, (soft, hard))
            except (OSError, ValueError) as exc:
                raise linux.LinuxError(f"cannot set {name} to {soft}:{hard}: {exc}") from None
        os.chdir("/")
        run = _prepare(plan, root)
    except BaseException as exc:  # any failure is create's, in one line
        _report(ready, {"error": _line(exc)})
        os._exit(_FAILED)
    _report(ready, {"ok": True})
    code = _FAILED
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)  # blocks until start opens it
        os.write(fd, b"0")
        os.close(fd)
        code = run()
    except OSError:
        pass  # deleted before it was started
    except BaseException as exc:  # nothing may leave the init but its exit status
        print(f"wasmhost-runtime: {_line(exc)}", file=sys.stderr, flush=True)
    finally:
        os._exit(code)


def _report(fd: int, message: dict[str, Any]) -> None:
    try:
        os.write(fd, json.dumps(message).encode())
        os.close(fd)
    except OSError:
        os._exit(_FAILED)  # create is gone: no one will start this container


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _drop_privileges(plan: Plan) -> None:
    if plan.user is not None:
        uid, gid, groups, umask = plan.user
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if umask is not None:
            os.umask(umask)
    if plan.no_new_privileges:
        linux.no_new_privileges()


def _dirs(plan: Plan) -> dict[str, Any]:
    from wasmhost import Dir

    dirs: dict[str, Any] = {"/": Dir(plan.rootfs, read_only=plan.root_readonly)}
    for mount in plan.mounts:
        dirs[mount.destination] = Dir(mount.source, read_only=mount.read_only)
    return dirs


def _prepare(plan: Plan, root: str) -> Any:
    """Load the module (compiling it, or reading it from the cache) and return what
    runs it once started: errors in the module are create's."""
    # The signals an engine stops a container with end the init as they end any
    # process (143, 130): Python's own SIGINT handler would wait for the guest.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from wasmhost import INHERIT, GuestError, Host, WasmhostError
    from wasmhost._errors import TRAP_EXIT_STATUS

    cache = os.path.join(root, CACHE)
    os.makedirs(cache, 0o700, exist_ok=True)
    host = Host(cache_dir=cache)
    if plan.serve is not None:
        host.load(plan.module)  # a module that cannot run fails create (and is cached)
        host.close()
        return _serve(plan, cache)
    options: dict[str, Any] = {
        "env": plan.env,
        "dirs": _dirs(plan),
        "stdin": INHERIT,
        "stdout": INHERIT,
        "stderr": INHERIT,
        "argv0": plan.argv[0],
        "timeout": plan.timeout,
        "fuel": plan.fuel,
        "max_memory": plan.max_memory,
    }
    loaded = host.load(plan.module, **options)

    def run() -> int:
        try:
            _drop_privileges(plan)
            result = host.run(loaded, plan.argv[1:], **options)
        except GuestError as exc:
            print(f"wasmhost-runtime: {_line(exc)}", file=sys.stderr, flush=True)
            return TRAP_EXIT_STATUS
        except (WasmhostError, OSError) as exc:
            print(f"wasmhost-runtime: {_line(exc)}", file=sys.stderr, flush=True)
            return _FAILED
        return result.exit_code

    return run


def _serve(plan: Plan, cache: str) -> Any:
    """``wasmhost serve`` of the module, as the command line spells it: one process,
    listening in the container's network namespace."""
    from wasmhost._cli import main

    assert plan.serve is not None
    host, port = plan.serve
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    args = ["serve", "--listen", listen, "--workers", "1"]
    args += ["--dir", f"{plan.rootfs}::/" + ("::ro" if plan.root_readonly else "")]
    for mount in plan.mounts:
        args += [
            "--dir",
            f"{mount.source}::{mount.destination}" + ("::ro" if mount.read_only else ""),
        ]
    for name, value in plan.env.items():
        args += ["--env", f"{name}={value}"]
    if plan.timeout is not None:
        args += ["--timeout", repr(plan.timeout)]
    if plan.max_memory is not None:
        args += ["--max-memory", str(plan.max_memory)]
    args.append(plan.module)
    os.environ["WASMHOST_CACHE_DIR"] = cache

    def run() -> int:
        _drop_privileges(plan)
        try:
            main(args)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else _FAILED
        return 0

    return run
