"""Interpreting a failover program step by step (program_step) on hand-made states."""

from __future__ import annotations

from faillite.controller import policy
from faillite.controller.decide import Load, Replica, SetServing, Unload
from faillite.controller.effects import EndProgram, StartProgram, Wait
from faillite.controller.model import Serving
from faillite.controller.planning import AppSpec
from faillite.controller.reduce import apply_all
from faillite.controller.states import AppState
from faillite.placement import Action, ActionKind, Assignment, Plan, SharedFallback
from tests.controller.policy_world import BIG, SMALL, World, add_node, empty_state

K = ActionKind
CHAIN = (
    Action(K.LOAD, "a", "n2", SMALL, "stepping stone"),
    Action(K.SWITCH, "a", "n2", SMALL, "stepping stone"),
    Action(K.LOAD, "a", "n2", BIG, "planned backup"),
    Action(K.SWITCH, "a", "n2", BIG, "planned backup"),
    Action(K.UNLOAD, "a", "n2", SMALL, "stepping stone done"),
)


def recovering(**config: object):
    state = empty_state(**config)
    for node in ("n1", "n2"):
        add_node(state, node)
    state.apps["a"] = AppSpec(name="a", family="digits", slo_ms=20)
    state.plan = Plan((Assignment("a", "n1", BIG, None),))
    state.serving["a"] = Serving(AppState.RECOVERING)
    state.failed_at["a"] = (99.5, "n1")
    return state


def test_each_call_interprets_one_step_and_loads_wait_for_their_outcome() -> None:
    state = recovering()
    apply_all(state, [StartProgram("a", CHAIN)])
    assert state.pinned["a"] == {Replica("n2", SMALL), Replica("n2", BIG)}
    first = policy.program_step(state, "a", 100.0)
    assert isinstance(first[-1], Load) and first[-1].replica == Replica("n2", SMALL)
    assert first[1].fields["reason"] == "stepping stone"  # type: ignore[union-attr]  # load_started
    apply_all(state, first)
    assert policy.program_step(state, "a", 100.0, loaded=None)[0].program.awaiting is False  # type: ignore[union-attr]


def test_a_progressive_program_steps_then_settles_and_unloads_the_stone_after_the_grace() -> None:
    world = World(recovering(unload_grace_s=0.5))
    world.run([StartProgram("a", CHAIN)])
    state = world.state
    assert state.serving["a"] == Serving(AppState.FAILED_OVER, Replica("n2", BIG))
    routes = world.events("route_changed")
    assert [(r["variant"], r["state"]) for r in routes] == [(SMALL, "stepping"), (BIG, "failed_over")]
    (recovered,) = world.events("app_recovered")
    assert recovered["variant"] == SMALL and recovered["recovery_ms"] == 500.0
    assert [s["stone"] for s in world.events("progressive_step")] == [True, False]
    waits = [e for e in world.effects if isinstance(e, Wait)]
    assert [w.seconds for w in waits] == [0.5]
    assert [e.replica for e in world.effects if isinstance(e, Unload)] == [Replica("n2", SMALL)]
    assert "a" not in state.programs and "a" not in state.pinned


def test_a_refused_load_skips_its_switch() -> None:
    world = World(recovering(), refuse=lambda r: r.variant == BIG)
    world.run([StartProgram("a", CHAIN)])
    assert world.state.serving["a"] == Serving(AppState.STEPPING, Replica("n2", SMALL), stone=True)
    assert [e["variant"] for e in world.events("load_failed")] == [BIG]
    assert Replica("n2", BIG) in world.state.retry_after  # reconcile waits before retrying


def test_every_load_refused_gives_the_app_up() -> None:
    world = World(recovering(), refuse=lambda _r: True)
    world.run([StartProgram("a", CHAIN)])
    assert world.state.serving["a"].state is AppState.UNAVAILABLE
    assert world.events("app_lost") == [
        {"kind": "app_lost", "app": "a", "reason": "every recovery load failed"}
    ]


def test_a_stone_that_is_also_a_shared_fallback_is_not_unloaded() -> None:
    state = recovering()
    state.plan = Plan(state.plan.assignments, (SharedFallback("n2", "digits", SMALL, ("a", "b")),))
    world = World(state)
    world.run([StartProgram("a", CHAIN)])
    assert not [e for e in world.effects if isinstance(e, Unload)]


def test_a_cancelled_or_planning_program_does_nothing_and_a_stale_run_cannot_end_a_newer_one() -> None:
    state = recovering()
    assert policy.program_step(state, "a", 100.0) == []
    apply_all(state, policy.node_dead(state, "n1", 100.0))  # StartRecovery: planning
    assert state.programs["a"].planning and policy.program_step(state, "a", 100.0) == []
    apply_all(state, [StartProgram("a", CHAIN)])
    newer = state.programs["a"].run
    apply_all(state, [EndProgram("a", newer - 1, "old run")])
    assert state.programs["a"].run == newer
    steps = [StartProgram("a", (Action(K.SWITCH, "a", "n2", SMALL, "s"),))]
    world = World(state)
    world.run(steps)
    assert next(e for e in world.effects if isinstance(e, SetServing)).state is AppState.FAILED_OVER
