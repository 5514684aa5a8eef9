"""Fuzzing every parser of untrusted bytes: whatever comes in, each returns a value or
raises its documented error, within a time and memory bound (issue 21).

Each parser has one ``feed_*`` function that states its property for ANY input;
hypothesis feeds it arbitrary bytes and mutations of valid seeds, and the
replay test feeds it every file under ``tests/corpus/<parser>/`` (seeds, and
every input a fuzzer once broke a parser with). In CI each fuzz test runs a
fixed, derandomized set of examples (about 35 s for the whole file);
``FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py`` runs that many random
examples per test instead (a new seed each run; hypothesis prints a failing
input, which belongs in the corpus).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from conftest import ARTIFACTS, HELLO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wasmhost import (
    ArtifactError,
    ConfigError,
    LinkError,
    MemoryLimitExceeded,
    ModuleError,
    RegistryClient,
    WasmhostError,
)
from wasmhost._host.engines import failures
from wasmhost._host.running.kinds import convert_params
from wasmhost._host.values import wave
from wasmhost._host.values.module import Import, check_header, wasm_imports
from wasmhost._oci import credentials
from wasmhost._oci.formats import OCI_MANIFEST, component_world
from wasmhost._oci.image import extract_module
from wasmhost._oci.layout import OciLayout
from wasmhost._oci.reference import (
    InvalidReference,
    Reference,
    looks_like_reference,
    parse_reference,
    parse_registry,
)
from wasmhost._serve.app import load_config
from wasmhost._serve.wagi import MalformedResponse, Response, parse_response

CORPUS = Path(__file__).parent / "corpus"

# -- the budget --------------------------------------------------------------

# Unset: each test's own small number of derandomized examples (the same every
# run, so CI is reproducible). Set: that many random examples per test.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or examples,
        derandomize=not EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


# Far more than any parser needs for the small inputs fed here.
SECONDS = 5
MEMORY = 64 << 20


class Hang(BaseException):
    """A parser took longer than SECONDS (a BaseException: ``except Exception`` in
    the code under test must not swallow it)."""


@contextmanager
def bounded() -> Iterator[None]:
    """Fail if the block runs longer than SECONDS or allocates more than MEMORY
    (Python allocations, which every parser here makes)."""

    def expired(signum: int, frame: object) -> None:
        raise Hang(f"still parsing after {SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if started:
            tracemalloc.stop()
    assert peak < MEMORY, f"a parser allocated {peak >> 20} MiB"


# -- strategies: arbitrary bytes, and valid seeds mutated --------------------

INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff" * 9 + b"\x01", b"\n", b"\r\n", b'"']


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, tokens: tuple[bytes, ...] = ()) -> bytes:
    """``seed`` with a few bytes flipped, cut out, repeated or inserted (``tokens``
    of the format among them), or cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.integers(0, 5))
        if action == 0 and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == 1:
            del data[at : at + draw(st.integers(1, 16))]
        elif action == 2:
            end = min(len(data), at + draw(st.integers(1, 32)))
            data[at:at] = data[at:end] * draw(st.integers(1, 8))
        elif action == 3:
            data[at:at] = draw(st.sampled_from(INTERESTING + list(tokens)))
        elif action == 4:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at:]
    return bytes(data)


def as_text(data: bytes) -> bytes:
    """``data`` made valid UTF-8."""
    return data.decode("utf-8", "replace").encode()


def seeds(kind: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CORPUS / kind).iterdir())]


def inputs(kind: str, *extra: bytes, tokens: tuple[bytes, ...] = (), size: int = 512) -> Any:
    """Arbitrary bytes, or a corpus seed of ``kind`` (or one of ``extra``) mutated."""
    pool = seeds(kind) + list(extra)
    return st.binary(max_size=size) | st.sampled_from(pool).flatmap(
        lambda seed: mutated(seed, tokens)
    )


# JSON from an untrusted registry or file: the vocabulary of OCI, at any place.
DIGEST = "sha256:" + "0" * 64
WORDS = [
    "mediaType",
    "digest",
    "size",
    "layers",
    "config",
    "manifests",
    "platform",
    "annotations",
    "os",
    "architecture",
    "wasm",
    "wasip1",
    "auths",
    "auth",
    "credHelpers",
    "credsStore",
    "org.opencontainers.image.title",
    "org.opencontainers.image.ref.name",
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.config.v1+json",
    "latest",
    "m.wasm",
    DIGEST,
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(WORDS)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_json(draw: st.DrawFn, seed: Any) -> Any:
    """``seed`` with a value somewhere in it replaced, removed or added."""

    def change(value: Any) -> Any:
        if isinstance(value, dict) and value and draw(st.integers(0, 3)):
            key = draw(st.sampled_from(sorted(value)))
            action = draw(st.integers(0, 3))
            if action == 0:
                del value[key]
            elif action == 1:
                value[draw(st.sampled_from(WORDS))] = draw(JSON)
            else:
                value[key] = change(value[key])
            return value
        if isinstance(value, list) and value and draw(st.integers(0, 3)):
            at = draw(st.integers(0, len(value) - 1))
            value[at] = change(value[at])
            return value
        return draw(JSON)

    value = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        value = change(value)
    return value


def structured_json(kind: str) -> Any:
    """The seeds of ``kind`` that are JSON, with their values changed."""
    parsed = []
    for seed in seeds(kind):
        with suppress(ValueError, RecursionError):
            parsed.append(json.loads(seed))
    return st.sampled_from(parsed).flatmap(mutated_json).map(lambda v: json.dumps(v).encode())


def json_inputs(kind: str) -> Any:
    """Bytes, mutated seeds of ``kind``, or valid seeds with their JSON values changed."""
    return inputs(kind, tokens=(b"{", b"[", b'":"', b'":{')) | structured_json(kind)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# -- the module header, import and type reader ---------------------------------


def feed_module(data: bytes, scratch: Path) -> None:
    """``wasm_imports`` reads any bytes or says it cannot (None); ``check_header``
    passes them or refuses them as a ModuleError."""
    with bounded():
        imports = wasm_imports(data)
        with suppress(ModuleError):
            check_header("<fuzz>", data)
    assert imports is None or all(isinstance(i, Import) for i in imports)


MODULE_TOKENS = (b"\x01", b"\x02", b"\x60", b"\x7b", b"\x6f", b"\x63", b"\x00asm\x01\x00\x00\x00")


@fuzz(800)
@given(data=inputs("module", HELLO.read_bytes()[:4096], tokens=MODULE_TOKENS))
def test_the_module_reader_takes_any_bytes(data: bytes, scratch: Path) -> None:
    feed_module(data, scratch)


# -- the component world reader (for a pushed artifact's config) ----------------


def feed_component(data: bytes, scratch: Path) -> None:
    """A component's world, None for what is not a component, or an ArtifactError."""
    path = scratch / "component.wasm"
    path.write_bytes(data)
    with bounded():
        try:
            world = component_world(str(path))
        except ArtifactError:
            return
    if world is not None:
        imports, exports = world
        assert all(isinstance(name, str) for name in imports + exports)


@fuzz(600)
@given(data=inputs("component", tokens=(b"\x0a", b"\x0b", b"\x00", b"\x01", b"\x03")))
def test_the_component_world_reader_takes_any_bytes(data: bytes, scratch: Path) -> None:
    feed_component(data, scratch)


def test_a_real_component_world_is_read() -> None:
    imports, exports = component_world(str(ARTIFACTS / "calc.component.wasm")) or ([], [])
    assert "add" in exports
    assert any(name.startswith("wasi:") for name in imports)


# -- WAVE ----------------------------------------------------------------------

# A component importing one function whose parameters are of every WAVE type:
# wasmtime gives their types to the parser as it gives a real function's.
WAVE_TYPES = """
(component
  (type $rec0 (record (field "a" u8) (field "b" (option string))))
  (import "rec" (type $rec (eq $rec0)))
  (type $var0 (variant (case "x") (case "y" s64) (case "z" (list string))))
  (import "var" (type $var (eq $var0)))
  (type $enum0 (enum "red" "green" "none"))
  (import "enum" (type $enum (eq $enum0)))
  (type $flags0 (flags "p" "q" "ok"))
  (import "flags" (type $flags (eq $flags0)))
  (import "f" (func
    (param "a" (option (option u8)))
    (param "b" (list (tuple char f64)))
    (param "c" $rec)
    (param "d" $var)
    (param "e" $enum)
    (param "f" $flags)
    (param "g" (result u32 (error string)))
    (param "h" bool)
    (param "i" (list u8))
    (param "j" f32)
    (param "k" (result))
    (param "l" s8)
    (param "m" u64)
    (param "n" (tuple u8 string))
    (param "o" (option (list (option s32))))))
)
"""


@pytest.fixture(scope="module")
def wave_types() -> list[tuple[str, Any]]:
    import wasmtime.component as wc

    from wasmhost._host.values.component import item_type

    engine = wasmtime.Engine()
    component = wc.Component(engine, wasmtime.wat2wasm(WAVE_TYPES))
    params: list[tuple[str, Any]] = item_type(component.type.imports(engine)["f"]).params
    return params


def feed_wave(text: str, types: list[tuple[str, Any]]) -> None:
    """The arguments of f, or of any one of its parameters alone, or a WaveError."""
    with bounded():
        for subject in [types, *([t] for t in types)]:
            try:
                values = wave.parse_args(text, subject, "fuzz")
            except wave.WaveError:
                continue
            assert len(values) == len(subject)
        with suppress(wave.WaveError):
            wave.parse_call(text)


WAVE_TOKENS = tuple(
    t.encode()
    for t in ("some(", "none", "ok(", "err(", "%", "[", "]", "{", "}", "(", ")", "'", '"', "\\u{")
)


@fuzz(400)
@given(data=inputs("wave", tokens=WAVE_TOKENS, size=128))
def test_wave_takes_any_text(data: bytes, wave_types: list[tuple[str, Any]]) -> None:
    feed_wave(data.decode("utf-8", "replace"), wave_types)


@fuzz(200)
@given(text=st.text(max_size=64))
def test_wave_takes_any_characters(text: str, wave_types: list[tuple[str, Any]]) -> None:
    feed_wave(text, wave_types)


def values_of(ty: Any) -> Any:
    """A strategy for the Python values of component type ``ty``."""
    import wasmtime.component as wc

    ints = {"S8": 8, "S16": 16, "S32": 32, "S64": 64}
    name = type(ty).__name__
    if name in ints:
        bits = ints[name]
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if name in ("U8", "U16", "U32", "U64"):
        return st.integers(0, (1 << int(name[1:])) - 1)
    if isinstance(ty, wc.Bool):
        return st.booleans()
    if isinstance(ty, wc.F32):  # (the largest are test_wave_prints_the_largest_f32's)
        return st.floats(-3.3999999521443642e38, 3.3999999521443642e38, width=32)
    if isinstance(ty, wc.F64):
        return st.floats(allow_nan=False)
    if isinstance(ty, wc.Char):
        return st.characters(exclude_categories=["Cs"])
    if isinstance(ty, wc.String):
        return st.text(max_size=8)
    if isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            return st.binary(max_size=8)
        return st.lists(values_of(ty.element), max_size=3)
    if isinstance(ty, wc.TupleType):
        return st.tuples(*(values_of(t) for t in ty.elements))
    if isinstance(ty, wc.RecordType):
        return st.fixed_dictionaries({n: values_of(t) for n, t in ty.fields})
    if isinstance(ty, wc.OptionType):
        return st.none() | values_of(ty.payload)
    if isinstance(ty, wc.EnumType):
        return st.sampled_from(list(ty.names))
    if isinstance(ty, wc.FlagsType):
        return st.sets(st.sampled_from(list(ty.names)))
    cases = dict(ty.cases) if isinstance(ty, wc.VariantType) else {"ok": ty.ok, "err": ty.err}
    return st.one_of(
        *(st.tuples(st.just(n), st.none() if t is None else values_of(t)) for n, t in cases.items())
    )


def round_trip(ty: Any, value: Any) -> None:
    """WAVE printed by format_value reads back as the same value."""
    text = wave.format_value(ty, value)
    with bounded():
        back = wave.parse_value(text, ty, "fuzz")
    if type(ty).__name__ == "F32":  # the same single-precision number
        assert struct.pack("<f", back) == struct.pack("<f", value), text
    else:
        assert back == value, text


# Types whose values print and read back the same, each on its own.
ROUND_TRIPS = ["b", "c", "d", "e", "f", "h", "i", "j", "l", "m", "n"]


@fuzz(400)
@given(data=st.data())
def test_wave_reads_back_what_it_prints(data: Any, wave_types: list[tuple[str, Any]]) -> None:
    name = data.draw(st.sampled_from(ROUND_TRIPS))
    ty = dict(wave_types)[name]
    round_trip(ty, data.draw(values_of(ty)))


@pytest.mark.parametrize(
    ("param", "value"), [("g", ("ok", 7)), ("g", ("err", "e")), ("k", ("ok", None))]
)
def test_wave_reads_back_a_result(
    wave_types: list[tuple[str, Any]], param: str, value: Any
) -> None:
    round_trip(dict(wave_types)[param], value)


def test_wave_tells_some_none_from_none(wave_types: list[tuple[str, Any]]) -> None:
    ty = dict(wave_types)["a"]
    assert wave.parse_value("some(none)", ty) != wave.parse_value("none", ty)


def test_wave_prints_the_largest_f32(wave_types: list[tuple[str, Any]]) -> None:
    largest = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
    round_trip(dict(wave_types)["j"], largest)


# -- CGI responses from guests ---------------------------------------------------

_FORBIDDEN_IN_HEADERS = set(range(0x20)) - {0x09} | {0x7F}


def feed_cgi(data: bytes, scratch: Path) -> None:
    """A response the server can send as it is, or MalformedResponse."""
    with bounded():
        try:
            response = parse_response(data)
        except MalformedResponse:
            return
    assert isinstance(response, Response)
    assert 200 <= response.status <= 599
    assert data.endswith(response.body)
    for name, value in response.headers:
        assert name
        assert all(c.isascii() and c.isprintable() and c not in ' :"(),/' for c in name)
        assert not {ord(c) for c in value} & _FORBIDDEN_IN_HEADERS
        assert value == value.strip(" \t")
        assert name.lower() not in ("content-length", "transfer-encoding", "connection")


CGI_TOKENS = (b"Status: ", b"Location: ", b"Content-Type: ", b"\n\n", b"\r\n\r\n", b":", b"\r")


@fuzz(800)
@given(data=inputs("cgi", tokens=CGI_TOKENS))
def test_cgi_responses_take_any_bytes(data: bytes, scratch: Path) -> None:
    feed_cgi(data, scratch)


# -- manifests and indexes, read from an OCI layout as a pull reads them ------------


def layout_with(scratch: Path, index: bytes, manifest: bytes) -> Path:
    """A layout holding ``index`` as index.json and ``manifest`` as a blob (the
    seeds' config and layer blobs too)."""
    root = Path(tempfile.mkdtemp(dir=scratch))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_bytes(index)
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (manifest, *BLOBS):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    return root


# What the seed manifests point at: an empty config and the module.
BLOBS = (b"{}", (CORPUS / "layer" / "module.tar.gz").read_bytes())


def index_for(manifest: bytes, tag: str = "latest") -> bytes:
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    return json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()


def feed_layout(index: bytes, manifest: bytes, scratch: Path) -> None:
    """inspect and fetch of a layout: an answer, or a WasmhostError."""
    root = layout_with(scratch, index, manifest)
    try:
        client = RegistryClient(cache_dir=root / "cache")
        for call in (client.inspect, client.fetch):
            with bounded(), suppress(WasmhostError):
                call(f"{root}:latest", oci_layout=True)
    finally:
        shutil.rmtree(root)


def feed_layout_push(index: bytes, scratch: Path) -> None:
    """A push to a layout that has ``index`` as its index.json: listed, or a WasmhostError."""
    root = layout_with(scratch, index, BLOBS[0])
    try:
        with bounded(), suppress(WasmhostError):
            OciLayout(root).put_manifest("pushed", BLOBS[0], OCI_MANIFEST)
    finally:
        shutil.rmtree(root)


@fuzz(150)
@given(manifest=json_inputs("manifest"))
def test_manifests_take_any_bytes(manifest: bytes, scratch: Path) -> None:
    feed_layout(index_for(manifest), manifest, scratch)


@fuzz(150)
@given(index=json_inputs("index"))
def test_layout_indexes_take_any_bytes(index: bytes, scratch: Path) -> None:
    manifest = (CORPUS / "manifest" / "wasm-to-oci.json").read_bytes()
    feed_layout(index, manifest, scratch)


@fuzz(100)
@given(index=json_inputs("index"))
def test_pushing_to_a_layout_takes_any_index(index: bytes, scratch: Path) -> None:
    feed_layout_push(index, scratch)


# -- Docker configs ----------------------------------------------------------------


def feed_docker_config(data: bytes, scratch: Path) -> None:
    """Credentials for a registry, none, or a ConfigError/AuthenticationError; a
    credential helper the config names is never found (PATH is empty)."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    (folder / "config.json").write_bytes(data)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DOCKER_CONFIG", str(folder))
            patch.setenv("PATH", str(folder))
            for registry in ("registry.example.com", "docker.io"):
                with bounded():
                    try:
                        found = credentials.lookup(registry)
                    except WasmhostError:
                        continue
                assert found is None or (
                    isinstance(found.username, str) and isinstance(found.password, str)
                )
    finally:
        shutil.rmtree(folder)


@fuzz(150)
@given(data=structured_json("docker-config"))
def test_docker_configs_take_any_json(data: bytes, scratch: Path) -> None:
    feed_docker_config(data, scratch)


@fuzz(100)
@given(data=json_inputs("docker-config"))
def test_docker_configs_take_any_bytes(data: bytes, scratch: Path) -> None:
    feed_docker_config(data, scratch)


# -- tar layers --------------------------------------------------------------------


def feed_layer(data: bytes, scratch: Path) -> None:
    """The module in the layer (hashed as copied), or an ArtifactError."""
    path = scratch / "layer"
    path.write_bytes(data)
    out = io.BytesIO()

    def check_size(size: int) -> None:
        if size > 1 << 20:
            raise ArtifactError("too big")

    with bounded():
        try:
            digest = extract_module(path, out, check_size)
        except ArtifactError:
            return
    assert digest == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
    assert len(out.getvalue()) <= 1 << 20


TAR_TOKENS = (b"ustar\x00", b"ustar  \x00", b"././@LongLink", b"0", b"L", b"x", b"g", b".wasm")


@fuzz(300)
@given(data=inputs("layer", tokens=TAR_TOKENS, size=2048))
def test_layers_take_any_bytes(data: bytes, scratch: Path) -> None:
    feed_layer(data, scratch)


# -- modules.toml ------------------------------------------------------------------


def feed_modules_toml(data: bytes, scratch: Path) -> None:
    """Routes, or a ConfigError."""
    path = scratch / "modules.toml"
    path.write_bytes(data)
    with bounded():
        try:
            routes = load_config(path)
        except WasmhostError:
            return
    for route in routes:
        assert isinstance(route.path, str)
        assert isinstance(route.module, str)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in route.env.items())


TOML_TOKENS = (b"[[module]]\n", b'module = "', b'route = "', b"environment = {", b" = ", b"\\u0000")


@fuzz(300)
@given(data=inputs("modules-toml", tokens=TOML_TOKENS).map(as_text))
def test_modules_toml_takes_any_text(data: bytes, scratch: Path) -> None:
    feed_modules_toml(data, scratch)


@fuzz(100)
@given(data=inputs("modules-toml", tokens=TOML_TOKENS))
def test_modules_toml_takes_any_bytes(data: bytes, scratch: Path) -> None:
    feed_modules_toml(data, scratch)


def test_modules_toml_refuses_a_nul_in_a_module_path(scratch: Path) -> None:
    path = scratch / "modules.toml"
    path.write_bytes((CORPUS / "modules-toml" / "nul-in-module-path.toml").read_bytes())
    with pytest.raises(WasmhostError):
        load_config(path)


# -- references --------------------------------------------------------------------


def feed_reference(text: str) -> None:
    """A Reference that reads back as itself, or InvalidReference; any text is or is
    not a registry address and looks like a reference or not."""
    with bounded():
        try:
            ref = parse_reference(text)
        except InvalidReference:
            ref = None
        if ref is not None:
            assert isinstance(ref, Reference)
            assert parse_reference(str(ref)) == ref
        with suppress(InvalidReference):
            assert isinstance(parse_registry(text), str)
        assert isinstance(looks_like_reference(text), bool)


REFERENCE_ALPHABET = st.sampled_from("abz09AZ:/@._-[]%") | st.characters()


@fuzz(600)
@given(data=inputs("reference", tokens=(b"localhost", b":5000", b"/", b"@sha256:", b"[::1]")))
def test_references_take_any_text(data: bytes) -> None:
    feed_reference(data.decode("utf-8", "replace"))


@fuzz(200)
@given(text=st.text(REFERENCE_ALPHABET, max_size=40))
def test_references_take_any_characters(text: str) -> None:
    feed_reference(text)


# -- what wasmtime says, and what a caller passes to a core function --------------------

WASMTIME_TOKENS = (
    "Caused by:\n",
    "error while executing at wasm backtrace:\n",
    "    0: ",
    "1: wasm trap: ",
    "wasm trap: ",
    "wasm backtrace",
    "\n",
    *failures.TRAP_TEXTS,
    *failures.REFUSAL_TEXTS,
)


@fuzz(200)
@given(text=st.lists(st.sampled_from(WASMTIME_TOKENS) | st.text(max_size=8), max_size=12))
def test_wasmtime_messages_are_read_whatever_they_say(text: list[str]) -> None:
    """A wasmtime message holds names a guest chose (its imports, its exports): read as
    facts and as an error, whatever it says, in one line."""
    message = "".join(text)
    facts = failures.read_trap(wasmtime.WasmtimeError(message))
    assert facts.code in (None, *failures.TRAP_TEXTS.values())
    assert "\n" not in facts.message
    assert failures.refusal(message) in (None, *failures.REFUSAL_TEXTS.values())
    for cap in (None, 1 << 20):
        error = failures.instantiation_error(message, "m.wasm", cap, refused_memory=False)
        assert isinstance(error, LinkError | MemoryLimitExceeded)
        assert "\n" not in str(error)


CORE_TYPES = ("i32", "i64", "f32", "f64", "v128", "externref")
ANY_VALUE = (
    st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.none()
    | st.binary(max_size=4)
    | st.lists(st.integers(), max_size=2)
)


@fuzz(300)
@given(
    params=st.lists(st.sampled_from(CORE_TYPES), max_size=4),
    values=st.lists(ANY_VALUE, max_size=4),
)
def test_a_core_function_takes_any_values(params: list[str], values: list[object]) -> None:
    """What a caller passes to Host.call for a core function (any Python value, or the
    CLI's text) becomes numbers of the parameters' types, or one ConfigError."""
    try:
        converted = convert_params(params, values, "m.wasm", "f")
    except ConfigError as exc:
        refused: ConfigError | None = exc
    else:
        refused = None
    if refused is not None:
        assert "\n" not in str(refused)
        return
    assert len(converted) == len(params)
    for value, kind in zip(converted, params, strict=True):
        if kind in ("i32", "i64"):
            bits = 32 if kind == "i32" else 64
            assert isinstance(value, int)
            assert -(1 << (bits - 1)) <= value < (1 << bits)
        else:
            assert isinstance(value, float)


# -- the corpus: every file replayed ---------------------------------------------------

FEEDERS: dict[str, Callable[[bytes, Path], None]] = {
    "module": feed_module,
    "component": feed_component,
    "cgi": feed_cgi,
    "layer": feed_layer,
    "modules-toml": feed_modules_toml,
    "docker-config": feed_docker_config,
    "manifest": lambda data, scratch: feed_layout(index_for(data), data, scratch),
    "index": lambda data, scratch: feed_layout(
        data, (CORPUS / "manifest" / "wasm-to-oci.json").read_bytes(), scratch
    ),
    "reference": lambda data, scratch: feed_reference(data.decode("utf-8", "replace")),
}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md")


def test_every_corpus_folder_has_a_feeder() -> None:
    assert {p.parent.name for p in corpus_files()} == {*FEEDERS, "wave"}


def corpus_params() -> list[Any]:
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in corpus_files()]


@pytest.mark.parametrize("path", corpus_params())
def test_corpus(path: Path, scratch: Path, wave_types: list[tuple[str, Any]]) -> None:
    if path.parent.name == "wave":
        feed_wave(path.read_text(), wave_types)
    else:
        FEEDERS[path.parent.name](path.read_bytes(), scratch)
