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
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faillite",
        description="Failure-resilient model serving for edge clusters.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
