"""Kubernetes manifests for a Wasm image: a RuntimeClass and a Pod, Job or Deployment
(a Deployment's port with a Service), and the TOML that prepares the nodes.

One adapter a runtime, as the seed wires them by hand:

- ``wasmhost``: wasmhost-runtime, a runc-compatible OCI runtime. containerd's
  runc shim runs it as its ``BinaryName``, CRI-O as an ``oci`` runtime; the
  ``io.wasmhost.*`` annotations of the pod reach it (containerd passes only the
  ones its ``pod_annotations`` list), and ``io.wasmhost.serve`` has it serve the
  module as a WAGI handler;
- ``crun``, ``youki``: OCI runtimes with a Wasm handler (the image, or the
  pod, carries ``module.wasm.image/variant: compat``);
- ``wasmedge``, ``wasmtime``, ``spin``: the runwasi containerd shims
  (``io.containerd.<name>.v1``/``v2``), as KWasm's operator installs them on
  nodes annotated ``kwasm.sh/kwasm-node=true``;
- ``krustlet``: no RuntimeClass; the Pod tolerates Krustlet's node taints
  ``kubernetes.io/arch=wasm32-wasi`` (NoExecute and NoSchedule) and selects
  its nodes.

The kinds: a ``pod`` runs the module once (``restartPolicy: Never``, as
``kubectl run --restart=Never`` does); a ``job`` runs it to completion and is
not retried; a ``deployment`` keeps ``--replicas`` Pods running (Kubernetes
allows it only ``restartPolicy: Always``), for a module that serves.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any, NamedTuple

from .._annotations import RUNTIME_ANNOTATIONS, SERVE
from .._errors import ConfigError
from .._oci.image import VARIANT


class Target(NamedTuple):
    handler: str | None
    containerd_runtime: str | None
    note: str
    # An OCI runtime (not a containerd shim): where nodes keep it, its default --root,
    # and the annotations containerd (globs) and CRI-O (names) pass on to it.
    binary: str | None = None
    root: str | None = None
    containerd_annotations: tuple[str, ...] = ()
    crio_annotations: tuple[str, ...] = ()


_WASM_HANDLER = (VARIANT,)
TARGETS = {
    "wasmhost": Target(
        "wasmhost",
        "io.containerd.runc.v2",
        "wasmhost-runtime (a runc-compatible OCI runtime that runs Wasm containers)",
        "/usr/local/bin/wasmhost-runtime",
        "/run/wasmhost-runtime",
        ("module.wasm.image/*", "run.oci.handler", "io.wasmhost.*"),
        (VARIANT, "run.oci.handler", *RUNTIME_ANNOTATIONS),
    ),
    "crun": Target(
        "crun",
        "io.containerd.runc.v2",
        "crun built with WasmEdge or wasmtime support",
        "/usr/local/bin/crun",
        "/run/crun",
        _WASM_HANDLER,
        _WASM_HANDLER,
    ),
    "youki": Target(
        "youki",
        "io.containerd.runc.v2",
        "youki built with its wasm features",
        "/usr/local/bin/youki",
        "/run/youki",
        _WASM_HANDLER,
        _WASM_HANDLER,
    ),
    "wasmedge": Target(
        "wasmedge", "io.containerd.wasmedge.v1", "runwasi's containerd-shim-wasmedge-v1"
    ),
    "wasmtime": Target(
        "wasmtime", "io.containerd.wasmtime.v1", "runwasi's containerd-shim-wasmtime-v1"
    ),
    "spin": Target("spin", "io.containerd.spin.v2", "containerd-shim-spin-v2"),
    "krustlet": Target(None, None, "Krustlet (a kubelet for wasm32-wasi nodes)"),
}
KINDS = ("pod", "job", "deployment")  # _WORKLOADS builds each
NODE_CONFIGS = ("containerd", "crio")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def manifests(
    image: str,
    runtime: str,
    *,
    kind: str = "pod",
    name: str | None = None,
    port: int | None = None,
    replicas: int = 1,
    runtime_path: str | None = None,
) -> str:
    """YAML documents (with comments that say how to prepare the nodes) for ``image``,
    e.g. ``manifests("ghcr.io/org/hello:v1", "wasmhost", kind="deployment", port=8080)``."""
    import yaml

    target = _target(runtime, runtime_path)
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}.")
    app = name or _name_from(image)
    if not _NAME.match(app) or len(app) > 63:
        raise ConfigError(f"{app!r} is not a Kubernetes name (lower-case letters, digits, '-').")
    container: dict[str, Any] = {"name": app, "image": image}
    annotations: dict[str, str] = {}
    if port is not None:
        if not 0 < port < 65536:
            raise ConfigError(f"port {port} is not 1 to 65535.")
        container["ports"] = [{"containerPort": port}]
        if runtime == "wasmhost":
            annotations[SERVE] = str(port)
    spec: dict[str, Any] = {}
    if target.handler:
        spec["runtimeClassName"] = f"wasm-{target.handler}"
    if runtime in ("crun", "youki"):
        annotations[VARIANT] = "compat"
    if runtime == "krustlet":
        spec["nodeSelector"] = {"kubernetes.io/arch": "wasm32-wasi"}
        spec["tolerations"] = [
            {"key": "kubernetes.io/arch", "operator": "Equal", "value": "wasm32-wasi", "effect": e}
            for e in ("NoExecute", "NoSchedule")
        ]
    if kind != "deployment":
        spec["restartPolicy"] = "Never"
    spec["containers"] = [container]
    pod_metadata: dict[str, Any] = {"labels": {"app": app}}
    if annotations:
        pod_metadata["annotations"] = annotations
    documents: list[dict[str, Any]] = []
    if target.handler:
        documents.append(
            {
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": f"wasm-{target.handler}"},
                "handler": target.handler,
            }
        )
    documents.append(_WORKLOADS[kind](app, {"metadata": pod_metadata, "spec": spec}, replicas))
    if kind == "deployment" and port is not None:
        service_port = {"port": port, "targetPort": port, "protocol": "TCP"}
        service_spec = {"type": "ClusterIP", "selector": {"app": app}, "ports": [service_port]}
        documents.append(
            {"apiVersion": "v1", "kind": "Service", "metadata": _named(app), "spec": service_spec}
        )
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)
    return _comments(runtime, target, runtime_path, app, kind, port) + body


def _named(app: str) -> dict[str, Any]:
    return {
        "name": app,
        "labels": {"app": app},
    }  # a fresh dict: YAML writes a shared one as an alias


def _pod(app: str, template: dict[str, Any], replicas: int) -> dict[str, Any]:
    metadata = {"name": app, **template["metadata"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def _job(app: str, template: dict[str, Any], replicas: int) -> dict[str, Any]:
    # A module that failed fails the same way on the next try: no retries.
    spec = {"backoffLimit": 0, "template": template}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _named(app), "spec": spec}


def _deployment(app: str, template: dict[str, Any], replicas: int) -> dict[str, Any]:
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": app}}, "template": template}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _named(app), "spec": spec}


_WORKLOADS = {"pod": _pod, "job": _job, "deployment": _deployment}


def node_config(runtime: str, engine: str, *, runtime_path: str | None = None) -> str:
    """The TOML that lets a node's ``engine`` (``"containerd"`` 1.6+, config version 2, or
    ``"crio"``) run pods of ``runtime``'s RuntimeClass, e.g. ``node_config("wasmhost", "crio")``;
    ``runtime_path`` is where the nodes keep an OCI runtime (wasmhost, crun, youki)."""
    target = _target(runtime, runtime_path)
    if target.handler is None:
        raise ConfigError(f"{runtime} runs the modules itself; its nodes need no runtime table.")
    path = runtime_path or target.binary
    if engine == "containerd":
        section = f'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{target.handler}'
        lines = [f"[{section}]", f"  runtime_type = {_toml(target.containerd_runtime)}"]
        if target.containerd_annotations:
            globs = _toml(list(target.containerd_annotations))
            lines += [f"  pod_annotations = {globs}", f"  container_annotations = {globs}"]
        if path:
            lines += [f"[{section}.options]", f"  BinaryName = {_toml(path)}"]
        return "\n".join(lines) + "\n"
    if engine != "crio":
        raise ConfigError(f"unknown engine {engine!r}; choose one of: {', '.join(NODE_CONFIGS)}.")
    if path is None:
        raise ConfigError(
            f"{runtime} is a containerd shim; CRI-O runs OCI runtimes (wasmhost, crun, youki)."
        )
    return (
        "\n".join(
            [
                f"[crio.runtime.runtimes.{target.handler}]",
                f"runtime_path = {_toml(path)}",
                'runtime_type = "oci"',
                f"runtime_root = {_toml(target.root)}",
                f"allowed_annotations = {_toml(list(target.crio_annotations))}",
            ]
        )
        + "\n"
    )


def _target(runtime: str, runtime_path: str | None) -> Target:
    target = TARGETS.get(runtime)
    if target is None:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of: {', '.join(TARGETS)}.")
    if runtime_path is not None:
        if target.binary is None:
            what = "runs the modules itself" if target.handler is None else "is a containerd shim"
            raise ConfigError(
                f"{runtime} {what}, not an OCI runtime at a path; "
                "a runtime path is for wasmhost, crun and youki."
            )
        if not posixpath.isabs(runtime_path) or any(c in runtime_path for c in "\0\n\r"):
            raise ConfigError(f"{runtime_path!r} is not an absolute path on the nodes.")
    return target


def _toml(value: str | list[str] | None) -> str:
    return json.dumps(value)  # a JSON string (or list of them) is a TOML one


def _name_from(image: str) -> str:
    last = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    cleaned = re.sub(r"[^a-z0-9-]+", "-", last.lower()).strip("-")
    return cleaned[:63].rstrip("-") or "wasm"


def _comments(
    runtime: str, target: Target, runtime_path: str | None, app: str, kind: str, port: int | None
) -> str:
    lines = [f"# {target.note}: generated by wasmhost k8s."]
    if runtime == "krustlet":
        lines += [
            "# Nodes: Krustlet registers wasm32-wasi nodes tainted kubernetes.io/arch=wasm32-wasi;",
            "# the image must be a wasm-to-oci artifact (wasmhost push --format wasm-to-oci).",
        ]
    else:
        lines += [
            f"# Nodes: containerd needs a runtime named {target.handler!r}, e.g. in",
            "# /etc/containerd/config.toml (then restart containerd):",
        ]
        snippet = node_config(runtime, "containerd", runtime_path=runtime_path)
        lines += [f"#   {line}" for line in snippet.splitlines()]
        if target.binary:
            lines.append(
                f"# CRI-O's table (crio.conf): wasmhost k8s --runtime {runtime} --node-config crio"
            )
        if runtime in ("crun", "youki"):
            lines.append(
                "# The image carries module.wasm.image/variant too (wasmhost push --format image)."
            )
        elif runtime == "wasmhost":
            lines.append(
                "# It runs a container as Wasm when its entrypoint is a .wasm module "
                "(wasmhost push --format image)."
            )
        else:
            lines += [
                "# or let the KWasm operator install the shims: kubectl annotate node NODE "
                "kwasm.sh/kwasm-node=true",
            ]
    if port is not None:
        resource = {"pod": "pod", "job": "job", "deployment": "service"}[kind]
        lines.append(f"# Reach it: kubectl port-forward {resource}/{app} {port}:{port}")
    if kind != "deployment":
        lines.append(f"# Its output: kubectl logs {kind}/{app}")
    return "\n".join(lines) + "\n"
