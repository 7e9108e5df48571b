"""``python -m faillite.agent ...``: the agent without the rest of the CLI (fastest start)."""

from __future__ import annotations

import argparse
import sys

from faillite.commands.agent import add_arguments, run
from faillite.errors import CliError


def main() -> int:
    parser = argparse.ArgumentParser(prog="faillite agent")
    add_arguments(parser)
    args = parser.parse_args()
    try:
        return run(args)
    except CliError as exc:
        print(f"faillite agent: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
