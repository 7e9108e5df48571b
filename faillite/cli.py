"""The ``faillite`` command line: one sub-command per module in ``faillite.commands``.

Every command module exposes ``register(subparsers)`` and sets ``func`` on its parser; the
function returns the exit status. User errors are raised as ``CliError`` (or a subclass of
ValueError from config/manifest loading) and printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from faillite.errors import CliError

__all__ = ["build_parser", "main"]

# Order is the order of `faillite --help`.
_COMMANDS = [
    "faillite.commands.demo",
    "faillite.commands.controller",
    "faillite.commands.agent",
    "faillite.commands.up",
    "faillite.commands.zoo",
    "faillite.commands.profile",
    "faillite.commands.plan",
    "faillite.commands.gateway",
    "faillite.commands.status",
    "faillite.commands.events",
    "faillite.commands.bench",
    "faillite.commands.sim",
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command's (commands import heavy libraries such as
    the planner's solver, so ``faillite agent`` must not pay for ``faillite plan``)."""
    parser = argparse.ArgumentParser(
        prog="faillite",
        description="Failure-resilient model serving for edge clusters.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = [m for m in _COMMANDS if m.rsplit(".", 1)[1] == only] or _COMMANDS
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"faillite {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
