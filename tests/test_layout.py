"""The package's layout is its architecture (issue 12): imports run one way,
CLI -> products (serve, compare, deploy, OCI) -> the host -> shared leaves.

Read from every module's import statements (function-level ones included,
which an import-time check would miss), and proven by importing the host
and the shared leaves each in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import wasmhost

PACKAGE = Path(wasmhost.__file__).parent
SHARED = {
    "_annotations",
    "_errors",
    "_files",
    "_hashing",
    "_numbers",
    "_paths",
    "_text",
    "_version",
    "_wasm",
}

# What each part may import, besides itself and the shared leaves.
ALLOWED: dict[str, set[str]] = {
    "shared": set(),
    "_host": set(),
    "_oci": set(),
    "_serve": {"_host"},
    "_compare": {"_host"},
    "_deploy": {"_host", "_oci"},
    "_cli": {"_host", "_oci", "_serve", "_compare", "_deploy"},
    # The OCI runtime: a second entry point, over the public API and `wasmhost serve`.
    "_runtime": {"_cli"},
}


def part_of(module: str) -> str:
    """The part a module (``wasmhost._host.running.stdio``, ``wasmhost._errors``) belongs to."""
    parts = module.split(".")[1:]
    if not parts or parts[0] == "__main__":
        return "_cli"  # the entry points: anything
    if parts[0] in SHARED:
        return "shared"
    if parts[0] == "asgi":
        return "_serve"
    if parts[0] == "wave":
        return "_host"
    return parts[0]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(["wasmhost", *parts]), path))
    return found


def imports_of(module: str, path: Path) -> set[str]:
    """The wasmhost modules ``module`` imports, at any depth of its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
                if node.module is None:  # from . import a, b: modules of the package
                    found.update(f"{target}.{alias.name}" for alias in node.names)
                    continue
            else:
                target = node.module or ""
            if target.startswith("wasmhost"):
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("wasmhost"))
    return found


def test_the_package_has_the_parts_the_readme_names() -> None:
    parts = {part_of(module) for module, _ in modules()}
    assert parts == {"shared", "_host", "_oci", "_serve", "_compare", "_deploy", "_cli", "_runtime"}
    # At the top: the shared leaves, the public asgi and wave modules and the entry points.
    top = {path.stem for path in PACKAGE.glob("*.py")}
    assert top == SHARED | {"__init__", "__main__", "asgi", "wave"}


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_run_one_way(module: str, path: Path) -> None:
    if module == "wasmhost":
        return  # the public API: it names what every part offers (imported lazily)
    part = part_of(module)
    allowed = ALLOWED[part] | {part, "shared"}
    wrong = sorted(t for t in imports_of(module, path) if part_of(t) not in allowed)
    assert not wrong, f"{module} ({part}) imports {wrong}"


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from .._oci.client import RegistryClient\n")
    assert part_of(next(iter(imports_of("wasmhost._host.bad", bad)))) == "_oci"


HOST_AND_SHARED = [m for m, _ in modules() if part_of(m) in ("_host", "shared") and m != "wasmhost"]


@pytest.mark.parametrize("module", HOST_AND_SHARED)
def test_the_host_and_shared_leaves_import_alone(module: str) -> None:
    # A fresh interpreter, so nothing another test imported can hide a dependency.
    code = (
        f"import sys, {module}\n"
        "products = ('wasmhost._oci', 'wasmhost._serve', 'wasmhost._compare',\n"
        "            'wasmhost._deploy', 'wasmhost._cli', 'oras', 'requests')\n"
        "print(sorted(m for m in sys.modules if m.startswith(products)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_runtimes_frequent_commands_load_neither_wasmtime_nor_click() -> None:
    """Engines call state, start, kill and delete several times a container: each
    is a Python start, and wasmtime (~50 ms) or click would be paid every time."""
    code = (
        "import sys\n"
        "from wasmhost._runtime import create, main, spec, state\n"
        "heavy = ('wasmtime', 'click', 'requests', 'httpx', 'oras', 'wasmhost._host')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_oci_side_loads_no_wasmtime() -> None:
    code = "import sys, wasmhost._oci.client\nprint('wasmtime' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout == "False\n", done.stderr


def import_graph(part: str) -> dict[str, set[str]]:
    """The modules of ``part`` and, for each, the modules of the same part it imports
    (at any depth of its code, under ``if TYPE_CHECKING:`` too)."""
    inside = {module: path for module, path in modules() if part_of(module) == part}
    return {
        module: {t for t in imports_of(module, path) if t in inside and t != module}
        for module, path in inside.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (``[a, b, a]``), or ``[]`` when it has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return []


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_no_import_cycles_inside_a_part(part: str) -> None:
    """Within a part too, modules import one way: a cycle hidden in a function body
    (so that importing works) still ties two modules into one concept."""
    cycle = find_cycle(import_graph(part))
    assert not cycle, " -> ".join(cycle)


def test_the_check_sees_a_cycle_in_function_bodies(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    from .b import g\n")
    (tmp_path / "b.py").write_text("def g():\n    from . import a\n")
    graph = {
        f"wasmhost._host.{name}": imports_of(f"wasmhost._host.{name}", tmp_path / f"{name}.py")
        for name in ("a", "b")
    }
    assert find_cycle(graph) == ["wasmhost._host.a", "wasmhost._host.b", "wasmhost._host.a"]
    assert find_cycle({"wasmhost._host.a": {"wasmhost._host.b"}, "wasmhost._host.b": set()}) == []


def test_the_cli_reads_wave_through_the_public_module() -> None:
    """``run --invoke 'NAME(ARGS)'`` uses ``wasmhost.wave``, as a library user would."""
    path = PACKAGE / "_cli" / "launch.py"
    imported = imports_of("wasmhost._cli.launch", path)
    assert "wasmhost.wave" in imported
    assert not {
        t
        for t in imported
        if t.startswith(("wasmhost._host.values.wave", "wasmhost._host.values.wit"))
    }
    assert "wasmhost._host.values.component" not in imported


def test_capi_names_every_shim_it_holds() -> None:
    """capi's docstring is the list of what wasmhost takes from wasmtime-py beyond its
    public API: every function, class and constant it defines is named there."""
    tree = ast.parse((PACKAGE / "_host" / "engines" / "capi.py").read_text())
    doc = ast.get_docstring(tree) or ""
    names = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")
    ]
    names += [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and not target.id.startswith("_")
    ]
    assert names
    assert [name for name in names if name not in doc] == []


# The host's layers, lowest first: each imports only those below it (and the leaves).
HOST_LAYERS = ["engines", "values", "running", "host"]
HOST_LEAVES = {"result"}


def host_layer(module: str) -> str | None:
    """The layer of a host module (``wasmhost._host.values.wit`` -> ``values``), or None
    for the host's leaves and its package."""
    parts = module.split(".")[2:]
    if not parts or parts[0] in HOST_LEAVES:
        return None
    return parts[0] if parts[0] in HOST_LAYERS else "host"


def test_the_hosts_layers_import_downwards() -> None:
    wrong = []
    layered = 0
    for module, path in modules():
        if not module.startswith("wasmhost._host."):
            continue
        layer = host_layer(module)
        if layer is None:
            continue
        layered += 1
        for target in imports_of(module, path):
            other = host_layer(target) if target.startswith("wasmhost._host.") else None
            if other is not None and HOST_LAYERS.index(other) > HOST_LAYERS.index(layer):
                wrong.append(f"{module} ({layer}) imports {target} ({other})")
    assert layered > 15
    assert wrong == []


def test_the_layer_check_sees_an_upward_import() -> None:
    assert host_layer("wasmhost._host.engines.engine") == "engines"
    assert host_layer("wasmhost._host.values.component") == "values"
    assert host_layer("wasmhost._host.host") == "host"
    assert host_layer("wasmhost._host.result") is None
    assert HOST_LAYERS.index("running") > HOST_LAYERS.index("values")
