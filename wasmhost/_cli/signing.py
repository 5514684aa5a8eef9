"""``wasmhost key generate``, ``wasmhost sign KEY REF``, ``wasmhost verify --key PUB REF``:
signatures in cosign's format (wasmhost/_oci/signing.py)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import reported
from .params import examples
from .registry import registry_options

PASSWORD_VARIABLE = "WASMHOST_KEY_PASSWORD"
_MAX_PASSWORD = 4096
_PASSWORD_HELP = (
    f"Read the key's password from stdin (else ${PASSWORD_VARIABLE}, else it is asked for)."
)


def key_password(from_stdin: bool, confirm: bool) -> bytes:
    """The private key's password: stdin, the environment, or a prompt on a terminal;
    never a flag (it would show in the process list and the shell's history)."""
    if from_stdin:  # one line, and never a stdin without end
        line = sys.stdin.buffer.readline(_MAX_PASSWORD + 1).rstrip(b"\r\n")
        if len(line) > _MAX_PASSWORD:
            raise click.UsageError(
                f"--password-stdin read more than {_MAX_PASSWORD} bytes on a line."
            )
        return line
    if PASSWORD_VARIABLE in os.environ:
        return os.environ[PASSWORD_VARIABLE].encode()
    if not sys.stdin.isatty():
        raise click.UsageError(
            f"the key's password is asked for on a terminal, and stdin is not one; set "
            f"{PASSWORD_VARIABLE} or pass --password-stdin."
        )
    text = click.prompt(
        "Password for the private key", hide_input=True, confirmation_prompt=confirm, default=""
    )
    return str(text).encode()


@click.group(
    short_help="Make signing keys (cosign's format).",
    epilog=examples("wasmhost key generate release"),
)
def key() -> None:
    """Signing keys in cosign's format: an encrypted ECDSA P-256 private key and its
    public key, which cosign and containers/image (skopeo, podman) read."""


@key.command(
    short_help="Write a new key pair: PREFIX.key (encrypted) and PREFIX.pub.",
    epilog=examples("wasmhost key generate", "WASMHOST_KEY_PASSWORD=... wasmhost key generate ci"),
)
@click.option("--password-stdin", is_flag=True, help=_PASSWORD_HELP)
@click.argument("prefix", default="wasmhost")
def generate(password_stdin: bool, prefix: str) -> None:
    """Write PREFIX.key, the private key encrypted with a password, and PREFIX.pub, the
    public key that verifies its signatures. Existing files are never replaced."""
    from .._files import atomic_writer
    from .._oci.signing import generate_key_pair

    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise click.UsageError(f"{path} exists; not replacing a key (choose another PREFIX).")
    password = key_password(password_stdin, confirm=True)
    with reported():
        private, public = generate_key_pair(password)
        for path, data, mode in ((private_path, private, 0o600), (public_path, public, 0o644)):
            with atomic_writer(path, mode, what="the key", output=True) as out:
                out.write(data)
    click.echo(f"Wrote {private_path} (private, encrypted) and {public_path} (public)")


_LAYOUT_HELP = "REFERENCE is a local OCI image layout, DIR[:TAG] (as push --oci-layout takes it)."


def identity_option(text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--identity", metavar="REGISTRY/REPOSITORY", help=text)


@click.command(
    short_help="Sign a module in a registry or layout (cosign's signature format).",
    epilog=examples(
        "wasmhost sign --plain-http wasmhost.key localhost:5000/hello:v1",
        "wasmhost sign --oci-layout --identity registry.example.com/hello wasmhost.key out:v1",
    ),
)
# (its own name: registry_options takes a password_stdin of its own, for registries)
@click.option("--password-stdin", "key_password_stdin", is_flag=True, help=_PASSWORD_HELP)
@click.option("--oci-layout", is_flag=True, help=_LAYOUT_HELP)
@identity_option(
    "The repository the signature is for (cosign's --sign-container-identity): by default "
    "REFERENCE's; required for a layout, where it names the registry repository the "
    "layout will be copied to."
)
@registry_options(credentials=False)
@click.argument("key_path", metavar="KEY", type=click.Path(dir_okay=False, exists=True))
@click.argument("reference")
def sign(
    key_password_stdin: bool,
    oci_layout: bool,
    identity: str | None,
    connect: Callable[..., Any],
    key_path: str,
    reference: str,
) -> None:
    """Sign the manifest REFERENCE names with the private KEY and store the signature
    beside it (tag sha256-<hex>.sig), as cosign does; signatures already there stay."""
    if oci_layout and identity is None:
        raise click.UsageError(
            "a layout names no repository: give --identity REGISTRY/REPOSITORY, the one the "
            "module will be pulled from."
        )
    password = key_password(key_password_stdin, confirm=False)
    with reported(), connect(reference=None if oci_layout else reference) as registry:
        digest, tag = registry.sign(
            reference, key_path, password, identity=identity, oci_layout=oci_layout
        )
    click.echo(f"Signed {reference} ({digest}); the signature is tagged {tag}")


@click.command(
    short_help="Check a module's signature with public keys.",
    epilog=examples(
        "wasmhost verify --plain-http --key wasmhost.pub localhost:5000/hello:v1",
        "wasmhost verify --oci-layout --key wasmhost.pub out:v1",
    ),
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A public key that may have signed it; repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--oci-layout", is_flag=True, help=_LAYOUT_HELP)
@identity_option(
    "The repository the signature must be for: by default REFERENCE's; in a layout, "
    "unchecked unless given."
)
@registry_options(credentials=False)
@click.argument("reference")
def verify(
    keys: tuple[str, ...],
    as_json: bool,
    oci_layout: bool,
    identity: str | None,
    connect: Callable[..., Any],
    reference: str,
) -> None:
    """Check that the manifest REFERENCE names carries a cosign signature, for its
    repository and digest, by one of the keys. Exits 1 (one line saying why) if not."""
    with reported(), connect(reference=None if oci_layout else reference) as registry:
        digest = registry.verify(reference, list(keys), identity=identity, oci_layout=oci_layout)
    if as_json:
        click.echo(json.dumps({"reference": reference, "digest": digest, "verified": True}))
    else:
        click.echo(f"Verified {reference} ({digest})")
