"""The planner's paths for large clusters: partial re-protection, unexplained tries, exact's size
guard, and greedy's wider search (behaviour, not speed)."""

from __future__ import annotations

import pytest
from planner_helpers import MIB, instance

import faillite.placement.api as api
from faillite.placement import App, Assignment, Backup, Mode, Node, Plan, make_plan, plan_document, replan
from faillite.placement.feasibility import Context
from faillite.placement.greedy import solve_greedy
from faillite.placement.policies import rules_for
from faillite.plancheck import check


def app(name: str, node: str, variant: str = "F-m") -> App:
    return App(name, "F", variant, slo_ms=100.0, primary_node=node)


def test_only_the_kept_backups_that_no_longer_fit_move() -> None:
    # c holds cold reservations for a1 (fails with a) and a2 (fails with b); once a1 runs on c
    # there is no room left for a2's reservation, while a3's backup on b still fits
    nodes = [Node("a", 100 * MIB), Node("b", 100 * MIB), Node("c", 50 * MIB), Node("d", 100 * MIB)]
    inst = instance(nodes, [app("a1", "a"), app("a2", "b"), app("a3", "d")])
    cold = Mode.COLD
    plan = Plan(
        (
            Assignment("a1", "a", "F-m", Backup("c", "F-m", cold)),
            Assignment("a2", "b", "F-m", Backup("c", "F-m", cold)),
            Assignment("a3", "d", "F-m", Backup("b", "F-m", cold)),
        )
    )
    assert check(plan_document(inst, make_plan(inst))).ok  # the instance itself is plannable
    r = replan(inst, plan, ["a"])
    assert r.protection.plan is not None
    new = r.protection.plan.by_app()
    assert r.moved == ("a2",)
    assert new["a3"].backup == Backup("b", "F-m", cold)  # untouched
    assert new["a2"].backup is not None and new["a2"].backup.node != "c"
    assert new["a1"].primary_node == "c" and new["a1"].backup is not None
    assert check(plan_document(r.instance, r.protection)).ok


def test_a_missing_plan_without_reasons_when_asked() -> None:
    # a and b fail together; their apps' smallest backups (10 MiB each) exceed c's 15 MiB free
    nodes = [
        Node("a", 75 * MIB, domain="d1"),
        Node("b", 75 * MIB, domain="d1"),
        Node("c", 75 * MIB, domain="d2"),
    ]
    inst = instance(nodes, [app("x", "a", "F-l"), app("y", "b", "F-l"), app("z", "c", "F-l")])
    explained = make_plan(inst, method="greedy")
    quiet = make_plan(inst, method="greedy", reasons=False)
    assert explained.plan is None and any("domain d1" in r for r in explained.reasons)
    assert quiet.plan is None and quiet.reasons == () and quiet.status == explained.status


def test_exact_beyond_its_size_returns_greedys_plan_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = [Node(f"n{k}", 200 * MIB) for k in range(3)]
    inst = instance(nodes, [app(f"x{k}", f"n{k % 3}") for k in range(3)])
    assert make_plan(inst, method="exact").method == "exact"
    monkeypatch.setattr(api, "EXACT_MAX_PAIRS", len(nodes) * len(inst.apps) - 1)
    r = make_plan(inst, method="exact")
    assert r.method == "greedy" and r.plan is not None
    assert check(plan_document(inst, r)).ok


def test_greedy_looks_past_its_pool_before_leaving_an_app_bare() -> None:
    # the pool (scan=1) is the node with most memory free, which has no compute for x's backup
    nodes = [Node("p", 100 * MIB), Node("big", 200 * MIB, cores=0.001), Node("ok", 100 * MIB)]
    inst = instance(nodes, [App("x", "F", "F-m", slo_ms=100.0, request_rate=10.0, primary_node="p")])
    r = solve_greedy(Context(inst, rules_for("faillite")), policy="faillite", scan=1)
    assert r.plan is not None
    assert r.plan.by_app()["x"].backup is not None and r.plan.by_app()["x"].backup.node == "ok"
    assert check(plan_document(inst, r)).ok
