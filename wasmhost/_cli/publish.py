"""``wasmhost push``, ``pull``, ``inspect``, ``login`` and ``logout``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .._oci.formats import FORMATS
from .._oci.image import IMAGE_OSES
from .._oci.reference import looks_like_reference
from .errors import reported
from .params import TEXT, examples, variant_option
from .registry import ProgressBar, registry_options

_FROM_LAYOUT = "Read from a local OCI image layout: REFERENCE is DIR[:TAG] or DIR@DIGEST."


def _annotation(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    annotations = {}
    for value in values:
        key, eq, text = value.partition("=")
        if not key or not eq:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE.", ctx, param)
        annotations[key] = text
    return annotations


def _serve(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from .._annotations import serve_address
    from .._errors import ConfigError

    if value is not None:
        try:
            serve_address(value)
        except ConfigError as exc:
            raise click.BadParameter(f"{exc}.", ctx, param) from exc
    return value


@click.command(
    short_help="Push a module to a registry.",
    epilog=examples(
        "wasmhost push --plain-http artifacts/hello-world.wasm localhost:5000/hello:v1",
        "wasmhost push --oci-layout artifacts/hello-world.wasm hello-layout:v1",
    ),
)
@click.option(
    "--format",
    "format_",
    type=click.Choice([*FORMATS, "image"]),
    default="wasm-to-oci",
    show_default=True,
    help="wasm-to-oci (what Krustlet reads), cncf (the CNCF Wasm artifact), or image "
    "(an OCI image for crun, youki, runwasi and Docker).",
)
@variant_option("For --format image: the module.wasm.image/variant annotation crun and youki read.")
@click.option(
    "--os",
    "image_os",
    type=click.Choice(IMAGE_OSES),
    default="wasip1",
    show_default=True,
    help="For --format image: the image's OS (wasi is Docker's --platform wasi/wasm).",
)
@click.option(
    "--serve",
    type=TEXT,
    callback=_serve,
    metavar="PORT|HOST:PORT",
    help="For --format image: the io.wasmhost.serve annotation, which has wasmhost-runtime "
    "serve the module as a WAGI handler on that address (HOST: 0.0.0.0 unless given).",
)
@click.option(
    "--oci-layout",
    is_flag=True,
    help="Write to a local OCI image layout: REFERENCE is DIR[:TAG] (as the oras CLI takes it).",
)
@click.option(
    "-a",
    "--annotation",
    "annotations",
    type=TEXT,
    multiple=True,
    callback=_annotation,
    metavar="KEY=VALUE",
    help="A manifest annotation (repeatable).",
)
@click.option(
    "--reproducible",
    is_flag=True,
    help="Leave out the creation time, so the same module always gets the same digest.",
)
@click.option(
    "--sign",
    "sign_key",
    type=click.Path(dir_okay=False, exists=True),
    metavar="KEY",
    help="Sign what is pushed with this private key (cosign's format; its password from "
    "$WASMHOST_KEY_PASSWORD or a prompt).",
)
@click.option(
    "--identity",
    metavar="REGISTRY/REPOSITORY",
    help="For --sign: the repository the signature is for (by default REFERENCE's; required "
    "with --oci-layout).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the digest.")
@registry_options()
@click.argument("module", type=click.Path(path_type=Path))
@click.argument("reference")
def push(
    format_: str,
    variant: str,
    image_os: str,
    serve: str | None,
    oci_layout: bool,
    annotations: dict[str, str],
    reproducible: bool,
    sign_key: str | None,
    identity: str | None,
    quiet: bool,
    connect: Callable[..., Any],
    module: Path,
    reference: str,
) -> None:
    """Push MODULE (a .wasm file) to REFERENCE (host[:port]/repo:tag), or into an OCI
    image layout with --oci-layout (REFERENCE is then DIR[:TAG]).
    """
    ctx = click.get_current_context()
    for name, flag in (("variant", "--variant"), ("image_os", "--os"), ("serve", "--serve")):
        given = ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        if given and format_ != "image":
            raise click.UsageError(f"{flag} is for --format image; {format_} has none.")
    if serve is not None:
        from .._annotations import SERVE

        if annotations.get(SERVE, serve) != serve:
            raise click.UsageError(f"--serve and --annotation {SERVE}=... differ; give one.")
        annotations = {**annotations, SERVE: serve}
    if oci_layout:
        _check_layout_target(ctx, reference)
    password = b""
    if identity is not None and sign_key is None:
        raise click.UsageError("--identity names what --sign signs for; give --sign KEY too.")
    if sign_key is not None:
        if oci_layout and identity is None:
            raise click.UsageError(
                "--sign into a layout needs --identity REGISTRY/REPOSITORY: the repository "
                "the module will be pulled from (a layout names none)."
            )
        from .._oci.signing import load_private_key, read_key_file
        from .signing import key_password

        password = key_password(False, confirm=False)
        with reported():  # a wrong password fails before anything is pushed
            load_private_key(read_key_file(sign_key), password, sign_key)
    with (
        reported(),
        connect(reference=None if oci_layout else reference) as registry,
        ProgressBar("Pushing", quiet) as bar,
    ):
        result = registry.push(
            module,
            reference,
            format=format_,
            annotations=annotations,
            reproducible=reproducible,
            variant=variant,
            image_os=image_os,
            oci_layout=oci_layout,
            progress=bar,
        )
        if sign_key is not None:
            _, tag = registry.sign(
                result.reference, sign_key, password, identity=identity, oci_layout=oci_layout
            )
    if quiet:
        click.echo(result.digest)
    else:
        click.echo(f"Pushed {result.reference} ({result.format})")
        click.echo(f"Digest: {result.digest}")
        if sign_key is not None:
            click.echo(f"Signed: {tag}")


def _check_layout_target(ctx: click.Context, reference: str) -> None:
    """Refuse ``push --oci-layout`` of what is meant for a registry, before a folder
    named like it (``./localhost:5000/x``) is made."""
    from .._oci.reference import names_a_registry

    registry_flags = (
        ("plain_http", "--plain-http"),
        ("insecure", "--insecure"),
        ("ca_file", "--ca-file"),
    )
    for name, flag in registry_flags:
        if ctx.params.get(name):
            raise click.UsageError(
                f"{flag} is for a registry; --oci-layout writes a folder. Leave out one of them."
            )
    if names_a_registry(reference):
        raise click.UsageError(
            f"{reference} names a registry, not a folder; push without --oci-layout to send it "
            f"there, or write ./{reference} for a folder of that name."
        )


@click.command(
    short_help="Pull a module from a registry, verified.",
    epilog=examples(
        "wasmhost pull --plain-http localhost:5000/hello:v1",
        "wasmhost pull --plain-http -o hello.wasm localhost:5000/hello:v1",
    ),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    show_default="REPO.wasm here",
    help="Where to write the module.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the path written.")
@click.option("--offline", is_flag=True, help="Take the copy pulled before, without the registry.")
@click.option("--oci-layout", is_flag=True, help=_FROM_LAYOUT)
@registry_options(downloads=True)
@click.argument("reference")
def pull(
    output: Path | None,
    quiet: bool,
    offline: bool,
    oci_layout: bool,
    connect: Callable[..., Any],
    reference: str,
) -> None:
    """Pull the module of REFERENCE; its size and sha256 are verified before it is written."""
    with (
        reported(),
        connect(reference=None if oci_layout else reference) as registry,
        ProgressBar("Pulling", quiet) as bar,
    ):
        result = registry.pull(
            reference, output, offline=offline, progress=bar, oci_layout=oci_layout
        )
    if quiet:
        click.echo(str(result.path))
    else:
        click.echo(f"Pulled {result.reference} ({result.format})")
        click.echo(f"Wrote {result.path} ({result.module_size} bytes, {result.module_digest})")


@click.command(
    short_help="Describe a module or component: a file, or an artifact in a registry.",
    epilog=examples(
        "wasmhost inspect artifacts/calc.component.wasm",
        "wasmhost inspect --plain-http localhost:5000/hello:v1",
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--offline", is_flag=True, help="Describe the copy stored before, without the registry."
)
@click.option("--oci-layout", is_flag=True, help=_FROM_LAYOUT)
@registry_options()
@click.argument("reference")
def inspect(
    as_json: bool,
    offline: bool,
    oci_layout: bool,
    connect: Callable[..., Any],
    reference: str,
) -> None:
    """Show the format, digests, sizes, media types and annotations of REFERENCE.

    REFERENCE may be a .wasm file: then whether it is a core module or a WASI
    preview-2 component, and what it imports and exports (a component's
    world: interfaces by name, functions with their WIT types).
    """
    if not oci_layout and (os.path.exists(reference) or not looks_like_reference(reference)):
        _inspect_file(reference, as_json)  # a missing file or a folder: the host says which
        return
    with reported(), connect(reference=None if oci_layout else reference) as registry:
        info = registry.inspect(reference, offline=offline, oci_layout=oci_layout)
    if as_json:
        click.echo(json.dumps(info.as_dict(), indent=2, sort_keys=True))
        return
    click.echo(f"Reference:  {info.reference}")
    click.echo(f"Format:     {info.format}")
    click.echo(f"Digest:     {info.digest}")
    click.echo(f"Media type: {info.media_type} ({info.size} bytes)")
    click.echo(f"Config:     {info.config_media_type}")
    world = info.config.get("component") if isinstance(info.config, dict) else None
    if isinstance(world, dict):  # a CNCF artifact of a component: its world, as pushed
        for what in ("imports", "exports"):
            names = world.get(what)
            for name in names if isinstance(names, list) else []:
                click.echo(f"{what[:-1].capitalize() + ':':<12}{_shown(name)}")
    for layer in info.layers:
        click.echo(f"Layer:      {layer.media_type} {layer.digest} ({layer.size} bytes)")
        for key, value in sorted(layer.annotations.items()):
            click.echo(f"              {_shown(key)}: {_shown(value)}")
    for key, value in sorted(info.annotations.items()):
        click.echo(f"Annotation: {_shown(key)}: {_shown(value)}")


def _shown(value: object) -> str:
    """Text from a registry, for a terminal: control characters (escape sequences
    among them) escaped, and at most 200 characters."""
    text = str(value)[:200]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _inspect_file(path: str, as_json: bool) -> None:
    from .._host.host import Host

    with reported(), Host() as host:
        described = host.load(path).as_dict()
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    kind = "component (WASI preview 2)" if described["kind"] == "component" else "core module"
    click.echo(f"File:       {path}")
    click.echo(f"Kind:       {kind}")
    click.echo(f"Digest:     {described['digest']} ({described['size']} bytes)")
    for item in described["imports"]:
        click.echo(f"Import:     {item['name']}: {item['type']}")
    for item in described["exports"]:
        click.echo(f"Export:     {item['name']}: {item['type']}")


@click.command(
    short_help="Log in to a registry (stored like docker login).",
    epilog=examples(
        "wasmhost login -u me --password-stdin ghcr.io < token.txt",
        "wasmhost login --plain-http -u me --password-stdin localhost:5000 < password.txt",
    ),
)
@registry_options(required=True)
@click.argument("registry")
def login(
    connect: Callable[..., Any],
    registry: str,
) -> None:
    """Check credentials against REGISTRY and store them in the Docker config.

    On a terminal, login asks for the username (unless --username gives it) and
    the password, which is not shown as it is typed. In scripts, pass --username
    with --password-stdin and the password on stdin.
    """
    with reported(), connect(registry=registry) as registry_client:
        path = registry_client.login(registry)
    click.echo(f"Login Succeeded (stored in {path})")


@click.command(
    short_help="Forget the stored credentials of a registry.",
    epilog=examples("wasmhost logout ghcr.io"),
)
@click.argument("registry")
def logout(registry: str) -> None:
    """Remove REGISTRY's credentials from the Docker config."""
    from .._oci.client import RegistryClient

    with reported():
        found = RegistryClient.logout(registry)
    click.echo(
        f"Removed login credentials for {registry}" if found else f"Not logged in to {registry}"
    )
