"""``faillite bench <name>``: benchmarks, each in its own module under ``faillite.bench``.

Every benchmark module exposes ``register(subparsers)`` like the top-level commands.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["register"]

_BENCHMARKS = [
    "faillite.bench.agent_overhead",
    "faillite.bench.cluster",
    "faillite.bench.failover",
    "faillite.bench.planner",
]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name in _BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(bench_sub)
