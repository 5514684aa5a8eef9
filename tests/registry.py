"""A real CNCF distribution registry (Debian's docker-registry) on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


def listening_port(process: subprocess.Popen[Any], timeout: float = 60) -> int | None:
    """The TCP port ``process`` listens on, once it does (None if it ends first).

    Servers here are started on port 0 and pick a free port themselves: asking
    for a free port and handing it on would race with anything else binding
    it meanwhile. The port is read from the kernel (the process's sockets in
    /proc), not from what the server logs.
    """
    deadline = time.monotonic() + timeout
    fds = Path(f"/proc/{process.pid}/fd")
    while process.poll() is None and time.monotonic() < deadline:
        try:
            inodes = set()
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):  # closed meanwhile
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:[") : -1])
            for table in ("tcp", "tcp6"):
                for line in Path(f"/proc/{process.pid}/net/{table}").read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                        return int(fields[1].rsplit(":", 1)[1], 16)
        except OSError:
            pass  # the process ended meanwhile: poll() says so next
        time.sleep(0.02)
    return None


class Registry:
    """One registry process; ``host`` is ``127.0.0.1:PORT``, ``root`` its storage."""

    def __init__(
        self, folder: Path, htpasswd: Path | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError(
                "docker-registry is not installed (Debian package docker-registry); "
                "`nox -s tests` installs it."
            )
        folder.mkdir(parents=True, exist_ok=True)
        self.root = folder / "storage"
        auth = ""
        if htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: wasmhost-tests\n    path: {htpasswd}\n"
        http_tls = ""
        if tls is not None:
            http_tls = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root}\n"
            "  delete:\n    enabled: true\n"
            "http:\n  addr: 127.0.0.1:0\n" + http_tls + auth
        )
        self.log = open(folder / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=self.log, stderr=self.log
        )
        port = listening_port(self.process, timeout=30)
        if port is None:
            self.stop()
            raise RuntimeError(f"docker-registry did not start; see {folder / 'registry.log'}")
        self.port = port
        self.host = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        scheme = "https" if tls else "http"
        while True:
            try:
                httpx.get(f"{scheme}://{self.host}/v2/", timeout=1, verify=False)
                break
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"docker-registry did not start; see {folder / 'registry.log'}"
                    ) from None
                time.sleep(0.05)

    def blob_file(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def htpasswd(path: Path, user: str, password: str) -> Path:
    binary = shutil.which("htpasswd")
    if binary is None:
        raise RuntimeError("htpasswd is not installed (Debian package apache2-utils).")
    line = subprocess.run(
        [binary, "-Bbn", user, password], capture_output=True, text=True, check=True
    ).stdout.strip()
    path.write_text(line + "\n")
    return path


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
    )
    return cert, key


def waits_counted(client: Any, waits: list[float] | None = None) -> Any:
    """``client`` (a RegistryClient) with its waits between attempts put in ``waits``
    instead of slept: for this client only, not for the process."""
    seen = waits if waits is not None else []
    client._transport = client._transport._replace(sleep=seen.append)
    return client
