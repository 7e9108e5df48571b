"""``faillite sim sweep``: the paper's experiments at scale, one parameter varied at a time.

Each point is a generated cluster (``faillite.sim.generate.generate_cluster``: ``spare`` share
of node memory left after the primaries, ``domain`` nodes per failure domain) and one failure
at t = 0 of several nodes at once, simulated for every policy by ``faillite.sim.run.simulate``
(the one implementation: a point's figures are that call's figures, summarised).

The failure of a point:

- ``spare`` and ``failures``: the first ``failures`` nodes of one seeded shuffle of the node
  ids crash together (one event: a correlated failure). The prefixes nest, so a point with
  more failures fails a superset of the nodes of a point with fewer, and every spare point
  fails the same nodes (the generator's primaries do not depend on ``spare``);
- ``domain``: the whole failure domain of the shuffle's first node crashes (``domain`` nodes;
  a size of 1 means no domains: that node alone). The planner keeps a backup off its
  primary's domain, so this also shows what anti-affinity buys.

Unvaried parameters stay at their base values. Pure but for the simulator's wall time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faillite.launch.config import ClusterConfig
from faillite.sim.failures import FailureEvent
from faillite.sim.generate import DEFAULT_STANDINS, generate_cluster
from faillite.sim.inputs import build_inputs
from faillite.sim.report import spare_share
from faillite.sim.run import POLICIES, SimResult, simulate

__all__ = [
    "DIMENSIONS",
    "SUMMARY_KEYS",
    "Point",
    "SweepError",
    "parse_vary",
    "point_cluster",
    "point_failure",
    "summary",
    "sweep",
]

#: dimension -> how one of its values parses
DIMENSIONS: dict[str, Callable[[str], float | int]] = {"spare": float, "failures": int, "domain": int}
#: A run's figures kept per point and policy (``faillite bench failover``'s keys, and the sim's).
SUMMARY_KEYS = (
    "deployed",
    "failed_apps",
    "recovered_share",
    "mttr_mean_ms",
    "mttr_p50_ms",
    "mttr_p99_ms",
    "warm_mttr_mean_ms",
    "accuracy_drop_first",
    "accuracy_drop_settled",
    "settle_ms_mean",
    "accuracy_time_loss",
    "protected_after_share",
    "backup_memory_bytes",
)


class SweepError(ValueError):
    """A sweep asked for something that cannot run (a bad ``--vary``, too many failures)."""


@dataclass(frozen=True)
class Point:
    spare: float
    failures: int
    domain: int

    def with_value(self, dim: str, value: float | int) -> Point:
        return Point(**{**self.__dict__, dim: value})


def parse_vary(text: str) -> tuple[str, tuple[float | int, ...]]:
    """``spare=0.1,0.25,0.5`` -> ("spare", (0.1, 0.25, 0.5)); checked against the dimension."""
    dim, sep, values = text.partition("=")
    dim = dim.strip()
    if not sep or dim not in DIMENSIONS:
        raise SweepError(f"{text!r}: expected DIM=V1,V2,... with DIM one of {', '.join(DIMENSIONS)}")
    parsed: list[float | int] = []
    for raw in values.split(","):
        try:
            v = DIMENSIONS[dim](raw.strip())
        except ValueError:
            kind = "a number" if dim == "spare" else "a whole number"
            raise SweepError(f"{text!r}: {raw.strip()!r} is not {kind}") from None
        if dim == "spare" and not 0 <= v < 1:
            raise SweepError(f"{text!r}: spare must be in [0, 1), got {v:g}")
        if dim != "spare" and v < 1:
            raise SweepError(f"{text!r}: {dim} must be at least 1, got {v}")
        parsed.append(v)
    if len(set(parsed)) != len(parsed):
        raise SweepError(f"{text!r}: a value repeats")
    return dim, tuple(parsed)


def point_cluster(
    nodes: int, apps: int, point: Point, *, seed: int, scale: float | None = None
) -> ClusterConfig:
    """``scale``: the stand-ins' scale (default the generator's 0.02: loads of a few ms; 1.0:
    the published models' sizes, loads of 0.1-1 s)."""
    standins = None if scale is None else {"scale": scale}
    doc = generate_cluster(
        nodes, apps, seed=seed, domain_size=point.domain, spare=point.spare, standins=standins
    )
    return ClusterConfig.model_validate(doc)


def point_failure(config: ClusterConfig, point: Point, dim: str, *, seed: int) -> FailureEvent:
    """The one failure event of a point (see the module doc)."""
    ids = sorted(n.id for n in config.nodes)
    order = random.Random(seed).sample(ids, len(ids))
    if dim == "domain":
        first = next(n for n in config.nodes if n.id == order[0])
        if first.domain is None:
            return FailureEvent(0.0, (first.id,))
        return FailureEvent(0.0, tuple(n.id for n in config.nodes if n.domain == first.domain))
    if point.failures >= len(ids):
        raise SweepError(f"failures: {point.failures} of {len(ids)} nodes would leave none to fail over to")
    return FailureEvent(0.0, tuple(sorted(order[: point.failures])))


def summary(result: SimResult) -> dict[str, Any]:
    """The figures a sweep keeps of one run."""
    figs = result.figures
    out: dict[str, Any] = {k: figs.get(k) for k in SUMMARY_KEYS}
    out["deployed"] = bool(figs.get("deployed"))
    if not out["deployed"]:
        out["refusal"] = figs.get("refusal")
    out["sim_seconds"] = round(result.sim_seconds, 3)
    out["planner_seconds"] = round(result.planner_seconds, 3)
    out["method"] = result.method.get("ran")
    return out


def sweep(
    nodes: int,
    apps: int,
    vary: Mapping[str, Sequence[float | int]],
    policies: Sequence[str],
    *,
    base: Point,
    seed: int = 0,
    method: str | None = None,
    scale: float | None = None,
    say: Callable[[str], None] = lambda _m: None,
    saved: Callable[[dict[str, Any]], None] = lambda _d: None,
) -> dict[str, Any]:
    """Every point of every varied dimension, every policy. ``saved`` gets the document after
    each point (a bounded sweep cut short keeps what it finished)."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise SweepError(f"--policy: unknown policy {unknown[0]!r} (known: {', '.join(POLICIES)}, all)")
    started = time.perf_counter()
    doc: dict[str, Any] = {
        "kind": "sim-sweep",
        "nodes": nodes,
        "apps": apps,
        "seed": seed,
        "scale": scale if scale is not None else DEFAULT_STANDINS["scale"],
        "base": dict(base.__dict__),
        "policies": list(policies),
        "dimensions": {dim: [] for dim in vary},
        "sim_seconds": 0.0,
    }
    for dim, values in vary.items():
        for value in values:
            point = base.with_value(dim, value)
            config = point_cluster(nodes, apps, point, seed=seed, scale=scale)
            failure = point_failure(config, point, dim, seed=seed)
            inputs = build_inputs(config)
            row: dict[str, Any] = {
                "value": value,
                **point.__dict__,
                "headroom": spare_share(config, inputs),
                "failed_nodes": list(failure.nodes),
                "policies": {},
            }
            for label in policies:
                result = simulate(config, (failure,), policy=label, seed=seed, method=method, inputs=inputs)
                row["policies"][label] = s = summary(result)
                say(_progress(dim, value, label, s))
            doc["dimensions"][dim].append(row)
            doc["sim_seconds"] = round(time.perf_counter() - started, 3)
            saved(doc)
    return doc


def _progress(dim: str, value: float | int, label: str, s: Mapping[str, Any]) -> str:
    if not s["deployed"]:
        return f"{dim}={value:g} {label}: plan refused ({s.get('refusal')}) [{s['sim_seconds']:.1f} s]"

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    return (
        f"{dim}={value:g} {label}: {s['failed_apps']} apps, recovered {f(s['recovered_share'], '.0%')}, "
        f"MTTR {f(s['mttr_mean_ms'], '.1f')} ms (p99 {f(s['mttr_p99_ms'], '.1f')}), settled drop "
        f"{f(s['accuracy_drop_settled'] and s['accuracy_drop_settled'] * 100, '.2f')} pts "
        f"[{s['sim_seconds']:.1f} s]"
    )
