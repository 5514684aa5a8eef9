"""Deploy targets, checked by the ecosystem's own tools: skopeo, umoci, the runtime-spec
schema, kubernetes-validate."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml
from conftest import HELLO, HTTP, NBODY, wasmhost_cli, wasmhost_in_process
from registry import Registry

from wasmhost import ConfigError, ModuleError, RegistryClient
from wasmhost._deploy.bundle import bundle_config, make_bundle
from wasmhost._deploy.k8s import KINDS, TARGETS, manifests, node_config

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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


@pytest.mark.oci_tools
def test_push_serve_is_a_manifest_annotation(registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/image-{next(_counter)}:v1"
    argv = ["push", "--plain-http", "--format", "image", "--serve", "127.0.0.1:8080", HELLO, ref]
    done = wasmhost_cli(*argv, env=dict(os.environ, WASMHOST_CACHE_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    manifest = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    annotations = manifest["annotations"]
    assert annotations["io.wasmhost.serve"] == "127.0.0.1:8080"  # type: ignore[index]
    assert annotations["module.wasm.image/variant"] == "compat"  # type: ignore[index]


@pytest.mark.parametrize(
    ("serve", "message"),
    [
        ("0", "'0' is not PORT or HOST:PORT"),
        ("65536", "with a port from 1 to 65535"),
        ("host:", "'host:' is not PORT or HOST:PORT"),
        ("::1:80", "[::1]:8080"),
    ],
    ids=["zero", "too-large", "no-port", "bare-ipv6"],
)
def test_push_serve_refuses_what_is_no_address(tmp_path: Path, serve: str, message: str) -> None:
    layout = tmp_path / "layout"
    done = wasmhost_in_process(
        "push", "--oci-layout", "--format", "image", "--serve", serve, HELLO, f"{layout}:v1"
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "'--serve'" in lines[0]
    assert message in lines[0]
    assert not layout.exists()


def test_push_serve_into_a_layout_and_against_an_annotation(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    for serve in ("8080", "[::1]:80"):
        done = wasmhost_in_process(
            "push", "--oci-layout", "--format", "image", "--serve", serve, HELLO, f"{layout}:v1"
        )
        assert done.returncode == 0, done.stderr
        info = RegistryClient().inspect(f"{layout}:v1", oci_layout=True)
        assert info.annotations["io.wasmhost.serve"] == serve
    same = ("-a", "io.wasmhost.serve=8080", "--serve", "8080")
    done = wasmhost_in_process(
        "push", "--oci-layout", "--format", "image", *same, HELLO, f"{layout}:v2"
    )
    assert done.returncode == 0, done.stderr
    differ = ("-a", "io.wasmhost.serve=8081", "--serve", "8080")
    done = wasmhost_in_process(
        "push", "--oci-layout", "--format", "image", *differ, HELLO, f"{layout}:v3"
    )
    assert done.returncode == 2
    assert "--serve and --annotation io.wasmhost.serve=... differ" in done.stderr.decode()


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


def _by_kind(text: str) -> dict[str, dict[str, Any]]:
    documents = list(yaml.safe_load_all(text))
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)
    by_kind = {d["kind"]: d for d in documents}
    assert len(by_kind) == len(documents)
    return by_kind


def _pod_of(workload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metadata and spec of the Pods a workload makes."""
    if workload["kind"] == "Pod":
        return workload["metadata"], workload["spec"]
    template = workload["spec"]["template"]
    return template["metadata"], template["spec"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("runtime", list(TARGETS))
def test_manifests_validate_against_the_kubernetes_schemas(runtime: str, kind: str) -> None:
    text = manifests("ghcr.io/org/hello-world:v1", runtime, kind=kind, port=8080)
    assert text.startswith("# ")
    documents = _by_kind(text)
    workload = documents[{"pod": "Pod", "job": "Job", "deployment": "Deployment"}[kind]]
    meta, spec = _pod_of(workload)
    if runtime == "krustlet":
        assert "RuntimeClass" not in documents
        assert {t["effect"] for t in spec["tolerations"]} == {"NoExecute", "NoSchedule"}
        assert all(t["value"] == "wasm32-wasi" for t in spec["tolerations"])
    else:
        runtime_class = documents["RuntimeClass"]
        assert runtime_class["handler"] == runtime
        assert spec["runtimeClassName"] == runtime_class["metadata"]["name"]
    if runtime in ("crun", "youki"):
        assert meta["annotations"] == {"module.wasm.image/variant": "compat"}
    elif runtime == "wasmhost":
        assert meta["annotations"] == {"io.wasmhost.serve": "8080"}
    else:
        assert "annotations" not in meta
    # A module that runs to completion is not started again; Kubernetes allows a
    # Deployment only Always (its default).
    assert spec.get("restartPolicy", "Always") == ("Always" if kind == "deployment" else "Never")
    if kind == "job":
        assert workload["spec"]["backoffLimit"] == 0
    if kind == "deployment":
        service = documents["Service"]
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["ports"] == [{"port": 8080, "targetPort": 8080, "protocol": "TCP"}]
        assert service["spec"]["selector"] == meta["labels"]
        assert "kubectl port-forward service/hello-world 8080:8080" in text
    else:
        assert "Service" not in documents
        assert f"kubectl port-forward {kind}/hello-world 8080:8080" in text


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_port_no_service_and_nothing_served(kind: str) -> None:
    documents = _by_kind(manifests("ghcr.io/org/hello-world:v1", "wasmhost", kind=kind))
    assert set(documents) == {"RuntimeClass", {"pod": "Pod", "job": "Job"}.get(kind, "Deployment")}
    meta, spec = _pod_of(documents[set(documents).difference({"RuntimeClass"}).pop()])
    assert "annotations" not in meta
    assert "ports" not in spec["containers"][0]


def test_wasmhost_node_config_for_containerd_and_crio() -> None:
    containerd = tomllib.loads(node_config("wasmhost", "containerd"))
    table = containerd["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    globs = ["module.wasm.image/*", "run.oci.handler", "io.wasmhost.*"]
    assert table == {
        "wasmhost": {
            "runtime_type": "io.containerd.runc.v2",
            "pod_annotations": globs,
            "container_annotations": globs,
            "options": {"BinaryName": "/usr/local/bin/wasmhost-runtime"},
        }
    }
    crio = tomllib.loads(node_config("wasmhost", "crio", runtime_path="/opt/wasm/wasmhost-runtime"))
    assert crio == {
        "crio": {
            "runtime": {
                "runtimes": {
                    "wasmhost": {
                        "runtime_path": "/opt/wasm/wasmhost-runtime",
                        "runtime_type": "oci",
                        "runtime_root": "/run/wasmhost-runtime",
                        "allowed_annotations": [
                            "module.wasm.image/variant",
                            "run.oci.handler",
                            "io.wasmhost.serve",
                            "io.wasmhost.timeout",
                            "io.wasmhost.fuel",
                            "io.wasmhost.max-memory",
                        ],
                    }
                }
            }
        }
    }


@pytest.mark.parametrize("runtime", [r for r in TARGETS if r != "krustlet"])
def test_the_manifests_comment_is_the_containerd_config(runtime: str) -> None:
    """The comment and --node-config containerd are one piece of TOML, which parses."""
    path = "/opt/bin/x" if TARGETS[runtime].binary else None
    snippet = node_config(runtime, "containerd", runtime_path=path)
    tomllib.loads(snippet)
    text = manifests("ghcr.io/org/hello-world:v1", runtime, runtime_path=path)
    commented = "".join(f"#   {line}\n" for line in snippet.splitlines())
    assert commented in text
    assert ('BinaryName = "/opt/bin/x"' in snippet) is (path is not None)
    if path is not None:
        assert tomllib.loads(node_config(runtime, "crio"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: node_config("spin", "crio"), "spin is a containerd shim; CRI-O runs OCI"),
        (lambda: node_config("krustlet", "containerd"), "krustlet runs the modules itself"),
        (lambda: node_config("wasmhost", "docker"), "unknown engine 'docker'"),
        (lambda: node_config("wasmhost", "crio", runtime_path="bin/x"), "not an absolute path"),
        (
            lambda: manifests("r.io/x:y", "wasmtime", runtime_path="/x"),
            "wasmtime is a containerd shim, not an OCI runtime at a path",
        ),
        (lambda: manifests("r.io/x:y", "wasmhost", kind="cronjob"), "unknown kind 'cronjob'"),
    ],
    ids=["crio-shim", "krustlet", "engine", "relative-path", "shim-path", "kind"],
)
def test_node_config_and_manifests_refuse(call: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_k8s_cli_and_its_errors() -> None:
    done = wasmhost_in_process("k8s", "--runtime", "spin", "--name", "web", "ghcr.io/a/b:c")
    assert done.returncode == 0
    assert "handler: spin" in done.stdout.decode()
    assert "kwasm.sh/kwasm-node=true" in done.stdout.decode()
    for args, message in (
        (["--runtime", "docker", "x/y:z"], "'docker' is not one of"),
        (["--runtime", "crun", "--name", "Bad_Name", "r.io/x:y"], "not a Kubernetes name"),
        (["--runtime", "crun", "Not A Ref"], "not a reference"),
        (["--runtime", "crun", "--port", "0", "r.io/x:y"], "it must be at least 1"),
        (["--runtime", "crun", "--port", "65536", "r.io/x:y"], "the most is 65,535"),
        (["--runtime", "crun"], "Missing argument 'IMAGE' (or give --node-config)"),
        (
            ["--runtime", "wasmhost", "--node-config", "crio", "--kind", "job", "r.io/x:y"],
            "--node-config prints only the node's TOML; leave out --kind, IMAGE",
        ),
        (["--runtime", "spin", "--node-config", "crio"], "spin is a containerd shim"),
        (["--runtime", "spin", "--runtime-path", "/x", "r.io/x:y"], "is a containerd shim"),
    ):
        failed = wasmhost_in_process("k8s", *args)
        assert failed.returncode in (1, 2)
        err = failed.stderr.decode()
        assert len(err.strip().splitlines()) == 1, err
        assert message in err


def test_k8s_cli_node_config_prints_only_toml() -> None:
    for engine in ("containerd", "crio"):
        done = wasmhost_in_process(
            "k8s", "--runtime", "wasmhost", "--node-config", engine, "--runtime-path", "/w/rt"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode() == node_config("wasmhost", engine, runtime_path="/w/rt")
        assert done.stderr == b""


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        (["--kind", "deployment"], True),
        (["--kind", "deployment", "--port", "8080"], False),
        (["--kind", "job"], False),
        (["--kind", "pod"], False),
    ],
    ids=["deployment", "deployment-port", "job", "pod"],
)
def test_a_wasmhost_deployment_that_serves_nothing_is_a_warning(
    args: list[str], warned: bool
) -> None:
    done = wasmhost_in_process("k8s", "--runtime", "wasmhost", *args, "r.io/x/web:v1")
    assert done.returncode == 0
    err = done.stderr.decode()
    if warned:
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("warning: ")
        assert "CrashLoopBackOff" in err
    else:
        assert err == ""
    _by_kind(done.stdout.decode())


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
