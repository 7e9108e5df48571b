"""Accuracy lost over time after a failure, in points x seconds, per app and per policy. Pure.

One axis for "fast but inaccurate" and "slow but exact": for each failed app, the accuracy it
did not deliver, integrated from the failure until it settled (or the end of the window):

    loss = integral over [failed_at, end) of (primary accuracy - accuracy served at t) dt

where the accuracy served is a step function of the app's request records (e.g. its probe
stream), changing at each record's end:
- before the first successful answer from another node: 0 (the app loses its full accuracy);
- after a successful answer from another node: that variant's accuracy (the loss is
  ``primary - accuracy``, floored at 0: a more accurate stand-in is no gain);
- after a failed request: 0 again (the app is not answering);
- an answer from the failed node itself left it before it died and changes nothing.

``end`` is ``settled_at`` (the end of the app's first answer from its settled variant, e.g.
``AppPhases.marks.settled`` from ``faillite.bench.phases``) when given and inside the window,
else ``until``. So an app that never recovered counts its full accuracy for the whole window,
and one that recovered but did not settle counts until the window ends. What stays lost after
settling is the settled drop, reported on its own.

Units: ``RequestRecord.accuracy`` is the answering variant's accuracy from the route table
(``RouteTarget.accuracy``), a fraction in [0, 1] (top-1, as in the family manifests); the
``primary_accuracy`` must use the same unit. Results are in percentage points: point-seconds
for the integral, points for drops. Pass ``unit="points"`` if both are already in points.
An answer whose accuracy is unknown (``None``) is left out of the integral; ``unknown_s`` says
for how long.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from faillite.bench.record import Record

__all__ = ["AccuracyLoss", "accuracy_time_loss", "policy_loss"]


@dataclass(frozen=True)
class AccuracyLoss:
    app: str
    primary_points: float  # the accuracy the app had before the failure
    loss_point_s: float  # points x seconds lost from the failure to the end of the window
    window_s: float  # failure -> settled answer (or the end of the window)
    recovered: bool  # some answer from another node came in the window
    settled: bool  # the window ended at the settled answer
    unknown_s: float  # time served by answers of unknown accuracy (not counted)
    first_drop_points: float | None  # primary - the first answer's accuracy
    last_drop_points: float | None  # primary - the last answer's accuracy in the window

    @property
    def mean_loss_points(self) -> float | None:
        """The average drop over the window (loss / window)."""
        return self.loss_point_s / self.window_s if self.window_s > 0 else None


def accuracy_time_loss(
    app: str,
    records: Iterable[Record],
    *,
    failed_node: str,
    failed_at: float,
    until: float,
    primary_accuracy: float,
    settled_at: float | None = None,
    unit: Literal["fraction", "points"] = "fraction",
) -> AccuracyLoss:
    """The app's loss (module docstring); times are ``time.monotonic()`` seconds."""
    if until < failed_at:
        raise ValueError(f"{app}: the window ends ({until}) before the failure ({failed_at})")
    scale = _scale(unit)
    primary = _points(primary_accuracy, scale, app, "primary accuracy")
    settled = settled_at is not None and failed_at <= settled_at <= until
    end = settled_at if settled and settled_at is not None else until
    mine = sorted((r for r in records if r.app == app and failed_at <= r.end <= end), key=lambda r: r.end)

    loss = unknown = 0.0
    at, drop = failed_at, primary  # nothing answered yet: the full accuracy is lost
    first: float | None = None
    last: float | None = None
    recovered = False
    for r in mine:
        if r.ok and r.node == failed_node:
            continue  # left the failed node before it died
        if drop is None:
            unknown += r.end - at
        else:
            loss += drop * (r.end - at)
        at = r.end
        if not r.ok:
            drop = primary
            continue
        served = None if r.accuracy is None else _points(r.accuracy, scale, app, "answer accuracy")
        drop = None if served is None else max(primary - served, 0.0)
        first = drop if not recovered else first
        last = drop
        recovered = True
    if drop is None:
        unknown += end - at
    else:
        loss += drop * (end - at)
    return AccuracyLoss(
        app=app,
        primary_points=primary,
        loss_point_s=loss,
        window_s=end - failed_at,
        recovered=recovered,
        settled=settled,
        unknown_s=unknown,
        first_drop_points=first,
        last_drop_points=last,
    )


def policy_loss(losses: Iterable[AccuracyLoss]) -> dict[str, Any]:
    """A policy's total and per-app mean accuracy-time loss (point-seconds), over every failed
    app of every injection."""
    losses = list(losses)
    values = [a.loss_point_s for a in losses]
    return {
        "apps": len(losses),
        "sum_point_s": round(sum(values), 4),
        "mean_point_s": round(statistics.fmean(values), 4) if values else None,
        "unrecovered": sum(1 for a in losses if not a.recovered),
    }


def _scale(unit: str) -> float:
    if unit == "fraction":
        return 100.0
    if unit == "points":
        return 1.0
    raise ValueError(f"unit must be 'fraction' or 'points', not {unit!r}")


def _points(value: float, scale: float, app: str, what: str) -> float:
    if not 0.0 <= value <= 100.0 / scale:
        raise ValueError(f"{app}: {what} {value} is not in [0, {100.0 / scale:g}] for this unit")
    return value * scale
