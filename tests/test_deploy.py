"""Deploy targets, checked by the ecosystem's own tools: skopeo, umoci, the runtime-spec
schema, kubernetes-validate."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml
from conftest import HELLO, HTTP, NBODY, wasmhost_cli, wasmhost_in_process
from registry import Registry

from wasmhost import ConfigError, ModuleError, RegistryClient
from wasmhost._deploy.bundle import bundle_config, make_bundle
from wasmhost._deploy.k8s import TARGETS, manifests

SPEC_SCHEMA = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")
_counter = iter(range(10_000))


def skopeo(*args: str) -> dict[str, object]:
    done = subprocess.run(["skopeo", *args], capture_output=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def client(tmp_path: Path) -> RegistryClient:
    return RegistryClient(plain_http=True, cache_dir=tmp_path / "cache")


# -- the OCI image form ----------------------------------------------------------


@pytest.mark.oci_tools
@pytest.mark.parametrize(("image_os", "variant"), [("wasip1", "compat"), ("wasi", "compat-smart")])
def test_image_in_a_registry_as_skopeo_reads_it(
    registry: Registry, client: RegistryClient, image_os: str, variant: str
) -> None:
    ref = f"{registry.host}/image-{next(_counter)}:v1"
    client.push(HELLO, ref, format="image", image_os=image_os, variant=variant)
    info = skopeo("inspect", "--tls-verify=false", f"docker://{ref}")
    assert (info["Architecture"], info["Os"]) == ("wasm", image_os)
    config = skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert config["config"] == {"Entrypoint": ["/hello-world.wasm"]}  # type: ignore[comparison-overlap]
    manifest = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert manifest["annotations"]["module.wasm.image/variant"] == variant  # type: ignore[index]


def test_image_digest_is_reproducible_and_pulls_back(
    registry: Registry,
    client: RegistryClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = f"{registry.host}/image-{next(_counter)}"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000")
    first = client.push(NBODY, ref + ":a", format="image", reproducible=True)
    stamped = client.push(NBODY, ref + ":c", format="image")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "2000")
    second = client.push(NBODY, ref + ":b", format="image", reproducible=True)
    restamped = client.push(NBODY, ref + ":d", format="image")
    assert first.digest == second.digest  # reproducible: the time is left out
    assert stamped.digest != restamped.digest  # otherwise the time is in it
    pulled = client.pull(ref + ":a", tmp_path / "n.wasm")
    assert pulled.format == "image"
    assert pulled.path.read_bytes() == NBODY.read_bytes()
    assert pulled.module_digest == "sha256:" + hashlib.sha256(NBODY.read_bytes()).hexdigest()
    env = dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path / "run"))
    done = wasmhost_cli("run", "--plain-http", ref + ":a", "1000", env=env)
    assert done.stdout == b"-0.169075164\n-0.169087605\n"


@pytest.mark.oci_tools
@pytest.mark.parametrize("format_", ["wasm-to-oci", "cncf", "image"])
def test_every_format_into_an_oci_layout(
    client: RegistryClient, tmp_path: Path, format_: str
) -> None:
    layout = tmp_path / "layout"
    done = wasmhost_cli("push", "--oci-layout", "--format", format_, HELLO, f"{layout}:v1")
    assert done.returncode == 0, done.stderr
    raw = skopeo("inspect", "--raw", f"oci:{layout}:v1")
    assert raw["schemaVersion"] == 2
    if format_ != "image":
        return
    info = skopeo("inspect", f"oci:{layout}:v1")
    assert (info["Architecture"], info["Os"]) == ("wasm", "wasip1")
    out = tmp_path / "unpacked"
    subprocess.run(
        ["umoci", "raw", "unpack", "--rootless", "--image", f"{layout}:v1", str(out)],
        capture_output=True,
        check=True,
    )
    assert (out / "hello-world.wasm").read_bytes() == HELLO.read_bytes()


def test_a_layout_tag_is_replaced_not_repeated(client: RegistryClient, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    client.push(HELLO, f"{layout}:v1", oci_layout=True)
    client.push(NBODY, f"{layout}:v1", oci_layout=True)
    client.push(NBODY, f"{layout}:v2", oci_layout=True)
    index = json.loads((layout / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert sorted(tags) == ["v1", "v2"]
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert list(layout.rglob(".tmp-*")) == []


# -- the runtime bundle ----------------------------------------------------------


def spec_validator() -> jsonschema.protocols.Validator:
    def retrieve(uri: str) -> referencing.Resource:  # type: ignore[type-arg]
        return referencing.Resource.from_contents(
            json.loads((SPEC_SCHEMA / uri.rsplit("/", 1)[-1]).read_text()),
            default_specification=referencing.jsonschema.DRAFT4,
        )

    schema = json.loads((SPEC_SCHEMA / "config-schema.json").read_text())
    registry: referencing.Registry = referencing.Registry(retrieve=retrieve)  # type: ignore[call-arg,type-arg]
    return jsonschema.Draft4Validator(schema, registry=registry)


@pytest.mark.oci_tools
@pytest.mark.parametrize("host_network", [False, True])
def test_bundle_config_validates_against_the_runtime_spec(
    tmp_path: Path, host_network: bool
) -> None:
    folder = tmp_path / "bundle"
    done = wasmhost_cli(
        "bundle",
        HTTP,
        folder,
        *(["--host-network"] if host_network else []),
        "--env",
        "A=1",
        "--",
        "--flag",
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((folder / "config.json").read_text())
    errors = list(spec_validator().iter_errors(config))
    assert errors == []
    assert config["process"]["args"] == ["/http-server.wasm", "--flag"]
    assert "A=1" in config["process"]["env"]
    assert config["annotations"] == {"module.wasm.image/variant": "compat"}
    assert config["root"] == {"path": "rootfs", "readonly": True}
    # Sharing the runtime's network is leaving the namespace out: a path such as
    # /proc/1/ns/net was refused by a real crun as root (Permission denied).
    kinds = [n["type"] for n in config["linux"]["namespaces"]]
    assert ("network" in kinds) is not host_network
    assert all("path" not in n for n in config["linux"]["namespaces"])
    assert (folder / "rootfs" / "http-server.wasm").read_bytes() == HTTP.read_bytes()


@pytest.mark.oci_tools
def test_the_validator_catches_a_broken_config() -> None:
    broken = bundle_config("m.wasm")
    broken["process"]["args"] = "not a list"
    assert list(spec_validator().iter_errors(broken))


@pytest.mark.oci_tools
def test_bundle_into_the_current_folder_and_long_names(
    tmp_path: Path, client: RegistryClient
) -> None:
    empty = tmp_path / "here"
    empty.mkdir()
    done = wasmhost_cli("bundle", HELLO, ".", cwd=empty)
    assert done.returncode == 0, done.stderr
    assert (empty / "rootfs" / "hello-world.wasm").exists()
    long_name = tmp_path / ("m" * 120 + ".wasm")
    long_name.write_bytes(HELLO.read_bytes())
    client.push(long_name, f"{tmp_path / 'layout'}:long", format="image", oci_layout=True)
    out = tmp_path / "unpacked"
    image = f"{tmp_path / 'layout'}:long"
    subprocess.run(
        ["umoci", "raw", "unpack", "--rootless", "--image", image, str(out)],
        capture_output=True,
        check=True,
    )
    assert (out / long_name.name).read_bytes() == HELLO.read_bytes()


def test_bundle_refuses_to_overwrite_or_take_non_wasm(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not an empty folder"):
        make_bundle(HELLO, tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    (tmp_path / "text.wasm").write_text("hello")
    with pytest.raises(ModuleError, match="not a WebAssembly module"):
        make_bundle(tmp_path / "text.wasm", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ModuleError, match="is a WASI preview-2 component; bundles carry"):
        make_bundle(HELLO.with_name("hello-world.component.wasm"), tmp_path / "new")
    assert not (tmp_path / "new").exists()


# -- Kubernetes manifests --------------------------------------------------------


@pytest.mark.parametrize("kind", ["pod", "deployment"])
@pytest.mark.parametrize("runtime", list(TARGETS))
def test_manifests_validate_against_the_kubernetes_schemas(runtime: str, kind: str) -> None:
    text = manifests("ghcr.io/org/hello-world:v1", runtime, kind=kind, port=8080)
    assert text.startswith("# ")
    documents = list(yaml.safe_load_all(text))
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
    workload = documents[-1]
    spec = workload["spec"] if kind == "pod" else workload["spec"]["template"]["spec"]
    if runtime == "krustlet":
        assert len(documents) == 1
        assert {t["effect"] for t in spec["tolerations"]} == {"NoExecute", "NoSchedule"}
        assert all(t["value"] == "wasm32-wasi" for t in spec["tolerations"])
    else:
        runtime_class = documents[0]
        assert runtime_class["kind"] == "RuntimeClass"
        assert runtime_class["handler"] == runtime
        assert spec["runtimeClassName"] == runtime_class["metadata"]["name"]
    if runtime in ("crun", "youki"):
        meta = workload["metadata"] if kind == "pod" else workload["spec"]["template"]["metadata"]
        assert meta["annotations"] == {"module.wasm.image/variant": "compat"}
    assert "kubectl port-forward" in text


def test_k8s_cli_and_its_errors() -> None:
    done = wasmhost_in_process("k8s", "--runtime", "spin", "--name", "web", "ghcr.io/a/b:c")
    assert done.returncode == 0
    assert "handler: spin" in done.stdout.decode()
    assert "kwasm.sh/kwasm-node=true" in done.stdout.decode()
    for args, message in (
        (["--runtime", "docker", "x/y:z"], "'docker' is not one of"),
        (["--runtime", "crun", "--name", "Bad_Name", "r.io/x:y"], "not a Kubernetes name"),
        (["--runtime", "crun", "Not A Ref"], "not a reference"),
    ):
        failed = wasmhost_in_process("k8s", *args)
        assert failed.returncode in (1, 2)
        err = failed.stderr.decode()
        assert len(err.strip().splitlines()) == 1, err
        assert message in err


def test_an_image_layer_is_unpacked_once(
    registry: Registry, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wasmhost._oci.client

    ref = f"{registry.host}/image-{next(_counter)}:v1"
    client.push(HELLO, ref, format="image")
    first = client.fetch(ref)

    def refuse(*args: object) -> str:
        raise AssertionError("unpacked again")

    monkeypatch.setattr(wasmhost._oci.client, "extract_module", refuse)
    again = client.fetch(ref)
    assert again.path == first.path
    assert again.path.read_bytes() == HELLO.read_bytes()
