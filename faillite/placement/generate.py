"""Random instances for benchmarks and the simulator: seeded, reproducible, pure."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence

from faillite.placement.model import App, Family, Instance, Node, PlannerParams

__all__ = ["random_instance"]


def random_instance(
    families: Sequence[Family],
    n_apps: int,
    n_nodes: int,
    *,
    seed: int = 0,
    memory_slack: float = 1.6,
    domain_size: int = 0,
    critical_fraction: float = 0.1,
    max_recovery_fraction: float = 0.2,
    params: PlannerParams | None = None,
) -> Instance:
    """Apps with given primaries spread over ``n_nodes``; node budgets are their primaries'
    memory times ``memory_slack`` (so backups must be smaller than the primaries, mostly).

    ``domain_size`` > 0 groups consecutive nodes into failure domains of that size.
    """
    rng = random.Random(seed)
    fams = [f for f in families if f.variants]
    apps: list[App] = []
    load = [0] * n_nodes
    demand = [0.0] * n_nodes
    heap = [(0, rng.random(), n) for n in range(n_nodes)]  # least-loaded node first
    heapq.heapify(heap)
    for k in range(n_apps):
        fam = rng.choice(fams)
        front = [
            v
            for v in fam.variants  # undominated: nothing as small is more accurate
            if not any(w.memory_bytes <= v.memory_bytes and w.accuracy > v.accuracy for w in fam.variants)
        ]
        ranked = sorted(front, key=lambda v: (v.memory_bytes, v.name))
        pv = rng.choice(ranked[len(ranked) // 2 :])
        _, _, node = heapq.heappop(heap)
        load[node] += pv.memory_bytes
        rate = round(rng.uniform(0.05, 0.4) * 1000 / max(pv.service_ms, 1.0), 3)
        demand[node] += rate * pv.service_ms
        heapq.heappush(heap, (load[node], rng.random(), node))
        critical = rng.random() < critical_fraction
        max_rec = None
        if not critical and rng.random() < max_recovery_fraction:
            max_rec = round(rng.uniform(100.0, 600.0))
        apps.append(
            App(
                name=f"app-{k:05d}",
                family=fam.name,
                primary_variant=pv.name,
                slo_ms=round(pv.latency_ms * rng.uniform(1.2, 3.0), 1),
                weight=rng.choice((1.0, 1.0, 2.0, 3.0, 5.0)),
                critical=critical,
                max_recovery_ms=max_rec,
                request_rate=rate,
                primary_node=f"node-{node:04d}",
            )
        )
    nodes = tuple(
        Node(
            id=f"node-{n:04d}",
            memory_bytes=int(
                max(load[n], max(v.memory_bytes for f in fams for v in f.variants) // 4)
                * memory_slack
                * rng.uniform(0.9, 1.1)
            ),
            cores=float(max(rng.choice((4, 8)), 2 * math.ceil(demand[n] / 1000))),
            domain=f"rack-{n // domain_size}" if domain_size > 0 else None,
        )
        for n in range(n_nodes)
    )
    return Instance(nodes, tuple(fams), tuple(apps), params or PlannerParams())
