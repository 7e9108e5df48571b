"""``faillite demo``: what `make demo` runs."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the demo: a real agent serving the digits family")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from faillite.demo.agent_tour import run_agent_tour

    return run_agent_tour()
