"""Settling after a failover (``faillite.placement.settle``): apps climb back toward their home
variant, and no app that was protected is ever left unprotected."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from planner_helpers import MIB, instance, ladder, variant
from test_placement_properties import tiny_instances

from faillite.placement import (
    App,
    Assignment,
    Backup,
    Family,
    Instance,
    Mode,
    Node,
    Plan,
    PlanResult,
    Status,
    make_plan,
    plan_document,
    replan,
)
from faillite.placement.settle import settle
from faillite.plancheck import check


def _pinned(inst: Instance, plan: Plan) -> Instance:
    """``inst`` with every app's primary where ``plan`` puts it."""
    where = plan.by_app()
    apps = tuple(
        dataclasses.replace(
            a, primary_node=where[a.name].primary_node, primary_variant=where[a.name].primary_variant
        )
        for a in inst.apps
    )
    return dataclasses.replace(inst, apps=apps)


def _protected(plan: Plan) -> set[str]:
    return {a.app for a in plan if a.backup is not None}


def _after_failure(
    inst: Instance, failed: str, *, smallest: bool = False, room: float = 1.0
) -> tuple[Instance, Plan, set[str], dict[str, str]] | None:
    """The survivors, the plan and the failed-over apps after ``failed`` died. ``smallest``: the
    failed-over apps run their family's smallest variant (as if stuck on a stepping stone), and
    backups are planned again around that; ``room`` multiplies the survivors' memory first (as
    if memory had been freed), so that climbs happen often."""
    base = make_plan(inst, method="greedy", policy="faillite")
    if base.plan is None:
        return None
    rr = replan(inst, base.plan, [failed])
    if rr.protection.plan is None:
        return None
    home = {a.name: a.primary_variant for a in inst.apps}
    moved = {a.app for a in base.plan if a.primary_node == failed} - set(rr.lost)
    if not smallest:
        return rr.instance, rr.protection.plan, moved, home
    apps = tuple(
        dataclasses.replace(
            a,
            primary_variant=min(survivors_family(rr.instance, a).variants, key=lambda v: v.memory_bytes).name,
        )
        if a.name in moved
        else a
        for a in rr.instance.apps
    )
    nodes = tuple(dataclasses.replace(n, memory_bytes=int(n.memory_bytes * room)) for n in rr.instance.nodes)
    small = dataclasses.replace(rr.instance, apps=apps, nodes=nodes)
    again = make_plan(small, method="greedy", policy="faillite", best_effort=True)
    if again.plan is None:
        return None
    return small, again.plan, moved, home


def survivors_family(inst: Instance, app: App) -> Family:
    return inst.family(app.family)


def _two_survivors(n2_mib: int) -> tuple[Instance, Plan]:
    """After n1 died: a (home F-l) runs its backup F-s on n2; b (family G, 20 MiB) runs on n3
    and its only possible backup node is n2."""
    g = Family("G", (variant("G", "G-1", 0.7, 20),))
    inst = instance(
        [Node("n2", n2_mib * MIB), Node("n3", 75 * MIB)],
        [
            App("a", "F", "F-s", slo_ms=50, primary_node="n2"),
            App("b", "G", "G-1", slo_ms=50, primary_node="n3"),
        ],
        [ladder(), g],
    )
    plan = Plan(
        (
            Assignment("a", "n2", "F-s", Backup("n3", "F-s", Mode.COLD)),
            Assignment("b", "n3", "G-1", Backup("n2", "G-1", Mode.COLD)),
        )
    )
    return inst, plan


def test_an_app_climbs_home_when_the_room_is_there() -> None:
    inst, plan = _two_survivors(100)
    result = settle(inst, plan, {"a": "F-l", "b": "G-1"}, ["a"])
    (climb,) = result.climbs
    assert (climb.app, climb.from_variant, climb.variant) == ("a", "F-s", "F-l")
    assert result.plan.by_app()["a"].primary_variant == "F-l"
    assert _protected(result.plan) == {"a", "b"}
    assert result.settled == ()  # it climbed: settled once a pass finds nothing more
    climbed = dataclasses.replace(
        inst, apps=(dataclasses.replace(inst.apps[0], primary_variant="F-l"), inst.apps[1])
    )
    again = settle(climbed, result.plan, {"a": "F-l", "b": "G-1"}, ["a"])
    assert again.climbs == () and again.settled == ("a",)


def test_an_app_climbs_only_as_far_as_protection_allows() -> None:
    # On a 75 MiB n2, F-l (60) would leave no room for b's backup (20): a stops at F-m (30).
    inst, plan = _two_survivors(75)
    result = settle(inst, plan, {"a": "F-l", "b": "G-1"}, ["a"])
    (climb,) = result.climbs
    assert climb.variant == "F-m"
    assert _protected(result.plan) == {"a", "b"}
    b = result.plan.by_app()["b"].backup
    assert b is not None and (b.node, b.variant) == ("n2", "G-1")


def test_the_old_variant_is_still_loaded_while_the_new_one_loads() -> None:
    # 65 MiB n2: F-l (60) fits once F-s is gone, but not beside it (70), and nowhere else.
    inst, plan = _two_survivors(65)
    result = settle(inst, plan, {"a": "F-l", "b": "G-1"}, ["a"])
    assert [c.variant for c in result.climbs] == ["F-m"]


def test_an_app_at_home_or_unknown_is_settled_as_it_is() -> None:
    inst, plan = _two_survivors(100)
    result = settle(inst, plan, {"a": "F-s", "b": "G-1"}, ["a", "ghost"])
    assert result.climbs == () and result.plan == plan
    assert result.settled == ("a", "ghost")


_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    tiny_instances(max_nodes=4, max_apps=5),
    st.integers(0, 3),
    st.sampled_from([(False, 1.0), (True, 1.0), (True, 1.5), (True, 2.5)]),
)
def test_settling_never_leaves_an_app_unprotected(inst: Instance, k: int, how: tuple[bool, float]) -> None:
    failed = inst.nodes[k % len(inst.nodes)].id
    state = _after_failure(inst, failed, smallest=how[0], room=how[1])
    assume(state is not None)
    assert state is not None
    survivors, plan, moved, home = state
    result = settle(survivors, plan, home, moved)
    event(f"{len(result.climbs)} climbs")
    # 1. protection: every app protected before settling is protected after.
    assert _protected(plan) <= _protected(result.plan)
    # 2. the settled plan is valid, by the independent checker, on the survivors.
    settled_inst = _pinned(survivors, result.plan)
    doc = plan_document(settled_inst, PlanResult(Status.FEASIBLE, "greedy", "faillite", result.plan))
    doc["best_effort"] = True  # after a failure some apps may have no possible backup (item 1 covers them)
    report = check(doc)
    assert report.violations == []
    # 3. only failed-over apps climb, up (never past home), each at most once.
    before = plan.by_app()
    assert len({c.app for c in result.climbs}) == len(result.climbs)
    for c in result.climbs:
        assert c.app in moved
        fam = survivors.family(survivors.app(c.app).family)
        was, now, top = (fam.variant(x).accuracy for x in (c.from_variant, c.variant, home[c.app]))
        assert was < now <= top
    for a in result.plan:
        if a.app not in {c.app for c in result.climbs}:
            assert (a.primary_node, a.primary_variant) == (
                before[a.app].primary_node,
                before[a.app].primary_variant,
            )
    # 4. apps that could not climb are reported settled.
    assert set(result.settled) == moved - {c.app for c in result.climbs}


def test_a_climb_in_place_needs_no_planner_call() -> None:
    # planner_apps=0: in place only. a climbs on n2 (its node), b's backup stays on n2.
    inst, plan = _two_survivors(100)
    result = settle(inst, plan, {"a": "F-l", "b": "G-1"}, ["a"], planner_apps=0)
    (climb,) = result.climbs
    assert (climb.from_node, climb.node, climb.variant) == ("n2", "n2", "F-l")
    assert result.plan.by_app()["b"] == plan.by_app()["b"]
    # 75 MiB: F-l beside F-s and b's reservation does not fit; F-m (30) does.
    inst, plan = _two_survivors(75)
    assert [
        c.variant for c in settle(inst, plan, {"a": "F-l", "b": "G-1"}, ["a"], planner_apps=0).climbs
    ] == ["F-m"]


@_SETTINGS
@given(
    tiny_instances(max_nodes=4, max_apps=5),
    st.integers(0, 3),
    st.sampled_from([(True, 1.0), (True, 1.5), (True, 2.5)]),
)
def test_climbs_in_place_keep_the_plan_valid_and_protected(
    inst: Instance, k: int, how: tuple[bool, float]
) -> None:
    failed = inst.nodes[k % len(inst.nodes)].id
    state = _after_failure(inst, failed, smallest=how[0], room=how[1])
    assume(state is not None)
    assert state is not None
    survivors, plan, moved, home = state
    result = settle(survivors, plan, home, moved, planner_apps=0)
    event(f"{len(result.climbs)} climbs in place")
    assert _protected(plan) <= _protected(result.plan)  # never unprotects
    before = plan.by_app()
    for a in result.plan:  # backups untouched, primaries on their nodes
        assert (a.primary_node, a.backup) == (before[a.app].primary_node, before[a.app].backup)
    assert result.plan.shared == plan.shared
    doc = plan_document(
        _pinned(survivors, result.plan), PlanResult(Status.FEASIBLE, "greedy", "faillite", result.plan)
    )
    doc["best_effort"] = True
    assert check(doc).violations == []
    assert set(result.settled) == moved - {c.app for c in result.climbs}
