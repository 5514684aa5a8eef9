"""``wasmhost bundle`` and ``wasmhost k8s``: deploy targets from the seed."""

from __future__ import annotations

from pathlib import Path

import click

from .._deploy.k8s import KINDS, TARGETS
from .errors import reported, require
from .params import ENV, TEXT, WHOLE_NUMBER, examples, variant_option


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


_KIND_HELP = "A single Pod, or a Deployment of --replicas Pods."


@click.command(
    short_help="Print Kubernetes manifests for a Wasm image.",
    epilog=examples(
        "wasmhost k8s --runtime crun ghcr.io/example/hello:v1",
        "wasmhost k8s --runtime wasmtime --kind deployment --replicas 3 ghcr.io/example/hello:v1",
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
@click.option("--port", type=WHOLE_NUMBER, help="A container port to declare.")
@click.option(
    "--replicas",
    type=WHOLE_NUMBER,
    show_default="1",
    help="How many Pods the Deployment keeps (with --kind deployment).",
)
@click.argument("image", type=TEXT)
def k8s(
    runtime: str, kind: str, name: str | None, port: int | None, replicas: int | None, image: str
) -> None:
    """Print a RuntimeClass and a Pod (or Deployment) that run IMAGE, as YAML.

    Needs PyYAML: the 'k8s' extra (pip install '.[k8s]' in the wasmhost folder).
    """
    if replicas is not None and kind != "deployment":
        raise click.UsageError("--replicas is for --kind deployment; a pod is one.")
    require("yaml", "k8s", "wasmhost k8s")
    from .._deploy.k8s import manifests
    from .._oci.reference import parse_reference

    with reported():
        parse_reference(image)
        click.echo(
            manifests(image, runtime, kind=kind, name=name, port=port, replicas=replicas or 1),
            nl=False,
        )
