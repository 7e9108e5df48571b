"""Reconcile, load outcomes, rejoin and failback on hand-made states."""

from __future__ import annotations

from dataclasses import replace

from faillite.controller import policy
from faillite.controller.decide import Load, Replica, Unload
from faillite.controller.effects import Emit, EventKind, LoadDone, PutNode, SetFailbackDue, SetPlan
from faillite.controller.model import AgentView, Program
from faillite.controller.planning import AppSpec
from faillite.controller.reduce import apply_all
from faillite.controller.states import AppState, NodeState
from faillite.placement import Assignment, Backup, Mode, Plan
from tests.controller.policy_world import BIG, SMALL, World, add_node, empty_state


def pending():
    state = empty_state(unload_grace_s=1.0)
    for node in ("n1", "n2"):
        add_node(state, node)
    for app in ("a", "b"):
        state.apps[app] = AppSpec(name=app, family="digits", slo_ms=20)
    state.plan = state.home_plan = Plan(
        (
            Assignment("a", "n1", BIG, Backup("n2", SMALL, Mode.WARM)),
            Assignment("b", "n1", BIG, None),  # the same replica as a's primary
        )
    )
    return state


def test_loads_are_asked_once_per_replica_with_their_event_first() -> None:
    state = pending()
    effects = policy.reconcile(state, 0.0)
    loads = [e for e in effects if isinstance(e, Load)]
    assert [(e.replica, e.reason) for e in loads] == [
        (Replica("n1", BIG), "plan primary"),
        (Replica("n2", SMALL), "warm backup"),
    ]
    kinds = [e.kind for e in effects if isinstance(e, Emit)]
    assert kinds == [EventKind.LOAD_STARTED, EventKind.LOAD_STARTED]
    apply_all(state, effects)
    assert not [e for e in policy.reconcile(state, 0.1) if isinstance(e, Load)]  # in flight


def test_a_ready_primary_is_switched_to_and_a_refused_load_backs_off() -> None:
    state = pending()
    apply_all(state, policy.reconcile(state, 0.0))
    apply_all(state, policy.load_finished(state, Replica("n1", BIG), "a", True, 0.2, ms=3.0))
    apply_all(state, policy.load_finished(state, Replica("n2", SMALL), "a", False, 0.2, error="no room"))
    assert state.retry_after == {Replica("n2", SMALL): 1.2}
    effects = policy.reconcile(state, 0.5)
    served = {
        e.fields["app"]: e.fields["reason"] for e in effects if getattr(e, "kind", None) == "route_changed"
    }
    assert served == {"a": "deployed: the primary is ready", "b": "deployed: the primary is ready"}
    assert not [e for e in effects if isinstance(e, Load)]  # backing off
    assert [e for e in policy.reconcile(state, 1.3) if isinstance(e, Load)]  # and then retried


def test_an_unneeded_replica_is_unloaded_after_the_grace_only() -> None:
    state = pending()
    state.agents["n2"] = AgentView(frozenset({SMALL, "digits-mlp-8"}))
    apply_all(state, policy.reconcile(state, 10.0))
    assert state.undesired_since == {Replica("n2", "digits-mlp-8"): 10.0}
    assert not [e for e in policy.reconcile(state, 10.5) if isinstance(e, Unload)]
    unloads = [e for e in policy.reconcile(state, 11.0) if isinstance(e, Unload)]
    assert unloads == [Unload(Replica("n2", "digits-mlp-8"), "no app needs it")]
    apply_all(state, unloads)
    assert state.loaded("n2") == {SMALL} and not state.undesired_since


def test_a_rejoining_node_is_cleaned_then_alive_and_failback_follows() -> None:
    world = World(pending())
    world.reconcile()
    state = world.state
    world.kill("n1")
    world.reconcile()
    assert state.plan != state.home_plan
    record = state.nodes["n1"]
    world.run([PutNode(replace(record, epoch=2, state=NodeState.REJOINING), "rejoins")])
    state.agents["n1"] = AgentView(frozenset({BIG}))  # stale
    world.reconcile()
    assert state.nodes["n1"].state is NodeState.ALIVE
    assert [e["epoch"] for e in world.events("node_rejoined")] == [2]
    assert [e["apps"] for e in world.events("failback")] == [["a", "b"]]
    assert state.plan == state.home_plan
    assert {a: s.state for a, s in state.serving.items()} == {"a": AppState.PRIMARY, "b": AppState.PRIMARY}


def test_failback_waits_for_programs_and_for_every_home_node() -> None:
    state = pending()
    state.failback_due = True
    state.plan = Plan((Assignment("a", "n2", SMALL, None), Assignment("b", "n2", SMALL, None)))
    state.nodes["n1"] = replace(state.nodes["n1"], state=NodeState.DEAD)
    assert policy.failback(state) == [SetFailbackDue(False, "failback considered")]  # n1 is home
    state.nodes["n1"] = replace(state.nodes["n1"], state=NodeState.ALIVE)
    state.programs["a"] = Program("a", 1)
    assert policy.failback(state) == []  # a program runs: later
    del state.programs["a"]
    effects = policy.failback(state)
    assert effects[1] == SetPlan(state.home_plan, reason="failback: every home node is live")
    assert effects[2] == Emit(EventKind.FAILBACK, {"apps": ["a", "b"]})


def test_load_finished_records_what_the_agent_holds() -> None:
    state = pending()
    apply_all(state, policy.reconcile(state, 0.0))
    effects = policy.load_finished(state, Replica("n1", BIG), "a", True, 1.0, ms=12.5)
    assert effects[0] == LoadDone(Replica("n1", BIG), True, reason="loaded")
    assert effects[1].fields == {"app": "a", "node": "n1", "variant": BIG, "ms": 12.5}  # type: ignore[union-attr]
    apply_all(state, effects)
    assert BIG in state.loaded("n1") and BIG not in state.loading_on("n1")
    assert state.serving == {}
