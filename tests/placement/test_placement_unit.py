"""Unit tests of the planner: rules one by one on hand-made instances, explanations, re-planning."""

from __future__ import annotations

import pytest
from planner_helpers import MIB, instance, ladder

import faillite.placement as placement
from faillite.placement import (
    ActionKind,
    App,
    Assignment,
    Backup,
    Mode,
    Node,
    Plan,
    PlanningError,
    Status,
    failure_scenarios,
    make_plan,
    plan_document,
    replan,
)
from faillite.placement.explain import elastic_reasons
from faillite.placement.feasibility import Context
from faillite.placement.policies import rules_for
from faillite.plancheck import check


def app(name: str, node: str | None, variant: str = "F-l", **kw: object) -> App:
    return App(name, "F", variant, slo_ms=kw.pop("slo_ms", 100.0), primary_node=node, **kw)  # type: ignore[arg-type]


def backup(result: placement.PlanResult, name: str) -> placement.Backup | None:
    assert result.plan is not None
    return result.plan.by_app()[name].backup


def test_public_surface_is_pinned() -> None:
    assert sorted(placement.__all__) == sorted(
        [
            "ACCURACY_SCALE",
            "SHARED_REASON",
            "WEIGHT_SCALE",
            "Action",
            "ActionKind",
            "App",
            "Assignment",
            "Backup",
            "Family",
            "Instance",
            "Method",
            "Mode",
            "Node",
            "Plan",
            "PlanResult",
            "PlannerParams",
            "PlanningError",
            "Policy",
            "ReplanResult",
            "Scenario",
            "Score",
            "SharedFallback",
            "Status",
            "Variant",
            "explain",
            "failure_scenarios",
            "instance_document",
            "make_plan",
            "plan_document",
            "plan_score",
            "random_instance",
            "replan",
        ]
    )
    for name in placement.__all__:
        assert hasattr(placement, name)


def test_inconsistent_input_is_rejected() -> None:
    with pytest.raises(PlanningError, match="duplicate node"):
        instance([Node("a", MIB), Node("a", MIB)], [])
    with pytest.raises(PlanningError, match="unknown family"):
        instance([Node("a", MIB)], [App("x", "G", "G-s", 10.0)])
    with pytest.raises(PlanningError, match="no variant"):
        instance([Node("a", MIB)], [app("x", "a", variant="F-xl")])


def test_scenarios_are_nodes_then_multi_node_domains() -> None:
    nodes = (Node("a", 1, domain="r1"), Node("b", 1, domain="r1"), Node("c", 1, domain="r2"), Node("d", 1))
    names = [(s.name, sorted(s.failed)) for s in failure_scenarios(nodes)]
    assert names == [("a", ["a"]), ("b", ["b"]), ("c", ["c"]), ("d", ["d"]), ("domain r1", ["a", "b"])]
    assert len(failure_scenarios(nodes, use_domains=False)) == 4


def test_backup_is_smaller_variant_when_the_large_one_does_not_fit() -> None:
    # b holds x's 60 MiB primary... y's backup on b has 100 - 60 = 40 MiB: the 30 MiB variant
    inst = instance([Node("a", 100 * MIB), Node("b", 100 * MIB)], [app("x", "a"), app("y", "b")])
    for method in ("exact", "greedy"):
        r = make_plan(inst, method=method)
        assert r.ok, r.reasons
        assert {backup(r, "x").variant, backup(r, "y").variant} == {"F-m"}  # type: ignore[union-attr]
        assert check(plan_document(inst, r)).ok


def test_cold_backups_share_memory_across_failures() -> None:
    # c can hold one 60 MiB backup at a time; cold lets it back up both a and b (they never fail together)
    nodes = [Node("a", 60 * MIB), Node("b", 60 * MIB), Node("c", 60 * MIB)]
    inst = instance(nodes, [app("x", "a"), app("y", "b")])
    r = make_plan(inst, method="exact")
    assert r.status is Status.OPTIMAL
    assert backup(r, "x") == placement.Backup("c", "F-l", Mode.COLD)
    assert backup(r, "y") == placement.Backup("c", "F-l", Mode.COLD)
    warm_only = make_plan(inst, method="exact", policy="hetero-warm-only")
    assert warm_only.objective is not None and r.objective is not None and warm_only.objective < r.objective


def test_critical_and_tight_recovery_apps_get_warm_backups() -> None:
    nodes = [Node("a", 200 * MIB), Node("b", 200 * MIB)]
    inst = instance(nodes, [app("x", "a", critical=True), app("y", "a", "F-m", max_recovery_ms=100.0)])
    r = make_plan(inst, method="exact")
    assert backup(r, "x").mode is Mode.WARM  # type: ignore[union-attr]
    assert backup(r, "y").mode is Mode.WARM  # type: ignore[union-attr]
    # with a 200 ms budget a cold load of F-m (50 + 80 + 10 ms) is fast enough, and x is not critical
    relaxed = instance(nodes, [app("x", "a"), app("y", "a", "F-m", max_recovery_ms=200.0)])
    assert make_plan(relaxed, method="exact").ok


def test_anti_affinity_honours_failure_domains() -> None:
    nodes = [Node("a", 200 * MIB, domain="r"), Node("b", 200 * MIB, domain="r"), Node("c", 80 * MIB)]
    r = make_plan(instance(nodes, [app("x", "a")]), method="exact")
    assert backup(r, "x").node == "c"  # type: ignore[union-attr]


def test_latency_slo_excludes_slow_nodes() -> None:
    fast = instance(
        [Node("a", 200 * MIB), Node("b", 200 * MIB, speed=0.1), Node("c", 200 * MIB)],
        [app("x", "a", slo_ms=20.0)],
    )
    assert backup(make_plan(fast), "x").node == "c"  # type: ignore[union-attr]


def test_compute_after_failover_is_not_overcommitted() -> None:
    # x needs 40 req/s x 5 ms = 200 millicores; b has 100 left after its own primary
    nodes = [
        Node("a", 200 * MIB, cores=1.0),
        Node("b", 200 * MIB, cores=0.3),
        Node("c", 200 * MIB, cores=1.0),
    ]
    apps = [app("x", "a", request_rate=40.0), app("y", "b", "F-s", request_rate=40.0)]
    r = make_plan(instance(nodes, apps), method="exact")
    assert backup(r, "x").node == "c"  # type: ignore[union-attr]


def test_policies_none_and_full_replicas() -> None:
    nodes = [Node("a", 100 * MIB), Node("b", 100 * MIB)]
    inst = instance(nodes, [app("x", "a"), app("y", "b")])
    none = make_plan(inst, policy="none")
    assert none.ok and all(a.backup is None for a in none.plan)  # type: ignore[union-attr]
    full = make_plan(inst, policy="full-warm")  # 60 + 60 > 100: same-variant replicas do not fit
    assert full.ok and all(a.backup is None for a in full.plan)  # type: ignore[union-attr]
    cold = make_plan(inst, policy="full-cold")  # cold: also 60 + 60 after a failure, no fit
    assert cold.ok and all(a.backup is None for a in cold.plan)  # type: ignore[union-attr]
    hetero = make_plan(inst, policy="faillite")
    assert hetero.ok and all(a.backup is not None for a in hetero.plan)  # type: ignore[union-attr]


def test_primaries_are_placed_when_not_given() -> None:
    inst = instance([Node("a", 100 * MIB), Node("b", 100 * MIB)], [app("x", None), app("y", None, "F-m")])
    for method in ("exact", "greedy"):
        r = make_plan(inst, method=method)
        assert r.ok and check(plan_document(inst, r)).ok
        assert r.objective == pytest.approx(0.80 + 0.75)  # room for full-size backups of both


def test_infeasible_plan_names_node_scenario_and_budget() -> None:
    # a and b share rack r; c (15 MiB) is the only node outside it, and the two smallest
    # backups (10 MiB each) do not fit there together
    nodes = [Node("a", 100 * MIB, domain="r"), Node("b", 100 * MIB, domain="r"), Node("c", 15 * MIB)]
    inst = instance(nodes, [app("x", "a"), app("y", "b", "F-m")])
    r = make_plan(inst, method="exact")
    assert r.status is Status.INFEASIBLE and r.plan is None
    assert r.reasons == (
        "a failure of domain r: its 2 apps need at least 20.0 MiB of backups, "
        "the surviving nodes have 15.0 MiB free after primaries",
    )
    greedy = make_plan(inst, method="greedy")
    assert greedy.plan is None and greedy.reasons
    # the least-overloaded plan names the node, the scenario, what is needed and the budget
    elastic = elastic_reasons(Context(inst, rules_for("faillite")))
    assert elastic and "node c: 20.0 MiB needed after a failure of domain r" in elastic[0], elastic
    assert "budget 15.0 MiB" in elastic[0]


def test_static_reasons_for_primaries() -> None:
    r = make_plan(instance([Node("a", 50 * MIB), Node("b", 100 * MIB)], [app("x", "a")]))
    assert r.status is Status.INFEASIBLE
    assert any("node a: primaries need 60.0 MiB, budget 50.0 MiB" in x for x in r.reasons), r.reasons


def test_replan_switches_warm_then_loads_cold_with_a_stepping_stone() -> None:
    nodes = [Node("a", 200 * MIB), Node("b", 200 * MIB), Node("c", 200 * MIB)]
    inst = instance(nodes, [app("crit", "a", critical=True, weight=5.0), app("bulk", "a")])
    plan = Plan(
        (
            Assignment("bulk", "a", "F-l", Backup("c", "F-l", Mode.COLD)),
            Assignment("crit", "a", "F-l", Backup("b", "F-l", Mode.WARM)),
        )
    )
    r = replan(inst, plan, ["a"])
    kinds = [(a.kind, a.app, a.variant) for a in r.actions]
    assert kinds[0][:2] == (ActionKind.SWITCH, "crit")
    # bulk: stepping stone F-s (20 ms load) first, then the planned F-l, then unload F-s
    bulk = [k for k in kinds if k[1] == "bulk"]
    assert bulk[:5] == [
        (ActionKind.LOAD, "bulk", "F-s"),
        (ActionKind.SWITCH, "bulk", "F-s"),
        (ActionKind.LOAD, "bulk", "F-l"),
        (ActionKind.SWITCH, "bulk", "F-l"),
        (ActionKind.UNLOAD, "bulk", "F-s"),
    ]
    assert r.lost == ()
    assert r.protection.ok
    new = r.protection.plan.by_app()  # type: ignore[union-attr]
    assert new["crit"].primary_node != "a" and new["crit"].backup is not None
    assert check(plan_document(r.instance, r.protection)).ok


def test_replan_keeps_surviving_backups_and_reports_lost_apps() -> None:
    nodes = [Node("a", 100 * MIB), Node("b", 100 * MIB), Node("c", 100 * MIB)]
    inst = instance(nodes, [app("x", "a", "F-m"), app("y", "b", "F-m")])
    plan = make_plan(inst).plan
    assert plan is not None
    r = replan(inst, plan, ["c"])  # c held backups only: nothing to recover, re-protect
    assert all(a.kind is not ActionKind.SWITCH for a in r.actions)
    assert r.protection.ok and r.moved == ()
    # every node but one fails and the survivor is full: an app can be lost
    tiny = instance([Node("a", 30 * MIB), Node("b", 30 * MIB)], [app("x", "a", "F-m")], [ladder()])
    p2 = make_plan(tiny, policy="none").plan
    assert p2 is not None
    r2 = replan(tiny, p2, ["a"], policy="none")
    assert [a.kind for a in r2.actions][:2] == [ActionKind.LOAD, ActionKind.SWITCH]


def test_gap_option_stops_within_the_gap_and_says_so() -> None:
    nodes = [Node(f"n{k}", 150 * MIB, domain=f"r{k % 2}") for k in range(4)]
    inst = instance(nodes, [app(f"a{k}", f"n{k % 4}", weight=1 + k % 3) for k in range(8)])
    full = make_plan(inst, method="exact")
    loose = make_plan(inst, method="exact", gap=0.5)
    assert full.status is Status.OPTIMAL and full.objective is not None
    assert loose.ok and loose.bound is not None and loose.objective is not None
    assert full.objective <= loose.bound + 1e-9
    assert loose.objective >= 0.5 * loose.bound - 1e-9
    # "optimal" only when proven, not merely within the gap
    assert (loose.status is Status.OPTIMAL) == (loose.bound - loose.objective < 1e-9)
    assert not check(plan_document(inst, loose)).violations
