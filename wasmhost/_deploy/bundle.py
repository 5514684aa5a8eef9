"""An OCI runtime bundle for crun or youki, as the seed wrote ``config.json`` by hand.

``DIR/rootfs/<module>.wasm`` and ``DIR/config.json`` (runtime-spec 1.0.2):
``process.args`` names the module, the ``module.wasm.image/variant``
annotation tells crun/youki to run it with their Wasm handler, the root is
read-only, the process gets the default capability set of ``runc spec``
(``CAP_AUDIT_WRITE``, ``CAP_KILL``, ``CAP_NET_BIND_SERVICE``), an open-files
rlimit and no new privileges, and the kernel paths a container should not
see are masked or read-only. ``host_network`` leaves the network namespace
out of ``linux.namespaces``, so the container shares the network of the
runtime that starts it. (The seed named ``/proc/1/ns/net`` instead, which a
real crun was seen to refuse as root, "open '/proc/1/ns/net': Permission
denied", as would any nested, rootless or pid-namespaced runtime.)

Run it with ``crun run -b DIR NAME`` or ``youki run -b DIR NAME``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import ConfigError, ModuleError, reading_module
from .._files import check_output, open_regular, writing
from .._host.values.module import check_header
from .._oci.image import VARIANT, VARIANTS
from .._text import wasi_environment, wasi_strings
from .._wasm import is_component

RUNTIME_SPEC = "1.0.2"
CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def bundle_config(
    module_name: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    host_network: bool = False,
    variant: str = "compat",
    hostname: str = "wasm",
) -> dict[str, Any]:
    """The ``config.json`` of a bundle whose rootfs holds ``module_name``."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}.")
    # Without a network namespace of its own, the container shares the runtime's.
    namespaces = ["pid", *([] if host_network else ["network"]), "ipc", "uts", "mount", "cgroup"]
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    environment.update(env or {})
    # crun and youki hand these to the guest through WASI: refused as `run` refuses them.
    process_args = [f"/{module_name}", *args]
    wasi_strings("argument", process_args)
    wasi_environment(environment)
    return {
        "ociVersion": RUNTIME_SPEC,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": process_args,
            "env": [f"{k}={v}" for k, v in environment.items()],
            "cwd": "/",
            "capabilities": {
                kind: list(CAPABILITIES) for kind in ("bounding", "effective", "permitted")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "annotations": {VARIANT: variant},
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": kind} for kind in namespaces],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def make_bundle(
    module: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    host_network: bool = False,
    variant: str = "compat",
) -> Path:
    """Write the bundle of ``module`` into ``folder`` (created; must be empty if it exists)
    and return the path of its ``config.json`` (``wasmhost bundle`` calls it).

    A symbolic link, a file, a FIFO or a device at ``folder`` is refused with a
    :class:`~wasmhost.StorageError` and left as it was."""
    source = Path(module)
    with reading_module(str(source)), open_regular(source) as f:
        head = f.read(8)
    check_header(str(source), head)
    if is_component(head):
        raise ModuleError(
            f"{source} is a WASI preview-2 component; bundles carry preview-1 modules "
            "(wasm32-wasi), as the seed's crun and youki ran them."
        )
    check_output(folder, "the bundle", folder=True)
    target = Path(folder).resolve()
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} exists and is not an empty folder; choose a new one.")
    config = bundle_config(
        source.name, args=args, env=env, host_network=host_network, variant=variant
    )
    staging = target.with_name(f".{target.name}.part")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with writing(target, "the bundle"):
            _write_bundle(source, staging, target, config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / "config.json"


def _write_bundle(source: Path, staging: Path, target: Path, config: dict[str, Any]) -> None:
    (staging / "rootfs").mkdir(parents=True)
    shutil.copyfile(source, staging / "rootfs" / source.name)
    os.chmod(staging / "rootfs" / source.name, 0o755)
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if target.exists():
        target.rmdir()
    os.replace(staging, target)
