"""runc's command line, parsed as runc parses it: global flags, a command, its flags
and words; and where the command starts (a native runtime is handed it as it is)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .state import RuntimeFailure

# Global flags: (name, takes a value). runc's, with crun's --cgroup-manager and
# go-runc's --criu and --rootless accepted and ignored.
_GLOBAL = {
    "root": True,
    "log": True,
    "log-format": True,
    "criu": True,
    "rootless": True,
    "cgroup-manager": True,
    "systemd-cgroup": False,
    "debug": False,
}
# Each command's flags, short aliases mapped to the long name.
COMMANDS: dict[str, dict[str, bool]] = {
    "create": {
        "bundle": True,
        "pid-file": True,
        "console-socket": True,
        "no-pivot": False,
        "no-new-keyring": False,
        "preserve-fds": True,
        "detach": False,
    },
    "start": {},
    "state": {},
    "kill": {"all": False},
    "delete": {"force": False},
    "features": {},
    "ps": {"format": True},
}
_SHORT = {"b": "bundle", "a": "all", "f": "force", "d": "detach"}
REFUSED = ("exec", "pause", "resume", "update", "events", "checkpoint", "restore", "run")
USAGE = (
    "usage: wasmhost-runtime [--root DIR] [--log FILE] [--log-format text|json] "
    "COMMAND [OPTIONS] ID; commands: create, start, state, kill, delete, ps, features"
)


class Invocation:
    """One command line, parsed: the global flags, the command, its flags and words,
    and where the command starts in ``argv`` (handed over as is to a native runtime)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.globals: dict[str, str | bool] = {}
        index = self._flags(0, _GLOBAL, self.globals, stop_at_word=True)
        if index >= len(self.argv):
            if not (self.globals.get("version") or self.globals.get("help")):
                raise RuntimeFailure(USAGE)
            self.argv.append("version" if self.globals.get("version") else "help")
        self.command_at = index
        self.command = self.argv[index]
        self.flags: dict[str, str | bool] = {}
        self.words: list[str] = []
        if self.command in COMMANDS:
            self._flags(index + 1, COMMANDS[self.command], self.flags, stop_at_word=False)
        else:
            self.words = _container_word(self.command, self.argv[index + 1 :])

    def _flags(
        self, index: int, known: dict[str, bool], into: dict[str, str | bool], stop_at_word: bool
    ) -> int:
        argv = self.argv
        while index < len(argv):
            word = argv[index]
            if word == "--":
                self.words += argv[index + 1 :]
                return len(argv)
            if not word.startswith("-") or word == "-":
                if stop_at_word:
                    return index
                self.words.append(word)
                if self.command == "ps" and len(self.words) == 1:
                    self.words += argv[index + 1 :]  # ps ID [ps arguments]
                    return len(argv)
                index += 1
                continue
            name, equals, value = word.lstrip("-").partition("=")
            name = _SHORT.get(name, name)
            if name in ("version", "v") and stop_at_word:
                into["version"] = True
                index += 1
                continue
            if name in ("help", "h"):
                into["help"] = True
                index += 1
                continue
            if name not in known:
                raise RuntimeFailure(f"flag provided but not defined: {word.split('=')[0]}")
            if known[name] and not equals:
                if index + 1 >= len(argv):
                    raise RuntimeFailure(f"flag needs an argument: {word}")
                index += 1
                value = argv[index]
            into[name] = value if known[name] else (value or "true") != "false"
            index += 1
        return index

    @property
    def root(self) -> str | None:
        root = self.globals.get("root")
        return os.path.abspath(root) if isinstance(root, str) and root else None


# exec's flags that take a value (runc's and crun's): its ID is the first other word.
_EXEC_VALUES = frozenset(
    [
        "process",
        "p",
        "pid-file",
        "console-socket",
        "cwd",
        "env",
        "e",
        "user",
        "u",
        "additional-gids",
        "g",
        "preserve-fds",
        "cap",
        "c",
        "apparmor",
        "process-label",
        "cgroup",
    ]
)


def _container_word(command: str, args: list[str]) -> list[str]:
    """The ID of a command this runtime does not run itself (it refuses them, or hands
    them over): exec's first word, the others' last (``update --resources - ID``)."""
    words = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-") and arg != "-":
            name = arg.lstrip("-")
            skip = command == "exec" and "=" not in name and name in _EXEC_VALUES
        else:
            words.append(arg)
            if command == "exec":
                break
    return words[-1:]
