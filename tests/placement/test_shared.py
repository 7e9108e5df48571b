"""Shared warm fallbacks (policy faillite-shared): placement, the checker, re-planning."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from planner_helpers import MIB, variant
from test_placement_properties import tiny_instances

from faillite.placement import (
    ActionKind,
    App,
    Family,
    Instance,
    Mode,
    Node,
    make_plan,
    plan_document,
    random_instance,
    replan,
)
from faillite.placement.shared import uncovered
from faillite.plancheck import check


def fam(name: str, task: str | None = "T") -> Family:
    return Family(
        name,
        (
            variant(name, f"{name}-s", 0.70, 5, load=20.0),
            variant(name, f"{name}-m", 0.75, 20, load=80.0),
            variant(name, f"{name}-l", 0.80, 40, load=300.0),
        ),
        task,
    )


def five_apps(memory_mib: int = 140, task_b: str | None = "T") -> Instance:
    """Three nodes, two families of one task, five apps on their largest variants."""
    nodes = tuple(Node(f"n{i}", memory_mib * MIB) for i in range(3))
    apps = tuple(
        App(f"a{i}", "A" if i % 2 else "B", "A-l" if i % 2 else "B-l", 50, primary_node=f"n{i % 3}")
        for i in range(5)
    )
    return Instance(nodes, (fam("A"), fam("B", task_b)), apps)


@pytest.mark.parametrize("method", ["greedy", "exact"])
def test_cold_backed_apps_get_one_fallback_of_either_family(method: str) -> None:
    inst = five_apps()
    base = make_plan(inst, method=method, policy="faillite")
    r = make_plan(inst, method=method, policy="faillite-shared")
    assert r.plan is not None and base.score is not None and r.score is not None
    assert r.score.accuracy == base.score.accuracy  # the fallbacks never cost backup accuracy
    assert r.plan.shared, "140 MiB nodes leave room for a fallback"
    by_app = r.plan.by_app()
    covered = {a for sf in r.plan.shared for a in sf.apps}
    for a in r.plan:
        b = a.backup
        assert b is not None
        if b.mode is Mode.COLD:
            assert a.app in covered, a
        sf = r.plan.shared_for(a.app)
        if sf is not None:
            assert sf.node != by_app[a.app].primary_node
            assert b.mode is Mode.COLD
    doc = plan_document(inst, r)
    assert check(doc).violations == []
    assert doc["totals"]["shared_covered"] == len(covered)
    assert {e["name"] for e in doc["apps"] if e["shared_fallback"]} == covered


def test_no_fallback_across_keys_or_without_room() -> None:
    inst = five_apps(task_b="U")
    r = make_plan(inst, method="greedy", policy="faillite-shared")
    assert r.plan is not None and r.plan.shared
    for sf in r.plan.shared:  # different keys: each family answers for its own apps only
        assert all(inst.app(a).family == sf.family for a in sf.apps), sf
    tight = make_plan(five_apps(memory_mib=120), method="greedy", policy="faillite-shared")
    assert tight.plan is not None and tight.plan.shared == ()
    plain = make_plan(five_apps(), method="greedy", policy="faillite")
    assert plain.plan is not None and plain.plan.shared == ()


def test_replan_switches_to_the_fallback_then_loads_the_own_backup() -> None:
    inst = five_apps()
    r = make_plan(inst, method="greedy", policy="faillite-shared")
    assert r.plan is not None
    victim = next(a for a in r.plan if r.plan.shared_for(a.app) is not None)
    sf = r.plan.shared_for(victim.app)
    assert sf is not None
    out = replan(inst, r.plan, [victim.primary_node], policy="faillite-shared")
    mine = [a for a in out.actions if a.app == victim.app]
    assert (mine[0].kind, mine[0].node, mine[0].variant) == (ActionKind.SWITCH, sf.node, sf.variant)
    assert victim.backup is not None
    switches = [a for a in mine if a.kind is ActionKind.SWITCH]
    assert (switches[-1].node, switches[-1].variant) == (victim.backup.node, victim.backup.variant)
    assert all(a.variant != sf.variant or a.kind is not ActionKind.UNLOAD for a in out.actions)
    assert out.protection.plan is not None
    for new in out.protection.plan.shared:
        assert new.node != victim.primary_node
    doc = plan_document(out.instance, out.protection)
    assert check(doc).violations == []


def _with_task(inst: Instance, tasks: list[str | None]) -> Instance:
    fams = tuple(dataclasses.replace(f, task=tasks[k % len(tasks)]) for k, f in enumerate(inst.families))
    return dataclasses.replace(inst, families=fams)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tiny_instances(max_nodes=4, max_apps=5),
    st.sampled_from([["T"], ["T", None], ["T", "U"]]),
    st.sampled_from(["greedy", "exact"]),
)
def test_shared_plans_pass_the_checker(inst: Instance, tasks: list[str | None], method: str) -> None:
    inst = _with_task(inst, tasks)
    r = make_plan(inst, method=method, policy="faillite-shared", time_limit_s=5.0, workers=1)
    base = make_plan(inst, method=method, policy="faillite", time_limit_s=5.0, workers=1)
    if base.plan is not None:
        assert r.plan is not None  # fallbacks never make a plan infeasible
    if r.plan is None:
        return
    event(f"{len(r.plan.shared)} fallbacks" + ("" if base.plan else ", protected by fallbacks alone"))
    report = check(plan_document(inst, r))
    assert report.violations == [], report.violations
    assert not uncovered(r.plan)  # every app: its own backup or a shared fallback
    if base.plan is not None:
        assert r.score is not None and base.score is not None
        assert r.score.accuracy >= base.score.accuracy  # the fallbacks never cost backup accuracy
    for failed in inst.nodes:  # and what re-planning leaves after each single failure
        if len(inst.nodes) < 3:
            break
        out = replan(inst, r.plan, [failed.id], policy="faillite-shared")
        if out.protection.plan is not None:
            # re-protection falls back on best effort when not every app can be protected
            doc = plan_document(out.instance, out.protection, best_effort=True)
            assert check(doc).violations == []


def test_random_instances_pass_the_checker() -> None:
    fams = [fam("A"), fam("B"), fam("C", "U")]
    for seed in range(6):
        inst = random_instance(fams, 24, 6, seed=seed, memory_slack=2.2, domain_size=2 if seed % 2 else 0)
        r = make_plan(inst, method="greedy", policy="faillite-shared", best_effort=True)
        assert r.plan is not None
        assert check(plan_document(inst, r, best_effort=True)).violations == []


def _shared_doc() -> dict[str, Any]:
    inst = five_apps()
    doc = plan_document(inst, make_plan(inst, method="greedy", policy="faillite-shared"))
    assert doc["shared"] and check(doc).violations == []
    return doc


def _break(doc: dict[str, Any], how: str) -> None:
    sf = doc["shared"][0]
    served = next(a for a in doc["apps"] if a["name"] == sf["apps"][0])
    if how == "beside its primary":
        sf["node"] = served["shared_fallback"]["node"] = served["primary"]["node"]
    elif how == "other key":
        doc["fallback_keys"][served["family"]] = "other"
    elif how == "memory":
        for n in doc["nodes"]:
            if n["id"] == sf["node"]:
                n["memory_bytes"] -= sf["memory_bytes"] // 2
    elif how == "unknown node":
        sf["node"] = "nowhere"
    elif how == "wrong policy":
        doc["policy"] = "faillite"
    elif how == "served twice":
        doc["shared"].append({**sf, "node": sf["node"]})
    elif how == "entry mismatch":
        served["shared_fallback"] = {"node": "n9", "variant": sf["variant"], "accuracy": 0.7}
    elif how == "slo":
        served["slo_ms"] = 1.0


@pytest.mark.parametrize(
    "how",
    ["beside its primary", "other key", "memory", "unknown node", "wrong policy", "served twice",
     "entry mismatch", "slo"],
)  # fmt: skip
def test_the_checker_rejects_broken_shared_plans(how: str) -> None:
    doc = copy.deepcopy(_shared_doc())
    _break(doc, how)
    assert check(doc).violations, how


def test_the_plan_table_lists_shared_fallbacks() -> None:
    from faillite.commands.plan import render_table

    doc = {**_shared_doc(), "solve_seconds": 0.01}  # the command times the call
    text = render_table(doc)
    assert "shared warm fallbacks" in text
    for sf in doc["shared"]:
        assert f"{sf['variant']} ({sf['family']}" in text and ", ".join(sf["apps"]) in text


def test_kept_fallbacks_stay_when_they_fit_and_are_ignored_where_they_cannot_be() -> None:
    from faillite.placement import SharedFallback

    inst = five_apps()
    first = make_plan(inst, method="greedy", policy="faillite-shared")
    assert first.plan is not None and first.plan.shared
    again = make_plan(inst, method="greedy", policy="faillite-shared", keep_shared=first.plan.shared)
    assert again.plan is not None and again.plan.shared == first.plan.shared
    ghosts = (SharedFallback("gone", "A", "A-s", ("a1",)), SharedFallback("n0", "A", "no-such", ("a1",)))
    odd = make_plan(inst, method="greedy", policy="faillite-shared", keep_shared=ghosts)
    assert odd.plan is not None and odd.plan.shared == first.plan.shared
