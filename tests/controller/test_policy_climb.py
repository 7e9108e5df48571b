"""Climbing back after a failover (climb_prelude / climb_request / climb_adopt) on hand-made states."""

from __future__ import annotations

from dataclasses import replace

from faillite.controller import policy
from faillite.controller.decide import Replica
from faillite.controller.model import AgentView, ControlState, Program, Serving
from faillite.controller.planning import AppSpec
from faillite.controller.reduce import apply_all
from faillite.controller.states import AppState, NodeState
from faillite.placement import Assignment, Backup, Mode, Plan
from tests.controller.policy_world import BIG, MIB, SMALL, add_node, emitted, empty_state


def after_failover() -> ControlState:
    state = empty_state()
    for node in ("n1", "n2", "n3"):
        add_node(state, node, 8 * MIB)
    state.nodes["n1"] = replace(state.nodes["n1"], state=NodeState.DEAD)
    del state.agents["n1"]
    state.apps["a"] = AppSpec(name="a", family="digits", slo_ms=20)
    state.home_plan = Plan((Assignment("a", "n1", BIG, Backup("n2", SMALL, Mode.COLD)),))
    state.plan = Plan((Assignment("a", "n2", SMALL, Backup("n3", SMALL, Mode.COLD)),))
    state.serving["a"] = Serving(AppState.FAILED_OVER, Replica("n2", SMALL))
    state.agents["n2"] = AgentView(frozenset({SMALL}))
    return state


def climb(state: ControlState, now: float = 10.0) -> list:  # type: ignore[type-arg]
    apply_all(state, policy.climb_prelude(state, now))
    request = policy.climb_request(state, now)
    if request is None:
        return []
    effects = policy.climb_adopt(state, request, request.solve())
    apply_all(state, effects)
    return effects


def test_an_app_climbs_to_the_best_variant_that_fits_then_settles_once() -> None:
    state = after_failover()
    effects = climb(state)
    (asg,) = state.plan
    assert asg.primary_variant == BIG and asg.backup is not None  # home variant, still protected
    assert state.climbing["a"].primary_variant == SMALL
    assert [e["reason"] for e in emitted(effects, "plan_changed")] == [f"climb back: a from {SMALL} to {BIG}"]
    assert climb(state) == []  # the climb is loading: nothing more
    state.serving["a"] = Serving(AppState.FAILED_OVER, Replica(asg.primary_node, BIG))
    settled = emitted(climb(state), "app_settled")
    assert settled == [{"app": "a", "node": asg.primary_node, "variant": BIG, "protected": True}]
    assert "a" not in state.climbing
    assert climb(state) == []  # said once per failover


def test_a_refused_climb_is_undone_and_blocked_for_a_while() -> None:
    state = after_failover()
    climb(state)
    climbed = state.plan.by_app()["a"]
    state.retry_after[Replica(climbed.primary_node, climbed.primary_variant)] = 11.0
    climb(state, now=10.5)
    assert state.plan.by_app()["a"].primary_variant == SMALL
    assert "a" not in state.climbing and state.climb_blocked["a"] == 10.5 + state.config.climb_retry_s
    assert climb(state, now=12.0) == []  # blocked
    assert climb(state, now=16.0)  # and asked again later


def test_no_climb_while_a_program_runs_loads_are_in_flight_or_every_node_is_back() -> None:
    state = after_failover()
    state.programs["x"] = Program("x", 1)
    assert policy.climb_request(state, 10.0) is None
    del state.programs["x"]
    state.loading["n3"] = frozenset({SMALL})
    assert policy.climb_request(state, 10.0) is None
    state.loading.clear()
    state.nodes["n1"] = replace(state.nodes["n1"], state=NodeState.ALIVE)
    assert policy.climb_request(state, 10.0) is None  # failback's job
    state.nodes["n1"] = replace(state.nodes["n1"], state=NodeState.DEAD)
    assert policy.climb_request(state, 10.0) is not None


def test_a_request_adopts_nothing_when_the_plan_moved_meanwhile() -> None:
    state = after_failover()
    request = policy.climb_request(state, 10.0)
    assert request is not None
    result = request.solve()
    state.plan = Plan((Assignment("a", "n3", SMALL, None),))
    assert policy.climb_adopt(state, request, result) == []


def test_budgets_are_the_agents_memory_view() -> None:
    state = after_failover()
    state.agents["n2"] = AgentView(frozenset({SMALL}), used_bytes=7 * MIB)  # 6 MiB over its estimate
    nodes = {n.id: n.memory_bytes for n in policy.agents_view(state, state.plan)}
    small = state.families["digits"].variant(SMALL).memory_bytes
    assert nodes == {"n2": 8 * MIB - (7 * MIB - small), "n3": 8 * MIB}
