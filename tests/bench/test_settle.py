"""When an app counts as settled, and who is protected afterwards (pure; recorded events)."""

from __future__ import annotations

from faillite.bench.failover.inject import protected_share, restore_gap
from faillite.bench.failover.settle import settled_app
from faillite.bench.load import RequestRecord

F = 50.0


def ev(kind: str, mono: float, **data: object) -> dict[str, object]:
    return {"kind": kind, "mono": mono, **data}


def answer(end: float, variant: str, node: str = "b") -> RequestRecord:
    return RequestRecord("app", end - 0.001, end, True, node, variant, 0.8)


def settle(events, probe, view=None, now=F + 1.0):
    return settled_app(
        "app", events=events, view=view, probe=probe, failed_node="a", failed_at=F, now=now, quiet_s=2.0
    )


def test_the_event_settles_only_once_the_probe_heard_the_settled_variant() -> None:
    events = [
        ev("node_dead", F + 0.01, node="a"),
        ev("app_settled", F + 0.5, app="app", node="b", variant="big", protected=True),
    ]
    assert settle(events, [answer(F + 0.1, "small")]) is None  # said, not heard yet
    s = settle(events, [answer(F + 0.1, "small"), answer(F + 0.6, "big")])
    assert s is not None and (s.by, s.variant, s.node, s.protected, s.at) == (
        "event",
        "big",
        "b",
        True,
        F + 0.5,
    )
    # an answer from the failed node, or from before the failure, is not the settled variant answering
    assert settle(events, [answer(F + 0.6, "big", node="a"), answer(F - 1, "big")]) is None


def test_an_event_from_before_the_failure_or_of_another_app_does_not_count() -> None:
    events = [
        ev("app_settled", F - 5, app="app", node="b", variant="big", protected=True),
        ev("app_settled", F + 0.5, app="other", node="b", variant="big", protected=True),
    ]
    assert settle(events, [answer(F + 0.6, "big")]) is None


def test_lost_apps_settle_at_once() -> None:
    s = settle([ev("app_lost", F + 0.2, app="app", reason="no room")], [])
    assert s is not None and s.by == "lost" and s.variant is None and s.protected is False


def test_quiet_fallback_needs_silence_and_the_routed_variant_answering() -> None:
    events = [ev("route_changed", F + 0.3, app="app", node="b", variant="v")]
    view = {"state": "failed_over", "node": "b", "variant": "v"}
    probe = [answer(F + 0.4, "v")]
    assert settle(events, probe, view, now=F + 1.0) is None  # not quiet long enough
    s = settle(events, probe, view, now=F + 2.4)
    assert s is not None and (s.by, s.variant, s.at) == ("quiet", "v", F + 0.3)
    assert settle(events, [answer(F + 0.4, "w")], view, now=F + 9) is None  # v never answered
    gone = settle(events, [], {"state": "unavailable"}, now=F + 9)
    assert gone is not None and gone.by == "unavailable"
    assert settle(events, probe, {"state": "recovering"}, now=F + 9) is None


def test_protected_share_counts_backups_on_live_nodes_other_than_the_serving_one() -> None:
    plan = [
        {"app": "a1", "primary_node": "n1", "backup": {"node": "n2", "variant": "v", "mode": "warm"}},
        {
            "app": "a2",
            "primary_node": "n1",
            "backup": {"node": "n3", "variant": "v", "mode": "cold"},
        },  # n3 dead
        {
            "app": "a3",
            "primary_node": "n3",
            "backup": {"node": "n2", "variant": "v", "mode": "cold"},
        },  # served on n2
        {"app": "a4", "primary_node": "n2", "backup": None},
    ]
    apps = [{"name": "a1", "node": "n1"}, {"name": "a2", "node": "n1"}, {"name": "a3", "node": "n2"}]
    share, bare = protected_share(plan, apps, alive={"n1", "n2"})
    assert share == 0.25 and bare == ["a2", "a3", "a4"]
    assert protected_share([], apps, {"n1"}) == (None, [])
    # a shared warm fallback on a live node other than the serving one protects too
    shared = [{"node": "n2", "apps": ["a2", "a3", "a4"]}, {"node": "n1", "apps": ["a4"]}]
    share, bare = protected_share(plan, apps, alive={"n1", "n2"}, shared=shared)
    assert share == 0.75 and bare == ["a3"]  # a3 is served on n2, its only cover


def test_restore_gap_names_what_keeps_the_cluster_from_its_plan() -> None:
    warm = {"node": "n2", "variant": "small", "mode": "warm"}
    apps = [
        {"name": "a1", "state": "primary", "node": "n1", "variant": "big", "backup": warm},
        {"name": "a2", "state": "primary", "node": "n2", "variant": "mid", "backup": None},
    ]
    nodes = [
        {"id": "n1", "state": "alive", "loaded": ["big"]},
        {"id": "n2", "state": "alive", "loaded": ["mid", "small", "fallback"]},
        {"id": "n3", "state": "dead", "loaded": ["stale"]},
    ]
    shared = [{"node": "n2", "family": "f", "variant": "fallback", "apps": ["a1"]}]
    assert restore_gap(apps, nodes, shared) is None  # a shared fallback is wanted, not a leftover
    assert restore_gap(apps, nodes, []) == "n2 still holds fallback"
    nodes[1]["loaded"] = ["mid", "stone"]
    apps[1]["state"] = "failed_over"
    assert restore_gap(apps, nodes, shared) == (
        "a1's warm backup not loaded on n2; a2 is failed_over; n2 still holds stone"
    )
