"""A subreaper that drives an OCI runtime as containerd's runc shim does, for the
runtime's own tests (the engines themselves are in test_engines.py): create with this
process's stdio as the container's, start, optionally signal, wait for the init.

    python tests/reaper.py RUNTIME ROOT BUNDLE ID [SIGNAL AFTER-SECONDS]

Writes a JSON report to $REAPER_REPORT: what each command exited with, the init's exit status (128+N
for a signal), and the seconds from the signal to the init's end.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    runtime, root, bundle, container_id, *kill = sys.argv[1:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    pid_file = os.path.join(bundle, "init.pid")
    base = [
        runtime,
        "--root",
        root,
        "--log",
        os.path.join(bundle, "log.json"),
        "--log-format",
        "json",
    ]
    report: dict[str, object] = {}
    created = subprocess.run(
        [*base, "create", "--bundle", bundle, "--pid-file", pid_file, container_id]
    )
    if created.returncode != 0:
        report["create"] = created.returncode
        return _report(report)
    with open(pid_file) as f:
        text = f.read()
    report["pid_file"] = text
    pid = int(text)
    state = subprocess.run(
        [*base, "state", container_id], capture_output=True, stdin=subprocess.DEVNULL
    )
    report["created_state"] = json.loads(state.stdout)
    started = subprocess.run(
        [*base, "start", container_id], capture_output=True, stdin=subprocess.DEVNULL
    )
    report["start"] = started.returncode
    sent = None
    if kill:
        time.sleep(float(kill[1]))
        subprocess.run([*base, "kill", container_id, kill[0]], check=True, stdin=subprocess.DEVNULL)
        sent = time.monotonic()
    _, status = os.waitpid(pid, 0)
    if sent is not None:
        report["after_signal"] = time.monotonic() - sent
    code = os.waitstatus_to_exitcode(status)
    report["status"] = code if code >= 0 else 128 - code
    stopped = subprocess.run(
        [*base, "state", container_id], capture_output=True, stdin=subprocess.DEVNULL
    )
    report["stopped_state"] = json.loads(stopped.stdout)
    deleted = subprocess.run([*base, "delete", container_id], stdin=subprocess.DEVNULL)
    report["delete"] = deleted.returncode
    return _report(report)


def _report(report: dict[str, object]) -> int:
    with open(os.environ["REAPER_REPORT"], "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
