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
