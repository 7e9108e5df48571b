"""What one injected failure cost each affected app, from its probe, the workload and the events. Pure.

Per app:
- MTTR, first answer, settle time, steps: from the app's probe stream (``faillite.bench.probe``);
- accuracy: ``accuracy_before`` is the primary's; the drop at first answer is before minus the
  first answer's accuracy, the settled drop before minus the accuracy of the variant it settled on
  (accuracies as fractions: 0.01 is one point);
- accuracy-time loss (``faillite.bench.accuracy_time``, on the probe): the accuracy points lost
  integrated over time from the failure until settled (points x seconds; an app with no answer
  counts its full accuracy until it answers, or until the end of the observation);
- what callers saw: the workload's requests the failure touched (in flight at it, or started
  after it and before the app settled, or before the end of the observation when it never did),
  how many failed, and their latency;
- the phase breakdown (``faillite.bench.phases``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from faillite.bench import accuracy_time, phases
from faillite.bench.failover.inject import Injection
from faillite.bench.load import RequestRecord
from faillite.bench.probe import ProbeOutcome, probe_outcome
from faillite.bench.stats import percentile

__all__ = ["injection_apps", "steady_latency", "touched"]


def touched(
    records: Iterable[RequestRecord], app: str, failed_at: float, horizon: float
) -> list[RequestRecord]:
    """The app's workload requests the failure touched: ended after it, started by ``horizon``."""
    return [r for r in records if r.app == app and r.end > failed_at and r.start <= horizon]


def steady_latency(
    records: Iterable[RequestRecord], windows: Iterable[tuple[float, float]]
) -> dict[str, Any]:
    """p50/p99 (ms) of the successful workload requests that overlap no failure window."""
    spans = list(windows)
    values = [
        (r.end - r.start) * 1000
        for r in records
        if r.ok and not any(r.start <= b and r.end >= a for a, b in spans)
    ]
    return {
        "requests": len(values),
        "p50_ms": _r(percentile(values, 50), 3),
        "p99_ms": _r(percentile(values, 99), 3),
    }


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _drop(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(before - after, 6)


def injection_apps(
    inj: Injection,
    workload: Sequence[RequestRecord],
    weights: dict[str, float],
    shared: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """One JSON-ready dict per app the failure hit (today's keys kept, the new ones added);
    ``shared``: the apps a shared warm fallback stands in for."""
    shared = set(shared)
    failure = phases.Failure(inj.node, inj.kind, inj.failed_at)
    probes = [r for rs in inj.probes.values() for r in rs]
    modes = {a: ((inj.before[a].get("backup") or {}).get("mode") or "none") for a in inj.affected}
    finals = {a: s.variant for a, s in inj.settled.items() if s.variant is not None}
    broken = {
        p.app: p
        for p in phases.failure_phases(
            inj.affected, failure, inj.events, probes, until=inj.until, modes=modes, final_variants=finals
        )
    }
    out = []
    for app in inj.affected:
        s = inj.settled[app]
        po: ProbeOutcome = probe_outcome(
            inj.probes[app],
            app=app,
            failed_node=inj.node,
            failed_at=inj.failed_at,
            until=inj.until,
            settled_variant=s.variant,
        )
        before = inj.before[app].get("accuracy")
        settle_ms = po.settle_ms
        end_ms = settle_ms if settle_ms is not None else (inj.until - inj.failed_at) * 1000
        horizon = inj.failed_at + end_ms / 1000
        hit = touched(workload, app, inj.failed_at, horizon)
        loss = None
        if before is not None:
            loss = accuracy_time.accuracy_time_loss(
                app,
                inj.probes[app],
                failed_node=inj.node,
                failed_at=inj.failed_at,
                until=inj.until,
                primary_accuracy=before,
                settled_at=None if settle_ms is None else horizon,
            ).loss_point_s
        latencies = [(r.end - r.start) * 1000 for r in hit]
        after = (
            po.settled_accuracy
            if po.settled_accuracy is not None
            else (po.timeline[-1][1] if po.timeline else None)
        )
        ph = broken[app]
        out.append(
            {
                "app": app,
                "critical": bool(inj.before[app]["spec"].get("critical", False)),
                "weight": weights.get(app, 1.0),
                "mode": modes[app],
                "shared_fallback": app in shared,
                "recovered": po.mttr_ms is not None,
                "mttr_ms": _r(po.mttr_ms, 3),
                "full_recovery_ms": _r(settle_ms, 3),
                "failed_requests": sum(1 for r in hit if not r.ok),
                "requests": len(hit),
                "accuracy_before": before,
                "accuracy_after": after,
                "accuracy_drop": _drop(before, after) if po.mttr_ms is not None else None,
                "steps": [{"variant": v, "node": n, "at_ms": t} for v, n, t in po.steps],
                # added with the probe streams
                "origin_ms": None if po.origin is None else round((po.origin - inj.failed_at) * 1000, 3),
                "first_variant": po.first_variant,
                "accuracy_first": po.first_accuracy,
                "accuracy_drop_first": _drop(before, po.first_accuracy),
                "settled_by": s.by,
                "settled_variant": s.variant,
                "settled_protected": s.protected,
                "settle_ms": _r(settle_ms, 3),
                "accuracy_settled": po.settled_accuracy,
                "accuracy_drop_settled": _drop(before, po.settled_accuracy),
                "accuracy_time_loss": _r(loss, 4),
                "probe_failed_requests": po.failed_requests,
                "touched_latency_p50_ms": _r(percentile(latencies, 50), 3),
                "touched_latency_max_ms": _r(max(latencies) if latencies else None, 3),
                "detected_by": ph.detected_by,
                "client_first": ph.client_first,
                "phases_ms": {k: _r(v, 3) for k, v in ph.phases().items()},
            }
        )
    return out
