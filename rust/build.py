"""Build the example modules in rust/ for wasm32-wasi and copy them to artifacts/.

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
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RUST = Path(__file__).resolve().parent
ROOT = RUST.parent
ARTIFACTS = ROOT / "artifacts"
MODULES = ["hello-world", "http-server", "wordcount", "nbody", "fsprobe", "calc", "host-calls"]


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


def describe(env: dict[str, str], target: str) -> str:
    versions = [
        subprocess.run([tool, "-V"], env=env, capture_output=True, text=True, check=True).stdout
        for tool in ("rustc", "cargo")
    ]
    return "".join(versions) + f"target {target}\nprofile release (see rust/Cargo.toml)\n"


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
    return {name: out / f"{name}.wasm" for name in MODULES}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if artifacts/ differs")
    options = parser.parse_args()
    env, target = toolchain()
    info = describe(env, target)
    with tempfile.TemporaryDirectory(prefix="wasmhost-build-") as tmp:
        built = build(env, target, Path(tmp))
        sums = "".join(f"{sha256(built[name])}  {name}.wasm\n" for name in MODULES)
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
                for name in MODULES
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
        for name in MODULES:
            shutil.copyfile(built[name], ARTIFACTS / f"{name}.wasm")
        (ARTIFACTS / "SHA256SUMS").write_text(sums)
        (ARTIFACTS / "TOOLCHAIN").write_text(info)
    print(sums, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
