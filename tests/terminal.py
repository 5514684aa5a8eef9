"""Running ``wasmhost`` on a real pseudo-terminal, as a user at a shell does."""

from __future__ import annotations

import errno
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence


def on_terminal(
    argv: Sequence[str | os.PathLike[str]],
    answers: Sequence[tuple[bytes, bytes]] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """Run ``python -m wasmhost ARGV`` with stdin, stdout and stderr on one pseudo-terminal
    (its controlling terminal); return its exit status and all the terminal showed.

    ``answers`` are typed in order: each ``(prompt, text)`` types ``text`` once
    the terminal has shown ``prompt`` since the answer before. The terminal
    echoes what is typed unless the program turned echo off, as a real one does.
    """
    leader, follower = pty.openpty()
    # In a session of its own, the terminal made its controlling one (so that Ctrl-C is
    # SIGINT and /dev/tty is this terminal) by a first step, not a preexec_fn.
    become = (
        "import fcntl, runpy, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
        "sys.argv[0] = 'wasmhost'; runpy.run_module('wasmhost', run_name='__main__')"
    )
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", become, *map(os.fspath, argv)],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    finally:
        os.close(follower)
    shown, since, pending = b"", 0, list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0] in shown[since:]:
                since = len(shown)
                os.write(leader, pending.pop(0)[1])
            ready, _, _ = select.select([leader], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError as exc:  # EIO: every copy of the follower is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            shown += chunk
        else:
            process.kill()
            raise AssertionError(f"still running after {timeout} s; the terminal showed {shown!r}")
        return process.wait(timeout=timeout), shown
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
