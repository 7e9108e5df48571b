"""The phase breakdown summed up over apps: mean and p99 of each phase, per policy or per mode.
Pure (see ``faillite.bench.phases`` for what the phases are)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from faillite.bench.phases import PHASES, AppPhases
from faillite.bench.stats import percentile

__all__ = ["by_mode", "phase_means", "summarize"]


def summarize(results: Iterable[AppPhases]) -> dict[str, Any]:
    """Per phase, mean and p99 (ms) over the recovered apps that have it, and how many had it.

    Only recovered apps count, so the phase means (but for ``settle``) add up to the mean
    ``recovery_ms`` whenever no phase is missing. ``detected_by``: how many apps each source
    detected first."""
    results = list(results)
    recovered = [r for r in results if r.recovered]
    phases: dict[str, dict[str, float | int | None]] = {}
    for name in PHASES:
        values = [v for r in recovered if (v := getattr(r, f"{name}_ms")) is not None]
        phases[name] = {
            "mean": round(statistics.fmean(values), 3) if values else None,
            "p99": None if not values else round(percentile(values, 99) or 0.0, 3),
            "n": len(values),
        }
    sources: dict[str, int] = {}
    for r in results:
        if r.detected_by is not None:
            sources[r.detected_by] = sources.get(r.detected_by, 0) + 1
    recovery = [r.recovery_ms for r in recovered if r.recovery_ms is not None]
    return {
        "apps": len(results),
        "recovered": len(recovered),
        "client_first": sum(1 for r in recovered if r.client_first),
        "detected_by": dict(sorted(sources.items())),
        "recovery_mean_ms": round(statistics.fmean(recovery), 3) if recovery else None,
        "phases": phases,
    }


def by_mode(results: Iterable[AppPhases]) -> dict[str, dict[str, Any]]:
    """``summarize`` per mode (warm / cold / none), e.g. for warm-backed apps' own breakdown."""
    groups: dict[str, list[AppPhases]] = {}
    for r in results:
        groups.setdefault(r.mode, []).append(r)
    return {mode: summarize(group) for mode, group in sorted(groups.items())}


def phase_means(results: Iterable[AppPhases]) -> dict[str, float | None]:
    """Phase -> mean ms over the recovered apps (the report's ``phases_ms``)."""
    return {name: stats["mean"] for name, stats in summarize(results)["phases"].items()}
