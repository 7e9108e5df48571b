"""Cluster-level benchmarks on a local ``faillite up``-style cluster.

``faillite bench idle``: CPU share of an idle cluster, per process. ``faillite bench warm``:
latency under open-loop paced load, then warm-backup MTTR after SIGKILL and SIGSTOP of a node,
and how long the controller took to declare it dead. ``faillite bench soak``: false
``node_dead`` events at default settings with the cores saturated by unrelated processes.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    from faillite.bench.cluster import idle, soak, warm

    idle.add_parser(sub)
    warm.add_parser(sub)
    soak.add_parser(sub)
