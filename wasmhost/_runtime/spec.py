"""A bundle's ``config.json`` read as the runtime-spec says, checked, and turned into
what a Wasm container's init needs (:class:`Plan`); and the rule that says which
containers are Wasm at all (:func:`is_wasm`).
"""

from __future__ import annotations

import json
import os
import resource
import stat
from typing import Any, NamedTuple

from .._annotations import FUEL, MAX_MEMORY, RUNTIME_ANNOTATIONS, SERVE, TIMEOUT, serve_address
from .._errors import ConfigError
from .._numbers import parse_duration, parse_size
from .state import RuntimeFailure

MAX_CONFIG = 4 << 20
WASM_MAGIC = b"\0asm"
_MAX_LINKS = 40
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# The namespaces a Wasm guest is given: its network (and host name, IPC) are the
# pod's when the engine names them; the others mean nothing to a WASI guest, whose
# file system is its preopened folders and which sees no processes.
_JOINED = ("network", "uts", "ipc")
_IGNORED = ("pid", "mount", "cgroup", "time")


class Mount(NamedTuple):
    destination: str
    source: str
    read_only: bool


class Plan(NamedTuple):
    """What the init does, all of it checked before anything is made."""

    bundle: str
    rootfs: str
    root_readonly: bool
    module: str  # the entrypoint's path on the host
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    join: list[tuple[str, str]]  # (kind, path) to enter
    new_network: bool
    cgroups_path: str
    memory_limit: int | None
    pids_limit: int | None
    user: tuple[int, int, list[int], int | None] | None  # uid, gid, groups, umask
    rlimits: list[tuple[str, int, int, int]]  # name, number, soft, hard
    no_new_privileges: bool
    annotations: dict[str, str]
    timeout: float | None
    fuel: int | None
    max_memory: int | None
    serve: tuple[str, int] | None


def read_config(bundle: str) -> dict[str, Any]:
    path = os.path.join(bundle, "config.json")
    data = _read_regular(path, MAX_CONFIG + 1)
    if data is None:
        raise RuntimeFailure(f"{path} is not a regular file")
    if len(data) > MAX_CONFIG:
        raise RuntimeFailure(f"{path} is larger than {MAX_CONFIG >> 20} MiB")
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RuntimeFailure(f"{path} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(config, dict):
        raise RuntimeFailure(f"{path} is not a JSON object")
    version = config.get("ociVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise RuntimeFailure(f"{path}: ociVersion {version!r} is not a 1.x runtime-spec version")
    return config


def _read_regular(path: str, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of the regular file at ``path``; None if it is something
    else (a FIFO, which would block, a device, a folder). Opened without blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while limit > 0 and (chunk := os.read(fd, min(limit, 1 << 20))):
            chunks.append(chunk)
            limit -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _object(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RuntimeFailure(f"config.json: {where} must be an object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RuntimeFailure(f"config.json: {where} must be a list")
    return value


def _strings(value: object, where: str) -> list[str]:
    found = _list(value, where)
    if not all(isinstance(v, str) and "\0" not in v for v in found):
        raise RuntimeFailure(f"config.json: {where} must be a list of strings (without NUL)")
    return found


def _path(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise RuntimeFailure(f"config.json: {where} must be a path")
    return value


def _whole(value: object, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value >= 1 << 63:
        raise RuntimeFailure(f"config.json: {where} must be a whole number")
    return value


def _id_number(value: object, where: str) -> int:
    number = _whole(value, where)
    if number >= 1 << 32:
        raise RuntimeFailure(f"config.json: {where} {number} is not a user or group id")
    return number


def annotations_of(config: dict[str, Any]) -> dict[str, str]:
    found = _object(config.get("annotations"), "annotations")
    if not all(isinstance(v, str) for v in found.values()):
        raise RuntimeFailure("config.json: annotations must map names to strings")
    return found


def rootfs(bundle: str, config: dict[str, Any]) -> tuple[str, bool]:
    """The root file system's path (``root.path``, relative to the bundle) and whether it
    is read-only. A relative path that leaves the bundle is refused."""
    root = _object(config.get("root"), "root")
    path = _path(root.get("path"), "root.path")
    if os.path.isabs(path):
        full = os.path.realpath(path)
    else:
        full = os.path.realpath(os.path.join(bundle, path))
        if not (full + "/").startswith(os.path.realpath(bundle) + "/"):
            raise RuntimeFailure(f"config.json: root.path {path!r} leaves the bundle")
    if not os.path.isdir(full):
        raise RuntimeFailure(f"the root file system {full} is not a folder")
    return full, bool(root.get("readonly", False))


def resolve(rootfs: str, path: str) -> str | None:
    """``path`` inside ``rootfs`` as the container sees it: symbolic links followed as if
    ``rootfs`` were ``/``, so none leads out of it. None if it is not there."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(rootfs, *done, part)
        try:
            info = os.lstat(here)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > _MAX_LINKS:
                return None
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return os.path.join(rootfs, *done)


def entrypoint(rootfs: str, config: dict[str, Any]) -> tuple[str | None, list[str], list[str]]:
    """The entrypoint's host path (None if not found), argv and env."""
    process = _object(config.get("process"), "process")
    argv = _strings(process.get("args"), "process.args")
    env = _strings(process.get("env"), "process.env")
    if not argv:
        raise RuntimeFailure("config.json: process.args is empty; it names the module to run")
    name = argv[0]
    if "/" in name:
        return resolve(rootfs, name if name.startswith("/") else "/" + name), argv, env
    search = next((e[5:] for e in env if e.startswith("PATH=")), _DEFAULT_PATH)
    for folder in search.split(":"):
        found = resolve(rootfs, f"{folder or '/'}/{name}")
        if found is not None and os.path.isfile(found):
            return found, argv, env
    return None, argv, env


def starts_as_wasm(path: str | None) -> bool:
    if path is None:
        return False
    try:
        return _read_regular(path, 4) == WASM_MAGIC
    except RuntimeFailure:
        return False


def is_wasm(found: dict[str, str], module: str | None) -> bool:
    """Whether the container is Wasm, as crun decides with its handler annotations
    (its ``-smart`` variants: only if the entrypoint is Wasm), and without them by the
    entrypoint's first bytes. The CRI's pod sandbox (pause) is always native."""
    if "sandbox" in (
        found.get("io.kubernetes.cri.container-type"),
        found.get("io.kubernetes.cri-o.ContainerType"),
    ):
        return False
    handler = found.get("run.oci.handler")
    if handler is not None:
        return handler == "wasm" or (handler == "wasm-smart" and starts_as_wasm(module))
    variant = found.get("module.wasm.image/variant")
    if variant == "compat":
        return True
    return starts_as_wasm(module)


def plan(bundle: str, config: dict[str, Any], container_id: str, systemd: bool) -> Plan:
    """Check everything a Wasm container's spec asks for, and say how to do it."""
    from .linux import cgroup_path

    found = annotations_of(config)
    root, readonly = rootfs(bundle, config)
    module, argv, env_list = entrypoint(root, config)
    if module is None:
        raise RuntimeFailure(f"{argv[0]}: no such module in the container's root file system")
    if not os.path.isfile(module):
        raise RuntimeFailure(f"{argv[0]} is not a regular file")
    if not starts_as_wasm(module):
        raise RuntimeFailure(f"{argv[0]} is not a WebAssembly module or component")
    process = _object(config.get("process"), "process")
    if process.get("terminal"):
        raise RuntimeFailure(
            "a terminal is not supported for Wasm containers; run without -t (--tty)"
        )
    if config.get("hooks"):
        raise RuntimeFailure("hooks are not supported for Wasm containers")
    env: dict[str, str] = {}
    for pair in env_list:
        name, equals, value = pair.partition("=")
        if equals and name:
            env[name] = value
    linux = _object(config.get("linux"), "linux")
    join: list[tuple[str, str]] = []
    new_network = False
    for listed in _list(linux.get("namespaces"), "linux.namespaces"):
        namespace = _object(listed, "linux.namespaces[]")
        kind, path = namespace.get("type"), namespace.get("path")
        if kind == "user":
            raise RuntimeFailure("user namespaces are not supported for Wasm containers")
        if kind in _JOINED:
            if path:
                if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
                    raise RuntimeFailure(
                        f"config.json: the {kind} namespace's path is not absolute"
                    )
                join.append((kind, path))
            elif kind == "network":
                new_network = True
        elif kind not in _IGNORED:
            raise RuntimeFailure(f"config.json: unknown namespace type {kind!r}")
    resources = _object(linux.get("resources"), "linux.resources")
    memory = _object(resources.get("memory"), "linux.resources.memory").get("limit")
    pids = _object(resources.get("pids"), "linux.resources.pids").get("limit")
    memory_limit = _whole(memory, "memory.limit", -1) if memory is not None else None
    pids_limit = _whole(pids, "pids.limit", -1) if pids is not None else None
    cgroups = linux.get("cgroupsPath") or ""
    if not isinstance(cgroups, str) or "\0" in cgroups:
        raise RuntimeFailure("config.json: linux.cgroupsPath must be a string")
    if cgroups and not cgroups.strip("/"):
        raise RuntimeFailure("config.json: linux.cgroupsPath names the root cgroup, shared by all")
    user_spec = _object(process.get("user"), "process.user")
    user = None
    if user_spec:
        umask = user_spec.get("umask")
        user = (
            _id_number(user_spec.get("uid", 0), "process.user.uid"),
            _id_number(user_spec.get("gid", 0), "process.user.gid"),
            [
                _id_number(g, "additionalGids")
                for g in _list(user_spec.get("additionalGids"), "process.user.additionalGids")
            ],
            _whole(umask, "process.user.umask") if umask is not None else None,
        )
    rlimits = []
    for listed in _list(process.get("rlimits"), "process.rlimits"):
        entry = _object(listed, "process.rlimits[]")
        kind = entry.get("type")
        number = getattr(resource, kind, None) if isinstance(kind, str) else None
        if not isinstance(kind, str) or not kind.startswith("RLIMIT_") or number is None:
            raise RuntimeFailure(f"config.json: unknown rlimit {kind!r}")
        rlimits.append(
            (
                kind,
                number,
                _whole(entry.get("soft"), kind + ".soft"),
                _whole(entry.get("hard"), kind + ".hard"),
            )
        )
    mounts = [
        Mount(os.path.normpath(m.destination), m.source, m.read_only) for m in _mounts(config)
    ]
    timeout, fuel, max_memory, serve = _own(found)
    if memory_limit is not None and memory_limit > 0:
        max_memory = memory_limit if max_memory is None else min(max_memory, memory_limit)
    return Plan(
        bundle=bundle,
        rootfs=root,
        root_readonly=readonly,
        module=module,
        argv=argv,
        env=env,
        mounts=mounts,
        join=join,
        new_network=new_network,
        cgroups_path=cgroup_path(cgroups, container_id, systemd),
        memory_limit=memory_limit if memory_limit and memory_limit > 0 else None,
        pids_limit=pids_limit if pids_limit and pids_limit > 0 else None,
        user=user,
        rlimits=rlimits,
        no_new_privileges=bool(process.get("noNewPrivileges", False)),
        annotations=found,
        timeout=timeout,
        fuel=fuel,
        max_memory=max_memory,
        serve=serve,
    )


def _mounts(config: dict[str, Any]) -> list[Mount]:
    """The bind mounts of folders: each a preopened folder (``ro``: read-only). File
    binds (``/etc/hosts`` and the like), ``proc``, ``sysfs``, ``tmpfs``... mean nothing
    to a WASI guest and are left out."""
    mounts = []
    for item in _list(config.get("mounts"), "mounts"):
        entry = _object(item, "mounts[]")
        options = _strings(entry.get("options"), "mounts[].options")
        if entry.get("type") != "bind" and not {"bind", "rbind"} & set(options):
            continue
        source = _path(entry.get("source"), "a mount's source")
        destination = _path(entry.get("destination"), "a mount's destination")
        if not destination.startswith("/"):
            raise RuntimeFailure(f"config.json: mount destination {destination!r} is not absolute")
        if not source.startswith("/"):
            raise RuntimeFailure(f"config.json: mount source {source!r} is not absolute")
        if not os.path.exists(source):
            raise RuntimeFailure(f"mount source {source} does not exist")
        if os.path.isdir(source):
            mounts.append(Mount(destination, source, "ro" in options))
    return mounts


def _own(
    found: dict[str, str],
) -> tuple[float | None, int | None, int | None, tuple[str, int] | None]:
    for name in found:
        if name.startswith("io.wasmhost.") and name not in RUNTIME_ANNOTATIONS:
            raise RuntimeFailure(
                f"unknown annotation {name}; wasmhost's are {', '.join(RUNTIME_ANNOTATIONS)}"
            )
    timeout = fuel = max_memory = None
    serve = None
    try:
        if TIMEOUT in found:
            timeout = parse_duration(found[TIMEOUT])
            if not 0 < timeout < 1e9:
                raise ValueError
        if FUEL in found:
            fuel = int(found[FUEL])
            if fuel <= 0:
                raise ValueError
        if MAX_MEMORY in found:
            max_memory = parse_size(found[MAX_MEMORY])
            if max_memory <= 0:
                raise ValueError
    except ValueError:
        raise RuntimeFailure(
            f"annotations: {TIMEOUT} takes seconds (2, 500ms), {FUEL} a whole number, "
            f"{MAX_MEMORY} a size (64MiB)"
        ) from None
    if SERVE in found:
        try:
            serve = serve_address(found[SERVE])
        except ConfigError as exc:
            raise RuntimeFailure(f"annotations: {SERVE}: {exc}") from None
    return timeout, fuel, max_memory, serve
