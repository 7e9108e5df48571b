"""Protection first: when own backups cannot protect every app, shared warm fallbacks can."""

from __future__ import annotations

import dataclasses

from planner_helpers import MIB, variant
from test_shared import fam

from faillite.placement import (
    App,
    Family,
    Instance,
    Node,
    PlannerParams,
    make_plan,
    plan_document,
    random_instance,
    replan,
)
from faillite.placement.shared import uncovered
from faillite.plancheck import check


def _tight() -> Instance:
    """Three 60 MiB nodes, each with a 40 MiB primary: no own backup of family A (>= 40 MiB) fits
    anywhere, but family B (same task) has a 5 MiB variant."""
    big = Family("A", (variant("A", "A-m", 0.76, 40), variant("A", "A-l", 0.80, 45)), task="img")
    small = Family("B", (variant("B", "B-xs", 0.60, 5), variant("B", "B-l", 0.78, 40)), task="img")
    apps = (
        App("a1", "A", "A-m", slo_ms=50, primary_node="n1"),
        App("a2", "A", "A-m", slo_ms=50, primary_node="n2"),
        App("b3", "B", "B-l", slo_ms=50, primary_node="n3"),
    )
    nodes = tuple(Node(f"n{k}", 60 * MIB) for k in (1, 2, 3))
    return Instance(nodes, (big, small), apps, PlannerParams())


def test_faillite_refuses_but_faillite_shared_protects_every_app_with_fallbacks() -> None:
    inst = _tight()
    assert make_plan(inst, method="greedy", policy="faillite").plan is None
    r = make_plan(inst, method="greedy", policy="faillite-shared")
    assert r.plan is not None and r.plan.shared
    assert not uncovered(r.plan)
    assert {sf.variant for sf in r.plan.shared} == {"B-xs"}  # the smallest: it stands in for everyone
    assert check(plan_document(inst, r)).violations == []


def test_without_a_task_there_is_no_fallback_and_no_plan() -> None:
    inst = _tight()
    inst = dataclasses.replace(inst, families=tuple(dataclasses.replace(f, task=None) for f in inst.families))
    r = make_plan(inst, method="greedy", policy="faillite-shared")
    assert r.plan is None and r.reasons


def test_reprotection_after_a_failure_covers_every_app_first() -> None:
    # Roomier nodes: own backups for all before the failure; after n1 dies, a1 runs on a
    # survivor and own backups no longer fit for everyone, the fallbacks still cover them.
    inst = dataclasses.replace(_tight(), nodes=tuple(Node(f"n{k}", 100 * MIB) for k in (1, 2, 3)))
    base = make_plan(inst, method="greedy", policy="faillite-shared")
    assert base.plan is not None
    out = replan(inst, base.plan, ["n1"], policy="faillite-shared")
    assert out.protection.plan is not None
    assert not uncovered(out.protection.plan)
    doc = plan_document(out.instance, out.protection, best_effort=True)
    assert check(doc).violations == []


def test_reprotection_on_random_clusters_leaves_no_app_bare() -> None:
    # Without protection first, these re-plans leave 8 of 12 apps with neither an own backup
    # nor a fallback: own backups take the survivors' memory before any fallback is placed.
    fams = [fam("A"), fam("B"), fam("C")]
    for seed in range(3):
        inst = random_instance(fams, 12, 4, seed=seed, memory_slack=1.3)
        base = make_plan(inst, method="greedy", policy="faillite-shared", best_effort=True)
        assert base.plan is not None
        for node in inst.nodes[:2]:
            out = replan(inst, base.plan, [node.id], policy="faillite-shared")
            assert out.protection.plan is not None
            assert not uncovered(out.protection.plan), (seed, node.id)
            doc = plan_document(out.instance, out.protection, best_effort=True)
            assert check(doc).violations == []
