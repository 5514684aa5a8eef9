"""A stand-in for WAMR's `iwasm`, for `wasmhost compare` tests (iwasm itself cannot
be installed here from any registry).

It imitates iwasm 2.4.5 as built from WAMR's release source
(product-mini/platforms/linux, fast-interp) and driven by compare:

- `--version` prints "iwasm 2.4.5";
- `--map-dir=GUEST::HOST` and `--env=NAME=VALUE`, at most 8 of each: a 9th is
  refused with "Only allow max env number 8" (or "map dir number 8"), exit 1;
- no read-only mounts;
- the guest's argv[0] is the module path exactly as given on the command line;
- a trap exits 1 and ends stdout with "Exception: unreachable".

The module runs in this process through wasmhost's Host; the flags and the
outputs around it are iwasm's.
"""

from __future__ import annotations

import sys

from wasmhost import GuestError, Host, Trap


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print("iwasm 2.4.5")
        return 0
    dirs: dict[str, str] = {}
    env: dict[str, str] = {}
    # flag -> (where it goes, how it splits, the word iwasm's message uses)
    kinds = {"--map-dir=": (dirs, "::", "map dir"), "--env=": (env, "=", "env")}
    rest = list(argv)
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        for prefix, (table, separator, word) in kinds.items():
            if flag.startswith(prefix):
                if len(table) == 8:
                    print(f"Only allow max {word} number 8")
                    return 1
                key, _, value = flag.removeprefix(prefix).partition(separator)
                table[key] = value
    module, args = rest[0], rest[1:]
    try:
        result = Host(cache_dir=False).run(
            module, args, env=env, dirs=dirs, argv0=module, stdin=sys.stdin.buffer.read()
        )
    except Trap as exc:
        sys.stdout.buffer.write(exc.stdout + b"Exception: unreachable\n")
        return 1
    except GuestError as exc:
        sys.stdout.buffer.write(exc.stdout)
        return 1
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
