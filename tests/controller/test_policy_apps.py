"""Adding and removing apps (add_request / app_added / app_removed) on hand-made states."""

from __future__ import annotations

from dataclasses import replace

import pytest

from faillite.controller import policy
from faillite.controller.effects import CancelProgram, PutApp, SetPlan
from faillite.controller.model import Program, Serving
from faillite.controller.planning import AppSpec, SpecError
from faillite.controller.reduce import apply_all
from faillite.controller.states import AppState, NodeState
from faillite.placement import Plan, PlanResult, Status
from tests.controller.policy_world import MIB, add_node, emitted, empty_state


def spec(name: str, **kw: object) -> AppSpec:
    return AppSpec(name=name, family="digits", slo_ms=20, **kw)  # type: ignore[arg-type]


def test_apps_are_planned_and_only_then_added() -> None:
    state = empty_state()
    for node in ("n1", "n2"):
        add_node(state, node, 8 * MIB)
    request = policy.add_request(state, [spec("a"), spec("b")])
    effects = policy.app_added(state, request, request.solve())
    assert [type(e) for e in effects[:3]] == [PutApp, PutApp, SetPlan]
    assert [e["app"] for e in emitted(effects, "app_added")] == ["a", "b"]
    assert emitted(effects, "plan_changed")[0]["reason"] == "added a, b"
    apply_all(state, effects)
    assert set(state.apps) == {"a", "b"} and state.plan == state.home_plan


def test_with_a_node_down_the_home_plan_keeps_the_others_where_they_were() -> None:
    state = empty_state()
    for node in ("n1", "n2", "n3"):
        add_node(state, node, 8 * MIB)
    request = policy.add_request(state, [spec("a", node="n1")])
    apply_all(state, policy.app_added(state, request, request.solve()))
    home = state.home_plan
    state.nodes["n1"] = replace(state.nodes["n1"], state=NodeState.DEAD)
    moved = replace(home.by_app()["a"], primary_node="n2", backup=None)  # as after a failover
    state.plan = Plan((moved,))
    request = policy.add_request(state, [spec("b")])
    apply_all(state, policy.app_added(state, request, request.solve()))
    assert state.home_plan.by_app()["a"] == home.by_app()["a"]
    assert state.home_plan.by_app()["b"] == state.plan.by_app()["b"]


def test_refusals_name_the_reason_and_change_nothing() -> None:
    state = empty_state()
    with pytest.raises(SpecError, match="no live node"):
        policy.add_request(state, [spec("a")])
    add_node(state, "n1", 8 * MIB)
    with pytest.raises(policy.AppConflict, match="'a' exists already"):
        policy.add_request(state, [spec("a"), spec("a")])
    with pytest.raises(SpecError, match="unknown family"):
        policy.add_request(state, [AppSpec(name="x", family="nope", slo_ms=20)])
    request = policy.add_request(state, [spec("a")])
    refused = PlanResult(Status.INFEASIBLE, "greedy", "faillite", reasons=("n1: no room",))
    with pytest.raises(policy.PlanRefused, match="no room"):
        policy.app_added(state, request, refused)
    assert state.apps == {}


def test_removing_an_app_cancels_its_program_and_forgets_it() -> None:
    state = empty_state()
    for node in ("n1", "n2"):
        add_node(state, node, 8 * MIB)
    request = policy.add_request(state, [spec("a")])
    apply_all(state, policy.app_added(state, request, request.solve()))
    state.serving["a"] = Serving(AppState.RECOVERING)
    state.programs["a"] = Program("a", 1)
    effects = policy.app_removed(state, "a")
    assert effects[0] == CancelProgram("a", "app removed")
    apply_all(state, effects)
    assert "a" not in state.apps and "a" not in state.serving and not state.programs
    assert not list(state.plan) and not list(state.home_plan)
    assert policy.app_removed(state, "a") == []
