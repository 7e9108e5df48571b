"""What a failure cost each app, from the client's own request records. Pure.

MTTR of an app: from the failure to the end of the first successful response for that app,
served by another node, that ended after it (the client's view, under closed-loop load).
Full recovery: until the first success from the variant the app ends up on. Steps: each
(node, variant) that served the app after the failure, in order, with when its first answer came.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faillite.bench.load import RequestRecord
from faillite.bench.stats import percentile

__all__ = ["AppRecovery", "Step", "by_mode", "recover_report", "recover_reports", "summarize"]


@dataclass(frozen=True)
class Step:
    variant: str
    node: str
    at_ms: float


@dataclass(frozen=True)
class AppRecovery:
    app: str
    critical: bool
    mode: str  # warm / cold / none: the backup the plan had at the failure
    mttr_ms: float | None  # None: never recovered within the observation
    full_recovery_ms: float | None
    failed_requests: int
    steps: tuple[Step, ...]
    accuracy_before: float | None
    accuracy_after: float | None
    requests_after: int = field(default=0)

    @property
    def recovered(self) -> bool:
        return self.mttr_ms is not None


def recover_report(
    records: Iterable[RequestRecord],
    *,
    app: str,
    failed_node: str,
    failed_at: float,
    until: float,
    critical: bool,
    mode: str,
    final_variant: str | None,
    accuracy_before: float | None,
) -> AppRecovery:
    mine = sorted((r for r in records if r.app == app and failed_at <= r.end <= until), key=lambda r: r.end)
    # An answer from the failed node itself left it before it died: it is no recovery.
    successes = [r for r in mine if r.ok and r.node != failed_node]
    failed = sum(1 for r in mine if not r.ok)
    mttr = (successes[0].end - failed_at) * 1000 if successes else None
    steps: list[Step] = []
    seen: set[tuple[str | None, str | None]] = set()
    for r in successes:
        if (r.node, r.variant) not in seen:
            seen.add((r.node, r.variant))
            steps.append(Step(r.variant or "?", r.node or "?", round((r.end - failed_at) * 1000, 2)))
    full = None
    if final_variant is not None:
        first_final = next((r for r in successes if r.variant == final_variant), None)
        full = None if first_final is None else (first_final.end - failed_at) * 1000
    after = successes[-1].accuracy if successes else None
    return AppRecovery(
        app=app,
        critical=critical,
        mode=mode,
        mttr_ms=None if mttr is None else round(mttr, 2),
        full_recovery_ms=None if full is None else round(full, 2),
        failed_requests=failed,
        steps=tuple(steps),
        accuracy_before=accuracy_before,
        accuracy_after=after,
        requests_after=len(mine),
    )


def recover_reports(
    records: Iterable[RequestRecord],
    affected: Iterable[str],
    before: Mapping[str, Mapping[str, Any]],
    after: Mapping[str, Mapping[str, Any]],
    *,
    failed_node: str,
    failed_at: float,
    until: float,
) -> list[AppRecovery]:
    """``recover_report`` for each affected app, from the controller's ``/v1/apps`` views taken
    before the failure and after it settled."""
    records = list(records)
    return [
        recover_report(
            records,
            app=name,
            failed_node=failed_node,
            failed_at=failed_at,
            until=until,
            critical=before[name]["spec"].get("critical", False),
            mode=(before[name]["backup"] or {}).get("mode", "none"),
            final_variant=after[name]["variant"] if after[name]["state"] == "failed_over" else None,
            accuracy_before=before[name]["accuracy"],
        )
        for name in affected
    ]


def summarize(apps: Iterable[AppRecovery]) -> dict[str, object]:
    apps = list(apps)
    mttrs = [a.mttr_ms for a in apps if a.mttr_ms is not None]
    return {
        "affected": len(apps),
        "recovered": sum(1 for a in apps if a.recovered),
        "mttr_mean_ms": round(statistics.fmean(mttrs), 2) if mttrs else None,
        "mttr_p50_ms": percentile(mttrs, 50),
        "mttr_p99_ms": percentile(mttrs, 99),
        "failed_requests": sum(a.failed_requests for a in apps),
    }


def by_mode(apps: Iterable[AppRecovery]) -> Mapping[str, dict[str, object]]:
    groups: dict[str, list[AppRecovery]] = {}
    for a in apps:
        groups.setdefault(a.mode, []).append(a)
    return {mode: summarize(group) for mode, group in sorted(groups.items())}
