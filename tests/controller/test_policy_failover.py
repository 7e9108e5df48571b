"""The failover policy on hand-made states: node_dead, recovery programs, re-protection."""

from __future__ import annotations

from faillite.controller import policy
from faillite.controller.decide import Replica, SetServing
from faillite.controller.effects import (
    CancelProgram,
    PublishRoutes,
    SetNodeState,
    StartProgram,
    StartRecovery,
)
from faillite.controller.model import Program, Serving
from faillite.controller.planning import AppSpec
from faillite.controller.reduce import apply_all
from faillite.controller.states import AppState, NodeState
from faillite.placement import Action, ActionKind, Assignment, Backup, Mode, Plan, SharedFallback
from tests.controller.policy_world import BIG, MIB, SMALL, World, add_node, deployed, empty_state

APPS = [
    AppSpec(name="warm-a", family="digits", slo_ms=20, critical=True, weight=3, node="n1"),
    AppSpec(name="warm-b", family="digits", slo_ms=20, critical=True, weight=2, node="n1"),
    AppSpec(name="cold-a", family="digits", slo_ms=20, node="n1"),
    AppSpec(name="cold-b", family="digits", slo_ms=20, node="n2"),
]
NODES = {"n1": 12 * MIB, "n2": 12 * MIB, "n3": 12 * MIB}


def test_warm_apps_switch_at_once_and_cold_ones_recover() -> None:
    state = deployed(NODES, APPS)
    effects = policy.node_dead(state, "n1", 99.92, now=100.0, reason="connection closed", silent_ms=80)
    assert effects[0] == SetNodeState("n1", NodeState.DEAD, "connection closed")
    switches = {e.app: e for e in effects if isinstance(e, SetServing)}
    for app in ("warm-a", "warm-b"):
        backup = state.plan.by_app()[app].backup
        assert backup is not None
        assert switches[app].replica == Replica(backup.node, backup.variant)
        assert switches[app].state is AppState.FAILED_OVER and switches[app].reason == "warm backup"
    assert switches["cold-a"] == SetServing("cold-a", None, AppState.RECOVERING, "n1 dead, no warm backup")
    assert "cold-b" not in switches  # on n2: untouched
    (start,) = [e for e in effects if isinstance(e, StartRecovery)]
    assert start.dead == ("n1",) and start.cold == ("cold-a",)
    recovered = [e.fields for e in effects if getattr(e, "kind", None) == "app_recovered"]
    assert {r["app"]: r["recovery_ms"] for r in recovered} == {"warm-a": 80.0, "warm-b": 80.0}


def test_the_whole_failover_ends_with_every_app_served_and_a_protected_plan() -> None:
    world = World(deployed(NODES, APPS))
    world.kill("n1", silent_ms=50)
    world.reconcile()
    state = world.state
    assert {a: s.state for a, s in state.serving.items()} == {
        "warm-a": AppState.FAILED_OVER,
        "warm-b": AppState.FAILED_OVER,
        "cold-a": AppState.FAILED_OVER,
        "cold-b": AppState.PRIMARY,
    }
    assert all(s.replica is not None and s.replica.node != "n1" for s in state.serving.values())
    assert not state.programs and not state.pinned and state.reprotecting == 0
    (changed,) = world.events("plan_changed")
    assert changed["reason"] == "failure of n1" and changed["protected"] is True
    steps = world.events("progressive_step")
    assert [(s["app"], s["step"], s["stone"]) for s in steps] == [("cold-a", 1, True), ("cold-a", 2, False)]
    assert state.failed_at == {}


def test_a_dead_node_without_apps_only_republishes_routes() -> None:
    state = deployed(NODES, APPS)
    add_node(state, "n4")
    effects = policy.node_dead(state, "n4", 100.0)
    assert [type(e) for e in effects][-1] is PublishRoutes
    assert not [e for e in effects if isinstance(e, StartRecovery | SetServing)]
    apply_all(state, effects)
    assert policy.node_dead(state, "n4", 101.0) == []  # dead already: nothing more
    assert policy.node_dead(state, "nope", 101.0) == []


def test_programs_that_counted_on_the_dead_node_are_cancelled() -> None:
    state = deployed(NODES, APPS)
    state.programs["cold-b"] = Program("cold-b", 7, planning=False)
    state.pinned["cold-b"] = frozenset({Replica("n3", SMALL)})
    state.programs["other"] = Program("other", 8, planning=False)
    state.pinned["other"] = frozenset({Replica("n2", SMALL)})
    cancelled = [e.app for e in policy.node_dead(state, "n3", 100.0) if isinstance(e, CancelProgram)]
    assert cancelled == ["cold-b"]


def test_an_app_without_warm_backup_switches_to_its_loaded_shared_fallback() -> None:
    state = empty_state(policy="faillite-shared")
    for node in ("n1", "n2"):
        add_node(state, node)
    state.apps["a"] = AppSpec(name="a", family="digits", slo_ms=20)
    state.plan = Plan(
        (Assignment("a", "n1", BIG, Backup("n2", BIG, Mode.COLD)),),
        (SharedFallback("n2", "digits", SMALL, ("a",)),),
    )
    state.serving["a"] = Serving(AppState.PRIMARY, Replica("n1", BIG))
    state.agents["n2"] = state.agents["n2"].__class__(frozenset({SMALL}))
    effects = policy.node_dead(state, "n1", 100.0)
    serving = [e for e in effects if isinstance(e, SetServing)]
    assert [(e.replica, e.state, e.stone) for e in serving] == [
        (None, AppState.RECOVERING, False),
        (Replica("n2", SMALL), AppState.STEPPING, True),
    ]
    routed = [e.fields for e in effects if getattr(e, "kind", None) == "route_changed"]
    assert routed[0]["previous"] is None and routed[0]["reason"] == "shared warm fallback"
    state.agents["n2"] = state.agents["n2"].__class__(frozenset())  # not loaded: no switch
    assert not [e for e in policy.node_dead(state, "n1", 100.0) if isinstance(e, SetServing) and e.replica]


def test_recovery_programs_skip_detection_time_switches_and_end_apps_without_steps() -> None:
    state = deployed(NODES, APPS)
    first = policy.recovery_request(state, ["n1"]).first()
    effects = policy.recovery_programs(state, first, ["cold-a", "ghost"])
    started = {e.app: e.steps for e in effects if isinstance(e, StartProgram)}
    assert "warm-a" not in started and "cold-a" in started
    assert all(not (a.kind is ActionKind.SWITCH and a.reason == "warm backup") for a in started["cold-a"])
    assert [e.app for e in effects if type(e).__name__ == "EndProgram"] == ["ghost"]
    assert effects[-1].delta == 1  # type: ignore[union-attr]  # re-protection starts


def test_recovery_failed_gives_the_apps_up_with_the_reason() -> None:
    state = deployed(NODES, APPS)
    effects = policy.recovery_failed(state, ["cold-a"], "boom")
    assert [e.fields for e in effects if hasattr(e, "fields")] == [
        {"app": "cold-a", "reason": "re-planning failed: boom"}
    ]


def test_reprotected_adopts_the_new_plan_and_says_so() -> None:
    state = deployed(NODES, APPS)
    apply_all(state, policy.node_dead(state, "n1", 100.0))
    full = policy.recovery_request(state, ["n1"]).full()
    state.reprotecting = 1
    apply_all(state, policy.reprotected(state, full, ["n1"]))
    assert state.reprotecting == 0
    assert all(a.primary_node != "n1" for a in state.plan)
    assert state.home_plan.by_app()["cold-a"].primary_node == "n1"  # home stays


def test_a_lost_step_makes_the_app_unavailable() -> None:
    state = deployed(NODES, APPS)
    apply_all(state, [SetServing("cold-a", None, AppState.RECOVERING, "t")])
    world = World(state)
    world.run([StartProgram("cold-a", (Action(ActionKind.LOST, "cold-a", None, None, "no variant fits"),))])
    assert state.serving["cold-a"].state is AppState.UNAVAILABLE
    assert world.events("app_lost") == [{"kind": "app_lost", "app": "cold-a", "reason": "no variant fits"}]
    assert "cold-a" not in state.programs
