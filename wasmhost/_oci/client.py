"""Pushing, pulling and inspecting wasm modules as OCI artifacts: :class:`RegistryClient`."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, NamedTuple

from .._errors import (
    ArtifactError,
    ConfigError,
    IntegrityError,
    ModuleError,
    RegistryUnreachable,
    SignatureError,
    reading_module,
)
from .._files import atomic_writer, check_output, copy_into, is_folder, open_regular, writing
from .._hashing import sha256_of
from .._numbers import check_size, format_size
from .._paths import cache_root, module_file_name
from .._text import is_utf8, utf8
from .._wasm import MAGIC
from .credentials import Credentials, erase, store
from .formats import (
    FORMATS,
    INDEX_TYPES,
    OCI_MANIFEST,
    Progress,
    Source,
    Target,
    build,
    find_wasm_layer,
    is_digest,
    json_object,
    pick_from_index,
    sha256_digest,
    timestamp,
)
from .image import IMAGE_OSES, VARIANTS, build_image, extract_module
from .layout import OciLayout, layout_file_name, parse_layout, parse_layout_reference
from .reference import Reference, parse_reference, parse_registry
from .remote import Session, Transport
from .store import Store

if TYPE_CHECKING:
    from .ecdsa import PublicKey
    from .policy import Policy


class _Resolved(NamedTuple):
    reference: Reference
    manifest: dict[str, Any]
    media_type: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PushResult:
    """A pushed artifact: ``reference`` pinned by ``digest`` (the manifest's).

    ``reference`` is the registry reference as pushed, normalised, with its tag
    and the digest: ``localhost:5000/app:v1@sha256:...`` (``hello:1`` becomes
    ``docker.io/library/hello:1@sha256:...``), as ``wasmhost push`` prints it
    and ``pull`` reads it. Into an OCI layout it is ``DIR@sha256:...``, as
    ``pull --oci-layout`` reads it.
    """

    reference: str
    digest: str
    format: str
    module_digest: str
    module_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PullResult:
    """A pulled module: where it is, and the digests it was verified against."""

    reference: str
    digest: str
    format: str
    path: Path
    module_digest: str
    module_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """A layer of an inspected artifact, as its manifest describes it."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactInfo:
    """What ``inspect`` tells of an artifact, without downloading its module."""

    reference: str
    digest: str
    media_type: str
    format: str
    size: int
    config_media_type: str
    config: Any
    layers: tuple[Layer, ...]
    annotations: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """Its fields, and each layer's, as a dict (``inspect --json`` prints it)."""
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["layers"] = [asdict(layer) for layer in self.layers]
        return data


DEFAULT_MAX_SIZE = 1 << 30
_MAX_SIZE_CEILING = 1 << 50


class RegistryClient:
    """Push, pull, inspect and fetch wasm modules in OCI registries.

    >>> client = RegistryClient(plain_http=True)
    >>> client.push("artifacts/hello-world.wasm", "localhost:5000/hello:v1").digest
    'sha256:...'
    >>> client.pull("localhost:5000/hello:v1", "hello.wasm").path
    PosixPath('hello.wasm')

    ``credentials`` maps a registry host to a (username, password) pair, as
    Docker keeps them: ``{"ghcr.io": ("alice", token)}``; each pair is sent
    to its registry only. A registry without an entry gets the environment's
    (``WASMHOST_REGISTRY_USERNAME``/``_PASSWORD``, for the host named by
    ``WASMHOST_REGISTRY``), else the Docker config's (see :meth:`login`).
    ``plain_http`` talks HTTP without TLS, ``insecure`` skips TLS
    verification, ``ca_file`` verifies with a CA bundle. ``timeout`` is how
    long a read may wait for bytes, ``deadline`` how long a request may take in
    all, its answer read whole (default 300 s; a blob gets one second more
    per 64 KiB of its size, so a registry must send at least that fast).
    ``max_size``
    (default 1 GiB) is the largest module accepted: a bigger one is refused
    before it is downloaded. Pulled content is kept in a content-addressed
    store under the wasmhost cache folder (``cache_dir``).

    ``verify`` lists public keys (cosign's format): then :meth:`fetch`,
    :meth:`pull` and what runs from a registry take a module only once a cosign
    signature of its manifest, for its repository, by one of them checks out,
    before anything is downloaded or stored (a :class:`SignatureError` if not).
    ``policy`` is a policy file (rules per registry or repository: accept,
    reject, signed by keys), by default ``$WASMHOST_POLICY`` or the one in the
    config folder (README, Signatures); ``False``: none. Both apply.
    """

    def __init__(
        self,
        *,
        plain_http: bool = False,
        insecure: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        timeout: float = 10.0,
        cache_dir: str | os.PathLike[str] | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        deadline: float = 300.0,
        verify: Sequence[str | os.PathLike[str]] | None = None,
        policy: str | os.PathLike[str] | Literal[False] | None = None,
    ) -> None:
        check_size("max_size", max_size, _MAX_SIZE_CEILING)
        for name, seconds in (("timeout", timeout), ("deadline", deadline)):
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ConfigError(f"{name} must be a number of seconds, not {seconds!r}.")
            if not 0 < seconds < 1e6:  # also refuses nan
                raise ConfigError(f"{name} must be between 0 and 1e6 seconds, not {seconds!r}.")
        if ca_file:
            _check_ca_file(os.fspath(ca_file))
        self._transport = Transport(
            plain_http,
            insecure,
            os.fspath(ca_file) if ca_file else None,
            timeout,
            deadline=float(deadline),
        )
        self._credentials = _scoped(credentials or {})
        self.max_size = max_size
        root = Path(cache_dir) if cache_dir is not None else cache_root()
        self.store = Store(root / "oci")
        self._sessions: dict[str, Session] = {}
        self._verify_keys = _public_keys(verify or ())
        self._policy: Policy | None = None
        if policy is not False:
            from .policy import load_policy, policy_path

            found = Path(policy) if policy is not None else policy_path()
            self._policy = load_policy(found) if found is not None else None

    def __repr__(self) -> str:  # never the credentials: only whom they are for
        return (
            f"RegistryClient(plain_http={self._transport.plain_http}, "
            f"credentials for {sorted(self._credentials)}, store={str(self.store.root)!r})"
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def _session(self, reference: Reference) -> Session:
        session = self._sessions.get(reference.registry + "/" + reference.repository)
        if session is None:
            credentials = self._credentials.get(reference.registry.lower())
            session = Session(reference, self._transport, credentials)
            self._sessions[reference.registry + "/" + reference.repository] = session
        return session

    # -- push ----------------------------------------------------------------

    def push(
        self,
        module: str | os.PathLike[str],
        reference: str,
        *,
        format: str = "wasm-to-oci",
        annotations: Mapping[str, str] | None = None,
        reproducible: bool = False,
        variant: str = "compat",
        image_os: str = "wasip1",
        oci_layout: bool = False,
        progress: Progress | None = None,
    ) -> PushResult:
        """Push the module file at ``module`` to ``reference`` in ``format``.

        ``format`` is ``"wasm-to-oci"`` (what Krustlet reads), ``"cncf"`` (the
        CNCF Wasm artifact) or ``"image"`` (an OCI image for crun, youki,
        runwasi and Docker: ``variant`` is its ``module.wasm.image/variant``,
        ``image_os`` its OS, ``wasip1`` or Docker's ``wasi``).
        ``org.opencontainers.image.created`` is set to now, or to
        ``$SOURCE_DATE_EPOCH``, unless ``reproducible``. With ``oci_layout``,
        ``reference`` is ``DIR[:TAG]``, a local OCI image layout, and no
        registry is involved.
        """
        if format not in (*FORMATS, "image"):
            raise ConfigError(
                f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}, image."
            )
        if variant not in VARIANTS:
            raise ConfigError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}.")
        if image_os not in IMAGE_OSES:
            raise ConfigError(
                f"unknown image OS {image_os!r}; choose one of: {', '.join(IMAGE_OSES)}."
            )
        path = os.fspath(module)
        # Each goes into the artifact's JSON (the file's name titles the layer).
        utf8("file name", [os.path.basename(path)])
        utf8("annotation", [str(s) for pair in (annotations or {}).items() for s in pair])
        module_digest, size = _hash_module(path)
        if oci_layout:
            folder, tag = parse_layout(reference)
            ref = None
        else:
            ref = parse_reference(reference)
            tag = ref.tag or ""
        epoch = _source_date_epoch()
        created = None if reproducible else timestamp(epoch)
        with tempfile.TemporaryDirectory(prefix="wasmhost-push-") as scratch:
            if format == "image":
                artifact = build_image(
                    path,
                    Path(scratch),
                    os_name=image_os,
                    variant=variant,
                    annotations=dict(annotations or {}),
                    created=created,
                    mtime=0 if reproducible else epoch or 0,
                )
            else:
                artifact = build(
                    format,
                    path=path,
                    layer_digest=module_digest,
                    layer_size=size,
                    annotations=annotations or {},
                    created=created,
                )
            digest = sha256_digest(artifact.manifest)
            if ref is not None and ref.digest and ref.digest != digest:
                raise ConfigError(
                    f"{reference} names digest {ref.digest}, but the artifact's is {digest}; "
                    "push to a tag instead."
                )

            def opener() -> IO[bytes]:
                return open_regular(artifact.blob_path)

            target: Target = OciLayout(folder) if ref is None else self._session(ref)
            config = artifact.config
            target.upload_blob(sha256_digest(config), len(config), config)
            target.upload_blob(artifact.blob_digest, artifact.blob_size, opener, progress)
            target.put_manifest(tag or digest, artifact.manifest, OCI_MANIFEST, artifact.platform)
            pinned = f"{folder}@{digest}" if ref is None else str(ref.with_digest(digest))
        return PushResult(
            reference=pinned,
            digest=digest,
            format=format,
            module_digest=module_digest,
            module_size=size,
        )

    # -- pull ----------------------------------------------------------------

    def _manifest(self, ref: Reference, *, offline: bool) -> _Resolved:
        """The manifest ``ref`` names, through an index if need be; from the store if pinned.

        Asked for by digest, a stored manifest is used without the network;
        by tag, the registry is asked (unless ``offline``: then the digest
        the tag had last time). Read through :class:`_ThroughStore`, with the
        same code as a layout (:func:`_resolve_in`).
        """
        source = _ThroughStore(self, ref, offline)
        digest, manifest, media_type, size = _resolve_in(source, str(ref), ref.target)
        return _Resolved(ref.with_digest(digest), manifest, media_type, size)

    def fetch(
        self,
        reference: str,
        *,
        offline: bool = False,
        progress: Progress | None = None,
        oci_layout: bool = False,
    ) -> PullResult:
        """Make sure the module of ``reference`` is in the local store, verified; return it.

        A reference by digest that is stored never touches the network; a tag
        is resolved again, unless ``offline`` (then the digest it had last
        time is used). With ``oci_layout``, ``reference`` is ``DIR[:TAG]`` or
        ``DIR@DIGEST``, a local OCI image layout, read as a registry is.
        """
        if oci_layout:
            layout, where, digest, manifest = self._from_layout(reference, verified=True)
            return self._stored_module(manifest, where, digest, lambda: layout, progress)
        ref = self._verified(parse_reference(reference), offline)
        resolved, manifest, _, _ = self._manifest(ref, offline=offline)
        assert resolved.digest is not None
        source = None if offline else functools.partial(self._session, resolved)
        return self._stored_module(manifest, str(resolved), resolved.digest, source, progress)

    def sign(
        self,
        reference: str,
        key: str | os.PathLike[str],
        password: bytes,
        *,
        identity: str | None = None,
        oci_layout: bool = False,
    ) -> tuple[str, str]:
        """Sign the manifest ``reference`` names with the cosign private key at ``key``
        (opened with ``password``) and store the signature beside it as cosign does,
        keeping the signatures there. Returns the signed digest and the signature tag.

        The signature is for ``identity`` (``registry/repository``), by default the
        repository of ``reference``. With ``oci_layout``, ``reference`` is a layout's
        ``DIR[:TAG]`` and ``identity`` is required: the repository the module is
        meant to be pulled from once the layout is copied to a registry (the
        signature goes with it, as the tag ``sha256-<hex>.sig``)."""
        from .signing import check_identity, load_private_key, read_key_file, sign

        private = load_private_key(read_key_file(os.fspath(key)), password, os.fspath(key))
        place, _, identity, digest = self._signed_place(reference, identity, oci_layout)
        if identity is None:
            raise ConfigError(
                f"{reference} is an OCI layout, which names no repository; give the identity "
                "(registry/repository) the module will be pulled from."
            )
        return digest, sign(place, check_identity(identity), digest, private)

    def verify(
        self,
        reference: str,
        keys: Sequence[str | os.PathLike[str]],
        *,
        identity: str | None = None,
        oci_layout: bool = False,
    ) -> str:
        """The digest of the manifest ``reference`` names, once a cosign signature of it
        by one of ``keys`` checks out; a :class:`SignatureError` saying why not.

        The signature must be for ``identity`` (``registry/repository``), by default
        the repository of ``reference``. In an OCI layout (``oci_layout``), which
        names no repository, the identity is checked only when given (as cosign
        checks a local image)."""
        from .signing import check_identity, verify

        loaded = _public_keys(keys)
        if not loaded:
            raise ConfigError("verify needs at least one public key.")
        place, where, identity, digest = self._signed_place(reference, identity, oci_layout)
        checked = check_identity(identity) if identity is not None else None
        return verify(place, checked, where, digest, loaded).digest

    def _signed_place(
        self, reference: str, identity: str | None, oci_layout: bool
    ) -> tuple[Target, str, str | None, str]:
        """Where ``reference``'s signatures are (a registry session or a layout), its
        name in errors, the identity to sign or check for, and the digest it names."""
        from .signing import docker_reference

        place: Target
        if oci_layout:
            folder, target = parse_layout_reference(reference)
            place, where = OciLayout.existing(folder), str(folder)
        else:
            ref = parse_reference(reference)
            place, target, where = self._session(ref), ref.target, docker_reference(ref)
            identity = identity or where
        _, _, digest = place.get_manifest(target)
        return place, where, identity, digest

    def _required_keys(self, ref: Reference | None) -> list[list[tuple[str, PublicKey]]]:
        """The key sets a module of ``ref`` (None: of an OCI layout, which falls under
        the policy's default) must each be signed by: ``verify``'s, and the policy's."""
        required = [self._verify_keys] if self._verify_keys else []
        if self._policy is not None:
            rule = (
                self._policy.default
                if ref is None
                else self._policy.rule_for(ref.registry, ref.repository)
            )
            if rule.type == "reject":
                what = "OCI layouts" if ref is None else rule.scope
                raise SignatureError(
                    f"{ref or 'an OCI layout'}: the policy {self._policy.path} rejects "
                    f"{what}; nothing was fetched."
                )
            if rule.type == "signedBy":
                required.append(_public_keys(rule.keys))
        return required

    def _verified(self, ref: Reference, offline: bool) -> Reference:
        """``ref`` pinned to the digest whose signatures checked out, as the policy
        and ``verify`` ask: what is fetched next is that manifest, whatever the tag
        says by then. A signature that checked out before is kept in the store:
        then no more than the tag is asked, and offline the kept ones are checked."""
        from .signing import docker_reference, verify

        required = self._required_keys(ref)
        if not required:
            return ref
        session: Session | None = None
        tagged: tuple[bytes, str] | None = None  # the manifest the tag names now
        if offline:
            digest = ref.digest or self.store.recall_tag(ref)
            if digest is None:
                raise ConfigError(f"{ref} was not pulled before; offline it cannot be checked.")
        elif ref.digest:
            session, digest = self._session(ref), ref.digest
        else:
            session = self._session(ref)
            data, media_type, digest = session.get_manifest(ref.target)
            tagged = data, media_type
        where = docker_reference(ref)
        for keys in required:
            verify(session, where, where, digest, keys, self.store)
        if tagged is not None:  # what the tag names now, for --offline (once it checked out)
            self.store.put_bytes(tagged[0])
            self.store.remember_tag(ref, digest, tagged[1], len(tagged[0]))
        return ref.with_digest(digest)

    def _from_layout(
        self, spec: str, *, verified: bool = False
    ) -> tuple[OciLayout, str, str, dict[str, Any]]:
        """The layout ``spec`` names, and the manifest it resolves to (through an index).
        With ``verified``, what the tag names must first be signed as ``verify`` and the
        policy's default ask; the manifest read is then that digest's."""
        from .signing import verify

        folder, target = parse_layout_reference(spec)
        layout = OciLayout.existing(folder)
        if verified:
            required = self._required_keys(None)
            if required:
                target = layout.get_manifest(target)[2]
                for keys in required:
                    verify(layout, None, str(folder), target, keys)
        digest, manifest, _, _ = _resolve_in(layout, f"{folder}:{target}", target)
        return layout, f"{folder}@{digest}", digest, manifest

    def _stored_module(
        self,
        manifest: dict[str, Any],
        where: str,
        digest: str,
        source: Callable[[], Source] | None,
        progress: Progress | None,
    ) -> PullResult:
        """The module ``manifest`` names, stored and verified; fetched from ``source()``
        (a registry or a layout: one interface) unless it is stored, or ``source`` is None."""
        layer = find_wasm_layer(manifest, where)
        self._check_size(layer.size, f"the module of {where}")

        def fetch(f: IO[bytes]) -> None:
            if source is None:
                raise _not_stored(f"the module of {where} is not stored")
            source().download_blob(layer.digest, layer.size, f, progress)

        path = self.store.verified(layer.digest, layer.size, fetch, again=source is not None)
        module_digest, module_size = layer.digest, layer.size
        if layer.packed:
            path, module_digest = self._unpack(layer.digest, path, where)
            module_size = path.stat().st_size
        return PullResult(
            reference=where,
            digest=digest,
            format=layer.format,
            path=path,
            module_digest=module_digest,
            module_size=module_size,
        )

    def _check_size(self, size: int, what: str) -> None:
        if size > self.max_size:
            raise ArtifactError(
                f"{what} is {format_size(size)}, over the maximum of {format_size(self.max_size)}",
                advice="raise max_size if it is trusted",
                fix="max-size",
            )

    def _unpack(self, layer_digest: str, layer: Path, where: str) -> tuple[Path, str]:
        """Store the module inside an image layer as a blob of its own (once per layer)."""
        known = self.store.unpacked(layer_digest)
        if known is not None and self.store.has_blob(known):
            with contextlib.suppress(IntegrityError):  # damaged: removed, unpacked again
                return self.store.verify_file(known), known
        # The layer's own read errors are ArtifactErrors already: an OSError here is
        # the store's (a full disk while unpacking).
        with (
            writing(self.store.root, "the store"),
            tempfile.TemporaryFile(dir=self.store.root) as scratch,
        ):
            digest = extract_module(
                layer, scratch, lambda size: self._check_size(size, f"the module of {where}")
            )
            if not self.store.has_blob(digest):
                scratch.seek(0)
                with self.store.writer(digest) as out:
                    shutil.copyfileobj(scratch, out, 1 << 20)
        self.store.remember_unpacked(layer_digest, digest)
        return self.store.verify_file(digest), digest

    def pull(
        self,
        reference: str,
        output: str | os.PathLike[str] | None = None,
        *,
        offline: bool = False,
        progress: Progress | None = None,
        oci_layout: bool = False,
    ) -> PullResult:
        """Download and verify the module of ``reference`` and write it to ``output``.

        Without ``output``, the file is named after the repository
        (``repo.wasm``; for an OCI layout, after its folder) in the current
        folder. The file is the caller's own copy (never the stored blob), and
        appears only once verified and whole. ``offline`` takes the copy pulled
        before, as :meth:`fetch` does; ``oci_layout`` reads from a layout.
        ``output`` is a new name, a regular file (replaced) or a folder (the file
        goes into it); a symbolic link, a device, a FIFO or a socket there is
        refused with a :class:`~wasmhost.StorageError` and left as it was.
        """
        if output is not None and not is_folder(output):
            check_output(output, "the module")  # before the download, not after
        fetched = self.fetch(reference, offline=offline, progress=progress, oci_layout=oci_layout)
        name = layout_file_name(reference) if oci_layout else module_file_name(fetched.reference)
        target = Path(output if output is not None else name)
        if is_folder(target):
            target = target / name
        with atomic_writer(target, None, what="the module", output=True) as out:
            try:
                copy_into(fetched.path, out)
            except FileNotFoundError:
                # Removed since it was checked (`wasmhost cache prune` elsewhere): again.
                again = self.fetch(reference, offline=offline, oci_layout=oci_layout)
                with writing(again.path, "the store", "read"):
                    copy_into(again.path, out)
        return replace(fetched, path=target)

    def inspect(
        self, reference: str, *, offline: bool = False, oci_layout: bool = False
    ) -> ArtifactInfo:
        """Describe the artifact at ``reference``: format, digests, sizes, types, annotations.

        ``offline`` describes the copy stored by an earlier pull or inspect;
        ``oci_layout`` one in a local OCI layout (``DIR[:TAG]``, ``DIR@DIGEST``).
        """
        source: Callable[[], Source] | None
        if oci_layout:
            folder, target = parse_layout_reference(reference)
            layout = OciLayout.existing(folder)
            digest, manifest, media_type, size = _resolve_in(layout, f"{folder}:{target}", target)
            where = f"{folder}@{digest}"
            source = lambda: layout  # noqa: E731 - one name for both kinds of source
        else:
            ref = parse_reference(reference)
            resolved, manifest, media_type, size = (
                self._manifest(ref._replace(digest=None), offline=offline)
                if ref.tag
                else self._manifest(ref, offline=offline)
            )
            where, digest = str(resolved), str(resolved.digest)
            source = None if offline else functools.partial(self._session, resolved)
        raw_layers = manifest.get("layers")
        layers = tuple(
            Layer(
                media_type=str(layer.get("mediaType")),
                digest=str(layer.get("digest")),
                size=_int(layer.get("size")),
                annotations=_strings(layer.get("annotations")),
            )
            for layer in (raw_layers if isinstance(raw_layers, list) else [])
            if isinstance(layer, dict)
        )
        config_desc = manifest.get("config")
        config_desc = config_desc if isinstance(config_desc, dict) else {}
        try:
            fmt = find_wasm_layer(manifest, where).format
        except ArtifactError:
            fmt = "not wasm"
        config: Any = None
        config_size = _int(config_desc.get("size"))
        config_digest = config_desc.get("digest")
        if is_digest(config_digest) and 0 < config_size <= 1 << 16:
            assert isinstance(config_digest, str)
            raw: bytes | None = None
            if self.store.has_blob(config_digest, config_size):
                with contextlib.suppress(IntegrityError):  # damaged: removed, fetched again
                    raw = self.store.read_verified(config_digest)
            if raw is None and source is not None:
                buffer = io.BytesIO()
                source().download_blob(config_digest, config_size, buffer)
                raw = buffer.getvalue()
                self.store.put_bytes(raw)
            if raw is not None:
                config = json_object(raw, f"the config of {where}")
        return ArtifactInfo(
            reference=where,
            digest=digest,
            media_type=media_type or "application/vnd.oci.image.manifest.v1+json (implied)",
            format=fmt,
            size=size,
            config_media_type=str(config_desc.get("mediaType")),
            config=config,
            layers=layers,
            annotations=_strings(manifest.get("annotations")),
        )

    # -- credentials -----------------------------------------------------------

    def login(
        self, registry: str, username: str | None = None, password: str | None = None
    ) -> Path:
        """Check credentials against ``registry``; store them as ``docker login`` does,
        and return the config file's path.

        The credentials are ``username`` and ``password``, or else the ones this
        client was given for ``registry``. ``registry`` is a server address as
        ``docker login`` takes it: ``ghcr.io``, ``localhost:5000``,
        ``https://r.example.com``, or ``docker.io`` (Docker Hub).
        """
        host = parse_registry(registry)
        credentials = (
            Credentials(username, password)
            if username and password
            else self._credentials.get(host.lower())
        )
        if credentials is None or not credentials.password:
            raise ConfigError(f"login to {host} needs a username and a password.")
        if not is_utf8(credentials.username + credentials.password):  # never shown: a secret
            raise ConfigError(f"the username or password for {host} is not valid UTF-8.")
        with Session(
            Reference(host, "wasmhost-login-check", "latest", None), self._transport, credentials
        ) as session:
            session.check()
        return store(host, credentials)

    @staticmethod
    def logout(registry: str) -> bool:
        """Forget the stored credentials for ``registry``; whether there were any."""
        return erase(parse_registry(registry))


class _ThroughStore:
    """A registry seen through the pull store, as a :class:`Source`: what is stored
    is read from there (verified), what is fetched is stored, and the tag of the
    reference is recorded (for ``offline``) and listed in the store's index."""

    def __init__(self, client: RegistryClient, ref: Reference, offline: bool) -> None:
        self.client = client
        self.store = client.store
        self.ref = ref
        self.offline = offline

    def get_manifest(self, target: str) -> tuple[bytes, str, str]:
        store, ref = self.store, self.ref
        if not is_digest(target) and self.offline:
            recalled = store.recall_tag(ref)
            if recalled is None:
                raise _not_stored(f"{ref} has not been pulled before, so it cannot be used offline")
            target = recalled
        if is_digest(target) and store.has_blob(target):
            try:
                return store.read_verified(target), "", target
            except IntegrityError:
                if self.offline:
                    raise
                # Damaged, and so removed by the store: fetched again below.
        if self.offline:
            raise _not_stored(f"the manifest {target} of {ref} is not stored")
        try:
            data, media_type, digest = self.client._session(ref).get_manifest(target)
        except RegistryUnreachable as exc:
            if store.recall_tag(ref):
                # What would reach the registry still helps: both are said.
                raise RegistryUnreachable(
                    f"{exc.problem}; a copy pulled earlier is stored",
                    advice=f"{exc.advice}, or call again with offline=True to use it"
                    if exc.advice
                    else "call again with offline=True to use it",
                    fix=f"{exc.fix} offline".lstrip(),
                    reference=exc.reference,
                    registry=exc.registry,
                ) from None
            raise
        store.put_bytes(data)
        if target == ref.target:  # what the reference names, not an index's child
            store.remember_tag(ref, digest, media_type, len(data))
        return data, media_type, digest

    def download_blob(
        self, digest: str, size: int, out: IO[bytes], progress: Progress | None = None
    ) -> None:
        self.client._session(self.ref).download_blob(digest, size, out, progress)


def _resolve_in(
    source: Source, where: str, target: str, depth: int = 0
) -> tuple[str, dict[str, Any], str, int]:
    """The digest, manifest, media type and size ``target`` names in ``source``,
    through one index at most."""
    data, media_type, digest = source.get_manifest(target)
    manifest = json_object(data, f"the manifest of {where}")
    media_type = str(manifest.get("mediaType") or media_type)
    if media_type in INDEX_TYPES or "manifests" in manifest:
        if depth > 0:
            raise ArtifactError(f"{where} is an index inside an index; not followed.")
        return _resolve_in(source, where, pick_from_index(manifest, where), depth=1)
    return digest, manifest, media_type, len(data)


def _public_keys(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, PublicKey]]:
    from .signing import load_public_key, read_key_file

    return [
        (os.fspath(k), load_public_key(read_key_file(os.fspath(k)), os.fspath(k))) for k in paths
    ]


def _check_ca_file(path: str) -> None:
    """Refuse a CA bundle that holds no certificate now, rather than as a TLS failure later."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise ConfigError(f"the CA file {path} does not exist.") from None
    except (ssl.SSLError, OSError, ValueError):
        raise ConfigError(
            f"the CA file {path} holds no PEM certificate; give a CA bundle "
            "(-----BEGIN CERTIFICATE----- blocks)."
        ) from None


def _not_stored(problem: str) -> ArtifactError:
    """What an offline call needs is not in the store."""
    return ArtifactError(problem, advice="call once without offline=True", fix="online")


def _scoped(credentials: Mapping[str, tuple[str, str]]) -> dict[str, Credentials]:
    """Credentials by registry host, keys normalised as ``docker login`` reads them."""
    scoped = {}
    for registry, pair in credentials.items():
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(isinstance(part, str) and is_utf8(part) for part in pair)
            or not pair[0]
        ):
            raise ConfigError(
                f"the credentials for {registry} must be a (username, password) pair of "
                "strings (UTF-8 text)."
            )
        scoped[parse_registry(registry).lower()] = Credentials(*pair)
    return scoped


def _hash_module(path: str) -> tuple[str, int]:
    """The sha256 digest and size of a module file, refusing what is not wasm."""
    with reading_module(path), open_regular(path) as f:
        head = f.read(8)
        if head[:4] != MAGIC or len(head) < 8:
            what = "is empty" if not head else "is not a WebAssembly module (no \\0asm magic)"
            raise ModuleError(f"{path} {what}; push takes a .wasm file.")
        f.seek(0)
        return sha256_of(f)


def _source_date_epoch() -> int | None:
    """``$SOURCE_DATE_EPOCH`` (reproducible-builds.org), or None when unset."""
    text = os.environ.get("SOURCE_DATE_EPOCH")
    if not text:
        return None
    if not text.isdigit() or int(text) > 253402300799:  # 9999-12-31T23:59:59Z
        raise ConfigError(f"SOURCE_DATE_EPOCH={text!r} is not a number of seconds since 1970.")
    return int(text)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _strings(value: object) -> dict[str, str]:
    """An annotations map from untrusted JSON: string keys and values only."""
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}
