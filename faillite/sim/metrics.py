"""A simulated policy's figures: the failover benchmark's per-policy JSON, from simulated records.

Per failed app the benchmark's own pure code does the work
(``faillite.bench.failover.outcome.injection_apps``: probe outcome, phases, accuracy-time loss,
touched requests) and so does its per-policy summary (``faillite.bench.failover.report``), so
every key means what it means in ``faillite bench failover --json``. Keys about the machine the
benchmark ran on (CPU utilisation, generator lag) are ``None`` here; times are simulated
seconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from faillite.bench.failover import report
from faillite.bench.failover.inject import Injection
from faillite.bench.failover.outcome import injection_apps, steady_latency
from faillite.bench.load import RequestRecord
from faillite.placement import Family, Mode, Plan

__all__ = ["figures", "memory_figures"]


def memory_figures(
    plan: Plan, families: Mapping[str, Family], app_family: Mapping[str, str]
) -> dict[str, Any]:
    """What the deployed plan holds for failover (as the benchmark's ``plan_backups``)."""
    warm = cold = 0
    drops: list[float] = []
    for a in plan:
        fam = families[app_family[a.app]]
        if a.backup is None:
            continue
        size = fam.variant(a.backup.variant).memory_bytes
        if a.backup.mode is Mode.WARM:
            warm += size
        else:
            cold += size
        drops.append(fam.variant(a.primary_variant).accuracy - fam.variant(a.backup.variant).accuracy)
    shared = sum(families[s.family].variant(s.variant).memory_bytes for s in plan.shared)
    return {
        "backup_memory_bytes": warm + shared,
        "cold_reserved_bytes": cold,
        "shared_fallback_memory_bytes": shared,
        "shared_fallbacks": len(plan.shared),
        "protected_apps": sum(1 for a in plan if a.backup is not None),
        "apps": len(plan.assignments),
        "planned_accuracy_drop_mean": round(statistics.fmean(drops), 6) if drops else None,
    }


def figures(
    *,
    label: str,
    policy: str,
    progressive: bool,
    injections: Iterable[Injection],
    workload: list[RequestRecord],
    weights: Mapping[str, float],
    shared_apps: Iterable[str],
    memory: Mapping[str, Any],
    offered_rps: float,
    dropped: int,
    window_s: float,
) -> dict[str, Any]:
    injections = list(injections)
    shared = set(shared_apps)
    flat: list[dict[str, Any]] = []
    per_injection = []
    for inj in injections:
        apps = injection_apps(inj, workload, dict(weights), shared)
        flat += [{**a, "node": inj.node, "kind": inj.kind} for a in apps]
        per_injection.append(
            {
                "node": inj.node,
                "kind": inj.kind,
                "failed_at_s": round(inj.failed_at, 6),
                "observe_ms": round((inj.until - inj.failed_at) * 1000, 1),
                "protected_after_share": inj.protected_after,
                "unprotected_after": inj.extra.get("unprotected_after", []),
                "events": len(inj.events),
                "apps": apps,
            }
        )
    shares = [i.protected_after for i in injections if i.protected_after is not None]
    kinds = sorted({r["kind"] for r in flat})
    modes = sorted({r["mode"] for r in flat})
    return {
        "deployed": True,
        "error": None,
        "policy": policy,
        "progressive": progressive,
        "headroom": None,
        "load": "open",
        **report._summary(flat),  # the benchmark's own per-policy summary
        "protected_after_share": round(statistics.fmean(shares), 4) if shares else None,
        "protected_after_min": min(shares) if shares else None,
        "cpu_utilisation": None,
        "cpu_utilisation_steady": None,
        "cpu_utilisation_own": None,
        "cpu_utilisation_own_steady": None,
        "steady_latency": steady_latency(workload, [i.window for i in injections]),
        "offered_rps": round(offered_rps, 3),
        "dropped_requests": dropped,
        "generator_lag_p99_ms": None,
        "window_s": round(window_s, 3),
        "by_kind": {k: report._summary([r for r in flat if r["kind"] == k]) for k in kinds},
        "by_mode": {m: report._summary([r for r in flat if r["mode"] == m]) for m in modes},
        **memory,
        "requests": len(workload),
        "failed_requests_all": sum(1 for r in workload if not r.ok),
        "cluster_start_s": 0.0,
        "elapsed_s": round(window_s, 3),
        "injections": per_injection,
        "label": label,
    }
