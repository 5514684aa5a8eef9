"""A stand-in for the `wasmedge` CLI, for `wasmhost compare` tests (WasmEdge itself
cannot be installed here from any registry).

It imitates WasmEdge 0.17.1 as built from its release source (interpreter build,
-DWASMEDGE_USE_LLVM=OFF) and driven by compare:

- `--version` prints the binary's own path first: "/path/to/wasmedge version 0.17.1";
- `--dir=GUEST:HOST[:readonly]` and `--env NAME=VALUE`; a host path with ':' cannot
  be written, and WasmEdge logs "Bind guest directory failed" (the guest then
  finds no such directory);
- the guest's argv[0] is the module's file name;
- a trap exits 134 with WasmEdge's error report on stdout, not stderr;
- a write refused in a read-only mount gets errno 76 ("Capabilities insufficient"),
  where wasmtime's guest gets 63 ("Operation not permitted").

The module runs in this process through wasmhost's Host; the flags and the
outputs around it are WasmEdge's.
"""

from __future__ import annotations

import os
import sys

from wasmhost import Dir, GuestError, Host, Trap


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(f"{os.path.abspath(sys.argv[0])} version 0.17.1")
        return 0
    dirs: dict[str, Dir] = {}
    env: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        if flag.startswith("--dir="):
            spec = flag.removeprefix("--dir=")
            read_only = spec.endswith(":readonly")
            guest, _, host = spec.removesuffix(":readonly").partition(":")
            if ":" in host:
                print("[2025-01-01 00:00:00.000] [error] Bind guest directory failed:1")
                continue
            dirs[guest] = Dir(host, read_only=read_only)
        elif flag == "--env":
            name, _, value = rest.pop(0).partition("=")
            env[name] = value
    module, args = rest[0], rest[1:]
    try:
        result = Host(cache_dir=False).run(
            module,
            args,
            env=env,
            dirs=dirs,
            argv0=os.path.basename(module),
            stdin=sys.stdin.buffer.read(),
        )
    except Trap as exc:
        sys.stdout.buffer.write(exc.stdout)
        sys.stderr.buffer.write(exc.stderr)
        sys.stdout.write(
            "[2025-01-01 00:00:00.000] [error] execution failed: unreachable, Code: 0x89\n"
            "[2025-01-01 00:00:00.000] [error]     In instruction: unreachable (0x00)\n"
        )
        return 134
    except GuestError as exc:
        sys.stdout.buffer.write(exc.stdout)
        return 134
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(
        result.stderr.replace(
            b"Operation not permitted (os error 63)", b"Capabilities insufficient (os error 76)"
        )
    )
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
