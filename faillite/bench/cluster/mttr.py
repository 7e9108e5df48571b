"""What one injected failure cost each app, from the paced load's own request records. Pure.

An app's MTTR runs from the failure instant -- or, when the app had no request in flight at
that instant (one the failed node still answered does not count), from the start of its first
request after it (the pause between paced requests is not the system's doing) -- to the end of
its first successful answer from another node.
Every time is ``time.monotonic()`` in the benchmark process; the failure instant is taken right
before the signal is sent.

A request the failure *touched* was in flight at the failure or started after it, no later than
the app's recovery (or the end of the observation when the app never recovered).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from faillite.bench.stats import percentile

__all__ = [
    "AppOutcome",
    "Sent",
    "app_outcome",
    "latency_stats",
    "round_ms",
    "summarize_outcomes",
    "top_errors",
]


@dataclass(frozen=True)
class Sent:
    """One request of the paced load."""

    app: str
    due: float  # when the schedule said to send it
    start: float  # when it was sent
    end: float | None  # when its answer (or error) came; None: still unanswered when the load stopped
    ok: bool
    node: str | None = None  # the node that answered
    error: str | None = None

    @property
    def latency_ms(self) -> float | None:
        return None if self.end is None else (self.end - self.start) * 1000


@dataclass(frozen=True)
class AppOutcome:
    app: str
    in_flight: int  # the app's requests in flight at the failure and not answered by the failed node
    origin: float | None  # where its MTTR starts (None: no request after the failure)
    mttr_ms: float | None  # None: no successful answer from another node within the observation
    recovered_by: str | None  # the node whose answer ended the outage
    touched: int  # requests the failure touched
    touched_failed: int  # of those, answered with an error
    touched_unanswered: int  # of those, still unanswered at the end of the observation
    touched_latency_ms: tuple[float, ...]  # latencies of the touched requests that ended


def app_outcome(
    records: Iterable[Sent], *, app: str, failed_node: str, failed_at: float, until: float
) -> AppOutcome:
    mine = [r for r in records if r.app == app and r.start <= until]
    # In flight at the failure, and not answered by the failed node all the same (an answer that
    # had left it before it died interrupted nothing: then the pause until the next request is
    # not the system's doing either).
    in_flight = [
        r
        for r in mine
        if r.start <= failed_at
        and (r.end is None or r.end > failed_at)
        and not (r.ok and r.node == failed_node)
    ]
    later = sorted(r.start for r in mine if r.start > failed_at)
    origin = failed_at if in_flight else (later[0] if later else None)
    answers = sorted(
        (
            r
            for r in mine
            if r.ok and r.node != failed_node and r.end is not None and failed_at < r.end <= until
        ),
        key=lambda r: r.end or 0.0,
    )
    first = answers[0] if answers and origin is not None else None
    mttr = None if first is None or first.end is None or origin is None else (first.end - origin) * 1000
    horizon = first.start if first is not None else until
    touched = [r for r in mine if (r.end is None or r.end > failed_at) and r.start <= horizon]
    ended = [r for r in touched if r.end is not None and r.end <= until]
    return AppOutcome(
        app=app,
        in_flight=len(in_flight),
        origin=origin,
        mttr_ms=None if mttr is None else round(mttr, 3),
        recovered_by=None if first is None else first.node,
        touched=len(touched),
        touched_failed=sum(1 for r in ended if not r.ok),
        touched_unanswered=len(touched) - len(ended),
        touched_latency_ms=tuple(round((r.end - r.start) * 1000, 3) for r in ended if r.end is not None),
    )


def latency_stats(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    values = list(latencies_ms)
    return {
        "requests": len(values),
        "p50_ms": round_ms(percentile(values, 50)),
        "p99_ms": round_ms(percentile(values, 99)),
        "max_ms": round_ms(max(values) if values else None),
    }


def summarize_outcomes(outcomes: Iterable[AppOutcome]) -> dict[str, float | int | None]:
    """MTTR mean/p50/max over apps (of every trial pooled), recovered count, touched requests."""
    outcomes = list(outcomes)
    mttrs = [o.mttr_ms for o in outcomes if o.mttr_ms is not None]
    touched = [lat for o in outcomes for lat in o.touched_latency_ms]
    return {
        "apps": len(outcomes),
        "recovered": len(mttrs),
        "mttr_mean_ms": round_ms(statistics.fmean(mttrs) if mttrs else None),
        "mttr_p50_ms": round_ms(percentile(mttrs, 50)),
        "mttr_max_ms": round_ms(max(mttrs) if mttrs else None),
        "touched_requests": sum(o.touched for o in outcomes),
        "touched_failed": sum(o.touched_failed for o in outcomes),
        "touched_unanswered": sum(o.touched_unanswered for o in outcomes),
        "touched_p50_ms": round_ms(percentile(touched, 50)),
        "touched_max_ms": round_ms(max(touched) if touched else None),
    }


def top_errors(records: Iterable[Sent], n: int = 5) -> list[list[Any]]:
    """The ``n`` commonest error messages (numbers blurred, so that alike ones group)."""
    counts = Counter(re.sub(r"\d+", "N", r.error)[:160] for r in records if not r.ok and r.error)
    return [[message, count] for message, count in counts.most_common(n)]


def round_ms(value: float | None) -> float | None:
    """Milliseconds to the microsecond (None stays None)."""
    return None if value is None else round(value, 3)
