"""``wasmhost bundle`` and ``wasmhost k8s``: deploy targets from the seed."""

from __future__ import annotations

from pathlib import Path

import click

from .._deploy.k8s import KINDS, NODE_CONFIGS, TARGETS
from .errors import reported, require
from .params import ENV, PORT, TEXT, WHOLE_NUMBER, examples, variant_option


@click.command(
    short_help="Write an OCI runtime bundle for crun or youki.",
    epilog=examples(
        "wasmhost bundle artifacts/hello-world.wasm hello-bundle",
        "wasmhost bundle --env GREETING=hi artifacts/fsprobe.wasm probe-bundle -- env",
    ),
)
@click.option("--env", "envs", type=ENV, multiple=True, help="NAME=VALUE for the process.")
@click.option(
    "--host-network",
    is_flag=True,
    help="Share the runtime's network (no network namespace of its own).",
)
@variant_option("The module.wasm.image/variant annotation crun and youki read.")
@click.argument("module", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.argument("guest_args", nargs=-1, metavar="[-- GUEST-ARGS...]")
def bundle(
    envs: tuple[tuple[str, str | None], ...],
    host_network: bool,
    variant: str,
    module: Path,
    folder: Path,
    guest_args: tuple[str, ...],
) -> None:
    """Write FOLDER/rootfs/MODULE and FOLDER/config.json; run with `crun run -b FOLDER NAME`.

    Arguments for the module go after `--`, so that options are never taken for them.
    """
    from .._deploy.bundle import make_bundle

    with reported():
        config = make_bundle(
            module,
            folder,
            args=guest_args,
            env={name: value for name, value in envs if value is not None},
            host_network=host_network,
            variant=variant,
        )
    click.echo(f"Wrote {config} and {folder / 'rootfs' / module.name}")
    click.echo(f"Run it: crun run -b {folder} {module.stem} (or youki run -b ...)")


_KIND_HELP = (
    "pod: runs the module once (restartPolicy Never). job: a Job that runs it to completion, "
    "not retried. deployment: --replicas Pods that are restarted when they exit, for a module "
    "that serves (with --runtime wasmhost, give --port: a module that exits is restarted "
    "over and over, CrashLoopBackOff; a warning says so, not a refusal, since a module may "
    "run for good without serving HTTP)."
)
_PORT_HELP = (
    "The port the module serves HTTP on: declared on the container, with a Service "
    "(ClusterIP) for a deployment; with --runtime wasmhost, the pod annotation "
    "io.wasmhost.serve too, so that wasmhost-runtime serves the module as a WAGI handler."
)


@click.command(
    short_help="Print Kubernetes manifests for a Wasm image.",
    epilog=examples(
        "wasmhost k8s --runtime crun ghcr.io/example/hello:v1",
        "wasmhost k8s --runtime wasmhost --kind deployment --port 8080 ghcr.io/example/web:v1",
    ),
)
@click.option(
    "--runtime",
    type=click.Choice(list(TARGETS)),
    required=True,
    help="How the nodes run Wasm.",
)
@click.option("--kind", type=click.Choice(KINDS), default="pod", show_default=True, help=_KIND_HELP)
@click.option("--name", type=TEXT, show_default="from the image", help="The workload's name.")
@click.option("--port", type=PORT, help=_PORT_HELP)
@click.option(
    "--replicas",
    type=WHOLE_NUMBER,
    show_default="1",
    help="How many Pods the Deployment keeps (with --kind deployment).",
)
@click.option(
    "--node-config",
    type=click.Choice(NODE_CONFIGS),
    help="Print only the TOML the nodes' containerd (config.toml, version 2) or CRI-O "
    "(crio.conf) needs for --runtime, instead of manifests.",
)
@click.option(
    "--runtime-path",
    type=TEXT,
    metavar="PATH",
    show_default="/usr/local/bin/wasmhost-runtime, crun or youki",
    help="Where the nodes keep the OCI runtime (wasmhost, crun, youki).",
)
@click.argument("image", type=TEXT, required=False, metavar="IMAGE")
def k8s(
    runtime: str,
    kind: str,
    name: str | None,
    port: int | None,
    replicas: int | None,
    node_config: str | None,
    runtime_path: str | None,
    image: str | None,
) -> None:
    """Print a RuntimeClass and a Pod (or Job, or Deployment) that run IMAGE, as YAML,
    with comments on how to prepare the nodes; or, with --node-config, only that.

    Needs PyYAML: the 'k8s' extra (pip install '.[k8s]' in the wasmhost folder).
    """
    if node_config is not None:
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("kind", "name", "port", "replicas")
            if click.get_current_context().get_parameter_source(name)
            is not click.core.ParameterSource.DEFAULT
        ]
        if given or image is not None:
            what = ", ".join([*given, *(["IMAGE"] if image is not None else [])])
            raise click.UsageError(f"--node-config prints only the node's TOML; leave out {what}.")
        from .._deploy.k8s import node_config as node_toml

        with reported():
            click.echo(node_toml(runtime, node_config, runtime_path=runtime_path), nl=False)
        return
    if image is None:
        raise click.UsageError("Missing argument 'IMAGE' (or give --node-config).")
    if replicas is not None and kind != "deployment":
        raise click.UsageError(f"--replicas is for --kind deployment; a {kind} runs one Pod.")
    require("yaml", "k8s", "wasmhost k8s")
    from .._deploy.k8s import manifests
    from .._oci.reference import parse_reference

    with reported():
        parse_reference(image)
        text = manifests(
            image,
            runtime,
            kind=kind,
            name=name,
            port=port,
            replicas=replicas or 1,
            runtime_path=runtime_path,
        )
    if runtime == "wasmhost" and kind == "deployment" and port is None:
        click.echo(
            "warning: without --port the module is run, not served, and a Deployment restarts "
            "it each time it exits (CrashLoopBackOff); give --port, or --kind job.",
            err=True,
        )
    click.echo(text, nl=False)
