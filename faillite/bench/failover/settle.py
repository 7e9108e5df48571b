"""When has a failed app settled? Pure, from controller events, the ``/v1/apps`` view and the probe.

An app has settled when the controller says so (an ``app_settled`` event after the failure: the
variant it will keep until failback) *and* its probe has had an answer from that variant on
another node. Fallbacks, each labelled in ``Settled.by``:
- ``lost``: an ``app_lost`` event (nothing will serve it until its node returns);
- ``quiet``: no ``app_settled`` event, but the app is ``failed_over``, its probe got an answer from
  the variant the controller now routes to, and no controller event has named the app for
  ``quiet_s`` (controllers that do not emit ``app_settled``; long enough -- 6 s by default --
  that the controller's own settling step, tried every 250 ms after the failover, speaks first);
- ``unavailable``: the app is ``unavailable`` and no event named it for ``quiet_s``;
- ``timeout``: none of these within the observation (decided by the caller).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from faillite.bench.load import RequestRecord

__all__ = ["Settled", "node_events", "settled_app"]


@dataclass(frozen=True)
class Settled:
    app: str
    by: str  # event / lost / quiet / unavailable / timeout
    at: float  # mono when the controller said so (or when it was inferred)
    variant: str | None  # the variant it settled on (None: lost or unavailable)
    node: str | None
    protected: bool | None  # the controller's word, with the app_settled event


def _answered(probe: Iterable[RequestRecord], failed_node: str, failed_at: float, variant: str) -> bool:
    return any(r.ok and r.node != failed_node and r.end > failed_at and r.variant == variant for r in probe)


def settled_app(
    app: str,
    *,
    events: Iterable[Mapping[str, Any]],
    view: Mapping[str, Any] | None,
    probe: Iterable[RequestRecord],
    failed_node: str,
    failed_at: float,
    now: float,
    quiet_s: float = 6.0,
) -> Settled | None:
    """How ``app`` has settled by ``now`` (None: not yet). ``events``: the controller's since before
    the failure; ``view``: the app's ``/v1/apps`` entry now."""
    probe = list(probe)
    mine = [e for e in events if e.get("app") == app and e.get("mono", 0.0) >= failed_at]
    for e in mine:
        if e["kind"] == "app_settled":
            variant = e.get("variant")
            if variant is not None and not _answered(probe, failed_node, failed_at, variant):
                return None
            return Settled(app, "event", e["mono"], variant, e.get("node"), e.get("protected"))
    for e in mine:
        if e["kind"] == "app_lost":
            return Settled(app, "lost", e["mono"], None, None, False)
    if view is None:
        return None
    last = max((e["mono"] for e in mine), default=failed_at)
    if now - last < quiet_s:
        return None
    if view.get("state") == "failed_over":
        variant = view.get("variant")
        if variant is None or not _answered(probe, failed_node, failed_at, variant):
            return None
        return Settled(app, "quiet", last, variant, view.get("node"), None)
    if view.get("state") == "unavailable":
        return Settled(app, "unavailable", last, None, None, False)
    return None


def node_events(events: Iterable[Mapping[str, Any]], node: str, since: float) -> list[Mapping[str, Any]]:
    """The events about ``node`` (suspicion, verdict) from ``since`` on, in order."""
    return sorted(
        (e for e in events if e.get("node") == node and e.get("mono", 0.0) >= since and "app" not in e),
        key=lambda e: e["mono"],
    )
