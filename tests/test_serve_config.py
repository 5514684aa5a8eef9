"""`wasmhost serve`'s configuration (issue 22): a key of modules.toml it does not
know is an error that names it; ``-q`` still says where the server listens."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HTTP, wasmhost_cli
from test_serve import Server

from wasmhost import ConfigError
from wasmhost.asgi import load_config

MODULE_KEYS = "the keys are route, module, environment, volumes, max_memory."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[module]]\nmodule = "x.wasm"\nenviroment = { A = "b" }\n',
            "[[module]] number 1: unknown key 'enviroment' (did you mean 'environment'?); "
            + MODULE_KEYS,
        ),
        (
            '[[module]]\nmodule = "x.wasm"\n[[module]]\nmodule = "y.wasm"\nrout = "/y"\n',
            "[[module]] number 2: unknown key 'rout' (did you mean 'route'?); " + MODULE_KEYS,
        ),
        (
            '[[module]]\nmodule = "x.wasm"\nentrypoint = "run"\n',
            "[[module]] number 1: unknown key 'entrypoint'; " + MODULE_KEYS,
        ),
        (
            '[[modules]]\nmodule = "x.wasm"\n',
            "unknown key 'modules' (did you mean 'module'?); it holds [[module]] tables only.",
        ),
        (
            'title = "routes"\n[[module]]\nmodule = "x.wasm"\n',
            "unknown key 'title'; it holds [[module]] tables only.",
        ),
    ],
    ids=["misspelt", "second-entry", "unknown", "misspelt-table", "top-level"],
)
def test_an_unknown_key_in_modules_toml_is_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "modules.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value) == f"{config}: {message}"
    done = wasmhost_cli("serve", "--config", config)
    err = done.stderr.decode()
    assert done.returncode == 1, err  # as every other modules.toml it cannot use
    assert err.strip().splitlines() == [f"Error: {config}: {message}"], err


@pytest.mark.server
def test_quiet_still_says_where_it_listens() -> None:
    # Started with --listen 127.0.0.1:0: the line has the port the server got.
    for workers in (1, 2):
        s = Server("-q", HTTP, workers=workers)
        try:
            lines = s.output().splitlines()
            assert f"Listening on http://127.0.0.1:{s.port}" in lines, lines
        finally:
            s.stop()


def test_the_config_reaches_a_worker_as_one_value(tmp_path: Path) -> None:
    """`wasmhost serve --workers N` hands each worker a ServeConfig as JSON: what comes
    out is what went in, and builds the same app as WagiApp's own arguments."""
    from wasmhost import Dir
    from wasmhost.asgi import Route, ServeConfig, WagiApp

    (tmp_path / "data").mkdir()
    route = Route(
        "/...",
        str(HTTP),
        {"GREETING": "hi"},
        {"/data": Dir(str(tmp_path / "data"), read_only=True)},
        name="localhost:5000/team/app:v1",
        max_memory=64 << 20,
    )
    config = ServeConfig(routes=(route,), timeout=3.0, max_body=1000, threads=2, backlog=0)
    again = ServeConfig.from_json(config.to_json())
    assert again == config
    with pytest.raises(AttributeError):
        again.timeout = 4.0  # type: ignore[misc]
    by_config = WagiApp.from_config(again)
    by_arguments = WagiApp([route], timeout=3.0, max_body=1000, threads=2, backlog=0)
    try:
        assert by_config.config == by_arguments.config == config
        assert (by_config.timeout, by_config.max_body) == (3.0, 1000)
    finally:
        by_config.close()
        by_arguments.close()
